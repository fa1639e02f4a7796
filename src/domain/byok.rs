//! Bring your own key: a project's own vendor credentials, sealed with the
//! master key, used for `mode: "byok"` and never mixed with the operator's.

use std::sync::Arc;

use super::{Domain, Error, ErrorCode, Project, Result};
use crate::store::StoreError;
use crate::store::entity::{pins, vendor_credentials};
use crate::vendors::{ByokConfig, IdentityVendor, Mode, VendorKind, VendorRouter};

/// How long a project's credentials are trusted before the store is asked
/// again (changes made by another process show within this).
const CONFIG_TTL_MS: i64 = 5_000;

/// A project's credentials as listed: never the secret.
#[derive(Debug)]
pub struct ByokInfo {
    /// The project's name.
    pub project: String,
    /// The vendor.
    pub vendor: VendorKind,
    /// Its URL, if set.
    pub url: Option<String>,
    /// The WorkOS client id, if set.
    pub client_id: Option<String>,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

fn context(project_id: &str, vendor: VendorKind) -> Vec<u8> {
    format!("byok:{project_id}:{vendor}").into_bytes()
}

impl Domain {
    pub(crate) async fn project_named(&self, name: &str) -> Result<Project> {
        let p =
            self.store.project_by_name(name).await?.ok_or_else(|| {
                Error::new(ErrorCode::NotFound, format!("no project named {name:?}"))
            })?;
        Ok(Project::from(p))
    }

    /// Stores a project's own credentials for a vendor.
    pub async fn set_vendor_credentials(
        &self,
        project_name: &str,
        vendor: VendorKind,
        config: ByokConfig,
    ) -> Result<()> {
        let project = self.project_named(project_name).await?;
        // Refuse what could not build an adapter, and an issuer another
        // adapter's tokens already carry: a token is routed by its `iss`.
        let adapter = config.adapter(vendor, Default::default())?;
        let issuer = adapter.token_source().await.map(|source| source.issuer);
        let taken = |by: &str| {
            Error::invalid(format!(
                "tokens of these credentials carry iss {:?}, which {by} tokens configured by the operator or this project already carry; set a distinct issuer",
                issuer.as_deref().unwrap_or_default(),
            ))
        };
        if let Some(issuer) = &issuer {
            // The stored credentials, not the cached ones: another process
            // may have changed them within the cache's lifetime.
            let mut others = self.vendors.managed_adapters();
            for (kind, cfg) in self.stored_byok_configs(&project).await? {
                if kind != vendor {
                    others.push(self.vendors.byok(&project.id, kind, &cfg)?);
                }
            }
            if let Some((owner, _)) = VendorRouter::by_issuer(others, issuer).await {
                return Err(taken(owner.kind().as_str()));
            }
        }
        let plain = serde_json::to_vec(&config).map_err(Error::internal)?;
        // Credentials set at once may all have passed the check above; the
        // store's unique (project, issuer) index lets only one keep it.
        match self
            .store
            .put_vendor_credentials(vendor_credentials::Model {
                project_id: project.id.clone(),
                vendor: vendor.as_str().to_owned(),
                config: self.master.seal(&plain, &context(&project.id, vendor)),
                updated_at: self.now(),
                issuer: issuer.clone(),
            })
            .await
        {
            Err(StoreError::Duplicate(_)) => return Err(taken("another vendor's")),
            other => other?,
        }
        self.byok_configs.remove(&project.id);
        Ok(())
    }

    /// Forgets a project's credentials for a vendor.
    pub async fn remove_vendor_credentials(
        &self,
        project_name: &str,
        vendor: VendorKind,
    ) -> Result<()> {
        let project = self.project_named(project_name).await?;
        if !self
            .store
            .delete_vendor_credentials(&project.id, vendor.as_str())
            .await?
        {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("project {project_name:?} has no credentials for {vendor}"),
            ));
        }
        self.byok_configs.remove(&project.id);
        Ok(())
    }

    /// Every project's credentials, without secrets.
    pub async fn list_vendor_credentials(&self) -> Result<Vec<ByokInfo>> {
        let mut out = Vec::new();
        for row in self.store.all_vendor_credentials().await? {
            let Some(vendor) = VendorKind::parse(&row.vendor) else {
                continue;
            };
            let cfg = self.open_config(&row, vendor)?;
            let project = self
                .store
                .project_by_id(&row.project_id)
                .await?
                .map(|p| p.name)
                .unwrap_or_default();
            out.push(ByokInfo {
                project,
                vendor,
                url: cfg.url,
                client_id: cfg.client_id,
                updated_at: row.updated_at,
            });
        }
        Ok(out)
    }

    fn open_config(
        &self,
        row: &vendor_credentials::Model,
        vendor: VendorKind,
    ) -> Result<ByokConfig> {
        let plain = self
            .master
            .open(&row.config, &context(&row.project_id, vendor))?;
        serde_json::from_slice(&plain).map_err(Error::internal)
    }

    /// A project's own credentials, by vendor.
    async fn byok_configs(&self, project: &Project) -> Result<Vec<(VendorKind, ByokConfig)>> {
        let now = self.now();
        if let Some(cached) = self.byok_configs.get(&project.id, now) {
            return Ok(cached);
        }
        // Credentials changed while they are read must not be cached as
        // they were after the change cleared the entry.
        let seen = self.byok_configs.invalidations();
        let configs = self.stored_byok_configs(project).await?;
        self.byok_configs.put_if_still_valid(
            &project.id,
            configs.clone(),
            now + CONFIG_TTL_MS,
            seen,
        );
        Ok(configs)
    }

    /// A project's own credentials, by vendor, as the store holds them now.
    async fn stored_byok_configs(
        &self,
        project: &Project,
    ) -> Result<Vec<(VendorKind, ByokConfig)>> {
        let mut configs = Vec::new();
        for row in self.store.project_vendor_credentials(&project.id).await? {
            if let Some(vendor) = VendorKind::parse(&row.vendor) {
                configs.push((vendor, self.open_config(&row, vendor)?));
            }
        }
        Ok(configs)
    }

    /// The adapter for `vendor` in `mode` for this project: the operator's
    /// in managed mode, only the project's own in BYOK mode.
    pub(crate) async fn vendor_for(
        &self,
        project: &Project,
        vendor: VendorKind,
        mode: Mode,
    ) -> Result<Arc<dyn IdentityVendor>> {
        if mode == Mode::Managed || vendor == VendorKind::Native {
            return Ok(self.vendors.resolve(vendor, mode)?);
        }
        match self
            .byok_configs(project)
            .await?
            .into_iter()
            .find(|(k, _)| *k == vendor)
        {
            Some((_, cfg)) => Ok(self.vendors.byok(&project.id, vendor, &cfg)?),
            None => Ok(self.vendors.resolve(vendor, Mode::Byok)?),
        }
    }

    /// The adapter a resource is pinned to.
    pub(crate) async fn pinned_vendor(
        &self,
        project: &Project,
        pin: &pins::Model,
    ) -> Result<Arc<dyn IdentityVendor>> {
        let vendor = VendorKind::parse(&pin.vendor)
            .ok_or_else(|| Error::internal(format!("unknown pinned vendor {}", pin.vendor)))?;
        let mode = Mode::parse(&pin.mode)
            .ok_or_else(|| Error::internal(format!("unknown pinned mode {}", pin.mode)))?;
        self.vendor_for(project, vendor, mode).await
    }

    /// Every vendor adapter whose tokens this project may present: the
    /// operator's and the project's own.
    pub(crate) async fn token_issuers(
        &self,
        project: &Project,
    ) -> Result<Vec<Arc<dyn IdentityVendor>>> {
        let mut adapters = self.vendors.managed_adapters();
        adapters.extend(self.byok_adapters(project).await?);
        Ok(adapters)
    }

    /// The adapters the project's own credentials open.
    pub(crate) async fn byok_adapters(
        &self,
        project: &Project,
    ) -> Result<Vec<Arc<dyn IdentityVendor>>> {
        let mut adapters = Vec::new();
        for (vendor, cfg) in self.byok_configs(project).await? {
            adapters.push(self.vendors.byok(&project.id, vendor, &cfg)?);
        }
        Ok(adapters)
    }
}

/// The vendor among `adapters` whose tokens carry `issuer`.
pub(crate) async fn by_issuer(
    adapters: Vec<Arc<dyn IdentityVendor>>,
    issuer: &str,
) -> Option<(Arc<dyn IdentityVendor>, crate::vendors::TokenSource)> {
    VendorRouter::by_issuer(adapters, issuer).await
}
