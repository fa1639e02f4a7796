//! The rules of authmux: validation, tenancy, idempotency, the consent
//! ledger and the error model. Knows nothing of proto or HTTP.

mod abandon;
mod byok;
mod consent;
mod discovery;
mod error;
pub(crate) mod events;
mod idempotency;
mod ids;
mod oauth;
mod paging;
mod privacy;
mod projects;
mod purge;
mod rate_limit;
mod revocations;
mod sessions;
pub mod text;
mod users;
mod webhooks;

pub use byok::ByokInfo;
pub use consent::{ConsentEvent, ConsentState};
pub use discovery::{CAPABILITIES, CapabilityStatus, VendorStanding};
pub use error::{Error, ErrorCode, Result};
pub use events::{AuditEvent, AuditPage, DEFAULT_RETENTION_MS, EventKind};
pub use ids::{new_id, new_id_after};
pub use oauth::{
    CompleteOAuth, Completed, MFA_WAIT_MS, ProviderInfo, STATE_TTL_MS, SetProvider, StartOAuth,
    Started,
};
pub use privacy::{ExportedSession, UserExport};
pub use projects::{ApiKeyInfo, NewApiKey};
pub use purge::{Purged, RETENTION_MS};
pub use rate_limit::{Limiters, RateLimit, RateLimitConfig, Throttled};
pub use revocations::Revocations;
pub use sessions::{
    CreateSession, MAX_MFA_FAILURES, MAX_PASSWORD_FAILURES, SessionConfig, SessionInfo,
    SessionTokens, THROTTLE_WINDOW_MS, Verification,
};
pub use users::{
    CreateUser, EXACT_INTEGERS, MAX_METADATA_BYTES, MAX_METADATA_DEPTH, UpdateUser, User, UserPage,
    normalize_email,
};
pub use webhooks::{CreatedEndpoint, Delivery, DeliveryPage, Endpoint};

use std::sync::Arc;

use crate::cache::ExpiringCache;
use crate::crypto::MasterKey;
use crate::store::Store;
use crate::tokens::Keyring;
use crate::tokens::cache::VerifiedTokens;
use crate::vendors::VendorRouter;

/// The project a caller's API key belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// `prj_…`
    pub id: String,
    /// The project's unique name.
    pub name: String,
    /// Its own request rate limit, when not the default.
    pub rate_limit: Option<RateLimit>,
    /// The API key the caller authenticated with (`key_…`), recorded on
    /// the events of the changes it makes.
    pub key_id: Option<String>,
    /// The caller's request id, recorded likewise.
    pub request_id: Option<String>,
}

impl From<crate::store::entity::projects::Model> for Project {
    fn from(row: crate::store::entity::projects::Model) -> Self {
        let rate_limit = match (row.rate_limit_per_second, row.rate_limit_burst) {
            (Some(r), Some(b)) => Some(RateLimit {
                per_second: u32::try_from(r).unwrap_or(u32::MAX),
                burst: u32::try_from(b).unwrap_or(u32::MAX),
            }),
            _ => None,
        };
        Project {
            id: row.id,
            name: row.name,
            rate_limit,
            key_id: None,
            request_id: None,
        }
    }
}

/// The domain services, shared by every transport.
pub struct Domain {
    store: Store,
    master: MasterKey,
    vendors: VendorRouter,
    keyring: Arc<Keyring>,
    revocations: Arc<Revocations>,
    sessions: SessionConfig,
    api_keys: projects::KeyCache,
    verified: VerifiedTokens,
    live_sessions: ExpiringCache<sessions::LiveSession>,
    session_reads: sessions::SessionReads,
    byok_configs: ExpiringCache<Vec<(crate::vendors::VendorKind, crate::vendors::ByokConfig)>>,
    clock: Arc<crate::clock::Clock>,
    limiters: Limiters,
    oauth: crate::oauth::OAuthClient,
    event_retention_ms: i64,
    webhooks: crate::events::WebhookPolicy,
}

impl Domain {
    /// Wires the domain over a store, the master key, the vendors, the
    /// signing keys and the set of revoked sessions.
    pub fn new(
        store: Store,
        master: MasterKey,
        vendors: VendorRouter,
        keyring: Arc<Keyring>,
        revocations: Arc<Revocations>,
        sessions: SessionConfig,
    ) -> Self {
        let clock = store.clock().clone();
        let oauth = crate::oauth::OAuthClient::new(vendors.jwks(), clock.clone());
        Domain {
            store,
            master,
            vendors,
            keyring,
            revocations,
            sessions,
            api_keys: projects::KeyCache::new(projects::KEY_CACHE_MAX),
            live_sessions: ExpiringCache::new(sessions::LIVE_SESSION_CACHE),
            session_reads: sessions::SessionReads::default(),
            byok_configs: ExpiringCache::new(10_000),
            verified: VerifiedTokens::default(),
            clock,
            limiters: Limiters::new(RateLimitConfig::default()),
            oauth,
            event_retention_ms: DEFAULT_RETENTION_MS,
            webhooks: crate::events::WebhookPolicy::default(),
        }
    }

    /// The same domain with these request rate limits.
    pub fn with_rate_limits(mut self, config: RateLimitConfig) -> Self {
        self.limiters = Limiters::new(config);
        self
    }

    /// The same domain keeping events (the audit log) for `days`.
    pub fn with_event_retention(mut self, days: u32) -> Self {
        self.event_retention_ms = i64::from(days) * 86_400_000;
        self
    }

    /// The same domain checking webhook endpoints against `policy`.
    pub fn with_webhooks(mut self, policy: crate::events::WebhookPolicy) -> Self {
        self.webhooks = policy;
        self
    }

    /// The clock the rules read time from.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// Now, Unix milliseconds, from the domain's clock.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// The signing keys (for the JWKS endpoint and rotation).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The issuer URL of tokens minted here.
    pub fn issuer(&self) -> &str {
        &self.sessions.issuer
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
