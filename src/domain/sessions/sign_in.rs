//! Sign-in: the credentials of `session.create` are checked on every
//! attempt, an idempotent replay included, each attempt counted against
//! the user's throttle before it is checked; then the session is minted.

use std::future::Future;

use serde_json::json;

use super::{CreateSession, SessionTokens, amr, credential_context, new_refresh_token};
use crate::crypto::sha256_hex;
use crate::domain::{Domain, Error, ErrorCode, Project, Result, new_id};
use crate::store::entity::{auth_failures, pins, refresh_tokens, sessions, users};
use crate::store::sessions::{Reservation, SessionStored};
use crate::vendors::{IdentityVendor, PasswordCheck, SignInContext, VendorKind, VendorSession};

/// Failed password attempts allowed per user within [`THROTTLE_WINDOW_MS`].
pub const MAX_PASSWORD_FAILURES: usize = 10;
/// Failed MFA codes allowed per user (and so per factor: a user has one)
/// within [`THROTTLE_WINDOW_MS`].
pub const MAX_MFA_FAILURES: usize = 5;
/// The throttling window.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// How long a TOTP code stays valid (±1 step of 30 s), during which it may
/// not be used again.
const TOTP_WINDOW_MS: i64 = 90_000;
/// The longest `method` accepted.
const MAX_METHOD_LEN: usize = 64;

/// A credential whose attempts are throttled.
#[derive(Clone, Copy, Debug)]
enum Credential {
    Password,
    Mfa,
}

impl Credential {
    fn kind(self) -> &'static str {
        match self {
            Credential::Password => "password",
            Credential::Mfa => "mfa",
        }
    }

    fn max_failures(self) -> usize {
        match self {
            Credential::Password => MAX_PASSWORD_FAILURES,
            Credential::Mfa => MAX_MFA_FAILURES,
        }
    }
}

/// `method` is 1 to 64 visible characters.
fn check_method(method: &str) -> Result<()> {
    if method.is_empty()
        || method.chars().count() > MAX_METHOD_LEN
        || method.chars().any(char::is_control)
    {
        return Err(Error::invalid(format!(
            "method must be 1 to {MAX_METHOD_LEN} characters without control characters"
        )));
    }
    Ok(())
}

impl Domain {
    /// Mints a session for a user.
    pub async fn create_session(
        &self,
        project: &Project,
        input: CreateSession,
        idempotency_key: Option<&str>,
    ) -> Result<SessionTokens> {
        let method = input.method.clone().unwrap_or_else(|| "server".to_owned());
        check_method(&method)?;
        if let Some(ip) = &input.client_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(Error::invalid(format!(
                "client_ip {ip:?} is not an IPv4 or IPv6 address"
            )));
        }
        let password = input.password.as_deref().unwrap_or("");
        if method == "password" && password.is_empty() {
            return Err(Error::invalid(
                "password is required with method \"password\"",
            ));
        }
        let user = match self.user_row(project, &input.user_id).await {
            Ok(user) => user,
            Err(e) => {
                if method == "password" && e.code == ErrorCode::AuthUserNotFound {
                    // Take as long as a wrong password would.
                    let _ = crate::passwords::verify(password.to_owned(), None).await;
                }
                return Err(e);
            }
        };
        let pin = self.user_pin(project, &user.id).await?;
        let vendor = self.pinned_vendor(project, &pin).await?;

        // Every attempt proves the credentials afresh: a stored reply is
        // handed out only to a caller who just passed the same checks. A
        // session the vendor opens on the way is kept for the mint, and
        // ended when the mint does not take it.
        let cx = SignInContext {
            mfa_code: input.mfa_factor.as_deref().filter(|c| !c.is_empty()),
            client_ip: input.client_ip.as_deref(),
        };
        // A sign-in that changes the user at the vendor and sets it back
        // (WorkOS's Magic Auth for an unverified user) holds the user as
        // an update does, so that setting it back can't undo an update
        // that verified the email meanwhile.
        let hold = if vendor.sign_in_writes_user(user.email_verified) {
            self.hold_for_update(project, &user.id, vendor.kind())
                .await?
        } else {
            None
        };
        let opened = std::sync::Mutex::new(None);
        let outcome = self
            .check_and_mint(
                project,
                &input,
                idempotency_key,
                &user,
                &method,
                vendor.as_ref(),
                &pin,
                cx,
                &opened,
            )
            .await;
        let unused = opened.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(vs) = unused {
            self.end_vendor_session(project, vendor.as_ref(), &vs).await;
        }
        self.release_hold(hold).await;
        outcome
    }

    /// The checks of `session.create`, then the mint (or the stored reply
    /// of an earlier attempt under the same idempotency key).
    #[allow(clippy::too_many_arguments)]
    async fn check_and_mint(
        &self,
        project: &Project,
        input: &CreateSession,
        idempotency_key: Option<&str>,
        user: &users::Model,
        method: &str,
        vendor: &dyn IdentityVendor,
        pin: &pins::Model,
        cx: SignInContext<'_>,
        opened: &std::sync::Mutex<Option<VendorSession>>,
    ) -> Result<SessionTokens> {
        let keep = |vs: VendorSession| {
            *opened.lock().unwrap_or_else(|p| p.into_inner()) = Some(vs);
        };
        let mut pending = None;
        if method == "password" {
            let password = input.password.as_deref().unwrap_or("");
            let check = async {
                Ok(
                    match vendor
                        .verify_password(&project.id, &pin.vendor_resource_id, password, cx)
                        .await?
                    {
                        PasswordCheck::Wrong => None,
                        PasswordCheck::Right(vs) => Some(vs.map(keep)),
                        PasswordCheck::MfaPending(p) => {
                            pending = Some(p);
                            Some(None)
                        }
                    },
                )
            };
            if self
                .attempt(project, &user.id, Credential::Password, check)
                .await?
                .is_none()
            {
                return Err(Error::new(
                    ErrorCode::AuthInvalidCredentials,
                    "wrong email or password",
                ));
            }
        }
        if input.require_mfa && !user.mfa_enabled && pending.is_none() {
            return Err(Error::new(
                ErrorCode::AuthMfaNotEnrolled,
                format!("user {} has no MFA factor enrolled", user.id),
            ));
        }
        // A vendor holding the sign-in for a code knows of a factor even
        // when authmux's index has not caught up.
        let with_mfa = user.mfa_enabled || input.require_mfa || pending.is_some();
        if with_mfa {
            let code = cx.mfa_code.ok_or_else(|| {
                Error::new(
                    ErrorCode::AuthMfaRequired,
                    "a TOTP code is required in mfa_factor",
                )
            })?;
            let check = async {
                let right = match &pending {
                    Some(p) => match vendor.complete_mfa(&project.id, p, code).await? {
                        Some(vs) => {
                            keep(vs);
                            true
                        }
                        None => false,
                    },
                    None => {
                        vendor
                            .verify_totp(&project.id, &pin.vendor_resource_id, code)
                            .await?
                    }
                };
                Ok((right
                    && (vendor.kind() == VendorKind::Native
                        || self.first_use_of_code(project, &user.id, code).await?))
                    .then_some(()))
            };
            if self
                .attempt(project, &user.id, Credential::Mfa, check)
                .await?
                .is_none()
            {
                return Err(Error::new(
                    ErrorCode::AuthMfaInvalid,
                    "the TOTP code is wrong or was already used",
                ));
            }
        }

        let about = user.id.clone();
        self.idempotent_about(
            project,
            "session.create",
            idempotency_key,
            input,
            |_| Some(about),
            move || async move {
                let vs = opened.lock().unwrap_or_else(|p| p.into_inner()).take();
                self.mint(project, user, method, with_mfa, vendor, pin, vs, cx)
                    .await
            },
        )
        .await
    }

    /// Ends a vendor session authmux will not hand out; a failure is
    /// logged, the session then ends with its vendor lifetime.
    async fn end_vendor_session(
        &self,
        project: &Project,
        vendor: &dyn IdentityVendor,
        vs: &VendorSession,
    ) {
        if let Err(e) = vendor
            .revoke_session(&project.id, &vs.vendor_session_id, vs.credential.as_deref())
            .await
        {
            tracing::warn!(vendor = %vendor.kind(), error = %e, "could not end an unused vendor session");
        }
    }

    /// Counts one attempt at a credential before `check` runs, so that a
    /// burst of concurrent attempts can't outrun the limit; a right
    /// credential (`Some`, or a check that could not be made) takes its attempt
    /// back. At the limit: `AUTH_TOO_MANY_ATTEMPTS` with `Retry-After`,
    /// whether the credential is right or not.
    async fn attempt<T>(
        &self,
        project: &Project,
        user_id: &str,
        credential: Credential,
        check: impl Future<Output = Result<Option<T>>>,
    ) -> Result<Option<T>> {
        let id = self
            .reserve(
                project,
                user_id,
                credential.kind(),
                THROTTLE_WINDOW_MS,
                credential.max_failures(),
            )
            .await?
            .map_err(|retry_after| {
                Error::new(
                    ErrorCode::AuthTooManyAttempts,
                    format!(
                        "too many failed {} attempts for user {user_id}; retry later",
                        credential.kind()
                    ),
                )
                .retry_after(retry_after)
            })?;
        let outcome = check.await;
        if !matches!(outcome, Ok(None)) {
            self.store.release_attempt(&id).await?;
        }
        outcome
    }

    /// Reserves one of at most `max` slots of `kind` for a user within
    /// `window_ms`, in one write transaction with the user row locked: the
    /// slot's id (for `release_attempt`), or the seconds until one frees.
    pub(crate) async fn reserve(
        &self,
        project: &Project,
        user_id: &str,
        kind: &str,
        window_ms: i64,
        max: usize,
    ) -> Result<std::result::Result<String, u64>> {
        let id = new_id("fail");
        let row = auth_failures::Model {
            id: id.clone(),
            project_id: project.id.clone(),
            user_id: user_id.to_owned(),
            kind: kind.to_owned(),
            at: self.now(),
        };
        match self.store.reserve_attempt(row, window_ms, max).await? {
            Reservation::Reserved => Ok(Ok(id)),
            Reservation::NoUser => Err(Error::user_not_found(user_id)),
            Reservation::Throttled { retry_after_ms } => {
                Ok(Err((retry_after_ms as u64).div_ceil(1000).max(1)))
            }
        }
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
        let hash = self
            .master
            .fingerprint(format!("totp:{user_id}:{code}").as_bytes());
        Ok(self
            .store
            .claim_totp_code(&project.id, user_id, &hash, self.now(), TOTP_WINDOW_MS)
            .await?)
    }

    /// Stores the session, with the vendor session the sign-in opened or
    /// one opened now (for a vendor's user), unless the user was deleted
    /// meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn mint(
        &self,
        project: &Project,
        user: &users::Model,
        method: &str,
        with_mfa: bool,
        vendor: &dyn IdentityVendor,
        pin: &pins::Model,
        opened: Option<VendorSession>,
        cx: SignInContext<'_>,
    ) -> Result<SessionTokens> {
        let now = self.now();
        let mut session = sessions::Model {
            id: new_id("ses"),
            project_id: project.id.clone(),
            user_id: user.id.clone(),
            method: method.to_owned(),
            amr: json!(amr(method, with_mfa)).to_string(),
            created_at: now,
            last_issued_at: now,
            expires_at: now + self.sessions.session_ttl.as_millis() as i64,
            revoked_at: None,
            vendor_credential: None,
            vendor_pending: false,
        };
        // A vendor's user gets a vendor session, pinned there.
        let opened = if vendor.kind() == VendorKind::Native {
            None
        } else {
            let vs = match opened {
                Some(vs) => vs,
                None => {
                    vendor
                        .create_session(&project.id, &pin.vendor_resource_id, cx)
                        .await?
                }
            };
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
        let refresh = new_refresh_token();
        let announce = self.event(
            project,
            crate::domain::EventKind::SessionCreated,
            &user.id,
            json!({
                "session_id": session.id,
                "method": session.method,
                "amr": serde_json::from_str::<serde_json::Value>(&session.amr).unwrap_or_default(),
            }),
        );
        let stored = self
            .store
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
                // The password checked must still be the user's.
                (method == "password").then_some(user.password_version),
                vec![announce],
            )
            .await;
        if !matches!(stored, Ok(SessionStored::Stored)) {
            // Not stored (the user was deleted or its password changed
            // while signing in, or the store failed): end what was opened.
            if let Some(vs) = &opened {
                self.end_vendor_session(project, vendor, vs).await;
            }
            return Err(match stored? {
                SessionStored::PasswordChanged => {
                    Error::new(ErrorCode::AuthInvalidCredentials, "wrong email or password")
                }
                _ => Error::user_not_found(&user.id),
            });
        }
        match opened {
            None => self.tokens_for(&session, refresh, now),
            Some(vs) => Ok(SessionTokens {
                session_id: session.id,
                access_token: vs.access_token,
                refresh_token: refresh,
                expires_at: vs.expires_at,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_method;

    #[test]
    fn methods_are_bounded_and_printable() {
        assert!(check_method("password").is_ok());
        assert!(check_method("").is_err());
        assert!(check_method(&"m".repeat(65)).is_err());
        assert!(check_method("sso\0").is_err());
        assert!(check_method("a\u{7}b").is_err());
    }
}
