//! Retries, Retry-After, rejected credentials, timeouts, the circuit
//! breaker and health probes.

use std::time::Duration;

use authmux::vendors::VendorKind;
use authmux::vendors::http::{BreakerState, Policy, VendorHttp};
use serde_json::json;

use super::discovery::discover;
use super::failover::create_anywhere;
use super::{clerk_server, emulator, faults};
use crate::harness::{Backend, Server, Transport, expect_err};

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
    assert_eq!(
        emulator(&s).requests() - before,
        2,
        "the create once, then a lookup by email before giving up"
    );
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
    for (vendor, secret) in [
        (VendorKind::Clerk, crate::emulators::clerk::SECRET_KEY),
        (VendorKind::Workos, crate::emulators::workos::API_KEY),
        (
            VendorKind::Supabase,
            crate::emulators::supabase::SERVICE_ROLE_KEY,
        ),
    ] {
        let s = Server::start_vendor(Backend::Sqlite, vendor).await.unwrap();
        faults(&s).reject_credentials = true;
        for t in [Transport::Rest, Transport::Grpc] {
            let e = expect_err(
                s.call(t, "auth.user.create", json!({"email": "k@example.com"}))
                    .await,
                "VENDOR_ERROR",
            );
            assert!(e.message.contains("credentials"), "{vendor}: {e:?}");
            assert!(!e.message.contains(secret));
        }
        assert!(
            !crate::logs::text().contains(secret),
            "{vendor} secret in the logs"
        );
    }
}

#[tokio::test]
async fn slow_vendors_time_out_and_fast_ones_report_latency() {
    let s = clerk_server().await;
    let t = Transport::Rest;
    let u = s
        .call(t, "auth.user.create", json!({"email": "lat@example.com"}))
        .await
        .unwrap();
    faults(&s).latency = Duration::from_millis(2_200);
    let before = emulator(&s).requests();
    let e = expect_err(
        s.call(t, "auth.user.get", json!({"user_id": u["user_id"]}))
            .await,
        "VENDOR_UNAVAILABLE",
    );
    assert!(e.message.contains("timed out"), "{e:?}");
    assert_eq!(
        emulator(&s).requests() - before,
        3,
        "an idempotent read is tried three times"
    );
    faults(&s).latency = Duration::from_millis(60);
    for _ in 0..3 {
        s.call(t, "auth.user.get", json!({"user_id": u["user_id"]}))
            .await
            .unwrap();
    }
    let d = s
        .call(t, "discovery", json!({"capability": "auth.user.get"}))
        .await
        .unwrap();
    let clerk = d["vendors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vendor"] == "clerk")
        .unwrap()
        .clone();
    assert!(clerk["p50_latency_ms"].as_f64().unwrap() >= 60.0, "{clerk}");
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
    let http = VendorHttp::new("clerk", policy);
    let url = format!("{}/users/user_x", emu.base_url);
    let call = || {
        http.call("get_user", authmux::vendors::http::Retry::Safe, |c| {
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

/// A call that reads some 500s as refusals (GoTrue's unique violations)
/// still counts any other 500 against the breaker, and gets it as an
/// outage, not a reply.
#[tokio::test]
async fn a_500_a_call_does_not_recognize_is_still_an_outage() {
    let emu = crate::emulators::clerk::start().await;
    let policy = Policy {
        breaker_threshold: 3,
        ..Policy::default()
    };
    let http = VendorHttp::new("clerk", policy);
    let url = format!("{}/users/user_x", emu.base_url);
    let call = || {
        http.call(
            "get_user",
            authmux::vendors::http::Retry::NeverRefusesWith500(|body| body["code"] == "23505"),
            |c| {
                c.get(&url)
                    .bearer_auth(crate::emulators::clerk::SECRET_KEY)
                    .header("Clerk-API-Version", "2026-05-12")
            },
        )
    };
    emu.faults.lock().unwrap().fail_next = 100;
    for _ in 0..3 {
        let seen = emu.requests();
        assert!(call().await.is_err());
        assert_eq!(emu.requests(), seen + 1, "sent once, not retried");
    }
    assert_eq!(http.breaker_state(), BreakerState::Open);
}

#[tokio::test]
async fn health_probes_mark_a_silent_vendor_down() {
    let mut s = Server::start_vendors(
        Backend::Sqlite,
        &[VendorKind::Clerk, VendorKind::Supabase, VendorKind::Workos],
        |c| {
            c.vendor_policy.vendor_probe_ms = 100;
            c.vendor_policy.vendor_priority = "clerk,workos".into();
        },
    )
    .await
    .unwrap();
    let status = |d: &serde_json::Value, v: &str| {
        d["vendors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["vendor"] == v)
            .unwrap()["status"]
            .clone()
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let d = discover(&s).await;
    for v in ["clerk", "workos", "supabase"] {
        assert_eq!(status(&d, v), "live", "{v}: {d}");
    }
    // Clerk goes silent; no request of a caller has to find out.
    s.emulator.as_mut().unwrap().stop();
    let s_ref = &s;
    crate::harness::eventually(
        Duration::from_secs(3),
        Duration::from_millis(50),
        "clerk never marked down",
        move || async move { status(&discover(s_ref).await, "clerk") == "down" },
    )
    .await;
    let u = create_anywhere(&s, "probe@example.com").await.unwrap();
    assert_eq!(u["vendor"], "workos", "a vendor known down is skipped");
}
