//! authmux's own signing keys: one current key signs, previous keys keep
//! verifying until the tokens they signed have expired. Keys live sealed in
//! the store; every replica reloads them, so a rotation anywhere is seen
//! everywhere.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use super::keys::{self, KeyError, PrivateKey, PublicKey, SigningAlg};
use crate::crypto::MasterKey;
use crate::store::entity::signing_keys;
use crate::store::{Store, StoreError};

/// A failure loading or making keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// A key could not be made or parsed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed key could not be opened.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// The store holds no usable key.
    #[error("no current signing key")]
    NoKey,
}

struct Verifier {
    key: Arc<PublicKey>,
    retired_at: Option<i64>,
}

struct KeySet {
    /// (kid, retired_at) of every stored key: what a reload compares.
    version: Vec<(String, Option<i64>)>,
    current: Arc<PrivateKey>,
    verifiers: HashMap<String, Verifier>,
}

/// The signing keys of this deployment.
pub struct Keyring {
    store: Store,
    master: MasterKey,
    alg: SigningAlg,
    /// How long a retired key keeps verifying: the access-token lifetime
    /// plus clock leeway.
    grace_ms: i64,
    state: RwLock<Arc<KeySet>>,
}

fn context(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

impl Keyring {
    /// Loads the keys, making a current key of `alg` when there is none
    /// (or the current one is of another algorithm).
    pub async fn open(
        store: Store,
        master: MasterKey,
        alg: SigningAlg,
        grace: Duration,
    ) -> Result<Arc<Keyring>, KeyringError> {
        let rows = store.signing_keys().await?;
        let current_alg = rows
            .iter()
            .rev()
            .find(|r| r.retired_at.is_none())
            .and_then(|r| SigningAlg::parse(&r.alg));
        if current_alg != Some(alg) {
            install_new_key(&store, &master, alg).await?;
        }
        let rows = store.signing_keys().await?;
        let set = build(&rows, &master)?;
        Ok(Arc::new(Keyring {
            store,
            master,
            alg,
            grace_ms: grace.as_millis() as i64,
            state: RwLock::new(Arc::new(set)),
        }))
    }

    /// Makes a new current key; the previous one keeps verifying through
    /// its grace period. Returns the new kid.
    pub async fn rotate(&self) -> Result<String, KeyringError> {
        let kid = install_new_key(&self.store, &self.master, self.alg).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// Re-reads the keys from the store if they changed.
    pub async fn reload(&self) -> Result<(), KeyringError> {
        let rows = self.store.signing_keys().await?;
        let version: Vec<_> = rows.iter().map(|r| (r.kid.clone(), r.retired_at)).collect();
        if self.snapshot().version == version {
            return Ok(());
        }
        let set = build(&rows, &self.master)?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(())
    }

    /// Reloads every `every` until the process ends.
    pub fn spawn_reload(self: &Arc<Self>, every: Duration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(ring) = me.upgrade() else { break };
                if let Err(e) = ring.reload().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        });
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> Arc<PrivateKey> {
        self.snapshot().current.clone()
    }

    /// The verifying key `kid`, unless it retired longer ago than the grace.
    pub fn key(&self, kid: &str) -> Option<Arc<PublicKey>> {
        let set = self.snapshot();
        let v = set.verifiers.get(kid)?;
        self.in_grace(v.retired_at).then(|| v.key.clone())
    }

    fn in_grace(&self, retired_at: Option<i64>) -> bool {
        retired_at.is_none_or(|at| at + self.grace_ms > self.store.now_millis())
    }

    /// The published JWKS: the current key and previous keys still in grace.
    pub fn jwks(&self) -> Value {
        let set = self.snapshot();
        let mut keys: Vec<&Verifier> = set
            .verifiers
            .values()
            .filter(|v| self.in_grace(v.retired_at))
            .collect();
        keys.sort_by_key(|v| (v.retired_at.is_some(), std::cmp::Reverse(v.retired_at)));
        json!({"keys": keys.iter().map(|v| v.key.jwk.clone()).collect::<Vec<_>>()})
    }
}

async fn install_new_key(
    store: &Store,
    master: &MasterKey,
    alg: SigningAlg,
) -> Result<String, KeyringError> {
    let generated = tokio::task::spawn_blocking(move || keys::generate(alg))
        .await
        .map_err(|e| KeyError(e.to_string()))??;
    let kid = generated.jwk["kid"].as_str().unwrap_or_default().to_owned();
    let now = store.now_millis();
    store
        .install_signing_key(
            signing_keys::Model {
                kid: kid.clone(),
                alg: alg.as_str().to_owned(),
                private_key: master.seal(&generated.pkcs8, &context(&kid)),
                public_jwk: generated.jwk.to_string(),
                created_at: now,
                retired_at: None,
            },
            now,
        )
        .await?;
    tracing::info!(kid, alg = alg.as_str(), "new signing key");
    Ok(kid)
}

fn build(rows: &[signing_keys::Model], master: &MasterKey) -> Result<KeySet, KeyringError> {
    let mut verifiers = HashMap::new();
    let mut current = None;
    for row in rows {
        if SigningAlg::parse(&row.alg).is_none() {
            continue;
        }
        let jwk: Value =
            serde_json::from_str(&row.public_jwk).map_err(|e| KeyError(e.to_string()))?;
        let key = Arc::new(keys::public_key(&jwk)?);
        if row.retired_at.is_none() {
            // Rows come oldest first: the newest unretired key signs.
            current = Some(row);
        }
        verifiers.insert(
            row.kid.clone(),
            Verifier {
                key,
                retired_at: row.retired_at,
            },
        );
    }
    let row = current.ok_or(KeyringError::NoKey)?;
    let alg = SigningAlg::parse(&row.alg).ok_or(KeyringError::NoKey)?;
    let pkcs8 = master.open(&row.private_key, &context(&row.kid))?;
    let signer = keys::private_key(&row.kid, alg, &pkcs8)?;
    Ok(KeySet {
        version: rows.iter().map(|r| (r.kid.clone(), r.retired_at)).collect(),
        current: Arc::new(signer),
        verifiers,
    })
}
