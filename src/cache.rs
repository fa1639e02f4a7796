//! A bounded concurrent map whose entries expire: recently authenticated
//! API keys, verified tokens, live sessions, projects' own vendor
//! credentials. It is `moka`'s cache (sharded, lock-free reads, TinyLFU
//! admission so a scan of one-off keys can't flush the hot ones, eviction
//! by recency and frequency when full, and per-entry expiry), with each
//! entry's expiry also checked against the domain's clock on every read so
//! that an entry is never served past its own deadline, whatever that
//! clock says.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::Duration;

use moka::Expiry;
use moka::sync::Cache;

/// An entry: the value, its deadline on the domain's clock (Unix ms), and
/// how long the cache keeps it (the same deadline, as a duration from the
/// insert).
#[derive(Clone)]
struct Entry<V> {
    value: V,
    expires_ms: i64,
    keep: Duration,
}

struct UntilDeadline;

impl<K, V> Expiry<K, Entry<V>> for UntilDeadline {
    fn expire_after_create(
        &self,
        _key: &K,
        entry: &Entry<V>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.keep)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        entry: &Entry<V>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.keep)
    }
}

/// Entries keyed by `K` (a string unless said otherwise), each valid
/// until its own expiry (Unix ms).
pub struct ExpiringCache<V: Clone + Send + Sync + 'static, K = String>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    entries: Cache<K, Entry<V>>,
}

impl<V, K> ExpiringCache<V, K>
where
    V: Clone + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        ExpiringCache {
            entries: Cache::builder()
                .max_capacity(capacity as u64)
                .expire_after(UntilDeadline)
                .build(),
        }
    }

    /// The value under `key`, unless it expired before `now_ms`.
    pub fn get<Q>(&self, key: &Q, now_ms: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.get(key)?;
        (entry.expires_ms >= now_ms).then_some(entry.value)
    }

    /// Stores `value` under `key` until `expires_ms`.
    pub fn put<Q>(&self, key: &Q, value: V, expires_ms: i64, now_ms: i64)
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        let keep = Duration::from_millis(u64::try_from(expires_ms - now_ms).unwrap_or(0));
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires_ms,
                keep,
            },
        );
    }

    /// Forgets `key`.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.invalidate(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// How many entries are held (after pending evictions are applied).
    pub fn len(&self) -> usize {
        self.entries.run_pending_tasks();
        self.entries.entry_count() as usize
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let c = ExpiringCache::new(10);
        c.put("a", 1, 100, 0);
        assert_eq!(c.get("a", 100), Some(1));
        assert_eq!(c.get("a", 101), None);
        assert_eq!(c.get("b", 0), None);
        c.remove("a");
        assert_eq!(c.get("a", 0), None);
    }

    #[test]
    fn capacity_is_a_bound() {
        let c = ExpiringCache::new(100);
        for i in 0..10_000 {
            c.put(&i.to_string(), i, 10_000_000, 0);
        }
        assert!(c.len() <= 100, "{}", c.len());
    }

    /// A scan of keys seen once does not flush a key in steady use.
    #[test]
    fn a_scan_does_not_evict_the_hot_keys() {
        let c = ExpiringCache::new(1_000);
        c.put("hot", 0, i64::MAX / 2, 0);
        for i in 0..100_000 {
            assert_eq!(c.get("hot", 0), Some(0), "after {i} cold keys");
            c.put(&format!("cold{i}"), i, i64::MAX / 2, 0);
        }
    }

    /// The cache itself lets an entry go once its time is up, so memory
    /// is not held by expired entries.
    #[test]
    fn expired_entries_are_evicted() {
        let c = ExpiringCache::new(100);
        c.put("a", 1, 30, 0);
        // (moka's timer wheel works in steps of about a second.)
        std::thread::sleep(Duration::from_millis(2_500));
        assert_eq!(c.len(), 0);
    }
}
