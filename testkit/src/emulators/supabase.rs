//! A Supabase Auth (GoTrue) emulator following the server's real routes
//! (`internal/api/api.go`, see `shared/vendor-specs/NOTES.md` §3): admin
//! users, `generate_link` + `verify`, the password and refresh-token
//! grants, `/logout`, and an ES256 JWKS. Errors use GoTrue's default body
//! `{code, error_code, msg}` with `x-sb-error-code`, or the OAuth form on
//! `/token`.
//!
//! Where each behaviour comes from (NOTES.md §5):
//! - `/verify` confirms the user's email (`internal/api/verify.go`,
//!   `user.Confirm`) and is limited to 30 requests per 5 minutes per
//!   address (`internal/api/api.go` limiter set-up); the address is
//!   `Sb-Forwarded-For` when a secret key sends it, else the first
//!   `X-Forwarded-For`, else the peer (docs, rate limits). Over the limit:
//!   429 `over_request_rate_limit` without `Retry-After` (`apierrors`).
//! - `PUT /admin/users/{id}` merges `user_metadata` and `app_metadata` key
//!   by key, a `null` deleting the key (`internal/models/user.go`,
//!   `UpdateUserMetaData`/`UpdateAppMetaData`).
//! - `POST /admin/users` records `provider`/`providers` in `app_metadata`
//!   and makes an `email` identity whose `identity_data` is the subject
//!   and address; users are read with their identities and factors
//!   (`internal/api/admin.go`, `adminUserCreate`; `internal/models/
//!   identity.go`, the `identity_id`/`id` JSON names; `internal/models/
//!   user.go`, `findUser` loads eagerly).
//! - The password grant refuses an unconfirmed email only after the
//!   password, unless "allow unverified email sign-ins" is on
//!   (`internal/api/token.go`; `GOTRUE_MAILER_ALLOW_UNVERIFIED_EMAIL_SIGN_INS`).
//!   It compares the first 72 bytes of the password given, as bcrypt does
//!   (see `bcrypt_input`).

// A vendor keeps its own (real) clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authmux::tokens::keys::{self, SigningAlg};
use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Map, Value, json};

use super::{BCRYPT_MAX_BYTES, Faults, Running, SharedFaults, inject, serve};

/// The project's secret key in the new format. It is not a JWT: it goes in
/// `apikey` only, and the platform refuses it as a bearer token (Supabase's
/// API keys guide; discussions #51279 and #52680).
pub const SERVICE_ROLE_KEY: &str = "sb_secret_emulator_4f1d2c9a";
/// A legacy `service_role` key: a JWT, sent as `apikey` and as the bearer.
pub const LEGACY_SERVICE_ROLE_KEY: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.bGVnYWN5LWVtdWxhdG9y";

/// Whether a bearer token is JWT-shaped (three base64url segments, a JSON
/// header): the API gateway refuses anything else with 401 before GoTrue.
fn is_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

/// The gateway's answer to a bearer that is not a JWT.
fn bad_jwt() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "bad_jwt",
        "invalid JWT: unable to parse or verify signature, token is malformed",
    )
}

struct SigningKey {
    kid: String,
    private: keys::PrivateKey,
    public: keys::PublicKey,
    jwk: Value,
}

fn new_key() -> SigningKey {
    let g = keys::generate(SigningAlg::Es256).unwrap();
    let kid = g.jwk["kid"].as_str().unwrap().to_owned();
    SigningKey {
        private: keys::private_key(&kid, SigningAlg::Es256, &g.pkcs8).unwrap(),
        public: keys::public_key(&g.jwk).unwrap(),
        kid,
        jwk: g.jwk,
    }
}

#[derive(Clone)]
struct User {
    id: String,
    email: String,
    password: Option<String>,
    email_confirmed_at: Option<String>,
    user_metadata: Map<String, Value>,
    app_metadata: Map<String, Value>,
    /// GoTrue stores E.164 without the `+` (internal/api/phone.go,
    /// validatePhone) and answers `""` when there is none.
    phone: String,
    /// The `email` identity made with the user.
    identity_id: String,
    created_at: String,
}

#[derive(Default)]
struct Db {
    users: HashMap<String, User>,
    /// session id → (user id, revoked)
    sessions: HashMap<String, (String, bool)>,
    /// refresh token → (session id, used)
    refresh: HashMap<String, (String, bool)>,
    /// hashed link token → user id
    links: HashMap<String, String>,
    keys: Vec<SigningKey>,
    issuer: String,
    /// address → times of its `/verify` requests in the last 5 minutes
    verify_hits: HashMap<String, Vec<std::time::Instant>>,
    /// `GOTRUE_MAILER_ALLOW_UNVERIFIED_EMAIL_SIGN_INS`
    allow_unverified_sign_ins: bool,
}

/// GoTrue's `/verify` limit: requests per address per 5 minutes.
pub const VERIFY_LIMIT: usize = 30;

type Shared = Arc<Mutex<Db>>;

/// Handle on the emulator's keys and sessions, for tests.
#[derive(Clone)]
pub struct Handle(Shared);

impl Handle {
    /// Adds a new signing key; older ones stay in the JWKS.
    pub fn rotate(&self) {
        self.0.lock().unwrap().keys.push(new_key());
    }

    /// Whether a session was logged out.
    pub fn session_revoked(&self, id: &str) -> Option<bool> {
        self.0.lock().unwrap().sessions.get(id).map(|s| s.1)
    }

    /// Turns "allow unverified email sign-ins" on or off.
    pub fn allow_unverified_sign_ins(&self, on: bool) {
        self.0.lock().unwrap().allow_unverified_sign_ins = on;
    }

    /// Whether the user with this email is confirmed.
    pub fn confirmed(&self, email: &str) -> bool {
        let db = self.0.lock().unwrap();
        db.users
            .values()
            .any(|u| u.email == email && u.email_confirmed_at.is_some())
    }

    /// The `app_metadata` of the user with this email.
    pub fn app_metadata(&self, email: &str) -> Map<String, Value> {
        let db = self.0.lock().unwrap();
        let u = db.users.values().find(|u| u.email == email).unwrap();
        u.app_metadata.clone()
    }

    /// The `user_metadata` of the user with this email.
    pub fn user_metadata(&self, email: &str) -> Map<String, Value> {
        let db = self.0.lock().unwrap();
        let u = db.users.values().find(|u| u.email == email).unwrap();
        u.user_metadata.clone()
    }

    /// Sessions of the user with this email not logged out.
    pub fn live_sessions_of(&self, email: &str) -> usize {
        let db = self.0.lock().unwrap();
        let Some(u) = db.users.values().find(|u| u.email == email) else {
            return 0;
        };
        db.sessions
            .values()
            .filter(|(owner, revoked)| *owner == u.id && !revoked)
            .count()
    }

    /// Addresses `/verify` counted requests for.
    pub fn verify_addresses(&self) -> Vec<String> {
        let db = self.0.lock().unwrap();
        db.verify_hits.keys().cloned().collect()
    }
}

/// Merges `updates` into `into` key by key; `null` deletes the key.
fn merge_metadata(into: &mut Map<String, Value>, updates: &Value) {
    for (k, v) in updates.as_object().into_iter().flatten() {
        if v.is_null() {
            into.remove(k);
        } else {
            into.insert(k.clone(), v.clone());
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// GoTrue's default error body.
pub fn errors(status: u16, code: &str, msg: &str) -> Json<Value> {
    Json(json!({"code": status, "error_code": code, "msg": msg}))
}

fn error(status: StatusCode, code: &str, msg: &str) -> Response {
    let mut r = (status, errors(status.as_u16(), code, msg)).into_response();
    r.headers_mut()
        .insert("x-sb-error-code", code.parse().unwrap());
    r
}

/// A longer password: GoTrue hashes with
/// `must(bcrypt.GenerateFromPassword(...))` (internal/crypto/password.go),
/// and bcrypt refuses more than 72 bytes, so the handler panics and the
/// recoverer (internal/api/errors.go) answers a bare 500.
fn password_too_long() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected_failure",
        "Internal Server Error",
    )
}

/// What bcrypt reads of a password: its first 72 bytes. GoTrue's password
/// grant compares with `bcrypt.CompareHashAndPassword`
/// (internal/crypto/password.go), which, unlike hashing, still takes a
/// longer password and ignores the rest (golang.org/x/crypto commit
/// bc7d1d1, "bcrypt: reject passwords longer than 72 bytes": "In
/// GenerateFromPassword, reject passwords longer than 72 bytes.
/// CompareHashAndPassword will still accept these passwords").
fn bcrypt_input(password: &str) -> &[u8] {
    let bytes = password.as_bytes();
    &bytes[..bytes.len().min(BCRYPT_MAX_BYTES)]
}

fn oauth_error(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "error_description": description})),
    )
        .into_response()
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id, "aud": "authenticated", "role": "authenticated",
        "email": u.email, "email_confirmed_at": u.email_confirmed_at,
        "phone": u.phone, "confirmed_at": u.email_confirmed_at, "last_sign_in_at": null,
        "app_metadata": u.app_metadata, "user_metadata": u.user_metadata,
        "identities": [{
            "identity_id": u.identity_id, "id": u.id, "user_id": u.id,
            "identity_data": {"sub": u.id, "email": u.email,
                              "email_verified": false, "phone_verified": false},
            "provider": "email", "last_sign_in_at": u.created_at,
            "created_at": u.created_at, "updated_at": u.created_at, "email": u.email,
        }],
        "factors": [], "banned_until": null,
        "created_at": u.created_at, "updated_at": now(), "is_anonymous": false,
    })
}

fn header(req: &Request, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Admin routes: a secret key in `apikey` alone, or a legacy service_role
/// JWT in `apikey` and as the bearer. Any bearer must be a JWT.
async fn admin_auth(req: Request, next: Next) -> Response {
    let (apikey, auth) = (header(&req, "apikey"), header(&req, "authorization"));
    if apikey != SERVICE_ROLE_KEY && apikey != LEGACY_SERVICE_ROLE_KEY {
        return error(
            StatusCode::UNAUTHORIZED,
            "no_authorization",
            "No API key found in request",
        );
    }
    let bearer = auth.strip_prefix("Bearer ");
    if bearer.is_some_and(|b| !is_jwt(b)) {
        return bad_jwt();
    }
    let admin = if apikey == SERVICE_ROLE_KEY {
        bearer.is_none_or(|b| b == LEGACY_SERVICE_ROLE_KEY)
    } else {
        bearer == Some(LEGACY_SERVICE_ROLE_KEY)
    };
    if !admin {
        return error(StatusCode::FORBIDDEN, "not_admin", "User not allowed");
    }
    next.run(req).await
}

/// Public routes: either key in `apikey`; a bearer, if any, must be a JWT.
async fn apikey_auth(req: Request, next: Next) -> Response {
    let apikey = header(&req, "apikey");
    if apikey != SERVICE_ROLE_KEY && apikey != LEGACY_SERVICE_ROLE_KEY {
        return error(
            StatusCode::UNAUTHORIZED,
            "no_authorization",
            "No API key found in request",
        );
    }
    if header(&req, "authorization")
        .strip_prefix("Bearer ")
        .is_some_and(|b| !is_jwt(b))
    {
        return bad_jwt();
    }
    next.run(req).await
}

async fn create_user(State(db): State<Shared>, Json(b): Json<Value>) -> Response {
    let Some(email) = b["email"].as_str().map(str::to_lowercase) else {
        return error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Unable to validate email address: invalid format",
        );
    };
    let mut db = db.lock().unwrap();
    if db.users.values().any(|u| u.email == email) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "email_exists",
            "A user with this email address has already been registered",
        );
    }
    if b["password"]
        .as_str()
        .is_some_and(|p| p.len() > BCRYPT_MAX_BYTES)
    {
        return password_too_long();
    }
    if b["password"].as_str().is_some_and(|p| p.len() < 6) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
            "Password should be at least 6 characters.",
        );
    }
    let u = User {
        id: uuid::Uuid::now_v7().to_string(),
        email,
        password: b["password"].as_str().map(str::to_owned),
        email_confirmed_at: (b["email_confirm"] == true).then(now),
        user_metadata: b["user_metadata"].as_object().cloned().unwrap_or_default(),
        app_metadata: {
            let mut app = Map::from_iter([
                ("provider".to_owned(), json!("email")),
                ("providers".to_owned(), json!(["email"])),
            ]);
            if let Some(given) = b["app_metadata"].as_object() {
                app.extend(given.clone());
            }
            app
        },
        phone: String::new(),
        identity_id: uuid::Uuid::now_v7().to_string(),
        created_at: now(),
    };
    let out = user_json(&u);
    db.users.insert(u.id.clone(), u);
    Json(out).into_response()
}

/// SQL `LIKE`, case-sensitive as on PostgreSQL: `%` any run, `_` any one
/// character, `\` escapes the next.
fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some(('_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some(('\\', rest)) if !rest.is_empty() => {
                t.first() == Some(&rest[0]) && go(&t[1..], &rest[1..])
            }
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    let (t, p): (Vec<char>, Vec<char>) = (text.chars().collect(), pattern.chars().collect());
    go(&t, &p)
}

/// `GET /admin/users` (internal/api/admin.go, adminUsers, and
/// internal/models/user.go, FindUsersInAudience): `filter` is matched as
/// `email LIKE '%filter%'` — case-sensitive, with `%` and `_` as wildcards
/// — newest first, `per_page` (default 50) users per `page` (from 1), the
/// total in `x-total-count`.
async fn list_users(
    State(db): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let pattern = format!("%{}%", q.get("filter").map(String::as_str).unwrap_or(""));
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(50)
        .max(1);
    let db = db.lock().unwrap();
    let mut matching: Vec<&User> = db
        .users
        .values()
        .filter(|u| like(&u.email, &pattern))
        .collect();
    // Ids are time-ordered (UUIDv7): newest first.
    matching.sort_by(|a, b| b.id.cmp(&a.id));
    let n = matching.len();
    let users: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(user_json)
        .collect();
    let mut r = Json(json!({"users": users, "aud": "authenticated"})).into_response();
    r.headers_mut()
        .insert("x-total-count", n.to_string().parse().unwrap());
    r
}

fn valid_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

async fn get_user(State(db): State<Shared>, Path(id): Path<String>) -> Response {
    if !valid_uuid(&id) {
        return error(
            StatusCode::NOT_FOUND,
            "validation_failed",
            "user_id must be an UUID",
        );
    }
    match db.lock().unwrap().users.get(&id) {
        Some(u) => Json(user_json(u)).into_response(),
        None => error(StatusCode::NOT_FOUND, "user_not_found", "User not found"),
    }
}

async fn update_user(
    State(db): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    if !db.users.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, "user_not_found", "User not found");
    }
    // internal/api/admin.go (adminUserUpdate), in its order. A phone must
    // pass validatePhone (E.164, the `+` optional, 8 to 15 digits; an empty
    // one fails it) before anything changes.
    let phone = match b["phone"].as_str() {
        None => None,
        Some(phone) => {
            let digits = phone.trim_start_matches('+');
            if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "validation_failed",
                    "Invalid phone number format (E.164 required)",
                );
            }
            Some(digits.to_owned())
        }
    };
    // Then a new password is hashed, before the transaction.
    if let Some(p) = b["password"].as_str()
        && p.len() > BCRYPT_MAX_BYTES
    {
        return password_too_long();
    }
    // Unlike adminUserCreate, the update does not look for a duplicate
    // phone: auth.users.phone is UNIQUE (migrations/20210710035447_alter_users:
    // `phone VARCHAR(15) NULL UNIQUE`, so Postgres names the constraint
    // users_phone_key), and another user's number fails the transaction,
    // which rolls every change back. The handler wraps the error in a 500
    // "Error updating user", which HandleResponseError
    // (internal/api/errors.go) replaces by the Postgres error itself for an
    // integrity violation (internal/utilities/postgres.go: 23505 maps to
    // HTTP 500): a 500 whose body carries the Postgres code, message and
    // detail.
    if let Some(digits) = &phone
        && db.users.values().any(|o| o.id != id && o.phone == *digits)
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({
                "code": "23505",
                "message": "duplicate key value violates unique constraint \"users_phone_key\"",
                "detail": format!("Key (phone)=({digits}) already exists."),
            })),
        )
            .into_response();
    }
    let u = db.users.get_mut(&id).expect("checked above");
    if b["email_confirm"] == true && u.email_confirmed_at.is_none() {
        u.email_confirmed_at = Some(now());
    }
    merge_metadata(&mut u.user_metadata, &b["user_metadata"]);
    merge_metadata(&mut u.app_metadata, &b["app_metadata"]);
    if let Some(p) = b["password"].as_str() {
        u.password = Some(p.to_owned());
    }
    if let Some(phone) = phone {
        u.phone = phone;
    }
    Json(user_json(u)).into_response()
}

async fn delete_user(State(db): State<Shared>, Path(id): Path<String>) -> Response {
    let mut db = db.lock().unwrap();
    match db.users.remove(&id) {
        Some(_) => {
            // Its one-time tokens are columns of its row (mail.go) and go
            // with it.
            db.links.retain(|_, u| *u != id);
            Json(json!({})).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "user_not_found", "User not found"),
    }
}

async fn factors(State(db): State<Shared>, Path(id): Path<String>) -> Response {
    match db.lock().unwrap().users.get(&id) {
        Some(_) => Json(json!([])).into_response(),
        None => error(StatusCode::NOT_FOUND, "user_not_found", "User not found"),
    }
}

/// `POST /admin/generate_link`, `type: magiclink`. For an email no user
/// has, GoTrue signs one up instead (internal/api/mail.go,
/// adminGenerateLink: the type becomes `signup`, a user is made with a
/// random password, unconfirmed, and the link's token is a confirmation
/// token); verify.go accepts a `magiclink` verify only with a recovery
/// token, so that link signs no one in as a magic link.
async fn generate_link(State(db): State<Shared>, Json(b): Json<Value>) -> Response {
    let mut db = db.lock().unwrap();
    let email = b["email"].as_str().unwrap_or("").to_lowercase();
    let (u, kind) = match db.users.values().find(|u| u.email == email).cloned() {
        Some(u) => (u, "magiclink"),
        None => {
            let u = User {
                id: uuid::Uuid::now_v7().to_string(),
                email,
                password: Some(authmux::crypto::random_token(32)),
                email_confirmed_at: None,
                user_metadata: Map::new(),
                app_metadata: Map::from_iter([
                    ("provider".to_owned(), json!("email")),
                    ("providers".to_owned(), json!(["email"])),
                ]),
                phone: String::new(),
                identity_id: uuid::Uuid::now_v7().to_string(),
                created_at: now(),
            };
            db.users.insert(u.id.clone(), u.clone());
            (u, "signup")
        }
    };
    let hashed = authmux::crypto::random_token(24);
    if kind == "magiclink" {
        // One magic-link token per user: mail.go (adminGenerateLink) writes
        // it to the user's recovery_token, and models/one_time_token.go
        // (CreateOneTimeToken) first deletes the user's earlier token of
        // that type, so a link generated before this one no longer
        // verifies (verify.go: 403 otp_expired).
        db.links.retain(|_, holder| *holder != u.id);
        db.links.insert(hashed.clone(), u.id.clone());
    }
    let mut out = user_json(&u);
    out["action_link"] = json!(format!("{}/verify?token={hashed}&type={kind}", db.issuer));
    out["email_otp"] = json!("123456");
    out["hashed_token"] = json!(hashed);
    out["verification_type"] = json!(kind);
    out["redirect_to"] = json!("http://localhost:3000");
    Json(out).into_response()
}

fn issue(db: &mut Db, user_id: &str, session_id: Option<String>) -> Value {
    let session_id = session_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    db.sessions
        .entry(session_id.clone())
        .or_insert((user_id.to_owned(), false));
    let refresh = authmux::crypto::random_token(24);
    db.refresh
        .insert(refresh.clone(), (session_id.clone(), false));
    let u = db.users.get(user_id).cloned();
    let key = db.keys.last().unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": db.issuer, "sub": user_id, "aud": "authenticated", "exp": now + 3600, "iat": now,
        "email": u.as_ref().map(|u| u.email.clone()), "phone": "", "role": "authenticated",
        "aal": "aal1", "amr": [{"method": "magiclink", "timestamp": now}],
        "session_id": session_id, "is_anonymous": false,
        "app_metadata": u.as_ref().map(|u| u.app_metadata.clone()),
        "user_metadata": u.as_ref().map(|u| u.user_metadata.clone()),
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    let access = jsonwebtoken::encode(&header, &claims, &key.private.encoding).unwrap();
    json!({
        "access_token": access, "token_type": "bearer", "expires_in": 3600, "expires_at": now + 3600,
        "refresh_token": refresh, "user": u.as_ref().map(user_json),
    })
}

/// The address GoTrue's limiter counts a request against.
fn client_address(req: &axum::http::HeaderMap) -> String {
    let get = |name: &str| {
        req.get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let secret = get("apikey").is_some_and(|k| k == SERVICE_ROLE_KEY);
    secret
        .then(|| get("sb-forwarded-for"))
        .flatten()
        .or_else(|| get("x-forwarded-for"))
        .unwrap_or_else(|| "peer".to_owned())
}

async fn verify(
    State(db): State<Shared>,
    headers: axum::http::HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    let at = std::time::Instant::now();
    let hits = db.verify_hits.entry(client_address(&headers)).or_default();
    hits.retain(|t| at.duration_since(*t) < std::time::Duration::from_secs(300));
    if hits.len() >= VERIFY_LIMIT {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "over_request_rate_limit",
            "Request rate limit reached",
        );
    }
    hits.push(at);
    let Some(user_id) = b["token_hash"].as_str().and_then(|h| db.links.remove(h)) else {
        return error(
            StatusCode::FORBIDDEN,
            "otp_expired",
            "Email link is invalid or has expired",
        );
    };
    // The link proves the address (verify.go: user.Confirm).
    if let Some(u) = db.users.get_mut(&user_id)
        && u.email_confirmed_at.is_none()
    {
        u.email_confirmed_at = Some(now());
    }
    let out = issue(&mut db, &user_id, None);
    Json(out).into_response()
}

async fn token(
    State(db): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    Json(b): Json<Value>,
) -> Response {
    let mut db = db.lock().unwrap();
    match q.get("grant_type").map(String::as_str) {
        // internal/api/token.go, ResourceOwnerPasswordGrant: an unknown
        // user or a wrong password is 400 invalid_credentials; only then is
        // an unconfirmed email refused, 400 email_not_confirmed
        // (internal/api/apierrors/errorcode.go), with no session opened.
        Some("password") => {
            let email = b["email"].as_str().unwrap_or("").to_lowercase();
            let given = bcrypt_input(b["password"].as_str().unwrap_or(""));
            let found = db
                .users
                .values()
                .find(|u| {
                    u.email == email && u.password.as_deref().map(bcrypt_input) == Some(given)
                })
                .map(|u| {
                    (
                        u.id.clone(),
                        u.email_confirmed_at.is_some() || db.allow_unverified_sign_ins,
                    )
                });
            match found {
                None => error(
                    StatusCode::BAD_REQUEST,
                    "invalid_credentials",
                    "Invalid login credentials",
                ),
                Some((_, false)) => error(
                    StatusCode::BAD_REQUEST,
                    "email_not_confirmed",
                    "Email not confirmed",
                ),
                Some((id, true)) => Json(issue(&mut db, &id, None)).into_response(),
            }
        }
        Some("refresh_token") => {
            let token = b["refresh_token"].as_str().unwrap_or("").to_owned();
            // internal/api/token.go, RefreshTokenGrant, with the error codes
            // of internal/api/apierrors/errorcode.go.
            let Some((session_id, used)) = db.refresh.get(&token).cloned() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found",
                );
            };
            if used {
                return error(
                    StatusCode::BAD_REQUEST,
                    "refresh_token_already_used",
                    "Invalid Refresh Token: Already Used",
                );
            }
            let Some((user_id, revoked)) = db.sessions.get(&session_id).cloned() else {
                return oauth_error("Invalid Refresh Token: Session Expired");
            };
            if revoked {
                return oauth_error("Invalid Refresh Token: Session Expired (Revoked)");
            }
            db.refresh.insert(token, (session_id.clone(), true));
            Json(issue(&mut db, &user_id, Some(session_id))).into_response()
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "unsupported_grant_type",
        ),
    }
}

async fn logout(State(db): State<Shared>, req: Request) -> Response {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let mut db = db.lock().unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["authenticated"]);
    let claims = db
        .keys
        .iter()
        .find_map(|k| jsonwebtoken::decode::<Value>(&bearer, &k.public.decoding, &v).ok());
    let Some(claims) = claims else {
        return error(
            StatusCode::UNAUTHORIZED,
            "bad_jwt",
            "invalid JWT: unable to parse or verify signature",
        );
    };
    let sid = claims.claims["session_id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if let Some(s) = db.sessions.get_mut(&sid) {
        s.1 = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn jwks(State(db): State<Shared>) -> Response {
    let db = db.lock().unwrap();
    let keys: Vec<Value> = db.keys.iter().map(|k| k.jwk.clone()).collect();
    (
        [("cache-control", "public, max-age=600")],
        Json(json!({"keys": keys})),
    )
        .into_response()
}

/// Starts an emulator; its base URL ends in `/auth/v1`.
pub async fn start() -> (Running, Handle) {
    let db: Shared = Arc::default();
    db.lock().unwrap().keys.push(new_key());
    let faults: SharedFaults = Arc::new(Mutex::new(Faults::default()));
    let admin = axum::Router::new()
        .route("/admin/users", post(create_user).get(list_users))
        .route(
            "/admin/users/{id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route("/admin/users/{id}/factors", get(factors))
        .route(
            "/admin/users/{id}/factors/{factor_id}",
            delete(|| async { Json(json!({})) }),
        )
        .route("/admin/generate_link", post(generate_link))
        .layer(from_fn(admin_auth));
    let public = axum::Router::new()
        .route("/verify", post(verify))
        .route("/token", post(token))
        .route("/logout", post(logout))
        .layer(from_fn(apikey_auth));
    let api = admin
        .merge(public)
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/health",
            get(|| async { Json(json!({"version": "emulator", "name": "GoTrue", "description": "GoTrue is a user registration and authentication API"})) }),
        )
        .with_state(db.clone())
        .layer(from_fn_with_state(faults.clone(), |s, r, n| {
            inject(s, r, n, errors)
        }));
    let running = serve(
        |base| {
            db.lock().unwrap().issuer = base.to_owned();
            axum::Router::new().nest("/auth/v1", api)
        },
        "/auth/v1",
        faults,
    )
    .await;
    (running, Handle(db))
}
