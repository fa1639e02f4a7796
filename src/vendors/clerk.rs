//! Clerk, through its Backend API (`Clerk-API-Version: 2026-05-12`).
//! Users map one to one; metadata lives in `public_metadata` (replaced
//! through `PUT /users/{id}/metadata`); TOTP secrets made here are handed
//! to Clerk as `totp_secret`; passwords and codes are checked by Clerk's
//! `verify_password` / `verify_totp`.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::{Policy, Retry, VendorHttp};
use super::native::new_totp;
use super::{
    FoundUser, IdentityVendor, MfaEnrollment, NewIdentity, PasswordCheck, Result, SignInContext,
    Taken, TokenSource, VendorError, VendorFailure, VendorKind, VendorSession, VendorSpec,
    VendorUser, decode, gone_is_done, unavailable, unsupported, vendor_error,
};

/// The API version every request pins.
pub const API_VERSION: &str = "2026-05-12";
/// What a production instance can't do through the Backend API.
const PRODUCTION_SESSIONS: &str = "auth.session.create on a production Clerk instance (sk_live_ key: Clerk's Backend API opens sessions only on development instances; sign users in through Clerk's Frontend API)";

/// Clerk's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.clerk.com/v1";

/// Clerk, as the registry knows it.
pub const SPEC: VendorSpec = VendorSpec {
    name: "clerk",
    setup_hint: "set AUTHMUX_CLERK_SECRET_KEY",
    build: |creds, policy| {
        let cfg = ClerkConfig {
            issuer: creds.issuer.clone(),
            base_url: creds
                .url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            secret_key: creds.secret(),
        };
        Ok(std::sync::Arc::new(Clerk::new(cfg, policy)))
    },
};

/// Where Clerk is and the key that opens it.
#[derive(Clone)]
pub struct ClerkConfig {
    /// e.g. `https://api.clerk.com/v1`
    pub base_url: String,
    /// The `iss` of session tokens (the instance's Frontend API URL);
    /// read from `GET /domains` when unset.
    pub issuer: Option<String>,
    /// `sk_…`
    pub secret_key: String,
}

impl std::fmt::Debug for ClerkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClerkConfig {{ base_url: {:?}, secret_key: <redacted> }}",
            self.base_url
        )
    }
}

/// The Clerk adapter.
pub struct Clerk {
    cfg: ClerkConfig,
    http: VendorHttp,
    session_token_ttl: std::time::Duration,
    /// The Frontend API URL, once known.
    frontend_api: tokio::sync::OnceCell<String>,
}

/// Clerk holds public, private and unsafe metadata together up to 8 KB
/// (docs, user metadata); authmux writes only the private part.
pub const METADATA_LIMIT: usize = 8 * 1024;

fn check_metadata(metadata: &Map<String, Value>) -> Result<()> {
    let size = serde_json::to_vec(metadata)
        .map_err(VendorError::internal)?
        .len();
    if size > METADATA_LIMIT {
        return Err(VendorError::Invalid(format!(
            "metadata is {size} bytes as JSON; Clerk keeps at most {METADATA_LIMIT}"
        )));
    }
    Ok(())
}

/// A Clerk user (bapi-2026-05-12.yml, `User`), the fields authmux reads.
#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    primary_email_address_id: Option<String>,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    phone_numbers: Vec<PhoneNumber>,
    #[serde(default)]
    totp_enabled: bool,
    #[serde(default)]
    two_factor_enabled: bool,
}

#[derive(Deserialize)]
struct EmailAddress {
    id: String,
    email_address: String,
    #[serde(default)]
    verification: Option<Verification>,
}

#[derive(Deserialize)]
struct Verification {
    status: String,
}

/// A phone number resource.
#[derive(Deserialize)]
struct PhoneNumber {
    id: String,
    phone_number: Option<String>,
}

/// Any object, by its id.
#[derive(Deserialize)]
struct Object {
    id: String,
}

/// `POST /sessions/{id}/tokens`.
#[derive(Deserialize)]
struct Token {
    jwt: String,
}

/// `verify_password` / `verify_totp`.
#[derive(Deserialize)]
struct Verified {
    verified: bool,
}

/// `GET /domains`.
#[derive(Deserialize)]
struct Domains {
    data: Vec<Domain>,
}

#[derive(Deserialize)]
struct Domain {
    #[serde(default)]
    is_satellite: bool,
    frontend_api_url: String,
}

/// `ClerkErrors`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ClerkErrors {
    errors: Vec<ClerkError>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ClerkError {
    code: Option<String>,
    message: Option<String>,
    long_message: Option<String>,
    meta: Option<ClerkErrorMeta>,
}

/// An error's `meta`: which parameter it is about.
#[derive(Debug, Deserialize)]
struct ClerkErrorMeta {
    param_name: Option<String>,
}

impl User {
    /// The primary address (or the first).
    fn primary_email(&self) -> Option<&EmailAddress> {
        self.email_addresses
            .iter()
            .find(|e| Some(&e.id) == self.primary_email_address_id.as_ref())
            .or(self.email_addresses.first())
    }
}

/// Maps a Clerk error reply to ours; never echoes credentials.
fn clerk_error(status: StatusCode, body: &Value) -> VendorError {
    let errors = ClerkErrors::deserialize(body).unwrap_or_default();
    let first = errors.errors.into_iter().next().unwrap_or_default();
    let code = first.code.as_deref().unwrap_or("");
    let message = first
        .long_message
        .as_deref()
        .or(first.message.as_deref())
        .unwrap_or("no message");
    vendor_error(
        VendorKind::Clerk,
        VendorFailure {
            status: status.as_u16(),
            // `form_identifier_exists` names the identifier taken in
            // `meta.param_name` (clerk/javascript's localizations key it
            // as `form_identifier_exists__phone_number`, ...).
            taken: (code == "form_identifier_exists").then(|| {
                match first.meta.as_ref().and_then(|m| m.param_name.as_deref()) {
                    Some("phone_number") => Taken::Phone,
                    _ => Taken::Email,
                }
            }),
            not_found: code == "resource_not_found",
            user_credentials: false,
            code,
            message,
        },
    )
}

impl Clerk {
    /// An adapter for one set of credentials.
    pub fn new(cfg: ClerkConfig, policy: Policy) -> Self {
        let cfg_issuer = cfg.issuer.clone();
        Clerk {
            cfg,
            http: VendorHttp::new("clerk", policy),
            session_token_ttl: policy.session_token_ttl,
            frontend_api: tokio::sync::OnceCell::new_with(cfg_issuer),
        }
    }

    /// A production instance's key (`sk_live_…`): Clerk's Backend API
    /// opens no sessions there.
    fn is_production(&self) -> bool {
        self.cfg.secret_key.starts_with("sk_live_")
    }

    /// The headers of every Backend API call: the key and the API version.
    fn headers(&self) -> [(&'static str, String); 2] {
        [
            ("authorization", format!("Bearer {}", self.cfg.secret_key)),
            ("clerk-api-version", API_VERSION.to_owned()),
        ]
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url.trim_end_matches('/'))
    }

    /// Sends one request; returns the body of a 2xx reply, maps the rest.
    async fn send(
        &self,
        op: &'static str,
        retry: Retry,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let headers = self.headers();
        let (status, reply) = self
            .http
            .request(op, retry, method, &self.url(path), &headers, body)
            .await
            .map_err(|e| unavailable(VendorKind::Clerk, e))?;
        if status.is_success() {
            Ok(reply)
        } else {
            Err(clerk_error(status, &reply))
        }
    }

    /// `send`, its reply read into `T`.
    async fn send_as<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        retry: Retry,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T> {
        let reply = self.send(op, retry, method, path, body).await?;
        decode(VendorKind::Clerk, op, reply)
    }

    async fn user(&self, id: &str) -> Result<User> {
        self.send_as(
            "get_user",
            Retry::Safe,
            reqwest::Method::GET,
            &format!("/users/{id}"),
            None,
        )
        .await
    }

    /// A fresh session token for a Clerk session, asked to live as long as
    /// authmux's access tokens (Clerk's own default is 60 s, far shorter
    /// than the refresh cooldown). A session Clerk no longer holds active
    /// (a 4xx) is `AUTH_SESSION_INVALID`.
    async fn token(&self, session_id: &str) -> Result<VendorSession> {
        // CreateSessionToken: expires_in_seconds between 30 and 315,360,000.
        let ttl = self.session_token_ttl.as_secs().clamp(30, 315_360_000);
        let t: Token = self
            .send_as(
                "create_session_token",
                Retry::Never,
                reqwest::Method::POST,
                &format!("/sessions/{session_id}/tokens"),
                Some(&json!({"expires_in_seconds": ttl})),
            )
            .await
            .map_err(|e| match e {
                VendorError::Invalid(_) | VendorError::NotFound(_) => {
                    VendorError::SessionEnded("clerk no longer holds this session active".into())
                }
                e => e,
            })?;
        let jwt = t.jwt;
        let exp = crate::tokens::verify::peek_expiry(&jwt)
            .ok_or_else(|| VendorError::Protocol("clerk token without exp".into()))?;
        Ok(VendorSession {
            vendor_session_id: session_id.to_owned(),
            access_token: jwt,
            expires_at: exp * 1000,
            credential: None,
        })
    }

    /// A check (`verify_password`, `verify_totp`): 200 verified, 400/422 not.
    async fn check(&self, path: &str, body: Value) -> Result<bool> {
        match self
            .send_as::<Verified>(
                "verify_credential",
                Retry::Never,
                reqwest::Method::POST,
                path,
                Some(&body),
            )
            .await
        {
            Ok(v) => Ok(v.verified),
            Err(VendorError::Invalid(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl IdentityVendor for Clerk {
    fn kind(&self) -> VendorKind {
        VendorKind::Clerk
    }

    /// One call: the address is created `reserved` (unverified, usable
    /// for sign-in, locked to this user) rather than Clerk's default of
    /// verified (bapi-2026-05-12.yml, CreateUser), and the metadata goes in
    /// the backend-only `private_metadata`.
    async fn create_user(&self, _project_id: &str, new: NewIdentity<'_>) -> Result<String> {
        check_metadata(new.metadata)?;
        let mut body = json!({
            "email_address": [new.email],
            "email_address_identification_status": ["reserved"],
            "external_id": new.user_id,
            "private_metadata": new.metadata,
        });
        match new.password {
            Some(p) => body["password"] = json!(p),
            None => body["skip_password_requirement"] = json!(true),
        }
        let user: Object = self
            .send_as(
                "create_user",
                Retry::Never,
                reqwest::Method::POST,
                "/users",
                Some(&body),
            )
            .await?;
        Ok(user.id)
    }

    async fn fetch_user(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
    ) -> Result<Option<VendorUser>> {
        let user = self.user(vendor_user_id).await?;
        let email = user.primary_email();
        Ok(Some(VendorUser {
            email: email.map(|e| e.email_address.clone()).unwrap_or_default(),
            email_verified: email
                .and_then(|e| e.verification.as_ref())
                .is_some_and(|v| v.status == "verified"),
            mfa_enabled: user.totp_enabled || user.two_factor_enabled,
        }))
    }

    /// The user object (`GetUser`: addresses, phone numbers, external
    /// accounts, every metadata field) and the user's sessions
    /// (`GetSessionList` with `user_id`: a bare array, newest first, at
    /// most 500 a page with `limit`/`offset`; Clerk prunes old inactive
    /// ones itself).
    async fn export_user(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
    ) -> Result<Option<Map<String, Value>>> {
        const PAGE: usize = 500;
        let user = self
            .send(
                "get_user",
                Retry::Safe,
                reqwest::Method::GET,
                &format!("/users/{vendor_user_id}"),
                None,
            )
            .await?;
        let mut sessions = Vec::new();
        loop {
            let page: Vec<Value> = self
                .send_as(
                    "list_sessions",
                    Retry::Safe,
                    reqwest::Method::GET,
                    &format!(
                        "/sessions?user_id={vendor_user_id}&limit={PAGE}&offset={}",
                        sessions.len()
                    ),
                    None,
                )
                .await?;
            let last = page.len() < PAGE;
            sessions.extend(page);
            if last {
                break;
            }
            if sessions.len() >= 100 * PAGE {
                return Err(VendorError::Protocol(
                    "clerk kept listing sessions past 50,000".into(),
                ));
            }
        }
        Ok(Some(Map::from_iter([
            ("user".to_owned(), user),
            ("sessions".to_owned(), Value::Array(sessions)),
        ])))
    }

    /// `PUT /users/{id}/metadata` replaces `private_metadata` whole.
    async fn set_metadata(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        metadata: &Map<String, Value>,
    ) -> Result<()> {
        check_metadata(metadata)?;
        self.send(
            "set_metadata",
            Retry::Safe,
            reqwest::Method::PUT,
            &format!("/users/{vendor_user_id}/metadata"),
            Some(&json!({"private_metadata": metadata})),
        )
        .await
        .map(drop)
    }

    /// Verifying is `PATCH /email_addresses/{id} {verified: true}`; the
    /// spec documents no way back, so un-verifying replaces the address
    /// with itself, `reserved` (ReplaceUserEmailAddress).
    async fn set_email_verified(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        verified: bool,
    ) -> Result<()> {
        let user = self.user(vendor_user_id).await?;
        let email = user
            .primary_email()
            .ok_or_else(|| VendorError::Protocol("clerk user has no email address".into()))?;
        let (email_id, address) = (&email.id, &email.email_address);
        let (method, path, body) = if verified {
            (
                reqwest::Method::PATCH,
                format!("/email_addresses/{email_id}"),
                json!({"verified": true}),
            )
        } else {
            (
                reqwest::Method::PUT,
                format!("/users/{vendor_user_id}/email_address"),
                json!({"email_address": address, "identification_status": "reserved"}),
            )
        };
        self.send(
            "set_email_verified",
            Retry::Safe,
            method,
            &path,
            Some(&body),
        )
        .await
        .map(drop)
    }

    async fn set_phone(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        phone: Option<&str>,
    ) -> Result<()> {
        let user = self.user(vendor_user_id).await?;
        let has = |user: &User, number: &str| {
            user.phone_numbers
                .iter()
                .any(|p| p.phone_number.as_deref() == Some(number))
        };
        if let Some(phone) = phone
            && !has(&user, phone)
        {
            let created = self
                .send(
                    "create_phone_number",
                    Retry::Never,
                    reqwest::Method::POST,
                    "/phone_numbers",
                    Some(&json!({"user_id": vendor_user_id, "phone_number": phone,
                                 "verified": false, "primary": true})),
                )
                .await;
            match created {
                // The same change sent twice at once: the other one added
                // it to this very user (a number is one identification).
                Err(VendorError::PhoneTaken(_))
                    if has(&self.user(vendor_user_id).await?, phone) => {}
                other => drop(other?),
            }
        }
        let existing = user
            .phone_numbers
            .into_iter()
            .filter(|p| p.phone_number.as_deref() != phone)
            .map(|p| p.id);
        for id in existing {
            gone_is_done(
                self.send(
                    "delete_phone_number",
                    Retry::Safe,
                    reqwest::Method::DELETE,
                    &format!("/phone_numbers/{id}"),
                    None,
                )
                .await,
            )?;
        }
        Ok(())
    }

    async fn set_password(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        _email: &str,
        password: &str,
    ) -> Result<()> {
        // The instance's password policy applies as it does on create
        // (its breached-password check included): no `skip_password_checks`.
        self.send(
            "set_password",
            Retry::Safe,
            reqwest::Method::PATCH,
            &format!("/users/{vendor_user_id}"),
            Some(&json!({"password": password})),
        )
        .await
        .map(drop)
    }

    async fn enroll_totp(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        email: &str,
    ) -> Result<MfaEnrollment> {
        let (_, enrollment) = new_totp(email)?;
        self.send(
            "enroll_totp",
            Retry::Safe,
            reqwest::Method::PATCH,
            &format!("/users/{vendor_user_id}"),
            Some(&json!({"totp_secret": enrollment.secret})),
        )
        .await?;
        Ok(enrollment)
    }

    async fn disable_mfa(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        self.send(
            "disable_mfa",
            Retry::Safe,
            reqwest::Method::DELETE,
            &format!("/users/{vendor_user_id}/mfa"),
            None,
        )
        .await
        .map(drop)
    }

    async fn delete_user(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        gone_is_done(
            self.send(
                "delete_user",
                Retry::Safe,
                reqwest::Method::DELETE,
                &format!("/users/{vendor_user_id}"),
                None,
            )
            .await,
        )
    }

    async fn verify_password(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        password: &str,
        _cx: SignInContext<'_>,
    ) -> Result<PasswordCheck> {
        let right = self
            .check(
                &format!("/users/{vendor_user_id}/verify_password"),
                json!({"password": password}),
            )
            .await?;
        Ok(if right {
            PasswordCheck::Right(None)
        } else {
            PasswordCheck::Wrong
        })
    }

    async fn verify_totp(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        code: &str,
    ) -> Result<bool> {
        self.check(
            &format!("/users/{vendor_user_id}/verify_totp"),
            json!({"code": code}),
        )
        .await
    }

    /// `POST /sessions` is "intended only for use in testing, and is not
    /// available for production instances" (bapi-2026-05-12.yml,
    /// CreateSession): with a live key authmux says so instead of asking.
    async fn create_session(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        _cx: SignInContext<'_>,
    ) -> Result<VendorSession> {
        if self.is_production() {
            return Err(unsupported(VendorKind::Clerk, PRODUCTION_SESSIONS));
        }
        let session: Object = self
            .send_as(
                "create_session",
                Retry::Never,
                reqwest::Method::POST,
                "/sessions",
                Some(&json!({"user_id": vendor_user_id})),
            )
            .await?;
        self.token(&session.id).await
    }

    async fn refresh_session(
        &self,
        _project_id: &str,
        vendor_session_id: &str,
        _credential: Option<&str>,
    ) -> Result<VendorSession> {
        // Clerk's /refresh needs the browser's cookie; for a server-side
        // session, minting a new token while the session is active is the
        // refresh.
        self.token(vendor_session_id).await
    }

    /// Clerk answers 400 for a session that already ended: done too.
    async fn revoke_session(
        &self,
        _project_id: &str,
        vendor_session_id: &str,
        _credential: Option<&str>,
    ) -> Result<()> {
        match self
            .send(
                "revoke_session",
                Retry::Safe,
                reqwest::Method::POST,
                &format!("/sessions/{vendor_session_id}/revoke"),
                None,
            )
            .await
        {
            Err(VendorError::Invalid(_)) => Ok(()),
            other => gone_is_done(other),
        }
    }

    async fn find_user_by_email(
        &self,
        _project_id: &str,
        email: &str,
    ) -> Result<Option<FoundUser>> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("email_address", email)
            .finish();
        let users: Vec<User> = self
            .send_as(
                "find_user_by_email",
                Retry::Safe,
                reqwest::Method::GET,
                &format!("/users?{q}"),
                None,
            )
            .await?;
        Ok(users.into_iter().next().map(|u| FoundUser {
            id: u.id,
            external_id: u.external_id,
        }))
    }

    async fn health_check(&self) -> bool {
        let headers = self.headers();
        self.http.probe(&self.url("/jwks"), &headers).await
    }

    fn check_metadata(&self, metadata: &Map<String, Value>) -> Result<()> {
        check_metadata(metadata)
    }

    fn supports(&self, capability: &str) -> bool {
        capability != "auth.session.create" || !self.is_production()
    }

    fn http(&self) -> Option<&VendorHttp> {
        Some(&self.http)
    }

    /// Session tokens carry the Frontend API URL as `iss`, not the
    /// Backend API's (Clerk docs, session tokens); unless configured it is
    /// the primary domain's `frontend_api_url` from `GET /domains`.
    async fn token_source(&self) -> Option<TokenSource> {
        let issuer = self
            .frontend_api
            .get_or_try_init(|| async {
                let domains = self
                    .send_as::<Domains>(
                        "list_domains",
                        Retry::Safe,
                        reqwest::Method::GET,
                        "/domains",
                        None,
                    )
                    .await?;
                domains
                    .data
                    .into_iter()
                    .find(|d| !d.is_satellite)
                    .map(|d| d.frontend_api_url.trim_end_matches('/').to_owned())
                    .ok_or_else(|| VendorError::Protocol("clerk lists no primary domain".into()))
            })
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "clerk's Frontend API URL is unknown"))
            .ok()?;
        Some(TokenSource {
            issuer: issuer.clone(),
            jwks_url: self.url("/jwks"),
            jwks_headers: self.headers().to_vec(),
        })
    }
}
