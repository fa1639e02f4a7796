//! Password hashing: argon2id at OWASP's minimum parameters (19 MiB, two
//! passes, one lane) on a pool bounded to the cores, so a burst of sign-ins
//! waits in a short queue (or is told to come back) instead of spawning a
//! hashing thread, and its 19 MiB, per request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::{Error, ErrorCode, Result};

/// OWASP's minimum for argon2id: m = 19 MiB, t = 2, p = 1.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
/// Hashes that may wait for a core before callers are told to retry.
const MAX_QUEUED: usize = 64;

struct Pool {
    running: Arc<Semaphore>,
    /// Hashes running or waiting.
    admitted: AtomicUsize,
    limit: usize,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Pool {
        running: Arc::new(Semaphore::new(cores)),
        admitted: AtomicUsize::new(0),
        limit: cores + MAX_QUEUED,
    }
});

/// A hash of a random password with the same parameters, checked when the
/// user has no password so that a wrong guess takes as long either way.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(crate::crypto::random_token(16).as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Leaves the pool's admission count when dropped.
struct Admitted;

impl Drop for Admitted {
    fn drop(&mut self) {
        POOL.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `work` on a blocking thread once a core is free; `SERVICE_BUSY`
/// with `Retry-After` when the queue is full.
async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    if POOL.admitted.fetch_add(1, Ordering::AcqRel) >= POOL.limit {
        POOL.admitted.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::new(
            ErrorCode::ServiceBusy,
            "too many password checks are queued; retry shortly",
        )
        .retry_after(1));
    }
    let admitted = Admitted;
    let permit = POOL
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(Error::internal)?;
    // The permit goes with the work: a caller that goes away mid-hash
    // does not free the core before the hash is done.
    tokio::task::spawn_blocking(move || {
        let out = work();
        drop((permit, admitted));
        out
    })
    .await
    .map_err(Error::internal)
}

/// Hashes a password with argon2id.
pub async fn hash(password: String) -> Result<String> {
    run(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await?
    .map_err(Error::internal)
}

/// Checks a password against a stored hash; with no hash, checks it
/// against a dummy one (and answers false) so the time taken does not tell
/// whether the user has a password.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool> {
    let has_hash = hash.is_some();
    let ok = run(move || {
        let stored = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let parsed = PasswordHash::new(&stored).map_err(|e| e.to_string())?;
        Ok::<_, String>(
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
        )
    })
    .await?
    .map_err(Error::internal)?;
    Ok(ok && has_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
    }
}
