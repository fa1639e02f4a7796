//! Settings shared by every command, and the assembly of the domain from
//! them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::crypto::MasterKey;
use crate::domain::{Domain, Revocations, SessionConfig};
use crate::store::Store;
use crate::tokens::jwks::{JwksClient, Policy as JwksPolicy};
use crate::tokens::verify::LEEWAY_SECS;
use crate::tokens::{Keyring, SigningAlg};
use crate::vendors::clerk;
use crate::vendors::http::Policy;
use crate::vendors::native::Native;

use crate::vendors::workos;
use crate::vendors::{ByokConfig, VendorKind, VendorRouter};

/// A secret given directly or as a file (as Kubernetes mounts secrets);
/// surrounding white space is dropped and an empty value counts as unset.
fn secret_setting(
    file_setting: &str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    let raw = match (value, file) {
        (Some(v), _) => v.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("{file_setting}: cannot read {}", path.display()))?,
        (None, None) => return Ok(None),
    };
    let trimmed = raw.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// The file, under the data directory, holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master.key";
/// How often serving processes re-read the signing keys.
const KEY_RELOAD: Duration = Duration::from_secs(1);

/// Where data lives and how secrets are sealed.
#[derive(Clone, clap::Args)]
pub struct Settings {
    /// Directory for the SQLite database and a generated master key.
    #[arg(
        long,
        env = "AUTHMUX_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`); an SQLite file under
    /// the data directory when unset.
    #[arg(
        long,
        env = "AUTHMUX_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
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
    pub master_key: Option<String>,
    /// A file holding the master key.
    #[arg(long, env = "AUTHMUX_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Algorithm of new signing keys: ES256 or RS256.
    #[arg(
        long,
        env = "AUTHMUX_SIGNING_ALG",
        default_value = "ES256",
        global = true
    )]
    pub signing_alg: SigningAlg,
    /// `iss` of minted tokens: the public URL of this service. Not
    /// global: `vendors set` and `oauth set` have an `--issuer` of their
    /// own (the vendor's or provider's), which this one must not fill.
    #[arg(long, env = "AUTHMUX_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub issuer: String,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "AUTHMUX_ACCESS_TTL_SECS", default_value_t = 900, global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub access_ttl_secs: u64,
    /// Absolute lifetime of sessions, in seconds.
    #[arg(long, env = "AUTHMUX_SESSION_TTL_SECS", default_value_t = 30 * 86_400, global = true,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub session_ttl_secs: u64,
    /// Least time between two token issuances for one session, in seconds.
    #[arg(
        long,
        env = "AUTHMUX_REFRESH_COOLDOWN_SECS",
        default_value_t = 300,
        global = true
    )]
    pub refresh_cooldown_secs: u64,
    /// Clerk secret key (`sk_…`) for managed mode; enables the Clerk adapter.
    #[arg(
        long,
        env = "AUTHMUX_CLERK_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub clerk_secret_key: Option<String>,
    /// A file holding the Clerk secret key (as Kubernetes mounts secrets).
    #[arg(long, env = "AUTHMUX_CLERK_SECRET_KEY_FILE", global = true)]
    pub clerk_secret_key_file: Option<PathBuf>,
    /// Clerk Backend API base URL.
    #[arg(long, env = "AUTHMUX_CLERK_BASE_URL", default_value = clerk::DEFAULT_BASE_URL, global = true)]
    pub clerk_base_url: String,
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
    pub supabase_service_role_key: Option<String>,
    /// A file holding the Supabase service-role key.
    #[arg(long, env = "AUTHMUX_SUPABASE_SERVICE_ROLE_KEY_FILE", global = true)]
    pub supabase_service_role_key_file: Option<PathBuf>,
    /// WorkOS API key for managed mode; enables the WorkOS adapter together
    /// with the client id.
    #[arg(
        long,
        env = "AUTHMUX_WORKOS_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub workos_api_key: Option<String>,
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
    /// Clerk's token issuer (its Frontend API URL); read from Clerk's
    /// `GET /domains` when unset.
    #[arg(long, env = "AUTHMUX_CLERK_ISSUER", global = true)]
    pub clerk_issuer: Option<String>,
    /// Least time between two JWKS fetches caused by unknown key ids, ms.
    #[arg(
        long,
        env = "AUTHMUX_JWKS_REFETCH_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub jwks_refetch_ms: u64,
    /// Vendors tried, in order, when a create names none (configured ones
    /// only): a comma-separated list of native, clerk, workos, supabase.
    #[arg(
        long,
        env = "AUTHMUX_VENDOR_PRIORITY",
        default_value = "native,clerk,workos,supabase",
        global = true
    )]
    pub vendor_priority: String,
    /// Milliseconds between health probes of each configured vendor (0: none).
    #[arg(
        long,
        env = "AUTHMUX_VENDOR_PROBE_MS",
        default_value_t = 15_000,
        global = true
    )]
    pub vendor_probe_ms: u64,
    /// Total time allowed for one vendor call attempt, in milliseconds.
    #[arg(
        long,
        env = "AUTHMUX_VENDOR_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub vendor_timeout_ms: u64,
    /// Most connections served at once; more wait to be accepted.
    #[arg(
        long,
        env = "AUTHMUX_MAX_CONNECTIONS",
        default_value_t = 4_096,
        global = true
    )]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (HTTP/1).
    #[arg(
        long,
        env = "AUTHMUX_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub header_read_timeout_secs: u64,
    /// Seconds a REST client has to send a request's body.
    #[arg(
        long,
        env = "AUTHMUX_BODY_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub body_timeout_secs: u64,
    /// Seconds a connection may go without reading or writing a byte
    /// before it is closed (HTTP/2 pings count).
    #[arg(
        long,
        env = "AUTHMUX_IDLE_TIMEOUT_SECS",
        default_value_t = 120,
        global = true
    )]
    pub idle_timeout_secs: u64,
    /// Requests per second a project may make (all replicas together),
    /// unless `authmux projects set-rate-limit` gave it its own.
    #[arg(
        long,
        env = "AUTHMUX_RATE_LIMIT_PER_SECOND",
        default_value_t = 1_000,
        global = true
    )]
    pub rate_limit_per_second: u32,
    /// Requests a project may make at once after a quiet period.
    #[arg(
        long,
        env = "AUTHMUX_RATE_LIMIT_BURST",
        default_value_t = 2_000,
        global = true
    )]
    pub rate_limit_burst: u32,
    /// Requests per second per client address that fail authentication.
    #[arg(
        long,
        env = "AUTHMUX_ANONYMOUS_RATE_LIMIT_PER_SECOND",
        default_value_t = 10,
        global = true
    )]
    pub anonymous_rate_limit_per_second: u32,
    /// Burst of requests per client address that fail authentication.
    #[arg(
        long,
        env = "AUTHMUX_ANONYMOUS_RATE_LIMIT_BURST",
        default_value_t = 20,
        global = true
    )]
    pub anonymous_rate_limit_burst: u32,
    /// How many replicas share the rate limits (each enforces its share).
    #[arg(long, env = "AUTHMUX_REPLICAS", default_value_t = 1, global = true)]
    pub replicas: u32,
}

/// Shows whether a secret is set, never its value.
fn redacted(secret: &Option<String>) -> &'static str {
    match secret {
        Some(_) => "<redacted>",
        None => "<unset>",
    }
}

impl std::fmt::Debug for Settings {
    /// Every setting, with secrets (the database URL, which may hold a
    /// password, the master key and vendor keys) redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redacted(&self.database_url))
            .field("database_url_file", &self.database_url_file)
            .field("master_key", &redacted(&self.master_key))
            .field("master_key_file", &self.master_key_file)
            .field("signing_alg", &self.signing_alg)
            .field("issuer", &self.issuer)
            .field("access_ttl_secs", &self.access_ttl_secs)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("refresh_cooldown_secs", &self.refresh_cooldown_secs)
            .field("clerk_secret_key", &redacted(&self.clerk_secret_key))
            .field("clerk_secret_key_file", &self.clerk_secret_key_file)
            .field("clerk_base_url", &self.clerk_base_url)
            .field("supabase_url", &self.supabase_url)
            .field(
                "supabase_service_role_key",
                &redacted(&self.supabase_service_role_key),
            )
            .field(
                "supabase_service_role_key_file",
                &self.supabase_service_role_key_file,
            )
            .field("workos_api_key", &redacted(&self.workos_api_key))
            .field("workos_api_key_file", &self.workos_api_key_file)
            .field("workos_client_id", &self.workos_client_id)
            .field("workos_base_url", &self.workos_base_url)
            .field("workos_issuer", &self.workos_issuer)
            .field("clerk_issuer", &self.clerk_issuer)
            .field("jwks_refetch_ms", &self.jwks_refetch_ms)
            .field("vendor_priority", &self.vendor_priority)
            .field("vendor_probe_ms", &self.vendor_probe_ms)
            .field("vendor_timeout_ms", &self.vendor_timeout_ms)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field(
                "anonymous_rate_limit_per_second",
                &self.anonymous_rate_limit_per_second,
            )
            .field(
                "anonymous_rate_limit_burst",
                &self.anonymous_rate_limit_burst,
            )
            .field("replicas", &self.replicas)
            .finish()
    }
}

/// The file of an SQLite URL (`sqlite://path?options`), if it names one.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

impl Settings {
    /// The defaults, with data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Settings {
            data_dir: data_dir.into(),
            database_url: None,
            database_url_file: None,
            master_key: None,
            master_key_file: None,
            signing_alg: SigningAlg::Es256,
            issuer: "http://127.0.0.1:8080".to_owned(),
            access_ttl_secs: 900,
            session_ttl_secs: 30 * 86_400,
            refresh_cooldown_secs: 300,
            clerk_secret_key: None,
            clerk_secret_key_file: None,
            clerk_base_url: clerk::DEFAULT_BASE_URL.to_owned(),
            clerk_issuer: None,
            workos_api_key: None,
            workos_api_key_file: None,
            workos_client_id: None,
            workos_base_url: workos::DEFAULT_BASE_URL.to_owned(),
            workos_issuer: None,
            supabase_url: None,
            supabase_service_role_key: None,
            supabase_service_role_key_file: None,
            jwks_refetch_ms: 30_000,
            max_connections: 4_096,
            header_read_timeout_secs: 10,
            body_timeout_secs: 10,
            idle_timeout_secs: 120,
            rate_limit_per_second: 1_000,
            rate_limit_burst: 2_000,
            anonymous_rate_limit_per_second: 10,
            anonymous_rate_limit_burst: 20,
            replicas: 1,
            vendor_priority: "native,clerk,workos,supabase".to_owned(),
            vendor_timeout_ms: 10_000,
            vendor_probe_ms: 15_000,
        }
    }

    /// The vendor adapters configured with operator credentials.
    pub fn vendors(&self, native: Arc<Native>) -> anyhow::Result<VendorRouter> {
        let policy = Policy {
            timeout: Duration::from_millis(self.vendor_timeout_ms),
            session_token_ttl: Duration::from_secs(self.access_ttl_secs),
            ..Policy::default()
        };
        let jwks_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_millis(self.vendor_timeout_ms))
            .build()
            .context("building the JWKS client")?;
        let jwks = JwksClient::new(
            jwks_http,
            JwksPolicy {
                refetch_interval: Duration::from_millis(self.jwks_refetch_ms),
                ..JwksPolicy::default()
            },
        );
        let priority = self
            .vendor_priority
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| {
                VendorKind::parse(v).ok_or_else(|| {
                    anyhow::anyhow!(
                        "AUTHMUX_VENDOR_PRIORITY: {v:?} is not one of {}",
                        VendorKind::names()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut router = VendorRouter::new(native, jwks)
            .with_priority(priority)
            .with_policy(policy);
        let secret = match (&self.clerk_secret_key, &self.clerk_secret_key_file) {
            (Some(key), _) => Some(key.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| {
                        format!(
                            "AUTHMUX_CLERK_SECRET_KEY_FILE: cannot read {}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        // The operator's credentials open adapters the same way a
        // project's own do.
        let operator = |secret: String,
                        url: Option<&str>,
                        client_id: Option<&String>,
                        issuer: &Option<String>| ByokConfig {
            secret,
            url: url.map(str::to_owned),
            client_id: client_id.cloned(),
            issuer: issuer.clone(),
        };
        if let Some(secret_key) = secret.filter(|s| !s.is_empty()) {
            let creds = operator(
                secret_key,
                Some(&self.clerk_base_url),
                None,
                &self.clerk_issuer,
            );
            router = router.with(creds.adapter(VendorKind::Clerk, policy)?);
        }
        let workos_key = secret_setting(
            "AUTHMUX_WORKOS_API_KEY_FILE",
            &self.workos_api_key,
            &self.workos_api_key_file,
        )?;
        match (workos_key, &self.workos_client_id) {
            (Some(api_key), Some(client_id)) => {
                let creds = operator(
                    api_key,
                    Some(&self.workos_base_url),
                    Some(client_id),
                    &self.workos_issuer,
                );
                router = router.with(creds.adapter(VendorKind::Workos, policy)?);
            }
            (Some(_), None) => {
                anyhow::bail!("AUTHMUX_WORKOS_API_KEY is set but AUTHMUX_WORKOS_CLIENT_ID is not")
            }
            (None, Some(_)) => {
                anyhow::bail!("AUTHMUX_WORKOS_CLIENT_ID is set but AUTHMUX_WORKOS_API_KEY is not")
            }
            (None, None) => {}
        }
        let service_role = secret_setting(
            "AUTHMUX_SUPABASE_SERVICE_ROLE_KEY_FILE",
            &self.supabase_service_role_key,
            &self.supabase_service_role_key_file,
        )?;
        match (&self.supabase_url, service_role) {
            (Some(url), Some(key)) => {
                let creds = operator(key, Some(url), None, &None);
                router = router.with(creds.adapter(VendorKind::Supabase, policy)?);
            }
            (Some(_), None) => anyhow::bail!(
                "AUTHMUX_SUPABASE_URL is set but AUTHMUX_SUPABASE_SERVICE_ROLE_KEY is not"
            ),
            (None, Some(_)) => anyhow::bail!(
                "AUTHMUX_SUPABASE_SERVICE_ROLE_KEY is set but AUTHMUX_SUPABASE_URL is not"
            ),
            (None, None) => {}
        }
        Ok(router)
    }

    /// Lifetimes and issuer of sessions.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            issuer: self.issuer.clone(),
            access_ttl: Duration::from_secs(self.access_ttl_secs),
            session_ttl: Duration::from_secs(self.session_ttl_secs),
            refresh_cooldown: Duration::from_secs(self.refresh_cooldown_secs),
        }
    }

    /// The signing keys, made on first use.
    pub async fn keyring(&self, store: &Store, master: &MasterKey) -> anyhow::Result<Arc<Keyring>> {
        let grace = Duration::from_secs(self.access_ttl_secs + LEEWAY_SECS);
        Keyring::open(store.clone(), master.clone(), self.signing_alg, grace)
            .await
            .context("loading signing keys")
    }

    /// The database URL in force.
    pub fn database_url(&self) -> anyhow::Result<String> {
        Ok(secret_setting(
            "AUTHMUX_DATABASE_URL_FILE",
            &self.database_url,
            &self.database_url_file,
        )?
        .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("authmux.db").display())))
    }

    /// Connects to the store, creating the data directory for SQLite. The
    /// data directory is kept private to the service's user (0700) and the
    /// SQLite files readable by it alone (0600).
    pub async fn store(&self) -> anyhow::Result<Store> {
        let url = self.database_url()?;
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            crate::crypto::create_private_dir(&self.data_dir).with_context(|| {
                format!(
                    "AUTHMUX_DATA_DIR: cannot create {}",
                    self.data_dir.display()
                )
            })?;
        }
        let store = Store::connect(&url)
            .await
            .context("AUTHMUX_DATABASE_URL: cannot connect to the database")?;
        if let Some(file) = sqlite.then(|| sqlite_file(&url)).flatten() {
            for suffix in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{}{suffix}", file.display()));
                if path.exists() {
                    crate::crypto::make_private(&path, 0o600).with_context(|| {
                        format!("cannot restrict {} to its owner", path.display())
                    })?;
                }
            }
        }
        Ok(store)
    }

    /// The master key: the configured one, else the key file under the data
    /// directory (created on first use, with a warning).
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        if let Some(text) = secret_setting(
            "AUTHMUX_MASTER_KEY_FILE",
            &self.master_key,
            &self.master_key_file,
        )? {
            return MasterKey::from_base64(&text).context("AUTHMUX_MASTER_KEY");
        }
        let path = self.data_dir.join(MASTER_KEY_FILE);
        let (key, created) = MasterKey::load_or_create_file(&path).context("AUTHMUX_DATA_DIR")?;
        if created {
            tracing::warn!(
                path = %path.display(),
                "AUTHMUX_MASTER_KEY is unset: generated a master key file; back it up, or set AUTHMUX_MASTER_KEY in production"
            );
        }
        Ok(key)
    }

    /// The request rate limits.
    pub fn rate_limits(&self) -> crate::domain::RateLimitConfig {
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

    /// The listener's limits.
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            max_connections: self.max_connections.max(1),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
        }
    }

    /// Connects, migrates and wires the domain.
    pub async fn domain(&self) -> anyhow::Result<Arc<Domain>> {
        self.domain_with(true).await
    }

    /// Like [`Settings::domain`]; `migrate: false` leaves the schema to a
    /// separate `authmux migrate` (e.g. a deployment hook).
    pub async fn domain_with(&self, migrate: bool) -> anyhow::Result<Arc<Domain>> {
        let store = self.store().await?;
        if migrate {
            store.migrate().await.context("applying migrations")?;
        }
        let master = self.master_key()?;
        let keyring = self.keyring(&store, &master).await?;
        keyring.spawn_reload(KEY_RELOAD);
        let revocations = Revocations::load(&store)
            .await
            .context("loading revocations")?;
        revocations.spawn_poll(store.clone());
        let native = Arc::new(Native::new(store.clone(), master.clone()));
        let vendors = self.vendors(native)?;
        if self.vendor_probe_ms > 0 {
            vendors.spawn_probes(Duration::from_millis(self.vendor_probe_ms));
        }
        let domain = Arc::new(
            Domain::new(
                store,
                master,
                vendors,
                keyring,
                revocations,
                self.session_config(),
            )
            .with_rate_limits(self.rate_limits()),
        );
        domain.spawn_purge();
        Ok(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let mut s = Settings::new("/tmp/x");
        s.master_key = Some("bWFzdGVyIGtleSBtYXN0ZXIga2V5IG1hc3RlciBrZXk=".into());
        s.database_url = Some("postgres://u:hunter2@db/authmux".into());
        s.clerk_secret_key = Some("sk_live_secret".into());
        s.workos_api_key = Some("sk_workos_secret".into());
        s.supabase_service_role_key = Some("sb_secret_x".into());
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

    #[test]
    fn sqlite_files_are_found_in_urls() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/a.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/a.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x/y"), None);
    }
}
