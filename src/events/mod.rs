//! Delivery of events to webhook endpoints (Standard Webhooks), read from
//! the outbox the store writes in each change's transaction.

pub mod delivery;
pub mod ssrf;

pub use delivery::{RETRY_SCHEDULE, WebhookPolicy, Worker};
