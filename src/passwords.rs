//! Password hashing: argon2id at OWASP's minimum parameters (19 MiB, two
//! passes, one lane) on a fixed set of hashing threads, one per core, fed by
//! a short queue. A burst of sign-ins waits in the queue (or is told to come
//! back) instead of spawning a thread per request; and each thread hashes
//! in one 19 MiB buffer of its own, allocated once, so memory stays at
//! cores × 19 MiB however many sign-ins come.

use std::cell::RefCell;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The hashing queue is full; retry after a second.
    #[error("too many password checks are queued; retry shortly")]
    Busy,
    /// Hashing itself failed (a bug or a corrupt stored hash).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, HashError>;

/// OWASP's minimum for argon2id: m = 19 MiB, t = 2, p = 1.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
/// Hashes that may wait for a thread before callers are told to retry
/// (a queued hash holds only its password: about 2 s of work on two cores).
const MAX_QUEUED: usize = 256;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads' queue.
static POOL: LazyLock<SyncSender<Job>> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = sync_channel::<Job>(MAX_QUEUED);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a password hashing thread");
        }
    }
    tx
});

/// A hash of a random password with the same parameters, checked when the
/// user has no password so that a wrong guess takes as long either way.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_here(&crate::crypto::random_token(16)).unwrap_or_default());

/// The largest memory cost accepted from a stored hash (64 MiB).
const MAX_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// The argon2 working memory of this hashing thread, allocated once
    /// and reused by every hash it computes.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn with_blocks<T>(n: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < n {
            blocks.resize(n, Block::default());
        }
        f(&mut blocks[..n])
    })
}

fn owasp_params() -> Params {
    Params::new(MEMORY_KIB, PASSES, LANES, Some(Params::DEFAULT_OUTPUT_LEN))
        .expect("valid argon2 parameters")
}

/// Hashes on the calling thread, into a PHC string.
fn hash_here(password: &str) -> std::result::Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    let params = owasp_params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_blocks(params.block_count(), |m| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, m)
    })
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Checks a password against a PHC string on the calling thread.
fn verify_here(password: &str, stored: &str) -> std::result::Result<bool, String> {
    let parsed = PasswordHash::new(stored).map_err(|e| e.to_string())?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
        None => Version::V0x13,
    };
    let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    if params.block_count() > MAX_BLOCKS {
        return Err(format!("a stored hash asks for {} KiB", params.m_cost()));
    }
    let expected = parsed.hash.ok_or("the stored hash has no output")?;
    let salt = parsed.salt.ok_or("the stored hash has no salt")?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| e.to_string())?;
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    with_blocks(params.block_count(), |m| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, m)
    })
    .map_err(|e| e.to_string())?;
    // Output's equality is constant-time.
    Ok(Output::new(&out).map_err(|e| e.to_string())? == expected)
}

/// Runs `work` on a hashing thread; `SERVICE_BUSY` with `Retry-After` when
/// the queue is full. A caller that goes away does not cancel a hash
/// already queued, so the threads bound the work either way.
async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    match POOL.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(HashError::Busy);
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(HashError::Failed(
                "the password hashing threads are gone".into(),
            ));
        }
    }
    rx.await.map_err(|e| HashError::Failed(e.to_string()))
}

/// Hashes a password with argon2id.
pub async fn hash(password: String) -> Result<String> {
    run(move || hash_here(&password))
        .await?
        .map_err(|e| HashError::Failed(e.to_string()))
}

/// Checks a password against a stored hash; with no hash, checks it
/// against a dummy one (and answers false) so the time taken does not tell
/// whether the user has a password.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool> {
    let has_hash = hash.is_some();
    let ok = run(move || {
        let stored = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        verify_here(&password, &stored)
    })
    .await?
    .map_err(HashError::Failed)?;
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

    #[test]
    fn hashes_are_standard_phc_strings() {
        use argon2::PasswordVerifier;
        // Made here, checked by the argon2 crate's own verifier, and back.
        let h = hash_here("correct horse").unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        use argon2::PasswordHasher;
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_here("battery staple", &theirs).unwrap());
        assert!(!verify_here("battery stapler", &theirs).unwrap());
    }
}
