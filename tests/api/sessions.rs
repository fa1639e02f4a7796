//! session.* on the built-in provider, over both transports.

use authmux::vendors::VendorKind;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::attacks::sso_session;
use crate::harness::{Server, Transport, expect_err};
use authmux_testkit::contract;

/// The claims of a JWT, read without verifying it.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

/// Signs `claims` with the server's own current key (as a forger with the
/// key would), to test the claim checks one by one.
pub fn sign_with_server_key(s: &Server, claims: &Value) -> String {
    let signer = s.domain.keyring().signer();
    let mut h = jsonwebtoken::Header::new(signer.alg.jwt());
    h.kid = Some(signer.kid.clone());
    h.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&h, claims, &signer.encoding).unwrap()
}

async fn user_with_password(s: &Server, t: Transport, email: &str) -> String {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": email, "password": "open sesame"}),
        )
        .await
        .unwrap();
    let id = u["user_id"].as_str().unwrap().to_owned();
    crate::harness::confirm_email(s, t, &id).await;
    id
}

async fn login(s: &Server, t: Transport, user: &str) -> Value {
    s.call(
        t,
        "auth.session.create",
        json!({"user_id": user, "method": "password", "password": "open sesame"}),
    )
    .await
    .unwrap()
}

/// `session.verify` of an access token or session id: its reply.
pub(crate) async fn verify(s: &Server, t: Transport, token: &str) -> Value {
    s.call(t, "auth.session.verify", json!({"session_id": token}))
        .await
        .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn mint_and_verify(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "s@example.com").await;
    let session = login(s, t, &user).await;
    let sid = session["session_id"].as_str().unwrap();
    assert!(sid.starts_with("ses_"));
    let access = session["access_token"].as_str().unwrap();
    let refresh = session["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.len(), 4 + 43, "256 random bits, base64url");
    let c = claims(access);
    assert_eq!(c["iss"], "http://127.0.0.1:8080");
    assert_eq!(c["sub"], user.as_str());
    assert!(c["aud"].as_str().unwrap().starts_with("prj_"));
    assert_eq!(c["sid"], sid);
    assert_eq!(c["amr"], json!(["pwd"]));
    assert!(c["jti"].is_string());
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 900, "15 minutes");
    assert_eq!(header(access)["alg"], "ES256");
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(session["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at.timestamp(), exp);

    let v = verify(s, t, access).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["user_id"], user.as_str());
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap())
            .unwrap()
            .timestamp(),
        exp
    );
    assert!(v.get("reason").is_none());
    let v = verify(s, t, sid).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["user_id"], user.as_str());

    let list = s
        .call(t, "auth.session.list_for_user", json!({"user_id": user}))
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["session_id"], sid);
    assert_eq!(items[0]["method"], "password");
    assert!(items[0]["created_at"].is_string() && items[0]["expires_at"].is_string());
    let text = list.to_string();
    assert!(
        !text.contains(access) && !text.contains(refresh),
        "no token in a listing"
    );

    // A trusted server-side mint records the method as given.
    let other = sso_session(s, t, &user).await;
    assert_eq!(
        claims(other["access_token"].as_str().unwrap())["amr"],
        json!(["sso"])
    );
}

async fn password_rules(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "pw@example.com").await;
    let e = expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": "wrong one"}),
        )
        .await,
        "AUTH_INVALID_CREDENTIALS",
    );
    assert!(!e.message.contains("wrong one"));
    expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password"}),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": "usr_01900000000070008000000000000000", "method": "sso"}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );
    let nopw = s
        .call(t, "auth.user.create", json!({"email": "nopw@example.com"}))
        .await
        .unwrap();
    expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": nopw["user_id"], "method": "password", "password": "anything at all"}),
        )
        .await,
        "AUTH_INVALID_CREDENTIALS",
    );
    let list = s
        .call(t, "auth.session.list_for_user", json!({"user_id": user}))
        .await
        .unwrap();
    assert_eq!(list, json!({"items": []}), "failures mint nothing");
}

async fn password_throttling(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "th@example.com").await;
    let wrong = json!({"user_id": user, "method": "password", "password": "not it at all"});
    for _ in 0..10 {
        expect_err(
            s.call(t, "auth.session.create", wrong.clone()).await,
            "AUTH_INVALID_CREDENTIALS",
        );
    }
    let e = expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": "open sesame"}),
        )
        .await,
        "AUTH_TOO_MANY_ATTEMPTS",
    );
    let retry = e.retry_after.expect("Retry-After");
    assert!((1..=900).contains(&retry), "{retry}");
    // Another user is not affected.
    let other = user_with_password(s, t, "th2@example.com").await;
    login(s, t, &other).await;
}

/// The TOTP code `offset` seconds from now.
pub fn totp_at(secret_b32: &str, offset: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .unwrap();
    let totp =
        totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now + offset)
}

/// The TOTP code for now, and one for 90 s later (not yet valid).
pub fn totp_now(secret_b32: &str) -> (String, String) {
    (totp_at(secret_b32, 0), totp_at(secret_b32, 90))
}

async fn mfa(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "mfa@example.com").await;
    expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "sso", "require_mfa": true}),
        )
        .await,
        "AUTH_MFA_NOT_ENROLLED",
    );
    let up = crate::harness::enable_mfa(s, t, &user).await;
    let secret = up["mfa_enrollment"]["secret"].as_str().unwrap().to_owned();
    let base = json!({"user_id": user, "method": "password", "password": "open sesame"});
    expect_err(
        s.call(t, "auth.session.create", base.clone()).await,
        "AUTH_MFA_REQUIRED",
    );
    let (code, far_code) = totp_now(&secret);
    let mut wrong = base.clone();
    wrong["mfa_factor"] = json!(far_code);
    expect_err(
        s.call(t, "auth.session.create", wrong).await,
        "AUTH_MFA_INVALID",
    );
    let mut right = base.clone();
    right["mfa_factor"] = json!(code);
    let session = s
        .call(t, "auth.session.create", right.clone())
        .await
        .unwrap();
    if s.vendor() == VendorKind::Native {
        // authmux's own tokens say how the user signed in.
        assert_eq!(
            claims(session["access_token"].as_str().unwrap())["amr"],
            json!(["pwd", "otp", "mfa"])
        );
    }
    // The same code can't be used twice.
    expect_err(
        s.call(t, "auth.session.create", right).await,
        "AUTH_MFA_INVALID",
    );
}

async fn verify_rejects(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "v@example.com").await;
    let session = login(s, t, &user).await;
    let access = session["access_token"].as_str().unwrap().to_owned();
    let c = claims(&access);
    let reason = |v: Value| {
        v["reason"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{v}"))
    };

    // Tampered signature.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    parts[2] = format!("{flipped}{}", &sig[1..]);
    let v = verify(s, t, &parts.join(".")).await;
    assert_eq!(
        (v["valid"].clone(), reason(v)),
        (json!(false), "bad_signature".into())
    );

    // alg: none, with the real kid.
    let kid = header(&access)["kid"].as_str().unwrap().to_owned();
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", enc(&json!({"alg": "none", "kid": kid})), enc(&c));
    assert_eq!(reason(verify(s, t, &none).await), "unsupported_alg");

    // HS256 keyed with the public key (algorithm confusion).
    let jwks: Value = s
        .http
        .get(format!("{}/.well-known/jwks.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = jwks["keys"][0].to_string();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.clone());
    let confused = jsonwebtoken::encode(
        &h,
        &c,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(reason(verify(s, t, &confused).await), "unsupported_alg");

    // A key nobody knows.
    let stranger = authmux::tokens::keys::generate(authmux::tokens::SigningAlg::Es256).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("not-a-known-kid".into());
    let forged = jsonwebtoken::encode(
        &h,
        &c,
        &jsonwebtoken::EncodingKey::from_ec_der(&stranger.pkcs8),
    )
    .unwrap();
    assert_eq!(reason(verify(s, t, &forged).await), "unknown_key");
    // A stranger's key under the real kid fails the signature.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(kid.clone());
    let forged = jsonwebtoken::encode(
        &h,
        &c,
        &jsonwebtoken::EncodingKey::from_ec_der(&stranger.pkcs8),
    )
    .unwrap();
    assert_eq!(reason(verify(s, t, &forged).await), "bad_signature");

    // Claim checks, signed with the real key.
    let with = |k: &str, v: Value| {
        let mut c = c.clone();
        c[k] = v;
        sign_with_server_key(s, &c)
    };
    assert_eq!(
        reason(verify(s, t, &with("exp", json!(now() - 31))).await),
        "expired"
    );
    let within_leeway = verify(s, t, &with("exp", json!(now() - 5))).await;
    assert_eq!(within_leeway["valid"], true, "30 s leeway");
    assert_eq!(
        reason(verify(s, t, &with("nbf", json!(now() + 120))).await),
        "not_yet_valid"
    );
    assert_eq!(
        reason(verify(s, t, &with("aud", json!("prj_other"))).await),
        "wrong_audience"
    );
    assert_eq!(
        reason(verify(s, t, &with("iss", json!("https://evil.example"))).await),
        "wrong_issuer"
    );

    // Another project's token.
    let other_key = s.key_for("other").await;
    let other_user = s
        .call_as(
            t,
            &other_key,
            "auth.user.create",
            json!({"email": "o@example.com"}),
            &[],
        )
        .await
        .unwrap();
    let other_session = s
        .call_as(
            t,
            &other_key,
            "auth.session.create",
            json!({"user_id": other_user["user_id"]}),
            &[],
        )
        .await
        .unwrap();
    let theirs = other_session["access_token"].as_str().unwrap();
    assert_eq!(reason(verify(s, t, theirs).await), "wrong_audience");
    assert_eq!(
        reason(verify(s, t, other_session["session_id"].as_str().unwrap()).await),
        "unknown_session"
    );

    // Garbage of every kind is a 200 with valid: false.
    for junk in ["garbage", "a.b.c", "ses_nope", "...."] {
        let v = verify(s, t, junk).await;
        assert_eq!(v["valid"], false, "{junk}: {v}");
        assert!(v.get("user_id").is_none());
    }
    // Nothing at all is the caller's mistake: session_id is REQUIRED.
    let e = expect_err(
        s.call(t, "auth.session.verify@post", json!({"session_id": ""}))
            .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("session_id is required"), "{e:?}");
}

async fn refresh_rotation(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "r@example.com").await;
    let first = login(s, t, &user).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let second = s
        .call(t, "auth.session.refresh", json!({"refresh_token": r1}))
        .await
        .unwrap();
    assert_eq!(second["session_id"], first["session_id"]);
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(
        verify(s, t, second["access_token"].as_str().unwrap()).await["valid"],
        true
    );

    // Presenting the rotated token again, past the few seconds' grace
    // given to a double-submit, revokes the whole session.
    s.domain.clock().advance(std::time::Duration::from_secs(6));
    expect_err(
        s.call(t, "auth.session.refresh", json!({"refresh_token": r1}))
            .await,
        "AUTH_REFRESH_TOKEN_REUSED",
    );
    let v = verify(s, t, second["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (v["valid"].clone(), v["reason"].clone()),
        (json!(false), json!("revoked"))
    );
    expect_err(
        s.call(t, "auth.session.refresh", json!({"refresh_token": r2}))
            .await,
        "AUTH_SESSION_INVALID",
    );
    expect_err(
        s.call(
            t,
            "auth.session.refresh",
            json!({"refresh_token": "amr_unknown"}),
        )
        .await,
        "AUTH_SESSION_INVALID",
    );
    expect_err(
        s.call(t, "auth.session.refresh", json!({})).await,
        "INVALID_ARGUMENT",
    );
}

async fn refresh_cooldown(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "cd@example.com").await;
    let first = login(s, t, &user).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let e = expect_err(
        s.call(t, "auth.session.refresh", json!({"refresh_token": r1}))
            .await,
        "AUTH_REFRESH_TOO_FREQUENT",
    );
    let retry = e.retry_after.expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    s.domain.clock().advance(std::time::Duration::from_secs(3));
    let req = json!({"refresh_token": r1, "idempotency_key": "refresh-1"});
    let second = s
        .call(t, "auth.session.refresh", req.clone())
        .await
        .unwrap();
    // The retry of a refresh that went through gets the same session back,
    // not a cooldown error and not reuse detection.
    let again = s.call(t, "auth.session.refresh", req).await.unwrap();
    assert_eq!(second, again);
    expect_err(
        s.call(
            t,
            "auth.session.refresh",
            json!({"refresh_token": second["refresh_token"]}),
        )
        .await,
        "AUTH_REFRESH_TOO_FREQUENT",
    );
    assert_eq!(
        verify(s, t, second["access_token"].as_str().unwrap()).await["valid"],
        true
    );
}

async fn revoke_and_list(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "rv@example.com").await;
    let a = login(s, t, &user).await;
    let b = login(s, t, &user).await;
    let c = login(s, t, &user).await;
    let ok = s
        .call(
            t,
            "auth.session.revoke",
            json!({"session_id": a["session_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(ok, json!({"ok": true}));
    for token in [&a["access_token"], &a["session_id"]] {
        let v = verify(s, t, token.as_str().unwrap()).await;
        assert_eq!(v["reason"], "revoked", "{v}");
    }
    // Revoking twice is fine; an unknown session is 404.
    s.call(
        t,
        "auth.session.revoke",
        json!({"session_id": a["session_id"]}),
    )
    .await
    .unwrap();
    expect_err(
        s.call(
            t,
            "auth.session.revoke",
            json!({"session_id": "ses_01900000000070008000000000000000"}),
        )
        .await,
        "AUTH_SESSION_NOT_FOUND",
    );

    let n = s
        .call(
            t,
            "auth.session.revoke_all_for_user",
            json!({"user_id": user, "except_session_id": c["session_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(n, json!({"revoked": 1}));
    assert_eq!(
        verify(s, t, b["access_token"].as_str().unwrap()).await["reason"],
        "revoked"
    );
    assert_eq!(
        verify(s, t, c["access_token"].as_str().unwrap()).await["valid"],
        true
    );
    let list = s
        .call(t, "auth.session.list_for_user", json!({"user_id": user}))
        .await
        .unwrap();
    let ids: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["session_id"])
        .collect();
    assert_eq!(ids, [&c["session_id"]]);
    expect_err(
        s.call(
            t,
            "auth.session.revoke_all_for_user",
            json!({"user_id": "usr_01900000000070008000000000000000"}),
        )
        .await,
        "AUTH_USER_NOT_FOUND",
    );

    // Deleting the user revokes what is left.
    s.call(t, "auth.user.delete", json!({"user_id": user}))
        .await
        .unwrap();
    assert_eq!(
        verify(s, t, c["access_token"].as_str().unwrap()).await["reason"],
        "revoked"
    );
}

contract!(mint_and_verify);
contract!(password_rules, vendors);
contract!(password_throttling, vendors);
contract!(mfa, vendors[clerk, workos]);
contract!(verify_rejects);
contract!(refresh_rotation, |c| c.tokens.refresh_cooldown_secs = 0, vendors[clerk, workos, supabase]);
contract!(revoke_and_list, vendors);

contract!(refresh_cooldown, |c| c.tokens.refresh_cooldown_secs = 2);
