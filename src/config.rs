//! Settings shared by every command, and the assembly of the domain from
//! them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::crypto::MasterKey;
use crate::domain::Domain;
use crate::store::Store;
use crate::vendors::VendorRouter;
use crate::vendors::native::Native;

/// The file, under the data directory, holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Where data lives and how secrets are sealed.
#[derive(Clone, Debug, clap::Args)]
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
    /// Base64 of 32 bytes sealing secrets at rest; generated into the data
    /// directory when unset.
    #[arg(
        long,
        env = "AUTHMUX_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    pub master_key: Option<String>,
}

impl Settings {
    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("authmux.db").display()),
        }
    }

    /// Connects to the store, creating the data directory for SQLite.
    pub async fn store(&self) -> anyhow::Result<Store> {
        let url = self.database_url();
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&self.data_dir).with_context(|| {
                format!(
                    "AUTHMUX_DATA_DIR: cannot create {}",
                    self.data_dir.display()
                )
            })?;
        }
        Store::connect(&url)
            .await
            .context("AUTHMUX_DATABASE_URL: cannot connect to the database")
    }

    /// The master key: the configured one, else the key file under the data
    /// directory (created on first use, with a warning).
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        if let Some(text) = &self.master_key {
            return MasterKey::from_base64(text).context("AUTHMUX_MASTER_KEY");
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

    /// Connects, migrates and wires the domain.
    pub async fn domain(&self) -> anyhow::Result<Arc<Domain>> {
        let store = self.store().await?;
        store.migrate().await.context("applying migrations")?;
        let master = self.master_key()?;
        let native = Arc::new(Native::new(store.clone(), master.clone()));
        Ok(Arc::new(Domain::new(
            store,
            master,
            VendorRouter::new(native),
        )))
    }
}
