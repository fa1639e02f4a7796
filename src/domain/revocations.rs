//! Revoked sessions, known to every verifier in the process at once and
//! learnt from the shared database by every other replica within a poll
//! interval, so that a revoked session's access tokens fail everywhere.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::store::{Store, StoreResult};

/// How often replicas look for revocations made elsewhere.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How far back each poll looks, to cover clock skew between replicas.
const POLL_OVERLAP_MS: i64 = 5_000;
/// How often the set is rebuilt, dropping sessions that have expired.
const REBUILD_EVERY: u32 = 2_400; // polls: ten minutes

/// The ids of revoked, not yet expired sessions.
#[derive(Default)]
pub struct Revocations {
    ids: RwLock<HashSet<String>>,
}

impl Revocations {
    /// Loads every revoked, unexpired session from the store.
    pub async fn load(store: &Store) -> StoreResult<Arc<Revocations>> {
        let ids = store.revoked_session_ids(0, store.now_millis()).await?;
        Ok(Arc::new(Revocations {
            ids: RwLock::new(ids.into_iter().collect()),
        }))
    }

    /// Whether the session is revoked.
    pub fn contains(&self, session_id: &str) -> bool {
        self.ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(session_id)
    }

    /// Adds sessions revoked here.
    pub fn add<I: IntoIterator<Item = String>>(&self, ids: I) {
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ids);
    }

    /// Polls the store for revocations made by other replicas.
    pub fn spawn_poll(self: &Arc<Self>, store: Store) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut since = store.now_millis();
            let mut polls = 0u32;
            loop {
                tick.tick().await;
                let Some(set) = me.upgrade() else { break };
                let started = store.now_millis();
                polls = polls.wrapping_add(1);
                let rebuild = polls.is_multiple_of(REBUILD_EVERY);
                let from = if rebuild { 0 } else { since - POLL_OVERLAP_MS };
                match store.revoked_session_ids(from, started).await {
                    Ok(ids) if rebuild => {
                        *set.ids.write().unwrap_or_else(|p| p.into_inner()) =
                            ids.into_iter().collect();
                        since = started;
                    }
                    Ok(ids) => {
                        set.add(ids);
                        since = started;
                    }
                    Err(e) => tracing::warn!(error = %e, "polling revocations failed"),
                }
            }
        });
    }
}
