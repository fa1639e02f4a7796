//! Supabase Auth (GoTrue), through the routes its server really serves
//! (`internal/api/api.go`): admin user routes with `apikey` + service-role
//! bearer, `generate_link` + `verify` for a password-less server-side mint,
//! the refresh-token grant, and `/logout` with the session's own access
//! token. Tokens are ES256 (or RS256) with the session in `session_id`.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::{Policy, Retry, VendorHttp};
use super::{
    FoundUser, IdentityVendor, MfaEnrollment, NewIdentity, PasswordCheck, Result, SignInContext,
    Taken, TokenSource, VendorError, VendorFailure, VendorKind, VendorSession, VendorSpec,
    VendorUser, decode, gone_is_done, mint_for_another_user, unavailable, unless_gone, unsupported,
    vendor_error,
};

use crate::tokens::verify::peek_claim;

/// Supabase, as the registry knows it.
pub const SPEC: VendorSpec = VendorSpec {
    name: "supabase",
    setup_hint: "set AUTHMUX_SUPABASE_URL and AUTHMUX_SUPABASE_SERVICE_ROLE_KEY",
    build: |creds, policy| {
        let url = creds
            .url
            .clone()
            .ok_or_else(|| VendorError::Invalid("supabase needs the project URL".into()))?;
        let cfg = SupabaseConfig::new(&url, creds.secret());
        Ok(std::sync::Arc::new(Supabase::new(cfg, policy)))
    },
};

/// Where a Supabase project's auth server is and the key that administers it.
#[derive(Clone)]
pub struct SupabaseConfig {
    /// The auth server's base URL, e.g. `https://<ref>.supabase.co/auth/v1`.
    pub url: String,
    /// The service-role key (a JWT with `role: service_role`).
    pub service_role_key: String,
}

impl std::fmt::Debug for SupabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SupabaseConfig {{ url: {:?}, service_role_key: <redacted> }}",
            self.url
        )
    }
}

impl SupabaseConfig {
    /// Accepts a project URL or its auth base URL.
    pub fn new(url: &str, service_role_key: String) -> Self {
        let url = url.trim_end_matches('/');
        let url = if url.ends_with("/auth/v1") {
            url.to_owned()
        } else {
            format!("{url}/auth/v1")
        };
        SupabaseConfig {
            url,
            service_role_key,
        }
    }
}

/// The Supabase adapter.
pub struct Supabase {
    cfg: SupabaseConfig,
    http: VendorHttp,
}

/// The `app_metadata` key that holds a user's metadata.
pub const METADATA_KEY: &str = "authmux_metadata";

/// What the server path can't do without confirming the email.
const UNCONFIRMED_SESSIONS: &str = "auth.session.create for a user whose email is not confirmed (Supabase confirms the email of every session it opens by the server path and cannot undo it; confirm the email first with email_verified: true, or turn on \"Allow unverified email sign-ins\" for password sign-in)";

/// Magic links a server mint generates before it gives up, when each is
/// replaced by another mint's for the same user before it is verified.
const LINK_ATTEMPTS: u32 = 4;
/// Users per page of a by-email lookup (GoTrue's default page size).
const LOOKUP_PAGE: usize = 50;
/// The most pages a by-email lookup reads before it gives up.
const MAX_LOOKUP_PAGES: usize = 20;

/// A GoTrue user (`models.User`), the fields authmux reads.
#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    email_confirmed_at: Option<String>,
    #[serde(default)]
    factors: Vec<Factor>,
    #[serde(default)]
    app_metadata: AppMetadata,
}

#[derive(Deserialize, Default)]
struct AppMetadata {
    #[serde(default)]
    authmux_user_id: Option<String>,
}

#[derive(Deserialize)]
struct Factor {
    id: String,
    #[serde(default)]
    status: String,
}

/// `GET /admin/users`.
#[derive(Deserialize)]
struct Users {
    users: Vec<User>,
}

/// `POST /admin/generate_link`: the link and, flattened beside it, the
/// user it is for (internal/api/mail.go, `GenerateLinkResponse`).
#[derive(Deserialize)]
struct Link {
    hashed_token: String,
    /// The user's id.
    id: String,
    /// `magiclink`, or `signup` when no user had the email and GoTrue made
    /// one.
    #[serde(default)]
    verification_type: String,
}

/// A refusal: GoTrue's `{code, error_code, msg}` or the OAuth form.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Refusal {
    error_code: Option<String>,
    code: Option<Value>,
    error: Option<String>,
    msg: Option<String>,
    message: Option<String>,
    error_description: Option<String>,
}

impl Refusal {
    fn of(body: &Value) -> Refusal {
        Refusal::deserialize(body).unwrap_or_default()
    }

    /// The error code (GoTrue's `code` is the HTTP status in its current
    /// format, a string code in older ones).
    fn code(&self) -> &str {
        self.error_code
            .as_deref()
            .or(self.code.as_ref().and_then(Value::as_str))
            .or(self.error.as_deref())
            .unwrap_or("")
    }
}

/// GoTrue hashes passwords with bcrypt, which takes at most 72 bytes; a
/// longer one makes it panic and answer 500 (internal/crypto/password.go,
/// `must(bcrypt.GenerateFromPassword(...))`), so it is refused here.
fn check_password_bytes(password: &str) -> Result<()> {
    const BCRYPT_MAX_BYTES: usize = 72;
    if password.len() > BCRYPT_MAX_BYTES {
        return Err(VendorError::PasswordRejected(format!(
            "password is {} bytes long; users held by supabase can have at most {BCRYPT_MAX_BYTES} (bcrypt)",
            password.len()
        )));
    }
    Ok(())
}

/// Whether a reply is GoTrue's refusal of a phone number another user
/// holds. Its admin update does not look for a duplicate phone
/// (internal/api/admin.go, adminUserUpdate); auth.users.phone is UNIQUE
/// (migrations/20210710035447_alter_users), and the violation comes back
/// as a 500 whose body is the Postgres error (internal/api/errors.go,
/// HandleResponseError; internal/utilities/postgres.go).
fn refuses_a_taken_phone(reply: &Value) -> bool {
    reply["code"] == "23505"
        && reply["message"]
            .as_str()
            .is_some_and(|m| m.contains("users_phone_key"))
}

/// Maps a GoTrue error reply (either error format, or the OAuth one).
fn supabase_error(status: StatusCode, body: &Value) -> VendorError {
    gotrue_refusal(status, body, false)
}

/// GoTrue's refusal of a `/verify`: about the link or its user, so a
/// 401/403 there is the caller's input, not authmux's credentials.
fn verify_refusal(status: StatusCode, body: &Value) -> VendorError {
    gotrue_refusal(status, body, true)
}

/// GoTrue's refusal; `about_user`: a 401/403 is about the end user's
/// credentials or link, not authmux's.
fn gotrue_refusal(status: StatusCode, body: &Value, about_user: bool) -> VendorError {
    let r = Refusal::of(body);
    let code = r.code();
    let message = r
        .msg
        .as_deref()
        .or(r.message.as_deref())
        .or(r.error_description.as_deref())
        .unwrap_or("no message");
    vendor_error(
        VendorKind::Supabase,
        VendorFailure {
            status: status.as_u16(),
            // internal/api/apierrors/errorcode.go: email_exists,
            // user_already_exists, phone_exists.
            taken: match code {
                "email_exists" | "user_already_exists" => Some(Taken::Email),
                "phone_exists" => Some(Taken::Phone),
                _ => None,
            },
            not_found: code == "user_not_found",
            user_credentials: about_user,
            code,
            message,
        },
    )
}

#[derive(serde::Serialize, Deserialize)]
struct Credential {
    access_token: String,
    refresh_token: String,
}

impl Supabase {
    /// An adapter for one set of credentials.
    pub fn new(cfg: SupabaseConfig, policy: Policy) -> Self {
        Supabase {
            cfg,
            http: VendorHttp::new("supabase", policy),
        }
    }

    /// Headers of admin calls: the key as `apikey`, and as the bearer only
    /// when it is a legacy service_role JWT — a new `sb_secret_…` key is not
    /// a JWT, and the platform refuses it as a bearer token.
    fn admin(&self) -> Vec<(&'static str, String)> {
        let key = &self.cfg.service_role_key;
        let mut headers = vec![("apikey", key.clone())];
        if key.starts_with("eyJ") && key.split('.').count() == 3 {
            headers.push(("authorization", format!("Bearer {key}")));
        }
        headers
    }

    async fn send(
        &self,
        op: &'static str,
        retry: Retry,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.cfg.url);
        self.http
            .request(op, retry, method, &url, headers, body)
            .await
            .map_err(|e| unavailable(VendorKind::Supabase, e))
    }

    async fn admin_call(
        &self,
        op: &'static str,
        retry: Retry,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let (status, reply) = self
            .send(op, retry, method, path, &self.admin(), body)
            .await?;
        if status.is_success() {
            Ok(reply)
        } else {
            Err(supabase_error(status, &reply))
        }
    }

    /// `admin_call`, its reply read into `T`.
    async fn admin_as<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        retry: Retry,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T> {
        let reply = self.admin_call(op, retry, method, path, body).await?;
        decode(VendorKind::Supabase, op, reply)
    }

    async fn user(&self, id: &str) -> Result<User> {
        self.admin_as(
            "get_user",
            Retry::Safe,
            Method::GET,
            &format!("/admin/users/{id}"),
            None,
        )
        .await
    }

    async fn email_of(&self, id: &str) -> Result<String> {
        Ok(self.user(id).await?.email)
    }

    /// A session from a token reply (`/verify`, `/token`).
    fn session_from(&self, reply: Value) -> Result<VendorSession> {
        let bad = || VendorError::Protocol("supabase returned no session".into());
        let Credential {
            access_token: access,
            refresh_token: refresh,
        } = decode(VendorKind::Supabase, "token", reply)?;
        let session_id = peek_claim(&access, "session_id").ok_or_else(bad)?;
        let exp = peek_claim(&access, "exp")
            .and_then(|e| e.parse::<i64>().ok())
            .ok_or_else(bad)?;
        let credential = serde_json::to_string(&Credential {
            access_token: access.clone(),
            refresh_token: refresh,
        })
        .map_err(VendorError::internal)?;
        Ok(VendorSession {
            vendor_session_id: session_id,
            access_token: access,
            expires_at: exp * 1000,
            credential: Some(credential),
        })
    }

    /// Headers of the end-user routes (`/token`, `/verify`): the key, and
    /// the end user's address when the caller gave one, so that GoTrue's
    /// per-address limits count the user rather than authmux
    /// (`Sb-Forwarded-For` is honoured with a secret key; docs, rate
    /// limits).
    fn public(&self, cx: SignInContext<'_>) -> Vec<(&'static str, String)> {
        let mut headers = vec![("apikey", self.cfg.service_role_key.clone())];
        if let Some(ip) = cx.client_ip {
            headers.push(("sb-forwarded-for", ip.to_owned()));
            headers.push(("x-forwarded-for", ip.to_owned()));
        }
        headers
    }

    /// A `/token` grant: the reply, or GoTrue's refusal as it came.
    async fn token_grant(
        &self,
        grant: &str,
        body: &Value,
        cx: SignInContext<'_>,
    ) -> Result<std::result::Result<Value, (StatusCode, Value)>> {
        let (status, reply) = self
            .send(
                if grant == "password" {
                    "password_grant"
                } else {
                    "refresh_grant"
                },
                Retry::Never,
                Method::POST,
                &format!("/token?grant_type={grant}"),
                &self.public(cx),
                Some(body),
            )
            .await?;
        Ok(if status.is_success() {
            Ok(reply)
        } else {
            Err((status, reply))
        })
    }

    /// Changes fields of a GoTrue user (`PUT /admin/users/{id}`).
    async fn update_user(&self, vendor_user_id: &str, fields: Value) -> Result<()> {
        self.admin_call(
            "update_user",
            Retry::Safe,
            Method::PUT,
            &format!("/admin/users/{vendor_user_id}"),
            Some(&fields),
        )
        .await
        .map(drop)
    }

    async fn logout(&self, access_token: &str) -> Result<StatusCode> {
        let headers = [
            ("apikey", self.cfg.service_role_key.clone()),
            ("authorization", format!("Bearer {access_token}")),
        ];
        let (status, _) = self
            .send(
                "logout",
                Retry::Safe,
                Method::POST,
                "/logout?scope=local",
                &headers,
                None,
            )
            .await?;
        Ok(status)
    }
}

fn parse_credential(credential: Option<&str>) -> Result<Credential> {
    credential
        .and_then(|c| serde_json::from_str(c).ok())
        .ok_or_else(|| VendorError::internal("a supabase session without its credential"))
}

#[async_trait::async_trait]
impl IdentityVendor for Supabase {
    fn kind(&self) -> VendorKind {
        VendorKind::Supabase
    }

    async fn create_user(&self, _project_id: &str, new: NewIdentity<'_>) -> Result<String> {
        let mut body = json!({
            "email": new.email,
            "email_confirm": false,
            "app_metadata": {"authmux_user_id": new.user_id, METADATA_KEY: new.metadata},
        });
        if let Some(p) = new.password {
            check_password_bytes(p)?;
            body["password"] = json!(p);
        }
        let user: User = self
            .admin_as(
                "create_user",
                Retry::Never,
                Method::POST,
                "/admin/users",
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
        Ok(Some(VendorUser {
            mfa_enabled: user.factors.iter().any(|f| f.status == "verified"),
            email: user.email,
            email_verified: user.email_confirmed_at.is_some(),
        }))
    }

    /// The user object of `GET /admin/users/{id}`, which GoTrue reads with
    /// its identities and MFA factors (`internal/models/user.go`: `findUser`
    /// loads through `tx.Eager()`; `internal/models/factor.go`: a factor's
    /// `Secret` is `json:"-"`). GoTrue's admin API lists no sessions per
    /// user, so none are here.
    async fn export_user(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
    ) -> Result<Option<Map<String, Value>>> {
        let user = self
            .admin_call(
                "get_user",
                Retry::Safe,
                Method::GET,
                &format!("/admin/users/{vendor_user_id}"),
                None,
            )
            .await?;
        Ok(Some(Map::from_iter([("user".to_owned(), user)])))
    }

    /// Metadata lives in the server-only `app_metadata` under one key
    /// (`user_metadata` is user-writable and lands in every JWT). GoTrue
    /// merges `app_metadata` key by key with `null` deleting
    /// (internal/models/user.go, UpdateAppMetaData), so the one key is
    /// replaced whole, and removed with `null` when empty.
    async fn set_metadata(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        metadata: &Map<String, Value>,
    ) -> Result<()> {
        let value = if metadata.is_empty() {
            Value::Null
        } else {
            Value::Object(metadata.clone())
        };
        self.update_user(
            vendor_user_id,
            json!({"app_metadata": {METADATA_KEY: value}}),
        )
        .await
    }

    async fn set_email_verified(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        verified: bool,
    ) -> Result<()> {
        if !verified {
            return Err(VendorError::Unsupported(
                "supabase cannot mark a confirmed email unconfirmed".into(),
            ));
        }
        self.update_user(vendor_user_id, json!({"email_confirm": true}))
            .await
    }

    /// GoTrue's admin update takes `phone` (E.164); it can't clear one
    /// (an empty phone fails its format check).
    async fn set_phone(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        phone: Option<&str>,
    ) -> Result<()> {
        let Some(phone) = phone else {
            return Err(unsupported(
                VendorKind::Supabase,
                "auth.user.update phone_number removal",
            ));
        };
        let (status, reply) = self
            .send(
                "set_phone",
                Retry::NeverRefusesWith500(refuses_a_taken_phone),
                Method::PUT,
                &format!("/admin/users/{vendor_user_id}"),
                &self.admin(),
                Some(&json!({"phone": phone})),
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else if refuses_a_taken_phone(&reply) {
            Err(VendorError::PhoneTaken(VendorKind::Supabase))
        } else {
            Err(supabase_error(status, &reply))
        }
    }

    async fn set_password(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        _email: &str,
        password: &str,
    ) -> Result<()> {
        check_password_bytes(password)?;
        self.update_user(vendor_user_id, json!({"password": password}))
            .await
    }

    async fn enroll_totp(&self, _: &str, _: &str, _: &str) -> Result<MfaEnrollment> {
        // GoTrue enrols factors only through the user's own session.
        Err(unsupported(
            VendorKind::Supabase,
            "TOTP enrollment (mfa_enabled: true)",
        ))
    }

    async fn disable_mfa(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        let factors: Vec<Factor> = self
            .admin_as(
                "list_factors",
                Retry::Safe,
                Method::GET,
                &format!("/admin/users/{vendor_user_id}/factors"),
                None,
            )
            .await?;
        for f in factors {
            self.admin_call(
                "delete_factor",
                Retry::Safe,
                Method::DELETE,
                &format!("/admin/users/{vendor_user_id}/factors/{}", f.id),
                None,
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_user(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        gone_is_done(
            self.admin_call(
                "delete_user",
                Retry::Safe,
                Method::DELETE,
                &format!("/admin/users/{vendor_user_id}"),
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
        cx: SignInContext<'_>,
    ) -> Result<PasswordCheck> {
        let email = self.email_of(vendor_user_id).await?;
        match self
            .token_grant(
                "password",
                &json!({"email": email, "password": password}),
                cx,
            )
            .await?
        {
            // The grant opened a session: it is the one handed out.
            Ok(reply) => Ok(PasswordCheck::Right(Some(self.session_from(reply)?))),
            // GoTrue checks the password first and only then refuses an
            // unconfirmed email (internal/api/token.go,
            // ResourceOwnerPasswordGrant): the password is right, and no
            // session was opened.
            Err((_, reply)) if Refusal::of(&reply).code() == "email_not_confirmed" => {
                Ok(PasswordCheck::Right(None))
            }
            Err((status, reply))
                if status == StatusCode::BAD_REQUEST
                    && Refusal::of(&reply).code() == "invalid_credentials" =>
            {
                Ok(PasswordCheck::Wrong)
            }
            Err((status, reply)) => Err(supabase_error(status, &reply)),
        }
    }

    async fn verify_totp(&self, _: &str, _: &str, _: &str) -> Result<bool> {
        Err(unsupported(VendorKind::Supabase, "TOTP verification"))
    }

    /// A magic link generated and verified at once. GoTrue's `/verify`
    /// confirms the email (internal/api/verify.go), and it has no way to
    /// un-confirm one, so a user whose email is unconfirmed is refused
    /// rather than changed.
    ///
    /// GoTrue keeps one magic-link token per user: generating a link writes
    /// the user's `recovery_token` (internal/api/mail.go, adminGenerateLink)
    /// and deletes the user's earlier one-time token of that type
    /// (internal/models/one_time_token.go, CreateOneTimeToken). So when two
    /// mints for one user overlap (two devices, a retried request, another
    /// replica), the first link's `/verify` answers 403 `otp_expired`. The
    /// mint then generates a new link, up to [`LINK_ATTEMPTS`] times with a
    /// jittered wait, and answers `Unavailable` (retry shortly) if every
    /// link was replaced.
    async fn create_session(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        cx: SignInContext<'_>,
    ) -> Result<VendorSession> {
        let user = self.user(vendor_user_id).await?;
        if user.email_confirmed_at.is_none() {
            return Err(unsupported(VendorKind::Supabase, UNCONFIRMED_SESSIONS));
        }
        let email = user.email;
        for attempt in 0..LINK_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(self.http.backoff(attempt - 1)).await;
            }
            let link: Link = self
                .admin_as(
                    "generate_link",
                    Retry::Never,
                    Method::POST,
                    "/admin/generate_link",
                    Some(&json!({"type": "magiclink", "email": email})),
                )
                .await?;
            if link.id != vendor_user_id || link.verification_type != "magiclink" {
                // The email no longer names this user (deleted, or its email
                // changed, since it was read). For an email no user has,
                // GoTrue signs one up (mail.go, adminGenerateLink); that user
                // is removed again, so none is left holding the email of a
                // user being erased, and no link is used.
                if link.verification_type == "signup"
                    && let Err(e) = self.delete_user(project_id, &link.id).await
                {
                    tracing::warn!(error = %e, "could not remove a user a magic link signed up");
                }
                return Err(
                    mint_for_another_user(VendorKind::Supabase, self.user(vendor_user_id)).await,
                );
            }
            let (status, reply) = self
                .send(
                    "verify_link",
                    Retry::Never,
                    Method::POST,
                    "/verify",
                    &self.public(cx),
                    Some(&json!({"type": "magiclink", "token_hash": link.hashed_token})),
                )
                .await?;
            if status.is_success() {
                return self.session_from(reply);
            }
            // A refusal of the link is about the link or the user (expired,
            // replaced, banned), never about authmux's own key, which
            // generate_link has just accepted.
            let refused = verify_refusal(status, &reply);
            let replaced =
                status == StatusCode::FORBIDDEN && Refusal::of(&reply).code() == "otp_expired";
            if !replaced {
                return Err(unless_gone(refused, self.user(vendor_user_id)).await);
            }
            if let Err(gone @ VendorError::NotFound(_)) = self.user(vendor_user_id).await {
                return Err(gone);
            }
            tracing::debug!(attempt, "a concurrent mint replaced this mint's magic link");
        }
        Err(VendorError::Unavailable {
            vendor: VendorKind::Supabase,
            reason: format!(
                "other sign-ins of this user replaced each of {LINK_ATTEMPTS} magic links in turn"
            ),
            sent: true,
            retry_after: Some(1),
        })
    }

    async fn refresh_session(
        &self,
        _project_id: &str,
        _vendor_session_id: &str,
        credential: Option<&str>,
    ) -> Result<VendorSession> {
        let cred = parse_credential(credential)?;
        match self
            .token_grant(
                "refresh_token",
                &json!({"refresh_token": cred.refresh_token}),
                SignInContext::default(),
            )
            .await?
        {
            Ok(reply) => self.session_from(reply),
            Err(_) => Err(VendorError::SessionEnded(
                "supabase no longer accepts this session".into(),
            )),
        }
    }

    async fn revoke_session(
        &self,
        project_id: &str,
        vendor_session_id: &str,
        credential: Option<&str>,
    ) -> Result<()> {
        let cred = parse_credential(credential)?;
        let status = self.logout(&cred.access_token).await?;
        if status.is_success() {
            return Ok(());
        }
        // The stored access token may have expired: refresh, then log out.
        match self
            .refresh_session(project_id, vendor_session_id, credential)
            .await
        {
            Ok(fresh) => {
                self.logout(&fresh.access_token).await?;
                Ok(())
            }
            // Already gone at Supabase.
            Err(VendorError::SessionEnded(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// GoTrue has no exact lookup: its `filter` is `email LIKE
    /// '%filter%'`, case-sensitive with `%` and `_` as wildcards, paged at
    /// 50. So the address is lower-cased (as GoTrue stores it), its
    /// wildcards escaped, every page read, and only an exact match kept.
    async fn find_user_by_email(
        &self,
        _project_id: &str,
        email: &str,
    ) -> Result<Option<FoundUser>> {
        let email = email.to_lowercase();
        let mut pattern = String::with_capacity(email.len());
        for c in email.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        for page in 1..=MAX_LOOKUP_PAGES {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("filter", &pattern)
                .append_pair("page", &page.to_string())
                .append_pair("per_page", &LOOKUP_PAGE.to_string())
                .finish();
            let list: Users = self
                .admin_as(
                    "find_user_by_email",
                    Retry::Safe,
                    Method::GET,
                    &format!("/admin/users?{q}"),
                    None,
                )
                .await?;
            let n = list.users.len();
            if let Some(u) = list.users.into_iter().find(|u| u.email == email) {
                return Ok(Some(FoundUser {
                    id: u.id,
                    external_id: u.app_metadata.authmux_user_id,
                }));
            }
            if n < LOOKUP_PAGE {
                return Ok(None);
            }
        }
        Err(VendorError::Unavailable {
            vendor: VendorKind::Supabase,
            reason: "it lists too many users matching this email to be sure".into(),
            sent: true,
            retry_after: None,
        })
    }

    async fn health_check(&self) -> bool {
        let apikey = [("apikey", self.cfg.service_role_key.clone())];
        self.http
            .probe(&format!("{}/health", self.cfg.url), &apikey)
            .await
    }

    fn http(&self) -> Option<&VendorHttp> {
        Some(&self.http)
    }

    async fn token_source(&self) -> Option<TokenSource> {
        Some(TokenSource {
            issuer: self.cfg.url.clone(),
            jwks_url: format!("{}/.well-known/jwks.json", self.cfg.url),
            jwks_headers: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GoTrue's current error shape (internal/api/errors.go: `code` is the
    /// HTTP status, `error_code` the reason).
    fn refusal(status: u16, code: &str, msg: &str) -> VendorError {
        verify_refusal(
            StatusCode::from_u16(status).unwrap(),
            &json!({"code": status, "error_code": code, "msg": msg}),
        )
    }

    #[test]
    fn a_refused_link_is_about_the_link_or_its_user_not_authmuxs_key() {
        // verify.go: a banned user, and a link no longer stored.
        for (code, msg) in [
            ("user_banned", "User is banned"),
            ("otp_expired", "Email link is invalid or has expired"),
        ] {
            match refusal(403, code, msg) {
                VendorError::Invalid(m) => assert_eq!(m, format!("supabase: {msg}")),
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(matches!(
            refusal(404, "user_not_found", "User not found"),
            VendorError::NotFound(VendorKind::Supabase)
        ));
        assert!(matches!(
            refusal(422, "validation_failed", "Invalid email verification type"),
            VendorError::Invalid(_)
        ));
    }
}
