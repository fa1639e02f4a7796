//! Webhooks: delivered as Standard Webhooks say (checked by the reference
//! library from PyPI in a receiver on loopback), retried, ordered per
//! user, shared out across replicas, kept across a restart, and never sent
//! where they must not go.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Backend, Server, Transport, eventually, expect_err, postgres_database};
use authmux_testkit::contract;

/// A Python receiver verifying every request with `standardwebhooks`.
struct Receiver {
    url: String,
    log: PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    authmux_testkit::python::venv(
        root,
        "webhooks-venv",
        &root.join("tests/webhooks/requirements.txt"),
    )
}

impl Receiver {
    /// Starts a receiver; `None` without Python.
    async fn start(plan: Value) -> Option<Receiver> {
        let py = tokio::task::spawn_blocking(python).await.unwrap()?;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/receiver.py");
        let mut child = tokio::process::Command::new(py)
            .arg(script)
            .arg(dir.path().join("secret"))
            .arg(&log)
            .arg(plan.to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut port = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut port)
            .await
            .unwrap();
        Some(Receiver {
            url: format!("http://127.0.0.1:{}/hook", port.trim()),
            log,
            _child: child,
            _dir: dir,
        })
    }

    /// Tells the receiver the endpoint's secret.
    fn know(&self, secret: &str) {
        std::fs::write(self._dir.path().join("secret"), secret).unwrap();
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Requests answered so far.
    fn entries(&self) -> Vec<Value> {
        Self::lines(&self.log)
    }

    /// Requests that arrived so far (answered or not).
    fn arrivals(&self) -> Vec<Value> {
        Self::lines(&self._dir.path().join("log.jsonl.started"))
    }

    async fn wait_for(&self, n: usize, what: &str) -> Vec<Value> {
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(50),
            what,
            || async { self.entries().len() >= n },
        )
        .await;
        self.entries()
    }
}

fn allow_loopback(c: &mut authmux::config::Settings) {
    c.webhooks.webhook_allow_http_loopback = true;
    c.webhooks.webhook_poll_ms = 50;
    c.webhooks.webhook_timeout_ms = 1_000;
}

/// Adds an endpoint for the event `types` (all when empty), served by a
/// receiver following `plan`.
async fn endpoint(
    s: &Server,
    t: Transport,
    types: Value,
    plan: Value,
) -> Option<(Value, Receiver)> {
    let receiver = Receiver::start(plan).await?;
    let made = s
        .call(
            t,
            "webhooks.endpoints@post",
            json!({"url": receiver.url, "event_types": types}),
        )
        .await
        .unwrap();
    let secret = made["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{made}");
    receiver.know(secret);
    Some((made, receiver))
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn deliveries(s: &Server, t: Transport) -> Vec<Value> {
    let page = s
        .call(t, "webhooks.deliveries@get", json!({"limit": 200}))
        .await
        .unwrap();
    let mut items = page["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

/// The deliveries the operator sees of endpoint `id`, oldest first.
async fn deliveries_of(s: &Server, t: Transport, id: &str) -> Vec<Value> {
    deliveries(s, t)
        .await
        .into_iter()
        .filter(|d| d["endpoint_id"] == id)
        .collect()
}

/// Adds an endpoint at an address nothing listens on; its id.
async fn unreachable_endpoint(s: &Server, t: Transport) -> String {
    let made = s
        .call(
            t,
            "webhooks.endpoints@post",
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await
        .unwrap();
    made["endpoint"]["endpoint_id"].as_str().unwrap().to_owned()
}

/// The audit log's `webhook.endpoint_disabled` events, newest first.
async fn disabled_events(s: &Server, t: Transport) -> Value {
    s.call(
        t,
        "auth.audit",
        json!({"type": "webhook.endpoint_disabled"}),
    )
    .await
    .unwrap()
}

/// Events reach a receiver that verifies them with the reference library;
/// an endpoint gets only the types it asked for; the secret is shown once.
async fn deliveries_verify_with_the_reference_library(s: &Server, t: Transport) {
    let Some((all, everything)) = endpoint(s, t, json!([]), json!({})).await else {
        return;
    };
    let Some((_, deletions)) = endpoint(s, t, json!(["user.deleted"]), json!({})).await else {
        return;
    };
    let u = crate::harness::create_user(s, t, "hook@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": id, "email_verified": true}),
    )
    .await
    .unwrap();
    s.call(t, "auth.user.delete", json!({"user_id": id}))
        .await
        .unwrap();

    let got = everything.wait_for(3, "three deliveries").await;
    for e in &got {
        assert_eq!(e["verified"], true, "{e}");
        assert_eq!(e["status"], 200, "{e}");
        assert_eq!(e["data"]["user_id"], json!(id), "{e}");
    }
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["user.created", "user.updated", "user.deleted"]);
    let audit = s
        .call(t, "auth.audit", json!({"user_id": id}))
        .await
        .unwrap();
    let mut event_ids: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    event_ids.reverse();
    assert_eq!(ids(&got), event_ids, "webhook-id is the event's id");
    for e in &got {
        assert_eq!(e["data"]["event_id"], e["id"]);
    }

    let only = deletions.wait_for(1, "the deletion").await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["type"], "user.deleted");
    assert_eq!(only[0]["verified"], true);

    // Delivered, once each, as the operator sees it.
    let listed = deliveries(s, t).await;
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .all(|d| d["status"] == "delivered" && d["attempts"] == 1),
        "{listed:?}"
    );
    let endpoints = s
        .call(t, "webhooks.endpoints@get", json!({}))
        .await
        .unwrap();
    assert_eq!(endpoints["items"].as_array().unwrap().len(), 2);
    assert!(
        !endpoints.to_string().contains("whsec_"),
        "the secret is shown once"
    );
    assert_eq!(
        endpoints["items"][0]["endpoint_id"],
        all["endpoint"]["endpoint_id"]
    );

    // A wrong secret is caught by the library: the check can fail.
    everything.know("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    s.call(t, "auth.user.create", json!({"email": "late@example.com"}))
        .await
        .unwrap();
    let got = everything.wait_for(4, "a fourth delivery").await;
    assert_eq!(got[3]["verified"], false, "{}", got[3]);
}

contract!(deliveries_verify_with_the_reference_library, allow_loopback, vendors[]);

/// A failed attempt (a 500, a timeout, a redirect) is retried on the
/// schedule, and a user's later events wait for the earlier one.
async fn retries_keep_each_users_order(s: &Server, t: Transport) {
    let Some((_, r)) = endpoint(
        s,
        t,
        json!([]),
        json!({"answers": [{"status": 500}, {"sleep": 2.0}, {"redirect": "http://127.0.0.1:9/"}]}),
    )
    .await
    else {
        return;
    };
    let u = crate::harness::create_user(s, t, "order@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": id, "email_verified": true}),
    )
    .await
    .unwrap();
    let clock = s.domain.clock();
    r.wait_for(1, "the first attempt").await;
    // Retries are 5 s, then 5 min, then 30 min later (±10%).
    for (wait, n) in [(6, 2), (6 * 60, 3), (34 * 60, 4)] {
        // The failed attempt is recorded (its retry time set) before the
        // clock moves.
        let what = format!("attempt {} recorded", n - 1);
        eventually(
            Duration::from_secs(20),
            Duration::from_millis(50),
            &what,
            || async { deliveries(s, t).await[0]["attempts"] == n - 1 },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(r.arrivals().len(), n - 1, "nothing is sent before its time");
        clock.advance(Duration::from_secs(wait));
        let what = format!("attempt {n}");
        eventually(
            Duration::from_secs(20),
            Duration::from_millis(50),
            &what,
            || async { r.arrivals().len() >= n },
        )
        .await;
    }
    let got = r.wait_for(5, "the retry and the next event").await;
    let first = got[0]["id"].as_str().unwrap();
    let arrived: Vec<String> = r
        .arrivals()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        &arrived[..4],
        [first, first, first, first],
        "the update waits for the create"
    );
    assert_ne!(arrived[4], first);
    assert!(got.iter().all(|e| e["verified"] == true), "{got:?}");

    let listed = deliveries(s, t).await;
    assert_eq!(listed[0]["status"], "delivered");
    assert_eq!(listed[0]["attempts"], 4);
    assert_eq!(listed[0]["last_status_code"], 200);
    assert_eq!(listed[1]["status"], "delivered");
    assert_eq!(listed[1]["attempts"], 1);
}

contract!(retries_keep_each_users_order, allow_loopback, vendors[]);

/// A user's consent events arrive in the ledger's order even when another
/// replica, its clock an hour ahead, announced the earlier change and
/// queued its delivery by that clock: the revocation recorded there, then
/// a grant and a revocation recorded here, reach the receiver in that
/// order, the audit log's, and the last to arrive is the current state.
async fn consent_events_arrive_in_the_ledgers_order(s: &Server, t: Transport) {
    let Some((_, r)) = endpoint(
        s,
        t,
        json!(["consent.granted", "consent.revoked"]),
        json!({}),
    )
    .await
    else {
        return;
    };
    let u = crate::harness::create_user(s, t, "consent-order@example.com").await;
    let user = u["user_id"].as_str().unwrap();
    let ahead = crate::attacks::revoke_as_a_replica_ahead(s, user, "marketing").await;
    for call in ["auth.consent.grant", "auth.consent.revoke"] {
        s.call(t, call, json!({"user_id": user, "category": "marketing"}))
            .await
            .unwrap();
    }
    // Every change is timed after the one an hour ahead: none is due yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.arrivals().len(), 0, "nothing is sent before its time");
    s.domain.clock().advance(Duration::from_secs(3_601));
    let got = r.wait_for(3, "the three consent events").await;
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["consent.revoked", "consent.granted", "consent.revoked"],
        "arrived as {got:?}"
    );
    assert_eq!(got[0]["id"], json!(ahead), "{got:?}");
    let audit = s
        .call(t, "auth.audit", json!({"user_id": user}))
        .await
        .unwrap();
    let mut announced: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("consent."))
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    announced.reverse();
    assert_eq!(ids(&got), announced, "in the audit log's order");
    let checked = s
        .call(
            t,
            "auth.consent.check",
            json!({"user_id": user, "category": "marketing"}),
        )
        .await
        .unwrap();
    assert_eq!(checked["granted"], false, "{checked}");
}

contract!(consent_events_arrive_in_the_ledgers_order, allow_loopback, vendors[]);

/// Waits for the newest delivery's first `n` attempts, each failing, to be
/// recorded, moving the clock past the longest wait after each.
async fn fail_attempts(s: &Server, t: Transport, n: usize) {
    for n in 1..=n {
        // Each failed attempt is recorded (its retry time set) before the
        // clock moves on by more than the longest wait.
        let what = format!("attempt {n} recorded");
        eventually(
            Duration::from_secs(20),
            Duration::from_millis(50),
            &what,
            || async { deliveries(s, t).await[0]["attempts"] == n },
        )
        .await;
        s.domain.clock().advance(Duration::from_secs(23 * 3600));
    }
}

/// A delivery failing on every attempt for about three days is given up
/// and its endpoint disabled, with an event saying so; a replay sends it
/// again and enables the endpoint.
async fn given_up_deliveries_disable_the_endpoint(s: &Server, t: Transport) {
    let Some((made, r)) = endpoint(s, t, json!([]), json!({"status": 503})).await else {
        return;
    };
    crate::harness::create_user(s, t, "down@example.com").await;
    fail_attempts(s, t, 10).await;
    assert_eq!(r.entries().len(), 10);
    let listed = deliveries(s, t).await;
    assert_eq!(listed[0]["status"], "failed");
    assert_eq!(listed[0]["attempts"], 10);
    assert_eq!(listed[0]["last_status_code"], 503);
    let endpoints = s
        .call(t, "webhooks.endpoints@get", json!({}))
        .await
        .unwrap();
    assert!(
        endpoints["items"][0]["disabled_at"].is_string(),
        "{endpoints}"
    );
    let disabled = disabled_events(s, t).await;
    assert_eq!(
        disabled["items"][0]["data"]["endpoint_id"],
        made["endpoint"]["endpoint_id"]
    );

    // Nothing more is queued for a disabled endpoint.
    crate::harness::create_user(s, t, "later@example.com").await;
    assert_eq!(deliveries(s, t).await.len(), 1);

    let replayed = s
        .call(
            t,
            "webhooks.deliveries@post",
            json!({"delivery_id": listed[0]["delivery_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(replayed["status"], "pending");
    assert_eq!(replayed["attempts"], 0);
    r.wait_for(11, "the replay").await;
    let endpoints = s
        .call(t, "webhooks.endpoints@get", json!({}))
        .await
        .unwrap();
    assert!(
        endpoints["items"][0].get("disabled_at").is_none(),
        "{endpoints}"
    );
    expect_err(
        s.call(
            t,
            "webhooks.deliveries@post",
            json!({"delivery_id": "dlv_0123456789abcdef0123456789abcdef"}),
        )
        .await,
        "NOT_FOUND",
    );
}

contract!(given_up_deliveries_disable_the_endpoint, allow_loopback, vendors[]);

/// The same replay sent twice at once: both answer the delivery, queued
/// again, and it is sent again and ends delivered (at least once: each
/// replay may send it).
async fn a_replay_sent_twice_at_once(s: &Server, t: Transport) {
    let Some((_, r)) = endpoint(s, t, json!([]), json!({})).await else {
        return;
    };
    crate::harness::create_user(s, t, "twice@example.com").await;
    r.wait_for(1, "the first delivery").await;
    let listed = deliveries(s, t).await;
    let replay = || {
        s.call(
            t,
            "webhooks.deliveries@post",
            json!({"delivery_id": listed[0]["delivery_id"]}),
        )
    };
    let (a, b) = tokio::join!(replay(), replay());
    for replayed in [a, b] {
        let replayed = replayed.unwrap();
        assert_eq!(replayed["delivery_id"], listed[0]["delivery_id"]);
    }
    let got = r.wait_for(2, "the replay").await;
    assert!(got.iter().all(|e| e["verified"] == true), "{got:?}");
    assert!(got.iter().all(|e| e["id"] == got[0]["id"]), "{got:?}");
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the replay delivered",
        || async { deliveries(s, t).await[0]["status"] == "delivered" },
    )
    .await;
    let listed = deliveries(s, t).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["attempts"], 1, "{listed:?}");
}

contract!(a_replay_sent_twice_at_once, allow_loopback, vendors[]);

/// A replay sent while the delivery's last attempt is in flight stands:
/// the attempt's failure, landing after it, neither gives the delivery up
/// nor disables its endpoint, and the delivery is sent again at once.
async fn a_replay_during_the_last_attempt_stands(s: &Server, t: Transport) {
    // Nine refusals, then a tenth answer slower than the 1 s timeout, then
    // 200s.
    let mut answers = vec![json!({"status": 503}); 9];
    answers.push(json!({"sleep": 2.0, "status": 503}));
    let Some((_, r)) = endpoint(s, t, json!([]), json!({ "answers": answers })).await else {
        return;
    };
    crate::harness::create_user(s, t, "replayed@example.com").await;
    fail_attempts(s, t, 9).await;
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(20),
        "the last attempt in flight",
        || async { r.arrivals().len() == 10 },
    )
    .await;
    let listed = deliveries(s, t).await;
    let replayed = s
        .call(
            t,
            "webhooks.deliveries@post",
            json!({"delivery_id": listed[0]["delivery_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(replayed["status"], "pending", "{replayed}");
    assert_eq!(
        r.entries().len(),
        9,
        "the replay was sent while the last attempt was in flight"
    );
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the replay sent without waiting for the schedule",
        || async { r.arrivals().len() == 11 },
    )
    .await;
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the replay delivered",
        || async { deliveries(s, t).await[0]["status"] == "delivered" },
    )
    .await;
    assert_eq!(deliveries(s, t).await[0]["attempts"], 1);
    let endpoints = s
        .call(t, "webhooks.endpoints@get", json!({}))
        .await
        .unwrap();
    assert!(
        endpoints["items"][0].get("disabled_at").is_none(),
        "{endpoints}"
    );
    let disabled = disabled_events(s, t).await;
    assert_eq!(disabled["items"], json!([]), "{disabled}");
}

contract!(a_replay_during_the_last_attempt_stands, allow_loopback, vendors[]);

/// An endpoint deleted while events are being recorded leaves no queued
/// delivery behind: every delivery the operator sees is of an endpoint
/// that exists, and none is queued for the deleted one afterwards.
async fn a_deleted_endpoint_keeps_no_deliveries(s: &Server, t: Transport) {
    for round in 0..6 {
        let endpoint_id = unreachable_endpoint(s, t).await;
        let creates = (0..24).map(|i| {
            s.call(
                t,
                "auth.user.create",
                json!({"email": format!("race{round}-{i}@example.com")}),
            )
        });
        let delete = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            s.call(
                t,
                "webhooks.endpoints@delete",
                json!({"endpoint_id": endpoint_id}),
            )
            .await
        };
        let (created, deleted) = tokio::join!(futures::future::join_all(creates), delete);
        deleted.unwrap();
        for c in created {
            c.unwrap();
        }
        let left = deliveries_of(s, t, &endpoint_id).await;
        assert!(
            left.is_empty(),
            "round {round}: {} deliveries of the deleted endpoint: {left:?}",
            left.len()
        );
    }
}

contract!(a_deleted_endpoint_keeps_no_deliveries, allow_loopback, vendors[]);

/// Loopback endpoints allowed, and a worker that polls once at start,
/// so a test claims and settles deliveries itself.
fn idle_worker(c: &mut authmux::config::Settings) {
    allow_loopback(c);
    c.webhooks.webhook_poll_ms = 3_600_000;
}

/// An endpoint deleted while its deliveries are replayed and while
/// attempts to them end (given up, which disables the endpoint): each
/// replay answers the delivery or 404, each ending is recorded or
/// ignored, never an error, and nothing of the endpoint is left.
async fn endpoint_deletion_racing_replays_and_endings(s: &Server, t: Transport) {
    use authmux::store::webhooks::Attempt;
    let store = s.domain.store();
    for round in 0..6 {
        let endpoint_id = unreachable_endpoint(s, t).await;
        for i in 0..8 {
            let email = format!("ending{round}-{i}@example.com");
            crate::harness::create_user(s, t, &email).await;
        }
        // The server's worker may have claimed some in its one poll: each
        // is due again once the clock passes its retry or its lease.
        let mut claimed = Vec::new();
        for _ in 0..5 {
            let now = s.domain.clock().now_millis();
            claimed.extend(
                store
                    .claim_deliveries("test-worker", now, now + 600_000, 64)
                    .await
                    .unwrap(),
            );
            if claimed.len() == 8 {
                break;
            }
            s.domain.clock().advance(Duration::from_secs(60));
        }
        assert_eq!(claimed.len(), 8, "round {round}");
        let now = s.domain.clock().now_millis();
        let (replayed, ended) = claimed.split_at(4);
        let replays = replayed
            .iter()
            .map(|(d, _)| s.call(t, "webhooks.deliveries@post", json!({"delivery_id": d.id})));
        let endings = ended.iter().map(|(d, e)| {
            let failed = Attempt::Failed {
                status: Some(503),
                error: "503".into(),
                retry_at: None,
            };
            async move {
                store
                    .finish_delivery(d, "test-worker", now, &failed, || {
                        authmux::store::entity::events::Model {
                            id: authmux::domain::new_id("evt"),
                            project_id: e.project_id.clone(),
                            kind: "webhook.endpoint_disabled".into(),
                            user_id: None,
                            api_key_id: None,
                            request_id: None,
                            occurred_at: now,
                            data: json!({"endpoint_id": e.id, "delivery_id": d.id}).to_string(),
                        }
                    })
                    .await
            }
        });
        let delete = s.call(
            t,
            "webhooks.endpoints@delete",
            json!({"endpoint_id": endpoint_id}),
        );
        let (replays, endings, deleted) = tokio::join!(
            futures::future::join_all(replays),
            futures::future::join_all(endings),
            delete
        );
        deleted.unwrap_or_else(|e| panic!("round {round}: the deletion: {e:?}"));
        for r in replays {
            if let Err(e) = r {
                assert_eq!(e.code, "NOT_FOUND", "round {round}: a replay: {e:?}");
            }
        }
        for e in endings {
            e.unwrap_or_else(|e| panic!("round {round}: an ending: {e:?}"));
        }
        let left = deliveries_of(s, t, &endpoint_id).await;
        assert!(left.is_empty(), "round {round}: {left:?}");
    }
}

contract!(endpoint_deletion_racing_replays_and_endings, idle_worker, vendors[]);

/// Webhooks go only to https on public addresses: http, private,
/// link-local and loopback addresses are refused when the endpoint is
/// registered, and a name that resolves to one is refused when sending.
async fn endpoints_never_reach_inside(s: &Server, t: Transport) {
    for url in [
        "http://hooks.example.com/x",
        "http://127.0.0.1:8080/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://192.168.0.10/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[fd00::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://user:secret@hooks.example.com/x",
        "ftp://hooks.example.com/x",
    ] {
        expect_err(
            s.call(t, "webhooks.endpoints@post", json!({"url": url}))
                .await,
            "INVALID_ARGUMENT",
        );
    }
    expect_err(
        s.call(
            t,
            "webhooks.endpoints@post",
            json!({"url": "https://hooks.example.com/x", "event_types": ["user.exploded"]}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    // `localhost` passes registration (a name), but resolves to loopback
    // when sending: refused there, nothing is sent.
    let Some(r) = Receiver::start(json!({})).await else {
        return;
    };
    let port = r.url.rsplit(':').next().unwrap().trim_end_matches("/hook");
    s.call(
        t,
        "webhooks.endpoints@post",
        json!({"url": format!("https://localhost:{port}/hook")}),
    )
    .await
    .unwrap();
    crate::harness::create_user(s, t, "inside@example.com").await;
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the refused attempt",
        || async { deliveries(s, t).await[0]["attempts"] == 1 },
    )
    .await;
    let d = &deliveries(s, t).await[0];
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("no public address"),
        "{d}"
    );
    assert_eq!(r.arrivals().len(), 0);
    expect_err(
        s.call_as(t, "", "webhooks.endpoints@get", json!({}), &[])
            .await,
        "AUTH_INVALID_API_KEY",
    );
    // At most 20 endpoints per project (the `localhost` one is the first).
    for i in 1..20 {
        s.call(
            t,
            "webhooks.endpoints@post",
            json!({"url": format!("https://hooks{i}.example.com/x")}),
        )
        .await
        .unwrap();
    }
    expect_err(
        s.call(
            t,
            "webhooks.endpoints@post",
            json!({"url": "https://one-too-many.example.com/x"}),
        )
        .await,
        "LIMIT_REACHED",
    );
}

contract!(endpoints_never_reach_inside, |c| c.webhooks.webhook_poll_ms = 50, vendors[]);

/// Two replicas on one PostgreSQL database share the deliveries out and
/// never send one event twice, let alone at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_deliver_each_event_once() {
    let Some(a) = Server::start_with(Backend::Postgres, allow_loopback).await else {
        return;
    };
    let mut settings = authmux::config::Settings::new(a.data_dir());
    settings.store.database_url = Some(a.database_url.clone().into());
    allow_loopback(&mut settings);
    let b = Server::start_on(tempfile::tempdir().unwrap(), settings).await;
    let t = Transport::Grpc;
    let Some((_, r)) = endpoint(&a, t, json!([]), json!({"delay": 0.05})).await else {
        return;
    };
    let n = 40;
    let creates = (0..n).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        async move {
            s.call(
                t,
                "auth.user.create",
                json!({"email": format!("r{i}@example.com")}),
            )
            .await
            .unwrap()
        }
    });
    futures::future::join_all(creates).await;
    let got = r.wait_for(n, "every event").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got_after = r.entries();
    assert_eq!(
        got_after.len(),
        got.len(),
        "no event sent twice: {got_after:?}"
    );
    let mut seen = ids(&got_after);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n);
    assert!(got_after.iter().all(|e| e["verified"] == true));
}

/// `authmux serve` killed while a delivery is in flight: a new process on
/// the same database sends it once the dead one's claim lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = match postgres_database().await {
        Some(u) => u,
        None => format!("sqlite://{}", dir.path().join("shared.db").display()),
    };
    let (_, master) = authmux::crypto::MasterKey::generate();
    let mut settings = authmux::config::Settings::new(dir.path());
    settings.store.database_url = Some(url.clone().into());
    settings.store.master_key = Some(master.clone().into());
    let key = {
        let domain = settings.domain().await.unwrap();
        domain.create_api_key("restart").await.unwrap().key
    };
    let Some(r) = Receiver::start(json!({"answers": [{"sleep": 0.8}]})).await else {
        return;
    };
    let env = [
        ("AUTHMUX_DATABASE_URL", url.as_str()),
        ("AUTHMUX_MASTER_KEY", master.as_str()),
        ("AUTHMUX_SHUTDOWN_DRAIN_SECS", "0"),
        ("AUTHMUX_WEBHOOK_ALLOW_HTTP_LOOPBACK", "true"),
        ("AUTHMUX_WEBHOOK_POLL_MS", "50"),
        ("AUTHMUX_WEBHOOK_TIMEOUT_MS", "1000"),
    ];
    let http = reqwest::Client::new();
    let post = |base: String, path: &'static str, body: Value| {
        let http = http.clone();
        let key = key.clone();
        async move {
            let resp = http
                .post(format!("{base}{path}"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            resp.json::<Value>().await.unwrap()
        }
    };
    let first = crate::harness::spawn_serve(dir.path(), &env);
    let made = post(
        first.base.clone(),
        "/v1/webhooks/endpoints",
        json!({"url": r.url}),
    )
    .await;
    r.know(made["secret"].as_str().unwrap());
    post(
        first.base.clone(),
        "/v1/auth/user/create",
        json!({"email": "restart@example.com"}),
    )
    .await;
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(10),
        "the first attempt",
        || async { !r.arrivals().is_empty() },
    )
    .await;
    drop(first); // killed mid-delivery
    let second = crate::harness::spawn_serve(dir.path(), &env);
    let got = r.wait_for(2, "the delivery after the restart").await;
    assert_eq!(got[0]["id"], got[1]["id"], "the same event, sent again");
    assert!(got.iter().all(|e| e["verified"] == true));
    let listed = http
        .get(format!("{}/v1/webhooks/deliveries", second.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "delivered",
        || async {
            http.get(format!("{}/v1/webhooks/deliveries", second.base))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["items"][0]["status"]
                == "delivered"
        },
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

/// Creates racing each other never pass the endpoint limit together.
async fn the_endpoint_limit_holds_under_parallel_creates(s: &Server, t: Transport) {
    let creates = (0..25).map(|i| async move {
        s.call(
            t,
            "webhooks.endpoints@post",
            json!({"url": format!("https://race{i}.example.com/x")}),
        )
        .await
    });
    let results = futures::future::join_all(creates).await;
    let made = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(made, 20, "{results:?}");
    for r in results.into_iter().filter(|r| r.is_err()) {
        expect_err(r, "LIMIT_REACHED");
    }
    let listed = s
        .call(t, "webhooks.endpoints@get", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 20);
}

contract!(the_endpoint_limit_holds_under_parallel_creates);
