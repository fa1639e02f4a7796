//! Two servers on one database behave as one service.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{
    Backend, Process, Server, Transport, eventually, postgres_database, spawn_serve,
};

async fn pair(backend: Backend) -> Option<(Server, Server)> {
    let a = Server::start(backend).await?;
    let mut settings = authmux::config::Settings::new(a.data_dir());
    settings.store.database_url = Some(a.database_url.clone().into());
    let b = Server::start_on(tempfile::tempdir().unwrap(), settings).await;
    Some((a, b))
}

async fn verify(s: &Server, token: &str) -> serde_json::Value {
    s.call(
        Transport::Grpc,
        "auth.session.verify",
        json!({"session_id": token}),
    )
    .await
    .unwrap()
}

async fn revocation_reaches_the_other_replica(backend: Backend) {
    let Some((a, b)) = pair(backend).await else {
        return;
    };
    let t = Transport::Grpc;
    let user = a
        .call(t, "auth.user.create", json!({"email": "rep@example.com"}))
        .await
        .unwrap();
    // A user made on one is read on the other.
    let got = b
        .call(t, "auth.user.get", json!({"user_id": user["user_id"]}))
        .await
        .unwrap();
    assert_eq!(got, user);
    let session = a
        .call(
            t,
            "auth.session.create",
            json!({"user_id": user["user_id"]}),
        )
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap();
    assert_eq!(verify(&b, token).await["valid"], true);
    a.call(
        t,
        "auth.session.revoke",
        json!({"session_id": session["session_id"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        verify(&a, token).await["reason"],
        "revoked",
        "at once on the revoking replica"
    );
    let b = &b;
    eventually(
        Duration::from_secs(1),
        Duration::from_millis(20),
        "revocation not seen within 1 s",
        move || async move { verify(b, token).await["reason"] == "revoked" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_reaches_the_other_replica() {
    revocation_reaches_the_other_replica(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_reaches_the_other_replica() {
    if std::env::var("AUTHMUX_TEST_DATABASE_URL").is_err() {
        let _ = postgres_database().await; // prints the skip reason
        return;
    }
    revocation_reaches_the_other_replica(Backend::Postgres).await;
}

async fn keys_cooldowns_and_rotation_hold_across_replicas(backend: Backend) {
    let Some(a) = Server::start_with(backend, |c| c.tokens.refresh_cooldown_secs = 300).await
    else {
        return;
    };
    let mut settings = authmux::config::Settings::new(a.data_dir());
    settings.store.database_url = Some(a.database_url.clone().into());
    let b = Server::start_on(tempfile::tempdir().unwrap(), settings).await;
    let t = Transport::Rest;

    // One idempotency key, sent to both replicas at once: one user.
    let req = json!({"email": "twice@example.com", "idempotency_key": "shared-key"});
    let (ra, rb) = tokio::join!(
        a.call(t, "auth.user.create", req.clone()),
        b.call(t, "auth.user.create", req.clone())
    );
    let replies: Vec<_> = [ra, rb].into_iter().filter_map(Result::ok).collect();
    assert!(!replies.is_empty());
    let list = b.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "one user");
    let again = b.call(t, "auth.user.create", req).await.unwrap();
    assert_eq!(
        again, replies[0],
        "the other replica replays the same reply"
    );

    // A refresh cooldown set on one replica holds on the other.
    let user = &list["items"][0]["user_id"];
    let session = a
        .call(t, "auth.session.create", json!({"user_id": user}))
        .await
        .unwrap();
    let e = b
        .call(
            t,
            "auth.session.refresh",
            json!({"refresh_token": session["refresh_token"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "AUTH_REFRESH_TOO_FREQUENT");

    // A signing key rotated on one replica signs there and verifies on the
    // other within its reload interval.
    a.domain.keyring().rotate().await.unwrap();
    let fresh = a
        .call(t, "auth.session.create", json!({"user_id": user}))
        .await
        .unwrap();
    let token = fresh["access_token"].as_str().unwrap();
    let b = &b;
    eventually(
        Duration::from_secs(3),
        Duration::from_millis(50),
        "rotation not seen by the other replica",
        move || async move { verify(b, token).await["valid"] == true },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keys_cooldowns_and_rotation_hold_across_replicas() {
    keys_cooldowns_and_rotation_hold_across_replicas(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keys_cooldowns_and_rotation_hold_across_replicas() {
    keys_cooldowns_and_rotation_hold_across_replicas(Backend::Postgres).await;
}

/// A project's own credentials may not share a token issuer (tokens are
/// routed by `iss`): two replicas setting two vendors' credentials with the
/// same issuer at once leave exactly one of them stored.
async fn byok_issuers_stay_distinct_under_races(backend: Backend) {
    use authmux::vendors::{ByokConfig, VendorKind};
    let Some((a, b)) = pair(backend).await else {
        return;
    };
    a.key_for("alpha").await;
    // Nothing listens there: setting credentials reads no vendor when the
    // issuer is given.
    let config = |issuer: &str, client_id: Option<&str>| ByokConfig {
        secret: "sk_test_race".into(),
        url: Some("http://127.0.0.1:9".into()),
        client_id: client_id.map(Into::into),
        issuer: Some(issuer.into()),
    };
    for round in 0..8 {
        let issuer = format!("https://auth{round}.alpha.example");
        let (clerk, workos) = tokio::join!(
            a.domain
                .set_vendor_credentials("alpha", VendorKind::Clerk, config(&issuer, None)),
            b.domain.set_vendor_credentials(
                "alpha",
                VendorKind::Workos,
                config(&issuer, Some("client_race"))
            )
        );
        match (&clerk, &workos) {
            (Ok(()), Err(e)) | (Err(e), Ok(())) => {
                assert!(
                    e.code == authmux::domain::ErrorCode::InvalidArgument
                        && e.message.contains(&issuer),
                    "round {round}: {e:?}"
                );
            }
            _ => panic!("round {round}: exactly one may carry {issuer}: {clerk:?} {workos:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_byok_issuers_stay_distinct_under_races() {
    byok_issuers_stay_distinct_under_races(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_byok_issuers_stay_distinct_under_races() {
    byok_issuers_stay_distinct_under_races(Backend::Postgres).await;
}

async fn rest(
    http: &reqwest::Client,
    p: &Process,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut rb = http
        .request(method.clone(), format!("{}{path}", p.base))
        .bearer_auth(key);
    if method != reqwest::Method::GET {
        rb = rb.json(&body);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Two `authmux serve` processes on one database: users, revocations,
/// idempotency keys, cooldowns and key rotations are shared.
async fn two_processes(backend: Backend) {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("shared.db").display()),
        Backend::Postgres => match postgres_database().await {
            Some(u) => u,
            None => return,
        },
    };
    let (_, master) = authmux::crypto::MasterKey::generate();
    let mut settings = authmux::config::Settings::new(dir.path());
    settings.store.database_url = Some(url.clone().into());
    settings.store.master_key = Some(master.clone().into());
    let domain = settings.domain().await.unwrap();
    let key = domain.create_api_key("replicas").await.unwrap().key;
    let env = [
        ("AUTHMUX_DATABASE_URL", url.as_str()),
        ("AUTHMUX_MASTER_KEY", master.as_str()),
        ("AUTHMUX_SHUTDOWN_DRAIN_SECS", "0"),
    ];
    let a = spawn_serve(dir.path(), &env);
    let b = spawn_serve(dir.path(), &env);
    let http = reqwest::Client::new();

    let (s, user) = rest(
        &http,
        &a,
        &key,
        Method::POST,
        "/v1/auth/user/create",
        json!({"email": "p@example.com"}),
    )
    .await;
    assert_eq!(s, 200, "{user}");
    let id = user["user_id"].as_str().unwrap();
    let (s, got) = rest(
        &http,
        &b,
        &key,
        Method::GET,
        &format!("/v1/auth/user/get/{id}"),
        json!(null),
    )
    .await;
    assert_eq!((s, &got), (200, &user));

    // The same idempotency key on both processes: one effect, one reply.
    let req = json!({"email": "idem@example.com"});
    let create = |p: &Process| {
        http.post(format!("{}/v1/auth/user/create", p.base))
            .bearer_auth(&key)
            .header("Idempotency-Key", "across")
            .json(&req)
            .send()
    };
    let (ra, rb) = (create(&a).await.unwrap(), create(&b).await.unwrap());
    let (sa, sb) = (ra.status().as_u16(), rb.status().as_u16());
    let ra: serde_json::Value = ra.json().await.unwrap();
    let rb: serde_json::Value = rb.json().await.unwrap();
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(ra, rb);

    // A session revoked on one fails on the other within a second.
    let (_, session) = rest(
        &http,
        &a,
        &key,
        Method::POST,
        "/v1/auth/session/create",
        json!({"user_id": id}),
    )
    .await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    // The cooldown set by the mint on one holds on the other.
    let (s, e) = rest(
        &http,
        &b,
        &key,
        Method::POST,
        "/v1/auth/session/refresh",
        json!({"refresh_token": session["refresh_token"]}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (429, Some("AUTH_REFRESH_TOO_FREQUENT"))
    );
    let (_, v) = rest(
        &http,
        &b,
        &key,
        Method::GET,
        &format!("/v1/auth/session/verify/{token}"),
        json!(null),
    )
    .await;
    assert_eq!(v["valid"], true);
    let sid = session["session_id"].as_str().unwrap();
    rest(
        &http,
        &a,
        &key,
        Method::POST,
        &format!("/v1/auth/session/revoke/{sid}"),
        json!({}),
    )
    .await;
    let (http_ref, b_ref, key_ref, token_ref) = (&http, &b, &key, &token);
    eventually(
        Duration::from_secs(1),
        Duration::from_millis(20),
        "revocation not seen within 1 s",
        move || async move {
            let path = format!("/v1/auth/session/verify/{token_ref}");
            let (_, v) = rest(http_ref, b_ref, key_ref, Method::GET, &path, json!(null)).await;
            v["reason"] == "revoked"
        },
    )
    .await;

    // A key rotated through one is used and trusted by both.
    domain.keyring().rotate().await.unwrap();
    let new_kid = domain.keyring().signer().kid.clone();
    let start = Instant::now();
    loop {
        let (_, jwks) = rest(
            &http,
            &b,
            &key,
            Method::GET,
            "/.well-known/jwks.json",
            json!(null),
        )
        .await;
        let (_, s) = rest(
            &http,
            &a,
            &key,
            Method::POST,
            "/v1/auth/session/create",
            json!({"user_id": id}),
        )
        .await;
        let t = s["access_token"].as_str().unwrap_or("").to_owned();
        let signed_new = t.split('.').next().is_some_and(|h| {
            use base64::Engine;
            let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap_or_default();
            serde_json::from_slice::<serde_json::Value>(&h).unwrap_or_default()["kid"]
                == new_kid.as_str()
        });
        let listed = jwks.to_string().contains(&new_kid);
        if signed_new && listed {
            let (_, v) = rest(
                &http,
                &b,
                &key,
                Method::GET,
                &format!("/v1/auth/session/verify/{t}"),
                json!(null),
            )
            .await;
            assert_eq!(v["valid"], true, "{v}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "rotation not picked up by both"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_serve_processes_act_as_one() {
    two_processes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_serve_processes_act_as_one() {
    two_processes(Backend::Postgres).await;
}
