//! Vendor adapters against the emulators, by subject: resilience
//! (retries, Retry-After, timeouts, the breaker, probes), failover and
//! adoption, vendor sessions and key rotation, bring-your-own-key,
//! discovery and metrics, graceful shutdown, and Supabase's keys and
//! lookups.

mod byok;
mod discovery;
mod failover;
mod resilience;
mod sessions;
mod shutdown;
mod supabase;

use authmux::vendors::VendorKind;

use crate::harness::{Backend, Server};

pub async fn clerk_server() -> Server {
    Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap()
}

pub fn emulator(s: &Server) -> &crate::emulators::Running {
    s.emulator.as_ref().unwrap()
}

pub fn faults(s: &Server) -> std::sync::MutexGuard<'_, crate::emulators::Faults> {
    emulator(s).faults.lock().unwrap()
}
