//! Strict JWT verification (RFC 8725): the algorithm comes from the key,
//! only ES256 and RS256 exist, `kid` must name a known key, `exp`/`nbf`
//! with bounded leeway, `iss` and `aud` checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// `aud` is one string or an array of them (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(all) => all.iter().any(|a| a == aud),
        }
    }
}

/// The registered claims checked here, plus the session claims authmux
/// reads. A mistyped registered claim makes the whole payload unreadable,
/// which is reported as a missing claim.
#[derive(Deserialize)]
struct Registered {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    sid: Option<String>,
    session_id: Option<String>,
}

/// A token taken apart once: the header read, the payload decoded, the
/// signature's bytes at hand. Nothing in it is trusted until
/// [`Jwt::verify`] has checked the signature and the claims.
pub struct Jwt<'a> {
    /// The header.
    pub head: TokenHead,
    /// `header.payload`, the signed bytes.
    signed: &'a str,
    signature: Vec<u8>,
    payload: Vec<u8>,
    /// The registered claims, or `None` when the payload is not a JSON
    /// object of the expected types (reported only after the signature).
    registered: Option<Registered>,
}

fn b64(part: &str) -> Result<Vec<u8>, Invalid> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Invalid::Malformed)
}

impl<'a> Jwt<'a> {
    /// Reads a compact JWS without trusting it: three segments, a JSON
    /// header whose `alg` is ES256 or RS256, which names a `kid` and which
    /// lists no `crit` extension (none is understood here, so RFC 7515
    /// §4.1.11 says refuse).
    pub fn parse(token: &'a str) -> Result<Jwt<'a>, Invalid> {
        let (signed, sig) = token.rsplit_once('.').ok_or(Invalid::Malformed)?;
        let (h, p) = signed.split_once('.').ok_or(Invalid::Malformed)?;
        if p.contains('.') {
            return Err(Invalid::Malformed);
        }
        let header = b64(h)?;
        let raw: RawHeader = serde_json::from_slice(&header).map_err(|_| Invalid::Malformed)?;
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
        let payload = b64(p)?;
        let signature = b64(sig)?;
        let registered = serde_json::from_slice(&payload).ok();
        Ok(Jwt {
            head: TokenHead {
                alg,
                kid,
                typ: raw.typ,
            },
            signed,
            signature,
            payload,
            registered,
        })
    }

    /// The `iss` claim, unverified: only to choose which issuer's keys and
    /// rules apply.
    pub fn issuer(&self) -> Option<&str> {
        self.registered.as_ref()?.iss.as_deref()
    }

    /// Checks the signature with `key` (whose algorithm is the only one
    /// accepted), then `iss`, `aud`, `exp` and `nbf` (with
    /// [`LEEWAY_SECS`]) against `expect`; `exp`, `iss` and `sub` are
    /// required, and `aud` too when an audience is expected.
    pub fn verify(&self, key: &PublicKey, expect: &Expect<'_>) -> Result<Claims, Invalid> {
        let r = self.check(key, expect)?;
        if let Some(max) = expect.max_lifetime_secs {
            let iat = r.iat.ok_or(Invalid::MissingClaim)?;
            if r.exp.unwrap_or(i64::MAX).saturating_sub(iat) > max {
                return Err(Invalid::LifetimeTooLong);
            }
        }
        Ok(Claims {
            sub: r.sub.clone().ok_or(Invalid::MissingClaim)?,
            exp: r.exp.ok_or(Invalid::MissingClaim)?,
            iat: r.iat,
            sid: r.sid.clone(),
            session_id: r.session_id.clone(),
        })
    }

    /// As [`Jwt::verify`], reading the claims into `T` (e.g. an ID
    /// token's).
    pub fn verify_as<T: serde::de::DeserializeOwned>(
        &self,
        key: &PublicKey,
        expect: &Expect<'_>,
    ) -> Result<T, Invalid> {
        self.check(key, expect)?;
        serde_json::from_slice(&self.payload).map_err(|_| Invalid::MissingClaim)
    }

    fn check(&self, key: &PublicKey, expect: &Expect<'_>) -> Result<&Registered, Invalid> {
        if self.head.alg != key.alg {
            return Err(Invalid::UnsupportedAlg);
        }
        key.verifier
            .verify_sig(self.signed.as_bytes(), &self.signature)
            .map_err(|_| Invalid::BadSignature)?;
        let r = self.registered.as_ref().ok_or(Invalid::MissingClaim)?;
        let (Some(exp), Some(iss), Some(_)) = (r.exp, r.iss.as_deref(), r.sub.as_deref()) else {
            return Err(Invalid::MissingClaim);
        };
        let leeway = LEEWAY_SECS as i64;
        if exp < expect.now_secs - leeway {
            return Err(Invalid::Expired);
        }
        if r.nbf.is_some_and(|nbf| nbf > expect.now_secs + leeway) {
            return Err(Invalid::NotYetValid);
        }
        if iss != expect.issuer {
            return Err(Invalid::WrongIssuer);
        }
        if let Some(aud) = expect.audience {
            match &r.aud {
                None => return Err(Invalid::MissingClaim),
                Some(a) if !a.contains(aud) => return Err(Invalid::WrongAudience),
                Some(_) => {}
            }
        }
        Ok(r)
    }
}

/// Reads the header without trusting it (see [`Jwt::parse`]).
pub fn head(token: &str) -> Result<TokenHead, Invalid> {
    Jwt::parse(token).map(|jwt| jwt.head)
}

fn peek(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
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

/// What a token must say about who issued it and for whom, and when it is
/// checked.
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
    /// Now, in Unix seconds, from the caller's clock.
    pub now_secs: i64,
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
    Jwt::parse(token)?.verify(key, expect)
}

/// Verifies a token as [`verify`] does, reading its claims into `T`.
pub fn verify_as<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &PublicKey,
    expect: &Expect<'_>,
) -> Result<T, Invalid> {
    Jwt::parse(token)?.verify_as(key, expect)
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

    #[test]
    fn claims_are_checked_against_the_callers_clock() {
        use crate::tokens::keys;
        use serde_json::json;
        let now = 1_800_000_000i64;
        for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
            let g = keys::generate(alg).unwrap();
            let kid = g.jwk["kid"].as_str().unwrap().to_owned();
            let private = keys::private_key(&kid, alg, &g.pkcs8).unwrap();
            let public = keys::public_key(&g.jwk).unwrap();
            let mut header = jsonwebtoken::Header::new(alg.jwt());
            header.kid = Some(kid.clone());
            let sign = |c: serde_json::Value| {
                jsonwebtoken::encode(&header, &c, &private.encoding).unwrap()
            };
            let base = json!({"iss": "https://i", "sub": "usr_1", "aud": "prj_1", "sid": "ses_1",
                              "iat": now, "exp": now + 60});
            let with = |k: &str, v: serde_json::Value| {
                let mut c = base.clone();
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v;
                }
                sign(c)
            };
            let expect = Expect {
                issuer: "https://i",
                audience: Some("prj_1"),
                max_lifetime_secs: Some(60),
                now_secs: now,
            };
            let ok = verify(&sign(base.clone()), &public, &expect).unwrap();
            assert_eq!(
                (ok.sub.as_str(), ok.session(), ok.exp),
                ("usr_1", Some("ses_1"), now + 60)
            );
            let cases = [
                (with("aud", json!(["other", "prj_1"])), Ok(())),
                (with("aud", json!(["other"])), Err(Invalid::WrongAudience)),
                (with("aud", json!(null)), Err(Invalid::MissingClaim)),
                (with("sub", json!(null)), Err(Invalid::MissingClaim)),
                (with("exp", json!("soon")), Err(Invalid::MissingClaim)),
                (with("iss", json!("https://j")), Err(Invalid::WrongIssuer)),
                (with("nbf", json!(now + 31)), Err(Invalid::NotYetValid)),
                (with("nbf", json!(now + 30)), Ok(())),
                (with("exp", json!(now - 31)), Err(Invalid::Expired)),
                (with("exp", json!(now - 30)), Ok(())),
                (with("exp", json!(now + 61)), Err(Invalid::LifetimeTooLong)),
            ];
            for (i, (token, want)) in cases.iter().enumerate() {
                assert_eq!(
                    verify(token, &public, &expect).map(|_| ()),
                    *want,
                    "{alg:?} case {i}"
                );
            }
            // Someone else's signature over altered claims.
            let good = sign(base.clone());
            let forged = with("sub", json!("usr_2"));
            let (h, _) = forged.rsplit_once('.').unwrap();
            let (_, sig) = good.rsplit_once('.').unwrap();
            assert_eq!(
                verify(&format!("{h}.{sig}"), &public, &expect).unwrap_err(),
                Invalid::BadSignature
            );
            // The other algorithm's key never verifies this token.
            let other = keys::generate(match alg {
                SigningAlg::Es256 => SigningAlg::Rs256,
                SigningAlg::Rs256 => SigningAlg::Es256,
            })
            .unwrap();
            let other = keys::public_key(&other.jwk).unwrap();
            assert_eq!(
                verify(&good, &other, &expect).unwrap_err(),
                Invalid::UnsupportedAlg
            );
        }
    }
}
