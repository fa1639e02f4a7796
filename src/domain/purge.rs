//! Retention: rows that only matter for a while (idempotency records,
//! failed attempts, used TOTP codes, expired sessions with their refresh
//! tokens) are deleted once they are a day past mattering, by a job every
//! replica runs (the deletes are the same whoever runs them).

use std::sync::Arc;
use std::time::Duration;

use super::{Domain, Result};

/// How long rows are kept past the point where they stop mattering.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// How often the purge runs.
pub const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// What one purge deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Idempotency records older than a day.
    pub idempotency_keys: u64,
    /// Failed credential attempts older than a day.
    pub attempts: u64,
    /// Used TOTP codes older than a day.
    pub totp_codes: u64,
    /// Sessions (with refresh tokens and pins) expired over a day ago.
    pub sessions: u64,
    /// OAuth sign-ins past their 10 minutes (and any wait for MFA).
    pub oauth_states: u64,
    /// Events older than the audit retention (a year by default).
    pub events: u64,
}

impl Domain {
    /// Deletes every row that stopped mattering more than a day before
    /// `now` (Unix ms): time is an input, so tests can move it.
    pub async fn purge(&self, now: i64) -> Result<Purged> {
        let before = now - RETENTION_MS;
        let mut purged = Purged {
            idempotency_keys: self.store.purge_idempotency_keys(before).await?,
            attempts: self.store.purge_auth_failures(before).await?,
            totp_codes: self.store.purge_totp_uses(before).await?,
            oauth_states: self.store.purge_oauth_states(now).await?,
            sessions: 0,
            events: 0,
        };
        loop {
            let n = self.store.purge_expired_sessions(before).await?;
            purged.sessions += n;
            if n == 0 {
                break;
            }
        }
        loop {
            let n = self
                .store
                .purge_events(now - self.event_retention_ms, 10_000)
                .await?;
            purged.events += n;
            if n == 0 {
                break;
            }
        }
        Ok(purged)
    }

    /// Runs [`Domain::purge`] every [`PURGE_EVERY`] while the domain lives.
    pub fn spawn_purge(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            // The first run waits a period too: nothing needs purging at
            // start-up that can't wait, and start-up is busy enough.
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + PURGE_EVERY, PURGE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(domain) = me.upgrade() else { break };
                domain.rate_limits().shrink();
                match domain.purge(domain.now()).await {
                    Ok(p) => tracing::debug!(?p, "purged expired rows"),
                    Err(e) => tracing::warn!(error = %e.message, "purging expired rows failed"),
                }
            }
        });
    }
}
