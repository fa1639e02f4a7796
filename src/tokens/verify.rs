//! Strict JWT verification (RFC 8725): the algorithm comes from the key,
//! only ES256 and RS256 exist, `kid` must name a known key, `exp`/`nbf`
//! with bounded leeway, `iss` and `aud` checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode};
use serde::Deserialize;

use super::keys::{PublicKey, SigningAlg};

/// Clock leeway for `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Why a token (or session) is not valid. The strings are part of the
/// contract (`reason` in `session.verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a JWT at all, or undecodable parts.
    Malformed,
    /// `alg` is not ES256/RS256, or not the key's algorithm.
    UnsupportedAlg,
    /// No `kid`, or a `kid` no key answers to.
    UnknownKey,
    /// The issuer's keys could not be fetched and none are cached.
    KeysUnavailable,
    /// The signature does not verify.
    BadSignature,
    /// Past `exp`.
    Expired,
    /// Before `nbf`.
    NotYetValid,
    /// Another issuer.
    WrongIssuer,
    /// Another audience (e.g. another project's token).
    WrongAudience,
    /// A required claim is missing or mistyped.
    MissingClaim,
    /// The header's `typ` is not the one required (`at+jwt` for access
    /// tokens minted here, RFC 9068), or it lists `crit` extensions.
    WrongType,
    /// `exp` lies further past `iat` than the configured lifetime allows.
    LifetimeTooLong,
    /// The session was revoked.
    Revoked,
    /// No such session.
    UnknownSession,
}

impl Invalid {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::UnsupportedAlg => "unsupported_alg",
            Invalid::UnknownKey => "unknown_key",
            Invalid::KeysUnavailable => "keys_unavailable",
            Invalid::BadSignature => "bad_signature",
            Invalid::Expired => "expired",
            Invalid::NotYetValid => "not_yet_valid",
            Invalid::WrongIssuer => "wrong_issuer",
            Invalid::WrongAudience => "wrong_audience",
            Invalid::MissingClaim => "missing_claim",
            Invalid::WrongType => "wrong_type",
            Invalid::LifetimeTooLong => "lifetime_too_long",
            Invalid::Revoked => "revoked",
            Invalid::UnknownSession => "unknown_session",
        }
    }
}

/// The claims authmux reads from any vendor's token.
#[derive(Clone, Debug, Deserialize)]
pub struct Claims {
    /// The subject (a user id at the issuer).
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds.
    #[serde(default)]
    pub iat: Option<i64>,
    /// The session id (authmux, Clerk, WorkOS).
    #[serde(default)]
    pub sid: Option<String>,
    /// The session id (Supabase).
    #[serde(default)]
    pub session_id: Option<String>,
}

impl Claims {
    /// The session id, whichever claim carries it.
    pub fn session(&self) -> Option<&str> {
        self.sid.as_deref().or(self.session_id.as_deref())
    }
}

/// The header fields that pick the key.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenHead {
    /// The algorithm named in the header (already known to be supported).
    pub alg: SigningAlg,
    /// The key id.
    pub kid: String,
    /// The `typ`, if any.
    pub typ: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

/// Reads the header without trusting it: three segments, a JSON header
/// whose `alg` is ES256 or RS256, which names a `kid` and which lists no
/// `crit` extension (none is understood here, so RFC 7515 §4.1.11 says
/// refuse).
pub fn head(token: &str) -> Result<TokenHead, Invalid> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| Invalid::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| Invalid::Malformed)?;
    let alg = raw
        .alg
        .as_deref()
        .and_then(SigningAlg::parse)
        .ok_or(Invalid::UnsupportedAlg)?;
    if raw.crit.is_some() {
        return Err(Invalid::WrongType);
    }
    let kid = raw
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(Invalid::UnknownKey)?;
    Ok(TokenHead {
        alg,
        kid,
        typ: raw.typ,
    })
}

fn peek(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `iss` claim, read without verifying anything: only to choose which
/// issuer's keys and rules apply.
pub fn peek_issuer(token: &str) -> Option<String> {
    peek(token)?["iss"].as_str().map(str::to_owned)
}

/// The `exp` claim of a token authmux just received from a vendor.
pub fn peek_expiry(token: &str) -> Option<i64> {
    peek(token)?["exp"].as_i64()
}

/// One claim, as text, of a token authmux just received from a vendor.
pub fn peek_claim(token: &str, name: &str) -> Option<String> {
    match &peek(token)?[name] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What a token must say about who issued it and for whom.
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    /// Required `iss`.
    pub issuer: &'a str,
    /// Required `aud`, when the issuer sets one; the claim must then be
    /// present.
    pub audience: Option<&'a str>,
    /// The longest `exp - iat` accepted, when the issuer's lifetime is
    /// known (tokens minted here).
    pub max_lifetime_secs: Option<i64>,
}

impl Expect<'_> {
    /// What a token's header must say, beyond the algorithm and key.
    pub fn check_head(head: &TokenHead, typ: &str) -> Result<(), Invalid> {
        match head.typ.as_deref() {
            Some(t) if t.eq_ignore_ascii_case(typ) => Ok(()),
            _ => Err(Invalid::WrongType),
        }
    }
}

/// Verifies a token with `key`, whose algorithm is the only one accepted.
pub fn verify(token: &str, key: &PublicKey, expect: &Expect<'_>) -> Result<Claims, Invalid> {
    let claims: Claims = verify_as(token, key, expect)?;
    if let Some(max) = expect.max_lifetime_secs {
        let iat = claims.iat.ok_or(Invalid::MissingClaim)?;
        if claims.exp - iat > max {
            return Err(Invalid::LifetimeTooLong);
        }
    }
    Ok(claims)
}

/// Verifies a token's signature, `iss`, `aud`, `exp` and `nbf` as
/// [`verify`] does, reading its claims into `T` (e.g. an ID token's).
pub fn verify_as<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &PublicKey,
    expect: &Expect<'_>,
) -> Result<T, Invalid> {
    let mut v = Validation::new(key.alg.jwt());
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_issuer(&[expect.issuer]);
    match expect.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        }
        None => {
            v.validate_aud = false;
            v.set_required_spec_claims(&["exp", "iss", "sub"]);
        }
    }
    decode::<T>(token, &key.decoding, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => Invalid::BadSignature,
            ErrorKind::ExpiredSignature => Invalid::Expired,
            ErrorKind::ImmatureSignature => Invalid::NotYetValid,
            ErrorKind::InvalidIssuer => Invalid::WrongIssuer,
            ErrorKind::InvalidAudience => Invalid::WrongAudience,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                Invalid::UnsupportedAlg
            }
            ErrorKind::MissingRequiredClaim(_) => Invalid::MissingClaim,
            ErrorKind::Json(_) => Invalid::MissingClaim,
            _ => Invalid::Malformed,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn heads_are_read_strictly() {
        let body = seg(&serde_json::json!({}));
        let tok = |h: serde_json::Value| format!("{}.{body}.sig", seg(&h));
        assert_eq!(
            head(&tok(serde_json::json!({"alg": "ES256", "kid": "k"}))),
            Ok(TokenHead {
                alg: SigningAlg::Es256,
                kid: "k".into(),
                typ: None,
            })
        );
        assert_eq!(
            head(&tok(
                serde_json::json!({"alg": "ES256", "kid": "k", "crit": ["exp"]})
            )),
            Err(Invalid::WrongType)
        );
        assert_eq!(
            head(&tok(serde_json::json!({"alg": "none", "kid": "k"}))),
            Err(Invalid::UnsupportedAlg)
        );
        assert_eq!(
            head(&tok(serde_json::json!({"alg": "HS256", "kid": "k"}))),
            Err(Invalid::UnsupportedAlg)
        );
        assert_eq!(
            head(&tok(serde_json::json!({"alg": "RS256"}))),
            Err(Invalid::UnknownKey)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!!.b.c", "ses_123"] {
            assert_eq!(head(bad), Err(Invalid::Malformed), "{bad}");
        }
    }
}
