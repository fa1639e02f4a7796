//! tonic service implementations: proto in, domain call, proto out.

mod audit;
pub mod codec;
mod consent;
mod convert;
mod discovery;
mod oauth;
pub mod rules;
mod sessions;
mod users;
mod webhooks;

use std::sync::Arc;

use tonic::{Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{Domain, Error, ErrorCode, Project};

pub use convert::{json_to_struct, number_to_json, struct_to_json};

/// The gRPC metadata key that may carry an idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The `ErrorInfo.domain` of every error authmux returns.
pub const ERROR_DOMAIN: &str = "authmux.dev";

/// Implements every authmux gRPC service over the domain.
#[derive(Clone)]
pub struct Api {
    domain: Arc<Domain>,
}

impl Api {
    /// Services over `domain`.
    pub fn new(domain: Arc<Domain>) -> Self {
        Api { domain }
    }
}

/// The gRPC code of an error code.
pub fn grpc_code(code: ErrorCode) -> tonic::Code {
    use tonic::Code;
    match code {
        ErrorCode::InvalidArgument
        | ErrorCode::AuthVendorRequired
        | ErrorCode::AuthPasswordRejected => Code::InvalidArgument,
        ErrorCode::AuthInvalidApiKey
        | ErrorCode::AuthInvalidCredentials
        | ErrorCode::AuthMfaRequired
        | ErrorCode::AuthMfaInvalid
        | ErrorCode::AuthRefreshTokenReused
        | ErrorCode::AuthOauthDenied
        | ErrorCode::AuthSessionInvalid => Code::Unauthenticated,
        ErrorCode::AuthOauthStateInvalid => Code::InvalidArgument,
        ErrorCode::AuthLastSignInMethod | ErrorCode::LimitReached => Code::FailedPrecondition,
        ErrorCode::AuthTooManyAttempts
        | ErrorCode::AuthRefreshTooFrequent
        | ErrorCode::RateLimited => Code::ResourceExhausted,
        ErrorCode::AuthRefreshConflict | ErrorCode::AuthMfaEnrollmentInProgress => Code::Aborted,
        ErrorCode::ServiceBusy => Code::Unavailable,
        ErrorCode::AuthMfaNotEnrolled => Code::FailedPrecondition,
        ErrorCode::AuthSessionNotFound => Code::NotFound,
        ErrorCode::AuthUserNotFound | ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AuthUserExists | ErrorCode::AuthPhoneNumberTaken => Code::AlreadyExists,
        ErrorCode::VendorNotConfigured | ErrorCode::IdempotencyKeyReused => {
            Code::FailedPrecondition
        }
        ErrorCode::IdempotencyKeyInUse => Code::Aborted,
        ErrorCode::PayloadTooLarge => Code::ResourceExhausted,
        ErrorCode::MethodNotAllowed | ErrorCode::Unimplemented => Code::Unimplemented,
        ErrorCode::VendorUnavailable => Code::Unavailable,
        ErrorCode::VendorError => Code::Internal,
        ErrorCode::VendorUnsupported => Code::FailedPrecondition,
        ErrorCode::Internal => Code::Internal,
    }
}

/// The gRPC status of a domain error: canonical code plus an `ErrorInfo`
/// whose reason is the stable code.
/// A `retry-after` (seconds) travels as metadata, which the transcoder
/// turns into the HTTP header.
pub fn to_status(err: Error) -> Status {
    let mut details = ErrorDetails::with_error_info(err.code.as_str(), ERROR_DOMAIN, []);
    if let Some(secs) = err.retry_after {
        details.set_retry_info(Some(std::time::Duration::from_secs(secs)));
    }
    let mut status = Status::with_error_details(grpc_code(err.code), err.message, details);
    if let Some(secs) = err.retry_after {
        status
            .metadata_mut()
            .insert("retry-after", secs.to_string().parse().expect("digits"));
    }
    status
}

/// The project the auth layer attached to the request.
fn project<T>(req: &Request<T>) -> Result<Project, Status> {
    req.extensions().get::<Project>().cloned().ok_or_else(|| {
        to_status(Error::new(
            ErrorCode::AuthInvalidApiKey,
            "missing API key: send \"Authorization: Bearer amx_...\"",
        ))
    })
}

/// The idempotency key from the body field or the metadata; both must
/// agree. More than one key in the metadata is refused, as it would be
/// unclear which one a replay is checked against.
fn idempotency_key<T>(req: &Request<T>, field: Option<&str>) -> Result<Option<String>, Status> {
    let mut values = req.metadata().get_all(IDEMPOTENCY_HEADER).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(to_status(Error::invalid(
            "more than one Idempotency-Key header: send one",
        )));
    }
    let header = match first {
        Some(v) => Some(v.to_str().map_err(|_| {
            to_status(Error::invalid(
                "the Idempotency-Key header must be visible ASCII",
            ))
        })?),
        None => None,
    };
    match (field, header) {
        (Some(f), Some(h)) if f != h => Err(to_status(Error::invalid(
            "idempotency_key in the body differs from the Idempotency-Key header",
        ))),
        (Some(f), _) => Ok(Some(f.to_owned())),
        (None, h) => Ok(h.map(str::to_owned)),
    }
}

/// Shorthand for a domain result in a service method.
type ApiResult<T> = Result<tonic::Response<T>, Status>;

fn reply<T>(result: crate::domain::Result<T>) -> ApiResult<T> {
    result.map(tonic::Response::new).map_err(to_status)
}
