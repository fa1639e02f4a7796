//! Two servers on one database behave as one service.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Backend, Server, Transport, postgres_database};

async fn pair(backend: Backend) -> Option<(Server, Server)> {
    let a = Server::start(backend).await?;
    let mut settings = authmux::config::Settings::new(a.data_dir());
    settings.database_url = Some(a.database_url.clone());
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
    let start = Instant::now();
    loop {
        if verify(&b, token).await["reason"] == "revoked" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "revocation not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let Some(a) = Server::start_with(backend, |c| c.refresh_cooldown_secs = 300).await else {
        return;
    };
    let mut settings = authmux::config::Settings::new(a.data_dir());
    settings.database_url = Some(a.database_url.clone());
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
    let start = Instant::now();
    loop {
        if verify(&b, token).await["valid"] == true {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "rotation not seen by the other replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keys_cooldowns_and_rotation_hold_across_replicas() {
    keys_cooldowns_and_rotation_hold_across_replicas(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keys_cooldowns_and_rotation_hold_across_replicas() {
    keys_cooldowns_and_rotation_hold_across_replicas(Backend::Postgres).await;
}
