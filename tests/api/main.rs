//! Integration tests: the real server on 127.0.0.1:0, driven over REST and
//! gRPC, on SQLite and (when `AUTHMUX_TEST_DATABASE_URL` is set) PostgreSQL.

// The tests and the vendor emulators stand outside authmux: like its
// callers and the live vendors, they read the real clock.
#![allow(clippy::disallowed_methods)]

mod emulators;
mod harness;
mod hygiene;
mod live_vendors;
mod logs;
mod oauth;
mod polyglot;

mod attacks;
mod consent;
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
