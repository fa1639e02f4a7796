//! Vendor emulators that follow the vendors' published API specs
//! (`../shared/vendor-specs/`), with faults injectable on demand.

pub mod apple;
pub mod clerk;
pub mod github;
pub mod supabase;
pub mod workos;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The most bytes of a password bcrypt hashes (Clerk and GoTrue hash with
/// it).
pub const BCRYPT_MAX_BYTES: usize = 72;

/// Passwords every breach corpus holds: Have I Been Pwned's Pwned
/// Passwords counts each of them millions of times. Clerk refuses a
/// password "in any list of hacked passwords" (bapi-2026-05-12.yml,
/// CreateUser `password`) and WorkOS one "flagged by haveibeenpwned"
/// (docs, AuthKit Email + Password, on by default). An emulator can't ask
/// the breach service, so it knows these few; tests that want a refusal
/// use one of them.
pub const BREACHED_PASSWORDS: [&str; 6] = [
    "password123",
    "12345678",
    "qwertyuiop",
    "iloveyou123",
    "password1234",
    "1q2w3e4r5t",
];

/// Whether a password is one the breach corpus holds.
pub fn breached(password: &str) -> bool {
    BREACHED_PASSWORDS.contains(&password)
}

/// Faults the next requests will meet.
#[derive(Default, Debug)]
pub struct Faults {
    /// Answer this many requests with 500.
    pub fail_next: u32,
    /// Answer this many requests with 429 ...
    pub rate_limit_next: u32,
    /// ... carrying this `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// Delay every request by this much.
    pub latency: Duration,
    /// Delay this many replies by `latency_after` after handling (the
    /// effect happens, the caller may time out).
    pub slow_replies: u32,
    /// How long a slow reply waits.
    pub latency_after: Duration,
    /// Refuse every credential.
    pub reject_credentials: bool,
    /// Requests seen, faulty or not.
    pub requests: u32,
    /// An `X-Request-ID` every reply carries, as the vendors' do.
    pub request_id: Option<String>,
}

/// Shared fault settings.
pub type SharedFaults = Arc<Mutex<Faults>>;

/// What the fault layer decided for one request.
pub enum Fault {
    None,
    Status(axum::http::StatusCode, Option<String>),
    RejectCredentials,
}

/// Applies the configured faults before the emulator handles a request.
pub async fn inject(
    State(faults): State<SharedFaults>,
    req: Request,
    next: Next,
    error_body: fn(u16, &str, &str) -> axum::Json<serde_json::Value>,
) -> Response {
    let (latency, latency_after, fault, request_id) = {
        let mut f = faults.lock().unwrap();
        f.requests += 1;
        let fault = if f.reject_credentials {
            Fault::RejectCredentials
        } else if f.fail_next > 0 {
            f.fail_next -= 1;
            Fault::Status(axum::http::StatusCode::INTERNAL_SERVER_ERROR, None)
        } else if f.rate_limit_next > 0 {
            f.rate_limit_next -= 1;
            Fault::Status(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                f.retry_after.clone(),
            )
        } else {
            Fault::None
        };
        let after = if f.slow_replies > 0 && matches!(fault, Fault::None) {
            f.slow_replies -= 1;
            f.latency_after
        } else {
            Duration::ZERO
        };
        (f.latency, after, fault, f.request_id.clone())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut resp = match fault {
        Fault::None => {
            let resp = next.run(req).await;
            if !latency_after.is_zero() {
                tokio::time::sleep(latency_after).await;
            }
            resp
        }
        Fault::RejectCredentials => (
            axum::http::StatusCode::UNAUTHORIZED,
            error_body(401, "authentication_invalid", "Invalid authentication"),
        )
            .into_response(),
        Fault::Status(status, retry_after) => {
            let code = if status.as_u16() == 429 {
                "too_many_requests"
            } else {
                "internal_clerk_error"
            };
            let mut resp =
                (status, error_body(status.as_u16(), code, "injected fault")).into_response();
            if let Some(v) = retry_after {
                resp.headers_mut().insert("retry-after", v.parse().unwrap());
            }
            resp
        }
    };
    if let Some(id) = request_id {
        resp.headers_mut()
            .insert("x-request-id", id.parse().unwrap());
    }
    resp
}

/// A running emulator.
pub struct Running {
    /// Its base URL.
    pub base_url: String,
    /// Its faults.
    pub faults: SharedFaults,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// Stops listening: later connections are refused.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u32 {
        self.faults.lock().unwrap().requests
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves the router `build` makes (given its own base URL) on a loopback
/// port under `prefix`.
pub async fn serve(
    build: impl FnOnce(&str) -> axum::Router,
    prefix: &str,
    faults: SharedFaults,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = build(&format!("http://{addr}{prefix}"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Running {
        base_url: format!("http://{addr}{prefix}"),
        faults,
        stop: Some(tx),
    }
}
