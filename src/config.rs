//! Settings shared by every command, grouped in typed sections (store,
//! tokens, one per vendor, vendor policy, listener, rate limits). Each
//! setting is a flag, an `AUTHMUX_*` variable and a key of the settings
//! file; each default is written once, as a constant both clap and
//! `Default` read. Secrets are [`Secret`]s (their `Debug` is redacted) and
//! every `X` / `X_FILE` pair is read by [`read_secret`]. How the domain is
//! built from them is `src/startup.rs`.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;

use crate::tokens::SigningAlg;
use crate::vendors::{clerk, workos};

/// A secret setting. `Debug` never shows it; [`Secret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Secret(s.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// A secret given directly (`name`) or as a file (`name_FILE`, as
/// Kubernetes mounts secrets): the direct value wins; surrounding white
/// space is dropped and an empty value counts as unset.
pub fn read_secret(
    name: &str,
    value: Option<&Secret>,
    file: Option<&Path>,
) -> anyhow::Result<Option<Secret>> {
    let raw = match (value, file) {
        (Some(v), _) => v.expose().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("{name}_FILE: cannot read {}", path.display()))?,
        (None, None) => return Ok(None),
    };
    let trimmed = raw.trim();
    Ok((!trimmed.is_empty()).then(|| Secret::new(trimmed)))
}

/// The defaults, each written once.
pub mod defaults {
    /// `--data-dir`.
    pub const DATA_DIR: &str = "./data";
    /// `--signing-alg`.
    pub const SIGNING_ALG: &str = "ES256";
    /// `--issuer`.
    pub const ISSUER: &str = "http://127.0.0.1:8080";
    /// `--access-ttl-secs`.
    pub const ACCESS_TTL_SECS: u64 = 900;
    /// `--session-ttl-secs`.
    pub const SESSION_TTL_SECS: u64 = 30 * 86_400;
    /// `--refresh-cooldown-secs`.
    pub const REFRESH_COOLDOWN_SECS: u64 = 300;
    /// `--jwks-refetch-ms`.
    pub const JWKS_REFETCH_MS: u64 = 30_000;
    /// `--vendor-priority`.
    pub const VENDOR_PRIORITY: &str = "native,clerk,workos,supabase";
    /// `--vendor-probe-ms`.
    pub const VENDOR_PROBE_MS: u64 = 15_000;
    /// `--vendor-timeout-ms`.
    pub const VENDOR_TIMEOUT_MS: u64 = 10_000;
    /// `--max-connections`.
    pub const MAX_CONNECTIONS: usize = 4_096;
    /// `--header-read-timeout-secs`.
    pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
    /// `--body-timeout-secs`.
    pub const BODY_TIMEOUT_SECS: u64 = 10;
    /// `--idle-timeout-secs`.
    pub const IDLE_TIMEOUT_SECS: u64 = 120;
    /// `--rate-limit-per-second`.
    pub const RATE_LIMIT_PER_SECOND: u32 = 1_000;
    /// `--rate-limit-burst`.
    pub const RATE_LIMIT_BURST: u32 = 2_000;
    /// `--anonymous-rate-limit-per-second`.
    pub const ANONYMOUS_RATE_LIMIT_PER_SECOND: u32 = 10;
    /// `--anonymous-rate-limit-burst`.
    pub const ANONYMOUS_RATE_LIMIT_BURST: u32 = 20;
    /// `--replicas`.
    pub const REPLICAS: u32 = 1;
    /// `--audit-retention-days`.
    pub const AUDIT_RETENTION_DAYS: u32 = 365;
    /// `--webhook-timeout-ms`.
    pub const WEBHOOK_TIMEOUT_MS: u64 = 10_000;
    /// `--webhook-poll-ms`.
    pub const WEBHOOK_POLL_MS: u64 = 500;
}
use defaults as d;

/// Every setting, by section.
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// Where data lives and how secrets are sealed.
    #[command(flatten)]
    pub store: StoreSettings,
    /// Signing keys and token lifetimes.
    #[command(flatten)]
    pub tokens: TokenSettings,
    /// Clerk in managed mode.
    #[command(flatten)]
    pub clerk: ClerkSettings,
    /// WorkOS in managed mode.
    #[command(flatten)]
    pub workos: WorkosSettings,
    /// Supabase Auth in managed mode.
    #[command(flatten)]
    pub supabase: SupabaseSettings,
    /// How vendors are chosen, probed and waited for.
    #[command(flatten)]
    pub vendor_policy: VendorPolicy,
    /// Connection limits and timeouts.
    #[command(flatten)]
    pub listener: ListenerSettings,
    /// Request rate limits.
    #[command(flatten)]
    pub rate_limit: RateLimitSettings,
    /// Webhook delivery.
    #[command(flatten)]
    pub webhooks: WebhookSettings,
}

/// Webhook delivery.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookSettings {
    /// Longest wait for a webhook endpoint's answer, in milliseconds.
    #[arg(long, env = "AUTHMUX_WEBHOOK_TIMEOUT_MS", default_value_t = d::WEBHOOK_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(100..=60_000), global = true)]
    pub webhook_timeout_ms: u64,
    /// How often each replica looks for due deliveries, in milliseconds.
    #[arg(long, env = "AUTHMUX_WEBHOOK_POLL_MS", default_value_t = d::WEBHOOK_POLL_MS, value_parser = clap::value_parser!(u64).range(10..=60_000), global = true)]
    pub webhook_poll_ms: u64,
    /// Allows `http` endpoints on loopback (for tests and local
    /// receivers); otherwise endpoints are `https` to public addresses only.
    #[arg(long, env = "AUTHMUX_WEBHOOK_ALLOW_HTTP_LOOPBACK", global = true)]
    pub webhook_allow_http_loopback: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            webhook_timeout_ms: d::WEBHOOK_TIMEOUT_MS,
            webhook_poll_ms: d::WEBHOOK_POLL_MS,
            webhook_allow_http_loopback: false,
        }
    }
}

impl WebhookSettings {
    /// The delivery policy.
    pub fn policy(&self) -> crate::events::WebhookPolicy {
        crate::events::WebhookPolicy {
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            poll: Duration::from_millis(self.webhook_poll_ms),
            allow_loopback: self.webhook_allow_http_loopback,
        }
    }
}

impl Settings {
    /// The defaults, with data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Settings {
            store: StoreSettings {
                data_dir: data_dir.into(),
                ..StoreSettings::default()
            },
            tokens: TokenSettings::default(),
            clerk: ClerkSettings::default(),
            workos: WorkosSettings::default(),
            supabase: SupabaseSettings::default(),
            vendor_policy: VendorPolicy::default(),
            listener: ListenerSettings::default(),
            rate_limit: RateLimitSettings::default(),
            webhooks: WebhookSettings::default(),
        }
    }
}

/// Where data lives and how secrets are sealed.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreSettings {
    /// Directory for the SQLite database and a generated master key.
    #[arg(long, env = "AUTHMUX_DATA_DIR", default_value = d::DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`); an SQLite file under
    /// the data directory when unset.
    #[arg(
        long,
        env = "AUTHMUX_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<Secret>,
    /// A file holding the database URL (as Kubernetes mounts secrets).
    #[arg(long, env = "AUTHMUX_DATABASE_URL_FILE", global = true)]
    pub database_url_file: Option<PathBuf>,
    /// Base64 of 32 bytes sealing secrets at rest; generated into the data
    /// directory when unset.
    #[arg(
        long,
        env = "AUTHMUX_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    pub master_key: Option<Secret>,
    /// A file holding the master key.
    #[arg(long, env = "AUTHMUX_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// How long the event log (the audit log) keeps an event, in days.
    #[arg(long, env = "AUTHMUX_AUDIT_RETENTION_DAYS", default_value_t = d::AUDIT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500), global = true)]
    pub audit_retention_days: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            data_dir: PathBuf::from(d::DATA_DIR),
            database_url: None,
            database_url_file: None,
            master_key: None,
            master_key_file: None,
            audit_retention_days: d::AUDIT_RETENTION_DAYS,
        }
    }
}

/// Signing keys and token lifetimes.
#[derive(Clone, Debug, clap::Args)]
pub struct TokenSettings {
    /// Algorithm of new signing keys: ES256 or RS256.
    #[arg(long, env = "AUTHMUX_SIGNING_ALG", default_value = d::SIGNING_ALG, global = true)]
    pub signing_alg: SigningAlg,
    /// `iss` of minted tokens: the public URL of this service. Not
    /// global: `vendors set` and `oauth set` have an `--issuer` of their
    /// own (the vendor's or provider's), which this one must not fill.
    #[arg(long, env = "AUTHMUX_ISSUER", default_value = d::ISSUER)]
    pub issuer: String,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "AUTHMUX_ACCESS_TTL_SECS", default_value_t = d::ACCESS_TTL_SECS, global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub access_ttl_secs: u64,
    /// Absolute lifetime of sessions, in seconds.
    #[arg(long, env = "AUTHMUX_SESSION_TTL_SECS", default_value_t = d::SESSION_TTL_SECS, global = true,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub session_ttl_secs: u64,
    /// Least time between two token issuances for one session, in seconds.
    #[arg(long, env = "AUTHMUX_REFRESH_COOLDOWN_SECS", default_value_t = d::REFRESH_COOLDOWN_SECS, global = true)]
    pub refresh_cooldown_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            signing_alg: SigningAlg::parse(d::SIGNING_ALG).unwrap_or(SigningAlg::Es256),
            issuer: d::ISSUER.to_owned(),
            access_ttl_secs: d::ACCESS_TTL_SECS,
            session_ttl_secs: d::SESSION_TTL_SECS,
            refresh_cooldown_secs: d::REFRESH_COOLDOWN_SECS,
        }
    }
}

impl TokenSettings {
    /// Lifetimes and issuer of sessions.
    pub fn session_config(&self) -> crate::domain::SessionConfig {
        crate::domain::SessionConfig {
            issuer: self.issuer.clone(),
            access_ttl: Duration::from_secs(self.access_ttl_secs),
            session_ttl: Duration::from_secs(self.session_ttl_secs),
            refresh_cooldown: Duration::from_secs(self.refresh_cooldown_secs),
        }
    }
}

/// Clerk in managed mode.
#[derive(Clone, Debug, clap::Args)]
pub struct ClerkSettings {
    /// Clerk secret key (`sk_…`) for managed mode; enables the Clerk adapter.
    #[arg(
        long,
        env = "AUTHMUX_CLERK_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub clerk_secret_key: Option<Secret>,
    /// A file holding the Clerk secret key (as Kubernetes mounts secrets).
    #[arg(long, env = "AUTHMUX_CLERK_SECRET_KEY_FILE", global = true)]
    pub clerk_secret_key_file: Option<PathBuf>,
    /// Clerk Backend API base URL.
    #[arg(long, env = "AUTHMUX_CLERK_BASE_URL", default_value = clerk::DEFAULT_BASE_URL, global = true)]
    pub clerk_base_url: String,
    /// Clerk's token issuer (its Frontend API URL); read from Clerk's
    /// `GET /domains` when unset.
    #[arg(long, env = "AUTHMUX_CLERK_ISSUER", global = true)]
    pub clerk_issuer: Option<String>,
}

impl Default for ClerkSettings {
    fn default() -> Self {
        ClerkSettings {
            clerk_secret_key: None,
            clerk_secret_key_file: None,
            clerk_base_url: clerk::DEFAULT_BASE_URL.to_owned(),
            clerk_issuer: None,
        }
    }
}

/// WorkOS in managed mode.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkosSettings {
    /// WorkOS API key for managed mode; enables the WorkOS adapter together
    /// with the client id.
    #[arg(
        long,
        env = "AUTHMUX_WORKOS_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub workos_api_key: Option<Secret>,
    /// A file holding the WorkOS API key.
    #[arg(long, env = "AUTHMUX_WORKOS_API_KEY_FILE", global = true)]
    pub workos_api_key_file: Option<PathBuf>,
    /// WorkOS AuthKit client id (`client_…`).
    #[arg(long, env = "AUTHMUX_WORKOS_CLIENT_ID", global = true)]
    pub workos_client_id: Option<String>,
    /// WorkOS API base URL.
    #[arg(long, env = "AUTHMUX_WORKOS_BASE_URL", default_value = workos::DEFAULT_BASE_URL, global = true)]
    pub workos_base_url: String,
    /// WorkOS token issuer; `<base URL>/user_management/<client id>` when
    /// unset.
    #[arg(long, env = "AUTHMUX_WORKOS_ISSUER", global = true)]
    pub workos_issuer: Option<String>,
}

impl Default for WorkosSettings {
    fn default() -> Self {
        WorkosSettings {
            workos_api_key: None,
            workos_api_key_file: None,
            workos_client_id: None,
            workos_base_url: workos::DEFAULT_BASE_URL.to_owned(),
            workos_issuer: None,
        }
    }
}

/// Supabase Auth in managed mode.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SupabaseSettings {
    /// Supabase project (or auth server) URL; enables the Supabase adapter
    /// together with the service-role key.
    #[arg(long, env = "AUTHMUX_SUPABASE_URL", global = true)]
    pub supabase_url: Option<String>,
    /// Supabase service-role key for managed mode.
    #[arg(
        long,
        env = "AUTHMUX_SUPABASE_SERVICE_ROLE_KEY",
        hide_env_values = true,
        global = true
    )]
    pub supabase_service_role_key: Option<Secret>,
    /// A file holding the Supabase service-role key.
    #[arg(long, env = "AUTHMUX_SUPABASE_SERVICE_ROLE_KEY_FILE", global = true)]
    pub supabase_service_role_key_file: Option<PathBuf>,
}

/// How vendors are chosen, probed and waited for.
#[derive(Clone, Debug, clap::Args)]
pub struct VendorPolicy {
    /// Vendors tried, in order, when a create names none (configured ones
    /// only): a comma-separated list of native, clerk, workos, supabase.
    #[arg(long, env = "AUTHMUX_VENDOR_PRIORITY", default_value = d::VENDOR_PRIORITY, global = true)]
    pub vendor_priority: String,
    /// Milliseconds between health probes of each configured vendor (0: none).
    #[arg(long, env = "AUTHMUX_VENDOR_PROBE_MS", default_value_t = d::VENDOR_PROBE_MS, global = true)]
    pub vendor_probe_ms: u64,
    /// Total time allowed for one vendor call attempt, in milliseconds.
    #[arg(long, env = "AUTHMUX_VENDOR_TIMEOUT_MS", default_value_t = d::VENDOR_TIMEOUT_MS, global = true)]
    pub vendor_timeout_ms: u64,
    /// Least time between two JWKS fetches caused by unknown key ids, ms.
    #[arg(long, env = "AUTHMUX_JWKS_REFETCH_MS", default_value_t = d::JWKS_REFETCH_MS, global = true)]
    pub jwks_refetch_ms: u64,
}

impl Default for VendorPolicy {
    fn default() -> Self {
        VendorPolicy {
            vendor_priority: d::VENDOR_PRIORITY.to_owned(),
            vendor_probe_ms: d::VENDOR_PROBE_MS,
            vendor_timeout_ms: d::VENDOR_TIMEOUT_MS,
            jwks_refetch_ms: d::JWKS_REFETCH_MS,
        }
    }
}

/// Connection limits and timeouts.
#[derive(Clone, Debug, clap::Args)]
pub struct ListenerSettings {
    /// Most connections served at once; more wait to be accepted.
    #[arg(long, env = "AUTHMUX_MAX_CONNECTIONS", default_value_t = d::MAX_CONNECTIONS, global = true)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (HTTP/1).
    #[arg(long, env = "AUTHMUX_HEADER_READ_TIMEOUT_SECS", default_value_t = d::HEADER_READ_TIMEOUT_SECS, global = true)]
    pub header_read_timeout_secs: u64,
    /// Seconds a REST client has to send a request's body.
    #[arg(long, env = "AUTHMUX_BODY_TIMEOUT_SECS", default_value_t = d::BODY_TIMEOUT_SECS, global = true)]
    pub body_timeout_secs: u64,
    /// Seconds a connection may go without reading or writing a byte
    /// before it is closed (HTTP/2 pings count).
    #[arg(long, env = "AUTHMUX_IDLE_TIMEOUT_SECS", default_value_t = d::IDLE_TIMEOUT_SECS, global = true)]
    pub idle_timeout_secs: u64,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_connections: d::MAX_CONNECTIONS,
            header_read_timeout_secs: d::HEADER_READ_TIMEOUT_SECS,
            body_timeout_secs: d::BODY_TIMEOUT_SECS,
            idle_timeout_secs: d::IDLE_TIMEOUT_SECS,
        }
    }
}

impl ListenerSettings {
    /// The listener's limits.
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            max_connections: self.max_connections.max(1),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
        }
    }
}

/// Request rate limits.
#[derive(Clone, Debug, clap::Args)]
pub struct RateLimitSettings {
    /// Requests per second a project may make (all replicas together),
    /// unless `authmux projects set-rate-limit` gave it its own.
    #[arg(long, env = "AUTHMUX_RATE_LIMIT_PER_SECOND", default_value_t = d::RATE_LIMIT_PER_SECOND, global = true)]
    pub rate_limit_per_second: u32,
    /// Requests a project may make at once after a quiet period.
    #[arg(long, env = "AUTHMUX_RATE_LIMIT_BURST", default_value_t = d::RATE_LIMIT_BURST, global = true)]
    pub rate_limit_burst: u32,
    /// Requests per second per client address that fail authentication.
    #[arg(long, env = "AUTHMUX_ANONYMOUS_RATE_LIMIT_PER_SECOND",
          default_value_t = d::ANONYMOUS_RATE_LIMIT_PER_SECOND, global = true)]
    pub anonymous_rate_limit_per_second: u32,
    /// Burst of requests per client address that fail authentication.
    #[arg(long, env = "AUTHMUX_ANONYMOUS_RATE_LIMIT_BURST",
          default_value_t = d::ANONYMOUS_RATE_LIMIT_BURST, global = true)]
    pub anonymous_rate_limit_burst: u32,
    /// How many replicas share the rate limits (each enforces its share).
    #[arg(long, env = "AUTHMUX_REPLICAS", default_value_t = d::REPLICAS, global = true)]
    pub replicas: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            rate_limit_per_second: d::RATE_LIMIT_PER_SECOND,
            rate_limit_burst: d::RATE_LIMIT_BURST,
            anonymous_rate_limit_per_second: d::ANONYMOUS_RATE_LIMIT_PER_SECOND,
            anonymous_rate_limit_burst: d::ANONYMOUS_RATE_LIMIT_BURST,
            replicas: d::REPLICAS,
        }
    }
}

impl RateLimitSettings {
    /// The request rate limits.
    pub fn config(&self) -> crate::domain::RateLimitConfig {
        use crate::domain::RateLimit;
        crate::domain::RateLimitConfig {
            project_default: RateLimit {
                per_second: self.rate_limit_per_second.max(1),
                burst: self.rate_limit_burst.max(1),
            },
            anonymous: RateLimit {
                per_second: self.anonymous_rate_limit_per_second.max(1),
                burst: self.anonymous_rate_limit_burst.max(1),
            },
            replicas: self.replicas.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Only {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut s = Settings::new("/tmp/x");
        s.store.master_key = Some("bWFzdGVyIGtleSBtYXN0ZXIga2V5IG1hc3RlciBrZXk=".into());
        s.store.database_url = Some("postgres://u:hunter2@db/authmux".into());
        s.clerk.clerk_secret_key = Some("sk_live_secret".into());
        s.workos.workos_api_key = Some("sk_workos_secret".into());
        s.supabase.supabase_service_role_key = Some("sb_secret_x".into());
        let text = format!("{s:?}");
        for secret in [
            "bWFzdGVy",
            "hunter2",
            "sk_live_secret",
            "sk_workos_secret",
            "sb_secret_x",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("<redacted>") && text.contains("max_connections"));
    }

    /// `Settings::new` and clap agree on every default (both read
    /// [`defaults`]); the environment is left out of the parse.
    #[test]
    fn clap_and_default_agree() {
        use clap::{CommandFactory, FromArgMatches};
        let cmd = Only::command().mut_args(|a| a.env(None::<&str>));
        let matches = cmd.get_matches_from(["authmux", "--data-dir", "/tmp/x"]);
        let parsed = Only::from_arg_matches(&matches).unwrap().settings;
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", Settings::new("/tmp/x"))
        );
    }

    #[test]
    fn secrets_come_from_the_value_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "  from-file\n").unwrap();
        let direct = Secret::new(" direct ");
        assert_eq!(
            read_secret("X", Some(&direct), Some(&file)).unwrap(),
            Some(Secret::new("direct"))
        );
        assert_eq!(
            read_secret("X", None, Some(&file)).unwrap(),
            Some(Secret::new("from-file"))
        );
        assert_eq!(
            read_secret("X", Some(&Secret::new("  ")), None).unwrap(),
            None
        );
        let missing = read_secret("X", None, Some(&dir.path().join("none"))).unwrap_err();
        assert!(missing.to_string().starts_with("X_FILE: cannot read"));
    }
}
