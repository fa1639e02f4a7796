//! WorkOS User Management (AuthKit): users under `/user_management/users`
//! (updates by `PUT`), TOTP factors, the password and magic-auth grants of
//! `/user_management/authenticate` (with `client_id` and the API key as
//! `client_secret`) for sign-in, the refresh-token grant, session revoke,
//! and RS256 tokens verified against `/sso/jwks/{client_id}`. Metadata stays
//! in authmux's index: WorkOS accepts only short string values there.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::http::{Policy, VendorHttp};
use super::{
    FoundUser, IdentityVendor, MfaEnrollment, NewIdentity, TokenSource, VendorFailure, VendorKind,
    VendorSession, VendorUser, gone_is_done, unavailable, vendor_error,
};
use crate::domain::{Error, ErrorCode, Result};
use crate::tokens::verify::peek_claim;

/// WorkOS's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.workos.com";

/// Where WorkOS is, the key that opens it and the AuthKit client.
#[derive(Clone)]
pub struct WorkosConfig {
    /// e.g. `https://api.workos.com`
    pub base_url: String,
    /// `sk_…`
    pub api_key: String,
    /// `client_…`
    pub client_id: String,
    /// The `iss` of access tokens.
    pub issuer: String,
}

impl std::fmt::Debug for WorkosConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WorkosConfig {{ base_url: {:?}, client_id: {:?}, issuer: {:?}, api_key: <redacted> }}",
            self.base_url, self.client_id, self.issuer
        )
    }
}

/// The WorkOS adapter.
pub struct Workos {
    cfg: WorkosConfig,
    http: VendorHttp,
}

/// Maps a WorkOS error reply (`{code, message, errors}`, `{message}` or the
/// OAuth form).
fn workos_error(status: StatusCode, body: &Value) -> Error {
    let codes: Vec<&str> = std::iter::once(body["code"].as_str())
        .chain(std::iter::once(body["error"].as_str()))
        .chain(
            body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["code"].as_str()),
        )
        .flatten()
        .collect();
    let message = body["message"]
        .as_str()
        .or(body["error_description"].as_str())
        .unwrap_or("no message");
    let has = |c: &str| codes.contains(&c);
    vendor_error(
        VendorKind::Workos,
        VendorFailure {
            status: status.as_u16(),
            exists: has("email_not_available") || has("user_already_exists"),
            not_found: false,
            user_credentials: has("invalid_credentials"),
            code: codes.first().copied().unwrap_or(""),
            message,
        },
    )
}

impl Workos {
    /// An adapter for one set of credentials.
    pub fn new(cfg: WorkosConfig, policy: Policy) -> Self {
        Workos {
            cfg,
            http: VendorHttp::new("workos", policy),
        }
    }

    /// The HTTP client, for discovery (breaker state, latency).
    pub fn http(&self) -> &VendorHttp {
        &self.http
    }

    /// Changes fields of a WorkOS user (`PUT /user_management/users/{id}`).
    async fn update_user(&self, vendor_user_id: &str, fields: Value) -> Result<()> {
        self.send(
            true,
            Method::PUT,
            &format!("/user_management/users/{vendor_user_id}"),
            Some(&fields),
        )
        .await
        .map(drop)
    }

    async fn send(
        &self,
        idempotent: bool,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.cfg.base_url.trim_end_matches('/'));
        let headers = [("authorization", format!("Bearer {}", self.cfg.api_key))];
        let (status, reply) = self
            .http
            .request(idempotent, method, &url, &headers, body)
            .await
            .map_err(|e| unavailable(VendorKind::Workos, e))?;
        if status.is_success() {
            Ok(reply)
        } else {
            Err(workos_error(status, &reply))
        }
    }

    async fn user(&self, id: &str) -> Result<Value> {
        self.send(
            true,
            Method::GET,
            &format!("/user_management/users/{id}"),
            None,
        )
        .await
    }

    async fn authenticate(&self, grant: Value) -> Result<Value> {
        let mut body = grant;
        body["client_id"] = json!(self.cfg.client_id);
        body["client_secret"] = json!(self.cfg.api_key);
        self.send(
            false,
            Method::POST,
            "/user_management/authenticate",
            Some(&body),
        )
        .await
    }

    fn session_from(reply: &Value) -> Result<VendorSession> {
        let bad = || Error::new(ErrorCode::VendorError, "workos returned no session");
        let access = reply["access_token"].as_str().ok_or_else(bad)?.to_owned();
        let refresh = reply["refresh_token"].as_str().ok_or_else(bad)?.to_owned();
        let sid = peek_claim(&access, "sid").ok_or_else(bad)?;
        let exp = peek_claim(&access, "exp")
            .and_then(|e| e.parse::<i64>().ok())
            .ok_or_else(bad)?;
        Ok(VendorSession {
            vendor_session_id: sid,
            access_token: access,
            expires_at: exp * 1000,
            credential: Some(refresh),
        })
    }

    async fn factors(&self, user_id: &str) -> Result<Vec<String>> {
        let list = self
            .send(
                true,
                Method::GET,
                &format!("/user_management/users/{user_id}/auth_factors"),
                None,
            )
            .await?;
        Ok(list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["id"].as_str().map(str::to_owned))
            .collect())
    }

    async fn revoke(&self, vendor_session_id: &str) -> Result<()> {
        self.send(
            true,
            Method::POST,
            "/user_management/sessions/revoke",
            Some(&json!({"session_id": vendor_session_id})),
        )
        .await
        .map(drop)
    }
}

#[async_trait::async_trait]
impl IdentityVendor for Workos {
    fn kind(&self) -> VendorKind {
        VendorKind::Workos
    }

    async fn create_user(&self, _project_id: &str, new: NewIdentity<'_>) -> Result<String> {
        let mut body = json!({
            "email": new.email,
            "email_verified": false,
            "external_id": new.user_id,
        });
        if let Some(p) = new.password {
            body["password"] = json!(p);
        }
        let user = self
            .send(false, Method::POST, "/user_management/users", Some(&body))
            .await?;
        user["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::new(ErrorCode::VendorError, "workos returned a user without id"))
    }

    async fn fetch_user(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
    ) -> Result<Option<VendorUser>> {
        let user = self.user(vendor_user_id).await?;
        let mfa_enabled = !self.factors(vendor_user_id).await?.is_empty();
        Ok(Some(VendorUser {
            email: user["email"].as_str().unwrap_or_default().to_owned(),
            email_verified: user["email_verified"].as_bool().unwrap_or(false),
            mfa_enabled,
        }))
    }

    async fn set_metadata(&self, _: &str, _: &str, _: &Map<String, Value>) -> Result<()> {
        // Kept in authmux's index (WorkOS metadata takes only short strings).
        Ok(())
    }

    async fn set_email_verified(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        verified: bool,
    ) -> Result<()> {
        self.update_user(vendor_user_id, json!({"email_verified": verified}))
            .await
    }

    async fn set_password(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        password: &str,
    ) -> Result<()> {
        self.update_user(vendor_user_id, json!({"password": password}))
            .await
    }

    async fn enroll_totp(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        email: &str,
    ) -> Result<MfaEnrollment> {
        let reply = self
            .send(
                false,
                Method::POST,
                &format!("/user_management/users/{vendor_user_id}/auth_factors"),
                Some(&json!({"type": "totp", "totp_issuer": "authmux", "totp_user": email})),
            )
            .await?;
        let totp = &reply["authentication_factor"]["totp"];
        match (totp["secret"].as_str(), totp["uri"].as_str()) {
            (Some(secret), Some(uri)) => Ok(MfaEnrollment {
                secret: secret.to_owned(),
                otpauth_uri: uri.to_owned(),
            }),
            _ => Err(Error::new(
                ErrorCode::VendorError,
                "workos returned no TOTP secret",
            )),
        }
    }

    async fn disable_mfa(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        for id in self.factors(vendor_user_id).await? {
            self.send(true, Method::DELETE, &format!("/auth/factors/{id}"), None)
                .await?;
        }
        Ok(())
    }

    async fn delete_user(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        gone_is_done(
            self.send(
                true,
                Method::DELETE,
                &format!("/user_management/users/{vendor_user_id}"),
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
    ) -> Result<bool> {
        let email = self.user(vendor_user_id).await?["email"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match self
            .authenticate(json!({"grant_type": "password", "email": email, "password": password}))
            .await
        {
            Ok(reply) => {
                // The check opened a session at WorkOS; close it.
                if let Ok(s) = Self::session_from(&reply) {
                    self.revoke(&s.vendor_session_id).await?;
                }
                Ok(true)
            }
            Err(e) if e.code == ErrorCode::InvalidArgument => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn verify_totp(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        code: &str,
    ) -> Result<bool> {
        let Some(factor) = self.factors(vendor_user_id).await?.into_iter().next() else {
            return Ok(false);
        };
        let challenge = self
            .send(
                false,
                Method::POST,
                &format!("/auth/factors/{factor}/challenge"),
                Some(&json!({})),
            )
            .await?;
        let id = challenge["id"]
            .as_str()
            .ok_or_else(|| Error::new(ErrorCode::VendorError, "workos returned no challenge"))?;
        match self
            .send(
                false,
                Method::POST,
                &format!("/auth/challenges/{id}/verify"),
                Some(&json!({"code": code})),
            )
            .await
        {
            Ok(v) => Ok(v["valid"].as_bool().unwrap_or(false)),
            Err(e) if e.code == ErrorCode::InvalidArgument => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn create_session(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
    ) -> Result<VendorSession> {
        let email = self.user(vendor_user_id).await?["email"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let magic = self
            .send(
                false,
                Method::POST,
                "/user_management/magic_auth",
                Some(&json!({"email": email})),
            )
            .await?;
        let code = magic["code"].as_str().ok_or_else(|| {
            Error::new(ErrorCode::VendorError, "workos returned no magic-auth code")
        })?;
        let reply = self
            .authenticate(json!({
                "grant_type": "urn:workos:oauth:grant-type:magic-auth:code",
                "code": code,
                "email": email,
            }))
            .await?;
        Self::session_from(&reply)
    }

    async fn refresh_session(
        &self,
        _project_id: &str,
        _vendor_session_id: &str,
        credential: Option<&str>,
    ) -> Result<VendorSession> {
        let refresh =
            credential.ok_or_else(|| Error::internal("a workos session without its credential"))?;
        match self
            .authenticate(json!({"grant_type": "refresh_token", "refresh_token": refresh}))
            .await
        {
            Ok(reply) => Self::session_from(&reply),
            Err(e) if e.code == ErrorCode::InvalidArgument => Err(Error::new(
                ErrorCode::AuthSessionInvalid,
                "workos no longer accepts this session",
            )),
            Err(e) => Err(e),
        }
    }

    async fn revoke_session(
        &self,
        _project_id: &str,
        vendor_session_id: &str,
        _credential: Option<&str>,
    ) -> Result<()> {
        gone_is_done(self.revoke(vendor_session_id).await)
    }

    async fn find_user_by_email(
        &self,
        _project_id: &str,
        email: &str,
    ) -> Result<Option<FoundUser>> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .finish();
        let list = self
            .send(
                true,
                Method::GET,
                &format!("/user_management/users?{q}"),
                None,
            )
            .await?;
        let user = &list["data"][0];
        Ok(user["id"].as_str().map(|id| FoundUser {
            id: id.to_owned(),
            external_id: user["external_id"].as_str().map(str::to_owned),
        }))
    }

    async fn health_check(&self) -> bool {
        let url = format!(
            "{}/sso/jwks/{}",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.client_id
        );
        self.http.probe(&url, &[]).await
    }

    fn token_source(&self) -> Option<TokenSource> {
        Some(TokenSource {
            issuer: self.cfg.issuer.clone(),
            jwks_url: format!(
                "{}/sso/jwks/{}",
                self.cfg.base_url.trim_end_matches('/'),
                self.cfg.client_id
            ),
            jwks_headers: Vec::new(),
        })
    }
}
