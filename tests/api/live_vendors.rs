//! The adapters against emulators that behave like the live vendors (issue
//! "work against the live vendors"): what a right password means at each,
//! sign-ins that must not change the user, production keys, metadata at
//! the vendor, revocation that reaches every vendor session, users deleted
//! at the vendor, and MFA enrolments that fail half-way.

use authmux::vendors::VendorKind;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Backend, Server, Transport, confirm_email, expect_err};
use crate::sessions::{claims, totp_at};

const PASSWORD: &str = "vendor password";

async fn user(s: &Server, t: Transport, email: &str) -> String {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": email, "password": PASSWORD}),
        )
        .await
        .unwrap_or_else(|e| panic!("create {email}: {e:?}"));
    u["user_id"].as_str().unwrap().to_owned()
}

async fn sign_in(
    s: &Server,
    t: Transport,
    user: &str,
    extra: Value,
) -> Result<Value, crate::harness::ApiError> {
    let mut req = json!({"user_id": user, "method": "password", "password": PASSWORD});
    for (k, v) in extra.as_object().unwrap() {
        req[k] = v.clone();
    }
    s.call(t, "auth.session.create", req).await
}

async fn get(s: &Server, t: Transport, user: &str) -> Value {
    s.call(t, "auth.user.get", json!({"user_id": user}))
        .await
        .unwrap()
}

async fn valid(s: &Server, t: Transport, session: &Value) -> bool {
    s.call(
        t,
        "auth.session.verify",
        json!({"session_id": session["access_token"]}),
    )
    .await
    .unwrap()["valid"]
        == true
}

/// WorkOS answers 403 `email_verification_required` after a right
/// password: the sign-in succeeds (through Magic Auth) and the user stays
/// unverified; a verified user keeps the session the password grant
/// opened, and no Magic Auth email goes out.
#[tokio::test]
async fn workos_right_password_of_an_unverified_user_signs_in() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "unverified@example.com").await;
    expect_err(
        sign_in(&s, t, &u, json!({"password": "not it"})).await,
        "AUTH_INVALID_CREDENTIALS",
    );
    let session = sign_in(&s, t, &u, json!({})).await.unwrap();
    assert!(valid(&s, t, &session).await);
    assert!(
        !workos.email_verified("unverified@example.com"),
        "still unverified at WorkOS"
    );
    assert_eq!(get(&s, t, &u).await["email_verified"], false);
    assert_eq!(workos.magic_emails(), 1, "the server path emailed a code");

    confirm_email(&s, t, &u).await;
    let session = sign_in(&s, Transport::Grpc, &u, json!({})).await.unwrap();
    assert!(valid(&s, t, &session).await);
    assert_eq!(
        workos.magic_emails(),
        1,
        "the password grant's session was kept"
    );
    assert_eq!(
        workos.live_sessions_of("unverified@example.com"),
        2,
        "nothing opened twice"
    );
}

/// A WorkOS user with a factor: the password grant answers 403
/// `mfa_challenge`, finished with the `mfa-totp` grant; server mints too.
#[tokio::test]
async fn workos_mfa_users_finish_with_the_mfa_totp_grant() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let t = Transport::Grpc;
    let u = user(&s, t, "mfa@example.com").await;
    confirm_email(&s, t, &u).await;
    let enrolled = crate::harness::enable_mfa(&s, t, &u).await;
    let secret = enrolled["mfa_enrollment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_err(sign_in(&s, t, &u, json!({})).await, "AUTH_MFA_REQUIRED");
    expect_err(
        sign_in(&s, t, &u, json!({"mfa_factor": totp_at(&secret, 600)})).await,
        "AUTH_MFA_INVALID",
    );
    let session = sign_in(&s, t, &u, json!({"mfa_factor": totp_at(&secret, 0)}))
        .await
        .unwrap();
    assert!(valid(&s, t, &session).await);
    let minted = s
        .call(
            t,
            "auth.session.create",
            json!({"user_id": u, "mfa_factor": totp_at(&secret, 30)}),
        )
        .await
        .unwrap();
    assert!(valid(&s, t, &minted).await);
    assert_eq!(
        s.workos
            .as_ref()
            .unwrap()
            .live_sessions_of("mfa@example.com"),
        2,
        "{}",
        claims(minted["access_token"].as_str().unwrap())
    );
}

/// The other 403s after a right password are named, never count as wrong
/// passwords, and are answered without a Magic Auth code: one would meet
/// the same refusal, after WorkOS had emailed it to the user and counted it
/// against its 3 codes per email a minute.
#[tokio::test]
async fn workos_refusals_after_a_right_password_are_named() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "org@example.com").await;
    confirm_email(&s, t, &u).await;
    workos.require_mfa(true);
    // More than authmux's 10 failed passwords. WorkOS itself allows 10
    // authentications per email a minute, and each of these sign-ins is
    // one (the password grant), so a minute passes there after ten.
    for i in 0..12 {
        if i == 10 {
            workos.a_minute_passes();
        }
        expect_err(sign_in(&s, t, &u, json!({})).await, "AUTH_MFA_NOT_ENROLLED");
    }
    workos.require_mfa(false);
    workos.set_organizations("org@example.com", 2);
    for _ in 0..4 {
        let e = expect_err(sign_in(&s, t, &u, json!({})).await, "VENDOR_UNSUPPORTED");
        assert!(e.message.contains("organization"), "{e:?}");
    }
    assert_eq!(workos.magic_emails(), 0, "no code emailed for nothing");
    workos.set_organizations("org@example.com", 1);
    sign_in(&s, t, &u, json!({})).await.unwrap();
}

/// WorkOS allows 10 authentications per email a minute (docs, rate
/// limits): the 11th sign-in is WorkOS's 429, answered VENDOR_UNAVAILABLE
/// naming the limit with a Retry-After of WorkOS's window, opens no
/// session and is not counted as a wrong password; once WorkOS's minute
/// has passed, the user signs in again.
#[tokio::test]
async fn workos_authentication_limit_per_email_is_the_vendors_429() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "busy@example.com").await;
    confirm_email(&s, t, &u).await;
    for i in 0..10 {
        sign_in(&s, t, &u, json!({}))
            .await
            .unwrap_or_else(|e| panic!("sign-in {i}: {e:?}"));
    }
    for _ in 0..12 {
        let e = expect_err(sign_in(&s, t, &u, json!({})).await, "VENDOR_UNAVAILABLE");
        assert_eq!(e.retry_after, Some(60), "WorkOS's window: {e:?}");
        assert!(
            e.message.contains("10 authentications per email a minute"),
            "{e:?}"
        );
    }
    assert_eq!(
        s.workos
            .as_ref()
            .unwrap()
            .live_sessions_of("busy@example.com"),
        10
    );
    // Twelve refusals, yet authmux's own throttle (10 wrong passwords) did
    // not count them.
    s.workos.as_ref().unwrap().a_minute_passes();
    let session = sign_in(&s, t, &u, json!({})).await.unwrap();
    assert!(valid(&s, t, &session).await);
}

/// WorkOS sends 3 Magic Auth codes per email a minute (docs, rate
/// limits), and a sign-in of an unverified user takes one: the fourth
/// within the minute is WorkOS's 429, answered VENDOR_UNAVAILABLE naming
/// the limit, with a Retry-After of WorkOS's 60-second window. It opens no
/// session and leaves the email unverified; once the minute has passed,
/// the user signs in again.
#[tokio::test]
async fn workos_magic_auth_limit_per_email_is_the_vendors_429() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let email = "magic-limit@example.com";
    let u = user(&s, Transport::Rest, email).await;
    for i in 0..3 {
        sign_in(&s, Transport::Rest, &u, json!({}))
            .await
            .unwrap_or_else(|e| panic!("sign-in {i}: {e:?}"));
    }
    for t in [Transport::Rest, Transport::Grpc] {
        let e = expect_err(sign_in(&s, t, &u, json!({})).await, "VENDOR_UNAVAILABLE");
        assert_eq!(e.retry_after, Some(60), "{e:?}");
        assert!(
            e.message.contains("3 Magic Auth codes per email a minute"),
            "{e:?}"
        );
    }
    assert_eq!(workos.magic_emails(), 3);
    assert_eq!(workos.live_sessions_of(email), 3);
    assert!(!workos.email_verified(email), "still unverified at WorkOS");
    assert_eq!(get(&s, Transport::Grpc, &u).await["email_verified"], false);
    workos.a_minute_passes();
    let session = sign_in(&s, Transport::Grpc, &u, json!({})).await.unwrap();
    assert!(valid(&s, Transport::Rest, &session).await);
    assert!(!workos.email_verified(email));
}

/// Five sign-ins of one unverified WorkOS user sent 25 ms apart over both
/// transports, each WorkOS request taking 20 ms, so that each arrives while
/// the one before is between its steps (the password grant, reading the
/// user, the Magic Auth code, its grant, setting the email back). The
/// sign-in holds the user, so they run one after another, three with a
/// Magic Auth code and a session, two refused by WorkOS's 3 codes per
/// email a minute. The email stays unverified at WorkOS and in the index,
/// and no event names it: no copy took the verification Magic Auth passed
/// through for the user's own.
#[tokio::test]
async fn unverified_sign_ins_in_a_burst_take_turns() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let email = "at-once@example.com";
    let u = user(&s, Transport::Rest, email).await;
    s.emulator.as_ref().unwrap().faults.lock().unwrap().latency = Duration::from_millis(20);
    let copies = (0..5u32).map(|i| {
        let t = if i % 2 == 0 {
            Transport::Rest
        } else {
            Transport::Grpc
        };
        let s = &s;
        let u = &u;
        async move {
            tokio::time::sleep(Duration::from_millis(25) * i).await;
            sign_in(s, t, u, json!({})).await
        }
    });
    let results = futures::future::join_all(copies).await;
    s.emulator.as_ref().unwrap().faults.lock().unwrap().latency = Duration::ZERO;
    let mut sessions = Vec::new();
    for r in results {
        match r {
            Ok(session) => sessions.push(session),
            Err(e) => {
                assert_eq!(e.code, "VENDOR_UNAVAILABLE", "{e:?}");
                assert_eq!(e.retry_after, Some(60), "{e:?}");
            }
        }
    }
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    for session in &sessions {
        assert!(valid(&s, Transport::Rest, session).await);
    }
    assert_eq!(workos.magic_emails(), 3);
    assert_eq!(workos.live_sessions_of(email), 3);
    assert!(!workos.email_verified(email), "still unverified at WorkOS");
    let held = indexed(&s, Transport::Rest, &u).await;
    assert_eq!(held["email_verified"], false, "{held}");
    assert_eq!(get(&s, Transport::Rest, &u).await["email_verified"], false);
    no_event_names(
        &s,
        Transport::Rest,
        &u,
        "email_verified",
        "sign-ins at once",
    )
    .await;
}

/// `n` metadata updates of user `u`, setting `{"n": 0}` to `{"n": n-1}`:
/// each is one of Clerk's 10 writes per user in 10 seconds.
async fn metadata_writes(s: &Server, t: Transport, u: &str, n: u32) {
    for i in 0..n {
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": u, "metadata": {"n": i}}),
        )
        .await
        .unwrap_or_else(|e| panic!("update {i}: {e:?}"));
    }
}

/// Clerk allows 10 writes per user in 10 seconds (system limits): the
/// 11th metadata update is Clerk's 429, answered VENDOR_UNAVAILABLE with
/// Clerk's Retry-After (past authmux's 5-second cap for waiting it out),
/// and the user keeps the last metadata that was written.
#[tokio::test]
async fn clerk_write_limit_per_user_is_the_vendors_429() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let t = Transport::Grpc;
    let u = user(&s, t, "written@example.com").await;
    metadata_writes(&s, t, &u, 10).await;
    let e = expect_err(
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": u, "metadata": {"n": 10}}),
        )
        .await,
        "VENDOR_UNAVAILABLE",
    );
    assert!(
        e.retry_after.is_some_and(|r| (6..=10).contains(&r)),
        "{e:?}"
    );
    let got = s
        .call(t, "auth.user.get", json!({"user_id": u}))
        .await
        .unwrap();
    assert_eq!(got["metadata"], json!({"n": 9}), "{got}");
    let vendor_copy = s
        .clerk_keys
        .as_ref()
        .unwrap()
        .metadata("written@example.com")
        .1;
    assert_eq!(Value::Object(vendor_copy), json!({"n": 9}));
}

/// A new password Clerk took although the rest of the update then failed
/// (Clerk's write limit refused the metadata): the update is an error, its
/// metadata is not stored, yet the password's consequences hold. The
/// session the old password opened ends and the old password no longer
/// signs in.
#[tokio::test]
async fn a_password_the_vendor_took_ends_old_sessions_though_the_update_failed() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "half@example.com").await;
    let old_session = sign_in(&s, t, &u, json!({})).await.unwrap();
    // Nine of Clerk's ten writes per user in ten seconds.
    metadata_writes(&s, t, &u, 9).await;
    let new_password = "a different vendor passphrase";
    expect_err(
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": u, "password": new_password, "metadata": {"n": 9}}),
        )
        .await,
        "VENDOR_UNAVAILABLE",
    );
    assert_eq!(get(&s, t, &u).await["metadata"], json!({"n": 8}));
    assert!(
        !valid(&s, t, &old_session).await,
        "the old password's session ended"
    );
    expect_err(
        sign_in(&s, t, &u, json!({})).await,
        "AUTH_INVALID_CREDENTIALS",
    );
    let mut with_new = json!({"user_id": u, "method": "password", "password": new_password});
    let session = s
        .call(t, "auth.session.create", with_new.take())
        .await
        .unwrap();
    assert!(valid(&s, t, &session).await);
}

/// An MFA-enrolled Clerk user, whose factor Clerk fails to remove: an
/// update that also merges metadata and verifies the email sends those
/// first, then fails at the factor.
async fn factor_removal_fails(s: &Server, t: Transport, email: &str) -> (String, Value) {
    let u = user(s, t, email).await;
    crate::harness::enable_mfa(s, t, &u).await;
    let update = json!({"user_id": u, "metadata": {"n": 1}, "email_verified": true,
                        "mfa_enabled": false});
    (u, update)
}

/// An update that fails before it is stored gives the vendor back what it
/// had taken: here Clerk took the metadata and verified the email, then
/// failed to remove the factor, and the email is unverified again and the
/// metadata as it was, at Clerk as in authmux.
#[tokio::test]
async fn a_failed_update_gives_the_vendor_back_what_it_took() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let keys = s.clerk_keys.clone().unwrap();
    let t = Transport::Grpc;
    let email = "undone@example.com";
    let (u, update) = factor_removal_fails(&s, t, email).await;
    keys.fail_factor_removals(Some(Duration::from_millis(10)));
    expect_err(
        s.call(t, "auth.user.update", update).await,
        "VENDOR_UNAVAILABLE",
    );
    let got = get(&s, t, &u).await;
    assert_eq!(got["email_verified"], false, "{got}");
    assert_eq!(got["metadata"], json!({}), "{got}");
    assert_eq!(got["mfa_enabled"], true, "{got}");
    assert_eq!(keys.verified(email), Some(false));
    assert!(
        keys.metadata(email).1.is_empty(),
        "{:?}",
        keys.metadata(email)
    );
}

/// Metadata merges sent at once for one user each land, in the index and
/// at the vendor: a merge overtaken by another is read, merged and sent
/// again before it is stored.
#[tokio::test]
async fn metadata_merges_at_once_all_reach_the_vendor() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Supabase)
        .await
        .unwrap();
    let sb = s.supabase.clone().unwrap();
    let u = user_with_metadata(&s, Transport::Rest).await;
    for round in 0..3 {
        let merges = (0..6).map(|i| {
            let t = if i % 2 == 0 {
                Transport::Rest
            } else {
                Transport::Grpc
            };
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": u, "metadata": {format!("k{round}_{i}"): i}}),
            )
        });
        for r in futures::future::join_all(merges).await {
            r.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
        let stored = get(&s, Transport::Rest, &u).await["metadata"].clone();
        assert_eq!(
            stored.as_object().unwrap().len(),
            1 + 6 * (round + 1),
            "{stored}"
        );
        assert_eq!(
            sb.app_metadata("m@example.com")["authmux_metadata"],
            stored,
            "round {round}: the vendor has every merge"
        );
    }
}

/// Supabase: the password grant's session is the one handed out; the
/// server path (which confirms the email at GoTrue) is refused for an
/// unconfirmed user rather than confirming it, and a right password is
/// never a failed attempt.
#[tokio::test]
async fn supabase_sign_ins_leave_the_email_as_it_was() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Supabase)
        .await
        .unwrap();
    let sb = s.supabase.clone().unwrap();
    let t = Transport::Rest;
    let email = "unconfirmed@example.com";
    let u = user(&s, t, email).await;
    for _ in 0..12 {
        let e = expect_err(sign_in(&s, t, &u, json!({})).await, "VENDOR_UNSUPPORTED");
        assert!(e.message.contains("confirm"), "{e:?}");
    }
    expect_err(
        s.call(t, "auth.session.create", json!({"user_id": u}))
            .await,
        "VENDOR_UNSUPPORTED",
    );
    assert!(!sb.confirmed(email), "no sign-in confirmed the email");
    assert_eq!(sb.live_sessions_of(email), 0);

    // With "allow unverified email sign-ins" the password grant opens it.
    sb.allow_unverified_sign_ins(true);
    let session = sign_in(&s, t, &u, json!({})).await.unwrap();
    assert!(valid(&s, t, &session).await);
    assert!(!sb.confirmed(email));
    assert_eq!(get(&s, t, &u).await["email_verified"], false);
    assert_eq!(
        sb.live_sessions_of(email),
        1,
        "kept, not ended and minted again"
    );
}

/// GoTrue limits `/verify` to 30 per 5 minutes per address: server mints
/// carry the end user's address, so one busy address does not stop others.
#[tokio::test]
async fn supabase_mints_count_the_end_users_address() {
    use crate::emulators::supabase::VERIFY_LIMIT;
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Supabase)
        .await
        .unwrap();
    let t = Transport::Grpc;
    let u = user(&s, t, "busy@example.com").await;
    confirm_email(&s, t, &u).await;
    let mint = |ip: Option<String>| {
        let mut req = json!({"user_id": u});
        if let Some(ip) = ip {
            req["client_ip"] = json!(ip);
        }
        s.call(t, "auth.session.create", req)
    };
    expect_err(
        mint(Some("not an address".into())).await,
        "INVALID_ARGUMENT",
    );
    for i in 0..VERIFY_LIMIT {
        mint(None)
            .await
            .unwrap_or_else(|e| panic!("mint {i}: {e:?}"));
    }
    assert!(mint(None).await.is_err(), "authmux's own address is spent");
    for i in 0..3 {
        mint(Some(format!("203.0.113.{i}"))).await.unwrap();
    }
    let seen = s.supabase.as_ref().unwrap().verify_addresses();
    assert!(seen.contains(&"203.0.113.2".to_owned()), "{seen:?}");
}

/// A Clerk production key: `POST /sessions` is testing-only, so session
/// creation says VENDOR_UNSUPPORTED and discovery says so too.
#[tokio::test]
async fn clerk_production_keys_open_no_sessions() {
    let s = Server::start_vendors(Backend::Sqlite, &[VendorKind::Clerk], |c| {
        c.clerk.clerk_secret_key = Some(crate::emulators::clerk::LIVE_SECRET_KEY.into());
    })
    .await
    .unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "live@example.com").await;
    for t in [Transport::Rest, Transport::Grpc] {
        let e = expect_err(
            s.call(t, "auth.session.create", json!({"user_id": u}))
                .await,
            "VENDOR_UNSUPPORTED",
        );
        assert!(e.message.contains("production"), "{e:?}");
        expect_err(sign_in(&s, t, &u, json!({})).await, "VENDOR_UNSUPPORTED");
    }
    for (capability, supported) in [("auth.session.create", false), ("auth.user.create", true)] {
        let d = s
            .call(t, "discovery", json!({"capability": capability}))
            .await
            .unwrap();
        let clerk = d["vendors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["vendor"] == "clerk")
            .unwrap()
            .clone();
        assert_eq!(clerk["supports"], supported, "{capability}: {clerk}");
    }
}

/// Discovery answers per mode: a project whose own Clerk credentials are a
/// production key sees `supports: false` for sessions in BYOK mode, while
/// the operator's development key still opens them; other projects see no
/// BYOK entry at all.
#[tokio::test]
async fn discovery_answers_for_the_projects_own_credentials() {
    use authmux::vendors::{ByokConfig, VendorKind};
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let alpha = s.key_for("alpha").await;
    let beta = s.key_for("beta").await;
    s.domain
        .set_vendor_credentials(
            "alpha",
            VendorKind::Clerk,
            ByokConfig {
                secret: crate::emulators::clerk::LIVE_SECRET_KEY.into(),
                url: Some(s.emulator.as_ref().unwrap().base_url.clone()),
                client_id: None,
                issuer: Some("https://clerk.alpha.example".into()),
            },
        )
        .await
        .unwrap();
    for t in [Transport::Rest, Transport::Grpc] {
        for (capability, byok_supported) in
            [("auth.session.create", false), ("auth.user.create", true)]
        {
            let d = s
                .call_as(
                    t,
                    &alpha,
                    "discovery",
                    json!({"capability": capability}),
                    &[],
                )
                .await
                .unwrap();
            let clerk: Vec<(String, bool)> = d["vendors"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| v["vendor"] == "clerk")
                .map(|v| {
                    assert_eq!(v["status"], "live", "{v}");
                    (
                        v["mode"].as_str().unwrap().to_owned(),
                        v["supports"].as_bool().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                clerk,
                [("managed".into(), true), ("byok".into(), byok_supported)],
                "{capability}"
            );
            let d = s
                .call_as(
                    t,
                    &beta,
                    "discovery",
                    json!({"capability": capability}),
                    &[],
                )
                .await
                .unwrap();
            let vendors = d["vendors"].as_array().unwrap();
            assert!(vendors.iter().all(|v| v["mode"] == "managed"), "{d}");
        }
    }
    // And the call itself agrees with discovery.
    let u = s
        .call_as(
            Transport::Rest,
            &alpha,
            "auth.user.create",
            json!({"email": "own@example.com", "vendor": "clerk", "mode": "byok"}),
            &[],
        )
        .await
        .unwrap();
    expect_err(
        s.call_as(
            Transport::Rest,
            &alpha,
            "auth.session.create",
            json!({"user_id": u["user_id"]}),
            &[],
        )
        .await,
        "VENDOR_UNSUPPORTED",
    );
}

/// Clerk: a user is created unverified in one call, and verification goes
/// both ways through documented endpoints.
#[tokio::test]
async fn clerk_creates_unverified_users_in_one_call() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let keys = s.clerk_keys.clone().unwrap();
    let t = Transport::Grpc;
    let before = s.emulator.as_ref().unwrap().requests();
    let u = user(&s, t, "one@example.com").await;
    assert_eq!(
        s.emulator.as_ref().unwrap().requests() - before,
        1,
        "one call"
    );
    assert_eq!(keys.verified("one@example.com"), Some(false));
    confirm_email(&s, t, &u).await;
    assert_eq!(keys.verified("one@example.com"), Some(true));
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": u, "email_verified": false}),
    )
    .await
    .unwrap();
    assert_eq!(keys.verified("one@example.com"), Some(false));
    assert_eq!(get(&s, t, &u).await["email_verified"], false);
}

/// `m@example.com`, with metadata `{"a": 1}` and no password.
async fn user_with_metadata(s: &Server, t: Transport) -> String {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": "m@example.com", "metadata": {"a": 1}}),
        )
        .await
        .unwrap();
    u["user_id"].as_str().unwrap().to_owned()
}

/// Metadata is kept at the vendor in its server-only field, within the
/// vendor's size limit.
#[tokio::test]
async fn metadata_reaches_the_vendor() {
    let t = Transport::Rest;
    // Clerk: private_metadata, 8 KB.
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let keys = s.clerk_keys.clone().unwrap();
    let u = user_with_metadata(&s, t).await;
    assert_eq!(
        keys.metadata("m@example.com").1,
        json!({"a": 1}).as_object().unwrap().clone()
    );
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": u, "metadata": {"a": null, "b": 2}}),
    )
    .await
    .unwrap();
    let (public, private) = keys.metadata("m@example.com");
    assert!(
        public.is_empty(),
        "nothing the frontend can read: {public:?}"
    );
    assert_eq!(Value::Object(private), json!({"b": 2}));
    let big = "x".repeat(9 * 1024);
    let e = expect_err(
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": u, "metadata": {"big": big}}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("Clerk"), "{e:?}");
    assert_eq!(
        get(&s, t, &u).await["metadata"],
        json!({"b": 2}),
        "untouched"
    );

    // Supabase: app_metadata, never user_metadata; emptied with null.
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Supabase)
        .await
        .unwrap();
    let sb = s.supabase.clone().unwrap();
    let u = user_with_metadata(&s, t).await;
    assert_eq!(
        sb.app_metadata("m@example.com")["authmux_metadata"],
        json!({"a": 1})
    );
    assert!(sb.user_metadata("m@example.com").is_empty());
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": u, "metadata": {"a": null, "b": 2}}),
    )
    .await
    .unwrap();
    assert_eq!(
        sb.app_metadata("m@example.com")["authmux_metadata"],
        json!({"b": 2})
    );
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": u, "metadata": {"b": null}}),
    )
    .await
    .unwrap();
    let app = sb.app_metadata("m@example.com");
    assert!(!app.contains_key("authmux_metadata"), "{app:?}");
    assert!(
        app.contains_key("authmux_user_id"),
        "other keys stay: {app:?}"
    );
}

/// Revoke-all ends every vendor session it can, past one that fails and
/// one the vendor already ended; a retry reaches the one that failed.
#[tokio::test]
async fn revoke_all_reaches_every_vendor_session() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let keys = s.clerk_keys.clone().unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "all@example.com").await;
    let mut sids = Vec::new();
    for _ in 0..3 {
        let session = sign_in(&s, t, &u, json!({})).await.unwrap();
        sids.push(
            claims(session["access_token"].as_str().unwrap())["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    keys.end_session(&sids[0]);
    keys.fail_revoke(Some(sids[1].clone()));
    let req = json!({"user_id": u});
    assert!(
        s.call(t, "auth.session.revoke_all_for_user", req.clone())
            .await
            .is_err()
    );
    assert_eq!(
        keys.session_status(&sids[2]),
        Some("revoked"),
        "past the failure"
    );
    assert_eq!(keys.session_status(&sids[1]), Some("active"));
    keys.fail_revoke(None);
    let done = s
        .call(t, "auth.session.revoke_all_for_user", req)
        .await
        .unwrap();
    assert_eq!(done["revoked"].as_i64().unwrap_or(0), 0, "{done}");
    assert_eq!(
        keys.session_status(&sids[1]),
        Some("revoked"),
        "the retry reached it"
    );
}

/// A user deleted at the vendor leaves authmux's index the first time a
/// read finds out: no read serves it afterwards.
#[tokio::test]
async fn a_user_deleted_at_the_vendor_leaves_the_index() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let t = Transport::Grpc;
    let u = user(&s, t, "gone@example.com").await;
    s.clerk_keys.as_ref().unwrap().delete("gone@example.com");
    expect_err(
        s.call(
            t,
            "auth.user.get_by_email",
            json!({"email": "gone@example.com"}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );
    expect_err(
        s.call(t, "auth.user.get", json!({"user_id": u})).await,
        "AUTH_USER_NOT_FOUND",
    );
    let page = s.call(t, "auth.user.list", json!({})).await.unwrap();
    assert!(
        !page.to_string().contains(&u),
        "list no longer serves it: {page}"
    );
}

/// The types of a user's events, with the fields of each `user.updated`.
async fn event_kinds(s: &Server, t: Transport, u: &str) -> Vec<String> {
    let page = s
        .call(t, "auth.audit", json!({"user_id": u, "limit": 100}))
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["type"], e["data"]["fields"]))
        .collect()
}

/// Asserts that none of the user's events (their types, and the fields of
/// each `user.updated`) names `what`.
async fn no_event_names(s: &Server, t: Transport, u: &str, what: &str, context: &str) {
    let kinds = event_kinds(s, t, u).await;
    assert!(
        !kinds.iter().any(|k| k.contains(what)),
        "{context}: no event names {what}: {kinds:?}"
    );
}

/// An enrolment whose reply never arrives leaves no factor at the vendor
/// and MFA off. A read meanwhile, while the factor WorkOS made exists,
/// answers what is stored: the enrolment holds the user, so the read
/// doesn't copy a factor that is about to go.
#[tokio::test]
async fn a_failed_enrolment_leaves_no_factor() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "half@example.com").await;
    {
        let mut f = s.emulator.as_ref().unwrap().faults.lock().unwrap();
        f.slow_replies = 1;
        f.latency_after = Duration::from_secs(3);
    }
    let read = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        get(&s, t, &u).await
    };
    let (enrolled, during) = tokio::join!(
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": u, "mfa_enabled": true})
        ),
        read
    );
    assert!(enrolled.is_err());
    assert_eq!(during["mfa_enabled"], false, "{during}");
    no_event_names(&s, t, &u, "mfa.", "a failed enrolment").await;
    assert_eq!(s.workos.as_ref().unwrap().factors_of("half@example.com"), 0);
    let held = indexed(&s, t, &u).await;
    assert_eq!(held["mfa_enabled"], false, "{held}");
    assert_eq!(get(&s, t, &u).await["mfa_enabled"], false);
    // A later enrolment works and is the only factor.
    let ok = crate::harness::enable_mfa(&s, t, &u).await;
    assert!(ok["mfa_enrollment"]["secret"].is_string());
    assert_eq!(s.workos.as_ref().unwrap().factors_of("half@example.com"), 1);
}

/// Every vendor failure is logged once, with the vendor, the operation,
/// the status, the vendor's error code and its request id, and no secret.
#[tokio::test]
async fn vendor_failures_are_logged_once() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let request_id = format!("req_{}", uuid::Uuid::now_v7().simple());
    {
        let mut f = s.emulator.as_ref().unwrap().faults.lock().unwrap();
        f.reject_credentials = true;
        f.request_id = Some(request_id.clone());
    }
    expect_err(
        s.call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "log@example.com"}),
        )
        .await,
        "VENDOR_ERROR",
    );
    let logs = crate::logs::text();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(&request_id)).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    for field in [
        "vendor=\"clerk\"",
        "operation=\"create_user\"",
        "status=401",
        "code=\"authentication_invalid\"",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
    assert!(!logs.contains(crate::emulators::clerk::SECRET_KEY));
}

/// The refresh scenario with authmux's default cooldown (300 s) and access
/// lifetime, as in production: a refresh within the cooldown is refused,
/// one after it gets a fresh vendor token for the same vendor session.
#[tokio::test]
async fn vendor_refreshes_with_the_default_cooldown() {
    for vendor in [VendorKind::Clerk, VendorKind::Workos, VendorKind::Supabase] {
        let defaults = authmux::config::Settings::new(std::path::Path::new("."));
        let s = Server::start_vendors(Backend::Sqlite, &[vendor], |c| {
            c.tokens.refresh_cooldown_secs = defaults.tokens.refresh_cooldown_secs;
            c.tokens.access_ttl_secs = defaults.tokens.access_ttl_secs;
        })
        .await
        .unwrap();
        let t = Transport::Grpc;
        let u = user(&s, t, "cool@example.com").await;
        confirm_email(&s, t, &u).await;
        let first = sign_in(&s, t, &u, json!({})).await.unwrap();
        let refresh = json!({"refresh_token": first["refresh_token"]});
        expect_err(
            s.call(t, "auth.session.refresh", refresh.clone()).await,
            "AUTH_REFRESH_TOO_FREQUENT",
        );
        s.domain.clock().advance(Duration::from_secs(
            defaults.tokens.refresh_cooldown_secs + 1,
        ));
        let next = s
            .call(t, "auth.session.refresh", refresh)
            .await
            .unwrap_or_else(|e| panic!("{vendor}: {e:?}"));
        assert_ne!(next["access_token"], first["access_token"], "{vendor}");
        let sid = |tok: &Value| {
            let c = claims(tok.as_str().unwrap());
            c.get("sid").or(c.get("session_id")).cloned()
        };
        assert_eq!(
            sid(&next["access_token"]),
            sid(&first["access_token"]),
            "{vendor}"
        );
    }
}

/// Tokens are routed by `iss`, so a project's own credentials may not
/// carry an issuer the operator's adapter already uses.
#[tokio::test]
async fn byok_issuers_never_collide_with_managed_ones() {
    use authmux::vendors::{ByokConfig, VendorKind};
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    s.key_for("alpha").await;
    let same = ByokConfig {
        secret: crate::emulators::workos::API_KEY.into(),
        url: Some(s.emulator.as_ref().unwrap().base_url.clone()),
        client_id: Some(crate::emulators::workos::CLIENT_ID.into()),
        issuer: None,
    };
    let e = s
        .domain
        .set_vendor_credentials("alpha", VendorKind::Workos, same.clone())
        .await
        .unwrap_err();
    assert!(e.message.contains("iss"), "{e:?}");
    s.domain
        .set_vendor_credentials(
            "alpha",
            VendorKind::Workos,
            ByokConfig {
                issuer: Some("https://auth.alpha.example".into()),
                ..same
            },
        )
        .await
        .unwrap();
}

/// The rules this file covers, raced: two password sign-ins at once each
/// keep their own vendor session; two revoke-alls at once end every vendor
/// session with no 5xx; a revoke-all and an MFA enrolment each racing a
/// delete leave no 5xx, no live vendor session and no factor.
#[tokio::test]
async fn vendor_rules_hold_under_races() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let t = Transport::Rest;
    let no_5xx = |r: &Result<Value, crate::harness::ApiError>| {
        r.as_ref().err().is_none_or(|e| e.status < 500)
    };

    let email = "race@example.com";
    let u = user(&s, t, email).await;
    confirm_email(&s, t, &u).await;
    let (a, b) = tokio::join!(
        sign_in(&s, t, &u, json!({})),
        sign_in(&s, Transport::Grpc, &u, json!({}))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a["session_id"], b["session_id"]);
    assert_eq!(
        workos.live_sessions_of(email),
        2,
        "each kept its own, none leaked"
    );

    let req = json!({"user_id": u});
    let (x, y) = tokio::join!(
        s.call(t, "auth.session.revoke_all_for_user", req.clone()),
        s.call(
            Transport::Grpc,
            "auth.session.revoke_all_for_user",
            req.clone()
        )
    );
    assert!(no_5xx(&x) && no_5xx(&y), "{x:?} {y:?}");
    let counted: i64 = [x, y]
        .iter()
        .flatten()
        .map(|r| r["revoked"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(counted, 2, "each session reported once");
    assert_eq!(workos.live_sessions_of(email), 0);

    // A revoke-all racing a delete.
    sign_in(&s, t, &u, json!({})).await.unwrap();
    let (r, d) = tokio::join!(
        s.call(t, "auth.session.revoke_all_for_user", req.clone()),
        s.call(t, "auth.user.delete", req.clone())
    );
    assert!(no_5xx(&r) && no_5xx(&d), "{r:?} {d:?}");
    d.unwrap();
    assert_eq!(
        workos.live_sessions_of(email),
        0,
        "nothing outlives the delete"
    );

    // An enrolment racing a delete.
    let email = "enrol-race@example.com";
    let u = user(&s, t, email).await;
    let req = json!({"user_id": u});
    let (e, d) = tokio::join!(
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": u, "mfa_enabled": true})
        ),
        s.call(t, "auth.user.delete", req.clone())
    );
    assert!(no_5xx(&e) && no_5xx(&d), "{e:?} {d:?}");
    d.unwrap();
    assert_eq!(workos.factors_of(email), 0, "no factor outlives the user");
    expect_err(s.call(t, "auth.user.get", req).await, "AUTH_USER_NOT_FOUND");
}

/// The user as the index holds it, without asking the vendor (the list
/// reads the index alone).
async fn indexed(s: &Server, t: Transport, u: &str) -> Value {
    let page = s
        .call(t, "auth.user.list", json!({"limit": 100}))
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["user_id"] == u)
        .unwrap()
        .clone()
}

/// A read of a user while an update of it is half done at the vendor
/// (Clerk verified the email, and the factor's removal is failing) does
/// not copy the half-made state into the index: while the update holds
/// the user, the read answers what is stored; and a read whose answer
/// from Clerk predates the give-back but arrives after it stores nothing
/// either (the update re-synced the user, so the row changed since the
/// read began). The index and the events never show the verification.
#[tokio::test]
async fn a_read_during_a_failed_update_leaves_the_index_as_the_vendor_has_it() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let keys = s.clerk_keys.clone().unwrap();
    let t = Transport::Rest;
    for (case, read_answers_late) in [("read within", false), ("stale read after", true)] {
        let email = format!("half-read-{read_answers_late}@example.com");
        let (u, update) = factor_removal_fails(&s, t, &email).await;
        // Each of the removal's 3 tries fails after 200 ms: the update
        // fails within a second of the email's verification.
        keys.fail_factor_removals(Some(Duration::from_millis(200)));
        // The read starts once Clerk has verified the email, while the
        // removal is failing.
        let read = async {
            while keys.verified(&email) != Some(true) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Clerk's answer then comes after the give-back, within the
            // 2 s the tests' vendor client waits for it.
            if read_answers_late {
                keys.delay_next_read(Duration::from_millis(1_500));
            }
            get(&s, t, &u).await
        };
        let (updated, during) = tokio::join!(s.call(t, "auth.user.update", update), read);
        assert_eq!(during["email_verified"], false, "{case}: {during}");
        keys.fail_factor_removals(None);
        expect_err(updated, "VENDOR_UNAVAILABLE");
        assert_eq!(keys.verified(&email), Some(false), "{case}: given back");
        let held = indexed(&s, t, &u).await;
        assert_eq!(held["email_verified"], false, "{case}: {held}");
        assert_eq!(held["metadata"], json!({}), "{case}: {held}");
        no_event_names(&s, t, &u, "email_verified", case).await;
    }
}

/// Two updates of one user at once, both verifying the email: one lands,
/// the other fails at a later step (Clerk fails to remove the factor) and
/// must not give Clerk back an unverified email the first stored. Updates
/// of a vendor-held user run one at a time, each measured against what
/// the one before it left.
#[tokio::test]
async fn an_update_that_fails_does_not_undo_one_that_landed() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let keys = s.clerk_keys.clone().unwrap();
    let email = "twice@example.com";
    let (u, failing) = factor_removal_fails(&s, Transport::Rest, email).await;
    keys.fail_factor_removals(Some(Duration::from_millis(150)));
    let landing = json!({"user_id": u, "email_verified": true});
    let (failed, landed) = tokio::join!(
        s.call(Transport::Rest, "auth.user.update", failing),
        s.call(Transport::Grpc, "auth.user.update", landing),
    );
    keys.fail_factor_removals(None);
    expect_err(failed, "VENDOR_UNAVAILABLE");
    assert_eq!(landed.unwrap()["email_verified"], true);
    assert_eq!(keys.verified(email), Some(true), "still verified at Clerk");
    let held = indexed(&s, Transport::Rest, &u).await;
    assert_eq!(held["email_verified"], true, "{held}");
    assert_eq!(get(&s, Transport::Rest, &u).await["email_verified"], true);
}

/// An update dropped while it holds the user (its caller went away, here
/// while Clerk was slow to take the metadata) gives the hold up at once:
/// the next update of the user goes through without waiting for it.
#[tokio::test]
async fn a_dropped_update_lets_the_next_one_through() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let keys = s.clerk_keys.clone().unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "dropped@example.com").await;
    let project = s.domain.authenticate(Some(&s.key)).await.unwrap();
    keys.delay_metadata_writes(Some(Duration::from_millis(1_500)));
    let mut metadata = serde_json::Map::new();
    metadata.insert("dropped".into(), json!(true));
    let input = authmux::domain::UpdateUser {
        metadata: Some(metadata),
        ..Default::default()
    };
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        s.domain.update_user(&project, &u, input, None),
    )
    .await;
    assert!(dropped.is_err(), "the update was still at Clerk");
    keys.delay_metadata_writes(None);
    let started = std::time::Instant::now();
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": u, "metadata": {"next": true}}),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no wait for the dropped update's hold: {:?}",
        started.elapsed()
    );
}

/// Whether an update holds user `u`, its hold taken or renewed within the
/// last `within` by the domain's clock.
async fn held_within(s: &Server, project: &str, u: &str, within: Duration) -> bool {
    let since = s.domain.clock().now_millis() - within.as_millis() as i64;
    s.domain
        .store()
        .slot_held(project, u, "user_update", since)
        .await
        .unwrap()
}

/// An update a slow vendor keeps past the hold's 60-second lease renews its
/// hold while it runs: an update sent 70 s after the hold was taken (by the
/// domain's clock) waits for the first instead of taking the hold over,
/// and is answered after it, both merges kept; with SQLite and PostgreSQL.
#[tokio::test]
async fn a_slow_update_keeps_its_hold_past_the_lease() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = Server::start_vendor(backend, VendorKind::Clerk).await else {
            continue;
        };
        let keys = s.clerk_keys.clone().unwrap();
        let u = user(&s, Transport::Rest, "slow-hold@example.com").await;
        let project = s.domain.authenticate(Some(&s.key)).await.unwrap().id;
        // The first update's metadata write waits 3 s at Clerk.
        keys.delay_metadata_writes(Some(Duration::from_secs(3)));
        // An update merging `metadata`, and when it was answered.
        let update = |t: Transport, metadata: Value| {
            let (s, u) = (&s, &u);
            async move {
                let r = s
                    .call(
                        t,
                        "auth.user.update",
                        json!({"user_id": u, "metadata": metadata}),
                    )
                    .await;
                (r, std::time::Instant::now())
            }
        };
        let first = update(Transport::Rest, json!({"first": true}));
        let second = async {
            while !held_within(&s, &project, &u, Duration::from_secs(60)).await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // 40 s pass: the hold is renewed at the next tick of its renewal.
            s.domain.clock().advance(Duration::from_secs(40));
            let renewing = std::time::Instant::now();
            while !held_within(&s, &project, &u, Duration::from_secs(2)).await {
                assert!(
                    renewing.elapsed() < Duration::from_secs(5),
                    "the hold was not renewed"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            keys.delay_metadata_writes(None);
            // 70 s after the hold was taken: past its lease, not its renewal.
            s.domain.clock().advance(Duration::from_secs(30));
            update(Transport::Grpc, json!({"second": true})).await
        };
        let ((a, a_at), (b, b_at)) = tokio::join!(first, second);
        a.unwrap();
        b.unwrap();
        assert!(a_at <= b_at, "the second update did not wait for the first");
        assert_eq!(
            get(&s, Transport::Rest, &u).await["metadata"],
            json!({"first": true, "second": true})
        );
    }
}

/// WorkOS signs an unverified user in through Magic Auth, which verifies
/// the email there, and authmux sets it back to unverified afterwards. An
/// update that verifies the email while such a sign-in is under way is
/// not undone by the setting back: the sign-in holds the user as updates
/// do, so the update comes after it.
#[tokio::test]
async fn a_sign_in_setting_the_email_back_does_not_undo_a_verification() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let t = Transport::Rest;
    let email = "verified-meanwhile@example.com";
    let u = user(&s, t, email).await;
    // Every WorkOS request takes 200 ms: the sign-in reads the user (at
    // about 0.6 s), has WorkOS make a Magic Auth code and uses it, then
    // sets the email back (at about 1.2 s). The update is sent at 0.7 s.
    s.emulator.as_ref().unwrap().faults.lock().unwrap().latency = Duration::from_millis(200);
    let (session, updated) = tokio::join!(sign_in(&s, t, &u, json!({})), async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": u, "email_verified": true}),
        )
        .await
    });
    s.emulator.as_ref().unwrap().faults.lock().unwrap().latency = Duration::ZERO;
    assert!(valid(&s, t, &session.unwrap()).await);
    assert_eq!(updated.unwrap()["email_verified"], true);
    assert!(workos.email_verified(email), "still verified at WorkOS");
    let held = indexed(&s, t, &u).await;
    assert_eq!(held["email_verified"], true, "{held}");
    assert_eq!(get(&s, t, &u).await["email_verified"], true);
}

/// A read of an unverified WorkOS user while it signs in, after Magic
/// Auth verified its email and before the adapter set it back: the
/// sign-in holds the user, so the read answers what is stored instead of
/// copying the passing verification, and no event announces it.
#[tokio::test]
async fn a_read_during_a_sign_in_does_not_copy_the_passing_verification() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let t = Transport::Rest;
    let email = "read-mid-sign-in@example.com";
    let u = user(&s, t, email).await;
    // Setting the email back reaches WorkOS 500 ms after the code
    // verified it; the read is sent in that gap.
    workos.delay_user_updates(Some(Duration::from_millis(500)));
    let read = async {
        while !workos.email_verified(email) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let during = get(&s, t, &u).await;
        assert!(workos.email_verified(email), "read before the setting back");
        during
    };
    let (session, during) = tokio::join!(sign_in(&s, t, &u, json!({})), read);
    workos.delay_user_updates(None);
    assert!(valid(&s, t, &session.unwrap()).await);
    assert_eq!(during["email_verified"], false, "{during}");
    assert!(!workos.email_verified(email), "set back at WorkOS");
    let held = indexed(&s, t, &u).await;
    assert_eq!(held["email_verified"], false, "{held}");
    assert_eq!(get(&s, t, &u).await["email_verified"], false);
    no_event_names(&s, t, &u, "email_verified", "a read during a sign-in").await;
}

/// A sign-in of an unverified WorkOS user (a password check, then Magic
/// Auth, then the email set back: six WorkOS requests) while the user is
/// deleted, the delete sent at a later step of the sign-in in each trial.
/// The delete goes through; the sign-in answers a session that no longer
/// verifies or finds no user, never a vendor error; and nothing is left:
/// no record, no event after `user.deleted`, no account at WorkOS (a Magic
/// Auth code for an email no user holds signs one up).
#[tokio::test]
async fn an_unverified_sign_in_racing_the_delete_leaves_nothing() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    let workos = s.workos.clone().unwrap();
    let step = Duration::from_millis(30);
    for trial in 0..8u32 {
        let t = if trial % 2 == 0 {
            Transport::Rest
        } else {
            Transport::Grpc
        };
        let email = format!("sign-in-race{trial}@example.com");
        let u = user(&s, t, &email).await;
        s.emulator.as_ref().unwrap().faults.lock().unwrap().latency = step;
        let (signed_in, deleted) = tokio::join!(sign_in(&s, t, &u, json!({})), async {
            tokio::time::sleep(step * trial).await;
            s.call(t, "auth.user.delete", json!({"user_id": u})).await
        });
        s.emulator.as_ref().unwrap().faults.lock().unwrap().latency = Duration::ZERO;
        deleted.unwrap_or_else(|e| panic!("trial {trial}: the delete: {e:?}"));
        crate::attacks::nothing_outlives_the_delete(&s, t, signed_in, trial).await;
        expect_err(
            s.call(t, "auth.user.get", json!({"user_id": u})).await,
            "AUTH_USER_NOT_FOUND",
        );
        let kinds = event_kinds(&s, t, &u).await;
        assert!(
            kinds[0].starts_with("\"user.deleted\""),
            "trial {trial}: nothing after the erasure: {kinds:?}"
        );
        assert!(!workos.email_verified(&email), "trial {trial}");
        assert_eq!(workos.live_sessions_of(&email), 0, "trial {trial}");
        let again = s
            .call(t, "auth.user.create", json!({"email": email}))
            .await
            .unwrap_or_else(|e| panic!("trial {trial}: the email is free again: {e:?}"));
        assert_eq!(again["email_verified"], false, "trial {trial}: {again}");
    }
}

/// The same password change sent twice at once while Clerk's write limit
/// refuses a later step: both copies answer the error, and the password
/// Clerk took holds once, whichever copy it came from: the old
/// password's session ended, the old password refused, the new one
/// signing in.
#[tokio::test]
async fn a_password_change_sent_twice_as_a_later_step_fails() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Clerk)
        .await
        .unwrap();
    let t = Transport::Rest;
    let u = user(&s, t, "twice-half@example.com").await;
    let old_session = sign_in(&s, t, &u, json!({})).await.unwrap();
    // Nine of Clerk's ten writes per user in ten seconds: the first
    // copy's password is the tenth, its metadata and everything of the
    // second copy are refused.
    metadata_writes(&s, t, &u, 9).await;
    let new_password = "yet another vendor passphrase";
    let change = json!({"user_id": u, "password": new_password, "metadata": {"n": 9}});
    let (a, b) = tokio::join!(
        s.call(Transport::Rest, "auth.user.update", change.clone()),
        s.call(Transport::Grpc, "auth.user.update", change.clone()),
    );
    expect_err(a, "VENDOR_UNAVAILABLE");
    expect_err(b, "VENDOR_UNAVAILABLE");
    assert_eq!(get(&s, t, &u).await["metadata"], json!({"n": 8}));
    assert!(!valid(&s, t, &old_session).await, "the old session ended");
    expect_err(
        sign_in(&s, t, &u, json!({})).await,
        "AUTH_INVALID_CREDENTIALS",
    );
    let session = s
        .call(
            t,
            "auth.session.create",
            json!({"user_id": u, "method": "password", "password": new_password}),
        )
        .await
        .unwrap();
    assert!(valid(&s, t, &session).await);
}
