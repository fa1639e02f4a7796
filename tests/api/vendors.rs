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
        ("clerk", crate::emulators::clerk::SECRET_KEY),
        ("workos", crate::emulators::workos::API_KEY),
        ("supabase", crate::emulators::supabase::SERVICE_ROLE_KEY),
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

fn jwt_part(token: &str, i: usize) -> serde_json::Value {
    use base64::Engine;
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

async fn verify(s: &Server, t: Transport, token: &str) -> serde_json::Value {
    s.call(t, "auth.session.verify", json!({"session_id": token}))
        .await
        .unwrap()
}

/// Vendor sessions: the vendor's own token, authmux's ids and rules.
/// The vendor's own record shows the session ended.
fn assert_vendor_session_ended(s: &Server, vendor: &str, vendor_sid: &str) {
    match vendor {
        "clerk" => assert_eq!(
            s.clerk_keys.as_ref().unwrap().session_status(vendor_sid),
            Some("revoked")
        ),
        "workos" => assert_eq!(
            s.workos.as_ref().unwrap().session_revoked(vendor_sid),
            Some(true)
        ),
        _ => assert_eq!(
            s.supabase.as_ref().unwrap().session_revoked(vendor_sid),
            Some(true)
        ),
    }
}

async fn vendor_sessions(vendor: &'static str) {
    let s = Server::start_vendor(Backend::Sqlite, vendor).await.unwrap();
    let (alg, sid_claim) = match vendor {
        "clerk" | "workos" => ("RS256", "sid"),
        _ => ("ES256", "session_id"),
    };
    for t in [Transport::Rest, Transport::Grpc] {
        let u = s
            .call(
                t,
                "auth.user.create",
                json!({"email": format!("cs-{t:?}@example.com"), "password": "vendor password"}),
            )
            .await
            .unwrap();
        let user = u["user_id"].as_str().unwrap();
        crate::harness::confirm_email(&s, t, user).await;
        expect_err(
            s.call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": "not the one"}),
            )
            .await,
            "AUTH_INVALID_CREDENTIALS",
        );
        let session = s
            .call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": "vendor password"}),
            )
            .await
            .unwrap();
        let sid = session["session_id"].as_str().unwrap();
        assert!(sid.starts_with("ses_"), "ids stay authmux's");
        let access = session["access_token"].as_str().unwrap();
        // The access token is the vendor's own JWT.
        assert_eq!(jwt_part(access, 0)["alg"], alg);
        let claims = jwt_part(access, 1);
        let issuer = match vendor {
            "clerk" => s.clerk_keys.as_ref().unwrap().issuer(),
            "workos" => format!(
                "{}/user_management/{}",
                emulator(&s).base_url,
                crate::emulators::workos::CLIENT_ID
            ),
            _ => emulator(&s).base_url.clone(),
        };
        assert_eq!(
            claims["iss"],
            issuer.as_str(),
            "the vendor's default issuer"
        );
        assert!(!claims["sub"].as_str().unwrap().starts_with("usr_"));
        let vendor_sid = claims[sid_claim].as_str().unwrap().to_owned();

        // Verified against the vendor's JWKS, mapped back to authmux's ids.
        let v = verify(&s, t, access).await;
        assert_eq!(
            (v["valid"].clone(), v["user_id"].clone()),
            (json!(true), json!(user)),
            "{v}"
        );
        assert_eq!(verify(&s, t, sid).await["valid"], true);
        let mut parts: Vec<&str> = access.split('.').collect();
        let bad_sig = format!(
            "{}{}",
            if parts[2].starts_with('A') { 'B' } else { 'A' },
            &parts[2][1..]
        );
        parts[2] = &bad_sig;
        assert_eq!(
            verify(&s, t, &parts.join(".")).await["reason"],
            "bad_signature"
        );

        // Refresh: a new vendor token, authmux's rotation and reuse rules.
        let r1 = session["refresh_token"].as_str().unwrap();
        let next = s
            .call(t, "auth.session.refresh", json!({"refresh_token": r1}))
            .await
            .unwrap();
        assert_eq!(next["session_id"], sid);
        assert_eq!(
            jwt_part(next["access_token"].as_str().unwrap(), 1)[sid_claim],
            vendor_sid.as_str()
        );
        assert_eq!(
            verify(&s, t, next["access_token"].as_str().unwrap()).await["valid"],
            true
        );
        s.domain.clock().advance(std::time::Duration::from_secs(6));
        expect_err(
            s.call(t, "auth.session.refresh", json!({"refresh_token": r1}))
                .await,
            "AUTH_REFRESH_TOKEN_REUSED",
        );
        for token in [access, next["access_token"].as_str().unwrap()] {
            assert_eq!(verify(&s, t, token).await["reason"], "revoked");
        }
        // Reuse ends the vendor's session too, not only authmux's.
        assert_vendor_session_ended(&s, vendor, &vendor_sid);
        let session = s
            .call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": "vendor password"}),
            )
            .await
            .unwrap();
        let sid = session["session_id"].as_str().unwrap();
        let access = session["access_token"].as_str().unwrap();
        let vendor_sid = jwt_part(access, 1)[sid_claim].as_str().unwrap().to_owned();
        let next = s
            .call(
                t,
                "auth.session.refresh",
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await
            .unwrap();

        // Another project can't use this project's vendor token.
        let other = s.key_for(&format!("other-{t:?}")).await;
        let theirs = s
            .call_as(
                t,
                &other,
                "auth.session.verify",
                json!({"session_id": access}),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(theirs["reason"], "unknown_session");

        // Revoking ends it here at once and at the vendor.
        s.call(t, "auth.session.revoke", json!({"session_id": sid}))
            .await
            .unwrap();
        for token in [access, next["access_token"].as_str().unwrap(), sid] {
            assert_eq!(verify(&s, t, token).await["reason"], "revoked");
        }
        assert_vendor_session_ended(&s, vendor, &vendor_sid);
        expect_err(
            s.call(
                t,
                "auth.session.refresh",
                json!({"refresh_token": next["refresh_token"]}),
            )
            .await,
            "AUTH_SESSION_INVALID",
        );
    }
}

#[tokio::test]
async fn clerk_sessions_carry_clerk_tokens_and_authmux_rules() {
    vendor_sessions("clerk").await;
}

#[tokio::test]
async fn workos_sessions_carry_workos_tokens_and_authmux_rules() {
    vendor_sessions("workos").await;
}

#[tokio::test]
async fn supabase_sessions_carry_supabase_tokens_and_authmux_rules() {
    vendor_sessions("supabase").await;
}

#[tokio::test]
async fn clerk_key_rotation_is_followed() {
    key_rotation_is_followed("clerk").await;
}

#[tokio::test]
async fn supabase_key_rotation_is_followed() {
    key_rotation_is_followed("supabase").await;
}

/// A vendor rotates its signing key: new tokens carry an unknown kid, the
/// JWKS is fetched again, and tokens of both keys verify.
async fn key_rotation_is_followed(vendor: &'static str) {
    let s = Server::start_vendor(Backend::Sqlite, vendor).await.unwrap();
    let t = Transport::Grpc;
    let u = s
        .call(t, "auth.user.create", json!({"email": "rot@example.com"}))
        .await
        .unwrap();
    crate::harness::confirm_email(&s, t, u["user_id"].as_str().unwrap()).await;
    let first = s
        .call(t, "auth.session.create", json!({"user_id": u["user_id"]}))
        .await
        .unwrap();
    assert_eq!(
        verify(&s, t, first["access_token"].as_str().unwrap()).await["valid"],
        true
    );
    match vendor {
        "clerk" => s.clerk_keys.as_ref().unwrap().rotate(),
        _ => s.supabase.as_ref().unwrap().rotate(),
    }
    let second = s
        .call(t, "auth.session.create", json!({"user_id": u["user_id"]}))
        .await
        .unwrap();
    let new_kid = jwt_part(second["access_token"].as_str().unwrap(), 0)["kid"].clone();
    assert_ne!(
        new_kid,
        jwt_part(first["access_token"].as_str().unwrap(), 0)["kid"]
    );
    assert_eq!(
        verify(&s, t, second["access_token"].as_str().unwrap()).await["valid"],
        true
    );
    assert_eq!(
        verify(&s, t, first["access_token"].as_str().unwrap()).await["valid"],
        true
    );
    let n = s
        .call(
            t,
            "auth.session.revoke_all_for_user",
            json!({"user_id": u["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(n, json!({"revoked": 2}));
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

/// Clerk first, then WorkOS; no built-in provider in the rotation.
async fn failover_pair() -> Server {
    Server::start_vendors(Backend::Sqlite, &["clerk", "workos"], |c| {
        c.vendor_policy.vendor_priority = "clerk,workos".into();
    })
    .await
    .unwrap()
}

fn workos_emulator(s: &Server) -> &crate::emulators::Running {
    &s.other_emulators[0].1
}

/// A create that names no vendor (`mode` stops the harness from naming one).
async fn create_anywhere(
    s: &Server,
    email: &str,
) -> Result<serde_json::Value, crate::harness::ApiError> {
    s.call(
        Transport::Rest,
        "auth.user.create",
        json!({"email": email, "mode": "managed"}),
    )
    .await
}

#[tokio::test]
async fn create_fails_over_when_the_first_vendor_is_down() {
    let mut s = failover_pair().await;
    let u = create_anywhere(&s, "first@example.com").await.unwrap();
    assert_eq!(u["vendor"], "clerk", "the first in priority when it is up");
    s.emulator.as_mut().unwrap().stop();
    let u = create_anywhere(&s, "moved@example.com").await.unwrap();
    assert_eq!(u["vendor"], "workos");
    // Read back through WorkOS, where it is pinned.
    let got = s
        .call(
            Transport::Grpc,
            "auth.user.get",
            json!({"user_id": u["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(got["vendor"], "workos");
    // A caller who names the vendor gets no failover.
    let e = expect_err(
        s.call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "pinned@example.com", "vendor": "clerk"}),
        )
        .await,
        "VENDOR_UNAVAILABLE",
    );
    assert!(e.retry_after.is_some());
}

#[tokio::test]
async fn create_fails_over_on_5xx_after_checking_the_failed_vendor() {
    let s = failover_pair().await;
    faults(&s).fail_next = 1;
    let u = create_anywhere(&s, "five@example.com").await.unwrap();
    assert_eq!(u["vendor"], "workos");
    // And on 429 too.
    {
        let mut f = faults(&s);
        f.rate_limit_next = 1;
        f.retry_after = None;
    }
    let u = create_anywhere(&s, "limited@example.com").await.unwrap();
    assert_eq!(u["vendor"], "workos");
}

#[tokio::test]
async fn a_timeout_that_did_create_adopts_instead_of_creating_twice() {
    let s = failover_pair().await;
    // Clerk takes the user but answers after the 2 s timeout.
    {
        let mut f = faults(&s);
        f.latency_after = Duration::from_millis(2_500);
        f.slow_replies = 1;
    }
    let workos_before = workos_emulator(&s).requests();
    let u = create_anywhere(&s, "slow@example.com").await.unwrap();
    assert_eq!(u["vendor"], "clerk", "the user Clerk made is adopted");
    assert_eq!(
        workos_emulator(&s).requests(),
        workos_before,
        "WorkOS was never asked"
    );
    // Exactly one user, readable through Clerk.
    let got = s
        .call(
            Transport::Rest,
            "auth.user.get",
            json!({"user_id": u["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(got["email"], "slow@example.com");
    let list = s
        .call(Transport::Rest, "auth.user.list", json!({}))
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// Projects share the operator's vendor in managed mode: after a failed
/// create, the user found by email is adopted only when it carries this
/// attempt's own user id (Clerk `external_id`), never another project's.
async fn no_adoption_across_projects(backend: Backend) {
    let Some(s) = Server::start_vendors(backend, &["clerk", "workos"], |c| {
        c.vendor_policy.vendor_priority = "clerk,workos".into();
    })
    .await
    else {
        return;
    };
    let other = s.key_for("other-project").await;
    let theirs = s
        .call_as(
            Transport::Rest,
            &other,
            "auth.user.create",
            json!({"email": "shared@example.com", "vendor": "clerk"}),
            &[],
        )
        .await
        .unwrap();
    // Our create meets a Clerk 500; Clerk has a user with that email, but
    // it is the other project's.
    faults(&s).fail_next = 1;
    let workos_before = workos_emulator(&s).requests();
    for t in [Transport::Rest, Transport::Grpc] {
        let e = expect_err(
            s.call(
                t,
                "auth.user.create",
                json!({"email": "shared@example.com", "mode": "managed"}),
            )
            .await,
            "VENDOR_UNAVAILABLE",
        );
        assert!(e.retry_after.is_some(), "{e:?}");
        faults(&s).fail_next = 1;
    }
    faults(&s).fail_next = 0;
    assert_eq!(
        workos_emulator(&s).requests(),
        workos_before,
        "not re-homed"
    );
    let mine = s
        .call(Transport::Rest, "auth.user.list", json!({}))
        .await
        .unwrap();
    assert_eq!(mine["items"], json!([]), "nothing adopted");
    // The other project's user is untouched and still theirs.
    let got = s
        .call_as(
            Transport::Rest,
            &other,
            "auth.user.get",
            json!({"user_id": theirs["user_id"]}),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(got["email"], "shared@example.com");
}

#[tokio::test]
async fn no_adoption_across_projects_sqlite() {
    no_adoption_across_projects(Backend::Sqlite).await
}

#[tokio::test]
async fn no_adoption_across_projects_postgres() {
    no_adoption_across_projects(Backend::Postgres).await
}

#[tokio::test]
async fn no_failover_when_the_failed_vendor_cannot_be_checked() {
    let s = failover_pair().await;
    // Every Clerk reply comes too late: the create may have happened and
    // the lookup can't tell, so the user is not re-homed.
    {
        let mut f = faults(&s);
        f.latency_after = Duration::from_millis(2_500);
        f.slow_replies = 100;
    }
    let workos_before = workos_emulator(&s).requests();
    let e = expect_err(
        create_anywhere(&s, "unsure@example.com").await,
        "VENDOR_UNAVAILABLE",
    );
    assert!(e.retry_after.is_some());
    assert_eq!(
        workos_emulator(&s).requests(),
        workos_before,
        "not re-homed"
    );
}

// Multi-threaded: the CLI runs as a blocking child process against this
// process's database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byok_uses_only_the_projects_own_credentials() {
    use authmux::vendors::{ByokConfig, VendorKind};
    let s = clerk_server().await; // the operator's Clerk
    let (alpha_clerk, _) = crate::emulators::clerk::start_with_keys().await;
    let (beta_clerk, _) = crate::emulators::clerk::start_with_keys().await;
    let alpha = s.key_for("alpha").await;
    let beta = s.key_for("beta").await;
    let gamma = s.key_for("gamma").await;
    s.domain
        .set_vendor_credentials(
            "alpha",
            VendorKind::Clerk,
            ByokConfig {
                secret: crate::emulators::clerk::SECRET_KEY.into(),
                url: Some(alpha_clerk.base_url.clone()),
                client_id: None,
                issuer: None,
            },
        )
        .await
        .unwrap();
    // Beta's credentials go in through the CLI, as an operator would.
    let secret_file = s.data_dir().join("beta.secret");
    std::fs::write(&secret_file, crate::emulators::clerk::SECRET_KEY).unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_authmux"))
            .args(args)
            .env("AUTHMUX_DATA_DIR", s.data_dir())
            .env("AUTHMUX_DATABASE_URL", &s.database_url)
            .env_remove("AUTHMUX_MASTER_KEY")
            .output()
            .unwrap()
    };
    let out = cli(&[
        "vendors",
        "set",
        "--project",
        "beta",
        "--vendor",
        "clerk",
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--url",
        &beta_clerk.base_url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(cli(&["vendors", "list"]).stdout).unwrap();
    assert!(
        listed.contains("alpha")
            && listed.contains("beta")
            && listed.contains(&beta_clerk.base_url)
    );
    assert!(
        !listed.contains(crate::emulators::clerk::SECRET_KEY),
        "no secret listed"
    );
    let db = std::fs::read(s.data_dir().join("authmux.db")).unwrap_or_default();
    let wal = std::fs::read(s.data_dir().join("authmux.db-wal")).unwrap_or_default();
    let secret = crate::emulators::clerk::SECRET_KEY.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "secret stored sealed"
        );
    }

    let byok = json!({"email": "b@example.com", "vendor": "clerk", "mode": "byok"});
    let (m0, a0, b0) = (
        emulator(&s).requests(),
        alpha_clerk.requests(),
        beta_clerk.requests(),
    );
    for t in [Transport::Rest, Transport::Grpc] {
        let mut req = byok.clone();
        req["email"] = json!(format!("{t:?}@example.com"));
        let a = s
            .call_as(t, &alpha, "auth.user.create", req.clone(), &[])
            .await
            .unwrap();
        let b = s
            .call_as(t, &beta, "auth.user.create", req.clone(), &[])
            .await
            .unwrap();
        assert_eq!(
            (a["vendor"].clone(), b["vendor"].clone()),
            (json!("clerk"), json!("clerk"))
        );
        // Later calls go to the same project's Clerk.
        s.call_as(
            t,
            &alpha,
            "auth.user.get",
            json!({"user_id": a["user_id"]}),
            &[],
        )
        .await
        .unwrap();
        let session = s
            .call_as(
                t,
                &alpha,
                "auth.session.create",
                json!({"user_id": a["user_id"]}),
                &[],
            )
            .await
            .unwrap();
        let v = s
            .call_as(
                t,
                &alpha,
                "auth.session.verify",
                json!({"session_id": session["access_token"]}),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(v["valid"], true, "{v}");
        // A project without credentials of its own gets none of others'.
        let e = expect_err(
            s.call_as(t, &gamma, "auth.user.create", req.clone(), &[])
                .await,
            "VENDOR_NOT_CONFIGURED",
        );
        assert!(e.message.contains("vendors set"), "{e:?}");
    }
    // At most one request reached the operator's Clerk: the `GET /domains`
    // that tells its tokens' issuer, asked while routing a token by `iss`.
    assert!(
        emulator(&s).requests() <= m0 + 1,
        "the operator's Clerk was never used"
    );
    assert!(alpha_clerk.requests() > a0 && beta_clerk.requests() > b0);
    // Managed mode still uses the operator's.
    s.call_as(
        Transport::Rest,
        &gamma,
        "auth.user.create",
        json!({"email": "m@example.com", "vendor": "clerk"}),
        &[],
    )
    .await
    .unwrap();
    assert!(emulator(&s).requests() > m0);
}

#[tokio::test]
async fn health_probes_mark_a_silent_vendor_down() {
    let mut s = Server::start_vendors(Backend::Sqlite, &["clerk", "supabase", "workos"], |c| {
        c.vendor_policy.vendor_probe_ms = 100;
        c.vendor_policy.vendor_priority = "clerk,workos".into();
    })
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

async fn discover(s: &Server) -> serde_json::Value {
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

/// A server on a Clerk emulator with explicit shutdown timing; returns the
/// base URL, a key, a Clerk-held user, the shutdown trigger and the serve
/// task.
async fn server_with_timing(
    emu: &crate::emulators::Running,
    timing: authmux::server::ShutdownTiming,
) -> (
    String,
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = authmux::config::Settings::new(dir.path());
    settings.clerk.clerk_secret_key = Some(crate::emulators::clerk::SECRET_KEY.into());
    settings.clerk.clerk_base_url = emu.base_url.clone();
    settings.vendor_policy.vendor_probe_ms = 0;
    let domain = settings.domain().await.unwrap();
    let key = domain.create_api_key("shutdown").await.unwrap().key;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = authmux::server::app(domain).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(authmux::server::serve_with(
        listener,
        app,
        async {
            let _ = rx.await;
        },
        timing,
    ));
    let user: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/auth/user/create"))
        .bearer_auth(&key)
        .json(&json!({"email": "inflight@example.com", "vendor": "clerk"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = user["user_id"].as_str().unwrap().to_owned();
    (base, key, id, tx, task, dir)
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_within_the_grace() {
    let (emu, _) = crate::emulators::clerk::start_with_keys().await;
    let timing = authmux::server::ShutdownTiming {
        drain: Duration::ZERO,
        grace: Duration::from_secs(5),
    };
    let (base, key, id, stop, task, _dir) = server_with_timing(&emu, timing).await;
    // A request that spends 800 ms at the vendor is in flight at SIGTERM.
    emu.faults.lock().unwrap().latency = Duration::from_millis(800);
    let slow = tokio::spawn({
        let (base, key, id) = (base.clone(), key.clone(), id.clone());
        async move {
            reqwest::Client::new()
                .get(format!("{base}/v1/auth/user/get/{id}"))
                .bearer_auth(key)
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let resp = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    task.await.unwrap().unwrap();
    // And the listener is closed.
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_past_the_grace() {
    let (emu, _) = crate::emulators::clerk::start_with_keys().await;
    let timing = authmux::server::ShutdownTiming {
        drain: Duration::ZERO,
        grace: Duration::from_millis(200),
    };
    let (base, key, id, stop, task, _dir) = server_with_timing(&emu, timing).await;
    emu.faults.lock().unwrap().latency = Duration::from_millis(1_800);
    let slow = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("{base}/v1/auth/user/get/{id}"))
            .bearer_auth(key)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "stopped at the grace, not the request"
    );
    drop(slow);
}

/// Supabase takes a new `sb_secret_…` key in `apikey` alone and a legacy
/// service_role JWT as `apikey` and bearer; the adapter sends each the way
/// the platform accepts it.
#[tokio::test]
async fn supabase_takes_secret_and_legacy_keys() {
    use crate::emulators::supabase::{LEGACY_SERVICE_ROLE_KEY, SERVICE_ROLE_KEY};
    for key in [SERVICE_ROLE_KEY, LEGACY_SERVICE_ROLE_KEY] {
        let s = Server::start_vendors(Backend::Sqlite, &["supabase"], |c| {
            c.supabase.supabase_service_role_key = Some(key.into());
        })
        .await
        .unwrap();
        let u = s
            .call(
                Transport::Rest,
                "auth.user.create",
                json!({"email": "keys@example.com", "password": "vendor password"}),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", &key[..10]));
        let got = s
            .call(
                Transport::Rest,
                "auth.user.get",
                json!({"user_id": u["user_id"]}),
            )
            .await
            .unwrap();
        assert_eq!(got["vendor"], "supabase");
        crate::harness::confirm_email(&s, Transport::Rest, u["user_id"].as_str().unwrap()).await;
        s.call(
            Transport::Rest,
            "auth.session.create",
            json!({"user_id": u["user_id"], "method": "password", "password": "vendor password"}),
        )
        .await
        .unwrap();
    }
}

/// GoTrue's `filter` is a case-sensitive `LIKE` paged at 50: the lookup by
/// email lower-cases and escapes the address, reads every page and keeps
/// only an exact match.
#[tokio::test]
async fn supabase_lookup_by_email_is_exact_across_pages() {
    use authmux::vendors::http::Policy;
    use authmux::vendors::supabase::{Supabase, SupabaseConfig};
    use authmux::vendors::{IdentityVendor, NewIdentity};
    let (emulator, _handle) = crate::emulators::supabase::start().await;
    let sb = Supabase::new(
        SupabaseConfig {
            url: emulator.base_url.clone(),
            service_role_key: crate::emulators::supabase::SERVICE_ROLE_KEY.into(),
        },
        Policy::default(),
    );
    let metadata = serde_json::Map::new();
    let create = |user_id: String, email: String| {
        let sb = &sb;
        let metadata = &metadata;
        async move {
            sb.create_user(
                "prj_test",
                NewIdentity {
                    user_id: &user_id,
                    email: &email,
                    password: None,
                    metadata,
                },
            )
            .await
            .unwrap()
        }
    };
    let target = create("usr_target".into(), "a_b@example.com".into()).await;
    // Newer users that also match, filling the first page.
    for i in 0..55 {
        create(format!("usr_{i}"), format!("zz{i}-a_b@example.com")).await;
    }
    // `_` unescaped would match this one too.
    create("usr_x".into(), "axb@example.com".into()).await;

    let found = sb
        .find_user_by_email("prj_test", "A_B@Example.com")
        .await
        .unwrap()
        .expect("found past the first page, whatever the case");
    assert_eq!(found.id, target);
    assert_eq!(found.external_id.as_deref(), Some("usr_target"));
    assert_eq!(
        sb.find_user_by_email("prj_test", "a%b@example.com")
            .await
            .unwrap(),
        None,
        "a wildcard in the address matches nothing"
    );
    assert_eq!(
        sb.find_user_by_email("prj_test", "b@example.com")
            .await
            .unwrap(),
        None,
        "a substring is not a match"
    );
}

/// Clerk's session tokens are asked to live as long as authmux's access
/// tokens (Clerk's default is 60 s, under the refresh cooldown); a session
/// Clerk has ended refreshes to AUTH_SESSION_INVALID, not a 400.
#[tokio::test]
async fn clerk_tokens_live_as_long_as_access_tokens() {
    let s = Server::start_vendors(Backend::Sqlite, &["clerk"], |c| {
        c.tokens.access_ttl_secs = 600;
    })
    .await
    .unwrap();
    let u = s
        .call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "ttl@example.com", "password": "vendor password"}),
        )
        .await
        .unwrap();
    let session = s
        .call(
            Transport::Rest,
            "auth.session.create",
            json!({"user_id": u["user_id"], "method": "password", "password": "vendor password"}),
        )
        .await
        .unwrap();
    let claims = jwt_part(session["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600,
        "{claims}"
    );
    // Clerk ends the session (say, the user signed out elsewhere).
    let ended = s
        .http
        .post(format!(
            "{}/sessions/{}/revoke",
            emulator(&s).base_url,
            claims["sid"].as_str().unwrap()
        ))
        .bearer_auth(crate::emulators::clerk::SECRET_KEY)
        .header("clerk-api-version", "2026-05-12")
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    for t in [Transport::Rest, Transport::Grpc] {
        expect_err(
            s.call(
                t,
                "auth.session.refresh",
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await,
            "AUTH_SESSION_INVALID",
        );
    }
}
