//! user.* over both transports.

use authmux::vendors::VendorKind;
use serde_json::json;

use crate::harness::{Server, Transport, create_user, expect_err};
use authmux_testkit::contract;

async fn create_and_read(s: &Server, t: Transport) {
    let created = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "  Ann@Example.com ", "password": "correct horse", "metadata": {"plan": "pro", "seats": 3}}),
        )
        .await
        .unwrap();
    let id = created["user_id"].as_str().unwrap();
    assert!(id.starts_with("usr_"), "{created}");
    assert_eq!(created["email"], "Ann@Example.com");
    assert_eq!(
        created["email_verified"], false,
        "non-optional fields are printed"
    );
    assert_eq!(created["mfa_enabled"], false);
    assert_eq!(created["vendor"], s.vendor().as_str());
    assert_eq!(created["metadata"], json!({"plan": "pro", "seats": 3}));
    assert!(created.get("password").is_none() && !created.to_string().contains("correct horse"));
    assert!(created.get("mfa_enrollment").is_none());
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "{created_at}"
    );

    let got = s
        .call(t, "auth.user.get", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(got, created);
    let by_email = s
        .call(
            t,
            "auth.user.get_by_email",
            json!({"email": "aNN@example.COM"}),
        )
        .await
        .unwrap();
    assert_eq!(by_email, created);
}

async fn create_validation(s: &Server, t: Transport) {
    create_user(s, t, "taken@example.com").await;
    let e = expect_err(
        s.call(t, "auth.user.create", json!({"email": "TAKEN@example.com"}))
            .await,
        "AUTH_USER_EXISTS",
    );
    assert!(e.message.contains("TAKEN@example.com"), "{e:?}");
    let e = expect_err(
        s.call(t, "auth.user.create", json!({})).await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("email"), "{e:?}");
    expect_err(
        s.call(t, "auth.user.create", json!({"email": "not-an-email"}))
            .await,
        "INVALID_ARGUMENT",
    );
    for bad in ["short", &"x".repeat(129)] {
        let e = expect_err(
            s.call(
                t,
                "auth.user.create",
                json!({"email": "p@example.com", "password": bad}),
            )
            .await,
            "INVALID_ARGUMENT",
        );
        assert!(e.message.contains("password"), "{e:?}");
    }
    let big = "x".repeat(17 * 1024);
    let e = expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "m@example.com", "metadata": {"blob": big}}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("metadata"), "{e:?}");
    let e = expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "v@example.com", "vendor": "okta"}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("vendor"), "{e:?}");
    // A vendor without credentials here says how to configure it.
    let (absent, hint) = if s.vendor() == VendorKind::Workos {
        ("supabase", "AUTHMUX_SUPABASE_URL")
    } else {
        ("workos", "AUTHMUX_WORKOS_API_KEY")
    };
    let e = expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "v@example.com", "vendor": absent}),
        )
        .await,
        "VENDOR_NOT_CONFIGURED",
    );
    assert!(e.message.contains(hint), "{e:?}");
    expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "v@example.com", "mode": "byok"}),
        )
        .await,
        "AUTH_VENDOR_REQUIRED",
    );
    expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "v@example.com", "mode": "other"}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    // Nothing above stored a user.
    let list = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn get_errors(s: &Server, t: Transport) {
    expect_err(
        s.call(
            t,
            "auth.user.get",
            json!({"user_id": "usr_01900000000070008000000000000000"}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );
    expect_err(
        s.call(
            t,
            "auth.user.get_by_email",
            json!({"email": "nobody@example.com"}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );
    let e = expect_err(
        s.call(t, "auth.user.get_by_email", json!({})).await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("email"), "{e:?}");
}

async fn list_pages(s: &Server, t: Transport) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let u = create_user(s, t, &format!("u{i}@example.com")).await;
        ids.push(u["user_id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = json!({"limit": 3});
        if let Some(c) = &cursor {
            req["cursor"] = json!(c);
        }
        let page = s.call(t, "auth.user.list", req).await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|u| u["user_id"].as_str().unwrap().to_owned()),
        );
        match page.get("next_cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let all = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        7,
        "default limit covers 7"
    );
    assert!(
        all.get("next_cursor").is_none(),
        "no cursor on the last page"
    );
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 201}),
        json!({"cursor": "garbage!"}),
    ] {
        expect_err(s.call(t, "auth.user.list", bad).await, "INVALID_ARGUMENT");
    }
}

async fn update_fields(s: &Server, t: Transport) {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "up@example.com", "metadata": {"a": 1, "b": "x", "c": true}}),
        )
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap();
    let up = s
        .call(
            t,
            "auth.user.update",
            json!({"user_id": id, "metadata": {"b": null, "d": [1, 2]}, "email_verified": true}),
        )
        .await
        .unwrap();
    assert_eq!(up["metadata"], json!({"a": 1, "c": true, "d": [1, 2]}));
    assert_eq!(up["email_verified"], true);
    let got = s
        .call(t, "auth.user.get", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(got["metadata"], up["metadata"]);
    assert_eq!(got["email_verified"], true);
    // An update without fields changes nothing.
    let same = s
        .call(t, "auth.user.update", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(same["metadata"], up["metadata"]);
    expect_err(
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": "usr_01900000000070008000000000000000", "email_verified": true}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );
    let e = expect_err(
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": id, "metadata": {"big": "y".repeat(17 * 1024)}}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("metadata"));
    let got = s
        .call(t, "auth.user.get", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(
        got["metadata"], up["metadata"],
        "a refused update changes nothing"
    );
}

async fn mfa_enrollment(s: &Server, t: Transport) {
    let u = create_user(s, t, "mfa@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    let up = crate::harness::enable_mfa(s, t, &id).await;
    assert_eq!(up["mfa_enabled"], true);
    let secret = up["mfa_enrollment"]["secret"].as_str().unwrap();
    let uri = up["mfa_enrollment"]["otpauth_uri"].as_str().unwrap();
    assert!(secret.len() >= 26, "{secret}");
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(secret),
        "{uri}"
    );
    let got = s
        .call(t, "auth.user.get", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(got["mfa_enabled"], true);
    assert!(
        got.get("mfa_enrollment").is_none(),
        "the secret is shown once"
    );
    let again = crate::harness::enable_mfa(s, t, &id).await;
    assert!(
        again.get("mfa_enrollment").is_none(),
        "no new secret while enrolled"
    );
    let off = s
        .call(
            t,
            "auth.user.update",
            json!({"user_id": id, "mfa_enabled": false}),
        )
        .await
        .unwrap();
    assert_eq!(off["mfa_enabled"], false);
}

async fn delete_user(s: &Server, t: Transport) {
    let u = create_user(s, t, "del@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    s.call(
        t,
        "auth.consent.grant",
        json!({"user_id": id, "category": "marketing"}),
    )
    .await
    .unwrap();
    let ok = s
        .call(t, "auth.user.delete", json!({"user_id": id}))
        .await
        .unwrap();
    assert_eq!(ok, json!({"ok": true}));
    expect_err(
        s.call(t, "auth.user.get", json!({"user_id": id})).await,
        "AUTH_USER_NOT_FOUND",
    );
    expect_err(
        s.call(t, "auth.user.delete", json!({"user_id": id})).await,
        "AUTH_USER_NOT_FOUND",
    );
    expect_err(
        s.call(t, "auth.consent.list_for_user", json!({"user_id": id}))
            .await,
        "AUTH_USER_NOT_FOUND",
    );
    // The email is free again, and the new user has no consent left over.
    let again = create_user(s, t, "del@example.com").await;
    let list = s
        .call(
            t,
            "auth.consent.list_for_user",
            json!({"user_id": again["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(list, json!({"items": []}));
}

contract!(create_and_read, vendors);
contract!(create_validation, vendors);
contract!(get_errors, vendors);
contract!(list_pages, vendors);

/// A page's cursor is the last user of the page: deleting that user while
/// the next page is read neither fails the read nor skips or repeats a user.
async fn list_cursor_races_a_delete(s: &Server, t: Transport) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let u = create_user(s, t, &format!("race{i}@example.com")).await;
        ids.push(u["user_id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first
    let first = s
        .call(t, "auth.user.list", json!({"limit": 2}))
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(cursor, ids[1]);
    let (next, deleted) = tokio::join!(
        s.call(t, "auth.user.list", json!({"limit": 10, "cursor": cursor})),
        s.call(t, "auth.user.delete", json!({"user_id": ids[1]})),
    );
    deleted.unwrap();
    let next: Vec<String> = next.unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(next, ids[2..].to_vec());
}
contract!(list_cursor_races_a_delete);
contract!(update_fields, vendors);
contract!(mfa_enrollment, vendors[clerk, workos]);
contract!(delete_user, vendors);

/// `user.update` sets a phone number (E.164) where the vendor keeps one, and
/// a password under the creation rules, ending the user's sessions unless
/// told to keep them.
async fn phone_and_password(s: &Server, t: Transport) {
    let user = crate::attacks::user_with_password(s, t, "pp@example.com").await;
    let login = |password: &str| {
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": password}),
        )
    };
    let verify = |token: serde_json::Value| async move {
        s.call(t, "auth.session.verify", json!({"session_id": token}))
            .await
            .unwrap()["valid"]
            .clone()
    };
    let update = |body: serde_json::Value| {
        let mut body = body;
        body["user_id"] = json!(user);
        s.call(t, "auth.user.update", body)
    };

    expect_err(
        update(json!({"phone_number": "555-0100"})).await,
        "INVALID_ARGUMENT",
    );
    let phone = update(json!({"phone_number": "+14155550100"})).await;
    if s.vendor() == VendorKind::Workos {
        // WorkOS users have no phone number.
        expect_err(phone, "VENDOR_UNSUPPORTED");
    } else {
        assert_eq!(phone.unwrap()["phone_number"], "+14155550100");
        let got = s
            .call(t, "auth.user.get", json!({"user_id": user}))
            .await
            .unwrap();
        assert_eq!(got["phone_number"], "+14155550100");
    }

    expect_err(
        update(json!({"password": "short"})).await,
        "INVALID_ARGUMENT",
    );
    let old_session = login(crate::attacks::PASSWORD).await.unwrap();
    update(json!({"password": "a brand new password"}))
        .await
        .unwrap();
    assert_eq!(
        verify(old_session["access_token"].clone()).await,
        false,
        "a new password ends the old sessions"
    );
    expect_err(
        login(crate::attacks::PASSWORD).await,
        "AUTH_INVALID_CREDENTIALS",
    );
    let kept = login("a brand new password").await.unwrap();
    update(json!({"password": "another new password", "keep_sessions": true}))
        .await
        .unwrap();
    assert_eq!(verify(kept["access_token"].clone()).await, true);
    login("another new password").await.unwrap();
}
contract!(phone_and_password, vendors);
