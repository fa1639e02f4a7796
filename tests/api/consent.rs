//! consent.* over both transports.

use serde_json::{Value, json};

use crate::harness::{Server, Transport, create_user, expect_err};
use authmux_testkit::contract;

async fn grant_check_revoke(s: &Server, t: Transport) {
    let u = create_user(s, t, "c@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    let never = s
        .call(
            t,
            "auth.consent.check",
            json!({"user_id": id, "category": "marketing"}),
        )
        .await
        .unwrap();
    assert_eq!(never, json!({"granted": false}));

    let ok = s
        .call(
            t,
            "auth.consent.grant",
            json!({"user_id": id, "category": "marketing", "source": "signup-form"}),
        )
        .await
        .unwrap();
    assert_eq!(ok, json!({"ok": true}));
    let granted = s
        .call(
            t,
            "auth.consent.check",
            json!({"user_id": id, "category": "marketing"}),
        )
        .await
        .unwrap();
    assert_eq!(granted["granted"], true);
    assert_eq!(granted["source"], "signup-form");
    assert!(chrono::DateTime::parse_from_rfc3339(granted["granted_at"].as_str().unwrap()).is_ok());

    s.call(
        t,
        "auth.consent.revoke",
        json!({"user_id": id, "category": "marketing"}),
    )
    .await
    .unwrap();
    let revoked = s
        .call(
            t,
            "auth.consent.check",
            json!({"user_id": id, "category": "marketing"}),
        )
        .await
        .unwrap();
    assert_eq!(revoked, json!({"granted": false}));

    // Revoking a category never granted is fine, and recorded.
    let ok = s
        .call(
            t,
            "auth.consent.revoke",
            json!({"user_id": id, "category": "analytics"}),
        )
        .await
        .unwrap();
    assert_eq!(ok, json!({"ok": true}));

    let list = s
        .call(t, "auth.consent.list_for_user", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(
        list,
        json!({"items": [
            {"category": "analytics", "granted": false},
            {"category": "marketing", "granted": false},
        ]})
    );

    let history = s
        .call(t, "auth.consent.history", json!({"user_id": id}))
        .await
        .unwrap();
    let items = history["items"].as_array().unwrap();
    let summary: Vec<(String, String, Value)> = items
        .iter()
        .map(|e| {
            assert!(chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).is_ok());
            (
                e["category"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e.get("source").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("marketing".into(), "grant".into(), json!("signup-form")),
            ("marketing".into(), "revoke".into(), Value::Null),
            ("analytics".into(), "revoke".into(), Value::Null),
        ]
    );
}

async fn list_shows_current_state(s: &Server, t: Transport) {
    let u = create_user(s, t, "l@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    for c in ["b.cat", "a:cat"] {
        s.call(
            t,
            "auth.consent.grant",
            json!({"user_id": id, "category": c}),
        )
        .await
        .unwrap();
    }
    let list = s
        .call(t, "auth.consent.list_for_user", json!({"user_id": id}))
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["category"], "a:cat");
    assert!(
        items
            .iter()
            .all(|i| i["granted"] == true && i.get("granted_at").is_some())
    );
}

async fn consent_errors(s: &Server, t: Transport) {
    let u = create_user(s, t, "e@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    for bad in ["", "Marketing", "_x", "a b", &"a".repeat(65)] {
        let e = expect_err(
            s.call(
                t,
                "auth.consent.grant",
                json!({"user_id": id, "category": bad}),
            )
            .await,
            "INVALID_ARGUMENT",
        );
        assert!(e.message.contains("category"), "{e:?}");
    }
    if t == Transport::Grpc {
        // REST can't send an empty path segment; gRPC can.
        expect_err(
            s.call(
                t,
                "auth.consent.check",
                json!({"user_id": id, "category": ""}),
            )
            .await,
            "INVALID_ARGUMENT",
        );
    }
    expect_err(
        s.call(
            t,
            "auth.consent.check",
            json!({"user_id": id, "category": "UPPER"}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    let ghost = "usr_01900000000070008000000000000000";
    for cap in ["auth.consent.grant", "auth.consent.revoke"] {
        expect_err(
            s.call(t, cap, json!({"user_id": ghost, "category": "marketing"}))
                .await,
            "AUTH_USER_NOT_FOUND",
        );
    }
    expect_err(
        s.call(
            t,
            "auth.consent.check",
            json!({"user_id": ghost, "category": "marketing"}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );
    expect_err(
        s.call(t, "auth.consent.history", json!({"user_id": ghost}))
            .await,
        "AUTH_USER_NOT_FOUND",
    );
    // Refused calls left no trace.
    let history = s
        .call(t, "auth.consent.history", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(history, json!({"items": []}));
}

contract!(grant_check_revoke, vendors);
contract!(list_shows_current_state, vendors);
contract!(consent_errors, vendors);

/// A user's categories are listed in one order whatever the database's
/// collation: by their bytes, as the export lists them. On a PostgreSQL
/// database collated by ICU's English rules (punctuation before digits,
/// `_` before `-`), the list is still `-`, `.`, digits, `:`, `_`, letters.
#[tokio::test]
async fn categories_list_in_one_order_whatever_the_collation() {
    let Some(url) = crate::harness::postgres_database_with(
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    )
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = authmux::config::Settings::new(dir.path());
    settings.store.database_url = Some(url.into());
    let s = Server::start_on(dir, settings).await;
    let granted = ["adsa", "ads_x", "ads:b", "ads0", "ads.z", "ads-y", "ads"];
    let mut in_bytes = granted.to_vec();
    in_bytes.sort_unstable();
    for t in [Transport::Rest, Transport::Grpc] {
        let u = create_user(&s, t, &format!("{t:?}-collation@example.com")).await;
        let id = u["user_id"].as_str().unwrap();
        for category in granted {
            s.call(
                t,
                "auth.consent.grant",
                json!({"user_id": id, "category": category}),
            )
            .await
            .unwrap();
        }
        let categories = |items: &Value| -> Vec<String> {
            items
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["category"].as_str().unwrap().to_owned())
                .collect()
        };
        let listed = s
            .call(t, "auth.consent.list_for_user", json!({"user_id": id}))
            .await
            .unwrap();
        assert_eq!(categories(&listed["items"]), in_bytes, "{t:?}: {listed}");
        let exported = s
            .call(t, "auth.user.export", json!({"user_id": id}))
            .await
            .unwrap();
        assert_eq!(categories(&exported["consent"]), in_bytes, "{t:?}");
    }
}
