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

pub use call::{Transport, confirm_email, create_user};
pub use errors::{ApiError, expect_err, grpc_error, rest_result};
pub use postgres::{drop_postgres_database, postgres_database};
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
