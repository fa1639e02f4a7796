//! Password sign-ins under a burst: starts `authmux serve` as its own
//! process (SQLite, argon2id at OWASP's minimum), then sends rounds of 100
//! concurrent `session.create` calls with the right password, and prints
//! sign-ins per second (and per core) and the server's RSS: idle, peak
//! (VmHWM) and after the load.
//!
//! Run: `cargo bench --bench logins` (AUTHMUX_LOGIN_ROUNDS sets the number
//! of rounds, default 10).

mod common;

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};

const CONCURRENT: usize = 100;

fn main() {
    let rounds: usize = std::env::var("AUTHMUX_LOGIN_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = common::Served::start(&[]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let base = &server.base;
        server.ready(&http).await;
        let user: Value = http
            .post(format!("{base}/v1/auth/user/create"))
            .bearer_auth(&server.key)
            .json(&json!({"email": "login@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let idle = server.kib("VmRSS:");
        let login = json!({"user_id": user["user_id"], "method": "password",
                           "password": "correct horse battery"});
        let start = Instant::now();
        let (mut ok, mut busy, mut other) = (0usize, 0usize, 0usize);
        for _ in 0..rounds {
            let replies = join_all((0..CONCURRENT).map(|_| {
                http.post(format!("{base}/v1/auth/session/create"))
                    .bearer_auth(&server.key)
                    .json(&login)
                    .send()
            }))
            .await;
            for r in replies {
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => ok += 1,
                    Ok(503) => busy += 1,
                    _ => other += 1,
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let peak = server.kib("VmHWM:");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = server.kib("VmRSS:");
        let per_sec = ok as f64 / secs;
        println!(
            "{rounds} rounds of {CONCURRENT} concurrent password sign-ins: {ok} ok, {busy} SERVICE_BUSY, {other} other, in {secs:.2} s"
        );
        println!(
            "sign-ins/s: {per_sec:.1} ({:.1} per core, {cores} cores, load generator on the same cores)",
            per_sec / cores as f64
        );
        println!(
            "server RSS: idle {:.1} MiB, peak {:.1} MiB, 2 s after {:.1} MiB",
            idle as f64 / 1024.0,
            peak as f64 / 1024.0,
            after as f64 / 1024.0
        );
    });
}
