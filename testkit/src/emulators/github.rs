//! A GitHub-shaped OAuth 2.0 server for the non-OIDC path, from GitHub's
//! docs "Authorizing OAuth apps" (docs.github.com/en/apps/oauth-apps/
//! building-oauth-apps/authorizing-oauth-apps) and the REST pages for
//! `GET /user` and `GET /user/emails`:
//! - `GET /login/oauth/authorize` (client_id, redirect_uri, state, scope,
//!   code_challenge + code_challenge_method=S256) redirects back with
//!   `code` and `state`; here the signed-in account is set by the test.
//! - `POST /login/oauth/access_token` (form: client_id, client_secret,
//!   code, redirect_uri, code_verifier) answers JSON when asked with
//!   `Accept: application/json`; a bad code is **200** with
//!   `{"error": "bad_verification_code"}`, as GitHub does. Codes are single
//!   use and expire after 10 minutes.
//! - `GET /user` → `{id, login}`; `GET /user/emails` → `[{email, primary,
//!   verified, visibility}]`, 404 without the `user:email` scope.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;

pub const CLIENT_ID: &str = "Iv1.emulator";
pub const CLIENT_SECRET: &str = "github-emulator-secret";

/// A GitHub account.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: u64,
    pub login: String,
    /// (email, primary, verified)
    pub emails: Vec<(String, bool, bool)>,
}

#[derive(Default)]
struct Inner {
    signed_in: Option<Account>,
    codes: HashMap<String, (Account, String, Option<String>, String)>,
    tokens: HashMap<String, (Account, String)>,
}

/// The emulator's handle.
#[derive(Clone, Default)]
pub struct Github {
    inner: Arc<Mutex<Inner>>,
}

impl Github {
    /// The account the next authorization signs in.
    pub fn sign_in_as(&self, account: Account) {
        self.inner.lock().unwrap().signed_in = Some(account);
    }
}

#[derive(Deserialize)]
struct Authorize {
    client_id: String,
    redirect_uri: String,
    state: String,
    #[serde(default)]
    scope: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(State(g): State<Github>, Query(q): Query<Authorize>) -> Response {
    if q.client_id != CLIENT_ID {
        return (StatusCode::NOT_FOUND, "unknown client").into_response();
    }
    if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
        return (StatusCode::BAD_REQUEST, "unsupported code_challenge_method").into_response();
    }
    let mut inner = g.inner.lock().unwrap();
    let Some(account) = inner.signed_in.clone() else {
        return Redirect::to(&format!(
            "{}?error=access_denied&state={}",
            q.redirect_uri, q.state
        ))
        .into_response();
    };
    let code = format!("gh_{}", uuid_like());
    inner.codes.insert(
        code.clone(),
        (account, q.redirect_uri.clone(), q.code_challenge, q.scope),
    );
    Redirect::to(&format!("{}?code={code}&state={}", q.redirect_uri, q.state)).into_response()
}

#[derive(Deserialize)]
struct Exchange {
    client_id: String,
    client_secret: String,
    code: String,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

async fn access_token(
    State(g): State<Github>,
    headers: HeaderMap,
    Form(f): Form<Exchange>,
) -> Response {
    let json_wanted = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    assert!(json_wanted, "authmux asks for JSON");
    let error = |e: &str| Json(json!({"error": e, "error_description": e})).into_response();
    if f.client_id != CLIENT_ID || f.client_secret != CLIENT_SECRET {
        return error("incorrect_client_credentials");
    }
    let mut inner = g.inner.lock().unwrap();
    let Some((account, redirect_uri, challenge, scope)) = inner.codes.remove(&f.code) else {
        return error("bad_verification_code");
    };
    if f.redirect_uri.as_deref().is_some_and(|r| r != redirect_uri) {
        return error("redirect_uri_mismatch");
    }
    if let Some(challenge) = challenge {
        let verifier = f.code_verifier.unwrap_or_default();
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        if computed != challenge {
            return error("bad_verification_code");
        }
    }
    let token = format!("gho_{}", uuid_like());
    inner.tokens.insert(token.clone(), (account, scope.clone()));
    Json(json!({"access_token": token, "token_type": "bearer", "scope": scope})).into_response()
}

fn bearer(g: &Github, headers: &HeaderMap) -> Option<(Account, String)> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))?;
    g.inner.lock().unwrap().tokens.get(token).cloned()
}

async fn user(State(g): State<Github>, headers: HeaderMap) -> Response {
    match bearer(&g, &headers) {
        Some((a, _)) => Json(json!({"id": a.id, "login": a.login})).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Requires authentication"})),
        )
            .into_response(),
    }
}

async fn emails(State(g): State<Github>, headers: HeaderMap) -> Response {
    match bearer(&g, &headers) {
        Some((a, scope)) if scope.split([' ', ',']).any(|s| s == "user:email" || s == "user") => {
            Json(
                a.emails
                    .iter()
                    .map(|(e, p, v)| {
                        json!({"email": e, "primary": p, "verified": v, "visibility": null})
                    })
                    .collect::<Vec<_>>(),
            )
            .into_response()
        }
        Some(_) => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Requires authentication"})),
        )
            .into_response(),
    }
}

fn uuid_like() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Starts the emulator on loopback: its base URL and handle.
pub async fn start() -> (String, Github) {
    let g = Github::default();
    let app = Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(access_token))
        .route("/user", get(user))
        .route("/user/emails", get(emails))
        .with_state(g.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (base, g)
}
