//! Sign-in: the credentials of `session.create` are checked on every
//! attempt, an idempotent replay included, each attempt counted against
//! the user's throttle before it is checked; then the session is minted.

use std::future::Future;

use serde_json::json;

use super::{CreateSession, SessionTokens, amr, credential_context, new_refresh_token};
use crate::crypto::sha256_hex;
use crate::domain::{Domain, Error, ErrorCode, Project, Result, new_id};
use crate::store::entity::{auth_failures, pins, refresh_tokens, sessions, users};
use crate::store::sessions::Reservation;
use crate::vendors::{IdentityVendor, VendorKind};

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
        // handed out only to a caller who just passed the same checks.
        if method == "password" {
            let check = vendor.verify_password(&project.id, &pin.vendor_resource_id, password);
            if !self
                .attempt(project, &user.id, Credential::Password, check)
                .await?
            {
                return Err(Error::new(
                    ErrorCode::AuthInvalidCredentials,
                    "wrong email or password",
                ));
            }
        }
        if input.require_mfa && !user.mfa_enabled {
            return Err(Error::new(
                ErrorCode::AuthMfaNotEnrolled,
                format!("user {} has no MFA factor enrolled", user.id),
            ));
        }
        let with_mfa = user.mfa_enabled || input.require_mfa;
        if with_mfa {
            let code = input.mfa_factor.as_deref().unwrap_or("");
            if code.is_empty() {
                return Err(Error::new(
                    ErrorCode::AuthMfaRequired,
                    "a TOTP code is required in mfa_factor",
                ));
            }
            let check = async {
                Ok(vendor
                    .verify_totp(&project.id, &pin.vendor_resource_id, code)
                    .await?
                    && (vendor.kind() == VendorKind::Native
                        || self.first_use_of_code(project, &user.id, code).await?))
            };
            if !self
                .attempt(project, &user.id, Credential::Mfa, check)
                .await?
            {
                return Err(Error::new(
                    ErrorCode::AuthMfaInvalid,
                    "the TOTP code is wrong or was already used",
                ));
            }
        }

        let (user, method, vendor, pin) = (&user, &method, vendor.as_ref(), &pin);
        self.idempotent(
            project,
            "session.create",
            idempotency_key,
            &input,
            move || self.mint(project, user, method, with_mfa, vendor, pin),
        )
        .await
    }

    /// Counts one attempt at a credential before `check` runs, so that a
    /// burst of concurrent attempts can't outrun the limit; a right
    /// credential (or a check that could not be made) takes its attempt
    /// back. At the limit: `AUTH_TOO_MANY_ATTEMPTS` with `Retry-After`,
    /// whether the credential is right or not.
    async fn attempt(
        &self,
        project: &Project,
        user_id: &str,
        credential: Credential,
        check: impl Future<Output = Result<bool>>,
    ) -> Result<bool> {
        let id = new_id("fail");
        let reservation = self
            .store
            .reserve_attempt(
                auth_failures::Model {
                    id: id.clone(),
                    project_id: project.id.clone(),
                    user_id: user_id.to_owned(),
                    kind: credential.kind().to_owned(),
                    at: self.now(),
                },
                THROTTLE_WINDOW_MS,
                credential.max_failures(),
            )
            .await?;
        match reservation {
            Reservation::Reserved => {}
            Reservation::NoUser => return Err(Error::user_not_found(user_id)),
            Reservation::Throttled { retry_after_ms } => {
                return Err(Error::new(
                    ErrorCode::AuthTooManyAttempts,
                    format!(
                        "too many failed {} attempts for user {user_id}; retry later",
                        credential.kind()
                    ),
                )
                .retry_after((retry_after_ms as u64).div_ceil(1000)));
            }
        }
        let outcome = check.await;
        if !matches!(outcome, Ok(false)) {
            self.store.release_attempt(&id).await?;
        }
        outcome
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

    /// Opens the session (at the vendor too, for a vendor's user) and
    /// stores it, unless the user was deleted meanwhile.
    async fn mint(
        &self,
        project: &Project,
        user: &users::Model,
        method: &str,
        with_mfa: bool,
        vendor: &dyn IdentityVendor,
        pin: &pins::Model,
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
        let refresh = new_refresh_token();
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
            )
            .await?;
        if !stored {
            // The user was deleted while signing in: end what was opened.
            if let Some(vs) = &opened
                && let Err(e) = vendor
                    .revoke_session(&project.id, &vs.vendor_session_id, vs.credential.as_deref())
                    .await
            {
                tracing::warn!(error = %e, "could not end the vendor session of a deleted user");
            }
            return Err(Error::user_not_found(&user.id));
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
