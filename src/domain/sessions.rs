//! Sessions on the built-in provider: mint (password, TOTP, throttling),
//! verify (session id or JWT), refresh (rotation, reuse detection,
//! cooldown), revoke and list.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Domain, Error, ErrorCode, Project, Result, new_id};
use crate::crypto::{random_token, sha256_hex};
use crate::store::entity::{auth_failures, pins, refresh_tokens, sessions};
use crate::store::now_millis;
use crate::store::sessions::Rotation;
use crate::tokens::jwks::JwksError;
use crate::tokens::verify::{self, Claims, Expect, Invalid};
use crate::vendors::{TokenSource, VendorKind};

/// Failed sign-ins allowed per user within [`THROTTLE_WINDOW_MS`].
pub const MAX_FAILURES: usize = 10;
/// The throttling window.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// How long a TOTP code stays valid (±1 step of 30 s), during which it may
/// not be used again.
const TOTP_WINDOW_MS: i64 = 90_000;
/// The prefix of refresh tokens, so that leaked ones are recognisable.
const REFRESH_PREFIX: &str = "amr_";
/// The most live sessions remembered for verification by id.
pub(super) const LIVE_SESSION_CACHE: usize = 16_384;

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

fn session_invalid() -> Error {
    Error::new(
        ErrorCode::AuthSessionInvalid,
        "the refresh token is unknown, expired or revoked",
    )
}

fn amr(method: &str, with_mfa: bool) -> Vec<String> {
    let mut amr = vec![match method {
        "password" => "pwd".to_owned(),
        other => other.to_owned(),
    }];
    if with_mfa {
        amr.push("otp".to_owned());
        amr.push("mfa".to_owned());
    }
    amr
}

impl Domain {
    /// Mints a session for a user.
    pub async fn create_session(
        &self,
        project: &Project,
        input: CreateSession,
        idempotency_key: Option<&str>,
    ) -> Result<SessionTokens> {
        let user = self.user_row(project, &input.user_id).await?;
        let method = input.method.clone().unwrap_or_else(|| "server".to_owned());
        if method.is_empty() || method.len() > 64 {
            return Err(Error::invalid("method must be 1 to 64 characters"));
        }
        if method == "password" && input.password.as_deref().unwrap_or("").is_empty() {
            return Err(Error::invalid(
                "password is required with method \"password\"",
            ));
        }
        let input = &input;
        let (user, method) = (&user, &method);
        self.idempotent(
            project,
            "session.create",
            idempotency_key,
            input,
            move || async move {
                let pin = self.user_pin(project, &user.id).await?;
                let vendor = self.pinned_vendor(project, &pin).await?;
                if method == "password" {
                    self.check_throttle(project, &user.id).await?;
                    let password = input.password.as_deref().unwrap_or_default();
                    if !vendor
                        .verify_password(&project.id, &pin.vendor_resource_id, password)
                        .await?
                    {
                        self.store
                            .record_auth_failure(auth_failures::Model {
                                id: new_id("fail"),
                                project_id: project.id.clone(),
                                user_id: user.id.clone(),
                                at: now_millis(),
                            })
                            .await?;
                        return Err(Error::new(
                            ErrorCode::AuthInvalidCredentials,
                            "wrong email or password",
                        ));
                    }
                }
                let needs_mfa = user.mfa_enabled || input.require_mfa;
                if input.require_mfa && !user.mfa_enabled {
                    return Err(Error::new(
                        ErrorCode::AuthMfaNotEnrolled,
                        format!("user {} has no MFA factor enrolled", user.id),
                    ));
                }
                if needs_mfa {
                    let code = input.mfa_factor.as_deref().unwrap_or("");
                    if code.is_empty() {
                        return Err(Error::new(
                            ErrorCode::AuthMfaRequired,
                            "a TOTP code is required in mfa_factor",
                        ));
                    }
                    if !vendor
                        .verify_totp(&project.id, &pin.vendor_resource_id, code)
                        .await?
                        || (vendor.kind() != VendorKind::Native
                            && !self.first_use_of_code(project, &user.id, code).await?)
                    {
                        return Err(Error::new(
                            ErrorCode::AuthMfaInvalid,
                            "the TOTP code is wrong or was already used",
                        ));
                    }
                }

                let now = now_millis();
                let mut session = sessions::Model {
                    id: new_id("ses"),
                    project_id: project.id.clone(),
                    user_id: user.id.clone(),
                    method: method.clone(),
                    amr: json!(amr(method, needs_mfa)).to_string(),
                    created_at: now,
                    last_issued_at: now,
                    expires_at: now + self.sessions.session_ttl.as_millis() as i64,
                    revoked_at: None,
                    vendor_credential: None,
                };
                // A vendor's user gets a vendor session, pinned there.
                let opened = if vendor.kind() == VendorKind::Native {
                    None
                } else {
                    let vs = vendor
                        .create_session(&project.id, &pin.vendor_resource_id)
                        .await?;
                    session.vendor_credential = vs.credential.as_ref().map(|c| {
                        self.master
                            .seal(c.as_bytes(), &credential_context(&session.id))
                    });
                    Some(vs)
                };
                let session_pin = opened.as_ref().map(|vs| pins::Model {
                    project_id: project.id.clone(),
                    resource_id: session.id.clone(),
                    kind: "session".to_owned(),
                    vendor: pin.vendor.clone(),
                    mode: pin.mode.clone(),
                    vendor_resource_id: vs.vendor_session_id.clone(),
                    created_at: now,
                });
                let refresh = format!("{REFRESH_PREFIX}{}", random_token(32));
                self.store
                    .insert_session(
                        session.clone(),
                        refresh_tokens::Model {
                            token_hash: sha256_hex(refresh.as_bytes()),
                            project_id: project.id.clone(),
                            session_id: session.id.clone(),
                            created_at: now,
                            rotated_at: None,
                        },
                        session_pin,
                    )
                    .await?;
                match opened {
                    None => self.tokens_for(&session, refresh, now),
                    Some(vs) => Ok(SessionTokens {
                        session_id: session.id,
                        access_token: vs.access_token,
                        refresh_token: refresh,
                        expires_at: vs.expires_at,
                    }),
                }
            },
        )
        .await
    }

    /// Whether a TOTP code is used for the first time within its window.
    /// The built-in provider tracks the matched step itself; a vendor may
    /// not, so codes checked there are remembered here.
    async fn first_use_of_code(
        &self,
        project: &Project,
        user_id: &str,
        code: &str,
    ) -> Result<bool> {
        let hash = sha256_hex(format!("{user_id}:{code}").as_bytes());
        Ok(self
            .store
            .claim_totp_code(&project.id, user_id, &hash, now_millis(), TOTP_WINDOW_MS)
            .await?)
    }

    async fn check_throttle(&self, project: &Project, user_id: &str) -> Result<()> {
        let now = now_millis();
        let failures = self
            .store
            .auth_failures_since(&project.id, user_id, now - THROTTLE_WINDOW_MS)
            .await?;
        if failures.len() >= MAX_FAILURES {
            // Retry when enough failures have aged out of the window.
            let oldest_relevant = failures[failures.len() - MAX_FAILURES];
            let wait_ms = oldest_relevant + THROTTLE_WINDOW_MS - now;
            return Err(Error::new(
                ErrorCode::AuthTooManyAttempts,
                format!("too many failed sign-ins for user {user_id}; retry later"),
            )
            .retry_after((wait_ms.max(0) as u64).div_ceil(1000)));
        }
        Ok(())
    }

    fn tokens_for(
        &self,
        session: &sessions::Model,
        refresh: String,
        now: i64,
    ) -> Result<SessionTokens> {
        let expires_at =
            (now + self.sessions.access_ttl.as_millis() as i64).min(session.expires_at);
        let amr: serde_json::Value = serde_json::from_str(&session.amr).unwrap_or(json!([]));
        let claims = json!({
            "iss": self.sessions.issuer,
            "sub": session.user_id,
            "aud": session.project_id,
            "sid": session.id,
            "iat": now / 1000,
            "exp": expires_at / 1000,
            "jti": new_id("jti"),
            "amr": amr,
        });
        let signer = self.keyring.signer();
        let mut header = jsonwebtoken::Header::new(signer.alg.jwt());
        header.kid = Some(signer.kid.clone());
        let access_token =
            jsonwebtoken::encode(&header, &claims, &signer.encoding).map_err(Error::internal)?;
        Ok(SessionTokens {
            session_id: session.id.clone(),
            access_token,
            refresh_token: refresh,
            expires_at: (expires_at / 1000) * 1000,
        })
    }

    /// Checks a session id (`ses_…`) or an access token. Anything that is
    /// not a valid live session is `valid: false` with a reason.
    pub async fn verify_session(&self, project: &Project, token: &str) -> Result<Verification> {
        if token.starts_with("ses_") {
            return self.verify_session_id(project, token).await;
        }
        self.verify_jwt(project, token).await
    }

    async fn verify_session_id(&self, project: &Project, id: &str) -> Result<Verification> {
        let now = now_millis();
        let live = match self.live_sessions.get(id, now) {
            Some(live) => live,
            None => {
                let Some(s) = self.store.session(&project.id, id).await? else {
                    return Ok(Verification::invalid(Invalid::UnknownSession));
                };
                if s.revoked_at.is_some() {
                    return Ok(Verification::invalid(Invalid::Revoked));
                }
                if s.expires_at <= now {
                    return Ok(Verification::invalid(Invalid::Expired));
                }
                let live = LiveSession {
                    project_id: s.project_id,
                    user_id: s.user_id,
                    expires_at: s.expires_at,
                };
                self.live_sessions.put(id, live.clone(), s.expires_at, now);
                live
            }
        };
        if live.project_id != project.id {
            return Ok(Verification::invalid(Invalid::UnknownSession));
        }
        if self.revocations.contains(id) {
            return Ok(Verification::invalid(Invalid::Revoked));
        }
        Ok(Verification {
            valid: true,
            user_id: Some(live.user_id),
            expires_at: Some(live.expires_at),
            reason: None,
        })
    }

    async fn verify_jwt(&self, project: &Project, token: &str) -> Result<Verification> {
        let now = now_millis();
        let audience = Some(project.id.as_str());
        let claims = match self.verified.get(token, audience, now) {
            Some(c) => c,
            None => {
                let vendor = verify::peek_issuer(token)
                    .filter(|iss| *iss != self.sessions.issuer)
                    .map(|iss| async move {
                        let adapters = self.token_issuers(project).await?;
                        Ok::<_, Error>(super::byok::by_issuer(adapters, &iss))
                    });
                let vendor = match vendor {
                    Some(found) => found.await?,
                    None => None,
                };
                let checked = match vendor {
                    Some((vendor, source)) => {
                        self.verify_vendor_jwt(project, token, vendor.kind(), &source)
                            .await?
                    }
                    None => self.verify_jwt_fully(project, token),
                };
                match checked {
                    Ok(c) => {
                        self.verified.put(token, audience, &c, now);
                        c
                    }
                    Err(r) => return Ok(Verification::invalid(r)),
                }
            }
        };
        Ok(self.live_claims(claims))
    }

    /// Verifies a vendor's token against its JWKS and maps its session back
    /// to authmux's: the claims returned carry authmux's user and session ids.
    async fn verify_vendor_jwt(
        &self,
        project: &Project,
        token: &str,
        vendor: VendorKind,
        source: &TokenSource,
    ) -> Result<Result<Claims, Invalid>> {
        let head = match verify::head(token) {
            Ok(h) => h,
            Err(r) => return Ok(Err(r)),
        };
        let key = match self.vendors.vendor_key(source, &head.kid).await {
            Ok(k) => k,
            Err(JwksError::UnknownKey(_)) => return Ok(Err(Invalid::UnknownKey)),
            Err(JwksError::Unavailable(_)) => return Ok(Err(Invalid::KeysUnavailable)),
        };
        if key.alg != head.alg {
            return Ok(Err(Invalid::UnsupportedAlg));
        }
        let expect = Expect {
            issuer: &source.issuer,
            audience: None,
        };
        let claims = match verify::verify(token, &key, &expect) {
            Ok(c) => c,
            Err(r) => return Ok(Err(r)),
        };
        let Some(vendor_sid) = claims.session() else {
            return Ok(Err(Invalid::MissingClaim));
        };
        let Some(pin) = self
            .store
            .pin_by_vendor_resource(&project.id, vendor.as_str(), vendor_sid)
            .await?
        else {
            return Ok(Err(Invalid::UnknownSession));
        };
        let Some(session) = self.store.session(&project.id, &pin.resource_id).await? else {
            return Ok(Err(Invalid::UnknownSession));
        };
        Ok(Ok(Claims {
            sub: session.user_id,
            exp: claims.exp,
            sid: Some(session.id),
            session_id: None,
        }))
    }

    fn live_claims(&self, claims: Claims) -> Verification {
        match claims.session() {
            Some(sid) if self.revocations.contains(sid) => Verification::invalid(Invalid::Revoked),
            Some(_) => Verification {
                valid: true,
                user_id: Some(claims.sub),
                expires_at: Some(claims.exp * 1000),
                reason: None,
            },
            None => Verification::invalid(Invalid::MissingClaim),
        }
    }

    fn verify_jwt_fully(&self, project: &Project, token: &str) -> Result<Claims, Invalid> {
        let head = verify::head(token)?;
        let key = self.keyring.key(&head.kid).ok_or(Invalid::UnknownKey)?;
        if key.alg != head.alg {
            return Err(Invalid::UnsupportedAlg);
        }
        let expect = Expect {
            issuer: &self.sessions.issuer,
            audience: Some(&project.id),
        };
        verify::verify(token, &key, &expect)
    }

    /// Trades a refresh token for a new pair.
    pub async fn refresh_session(
        &self,
        project: &Project,
        refresh_token: &str,
        idempotency_key: Option<&str>,
    ) -> Result<SessionTokens> {
        if refresh_token.is_empty() {
            return Err(Error::invalid("refresh_token is required"));
        }
        let hash = sha256_hex(refresh_token.as_bytes());
        let hash = &hash;
        self.idempotent(
            project,
            "session.refresh",
            idempotency_key,
            hash,
            move || async move {
                let row = self
                    .store
                    .refresh_token(hash)
                    .await?
                    .filter(|r| r.project_id == project.id)
                    .ok_or_else(session_invalid)?;
                let session = self
                    .store
                    .session(&project.id, &row.session_id)
                    .await?
                    .ok_or_else(session_invalid)?;
                let now = now_millis();
                if session.revoked_at.is_some() || session.expires_at <= now {
                    return Err(session_invalid());
                }
                if row.rotated_at.is_some() {
                    return Err(self.revoke_for_reuse(project, &session.id, now).await);
                }
                let cooldown = self.sessions.refresh_cooldown.as_millis() as i64;
                let since = now - session.last_issued_at;
                if since < cooldown {
                    return Err(Error::new(
                        ErrorCode::AuthRefreshTooFrequent,
                        format!(
                            "session {} was issued tokens {}s ago; refresh at most every {}s",
                            session.id,
                            since / 1000,
                            cooldown / 1000
                        ),
                    )
                    .retry_after(((cooldown - since) as u64).div_ceil(1000)));
                }
                // A vendor session gets its new token first, so that a vendor
                // outage leaves the refresh token unspent.
                let vendor_tokens = match self.store.pin(&project.id, &session.id).await? {
                    Some(pin) => {
                        let vendor = self.pinned_vendor(project, &pin).await?;
                        let credential = self.vendor_credential(&session)?;
                        Some(
                            vendor
                                .refresh_session(
                                    &project.id,
                                    &pin.vendor_resource_id,
                                    credential.as_deref(),
                                )
                                .await?,
                        )
                    }
                    None => None,
                };
                let refresh = format!("{REFRESH_PREFIX}{}", random_token(32));
                let new_row = refresh_tokens::Model {
                    token_hash: sha256_hex(refresh.as_bytes()),
                    project_id: project.id.clone(),
                    session_id: session.id.clone(),
                    created_at: now,
                    rotated_at: None,
                };
                match self
                    .store
                    .rotate_refresh_token(hash, new_row, session.last_issued_at, now)
                    .await?
                {
                    Rotation::Rotated => match vendor_tokens {
                        None => self.tokens_for(&session, refresh, now),
                        Some(vs) => {
                            if let Some(c) = &vs.credential {
                                let sealed = self
                                    .master
                                    .seal(c.as_bytes(), &credential_context(&session.id));
                                self.store
                                    .set_vendor_credential(&session.id, Some(sealed))
                                    .await?;
                            }
                            Ok(SessionTokens {
                                session_id: session.id.clone(),
                                access_token: vs.access_token,
                                refresh_token: refresh,
                                expires_at: vs.expires_at,
                            })
                        }
                    },
                    // Someone rotated it between our read and our write.
                    Rotation::Lost => Err(self.revoke_for_reuse(project, &session.id, now).await),
                }
            },
        )
        .await
    }

    async fn revoke_for_reuse(&self, project: &Project, session_id: &str, now: i64) -> Error {
        tracing::warn!(session_id, "refresh token reuse; revoking the session");
        if let Err(e) = self
            .store
            .revoke_session(&project.id, session_id, now)
            .await
        {
            return e.into();
        }
        self.revocations.add([session_id.to_owned()]);
        Error::new(
            ErrorCode::AuthRefreshTokenReused,
            format!("this refresh token was already used; session {session_id} is now revoked"),
        )
    }

    /// Revokes one session.
    pub async fn revoke_session(
        &self,
        project: &Project,
        session_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<()> {
        if session_id.is_empty() {
            return Err(Error::invalid("session_id is required"));
        }
        self.idempotent(
            project,
            "session.revoke",
            idempotency_key,
            &session_id,
            move || async move {
                match self
                    .store
                    .revoke_session(&project.id, session_id, now_millis())
                    .await?
                {
                    None => Err(Error::new(
                        ErrorCode::AuthSessionNotFound,
                        format!("no session {session_id} in this project"),
                    )),
                    Some(_) => {
                        self.revocations.add([session_id.to_owned()]);
                        self.revoke_at_vendor(project, session_id).await
                    }
                }
            },
        )
        .await
    }

    /// Revokes every live session of a user but one; returns how many.
    pub async fn revoke_all_sessions(
        &self,
        project: &Project,
        user_id: &str,
        except: Option<&str>,
    ) -> Result<usize> {
        self.user_row(project, user_id).await?;
        let ids = self
            .store
            .revoke_user_sessions(
                &project.id,
                user_id,
                except.filter(|e| !e.is_empty()),
                now_millis(),
            )
            .await?;
        let n = ids.len();
        self.revocations.add(ids.iter().cloned());
        for id in &ids {
            self.revoke_at_vendor(project, id).await?;
        }
        Ok(n)
    }

    /// Ends the vendor side of a session pinned to a vendor. authmux's own
    /// revocation is already in force; a vendor outage is reported so the
    /// caller can retry (revoking again is harmless).
    async fn revoke_at_vendor(&self, project: &Project, session_id: &str) -> Result<()> {
        let Some(pin) = self.store.pin(&project.id, session_id).await? else {
            return Ok(());
        };
        let Some(session) = self.store.session(&project.id, session_id).await? else {
            return Ok(());
        };
        let credential = self.vendor_credential(&session)?;
        self.pinned_vendor(project, &pin)
            .await?
            .revoke_session(&project.id, &pin.vendor_resource_id, credential.as_deref())
            .await
    }

    fn vendor_credential(&self, session: &sessions::Model) -> Result<Option<String>> {
        let Some(sealed) = &session.vendor_credential else {
            return Ok(None);
        };
        let plain = self.master.open(sealed, &credential_context(&session.id))?;
        Ok(Some(String::from_utf8(plain).map_err(Error::internal)?))
    }

    /// A user's active sessions, newest first.
    pub async fn list_sessions(
        &self,
        project: &Project,
        user_id: &str,
    ) -> Result<Vec<SessionInfo>> {
        self.user_row(project, user_id).await?;
        Ok(self
            .store
            .active_sessions(&project.id, user_id, now_millis())
            .await?
            .into_iter()
            .map(|s| SessionInfo {
                session_id: s.id,
                expires_at: s.expires_at,
                created_at: s.created_at,
                method: s.method,
            })
            .collect())
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
    }
}
