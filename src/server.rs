//! The listener: gRPC and REST on one port, health, reflection, request
//! ids, API-key authentication and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tower::ServiceExt;
use tracing::Instrument;

use crate::api::{Api, to_status};
use crate::domain::{Domain, Project, Throttled, new_id};
pub use crate::listener::Limits;
use crate::pb::DESCRIPTOR_SET;
use crate::pb::v1::audit_service_server::AuditServiceServer;
use crate::pb::v1::consent_service_server::ConsentServiceServer;
use crate::pb::v1::discovery_service_server::DiscoveryServiceServer;
use crate::pb::v1::o_auth_service_server::OAuthServiceServer;
use crate::pb::v1::privacy_service_server::PrivacyServiceServer;
use crate::pb::v1::session_service_server::SessionServiceServer;
use crate::pb::v1::user_service_server::UserServiceServer;
use crate::pb::v1::webhook_service_server::WebhookServiceServer;
use crate::telemetry;
use crate::transcode::{self, MAX_BODY_BYTES, REQUEST_ID_HEADER, request_id};

/// gRPC paths that need no API key.
const OPEN_GRPC_PREFIXES: [&str; 2] = ["/grpc.health.", "/grpc.reflection."];
/// The methods of the open services, for metrics labels.
const KNOWN_OPEN_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The request metrics of each method that metrics name, by gRPC path, and
/// those of every other path (`rpc="unknown"`).
struct KnownMethods {
    by_path: HashMap<String, Arc<telemetry::RpcMetrics>>,
    unknown: telemetry::RpcMetrics,
}

/// A failure while assembling the server.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServerError(String);

/// The assembled service: one router for both transports, and the health
/// reporter and readiness flag to flip at shutdown.
pub struct App {
    /// Serves gRPC and REST.
    pub router: Router,
    /// Reports each service's gRPC health.
    pub health: tonic_health::server::HealthReporter,
    /// Set once shutdown begins: `/readyz` answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// The listener's limits.
    pub limits: Limits,
}

/// How a shutdown unfolds.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownTiming {
    /// How long to keep serving, already reporting not ready, so that
    /// load balancers stop sending traffic first.
    pub drain: Duration,
    /// How long in-flight requests may take to finish after the listener
    /// stops accepting.
    pub grace: Duration,
}

impl Default for ShutdownTiming {
    fn default() -> Self {
        ShutdownTiming {
            drain: Duration::ZERO,
            grace: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct Readiness {
    domain: Arc<Domain>,
    draining: Arc<AtomicBool>,
}

/// Builds the router over `domain` with the default limits.
pub async fn app(domain: Arc<Domain>) -> Result<App, ServerError> {
    app_with(domain, Limits::default()).await
}

/// Builds the router over `domain`, served within `limits`.
pub async fn app_with(domain: Arc<Domain>, limits: Limits) -> Result<App, ServerError> {
    let api = Api::new(domain.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<UserServiceServer<Api>>().await;
    health.set_serving::<SessionServiceServer<Api>>().await;
    health.set_serving::<ConsentServiceServer<Api>>().await;
    health.set_serving::<DiscoveryServiceServer<Api>>().await;
    health.set_serving::<OAuthServiceServer<Api>>().await;
    health.set_serving::<AuditServiceServer<Api>>().await;
    health.set_serving::<PrivacyServiceServer<Api>>().await;
    health.set_serving::<WebhookServiceServer<Api>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServerError(format!("reflection: {e}")))?;

    let pool = transcode::routes::pool(DESCRIPTOR_SET).map_err(ServerError)?;
    let routes = transcode::routes::routes(&pool).map_err(ServerError)?;
    // Metrics are labelled by method only for methods that exist, so that
    // made-up paths can't grow the label set.
    // Each known path maps to its metrics, labelled `Service/Method`.
    let known = Arc::new(KnownMethods {
        by_path: routes
            .iter()
            .map(|r| r.grpc_path().to_owned())
            .chain(KNOWN_OPEN_METHODS.iter().map(|m| (*m).to_owned()))
            .map(|path| {
                let label = path.rsplit_once('.').map_or(&*path, |(_, m)| m).to_owned();
                (path, Arc::new(telemetry::RpcMetrics::new(label)))
            })
            .collect(),
        unknown: telemetry::RpcMetrics::new("unknown"),
    });
    let grpc =
        Routes::new(UserServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES))
            .add_service(
                SessionServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                ConsentServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                DiscoveryServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                OAuthServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                AuditServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                PrivacyServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(
                WebhookServiceServer::new(api.clone()).max_decoding_message_size(MAX_BODY_BYTES),
            )
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .into_axum_router();
    let front_state = Front {
        grpc,
        domain: domain.clone(),
        known: known.clone(),
    };
    // Install the recorder before anything is recorded.
    telemetry::handle();

    let openapi = Arc::new(transcode::openapi::document(&routes));
    let draining = Arc::new(AtomicBool::new(false));

    // REST callers are authenticated before their request is read, and
    // before the transcoder matches its path: without a valid key, the only
    // answer is 401, even to a path that doesn't exist.
    let rest_metrics = |path: &str| {
        known
            .by_path
            .get(path)
            .cloned()
            .expect("every route's method has its metrics")
    };
    let router = transcode::router(routes, api, rest_metrics, limits.body_timeout)
        .layer(from_fn_with_state(domain.clone(), authenticate_rest))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(readyz).with_state(Readiness {
                domain: domain.clone(),
                draining: draining.clone(),
            }),
        )
        .route(
            "/.well-known/jwks.json",
            get(jwks).with_state(domain.clone()),
        )
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration).with_state(domain),
        )
        .route("/metrics", get(metrics))
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .layer(from_fn_with_state(front_state, front));
    Ok(App {
        router,
        health,
        draining,
        limits,
    })
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, ShutdownTiming::default()).await
}

/// Like [`serve`]: when `shutdown` resolves, readiness goes NOT_SERVING
/// (gRPC health and `/readyz`), serving goes on for `timing.drain`, then the
/// listener stops accepting and in-flight requests get `timing.grace` to
/// finish.
pub async fn serve_with(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timing: ShutdownTiming,
) -> std::io::Result<()> {
    let health = app.health.clone();
    let draining = app.draining.clone();
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let mut stopping_rx = stopping.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: not ready any more");
        draining.store(true, Ordering::SeqCst);
        health.set_not_serving::<UserServiceServer<Api>>().await;
        health.set_not_serving::<SessionServiceServer<Api>>().await;
        health.set_not_serving::<ConsentServiceServer<Api>>().await;
        health
            .set_not_serving::<DiscoveryServiceServer<Api>>()
            .await;
        tokio::time::sleep(timing.drain).await;
        tracing::info!("no longer accepting connections");
        let _ = stopping_tx.send(true);
    };
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(timing.grace).await;
    };
    let stop = async move {
        let _ = stopping_rx.wait_for(|s| *s).await;
    };
    tokio::spawn(shutdown);
    crate::listener::run(listener, app.router, app.limits, stop, deadline).await
}

async fn readyz(State(r): State<Readiness>) -> Response {
    if r.draining.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "shutting down"})),
        )
            .into_response();
    }
    match r.domain.store().ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "store unreachable"})),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics.
async fn metrics() -> Response {
    match telemetry::render() {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
            .into_response(),
    }
}

/// What the layer in front of every request needs: the gRPC services, and
/// what counting and admitting a gRPC call takes.
#[derive(Clone)]
struct Front {
    grpc: Router,
    domain: Arc<Domain>,
    known: Arc<KnownMethods>,
}

/// Counts and times every gRPC call (the transcoder records REST calls),
/// refused ones included; a path that names no known method counts as
/// `unknown`.
async fn grpc_call(front: &Front, mut req: Request) -> Response {
    let known = front
        .known
        .by_path
        .get(req.uri().path())
        .map_or(&front.known.unknown, |m| &**m);
    let started = std::time::Instant::now();
    let resp = match admit_grpc(&front.domain, &mut req).await {
        Ok(()) => front
            .grpc
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {}),
        Err(status) => status.into_http::<axum::body::Body>(),
    };
    // Unary errors come trailers-only, with the status in the headers.
    let code = resp
        .headers()
        .get("grpc-status")
        .map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes()));
    known.record(
        telemetry::Transport::Grpc,
        code,
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// The public keys that verify authmux's access tokens.
async fn jwks(State(domain): State<Arc<Domain>>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        axum::Json(domain.keyring().jwks()),
    )
        .into_response()
}

/// OpenID discovery: where the issuer publishes its keys.
async fn openid_configuration(State(domain): State<Arc<Domain>>) -> Response {
    let issuer = domain.issuer().trim_end_matches('/');
    axum::Json(serde_json::json!({
        "issuer": domain.issuer(),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    }))
    .into_response()
}

fn is_grpc(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// In front of every request, as one layer, so that a request pays for one
/// middleware: its request id, then gRPC content types to the gRPC services
/// (counted, timed and admitted here) and everything else on to REST.
async fn front(State(front): State<Front>, req: Request, next: Next) -> Response {
    with_request_id(req, |req| async move {
        if is_grpc(&req) {
            grpc_call(&front, req).await
        } else {
            next.run(req).await
        }
    })
    .await
}

/// Accepts a sane `x-request-id` or makes one, runs `inner` in a span that
/// names it, and echoes it back.
async fn with_request_id<F, Fut>(mut req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let given = request_id(req.headers())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| new_id("req"));
    let mut value = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    // Every id is new, so HTTP/2's header compression must not index it:
    // a table full of one-off ids is searched value by value on every
    // reply (RFC 7541 §7.1.3: never-indexed literals) and saves nothing.
    value.set_sensitive(true);
    req.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %loggable_path(req.uri().path()));
    let mut resp = async {
        tracing::debug!("request received");
        inner(req).await
    }
    .instrument(span)
    .await;
    resp.headers_mut().insert(REQUEST_ID_HEADER, value);
    resp
}

/// The client's address, when the listener recorded it.
fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<crate::listener::PeerAddr>()
        .map(|p| p.0.ip())
}

/// The project whose API key is in the request's `Authorization` header.
/// More than one such header is refused: the field is not a list (RFC
/// 9110 §5.3), and a proxy in front might read another of them than this
/// service does.
async fn authenticate_headers(
    domain: &Domain,
    headers: &http::HeaderMap,
) -> crate::domain::Result<Project> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(crate::domain::Error::new(
            crate::domain::ErrorCode::AuthInvalidApiKey,
            "more than one Authorization header: send one, \"Authorization: Bearer amx_...\"",
        ));
    }
    domain
        .authenticate(first.and_then(|v| v.to_str().ok()))
        .await
}

/// Refuses a REST request without a valid API key before its body or
/// parameters are looked at, and one over its project's rate (or, failing
/// authentication, over its address's rate).
async fn authenticate_rest(
    State(domain): State<Arc<Domain>>,
    mut req: Request,
    next: Next,
) -> Response {
    let refused = match admit(&domain, &mut req).await {
        // The transcoder hands the project on to the service.
        Ok(()) => return next.run(req).await,
        Err(refused) => refused,
    };
    let rid = request_id(req.headers());
    match refused {
        Refused::Key(err) => {
            transcode::RestError::new(err.code, err.message).into_response_with(rid)
        }
        Refused::Throttled(throttled) => {
            let err = throttled.error();
            let mut resp = transcode::RestError::new(err.code, err.message).into_response_with(rid);
            let h = resp.headers_mut();
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(throttled.retry_after_secs()),
            );
            // draft-ietf-httpapi-ratelimit-headers: the policy and what is left.
            let policy = format!(
                "\"{}\";q={};w=1;burst={}",
                throttled.policy, throttled.limit.per_second, throttled.limit.burst
            );
            let left = format!(
                "\"{}\";r=0;t={}",
                throttled.policy,
                throttled.retry_after_secs()
            );
            for (name, value) in [("ratelimit-policy", policy), ("ratelimit", left)] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
            resp
        }
    }
}

/// A request path as logs may show it: a token in the path (the GET form of
/// `session.verify`) is replaced by `<redacted>`.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const VERIFY: &str = "/v1/auth/session/verify/";
    const REDACTED: &str = "/v1/auth/session/verify/<redacted>";
    match path.strip_prefix(VERIFY) {
        Some(rest) if !rest.is_empty() => REDACTED.into(),
        _ => path.into(),
    }
}

/// Why a call was not admitted.
enum Refused {
    /// No valid API key.
    Key(crate::domain::Error),
    /// Over its project's rate or, without a valid key, its address's.
    Throttled(Throttled),
}

/// Resolves the API key of a call (either transport) to its project and
/// admits it within its project's rate, or a failed one within its
/// address's rate. An admitted call carries its `Project`, with the
/// request id, to the service.
async fn admit(domain: &Domain, req: &mut Request) -> Result<(), Refused> {
    match authenticate_headers(domain, req.headers()).await {
        Ok(project) => {
            domain
                .rate_limits()
                .admit_project(&project)
                .map_err(Refused::Throttled)?;
            let request_id = request_id(req.headers()).map(str::to_owned);
            req.extensions_mut().insert(Project {
                request_id,
                ..project
            });
            Ok(())
        }
        Err(err) => match peer(req).map(|ip| domain.rate_limits().admit_anonymous(ip)) {
            Some(Err(throttled)) => Err(Refused::Throttled(throttled)),
            _ => Err(Refused::Key(err)),
        },
    }
}

/// Admits a gRPC call; the open services (health, reflection) need no key.
async fn admit_grpc(domain: &Domain, req: &mut Request) -> Result<(), tonic::Status> {
    let path = req.uri().path();
    if OPEN_GRPC_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return Ok(());
    }
    admit(domain, req).await.map_err(|refused| match refused {
        Refused::Key(err) => to_status(err),
        Refused::Throttled(throttled) => to_status(throttled.error()),
    })
}

#[cfg(test)]
mod tests {
    use super::{REQUEST_ID_HEADER, loggable_path, with_request_id};
    use axum::Router;
    use axum::extract::Request;
    use axum::middleware::{Next, from_fn};
    use axum::routing::get;
    use tower::ServiceExt;

    /// HTTP/2 must send request ids as never-indexed literals: h2 leaves a
    /// sensitive value out of its header table.
    #[tokio::test]
    async fn request_ids_are_never_indexed() {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(from_fn(|req: Request, next: Next| {
                with_request_id(req, |req| next.run(req))
            }));
        for given in [None, Some("trace-123")] {
            let mut req = http::Request::builder().uri("/");
            if let Some(id) = given {
                req = req.header(REQUEST_ID_HEADER, id);
            }
            let resp = app
                .clone()
                .oneshot(req.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            let id = &resp.headers()[REQUEST_ID_HEADER];
            match given {
                Some(given) => assert_eq!(id, given),
                None => assert!(id.to_str().unwrap().starts_with("req_")),
            }
            assert!(id.is_sensitive(), "{id:?} would be indexed");
        }
    }

    #[test]
    fn tokens_in_paths_are_not_logged() {
        assert_eq!(
            loggable_path("/v1/auth/session/verify/eyJhbGciOi.x.y"),
            "/v1/auth/session/verify/<redacted>"
        );
        assert_eq!(
            loggable_path("/v1/auth/user/get/usr_1"),
            "/v1/auth/user/get/usr_1"
        );
        assert_eq!(
            loggable_path("/v1/auth/session/verify"),
            "/v1/auth/session/verify"
        );
    }
}
