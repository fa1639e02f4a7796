//! user.* over both transports.

use authmux::vendors::VendorKind;
use serde_json::json;
use std::time::Duration;

use crate::harness::{Server, Transport, create_user, expect_err};
use crate::sessions::verify;
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

/// A phone number belongs to one user of a project, whichever vendor holds
/// them: another user's number is `AUTH_PHONE_NUMBER_TAKEN`, before any
/// vendor is asked, and changes nothing. At Clerk and Supabase a number is
/// also unique across the vendor's whole instance, which the operator's
/// projects share: there the vendor's refusal is the same error (Clerk's
/// `form_identifier_exists` on `phone_number`; GoTrue's 500 on its UNIQUE
/// column, which does not count against the vendor's circuit breaker).
async fn phone_numbers_belong_to_one_user(s: &Server, t: Transport) {
    const NUMBER: &str = "+14155550123";
    let a = create_user(s, t, "phone-a@example.com").await["user_id"].clone();
    let b = create_user(s, t, "phone-b@example.com").await["user_id"].clone();
    let update = |user: &serde_json::Value, phone: &str| {
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": user, "phone_number": phone, "metadata": {"tried": phone}}),
        )
    };
    let get = |user: serde_json::Value| async move {
        s.call(t, "auth.user.get", json!({"user_id": user}))
            .await
            .unwrap()
    };

    update(&a, NUMBER).await.unwrap();
    // Setting one's own number again is no change.
    update(&a, NUMBER).await.unwrap();
    let e = expect_err(update(&b, NUMBER).await, "AUTH_PHONE_NUMBER_TAKEN");
    assert!(e.message.contains("phone_number"), "{e:?}");
    let untouched = get(b.clone()).await;
    assert!(untouched.get("phone_number").is_none(), "{untouched}");
    assert!(untouched["metadata"].get("tried").is_none(), "{untouched}");
    update(&b, "+14155550124").await.unwrap();

    // Another project of the same server.
    let other = s.key_for("phones-elsewhere").await;
    let elsewhere = s
        .call_as(
            t,
            &other,
            "auth.user.create",
            json!({"email": "phone-c@example.com"}),
            &[],
        )
        .await
        .unwrap()["user_id"]
        .clone();
    let in_other = |phone: &'static str| {
        let (other, elsewhere) = (other.clone(), elsewhere.clone());
        async move {
            s.call_as(
                t,
                &other,
                "auth.user.update",
                json!({"user_id": elsewhere, "phone_number": phone}),
                &[],
            )
            .await
        }
    };
    match s.vendor() {
        // authmux's own index is per project.
        VendorKind::Native => {
            assert_eq!(in_other(NUMBER).await.unwrap()["phone_number"], NUMBER);
        }
        // One vendor instance behind both projects: the vendor refuses it.
        VendorKind::Clerk | VendorKind::Supabase => {
            // More refusals than the breaker's threshold (5) in a row.
            for _ in 0..6 {
                let e = expect_err(in_other(NUMBER).await, "AUTH_PHONE_NUMBER_TAKEN");
                assert!(e.message.contains(s.vendor().as_str()), "{e:?}");
            }
            // A number the vendor refuses leaves the rest of the update
            // unsent, the email's verification included (GoTrue can't
            // unconfirm an email once confirmed).
            let whole = json!({"user_id": elsewhere, "phone_number": NUMBER,
                               "email_verified": true, "metadata": {"tried": NUMBER}});
            expect_err(
                s.call_as(t, &other, "auth.user.update", whole, &[]).await,
                "AUTH_PHONE_NUMBER_TAKEN",
            );
            let got = s
                .call_as(
                    t,
                    &other,
                    "auth.user.get",
                    json!({"user_id": elsewhere}),
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(got["email_verified"], false, "{got}");
            assert!(got["metadata"].get("tried").is_none(), "{got}");
            // The vendor still serves: its breaker did not open.
            assert_eq!(
                in_other("+14155550125").await.unwrap()["phone_number"],
                "+14155550125"
            );
        }
        VendorKind::Workos => unreachable!("WorkOS users have no phone number"),
    }

    // A number given up can be taken (Supabase can't remove a phone).
    if s.vendor() != VendorKind::Supabase {
        update(&a, "").await.unwrap();
        assert_eq!(update(&b, NUMBER).await.unwrap()["phone_number"], NUMBER);
        expect_err(update(&a, NUMBER).await, "AUTH_PHONE_NUMBER_TAKEN");
    }
}
contract!(phone_numbers_belong_to_one_user, vendors[clerk, supabase]);

/// A password policy holds on create and on update alike: the built-in
/// provider's (zxcvbn: a password found within 10^8 guesses is refused)
/// and a vendor's own (Clerk's and WorkOS's refuse breached passwords by
/// default). Its refusal is `AUTH_PASSWORD_REJECTED` (422) with the
/// reason, and it changes nothing: no user is made; an update that also
/// marks the email verified and changes metadata leaves the index, the
/// vendor's record, the user's sessions and the old password as they were.
async fn password_policies_change_nothing_when_they_refuse(s: &Server, t: Transport) {
    use authmux_testkit::emulators::BREACHED_PASSWORDS;
    const EMAIL: &str = "zorblax.quintrell@example.com";
    const GOOD: &str = "a long enough password";
    let vendor = s.vendor();
    let breached = BREACHED_PASSWORDS[0];
    let refused = |e: authmux_testkit::ApiError| match vendor {
        VendorKind::Native => {
            let reason = e.message.split_once("password is too easy to guess: ");
            assert!(
                reason.is_some_and(|(_, why)| why.len() > 10),
                "the reason is named: {e:?}"
            );
        }
        _ => {
            assert!(e.message.contains(vendor.as_str()), "{e:?}");
            assert!(e.message.contains("breach"), "the reason is named: {e:?}");
        }
    };

    refused(expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": EMAIL, "password": breached}),
        )
        .await,
        "AUTH_PASSWORD_REJECTED",
    ));
    expect_err(
        s.call(t, "auth.user.get_by_email", json!({"email": EMAIL}))
            .await,
        "AUTH_USER_NOT_FOUND",
    );
    let user = s
        .call(
            t,
            "auth.user.create",
            json!({"email": EMAIL, "password": GOOD}),
        )
        .await
        .unwrap()["user_id"]
        .clone();
    let login = |password: &'static str| {
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": password}),
        )
    };
    let session = login(GOOD).await.unwrap();

    for password in BREACHED_PASSWORDS {
        refused(expect_err(
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "password": password, "email_verified": true,
                       "metadata": {"tried": password}}),
            )
            .await,
            "AUTH_PASSWORD_REJECTED",
        ));
    }
    let got = s
        .call(t, "auth.user.get", json!({"user_id": user}))
        .await
        .unwrap();
    assert_eq!(got["email_verified"], false, "{got}");
    assert!(got["metadata"].get("tried").is_none(), "{got}");
    let record = s
        .call(t, "auth.user.export", json!({"user_id": user}))
        .await
        .unwrap()["vendor_record"]["user"]
        .clone();
    let verified_at_vendor = match vendor {
        // The index is the built-in provider's record.
        VendorKind::Native => false,
        VendorKind::Clerk => record["email_addresses"][0]["verification"]["status"] == "verified",
        VendorKind::Workos => record["email_verified"] == true,
        other => unreachable!("{other}"),
    };
    assert!(
        !verified_at_vendor,
        "the vendor's record is untouched: {record}"
    );
    let still = verify(s, t, session["access_token"].as_str().unwrap()).await;
    assert_eq!(still["valid"], true, "no session was ended: {still}");
    expect_err(login(breached).await, "AUTH_INVALID_CREDENTIALS");
    login(GOOD).await.unwrap();

    if vendor == VendorKind::Native {
        // Words an attacker takes from the user's own email, and patterns
        // no breach list holds, are refused as well.
        for (password, reason) in [
            ("zorblax.quintrell", "Add another word"),
            ("quintrell2026", "Add another word"),
            ("zxcvbnmasdfgh", "commonly used"),
            ("abcdefghijkl", "Sequences"),
        ] {
            let e = expect_err(
                s.call(
                    t,
                    "auth.user.update",
                    json!({"user_id": user, "password": password, "email_verified": true}),
                )
                .await,
                "AUTH_PASSWORD_REJECTED",
            );
            assert!(e.message.contains(reason), "{password}: {e:?}");
            expect_err(login(password).await, "AUTH_INVALID_CREDENTIALS");
        }
        let got = s
            .call(t, "auth.user.get", json!({"user_id": user}))
            .await
            .unwrap();
        assert_eq!(got["email_verified"], false, "{got}");
        login(GOOD).await.unwrap();
    }
    if vendor == VendorKind::Clerk {
        // bcrypt's 72 bytes: Clerk refuses more, under any policy.
        let e = expect_err(
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "password": "é".repeat(37)}),
            )
            .await,
            "AUTH_PASSWORD_REJECTED",
        );
        assert!(e.message.contains("bytes"), "{e:?}");
    }
    // A password the policy takes still goes through.
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": user, "password": "another fine password"}),
    )
    .await
    .unwrap();
    login("another fine password").await.unwrap();

    // A refused change sent twice at once, racing the user's delete: the
    // delete goes through, each copy is refused (or finds no user), and
    // the user is gone at the vendor too.
    let refuse = || {
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": user, "password": breached, "email_verified": true}),
        )
    };
    let (a, b, deleted) = tokio::join!(
        refuse(),
        refuse(),
        s.call(t, "auth.user.delete", json!({"user_id": user})),
    );
    deleted.unwrap();
    for r in [a, b] {
        let e = r.unwrap_err();
        assert!(
            ["AUTH_PASSWORD_REJECTED", "AUTH_USER_NOT_FOUND"].contains(&e.code.as_str()),
            "{e:?}"
        );
    }
    expect_err(
        s.call(t, "auth.user.get_by_email", json!({"email": EMAIL}))
            .await,
        "AUTH_USER_NOT_FOUND",
    );
}
contract!(
    password_policies_change_nothing_when_they_refuse,
    vendors[clerk, workos]
);

/// An update that changes everything at once (password, email
/// verification, metadata and, where the vendor keeps one, the phone
/// number) sent while the user is being deleted, each a little later than
/// the other in turn. The delete goes through; the update either lands
/// before it or finds no user, never a vendor error. Afterwards nothing of
/// the user is left: no record in authmux, no session that verifies, no
/// password that signs in, no event after `user.deleted`, and no account at
/// the vendor (the email makes a new user, which starts blank).
async fn an_update_racing_the_users_delete_leaves_nothing(s: &Server, t: Transport) {
    const OLD: &str = "a first long passphrase";
    const NEW: &str = "a second long passphrase";
    let vendor = s.vendor();
    for trial in 0..8u64 {
        let email = format!("update-race{trial}@example.com");
        let user = s
            .call(
                t,
                "auth.user.create",
                json!({"email": email, "password": OLD}),
            )
            .await
            .unwrap_or_else(|e| panic!("trial {trial}: {e:?}"))["user_id"]
            .clone();
        if vendor == VendorKind::Supabase {
            // GoTrue opens sessions for confirmed emails only.
            crate::harness::confirm_email(s, t, user.as_str().unwrap()).await;
        }
        let login = |password: &'static str| {
            s.call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": password}),
            )
        };
        let session = login(OLD).await.unwrap();
        let mut update = json!({"user_id": user, "password": NEW, "email_verified": true,
                                "metadata": {"trial": trial}});
        if vendor != VendorKind::Workos {
            update["phone_number"] = json!(format!("+1415555{:04}", 100 + trial));
        }
        // Even trials send the update first, odd ones the delete, the
        // other after a few milliseconds more each time.
        let lag = |first: bool| Duration::from_millis(if first { 0 } else { trial * 4 });
        let (updated, deleted) = tokio::join!(
            async {
                tokio::time::sleep(lag(trial % 2 == 0)).await;
                s.call(t, "auth.user.update", update).await
            },
            async {
                tokio::time::sleep(lag(trial % 2 == 1)).await;
                s.call(t, "auth.user.delete", json!({"user_id": user}))
                    .await
            },
        );
        deleted.unwrap_or_else(|e| panic!("trial {trial}: the delete: {e:?}"));
        if let Err(e) = updated {
            assert_eq!(e.code, "AUTH_USER_NOT_FOUND", "trial {trial}: {e:?}");
        }

        expect_err(
            s.call(t, "auth.user.get", json!({"user_id": user})).await,
            "AUTH_USER_NOT_FOUND",
        );
        let still = verify(s, t, session["access_token"].as_str().unwrap()).await;
        assert_eq!(still["valid"], false, "trial {trial}: {still}");
        for password in [OLD, NEW] {
            expect_err(login(password).await, "AUTH_USER_NOT_FOUND");
        }
        let events = s
            .call(t, "auth.audit", json!({"user_id": user, "limit": 100}))
            .await
            .unwrap()["items"]
            .clone();
        // Newest first.
        assert_eq!(
            events[0]["type"], "user.deleted",
            "trial {trial}: nothing after the erasure: {events}"
        );
        let again = s
            .call(t, "auth.user.create", json!({"email": email}))
            .await
            .unwrap_or_else(|e| panic!("trial {trial}: the email is free again: {e:?}"));
        assert_eq!(again["email_verified"], false, "trial {trial}: {again}");
        assert_eq!(again["metadata"], json!({}), "trial {trial}: {again}");
        assert!(
            again.get("phone_number").is_none(),
            "trial {trial}: {again}"
        );
    }
}
contract!(an_update_racing_the_users_delete_leaves_nothing, vendors);

/// A database whose users already share a phone number is left as it is
/// by the migration that makes numbers unique: it stops and names the
/// query that finds them. Once they are apart it goes through, and the
/// index then refuses a second holder.
#[tokio::test]
async fn shared_phone_numbers_stop_the_unique_index_migration() {
    use authmux_migrations::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Database, Statement};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(14)).await.unwrap();
    for (id, email) in [("usr_1", "a@example.com"), ("usr_2", "b@example.com")] {
        db.execute_unprepared(&format!(
            "INSERT INTO users (id, project_id, email, email_lower, email_verified, metadata, \
             mfa_enabled, vendor, created_at, updated_at, phone_number, password_set) VALUES \
             ('{id}', 'prj_1', '{email}', '{email}', false, '{{}}', false, 'native', 1, 1, \
             '+14155550100', false)"
        ))
        .await
        .unwrap();
    }
    let e = Migrator::up(&db, None).await.unwrap_err().to_string();
    assert!(
        e.contains("1 phone number(s) are held by more than one user"),
        "{e}"
    );
    assert!(e.contains("GROUP BY project_id, phone_number"), "{e}");
    let holders = || {
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM users WHERE phone_number = '+14155550100'",
        ))
    };
    assert_eq!(holders().await.unwrap().len(), 2, "nothing was changed");

    db.execute_unprepared("UPDATE users SET phone_number = NULL WHERE id = 'usr_2'")
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    let again = db
        .execute_unprepared("UPDATE users SET phone_number = '+14155550100' WHERE id = 'usr_2'")
        .await;
    assert!(again.is_err(), "the unique index refuses a second holder");
    assert_eq!(holders().await.unwrap().len(), 1);
}
