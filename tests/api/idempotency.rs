//! Idempotency keys: replays, reuse, conflicts and concurrent duplicates.

use serde_json::json;

use crate::harness::{Server, Transport, expect_err};
use authmux_testkit::contract;

async fn replay_returns_the_first_reply(s: &Server, t: Transport) {
    let req = json!({"email": "idem@example.com", "idempotency_key": "create-1"});
    let first = s.call(t, "auth.user.create", req.clone()).await.unwrap();
    let again = s.call(t, "auth.user.create", req).await.unwrap();
    assert_eq!(first, again);
    // The key may come as a header (REST) or metadata (gRPC) instead.
    let by_header = s
        .call_as(
            t,
            &s.key,
            "auth.user.create",
            json!({"email": "idem@example.com"}),
            &[("Idempotency-Key", "create-1")],
        )
        .await
        .unwrap();
    assert_eq!(first, by_header);
    let list = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "one effect");

    let e = expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "other@example.com", "idempotency_key": "create-1"}),
        )
        .await,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert!(e.message.contains("create-1"), "{e:?}");
    // Another operation under the same key is a different request too.
    let id = first["user_id"].as_str().unwrap();
    expect_err(
        s.call(
            t,
            "auth.consent.grant",
            json!({"user_id": id, "category": "x", "idempotency_key": "create-1"}),
        )
        .await,
        "IDEMPOTENCY_KEY_REUSED",
    );
    let e = expect_err(
        s.call_as(
            t,
            &s.key,
            "auth.user.create",
            json!({"email": "h@example.com", "idempotency_key": "a"}),
            &[("Idempotency-Key", "b")],
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("idempotency"), "{e:?}");
    // Two keys in two headers, alike or not, are refused: which one would
    // the replay be checked against? Nothing is created.
    for second in ["create-2", "create-3"] {
        let e = expect_err(
            s.call_as(
                t,
                &s.key,
                "auth.user.create",
                json!({"email": "twice@example.com"}),
                &[("Idempotency-Key", "create-2"), ("Idempotency-Key", second)],
            )
            .await,
            "INVALID_ARGUMENT",
        );
        assert!(
            e.message.contains("more than one Idempotency-Key header"),
            "{e:?}"
        );
    }
    let list = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "nothing created"
    );
}

async fn failures_release_the_key(s: &Server, t: Transport) {
    let u = s
        .call(t, "auth.user.create", json!({"email": "dup@example.com"}))
        .await
        .unwrap();
    let req = json!({"email": "dup@example.com", "idempotency_key": "retry-me"});
    expect_err(
        s.call(t, "auth.user.create", req.clone()).await,
        "AUTH_USER_EXISTS",
    );
    s.call(t, "auth.user.delete", json!({"user_id": u["user_id"]}))
        .await
        .unwrap();
    let created = s.call(t, "auth.user.create", req.clone()).await.unwrap();
    assert_eq!(s.call(t, "auth.user.create", req).await.unwrap(), created);
}

async fn updates_and_consent_replay(s: &Server, t: Transport) {
    let u = s
        .call(t, "auth.user.create", json!({"email": "r@example.com"}))
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap();
    let req = json!({"user_id": id, "mfa_enabled": true, "idempotency_key": "mfa-1"});
    let first = s.call(t, "auth.user.update", req.clone()).await.unwrap();
    assert!(first["mfa_enrollment"]["secret"].is_string());
    let again = s.call(t, "auth.user.update", req).await.unwrap();
    assert_eq!(first, again, "the replay is identical, enrollment included");

    let grant = json!({"user_id": id, "category": "news", "idempotency_key": "g-1"});
    for _ in 0..3 {
        s.call(t, "auth.consent.grant", grant.clone())
            .await
            .unwrap();
    }
    let history = s
        .call(t, "auth.consent.history", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(
        history["items"].as_array().unwrap().len(),
        1,
        "one ledger entry"
    );
}

async fn concurrent_duplicates_have_one_effect(s: &Server, t: Transport) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let fut = s.call(
            t,
            "auth.user.create",
            json!({"email": "race@example.com", "password": "a race to the finish", "idempotency_key": "race"}),
        );
        tasks.push(fut);
    }
    let results = futures::future::join_all(tasks).await;
    let mut ok = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => assert_eq!(e.code, "IDEMPOTENCY_KEY_IN_USE", "{e:?}"),
        }
    }
    assert!(!ok.is_empty(), "at least the first call succeeds");
    assert!(
        ok.windows(2).all(|w| w[0] == w[1]),
        "every success is the same reply"
    );
    let list = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "exactly one user"
    );
    let replay = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "race@example.com", "password": "a race to the finish", "idempotency_key": "race"}),
        )
        .await
        .unwrap();
    assert_eq!(replay, ok[0]);

    // Without a key, concurrent creates of one email still make one user.
    let tasks: Vec<_> = (0..8)
        .map(|_| s.call(t, "auth.user.create", json!({"email": "plain@example.com"})))
        .collect();
    let results = futures::future::join_all(tasks).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 1);
    for r in results.into_iter().filter_map(Result::err) {
        assert_eq!(r.code, "AUTH_USER_EXISTS");
    }
}

contract!(replay_returns_the_first_reply, vendors);
contract!(failures_release_the_key, vendors);
contract!(updates_and_consent_replay, vendors[clerk, workos]);
contract!(concurrent_duplicates_have_one_effect, vendors);

async fn keys_expire_after_a_day(s: &Server, t: Transport) {
    use authmux::store::entity::idempotency_keys;
    let project = s.project().await;
    // A record left 25 hours ago by another request under the same key.
    let claimed = s
        .domain
        .store()
        .claim_idempotency_key(idempotency_keys::Model {
            project_id: project.id.clone(),
            key: "old-key".into(),
            operation: "user.create".into(),
            request_hash: "0".repeat(64),
            response: None,
            created_at: s.domain.clock().now_millis() - 25 * 60 * 60 * 1000,
            user_id: None,
            erased: false,
        })
        .await
        .unwrap();
    assert!(claimed);
    let req = json!({"email": "fresh@example.com", "idempotency_key": "old-key"});
    let created = s.call(t, "auth.user.create", req.clone()).await.unwrap();
    assert_eq!(s.call(t, "auth.user.create", req).await.unwrap(), created);
    // Within the day, the same record stands in the way of a new request.
    expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "x@example.com", "idempotency_key": "old-key"}),
        )
        .await,
        "IDEMPOTENCY_KEY_REUSED",
    );
}

contract!(keys_expire_after_a_day, vendors);

/// The stored replies about a user (its creation, its updates, its
/// sign-ins) are erased with the user: each record keeps its key and
/// fingerprint, so a repeat makes no second user and a different request
/// under the key is still refused, but the reply, with the email, metadata
/// and tokens it carried, is gone. The delete's own reply (which names no
/// one) stays.
async fn replies_are_erased_with_their_user(s: &Server, t: Transport) {
    let project = s.project().await;
    let record = |key: &'static str| {
        let project = project.id.clone();
        async move {
            s.domain
                .store()
                .idempotency_record(&project, key)
                .await
                .unwrap()
                .expect("the record")
        }
    };
    let create = json!({"email": "gone@example.com", "password": "correct horse battery",
                        "metadata": {"plan": "pro"}, "idempotency_key": "create-gone"});
    let first = s.call(t, "auth.user.create", create.clone()).await.unwrap();
    let id = first["user_id"].clone();
    // Supabase opens sessions for confirmed emails only.
    let update = json!({"user_id": id, "metadata": {"a": 1}, "email_verified": true,
                        "idempotency_key": "update-gone"});
    s.call(t, "auth.user.update", update.clone()).await.unwrap();
    let sign_in = json!({"user_id": id, "method": "password", "password": "correct horse battery",
                         "idempotency_key": "sign-in-gone"});
    s.call(t, "auth.session.create", sign_in.clone())
        .await
        .unwrap();
    for key in ["create-gone", "update-gone", "sign-in-gone"] {
        let r = record(key).await;
        assert!(r.response.is_some() && !r.erased, "{key}: {r:?}");
        assert_eq!(r.user_id.as_deref(), id.as_str(), "{key}");
    }

    let delete = json!({"user_id": id, "idempotency_key": "delete-gone"});
    let deleted = s.call(t, "auth.user.delete", delete.clone()).await.unwrap();
    for key in ["create-gone", "update-gone", "sign-in-gone"] {
        let r = record(key).await;
        assert!(r.response.is_none() && r.erased, "{key}: {r:?}");
    }
    assert!(record("delete-gone").await.response.is_some());

    let e = expect_err(
        s.call(t, "auth.user.create", create).await,
        "AUTH_USER_NOT_FOUND",
    );
    assert!(e.message.contains("erased"), "{e:?}");
    let list = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(list["items"], json!([]), "no second user");
    expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "other@example.com", "idempotency_key": "create-gone"}),
        )
        .await,
        "IDEMPOTENCY_KEY_REUSED",
    );
    expect_err(
        s.call(t, "auth.user.update", update).await,
        "AUTH_USER_NOT_FOUND",
    );
    expect_err(
        s.call(t, "auth.session.create", sign_in).await,
        "AUTH_USER_NOT_FOUND",
    );
    assert_eq!(
        s.call(t, "auth.user.delete", delete).await.unwrap(),
        deleted
    );
}
contract!(replies_are_erased_with_their_user, vendors);

/// A keyed sign-in racing its user's delete: the sign-in either fails
/// (its key released) or its reply, stored before or after the erasure,
/// ends up erased. No trial leaves the reply behind the erasure.
async fn a_reply_stored_racing_the_delete_is_erased(s: &Server, t: Transport) {
    let project = s.project().await;
    for i in 0..16 {
        let user = s
            .call(
                t,
                "auth.user.create",
                json!({"email": format!("race-gone{i}@example.com"),
                       "password": "correct horse battery"}),
            )
            .await
            .unwrap()["user_id"]
            .clone();
        if s.vendor() == authmux::vendors::VendorKind::Supabase {
            // Supabase opens sessions for confirmed emails only.
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "email_verified": true}),
            )
            .await
            .unwrap();
        }
        let key = format!("race-gone-{i}");
        let sign_in = json!({"user_id": user, "method": "password",
                             "password": "correct horse battery", "idempotency_key": key});
        let sign_ins = || s.call(t, "auth.session.create", sign_in.clone());
        let (a, b, deleted) = tokio::join!(
            sign_ins(),
            sign_ins(),
            s.call(t, "auth.user.delete", json!({"user_id": user})),
        );
        deleted.unwrap();
        let record = s
            .domain
            .store()
            .idempotency_record(&project.id, &key)
            .await
            .unwrap();
        if let Some(r) = &record {
            assert!(
                r.response.is_none() && r.erased,
                "trial {i}: a reply outlived the erasure ({}, erased: {})",
                r.operation,
                r.erased
            );
        }
        for r in [a, b] {
            if let Err(e) = r {
                assert!(
                    [
                        "AUTH_USER_NOT_FOUND",
                        "AUTH_INVALID_CREDENTIALS",
                        "IDEMPOTENCY_KEY_IN_USE"
                    ]
                    .contains(&e.code.as_str()),
                    "trial {i}: {e:?}"
                );
            }
        }
    }
}
contract!(a_reply_stored_racing_the_delete_is_erased, vendors);
