//! A JWKS client for other issuers' keys (Clerk, WorkOS, Supabase, ...):
//! fetched with reqwest, cached per URL *and credentials* (a JWKS fetched
//! with one tenant's key is never served to another) honouring
//! `Cache-Control` within bounds, refetched on an unknown `kid` at most once
//! per refetch interval (30 s by default), one fetch at a time per source,
//! at most 256 KiB read, and served from cache while the endpoint is down.

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
    /// When each source was last fetched (or tried), for rate limiting.
    attempts: RwLock<HashMap<String, Instant>>,
    /// One fetch at a time per source; others wait and reuse its result.
    fetching: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The most bytes of a JWKS read; a larger answer is refused.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The cache key of a JWKS source: its URL and a digest of the credentials
/// it is fetched with.
fn source_key(url: &str, headers: &[(&str, String)]) -> String {
    let mut material = Vec::new();
    for (name, value) in headers {
        material.extend_from_slice(name.as_bytes());
        material.push(0);
        material.extend_from_slice(value.as_bytes());
        material.push(0);
    }
    format!("{url}#{}", crate::crypto::sha256_hex(&material))
}

impl JwksClient {
    /// A client using `http` (which carries the timeouts).
    pub fn new(http: reqwest::Client, policy: Policy) -> Self {
        JwksClient {
            http,
            policy,
            cache: RwLock::default(),
            attempts: RwLock::default(),
            fetching: std::sync::Mutex::default(),
        }
    }

    fn fetch_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    fn cached(&self, source: &str) -> Option<Arc<Entry>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .cloned()
    }

    fn last_attempt(&self, source: &str) -> Option<Instant> {
        self.attempts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
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
        let source = source_key(url, headers);
        let cached = self.cached(&source);
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
                .last_attempt(&source)
                .is_none_or(|t| t.elapsed() >= self.policy.refetch_interval);
        if may_refetch {
            let lock = self.fetch_lock(&source);
            let _guard = lock.lock().await;
            // Someone else may have fetched while we waited.
            let fresh = self.cached(&source);
            let already = match (&cached, &fresh) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, Some(_)) => true,
                _ => false,
            };
            if !already
                && (stale
                    || self
                        .last_attempt(&source)
                        .is_none_or(|t| t.elapsed() >= self.policy.refetch_interval))
            {
                self.attempts
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(source.clone(), Instant::now());
                let fetched = self.fetch(url, headers).await;
                crate::telemetry::jwks_fetch(fetched.is_ok());
                match fetched {
                    Ok(entry) => {
                        self.cache
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(source.clone(), Arc::new(entry));
                    }
                    Err(e) => {
                        tracing::warn!(url, error = %e, "JWKS fetch failed; serving cached keys");
                        if self.cached(&source).is_none() {
                            return Err(JwksError::Unavailable(e));
                        }
                    }
                }
            }
        }
        self.cached(&source)
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
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("the JWKS is over {MAX_JWKS_BYTES} bytes"));
        }
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the JWKS is over {MAX_JWKS_BYTES} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
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
    fn sources_differ_by_credentials() {
        let a = source_key("https://x/jwks", &[("authorization", "Bearer a".into())]);
        let b = source_key("https://x/jwks", &[("authorization", "Bearer b".into())]);
        assert_ne!(a, b);
        assert!(!a.contains("Bearer"), "credentials are not kept in the key");
        assert_eq!(
            a,
            source_key("https://x/jwks", &[("authorization", "Bearer a".into())])
        );
    }

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
