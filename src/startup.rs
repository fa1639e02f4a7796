//! Building the running service from its [`Settings`]: the store, the
//! master key, the signing keys, the revocation set, the vendor adapters
//! and the domain that holds them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Secret, Settings, read_secret};
use crate::crypto::MasterKey;
use crate::domain::{Domain, Revocations};
use crate::store::Store;
use crate::tokens::Keyring;
use crate::tokens::jwks::{JwksClient, Policy as JwksPolicy};
use crate::tokens::verify::LEEWAY_SECS;
use crate::vendors::http::Policy;
use crate::vendors::native::Native;
use crate::vendors::{ByokConfig, VendorKind, VendorRouter};

/// The file, under the data directory, holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master.key";
/// How often serving processes re-read the signing keys.
const KEY_RELOAD: Duration = Duration::from_secs(1);

/// The file of an SQLite URL (`sqlite://path?options`), if it names one.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// Both halves of a vendor's managed credentials, or neither.
fn pair<A, B>(a: (&str, Option<A>), b: (&str, Option<B>)) -> anyhow::Result<Option<(A, B)>> {
    match (a.1, b.1) {
        (Some(x), Some(y)) => Ok(Some((x, y))),
        (None, None) => Ok(None),
        (Some(_), None) => anyhow::bail!("{} is set but {} is not", a.0, b.0),
        (None, Some(_)) => anyhow::bail!("{} is set but {} is not", b.0, a.0),
    }
}

impl Settings {
    /// The vendor adapters configured with operator credentials.
    pub fn vendors(&self, native: Arc<Native>) -> anyhow::Result<VendorRouter> {
        let p = &self.vendor_policy;
        let policy = Policy {
            timeout: Duration::from_millis(p.vendor_timeout_ms),
            session_token_ttl: Duration::from_secs(self.tokens.access_ttl_secs),
            ..Policy::default()
        };
        let jwks_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_millis(p.vendor_timeout_ms))
            .build()
            .context("building the JWKS client")?;
        let jwks = JwksClient::new(
            jwks_http,
            JwksPolicy {
                refetch_interval: Duration::from_millis(p.jwks_refetch_ms),
                ..JwksPolicy::default()
            },
        );
        let priority = p
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
        // The operator's credentials open adapters the same way a
        // project's own do.
        let operator =
            |secret: Secret, url: &str, client_id: Option<String>, issuer: &Option<String>| {
                ByokConfig {
                    secret: secret.expose().to_owned(),
                    url: Some(url.to_owned()),
                    client_id,
                    issuer: issuer.clone(),
                }
            };
        let c = &self.clerk;
        if let Some(key) = read_secret(
            "AUTHMUX_CLERK_SECRET_KEY",
            c.clerk_secret_key.as_ref(),
            c.clerk_secret_key_file.as_deref(),
        )? {
            let creds = operator(key, &c.clerk_base_url, None, &c.clerk_issuer);
            router = router.with(creds.adapter(VendorKind::Clerk, policy)?);
        }
        let w = &self.workos;
        let workos_key = read_secret(
            "AUTHMUX_WORKOS_API_KEY",
            w.workos_api_key.as_ref(),
            w.workos_api_key_file.as_deref(),
        )?;
        if let Some((key, client_id)) = pair(
            ("AUTHMUX_WORKOS_API_KEY", workos_key),
            ("AUTHMUX_WORKOS_CLIENT_ID", w.workos_client_id.clone()),
        )? {
            let creds = operator(key, &w.workos_base_url, Some(client_id), &w.workos_issuer);
            router = router.with(creds.adapter(VendorKind::Workos, policy)?);
        }
        let s = &self.supabase;
        let service_role = read_secret(
            "AUTHMUX_SUPABASE_SERVICE_ROLE_KEY",
            s.supabase_service_role_key.as_ref(),
            s.supabase_service_role_key_file.as_deref(),
        )?;
        if let Some((url, key)) = pair(
            ("AUTHMUX_SUPABASE_URL", s.supabase_url.clone()),
            ("AUTHMUX_SUPABASE_SERVICE_ROLE_KEY", service_role),
        )? {
            let creds = operator(key, &url, None, &None);
            router = router.with(creds.adapter(VendorKind::Supabase, policy)?);
        }
        Ok(router)
    }

    /// The signing keys, made on first use.
    pub async fn keyring(&self, store: &Store, master: &MasterKey) -> anyhow::Result<Arc<Keyring>> {
        let grace = Duration::from_secs(self.tokens.access_ttl_secs + LEEWAY_SECS);
        Keyring::open(
            store.clone(),
            master.clone(),
            self.tokens.signing_alg,
            grace,
        )
        .await
        .context("loading signing keys")
    }

    /// The database URL in force.
    pub fn database_url(&self) -> anyhow::Result<String> {
        let s = &self.store;
        Ok(read_secret(
            "AUTHMUX_DATABASE_URL",
            s.database_url.as_ref(),
            s.database_url_file.as_deref(),
        )?
        .map(|url| url.expose().to_owned())
        .unwrap_or_else(|| format!("sqlite://{}", s.data_dir.join("authmux.db").display())))
    }

    /// Connects to the store, creating the data directory for SQLite. The
    /// data directory is kept private to the service's user (0700) and the
    /// SQLite files readable by it alone (0600).
    pub async fn store(&self) -> anyhow::Result<Store> {
        let url = self.database_url()?;
        let sqlite = url.starts_with("sqlite:");
        let data_dir = &self.store.data_dir;
        if sqlite {
            crate::crypto::create_private_dir(data_dir).with_context(|| {
                format!("AUTHMUX_DATA_DIR: cannot create {}", data_dir.display())
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
        let s = &self.store;
        if let Some(text) = read_secret(
            "AUTHMUX_MASTER_KEY",
            s.master_key.as_ref(),
            s.master_key_file.as_deref(),
        )? {
            return MasterKey::from_base64(text.expose()).context("AUTHMUX_MASTER_KEY");
        }
        let path = s.data_dir.join(MASTER_KEY_FILE);
        let (key, created) = MasterKey::load_or_create_file(&path).context("AUTHMUX_DATA_DIR")?;
        if created {
            tracing::warn!(
                path = %path.display(),
                "AUTHMUX_MASTER_KEY is unset: generated a master key file; back it up, or set AUTHMUX_MASTER_KEY in production"
            );
        }
        Ok(key)
    }

    /// The listener's limits.
    pub fn limits(&self) -> crate::server::Limits {
        self.listener.limits()
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
        if self.vendor_policy.vendor_probe_ms > 0 {
            vendors.spawn_probes(Duration::from_millis(self.vendor_policy.vendor_probe_ms));
        }
        let worker =
            crate::events::Worker::new(store.clone(), master.clone(), self.webhooks.policy());
        let domain = Arc::new(
            Domain::new(
                store,
                master,
                vendors,
                keyring,
                revocations,
                self.tokens.session_config(),
            )
            .with_rate_limits(self.rate_limit.config())
            .with_event_retention(self.store.audit_retention_days)
            .with_webhooks(self.webhooks.policy()),
        );
        domain.spawn_purge();
        worker.spawn(Arc::downgrade(&domain));
        Ok(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_in_urls() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/a.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/a.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x/y"), None);
    }

    #[test]
    fn managed_credentials_come_in_pairs() {
        assert_eq!(pair::<u8, u8>(("A", None), ("B", None)).unwrap(), None);
        assert_eq!(pair(("A", Some(1)), ("B", Some(2))).unwrap(), Some((1, 2)));
        let e = pair(("A", Some(1)), ("B", None::<u8>)).unwrap_err();
        assert_eq!(e.to_string(), "A is set but B is not");
        let e = pair(("A", None::<u8>), ("B", Some(2))).unwrap_err();
        assert_eq!(e.to_string(), "B is set but A is not");
    }
}
