//! Signing keys, the JWKS endpoint, rotation, RS256, the JWKS client
//! against a rotating JWKS server, and secrets kept out of the database
//! file and the logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authmux::tokens::jwks::{JwksClient, JwksError, Policy};
use authmux::tokens::keys::{self, SigningAlg};
use authmux::tokens::verify::{self, Expect, Invalid};
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::harness::{Backend, Server, Transport};

async fn get_json(s: &Server, path: &str) -> (reqwest::header::HeaderMap, Value) {
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path} needs no API key");
    (r.headers().clone(), r.json().await.unwrap())
}

#[tokio::test]
async fn jwks_and_discovery_documents() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let (headers, jwks) = get_json(&s, "/.well-known/jwks.json").await;
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert_eq!(
        k["kid"].as_str().unwrap(),
        keys::thumbprint(k).unwrap(),
        "kid is the RFC 7638 thumbprint"
    );
    assert!(k.get("d").is_none(), "no private member");
    let (_, oidc) = get_json(&s, "/.well-known/openid-configuration").await;
    assert_eq!(oidc["issuer"], "http://127.0.0.1:8080");
    assert_eq!(
        oidc["jwks_uri"],
        "http://127.0.0.1:8080/.well-known/jwks.json"
    );
}

async fn session_token(s: &Server) -> String {
    let u = s
        .call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": format!("{}@example.com", uuid::Uuid::now_v7())}),
        )
        .await
        .unwrap();
    let session = s
        .call(
            Transport::Rest,
            "auth.session.create",
            json!({"user_id": u["user_id"]}),
        )
        .await
        .unwrap();
    session["access_token"].as_str().unwrap().to_owned()
}

async fn is_valid(s: &Server, token: &str) -> bool {
    s.call(
        Transport::Grpc,
        "auth.session.verify",
        json!({"session_id": token}),
    )
    .await
    .unwrap()["valid"]
        == true
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let old = session_token(&s).await;
    let new_kid = s.domain.keyring().rotate().await.unwrap();
    let new = session_token(&s).await;
    let kid_of = |t: &str| {
        use base64::Engine;
        let h: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        h["kid"].as_str().unwrap().to_owned()
    };
    assert_eq!(kid_of(&new), new_kid);
    assert_ne!(kid_of(&old), new_kid);
    assert!(
        is_valid(&s, &old).await,
        "tokens of the previous key stay valid"
    );
    assert!(is_valid(&s, &new).await);
    let (_, jwks) = get_json(&s, "/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new_kid.as_str(), kid_of(&old).as_str()],
        "current first, then the previous"
    );
}

#[tokio::test]
async fn retired_keys_leave_the_jwks_after_their_grace() {
    let dir = tempfile::tempdir().unwrap();
    let settings = authmux::config::Settings::new(dir.path());
    let store = settings.store().await.unwrap();
    store.migrate().await.unwrap();
    let master = settings.master_key().unwrap();
    let ring = authmux::tokens::Keyring::open(
        store,
        master,
        SigningAlg::Es256,
        Duration::from_millis(800),
    )
    .await
    .unwrap();
    let first = ring.signer().kid.clone();
    let second = ring.rotate().await.unwrap();
    assert!(ring.key(&first).is_some());
    assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        ring.key(&first).is_none(),
        "past its grace the old key verifies nothing"
    );
    let kids: Vec<Value> = ring.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, [json!(second)]);
}

#[tokio::test]
async fn rs256_deployments_sign_rs256() {
    let s = Server::start_with(Backend::Sqlite, |c| {
        c.tokens.signing_alg = SigningAlg::Rs256
    })
    .await
    .unwrap();
    let token = session_token(&s).await;
    use base64::Engine;
    let h: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(h["alg"], "RS256");
    assert!(is_valid(&s, &token).await);
    let (_, jwks) = get_json(&s, "/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
}

#[tokio::test]
async fn secrets_stay_out_of_the_database_and_logs() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let password = "hunter2-but-longer";
    let u = s
        .call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "secret@example.com", "password": password}),
        )
        .await
        .unwrap();
    let user = u["user_id"].as_str().unwrap();
    let up = s
        .call(
            Transport::Grpc,
            "auth.user.update",
            json!({"user_id": user, "mfa_enabled": true, "idempotency_key": "k1"}),
        )
        .await
        .unwrap();
    let totp_secret = up["mfa_enrollment"]["secret"].as_str().unwrap().to_owned();
    let session = s
        .call(
            Transport::Rest,
            "auth.session.create",
            json!({"user_id": user, "method": "sso", "idempotency_key": "k2",
                   "mfa_factor": crate::sessions::totp_now(&totp_secret).0}),
        )
        .await
        .unwrap();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let access = session["access_token"].as_str().unwrap().to_owned();
    // The GET form of verify carries the token in its path.
    let v = s
        .call(
            Transport::Rest,
            "auth.session.verify",
            json!({"session_id": access}),
        )
        .await
        .unwrap();
    assert_eq!(v["valid"], true);
    let _ = s
        .call(
            Transport::Rest,
            "auth.session.create",
            json!({"user_id": user, "method": "password", "password": "wrong-password"}),
        )
        .await;

    // The private half of the signing key, as the master key opens it.
    let signing_key = {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let db = Database::connect(&s.database_url).await.unwrap();
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT kid, private_key FROM signing_keys",
            ))
            .await
            .unwrap()
            .unwrap();
        let kid: String = row.try_get("", "kid").unwrap();
        let sealed: Vec<u8> = row.try_get("", "private_key").unwrap();
        let master = authmux::config::Settings::new(s.data_dir())
            .master_key()
            .unwrap();
        master
            .open(&sealed, format!("signing-key:{kid}").as_bytes())
            .unwrap()
    };
    let totp_bytes = totp_rs::Secret::Encoded(totp_secret.clone())
        .to_bytes()
        .unwrap();

    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(s.data_dir()), 0o700, "the data directory is private");
        assert_eq!(
            mode(&s.data_dir().join("authmux.db")),
            0o600,
            "so is the database"
        );
    }
    let mut stored = Vec::new();
    for file in ["authmux.db", "authmux.db-wal"] {
        stored.extend(std::fs::read(s.data_dir().join(file)).unwrap_or_default());
    }
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for (what, secret) in [
        ("password", password.as_bytes()),
        ("refresh token", refresh.as_bytes()),
        ("TOTP secret", totp_secret.as_bytes()),
        ("TOTP secret bytes", &totp_bytes[..]),
        ("signing key", &signing_key[..]),
        ("API key", s.key.as_bytes()),
        ("access token", access.as_bytes()),
    ] {
        assert!(!contains(&stored, secret), "{what} in the database file");
    }
    let logs = crate::logs::text();
    assert!(!logs.is_empty(), "logs were captured");
    assert!(
        logs.contains("/v1/auth/session/verify/<redacted>"),
        "the verify request was logged, redacted"
    );
    for (what, secret) in [
        ("password", password),
        ("refresh token", &refresh),
        ("TOTP secret", &totp_secret),
        ("API key", &s.key),
        ("access token", &access),
        ("wrong password", "wrong-password"),
    ] {
        assert!(!logs.contains(secret), "{what} in the logs");
    }
}

/// A JWKS server whose keys, availability and Cache-Control the test sets.
#[derive(Default)]
struct JwksServer {
    keys: Vec<Value>,
    down: bool,
    fetches: usize,
}

type Shared = Arc<Mutex<JwksServer>>;

async fn serve_jwks(State(state): State<Shared>) -> axum::response::Response {
    let mut st = state.lock().unwrap();
    st.fetches += 1;
    if st.down {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    (
        [("cache-control", "public, max-age=2")],
        axum::Json(json!({"keys": st.keys})),
    )
        .into_response()
}

struct Issuer {
    kid: String,
    private: keys::PrivateKey,
    jwk: Value,
}

fn issuer_key(alg: SigningAlg) -> Issuer {
    let g = keys::generate(alg).unwrap();
    let kid = g.jwk["kid"].as_str().unwrap().to_owned();
    Issuer {
        private: keys::private_key(&kid, alg, &g.pkcs8).unwrap(),
        kid,
        jwk: g.jwk,
    }
}

fn vendor_token(k: &Issuer, sub: &str) -> String {
    let mut h = jsonwebtoken::Header::new(k.private.alg.jwt());
    h.kid = Some(k.kid.clone());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "https://issuer.test", "sub": sub, "session_id": "sess-1", "exp": now + 300, "iat": now});
    jsonwebtoken::encode(&h, &claims, &k.private.encoding).unwrap()
}

#[tokio::test]
async fn jwks_client_caches_refetches_and_survives_outages() {
    let state: Shared = Arc::default();
    let rsa = issuer_key(SigningAlg::Rs256);
    let ec = issuer_key(SigningAlg::Es256);
    state.lock().unwrap().keys = vec![
        rsa.jwk.clone(),
        ec.jwk.clone(),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
    ];
    let app = axum::Router::new()
        .route("/jwks.json", axum::routing::get(serve_jwks))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let fetches = || state.lock().unwrap().fetches;

    let policy = Policy {
        min_ttl: Duration::from_millis(100),
        max_ttl: Duration::from_secs(60),
        default_ttl: Duration::from_secs(5),
        refetch_interval: Duration::from_secs(1),
    };
    let client = JwksClient::new(reqwest::Client::new(), policy);
    let expect = Expect {
        issuer: "https://issuer.test",
        audience: None,
        max_lifetime_secs: None,
        now_secs: authmux::clock::Clock::default().now_secs(),
    };

    // RS256 and ES256 tokens verify with the fetched keys; one fetch serves both.
    for k in [&rsa, &ec] {
        let token = vendor_token(k, "user_1");
        let head = verify::head(&token).unwrap();
        let key = client.key(&url, &head.kid, &[]).await.unwrap();
        assert_eq!(key.alg, head.alg);
        let c = verify::verify(&token, &key, &expect).unwrap();
        assert_eq!((c.sub.as_str(), c.session()), ("user_1", Some("sess-1")));
    }
    assert_eq!(fetches(), 1, "cached per Cache-Control");
    assert!(
        matches!(
            client.key(&url, "hmac", &[]).await,
            Err(JwksError::UnknownKey(_))
        ),
        "HMAC keys are never used"
    );

    // A token signed by one key cannot pass as the other.
    let token = vendor_token(&ec, "user_1");
    let rsa_key = client.key(&url, &rsa.kid, &[]).await.unwrap();
    assert_eq!(
        verify::verify(&token, &rsa_key, &expect).unwrap_err(),
        Invalid::UnsupportedAlg
    );

    // Rotation at the issuer: an unknown kid refetches, at most once per interval.
    let fresh = issuer_key(SigningAlg::Es256);
    state.lock().unwrap().keys = vec![ec.jwk.clone(), fresh.jwk.clone()];
    let before = fetches();
    assert!(
        client.key(&url, &fresh.kid, &[]).await.is_err(),
        "refetch limited: the last fetch was just now"
    );
    assert!(client.key(&url, "unknown", &[]).await.is_err());
    assert_eq!(fetches(), before, "no fetch within the interval");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let key = client.key(&url, &fresh.kid, &[]).await.unwrap();
    assert!(verify::verify(&vendor_token(&fresh, "user_2"), &key, &expect).is_ok());
    assert_eq!(fetches(), before + 1);
    for _ in 0..5 {
        assert!(client.key(&url, "still-unknown", &[]).await.is_err());
    }
    assert_eq!(
        fetches(),
        before + 1,
        "unknown kids don't hammer the issuer"
    );

    // The issuer goes down; cached keys keep working past their lifetime.
    state.lock().unwrap().down = true;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let key = client.key(&url, &ec.kid, &[]).await.unwrap();
    assert!(verify::verify(&vendor_token(&ec, "user_3"), &key, &expect).is_ok());
    assert!(fetches() > before + 1, "a refetch was tried");

    // With nothing cached, an outage is an error, not a panic.
    let cold = JwksClient::new(reqwest::Client::new(), policy);
    assert!(matches!(
        cold.key(&url, &ec.kid, &[]).await,
        Err(JwksError::Unavailable(_))
    ));
}

/// A JWKS fetched with one tenant's credentials is never served to another,
/// and an oversized JWKS is refused.
#[tokio::test]
async fn jwks_cache_is_per_credentials_and_bounded() {
    let alpha = issuer_key(SigningAlg::Es256);
    let beta = issuer_key(SigningAlg::Es256);
    let (alpha_jwk, beta_jwk) = (alpha.jwk.clone(), beta.jwk.clone());
    // Each tenant's credentials open its own key set.
    let app = axum::Router::new()
        .route(
            "/jwks.json",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let (a, b) = (alpha_jwk.clone(), beta_jwk.clone());
                async move {
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some("Bearer alpha") => axum::Json(json!({"keys": [a]})).into_response(),
                        Some("Bearer beta") => axum::Json(json!({"keys": [b]})).into_response(),
                        _ => axum::http::StatusCode::UNAUTHORIZED.into_response(),
                    }
                }
            }),
        )
        .route(
            "/huge.json",
            axum::routing::get(|| async {
                let filler = "x".repeat(300 * 1024);
                axum::Json(json!({"keys": [], "filler": filler}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = JwksClient::new(reqwest::Client::new(), Policy::default());
    let url = format!("{base}/jwks.json");
    let as_alpha = [("authorization", "Bearer alpha".to_owned())];
    let as_beta = [("authorization", "Bearer beta".to_owned())];
    client.key(&url, &alpha.kid, &as_alpha).await.unwrap();
    assert!(
        matches!(
            client.key(&url, &alpha.kid, &as_beta).await,
            Err(JwksError::UnknownKey(_))
        ),
        "beta's credentials do not open alpha's cached keys"
    );
    client.key(&url, &beta.kid, &as_beta).await.unwrap();
    assert!(matches!(
        client.key(&format!("{base}/huge.json"), "k", &[]).await,
        Err(JwksError::Unavailable(e)) if e.contains("bytes")
    ));
}
