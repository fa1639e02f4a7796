//! A JWKS client for other issuers' keys (Clerk, WorkOS, Supabase, ...):
//! fetched with reqwest, cached per URL honouring `Cache-Control` within
//! bounds, refetched on an unknown `kid` at most once per refetch interval
//! (30 s by default), and served from cache while the endpoint is down.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::keys::{self, PublicKey};

/// How long keys are cached and how often an unknown `kid` may cause a
/// refetch.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// The shortest cache lifetime, whatever the server says.
    pub min_ttl: Duration,
    /// The longest cache lifetime, whatever the server says.
    pub max_ttl: Duration,
    /// The lifetime when the server says nothing.
    pub default_ttl: Duration,
    /// The least time between two fetches of one URL caused by unknown kids.
    pub refetch_interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(3600),
            default_ttl: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
        }
    }
}

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The JWKS (fresh or cached) has no such key.
    #[error("no key {0} in the JWKS")]
    UnknownKey(String),
    /// The endpoint failed and nothing was cached.
    #[error("JWKS unavailable: {0}")]
    Unavailable(String),
}

struct Entry {
    keys: HashMap<String, Arc<PublicKey>>,
    fetched_at: Instant,
    ttl: Duration,
}

/// Fetches and caches JSON Web Key Sets.
pub struct JwksClient {
    http: reqwest::Client,
    policy: Policy,
    cache: RwLock<HashMap<String, Arc<Entry>>>,
    /// When each URL was last fetched (or tried), for rate limiting.
    attempts: RwLock<HashMap<String, Instant>>,
    /// One fetch at a time per client; others wait and reuse its result.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksClient {
    /// A client using `http` (which carries the timeouts).
    pub fn new(http: reqwest::Client, policy: Policy) -> Self {
        JwksClient {
            http,
            policy,
            cache: RwLock::default(),
            attempts: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, url: &str) -> Option<Arc<Entry>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }

    fn last_attempt(&self, url: &str) -> Option<Instant> {
        self.attempts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .copied()
    }

    /// The key `kid` of the JWKS at `url` (fetched with `headers`, when the
    /// endpoint needs credentials).
    pub async fn key(
        &self,
        url: &str,
        kid: &str,
        headers: &[(&str, String)],
    ) -> Result<Arc<PublicKey>, JwksError> {
        let cached = self.cached(url);
        if let Some(entry) = &cached
            && entry.fetched_at.elapsed() < entry.ttl
            && let Some(k) = entry.keys.get(kid)
        {
            crate::telemetry::jwks_cache_hit();
            return Ok(k.clone());
        }
        // Stale, missing or without this kid: refetch, within limits.
        let stale = cached
            .as_ref()
            .is_none_or(|e| e.fetched_at.elapsed() >= e.ttl);
        let may_refetch = stale
            || self
                .last_attempt(url)
                .is_none_or(|t| t.elapsed() >= self.policy.refetch_interval);
        if may_refetch {
            let _guard = self.fetching.lock().await;
            // Someone else may have fetched while we waited.
            let fresh = self.cached(url);
            let already = match (&cached, &fresh) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, Some(_)) => true,
                _ => false,
            };
            if !already
                && (stale
                    || self
                        .last_attempt(url)
                        .is_none_or(|t| t.elapsed() >= self.policy.refetch_interval))
            {
                self.attempts
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(url.to_owned(), Instant::now());
                let fetched = self.fetch(url, headers).await;
                crate::telemetry::jwks_fetch(fetched.is_ok());
                match fetched {
                    Ok(entry) => {
                        self.cache
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(url.to_owned(), Arc::new(entry));
                    }
                    Err(e) => {
                        tracing::warn!(url, error = %e, "JWKS fetch failed; serving cached keys");
                        if self.cached(url).is_none() {
                            return Err(JwksError::Unavailable(e));
                        }
                    }
                }
            }
        }
        self.cached(url)
            .and_then(|e| e.keys.get(kid).cloned())
            .ok_or_else(|| JwksError::UnknownKey(kid.to_owned()))
    }

    async fn fetch(&self, url: &str, headers: &[(&str, String)]) -> Result<Entry, String> {
        let mut req = self.http.get(url);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let ttl = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(|h| cache_ttl(h, &self.policy))
            .unwrap_or(self.policy.default_ttl);
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        let list = body["keys"].as_array().ok_or("no keys array")?;
        let mut keys = HashMap::new();
        for jwk in list {
            // Keys of other types or algorithms are skipped, not fatal.
            if let Ok(k) = keys::public_key(jwk) {
                keys.insert(k.kid.clone(), Arc::new(k));
            }
        }
        Ok(Entry {
            keys,
            fetched_at: Instant::now(),
            ttl,
        })
    }
}

/// The cache lifetime a `Cache-Control` value asks for, within bounds.
pub fn cache_ttl(header: &str, policy: &Policy) -> Duration {
    let mut ttl = None;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return policy.min_ttl;
        }
        if let Some(v) = lower.strip_prefix("max-age=")
            && let Ok(secs) = v.trim_matches('"').parse::<u64>()
        {
            ttl = Some(Duration::from_secs(secs));
        }
    }
    ttl.unwrap_or(policy.default_ttl)
        .clamp(policy.min_ttl, policy.max_ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_bounded() {
        let p = Policy::default();
        assert_eq!(
            cache_ttl("public, max-age=600", &p),
            Duration::from_secs(600)
        );
        assert_eq!(cache_ttl("max-age=1", &p), p.min_ttl);
        assert_eq!(cache_ttl("max-age=999999", &p), p.max_ttl);
        assert_eq!(cache_ttl("no-store", &p), p.min_ttl);
        assert_eq!(cache_ttl("public", &p), p.default_ttl);
        assert_eq!(cache_ttl("max-age=abc", &p), p.default_ttl);
    }
}
