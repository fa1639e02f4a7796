//! Per-project and per-address request rates, over both transports.

use futures::future::join_all;
use serde_json::json;
use tonic_types::StatusExt;

use crate::harness::{Backend, Server, Transport};
use authmux_testkit::contract;

/// A rate slow enough that refills can't blur the counts even when the
/// machine is loaded: 1 per second after a burst of 3; failed
/// authentications 1 per second after 5.
fn tight(c: &mut authmux::config::Settings) {
    c.rate_limit.rate_limit_per_second = 1;
    c.rate_limit.rate_limit_burst = 3;
    c.rate_limit.anonymous_rate_limit_per_second = 1;
    c.rate_limit.anonymous_rate_limit_burst = 5;
}

async fn projects_are_held_to_their_rate(s: &Server, t: Transport) {
    let results = join_all((0..15).map(|_| s.call(t, "auth.user.list", json!({})))).await;
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(refused.len() >= 8, "{} refused of 15", refused.len());
    assert!(refused.len() < 15, "the burst was served");
    for e in &refused {
        assert_eq!(e.code, "RATE_LIMITED", "{e:?}");
        assert!(e.retry_after.is_some_and(|r| r >= 1), "{e:?}");
    }
    // Another project has a bucket of its own.
    let other = s.key_for("other").await;
    s.call_as(t, &other, "auth.user.list", json!({}), &[])
        .await
        .unwrap();
    // Given its own, higher limit, the project is served again.
    s.domain
        .set_rate_limit(
            "tests",
            Some(authmux::domain::RateLimit {
                per_second: 1_000,
                burst: 1_000,
            }),
        )
        .await
        .unwrap();
    let results = join_all((0..15).map(|_| s.call(t, "auth.user.list", json!({})))).await;
    assert!(results.iter().all(Result::is_ok));
}
contract!(projects_are_held_to_their_rate, tight);

/// The wire details: IETF headers on REST, RetryInfo on gRPC.
#[tokio::test]
async fn refusals_say_when_to_retry() {
    let s = Server::start_with(Backend::Sqlite, tight).await.unwrap();
    for _ in 0..5 {
        let _ = s.call(Transport::Rest, "auth.user.list", json!({})).await;
    }
    let resp = s
        .http
        .get(format!("{}/v1/auth/user/list", s.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let h = resp.headers();
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        h["ratelimit-policy"].to_str().unwrap(),
        "\"project\";q=1;w=1;burst=3"
    );
    assert!(
        h["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"project\";r=0;t=")
    );

    let mut client =
        authmux::pb::v1::user_service_client::UserServiceClient::new(s.channel.clone());
    let mut req = tonic::Request::new(authmux::pb::v1::ListUsersRequest::default());
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", s.key).parse().unwrap(),
    );
    let status = client.list_users(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "RATE_LIMITED");
    assert!(details.retry_info().unwrap().retry_delay.is_some());
}

/// Requests that fail authentication draw from their address's bucket:
/// past it, 429 instead of 401, so keys can't be guessed at line rate.
async fn guessing_keys_is_throttled(s: &Server, t: Transport) {
    let mut codes = Vec::new();
    for i in 0..40 {
        let key = format!("amx_guess{i}");
        let e = s
            .call_as(t, &key, "auth.user.list", json!({}), &[])
            .await
            .unwrap_err();
        codes.push(e.code);
    }
    assert_eq!(codes[0], "AUTH_INVALID_API_KEY");
    assert!(
        codes.iter().filter(|c| *c == "RATE_LIMITED").count() >= 25,
        "{codes:?}"
    );
    // A valid key is not held back by the address's failures.
    s.call(t, "auth.user.list", json!({})).await.unwrap();
}
contract!(guessing_keys_is_throttled, tight);

/// `authmux projects set-rate-limit` stores a project's own limit.
#[tokio::test]
async fn the_cli_sets_a_projects_limit() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_authmux"))
            .args(args)
            .env("AUTHMUX_DATA_DIR", dir.path())
            .env_remove("AUTHMUX_DATABASE_URL")
            .env_remove("AUTHMUX_MASTER_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["keys", "create", "--project", "acme"]);
    let said = run(&[
        "projects",
        "set-rate-limit",
        "--project",
        "acme",
        "--per-second",
        "7",
    ]);
    assert!(said.contains("7 requests per second, burst 14"), "{said}");
    let store = authmux::config::Settings::new(dir.path())
        .store()
        .await
        .unwrap();
    let p = store.project_by_name("acme").await.unwrap().unwrap();
    assert_eq!(
        (p.rate_limit_per_second, p.rate_limit_burst),
        (Some(7), Some(14))
    );
    run(&[
        "projects",
        "set-rate-limit",
        "--project",
        "acme",
        "--default",
    ]);
    let p = store.project_by_name("acme").await.unwrap().unwrap();
    assert_eq!(p.rate_limit_per_second, None);
}
