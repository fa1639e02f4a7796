//! Projects are walls: another project's ids read as not found.

use futures::future::join_all;
use serde_json::json;

use crate::harness::{Server, Transport, create_user, expect_err};
use authmux_testkit::contract;

async fn projects_are_isolated(s: &Server, t: Transport) {
    let other = s.key_for("other").await;
    let mine = create_user(s, t, "same@example.com").await;
    let id = mine["user_id"].as_str().unwrap();

    // The same email may live in both projects.
    let theirs = s
        .call_as(
            t,
            &other,
            "auth.user.create",
            json!({"email": "same@example.com"}),
            &[],
        )
        .await
        .unwrap();
    assert_ne!(theirs["user_id"], mine["user_id"]);

    for (cap, req) in [
        ("auth.user.get", json!({"user_id": id})),
        (
            "auth.user.update",
            json!({"user_id": id, "email_verified": true}),
        ),
        ("auth.user.delete", json!({"user_id": id})),
        (
            "auth.consent.grant",
            json!({"user_id": id, "category": "x"}),
        ),
        (
            "auth.consent.check",
            json!({"user_id": id, "category": "x"}),
        ),
        ("auth.consent.history", json!({"user_id": id})),
    ] {
        expect_err(
            s.call_as(t, &other, cap, req, &[]).await,
            "AUTH_USER_NOT_FOUND",
        );
    }
    let listed = s
        .call_as(t, &other, "auth.user.list", json!({}), &[])
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], theirs["user_id"]);

    // Mine is untouched by their attempts.
    let got = s
        .call(t, "auth.user.get", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(got, mine);
}

async fn api_keys_are_required(s: &Server, t: Transport) {
    for key in ["", "amx_not-a-real-key", "sk_live_other_format"] {
        let e = expect_err(
            s.call_as(t, key, "auth.user.list", json!({}), &[]).await,
            "AUTH_INVALID_API_KEY",
        );
        assert!(!e.message.is_empty());
    }
    // Two Authorization headers are refused, even when both hold the
    // good key: a proxy in front may read another one than this service.
    let good = format!("Bearer {}", s.key);
    for other in ["Bearer amx_not-a-real-key", good.as_str()] {
        let e = expect_err(
            s.call_as(
                t,
                &s.key,
                "auth.user.list",
                json!({}),
                &[("authorization", other)],
            )
            .await,
            "AUTH_INVALID_API_KEY",
        );
        assert!(
            e.message.contains("more than one Authorization header"),
            "{e:?}"
        );
    }
    // A revoked key stops working at once.
    let created = s.domain.create_api_key("revoking").await.unwrap();
    s.call_as(t, &created.key, "auth.user.list", json!({}), &[])
        .await
        .unwrap();
    s.domain.revoke_api_key(&created.key_id).await.unwrap();
    expect_err(
        s.call_as(t, &created.key, "auth.user.list", json!({}), &[])
            .await,
        "AUTH_INVALID_API_KEY",
    );
}

/// Calls with a key race its revocation: once the revocation has
/// returned, no call with the key is served, including those whose lookup
/// read the key from the store before it was revoked (a lookup must not
/// put the key back in the cache after the revocation cleared it).
async fn key_revoked_while_in_use(s: &Server, t: Transport) {
    for round in 0..5 {
        let created = s
            .domain
            .create_api_key(&format!("racing{round}"))
            .await
            .unwrap();
        let key = created.key.as_str();
        let in_flight =
            join_all((0..24).map(|_| s.call_as(t, key, "auth.user.list", json!({}), &[])));
        let (_, revoked) = tokio::join!(in_flight, async {
            tokio::task::yield_now().await;
            s.domain.revoke_api_key(&created.key_id).await
        });
        revoked.unwrap();
        for r in join_all((0..8).map(|_| s.call_as(t, key, "auth.user.list", json!({}), &[]))).await
        {
            expect_err(r, "AUTH_INVALID_API_KEY");
        }
    }
}

contract!(projects_are_isolated);
contract!(api_keys_are_required);
/// Refused calls would otherwise soon meet the address's rate limit.
fn many_refusals(c: &mut authmux::config::Settings) {
    c.rate_limit.anonymous_rate_limit_per_second = 10_000;
    c.rate_limit.anonymous_rate_limit_burst = 10_000;
}

contract!(key_revoked_while_in_use, many_refusals);
