//! Tokens: signing keys and JWKS (native), a strict JWT verifier, and a
//! JWKS client for other issuers that the vendor adapters reuse.

pub mod cache;
pub mod jwks;
pub mod keyring;
pub mod keys;
pub mod mint;
pub mod verify;

pub use keyring::Keyring;
pub use keys::SigningAlg;
pub use verify::{Claims, Expect, Invalid};
