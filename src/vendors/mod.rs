//! Identity vendors behind authmux: the `IdentityVendor` seam, the
//! built-in provider and the router that picks one per request.

pub mod clerk;
mod error;
pub mod http;
pub mod native;
pub mod supabase;
pub mod workos;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::tokens::jwks::JwksClient;
pub use error::{
    Result, Taken, VendorError, VendorFailure, decode, gone_is_done, mint_for_another_user,
    unavailable, unless_gone, unsupported, vendor_error,
};

/// The vendors authmux knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VendorKind {
    /// The built-in provider.
    Native,
    /// Clerk.
    Clerk,
    /// WorkOS User Management.
    Workos,
    /// Supabase Auth (GoTrue).
    Supabase,
}

impl VendorKind {
    /// Every vendor, in default priority order.
    pub const ALL: [VendorKind; 4] = [
        VendorKind::Native,
        VendorKind::Clerk,
        VendorKind::Workos,
        VendorKind::Supabase,
    ];

    /// What the vendor's own module says of it: the one place a vendor
    /// is registered.
    pub fn spec(self) -> &'static VendorSpec {
        match self {
            VendorKind::Native => &native::SPEC,
            VendorKind::Clerk => &clerk::SPEC,
            VendorKind::Workos => &workos::SPEC,
            VendorKind::Supabase => &supabase::SPEC,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<VendorKind> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// How an operator configures this vendor.
    pub fn setup_hint(self) -> &'static str {
        self.spec().setup_hint
    }

    /// Every wire name, for messages: `native, clerk, ...`.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// A vendor as its module describes it.
pub struct VendorSpec {
    /// The wire name.
    pub name: &'static str,
    /// How an operator configures it.
    pub setup_hint: &'static str,
    /// Builds its adapter from credentials (the operator's or a
    /// project's own); says what is missing.
    pub build: fn(&ByokConfig, http::Policy) -> Result<Arc<dyn IdentityVendor>>,
}

impl std::str::FromStr for VendorKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("{s:?} is not one of {}", Self::names()))
    }
}

impl fmt::Display for VendorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose credentials a vendor call uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The operator's credentials.
    Managed,
    /// The project's own credentials.
    Byok,
}

impl Mode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Managed => "managed",
            Mode::Byok => "byok",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "managed" => Some(Mode::Managed),
            "byok" => Some(Mode::Byok),
            _ => None,
        }
    }
}

/// What a vendor needs to create an identity.
#[derive(Debug)]
pub struct NewIdentity<'a> {
    /// Our id for the user.
    pub user_id: &'a str,
    /// The trimmed email.
    pub email: &'a str,
    /// A validated password, if any.
    pub password: Option<&'a str>,
    /// Initial metadata.
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
}

/// A vendor's user found by email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundUser {
    /// The vendor's id.
    pub id: String,
    /// The authmux user id the vendor user was created for (Clerk and
    /// WorkOS `external_id`, Supabase `app_metadata.authmux_user_id`), if
    /// any: in managed mode projects share the vendor, so only a match
    /// proves the user is the one this create made.
    pub external_id: Option<String>,
}

/// What a vendor reports of a user, to refresh authmux's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendorUser {
    /// The primary email.
    pub email: String,
    /// Whether it is verified.
    pub email_verified: bool,
    /// Whether an MFA factor is enrolled.
    pub mfa_enabled: bool,
}

/// Credentials for a vendor: the operator's (from settings) or a
/// project's own (bring your own key). Every adapter is built from one by
/// [`ByokConfig::adapter`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByokConfig {
    /// The secret: Clerk secret key, WorkOS API key or Supabase
    /// service-role key.
    pub secret: String,
    /// Base URL (Clerk, WorkOS) or project URL (Supabase, required).
    #[serde(default)]
    pub url: Option<String>,
    /// WorkOS client id (required for WorkOS).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The `iss` of the vendor's tokens, when not the default (Clerk: the
    /// Frontend API URL, else read from `GET /domains`; WorkOS:
    /// `<url>/user_management/<client_id>`; Supabase: the auth URL).
    #[serde(default)]
    pub issuer: Option<String>,
}

impl std::fmt::Debug for ByokConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ByokConfig {{ url: {:?}, client_id: {:?}, issuer: {:?}, secret: <redacted> }}",
            self.url, self.client_id, self.issuer
        )
    }
}

impl ByokConfig {
    /// Builds the adapter these credentials open; says what is missing.
    pub fn adapter(
        &self,
        kind: VendorKind,
        policy: http::Policy,
    ) -> Result<Arc<dyn IdentityVendor>> {
        if self.secret.trim().is_empty() {
            return Err(VendorError::Invalid("the vendor secret is empty".into()));
        }
        (kind.spec().build)(self, policy)
    }

    /// The secret, trimmed.
    pub fn secret(&self) -> String {
        self.secret.trim().to_owned()
    }
}

/// What a password check at the vendor found.
#[derive(Debug)]
pub enum PasswordCheck {
    /// The password is wrong, or the user has none.
    Wrong,
    /// The password is right. When the vendor opened a session on the
    /// way (its password grant), that session is here, to be handed out
    /// rather than ended and minted again.
    Right(Option<VendorSession>),
    /// The password is right and the vendor holds the sign-in open until
    /// a TOTP code completes it.
    MfaPending(PendingMfa),
}

/// A sign-in the vendor holds open until the second factor.
#[derive(Clone, Debug)]
pub struct PendingMfa {
    /// The vendor's token for the pending sign-in.
    pub token: String,
    /// The factor to challenge.
    pub factor_id: String,
}

/// What a vendor may need from the request that opens a session.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignInContext<'a> {
    /// A TOTP code the caller gave, already checked by authmux, for a
    /// vendor that asks for it again while opening the session.
    pub mfa_code: Option<&'a str>,
    /// The end user's address, when the caller gave it: vendors that
    /// limit sign-ins per address count it instead of authmux's.
    pub client_ip: Option<&'a str>,
}

/// A session opened at a vendor.
#[derive(Clone, Debug)]
pub struct VendorSession {
    /// The vendor's id for the session.
    pub vendor_session_id: String,
    /// The vendor's own access token (a JWT).
    pub access_token: String,
    /// When that token expires, Unix milliseconds.
    pub expires_at: i64,
    /// Whatever the vendor needs later to refresh or revoke, kept sealed.
    pub credential: Option<String>,
}

/// Where a vendor's access tokens come from and how to check them.
#[derive(Clone, Debug)]
pub struct TokenSource {
    /// The `iss` of its tokens.
    pub issuer: String,
    /// Its JWKS.
    pub jwks_url: String,
    /// Headers the JWKS endpoint requires (credentials, API version).
    pub jwks_headers: Vec<(&'static str, String)>,
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.issuer, self.jwks_url)
    }
}

/// A TOTP factor freshly enrolled, shown to the caller once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaEnrollment {
    /// The shared secret, base32.
    pub secret: String,
    /// An `otpauth://` URI for authenticator apps.
    pub otpauth_uri: String,
}

/// One identity vendor. Resource ids passed in are the vendor's own (from
/// the pin); the project id scopes every call.
#[async_trait::async_trait]
pub trait IdentityVendor: Send + Sync {
    /// Which vendor this is.
    fn kind(&self) -> VendorKind;

    /// Whether signing in a user whose email is verified as given changes
    /// the user at the vendor on the way (and sets it back), so that the
    /// sign-in must not overlap an update of the user.
    fn sign_in_writes_user(&self, _email_verified: bool) -> bool {
        false
    }

    /// Creates the identity; returns the vendor's id for it.
    async fn create_user(&self, project_id: &str, new: NewIdentity<'_>) -> Result<String>;

    /// The vendor's current view of a user; `None` when authmux's own
    /// index is the record of truth (the built-in provider).
    async fn fetch_user(
        &self,
        project_id: &str,
        vendor_user_id: &str,
    ) -> Result<Option<VendorUser>>;

    /// Everything the vendor holds on the user, as its API returns it,
    /// for the data-subject export: `{"user": …}` plus the lists the
    /// vendor keeps apart from the user object (sessions, identities,
    /// factors). `None` when authmux's own rows are the whole record (the
    /// built-in provider). Keys that could carry a credential are dropped
    /// by the caller ([`scrub_secrets`]).
    async fn export_user(
        &self,
        _project_id: &str,
        _vendor_user_id: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        Ok(None)
    }

    /// Refuses metadata the vendor can't keep (a size limit), before
    /// anything is stored.
    fn check_metadata(&self, _metadata: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        Ok(())
    }

    /// Replaces the metadata the vendor keeps for the user.
    async fn set_metadata(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()>;

    /// Records the email as verified or not.
    async fn set_email_verified(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        verified: bool,
    ) -> Result<()>;

    /// Enrolls a TOTP factor for `email`.
    async fn enroll_totp(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        email: &str,
    ) -> Result<MfaEnrollment>;

    /// Removes every MFA factor.
    async fn disable_mfa(&self, project_id: &str, vendor_user_id: &str) -> Result<()>;

    /// Deletes the identity.
    async fn delete_user(&self, project_id: &str, vendor_user_id: &str) -> Result<()>;

    /// Checks a password.
    async fn verify_password(
        &self,
        project_id: &str,
        vendor_user_id: &str,
        password: &str,
        cx: SignInContext<'_>,
    ) -> Result<PasswordCheck>;

    /// Completes a sign-in the vendor held for a TOTP code; `None` when the
    /// code is wrong.
    async fn complete_mfa(
        &self,
        _project_id: &str,
        _pending: &PendingMfa,
        _code: &str,
    ) -> Result<Option<VendorSession>> {
        Err(unsupported(self.kind(), "a pending MFA sign-in"))
    }

    /// Checks a TOTP code; a code that matched once never matches again.
    async fn verify_totp(&self, project_id: &str, vendor_user_id: &str, code: &str)
    -> Result<bool>;

    /// The vendor's user with this email, if there is one, with the
    /// authmux user id it was created for: what failover asks before
    /// trying another vendor.
    async fn find_user_by_email(&self, project_id: &str, email: &str) -> Result<Option<FoundUser>>;

    /// Sets (or with `None` removes) the user's phone number (E.164).
    async fn set_phone(
        &self,
        _project_id: &str,
        _vendor_user_id: &str,
        _phone: Option<&str>,
    ) -> Result<()> {
        Err(unsupported(self.kind(), "auth.user.update phone_number"))
    }

    /// Sets the user's password (already checked against the rules);
    /// `email` is the user's, for a policy that refuses a password made
    /// from it.
    async fn set_password(
        &self,
        _project_id: &str,
        _vendor_user_id: &str,
        _email: &str,
        _password: &str,
    ) -> Result<()> {
        Err(unsupported(self.kind(), "auth.user.update password"))
    }

    /// Opens a session for a user at the vendor, without changing the
    /// user (a mint that verifies the email as a side effect undoes it, or
    /// is refused).
    async fn create_session(
        &self,
        _project_id: &str,
        _vendor_user_id: &str,
        _cx: SignInContext<'_>,
    ) -> Result<VendorSession> {
        Err(unsupported(self.kind(), "auth.session.create"))
    }

    /// A fresh access token for a vendor session.
    async fn refresh_session(
        &self,
        _project_id: &str,
        _vendor_session_id: &str,
        _credential: Option<&str>,
    ) -> Result<VendorSession> {
        Err(unsupported(self.kind(), "auth.session.refresh"))
    }

    /// Ends a vendor session.
    async fn revoke_session(
        &self,
        _project_id: &str,
        _vendor_session_id: &str,
        _credential: Option<&str>,
    ) -> Result<()> {
        Err(unsupported(self.kind(), "auth.session.revoke"))
    }

    /// Probes the vendor's health with one cheap request.
    async fn health_check(&self) -> bool {
        true
    }

    /// The HTTP client of a remote vendor (breaker state, latency).
    fn http(&self) -> Option<&http::VendorHttp> {
        None
    }

    /// Whether this adapter, with its credentials, can serve a capability
    /// on the live vendor.
    fn supports(&self, _capability: &str) -> bool {
        true
    }

    /// Where the vendor's access tokens come from; `None` for authmux's
    /// own, or while the vendor can't say.
    async fn token_source(&self) -> Option<TokenSource> {
        None
    }
}

/// Keys a vendor's record may use for a credential (TOTP seeds and their
/// `otpauth://` URIs and QR codes, password hashes, tokens). None of the
/// vendors' read endpoints documents such a key, so removing them from an
/// export only guards against a vendor that starts sending one.
const SECRET_KEYS: [&str; 10] = [
    "secret",
    "uri",
    "qr_code",
    "password",
    "password_digest",
    "encrypted_password",
    "access_token",
    "refresh_token",
    "token",
    "backup_codes",
];

/// Drops every key in [`SECRET_KEYS`] from a vendor's record, at any depth.
pub fn scrub_secrets(record: &mut serde_json::Map<String, serde_json::Value>) {
    record.retain(|k, _| !SECRET_KEYS.contains(&k.as_str()));
    record.values_mut().for_each(scrub_value);
}

fn scrub_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => scrub_secrets(map),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_value),
        _ => {}
    }
}

/// Picks the vendor for a request.
#[derive(Clone)]
pub struct VendorRouter {
    /// The operator's adapters, the built-in one included.
    managed: BTreeMap<VendorKind, Arc<dyn IdentityVendor>>,
    priority: Vec<VendorKind>,
    policy: http::Policy,
    byok: Arc<std::sync::Mutex<ByokAdapters>>,
    jwks: Arc<JwksClient>,
}

/// Adapters built from projects' own credentials, one per (project,
/// vendor), rebuilt when the credentials change; each has its own breaker.
type ByokAdapters = HashMap<(String, VendorKind), (ByokConfig, Arc<dyn IdentityVendor>)>;

impl VendorRouter {
    /// A router over the built-in provider alone.
    pub fn new(native: Arc<dyn IdentityVendor>, jwks: JwksClient) -> Self {
        VendorRouter {
            managed: BTreeMap::from([(VendorKind::Native, native)]),
            priority: VendorKind::ALL.to_vec(),
            policy: http::Policy::default(),
            byok: Arc::default(),
            jwks: Arc::new(jwks),
        }
    }

    /// Among `adapters`, the vendor whose tokens carry `iss`. Issuers are
    /// unique among a project's adapters (a project's own credentials may
    /// not reuse a managed issuer), so at most one matches.
    pub async fn by_issuer(
        adapters: Vec<Arc<dyn IdentityVendor>>,
        issuer: &str,
    ) -> Option<(Arc<dyn IdentityVendor>, TokenSource)> {
        for v in adapters {
            if let Some(source) = v.token_source().await
                && source.issuer == issuer
            {
                return Some((v, source));
            }
        }
        None
    }

    /// The key `kid` of a vendor's JWKS.
    pub async fn vendor_key(
        &self,
        source: &TokenSource,
        kid: &str,
    ) -> std::result::Result<Arc<crate::tokens::keys::PublicKey>, crate::tokens::jwks::JwksError>
    {
        self.jwks
            .key(&source.jwks_url, kid, &source.jwks_headers)
            .await
    }

    /// The JWKS client every issuer's keys come through.
    pub fn jwks(&self) -> Arc<JwksClient> {
        self.jwks.clone()
    }

    /// Adds a vendor with the operator's credentials.
    pub fn with(mut self, adapter: Arc<dyn IdentityVendor>) -> Self {
        self.managed.insert(adapter.kind(), adapter);
        self
    }

    /// Every configured vendor adapter other than the built-in one.
    fn adapters(&self) -> Vec<Arc<dyn IdentityVendor>> {
        self.managed
            .iter()
            .filter(|(k, _)| **k != VendorKind::Native)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// How a vendor is doing: `live`, `degraded` (probing after failures),
    /// `down` (circuit open) or `not_configured`, and its recent p50 latency.
    pub fn standing(&self, kind: VendorKind) -> (&'static str, Option<f64>) {
        match self.managed.get(&kind) {
            Some(adapter) => Self::standing_of(adapter.as_ref()),
            None => ("not_configured", None),
        }
    }

    /// How one adapter is doing (see [`VendorRouter::standing`]).
    pub fn standing_of(adapter: &dyn IdentityVendor) -> (&'static str, Option<f64>) {
        use http::BreakerState;
        let Some(http) = adapter.http() else {
            return ("live", None);
        };
        let status = match http.breaker_state() {
            _ if !http.probe_ok() => "down",
            BreakerState::Closed => "live",
            BreakerState::HalfOpen => "degraded",
            BreakerState::Open => "down",
        };
        (status, http.p50_ms())
    }

    /// Whether the operator's adapter for `kind` serves a capability on
    /// the live vendor (`None` when the vendor is not configured).
    pub fn supports(&self, kind: VendorKind, capability: &str) -> Option<bool> {
        self.managed.get(&kind).map(|a| a.supports(capability))
    }

    /// The vendor for `kind` in `mode`, or why it can't be used.
    pub fn resolve(&self, kind: VendorKind, mode: Mode) -> Result<Arc<dyn IdentityVendor>> {
        match (kind, mode) {
            (_, Mode::Managed) if self.managed.contains_key(&kind) => {
                Ok(self.managed[&kind].clone())
            }
            (VendorKind::Native, Mode::Byok) => Err(VendorError::NotConfigured(
                "mode \"byok\" needs a vendor with credentials; native has none to bring".into(),
            )),
            (other, Mode::Byok) => Err(VendorError::NotConfigured(format!(
                "this project has no credentials of its own for {other} (authmux vendors set --project ... --vendor {other})"
            ))),
            (other, Mode::Managed) => Err(VendorError::NotConfigured(format!(
                "vendor {other} is not configured for this project ({})",
                other.setup_hint()
            ))),
        }
    }

    /// Sets the timeouts, retries and breaker of adapters built later.
    pub fn with_policy(mut self, policy: http::Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The adapter a project's own credentials open.
    pub fn byok(
        &self,
        project_id: &str,
        kind: VendorKind,
        config: &ByokConfig,
    ) -> Result<Arc<dyn IdentityVendor>> {
        let key = (project_id.to_owned(), kind);
        let mut cache = self.byok.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cfg, adapter)) = cache.get(&key)
            && cfg == config
        {
            return Ok(adapter.clone());
        }
        let adapter = config.adapter(kind, self.policy)?;
        cache.insert(key, (config.clone(), adapter.clone()));
        Ok(adapter)
    }

    /// Every managed adapter other than the built-in one.
    pub fn managed_adapters(&self) -> Vec<Arc<dyn IdentityVendor>> {
        self.adapters()
    }

    /// Probes every managed vendor each `every` until the process ends, so
    /// that a vendor that went down is skipped before a request finds out.
    pub fn spawn_probes(&self, every: std::time::Duration) {
        for adapter in self.adapters() {
            let weak = Arc::downgrade(&adapter);
            drop(adapter);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(adapter) = weak.upgrade() else { break };
                    if !adapter.health_check().await {
                        tracing::warn!(vendor = %adapter.kind(), "vendor health probe failed");
                    }
                }
            });
        }
    }

    /// Sets the order in which vendors are tried when the caller names
    /// none; vendors not configured are skipped.
    pub fn with_priority(mut self, priority: Vec<VendorKind>) -> Self {
        self.priority = priority;
        self
    }

    /// The vendors to try, in order, when the caller names none: the
    /// configured ones by priority, those with an open circuit left out.
    pub fn candidates(&self) -> Vec<Arc<dyn IdentityVendor>> {
        self.priority
            .iter()
            .filter(|k| self.standing(**k).0 != "down")
            .filter_map(|k| self.resolve(*k, Mode::Managed).ok())
            .collect()
    }

    /// Whether a vendor can serve requests in managed mode.
    pub fn is_configured(&self, kind: VendorKind) -> bool {
        self.managed.contains_key(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::scrub_secrets;
    use serde_json::json;

    #[test]
    fn scrub_drops_credentials_at_any_depth() {
        let serde_json::Value::Object(mut v) = json!({
            "user": {"id": "u1", "password": "x", "email": "a@b.c"},
            "auth_factors": [{"id": "f1", "totp": {"issuer": "i", "secret": "S", "uri": "otpauth://", "qr_code": "data:"}}],
            "sessions": [{"id": "s1", "token": "t"}],
        }) else {
            panic!("an object")
        };
        scrub_secrets(&mut v);
        assert_eq!(
            serde_json::Value::Object(v),
            json!({
                "user": {"id": "u1", "email": "a@b.c"},
                "auth_factors": [{"id": "f1", "totp": {"issuer": "i"}}],
                "sessions": [{"id": "s1"}],
            })
        );
    }
}
