//! Sign-in with an outside identity provider: a project's providers,
//! `oauth.start` and `oauth.complete`, and the identities linked to users.
//!
//! A state is 256 random bits, kept only as its SHA-256, bound to the
//! project (the row's key), the provider and the redirect URI (sealed with
//! the PKCE verifier and the nonce), valid 10 minutes and used once. A
//! sign-in waiting for its second factor stays on the used state for 5
//! minutes; the code is never exchanged twice.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::sessions::{CreateSession, SessionTokens};
use super::users::{CreateUser, UpdateUser, User};
use super::{Domain, Error, ErrorCode, EventKind, Project, Result};
use crate::crypto::sha256_hex;
use crate::oauth::{OAuthClient, OAuthError, ProviderConfig, ProviderKind, check_url, preset};
use crate::store::entity::{identities, oauth_providers, oauth_states};
use crate::store::oauth::Linked;

/// How long a started sign-in may be completed.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// How long a sign-in waits for its second factor.
pub const MFA_WAIT_MS: i64 = 5 * 60 * 1000;
/// The most redirect URIs and scopes a provider may list.
const MAX_LIST: usize = 20;

/// What `oauth set` stores.
#[derive(Clone, Debug, Default)]
pub struct SetProvider {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The issuer; required for a provider without a preset.
    pub issuer: Option<String>,
    /// Scopes instead of the preset's.
    pub scopes: Vec<String>,
    /// Allowed redirect URIs (at least one).
    pub redirect_uris: Vec<String>,
    /// GitHub's API base URL (for GitHub Enterprise, or tests).
    pub api_url: Option<String>,
    /// Apple: the team id and key id (the secret is then the key's PEM).
    pub apple: Option<crate::oauth::AppleKey>,
}

/// A provider as listed: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The project's name for it.
    pub provider: String,
    /// `oidc` or `github`.
    pub kind: ProviderKind,
    /// The client id.
    pub client_id: String,
    /// The issuer (or GitHub's web base).
    pub issuer: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Allowed redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// Input of `oauth.start`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StartOAuth {
    /// A configured provider.
    pub provider: String,
    /// A registered redirect URI.
    pub redirect_uri: String,
    /// A hint for the provider's login page.
    pub login_hint: Option<String>,
    /// Scopes beyond the configured ones.
    pub scopes: Vec<String>,
    /// The vendor of record for a user this sign-in creates.
    pub vendor: Option<String>,
    /// Its mode.
    pub mode: Option<String>,
}

/// Reply of `oauth.start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// Where to send the browser.
    pub authorization_url: String,
    /// The state, to match the redirect with.
    pub state: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Input of `oauth.complete`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompleteOAuth {
    /// The state of `oauth.start`.
    pub state: String,
    /// The authorization code.
    pub code: Option<String>,
    /// The RFC 9207 `iss` response parameter.
    pub iss: Option<String>,
    /// A TOTP code.
    #[serde(skip)]
    pub mfa_factor: Option<String>,
    /// The provider's `error` response parameter.
    pub error: Option<String>,
}

/// Reply of `oauth.complete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completed {
    /// The user signed in.
    pub user: User,
    /// The new session.
    pub session: SessionTokens,
    /// Whether this sign-in created the user.
    pub created: bool,
}

/// What a state is bound to, sealed.
#[derive(Serialize, Deserialize)]
struct StateData {
    provider: String,
    redirect_uri: String,
    verifier: String,
    nonce: String,
    vendor: Option<String>,
    mode: Option<String>,
}

/// A sign-in waiting for its second factor, sealed.
#[derive(Serialize, Deserialize)]
struct Pending {
    user_id: String,
    provider: String,
    created: bool,
}

fn provider_context(project_id: &str, provider: &str) -> Vec<u8> {
    format!("oauth_provider:{project_id}:{provider}").into_bytes()
}

fn state_context(project_id: &str, id: &str) -> Vec<u8> {
    format!("oauth_state:{project_id}:{id}").into_bytes()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn state_invalid() -> Error {
    Error::new(
        ErrorCode::AuthOauthStateInvalid,
        "the state is unknown, expired, already used or from another project",
    )
}

/// A provider name: 1 to 32 of `a-z 0-9 - _`.
fn check_provider_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(Error::invalid(format!(
            "provider {name:?} must be 1 to 32 of a-z, 0-9, - and _"
        )));
    }
    Ok(())
}

fn check_scopes(scopes: &[String]) -> Result<()> {
    if scopes.len() > MAX_LIST
        || scopes.iter().any(|s| {
            s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
        })
    {
        return Err(Error::invalid(format!(
            "scopes must be at most {MAX_LIST} tokens of 1 to 128 visible characters"
        )));
    }
    Ok(())
}

impl From<OAuthError> for Error {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Unavailable(why) => Error::new(
                ErrorCode::VendorUnavailable,
                format!("the identity provider is unavailable: {why}"),
            )
            .retry_after(1),
            OAuthError::Denied(why) | OAuthError::Untrusted(why) => {
                Error::new(ErrorCode::AuthOauthDenied, why)
            }
        }
    }
}

impl Domain {
    /// Stores (or replaces) a project's provider; the secret is sealed.
    pub async fn set_oauth_provider(
        &self,
        project_name: &str,
        provider: &str,
        input: SetProvider,
    ) -> Result<()> {
        check_provider_name(provider)?;
        let project = self.project_named(project_name).await?;
        let preset = preset(provider);
        let issuer = match (&input.issuer, &preset) {
            (Some(i), _) => i.trim_end_matches('/').to_owned(),
            (None, Some(p)) => p.issuer.to_owned(),
            (None, None) => {
                return Err(Error::invalid(format!(
                    "provider {provider:?} has no preset (google, microsoft, gitlab, apple, github): give its issuer"
                )));
            }
        };
        check_url("issuer", &issuer).map_err(Error::invalid)?;
        if input.client_id.trim().is_empty() || input.client_secret.trim().is_empty() {
            return Err(Error::invalid("client id and client secret are required"));
        }
        if input.redirect_uris.is_empty() || input.redirect_uris.len() > MAX_LIST {
            return Err(Error::invalid(format!(
                "give 1 to {MAX_LIST} redirect URIs the provider may send users back to"
            )));
        }
        for uri in &input.redirect_uris {
            check_url("redirect URI", uri).map_err(Error::invalid)?;
        }
        let api_url = input
            .api_url
            .clone()
            .or_else(|| preset.as_ref().and_then(|p| p.api_url.map(str::to_owned)));
        if let Some(api) = &api_url {
            check_url("API URL", api).map_err(Error::invalid)?;
        }
        let scopes = match (&input.scopes[..], &preset) {
            ([], Some(p)) => p.scopes.iter().map(|s| s.to_string()).collect(),
            ([], None) => vec!["openid".into(), "email".into(), "profile".into()],
            (s, _) => s.to_vec(),
        };
        check_scopes(&scopes)?;
        let kind = preset.as_ref().map_or(ProviderKind::Oidc, |p| p.kind);
        let apple = match (kind, input.apple) {
            (ProviderKind::Apple, Some(key)) => {
                let ok = |v: &str| {
                    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())
                };
                if !ok(&key.team_id) || !ok(&key.key_id) {
                    return Err(Error::invalid(
                        "the Apple team id and key id are short alphanumeric ids",
                    ));
                }
                crate::oauth::apple_client_secret(
                    &input.client_secret,
                    &key,
                    &input.client_id,
                    self.now() / 1000,
                )
                .map_err(Error::invalid)?;
                Some(key)
            }
            (ProviderKind::Apple, None) => {
                return Err(Error::invalid(
                    "apple needs its team id and key id, and the .p8 key as the client secret",
                ));
            }
            (_, Some(_)) => return Err(Error::invalid("a team id and key id are for apple only")),
            (_, None) => None,
        };
        let config = ProviderConfig {
            apple,
            kind,
            client_id: input.client_id.trim().to_owned(),
            client_secret: input.client_secret.trim().to_owned(),
            issuer,
            api_url,
            scopes,
            redirect_uris: input.redirect_uris,
        };
        let plain = serde_json::to_vec(&config).map_err(Error::internal)?;
        self.store
            .put_oauth_provider(oauth_providers::Model {
                project_id: project.id.clone(),
                provider: provider.to_owned(),
                config: self
                    .master
                    .seal(&plain, &provider_context(&project.id, provider)),
                updated_at: self.now(),
            })
            .await?;
        Ok(())
    }

    /// Forgets a project's provider (linked identities stay, unusable
    /// until it is configured again).
    pub async fn remove_oauth_provider(&self, project_name: &str, provider: &str) -> Result<()> {
        let project = self.project_named(project_name).await?;
        if !self
            .store
            .delete_oauth_provider(&project.id, provider)
            .await?
        {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("project {project_name:?} has no provider {provider:?}"),
            ));
        }
        Ok(())
    }

    fn open_provider(&self, row: &oauth_providers::Model) -> Result<ProviderConfig> {
        let plain = self.master.open(
            &row.config,
            &provider_context(&row.project_id, &row.provider),
        )?;
        serde_json::from_slice(&plain).map_err(Error::internal)
    }

    fn info(&self, row: &oauth_providers::Model) -> Result<ProviderInfo> {
        let cfg = self.open_provider(row)?;
        Ok(ProviderInfo {
            provider: row.provider.clone(),
            kind: cfg.kind,
            client_id: cfg.client_id,
            issuer: cfg.issuer,
            scopes: cfg.scopes,
            redirect_uris: cfg.redirect_uris,
        })
    }

    /// A project's providers, without secrets.
    pub async fn oauth_providers(&self, project: &Project) -> Result<Vec<ProviderInfo>> {
        self.store
            .oauth_providers(&project.id)
            .await?
            .iter()
            .map(|row| self.info(row))
            .collect()
    }

    /// Every project's providers (name, info), without secrets.
    pub async fn all_oauth_providers(&self) -> Result<Vec<(String, ProviderInfo)>> {
        let mut out = Vec::new();
        for row in self.store.all_oauth_providers().await? {
            let name = self
                .store
                .project_by_id(&row.project_id)
                .await?
                .map_or_else(|| row.project_id.clone(), |p| p.name);
            out.push((name, self.info(&row)?));
        }
        Ok(out)
    }

    async fn provider(&self, project: &Project, name: &str) -> Result<ProviderConfig> {
        let rows = self.store.oauth_providers(&project.id).await?;
        let row = rows.iter().find(|r| r.provider == name).ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("provider {name:?} is not configured for this project (authmux oauth set)"),
            )
        })?;
        self.open_provider(row)
    }

    /// Starts a sign-in: the URL to send the browser to and its state.
    pub async fn start_oauth(
        &self,
        project: &Project,
        input: StartOAuth,
        idempotency_key: Option<&str>,
    ) -> Result<Started> {
        check_scopes(&input.scopes)?;
        if let Some(hint) = &input.login_hint
            && (hint.len() > 256 || hint.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "login_hint must be at most 256 characters without control characters",
            ));
        }
        // What `user.create` would refuse is refused now, before the user
        // goes to the provider.
        if let Some(v) = &input.vendor {
            crate::vendors::VendorKind::parse(v).ok_or_else(|| {
                Error::invalid(format!(
                    "vendor {v:?} is not one of {}",
                    crate::vendors::VendorKind::names()
                ))
            })?;
        }
        match input.mode.as_deref().map(crate::vendors::Mode::parse) {
            Some(None) => {
                return Err(Error::invalid("mode must be one of \"managed\", \"byok\""));
            }
            Some(Some(crate::vendors::Mode::Byok)) if input.vendor.is_none() => {
                return Err(Error::new(
                    ErrorCode::AuthVendorRequired,
                    "mode \"byok\" needs a vendor: name one in the vendor field",
                ));
            }
            _ => {}
        }
        let cfg = self.provider(project, &input.provider).await?;
        if !cfg.redirect_uris.contains(&input.redirect_uri) {
            return Err(Error::invalid(format!(
                "redirect_uri {:?} is not registered for provider {:?}",
                input.redirect_uri, input.provider
            )));
        }
        let endpoints = self.oauth.endpoints(&cfg).await?;
        let input = &input;
        self.idempotent(
            project,
            "oauth.start",
            idempotency_key,
            input,
            move || async move {
                let state = random_token();
                let nonce = random_token();
                let auth = OAuthClient::authorize(
                    &cfg,
                    &endpoints,
                    &input.redirect_uri,
                    &state,
                    &nonce,
                    input.login_hint.as_deref(),
                    &input.scopes,
                )?;
                let id = sha256_hex(state.as_bytes());
                let data = serde_json::to_vec(&StateData {
                    provider: input.provider.clone(),
                    redirect_uri: input.redirect_uri.clone(),
                    verifier: auth.verifier,
                    nonce,
                    vendor: input.vendor.clone(),
                    mode: input.mode.clone(),
                })
                .map_err(Error::internal)?;
                let expires_at = self.now() + STATE_TTL_MS;
                self.store
                    .insert_oauth_state(oauth_states::Model {
                        data: self.master.seal(&data, &state_context(&project.id, &id)),
                        id,
                        project_id: project.id.clone(),
                        expires_at,
                        consumed_at: None,
                        pending: None,
                        pending_until: None,
                    })
                    .await?;
                Ok(Started {
                    authorization_url: auth.url,
                    state,
                    expires_at,
                })
            },
        )
        .await
    }

    /// Completes a sign-in with what the redirect brought back, or
    /// continues one waiting for its second factor.
    pub async fn complete_oauth(
        &self,
        project: &Project,
        input: CompleteOAuth,
        idempotency_key: Option<&str>,
    ) -> Result<Completed> {
        if input.state.is_empty() || input.state.len() > 128 {
            return Err(state_invalid());
        }
        let input = &input;
        self.idempotent_about(
            project,
            "oauth.complete",
            idempotency_key,
            input,
            |done: &Completed| Some(done.user.id.clone()),
            move || async move {
                let id = sha256_hex(input.state.as_bytes());
                match (&input.code, &input.error) {
                    (None, None) if input.mfa_factor.is_some() => {
                        self.continue_with_mfa(project, &id, input).await
                    }
                    (None, None) => Err(Error::invalid(
                        "code is required (or error, or mfa_factor to continue)",
                    )),
                    _ => self.exchange(project, &id, input).await,
                }
            },
        )
        .await
    }

    async fn exchange(
        &self,
        project: &Project,
        id: &str,
        input: &CompleteOAuth,
    ) -> Result<Completed> {
        let now = self.now();
        let row = self
            .store
            .consume_oauth_state(&project.id, id, now)
            .await?
            .ok_or_else(state_invalid)?;
        let data: StateData = serde_json::from_slice(
            &self
                .master
                .open(&row.data, &state_context(&project.id, id))?,
        )
        .map_err(Error::internal)?;
        if let Some(error) = &input.error {
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            return Err(Error::new(
                ErrorCode::AuthOauthDenied,
                format!("the provider answered error={error}"),
            ));
        }
        let code = input.code.as_deref().unwrap_or_default();
        let cfg = self.provider(project, &data.provider).await?;
        let endpoints = self.oauth.endpoints(&cfg).await?;
        // RFC 9207 §2.4: where the provider says it sends `iss`, a response
        // without it, or with another, is refused (mix-up attacks).
        match (&input.iss, endpoints.iss_parameter) {
            (Some(iss), _) if !crate::oauth::issuer_matches(&endpoints.issuer, iss) => {
                return Err(Error::new(
                    ErrorCode::AuthOauthDenied,
                    "the iss response parameter is not this provider's issuer",
                ));
            }
            (None, true) => {
                return Err(Error::new(
                    ErrorCode::AuthOauthDenied,
                    "the provider sends an iss response parameter; pass it on in iss",
                ));
            }
            _ => {}
        }
        let profile = self
            .oauth
            .sign_in(
                &cfg,
                &endpoints,
                &data.redirect_uri,
                code,
                &data.verifier,
                &data.nonce,
            )
            .await?;
        let (user_id, created) = self.user_for(project, &data, &profile).await?;
        match self
            .mint_oauth(
                project,
                &user_id,
                &data.provider,
                input.mfa_factor.as_deref(),
            )
            .await
        {
            Err(e)
                if e.code == ErrorCode::AuthMfaRequired || e.code == ErrorCode::AuthMfaInvalid =>
            {
                let pending = serde_json::to_vec(&Pending {
                    user_id,
                    provider: data.provider.clone(),
                    created,
                })
                .map_err(Error::internal)?;
                self.store
                    .set_oauth_pending(
                        id,
                        self.master.seal(&pending, &state_context(&project.id, id)),
                        now + MFA_WAIT_MS,
                    )
                    .await?;
                Err(e)
            }
            other => other.map(|(user, session)| Completed {
                user,
                session,
                created,
            }),
        }
    }

    async fn continue_with_mfa(
        &self,
        project: &Project,
        id: &str,
        input: &CompleteOAuth,
    ) -> Result<Completed> {
        let now = self.now();
        let row = self
            .store
            .oauth_state(&project.id, id)
            .await?
            .filter(|r| r.pending_until.is_some_and(|u| u > now))
            .ok_or_else(state_invalid)?;
        let sealed = row.pending.ok_or_else(state_invalid)?;
        let pending: Pending =
            serde_json::from_slice(&self.master.open(&sealed, &state_context(&project.id, id))?)
                .map_err(Error::internal)?;
        let (user, session) = self
            .mint_oauth(
                project,
                &pending.user_id,
                &pending.provider,
                input.mfa_factor.as_deref(),
            )
            .await?;
        // One session per sign-in: a second right code racing this one
        // loses here and its session is ended.
        if !self.store.take_oauth_pending(id).await? {
            let _ = self
                .revoke_session(project, &session.session_id, None)
                .await;
            return Err(state_invalid());
        }
        Ok(Completed {
            user,
            session,
            created: pending.created,
        })
    }

    async fn mint_oauth(
        &self,
        project: &Project,
        user_id: &str,
        provider: &str,
        mfa_factor: Option<&str>,
    ) -> Result<(User, SessionTokens)> {
        let session = self
            .create_session(
                project,
                CreateSession {
                    user_id: user_id.to_owned(),
                    method: Some(format!("oauth:{provider}")),
                    mfa_factor: mfa_factor.map(str::to_owned),
                    ..Default::default()
                },
                None,
            )
            .await?;
        Ok((self.get_user(project, user_id).await?, session))
    }

    /// The user this identity signs in: the linked one; else the user with
    /// the same email when the provider asserts it verified; else a new
    /// user, created through the usual routing.
    async fn user_for(
        &self,
        project: &Project,
        data: &StateData,
        profile: &crate::oauth::Profile,
    ) -> Result<(String, bool)> {
        if let Some(linked) = self
            .store
            .identity(&project.id, &data.provider, &profile.subject)
            .await?
        {
            return Ok((linked.user_id, false));
        }
        let email = profile.email.clone().ok_or_else(|| {
            Error::new(
                ErrorCode::AuthOauthDenied,
                "the provider shared no (verified) email address; ask for the email scope",
            )
        })?;
        let existing = match self.get_user_by_email(project, &email).await {
            Ok(u) => Some(u),
            Err(e) if e.code == ErrorCode::AuthUserNotFound => None,
            Err(e) => return Err(e),
        };
        let (user_id, created) = match existing {
            Some(u) if profile.email_verified => (u.id, false),
            Some(_) => {
                return Err(Error::new(
                    ErrorCode::AuthUserExists,
                    "a user with this email exists, and the provider does not assert the email is verified, so the identity is not linked to it",
                ));
            }
            None => {
                let user = self
                    .create_user(
                        project,
                        CreateUser {
                            email: email.clone(),
                            vendor: data.vendor.clone(),
                            mode: data.mode.clone(),
                            ..Default::default()
                        },
                        None,
                    )
                    .await?;
                if profile.email_verified {
                    self.update_user(
                        project,
                        &user.id,
                        UpdateUser {
                            email_verified: Some(true),
                            ..Default::default()
                        },
                        None,
                    )
                    .await?;
                }
                (user.id, true)
            }
        };
        let link = identities::Model {
            project_id: project.id.clone(),
            provider: data.provider.clone(),
            subject: profile.subject.clone(),
            user_id: user_id.clone(),
            email: Some(email),
            created_at: self.now(),
        };
        let announce = self.event(
            project,
            EventKind::IdentityLinked,
            &user_id,
            serde_json::json!({"provider": data.provider, "created_user": created}),
        );
        let linked = match self.store.link_identity(link, vec![announce]).await {
            Ok(l) => l,
            // A racing sign-in linked it first.
            Err(crate::store::StoreError::Duplicate(_)) => self
                .store
                .identity(&project.id, &data.provider, &profile.subject)
                .await?
                .map_or(Linked::NoUser, |i| Linked::ToOther(i.user_id)),
            Err(e) => return Err(e.into()),
        };
        match linked {
            Linked::Linked => Ok((user_id, created)),
            Linked::ToOther(winner) => {
                if created {
                    let _ = self.delete_user(project, &user_id, None).await;
                }
                Ok((winner, false))
            }
            Linked::NoUser => Err(Error::user_not_found(&user_id)),
        }
    }

    /// The identities linked to a user.
    pub async fn identities(
        &self,
        project: &Project,
        user_id: &str,
    ) -> Result<Vec<identities::Model>> {
        self.user_row(project, user_id).await?;
        Ok(self.store.user_identities(&project.id, user_id).await?)
    }

    /// Unlinks a user's identity at a provider, never the last way in.
    pub async fn unlink_identity(
        &self,
        project: &Project,
        user_id: &str,
        provider: &str,
    ) -> Result<()> {
        self.user_row(project, user_id).await?;
        match self
            .store
            .unlink_identity(
                &project.id,
                user_id,
                provider,
                vec![self.event(
                    project,
                    EventKind::IdentityUnlinked,
                    user_id,
                    serde_json::json!({"provider": provider}),
                )],
            )
            .await?
        {
            Ok(0) => Err(Error::new(
                ErrorCode::NotFound,
                format!("user {user_id} has no identity at {provider:?}"),
            )),
            Ok(_) => Ok(()),
            Err(()) => Err(Error::new(
                ErrorCode::AuthLastSignInMethod,
                format!(
                    "the {provider} identity is user {user_id}'s last way to sign in (no password, no other identity); set a password or link another first"
                ),
            )),
        }
    }
}
