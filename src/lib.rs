//! authmux: end-user authentication as a service. One API key in front,
//! several identity vendors behind, the same contract over gRPC and REST.

// The library documents every public item and never unwraps outside its
// unit tests (the binaries, benches and integration tests are not held to
// these).
#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod events;
pub mod listener;
pub mod oauth;
pub mod passwords;
pub mod pb;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod transcode;
pub mod vendors;
