//! Vendor resilience against the emulators: retries, Retry-After, pinned
//! vendor outages, the circuit breaker, rejected credentials, discovery.

use std::time::Duration;

use authmux::vendors::http::{BreakerState, Policy, VendorHttp};
use serde_json::json;

use crate::harness::{Backend, Server, Transport, expect_err};

async fn clerk_server() -> Server {
    Server::start_vendor(Backend::Sqlite, "clerk")
        .await
        .unwrap()
}

fn emulator(s: &Server) -> &crate::emulators::Running {
    s.emulator.as_ref().unwrap()
}

fn faults(s: &Server) -> std::sync::MutexGuard<'_, crate::emulators::Faults> {
    emulator(s).faults.lock().unwrap()
}

#[tokio::test]
async fn reads_retry_through_vendor_5xx_and_429() {
    let s = clerk_server().await;
    for t in [Transport::Rest, Transport::Grpc] {
        let u = s
            .call(
                t,
                "auth.user.create",
                json!({"email": format!("r-{t:?}@example.com")}),
            )
            .await
            .unwrap();
        let id = u["user_id"].clone();
        faults(&s).fail_next = 2;
        let before = emulator(&s).requests();
        let got = s
            .call(t, "auth.user.get", json!({"user_id": id}))
            .await
            .unwrap();
        assert_eq!(got["user_id"], id);
        assert_eq!(
            emulator(&s).requests() - before,
            3,
            "two failures, then success"
        );

        // 429 with Retry-After in seconds: waited out, then retried.
        {
            let mut f = faults(&s);
            f.rate_limit_next = 1;
            f.retry_after = Some("1".into());
        }
        let started = std::time::Instant::now();
        s.call(t, "auth.user.get", json!({"user_id": id}))
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "Retry-After honoured"
        );

        // 429 without Retry-After: jittered backoff, then success.
        {
            let mut f = faults(&s);
            f.rate_limit_next = 1;
            f.retry_after = None;
        }
        s.call(t, "auth.user.get", json!({"user_id": id}))
            .await
            .unwrap();

        // A Retry-After longer than the cap is passed on, not waited out.
        {
            let mut f = faults(&s);
            f.rate_limit_next = 1;
            f.retry_after = Some("60".into());
        }
        let e = expect_err(
            s.call(t, "auth.user.get", json!({"user_id": id})).await,
            "VENDOR_UNAVAILABLE",
        );
        assert_eq!(e.retry_after, Some(60));
    }
}

#[tokio::test]
async fn writes_are_not_retried_and_leave_nothing_behind() {
    let s = clerk_server().await;
    let t = Transport::Rest;
    faults(&s).fail_next = 1;
    let before = emulator(&s).requests();
    let e = expect_err(
        s.call(t, "auth.user.create", json!({"email": "w@example.com"}))
            .await,
        "VENDOR_UNAVAILABLE",
    );
    assert_eq!(e.status, 503);
    assert!(e.retry_after.is_some());
    assert_eq!(emulator(&s).requests() - before, 1, "a create is sent once");
    let list = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(list, json!({"items": []}));
    // The retry goes through.
    s.call(t, "auth.user.create", json!({"email": "w@example.com"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pinned_vendor_down_is_503_with_retry_after() {
    let mut s = clerk_server().await;
    let u = s
        .call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "down@example.com"}),
        )
        .await
        .unwrap();
    s.emulator.as_mut().unwrap().stop();
    for t in [Transport::Rest, Transport::Grpc] {
        let e = expect_err(
            s.call(t, "auth.user.get", json!({"user_id": u["user_id"]}))
                .await,
            "VENDOR_UNAVAILABLE",
        );
        assert!(e.retry_after.is_some(), "{e:?}");
        assert!(e.message.contains("clerk"));
    }
    // Consent lives in authmux and keeps working.
    s.call(
        Transport::Rest,
        "auth.consent.grant",
        json!({"user_id": u["user_id"], "category": "news"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn rejected_credentials_are_a_vendor_error_without_secrets() {
    let s = clerk_server().await;
    faults(&s).reject_credentials = true;
    for t in [Transport::Rest, Transport::Grpc] {
        let e = expect_err(
            s.call(t, "auth.user.create", json!({"email": "k@example.com"}))
                .await,
            "VENDOR_ERROR",
        );
        assert!(e.message.contains("credentials"));
        assert!(!e.message.contains(crate::emulators::clerk::SECRET_KEY));
    }
    assert!(!crate::logs::text().contains(crate::emulators::clerk::SECRET_KEY));
}

#[tokio::test]
async fn sessions_of_clerk_users_are_not_mapped_yet() {
    let s = clerk_server().await;
    let u = s
        .call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "ses@example.com"}),
        )
        .await
        .unwrap();
    for t in [Transport::Rest, Transport::Grpc] {
        let e = expect_err(
            s.call(t, "auth.session.create", json!({"user_id": u["user_id"]}))
                .await,
            "VENDOR_UNSUPPORTED",
        );
        assert!(e.message.contains("clerk"));
    }
}

#[tokio::test]
async fn discovery_reports_vendor_standing() {
    let s = clerk_server().await;
    let t = Transport::Grpc;
    let u = s
        .call(t, "auth.user.create", json!({"email": "d@example.com"}))
        .await
        .unwrap();
    let standing = |d: &serde_json::Value, v: &str| {
        d["vendors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["vendor"] == v)
            .unwrap()
            .clone()
    };
    let d = s
        .call(t, "discovery", json!({"capability": "auth.user.get"}))
        .await
        .unwrap();
    let clerk = standing(&d, "clerk");
    assert_eq!(
        (clerk["status"].as_str(), clerk["supports"].as_bool()),
        (Some("live"), Some(true))
    );
    assert!(clerk["p50_latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(standing(&d, "workos")["status"], "not_configured");
    let d = s
        .call(
            t,
            "discovery",
            json!({"capability": "auth.session.refresh"}),
        )
        .await
        .unwrap();
    assert_eq!(standing(&d, "clerk")["supports"], false);

    // Repeated failures open the circuit: discovery says down, and calls
    // fail fast without reaching the vendor.
    faults(&s).fail_next = 1_000;
    for _ in 0..2 {
        let _ = s
            .call(t, "auth.user.get", json!({"user_id": u["user_id"]}))
            .await;
    }
    let d = s
        .call(t, "discovery", json!({"capability": "auth.user.get"}))
        .await
        .unwrap();
    assert_eq!(standing(&d, "clerk")["status"], "down");
    let before = emulator(&s).requests();
    expect_err(
        s.call(t, "auth.user.get", json!({"user_id": u["user_id"]}))
            .await,
        "VENDOR_UNAVAILABLE",
    );
    assert_eq!(
        emulator(&s).requests(),
        before,
        "an open circuit sends nothing"
    );
}

#[tokio::test]
async fn the_breaker_opens_half_opens_and_closes() {
    let emu = crate::emulators::clerk::start().await;
    let policy = Policy {
        attempts: 1,
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_millis(300),
        ..Policy::default()
    };
    let http = VendorHttp::new(policy);
    let url = format!("{}/users/user_x", emu.base_url);
    let call = || {
        http.call(true, |c| {
            c.get(&url)
                .bearer_auth(crate::emulators::clerk::SECRET_KEY)
                .header("Clerk-API-Version", "2026-05-12")
        })
    };
    emu.faults.lock().unwrap().fail_next = 100;
    for _ in 0..3 {
        assert!(call().await.is_err());
    }
    assert_eq!(http.breaker_state(), BreakerState::Open);
    let seen = emu.requests();
    assert!(call().await.is_err());
    assert_eq!(emu.requests(), seen, "refused without a request");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(http.breaker_state(), BreakerState::HalfOpen);
    // A failed probe opens it again.
    assert!(call().await.is_err());
    assert_eq!(http.breaker_state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(350)).await;
    emu.faults.lock().unwrap().fail_next = 0;
    let (status, _) = call().await.unwrap();
    assert_eq!(status, 404, "the probe reached the vendor");
    assert_eq!(http.breaker_state(), BreakerState::Closed);
}
