//! Integration tests: the real server on 127.0.0.1:0, driven over REST and
//! gRPC, on SQLite and (when `AUTHMUX_TEST_DATABASE_URL` is set) PostgreSQL.

// The tests and the vendor emulators stand outside authmux: like its
// callers and the live vendors, they read the real clock.
#![allow(clippy::disallowed_methods)]

mod hygiene;
mod live_vendors;
mod oauth;
mod polyglot;

mod attacks;
mod consent;
mod events;
mod idempotency;
mod listener;
mod rate_limits;
mod replicas;
mod sessions;
mod surface;
mod tenancy;
mod tokens;
mod users;
mod vendors;
mod webhooks;

/// The shared test kit, with `spawn_serve` bound to this package's binary.
mod harness {
    pub use authmux_testkit::*;

    /// Starts this package's `authmux serve` (see [`process::spawn_serve`]).
    pub fn spawn_serve(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Process {
        process::spawn_serve(
            std::path::Path::new(env!("CARGO_BIN_EXE_authmux")),
            data_dir,
            env,
        )
    }
}
use authmux_testkit::{emulators, logs};
