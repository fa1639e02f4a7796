//! sea-orm entities, one module per table.

pub mod api_keys;
pub mod auth_failures;
pub mod consent_events;
pub mod consent_states;
pub mod events;
pub mod idempotency_keys;
pub mod identities;
pub mod native_credentials;
pub mod oauth_providers;
pub mod oauth_states;
pub mod pins;
pub mod projects;
pub mod refresh_tokens;
pub mod sessions;
pub mod signing_keys;
pub mod totp_uses;
pub mod users;
pub mod vendor_credentials;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
