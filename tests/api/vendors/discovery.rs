//! Discovery of vendor standing, and the metrics of vendor calls.

use serde_json::json;

use super::{clerk_server, emulator, faults};
use crate::harness::{Server, Transport, expect_err};

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
    assert_eq!(standing(&d, "clerk")["supports"], true);
    assert_eq!(standing(&d, "workos")["status"], "not_configured");

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

pub(super) async fn discover(s: &Server) -> serde_json::Value {
    s.call(
        Transport::Rest,
        "discovery",
        json!({"capability": "auth.user.create"}),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn metrics_count_requests_vendor_calls_and_replays() {
    let s = clerk_server().await;
    for t in [Transport::Rest, Transport::Grpc] {
        let req = json!({"email": format!("met-{t:?}@example.com"), "idempotency_key": format!("m-{t:?}")});
        s.call(t, "auth.user.create", req.clone()).await.unwrap();
        s.call(t, "auth.user.create", req).await.unwrap();
        let _ = s
            .call(t, "auth.user.get", json!({"user_id": "usr_nope"}))
            .await;
    }
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |needle: &str| {
        text.lines()
            .any(|l| l.contains(needle) && !l.starts_with('#'))
    };
    for needle in [
        r#"authmux_requests_total{rpc="UserService/CreateUser",transport="rest",code="0"}"#,
        r#"authmux_requests_total{rpc="UserService/CreateUser",transport="grpc",code="0"}"#,
        r#"rpc="UserService/GetUser",transport="rest",code="5""#,
        "authmux_request_duration_seconds_bucket",
        r#"authmux_vendor_calls_total{vendor="clerk",operation="create_user",outcome="ok"}"#,
        "authmux_vendor_call_duration_seconds_bucket",
        r#"authmux_idempotent_replays_total{operation="user.create"}"#,
    ] {
        assert!(has(needle), "missing {needle} in:\n{text}");
    }
}
