//! The service tried the way an attacker would: credentials replayed past
//! their check, throttles raced with bursts of parallel attempts, and what
//! is stored read for secrets.

use authmux::vendors::VendorKind;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::harness::{ApiError, Backend, Server, Transport, create_user, expect_err};
use crate::sessions::totp_at;
use authmux_testkit::contract;

pub const PASSWORD: &str = "open sesame";

pub async fn user_with_password(s: &Server, t: Transport, email: &str) -> String {
    let u = s
        .call(
            t,
            "auth.user.create",
            json!({"email": email, "password": PASSWORD}),
        )
        .await
        .unwrap_or_else(|e| panic!("create {email}: {e:?}"));
    let id = u["user_id"].as_str().unwrap().to_owned();
    crate::harness::confirm_email(s, t, &id).await;
    id
}

/// A session of `user` created without a credential check (`sso`).
pub async fn sso_session(s: &Server, t: Transport, user: &str) -> Value {
    s.call(
        t,
        "auth.session.create",
        json!({"user_id": user, "method": "sso"}),
    )
    .await
    .unwrap_or_else(|e| panic!("session for {user}: {e:?}"))
}

fn codes(results: &[Result<Value, ApiError>]) -> Vec<&str> {
    results
        .iter()
        .map(|r| match r {
            Ok(_) => "OK",
            Err(e) => e.code.as_str(),
        })
        .collect()
}

fn count(codes: &[&str], code: &str) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

/// An idempotent replay of `session.create` gets the stored tokens only
/// after passing the same credential checks again.
async fn replay_rechecks_credentials(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "replay@example.com").await;
    let right = json!({"user_id": user, "method": "password", "password": PASSWORD,
                       "idempotency_key": "login-1"});
    let first = s
        .call(t, "auth.session.create", right.clone())
        .await
        .unwrap();
    let mut wrong = right.clone();
    wrong["password"] = json!("not the password");
    let e = expect_err(
        s.call(t, "auth.session.create", wrong).await,
        "AUTH_INVALID_CREDENTIALS",
    );
    assert!(!e.message.contains("refresh"), "{e:?}");
    // The key in the header, the wrong password in the body: same answer.
    let mut no_key = right.clone();
    no_key.as_object_mut().unwrap().remove("idempotency_key");
    no_key["password"] = json!("still not it");
    expect_err(
        s.call_as(
            t,
            &s.key,
            "auth.session.create",
            no_key,
            &[("idempotency-key", "login-1")],
        )
        .await,
        "AUTH_INVALID_CREDENTIALS",
    );
    let again = s
        .call(t, "auth.session.create", right.clone())
        .await
        .unwrap();
    assert_eq!(again, first, "the right password replays the stored reply");

    // With MFA: every replay needs a code that passes now.
    let up = crate::harness::enable_mfa(s, t, &user).await;
    let secret = up["mfa_enrollment"]["secret"].as_str().unwrap().to_owned();
    let mut mfa = right.clone();
    mfa["idempotency_key"] = json!("login-2");
    mfa["mfa_factor"] = json!(totp_at(&secret, 0));
    let first = s.call(t, "auth.session.create", mfa.clone()).await.unwrap();
    let mut wrong_code = mfa.clone();
    wrong_code["mfa_factor"] = json!(totp_at(&secret, 300));
    expect_err(
        s.call(t, "auth.session.create", wrong_code).await,
        "AUTH_MFA_INVALID",
    );
    // The first attempt spent its code: the same code again is refused.
    expect_err(
        s.call(t, "auth.session.create", mfa.clone()).await,
        "AUTH_MFA_INVALID",
    );
    // A fresh, valid code (the next time step) gets the stored reply.
    let mut fresh = mfa.clone();
    fresh["mfa_factor"] = json!(totp_at(&secret, 30));
    let again = s.call(t, "auth.session.create", fresh).await.unwrap();
    assert_eq!(again, first);
}
contract!(replay_rechecks_credentials);

/// Stored fingerprints are keyed with the master key: the SHA-256 of the
/// request (which held a password) is not what is stored.
async fn fingerprints_are_keyed(s: &Server, t: Transport) {
    s.call(
        t,
        "auth.user.create",
        json!({"email": "fp@example.com", "password": "hunter2 hunter2",
               "idempotency_key": "fp-1"}),
    )
    .await
    .unwrap();
    // The request as the domain serialises it (fields in their order).
    let material = "user.create\n{\"email\":\"fp@example.com\",\"password\":\"hunter2 hunter2\",\
                    \"metadata\":null,\"vendor\":null,\"mode\":null}";
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(&s.database_url).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT request_hash FROM idempotency_keys WHERE key = 'fp-1'",
        ))
        .await
        .unwrap()
        .expect("the record");
    let stored: String = row.try_get("", "request_hash").unwrap();
    let _ = db.close().await;
    let (master, _) = authmux::crypto::MasterKey::load_or_create_file(
        &s.data_dir().join(authmux::startup::MASTER_KEY_FILE),
    )
    .unwrap();
    assert_ne!(stored, authmux::crypto::sha256_hex(material.as_bytes()));
    assert_eq!(stored, master.fingerprint(material.as_bytes()));
}
contract!(fingerprints_are_keyed);

/// Rows that stopped mattering a day ago are purged; newer ones stay.
async fn purge_removes_what_expired(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "purge@example.com").await;
    let login = json!({"user_id": user, "method": "password", "password": PASSWORD,
                       "idempotency_key": "purge-1"});
    let session = s.call(t, "auth.session.create", login).await.unwrap();
    expect_err(
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": "wrong wrong"}),
        )
        .await,
        "AUTH_INVALID_CREDENTIALS",
    );
    let now = s.domain.clock().now_millis();
    let nothing = s.domain.purge(now).await.unwrap();
    assert_eq!(
        nothing,
        authmux::domain::Purged::default(),
        "all still fresh"
    );
    // A day past the idempotency record and the failure: those go; the
    // 30-day session stays.
    let later = s
        .domain
        .purge(now + authmux::domain::RETENTION_MS + 60_000)
        .await
        .unwrap();
    assert_eq!(
        (later.idempotency_keys, later.attempts),
        (1, 1),
        "{later:?}"
    );
    assert_eq!(later.sessions, 0);
    // A day past the session's expiry: it goes with its refresh token.
    let month = 31 * 24 * 3600 * 1000;
    let end = s
        .domain
        .purge(now + month + authmux::domain::RETENTION_MS)
        .await
        .unwrap();
    assert_eq!(end.sessions, 1, "{end:?}");
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
contract!(purge_removes_what_expired);

/// A burst of 40 parallel wrong passwords: at most the limit (10) are
/// checked, the rest are throttled, and so is the right password after.
async fn password_burst_is_throttled(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "burst@example.com").await;
    let wrong = json!({"user_id": user, "method": "password", "password": "guess guess"});
    let results = join_all((0..40).map(|_| s.call(t, "auth.session.create", wrong.clone()))).await;
    let codes = codes(&results);
    let checked = count(&codes, "AUTH_INVALID_CREDENTIALS");
    let throttled = count(&codes, "AUTH_TOO_MANY_ATTEMPTS");
    assert!(checked <= 10, "{checked} checked: {codes:?}");
    assert_eq!(checked + throttled, 40, "{codes:?}");
    let right = json!({"user_id": user, "method": "password", "password": PASSWORD});
    let e = expect_err(
        s.call(t, "auth.session.create", right.clone()).await,
        "AUTH_TOO_MANY_ATTEMPTS",
    );
    assert!(
        e.retry_after.is_some_and(|r| (1..=900).contains(&r)),
        "{e:?}"
    );
    // Once the window has passed, the right password works again.
    s.domain.clock().advance(Duration::from_secs(15 * 60 + 1));
    s.call(t, "auth.session.create", right).await.unwrap();
}
contract!(password_burst_is_throttled);

/// Wrong TOTP codes are counted per user: 20 parallel wrong codes check at
/// most 5, then even the right code is refused with Retry-After.
async fn mfa_burst_is_throttled(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "mfa-burst@example.com").await;
    let up = crate::harness::enable_mfa(s, t, &user).await;
    let secret = up["mfa_enrollment"]["secret"].as_str().unwrap().to_owned();
    let base = json!({"user_id": user, "method": "password", "password": PASSWORD});
    let wrong_code = totp_at(&secret, 600);
    let attempts = (0..20).map(|_| {
        let mut r = base.clone();
        r["mfa_factor"] = json!(wrong_code);
        s.call(t, "auth.session.create", r)
    });
    let results = join_all(attempts).await;
    let codes = codes(&results);
    let checked = count(&codes, "AUTH_MFA_INVALID");
    assert!(checked <= 5, "{checked} codes checked: {codes:?}");
    // WorkOS checks the password first, and allows 10 authentications per
    // email a minute (docs, rate limits): past those, the vendor's own 429.
    let vendor_limited = count(&codes, "VENDOR_UNAVAILABLE");
    if s.vendor == VendorKind::Workos {
        assert!(vendor_limited <= 10, "{codes:?}");
        s.workos.as_ref().unwrap().a_minute_passes();
    } else {
        assert_eq!(vendor_limited, 0, "{codes:?}");
    }
    assert_eq!(
        checked + count(&codes, "AUTH_TOO_MANY_ATTEMPTS") + vendor_limited,
        20,
        "{codes:?}"
    );
    let mut right = base.clone();
    right["mfa_factor"] = json!(totp_at(&secret, 0));
    let e = expect_err(
        s.call(t, "auth.session.create", right.clone()).await,
        "AUTH_TOO_MANY_ATTEMPTS",
    );
    assert!(e.retry_after.is_some(), "{e:?}");
    // The password throttle is a separate count: the right password was
    // never counted as a failure.
    let later = 15 * 60 + 1;
    s.domain.clock().advance(Duration::from_secs(later));
    // The built-in provider checks codes on authmux's clock, which just
    // moved; an emulated vendor on its own (real) clock.
    let skew = if s.vendor == VendorKind::Native {
        later
    } else {
        0
    };
    right["mfa_factor"] = json!(totp_at(&secret, skew));
    s.call(t, "auth.session.create", right).await.unwrap();
}
contract!(mfa_burst_is_throttled, vendors[clerk, workos]);

/// What a sign-in sent while its user was deleted may answer: a session
/// that no longer verifies or refreshes, or no user (a wrong password, when
/// the vendor no longer knows the user either). Never a vendor error.
pub async fn nothing_outlives_the_delete(
    s: &Server,
    t: Transport,
    login: Result<Value, ApiError>,
    trial: impl std::fmt::Display,
) {
    match login {
        Ok(session) => session_ended(s, t, &session, trial).await,
        Err(e) => assert!(
            ["AUTH_USER_NOT_FOUND", "AUTH_INVALID_CREDENTIALS"].contains(&e.code.as_str()),
            "trial {trial}: {e:?}"
        ),
    }
}

/// A session whose access token no longer verifies and whose refresh
/// token is refused.
async fn session_ended(s: &Server, t: Transport, session: &Value, trial: impl std::fmt::Display) {
    let v = s
        .call(
            t,
            "auth.session.verify",
            json!({"session_id": session["access_token"]}),
        )
        .await
        .unwrap();
    assert_eq!(v["valid"], false, "trial {trial}: {v}");
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

/// Sessions of a user deleted while it signs in never outlive the delete.
async fn delete_racing_sign_in(s: &Server, t: Transport) {
    for i in 0..8 {
        let user = user_with_password(s, t, &format!("race{i}@example.com")).await;
        let login = s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": PASSWORD}),
        );
        let delete = s.call(t, "auth.user.delete", json!({"user_id": user}));
        let (login, delete) = tokio::join!(login, delete);
        delete.unwrap_or_else(|e| panic!("trial {i}: delete failed: {e:?}"));
        nothing_outlives_the_delete(s, t, login, i).await;
        expect_err(
            s.call(t, "auth.user.get", json!({"user_id": user})).await,
            "AUTH_USER_NOT_FOUND",
        );
    }
}
contract!(delete_racing_sign_in);

/// Verifies of one session, by access token and by session id, sent at
/// once while its user is deleted: the verified-token and live-session
/// caches they fill never outlast the delete. Every verify answers (no
/// error), and once the delete has returned, both forms are refused.
async fn verifies_racing_a_delete(s: &Server, t: Transport) {
    for i in 0..4 {
        let user = user_with_password(s, t, &format!("verifyrace{i}@example.com")).await;
        let session = sso_session(s, t, &user).await;
        let forms = [
            session["access_token"].as_str().unwrap().to_owned(),
            session["session_id"].as_str().unwrap().to_owned(),
        ];
        // The same verify twice at once, before the delete: both valid.
        for form in &forms {
            let (a, b) = tokio::join!(
                s.call(t, "auth.session.verify", json!({"session_id": form})),
                s.call(t, "auth.session.verify", json!({"session_id": form}))
            );
            assert_eq!(a.unwrap()["valid"], true, "trial {i}");
            assert_eq!(b.unwrap()["valid"], true, "trial {i}");
        }
        let verifies = join_all((0..20).map(|n| {
            s.call(
                t,
                "auth.session.verify",
                json!({"session_id": forms[n % 2]}),
            )
        }));
        let delete = s.call(t, "auth.user.delete", json!({"user_id": user}));
        let (verifies, delete) = tokio::join!(verifies, delete);
        delete.unwrap_or_else(|e| panic!("trial {i}: delete failed: {e:?}"));
        for v in verifies {
            let v = v.unwrap_or_else(|e| panic!("trial {i}: {e:?}"));
            assert!(v["valid"].is_boolean(), "trial {i}: {v}");
        }
        for form in &forms {
            let v = s
                .call(t, "auth.session.verify", json!({"session_id": form}))
                .await
                .unwrap();
            assert_eq!(v["valid"], false, "trial {i}, after the delete: {v}");
        }
    }
}
contract!(verifies_racing_a_delete);

/// Session ids verified for the first time all at once, so that their
/// reads reach the database together: each answer is that session's own,
/// a revoked one is revoked, an unknown id and another project's session
/// are unknown, and the other project still sees its own session.
async fn first_verifies_in_a_crowd(s: &Server, t: Transport) {
    let other = s.key_for("crowd").await;
    // (the key to verify with, the session id, the user it is valid for,
    // else the reason it is not)
    let mut cases: Vec<(Option<String>, String, Result<String, &str>)> = Vec::new();
    for u in 0..3 {
        let user = user_with_password(s, t, &format!("crowd{u}@example.com")).await;
        for _ in 0..4 {
            let session = sso_session(s, t, &user).await;
            let id = session["session_id"].as_str().unwrap().to_owned();
            cases.push((None, id, Ok(user.clone())));
        }
    }
    for case in cases.iter_mut().step_by(5) {
        s.call(t, "auth.session.revoke", json!({"session_id": case.1}))
            .await
            .unwrap();
        case.2 = Err("revoked");
    }
    cases.push((
        None,
        "ses_0000000000000000000000000000".to_owned(),
        Err("unknown_session"),
    ));
    let theirs = s
        .call_as(
            t,
            &other,
            "auth.user.create",
            json!({"email": "crowd@example.com"}),
            &[],
        )
        .await
        .unwrap();
    let their_user = theirs["user_id"].as_str().unwrap().to_owned();
    let their_session = s
        .call_as(
            t,
            &other,
            "auth.session.create",
            json!({"user_id": their_user, "method": "sso"}),
            &[],
        )
        .await
        .unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    cases.push((None, their_session.clone(), Err("unknown_session")));
    cases.push((Some(other.clone()), their_session, Ok(their_user)));

    // Each case four times over, all at once and none verified before.
    let rounds = cases.len() * 4;
    let answers = join_all(cases.iter().cycle().take(rounds).map(|(key, id, _)| {
        let request = json!({"session_id": id});
        async move {
            match key {
                Some(key) => s.call_as(t, key, "auth.session.verify", request, &[]).await,
                None => s.call(t, "auth.session.verify", request).await,
            }
        }
    }))
    .await;
    for ((_, id, expected), answer) in cases.iter().cycle().zip(answers) {
        let answer = answer.unwrap_or_else(|e| panic!("{id}: {e:?}"));
        match expected {
            Ok(user) => {
                assert_eq!(answer["valid"], true, "{id}: {answer}");
                assert_eq!(answer["user_id"], user.as_str(), "{id}: {answer}");
            }
            Err(reason) => {
                assert_eq!(answer["valid"], false, "{id}: {answer}");
                assert_eq!(answer["reason"], *reason, "{id}: {answer}");
            }
        }
    }
}
contract!(first_verifies_in_a_crowd);

/// Thirty parallel revoke-alls and a delete: no 500, every session revoked
/// exactly once.
async fn parallel_revokes(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "revokes@example.com").await;
    for _ in 0..5 {
        sso_session(s, t, &user).await;
    }
    let results = join_all((0..30).map(|_| {
        s.call(
            t,
            "auth.session.revoke_all_for_user",
            json!({"user_id": user}),
        )
    }))
    .await;
    let total: i64 = results
        .iter()
        .map(|r| match r {
            Ok(v) => v["revoked"].as_i64().unwrap(),
            Err(e) => panic!("{e:?}"),
        })
        .sum();
    assert_eq!(total, 5);
    let (a, b) = tokio::join!(
        s.call(t, "auth.user.delete", json!({"user_id": user})),
        s.call(t, "auth.user.delete", json!({"user_id": user}))
    );
    let both = [a, b];
    let outcomes = codes(&both);
    assert_eq!(count(&outcomes, "OK"), 1, "{outcomes:?}");
    assert_eq!(count(&outcomes, "AUTH_USER_NOT_FOUND"), 1, "{outcomes:?}");
}
contract!(parallel_revokes);

/// Concurrent updates apply one after another: 20 merges of distinct keys
/// keep all 20; of 5 concurrent enrolments one hands out a secret, which
/// works, and the others are told it is in progress or see it done.
async fn concurrent_updates(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "merge@example.com").await;
    let results = join_all((0..20).map(|i| {
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": user, "metadata": {format!("k{i}"): i}}),
        )
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{:?}", codes(&results));
    let got = s
        .call(t, "auth.user.get", json!({"user_id": user}))
        .await
        .unwrap();
    let metadata = got["metadata"].as_object().unwrap();
    assert_eq!(metadata.len(), 20, "{got}");
    for i in 0..20 {
        assert_eq!(metadata[&format!("k{i}")], json!(i));
    }

    let results = join_all((0..5).map(|_| {
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": user, "mfa_enabled": true}),
        )
    }))
    .await;
    // The others either waited out the one enrolment (no secret) or were
    // told it is in progress.
    let outcomes = codes(&results);
    assert!(
        outcomes
            .iter()
            .all(|c| ["OK", "AUTH_MFA_ENROLLMENT_IN_PROGRESS"].contains(c)),
        "{outcomes:?}"
    );
    let secrets: Vec<String> = results
        .iter()
        .flatten()
        .filter_map(|v| v["mfa_enrollment"]["secret"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(secrets.len(), 1, "one enrolment: {secrets:?}");
    // No reader ever saw MFA on without the secret being handed out: by
    // now it is on.
    let got = s
        .call(t, "auth.user.get", json!({"user_id": user}))
        .await
        .unwrap();
    assert_eq!(got["mfa_enabled"], true, "{got}");
    s.call(
        t,
        "auth.session.create",
        json!({"user_id": user, "method": "password", "password": PASSWORD,
               "mfa_factor": totp_at(&secrets[0], 0)}),
    )
    .await
    .unwrap();
}
contract!(concurrent_updates);

/// Two refreshes racing with one token: one new pair, the other told of
/// the conflict, and the winner's tokens live. A reuse past the grace
/// still revokes the session.
async fn refresh_double_submit(s: &Server, t: Transport) {
    let user = user_with_password(s, t, "double@example.com").await;
    let first = s
        .call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": PASSWORD}),
        )
        .await
        .unwrap();
    let r1 = json!({"refresh_token": first["refresh_token"]});
    let (a, b) = tokio::join!(
        s.call(t, "auth.session.refresh", r1.clone()),
        s.call(t, "auth.session.refresh", r1.clone())
    );
    let both = [a.clone(), b.clone()];
    let outcomes = codes(&both);
    assert_eq!(count(&outcomes, "OK"), 1, "{outcomes:?}");
    assert_eq!(count(&outcomes, "AUTH_REFRESH_CONFLICT"), 1, "{outcomes:?}");
    let winner = a.or(b).unwrap();
    let v = s
        .call(
            t,
            "auth.session.verify",
            json!({"session_id": winner["access_token"]}),
        )
        .await
        .unwrap();
    assert_eq!(v["valid"], true, "the winner's tokens live: {v}");
    // Within the grace a repeat is still a conflict, not a theft.
    expect_err(
        s.call(t, "auth.session.refresh", r1.clone()).await,
        "AUTH_REFRESH_CONFLICT",
    );
    s.domain.clock().advance(Duration::from_secs(6));
    expect_err(
        s.call(t, "auth.session.refresh", r1).await,
        "AUTH_REFRESH_TOKEN_REUSED",
    );
    let v = s
        .call(
            t,
            "auth.session.verify",
            json!({"session_id": winner["access_token"]}),
        )
        .await
        .unwrap();
    assert_eq!(v["reason"], "revoked", "{v}");
}
contract!(refresh_double_submit, |c| c.tokens.refresh_cooldown_secs =
    0);

/// A caller that goes away mid-request leaves its idempotency key free:
/// the retry runs instead of meeting IDEMPOTENCY_KEY_IN_USE.
async fn abandoned_key_is_released(backend: Backend, t: Transport) {
    let Some(s) = Server::start_vendors(backend, &[VendorKind::Clerk], |_| {}).await else {
        return;
    };
    let user = s
        .call(t, "auth.user.create", json!({"email": "gone@example.com"}))
        .await
        .unwrap();
    let req = json!({"user_id": user["user_id"], "method": "sso", "idempotency_key": "walk-away"});
    let faults = s.emulator.as_ref().unwrap().faults.clone();
    faults.lock().unwrap().latency = Duration::from_secs(2);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(400),
        s.call(t, "auth.session.create", req.clone()),
    )
    .await;
    assert!(gave_up.is_err(), "the caller left before the reply");
    faults.lock().unwrap().latency = Duration::ZERO;
    let mut outcome = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match s.call(t, "auth.session.create", req.clone()).await {
            Err(e) if e.code == "IDEMPOTENCY_KEY_IN_USE" => continue,
            other => {
                outcome = Some(other);
                break;
            }
        }
    }
    let session = outcome
        .expect("the key was released within 2 s")
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(session["session_id"].as_str().unwrap().starts_with("ses_"));
}

mod abandoned_key {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_rest() {
        abandoned_key_is_released(Backend::Sqlite, Transport::Rest).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_grpc() {
        abandoned_key_is_released(Backend::Sqlite, Transport::Grpc).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_rest() {
        abandoned_key_is_released(Backend::Postgres, Transport::Rest).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_grpc() {
        abandoned_key_is_released(Backend::Postgres, Transport::Grpc).await
    }
}

/// Users taking one phone number at once: exactly one gets it, the others
/// are told it is taken, and the index holds it once.
async fn users_racing_for_one_phone(s: &Server, t: Transport) {
    const NUMBER: &str = "+14155550199";
    let mut users = Vec::new();
    for i in 0..8 {
        let user = create_user(s, t, &format!("racer{i}@example.com")).await;
        users.push(user["user_id"].as_str().unwrap().to_owned());
    }
    for round in 0..3 {
        let results = join_all(users.iter().map(|u| {
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": u, "phone_number": NUMBER}),
            )
        }))
        .await;
        let outcomes = codes(&results);
        assert_eq!(count(&outcomes, "OK"), 1, "round {round}: {outcomes:?}");
        assert_eq!(
            count(&outcomes, "AUTH_PHONE_NUMBER_TAKEN"),
            users.len() - 1,
            "round {round}: {outcomes:?}"
        );
        let mut holders = Vec::new();
        for u in &users {
            let got = s
                .call(t, "auth.user.get", json!({"user_id": u}))
                .await
                .unwrap();
            if got["phone_number"] == NUMBER {
                holders.push(u.clone());
            }
        }
        assert_eq!(holders.len(), 1, "round {round}: {holders:?}");
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": holders[0], "phone_number": ""}),
        )
        .await
        .unwrap();
    }
}
contract!(users_racing_for_one_phone);

/// One user's number sent several times at once (a client retrying): every
/// copy succeeds, and the user holds the number once, in the index and at
/// the vendor.
async fn one_number_sent_twice_at_once(s: &Server, t: Transport) {
    for round in 0..3 {
        let user = create_user(s, t, &format!("twice{round}@example.com")).await["user_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let number = format!("+1415555{:04}", 300 + round);
        let results = join_all((0..3).map(|_| {
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "phone_number": number}),
            )
        }))
        .await;
        let outcomes = codes(&results);
        assert_eq!(count(&outcomes, "OK"), 3, "round {round}: {outcomes:?}");
        let x = s
            .call(t, "auth.user.export", json!({"user_id": user}))
            .await
            .unwrap();
        assert_eq!(x["user"]["phone_number"], number.as_str(), "{x}");
        if s.vendor() == VendorKind::Clerk {
            let numbers = &x["vendor_record"]["user"]["phone_numbers"];
            assert_eq!(numbers.as_array().map(Vec::len), Some(1), "{x}");
            assert_eq!(numbers[0]["phone_number"], number.as_str(), "{x}");
        }
    }
}
contract!(one_number_sent_twice_at_once, vendors[clerk, supabase]);

/// Two users of one project held by different vendors (Clerk and native)
/// taking one number at once. The Clerk user's number is set at Clerk
/// before the index is written; when the index then refuses it, Clerk gets
/// the user's old number back, so Clerk's record and the index agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_loser_gets_its_number_back_at_its_vendor() {
    let s = Server::start_vendors(Backend::Sqlite, &[VendorKind::Clerk], |_| {})
        .await
        .unwrap();
    let t = Transport::Rest;
    let s = &s;
    let create = |email: &'static str, vendor: &'static str| async move {
        s.call(
            t,
            "auth.user.create",
            json!({"email": email, "vendor": vendor}),
        )
        .await
        .unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let at_clerk = create("racer-clerk@example.com", "clerk").await;
    let native = create("racer-native@example.com", "native").await;
    let update = |user: &str, phone: &str| {
        s.call(
            t,
            "auth.user.update",
            json!({"user_id": user, "phone_number": phone}),
        )
    };
    let mut clerk_lost = 0;
    for round in 0..10 {
        let number = format!("+1415555{:04}", 200 + round);
        let (c, n) = tokio::join!(update(&at_clerk, &number), update(&native, &number));
        let clerk_won = c.is_ok();
        let both = [c, n];
        let outcomes = codes(&both);
        assert_eq!(count(&outcomes, "OK"), 1, "round {round}: {outcomes:?}");
        let x = s
            .call(t, "auth.user.export", json!({"user_id": at_clerk}))
            .await
            .unwrap();
        let at_vendor: Vec<&str> = x["vendor_record"]["user"]["phone_numbers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["phone_number"].as_str())
            .collect();
        let indexed = x["user"]["phone_number"].as_str();
        if clerk_won {
            assert_eq!(at_vendor, vec![number.as_str()], "round {round}: {x}");
            assert_eq!(indexed, Some(number.as_str()));
            update(&at_clerk, "").await.unwrap();
        } else {
            clerk_lost += 1;
            assert!(at_vendor.is_empty(), "round {round}: {x}");
            assert_eq!(indexed, None, "round {round}: {x}");
            update(&native, "").await.unwrap();
        }
    }
    assert!(clerk_lost > 0, "the Clerk user never lost a round");
}

/// An update, a refresh and a revoke-all racing the user's delete: none is
/// a 500, and nothing outlives the delete (no user, no refreshable or
/// valid session).
async fn mutations_racing_delete(s: &Server, t: Transport) {
    for i in 0..6 {
        let user = user_with_password(s, t, &format!("mrace{i}@example.com")).await;
        let session = s
            .call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": PASSWORD}),
            )
            .await
            .unwrap();
        let (update, refresh, revoke_all, delete) = tokio::join!(
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "metadata": {"k": i}, "phone_number": "+14155550100"}),
            ),
            s.call(
                t,
                "auth.session.refresh",
                json!({"refresh_token": session["refresh_token"]}),
            ),
            s.call(
                t,
                "auth.session.revoke_all_for_user",
                json!({"user_id": user}),
            ),
            s.call(t, "auth.user.delete", json!({"user_id": user})),
        );
        delete.unwrap_or_else(|e| panic!("trial {i}: delete: {e:?}"));
        for (what, r, allowed) in [
            ("update", &update, &["AUTH_USER_NOT_FOUND"][..]),
            (
                "refresh",
                &refresh,
                &["AUTH_SESSION_INVALID", "AUTH_USER_NOT_FOUND"][..],
            ),
            ("revoke_all", &revoke_all, &["AUTH_USER_NOT_FOUND"][..]),
        ] {
            if let Err(e) = r {
                assert!(
                    allowed.contains(&e.code.as_str()),
                    "trial {i}: {what}: {e:?}"
                );
            }
        }
        expect_err(
            s.call(t, "auth.user.get", json!({"user_id": user})).await,
            "AUTH_USER_NOT_FOUND",
        );
        let mut tokens = vec![session.clone()];
        tokens.extend(refresh.ok());
        for tok in tokens {
            session_ended(s, t, &tok, i).await;
        }
    }
}
contract!(mutations_racing_delete, |c| c
    .tokens
    .refresh_cooldown_secs = 0);

/// The project the server's API key opens.
/// Calls that raced a user's delete: each went first or found no user.
fn went_first_or_found_no_user<const N: usize>(
    trial: usize,
    results: [Result<Value, ApiError>; N],
) {
    for r in results {
        if let Err(e) = r {
            assert_eq!(e.code, "AUTH_USER_NOT_FOUND", "trial {trial}: {e:?}");
        }
    }
}

/// The built-in provider's credentials under concurrent writes. A new
/// password and an MFA enrolment sent at once each keep their own field
/// (neither writes back a stale copy of the other's), and either of them
/// racing the user's delete leaves no credentials behind: erasure holds.
async fn credential_writes_race(s: &Server, t: Transport) {
    let (project, store) = (s.project().await, s.domain.store());
    for i in 0..6 {
        let user = user_with_password(s, t, &format!("cred{i}@example.com")).await;
        let password = format!("new password {i}");
        let (changed, enrolled) = tokio::join!(
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "password": password, "keep_sessions": true}),
            ),
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "mfa_enabled": true}),
            ),
        );
        changed.unwrap_or_else(|e| panic!("trial {i}: password: {e:?}"));
        let enrolled = enrolled.unwrap_or_else(|e| panic!("trial {i}: mfa: {e:?}"));
        let secret = enrolled["mfa_enrollment"]["secret"].as_str().unwrap();
        let (code, _) = crate::sessions::totp_now(secret);
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": password,
                   "mfa_factor": code}),
        )
        .await
        .unwrap_or_else(|e| panic!("trial {i}: the new password and the new factor: {e:?}"));

        // The same change sent twice at once: both succeed, and it holds.
        let twice = user_with_password(s, t, &format!("cred-twice{i}@example.com")).await;
        let update = || {
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": twice, "password": password}),
            )
        };
        for r in join_all([update(), update()]).await {
            r.unwrap_or_else(|e| panic!("trial {i}: the same change twice: {e:?}"));
        }
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": twice, "method": "password", "password": password}),
        )
        .await
        .unwrap_or_else(|e| panic!("trial {i}: after the same change twice: {e:?}"));

        let doomed = user_with_password(s, t, &format!("cred-del{i}@example.com")).await;
        let (changed, enrolled, deleted) = tokio::join!(
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": doomed, "password": password}),
            ),
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": doomed, "mfa_enabled": true}),
            ),
            s.call(t, "auth.user.delete", json!({"user_id": doomed})),
        );
        deleted.unwrap_or_else(|e| panic!("trial {i}: delete: {e:?}"));
        went_first_or_found_no_user(i, [changed, enrolled]);
        assert!(
            store
                .native_credentials(&project.id, &doomed)
                .await
                .unwrap()
                .is_none(),
            "trial {i}: a deleted user's credentials are erased"
        );
    }
}
contract!(credential_writes_race);

/// Consent recorded while the user is being deleted: once the delete is
/// done, none of it is left (the erasure takes the whole ledger), and each
/// consent call either went first or answers `AUTH_USER_NOT_FOUND`.
async fn consent_racing_delete(s: &Server, t: Transport) {
    let (project, store) = (s.project().await, s.domain.store());
    for i in 0..8 {
        let user = create_user(s, t, &format!("consent-race{i}@example.com")).await["user_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let record = |call: &'static str, category: &'static str| {
            s.call(t, call, json!({"user_id": user, "category": category}))
        };
        // The same grant twice at once: both recorded, the state granted.
        for r in join_all([
            record("auth.consent.grant", "terms"),
            record("auth.consent.grant", "terms"),
        ])
        .await
        {
            r.unwrap_or_else(|e| panic!("trial {i}: the same grant twice: {e:?}"));
        }
        let terms = s
            .call(
                t,
                "auth.consent.check",
                json!({"user_id": user, "category": "terms"}),
            )
            .await
            .unwrap();
        assert_eq!(terms["granted"], true, "trial {i}: {terms}");
        let (a, b, c, deleted) = tokio::join!(
            record("auth.consent.grant", "marketing"),
            record("auth.consent.revoke", "analytics"),
            record("auth.consent.grant", "analytics"),
            s.call(t, "auth.user.delete", json!({"user_id": user})),
        );
        deleted.unwrap_or_else(|e| panic!("trial {i}: delete: {e:?}"));
        went_first_or_found_no_user(i, [a, b, c]);
        assert_eq!(
            store
                .consent_events(&project.id, &user)
                .await
                .unwrap()
                .len(),
            0,
            "trial {i}: the ledger is erased"
        );
        assert_eq!(
            store
                .consent_states(&project.id, &user)
                .await
                .unwrap()
                .len(),
            0,
            "trial {i}: the states are erased"
        );
    }
}
contract!(consent_racing_delete);

/// A grant and a revocation of one category sent at once, in 12 categories
/// at the same time: in each, whichever landed last is the current state
/// (by `check` and by `list_for_user`), the last entry of the ledger and
/// the last consent event announced, so the ledger proves the state and a
/// receiver applying the events in order ends where authmux does.
async fn grant_and_revoke_at_once_agree(s: &Server, t: Transport) {
    let (project, store) = (s.project().await, s.domain.store());
    let user = create_user(s, t, "consent-at-once@example.com").await["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let categories: Vec<String> = (0..12).map(|i| format!("race-{i}")).collect();
    let results = join_all(categories.iter().flat_map(|c| {
        ["auth.consent.grant", "auth.consent.revoke"]
            .map(|call| s.call(t, call, json!({"user_id": user, "category": c})))
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{:?}", codes(&results));
    let listed = s
        .call(t, "auth.consent.list_for_user", json!({"user_id": user}))
        .await
        .unwrap();
    let ledger = store.consent_events(&project.id, &user).await.unwrap();
    let mut announced = store
        .events(
            &project.id,
            &authmux::store::events::EventFilter {
                user_id: Some(&user),
                ..Default::default()
            },
            200,
        )
        .await
        .unwrap();
    announced.reverse();
    for c in &categories {
        let last_entry = ledger.iter().rfind(|e| &e.category == c).unwrap();
        let last_event = announced
            .iter()
            .rfind(|e| {
                e.kind.starts_with("consent.")
                    && serde_json::from_str::<Value>(&e.data).unwrap()["category"] == **c
            })
            .unwrap();
        let checked = s
            .call(
                t,
                "auth.consent.check",
                json!({"user_id": user, "category": c}),
            )
            .await
            .unwrap();
        let state = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| &i["category"] == c)
            .unwrap();
        let (ledger_says, announced_says) =
            (last_entry.granted, last_event.kind == "consent.granted");
        assert_eq!(
            checked["granted"], ledger_says,
            "{c}: check answers {checked}, the ledger's last entry granted = {ledger_says}"
        );
        assert_eq!(state["granted"], ledger_says, "{c}: listed as {state}");
        assert_eq!(
            announced_says, ledger_says,
            "{c}: the last event announced is {}, the ledger's last entry granted = {ledger_says}",
            last_event.kind
        );
    }
}
contract!(grant_and_revoke_at_once_agree);

/// Records and announces the revocation of `category` for `user` as a
/// replica whose clock runs an hour ahead of this one's would: the ledger
/// entry, its `consent.revoked` event and the event's webhook deliveries
/// ordered and timed an hour ahead. Returns the event's id.
pub(crate) async fn revoke_as_a_replica_ahead(s: &Server, user: &str, category: &str) -> String {
    let (project, store) = (s.project().await, s.domain.store());
    let ahead = s.domain.clock().now_millis() + 3_600_000;
    let id = |prefix: &str| {
        let id =
            uuid::Builder::from_unix_timestamp_millis(ahead as u64, &rand::random()).into_uuid();
        format!("{prefix}_{}", id.simple())
    };
    let event_id = id("evt");
    let recorded = store
        .record_consent(&project.id, user, |_| {
            let entry = authmux::store::entity::consent_events::Model {
                id: id("cev"),
                project_id: project.id.clone(),
                user_id: user.to_owned(),
                category: category.into(),
                granted: false,
                source: None,
                created_at: ahead,
            };
            let announce = authmux::store::entity::events::Model {
                id: event_id.clone(),
                project_id: project.id.clone(),
                kind: "consent.revoked".into(),
                user_id: Some(user.to_owned()),
                api_key_id: project.key_id.clone(),
                request_id: None,
                occurred_at: ahead,
                data: json!({"category": category, "source": null, "user_id": user}).to_string(),
            };
            (entry, vec![announce])
        })
        .await
        .unwrap();
    assert!(recorded);
    // Its webhook deliveries, if any, queued by that replica's clock too.
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(&s.database_url).await.unwrap();
    let backend = db.get_database_backend();
    let (dlv, evt) = match backend {
        sea_orm::DbBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("UPDATE webhook_deliveries SET id = {dlv} WHERE event_id = {evt}"),
        [id("dlv").into(), event_id.clone().into()],
    ))
    .await
    .unwrap();
    let _ = db.close().await;
    event_id
}

/// Another replica, its clock an hour ahead of this one's, recorded the
/// last revocation and announced it: a grant recorded here afterwards is
/// still the ledger's last entry (ordered and timed after it), the current
/// state and the last event announced, and so is a revocation after that
/// grant.
async fn consent_after_a_replica_ahead(s: &Server, t: Transport) {
    let (project, store) = (s.project().await, s.domain.store());
    let user = create_user(s, t, "consent-clock@example.com").await["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    revoke_as_a_replica_ahead(s, &user, "marketing").await;
    for (call, granted) in [("auth.consent.grant", true), ("auth.consent.revoke", false)] {
        s.call(t, call, json!({"user_id": user, "category": "marketing"}))
            .await
            .unwrap();
        let checked = s
            .call(
                t,
                "auth.consent.check",
                json!({"user_id": user, "category": "marketing"}),
            )
            .await
            .unwrap();
        assert_eq!(checked["granted"], granted, "after {call}: {checked}");
        let history = s
            .call(t, "auth.consent.history", json!({"user_id": user}))
            .await
            .unwrap();
        let items = history["items"].as_array().unwrap();
        let last = items.last().unwrap();
        let newest = store
            .events(
                &project.id,
                &authmux::store::events::EventFilter {
                    user_id: Some(&user),
                    ..Default::default()
                },
                1,
            )
            .await
            .unwrap();
        let announced = if granted {
            "consent.granted"
        } else {
            "consent.revoked"
        };
        assert_eq!(newest[0].kind, announced, "after {call}: {newest:?}");
        assert_eq!(
            last["action"],
            if granted { "grant" } else { "revoke" },
            "after {call}: {history}"
        );
        let times: Vec<&str> = items.iter().map(|e| e["at"].as_str().unwrap()).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "the ledger's times go back: {times:?}"
        );
    }
}
contract!(consent_after_a_replica_ahead);

/// A sign-in with the old password racing a password change: whichever
/// way they interleave, no session opened with the old password outlives
/// the change (the change ends every session unless `keep_sessions`). A
/// sign-in checked before the change and stored after it is the case to
/// catch: an attacker holding the old password must not keep a session.
async fn old_password_sign_in_racing_a_change(s: &Server, t: Transport) {
    let mut outlived = Vec::new();
    for i in 0..16 {
        let user = user_with_password(s, t, &format!("pwrace{i}@example.com")).await;
        let login = || {
            s.call(
                t,
                "auth.session.create",
                json!({"user_id": user, "method": "password", "password": PASSWORD}),
            )
        };
        // The change, like the sign-in, sent twice at once (a retrying
        // client): both copies succeed and neither lets a session through.
        let change = || {
            s.call(
                t,
                "auth.user.update",
                json!({"user_id": user, "password": "the owner's new password"}),
            )
        };
        let (logins, changes) =
            tokio::join!(join_all([login(), login()]), join_all([change(), change()]),);
        for changed in changes {
            changed.unwrap_or_else(|e| panic!("trial {i}: change: {e:?}"));
        }
        for login in logins {
            match login {
                Ok(session) => {
                    let v = s
                        .call(
                            t,
                            "auth.session.verify",
                            json!({"session_id": session["session_id"]}),
                        )
                        .await
                        .unwrap();
                    if v["valid"] != false {
                        outlived.push(i);
                    }
                }
                Err(e) => assert_eq!(e.code, "AUTH_INVALID_CREDENTIALS", "trial {i}: {e:?}"),
            }
        }
        s.call(
            t,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": "the owner's new password"}),
        )
        .await
        .unwrap_or_else(|e| panic!("trial {i}: the new password: {e:?}"));
    }
    assert!(
        outlived.is_empty(),
        "sessions opened with the old password outlived its change in trials {outlived:?}"
    );
}
contract!(old_password_sign_in_racing_a_change, vendors);
