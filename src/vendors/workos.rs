//! WorkOS User Management (AuthKit): users under `/user_management/users`
//! (updates by `PUT`), TOTP factors, the password and magic-auth grants of
//! `/user_management/authenticate` (with `client_id` and the API key as
//! `client_secret`) for sign-in, the refresh-token grant, session revoke,
//! and RS256 tokens verified against `/sso/jwks/{client_id}`. Metadata stays
//! in authmux's index: WorkOS accepts only short string values there.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::{CallError, Policy, Retry, VendorHttp};
use super::{
    FoundUser, IdentityVendor, MfaEnrollment, NewIdentity, PasswordCheck, PendingMfa, Result,
    SignInContext, Taken, TokenSource, VendorError, VendorFailure, VendorKind, VendorSession,
    VendorSpec, VendorUser, decode, gone_is_done, mint_for_another_user, unavailable, unless_gone,
    unsupported, vendor_error,
};

use crate::tokens::verify::peek_claim;

/// WorkOS's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.workos.com";

/// WorkOS, as the registry knows it.
pub const SPEC: VendorSpec = VendorSpec {
    name: "workos",
    setup_hint: "set AUTHMUX_WORKOS_API_KEY and AUTHMUX_WORKOS_CLIENT_ID",
    build: |creds, policy| {
        let client_id = creds
            .client_id
            .clone()
            .ok_or_else(|| VendorError::Invalid("workos needs a client id".into()))?;
        let base_url = creds
            .url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let cfg = WorkosConfig {
            issuer: creds.issuer.clone().unwrap_or_else(|| {
                format!(
                    "{}/user_management/{client_id}",
                    base_url.trim_end_matches('/')
                )
            }),
            base_url,
            api_key: creds.secret(),
            client_id,
        };
        Ok(std::sync::Arc::new(Workos::new(cfg, policy)))
    },
};

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

/// WorkOS's per-email limits a minute on the operations that have them
/// (docs, /reference/rate-limits): 10 `/authenticate` requests, 3 Magic
/// Auth codes.
fn per_email_limit(op: &str) -> Option<&'static str> {
    match op {
        "authenticate" => Some("10 authentications"),
        "create_magic_auth" => Some("3 Magic Auth codes"),
        _ => None,
    }
}

/// `Unavailable` for a WorkOS call that found it not serving. WorkOS
/// documents no `Retry-After` on its 429s; one from a per-email limit
/// names the limit and asks for a retry after its 60-second window (an
/// earlier one is refused too) rather than the usual second.
fn unavailable_at_workos(op: &str, e: CallError) -> VendorError {
    match (e, per_email_limit(op)) {
        (
            CallError::Unavailable {
                rate_limited: true,
                retry_after: None,
                sent,
                ..
            },
            Some(limit),
        ) => VendorError::Unavailable {
            vendor: VendorKind::Workos,
            reason: format!("rate limited: WorkOS allows {limit} per email a minute"),
            sent,
            retry_after: Some(60),
        },
        (e, _) => unavailable(VendorKind::Workos, e),
    }
}

/// Maps a WorkOS error reply (`{code, message, errors}`, `{message}` or the
/// OAuth form).
fn workos_error(status: StatusCode, body: &Value) -> VendorError {
    let r = Refusal::of(body);
    let codes: Vec<&str> = [r.code.as_deref(), r.error.as_deref()]
        .into_iter()
        .chain(r.errors.iter().map(|e| e.code.as_deref()))
        .flatten()
        .collect();
    let headline = r
        .message
        .as_deref()
        .or(r.error_description.as_deref())
        .unwrap_or("no message");
    // The reasons, when there are any ("Validation failed." alone names
    // nothing: a weak password's reasons are in `errors`).
    let reasons: Vec<&str> = r
        .errors
        .iter()
        .filter_map(|e| e.message.as_deref())
        .collect();
    let message = if reasons.is_empty() {
        headline.to_owned()
    } else {
        format!("{headline} {}", reasons.join(" "))
    };
    let has = |c: &str| codes.contains(&c);
    vendor_error(
        VendorKind::Workos,
        VendorFailure {
            status: status.as_u16(),
            taken: (has("email_not_available") || has("user_already_exists"))
                .then_some(Taken::Email),
            not_found: false,
            user_credentials: has("invalid_credentials"),
            code: codes.first().copied().unwrap_or(""),
            message: &message,
        },
    )
}

/// A WorkOS user (open-api-spec.yaml, `User`), the fields authmux reads.
#[derive(Deserialize)]
struct User {
    id: String,
    email: String,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

/// A list reply.
#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

/// Any object, by its id.
#[derive(Deserialize)]
struct Object {
    id: String,
}

/// `authenticate`'s reply, the tokens of the session it opened.
#[derive(Deserialize)]
struct Authenticated {
    access_token: String,
    refresh_token: String,
}

/// `POST .../auth_factors`: the factor with its TOTP secret.
#[derive(Deserialize)]
struct Enrolled {
    authentication_factor: EnrolledFactor,
}

#[derive(Deserialize)]
struct EnrolledFactor {
    totp: Totp,
}

#[derive(Deserialize)]
struct Totp {
    secret: String,
    uri: String,
}

/// `POST /auth/challenges/{id}/verify`.
#[derive(Deserialize)]
struct ChallengeVerdict {
    valid: bool,
}

/// `POST /user_management/magic_auth`.
#[derive(Deserialize)]
struct MagicAuth {
    code: String,
    user_id: String,
    #[serde(default)]
    created_at: Option<String>,
}

/// Whether `user`, found holding a Magic Auth code made at `code_made`, is
/// a user that code's request signed up: no external id (authmux gives its
/// users theirs) and made within seconds of the code.
fn signed_up_by_code(user: &User, code_made: Option<&str>) -> bool {
    let at = |t: Option<&str>| t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match (at(user.created_at.as_deref()), at(code_made)) {
        (Some(made), Some(code)) => {
            user.external_id.is_none() && (made - code).num_seconds().abs() <= 5
        }
        _ => false,
    }
}

/// A refusal, in any of WorkOS's shapes (`{code, message, errors}`,
/// `{message}`, the OAuth form, a 403 with what the sign-in still needs).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Refusal {
    code: Option<String>,
    error: Option<String>,
    message: Option<String>,
    error_description: Option<String>,
    errors: Vec<Code>,
    pending_authentication_token: Option<String>,
    authentication_factors: Vec<Object>,
}

/// One of the reasons in an error's `errors`.
#[derive(Deserialize)]
struct Code {
    code: Option<String>,
    message: Option<String>,
}

impl Refusal {
    fn of(body: &Value) -> Refusal {
        Refusal::deserialize(body).unwrap_or_default()
    }

    fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }
}

/// The 403 WorkOS answers a right password of a user whose email is
/// unverified: Magic Auth, whose code verifies the email, signs the user
/// in then. The other 403s after a right password (`mfa_enrollment`,
/// `organization_selection_required`) would meet a Magic Auth code again,
/// after WorkOS had emailed it to the user and counted it against its 3
/// codes per email a minute, so they are answered at once.
const UNVERIFIED_EMAIL_403: &str = "email_verification_required";

/// A 403 `mfa_challenge`: the pending sign-in and the factor to challenge.
fn pending_mfa(body: &Value) -> Option<PendingMfa> {
    let r = Refusal::of(body);
    if r.code() != "mfa_challenge" {
        return None;
    }
    Some(PendingMfa {
        token: r.pending_authentication_token?,
        factor_id: r.authentication_factors.into_iter().next()?.id,
    })
}

/// A refused TOTP code on the `mfa-totp` grant (open-api-spec.yaml,
/// `/user_management/authenticate` 400 codes).
fn is_wrong_code(body: &Value) -> bool {
    matches!(
        Refusal::of(body).code(),
        "invalid_one_time_code" | "one_time_code_previously_used" | "one_time_code_expired"
    )
}

/// A sign-in WorkOS refuses for a reason authmux cannot settle for the
/// caller, named.
fn sign_in_refusal(status: StatusCode, body: &Value) -> VendorError {
    match Refusal::of(body).code() {
        "mfa_enrollment" => VendorError::MfaNotEnrolled(
            "workos requires this user to enrol a TOTP factor first (auth.user.update mfa_enabled: true)".into(),
        ),
        "organization_selection_required" => unsupported(
            VendorKind::Workos,
            "signing in a user who belongs to several organizations (WorkOS asks which one)",
        ),
        "email_verification_required" => unsupported(
            VendorKind::Workos,
            "signing in a user whose email WorkOS requires verified",
        ),
        _ => workos_error(status, body),
    }
}

impl Workos {
    /// An adapter for one set of credentials.
    pub fn new(cfg: WorkosConfig, policy: Policy) -> Self {
        Workos {
            cfg,
            http: VendorHttp::new("workos", policy),
        }
    }

    /// Changes fields of a WorkOS user (`PUT /user_management/users/{id}`).
    async fn update_user(&self, vendor_user_id: &str, fields: Value) -> Result<()> {
        self.send(
            "update_user",
            Retry::Safe,
            Method::PUT,
            &format!("/user_management/users/{vendor_user_id}"),
            Some(&fields),
        )
        .await
        .map(drop)
    }

    async fn send(
        &self,
        op: &'static str,
        retry: Retry,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.cfg.base_url.trim_end_matches('/'));
        let headers = [("authorization", format!("Bearer {}", self.cfg.api_key))];
        let (status, reply) = self
            .http
            .request(op, retry, method, &url, &headers, body)
            .await
            .map_err(|e| unavailable_at_workos(op, e))?;
        if status.is_success() {
            Ok(reply)
        } else {
            Err(workos_error(status, &reply))
        }
    }

    /// `send`, its reply read into `T`.
    async fn send_as<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        retry: Retry,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T> {
        let reply = self.send(op, retry, method, path, body).await?;
        decode(VendorKind::Workos, op, reply)
    }

    async fn user(&self, id: &str) -> Result<User> {
        self.send_as(
            "get_user",
            Retry::Safe,
            Method::GET,
            &format!("/user_management/users/{id}"),
            None,
        )
        .await
    }

    /// `POST /user_management/authenticate`: the reply, or WorkOS's
    /// refusal as it came (a 403 after a right password carries what the
    /// sign-in still needs).
    async fn authenticate(
        &self,
        grant: Value,
        cx: SignInContext<'_>,
    ) -> Result<std::result::Result<Value, (StatusCode, Value)>> {
        let mut body = grant;
        body["client_id"] = json!(self.cfg.client_id);
        body["client_secret"] = json!(self.cfg.api_key);
        if let Some(ip) = cx.client_ip {
            body["ip_address"] = json!(ip);
        }
        let url = format!(
            "{}/user_management/authenticate",
            self.cfg.base_url.trim_end_matches('/')
        );
        let (status, reply) = self
            .http
            .request(
                "authenticate",
                Retry::Never,
                Method::POST,
                &url,
                &[],
                Some(&body),
            )
            .await
            .map_err(|e| unavailable_at_workos("authenticate", e))?;
        Ok(if status.is_success() {
            Ok(reply)
        } else {
            Err((status, reply))
        })
    }

    /// Opens a session with a grant; a sign-in WorkOS holds for a TOTP
    /// code is completed with `cx.mfa_code`, and the refusals that remain
    /// are named.
    async fn open(&self, grant: Value, cx: SignInContext<'_>) -> Result<VendorSession> {
        let reply = match self.authenticate(grant, cx).await? {
            Ok(reply) => reply,
            Err((status, body)) => match pending_mfa(&body) {
                Some(pending) => {
                    let code = cx.mfa_code.ok_or_else(|| {
                        VendorError::MfaRequired(
                            "workos holds this sign-in for a TOTP code in mfa_factor".into(),
                        )
                    })?;
                    return self.finish_mfa(&pending, code, cx).await?.ok_or_else(|| {
                        VendorError::MfaInvalid("workos refused the TOTP code".into())
                    });
                }
                None => return Err(sign_in_refusal(status, &body)),
            },
        };
        Self::session_from(reply)
    }

    /// The `mfa-totp` grant: a challenge of the pending factor, answered.
    async fn finish_mfa(
        &self,
        pending: &PendingMfa,
        code: &str,
        cx: SignInContext<'_>,
    ) -> Result<Option<VendorSession>> {
        let challenge: Object = self
            .send_as(
                "challenge_factor",
                Retry::Never,
                Method::POST,
                &format!("/auth/factors/{}/challenge", pending.factor_id),
                Some(&json!({})),
            )
            .await?;
        let challenge_id = challenge.id;
        let grant = json!({
            "grant_type": "urn:workos:oauth:grant-type:mfa-totp",
            "code": code,
            "pending_authentication_token": pending.token,
            "authentication_challenge_id": challenge_id,
        });
        match self.authenticate(grant, cx).await? {
            Ok(reply) => Self::session_from(reply).map(Some),
            Err((StatusCode::BAD_REQUEST, body)) if is_wrong_code(&body) => Ok(None),
            Err((status, body)) => Err(sign_in_refusal(status, &body)),
        }
    }

    fn session_from(reply: Value) -> Result<VendorSession> {
        let bad = || VendorError::Protocol("workos returned no session".into());
        let Authenticated {
            access_token: access,
            refresh_token: refresh,
        } = decode(VendorKind::Workos, "authenticate", reply)?;
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
        let items = self
            .list_all(
                "list_factors",
                &format!("/user_management/users/{user_id}/auth_factors"),
            )
            .await?;
        let factors: Vec<Object> = decode(VendorKind::Workos, "list_factors", Value::Array(items))?;
        Ok(factors.into_iter().map(|f| f.id).collect())
    }

    /// Every item of a WorkOS list endpoint, page by page (`limit` up to
    /// 100, `list_metadata.after` the next cursor, `null` at the end).
    async fn list_all(&self, op: &'static str, path: &str) -> Result<Vec<Value>> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<Value>,
            #[serde(default)]
            list_metadata: Option<Cursor>,
        }
        #[derive(Deserialize)]
        struct Cursor {
            after: Option<String>,
        }
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..500 {
            let query = {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("limit", "100").append_pair("order", "asc");
                if let Some(a) = &after {
                    q.append_pair("after", a);
                }
                q.finish()
            };
            let page: Page = self
                .send_as(
                    op,
                    Retry::Safe,
                    Method::GET,
                    &format!("{path}?{query}"),
                    None,
                )
                .await?;
            items.extend(page.data);
            after = page.list_metadata.and_then(|m| m.after);
            if after.is_none() {
                return Ok(items);
            }
        }
        Err(VendorError::Protocol(format!(
            "workos kept paging {path} past 50,000 items"
        )))
    }

    /// Ends a session; WorkOS answers 400 for one it does not hold
    /// (ended, expired or unknown), which is done too.
    async fn revoke(&self, vendor_session_id: &str) -> Result<()> {
        match self
            .send(
                "revoke_session",
                Retry::Safe,
                Method::POST,
                "/user_management/sessions/revoke",
                Some(&json!({"session_id": vendor_session_id})),
            )
            .await
        {
            Err(VendorError::Invalid(_)) => Ok(()),
            other => gone_is_done(other),
        }
    }

    async fn email_of(&self, vendor_user_id: &str) -> Result<String> {
        Ok(self.user(vendor_user_id).await?.email)
    }
}

#[async_trait::async_trait]
impl IdentityVendor for Workos {
    fn kind(&self) -> VendorKind {
        VendorKind::Workos
    }

    /// Magic Auth verifies the email of the user it signs in; an
    /// unverified user is set back afterwards (see `create_session`).
    fn sign_in_writes_user(&self, email_verified: bool) -> bool {
        !email_verified
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
        let user: Object = self
            .send_as(
                "create_user",
                Retry::Never,
                Method::POST,
                "/user_management/users",
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
        let mfa_enabled = !self.factors(vendor_user_id).await?.is_empty();
        Ok(Some(VendorUser {
            email: user.email,
            email_verified: user.email_verified,
            mfa_enabled,
        }))
    }

    /// The user object (`GET /user_management/users/{id}`), its OAuth
    /// identities (`GET …/identities`, a bare array), its authentication
    /// factors (`GET …/auth_factors`: `totp` carries only `issuer` and
    /// `user`; the secret is shown at enrolment alone) and its active
    /// sessions (`GET …/sessions`, with address and user agent).
    async fn export_user(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
    ) -> Result<Option<Map<String, Value>>> {
        let base = format!("/user_management/users/{vendor_user_id}");
        let user = self
            .send("get_user", Retry::Safe, Method::GET, &base, None)
            .await?;
        let identities = self
            .send(
                "list_identities",
                Retry::Safe,
                Method::GET,
                &format!("{base}/identities"),
                None,
            )
            .await?;
        let factors = self
            .list_all("list_factors", &format!("{base}/auth_factors"))
            .await?;
        let sessions = self
            .list_all("list_sessions", &format!("{base}/sessions"))
            .await?;
        Ok(Some(Map::from_iter([
            ("user".to_owned(), user),
            ("identities".to_owned(), identities),
            ("auth_factors".to_owned(), Value::Array(factors)),
            ("sessions".to_owned(), Value::Array(sessions)),
        ])))
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
        _email: &str,
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
        let enrolled: Enrolled = self
            .send_as(
                "enroll_totp",
                Retry::Never,
                Method::POST,
                &format!("/user_management/users/{vendor_user_id}/auth_factors"),
                Some(&json!({"type": "totp", "totp_issuer": "authmux", "totp_user": email})),
            )
            .await?;
        let Totp { secret, uri } = enrolled.authentication_factor.totp;
        Ok(MfaEnrollment {
            secret,
            otpauth_uri: uri,
        })
    }

    async fn disable_mfa(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        for id in self.factors(vendor_user_id).await? {
            self.send(
                "delete_factor",
                Retry::Safe,
                Method::DELETE,
                &format!("/auth/factors/{id}"),
                None,
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_user(&self, _project_id: &str, vendor_user_id: &str) -> Result<()> {
        gone_is_done(
            self.send(
                "delete_user",
                Retry::Safe,
                Method::DELETE,
                &format!("/user_management/users/{vendor_user_id}"),
                None,
            )
            .await,
        )
    }

    /// WorkOS checks the password first; a 403 after that (email
    /// verification, MFA, organization choice) means the password was
    /// right (open-api-spec.yaml, `/user_management/authenticate` 403).
    /// An unverified email goes on to Magic Auth (see
    /// [`UNVERIFIED_EMAIL_403`]); the others are refused by name, never as
    /// a wrong password.
    async fn verify_password(
        &self,
        _project_id: &str,
        vendor_user_id: &str,
        password: &str,
        cx: SignInContext<'_>,
    ) -> Result<PasswordCheck> {
        let email = self.email_of(vendor_user_id).await?;
        let grant = json!({"grant_type": "password", "email": email, "password": password});
        match self.authenticate(grant, cx).await? {
            Ok(reply) => Ok(PasswordCheck::Right(Some(Self::session_from(reply)?))),
            Err((StatusCode::FORBIDDEN, body)) => match pending_mfa(&body) {
                Some(pending) => Ok(PasswordCheck::MfaPending(pending)),
                None if Refusal::of(&body).code() == UNVERIFIED_EMAIL_403 => {
                    Ok(PasswordCheck::Right(None))
                }
                None => Err(sign_in_refusal(StatusCode::FORBIDDEN, &body)),
            },
            Err((StatusCode::BAD_REQUEST, body))
                if Refusal::of(&body).code() == "invalid_credentials" =>
            {
                Ok(PasswordCheck::Wrong)
            }
            Err((status, body)) => Err(workos_error(status, &body)),
        }
    }

    async fn complete_mfa(
        &self,
        _project_id: &str,
        pending: &PendingMfa,
        code: &str,
    ) -> Result<Option<VendorSession>> {
        self.finish_mfa(pending, code, SignInContext::default())
            .await
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
        let challenge: Object = self
            .send_as(
                "challenge_factor",
                Retry::Never,
                Method::POST,
                &format!("/auth/factors/{factor}/challenge"),
                Some(&json!({})),
            )
            .await?;
        let id = challenge.id;
        match self
            .send_as::<ChallengeVerdict>(
                "verify_challenge",
                Retry::Never,
                Method::POST,
                &format!("/auth/challenges/{id}/verify"),
                Some(&json!({"code": code})),
            )
            .await
        {
            Ok(verdict) => Ok(verdict.valid),
            Err(VendorError::Invalid(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Magic Auth: WorkOS emails the code (unless the operator turned
    /// those emails off) and marks the email verified when it is used, so
    /// an unverified user is set back to unverified afterwards.
    async fn create_session(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        cx: SignInContext<'_>,
    ) -> Result<VendorSession> {
        let user = self.user(vendor_user_id).await?;
        let email = user.email;
        let magic: MagicAuth = self
            .send_as(
                "create_magic_auth",
                Retry::Never,
                Method::POST,
                "/user_management/magic_auth",
                Some(&json!({"email": email})),
            )
            .await?;
        if magic.user_id != vendor_user_id {
            // The email no longer names this user (deleted, or its email
            // changed, since it was read): WorkOS made the code for another
            // user, one it signs up when no user has the email (spec:
            // `sign_up_not_allowed`). That code signs no one in here, and a
            // user it signed up is removed again, so no account is left
            // holding the email of a user being erased.
            if let Ok(other) = self.user(&magic.user_id).await
                && signed_up_by_code(&other, magic.created_at.as_deref())
                && let Err(e) = self.delete_user(project_id, &other.id).await
            {
                tracing::warn!(error = %e, "could not remove a user a Magic Auth code signed up");
            }
            return Err(mint_for_another_user(VendorKind::Workos, self.user(vendor_user_id)).await);
        }
        let code = magic.code;
        let grant = json!({
            "grant_type": "urn:workos:oauth:grant-type:magic-auth:code",
            "code": code,
            "email": email,
        });
        let opened = match self.open(grant, cx).await {
            Err(refused @ VendorError::Invalid(_)) => {
                Err(unless_gone(refused, self.user(vendor_user_id)).await)
            }
            other => other,
        };
        if !user.email_verified && !matches!(opened, Err(VendorError::NotFound(_))) {
            self.update_user(vendor_user_id, json!({"email_verified": false}))
                .await?;
        }
        opened
    }

    async fn refresh_session(
        &self,
        _project_id: &str,
        _vendor_session_id: &str,
        credential: Option<&str>,
    ) -> Result<VendorSession> {
        let refresh = credential
            .ok_or_else(|| VendorError::internal("a workos session without its credential"))?;
        let grant = json!({"grant_type": "refresh_token", "refresh_token": refresh});
        match self.authenticate(grant, SignInContext::default()).await? {
            Ok(reply) => Self::session_from(reply),
            Err((StatusCode::BAD_REQUEST, _)) => Err(VendorError::SessionEnded(
                "workos no longer accepts this session".into(),
            )),
            Err((status, body)) => Err(workos_error(status, &body)),
        }
    }

    async fn revoke_session(
        &self,
        _project_id: &str,
        vendor_session_id: &str,
        _credential: Option<&str>,
    ) -> Result<()> {
        self.revoke(vendor_session_id).await
    }

    async fn find_user_by_email(
        &self,
        _project_id: &str,
        email: &str,
    ) -> Result<Option<FoundUser>> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .finish();
        let list: List<User> = self
            .send_as(
                "find_user_by_email",
                Retry::Safe,
                Method::GET,
                &format!("/user_management/users?{q}"),
                None,
            )
            .await?;
        Ok(list.data.into_iter().next().map(|user| FoundUser {
            id: user.id,
            external_id: user.external_id,
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

    fn http(&self) -> Option<&VendorHttp> {
        Some(&self.http)
    }

    async fn token_source(&self) -> Option<TokenSource> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(external_id: Option<&str>, created_at: &str) -> User {
        User {
            id: "user_1".into(),
            email: "a@example.com".into(),
            email_verified: false,
            external_id: external_id.map(str::to_owned),
            created_at: Some(created_at.to_owned()),
        }
    }

    #[test]
    fn only_an_account_the_code_made_counts_as_signed_up_by_it() {
        let code = Some("2026-11-29T12:00:00.000Z");
        // No external id, made with the code: the code's sign-up.
        assert!(signed_up_by_code(
            &user(None, "2026-11-29T12:00:01.250Z"),
            code
        ));
        // authmux's own users carry their external id.
        assert!(!signed_up_by_code(
            &user(Some("usr_1"), "2026-11-29T12:00:00.000Z"),
            code
        ));
        // An account that held the email before the code was made.
        assert!(!signed_up_by_code(
            &user(None, "2026-11-29T11:00:00.000Z"),
            code
        ));
        // Times that can't be read decide nothing.
        assert!(!signed_up_by_code(&user(None, "yesterday"), code));
        assert!(!signed_up_by_code(
            &user(None, "2026-11-29T12:00:00.000Z"),
            None
        ));
    }
}
