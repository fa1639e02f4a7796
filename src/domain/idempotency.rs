//! Idempotency keys: within 24 hours a repeat of the same request with the
//! same key replays the first reply without a second effect. A request is
//! recognised by a keyed fingerprint (HMAC under a subkey of the master
//! key), so what is stored can't be reversed with a dictionary; calls that
//! check a credential check it before they get here, on every attempt. A
//! reply about a user is erased with the user.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Domain, Error, ErrorCode, Project, Result};
use crate::store::entity::idempotency_keys;

/// How long a key is remembered.
pub const KEY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// A claim older than this with no reply is taken to be from a crashed
/// process and may be taken over.
const STALE_CLAIM_MS: i64 = 5 * 60 * 1000;
/// The longest key accepted.
const MAX_KEY_LEN: usize = 255;

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(format!(
            "idempotency_key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(())
}

impl Domain {
    /// Runs `op` at most once per (project, key): a repeat with the same
    /// request gets the stored reply, a different request
    /// `IDEMPOTENCY_KEY_REUSED`, a repeat while the first still runs
    /// `IDEMPOTENCY_KEY_IN_USE`. Failed operations release the key.
    pub(crate) async fn idempotent<T, F, Fut>(
        &self,
        project: &Project,
        operation: &str,
        key: Option<&str>,
        request: &impl Serialize,
        op: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.idempotent_about(project, operation, key, request, |_| None, op)
            .await
    }

    /// [`Domain::idempotent`] for an operation whose reply is about a user
    /// (`about` names it): the stored reply is erased with the user, and a
    /// repeat after that is `AUTH_USER_NOT_FOUND`, still with no second
    /// effect.
    pub(crate) async fn idempotent_about<T, F, Fut>(
        &self,
        project: &Project,
        operation: &str,
        key: Option<&str>,
        request: &impl Serialize,
        about: impl FnOnce(&T) -> Option<String>,
        op: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Some(key) = key else {
            return op().await;
        };
        validate_key(key)?;
        let body = serde_json::to_vec(request).map_err(Error::internal)?;
        let mut material = Vec::with_capacity(operation.len() + 1 + body.len());
        material.extend_from_slice(operation.as_bytes());
        material.push(b'\n');
        material.extend_from_slice(&body);
        let request_hash = self.master.fingerprint(&material);
        let context = format!("idempotency:{}:{key}", project.id).into_bytes();

        let claimed_at = self
            .claim(project, key, operation, &request_hash, &context)
            .await?;
        let claimed_at = match claimed_at {
            Claim::Claimed(at) => at,
            Claim::Replay(bytes) => {
                crate::telemetry::idempotent_replay(operation);
                return serde_json::from_slice(&bytes).map_err(Error::internal);
            }
        };
        // Should the caller go away mid-operation (the future dropped), the
        // guard hands the key back so that a retry is not refused for
        // minutes.
        let mut guard = {
            let (store, project_id, key) = (self.store.clone(), project.id.clone(), key.to_owned());
            super::abandon::Abandon::new(async move {
                if let Err(e) = store
                    .release_idempotency_key(&project_id, &key, claimed_at)
                    .await
                {
                    tracing::warn!(error = %e, "could not release an abandoned idempotency key");
                }
            })
        };
        let outcome = op().await;
        guard.disarm();
        match outcome {
            Ok(reply) => {
                let bytes = serde_json::to_vec(&reply).map_err(Error::internal)?;
                let sealed = self.master.seal(&bytes, &context);
                match about(&reply) {
                    // Not stored when the user was deleted meanwhile: the
                    // reply goes to this caller only.
                    Some(user_id) => {
                        self.store
                            .complete_idempotency_key_about(&project.id, key, sealed, &user_id)
                            .await?;
                    }
                    None => {
                        self.store
                            .complete_idempotency_key(&project.id, key, sealed)
                            .await?
                    }
                }
                Ok(reply)
            }
            Err(err) => {
                self.store
                    .release_idempotency_key(&project.id, key, claimed_at)
                    .await?;
                Err(err)
            }
        }
    }

    async fn claim(
        &self,
        project: &Project,
        key: &str,
        operation: &str,
        request_hash: &str,
        context: &[u8],
    ) -> Result<Claim> {
        // Two rounds: the second follows the removal of an expired or
        // abandoned record.
        for _ in 0..2 {
            let now = self.now();
            let row = idempotency_keys::Model {
                project_id: project.id.clone(),
                key: key.to_owned(),
                operation: operation.to_owned(),
                request_hash: request_hash.to_owned(),
                response: None,
                created_at: now,
                user_id: None,
                erased: false,
            };
            if self.store.claim_idempotency_key(row).await? {
                return Ok(Claim::Claimed(now));
            }
            let Some(existing) = self.store.idempotency_record(&project.id, key).await? else {
                continue;
            };
            let age = now - existing.created_at;
            if age > KEY_TTL_MS {
                self.store
                    .release_idempotency_key(&project.id, key, existing.created_at)
                    .await?;
                continue;
            }
            if existing.request_hash != request_hash {
                return Err(Error::new(
                    ErrorCode::IdempotencyKeyReused,
                    format!(
                        "idempotency key {key:?} was used with a different request in the last 24 hours"
                    ),
                ));
            }
            if existing.erased {
                return Err(Error::new(
                    ErrorCode::AuthUserNotFound,
                    format!(
                        "user {} was deleted, and the reply stored under idempotency key {key:?} was erased with it",
                        existing.user_id.as_deref().unwrap_or("?")
                    ),
                ));
            }
            match existing.response {
                Some(sealed) => return Ok(Claim::Replay(self.master.open(&sealed, context)?)),
                None if age > STALE_CLAIM_MS => {
                    self.store
                        .release_idempotency_key(&project.id, key, existing.created_at)
                        .await?;
                }
                None => break,
            }
        }
        Err(Error::new(
            ErrorCode::IdempotencyKeyInUse,
            format!("a request with idempotency key {key:?} is still running; retry shortly"),
        ))
    }
}

enum Claim {
    Claimed(i64),
    Replay(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::validate_key;

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(validate_key("k-1").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"x".repeat(256)).is_err());
        assert!(validate_key("ключ").is_err());
    }
}
