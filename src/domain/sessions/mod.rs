//! Sessions: sign-in (credentials, throttles, MFA, minting), verification
//! (session id or JWT), refresh (rotation, reuse detection, cooldown) and
//! revocation, one module each.

mod reads;
mod refresh;
mod revoke;
mod sign_in;
mod verify;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Domain, Error, ErrorCode, Result, new_id};
use crate::store::entity::sessions;
use crate::tokens::mint::{self, AccessClaims};
use crate::tokens::verify::Invalid;

pub(super) use reads::SessionReads;
pub use sign_in::{MAX_MFA_FAILURES, MAX_PASSWORD_FAILURES, THROTTLE_WINDOW_MS};

/// The prefix of refresh tokens, so that leaked ones are recognisable.
const REFRESH_PREFIX: &str = "amr_";
/// The most live sessions remembered for verification by id: 131,072
/// entries of about 200 bytes each, so that a replica serving 100,000
/// active sessions reads the database only for sessions it has not seen
/// (measured in BENCHMARKS.md, "session.verify at scale").
pub(super) const LIVE_SESSION_CACHE: usize = 131_072;

/// What verification by session id needs of a live session. Revocation is
/// checked against the revocation set on every call.
#[derive(Clone, Debug)]
pub(super) struct LiveSession {
    project_id: String,
    user_id: String,
    expires_at: i64,
}

/// Lifetimes and the issuer of sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// `iss` of minted tokens.
    pub issuer: String,
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// Absolute lifetime of a session.
    pub session_ttl: Duration,
    /// Least time between two issuances for one session.
    pub refresh_cooldown: Duration,
}

/// Input of `session.create`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CreateSession {
    /// The user.
    pub user_id: String,
    /// How the user proved who they are; `password` is checked here.
    pub method: Option<String>,
    /// The password, with `method: "password"`.
    #[serde(skip)]
    pub password: Option<String>,
    /// A TOTP code.
    #[serde(skip)]
    pub mfa_factor: Option<String>,
    /// Require a TOTP code even if the user has not turned MFA on.
    pub require_mfa: bool,
    /// The end user's IP address, for vendors that limit sign-ins per
    /// address; not part of what a replay must repeat.
    #[serde(skip)]
    pub client_ip: Option<String>,
}

/// A minted or refreshed session. The refresh token appears only here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTokens {
    /// `ses_…`
    pub session_id: String,
    /// A signed JWT.
    pub access_token: String,
    /// An opaque token for `session.refresh`.
    pub refresh_token: String,
    /// When the access token expires, Unix milliseconds.
    pub expires_at: i64,
}

/// The answer of `session.verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Whether this is a valid, live session.
    pub valid: bool,
    /// The user, when valid.
    pub user_id: Option<String>,
    /// When the token or session expires, when valid (Unix ms).
    pub expires_at: Option<i64>,
    /// Why not, when not valid.
    pub reason: Option<Invalid>,
}

impl Verification {
    fn invalid(reason: Invalid) -> Self {
        Verification {
            valid: false,
            user_id: None,
            expires_at: None,
            reason: Some(reason),
        }
    }
}

/// An active session as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// `ses_…`
    pub session_id: String,
    /// Absolute expiry (Unix ms).
    pub expires_at: i64,
    /// Creation (Unix ms).
    pub created_at: i64,
    /// The method given at creation.
    pub method: String,
}

fn credential_context(session_id: &str) -> Vec<u8> {
    format!("vendor-credential:{session_id}").into_bytes()
}

/// A new refresh token: the prefix and 256 random bits.
fn new_refresh_token() -> String {
    format!("{REFRESH_PREFIX}{}", crate::crypto::random_token(32))
}

fn session_invalid() -> Error {
    Error::new(
        ErrorCode::AuthSessionInvalid,
        "the refresh token is unknown, expired or revoked",
    )
}

fn amr(method: &str, with_mfa: bool) -> Vec<String> {
    let mut amr = match method {
        "password" => vec!["pwd".to_owned()],
        // RFC 8176 has no value for it; the provider is named after it.
        m if m.starts_with("oauth:") => vec!["oauth".to_owned(), m["oauth:".len()..].to_owned()],
        other => vec![other.to_owned()],
    };
    if with_mfa {
        amr.push("otp".to_owned());
        amr.push("mfa".to_owned());
    }
    amr
}

impl Domain {
    /// The access token of a native session, with the refresh token given.
    fn tokens_for(
        &self,
        session: &sessions::Model,
        refresh: String,
        now: i64,
    ) -> Result<SessionTokens> {
        let expires_at =
            (now + self.sessions.access_ttl.as_millis() as i64).min(session.expires_at);
        let amr: serde_json::Value = serde_json::from_str(&session.amr).unwrap_or(json!([]));
        let access_token = mint::access_token(
            &self.keyring,
            &AccessClaims {
                issuer: &self.sessions.issuer,
                user_id: &session.user_id,
                project_id: &session.project_id,
                session_id: &session.id,
                amr: &amr,
                issued_at: now / 1000,
                expires_at: expires_at / 1000,
                token_id: &new_id("jti"),
            },
        )
        .map_err(Error::internal)?;
        Ok(SessionTokens {
            session_id: session.id.clone(),
            access_token,
            refresh_token: refresh,
            expires_at: (expires_at / 1000) * 1000,
        })
    }

    fn vendor_credential(&self, session: &sessions::Model) -> Result<Option<String>> {
        let Some(sealed) = &session.vendor_credential else {
            return Ok(None);
        };
        let plain = self.master.open(sealed, &credential_context(&session.id))?;
        Ok(Some(String::from_utf8(plain).map_err(Error::internal)?))
    }
}

#[cfg(test)]
mod tests {
    use super::amr;

    #[test]
    fn amr_names_password_and_mfa() {
        assert_eq!(amr("password", false), ["pwd"]);
        assert_eq!(amr("password", true), ["pwd", "otp", "mfa"]);
        assert_eq!(amr("sso", false), ["sso"]);
        assert_eq!(amr("oauth:google", true), ["oauth", "google", "otp", "mfa"]);
    }
}
