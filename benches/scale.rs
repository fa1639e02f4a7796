//! `user.get`, `user.list` (a deep page), `user.get_by_email` and a cold
//! session-id `session.verify` on PostgreSQL at 10,000 and at 1,000,000
//! users and sessions: the same calls, p50/p99 each, and the ratio.
//!
//! Rows are written with one `generate_series` insert per table. Needs
//! `AUTHMUX_TEST_DATABASE_URL` (a database per size is created and
//! dropped). Run: `cargo bench --bench scale` (AUTHMUX_SCALE_ROWS sets the
//! large size, AUTHMUX_SCALE_CALLS the calls per measure, default 2,000).

use std::time::Instant;

use authmux::config::Settings;
use authmux_testkit::{Server, postgres_database};
use rand::Rng;
use sea_orm::{ConnectionTrait, Database};

struct Figures {
    rows: u64,
    seed_secs: f64,
    measures: Vec<(&'static str, f64, f64)>,
}

fn id(prefix: &str, n: u64) -> String {
    format!("{prefix}_{n:032x}")
}

async fn seed(url: &str, project: &str, rows: u64) {
    let db = Database::connect(url).await.unwrap();
    let now = chrono_now_ms();
    let far = now + 30 * 86_400_000;
    let usr = "'usr_' || lpad(to_hex(g), 32, '0')";
    for sql in [
        format!(
            "INSERT INTO users (id, project_id, email, email_lower, email_verified, metadata, mfa_enabled, vendor, created_at, updated_at, phone_number, password_set) \
             SELECT {usr}, '{project}', 'user' || g || '@scale.example', 'user' || g || '@scale.example', false, '{{\"plan\":\"free\"}}', false, 'native', {now}, {now}, NULL, false \
             FROM generate_series(1, {rows}) g"
        ),
        format!(
            "INSERT INTO pins (project_id, resource_id, kind, vendor, mode, vendor_resource_id, created_at) \
             SELECT '{project}', {usr}, 'user', 'native', 'managed', '', {now} FROM generate_series(1, {rows}) g"
        ),
        format!(
            "INSERT INTO sessions (id, project_id, user_id, method, amr, created_at, last_issued_at, expires_at, revoked_at, vendor_credential, vendor_pending) \
             SELECT 'ses_' || lpad(to_hex(g), 32, '0'), '{project}', {usr}, 'server', '[\"server\"]', {now}, {now}, {far}, NULL, NULL, false \
             FROM generate_series(1, {rows}) g"
        ),
        "ANALYZE".to_owned(),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }
    db.close().await.unwrap();
}

fn chrono_now_ms() -> i64 {
    authmux::clock::Clock::default().now_millis()
}

/// p50 and p99 of `calls` sequential GETs of the paths `path(i)` makes, ms.
async fn measure(s: &Server, calls: u64, path: impl Fn(u64) -> String, expect: &str) -> (f64, f64) {
    let mut lat = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        let t0 = Instant::now();
        let body = s
            .http
            .get(format!("{}{}", s.base, path(i)))
            .bearer_auth(&s.key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(body.contains(expect), "{}: {body}", path(i));
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (pct(0.50), pct(0.99))
}

async fn at(rows: u64, calls: u64) -> Option<Figures> {
    let url = postgres_database().await?;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.store.database_url = Some(url.clone().into());
    // Sequential calls run faster than the default per-project limit.
    settings.rate_limit.rate_limit_per_second = 1_000_000;
    settings.rate_limit.rate_limit_burst = 1_000_000;
    let s = Server::start_on(dir, settings).await;
    let project = s
        .domain
        .authenticate(Some(&format!("Bearer {}", s.key)))
        .await
        .unwrap();
    let started = Instant::now();
    seed(&url, &project.id, rows).await;
    let seed_secs = started.elapsed().as_secs_f64();
    let pick = |_: u64| rand::thread_rng().gen_range(1..=rows);
    let deep = id("usr", rows / 10);
    let mut measures = Vec::new();
    let (a, b) = measure(
        &s,
        calls,
        |i| format!("/v1/auth/user/get/{}", id("usr", pick(i))),
        "user_id",
    )
    .await;
    measures.push(("user.get", a, b));
    let (a, b) = measure(
        &s,
        calls,
        |_| format!("/v1/auth/user/list?limit=50&cursor={deep}"),
        "next_cursor",
    )
    .await;
    measures.push(("user.list, deep page", a, b));
    let (a, b) = measure(
        &s,
        calls,
        |i| {
            format!(
                "/v1/auth/user/get_by_email?email=user{}%40scale.example",
                pick(i)
            )
        },
        "user_id",
    )
    .await;
    measures.push(("user.get_by_email", a, b));
    let (a, b) = measure(
        &s,
        calls,
        |i| format!("/v1/auth/session/verify/{}", id("ses", pick(i))),
        "\"valid\":true",
    )
    .await;
    measures.push(("session.verify, cold id", a, b));
    Some(Figures {
        rows,
        seed_secs,
        measures,
    })
}

fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let large = env("AUTHMUX_SCALE_ROWS", 1_000_000);
    let calls = env("AUTHMUX_SCALE_CALLS", 2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (Some(small), Some(big)) =
        rt.block_on(async { (at(10_000, calls).await, at(large, calls).await) })
    else {
        println!("skipped: AUTHMUX_TEST_DATABASE_URL is unset");
        return;
    };
    println!("PostgreSQL, {calls} sequential REST calls per measure, p50 / p99 in ms");
    println!(
        "seeding: {} users+sessions in {:.1} s, {} in {:.1} s",
        small.rows, small.seed_secs, big.rows, big.seed_secs
    );
    println!(
        "{:<26} {:>18} {:>18} {:>12}",
        "call",
        format!("{} rows", small.rows),
        format!("{} rows", big.rows),
        "p50 ratio"
    );
    for ((name, a50, a99), (_, b50, b99)) in small.measures.iter().zip(&big.measures) {
        println!(
            "{:<26} {:>8.2} / {:>7.2} {:>8.2} / {:>7.2} {:>11.2}x",
            name,
            a50,
            a99,
            b50,
            b99,
            b50 / a50
        );
    }
}
