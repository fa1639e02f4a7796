//! Schema migrations for the authmux store. Every schema change is a new
//! migration here; `authmux migrate` and `authmux serve` apply them.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_init;
mod m20261126_000002_sessions;
mod m20261126_000003_vendor_sessions;
mod m20261126_000004_byok;
mod m20261126_000005_totp_uses;
mod m20261126_000006_hardening;
mod m20261126_000007_rate_limits;
mod m20261126_000008_phone_numbers;
mod m20261126_000009_vendor_revocations;
mod m20261126_000010_oauth;
mod m20261127_000011_events;
mod m20261127_000012_webhooks;
mod m20261127_000013_user_deletion;
mod m20261129_000014_byok_issuers;
mod m20261129_000015_unique_phone_numbers;
mod m20261129_000016_password_versions;
mod m20261130_000017_idempotent_replies_erased;
mod m20261130_000018_webhook_queue_by_event;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_init::Migration),
            Box::new(m20261126_000002_sessions::Migration),
            Box::new(m20261126_000003_vendor_sessions::Migration),
            Box::new(m20261126_000004_byok::Migration),
            Box::new(m20261126_000005_totp_uses::Migration),
            Box::new(m20261126_000006_hardening::Migration),
            Box::new(m20261126_000007_rate_limits::Migration),
            Box::new(m20261126_000008_phone_numbers::Migration),
            Box::new(m20261126_000009_vendor_revocations::Migration),
            Box::new(m20261126_000010_oauth::Migration),
            Box::new(m20261127_000011_events::Migration),
            Box::new(m20261127_000012_webhooks::Migration),
            Box::new(m20261127_000013_user_deletion::Migration),
            Box::new(m20261129_000014_byok_issuers::Migration),
            Box::new(m20261129_000015_unique_phone_numbers::Migration),
            Box::new(m20261129_000016_password_versions::Migration),
            Box::new(m20261130_000017_idempotent_replies_erased::Migration),
            Box::new(m20261130_000018_webhook_queue_by_event::Migration),
        ]
    }
}
