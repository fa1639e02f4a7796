//! End-to-end load on `session.verify`: starts `authmux serve` as its own
//! process (SQLite, defaults; `AUTHMUX_SIGNING_ALG=RS256` in the
//! environment reaches it), then drives it over REST and over gRPC with 64
//! concurrent connections (by default) for a fixed time per scenario:
//!
//! - the transport floor: `/healthz` and the gRPC health check;
//! - one JWT verified again and again (the verified-token cache's case);
//! - JWTs cycling over many distinct tokens (the cold path: a signature
//!   check per request);
//! - session ids cycling over as many distinct sessions.
//!
//! REST and gRPC each cycle over their own sessions (twice the number is
//! minted), so the transport measured second doesn't find the first's
//! tokens already verified or its sessions already cached.
//!
//! It prints requests/s, p50/p99 latency, each as a share of the floor,
//! the server's RSS as each scenario ends, and its RSS idle and at its
//! peak.
//!
//! REST goes through hyper's HTTP/1.1 client, gRPC through h2's client
//! itself with each request framed before the clock starts, so that
//! neither transport's rows carry a heavier client stack than the other's.
//!
//! Besides rates and latencies, each row prints the CPU time the server
//! and the load generator spent per request (from `/proc/PID/stat`): on two
//! shared cores, what the server itself costs, apart from the client.
//!
//! Run: `cargo bench --bench verify_load` (AUTHMUX_LOAD_SECS sets the
//! duration of each scenario, default 10; AUTHMUX_LOAD_TOKENS the number of
//! distinct tokens and sessions per transport, default 100,000;
//! AUTHMUX_LOAD_THREADS the load generator's worker threads, default 2;
//! AUTHMUX_LOAD_CONNECTIONS the concurrent connections, default 64).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authmux::pb::v1 as pb;
use futures::StreamExt;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use serde_json::{Value, json};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// Concurrent connections (AUTHMUX_LOAD_CONNECTIONS, default 64).
static CONNECTIONS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("AUTHMUX_LOAD_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
});

struct Report {
    name: String,
    requests: usize,
    errors: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    /// CPU seconds the server and this load generator used in the run.
    server_cpu: f64,
    client_cpu: f64,
    /// The server's resident memory as the run ended.
    rss_kib: u64,
}

/// The server's pid, for reading its CPU time around each run.
static SERVER_PID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn cpu_now() -> (f64, f64) {
    let server = SERVER_PID.get().map_or(0.0, |pid| common::cpu_secs(pid));
    (server, common::cpu_secs("self"))
}

async fn run<F, Fut>(name: &str, secs: u64, make: impl Fn(usize) -> F) -> Report
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    // On stderr, so that a profiler can attach for one scenario only.
    eprintln!("scenario {name}: {secs} s");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let cpu_before = cpu_now();
    let mut tasks = Vec::new();
    for i in 0..*CONNECTIONS {
        let mut call = make(i);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                if !call().await {
                    errors += 1;
                }
                lat.push(t0.elapsed().as_micros() as u64);
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_after = cpu_now();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Report {
        name: name.to_owned(),
        requests: all.len(),
        errors,
        secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        server_cpu: cpu_after.0 - cpu_before.0,
        client_cpu: cpu_after.1 - cpu_before.1,
        rss_kib: SERVER_PID
            .get()
            .map_or(0, |pid| common::status_kib(pid, "VmRSS:")),
    }
}

/// A worker's HTTP/1.1 client for REST: hyper's, which takes an
/// already-parsed `http::Uri` (reqwest parses and checks a URL again on
/// every call, which a 700-byte path makes costly).
fn rest_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build(common::connector())
}

/// A REST scenario: GETs of `paths` in turn, each worker from its own
/// place in the list; a reply passes when it holds `expect`. The URIs are
/// parsed before the clock starts, so that parsing a long path is not
/// counted against the server's verify rows and not against the floor's.
async fn rest(
    name: &str,
    secs: u64,
    base: &str,
    key: &Arc<String>,
    paths: Arc<Vec<String>>,
    expect: &'static [u8],
) -> Report {
    let uris: Arc<Vec<http::Uri>> = Arc::new(
        paths
            .iter()
            .map(|p| format!("{base}{p}").parse().unwrap())
            .collect(),
    );
    let auth = http::HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
    run(name, secs, |i| {
        let client = rest_client();
        let (auth, uris) = (auth.clone(), uris.clone());
        let mut next = i * uris.len() / *CONNECTIONS;
        move || {
            next = (next + 1) % uris.len();
            let req = http::Request::get(uris[next].clone())
                .header(http::header::AUTHORIZATION, auth.clone())
                .body(Empty::new())
                .unwrap();
            common::reply_holds(client.request(req), expect)
        }
    })
    .await
}

/// A gRPC scenario: unary calls of `path`, one framed request of
/// `frames` after another, each worker on its own HTTP/2 connection (made
/// before the clock starts) and from its own place in the list; a call
/// passes when its reply's message satisfies `check`.
///
/// The calls go through h2 itself ([`common::h2_unary`]), as gRPC load
/// tools send them. With tonic's generated client on hyper's pooled
/// client, the generator spent 36–118 µs of CPU per call, about as much as
/// the server and two to three times what hyper's HTTP/1.1 client spends
/// per REST request, so on two shared cores the gRPC rows measured the
/// client's stack as much as the server.
async fn grpc_calls(
    name: &str,
    secs: u64,
    base: &str,
    head: http::Request<()>,
    frames: Arc<Vec<Bytes>>,
    check: fn(&[u8]) -> bool,
) -> Report {
    let mut connections = Vec::with_capacity(*CONNECTIONS);
    for _ in 0..*CONNECTIONS {
        connections.push(common::h2_connect(base).await);
    }
    run(name, secs, |i| {
        let (send, head, frames) = (connections[i].clone(), head.clone(), frames.clone());
        let mut next = i * frames.len() / *CONNECTIONS;
        move || {
            next = (next + 1) % frames.len();
            let call = common::h2_unary(send.clone(), head.clone(), frames[next].clone());
            async move { call.await.is_some_and(|reply| check(&reply)) }
        }
    })
    .await
}

/// A gRPC scenario: `session.verify` of `tokens` in turn; a reply passes
/// when it says the token or session is valid.
async fn grpc(
    name: &str,
    secs: u64,
    base: &str,
    key: &Arc<String>,
    tokens: Arc<Vec<String>>,
) -> Report {
    let auth = http::HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
    let head = common::grpc_head(
        base,
        "/authmux.v1.SessionService/VerifySession",
        Some(&auth),
    );
    let frames = tokens
        .iter()
        .map(|t| {
            common::grpc_frame(&pb::VerifySessionRequest {
                session_id: t.clone(),
            })
        })
        .collect();
    grpc_calls(name, secs, base, head, Arc::new(frames), |reply| {
        pb::VerifySessionReply::decode(reply).is_ok_and(|r| r.valid)
    })
    .await
}

fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let secs = env("AUTHMUX_LOAD_SECS", 10);
    let distinct = env("AUTHMUX_LOAD_TOKENS", 100_000) as usize;
    // Minting the sessions is not what is measured: the project's rate
    // limit is lifted for it.
    let server = common::Served::start(&[
        ("AUTHMUX_RATE_LIMIT_PER_SECOND", "1000000"),
        ("AUTHMUX_RATE_LIMIT_BURST", "1000000"),
    ]);
    let (base, key) = (server.base.clone(), Arc::new(server.key.clone()));
    let _ = SERVER_PID.set(server.child.id().to_string());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env("AUTHMUX_LOAD_THREADS", 2) as usize)
        .enable_all()
        .build()
        .unwrap();
    let (idle_kib, reports) = rt.block_on(async {
        let http = reqwest::Client::new();
        server.ready(&http).await;
        let user: Value = server
            .post(
                &http,
                "/v1/auth/user/create",
                &json!({"email": "load@example.com"}),
            )
            .await;
        let idle = server.kib("VmRSS:");

        // Distinct sessions, minted 16 at a time: a set for each transport,
        // so that neither finds the other's tokens in the server's caches.
        let started = Instant::now();
        let mut sessions: Vec<(String, String)> = Vec::with_capacity(2 * distinct);
        let mut mint = futures::stream::iter(0..2 * distinct)
            .map(|_| {
                let http = http.clone();
                let (base, key, user) = (base.clone(), key.clone(), user["user_id"].clone());
                async move {
                    let s: Value = http
                        .post(format!("{base}/v1/auth/session/create"))
                        .bearer_auth(key.as_str())
                        .json(&json!({"user_id": user}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    (
                        s["access_token"].as_str().unwrap().to_owned(),
                        s["session_id"].as_str().unwrap().to_owned(),
                    )
                }
            })
            .buffer_unordered(16);
        while let Some(t) = mint.next().await {
            sessions.push(t);
        }
        eprintln!(
            "minted {} sessions in {:.0} s",
            2 * distinct,
            started.elapsed().as_secs_f64()
        );
        let (rest_set, grpc_set) = sessions.split_at(distinct);
        let jwts = |set: &[(String, String)]| Arc::new(set.iter().map(|s| s.0.clone()).collect());
        let sids = |set: &[(String, String)]| Arc::new(set.iter().map(|s| s.1.clone()).collect());
        let one_jwt = Arc::new(vec![rest_set[0].0.clone()]);
        let paths = |tokens: &Vec<String>| -> Arc<Vec<String>> {
            Arc::new(
                tokens
                    .iter()
                    .map(|t| format!("/v1/auth/session/verify/{t}"))
                    .collect(),
            )
        };
        const VALID: &[u8] = b"\"valid\":true";
        let n = distinct;

        let mut reports = Vec::new();
        reports.push(
            rest(
                "REST  floor /healthz",
                secs,
                &base,
                &key,
                Arc::new(vec!["/healthz".into()]),
                b"ok",
            )
            .await,
        );
        reports.push(
            grpc_calls(
                "gRPC  floor health",
                secs,
                &base,
                common::grpc_head(&base, "/grpc.health.v1.Health/Check", None),
                Arc::new(vec![common::grpc_frame(&HealthCheckRequest::default())]),
                |reply| {
                    HealthCheckResponse::decode(reply)
                        .is_ok_and(|r| r.status() == ServingStatus::Serving)
                },
            )
            .await,
        );
        reports.push(rest("REST  JWT x1", secs, &base, &key, paths(&one_jwt), VALID).await);
        reports.push(grpc("gRPC  JWT x1", secs, &base, &key, one_jwt.clone()).await);
        reports.push(
            rest(
                &format!("REST  JWT x{n}"),
                secs,
                &base,
                &key,
                paths(&jwts(rest_set)),
                VALID,
            )
            .await,
        );
        reports.push(
            grpc(
                &format!("gRPC  JWT x{n}"),
                secs,
                &base,
                &key,
                jwts(grpc_set),
            )
            .await,
        );
        reports.push(
            rest(
                &format!("REST  sid x{n}"),
                secs,
                &base,
                &key,
                paths(&sids(rest_set)),
                VALID,
            )
            .await,
        );
        reports.push(
            grpc(
                &format!("gRPC  sid x{n}"),
                secs,
                &base,
                &key,
                sids(grpc_set),
            )
            .await,
        );
        (idle, reports)
    });

    let peak = server.kib("VmHWM:");
    let now = server.kib("VmRSS:");
    drop(server);

    let alg = std::env::var("AUTHMUX_SIGNING_ALG").unwrap_or_else(|_| "ES256".into());
    let connections = *CONNECTIONS;
    println!(
        "session.verify ({alg}), {connections} connections, {secs} s per scenario, server and load generator on this machine"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>9} {:>9} {:>8} {:>12} {:>12} {:>8}",
        "scenario",
        "requests",
        "req/s",
        "% floor",
        "p50 ms",
        "p99 ms",
        "errors",
        "server µs/req",
        "client µs/req",
        "RSS MiB"
    );
    let rate = |r: &Report| r.requests as f64 / r.secs;
    let floor_rest = rate(&reports[0]);
    let floor_grpc = rate(&reports[1]);
    for r in &reports {
        let floor = if r.name.starts_with("REST") {
            floor_rest
        } else {
            floor_grpc
        };
        println!(
            "{:<22} {:>10} {:>10.0} {:>7.0}% {:>9.2} {:>9.2} {:>8} {:>13.1} {:>13.1} {:>8.1}",
            r.name,
            r.requests,
            rate(r),
            100.0 * rate(r) / floor,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.errors,
            1e6 * r.server_cpu / r.requests as f64,
            1e6 * r.client_cpu / r.requests as f64,
            r.rss_kib as f64 / 1024.0
        );
    }
    println!(
        "server RSS: idle {:.1} MiB, peak {:.1} MiB, at end {:.1} MiB",
        idle_kib as f64 / 1024.0,
        peak as f64 / 1024.0,
        now as f64 / 1024.0
    );
}
