//! Cryptographic building blocks. Everything here delegates to well-kept crates; nothing is hand-rolled.

pub mod master_key;
pub mod password;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;

pub use master_key::{AuditKeys, MasterKey, SecretBox};

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A 256-bit secret from the OS CSPRNG, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(32))
}

/// A random identifier with a readable prefix (`org_…`, `usr_…`): 128 bits, lower-case hex.
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(random_bytes(16)))
}

/// Constant-time equality for secrets of any length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
