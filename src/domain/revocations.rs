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
///
/// authmux's own ids (`ses_` and 32 hex digits) are kept as 16-byte
/// integers, a fifth of the memory of the strings (see BENCHMARKS.md for
/// the figure at a million); any other id is kept as given.
#[derive(Default)]
pub struct Revocations {
    ids: RwLock<Ids>,
}

#[derive(Default)]
struct Ids {
    compact: HashSet<u128>,
    other: HashSet<String>,
}

/// The 128-bit number of an authmux session id, if `id` is one.
fn compact(id: &str) -> Option<u128> {
    let hex = id.strip_prefix("ses_")?;
    if hex.len() != 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

impl Ids {
    fn insert(&mut self, id: String) {
        match compact(&id) {
            Some(n) => {
                self.compact.insert(n);
            }
            None => {
                self.other.insert(id);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        match compact(id) {
            Some(n) => self.compact.contains(&n),
            None => self.other.contains(id),
        }
    }

    fn from_ids(ids: impl IntoIterator<Item = String>) -> Ids {
        let mut out = Ids::default();
        for id in ids {
            out.insert(id);
        }
        out
    }
}

impl Revocations {
    /// Loads every revoked, unexpired session from the store.
    pub async fn load(store: &Store) -> StoreResult<Arc<Revocations>> {
        let ids = store.revoked_session_ids(0, store.now_millis()).await?;
        Ok(Arc::new(Revocations {
            ids: RwLock::new(Ids::from_ids(ids)),
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
        let mut set = self.ids.write().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            set.insert(id);
        }
    }

    /// How many revoked sessions are held.
    pub fn len(&self) -> usize {
        let set = self.ids.read().unwrap_or_else(|p| p.into_inner());
        set.compact.len() + set.other.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
                        *set.ids.write().unwrap_or_else(|p| p.into_inner()) = Ids::from_ids(ids);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ids_are_compact_and_others_kept_as_given() {
        let r = Revocations::default();
        let own = crate::domain::new_id("ses");
        r.add([
            own.clone(),
            "sess_2abcVendor".to_owned(),
            "ses_XYZ".to_owned(),
        ]);
        assert!(r.contains(&own));
        assert!(r.contains("sess_2abcVendor"));
        assert!(r.contains("ses_XYZ"));
        assert!(!r.contains(&crate::domain::new_id("ses")));
        // Upper-case hex is another string, not the same id.
        assert!(!r.contains(&own.to_uppercase().replacen("SES_", "ses_", 1)));
        let set = r.ids.read().unwrap();
        assert_eq!((set.compact.len(), set.other.len()), (1, 2));
    }
}
