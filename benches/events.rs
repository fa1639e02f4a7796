//! The event log and webhook delivery, measured:
//!
//! 1. What the outbox adds to a write: `Store::insert_user` (user and pin
//!    in one transaction) without an event, with its `user.created` event,
//!    and with the event fanned out to one webhook endpoint; p50/p99 of
//!    each, one after another, on SQLite and (with
//!    `AUTHMUX_TEST_DATABASE_URL`) PostgreSQL.
//! 2. Delivery throughput: a real server with one endpoint whose receiver
//!    (on loopback, in this process) answers 200 at once; users created
//!    over REST by 16 callers; events delivered per second, and
//!    `user.create` p50/p99 over REST with and without the endpoint.
//!
//! Run: `cargo bench --bench events` (`AUTHMUX_EVENTS_N`, default 2000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authmux::config::Settings;
use authmux::domain::{Domain, Project, new_id};
use authmux::store::entity::{events, pins, users};
use authmux_testkit::Server;
use serde_json::json;

fn n() -> usize {
    std::env::var("AUTHMUX_EVENTS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(project: &Project, now: i64) -> (users::Model, pins::Model) {
    let email = format!("{}@bench.example", new_id("u"));
    authmux_testkit::native_user(&project.id, &email, "{}", now)
}

fn event(project: &Project, user_id: &str, now: i64) -> events::Model {
    events::Model {
        id: new_id("evt"),
        project_id: project.id.clone(),
        kind: "user.created".to_owned(),
        user_id: Some(user_id.to_owned()),
        api_key_id: None,
        request_id: None,
        occurred_at: now,
        data: json!({"user_id": user_id, "vendor": "native", "mode": "managed"}).to_string(),
    }
}

async fn inserts(domain: &Arc<Domain>, project: &Project, with_event: bool) -> Vec<Duration> {
    let store = domain.store();
    let mut took = Vec::with_capacity(n());
    for _ in 0..n() {
        let now = domain.clock().now_millis();
        let (user, pin) = row(project, now);
        let announce = if with_event {
            vec![event(project, &user.id, now)]
        } else {
            Vec::new()
        };
        let start = Instant::now();
        store.insert_user(user, pin, announce).await.unwrap();
        took.push(start.elapsed());
    }
    took.sort();
    took
}

async fn outbox_cost(label: &str, settings: Settings) {
    let domain = settings.domain().await.unwrap();
    let project = domain.create_api_key("bench").await.unwrap().project;
    let mut rows = Vec::new();
    rows.push(("no event", inserts(&domain, &project, false).await));
    rows.push(("+ event", inserts(&domain, &project, true).await));
    domain
        .create_webhook_endpoint(&project, "https://hooks.example.com/bench", vec![])
        .await
        .unwrap();
    rows.push((
        "+ event, 1 endpoint",
        inserts(&domain, &project, true).await,
    ));
    let base = pct(&rows[0].1, 0.5);
    for (what, took) in &rows {
        println!(
            "{label:<10} insert_user {what:<20} p50 {:>6.3} ms  p99 {:>6.3} ms  added p50 {:>+6.3} ms",
            pct(took, 0.5),
            pct(took, 0.99),
            pct(took, 0.5) - base
        );
    }
}

/// A receiver that answers 200 at once and counts.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, count)
}

async fn creates(s: &Server, tag: &str) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let per = n() / 16;
    let tasks = (0..16).map(|w| {
        let http = http.clone();
        let url = format!("{}/v1/auth/user/create", s.base);
        let key = s.key.clone();
        let tag = tag.to_owned();
        tokio::spawn(async move {
            let mut took = Vec::with_capacity(per);
            for i in 0..per {
                let start = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"email": format!("{tag}{w}x{i}@bench.example")}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                took.push(start.elapsed());
            }
            took
        })
    });
    let mut all: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    all.sort();
    all
}

async fn delivery_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.webhooks.webhook_allow_http_loopback = true;
    settings.webhooks.webhook_poll_ms = 20;
    let s = Server::start_on(dir, settings).await;
    let without = creates(&s, "a").await;
    let (url, count) = receiver().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/webhooks/endpoints", s.base))
        .bearer_auth(&s.key)
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let start = Instant::now();
    let with = creates(&s, "b").await;
    let created = start.elapsed().as_secs_f64();
    let at_created = count.load(Ordering::Relaxed);
    let total = (n() / 16) * 16;
    while count.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "REST user.create, 16 callers, no endpoint   p50 {:>6.3} ms  p99 {:>6.3} ms",
        pct(&without, 0.5),
        pct(&without, 0.99)
    );
    println!(
        "REST user.create, 16 callers, 1 endpoint    p50 {:>6.3} ms  p99 {:>6.3} ms",
        pct(&with, 0.5),
        pct(&with, 0.99)
    );
    println!(
        "{total} events created and delivered in {secs:.2} s: {:.0} deliveries/s (one SQLite server, receiver on loopback)",
        total as f64 / secs
    );
    println!(
        "  creating took {created:.2} s ({at_created} delivered meanwhile); the remaining {} were delivered at {:.0}/s",
        total - at_created,
        (total - at_created) as f64 / (secs - created).max(1e-3)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        outbox_cost("SQLite", Settings::new(dir.path())).await;
        match std::env::var("AUTHMUX_TEST_DATABASE_URL") {
            Ok(url) => {
                let db = authmux_testkit::postgres_database().await;
                let dir = tempfile::tempdir().unwrap();
                let mut settings = Settings::new(dir.path());
                settings.store.database_url = Some(db.unwrap_or(url).into());
                outbox_cost("PostgreSQL", settings).await;
            }
            Err(_) => println!("PostgreSQL skipped: AUTHMUX_TEST_DATABASE_URL is not set"),
        }
        delivery_throughput().await;
    });
}
