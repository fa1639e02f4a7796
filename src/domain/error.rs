//! The one error type of authmux, with a stable machine code per case.

use crate::store::StoreError;
use crate::vendors::VendorError;

/// Stable, documented error codes. Their strings are the public contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// A field or parameter is missing or malformed.
    InvalidArgument,
    /// Missing, unknown or revoked API key.
    AuthInvalidApiKey,
    /// No such user in the caller's project.
    AuthUserNotFound,
    /// A user with that email already exists in the project.
    AuthUserExists,
    /// Another user holds that phone number (in the project, or at the
    /// vendor holding the user).
    AuthPhoneNumberTaken,
    /// The provider's password policy refused a new password (easy to
    /// guess, breached, too long for bcrypt).
    AuthPasswordRejected,
    /// `mode: "byok"` was asked for without naming a vendor.
    AuthVendorRequired,
    /// The vendor named has no credentials configured.
    VendorNotConfigured,
    /// An idempotency key came back with a different request.
    IdempotencyKeyReused,
    /// An idempotency key is held by a request still running.
    IdempotencyKeyInUse,
    /// The request body is over the size limit.
    PayloadTooLarge,
    /// No such route or resource.
    NotFound,
    /// The route exists but its method is not allowed.
    MethodNotAllowed,
    /// Wrong password (or a user without one).
    AuthInvalidCredentials,
    /// Too many failed sign-ins for this user recently.
    AuthTooManyAttempts,
    /// A TOTP code is required.
    AuthMfaRequired,
    /// The TOTP code is wrong or already used.
    AuthMfaInvalid,
    /// MFA was required for a user with no factor.
    AuthMfaNotEnrolled,
    /// A refresh token that was already rotated came back; the session is revoked.
    AuthRefreshTokenReused,
    /// The session was refreshed too recently.
    AuthRefreshTooFrequent,
    /// Unknown, expired or revoked refresh token or session.
    AuthSessionInvalid,
    /// No such session in the caller's project.
    AuthSessionNotFound,
    /// The vendor holding the resource is not serving now.
    VendorUnavailable,
    /// The vendor answered something authmux can't map (or refused our
    /// credentials).
    VendorError,
    /// The vendor has no way to perform this operation.
    VendorUnsupported,
    /// A refresh token was rotated moments ago by a concurrent refresh.
    AuthRefreshConflict,
    /// Another request is enrolling this user's MFA factor right now.
    AuthMfaEnrollmentInProgress,
    /// The identity provider refused the sign-in, or what it sent does not
    /// check out.
    AuthOauthDenied,
    /// The OAuth state is unknown, expired, used or another project's.
    AuthOauthStateInvalid,
    /// Unlinking would leave the user no way to sign in.
    AuthLastSignInMethod,
    /// The project has as many of something as it may (e.g. webhook
    /// endpoints).
    LimitReached,
    /// The caller's project (or address) is over its request rate.
    RateLimited,
    /// The server is at capacity for this kind of work (e.g. password
    /// hashing); retry after `Retry-After`.
    ServiceBusy,
    /// The operation is not available yet.
    Unimplemented,
    /// Our bug or an outage below us.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and round-trip tests.
    pub const ALL: [ErrorCode; 35] = [
        ErrorCode::InvalidArgument,
        ErrorCode::AuthInvalidApiKey,
        ErrorCode::AuthUserNotFound,
        ErrorCode::AuthUserExists,
        ErrorCode::AuthPhoneNumberTaken,
        ErrorCode::AuthPasswordRejected,
        ErrorCode::AuthVendorRequired,
        ErrorCode::VendorNotConfigured,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyKeyInUse,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AuthInvalidCredentials,
        ErrorCode::AuthTooManyAttempts,
        ErrorCode::AuthMfaRequired,
        ErrorCode::AuthMfaInvalid,
        ErrorCode::AuthMfaNotEnrolled,
        ErrorCode::AuthRefreshTokenReused,
        ErrorCode::AuthRefreshTooFrequent,
        ErrorCode::AuthSessionInvalid,
        ErrorCode::AuthSessionNotFound,
        ErrorCode::VendorUnavailable,
        ErrorCode::VendorError,
        ErrorCode::VendorUnsupported,
        ErrorCode::AuthRefreshConflict,
        ErrorCode::AuthMfaEnrollmentInProgress,
        ErrorCode::AuthOauthDenied,
        ErrorCode::AuthOauthStateInvalid,
        ErrorCode::AuthLastSignInMethod,
        ErrorCode::LimitReached,
        ErrorCode::RateLimited,
        ErrorCode::ServiceBusy,
        ErrorCode::Unimplemented,
        ErrorCode::Internal,
    ];

    /// The code's wire form, e.g. `AUTH_USER_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        self.spec().0
    }

    /// The HTTP status the REST transport answers with.
    pub fn http_status(self) -> u16 {
        self.spec().1
    }

    /// Parses a wire form back into a code.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn spec(self) -> (&'static str, u16) {
        match self {
            ErrorCode::InvalidArgument => ("INVALID_ARGUMENT", 400),
            ErrorCode::AuthInvalidApiKey => ("AUTH_INVALID_API_KEY", 401),
            ErrorCode::AuthUserNotFound => ("AUTH_USER_NOT_FOUND", 404),
            ErrorCode::AuthUserExists => ("AUTH_USER_EXISTS", 409),
            ErrorCode::AuthPhoneNumberTaken => ("AUTH_PHONE_NUMBER_TAKEN", 409),
            ErrorCode::AuthPasswordRejected => ("AUTH_PASSWORD_REJECTED", 422),
            ErrorCode::AuthVendorRequired => ("AUTH_VENDOR_REQUIRED", 400),
            ErrorCode::VendorNotConfigured => ("VENDOR_NOT_CONFIGURED", 409),
            ErrorCode::IdempotencyKeyReused => ("IDEMPOTENCY_KEY_REUSED", 422),
            ErrorCode::IdempotencyKeyInUse => ("IDEMPOTENCY_KEY_IN_USE", 409),
            ErrorCode::PayloadTooLarge => ("PAYLOAD_TOO_LARGE", 413),
            ErrorCode::NotFound => ("NOT_FOUND", 404),
            ErrorCode::MethodNotAllowed => ("METHOD_NOT_ALLOWED", 405),
            ErrorCode::AuthInvalidCredentials => ("AUTH_INVALID_CREDENTIALS", 401),
            ErrorCode::AuthTooManyAttempts => ("AUTH_TOO_MANY_ATTEMPTS", 429),
            ErrorCode::AuthMfaRequired => ("AUTH_MFA_REQUIRED", 401),
            ErrorCode::AuthMfaInvalid => ("AUTH_MFA_INVALID", 401),
            ErrorCode::AuthMfaNotEnrolled => ("AUTH_MFA_NOT_ENROLLED", 409),
            ErrorCode::AuthRefreshTokenReused => ("AUTH_REFRESH_TOKEN_REUSED", 401),
            ErrorCode::AuthRefreshTooFrequent => ("AUTH_REFRESH_TOO_FREQUENT", 429),
            ErrorCode::AuthSessionInvalid => ("AUTH_SESSION_INVALID", 401),
            ErrorCode::AuthSessionNotFound => ("AUTH_SESSION_NOT_FOUND", 404),
            ErrorCode::VendorUnavailable => ("VENDOR_UNAVAILABLE", 503),
            ErrorCode::VendorError => ("VENDOR_ERROR", 502),
            ErrorCode::VendorUnsupported => ("VENDOR_UNSUPPORTED", 400),
            ErrorCode::AuthRefreshConflict => ("AUTH_REFRESH_CONFLICT", 409),
            ErrorCode::AuthMfaEnrollmentInProgress => ("AUTH_MFA_ENROLLMENT_IN_PROGRESS", 409),
            ErrorCode::AuthOauthDenied => ("AUTH_OAUTH_DENIED", 401),
            ErrorCode::AuthOauthStateInvalid => ("AUTH_OAUTH_STATE_INVALID", 400),
            ErrorCode::AuthLastSignInMethod => ("AUTH_LAST_SIGN_IN_METHOD", 409),
            ErrorCode::LimitReached => ("LIMIT_REACHED", 409),
            ErrorCode::RateLimited => ("RATE_LIMITED", 429),
            ErrorCode::ServiceBusy => ("SERVICE_BUSY", 503),
            ErrorCode::Unimplemented => ("UNIMPLEMENTED", 501),
            ErrorCode::Internal => ("INTERNAL", 500),
        }
    }
}

/// An error with its code and a message for the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, naming the field or resource concerned.
    pub message: String,
    /// Seconds after which a retry may succeed (throttling, cooldowns).
    pub retry_after: Option<u64>,
    /// Set when the operation certainly had no effect anywhere (a vendor
    /// that was never reached), so another vendor may be tried.
    pub no_effect: bool,
}

/// Result of a domain call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with any code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            retry_after: None,
            no_effect: false,
        }
    }

    /// The same error, telling the caller when to retry.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// Bad input; the message names the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The user is not in the caller's project.
    pub fn user_not_found(user_id: &str) -> Self {
        Self::new(
            ErrorCode::AuthUserNotFound,
            format!("no user {user_id} in this project"),
        )
    }

    /// An internal failure. The detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::internal(err)
    }
}

impl From<crate::crypto::CryptoError> for Error {
    fn from(err: crate::crypto::CryptoError) -> Self {
        Error::internal(err)
    }
}

impl From<crate::passwords::HashError> for Error {
    fn from(err: crate::passwords::HashError) -> Self {
        match err {
            crate::passwords::HashError::Busy => {
                Error::new(ErrorCode::ServiceBusy, err.to_string()).retry_after(1)
            }
            crate::passwords::HashError::Failed(detail) => Error::internal(detail),
            crate::passwords::HashError::Guessable(_) => {
                Error::new(ErrorCode::AuthPasswordRejected, err.to_string())
            }
        }
    }
}

/// The one place a vendor's failure becomes a public error.
impl From<VendorError> for Error {
    fn from(err: VendorError) -> Self {
        let code = match &err {
            VendorError::Unavailable {
                sent, retry_after, ..
            } => {
                let mut e = Error::new(ErrorCode::VendorUnavailable, err.to_string())
                    .retry_after(retry_after.unwrap_or(1));
                e.no_effect = !sent;
                return e;
            }
            VendorError::Busy => {
                return Error::new(ErrorCode::ServiceBusy, err.to_string()).retry_after(1);
            }
            VendorError::Internal(detail) => return Error::internal(detail),
            VendorError::Exists(_) => ErrorCode::AuthUserExists,
            VendorError::PhoneTaken(_) => ErrorCode::AuthPhoneNumberTaken,
            VendorError::NotFound(_) => ErrorCode::AuthUserNotFound,
            VendorError::Rejected(_) | VendorError::Protocol(_) => ErrorCode::VendorError,
            VendorError::Invalid(_) => ErrorCode::InvalidArgument,
            VendorError::PasswordRejected(_) => ErrorCode::AuthPasswordRejected,
            VendorError::Unsupported(_) => ErrorCode::VendorUnsupported,
            VendorError::NotConfigured(_) => ErrorCode::VendorNotConfigured,
            VendorError::SessionEnded(_) => ErrorCode::AuthSessionInvalid,
            VendorError::MfaRequired(_) => ErrorCode::AuthMfaRequired,
            VendorError::MfaInvalid(_) => ErrorCode::AuthMfaInvalid,
            VendorError::MfaNotEnrolled(_) => ErrorCode::AuthMfaNotEnrolled,
        };
        Error::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn every_code_is_in_the_readmes_table_with_its_status() {
        let readme = include_str!("../../README.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
            assert!(readme.contains(&row), "README's error table lacks {row}");
        }
    }

    #[test]
    fn vendor_failures_map_to_their_public_codes() {
        use crate::vendors::VendorKind::Clerk;
        let cases = [
            (VendorError::Exists(Clerk), ErrorCode::AuthUserExists),
            (
                VendorError::PhoneTaken(Clerk),
                ErrorCode::AuthPhoneNumberTaken,
            ),
            (VendorError::NotFound(Clerk), ErrorCode::AuthUserNotFound),
            (VendorError::Rejected(Clerk), ErrorCode::VendorError),
            (VendorError::Protocol("p".into()), ErrorCode::VendorError),
            (VendorError::Invalid("i".into()), ErrorCode::InvalidArgument),
            (
                VendorError::PasswordRejected("r".into()),
                ErrorCode::AuthPasswordRejected,
            ),
            (
                VendorError::Unsupported("u".into()),
                ErrorCode::VendorUnsupported,
            ),
            (
                VendorError::NotConfigured("n".into()),
                ErrorCode::VendorNotConfigured,
            ),
            (
                VendorError::SessionEnded("s".into()),
                ErrorCode::AuthSessionInvalid,
            ),
            (
                VendorError::MfaRequired("m".into()),
                ErrorCode::AuthMfaRequired,
            ),
            (
                VendorError::MfaInvalid("m".into()),
                ErrorCode::AuthMfaInvalid,
            ),
            (
                VendorError::MfaNotEnrolled("m".into()),
                ErrorCode::AuthMfaNotEnrolled,
            ),
            (VendorError::Busy, ErrorCode::ServiceBusy),
            (
                VendorError::Internal("secret detail".into()),
                ErrorCode::Internal,
            ),
        ];
        for (vendor, code) in cases {
            let e = Error::from(vendor);
            assert_eq!(e.code, code, "{e:?}");
            assert!(!e.message.contains("secret detail"), "{e:?}");
            assert!(!e.no_effect);
        }
        for sent in [false, true] {
            let e = Error::from(VendorError::Unavailable {
                vendor: Clerk,
                reason: "timed out".into(),
                sent,
                retry_after: None,
            });
            assert_eq!(e.code, ErrorCode::VendorUnavailable);
            assert_eq!(e.no_effect, !sent, "only a call never sent may fail over");
            assert_eq!(e.retry_after, Some(1));
            assert!(e.message.contains("clerk: timed out"), "{e:?}");
        }
    }
}
