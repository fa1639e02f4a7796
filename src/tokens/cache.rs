//! A bounded cache of tokens that passed full verification. Callers send
//! the same access token with every request of a session, so the
//! signature check — the dominant cost — runs once per token instead of
//! once per request. An entry is used only for the audience it was
//! verified for and only until its `exp` (with the same leeway); anything
//! else, including any altered token, takes the full path again.
//! Revocation is checked by the caller on every request, cached or not.
//!
//! Entries are keyed by the token's SHA-256, not by the token: a key of 32
//! bytes instead of several hundred is cheaper to hash on every lookup and
//! on every rehash of the cache's table, and holds 16,384 entries in a
//! fraction of the memory. Finding another token with the same digest is
//! finding a SHA-256 collision.

use super::verify::{Claims, LEEWAY_SECS};
use crate::cache::ExpiringCache;
use crate::crypto::sha256;

/// The most tokens remembered at once.
pub const CAPACITY: usize = 16_384;

/// Verified tokens and their claims.
pub struct VerifiedTokens {
    entries: ExpiringCache<(Option<String>, Claims), [u8; 32]>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens {
            entries: ExpiringCache::new(CAPACITY),
        }
    }
}

fn until_ms(claims: &Claims) -> i64 {
    (claims.exp + LEEWAY_SECS as i64) * 1000
}

/// A token as the cache knows it: its SHA-256, worked out once per
/// request for both the lookup and, on a miss, the insert.
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> TokenDigest {
        TokenDigest(sha256(token.as_bytes()))
    }
}

impl VerifiedTokens {
    /// The claims of the token if it was verified for `audience` and has
    /// not expired since.
    pub fn get(&self, token: &TokenDigest, audience: Option<&str>, now_ms: i64) -> Option<Claims> {
        let (aud, claims) = self.entries.get(&token.0, now_ms)?;
        (aud.as_deref() == audience).then_some(claims)
    }

    /// Remembers a token that passed full verification for `audience`.
    pub fn put(&self, token: &TokenDigest, audience: Option<&str>, claims: &Claims) {
        self.entries.put(
            &token.0,
            (audience.map(str::to_owned), claims.clone()),
            until_ms(claims),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "usr_1".into(),
            exp,
            iat: None,
            sid: Some("ses_1".into()),
            session_id: None,
        }
    }

    #[test]
    fn entries_hold_for_their_audience_until_expiry() {
        let cache = VerifiedTokens::default();
        let leeway = LEEWAY_SECS as i64;
        cache.put(&TokenDigest::of("t"), Some("prj_a"), &claims(1_000));
        assert!(
            cache
                .get(&TokenDigest::of("t"), Some("prj_a"), 950_000)
                .is_some()
        );
        assert!(
            cache
                .get(&TokenDigest::of("t"), Some("prj_b"), 950_000)
                .is_none(),
            "another audience"
        );
        assert!(
            cache
                .get(&TokenDigest::of("t2"), Some("prj_a"), 950_000)
                .is_none(),
            "another token"
        );
        assert!(
            cache
                .get(
                    &TokenDigest::of("t"),
                    Some("prj_a"),
                    (1_000 + leeway) * 1000
                )
                .is_some()
        );
        assert!(
            cache
                .get(
                    &TokenDigest::of("t"),
                    Some("prj_a"),
                    (1_000 + leeway) * 1000 + 1
                )
                .is_none(),
            "expired"
        );
    }
}
