//! Password hashing: argon2id at OWASP's minimum parameters (19 MiB, two
//! passes, one lane) on a fixed set of hashing threads, one per core, fed by
//! a short queue. A burst of sign-ins waits in the queue (or is told to come
//! back) instead of spawning a thread per request; and each thread hashes
//! in one 19 MiB buffer of its own, allocated once, so memory stays at
//! cores × 19 MiB however many sign-ins come. A new password is first
//! weighed by zxcvbn on the same threads, and refused when easy to guess.

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
    /// A new password is among the first 10^8 guesses a cracker would try
    /// (zxcvbn's estimate); the reason says why.
    #[error("password is too easy to guess: {0}")]
    Guessable(String),
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

/// zxcvbn's score below which a new password is refused. Scores 0 to 2 are
/// passwords a cracker finds within 10^8 guesses: common passwords and
/// their variants, words and names, keyboard walks, repeats, sequences,
/// dates and the user's own email. 3 is "safely unguessable" (zxcvbn's
/// words: moderate protection even against an offline slow-hash attack),
/// the least the crate advises accepting.
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// How much of a password zxcvbn weighs. Its time grows with the square of
/// the length and with the characters its l33t matcher must try both ways
/// (`4@8(6<{[3!1|0$5+7%2` repeated: 22 ms at 32 characters, 102 ms at 64,
/// 255 ms at its own cap of 100; `cargo bench --bench passwords`), so a
/// caller could otherwise hold a hashing thread far longer than a hash
/// takes. A password whose first 32 characters are easy to guess is
/// refused; a longer one is strong if they are.
const WEIGHED_CHARS: usize = 32;

/// Why zxcvbn would refuse `password` as new, if it would. `context` holds
/// words an attacker would try for this user (the email and its parts).
pub fn guessable(password: &str, context: &[&str]) -> Option<String> {
    let weighed = match password.char_indices().nth(WEIGHED_CHARS) {
        Some((end, _)) => &password[..end],
        None => password,
    };
    let estimate = zxcvbn::zxcvbn(weighed, context);
    if estimate.score() >= MIN_SCORE {
        return None;
    }
    // zxcvbn's warning (what is wrong) and suggestions (what helps).
    Some(estimate.feedback().map_or_else(
        || "Add another word or two. Uncommon words are better.".to_owned(),
        |f| f.to_string().trim().to_owned(),
    ))
}

/// Hashes a new password of the user with this email with argon2id, first
/// refusing one that is too easy to guess (`HashError::Guessable`); both
/// run on a hashing thread.
pub async fn hash_new(password: String, email: &str) -> Result<String> {
    let words = email_words(email);
    run(move || {
        let context: Vec<&str> = words.iter().map(String::as_str).collect();
        match guessable(&password, &context) {
            Some(reason) => Err(HashError::Guessable(reason)),
            None => hash_here(&password).map_err(HashError::Failed),
        }
    })
    .await?
}

/// Words an attacker would try first for a user with this email: the
/// address, its local part, the words in it (`ann.lee+x` gives `ann`, `lee`
/// and `x`) and its domain's labels.
pub fn email_words(email: &str) -> Vec<String> {
    let mut words = vec![email.to_owned()];
    if let Some((local, domain)) = email.rsplit_once('@') {
        words.push(local.to_owned());
        words.extend(
            local
                .split(|c: char| !c.is_alphanumeric())
                .chain(domain.split('.'))
                .filter(|w| !w.is_empty())
                .map(str::to_owned),
        );
    }
    words
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
        let h = hash_new("correct horse".into(), "a@b.c").await.unwrap();
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

    #[test]
    fn easy_guesses_are_refused_with_a_reason() {
        let words = email_words("zorblax.quintrell@example.com");
        let context: Vec<&str> = words.iter().map(String::as_str).collect();
        for (password, reason) in [
            ("password", "top-10 common password"),
            ("12345678", "top-10 common password"),
            ("Password123!", "similar to a commonly used password"),
            ("qwertyuiop", "top-100 common password"),
            ("abcdefghijk", "Sequences like abc"),
            ("aaaaaaaaaaaa", "Repeats like \"aaa\""),
            ("zorblax.quintrell", "Add another word or two"),
            ("quintrell1985", "Add another word or two"),
        ] {
            let refused = guessable(password, &context);
            assert!(
                refused.as_deref().is_some_and(|r| r.contains(reason)),
                "{password}: {refused:?}"
            );
        }
        // The same words are fine for another user, and good passwords for
        // anyone, in any script.
        assert_eq!(guessable("zorblax.quintrell", &[]), None);
        for password in [
            "correct horse battery",
            "another fine password",
            "a long enough password",
            "çok güzel bir parola",
        ] {
            assert_eq!(guessable(password, &context), None, "{password}");
        }
    }

    #[test]
    fn the_first_32_characters_are_weighed() {
        // Weak first 32 characters make a weak password, whatever follows;
        // strong ones a strong one.
        let weak_start = format!("{}{}", "password".repeat(4), "Xq7#mVz9!kLp2@wR");
        assert!(guessable(&weak_start, &[]).is_some());
        let strong_start = format!("{}{}", "correct horse battery staple yes", "password");
        assert_eq!(guessable(&strong_start, &[]), None);
    }

    #[tokio::test]
    async fn a_guessable_password_is_not_hashed() {
        let err = hash_new("iloveyou".into(), "a@b.c").await.unwrap_err();
        assert!(matches!(err, HashError::Guessable(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("password is too easy to guess: ")
        );
        let h = hash_new("another fine password".into(), "a@b.c")
            .await
            .unwrap();
        assert!(
            verify("another fine password".into(), Some(h))
                .await
                .unwrap()
        );
    }
}
