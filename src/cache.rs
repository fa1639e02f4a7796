//! A small bounded map whose entries expire: recently authenticated API
//! keys, verified tokens, live sessions. When full it drops expired
//! entries, and everything if that is not enough, so memory stays bounded.

use std::collections::HashMap;
use std::sync::RwLock;

/// Entries keyed by string, each valid until its own expiry (Unix ms).
pub struct ExpiringCache<V> {
    entries: RwLock<HashMap<String, (V, i64)>>,
    capacity: usize,
}

impl<V: Clone> ExpiringCache<V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        ExpiringCache {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The value under `key`, unless it expired before `now_ms`.
    pub fn get(&self, key: &str, now_ms: i64) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (value, expires) = entries.get(key)?;
        (*expires >= now_ms).then(|| value.clone())
    }

    /// Stores `value` under `key` until `expires_ms`.
    pub fn put(&self, key: &str, value: V, expires_ms: i64, now_ms: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.retain(|_, (_, expires)| *expires >= now_ms);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), (value, expires_ms));
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &str) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
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
        for i in 0..1000 {
            c.put(&i.to_string(), i, 10_000, 0);
            assert!(c.len() <= 100);
        }
        // Expired entries go first.
        let c = ExpiringCache::new(3);
        c.put("old", 0, 5, 0);
        c.put("x", 1, 100, 0);
        c.put("y", 2, 100, 0);
        c.put("z", 3, 100, 10);
        assert_eq!(
            (c.get("x", 10), c.get("z", 10), c.len()),
            (Some(1), Some(3), 3)
        );
    }
}
