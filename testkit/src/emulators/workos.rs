//! A WorkOS User Management emulator (`workos/open-api-spec.yaml`, with
//! NOTES.md §2 and §5): users (create 201, update by PUT, delete 200
//! without a body), TOTP auth factors and challenges,
//! `/user_management/authenticate` (password, magic-auth code, `mfa-totp`,
//! refresh token; `client_id` + API key as `client_secret`), magic auth,
//! session revoke, and an RS256 JWKS under `/sso/jwks/{client_id}`.
//!
//! Where each behaviour comes from:
//! - After a right password (or magic code) `authenticate` answers 403
//!   `email_verification_required` (email verification is on by default),
//!   `mfa_challenge` (the user has a factor; with
//!   `pending_authentication_token` and `authentication_factors`),
//!   `mfa_enrollment` (MFA required, none enrolled) or
//!   `organization_selection_required`: spec, `authenticate` 403 variants;
//!   NOTES.md §5.
//! - The `mfa-totp` grant takes `code`, `pending_authentication_token` and
//!   `authentication_challenge_id`; a wrong code is 400
//!   `invalid_one_time_code`: spec, `authenticate` request variants and 400
//!   codes.
//! - `POST /user_management/magic_auth` emails the code (counted here), and
//!   using it marks the email verified: WorkOS docs, Magic Auth; NOTES.md §5.
//! - Per-email limits a minute: 10 `/authenticate` requests and 3 Magic
//!   Auth codes, then 429: docs, /reference/rate-limits (see
//!   [`AUTHENTICATE_LIMIT`] and [`MAGIC_AUTH_LIMIT`]).
//! - Access tokens carry `iss` = `<base>/user_management/<client_id>`
//!   (`https://api.workos.com/user_management/<client_id>` live): NOTES.md §5.
//! - A breached password is refused on create and update with 400
//!   `password_strength_error` and its reasons in `errors`: spec, the
//!   users endpoints' 400; docs, AuthKit Email + Password (see
//!   `weak_password`).
//! - Revoking an unknown or ended session is 400 `{message}`: spec,
//!   `/user_management/sessions/revoke`.
//! - Lists (`auth_factors`, `sessions`) page with `limit` (1–100, default
//!   10), `order` and an `after` cursor in `list_metadata`; listed factors
//!   carry no secret; `identities` is a bare array; `sessions` holds the
//!   active ones with address, user agent and auth method: spec, those
//!   endpoints and `AuthenticationFactor`.

// A vendor keeps its own (real) clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authmux::tokens::keys::{self, SigningAlg};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use super::{Faults, Running, SharedFaults, inject, serve};

/// The API key the emulator accepts.
pub const API_KEY: &str = "sk_test_default";
/// The AuthKit client id it serves.
pub const CLIENT_ID: &str = "client_emulator";

#[derive(Clone)]
struct User {
    id: String,
    email: String,
    email_verified: bool,
    password: Option<String>,
    external_id: Option<String>,
    created_at: String,
}

struct SigningKey {
    kid: String,
    private: keys::PrivateKey,
    jwk: Value,
}

#[derive(Default)]
struct Db {
    users: HashMap<String, User>,
    /// factor id → (user id, base32 secret)
    factors: HashMap<String, (String, String)>,
    /// challenge id → factor id
    challenges: HashMap<String, String>,
    /// magic code → user id
    codes: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    /// Who is signing in, for the session the request being served opens
    /// (the lock is held for the whole request).
    origin: Origin,
    /// refresh token → (session id, used)
    refresh: HashMap<String, (String, bool)>,
    key: Option<SigningKey>,
    issuer: String,
    /// Sign-ins need a verified email (WorkOS's default).
    require_email_verification: bool,
    /// Sign-ins need an enrolled factor.
    require_mfa: bool,
    /// user id → organizations the user belongs to
    organizations: HashMap<String, usize>,
    /// pending authentication token → user id
    pending: HashMap<String, String>,
    /// Magic Auth emails sent.
    magic_emails: u32,
    /// How long `PUT /user_management/users/{id}` waits before it is
    /// handled, for tests that need a slow WorkOS.
    update_delay: Option<std::time::Duration>,
    /// `/user_management/authenticate` requests in the last minute, by
    /// email or challenge (see [`AUTHENTICATE_LIMIT`]).
    authenticate_hits: HashMap<String, Vec<std::time::Instant>>,
    /// Magic Auth codes made in the last minute, by email (see
    /// [`MAGIC_AUTH_LIMIT`]).
    magic_auth_hits: HashMap<String, Vec<std::time::Instant>>,
}

/// WorkOS's limit on `/user_management/authenticate`: 10 requests per 60
/// seconds per email or challenge ID (docs, /reference/rate-limits,
/// "Authentication"). The spec gives a 429's body as
/// `{error: "too_many_requests", error_description}`; the description's
/// words are the emulator's own. Whether WorkOS sends `Retry-After` is not
/// documented; the emulator does not.
pub const AUTHENTICATE_LIMIT: usize = 10;

/// WorkOS's limit on sending Magic Auth codes: 3 requests per 60 seconds
/// per email (docs, /reference/rate-limits, "Magic Auth", which names the
/// older `/user_management/magic_auth/send`). `POST
/// /user_management/magic_auth` sends the same email (spec: its
/// operationId `sendMagicAuthCodeAndReturn`, `x-sends-email: true`), so
/// the emulator counts it. The spec's one 429 body for that endpoint is
/// `{code: "daily_quota_exceeded", message}`, with the message its
/// example's; no `Retry-After` is documented and the emulator sends none.
pub const MAGIC_AUTH_LIMIT: usize = 3;

/// Counts a request under a per-email (or per-challenge) limit of
/// `limit` requests per 60 seconds; false, and not counted, when `key`
/// has reached it.
fn within_minute_limit(
    hits: &mut HashMap<String, Vec<std::time::Instant>>,
    key: String,
    limit: usize,
) -> bool {
    let at = std::time::Instant::now();
    let hits = hits.entry(key).or_default();
    hits.retain(|t| at.duration_since(*t) < std::time::Duration::from_secs(60));
    if hits.len() >= limit {
        return false;
    }
    hits.push(at);
    true
}

type Shared = Arc<Mutex<Db>>;

#[derive(Clone, Default)]
struct Origin {
    ip_address: Option<String>,
    user_agent: Option<String>,
    auth_method: &'static str,
}

#[derive(Clone)]
struct Session {
    user_id: String,
    revoked: bool,
    origin: Origin,
    created_at: String,
}

/// A session object (spec, `GET /user_management/users/{id}/sessions`).
fn session_json(id: &str, s: &Session) -> Value {
    json!({
        "object": "session", "id": id, "user_id": s.user_id,
        "ip_address": s.origin.ip_address, "user_agent": s.origin.user_agent,
        "auth_method": s.origin.auth_method,
        "status": if s.revoked { "revoked" } else { "active" },
        "expires_at": null, "ended_at": null,
        "created_at": s.created_at, "updated_at": s.created_at,
    })
}

/// Handle on the emulator's sessions, for tests.
#[derive(Clone)]
pub struct Handle(Shared);

impl Handle {
    /// Whether a session was revoked.
    pub fn session_revoked(&self, id: &str) -> Option<bool> {
        self.0.lock().unwrap().sessions.get(id).map(|s| s.revoked)
    }

    /// Gives the user with this email `n` more active sessions, as if
    /// signed in elsewhere.
    pub fn seed_sessions(&self, email: &str, n: usize) {
        let mut db = self.0.lock().unwrap();
        let Some(uid) = db
            .users
            .values()
            .find(|u| u.email == email)
            .map(|u| u.id.clone())
        else {
            return;
        };
        for _ in 0..n {
            let s = Session {
                user_id: uid.clone(),
                revoked: false,
                origin: Origin {
                    auth_method: "password",
                    ..Origin::default()
                },
                created_at: now(),
            };
            db.sessions.insert(id("session"), s);
        }
    }

    /// Lets a minute pass for the per-email limits of `/authenticate`
    /// ([`AUTHENTICATE_LIMIT`]) and Magic Auth ([`MAGIC_AUTH_LIMIT`]): the
    /// requests counted so far no longer count, as once WorkOS's 60-second
    /// windows have moved on.
    pub fn a_minute_passes(&self) {
        let mut db = self.0.lock().unwrap();
        db.authenticate_hits.clear();
        db.magic_auth_hits.clear();
    }

    /// Turns the environment's MFA requirement on or off.
    pub fn require_mfa(&self, on: bool) {
        self.0.lock().unwrap().require_mfa = on;
    }

    /// Puts the user with this email in `n` organizations.
    pub fn set_organizations(&self, email: &str, n: usize) {
        let mut db = self.0.lock().unwrap();
        let uid = db
            .users
            .values()
            .find(|u| u.email == email)
            .unwrap()
            .id
            .clone();
        db.organizations.insert(uid, n);
    }

    /// Makes every user update wait `delay` before it is handled (none
    /// with `None`): a slow WorkOS.
    pub fn delay_user_updates(&self, delay: Option<std::time::Duration>) {
        self.0.lock().unwrap().update_delay = delay;
    }

    /// Magic Auth emails sent so far.
    pub fn magic_emails(&self) -> u32 {
        self.0.lock().unwrap().magic_emails
    }

    /// Whether the user with this email is verified.
    pub fn email_verified(&self, email: &str) -> bool {
        let db = self.0.lock().unwrap();
        db.users
            .values()
            .any(|u| u.email == email && u.email_verified)
    }

    /// How many factors the user with this email has.
    pub fn factors_of(&self, email: &str) -> usize {
        let db = self.0.lock().unwrap();
        let Some(u) = db.users.values().find(|u| u.email == email) else {
            return 0;
        };
        db.factors
            .values()
            .filter(|(owner, _)| *owner == u.id)
            .count()
    }

    /// Whether a session is live.
    pub fn live_sessions_of(&self, email: &str) -> usize {
        let db = self.0.lock().unwrap();
        let Some(u) = db.users.values().find(|u| u.email == email) else {
            return 0;
        };
        db.sessions
            .values()
            .filter(|s| s.user_id == u.id && !s.revoked)
            .count()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn id(prefix: &str) -> String {
    let suffix = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    format!("{prefix}_{suffix}")
}

/// WorkOS's error body.
pub fn errors(_status: u16, code: &str, message: &str) -> Json<Value> {
    Json(json!({"code": code, "message": message}))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, errors(status.as_u16(), code, message)).into_response()
}

/// The password strength policy's refusal, on create and update alike:
/// 400 `password_strength_error`, "Validation failed.", with the reasons
/// in `errors` (spec, `UserlandUsersController_create` and `_update` 400).
/// The policy rejects breached passwords by default (docs, AuthKit
/// "Email + Password"). The spec gives each reason's shape (`code`,
/// `message`) but not its words; this reason's are the emulator's own.
fn weak_password(password: &str) -> Option<Response> {
    super::breached(password).then(|| {
        (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": "password_strength_error", "message": "Validation failed.",
                        "errors": [{"code": "password_breached",
                                    "message": "This password has appeared in a data breach."}]}),
            ),
        )
            .into_response()
    })
}

fn not_found(what: &str, id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": format!("{what} not found: '{id}'.")})),
    )
        .into_response()
}

fn user_json(u: &User) -> Value {
    json!({
        "object": "user", "id": u.id, "email": u.email, "email_verified": u.email_verified,
        "first_name": null, "last_name": null, "name": null, "profile_picture_url": null,
        "external_id": u.external_id, "metadata": {}, "last_sign_in_at": null, "locale": null,
        "created_at": u.created_at, "updated_at": now(),
    })
}

fn header(req: &Request, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn bearer(req: Request, next: Next) -> Response {
    if header(&req, "authorization") != format!("Bearer {API_KEY}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        )
            .into_response();
    }
    next.run(req).await
}

async fn create_user(State(db): State<Shared>, Json(b): Json<Value>) -> Response {
    let Some(email) = b["email"].as_str().map(str::to_lowercase) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_parameters",
            "email is required",
        );
    };
    if let Some(refused) = b["password"].as_str().and_then(weak_password) {
        return refused;
    }
    let mut db = db.lock().unwrap();
    if db.users.values().any(|u| u.email == email) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "user_creation_error", "message": "Could not create user.",
                        "errors": [{"code": "email_not_available", "message": "This email is not available."}]})),
        )
            .into_response();
    }
    let u = User {
        id: id("user"),
        email,
        email_verified: b["email_verified"] == true,
        password: b["password"].as_str().map(str::to_owned),
        external_id: b["external_id"].as_str().map(str::to_owned),
        created_at: now(),
    };
    let out = user_json(&u);
    db.users.insert(u.id.clone(), u);
    (StatusCode::CREATED, Json(out)).into_response()
}

async fn list_users(State(db): State<Shared>, req: Request) -> Response {
    let email = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "email")
        .map(|(_, v)| v.to_lowercase());
    let db = db.lock().unwrap();
    let data: Vec<Value> = db
        .users
        .values()
        .filter(|u| email.as_ref().is_none_or(|e| u.email == *e))
        .map(user_json)
        .collect();
    Json(json!({"object": "list", "data": data, "list_metadata": {"before": null, "after": null}}))
        .into_response()
}

async fn get_user(State(db): State<Shared>, Path(uid): Path<String>) -> Response {
    match db.lock().unwrap().users.get(&uid) {
        Some(u) => Json(user_json(u)).into_response(),
        None => not_found("User", &uid),
    }
}

async fn update_user(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let delay = db.lock().unwrap().update_delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut db = db.lock().unwrap();
    let Some(u) = db.users.get_mut(&uid) else {
        return not_found("User", &uid);
    };
    if let Some(refused) = b["password"].as_str().and_then(weak_password) {
        return refused;
    }
    if let Some(v) = b["email_verified"].as_bool() {
        u.email_verified = v;
    }
    if let Some(p) = b["password"].as_str() {
        u.password = Some(p.to_owned());
    }
    Json(user_json(u)).into_response()
}

async fn delete_user(State(db): State<Shared>, Path(uid): Path<String>) -> Response {
    let mut db = db.lock().unwrap();
    match db.users.remove(&uid) {
        Some(_) => {
            // What belongs to the user goes with it: its factors, and its
            // Magic Auth codes and pending sign-ins (each names its
            // `user_id` in the spec), which can no longer sign anyone in.
            db.factors.retain(|_, (u, _)| *u != uid);
            db.codes.retain(|_, u| *u != uid);
            db.pending.retain(|_, u| *u != uid);
            StatusCode::OK.into_response()
        }
        None => not_found("User", &uid),
    }
}

fn factor_json(id: &str, user: &str, secret: &str, email: &str) -> Value {
    json!({
        "object": "authentication_factor", "id": id, "type": "totp", "user_id": user,
        "totp": {"issuer": "authmux", "user": email, "secret": secret,
                 "uri": format!("otpauth://totp/authmux:{email}?secret={secret}&issuer=authmux"),
                 "qr_code": "data:image/png;base64,"},
        "created_at": now(), "updated_at": now(),
    })
}

/// One page of a WorkOS list (spec, the `before`/`after`/`limit`/`order`
/// parameters shared by list endpoints): `limit` 1 to 100 (default 10, else
/// 422), `order` `asc` by creation or else newest first, `after` the id to
/// continue from; `list_metadata.after` names the last item when more
/// follow, `null` at the end. `before` is not emulated (authmux pages
/// forward only).
fn page(mut items: Vec<(String, Value)>, query: &str) -> Response {
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let limit = match param("limit").map(|l| l.parse::<usize>()) {
        None => 10,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_parameters",
                "limit must be between 1 and 100",
            );
        }
    };
    // Ids are time-ordered, so their order is the creation order.
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if param("order").as_deref() != Some("asc") {
        items.reverse();
    }
    let start = match param("after") {
        None => 0,
        Some(after) => items
            .iter()
            .position(|(id, _)| *id == after)
            .map_or(items.len(), |i| i + 1),
    };
    let rest = &items[start.min(items.len())..];
    let data: Vec<Value> = rest.iter().take(limit).map(|(_, v)| v.clone()).collect();
    let after = (rest.len() > limit).then(|| rest[limit - 1].0.clone());
    let before = (start > 0)
        .then(|| rest.first().map(|(id, _)| id.clone()))
        .flatten();
    Json(json!({"object": "list", "data": data,
                "list_metadata": {"before": before, "after": after}}))
    .into_response()
}

/// Listed factors carry `totp.issuer` and `totp.user` only: the secret,
/// its URI and QR code come once, in the enrolment reply (spec,
/// `AuthenticationFactor` against the enrolment response).
async fn list_factors(State(db): State<Shared>, Path(uid): Path<String>, req: Request) -> Response {
    let db = db.lock().unwrap();
    let Some(u) = db.users.get(&uid) else {
        return not_found("User", &uid);
    };
    let items = db
        .factors
        .iter()
        .filter(|(_, (owner, _))| *owner == uid)
        .map(|(fid, (_, secret))| {
            let mut f = factor_json(fid, &uid, secret, &u.email);
            f["totp"] = json!({"issuer": f["totp"]["issuer"], "user": f["totp"]["user"]});
            (fid.clone(), f)
        })
        .collect();
    page(items, req.uri().query().unwrap_or(""))
}

/// `GET /user_management/users/{id}/sessions`: the user's active sessions
/// (spec, "a list of all active sessions for a specific user").
async fn list_sessions(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    req: Request,
) -> Response {
    let db = db.lock().unwrap();
    if !db.users.contains_key(&uid) {
        return not_found("User", &uid);
    }
    let items = db
        .sessions
        .iter()
        .filter(|(_, s)| s.user_id == uid && !s.revoked)
        .map(|(sid, s)| (sid.clone(), session_json(sid, s)))
        .collect();
    page(items, req.uri().query().unwrap_or(""))
}

/// `GET /user_management/users/{id}/identities`: a bare array of the
/// user's OAuth identities (spec). The emulator links none.
async fn list_identities(State(db): State<Shared>, Path(uid): Path<String>) -> Response {
    match db.lock().unwrap().users.contains_key(&uid) {
        true => Json(json!([])).into_response(),
        false => not_found("User", &uid),
    }
}

async fn enroll_factor(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    let Some(u) = db.users.get(&uid).cloned() else {
        return not_found("User", &uid);
    };
    if b["type"] != "totp" {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_parameters",
            "type must be totp",
        );
    }
    let secret = totp_rs::Secret::generate_secret().to_encoded().to_string();
    let fid = id("auth_factor");
    db.factors
        .insert(fid.clone(), (uid.clone(), secret.clone()));
    let cid = id("auth_challenge");
    db.challenges.insert(cid.clone(), fid.clone());
    (
        StatusCode::CREATED,
        Json(json!({
            "authentication_factor": factor_json(&fid, &uid, &secret, &u.email),
            "authentication_challenge": {"object": "authentication_challenge", "id": cid,
                                         "authentication_factor_id": fid, "expires_at": null},
        })),
    )
        .into_response()
}

async fn challenge(State(db): State<Shared>, Path(fid): Path<String>) -> Response {
    let mut db = db.lock().unwrap();
    if !db.factors.contains_key(&fid) {
        return not_found("Authentication Factor", &fid);
    }
    let cid = id("auth_challenge");
    db.challenges.insert(cid.clone(), fid.clone());
    (
        StatusCode::CREATED,
        Json(
            json!({"object": "authentication_challenge", "id": cid, "authentication_factor_id": fid,
                    "expires_at": null, "created_at": now(), "updated_at": now()}),
        ),
    )
        .into_response()
}

async fn verify_challenge(
    State(db): State<Shared>,
    Path(cid): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    let Some(fid) = db.challenges.remove(&cid) else {
        return not_found("Authentication Challenge", &cid);
    };
    let Some((_, secret)) = db.factors.get(&fid) else {
        return not_found("Authentication Factor", &fid);
    };
    let valid = totp_ok(secret, b["code"].as_str().unwrap_or(""));
    Json(json!({"challenge": {"object": "authentication_challenge", "id": cid}, "valid": valid}))
        .into_response()
}

async fn delete_factor(State(db): State<Shared>, Path(fid): Path<String>) -> Response {
    match db.lock().unwrap().factors.remove(&fid) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found("Authentication Factor", &fid),
    }
}

/// `POST /user_management/magic_auth`. An email no user has signs a new
/// user up: the code is created for a user made then, with no external id
/// (spec: the 400 `sign_up_not_allowed` for environments that turn sign-up
/// off, and `MagicAuth.user_id` on every reply; workos/emulate
/// `routes/magic-auth.ts`: "production creates the user at code-creation
/// time").
async fn magic_auth(State(db): State<Shared>, Json(b): Json<Value>) -> Response {
    let mut db = db.lock().unwrap();
    let email = b["email"].as_str().unwrap_or("").to_lowercase();
    if !email.contains('@') {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "email is required",
        );
    }
    if !within_minute_limit(&mut db.magic_auth_hits, email.clone(), MAGIC_AUTH_LIMIT) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "code": "daily_quota_exceeded",
                "message": "Request could not be processed.",
            })),
        )
            .into_response();
    }
    let found = db.users.values().find(|u| u.email == email).cloned();
    let u = found.unwrap_or_else(|| {
        let u = User {
            id: id("user"),
            email: email.clone(),
            email_verified: false,
            password: None,
            external_id: None,
            created_at: now(),
        };
        db.users.insert(u.id.clone(), u.clone());
        u
    });
    let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
    db.codes.insert(code.clone(), u.id.clone());
    // WorkOS emails the code unless the operator turned that off.
    db.magic_emails += 1;
    (
        StatusCode::CREATED,
        Json(json!({"object": "magic_auth", "id": id("magic_auth"), "user_id": u.id, "email": u.email,
                    "code": code, "expires_at": now(), "created_at": now(), "updated_at": now()})),
    )
        .into_response()
}

fn issue(db: &mut Db, user_id: &str, session_id: Option<String>) -> Value {
    let sid = session_id.unwrap_or_else(|| id("session"));
    let session = Session {
        user_id: user_id.to_owned(),
        revoked: false,
        origin: db.origin.clone(),
        created_at: now(),
    };
    db.sessions.entry(sid.clone()).or_insert(session);
    let refresh = authmux::crypto::random_token(24);
    db.refresh.insert(refresh.clone(), (sid.clone(), false));
    let key = db.key.as_ref().unwrap();
    let now_s = chrono::Utc::now().timestamp();
    let claims = json!({"iss": db.issuer, "sub": user_id, "sid": sid, "jti": id("jti"),
                        "exp": now_s + 300, "iat": now_s, "aud": CLIENT_ID});
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(key.kid.clone());
    let access = jsonwebtoken::encode(&h, &claims, &key.private.encoding).unwrap();
    let user = db.users.get(user_id).map(user_json);
    json!({"user": user, "organization_id": null, "access_token": access, "refresh_token": refresh,
           "authentication_method": "Password", "impersonator": null})
}

async fn authenticate(State(db): State<Shared>, Json(b): Json<Value>) -> Response {
    if b["client_id"] != CLIENT_ID || b["client_secret"] != API_KEY {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Invalid client ID or secret."})),
        )
            .into_response();
    }
    let mut db = db.lock().unwrap();
    let email = b["email"].as_str().unwrap_or("").to_lowercase();
    let grant = b["grant_type"].as_str().unwrap_or("");
    // Counted by challenge or email; a refresh grant carries neither.
    let counted = [
        "authentication_challenge_id",
        "pending_authentication_token",
    ]
    .iter()
    .find_map(|k| b[*k].as_str())
    .unwrap_or(&email)
    .to_owned();
    if !counted.is_empty()
        && !within_minute_limit(&mut db.authenticate_hits, counted, AUTHENTICATE_LIMIT)
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "error": "too_many_requests",
                "error_description": "Too many authentication attempts; try again later.",
            })),
        )
            .into_response();
    }
    db.origin = Origin {
        ip_address: b["ip_address"].as_str().map(str::to_owned),
        user_agent: b["user_agent"].as_str().map(str::to_owned),
        auth_method: if grant.ends_with("magic-auth:code") {
            "magic_code"
        } else {
            "password"
        },
    };
    match grant {
        "password" => {
            let found = db
                .users
                .values()
                .find(|u| u.email == email && u.password.as_deref() == b["password"].as_str())
                .map(|u| u.id.clone());
            match found {
                Some(uid) => signed_in(&mut db, &uid),
                None => error(
                    StatusCode::BAD_REQUEST,
                    "invalid_credentials",
                    "Invalid credentials.",
                ),
            }
        }
        "urn:workos:oauth:grant-type:magic-auth:code" => {
            let code = b["code"].as_str().unwrap_or("");
            match db.codes.remove(code) {
                Some(uid) => {
                    // The code proves the address.
                    if let Some(u) = db.users.get_mut(&uid) {
                        u.email_verified = true;
                    }
                    signed_in(&mut db, &uid)
                }
                None => error(
                    StatusCode::BAD_REQUEST,
                    "invalid_one_time_code",
                    "Invalid one-time code.",
                ),
            }
        }
        "urn:workos:oauth:grant-type:mfa-totp" => {
            let token = b["pending_authentication_token"].as_str().unwrap_or("");
            let Some(uid) = db.pending.get(token).cloned() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_pending_authentication_token",
                    "Invalid pending authentication token.",
                );
            };
            let cid = b["authentication_challenge_id"].as_str().unwrap_or("");
            let Some(fid) = db.challenges.remove(cid) else {
                return not_found("Authentication Challenge", cid);
            };
            let Some((owner, secret)) = db.factors.get(&fid).cloned() else {
                return not_found("Authentication Factor", &fid);
            };
            if owner != uid || !totp_ok(&secret, b["code"].as_str().unwrap_or("")) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_one_time_code",
                    "Invalid one-time code.",
                );
            }
            db.pending.remove(token);
            match organization_gate(&mut db, &uid) {
                Some(refused) => refused,
                None => Json(issue(&mut db, &uid, None)).into_response(),
            }
        }
        "refresh_token" => {
            let token = b["refresh_token"].as_str().unwrap_or("").to_owned();
            let Some((sid, used)) = db.refresh.get(&token).cloned() else {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "Invalid refresh token."}))).into_response();
            };
            let Some(Session {
                user_id: uid,
                revoked,
                ..
            }) = db.sessions.get(&sid).cloned()
            else {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "Session not found."}))).into_response();
            };
            if used || revoked {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "Refresh token already exchanged."}))).into_response();
            }
            db.refresh.insert(token, (sid.clone(), true));
            Json(issue(&mut db, &uid, Some(sid))).into_response()
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_parameters",
            "unsupported grant_type",
        ),
    }
}

async fn revoke(State(db): State<Shared>, Json(b): Json<Value>) -> Response {
    let mut db = db.lock().unwrap();
    let sid = b["session_id"].as_str().unwrap_or("").to_owned();
    match db.sessions.get_mut(&sid) {
        Some(s) if !s.revoked => {
            s.revoked = true;
            StatusCode::OK.into_response()
        }
        // The spec's only refusal here is 400 `{message}`.
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": format!("Session not found or already revoked: '{sid}'.")})),
        )
            .into_response(),
    }
}

fn totp_ok(secret: &str, code: &str) -> bool {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    let totp =
        totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).unwrap();
    totp.check_current(code).unwrap_or(false)
}

fn pending_token(db: &mut Db, uid: &str) -> String {
    let token = authmux::crypto::random_token(24);
    db.pending.insert(token.clone(), uid.to_owned());
    token
}

fn forbidden(code: &str, extra: Value) -> Response {
    let mut body = json!({"code": code, "message": "Request could not be processed."});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

fn organization_gate(db: &mut Db, uid: &str) -> Option<Response> {
    let n = db.organizations.get(uid).copied().unwrap_or(0);
    (n > 1).then(|| {
        let token = pending_token(db, uid);
        let orgs: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("org_{i}"), "name": format!("Org {i}")}))
            .collect();
        forbidden(
            "organization_selection_required",
            json!({"pending_authentication_token": token, "organizations": orgs}),
        )
    })
}

/// What follows a right first factor: the environment's and the user's
/// requirements in turn, then the session.
fn signed_in(db: &mut Db, uid: &str) -> Response {
    let user = db.users.get(uid).cloned().unwrap();
    if db.require_email_verification && !user.email_verified {
        let token = pending_token(db, uid);
        return forbidden(
            "email_verification_required",
            json!({"pending_authentication_token": token, "email": user.email,
                   "email_verification_id": id("email_verification")}),
        );
    }
    let factors: Vec<Value> = db
        .factors
        .iter()
        .filter(|(_, (owner, _))| owner == uid)
        .map(|(fid, _)| json!({"id": fid, "type": "totp"}))
        .collect();
    if !factors.is_empty() {
        let token = pending_token(db, uid);
        return forbidden(
            "mfa_challenge",
            json!({"pending_authentication_token": token, "authentication_factors": factors,
                   "user": user_json(&user)}),
        );
    }
    if db.require_mfa {
        let token = pending_token(db, uid);
        return forbidden(
            "mfa_enrollment",
            json!({"pending_authentication_token": token, "user": user_json(&user)}),
        );
    }
    match organization_gate(db, uid) {
        Some(refused) => refused,
        None => Json(issue(db, uid, None)).into_response(),
    }
}

async fn jwks(State(db): State<Shared>, Path(client): Path<String>) -> Response {
    let db = db.lock().unwrap();
    if client != CLIENT_ID {
        return not_found("Client", &client);
    }
    Json(json!({"keys": [db.key.as_ref().unwrap().jwk.clone()]})).into_response()
}

/// Starts an emulator; its base URL has no path.
pub async fn start() -> (Running, Handle) {
    let db: Shared = Arc::default();
    db.lock().unwrap().require_email_verification = true;
    {
        let g = keys::generate(SigningAlg::Rs256).unwrap();
        let kid = g.jwk["kid"].as_str().unwrap().to_owned();
        db.lock().unwrap().key = Some(SigningKey {
            private: keys::private_key(&kid, SigningAlg::Rs256, &g.pkcs8).unwrap(),
            kid,
            jwk: g.jwk,
        });
    }
    let faults: SharedFaults = Arc::new(Mutex::new(Faults::default()));
    let authed = axum::Router::new()
        .route("/user_management/users", post(create_user).get(list_users))
        .route(
            "/user_management/users/{id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route(
            "/user_management/users/{id}/auth_factors",
            get(list_factors).post(enroll_factor),
        )
        .route("/user_management/users/{id}/sessions", get(list_sessions))
        .route(
            "/user_management/users/{id}/identities",
            get(list_identities),
        )
        .route("/auth/factors/{id}/challenge", post(challenge))
        .route("/auth/factors/{id}", delete(delete_factor))
        .route("/auth/challenges/{id}/verify", post(verify_challenge))
        .route("/user_management/magic_auth", post(magic_auth))
        .route("/user_management/sessions/revoke", post(revoke))
        .layer(from_fn(bearer));
    let app = authed
        .route("/user_management/authenticate", post(authenticate))
        .route("/sso/jwks/{client_id}", get(jwks))
        .with_state(db.clone())
        .layer(from_fn_with_state(faults.clone(), |s, r, n| {
            inject(s, r, n, errors)
        }));
    let running = serve(
        |base| {
            db.lock().unwrap().issuer = format!("{base}/user_management/{CLIENT_ID}");
            app
        },
        "",
        faults,
    )
    .await;
    (running, Handle(db))
}
