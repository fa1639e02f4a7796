//! A Clerk Backend API emulator (`bapi/2026-05-12.yml`): the user,
//! email-address, metadata and verification endpoints authmux calls, with
//! Clerk's required headers, status codes, shapes and `ClerkErrors` bodies.
//!
//! Where each behaviour comes from (NOTES.md §5):
//! - `POST /sessions` is "intended only for use in testing, and is not
//!   available for production instances": refused (400) for `sk_live_`
//!   keys (spec, CreateSession).
//! - Session tokens carry the Frontend API URL as `iss`, listed by
//!   `GET /domains` as `frontend_api_url` (docs, session tokens; spec,
//!   ListDomains).
//! - `POST /users` makes addresses verified unless
//!   `email_address_identification_status` says `reserved` (spec,
//!   CreateUser). `PATCH /email_addresses/{id}` documents only marking an
//!   address verified, so `verified: false` is refused; an address goes
//!   back to unverified through `PUT /users/{id}/email_address` with
//!   `identification_status: reserved`, which replaces it (spec,
//!   ReplaceUserEmailAddress).
//! - Public, private and unsafe metadata together may hold 8 KB (docs,
//!   user metadata); `PUT /users/{id}/metadata` replaces the fields it is
//!   given (spec, UpdateUser note for 2026-05-12).
//! - A new password is refused over 72 bytes (bcrypt), and unless
//!   `skip_password_checks` is set, under 8 characters or when it is in a
//!   list of breached passwords (spec, CreateUser and UpdateUser
//!   `password`; see `password_refusal`).
//! - Revoking a session that is not active is 400 (NOTES.md §5).
//! - `GET /sessions?user_id=` answers a bare array, newest first, paged by
//!   `limit` (1–500, default 10) and `offset` (spec, GetSessionList).

// A vendor keeps its own (real) clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde_json::{Map, Value, json};

use super::{Faults, Running, SharedFaults, inject, serve};

/// The secret key the emulator accepts.
pub const SECRET_KEY: &str = "sk_test_emulator";
/// A production instance's key: accepted, but `POST /sessions` is refused.
pub const LIVE_SECRET_KEY: &str = "sk_live_emulator";
/// The instance's Frontend API URL (the `iss` of its session tokens): one
/// per emulator, named after its port, never fetched.
fn frontend_api_url(base: &str) -> String {
    let port = base
        .rsplit(':')
        .next()
        .unwrap_or("")
        .trim_end_matches("/v1");
    format!("https://clerk-{port}.emulator.authmux.test")
}
/// Public, private and unsafe metadata together, at most.
pub const METADATA_LIMIT: usize = 8 * 1024;

#[derive(Clone, Debug)]
struct User {
    id: String,
    external_id: Option<String>,
    email_id: String,
    email: String,
    verified: bool,
    /// Created or replaced `reserved`: unverified, usable, locked.
    reserved: bool,
    password: Option<String>,
    totp_secret: Option<String>,
    public_metadata: Map<String, Value>,
    private_metadata: Map<String, Value>,
    /// Phone number resources: (id, E.164), the first the primary.
    phones: Vec<(String, String)>,
    created_at: i64,
    updated_at: i64,
}

struct SigningKey {
    kid: String,
    private: authmux::tokens::keys::PrivateKey,
    jwk: Value,
}

fn new_key() -> SigningKey {
    use authmux::tokens::keys::{self, SigningAlg};
    let g = keys::generate(SigningAlg::Rs256).unwrap();
    let kid = g.jwk["kid"].as_str().unwrap().to_owned();
    SigningKey {
        private: keys::private_key(&kid, SigningAlg::Rs256, &g.pkcs8).unwrap(),
        kid,
        jwk: g.jwk,
    }
}

#[derive(Clone, Debug)]
struct Session {
    id: String,
    user_id: String,
    status: &'static str,
    created_at: i64,
}

#[derive(Default)]
struct Db {
    users: HashMap<String, User>,
    sessions: HashMap<String, Session>,
    /// Newest last; the last one signs.
    keys: Vec<SigningKey>,
    issuer: String,
    /// A session whose revoke answers 500, for tests.
    fail_revoke: Option<String>,
    /// Writes to each user in the last 10 seconds (see [`USER_WRITE_LIMIT`]).
    user_writes: HashMap<String, Vec<std::time::Instant>>,
    /// How long metadata writes wait before they are handled, for tests
    /// that need a slow Clerk.
    metadata_delay: Option<std::time::Duration>,
    /// How long the next read of a user waits between reading the user
    /// and answering, for tests.
    next_read_delay: Option<std::time::Duration>,
    /// While set, every factor removal waits this long, then answers 500
    /// and removes nothing: an outage, for tests.
    failing_factor_removals: Option<std::time::Duration>,
}

/// Clerk's limit on `PATCH /users/{id}` and the user metadata endpoints:
/// 10 requests per 10 seconds per user, answered 429 with the ClerkErrors
/// body and `Retry-After` in seconds (clerk-docs
/// `docs/guides/how-clerk-works/system-limits.mdx`; clerk/javascript
/// `api/request.ts` reads the header as whole seconds). The error's code
/// and words are the emulator's own.
pub const USER_WRITE_LIMIT: usize = 10;

/// Counts a write to user `uid`; Clerk's 429 once the user's limit is
/// reached.
fn user_write_limited(db: &mut Db, uid: &str) -> Option<Response> {
    let window = std::time::Duration::from_secs(10);
    let at = std::time::Instant::now();
    let writes = db.user_writes.entry(uid.to_owned()).or_default();
    writes.retain(|t| at.duration_since(*t) < window);
    if writes.len() >= USER_WRITE_LIMIT {
        let frees = window.saturating_sub(at.duration_since(writes[0]));
        let mut reply = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests to this user, retry later",
        );
        reply.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            (frees.as_secs() + 1).into(),
        );
        return Some(reply);
    }
    writes.push(at);
    None
}

/// Handle to rotate the emulator's signing keys from a test.
#[derive(Clone)]
pub struct Keys(Shared);

impl Keys {
    /// Adds a new signing key; the previous ones stay in the JWKS.
    pub fn rotate(&self) {
        self.0.lock().unwrap().keys.push(new_key());
    }

    /// Vendor session ids and their status.
    pub fn session_status(&self, id: &str) -> Option<&'static str> {
        self.0.lock().unwrap().sessions.get(id).map(|s| s.status)
    }

    /// Ends a session as Clerk would (the user signed out elsewhere).
    pub fn end_session(&self, id: &str) {
        if let Some(s) = self.0.lock().unwrap().sessions.get_mut(id) {
            s.status = "ended";
        }
    }

    /// Gives the user `n` more active sessions, as if signed in elsewhere.
    pub fn seed_sessions(&self, user_id: &str, n: usize) {
        let mut db = self.0.lock().unwrap();
        for _ in 0..n {
            let s = Session {
                id: id("sess"),
                user_id: user_id.to_owned(),
                status: "active",
                created_at: now_ms(),
            };
            db.sessions.insert(s.id.clone(), s);
        }
    }

    /// Makes revoking this session fail with 500 (or none, with `None`).
    pub fn fail_revoke(&self, id: Option<String>) {
        self.0.lock().unwrap().fail_revoke = id;
    }

    /// The Frontend API URL: the `iss` of this instance's tokens.
    pub fn issuer(&self) -> String {
        self.0.lock().unwrap().issuer.clone()
    }

    /// Whether the user with this email has a verified address.
    pub fn verified(&self, email: &str) -> Option<bool> {
        let db = self.0.lock().unwrap();
        db.users
            .values()
            .find(|u| u.email == email)
            .map(|u| u.verified)
    }

    /// The user's public and private metadata.
    pub fn metadata(&self, email: &str) -> (Map<String, Value>, Map<String, Value>) {
        let db = self.0.lock().unwrap();
        let u = db.users.values().find(|u| u.email == email).unwrap();
        (u.public_metadata.clone(), u.private_metadata.clone())
    }

    /// Makes every metadata write wait `delay` before it is handled (none
    /// with `None`): a slow Clerk.
    pub fn delay_metadata_writes(&self, delay: Option<std::time::Duration>) {
        self.0.lock().unwrap().metadata_delay = delay;
    }

    /// Makes every `DELETE /users/{id}/mfa` wait `delay`, then answer 500
    /// and remove nothing (none with `None`): an outage of that endpoint.
    pub fn fail_factor_removals(&self, delay: Option<std::time::Duration>) {
        self.0.lock().unwrap().failing_factor_removals = delay;
    }

    /// Makes the next `GET /users/{id}` wait `delay` between reading the
    /// user and answering, so that the answer is stale when it arrives.
    pub fn delay_next_read(&self, delay: std::time::Duration) {
        self.0.lock().unwrap().next_read_delay = Some(delay);
    }

    /// Deletes the user with this email, as from Clerk's dashboard.
    pub fn delete(&self, email: &str) {
        self.0.lock().unwrap().users.retain(|_, u| u.email != email);
    }
}

fn metadata_size(u: &User) -> usize {
    serde_json::to_vec(&u.public_metadata).unwrap().len()
        + serde_json::to_vec(&u.private_metadata).unwrap().len()
}

fn metadata_too_large() -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_exceeds_allowed_size",
        "Metadata may be at most 8KB in total.",
    )
}

type Shared = Arc<Mutex<Db>>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// `ClerkErrors`.
pub fn errors(_status: u16, code: &str, message: &str) -> Json<Value> {
    Json(json!({
        "errors": [{"message": message, "long_message": message, "code": code, "meta": {}}],
        "meta": {},
        "clerk_trace_id": id("trace"),
    }))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, errors(status.as_u16(), code, message)).into_response()
}

/// A 422 about one form parameter, named in `meta.param_name`.
fn form_error(code: &str, param: &str, message: &str) -> Response {
    let Json(mut body) = errors(422, code, message);
    body["errors"][0]["meta"] = json!({"param_name": param});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// `form_identifier_exists`, naming the identifier taken in
/// `meta.param_name` (clerk/javascript keys its messages for it as
/// `form_identifier_exists__email_address` and `..__phone_number`:
/// "That phone number is taken. Please try another.").
fn identifier_taken(param: &str, message: &str) -> Response {
    form_error("form_identifier_exists", param, message)
}

/// Clerk's refusal of a new password (CreateUser, UpdateUser), if any;
/// the messages are clerk/javascript's en-US localizations of the codes.
/// - More than 72 bytes: `form_password_size_in_bytes_exceeded`. bcrypt
///   hashes at most 72 bytes, and no flag skips what the hash can't take.
/// - With the password policy checked (no `skip_password_checks`, which
///   "skips any password policy settings check"): under 8 characters is
///   `form_password_length_too_short`, and a password "in any list of
///   hacked passwords" is `form_password_pwned` (spec, CreateUser
///   `password`).
fn password_refusal(password: &str, skip_checks: bool) -> Option<Response> {
    let (code, message) = if password.len() > super::BCRYPT_MAX_BYTES {
        (
            "form_password_size_in_bytes_exceeded",
            "Your password has exceeded the maximum number of bytes allowed, please shorten it or remove some special characters.",
        )
    } else if skip_checks {
        return None;
    } else if password.chars().count() < 8 {
        (
            "form_password_length_too_short",
            "Your password is too short. It must be at least 8 characters long.",
        )
    } else if super::breached(password) {
        (
            "form_password_pwned",
            "This password has been found as part of a breach and can not be used, please try another password instead.",
        )
    } else {
        return None;
    };
    Some(form_error(code, "password", message))
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "Resource not found",
    )
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "object": "user",
        "external_id": u.external_id,
        "primary_email_address_id": u.email_id,
        "email_addresses": [{
            "id": u.email_id,
            "object": "email_address",
            "email_address": u.email,
            "reserved": u.reserved,
            "verification": {
                "object": "verification_admin",
                "status": if u.verified { "verified" } else { "unverified" },
                "strategy": "admin",
                "attempts": null,
                "expire_at": null
            },
            "linked_to": [],
            "created_at": u.created_at,
            "updated_at": u.updated_at,
        }],
        "primary_phone_number_id": u.phones.first().map(|p| &p.0),
        "phone_numbers": u.phones.iter().map(|(id, n)| json!({
            "id": id, "object": "phone_number", "phone_number": n,
            "reserved_for_second_factor": false, "default_second_factor": false,
            "reserved": false, "linked_to": [],
            "verification": {"status": "unverified", "strategy": "admin", "attempts": null, "expire_at": null},
        })).collect::<Vec<_>>(),
        "username": null,
        "first_name": null,
        "last_name": null,
        "public_metadata": u.public_metadata,
        "private_metadata": u.private_metadata,
        "unsafe_metadata": {},
        "password_enabled": u.password.is_some(),
        "two_factor_enabled": u.totp_secret.is_some(),
        "totp_enabled": u.totp_secret.is_some(),
        "backup_code_enabled": false,
        "banned": false,
        "locked": false,
        "last_sign_in_at": null,
        "last_active_at": null,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

async fn headers(req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {SECRET_KEY}") && auth != format!("Bearer {LIVE_SECRET_KEY}") {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_invalid",
            "Invalid authentication",
        );
    }
    if req
        .headers()
        .get("clerk-api-version")
        .and_then(|v| v.to_str().ok())
        != Some("2026-05-12")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_api_version",
            "Clerk-API-Version header is required",
        );
    }
    next.run(req).await
}

async fn create_user(State(db): State<Shared>, Json(body): Json<Value>) -> Response {
    let Some(email) = body["email_address"][0].as_str().map(str::to_owned) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_missing",
            "email_address is required",
        );
    };
    let password = body["password"].as_str().map(str::to_owned);
    if password.is_none() && body["skip_password_requirement"] != true {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_password_missing",
            "password is required",
        );
    }
    if let Some(refused) = password
        .as_deref()
        .and_then(|p| password_refusal(p, body["skip_password_checks"] == true))
    {
        return refused;
    }
    let mut db = db.lock().unwrap();
    if db
        .users
        .values()
        .any(|u| u.email.eq_ignore_ascii_case(&email))
    {
        return identifier_taken(
            "email_address",
            "That email address is taken. Please try another.",
        );
    }
    let now = now_ms();
    // Verified unless `email_address_identification_status` says reserved.
    let reserved = body["email_address_identification_status"][0] == "reserved";
    let user = User {
        id: id("user"),
        external_id: body["external_id"].as_str().map(str::to_owned),
        email_id: id("idn"),
        email,
        verified: !reserved,
        reserved,
        password,
        totp_secret: body["totp_secret"].as_str().map(str::to_owned),
        public_metadata: body["public_metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
        private_metadata: body["private_metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
        phones: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    if metadata_size(&user) > METADATA_LIMIT {
        return metadata_too_large();
    }
    let out = user_json(&user);
    db.users.insert(user.id.clone(), user);
    Json(out).into_response()
}

async fn get_user(State(db): State<Shared>, Path(uid): Path<String>) -> Response {
    let (reply, delay) = {
        let mut db = db.lock().unwrap();
        let reply = match db.users.get(&uid) {
            Some(u) => Json(user_json(u)).into_response(),
            None => not_found(),
        };
        (reply, db.next_read_delay.take())
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    reply
}

async fn list_users(State(db): State<Shared>, req: Request) -> Response {
    let query = req.uri().query().unwrap_or("");
    let wanted: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "email_address" || k == "email_address[]")
        .map(|(_, v)| v.to_lowercase())
        .collect();
    let db = db.lock().unwrap();
    let users: Vec<Value> = db
        .users
        .values()
        .filter(|u| wanted.is_empty() || wanted.contains(&u.email.to_lowercase()))
        .map(user_json)
        .collect();
    Json(Value::Array(users)).into_response()
}

async fn update_user(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    if let Some(limited) = user_write_limited(&mut db, &uid) {
        return limited;
    }
    let Some(u) = db.users.get_mut(&uid) else {
        return not_found();
    };
    if body.get("public_metadata").is_some() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_unknown",
            "metadata is updated through /users/{id}/metadata in this API version",
        );
    }
    if let Some(secret) = body["totp_secret"].as_str() {
        u.totp_secret = Some(secret.to_owned());
    }
    if let Some(p) = body["password"].as_str() {
        if let Some(refused) = password_refusal(p, body["skip_password_checks"] == true) {
            return refused;
        }
        u.password = Some(p.to_owned());
    }
    u.updated_at = now_ms();
    Json(user_json(u)).into_response()
}

/// `POST /phone_numbers` (bapi-2026-05-12.yml, CreatePhoneNumber): user_id
/// and phone_number required; `primary` makes it the primary one. A phone
/// number is an identifier, held by one user of the instance: another
/// user's (or the same user's) number is `form_identifier_exists`.
async fn create_phone(State(db): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut db = db.lock().unwrap();
    let (Some(uid), Some(number)) = (body["user_id"].as_str(), body["phone_number"].as_str())
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_missing",
            "user_id and phone_number are required",
        );
    };
    if db
        .users
        .values()
        .any(|u| u.phones.iter().any(|(_, n)| n == number))
    {
        return identifier_taken(
            "phone_number",
            "That phone number is taken. Please try another.",
        );
    }
    let Some(u) = db.users.get_mut(uid) else {
        return not_found();
    };
    if !number.starts_with('+') {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_format_invalid",
            "phone_number must be in E.164 format",
        );
    }
    let pid = id("idn");
    if body["primary"] == true {
        u.phones.insert(0, (pid.clone(), number.to_owned()));
    } else {
        u.phones.push((pid.clone(), number.to_owned()));
    }
    Json(json!({"id": pid, "object": "phone_number", "phone_number": number})).into_response()
}

/// `DELETE /phone_numbers/{phone_number_id}` (DeletePhoneNumber).
async fn delete_phone(State(db): State<Shared>, Path(pid): Path<String>) -> Response {
    let mut db = db.lock().unwrap();
    for u in db.users.values_mut() {
        if let Some(i) = u.phones.iter().position(|(id, _)| *id == pid) {
            u.phones.remove(i);
            return Json(json!({"id": pid, "object": "phone_number", "deleted": true}))
                .into_response();
        }
    }
    not_found()
}

async fn replace_metadata(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let delay = db.lock().unwrap().metadata_delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut db = db.lock().unwrap();
    if let Some(limited) = user_write_limited(&mut db, &uid) {
        return limited;
    }
    let Some(u) = db.users.get_mut(&uid) else {
        return not_found();
    };
    let mut next = u.clone();
    if let Some(m) = body["public_metadata"].as_object() {
        next.public_metadata = m.clone();
    }
    if let Some(m) = body["private_metadata"].as_object() {
        next.private_metadata = m.clone();
    }
    if metadata_size(&next) > METADATA_LIMIT {
        return metadata_too_large();
    }
    *u = next;
    u.updated_at = now_ms();
    Json(user_json(u)).into_response()
}

/// `PUT /users/{id}/email_address` (ReplaceUserEmailAddress): a new
/// primary address, verified by default or reserved.
async fn replace_email(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    let Some(u) = db.users.get_mut(&uid) else {
        return not_found();
    };
    let Some(email) = body["email_address"].as_str() else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_missing",
            "email_address is required",
        );
    };
    let status = body["identification_status"].as_str().unwrap_or("verified");
    u.email = email.to_owned();
    u.email_id = id("idn");
    u.verified = status == "verified";
    u.reserved = status == "reserved";
    u.updated_at = now_ms();
    Json(user_json(u)).into_response()
}

/// `GET /domains` (ListDomains): the primary domain.
async fn domains(State(db): State<Shared>) -> Response {
    let frontend = db.lock().unwrap().issuer.clone();
    Json(json!({
        "data": [{"object": "domain", "id": "dmn_emulator", "name": "emulator.authmux.test",
                  "is_satellite": false, "frontend_api_url": frontend,
                  "accounts_portal_url": null, "proxy_url": null,
                  "development_origin": "", "cname_targets": []}],
        "total_count": 1,
    }))
    .into_response()
}

async fn update_email(
    State(db): State<Shared>,
    Path(eid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    let Some(u) = db.users.values_mut().find(|u| u.email_id == eid) else {
        return not_found();
    };
    match body["verified"].as_bool() {
        Some(true) => {
            u.verified = true;
            u.reserved = false;
        }
        Some(false) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "form_param_value_invalid",
                "verified can only mark an email address verified",
            );
        }
        None => {}
    }
    u.updated_at = now_ms();
    Json(json!({
        "id": u.email_id,
        "object": "email_address",
        "email_address": u.email,
        "reserved": false,
        "verification": {"object": "verification_admin", "status": if u.verified { "verified" } else { "unverified" }, "strategy": "admin"},
        "linked_to": [],
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    }))
    .into_response()
}

async fn delete_user(State(db): State<Shared>, Path(uid): Path<String>) -> Response {
    match db.lock().unwrap().users.remove(&uid) {
        Some(_) => Json(json!({"object": "user", "id": uid, "deleted": true})).into_response(),
        None => not_found(),
    }
}

async fn disable_mfa(State(db): State<Shared>, Path(uid): Path<String>) -> Response {
    let failing = db.lock().unwrap().failing_factor_removals;
    if let Some(delay) = failing {
        tokio::time::sleep(delay).await;
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_clerk_error",
            "There was an internal error on our servers",
        );
    }
    let mut db = db.lock().unwrap();
    let Some(u) = db.users.get_mut(&uid) else {
        return not_found();
    };
    u.totp_secret = None;
    Json(json!({"user_id": uid})).into_response()
}

async fn verify_password(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let db = db.lock().unwrap();
    let Some(u) = db.users.get(&uid) else {
        return not_found();
    };
    match &u.password {
        None => error(
            StatusCode::BAD_REQUEST,
            "no_password",
            "The user does not have a password set.",
        ),
        Some(p) if Some(p.as_str()) == body["password"].as_str() => {
            Json(json!({"verified": true})).into_response()
        }
        Some(_) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "incorrect_password",
            "The provided password was incorrect.",
        ),
    }
}

async fn verify_totp(
    State(db): State<Shared>,
    Path(uid): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let db = db.lock().unwrap();
    let Some(u) = db.users.get(&uid) else {
        return not_found();
    };
    let Some(secret) = &u.totp_secret else {
        return error(
            StatusCode::BAD_REQUEST,
            "totp_not_enabled",
            "The user does not have TOTP configured for their account.",
        );
    };
    let bytes = totp_rs::Secret::Encoded(secret.clone()).to_bytes().unwrap();
    let totp =
        totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).unwrap();
    if totp
        .check_current(body["code"].as_str().unwrap_or(""))
        .unwrap_or(false)
    {
        Json(json!({"verified": true, "code_type": "totp"})).into_response()
    } else {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "incorrect_code",
            "The provided TOTP or backup code was incorrect.",
        )
    }
}

fn session_json(s: &Session) -> Value {
    json!({
        "object": "session",
        "id": s.id,
        "user_id": s.user_id,
        "client_id": id("client"),
        "actor": null,
        "status": s.status,
        "last_active_organization_id": null,
        "last_active_at": s.created_at,
        "expire_at": s.created_at + 7 * 86_400_000,
        "abandon_at": s.created_at + 30 * 86_400_000,
        "created_at": s.created_at,
        "updated_at": s.created_at,
    })
}

/// `GET /sessions` (GetSessionList): the sessions of `user_id` (or
/// `client_id`), optionally of one `status`, newest first, as a bare
/// array; `limit` 1 to 500 (default 10) and `offset` page it (spec,
/// `LimitParameter`, `OffsetParameter`; out of range is 422).
async fn list_sessions(State(db): State<Shared>, req: Request) -> Response {
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    // `None` when present but out of range.
    let number =
        |name: &str, default: usize, range: std::ops::RangeInclusive<usize>| match param(name) {
            None => Some(default),
            Some(v) => v.parse().ok().filter(|n| range.contains(n)),
        };
    let (Some(limit), Some(offset)) = (
        number("limit", 10, 1..=500),
        number("offset", 0, 0..=usize::MAX),
    ) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_value_invalid",
            "limit must be 1 to 500 and offset 0 or more",
        );
    };
    let (user, status) = (param("user_id"), param("status"));
    let db = db.lock().unwrap();
    let mut sessions: Vec<&Session> = db
        .sessions
        .values()
        .filter(|s| user.as_ref().is_none_or(|u| *u == s.user_id))
        .filter(|s| status.as_ref().is_none_or(|st| st == s.status))
        .collect();
    sessions.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let page: Vec<Value> = sessions
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(session_json)
        .collect();
    Json(Value::Array(page)).into_response()
}

async fn create_session(
    State(db): State<Shared>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let live = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {LIVE_SECRET_KEY}"));
    if live {
        return error(
            StatusCode::BAD_REQUEST,
            "operation_not_allowed_on_production_instance",
            "This endpoint is only available for development instances.",
        );
    }
    let mut db = db.lock().unwrap();
    let Some(uid) = body["user_id"].as_str() else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_missing",
            "user_id is required",
        );
    };
    if !db.users.contains_key(uid) {
        return not_found();
    }
    let s = Session {
        id: id("sess"),
        user_id: uid.to_owned(),
        status: "active",
        created_at: now_ms(),
    };
    let out = session_json(&s);
    db.sessions.insert(s.id.clone(), s);
    Json(out).into_response()
}

/// `POST /sessions/{id}/tokens` (CreateSessionToken): a token living
/// `expires_in_seconds` (30 to 315,360,000) or, without it, the instance's
/// default of 60 s.
async fn create_token(
    State(db): State<Shared>,
    Path(sid): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let lifetime = match body.as_ref().map(|b| &b["expires_in_seconds"]) {
        None | Some(Value::Null) => 60,
        Some(v) => match v.as_i64() {
            Some(s) if (30..=315_360_000).contains(&s) => s,
            _ => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "form_param_value_invalid",
                    "expires_in_seconds must be between 30 and 315360000",
                );
            }
        },
    };
    let db = db.lock().unwrap();
    let Some(s) = db.sessions.get(&sid) else {
        return not_found();
    };
    if s.status != "active" {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "session_not_active",
            "The session is not active.",
        );
    }
    let key = db.keys.last().unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": db.issuer, "sub": s.user_id, "sid": s.id, "exp": now + lifetime, "iat": now, "nbf": now - 5,
        "jti": id("jti"), "v": 2, "fva": [0, -1], "sts": "active",
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    let jwt = jsonwebtoken::encode(&header, &claims, &key.private.encoding).unwrap();
    Json(json!({"object": "token", "jwt": jwt})).into_response()
}

async fn revoke_session(State(db): State<Shared>, Path(sid): Path<String>) -> Response {
    let mut db = db.lock().unwrap();
    if db.fail_revoke.as_deref() == Some(sid.as_str()) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_clerk_error",
            "Something went wrong",
        );
    }
    let Some(s) = db.sessions.get_mut(&sid) else {
        return not_found();
    };
    if s.status != "active" {
        return error(
            StatusCode::BAD_REQUEST,
            "session_not_active",
            "The session is not active.",
        );
    }
    s.status = "revoked";
    Json(session_json(s)).into_response()
}

async fn jwks(State(db): State<Shared>) -> Response {
    let db = db.lock().unwrap();
    let keys: Vec<Value> = db.keys.iter().map(|k| k.jwk.clone()).collect();
    Json(json!({"keys": keys})).into_response()
}

/// Starts an emulator on a loopback port; its base URL ends in `/v1`.
pub async fn start() -> Running {
    start_with_keys().await.0
}

/// Starts an emulator and returns a handle on its signing keys too.
pub async fn start_with_keys() -> (Running, Keys) {
    let db: Shared = Arc::default();
    db.lock().unwrap().keys.push(new_key());
    let faults: SharedFaults = Arc::new(Mutex::new(Faults::default()));
    let keys = Keys(db.clone());
    let api = axum::Router::new()
        .route("/sessions", post(create_session).get(list_sessions))
        .route("/sessions/{session_id}/tokens", post(create_token))
        .route("/sessions/{session_id}/revoke", post(revoke_session))
        .route("/jwks", get(jwks))
        .route("/domains", get(domains))
        .route("/users/{user_id}/email_address", put(replace_email))
        .route("/users", post(create_user).get(list_users))
        .route(
            "/users/{user_id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/users/{user_id}/metadata", put(replace_metadata))
        .route("/users/{user_id}/mfa", delete(disable_mfa))
        .route("/users/{user_id}/verify_password", post(verify_password))
        .route("/users/{user_id}/verify_totp", post(verify_totp))
        .route("/email_addresses/{email_address_id}", patch(update_email))
        .route("/phone_numbers", post(create_phone))
        .route("/phone_numbers/{phone_number_id}", delete(delete_phone))
        .with_state(db.clone())
        .layer(axum::middleware::from_fn(headers))
        .layer(from_fn_with_state(faults.clone(), |s, r, n| {
            inject(s, r, n, errors)
        }));
    let running = serve(
        |base| {
            db.lock().unwrap().issuer = frontend_api_url(base);
            axum::Router::new().nest("/v1", api)
        },
        "/v1",
        faults,
    )
    .await;
    (running, keys)
}
