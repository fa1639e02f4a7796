//! authmux as an OAuth 2.0 / OpenID Connect relying party: provider
//! settings and presets, the authorization URL (PKCE S256, state, nonce),
//! the code exchange (the `oauth2` crate), and who the provider says the
//! user is (a verified ID token, or GitHub's API). Knows nothing of users
//! or sessions; the domain decides what a sign-in does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::tokens::jwks::{JwksClient, JwksError};
use crate::tokens::verify::{self, Audience, Expect, Invalid, Jwt};

/// How long a provider's metadata is kept before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The longest wait for a provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// How far in the future an ID token's `iat` may lie (clock skew).
const IAT_LEEWAY_SECS: i64 = 60;

/// What kind of provider: OpenID Connect, or GitHub's plain OAuth 2.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect: metadata from the issuer, an ID token.
    Oidc,
    /// GitHub: no ID token; `/user` and `/user/emails`.
    Github,
    /// Sign in with Apple: OpenID Connect with `response_mode=form_post`
    /// and a client secret that is a JWT signed with the team's key.
    Apple,
}

impl ProviderKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Github => "github",
            ProviderKind::Apple => "apple",
        }
    }
}

/// A project's provider, as configured (sealed at rest).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// OIDC or GitHub.
    pub kind: ProviderKind,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (Apple: the team's private key, PEM).
    pub client_secret: String,
    /// Apple: the team id and the key id the client secret JWT names.
    #[serde(default)]
    pub apple: Option<AppleKey>,
    /// The OpenID issuer (OIDC), or GitHub's web base URL.
    pub issuer: String,
    /// GitHub's API base URL.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Scopes always asked for.
    pub scopes: Vec<String>,
    /// The redirect URIs allowed (exact match).
    pub redirect_uris: Vec<String>,
}

/// What Apple's client secret JWT names (Apple: "Creating a client
/// secret", developer.apple.com/documentation/accountorganizationaldatasharing/creating-a-client-secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppleKey {
    /// The 10-character team id (`iss`).
    pub team_id: String,
    /// The key id (`kid`).
    pub key_id: String,
}

/// Apple's audience for client secrets, whatever the host.
pub const APPLE_AUDIENCE: &str = "https://appleid.apple.com";

/// Apple's client secret: an ES256 JWT, here valid 5 minutes (Apple
/// allows up to 6 months) from `now` (Unix seconds), made for each code
/// exchange.
pub fn apple_client_secret(
    pem: &str,
    key: &AppleKey,
    client_id: &str,
    now: i64,
) -> std::result::Result<String, String> {
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
        .map_err(|_| "the Apple key is not an EC private key in PEM (the .p8 file)".to_owned())?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.key_id.clone());
    let claims = serde_json::json!({
        "iss": key.team_id,
        "iat": now,
        "exp": now + 300,
        "aud": APPLE_AUDIENCE,
        "sub": client_id,
    });
    jsonwebtoken::encode(&header, &claims, &signing)
        .map_err(|e| format!("signing the Apple client secret: {e}"))
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .field("scopes", &self.scopes)
            .field("redirect_uris", &self.redirect_uris)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// A provider authmux knows by name.
pub struct Preset {
    /// OIDC or GitHub.
    pub kind: ProviderKind,
    /// The issuer (or GitHub's web base).
    pub issuer: &'static str,
    /// GitHub's API base.
    pub api_url: Option<&'static str>,
    /// The scopes asked for by default.
    pub scopes: &'static [&'static str],
}

const OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];

/// The presets: Google, Microsoft (Entra ID, any tenant), GitLab, Apple
/// and GitHub. Any other name needs an issuer and is generic OpenID Connect.
pub fn preset(name: &str) -> Option<Preset> {
    let oidc = |issuer| Preset {
        kind: ProviderKind::Oidc,
        issuer,
        api_url: None,
        scopes: OIDC_SCOPES,
    };
    Some(match name {
        "google" => oidc("https://accounts.google.com"),
        // Entra ID's multi-tenant metadata names the issuer with a
        // `{tenantid}` template, filled from each token's `tid`.
        "microsoft" => oidc("https://login.microsoftonline.com/common/v2.0"),
        "gitlab" => oidc("https://gitlab.com"),
        // Apple's scopes are `name email` ("Request an authorization to the
        // Sign in with Apple server"); the ID token comes regardless.
        "apple" => Preset {
            kind: ProviderKind::Apple,
            issuer: "https://appleid.apple.com",
            api_url: None,
            scopes: &["name", "email"],
        },
        "github" => Preset {
            kind: ProviderKind::Github,
            issuer: "https://github.com",
            api_url: Some("https://api.github.com"),
            scopes: &["read:user", "user:email"],
        },
        _ => return None,
    })
}

/// Checks that a URL is absolute and `https` (or `http` on loopback).
pub fn check_url(what: &str, url: &str) -> std::result::Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{what} {url:?} is not a URL: {e}"))?;
    let loopback = matches!(
        parsed.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || parsed.host_str() == Some("localhost");
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{what} {url:?} must be https (http only on loopback)"
        )),
    }
}

/// What went wrong talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider could not be reached or answered 5xx.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused (a bad or used code, a wrong PKCE verifier,
    /// the user said no).
    #[error("{0}")]
    Denied(String),
    /// What the provider sent does not check out (ID token, `iss`).
    #[error("{0}")]
    Untrusted(String),
}

type Result<T> = std::result::Result<T, OAuthError>;

/// The endpoints of one provider.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Where the browser is sent.
    pub authorization: String,
    /// Where the code is exchanged.
    pub token: String,
    /// The `iss` its ID tokens carry (may hold `{tenantid}`).
    pub issuer: String,
    /// Its JWKS (OIDC).
    pub jwks_uri: Option<String>,
    /// Whether it sends the RFC 9207 `iss` response parameter.
    pub iss_parameter: bool,
    /// Its UserInfo endpoint (OIDC), for claims the ID token leaves out.
    pub userinfo: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// Who the provider says the user is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The provider's stable id for the user.
    pub subject: String,
    /// The email, when the provider gave one.
    pub email: Option<String>,
    /// Whether the provider asserts the email is verified.
    pub email_verified: bool,
}

/// The claims of an ID token authmux reads (OpenID Connect Core §2).
#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    aud: Audience,
    iat: i64,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<BoolOrString>,
}

/// Some providers send `email_verified` as `"true"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString {
    Bool(bool),
    Text(String),
}

impl BoolOrString {
    fn truth(&self) -> bool {
        match self {
            BoolOrString::Bool(b) => *b,
            BoolOrString::Text(t) => t == "true",
        }
    }
}

/// The `id_token` of a token reply.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type Client = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A new authorization request: where to send the browser, and the
/// secrets to keep until the code comes back.
pub struct Authorization {
    /// The URL.
    pub url: String,
    /// The PKCE verifier.
    pub verifier: String,
}

/// Talks to providers.
pub struct OAuthClient {
    http: reqwest::Client,
    jwks: Arc<JwksClient>,
    clock: Arc<crate::clock::Clock>,
    metadata: Mutex<HashMap<String, (Instant, Endpoints)>>,
}

impl OAuthClient {
    /// A client fetching keys through `jwks`, reading time from `clock`.
    pub fn new(jwks: Arc<JwksClient>, clock: Arc<crate::clock::Clock>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT / 2)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        OAuthClient {
            http,
            jwks,
            clock,
            metadata: Mutex::default(),
        }
    }

    /// The provider's endpoints: GitHub's fixed ones, or an OpenID
    /// provider's from its discovery document (cached for an hour).
    pub async fn endpoints(&self, cfg: &ProviderConfig) -> Result<Endpoints> {
        let base = cfg.issuer.trim_end_matches('/');
        if cfg.kind == ProviderKind::Github {
            return Ok(Endpoints {
                authorization: format!("{base}/login/oauth/authorize"),
                token: format!("{base}/login/oauth/access_token"),
                issuer: cfg.issuer.clone(),
                jwks_uri: None,
                iss_parameter: false,
                userinfo: None,
            });
        }
        if let Some((at, ep)) = self
            .metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cfg.issuer)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(ep.clone());
        }
        let url = format!("{base}/.well-known/openid-configuration");
        let reply = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| OAuthError::Unavailable(format!("{url}: {}", e.without_url())))?;
        if !reply.status().is_success() {
            return Err(OAuthError::Unavailable(format!(
                "{url} answered {}",
                reply.status()
            )));
        }
        let m: Metadata = reply.json().await.map_err(|_| {
            OAuthError::Unavailable(format!("{url} is not an OpenID provider configuration"))
        })?;
        // OpenID Connect Discovery §4.3: the issuer must be the one asked
        // for (Entra ID's multi-tenant document names a template).
        if m.issuer.trim_end_matches('/') != base && !m.issuer.contains("{tenantid}") {
            return Err(OAuthError::Untrusted(format!(
                "the provider at {base} names another issuer ({})",
                m.issuer
            )));
        }
        for (what, u) in [
            ("authorization_endpoint", Some(&m.authorization_endpoint)),
            ("token_endpoint", Some(&m.token_endpoint)),
            ("jwks_uri", Some(&m.jwks_uri)),
            ("userinfo_endpoint", m.userinfo_endpoint.as_ref()),
        ] {
            if let Some(u) = u {
                check_url(what, u).map_err(OAuthError::Untrusted)?;
            }
        }
        let ep = Endpoints {
            authorization: m.authorization_endpoint,
            token: m.token_endpoint,
            issuer: m.issuer,
            jwks_uri: Some(m.jwks_uri),
            iss_parameter: m.authorization_response_iss_parameter_supported,
            userinfo: m.userinfo_endpoint,
        };
        self.metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cfg.issuer.clone(), (Instant::now(), ep.clone()));
        Ok(ep)
    }

    /// The secret the token endpoint takes: the configured one, or for
    /// Apple a fresh client-secret JWT.
    fn client_secret(&self, cfg: &ProviderConfig) -> Result<String> {
        match &cfg.apple {
            Some(key) => apple_client_secret(
                &cfg.client_secret,
                key,
                &cfg.client_id,
                self.clock.now_secs(),
            )
            .map_err(OAuthError::Untrusted),
            None => Ok(cfg.client_secret.clone()),
        }
    }

    /// The oauth2 client; `secret` only for the token endpoint.
    fn client(
        cfg: &ProviderConfig,
        ep: &Endpoints,
        redirect_uri: &str,
        secret: Option<String>,
    ) -> Result<Client> {
        let bad = |e: url::ParseError| OAuthError::Untrusted(format!("a provider URL: {e}"));
        let mut client = oauth2::Client::new(ClientId::new(cfg.client_id.clone()));
        if let Some(secret) = secret {
            client = client.set_client_secret(ClientSecret::new(secret));
        }
        let client = client
            .set_auth_uri(AuthUrl::new(ep.authorization.clone()).map_err(bad)?)
            .set_token_uri(TokenUrl::new(ep.token.clone()).map_err(bad)?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(bad)?);
        // GitHub and Apple take the client credentials in the body.
        Ok(match cfg.kind {
            ProviderKind::Github | ProviderKind::Apple => {
                client.set_auth_type(AuthType::RequestBody)
            }
            ProviderKind::Oidc => client,
        })
    }

    /// The authorization URL for a new sign-in, with a fresh PKCE S256
    /// challenge; `nonce` goes to OpenID providers.
    pub fn authorize(
        cfg: &ProviderConfig,
        ep: &Endpoints,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        login_hint: Option<&str>,
        extra_scopes: &[String],
    ) -> Result<Authorization> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = Self::client(cfg, ep, redirect_uri, None)?;
        let mut req = client
            .authorize_url(|| CsrfToken::new(state.to_owned()))
            .set_pkce_challenge(challenge);
        for scope in cfg.scopes.iter().chain(extra_scopes) {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        if cfg.kind != ProviderKind::Github {
            req = req.add_extra_param("nonce", nonce);
        }
        // Apple sends the code back in a form POST when names or emails
        // are asked for.
        if cfg.kind == ProviderKind::Apple {
            req = req.add_extra_param("response_mode", "form_post");
        }
        if let Some(hint) = login_hint {
            let name = match cfg.kind {
                ProviderKind::Oidc | ProviderKind::Apple => "login_hint",
                ProviderKind::Github => "login",
            };
            req = req.add_extra_param(name, hint);
        }
        let (url, _) = req.url();
        Ok(Authorization {
            url: url.to_string(),
            verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges a code (with its PKCE verifier) and finds who the user
    /// is: from the ID token (OIDC, checked against `nonce`) or GitHub's
    /// API.
    pub async fn sign_in(
        &self,
        cfg: &ProviderConfig,
        ep: &Endpoints,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Profile> {
        let client = Self::client(cfg, ep, redirect_uri, Some(self.client_secret(cfg)?))?;
        let http = |req: oauth2::HttpRequest| {
            let http = self.http.clone();
            async move {
                let (parts, body) = req.into_parts();
                let reply = http
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(reqwest::Error::without_url)?;
                let mut out = oauth2::HttpResponse::new(Vec::new());
                *out.status_mut() = reply.status();
                *out.headers_mut() = reply.headers().clone();
                *out.body_mut() = reply
                    .bytes()
                    .await
                    .map_err(reqwest::Error::without_url)?
                    .to_vec();
                Ok::<_, reqwest::Error>(out)
            }
        };
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => OAuthError::Denied(format!(
                    "the provider refused the code ({})",
                    r.error().as_ref()
                )),
                // GitHub answers a bad code with 200 and an `error` field.
                RequestTokenError::Parse(_, body)
                    if serde_json::from_slice::<serde_json::Value>(&body)
                        .is_ok_and(|v| v.get("error").is_some()) =>
                {
                    OAuthError::Denied("the provider refused the code".into())
                }
                RequestTokenError::Parse(..) => {
                    OAuthError::Unavailable("the token endpoint answered something else".into())
                }
                RequestTokenError::Request(e) => OAuthError::Unavailable(e.to_string()),
                RequestTokenError::Other(e) => OAuthError::Unavailable(e),
            })?;
        match cfg.kind {
            ProviderKind::Oidc | ProviderKind::Apple => {
                let id_token =
                    tokens.extra_fields().id_token.as_deref().ok_or_else(|| {
                        OAuthError::Untrusted("the provider sent no ID token".into())
                    })?;
                let mut profile = self.check_id_token(cfg, ep, id_token, nonce).await?;
                if profile.email.is_none()
                    && let Some(userinfo) = &ep.userinfo
                {
                    self.userinfo(userinfo, tokens.access_token().secret(), &mut profile)
                        .await?;
                }
                Ok(profile)
            }
            ProviderKind::Github => {
                self.github_profile(cfg, tokens.access_token().secret())
                    .await
            }
        }
    }

    /// OpenID Connect Core §3.1.3.7: signature by the provider's key (the
    /// algorithm the key says, RS256 or ES256 only), `iss`, `aud`, `azp`,
    /// `exp`, `iat` and `nonce`.
    async fn check_id_token(
        &self,
        cfg: &ProviderConfig,
        ep: &Endpoints,
        token: &str,
        nonce: &str,
    ) -> Result<Profile> {
        let untrusted = |why: Invalid| {
            OAuthError::Untrusted(format!("the ID token is not valid ({})", why.as_str()))
        };
        let jwt = Jwt::parse(token).map_err(untrusted)?;
        let jwks_uri = ep.jwks_uri.as_deref().unwrap_or_default();
        let key = self
            .jwks
            .key(jwks_uri, &jwt.head.kid, &[])
            .await
            .map_err(|e| match e {
                JwksError::UnknownKey(_) => untrusted(Invalid::UnknownKey),
                JwksError::Unavailable(why) => OAuthError::Unavailable(why),
            })?;
        let issuer = expected_issuer(&ep.issuer, token).map_err(untrusted)?;
        let claims: IdClaims = jwt
            .verify_as(
                &key,
                &Expect {
                    issuer: &issuer,
                    audience: Some(&cfg.client_id),
                    max_lifetime_secs: None,
                    now_secs: self.clock.now_secs(),
                },
            )
            .map_err(untrusted)?;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(OAuthError::Untrusted(
                "the ID token's nonce is not this sign-in's".into(),
            ));
        }
        let several = matches!(&claims.aud, Audience::Many(a) if a.len() > 1);
        match claims.azp.as_deref() {
            Some(azp) if azp != cfg.client_id => {
                return Err(OAuthError::Untrusted(
                    "the ID token was issued to another client (azp)".into(),
                ));
            }
            None if several => {
                return Err(OAuthError::Untrusted(
                    "the ID token has several audiences and no azp".into(),
                ));
            }
            _ => {}
        }
        let now = self.clock.now_secs();
        if claims.iat > now + IAT_LEEWAY_SECS {
            return Err(OAuthError::Untrusted(
                "the ID token was issued in the future (iat)".into(),
            ));
        }
        Ok(Profile {
            subject: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified.is_some_and(|v| v.truth()),
        })
    }

    /// OpenID Connect Core §5.3: the claims the ID token left out (most
    /// providers put `email` only here for the code flow), from the same
    /// subject (§5.3.2: `sub` must match).
    async fn userinfo(&self, url: &str, access_token: &str, profile: &mut Profile) -> Result<()> {
        #[derive(Deserialize)]
        struct UserInfo {
            sub: String,
            #[serde(default)]
            email: Option<String>,
            #[serde(default)]
            email_verified: Option<BoolOrString>,
        }
        let reply = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(unreachable_provider)?;
        if !reply.status().is_success() {
            return Err(OAuthError::Unavailable(format!(
                "the UserInfo endpoint answered {}",
                reply.status()
            )));
        }
        let info: UserInfo = reply.json().await.map_err(unreachable_provider)?;
        if info.sub != profile.subject {
            return Err(OAuthError::Untrusted(
                "the UserInfo reply is about another subject".into(),
            ));
        }
        profile.email_verified = info.email_verified.is_some_and(|v| v.truth());
        profile.email = info.email;
        Ok(())
    }

    /// GitHub's user: its numeric id, and its primary email only when
    /// GitHub says it is verified.
    async fn github_profile(&self, cfg: &ProviderConfig, access_token: &str) -> Result<Profile> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
        }
        #[derive(Deserialize)]
        struct Email {
            email: String,
            primary: bool,
            verified: bool,
        }
        let api = cfg
            .api_url
            .as_deref()
            .unwrap_or("https://api.github.com")
            .trim_end_matches('/');
        let get = |path: &str| {
            self.http
                .get(format!("{api}{path}"))
                .bearer_auth(access_token)
                .header("accept", "application/vnd.github+json")
                .header("user-agent", "authmux")
                .header("x-github-api-version", "2022-11-28")
                .send()
        };
        let user = get("/user").await.map_err(unreachable_provider)?;
        if !user.status().is_success() {
            return Err(OAuthError::Unavailable(format!(
                "GitHub /user answered {}",
                user.status()
            )));
        }
        let user: User = user.json().await.map_err(unreachable_provider)?;
        let emails = get("/user/emails").await.map_err(unreachable_provider)?;
        // Without the user:email scope there is no list: no email then.
        let emails: Vec<Email> = match emails.status().is_success() {
            true => emails.json().await.map_err(unreachable_provider)?,
            false => Vec::new(),
        };
        let primary = emails.into_iter().find(|e| e.primary && e.verified);
        Ok(Profile {
            subject: user.id.to_string(),
            email_verified: primary.is_some(),
            email: primary.map(|e| e.email),
        })
    }
}

/// The `iss` an ID token must carry. Entra ID's multi-tenant metadata
/// names `https://login.microsoftonline.com/{tenantid}/v2.0`: the tenant
/// is the token's own `tid` (a GUID), so any tenant signs in, each under
/// its own issuer, and the signature still decides.
pub fn expected_issuer(template: &str, token: &str) -> std::result::Result<String, Invalid> {
    if !template.contains("{tenantid}") {
        return Ok(template.to_owned());
    }
    let tid = verify::peek_claim(token, "tid")
        .filter(|t| {
            (1..=64).contains(&t.len()) && t.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        })
        .ok_or(Invalid::WrongIssuer)?;
    Ok(template.replace("{tenantid}", &tid))
}

/// Whether `iss` (an RFC 9207 response parameter) is the provider's
/// issuer; under a `{tenantid}` template, any one tenant's.
pub fn issuer_matches(template: &str, iss: &str) -> bool {
    let (template, iss) = (template.trim_end_matches('/'), iss.trim_end_matches('/'));
    match template.split_once("{tenantid}") {
        None => template == iss,
        Some((before, after)) => iss
            .strip_prefix(before)
            .and_then(|rest| rest.strip_suffix(after))
            .is_some_and(|tid| {
                !tid.is_empty() && tid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            }),
    }
}

/// A provider that could not be reached, said without the URL (which may
/// carry a code or token).
fn unreachable_provider(e: reqwest::Error) -> OAuthError {
    OAuthError::Unavailable(e.without_url().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn token(claims: serde_json::Value) -> String {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            b64(serde_json::json!({"alg": "RS256", "kid": "k"})),
            b64(claims)
        )
    }

    #[test]
    fn entra_id_issuers_come_from_the_tokens_tenant() {
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
        assert_eq!(
            expected_issuer(template, &token(serde_json::json!({"tid": tid}))),
            Ok(format!("https://login.microsoftonline.com/{tid}/v2.0"))
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"tid": ""}),
            serde_json::json!({"tid": "evil.example/x"}),
        ] {
            assert_eq!(
                expected_issuer(template, &token(bad)),
                Err(Invalid::WrongIssuer)
            );
        }
        // A fixed issuer is taken as it is.
        assert_eq!(
            expected_issuer("https://accounts.google.com", &token(serde_json::json!({}))),
            Ok("https://accounts.google.com".to_owned())
        );
    }

    #[test]
    fn iss_parameters_match_the_issuer_or_its_tenant_template() {
        assert!(issuer_matches(
            "https://idp.example",
            "https://idp.example/"
        ));
        assert!(!issuer_matches(
            "https://idp.example",
            "https://evil.example"
        ));
        let t = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(issuer_matches(
            t,
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
        ));
        assert!(!issuer_matches(
            t,
            "https://login.microsoftonline.com//v2.0"
        ));
        assert!(!issuer_matches(
            t,
            "https://login.microsoftonline.com/x/y/v2.0"
        ));
        assert!(!issuer_matches(t, "https://evil.example/abc/v2.0"));
    }

    #[test]
    fn provider_urls_are_https_or_loopback() {
        assert!(check_url("issuer", "https://accounts.google.com").is_ok());
        assert!(check_url("issuer", "http://127.0.0.1:8080").is_ok());
        assert!(check_url("issuer", "http://localhost:8080").is_ok());
        assert!(check_url("issuer", "http://idp.example").is_err());
        assert!(check_url("issuer", "ftp://idp.example").is_err());
        assert!(check_url("issuer", "not a url").is_err());
    }
}
