//! Projects and API keys: minting, authenticating, listing, revoking.

use super::{Domain, Error, ErrorCode, Project, Result, new_id};
use crate::cache::ExpiringCache;
use crate::crypto::{random_token, sha256, sha256_hex};

/// The public prefix of every API key.
pub const KEY_PREFIX: &str = "amx_";
/// How long a successful key lookup is trusted before the store is asked
/// again: a key revoked by another process stops working within this.
const KEY_CACHE_TTL_MS: i64 = 1_000;
/// The most keys remembered at once.
pub(super) const KEY_CACHE_MAX: usize = 10_000;

/// Recently authenticated keys (by SHA-256) and their projects.
pub(super) type KeyCache = ExpiringCache<Project, [u8; 32]>;

/// A key just minted; `key` is shown once and never stored.
#[derive(Debug)]
pub struct NewApiKey {
    /// The project it opens.
    pub project: Project,
    /// The key's id, for listing and revoking.
    pub key_id: String,
    /// The secret itself.
    pub key: String,
}

/// A stored key as listed: never the secret.
#[derive(Debug)]
pub struct ApiKeyInfo {
    /// `key_…`
    pub key_id: String,
    /// The project's name.
    pub project: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

impl Domain {
    /// Mints a key for the project `name`, creating the project if needed.
    pub async fn create_api_key(&self, project_name: &str) -> Result<NewApiKey> {
        let name = project_name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(Error::invalid("project name must be 1 to 64 characters"));
        }
        let project = self
            .store
            .get_or_create_project(name, new_id("prj"))
            .await?;
        let key = format!("{KEY_PREFIX}{}", random_token(32));
        let key_id = new_id("key");
        self.store
            .insert_api_key(
                key_id.clone(),
                &project.id,
                sha256_hex(key.as_bytes()),
                key[..KEY_PREFIX.len() + 6].to_owned(),
            )
            .await?;
        Ok(NewApiKey {
            project: Project::from(project),
            key_id,
            key,
        })
    }

    /// On an empty store, creates project `default` with a first key.
    pub async fn bootstrap(&self) -> Result<Option<NewApiKey>> {
        if self.store.count_projects().await? > 0 {
            return Ok(None);
        }
        self.create_api_key("default").await.map(Some)
    }

    /// The project of an `Authorization` value (`Bearer amx_…` or the bare key).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Project> {
        let invalid = |why: &str| {
            Error::new(
                ErrorCode::AuthInvalidApiKey,
                format!("{why}: send \"Authorization: Bearer amx_...\""),
            )
        };
        let raw = authorization
            .ok_or_else(|| invalid("missing API key"))?
            .trim();
        let key = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .unwrap_or(raw)
            .trim();
        if !key.starts_with(KEY_PREFIX) {
            return Err(invalid("malformed API key"));
        }
        let digest = sha256(key.as_bytes());
        let now = self.now();
        if let Some(project) = self.api_keys.get(&digest, now) {
            return Ok(project);
        }
        // A key revoked while it is read from the store must not be
        // cached as valid after the revocation cleared the cache.
        let seen = self.api_keys.invalidations();
        let (row, key_id) = self
            .store
            .project_for_key_hash(&hex::encode(digest))
            .await?
            .ok_or_else(|| invalid("unknown or revoked API key"))?;
        let project = Project {
            key_id: Some(key_id),
            ..Project::from(row)
        };
        self.api_keys
            .put_if_still_valid(&digest, project.clone(), now + KEY_CACHE_TTL_MS, seen);
        Ok(project)
    }

    /// Every key, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        Ok(self
            .store
            .list_api_keys()
            .await?
            .into_iter()
            .map(|(k, p)| ApiKeyInfo {
                key_id: k.id,
                project: p.map(|p| p.name).unwrap_or_default(),
                prefix: k.prefix,
                created_at: k.created_at,
                revoked_at: k.revoked_at,
            })
            .collect())
    }

    /// Revokes a key by id.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<()> {
        if self.store.revoke_api_key(key_id).await? {
            self.api_keys.clear();
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::NotFound,
                format!("no unrevoked key {key_id}"),
            ))
        }
    }
}
