//! What can go wrong at (or on the way to) a vendor. Adapters speak only
//! this; the domain turns it into its public error in one place
//! (`From<VendorError> for domain::Error`).

use super::{VendorKind, http};

/// A vendor call's failure, in the terms every adapter shares.
#[derive(Clone, Debug, thiserror::Error)]
pub enum VendorError {
    /// The vendor was not serving. `sent` is false when the request
    /// certainly never reached it, so another vendor may be tried.
    #[error("{vendor}: {reason}")]
    Unavailable {
        /// Which vendor.
        vendor: VendorKind,
        /// What was seen (timeout, 5xx, open circuit).
        reason: String,
        /// Whether the request may have had an effect.
        sent: bool,
        /// Seconds after which a retry may succeed.
        retry_after: Option<u64>,
    },
    /// The email is taken at the vendor.
    #[error("a user with this email already exists at {0}")]
    Exists(VendorKind),
    /// The phone number belongs to another user at the vendor.
    #[error("phone_number belongs to another user at {0}")]
    PhoneTaken(VendorKind),
    /// No such user (or resource) at the vendor.
    #[error("no such user at {0}")]
    NotFound(VendorKind),
    /// The vendor refused authmux's own credentials.
    #[error("{0} rejected authmux's credentials for this project")]
    Rejected(VendorKind),
    /// The vendor refused the caller's input; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The provider's password policy refused a new password; the message
    /// gives its reason.
    #[error("{0}")]
    PasswordRejected(String),
    /// The vendor has no way to do this (in this mode).
    #[error("{0}")]
    Unsupported(String),
    /// The vendor asked for has no credentials.
    #[error("{0}")]
    NotConfigured(String),
    /// The vendor answered something authmux can't map.
    #[error("{0}")]
    Protocol(String),
    /// The end user's session at the vendor has ended.
    #[error("{0}")]
    SessionEnded(String),
    /// The vendor asks for a TOTP code.
    #[error("{0}")]
    MfaRequired(String),
    /// The vendor refused the TOTP code.
    #[error("{0}")]
    MfaInvalid(String),
    /// The vendor requires a factor the user has not enrolled.
    #[error("{0}")]
    MfaNotEnrolled(String),
    /// The built-in provider's password hashing is at capacity.
    #[error("too many password checks are queued; retry shortly")]
    Busy,
    /// A failure on authmux's side (store, crypto); the detail is logged,
    /// never sent.
    #[error("{0}")]
    Internal(String),
}

/// Result of a vendor call.
pub type Result<T, E = VendorError> = std::result::Result<T, E>;

impl VendorError {
    /// An internal failure, from anything displayable.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        VendorError::Internal(detail.to_string())
    }
}

impl From<crate::passwords::HashError> for VendorError {
    fn from(e: crate::passwords::HashError) -> Self {
        match e {
            crate::passwords::HashError::Busy => VendorError::Busy,
            crate::passwords::HashError::Failed(detail) => VendorError::Internal(detail),
            crate::passwords::HashError::Guessable(_) => {
                VendorError::PasswordRejected(e.to_string())
            }
        }
    }
}

impl From<crate::store::StoreError> for VendorError {
    fn from(e: crate::store::StoreError) -> Self {
        VendorError::internal(e)
    }
}

impl From<crate::crypto::CryptoError> for VendorError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        VendorError::internal(e)
    }
}

/// `Unavailable` for a call that found the vendor not serving.
pub fn unavailable(vendor: VendorKind, e: http::CallError) -> VendorError {
    let http::CallError::Unavailable {
        reason,
        retry_after,
        sent,
        ..
    } = e;
    VendorError::Unavailable {
        vendor,
        reason,
        sent,
        retry_after,
    }
}

/// What a vendor said is held by another user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// The email address.
    Email,
    /// The phone number.
    Phone,
}

/// What an adapter read from a vendor's error reply.
pub struct VendorFailure<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The vendor said the email or phone number belongs to another user.
    pub taken: Option<Taken>,
    /// The vendor said there is no such user (besides a plain 404).
    pub not_found: bool,
    /// A 401/403 about the end user's credentials, not authmux's.
    pub user_credentials: bool,
    /// The vendor's error code, for the message.
    pub code: &'a str,
    /// The vendor's message.
    pub message: &'a str,
}

/// The error codes with which a vendor's password policy refuses a new
/// password: Clerk's (clerk/javascript's en-US localizations key their
/// messages by them), WorkOS's (spec, users create and update, 400) and
/// GoTrue's (internal/api/apierrors/errorcode.go).
const PASSWORD_POLICY_CODES: [&str; 6] = [
    "form_password_pwned",
    "form_password_length_too_short",
    "form_password_size_in_bytes_exceeded",
    "form_password_not_strong_enough",
    "password_strength_error",
    "weak_password",
];

/// Maps a vendor's error reply the same way for every vendor; never echoes
/// a credential.
pub fn vendor_error(kind: VendorKind, f: VendorFailure<'_>) -> VendorError {
    match f.taken {
        Some(Taken::Email) => return VendorError::Exists(kind),
        Some(Taken::Phone) => return VendorError::PhoneTaken(kind),
        None => {}
    }
    if matches!(f.status, 400 | 422) && PASSWORD_POLICY_CODES.contains(&f.code) {
        return VendorError::PasswordRejected(format!("{kind}: {}", f.message));
    }
    match f.status {
        404 => VendorError::NotFound(kind),
        _ if f.not_found => VendorError::NotFound(kind),
        401 | 403 if !f.user_credentials => VendorError::Rejected(kind),
        400 | 401 | 403 | 422 => VendorError::Invalid(format!("{kind}: {}", f.message)),
        s => VendorError::Protocol(format!("{kind} answered {s} ({})", f.code)),
    }
}

/// Reads a vendor's reply into its typed shape; one that does not fit is
/// a protocol error naming the operation (never echoing the reply, which
/// may hold tokens).
pub fn decode<T: serde::de::DeserializeOwned>(
    kind: VendorKind,
    op: &str,
    reply: serde_json::Value,
) -> Result<T> {
    serde_json::from_value(reply).map_err(|e| {
        let class = match e.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "a field missing or of the wrong type",
            serde_json::error::Category::Eof => "truncated",
        };
        VendorError::Protocol(format!(
            "{kind} answered {op} with an unexpected reply ({class})"
        ))
    })
}

/// A delete or revoke whose target is already gone at the vendor has had
/// its effect.
pub fn gone_is_done<T>(r: Result<T>) -> Result<()> {
    match r {
        Err(VendorError::NotFound(_)) => Ok(()),
        other => other.map(drop),
    }
}

/// What a server mint answers when the code or link it was given is for
/// another user (the vendor signs up an email no user has): the user's own
/// lookup's error (`NotFound` once it was deleted), or else its email
/// changed since it was read.
pub async fn mint_for_another_user<T>(
    kind: VendorKind,
    lookup: impl std::future::Future<Output = Result<T>>,
) -> VendorError {
    match lookup.await {
        Err(e) => e,
        Ok(_) => VendorError::Invalid(format!(
            "{kind}: the user's email changed during the sign-in; try again"
        )),
    }
}

/// `refused`, or `NotFound` when the user's lookup finds it gone: a code
/// or link refused once it was made most likely went with its user.
pub async fn unless_gone<T>(
    refused: VendorError,
    lookup: impl std::future::Future<Output = Result<T>>,
) -> VendorError {
    match lookup.await {
        Err(gone @ VendorError::NotFound(_)) => gone,
        _ => refused,
    }
}

/// `Unsupported` for an operation a vendor has no way to perform.
pub fn unsupported(kind: VendorKind, capability: &str) -> VendorError {
    VendorError::Unsupported(format!(
        "{capability} is not supported for users held by {kind}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Reply {
        #[allow(dead_code)]
        id: String,
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_a_protocol_error_without_its_content() {
        let e = decode::<Reply>(
            VendorKind::Clerk,
            "get_user",
            serde_json::json!({"jwt": "secret.token.value"}),
        )
        .unwrap_err();
        let VendorError::Protocol(message) = e else {
            panic!("{e:?}")
        };
        assert!(message.contains("get_user"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert!(decode::<Reply>(VendorKind::Clerk, "x", serde_json::json!({"id": "u"})).is_ok());
    }

    #[test]
    fn a_password_policy_refusal_is_told_apart_from_other_bad_input() {
        let failure = |status, code| VendorFailure {
            status,
            taken: None,
            not_found: false,
            user_credentials: false,
            code,
            message: "why",
        };
        for (status, code) in [
            (422, "form_password_pwned"),
            (422, "form_password_size_in_bytes_exceeded"),
            (400, "password_strength_error"),
            (422, "weak_password"),
        ] {
            let e = vendor_error(VendorKind::Clerk, failure(status, code));
            assert!(
                matches!(&e, VendorError::PasswordRejected(m) if m == "clerk: why"),
                "{code}: {e:?}"
            );
        }
        let other = vendor_error(VendorKind::Clerk, failure(422, "form_param_format_invalid"));
        assert!(matches!(other, VendorError::Invalid(_)), "{other:?}");
    }
}
