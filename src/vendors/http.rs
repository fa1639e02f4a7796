//! Calls to vendors: connect and total timeouts, retries with jittered
//! backoff for idempotent calls, `Retry-After` honoured (seconds or HTTP
//! date, capped), a circuit breaker per (vendor, credentials), and a window
//! of recent latencies for discovery.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

/// Timeouts, retries and breaker thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole attempt.
    pub timeout: Duration,
    /// Attempts of an idempotent call (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubles per attempt, with full jitter.
    pub backoff: Duration,
    /// The longest `Retry-After` honoured by waiting; longer is reported.
    pub retry_after_cap: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker refuses calls before letting a probe through.
    pub breaker_cooldown: Duration,
    /// The lifetime to ask for vendor session tokens where the vendor lets
    /// the caller choose (Clerk): authmux's access-token lifetime, so a
    /// token lives until its session may be refreshed.
    pub session_token_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(100),
            retry_after_cap: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(10),
            session_token_ttl: Duration::from_secs(900),
        }
    }
}

/// Why a vendor call did not produce a reply to map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Connect error, timeout, 5xx, 429 or an open breaker: the vendor is
    /// not serving now. `retry_after` in seconds when known.
    #[error("vendor unavailable: {reason}")]
    Unavailable {
        /// What happened (no secrets).
        reason: String,
        /// When to try again, seconds.
        retry_after: Option<u64>,
        /// Whether a request may have reached the vendor (and so may have
        /// had an effect). False for connect errors and an open circuit.
        sent: bool,
        /// Whether the last answer was the vendor's 429.
        rate_limited: bool,
    },
}

/// The breaker's state, as discovery reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// One probe is allowed through.
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

/// An HTTP client for one (vendor, credentials) pair.
pub struct VendorHttp {
    vendor: &'static str,
    client: reqwest::Client,
    policy: Policy,
    /// Whether the last health probe succeeded (true until one fails).
    probe_ok: std::sync::atomic::AtomicBool,
    breaker: Mutex<Breaker>,
    latencies: Mutex<VecDeque<Duration>>,
}

const LATENCY_WINDOW: usize = 128;

/// Parses `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    // A vendor's HTTP date is measured against the real wall clock: the
    // vendor's clock, not the domain's, decides when it takes requests.
    #[allow(clippy::disallowed_methods)]
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

impl VendorHttp {
    /// A client for `vendor` (a metrics label) with `policy`.
    pub fn new(vendor: &'static str, policy: Policy) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .build()
            .expect("a reqwest client with timeouts");
        VendorHttp {
            vendor,
            client,
            policy,
            probe_ok: std::sync::atomic::AtomicBool::new(true),
            breaker: Mutex::new(Breaker {
                failures: 0,
                opened_at: None,
                probing: false,
            }),
            latencies: Mutex::new(VecDeque::with_capacity(LATENCY_WINDOW)),
        }
    }

    /// The underlying client, to build requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match b.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() < self.policy.breaker_cooldown => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether the last health probe succeeded.
    pub fn probe_ok(&self) -> bool {
        self.probe_ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Probes the vendor with one cheap request (no retry); a 2xx answer
    /// is healthy. The outcome also feeds the breaker.
    pub async fn probe(&self, url: &str, headers: &[(&str, String)]) -> bool {
        let ok = matches!(
            self.request("health_probe", Retry::Never, reqwest::Method::GET, url, headers, None)
                .await,
            Ok((status, _)) if status.is_success()
        );
        self.probe_ok
            .store(ok, std::sync::atomic::Ordering::Relaxed);
        ok
    }

    /// Median latency of recent calls, in milliseconds.
    pub fn p50_ms(&self) -> Option<f64> {
        let l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        if l.is_empty() {
            return None;
        }
        let mut v: Vec<Duration> = l.iter().copied().collect();
        v.sort_unstable();
        Some(v[v.len() / 2].as_secs_f64() * 1000.0)
    }

    /// Whether a call may go out now (false while the breaker is open);
    /// in half-open state only one probe is let through at a time.
    fn admit(&self) -> Result<(), CallError> {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = b.opened_at else {
            return Ok(());
        };
        let elapsed = at.elapsed();
        if elapsed < self.policy.breaker_cooldown || b.probing {
            let left = self.policy.breaker_cooldown.saturating_sub(elapsed);
            return Err(CallError::Unavailable {
                reason: "circuit open after repeated failures".into(),
                retry_after: Some(left.as_secs().max(1)),
                sent: false,
                rate_limited: false,
            });
        }
        b.probing = true;
        Ok(())
    }

    fn succeeded(&self, took: Duration) {
        crate::telemetry::breaker(self.vendor, false);
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.failures = 0;
        b.opened_at = None;
        b.probing = false;
        drop(b);
        let mut l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() == LATENCY_WINDOW {
            l.pop_front();
        }
        l.push_back(took);
    }

    fn failed(&self) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.failures += 1;
        if b.probing || b.failures >= self.policy.breaker_threshold {
            b.opened_at = Some(Instant::now());
            crate::telemetry::breaker(self.vendor, true);
        }
        b.probing = false;
    }

    /// Sends the request `build` makes for the named operation. Returns
    /// the status and JSON body of any reply other than 429/5xx; retries
    /// calls that are safe to repeat. Every failure is logged once, when
    /// the call gives up or the vendor refuses: vendor, operation, status,
    /// the vendor's error code and request id, never a credential.
    pub async fn call(
        &self,
        op: &'static str,
        retry: Retry,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(StatusCode, Value), CallError> {
        let result = self.attempt(op, retry, build).await;
        match &result {
            Ok((status, body)) if !status.is_success() => {
                tracing::info!(
                    vendor = self.vendor,
                    operation = op,
                    status = status.as_u16(),
                    code = vendor_code(body),
                    request_id = request_id(body),
                    "vendor refused the call"
                );
            }
            Err(CallError::Unavailable { reason, sent, .. }) => {
                tracing::warn!(
                    vendor = self.vendor,
                    operation = op,
                    reason = %reason,
                    sent,
                    "vendor call failed"
                );
            }
            Ok(_) => {}
        }
        result
    }

    async fn attempt(
        &self,
        op: &'static str,
        retry: Retry,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(StatusCode, Value), CallError> {
        let attempts = match retry {
            Retry::Safe => self.policy.attempts.max(1),
            Retry::Never | Retry::NeverRefusesWith500(_) => 1,
        };
        let mut last = CallError::Unavailable {
            reason: "no attempt made".into(),
            retry_after: None,
            sent: false,
            rate_limited: false,
        };
        let mut sent = false;
        for attempt in 0..attempts {
            if let Err(CallError::Unavailable {
                reason,
                retry_after,
                ..
            }) = self.admit()
            {
                return Err(CallError::Unavailable {
                    reason,
                    retry_after,
                    sent,
                    rate_limited: false,
                });
            }
            let started = Instant::now();
            let sent_result = build(&self.client).send().await;
            let outcome = match &sent_result {
                Ok(r) if r.status().is_success() => "ok",
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => "rate_limited",
                Ok(r) if r.status().is_server_error() => "server_error",
                Ok(_) => "client_error",
                Err(e) if e.is_timeout() => "timeout",
                Err(_) => "connect_error",
            };
            crate::telemetry::vendor_call(
                self.vendor,
                op,
                outcome,
                started.elapsed().as_secs_f64(),
            );
            let wait = match sent_result {
                Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                    // Rate limited: the vendor is healthy, just busy.
                    self.succeeded(started.elapsed());
                    let after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    // A 429 was refused before any effect.
                    last = CallError::Unavailable {
                        reason: "rate limited by the vendor".into(),
                        retry_after: after.map(|d| d.as_secs().max(1)),
                        sent,
                        rate_limited: true,
                    };
                    match after {
                        Some(d) if d > self.policy.retry_after_cap => return Err(last),
                        Some(d) => d,
                        None => self.backoff(attempt),
                    }
                }
                Ok(resp) if resp.status().is_server_error() => {
                    let status = resp.status();
                    if let Retry::NeverRefusesWith500(is_refusal) = retry
                        && status == StatusCode::INTERNAL_SERVER_ERROR
                    {
                        let body = resp.bytes().await.ok();
                        let body = body
                            .and_then(|b| serde_json::from_slice(&b).ok())
                            .unwrap_or(Value::Null);
                        if is_refusal(&body) {
                            self.succeeded(started.elapsed());
                            return Ok((status, body));
                        }
                    }
                    self.failed();
                    sent = true;
                    last = CallError::Unavailable {
                        reason: format!("vendor answered {status}"),
                        retry_after: None,
                        sent,
                        rate_limited: false,
                    };
                    self.backoff(attempt)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let id = ["x-request-id", "x-sb-request-id", "x-clerk-trace-id"]
                        .iter()
                        .find_map(|h| resp.headers().get(*h)?.to_str().ok())
                        .map(str::to_owned);
                    let body = resp.bytes().await;
                    self.succeeded(started.elapsed());
                    let mut body = match body {
                        Ok(b) if b.is_empty() => Value::Null,
                        Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
                        Err(_) => Value::Null,
                    };
                    if !status.is_success()
                        && let (Some(id), Some(map)) = (id, body.as_object_mut())
                    {
                        map.entry(REQUEST_ID_KEY).or_insert(Value::String(id));
                    }
                    return Ok((status, body));
                }
                Err(e) => {
                    self.failed();
                    sent |= !e.is_connect();
                    last = CallError::Unavailable {
                        reason: if e.is_timeout() {
                            "vendor timed out".into()
                        } else if e.is_connect() {
                            "cannot connect to the vendor".into()
                        } else {
                            "vendor connection failed".into()
                        },
                        retry_after: None,
                        sent,
                        rate_limited: false,
                    };
                    self.backoff(attempt)
                }
            };
            if attempt + 1 < attempts {
                tokio::time::sleep(wait).await;
            }
        }
        Err(last)
    }

    /// Sends a JSON request with `headers` for the named operation; the
    /// reply's status and JSON body.
    pub async fn request(
        &self,
        op: &'static str,
        retry: Retry,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), CallError> {
        self.call(op, retry, |c| {
            let mut rb = c.request(method.clone(), url);
            for (name, value) in headers {
                rb = rb.header(*name, value);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            rb
        })
        .await
    }

    /// The wait after failed attempt `attempt` (from 0): full jitter up to
    /// the policy's first backoff, doubled per attempt.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.policy.backoff * 2u32.saturating_pow(attempt);
        let jittered = rand::thread_rng().gen_range(0..=ceiling.as_millis() as u64);
        Duration::from_millis(jittered)
    }
}

/// Whether a call may be sent again after a failure that may have had
/// its effect.
#[derive(Clone, Copy, Debug)]
pub enum Retry {
    /// Repeating it changes nothing (reads, puts, deletes, revokes).
    Safe,
    /// Repeating it could act twice (creates, grants, one-time codes).
    Never,
    /// Sent once, and a 500 whose body the function recognizes is the
    /// vendor's refusal of this input, not an outage (GoTrue answers a
    /// UNIQUE column's violation with 500): it comes back as a reply, like
    /// a 4xx, and does not count against the breaker. Any other 5xx is an
    /// outage as usual.
    NeverRefusesWith500(fn(&Value) -> bool),
}

/// Where a refused reply's request id (from the vendor's headers) is kept
/// in its body, for the log line.
const REQUEST_ID_KEY: &str = "_authmux_request_id";

/// The vendor's error code in a refusal, whichever vendor's shape it has.
fn vendor_code(body: &Value) -> &str {
    body["error_code"]
        .as_str()
        .or(body["code"].as_str())
        .or(body["errors"][0]["code"].as_str())
        .or(body["error"].as_str())
        .unwrap_or("")
}

/// The request id of a refusal: a vendor header, or Clerk's trace id.
fn request_id(body: &Value) -> &str {
    body[REQUEST_ID_KEY]
        .as_str()
        .or(body["clerk_trace_id"].as_str())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // a date relative to the real clock
    fn retry_after_takes_seconds_or_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = parse_retry_after(&soon).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
