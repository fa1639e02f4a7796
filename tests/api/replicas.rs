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
