//! REST ⇄ gRPC: turns `/v1/...` JSON requests into request messages, calls
//! the services in process (through [`direct`]'s generated table, with the
//! same checks as a gRPC call), and turns replies and statuses back into
//! JSON.

pub(crate) mod direct;
pub(crate) use direct::direct_calls;
mod json;
pub mod openapi;
pub mod routes;
mod strict;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use tonic::metadata::MetadataMap;
use tonic_types::StatusExt;

use crate::api::Api;
use crate::domain::ErrorCode;
use crate::telemetry::{RpcMetrics, Transport};
use routes::HttpRoute;

/// The largest REST request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The header carrying the request id (a `HeaderName`, so that looking it
/// up or setting it does not parse the name again on every request).
pub const REQUEST_ID_HEADER: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Headers that describe the REST exchange itself and are not passed on
/// to the service as metadata.
const HOP_HEADERS: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::HOST,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::ACCEPT_ENCODING,
    header::TE,
];

/// A REST error: status, stable code and message.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    code: String,
    message: String,
}

impl RestError {
    /// An error with one of our codes, at its documented HTTP status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RestError {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.as_str().to_owned(),
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The REST form of a gRPC status: our code's status when the
    /// `ErrorInfo` names one, else the standard gRPC→HTTP table.
    fn from_status(status: &tonic::Status) -> Self {
        let reason = status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone());
        match reason.as_deref().and_then(ErrorCode::parse) {
            Some(code) => Self::new(code, status.message()),
            None => RestError {
                status: standard_http_status(status.code()),
                code: reason.unwrap_or_else(|| grpc_code_name(status.code()).to_owned()),
                message: status.message().to_owned(),
            },
        }
    }

    /// The response, with `{"error": {code, message, request_id}}`.
    pub fn into_response_with(self, request_id: Option<&str>) -> Response {
        let body = serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "request_id": request_id,
            }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// The standard gRPC → HTTP status table.
pub fn standard_http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    let n = match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    };
    StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The request id the request-id layer put on a request.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// One REST binding and what serving it needs.
struct Binding {
    route: HttpRoute,
    api: Api,
    metrics: Arc<RpcMetrics>,
    body_timeout: std::time::Duration,
}

/// A path template's bindings, by method.
struct Template {
    bindings: Vec<(http::Method, Binding)>,
}

impl Template {
    /// The binding for `method`; a GET binding also answers HEAD.
    fn binding(&self, method: &http::Method) -> Option<&Binding> {
        let find = |m: &http::Method| self.bindings.iter().find(|(b, _)| b == m);
        find(method)
            .or_else(|| (method == http::Method::HEAD).then(|| find(&http::Method::GET))?)
            .map(|(_, binding)| binding)
    }

    /// The `Allow` header's value: the template's methods.
    fn allow(&self) -> String {
        let methods: Vec<&str> = self.bindings.iter().map(|(m, _)| m.as_str()).collect();
        methods.join(", ")
    }
}

/// The REST routes. Paths are matched with matchit (the matcher axum's
/// router is built on) against the raw path, so a path parameter is read
/// in place and percent-decoded only when it holds an escape: the GET
/// form of `session.verify` carries a token of several hundred bytes in
/// its path, which axum's router would decode and copy on every call.
struct Table {
    paths: matchit::Router<usize>,
    templates: Vec<Template>,
}

/// Builds the REST router: one route per `google.api.http` binding, each
/// calling its method on `api` in process and recording the call in the
/// method's `metrics`. A known path with another method is 405 with an
/// `Allow` header listing the path's methods (a GET binding also answers
/// HEAD); a path no binding has is 404.
pub fn router(
    routes: Vec<HttpRoute>,
    api: Api,
    metrics: impl Fn(&str) -> Arc<RpcMetrics>,
    body_timeout: std::time::Duration,
) -> Router {
    let mut table = Table {
        paths: matchit::Router::new(),
        templates: Vec::new(),
    };
    let mut by_template: BTreeMap<String, usize> = BTreeMap::new();
    for route in routes {
        let at = *by_template
            .entry(route.template.clone())
            .or_insert_with(|| {
                let at = table.templates.len();
                table
                    .paths
                    .insert(route.template.clone(), at)
                    .expect("the route table's templates are distinct and well formed");
                table.templates.push(Template {
                    bindings: Vec::new(),
                });
                at
            });
        table.templates[at].bindings.push((
            route.method.clone(),
            Binding {
                metrics: metrics(route.grpc_path()),
                route,
                api: api.clone(),
                body_timeout,
            },
        ));
    }
    let table = Arc::new(table);
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let table = table.clone();
        async move { Ok::<_, std::convert::Infallible>(table.serve(req).await) }
    }))
}

impl Table {
    async fn serve(&self, req: Request) -> Response {
        // A clone shares the URI's bytes; the parameters borrow from it
        // while the request itself moves on.
        let uri = req.uri().clone();
        let Ok(found) = self.paths.at(uri.path()) else {
            return not_found(req).await;
        };
        let template = &self.templates[*found.value];
        let Some(binding) = template.binding(req.method()) else {
            return method_not_allowed(req, &template.allow());
        };
        let rid = request_id(req.headers()).map(str::to_owned);
        let result = async {
            let decoded = found
                .params
                .iter()
                .map(|(name, raw)| Ok((name, percent_decoded(name, raw)?)))
                .collect::<Result<Vec<_>, RestError>>()?;
            let params: Vec<(&str, &str)> = decoded.iter().map(|(n, v)| (*n, &**v)).collect();
            transcode(binding, req, &params, rid.as_deref()).await
        }
        .await;
        result.unwrap_or_else(|err| err.into_response_with(rid.as_deref()))
    }
}

/// A path parameter as sent, or percent-decoded when it holds an escape;
/// escapes that don't make UTF-8 are refused, naming the parameter (as a
/// query parameter's are).
fn percent_decoded<'a>(name: &str, raw: &'a str) -> Result<Cow<'a, str>, RestError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| RestError::invalid(format!("path parameter {name} is not UTF-8")))
}

fn method_not_allowed(req: Request, allow: &str) -> Response {
    let mut response = RestError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
    .into_response_with(request_id(req.headers()));
    if let Ok(v) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, v);
    }
    response
}

/// Answers a path no route matches.
async fn not_found(req: Request) -> Response {
    RestError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
    .into_response_with(request_id(req.headers()))
}

async fn transcode(
    binding: &Binding,
    req: Request,
    path_params: &[(&str, &str)],
    rid: Option<&str>,
) -> Result<Response, RestError> {
    let route = &binding.route;
    let (mut parts, body) = req.into_parts();
    // A request that has no body (every GET) needs no timer to read it.
    let body = if axum::body::HttpBody::is_end_stream(&body) {
        Bytes::new()
    } else {
        tokio::time::timeout(binding.body_timeout, read_body(&parts.headers, body))
            .await
            .map_err(|_| {
                RestError::invalid(format!(
                    "the request body did not arrive within {} s",
                    binding.body_timeout.as_secs()
                ))
            })??
    };
    let message = json::request_message(
        route,
        path_params,
        parts.uri.query().unwrap_or(""),
        route.body.then_some(&body[..]),
        &parts.headers,
    )?;

    // The headers go on as the call's metadata, and what the outer layers
    // learnt (the caller's project, its address) as its extensions, so
    // nothing is worked out twice.
    let mut headers = std::mem::take(&mut parts.headers);
    for name in &HOP_HEADERS {
        headers.remove(name);
    }
    let request = tonic::Request::from_parts(
        MetadataMap::from_headers(headers),
        std::mem::take(&mut parts.extensions),
        message,
    );
    let started = std::time::Instant::now();
    let result = crate::pb::v1::call_direct(&binding.api, route.grpc_path(), request).await;
    binding.metrics.record(
        Transport::Rest,
        result
            .as_ref()
            .map_or_else(tonic::Status::code, |_| tonic::Code::Ok),
        started.elapsed().as_secs_f64(),
    );
    match result {
        Ok(json) => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response()),
        Err(status) => {
            let mut response = RestError::from_status(&status).into_response_with(rid);
            if let Some(v) = status
                .metadata()
                .get(header::RETRY_AFTER.as_str())
                .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(response)
        }
    }
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, RestError> {
    let too_large = || {
        RestError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is over {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                RestError::invalid(format!("reading the request body: {e}"))
            }
        })
}
