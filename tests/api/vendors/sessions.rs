//! Vendor sessions: the vendor's own tokens under authmux's ids and
//! rules, signing-key rotation, token lifetimes.

use authmux::vendors::VendorKind;
use serde_json::json;

use super::emulator;
use crate::harness::{Backend, Server, Transport, expect_err};

fn jwt_part(token: &str, i: usize) -> serde_json::Value {
    use base64::Engine;
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

async fn verify(s: &Server, t: Transport, token: &str) -> serde_json::Value {
    s.call(t, "auth.session.verify", json!({"session_id": token}))
        .await
        .unwrap()
}

/// Vendor sessions: the vendor's own token, authmux's ids and rules.
/// The vendor's own record shows the session ended.
fn assert_vendor_session_ended(s: &Server, vendor: &str, vendor_sid: &str) {
    match vendor {
        "clerk" => assert_eq!(
            s.clerk_keys.as_ref().unwrap().session_status(vendor_sid),
            Some("revoked")
        ),
        "workos" => assert_eq!(
            s.workos.as_ref().unwrap().session_revoked(vendor_sid),
            Some(true)
        ),
        _ => assert_eq!(
            s.supabase.as_ref().unwrap().session_revoked(vendor_sid),
            Some(true)
        ),
    }
}

async fn vendor_sessions(vendor: &'static str) {
    let kind = VendorKind::parse(vendor).expect("a vendor");
    let s = Server::start_vendor(Backend::Sqlite, kind).await.unwrap();
    let (alg, sid_claim) = match vendor {
        "clerk" | "workos" => ("RS256", "sid"),
        _ => ("ES256", "session_id"),
    };
    for t in [Transport::Rest, Transport::Grpc] {
        let u = s
            .call(
                t,
                "auth.user.create",
                json!({"email": format!("cs-{t:?}@example.com"), "password": "vendor password"}),
            )
            .await
            .unwrap();
        let user = u["user_id"].as_str().unwrap();
        crate::harness::confirm_email(&s, t, user).await;
        expect_err(
            s.call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": "not the one"}),
            )
            .await,
            "AUTH_INVALID_CREDENTIALS",
        );
        let session = s
            .call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": "vendor password"}),
            )
            .await
            .unwrap();
        let sid = session["session_id"].as_str().unwrap();
        assert!(sid.starts_with("ses_"), "ids stay authmux's");
        let access = session["access_token"].as_str().unwrap();
        // The access token is the vendor's own JWT.
        assert_eq!(jwt_part(access, 0)["alg"], alg);
        let claims = jwt_part(access, 1);
        let issuer = match vendor {
            "clerk" => s.clerk_keys.as_ref().unwrap().issuer(),
            "workos" => format!(
                "{}/user_management/{}",
                emulator(&s).base_url,
                crate::emulators::workos::CLIENT_ID
            ),
            _ => emulator(&s).base_url.clone(),
        };
        assert_eq!(
            claims["iss"],
            issuer.as_str(),
            "the vendor's default issuer"
        );
        assert!(!claims["sub"].as_str().unwrap().starts_with("usr_"));
        let vendor_sid = claims[sid_claim].as_str().unwrap().to_owned();

        // Verified against the vendor's JWKS, mapped back to authmux's ids.
        let v = verify(&s, t, access).await;
        assert_eq!(
            (v["valid"].clone(), v["user_id"].clone()),
            (json!(true), json!(user)),
            "{v}"
        );
        assert_eq!(verify(&s, t, sid).await["valid"], true);
        let mut parts: Vec<&str> = access.split('.').collect();
        let bad_sig = format!(
            "{}{}",
            if parts[2].starts_with('A') { 'B' } else { 'A' },
            &parts[2][1..]
        );
        parts[2] = &bad_sig;
        assert_eq!(
            verify(&s, t, &parts.join(".")).await["reason"],
            "bad_signature"
        );

        // Refresh: a new vendor token, authmux's rotation and reuse rules.
        let r1 = session["refresh_token"].as_str().unwrap();
        let next = s
            .call(t, "auth.session.refresh", json!({"refresh_token": r1}))
            .await
            .unwrap();
        assert_eq!(next["session_id"], sid);
        assert_eq!(
            jwt_part(next["access_token"].as_str().unwrap(), 1)[sid_claim],
            vendor_sid.as_str()
        );
        assert_eq!(
            verify(&s, t, next["access_token"].as_str().unwrap()).await["valid"],
            true
        );
        s.domain.clock().advance(std::time::Duration::from_secs(6));
        expect_err(
            s.call(t, "auth.session.refresh", json!({"refresh_token": r1}))
                .await,
            "AUTH_REFRESH_TOKEN_REUSED",
        );
        for token in [access, next["access_token"].as_str().unwrap()] {
            assert_eq!(verify(&s, t, token).await["reason"], "revoked");
        }
        // Reuse ends the vendor's session too, not only authmux's.
        assert_vendor_session_ended(&s, vendor, &vendor_sid);
        let session = s
            .call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": "vendor password"}),
            )
            .await
            .unwrap();
        let sid = session["session_id"].as_str().unwrap();
        let access = session["access_token"].as_str().unwrap();
        let vendor_sid = jwt_part(access, 1)[sid_claim].as_str().unwrap().to_owned();
        let next = s
            .call(
                t,
                "auth.session.refresh",
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await
            .unwrap();

        // Another project can't use this project's vendor token.
        let other = s.key_for(&format!("other-{t:?}")).await;
        let theirs = s
            .call_as(
                t,
                &other,
                "auth.session.verify",
                json!({"session_id": access}),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(theirs["reason"], "unknown_session");

        // Revoking ends it here at once and at the vendor.
        s.call(t, "auth.session.revoke", json!({"session_id": sid}))
            .await
            .unwrap();
        for token in [access, next["access_token"].as_str().unwrap(), sid] {
            assert_eq!(verify(&s, t, token).await["reason"], "revoked");
        }
        assert_vendor_session_ended(&s, vendor, &vendor_sid);
        expect_err(
            s.call(
                t,
                "auth.session.refresh",
                json!({"refresh_token": next["refresh_token"]}),
            )
            .await,
            "AUTH_SESSION_INVALID",
        );
    }
}

#[tokio::test]
async fn clerk_sessions_carry_clerk_tokens_and_authmux_rules() {
    vendor_sessions("clerk").await;
}

#[tokio::test]
async fn workos_sessions_carry_workos_tokens_and_authmux_rules() {
    vendor_sessions("workos").await;
}

#[tokio::test]
async fn supabase_sessions_carry_supabase_tokens_and_authmux_rules() {
    vendor_sessions("supabase").await;
}

#[tokio::test]
async fn clerk_key_rotation_is_followed() {
    key_rotation_is_followed("clerk").await;
}

#[tokio::test]
async fn supabase_key_rotation_is_followed() {
    key_rotation_is_followed("supabase").await;
}

/// A vendor rotates its signing key: new tokens carry an unknown kid, the
/// JWKS is fetched again, and tokens of both keys verify.
async fn key_rotation_is_followed(vendor: &'static str) {
    let kind = VendorKind::parse(vendor).expect("a vendor");
    let s = Server::start_vendor(Backend::Sqlite, kind).await.unwrap();
    let t = Transport::Grpc;
    let u = s
        .call(t, "auth.user.create", json!({"email": "rot@example.com"}))
        .await
        .unwrap();
    crate::harness::confirm_email(&s, t, u["user_id"].as_str().unwrap()).await;
    let first = s
        .call(t, "auth.session.create", json!({"user_id": u["user_id"]}))
        .await
        .unwrap();
    assert_eq!(
        verify(&s, t, first["access_token"].as_str().unwrap()).await["valid"],
        true
    );
    match vendor {
        "clerk" => s.clerk_keys.as_ref().unwrap().rotate(),
        _ => s.supabase.as_ref().unwrap().rotate(),
    }
    let second = s
        .call(t, "auth.session.create", json!({"user_id": u["user_id"]}))
        .await
        .unwrap();
    let new_kid = jwt_part(second["access_token"].as_str().unwrap(), 0)["kid"].clone();
    assert_ne!(
        new_kid,
        jwt_part(first["access_token"].as_str().unwrap(), 0)["kid"]
    );
    assert_eq!(
        verify(&s, t, second["access_token"].as_str().unwrap()).await["valid"],
        true
    );
    assert_eq!(
        verify(&s, t, first["access_token"].as_str().unwrap()).await["valid"],
        true
    );
    let n = s
        .call(
            t,
            "auth.session.revoke_all_for_user",
            json!({"user_id": u["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(n, json!({"revoked": 2}));
}

/// Clerk's session tokens are asked to live as long as authmux's access
/// tokens (Clerk's default is 60 s, under the refresh cooldown); a session
/// Clerk has ended refreshes to AUTH_SESSION_INVALID, not a 400.
#[tokio::test]
async fn clerk_tokens_live_as_long_as_access_tokens() {
    let s = Server::start_vendors(Backend::Sqlite, &[VendorKind::Clerk], |c| {
        c.tokens.access_ttl_secs = 600;
    })
    .await
    .unwrap();
    let u = s
        .call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "ttl@example.com", "password": "vendor password"}),
        )
        .await
        .unwrap();
    let session = s
        .call(
            Transport::Rest,
            "auth.session.create",
            json!({"user_id": u["user_id"], "method": "password", "password": "vendor password"}),
        )
        .await
        .unwrap();
    let claims = jwt_part(session["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600,
        "{claims}"
    );
    // Clerk ends the session (say, the user signed out elsewhere).
    let ended = s
        .http
        .post(format!(
            "{}/sessions/{}/revoke",
            emulator(&s).base_url,
            claims["sid"].as_str().unwrap()
        ))
        .bearer_auth(crate::emulators::clerk::SECRET_KEY)
        .header("clerk-api-version", "2026-05-12")
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    for t in [Transport::Rest, Transport::Grpc] {
        expect_err(
            s.call(
                t,
                "auth.session.refresh",
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await,
            "AUTH_SESSION_INVALID",
        );
    }
}

/// WorkOS's Magic Auth and GoTrue's magic link sign up an email no user
/// has (WorkOS: spec, the 400 `sign_up_not_allowed`, and workos/emulate
/// `routes/magic-auth.ts`; GoTrue: internal/api/mail.go,
/// adminGenerateLink). A server mint for a user deleted at the vendor
/// after authmux read it must neither sign in the account that makes nor
/// leave it behind holding the erased user's email; and a code or link
/// whose user is deleted before it is used signs no one in. Both answer
/// `AUTH_USER_NOT_FOUND`.
#[tokio::test]
async fn workos_magic_auth_for_a_deleted_user_signs_up_no_one() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Workos)
        .await
        .unwrap();
    // A password sign-in of a user whose email is unverified sends, in
    // order: the user read (for the email), the password grant (403
    // email_verification_required: the password is right), the server
    // mint's user read, the Magic Auth code, the code's grant. A server
    // mint (any other method) for a verified user sends the last three.
    // The user is deleted at WorkOS before the code is made, and after it
    // was made but before it is used.
    for (i, (verified, handled)) in [(false, 3), (true, 1), (true, 2)].into_iter().enumerate() {
        let email = format!("magic-gone{i}@example.com");
        deleted_at_the_vendor_during_a_mint(&s, &email, verified, handled).await;
    }
}

/// The same for Supabase, whose server mint (confirmed users only) reads
/// the user, generates a magic link and verifies it.
#[tokio::test]
async fn supabase_magic_link_for_a_deleted_user_signs_up_no_one() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Supabase)
        .await
        .unwrap();
    for (i, handled) in [1, 2].into_iter().enumerate() {
        let email = format!("link-gone{i}@example.com");
        deleted_at_the_vendor_during_a_mint(&s, &email, true, handled).await;
    }
}

/// The vendor's user list, as its admin API serves it.
fn users_path(s: &Server) -> &'static str {
    match s.vendor() {
        VendorKind::Workos => "user_management/users",
        _ => "admin/users",
    }
}

/// A request to the vendor emulator's admin API, with its key.
fn vendor_admin(s: &Server, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    use authmux_testkit::emulators::{supabase, workos};
    match s.vendor() {
        VendorKind::Workos => req.bearer_auth(workos::API_KEY),
        _ => req.header("apikey", supabase::SERVICE_ROLE_KEY),
    }
}

/// How many of the vendor's users hold `email`.
async fn holders_at_vendor(s: &Server, email: &str) -> usize {
    let base = &s.emulator.as_ref().unwrap().base_url;
    let get = reqwest::Client::new().get(format!("{base}/{}", users_path(s)));
    let list: serde_json::Value = vendor_admin(s, get)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = list.get("data").or(list.get("users")).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"] == email)
        .count()
}

/// A new user without a password whose email is verified (a server mint's
/// case); its id.
async fn verified_user(s: &Server, t: Transport, email: &str) -> serde_json::Value {
    let user = s
        .call(t, "auth.user.create", json!({"email": email}))
        .await
        .unwrap()["user_id"]
        .clone();
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": user, "email_verified": true}),
    )
    .await
    .unwrap();
    user
}

/// The same server mint sent twice at once while authmux deletes the user:
/// each mint opens a session (before the delete) or finds no user, and no
/// account at the vendor is left holding the email.
#[tokio::test]
async fn server_mints_twice_at_once_racing_a_delete_leave_no_account() {
    for vendor in [VendorKind::Workos, VendorKind::Supabase] {
        let s = Server::start_vendor(Backend::Sqlite, vendor).await.unwrap();
        let t = Transport::Rest;
        for i in 0..8 {
            let email = format!("mint-race{i}@example.com");
            let user = verified_user(&s, t, &email).await;
            let mint = || {
                s.call(
                    t,
                    "auth.session.create",
                    json!({"user_id": user, "method": "server"}),
                )
            };
            let (a, b, deleted) = tokio::join!(
                mint(),
                mint(),
                s.call(t, "auth.user.delete", json!({"user_id": user}))
            );
            deleted.unwrap();
            for r in [a, b] {
                if let Err(e) = r {
                    assert_eq!(e.code, "AUTH_USER_NOT_FOUND", "{vendor} trial {i}: {e:?}");
                }
            }
            assert_eq!(
                holders_at_vendor(&s, &email).await,
                0,
                "{vendor} trial {i}: no account holds the email"
            );
        }
    }
}

/// Server mints for one Supabase user at once. GoTrue keeps one magic-link
/// token per user (mail.go, adminGenerateLink; models/one_time_token.go,
/// CreateOneTimeToken deletes the user's earlier one), so a mint's link is
/// void once an overlapping mint generated its own, and its `/verify` gets
/// 403 `otp_expired`. Every mint still opens a session of its own, on
/// both transports.
#[tokio::test]
async fn supabase_server_mints_for_one_user_at_once_each_open_a_session() {
    let s = Server::start_vendor(Backend::Sqlite, VendorKind::Supabase)
        .await
        .unwrap();
    let t = Transport::Rest;
    let user = verified_user(&s, t, "many-devices@example.com").await;
    // GoTrue allows 30 verifies per address in 5 minutes, and a mint
    // makes up to 4: two rounds of three mints stay under it.
    for round in 0..2 {
        let mints = [Transport::Rest, Transport::Grpc, Transport::Rest].map(|t| {
            s.call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "server"}),
            )
        });
        let sessions = futures::future::join_all(mints).await;
        let mut ids = std::collections::HashSet::new();
        for session in sessions {
            let session = session.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            let token = session["access_token"].as_str().unwrap();
            assert_eq!(verify(&s, t, token).await["valid"], true, "round {round}");
            ids.insert(session["session_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 3, "round {round}: three sessions");
    }
}

/// A user deleted at the vendor (not through authmux) once `handled` of
/// the sign-in's vendor requests were handled; the sign-in is a password
/// one for an unverified user, a server mint for a verified one.
async fn deleted_at_the_vendor_during_a_mint(
    s: &Server,
    email: &str,
    verified: bool,
    handled: u32,
) {
    let t = Transport::Rest;
    let emulator = s.emulator.as_ref().unwrap();
    let base = &emulator.base_url;
    let http = reqwest::Client::new();
    let holders = || holders_at_vendor(s, email);
    let created = s
        .call(
            t,
            "auth.user.create",
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await
        .unwrap()["user_id"]
        .clone();
    if verified {
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": created, "email_verified": true}),
        )
        .await
        .unwrap();
    }
    let at_vendor = s
        .call(t, "auth.user.export", json!({"user_id": created}))
        .await
        .unwrap()["vendor_record"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(holders().await, 1);

    // The replies of the requests before the delete are held back; the
    // delete goes through once the last of them was handled.
    let before = emulator.requests();
    {
        let mut f = emulator.faults.lock().unwrap();
        f.slow_replies = handled;
        f.latency_after = std::time::Duration::from_millis(500);
    }
    let delete_at_vendor = async {
        while emulator.requests() < before + handled {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = vendor_admin(
            s,
            http.delete(format!("{base}/{}/{at_vendor}", users_path(s))),
        )
        .send()
        .await
        .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    };
    let sign_in = if verified {
        json!({"user_id": created, "method": "server"})
    } else {
        json!({"user_id": created, "method": "password", "password": "correct horse battery"})
    };
    let (signed_in, ()) = tokio::join!(s.call(t, "auth.session.create", sign_in), delete_at_vendor);
    expect_err(signed_in, "AUTH_USER_NOT_FOUND");
    assert_eq!(holders().await, 0, "no account holds the email");
}
