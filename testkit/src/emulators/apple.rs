//! A Sign in with Apple server, from Apple's documentation:
//! - "Request an authorization to the Sign in with Apple server"
//!   (`GET /auth/authorize`): with `name`/`email` scopes the
//!   `response_mode` must be `form_post`; the answer is a page whose form
//!   POSTs `code`, `state` (and `user` on the first authorization) to the
//!   redirect URI.
//! - "Generate and validate tokens" (`POST /auth/token`): the client
//!   authenticates with `client_id` and a `client_secret` that is an ES256
//!   JWT ("Creating a client secret": header `kid`, claims `iss` = team id,
//!   `sub` = client id, `aud` = `https://appleid.apple.com`, `iat`, `exp` at
//!   most 15777000 s later), signed with the team's private key; errors are
//!   400 `{"error": "invalid_client" | "invalid_grant"}`.
//! - "Authenticating users with Sign in with Apple": ID tokens are RS256,
//!   keys at `GET /auth/keys`; `email_verified` and `is_private_email`
//!   come as strings (`"true"`).

// A vendor keeps its own (real) clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authmux::tokens::keys::{self, SigningAlg};
use authmux::tokens::verify::{Expect, verify_as};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "com.example.web";
pub const TEAM_ID: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY7890ABC";

/// The team's key as Apple hands it out (a `.p8` PEM) and its public half.
pub struct TeamKey {
    pub pem: String,
    jwk: Value,
}

impl TeamKey {
    pub fn new() -> Self {
        use base64::Engine;
        let g = keys::generate(SigningAlg::Es256).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&g.pkcs8)
        );
        TeamKey { pem, jwk: g.jwk }
    }
}

struct Inner {
    base: String,
    team_public: keys::PublicKey,
    signing: keys::PrivateKey,
    jwk: Value,
    /// code → (subject, email, nonce, redirect_uri)
    codes: HashMap<String, (String, String, Option<String>, String)>,
    account: (String, String),
    first: bool,
}

type Shared = Arc<Mutex<Inner>>;

#[derive(Deserialize)]
struct Authorize {
    client_id: String,
    redirect_uri: String,
    response_type: String,
    #[serde(default)]
    scope: String,
    response_mode: Option<String>,
    state: String,
    nonce: Option<String>,
}

async fn authorize(State(db): State<Shared>, Query(q): Query<Authorize>) -> Response {
    if q.client_id != CLIENT_ID || q.response_type != "code" {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let wants_user_info = q.scope.split(' ').any(|s| s == "name" || s == "email");
    if wants_user_info && q.response_mode.as_deref() != Some("form_post") {
        return (
            StatusCode::BAD_REQUEST,
            "response_mode must be form_post when name or email scope is requested",
        )
            .into_response();
    }
    let mut db = db.lock().unwrap();
    let code = format!("c{}", rand_hex());
    let (sub, email) = db.account.clone();
    db.codes.insert(
        code.clone(),
        (sub, email.clone(), q.nonce, q.redirect_uri.clone()),
    );
    let user = if std::mem::take(&mut db.first) {
        format!(
            r#"<input type="hidden" name="user" value='{{"email":"{email}","name":{{"firstName":"A","lastName":"B"}}}}'/>"#
        )
    } else {
        String::new()
    };
    Html(format!(
        r#"<html><body onload="document.forms[0].submit()"><form method="post" action="{}"><input type="hidden" name="code" value="{code}"/><input type="hidden" name="state" value="{}"/>{user}</form></body></html>"#,
        q.redirect_uri, q.state
    ))
    .into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    client_id: String,
    client_secret: String,
    code: String,
    grant_type: String,
    redirect_uri: Option<String>,
}

#[derive(Deserialize)]
struct SecretClaims {
    sub: String,
    iat: i64,
    exp: i64,
}

async fn token(State(db): State<Shared>, Form(f): Form<TokenRequest>) -> Response {
    let err = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    let mut db = db.lock().unwrap();
    if f.grant_type != "authorization_code" || f.client_id != CLIENT_ID {
        return err("invalid_client");
    }
    let head = authmux::tokens::verify::head(&f.client_secret);
    if head.as_ref().map(|h| h.kid.as_str()) != Ok(KEY_ID) {
        return err("invalid_client");
    }
    let claims: Result<SecretClaims, _> = verify_as(
        &f.client_secret,
        &db.team_public,
        &Expect {
            issuer: TEAM_ID,
            audience: Some("https://appleid.apple.com"),
            max_lifetime_secs: None,
            now_secs: authmux::clock::Clock::default().now_secs(),
        },
    );
    match claims {
        Ok(c) if c.sub == CLIENT_ID && c.exp - c.iat <= 15_777_000 => {}
        _ => return err("invalid_client"),
    }
    let Some((sub, email, nonce, redirect_uri)) = db.codes.remove(&f.code) else {
        return err("invalid_grant");
    };
    if f.redirect_uri.as_deref() != Some(redirect_uri.as_str()) {
        return err("invalid_grant");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "iss": db.base, "aud": CLIENT_ID, "exp": now + 600, "iat": now, "sub": sub,
        "email": email, "email_verified": "true", "is_private_email": "false",
        "auth_time": now,
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(db.signing.kid.clone());
    let id_token = jsonwebtoken::encode(&header, &claims, &db.signing.encoding).unwrap();
    db.first = false;
    Json(json!({
        "access_token": format!("a{}", rand_hex()), "token_type": "Bearer",
        "expires_in": 3600, "refresh_token": format!("r{}", rand_hex()), "id_token": id_token,
    }))
    .into_response()
}

async fn keys_doc(State(db): State<Shared>) -> Json<Value> {
    Json(json!({"keys": [db.lock().unwrap().jwk.clone()]}))
}

async fn discovery(State(db): State<Shared>) -> Json<Value> {
    let base = db.lock().unwrap().base.clone();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/auth/authorize"),
        "token_endpoint": format!("{base}/auth/token"),
        "jwks_uri": format!("{base}/auth/keys"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "name"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    }))
}

fn rand_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Starts the server for `team`'s key with one account `(sub, email)`;
/// its base URL (the issuer).
pub async fn start(team: &TeamKey, account: (&str, &str)) -> String {
    let g = keys::generate(SigningAlg::Rs256).unwrap();
    let kid = g.jwk["kid"].as_str().unwrap().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let db: Shared = Arc::new(Mutex::new(Inner {
        base: base.clone(),
        team_public: keys::public_key(&team.jwk).unwrap(),
        signing: keys::private_key(&kid, SigningAlg::Rs256, &g.pkcs8).unwrap(),
        jwk: g.jwk,
        codes: HashMap::new(),
        account: (account.0.to_owned(), account.1.to_owned()),
        first: true,
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/auth/authorize", get(authorize))
        .route("/auth/token", post(token))
        .route("/auth/keys", get(keys_doc))
        .with_state(db);
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    base
}
