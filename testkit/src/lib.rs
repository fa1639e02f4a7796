//! What authmux's tests and benches share: a real server on loopback
//! ([`Server`]) called over REST or gRPC with one JSON shape, the vendor
//! and OpenID provider emulators, a PostgreSQL database per test, `authmux
//! serve` as a process, log capture and the `contract!` macro.

// Test code: a failed unwrap is a failed test, and the emulators' types
// are built by hand where a test needs them.
#![allow(missing_docs, clippy::unwrap_used, clippy::new_without_default)]

mod call;
mod contract;
pub mod emulators;
mod errors;
pub mod logs;
mod postgres;
pub mod process;
pub mod python;
mod server;

use std::time::Duration;

pub use call::{Transport, confirm_email, create_user, enable_mfa};
pub use errors::{ApiError, expect_err, grpc_error, rest_result};
pub use postgres::{drop_postgres_database, postgres_database, postgres_database_with};
pub use process::Process;
pub use server::{Backend, Server};

/// Polls `check` every `every` until it holds; fails the test, saying
/// `what`, once `within` has passed.
pub async fn eventually<F, Fut>(within: Duration, every: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what}");
        tokio::time::sleep(every).await;
    }
}

/// A built-in provider's user row and its pin, as benches write them
/// straight into the store.
pub fn native_user(
    project_id: &str,
    email: &str,
    metadata: &str,
    now: i64,
) -> (
    authmux::store::entity::users::Model,
    authmux::store::entity::pins::Model,
) {
    let id = authmux::domain::new_id("usr");
    (
        authmux::store::entity::users::Model {
            id: id.clone(),
            project_id: project_id.to_owned(),
            email: email.to_owned(),
            email_lower: email.to_lowercase(),
            email_verified: false,
            metadata: metadata.to_owned(),
            mfa_enabled: false,
            vendor: "native".to_owned(),
            created_at: now,
            updated_at: now,
            phone_number: None,
            password_set: false,
            deleting_since: None,
            password_version: 0,
        },
        authmux::store::entity::pins::Model {
            project_id: project_id.to_owned(),
            resource_id: id,
            kind: "user".to_owned(),
            vendor: "native".to_owned(),
            mode: "managed".to_owned(),
            vendor_resource_id: String::new(),
            created_at: now,
        },
    )
}
