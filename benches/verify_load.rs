//! End-to-end load on `session.verify`: starts `authmux serve` as its own
//! process (SQLite, defaults), then drives it over REST and over gRPC with
//! 64 concurrent connections for a fixed time, for a JWT and for a session
//! id, and prints requests/s, p50/p99 latency and the server's peak RSS.
//!
//! Run: `cargo bench --bench verify_load` (AUTHMUX_LOAD_SECS sets the
//! duration of each scenario, default 10).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authmux::pb::v1 as pb;
use authmux::pb::v1::session_service_client::SessionServiceClient;
use futures::StreamExt;
use serde_json::{Value, json};
use tonic::transport::Channel;

const CONNECTIONS: usize = 64;
const DISTINCT_TOKENS: usize = 20_000;

struct Report {
    name: String,
    requests: usize,
    errors: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn run<F, Fut>(name: &str, secs: u64, make: impl Fn(usize) -> F) -> Report
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
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
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Report {
        name: name.to_owned(),
        requests: all.len(),
        errors,
        secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

/// One HTTP/2 connection per worker.
async fn channels(base: &str) -> Vec<Channel> {
    let mut out = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        out.push(
            Channel::from_shared(base.to_owned())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    out
}

fn main() {
    let secs: u64 = std::env::var("AUTHMUX_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = common::Served::start(&[]);
    let (base, key) = (server.base.clone(), server.key.clone());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reports = rt.block_on(async {
        let http = reqwest::Client::new();
        server.ready(&http).await;
        let user: Value = server
            .post(
                &http,
                "/v1/auth/user/create",
                &json!({"email": "load@example.com"}),
            )
            .await;
        let session: Value = server
            .post(
                &http,
                "/v1/auth/session/create",
                &json!({"user_id": user["user_id"]}),
            )
            .await;
        let jwt = Arc::new(session["access_token"].as_str().unwrap().to_owned());
        let sid = Arc::new(session["session_id"].as_str().unwrap().to_owned());
        let key = Arc::new(key);

        // More distinct tokens than the verified-token cache holds, so
        // that nearly every request takes the full signature check.
        let mut many = Vec::with_capacity(DISTINCT_TOKENS);
        let mut mint = futures::stream::iter(0..DISTINCT_TOKENS)
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
                    s["access_token"].as_str().unwrap().to_owned()
                }
            })
            .buffer_unordered(16);
        while let Some(t) = mint.next().await {
            many.push(t);
        }
        let many = Arc::new(many);

        let mut reports = Vec::new();
        for (label, token) in [("JWT", jwt.clone()), ("session id", sid.clone())] {
            // REST: one HTTP/1.1 client (one connection) per worker.
            let r = run(&format!("REST  {label}"), secs, |_| {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .http1_only()
                    .build()
                    .unwrap();
                let url = format!("{base}/v1/auth/session/verify/{token}");
                let key = key.clone();
                move || {
                    let req = client.get(&url).bearer_auth(key.as_str()).send();
                    async move {
                        match req.await {
                            Ok(r) => r
                                .bytes()
                                .await
                                .is_ok_and(|b| b.windows(12).any(|w| w == b"\"valid\":true")),
                            Err(_) => false,
                        }
                    }
                }
            })
            .await;
            reports.push(r);

            // gRPC: one HTTP/2 connection per worker.
            let channels = channels(&base).await;
            let r = run(&format!("gRPC  {label}"), secs, |i| {
                let client = SessionServiceClient::new(channels[i].clone());
                let token = token.clone();
                let auth: tonic::metadata::MetadataValue<_> =
                    format!("Bearer {key}").parse().unwrap();
                move || {
                    let mut client = client.clone();
                    let mut req = tonic::Request::new(pb::VerifySessionRequest {
                        session_id: token.to_string(),
                    });
                    req.metadata_mut().insert("authorization", auth.clone());
                    async move {
                        client
                            .verify_session(req)
                            .await
                            .is_ok_and(|r| r.get_ref().valid)
                    }
                }
            })
            .await;
            reports.push(r);
        }

        let channels = channels(&base).await;
        let r = run(&format!("gRPC  JWT x{DISTINCT_TOKENS}"), secs, |i| {
            let client = SessionServiceClient::new(channels[i].clone());
            let many = many.clone();
            let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
            let mut next = i * (DISTINCT_TOKENS / CONNECTIONS);
            move || {
                next = (next + 1) % many.len();
                let mut client = client.clone();
                let mut req = tonic::Request::new(pb::VerifySessionRequest {
                    session_id: many[next].clone(),
                });
                req.metadata_mut().insert("authorization", auth.clone());
                async move {
                    client
                        .verify_session(req)
                        .await
                        .is_ok_and(|r| r.get_ref().valid)
                }
            }
        })
        .await;
        reports.push(r);
        reports
    });

    let peak = server.kib("VmHWM:");
    let now = server.kib("VmRSS:");
    drop(server);

    println!(
        "session.verify, {CONNECTIONS} connections, {secs} s per scenario, server and load generator on this machine"
    );
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "scenario", "requests", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for r in &reports {
        println!(
            "{:<20} {:>10} {:>10.0} {:>10.2} {:>10.2} {:>8}",
            r.name,
            r.requests,
            r.requests as f64 / r.secs,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.errors
        );
    }
    println!(
        "server RSS: peak {:.1} MiB, at end {:.1} MiB",
        peak as f64 / 1024.0,
        now as f64 / 1024.0
    );
}
