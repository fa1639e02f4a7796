//! Supabase: secret and legacy keys, and the exact lookup by email.

use authmux::vendors::VendorKind;
use serde_json::json;

use crate::harness::{Backend, Server, Transport};

/// Supabase takes a new `sb_secret_…` key in `apikey` alone and a legacy
/// service_role JWT as `apikey` and bearer; the adapter sends each the way
/// the platform accepts it.
#[tokio::test]
async fn supabase_takes_secret_and_legacy_keys() {
    use crate::emulators::supabase::{LEGACY_SERVICE_ROLE_KEY, SERVICE_ROLE_KEY};
    for key in [SERVICE_ROLE_KEY, LEGACY_SERVICE_ROLE_KEY] {
        let s = Server::start_vendors(Backend::Sqlite, &[VendorKind::Supabase], |c| {
            c.supabase.supabase_service_role_key = Some(key.into());
        })
        .await
        .unwrap();
        let u = s
            .call(
                Transport::Rest,
                "auth.user.create",
                json!({"email": "keys@example.com", "password": "vendor password"}),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", &key[..10]));
        let got = s
            .call(
                Transport::Rest,
                "auth.user.get",
                json!({"user_id": u["user_id"]}),
            )
            .await
            .unwrap();
        assert_eq!(got["vendor"], "supabase");
        crate::harness::confirm_email(&s, Transport::Rest, u["user_id"].as_str().unwrap()).await;
        s.call(
            Transport::Rest,
            "auth.session.create",
            json!({"user_id": u["user_id"], "method": "password", "password": "vendor password"}),
        )
        .await
        .unwrap();
    }
}

/// GoTrue's `filter` is a case-sensitive `LIKE` paged at 50: the lookup by
/// email lower-cases and escapes the address, reads every page and keeps
/// only an exact match.
#[tokio::test]
async fn supabase_lookup_by_email_is_exact_across_pages() {
    use authmux::vendors::http::Policy;
    use authmux::vendors::supabase::{Supabase, SupabaseConfig};
    use authmux::vendors::{IdentityVendor, NewIdentity};
    let (emulator, _handle) = crate::emulators::supabase::start().await;
    let sb = Supabase::new(
        SupabaseConfig {
            url: emulator.base_url.clone(),
            service_role_key: crate::emulators::supabase::SERVICE_ROLE_KEY.into(),
        },
        Policy::default(),
    );
    let metadata = serde_json::Map::new();
    let create = |user_id: String, email: String| {
        let sb = &sb;
        let metadata = &metadata;
        async move {
            sb.create_user(
                "prj_test",
                NewIdentity {
                    user_id: &user_id,
                    email: &email,
                    password: None,
                    metadata,
                },
            )
            .await
            .unwrap()
        }
    };
    let target = create("usr_target".into(), "a_b@example.com".into()).await;
    // Newer users that also match, filling the first page.
    for i in 0..55 {
        create(format!("usr_{i}"), format!("zz{i}-a_b@example.com")).await;
    }
    // `_` unescaped would match this one too.
    create("usr_x".into(), "axb@example.com".into()).await;

    let found = sb
        .find_user_by_email("prj_test", "A_B@Example.com")
        .await
        .unwrap()
        .expect("found past the first page, whatever the case");
    assert_eq!(found.id, target);
    assert_eq!(found.external_id.as_deref(), Some("usr_target"));
    assert_eq!(
        sb.find_user_by_email("prj_test", "a%b@example.com")
            .await
            .unwrap(),
        None,
        "a wildcard in the address matches nothing"
    );
    assert_eq!(
        sb.find_user_by_email("prj_test", "b@example.com")
            .await
            .unwrap(),
        None,
        "a substring is not a match"
    );
}

/// GoTrue hashes with bcrypt, which takes at most 72 bytes: a longer
/// password makes it answer 500, which would count against the vendor's
/// circuit breaker. authmux refuses such a password for a Supabase user
/// itself, naming the limit, and the vendor keeps serving. Signing in
/// compares the first 72 bytes, as GoTrue does.
#[tokio::test]
async fn supabase_passwords_are_at_most_72_bytes() {
    let s = Server::start_vendors(Backend::Sqlite, &[VendorKind::Supabase], |_| {})
        .await
        .unwrap();
    let t = Transport::Rest;
    let long = "é".repeat(37); // 37 characters, 74 bytes
    let e = crate::harness::expect_err(
        s.call(
            t,
            "auth.user.create",
            json!({"email": "long@example.com", "password": long}),
        )
        .await,
        "AUTH_PASSWORD_REJECTED",
    );
    assert!(e.message.contains("72"), "{e:?}");

    let longest = "p".repeat(72);
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "bcrypt@example.com", "password": longest}),
        )
        .await
        .unwrap();
    let user = u["user_id"].as_str().unwrap();
    crate::harness::confirm_email(&s, t, user).await;
    // More refusals than the breaker's threshold (5) in a row.
    for _ in 0..6 {
        let e = crate::harness::expect_err(
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "password": "q".repeat(73)}),
            )
            .await,
            "AUTH_PASSWORD_REJECTED",
        );
        assert!(e.message.contains("72"), "{e:?}");
    }
    s.call(
        t,
        "auth.session.create",
        json!({"user_id": user, "method": "password", "password": longest}),
    )
    .await
    .unwrap();
    // Signing in is not hashing: GoTrue compares what bcrypt reads, the
    // first 72 bytes, so a longer password is a mismatch (not a 500) unless
    // it starts with the stored one, which authmux passes on as the
    // vendor's answer.
    crate::harness::expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": "q".repeat(73)}),
        )
        .await,
        "AUTH_INVALID_CREDENTIALS",
    );
    s.call(
        t,
        "auth.session.create",
        json!({"user_id": user, "method": "password", "password": format!("{longest}!")}),
    )
    .await
    .unwrap();
}
