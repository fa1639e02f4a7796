//! The event log: every change announced in its own transaction, read as
//! the audit log and in a user's export.

use std::time::Duration;

use serde_json::{Value, json};

use authmux::vendors::VendorKind;

use crate::harness::{Server, Transport, expect_err};
use authmux_testkit::contract;

const PASSWORD: &str = "correct horse battery";

/// Every event of a user, oldest first, read page by page.
async fn user_events(s: &Server, t: Transport, user_id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = json!({"user_id": user_id, "limit": 3});
        if let Some(c) = &cursor {
            req["cursor"] = json!(c);
        }
        let page = s.call(t, "auth.audit", req).await.unwrap();
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    all.reverse();
    all
}

/// The `user.deleted` events of a user: the proof of its erasure.
async fn erasures(s: &Server, t: Transport, user_id: &str) -> Value {
    s.call(
        t,
        "auth.audit",
        json!({"user_id": user_id, "type": "user.deleted"}),
    )
    .await
    .unwrap()["items"]
        .clone()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap();
            match e["data"]["reason"].as_str() {
                Some(r) => format!("{kind}:{r}"),
                None => kind.to_owned(),
            }
        })
        .collect()
}

async fn sign_in(s: &Server, t: Transport, user_id: &str) -> Value {
    s.call(
        t,
        "auth.session.create",
        json!({"user_id": user_id, "method": "password", "password": PASSWORD}),
    )
    .await
    .unwrap()
}

/// Each change of a user's life appends its event, with the API key and
/// request id that made it, and no event carries a secret.
async fn every_change_is_announced(s: &Server, t: Transport) {
    let headers = [("x-request-id", "req-events-1")];
    let u = s
        .call_as(
            t,
            &s.key,
            "auth.user.create",
            json!({"email": "ev@example.com", "password": PASSWORD}),
            &headers,
        )
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap();
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": id, "metadata": {"plan": "platinum-tier"}}),
    )
    .await
    .unwrap();
    let first = sign_in(s, t, id).await;
    let refreshed = s
        .call(
            t,
            "auth.session.refresh",
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await
        .unwrap();
    for cap in ["auth.consent.grant", "auth.consent.revoke"] {
        s.call(t, cap, json!({"user_id": id, "category": "marketing"}))
            .await
            .unwrap();
    }
    let enrolled = crate::harness::enable_mfa(s, t, &id).await;
    let totp_secret = enrolled["mfa_enrollment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": id, "mfa_enabled": false}),
    )
    .await
    .unwrap();
    s.call(
        t,
        "auth.session.revoke",
        json!({"session_id": first["session_id"]}),
    )
    .await
    .unwrap();
    let second = sign_in(s, t, id).await;
    s.call(
        t,
        "auth.session.revoke_all_for_user",
        json!({"user_id": id}),
    )
    .await
    .unwrap();
    let third = sign_in(s, t, id).await;
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": id, "password": "another fine password", "keep_sessions": true}),
    )
    .await
    .unwrap();
    s.call(t, "auth.user.delete", json!({"user_id": id}))
        .await
        .unwrap();

    let events = user_events(s, t, id).await;
    assert_eq!(
        kinds(&events),
        [
            "user.created",
            "user.updated",
            "session.created",
            "session.refreshed",
            "consent.granted",
            "consent.revoked",
            "mfa.enrolled",
            "mfa.removed",
            "session.revoked:revoke",
            "session.created",
            "session.revoked:revoke_all",
            "session.created",
            "user.updated",
            "session.revoked:user_deleted",
            "user.deleted",
        ]
    );
    let key_id = s.domain.list_api_keys().await.unwrap()[0].key_id.clone();
    let project_id = s.project().await.id;
    for e in &events {
        assert!(e["id"].as_str().unwrap().starts_with("evt_"), "{e}");
        assert_eq!(e["api_key_id"], json!(key_id), "{e}");
        assert_eq!(e["project_id"], json!(project_id), "{e}");
        assert_eq!(e["user_id"], json!(id), "{e}");
        assert_eq!(e["data"]["user_id"], json!(id), "{e}");
        assert!(e["request_id"].is_string(), "{e}");
        assert!(chrono::DateTime::parse_from_rfc3339(e["occurred_at"].as_str().unwrap()).is_ok());
    }
    assert_eq!(events[0]["request_id"], "req-events-1");
    assert_eq!(
        events[0]["data"],
        json!({"user_id": id, "vendor": "native", "mode": "managed"})
    );
    assert_eq!(events[1]["data"]["fields"], json!(["metadata"]));
    assert_eq!(events[2]["data"]["session_id"], first["session_id"]);
    assert_eq!(events[2]["data"]["method"], "password");
    assert_eq!(events[12]["data"]["fields"], json!(["password"]));
    assert_eq!(events[13]["data"]["session_id"], third["session_id"]);
    assert_eq!(events[10]["data"]["session_id"], second["session_id"]);
    assert_eq!(
        events[14]["data"],
        json!({"user_id": id, "by": "user.delete"})
    );
    // Ids are time-ordered, so the log reads in the order things happened.
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // No token, password, secret or profile value in any event.
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        PASSWORD,
        "another fine password",
        "ev@example.com",
        "platinum-tier",
        totp_secret.as_str(),
        first["access_token"].as_str().unwrap(),
        first["refresh_token"].as_str().unwrap(),
        refreshed["refresh_token"].as_str().unwrap(),
        s.key.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "an event carries {secret:?}: {text}"
        );
    }

    // Filters: by type, across users.
    let created = s
        .call(t, "auth.audit", json!({"type": "session.created"}))
        .await
        .unwrap();
    let items = created["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|e| e["type"] == "session.created"));
}

contract!(every_change_is_announced, |c| c
    .tokens
    .refresh_cooldown_secs =
    0);

/// A replay under an idempotency key writes no second event, even when
/// the two arrive at once; a change that fails (or loses a race) writes
/// none.
async fn replays_and_failures_write_nothing(s: &Server, t: Transport) {
    let create = |email: &'static str, key: &'static str| async move {
        s.call_as(
            t,
            &s.key,
            "auth.user.create",
            json!({"email": email, "password": PASSWORD}),
            &[("Idempotency-Key", key)],
        )
        .await
    };
    let (a, b) = tokio::join!(
        create("once@example.com", "k-1"),
        create("once@example.com", "k-1")
    );
    let ids: Vec<String> = [a, b]
        .into_iter()
        .filter_map(|r| r.ok())
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!ids.is_empty());
    let again = create("once@example.com", "k-1").await.unwrap();
    let id = again["user_id"].as_str().unwrap();
    assert!(ids.iter().all(|i| i == id));

    // The same email twice at once without a key: one user, one event.
    let plain = |n: u8| async move {
        s.call(
            t,
            "auth.user.create",
            json!({"email": "race@example.com", "password": format!("{PASSWORD}{n}")}),
        )
        .await
    };
    let (x, y) = tokio::join!(plain(1), plain(2));
    assert_eq!(
        [&x, &y].iter().filter(|r| r.is_ok()).count(),
        1,
        "{x:?} {y:?}"
    );

    // A refused change: a wrong password opens no session.
    expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": id, "method": "password", "password": "wrong password!"}),
        )
        .await,
        "AUTH_INVALID_CREDENTIALS",
    );

    let all = s
        .call(t, "auth.audit", json!({"limit": 200}))
        .await
        .unwrap();
    let kinds: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["user.created", "user.created"], "{all}");
}

contract!(replays_and_failures_write_nothing);

/// The audit log's cursor and limits are checked; a project never sees
/// another's events.
async fn audit_paging_and_bounds(s: &Server, t: Transport) {
    for i in 0..5 {
        crate::harness::create_user(s, t, &format!("page{i}@example.com")).await;
    }
    let first = s.call(t, "auth.audit", json!({"limit": 2})).await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = s
        .call(t, "auth.audit", json!({"limit": 2, "cursor": cursor}))
        .await
        .unwrap();
    let ids = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!((a.len(), b.len()), (2, 2));
    assert!(a[1] > b[0], "newest first, no overlap");

    for bad in [
        json!({"limit": 0}),
        json!({"limit": 201}),
        json!({"cursor": "usr_0"}),
        json!({"type": "user.exploded"}),
    ] {
        expect_err(
            s.call(t, "auth.audit", bad.clone()).await,
            "INVALID_ARGUMENT",
        );
    }

    let other = s.domain.create_api_key("another-project").await.unwrap();
    let theirs = s
        .call_as(t, &other.key, "auth.audit", json!({}), &[])
        .await
        .unwrap();
    assert_eq!(theirs["items"], json!([]));
    expect_err(
        s.call_as(t, "", "auth.audit", json!({}), &[]).await,
        "AUTH_INVALID_API_KEY",
    );
}

contract!(audit_paging_and_bounds);

/// The export holds the profile, identities, sessions without tokens,
/// consent and its ledger, and the user's events.
async fn export_holds_everything_but_secrets(s: &Server, t: Transport) {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "me@example.com", "password": PASSWORD, "metadata": {"tier": 2}}),
        )
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap();
    s.call(
        t,
        "auth.consent.grant",
        json!({"user_id": id, "category": "analytics", "source": "banner"}),
    )
    .await
    .unwrap();
    let session = sign_in(s, t, id).await;
    s.call(
        t,
        "auth.session.revoke",
        json!({"session_id": session["session_id"]}),
    )
    .await
    .unwrap();
    let live = sign_in(s, t, id).await;

    let x = s
        .call(t, "auth.user.export", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(x["user"]["user_id"], json!(id));
    assert_eq!(x["user"]["email"], "me@example.com");
    assert_eq!(x["user"]["metadata"], json!({"tier": 2}));
    assert_eq!(x["vendor"], "native");
    assert!(x["vendor_user_id"].is_string());
    let sessions = x["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["session_id"], session["session_id"]);
    assert!(sessions[0]["revoked_at"].is_string());
    assert_eq!(sessions[1]["session_id"], live["session_id"]);
    assert!(sessions[1].get("revoked_at").is_none());
    assert_eq!(x["consent"][0]["category"], "analytics");
    assert_eq!(x["consent_ledger"][0]["action"], "grant");
    assert_eq!(x["consent_ledger"][0]["source"], "banner");
    let kinds: Vec<&str> = x["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "user.created",
            "consent.granted",
            "session.created",
            "session.revoked",
            "session.created"
        ]
    );
    let text = x.to_string();
    for secret in [
        PASSWORD,
        session["access_token"].as_str().unwrap(),
        session["refresh_token"].as_str().unwrap(),
        live["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "the export carries {secret:?}");
    }

    expect_err(
        s.call(t, "auth.user.export", json!({"user_id": "usr_0123"}))
            .await,
        "AUTH_USER_NOT_FOUND",
    );
    // After erasure only the proof remains: the export is gone, the
    // `user.deleted` event keeps the id and nothing else about the user.
    s.call(t, "auth.user.delete", json!({"user_id": id}))
        .await
        .unwrap();
    expect_err(
        s.call(t, "auth.user.export", json!({"user_id": id})).await,
        "AUTH_USER_NOT_FOUND",
    );
    let deleted = erasures(s, t, id).await;
    assert_eq!(
        deleted[0]["data"],
        json!({"user_id": id, "by": "user.delete"})
    );
}

contract!(export_holds_everything_but_secrets);

/// `n` exports of user `id` taken one after another while `changes` runs.
async fn exports_during(
    s: &Server,
    t: Transport,
    id: &str,
    n: usize,
    changes: impl std::future::Future<Output = ()>,
) -> Vec<Value> {
    let exports = async {
        let mut taken = Vec::new();
        for _ in 0..n {
            taken.push(
                s.call(t, "auth.user.export", json!({"user_id": id}))
                    .await
                    .unwrap(),
            );
        }
        taken
    };
    tokio::join!(changes, exports).1
}

/// Exports taken while the user's consent keeps changing: each document's
/// current consent is what its own ledger's last entry per category says,
/// never a state from before or after the ledger it carries.
async fn an_export_during_consent_changes_agrees_with_itself(s: &Server, t: Transport) {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "moving@example.com"}),
        )
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap();
    let changes = async {
        for round in 0..30 {
            futures::future::join_all(["a", "b"].map(|c| {
                if round % 2 == 0 {
                    let source = format!("round-{round}");
                    s.call(
                        t,
                        "auth.consent.grant",
                        json!({"user_id": id, "category": c, "source": source}),
                    )
                } else {
                    s.call(
                        t,
                        "auth.consent.revoke",
                        json!({"user_id": id, "category": c}),
                    )
                }
            }))
            .await
            .into_iter()
            .for_each(|r| {
                r.unwrap();
            });
        }
    };
    for x in exports_during(s, t, id, 30, changes).await {
        let ledger = x["consent_ledger"].as_array().unwrap();
        let consent = x["consent"].as_array().unwrap();
        let categories: Vec<&str> = consent
            .iter()
            .map(|c| c["category"].as_str().unwrap())
            .collect();
        let mut touched: Vec<&str> = ledger
            .iter()
            .map(|e| e["category"].as_str().unwrap())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        assert_eq!(categories, touched, "{x}");
        for state in consent {
            let last = ledger
                .iter()
                .rfind(|e| e["category"] == state["category"])
                .unwrap();
            let granted = last["action"] == "grant";
            assert_eq!(state["granted"], granted, "{state} after {last}");
            if granted {
                assert_eq!(state["source"], last["source"], "{state} after {last}");
                assert_eq!(state["granted_at"], last["at"], "{state} after {last}");
            } else {
                assert!(
                    state.get("source").is_none() && state.get("granted_at").is_none(),
                    "{state} after {last}"
                );
            }
        }
    }
}
contract!(an_export_during_consent_changes_agrees_with_itself);

/// Exports taken while the user signs in and out: in each document, the
/// sessions are exactly those its events announce as created, and the
/// revoked ones exactly those its events announce as revoked, as are its
/// consent ledger and consent events: the stored parts are one moment's.
async fn an_export_is_one_moment_of_what_is_stored(s: &Server, t: Transport) {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "busy@example.com", "password": PASSWORD}),
        )
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap();
    let changes = async {
        for round in 0..15 {
            let (session, _) = tokio::join!(
                sign_in(s, t, id),
                s.call(
                    t,
                    "auth.consent.grant",
                    json!({"user_id": id, "category": format!("c{round}")}),
                )
            );
            s.call(
                t,
                "auth.session.revoke",
                json!({"session_id": session["session_id"]}),
            )
            .await
            .unwrap();
        }
    };
    for x in exports_during(s, t, id, 20, changes).await {
        let announced = |kind: &str, field: &str| -> Vec<String> {
            let mut ids: Vec<String> = x["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == kind)
                .map(|e| e["data"][field].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        let sessions = x["sessions"].as_array().unwrap();
        let listed = |revoked: bool| -> Vec<String> {
            let mut ids: Vec<String> = sessions
                .iter()
                .filter(|s| !revoked || s.get("revoked_at").is_some())
                .map(|s| s["session_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(
            listed(false),
            announced("session.created", "session_id"),
            "created: {x}"
        );
        assert_eq!(
            listed(true),
            announced("session.revoked", "session_id"),
            "revoked: {x}"
        );
        let mut ledger: Vec<String> = x["consent_ledger"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["category"].as_str().unwrap().to_owned())
            .collect();
        ledger.sort();
        assert_eq!(
            ledger,
            announced("consent.granted", "category"),
            "consent: {x}"
        );
    }
}
contract!(an_export_is_one_moment_of_what_is_stored);

/// The export carries the vendor's own record of the user, read from its
/// API page by page (Clerk pages sessions by 500, WorkOS lists by 100),
/// with no credential in it; the built-in provider has no record beyond
/// authmux's rows.
async fn export_carries_the_vendors_record(s: &Server, t: Transport) {
    let email = "rec@example.com";
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": email, "password": PASSWORD, "metadata": {"plan": "pro"}}),
        )
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap();
    crate::harness::confirm_email(s, t, id).await;
    let session = sign_in(s, t, id).await;
    let export = || async {
        s.call(t, "auth.user.export", json!({"user_id": id}))
            .await
            .unwrap()
    };
    let vendor_id = export().await["vendor_user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Sessions opened elsewhere, past one page of the vendor's list.
    if let Some(clerk) = &s.clerk_keys {
        clerk.seed_sessions(&vendor_id, 600);
    }
    if let Some(workos) = &s.workos {
        workos.seed_sessions(email, 150);
    }
    let mfa_secret = match s.vendor {
        VendorKind::Supabase => None,
        _ => {
            let up = crate::harness::enable_mfa(s, t, &id).await;
            Some(up["mfa_enrollment"]["secret"].as_str().unwrap().to_owned())
        }
    };

    let x = export().await;
    assert_eq!(x["vendor"], s.vendor.as_str());
    let record = &x["vendor_record"];
    let user = &record["user"];
    match s.vendor {
        VendorKind::Native => assert!(record.is_null(), "{record}"),
        VendorKind::Clerk => {
            assert_eq!(user["id"], json!(vendor_id));
            assert_eq!(user["email_addresses"][0]["email_address"], email);
            assert_eq!(user["private_metadata"], json!({"plan": "pro"}));
            assert_eq!(user["totp_enabled"], true);
            let sessions = record["sessions"].as_array().unwrap();
            assert_eq!(sessions.len(), 601, "every page of sessions");
            assert!(sessions.iter().all(|v| v["user_id"] == json!(vendor_id)));
        }
        VendorKind::Workos => {
            assert_eq!(user["id"], json!(vendor_id));
            assert_eq!(user["email"], email);
            assert_eq!(record["identities"], json!([]));
            let factors = record["auth_factors"].as_array().unwrap();
            assert_eq!(factors.len(), 1, "{factors:?}");
            assert_eq!(factors[0]["type"], "totp");
            assert_eq!(factors[0]["totp"]["user"], email);
            let sessions = record["sessions"].as_array().unwrap();
            assert_eq!(sessions.len(), 151, "every page of sessions");
            assert!(sessions.iter().all(|v| v["status"] == "active"));
        }
        VendorKind::Supabase => {
            assert_eq!(user["id"], json!(vendor_id));
            assert_eq!(user["email"], email);
            assert_eq!(
                user["app_metadata"]["authmux_metadata"],
                json!({"plan": "pro"})
            );
            assert_eq!(user["identities"][0]["provider"], "email");
            assert_eq!(user["identities"][0]["identity_data"]["email"], email);
        }
    }
    let text = x.to_string();
    let mut secrets = vec![
        PASSWORD.to_owned(),
        session["access_token"].as_str().unwrap().to_owned(),
        session["refresh_token"].as_str().unwrap().to_owned(),
    ];
    secrets.extend(mfa_secret);
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the export carries {secret:?}"
        );
    }
    // A vendor that can't answer fails the export rather than leaving its
    // part out.
    if let Some(vendor) = &s.emulator {
        vendor.faults.lock().unwrap().fail_next = 100;
        expect_err(
            s.call(t, "auth.user.export", json!({"user_id": id})).await,
            "VENDOR_UNAVAILABLE",
        );
        vendor.faults.lock().unwrap().fail_next = 0;
    }
}

contract!(export_carries_the_vendors_record, vendors);

/// An export racing the user's deletion answers the whole document or 404,
/// never a document with the deleted rows missing, and never a 5xx.
async fn export_racing_delete_is_whole_or_gone(s: &Server, t: Transport) {
    for round in 0..6 {
        let u = s
            .call(
                t,
                "auth.user.create",
                json!({"email": format!("race{round}@example.com"), "password": PASSWORD}),
            )
            .await
            .unwrap();
        let id = u["user_id"].as_str().unwrap().to_owned();
        crate::harness::confirm_email(s, t, &id).await;
        s.call(
            t,
            "auth.consent.grant",
            json!({"user_id": id, "category": "analytics", "source": "banner"}),
        )
        .await
        .unwrap();
        sign_in(s, t, &id).await;
        let exports = (0..4).map(|_| s.call(t, "auth.user.export", json!({"user_id": id})));
        let delete = s.call(t, "auth.user.delete", json!({"user_id": id}));
        let (deleted, exports) = tokio::join!(delete, futures::future::join_all(exports));
        deleted.unwrap();
        for x in exports {
            match x {
                Ok(x) => {
                    assert_eq!(x["user"]["user_id"], json!(id));
                    assert_eq!(x["sessions"].as_array().unwrap().len(), 1, "{x}");
                    assert_eq!(x["consent"].as_array().unwrap().len(), 1, "{x}");
                    assert_eq!(x["consent_ledger"].as_array().unwrap().len(), 1, "{x}");
                }
                Err(e) => drop(expect_err(Err(e), "AUTH_USER_NOT_FOUND")),
            }
        }
    }
}

contract!(export_racing_delete_is_whole_or_gone, vendors[clerk, supabase]);

/// A delete the vendor refuses, or one cancelled while at the vendor,
/// gives up its reservation, so a retry deletes; a reservation whose owner
/// died holds a minute, then is taken
/// over; and while one is live, a read that finds the user gone at the
/// vendor leaves the rows to the deletion.
async fn deletion_reservations_release_and_expire(s: &Server, t: Transport) {
    if let Some(vendor) = &s.emulator {
        let u = crate::harness::create_user(s, t, "held@example.com").await;
        let id = u["user_id"].as_str().unwrap();
        vendor.faults.lock().unwrap().fail_next = 10;
        assert!(
            s.call(t, "auth.user.delete", json!({"user_id": id}))
                .await
                .is_err()
        );
        vendor.faults.lock().unwrap().fail_next = 0;
        s.call(t, "auth.user.get", json!({"user_id": id}))
            .await
            .unwrap();
        s.call(t, "auth.user.delete", json!({"user_id": id}))
            .await
            .unwrap();

        // A delete cancelled while at the vendor (its caller went away)
        // gives its reservation up at once: the next delete goes through.
        let u = crate::harness::create_user(s, t, "gone-away@example.com").await;
        let id = u["user_id"].as_str().unwrap();
        let project = s.domain.authenticate(Some(&s.key)).await.unwrap();
        vendor.faults.lock().unwrap().latency = Duration::from_millis(1_500);
        let cancelled = tokio::time::timeout(
            Duration::from_millis(300),
            s.domain.delete_user(&project, id, None),
        )
        .await;
        assert!(cancelled.is_err(), "the delete was still at the vendor");
        vendor.faults.lock().unwrap().latency = Duration::ZERO;
        crate::harness::eventually(
            Duration::from_secs(5),
            Duration::from_millis(50),
            "the cancelled delete's reservation is given up",
            || async {
                s.call(t, "auth.user.delete", json!({"user_id": id}))
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    // A deleter that reserved and died: the user stays readable, a second
    // delete is told it is going until the lease runs out, then deletes.
    let u = crate::harness::create_user(s, t, "orphan@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    let project = s.domain.authenticate(Some(&s.key)).await.unwrap();
    let now = s.domain.clock().now_millis();
    assert!(
        s.domain
            .store()
            .reserve_deletion(&project.id, id, now, now - 60_000)
            .await
            .unwrap()
    );
    s.call(t, "auth.user.get", json!({"user_id": id}))
        .await
        .unwrap();
    if let Some(vendor) = &s.emulator {
        // The dead deleter had reached the vendor: reads find the user gone
        // there but leave the rows, and the erasure, to the deletion.
        let x = s
            .call(t, "auth.user.export", json!({"user_id": id}))
            .await
            .unwrap();
        let gone = s
            .http
            .delete(format!(
                "{}/users/{}",
                vendor.base_url,
                x["vendor_user_id"].as_str().unwrap()
            ))
            .bearer_auth(authmux_testkit::emulators::clerk::SECRET_KEY)
            .header("clerk-api-version", "2026-05-12")
            .send()
            .await
            .unwrap();
        assert!(gone.status().is_success(), "{gone:?}");
        expect_err(
            s.call(t, "auth.user.get", json!({"user_id": id})).await,
            "AUTH_USER_NOT_FOUND",
        );
        let audit = erasures(s, t, id).await;
        assert_eq!(audit, json!([]), "no erasure yet");
    }
    let refused = expect_err(
        s.call(t, "auth.user.delete", json!({"user_id": id})).await,
        "AUTH_USER_NOT_FOUND",
    );
    assert!(refused.message.contains("being deleted"), "{refused:?}");
    s.domain.clock().advance(Duration::from_secs(61));
    s.call(t, "auth.user.delete", json!({"user_id": id}))
        .await
        .unwrap();
    let deleted = erasures(s, t, id).await;
    assert_eq!(deleted[0]["data"]["by"], "user.delete");
}

contract!(deletion_reservations_release_and_expire, vendors[clerk]);

/// Events are kept for the retention (a year by default), then purged.
async fn events_are_purged_after_the_retention(s: &Server, t: Transport) {
    crate::harness::create_user(s, t, "old@example.com").await;
    let count = || async {
        s.call(t, "auth.audit", json!({})).await.unwrap()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count().await, 1);
    s.domain.clock().advance(Duration::from_secs(364 * 86_400));
    s.domain.purge(s.domain.clock().now_millis()).await.unwrap();
    assert_eq!(count().await, 1, "kept within the year");
    s.domain.clock().advance(Duration::from_secs(2 * 86_400));
    let purged = s.domain.purge(s.domain.clock().now_millis()).await.unwrap();
    assert_eq!(purged.events, 1);
    assert_eq!(count().await, 0);
}

contract!(events_are_purged_after_the_retention);
