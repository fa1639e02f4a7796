//! A bounded concurrent map whose entries expire: recently authenticated
//! API keys, verified tokens, live sessions, projects' own vendor
//! credentials. It is `quick_cache`'s cache: sharded, bounded, with a
//! Clock-PRO eviction policy (close to S3-FIFO) that is scan-resistant, so
//! a run of one-off keys can't flush the hot ones. A read takes a shard's
//! read lock and marks the entry; nothing is queued for later, so a miss
//! costs one probe of the table.
//!
//! Each entry carries its own deadline on the domain's clock (per-entry
//! expiry). A read past it misses and drops the entry. An expired entry
//! that is never read again stays until the eviction policy reaches it;
//! expired or not, the cache never holds more than its capacity, so memory
//! is bounded by that, not by time.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;

/// An entry: the value and its deadline on the domain's clock (Unix ms).
#[derive(Clone)]
struct Entry<V> {
    value: V,
    expires_ms: i64,
}

/// Entries keyed by `K` (a string unless said otherwise), each valid
/// until its own expiry (Unix ms).
pub struct ExpiringCache<V: Clone + Send + Sync + 'static, K = String>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    entries: Cache<K, Entry<V>>,
    /// Counts the invalidations (`remove`, `clear`), so that a value read
    /// from the store before one of them is not stored after it.
    invalidations: AtomicU64,
}

impl<V, K> ExpiringCache<V, K>
where
    V: Clone + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        ExpiringCache {
            entries: Cache::new(capacity),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The value under `key`, unless it expired before `now_ms`.
    pub fn get<Q>(&self, key: &Q, now_ms: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.get(key)?;
        if entry.expires_ms >= now_ms {
            return Some(entry.value);
        }
        // Only an entry that is still expired goes: one stored since the
        // read above stays.
        self.entries
            .remove_if(key, |entry| entry.expires_ms < now_ms);
        None
    }

    /// Stores `value` under `key` until `expires_ms`, in place of what
    /// the key held.
    pub fn put<Q>(&self, key: &Q, value: V, expires_ms: i64)
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        self.entries
            .insert(key.to_owned(), Entry { value, expires_ms });
    }

    /// Where the invalidations stand: read it before reading the value
    /// from the store, and give it to [`Self::put_if_still_valid`].
    pub fn invalidations(&self) -> u64 {
        self.invalidations.load(Ordering::SeqCst)
    }

    /// Like [`Self::put`], unless the cache was invalidated (`remove` or
    /// `clear`) since `seen` was read: a value read from the store before
    /// it was changed is then left out, even if the invalidation ran
    /// between the read and this call. The entry is stored first and taken
    /// out again if an invalidation came, so that one racing this call
    /// either clears it or is seen by it.
    pub fn put_if_still_valid<Q>(&self, key: &Q, value: V, expires_ms: i64, seen: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.put(key, value, expires_ms);
        if self.invalidations() != seen {
            self.entries.remove(key);
        }
    }

    /// Forgets `key`.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    /// How many entries are held, expired or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value read before an invalidation is not stored after it.
    #[test]
    fn a_value_read_before_an_invalidation_is_not_kept() {
        let c = ExpiringCache::new(10);
        let seen = c.invalidations();
        c.clear();
        c.put_if_still_valid("a", 1, 100, seen);
        assert_eq!(c.get("a", 0), None, "stored after a clear");
        let seen = c.invalidations();
        c.remove("b");
        c.put_if_still_valid("a", 1, 100, seen);
        assert_eq!(c.get("a", 0), None, "stored after a remove");
        let seen = c.invalidations();
        c.put_if_still_valid("a", 2, 100, seen);
        assert_eq!(c.get("a", 0), Some(2), "nothing came between");
    }

    #[test]
    fn entries_expire() {
        let c = ExpiringCache::new(10);
        c.put("a", 1, 100);
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
            c.put(&i.to_string(), i, 10_000_000);
        }
        assert!(c.len() <= 100, "{}", c.len());
    }

    /// A scan of keys seen once does not flush a key in steady use.
    #[test]
    fn a_scan_does_not_evict_the_hot_keys() {
        let c = ExpiringCache::new(1_000);
        // Full already, so the hot key comes in as any new key does.
        for i in 0..2_000 {
            c.put(&format!("before{i}"), i, i64::MAX / 2);
        }
        c.put("hot", 0, i64::MAX / 2);
        for i in 0..100_000 {
            assert_eq!(c.get("hot", 0), Some(0), "after {i} cold keys");
            c.put(&format!("cold{i}"), i, i64::MAX / 2);
        }
    }

    /// An expired entry that is read is dropped at once.
    #[test]
    fn an_expired_entry_goes_when_read() {
        let c = ExpiringCache::new(100);
        c.put("a", 1, 30);
        c.put("b", 2, 60);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", 31), None);
        assert_eq!(c.len(), 1, "read after its deadline, the entry is dropped");
        assert_eq!(c.get("b", 31), Some(2));
    }

    /// A value stored already past its deadline replaces the key's
    /// earlier one and is never served.
    #[test]
    fn a_value_stored_past_its_deadline_is_never_served() {
        let c = ExpiringCache::new(10);
        c.put("a", 1, 100);
        c.put("a", 2, 30);
        assert_eq!(c.get("a", 31), None);
        assert_eq!(c.get("a", 0), None, "dropped at the read above");
    }

    /// A new entry under a key replaces its expired one.
    #[test]
    fn a_new_entry_replaces_an_expired_one() {
        let c = ExpiringCache::new(10);
        c.put("a", 1, 30);
        c.put("a", 2, 100);
        assert_eq!(c.get("a", 31), Some(2));
        assert_eq!(c.get("a", 101), None);
    }
}
