//! A bounded cache of tokens that passed full verification. Callers send
//! the same access token with every request of a session, so the
//! signature check — the dominant cost — runs once per token instead of
//! once per request. An entry is used only for the audience it was
//! verified for and only until its `exp` (with the same leeway); anything
//! else, including any altered token, takes the full path again.
//! Revocation is checked by the caller on every request, cached or not.

use super::verify::{Claims, LEEWAY_SECS};
use crate::cache::ExpiringCache;

/// The most tokens remembered at once.
pub const CAPACITY: usize = 16_384;

/// Verified tokens and their claims.
pub struct VerifiedTokens {
    entries: ExpiringCache<(Option<String>, Claims)>,
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

impl VerifiedTokens {
    /// The claims of `token` if it was verified for `audience` and has not
    /// expired since.
    pub fn get(&self, token: &str, audience: Option<&str>, now_ms: i64) -> Option<Claims> {
        let (aud, claims) = self.entries.get(token, now_ms)?;
        (aud.as_deref() == audience).then_some(claims)
    }

    /// Remembers a token that passed full verification for `audience`.
    pub fn put(&self, token: &str, audience: Option<&str>, claims: &Claims, now_ms: i64) {
        self.entries.put(
            token,
            (audience.map(str::to_owned), claims.clone()),
            until_ms(claims),
            now_ms,
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
        cache.put("t", Some("prj_a"), &claims(1_000), 900_000);
        assert!(cache.get("t", Some("prj_a"), 950_000).is_some());
        assert!(
            cache.get("t", Some("prj_b"), 950_000).is_none(),
            "another audience"
        );
        assert!(
            cache.get("t2", Some("prj_a"), 950_000).is_none(),
            "another token"
        );
        assert!(
            cache
                .get("t", Some("prj_a"), (1_000 + leeway) * 1000)
                .is_some()
        );
        assert!(
            cache
                .get("t", Some("prj_a"), (1_000 + leeway) * 1000 + 1)
                .is_none(),
            "expired"
        );
    }
}
