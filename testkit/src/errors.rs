//! Error replies of either transport, in one shape.

use authmux::api::grpc_code;
use authmux::domain::ErrorCode;
use serde_json::Value;

/// An error reply, from either transport.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// REST: the HTTP status. gRPC: the canonical code as a number.
    pub status: u16,
    pub request_id: Option<String>,
    /// The Retry-After header (REST) or `retry-after` metadata (gRPC).
    pub retry_after: Option<u64>,
}

/// Reads a REST reply; on error checks the body shape and that the HTTP
/// status is the one documented for the code.
pub async fn rest_result(resp: reqwest::Response) -> Result<Value, ApiError> {
    let status = resp.status().as_u16();
    let header_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let retry_after = resp.headers().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse::<u64>()
            .expect("Retry-After in seconds")
    });
    assert!(header_id.is_some(), "every reply carries x-request-id");
    let body: Value = resp.json().await.expect("JSON body");
    if status == 200 {
        return Ok(body);
    }
    let err = &body["error"];
    let code = err["code"].as_str().expect("error.code").to_owned();
    let expected = ErrorCode::parse(&code).map(|c| c.http_status());
    assert_eq!(expected, Some(status), "HTTP status of {code}: {body}");
    let request_id = err["request_id"].as_str().map(str::to_owned);
    assert_eq!(request_id, header_id, "body and header request ids agree");
    Err(ApiError {
        code,
        message: err["message"].as_str().expect("error.message").to_owned(),
        status,
        request_id,
        retry_after,
    })
}

/// Reads a gRPC error; checks the ErrorInfo reason and canonical code.
pub fn grpc_error(status: tonic::Status) -> ApiError {
    use tonic_types::StatusExt;
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("status without ErrorInfo: {status:?}"));
    assert_eq!(info.domain, authmux::api::ERROR_DOMAIN);
    let code =
        ErrorCode::parse(&info.reason).unwrap_or_else(|| panic!("unknown reason {}", info.reason));
    assert_eq!(
        status.code(),
        grpc_code(code),
        "gRPC code of {}",
        info.reason
    );
    let retry_after = status.metadata().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse::<u64>()
            .expect("retry-after in seconds")
    });
    ApiError {
        code: info.reason,
        message: status.message().to_owned(),
        status: status.code() as u16,
        request_id: None,
        retry_after,
    }
}

/// Unwraps an error reply, failing on success.
pub fn expect_err(r: Result<Value, ApiError>, code: &str) -> ApiError {
    match r {
        Ok(v) => panic!("expected {code}, got {v}"),
        Err(e) => {
            assert_eq!(e.code, code, "{e:?}");
            e
        }
    }
}
