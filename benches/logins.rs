//! Password sign-ins under a burst: starts `authmux serve` as its own
//! process (SQLite, argon2id at OWASP's minimum), then sends rounds of 100
//! concurrent `session.create` calls, one for each of 100 users, with the
//! right password, and prints
//! sign-ins per second (and per core) and the server's RSS: idle, peak
//! (VmHWM) and after the load. Before that it prints what creating the
//! users cost (a strength check and a hash each) and the RSS around it.
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
        let started = server.kib("VmRSS:");
        let creating = Instant::now();
        let mut logins = Vec::with_capacity(CONCURRENT);
        for i in 0..CONCURRENT {
            let email = format!("login{i}@example.com");
            let body = json!({"email": email, "password": "correct horse battery"});
            let user = server.post(&http, "/v1/auth/user/create", &body).await;
            logins.push(json!({"user_id": user["user_id"], "method": "password",
                               "password": "correct horse battery"}));
        }
        // Each create checks the password's strength (zxcvbn, whose word
        // lists load on the first) and hashes it, one after the other.
        println!(
            "{CONCURRENT} users created with a password, one at a time: {:.1} ms each; server RSS {:.1} MiB before the first, {:.1} MiB after",
            creating.elapsed().as_secs_f64() * 1e3 / CONCURRENT as f64,
            started as f64 / 1024.0,
            server.kib("VmRSS:") as f64 / 1024.0
        );
        let user = &logins[0];
        let idle = server.kib("VmRSS:");
        let start = Instant::now();
        let (mut ok, mut busy) = (0usize, 0usize);
        let mut other: std::collections::BTreeMap<String, usize> = Default::default();
        for _ in 0..rounds {
            let replies = join_all(logins.iter().map(|login| {
                http.post(format!("{base}/v1/auth/session/create"))
                    .bearer_auth(&server.key)
                    .json(login)
                    .send()
            }))
            .await;
            for r in replies {
                match r {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) if r.status() == 503 => busy += 1,
                    Ok(r) => {
                        let body: Value = r.json().await.unwrap_or_default();
                        let code = body["error"]["code"].as_str().unwrap_or("?").to_owned();
                        *other.entry(code).or_default() += 1;
                    }
                    Err(e) => *other.entry(e.to_string()).or_default() += 1,
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let peak = server.kib("VmHWM:");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = server.kib("VmRSS:");
        let per_sec = ok as f64 / secs;
        println!(
            "{rounds} rounds of {CONCURRENT} concurrent password sign-ins: {ok} ok, {busy} SERVICE_BUSY, other {other:?}, in {secs:.2} s"
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

        // A wrong password costs the same whether the user has a password,
        // has none, or does not exist (one call at a time, 8 each).
        let users = [
            ("with a password", user["user_id"].clone()),
            ("without a password", {
                let body = json!({"email": "nopw@example.com"});
                server.post(&http, "/v1/auth/user/create", &body).await["user_id"].clone()
            }),
            ("unknown", json!("usr_01900000000070008000000000000000")),
        ];
        for (what, id) in users {
            let mut times = Vec::new();
            for _ in 0..8 {
                let t0 = Instant::now();
                let _ = http
                    .post(format!("{base}/v1/auth/session/create"))
                    .bearer_auth(&server.key)
                    .json(&json!({"user_id": id, "method": "password", "password": "wrong guess"}))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await;
                times.push(t0.elapsed());
            }
            times.sort();
            println!("wrong password, user {what}: median {:.1} ms", times[4].as_secs_f64() * 1e3);
        }
    });
}
