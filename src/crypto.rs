//! The master key: AES-256-GCM sealing of secrets at rest (TOTP secrets,
//! stored replies, later signing keys and vendor credentials), plus the
//! SHA-256 digests used for API keys.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// Why the master key could not be loaded or a secret not opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The configured key is not 32 bytes of base64.
    #[error("AUTHMUX_MASTER_KEY must be 32 bytes encoded as base64")]
    BadKey,
    /// Reading or writing the key file failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// A sealed value was tampered with or sealed under another key.
    #[error("a sealed value could not be opened (wrong master key or corrupted data)")]
    Open,
}

/// The key that seals secrets at rest.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// A subkey for keyed fingerprints (HMAC-SHA256), derived from the
    /// master key so that a fingerprint can't be reversed with a dictionary
    /// by anyone who lacks the master key.
    fingerprint: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Parses a base64 (standard or URL-safe) 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| CryptoError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    /// Uses 32 raw bytes as the key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        use aws_lc_rs::hmac;
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?;
        let derive = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let subkey = hmac::sign(&derive, b"authmux/fingerprint/v1");
        let fingerprint = hmac::Key::new(hmac::HMAC_SHA256, subkey.as_ref());
        Ok(MasterKey {
            cipher,
            fingerprint,
        })
    }

    /// A keyed fingerprint of `data` (hex HMAC-SHA256 under a subkey of the
    /// master key): stable for equal inputs, irreversible without the key.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        hex::encode(aws_lc_rs::hmac::sign(&self.fingerprint, data).as_ref())
    }

    /// A fresh random key.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let encoded = STANDARD.encode(bytes);
        (Self::from_bytes(&bytes).expect("32 bytes"), encoded)
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a new
    /// key. The flag says whether it was created.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), CryptoError> {
        let io = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_private_dir(dir).map_err(io)?;
                }
                let (key, encoded) = Self::generate();
                write_private(path, &encoded).map_err(io)?;
                Ok((key, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plain`, binding it to `context` (e.g. the row it lives in).
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

/// Creates `dir` (and its parents) if missing and restricts it to its
/// owner (0700).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    make_private(dir, 0o700)
}

/// Sets the permission bits of `path` (owner-only modes) on Unix.
#[cfg(unix)]
pub fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Permission bits are Unix's; elsewhere this does nothing.
#[cfg(not(unix))]
pub fn make_private(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `n` random bytes as URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let (key, _) = MasterKey::generate();
        let sealed = key.seal(b"secret", b"row-1");
        assert_ne!(&sealed[NONCE_LEN..], b"secret");
        assert_eq!(key.open(&sealed, b"row-1").unwrap(), b"secret");
        assert!(matches!(
            key.open(&sealed, b"row-2"),
            Err(CryptoError::Open)
        ));
        let (other, _) = MasterKey::generate();
        assert!(matches!(
            other.open(&sealed, b"row-1"),
            Err(CryptoError::Open)
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (k1, created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (k2, created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(!created);
        let sealed = k1.seal(b"x", b"");
        assert_eq!(k2.open(&sealed, b"").unwrap(), b"x");
    }

    #[test]
    fn fingerprints_are_keyed() {
        let (a, _) = MasterKey::generate();
        let (b, _) = MasterKey::generate();
        assert_eq!(a.fingerprint(b"x"), a.fingerprint(b"x"));
        assert_ne!(a.fingerprint(b"x"), a.fingerprint(b"y"));
        assert_ne!(a.fingerprint(b"x"), b.fingerprint(b"x"));
        assert_ne!(a.fingerprint(b"x"), sha256_hex(b"x"));
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
