//! Password hashing on a bounded pool.
//!
//! bcrypt reads at most 72 bytes, so every password is first reduced with HMAC-SHA-256 under a fixed,
//! public label and base64-encoded (44 bytes): no byte of a long password is silently ignored, and a leaked
//! unsalted SHA-256 from elsewhere cannot be fed in directly ("password shucking"). The stored value is
//! `bcrypt-hmac$` followed by the bcrypt string, so other schemes (argon2id) can sit beside it later.
//!
//! Hashing is CPU-bound and deliberately slow. It runs on the blocking pool behind a semaphore sized by
//! configuration, so a login flood queues here instead of starving token, JWKS or introspection traffic.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

const SCHEME_PREFIX: &str = "bcrypt-hmac$";
const PREHASH_LABEL: &[u8] = b"latchkey password prehash v1";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the stored password hash has an unknown format")]
    UnknownFormat,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the password hashing pool is saturated")]
    Busy,
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    cost: u32,
}

impl PasswordHasher {
    pub fn new(workers: usize, cost: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            cost,
        }
    }

    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let cost = self.cost;
        let input = prehash(password);
        self.run(move || {
            bcrypt::hash(input, cost)
                .map(|h| format!("{SCHEME_PREFIX}{h}"))
                .map_err(|e| PasswordError::Hashing(e.to_string()))
        })
        .await
    }

    /// Checks `password` against `stored`. Also reports whether the hash was made under an older policy
    /// (a lower cost) so the caller can re-hash after a successful login.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verified, PasswordError> {
        let bcrypt_hash = stored
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(PasswordError::UnknownFormat)?
            .to_string();
        let input = prehash(password);
        let cost = self.cost;
        self.run(move || {
            let ok =
                bcrypt::verify(input, &bcrypt_hash).map_err(|_| PasswordError::UnknownFormat)?;
            let stored_cost = bcrypt_hash
                .get(4..6)
                .and_then(|c| c.parse::<u32>().ok())
                .unwrap_or(0);
            Ok(Verified {
                ok,
                needs_rehash: ok && stored_cost != cost,
            })
        })
        .await
    }

    /// Spends the same time as a real verification; used when the account does not exist so that timing
    /// does not reveal which emails are registered.
    pub async fn verify_dummy(&self, password: &str) {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let cost = self.cost;
        let dummy = DUMMY
            .get_or_init(|| bcrypt::hash(b"latchkey dummy password", cost).expect("bcrypt hash"))
            .clone();
        let input = prehash(password);
        let _ = self
            .run(move || Ok(bcrypt::verify(input, &dummy).unwrap_or(false)))
            .await;
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Busy)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    pub needs_rehash: bool,
}

fn prehash(password: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(PREHASH_LABEL).expect("any key length");
    mac.update(password.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(2, 4);
        let stored = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(stored.starts_with("bcrypt-hmac$$2b$04$"));
        assert!(
            hasher
                .verify("correct horse battery staple", &stored)
                .await
                .unwrap()
                .ok
        );
        assert!(
            !hasher
                .verify("correct horse battery stapler", &stored)
                .await
                .unwrap()
                .ok
        );
    }

    #[tokio::test]
    async fn bytes_past_72_still_count() {
        let hasher = PasswordHasher::new(1, 4);
        let long = "a".repeat(100);
        let stored = hasher.hash(&long).await.unwrap();
        let mut other = "a".repeat(99);
        other.push('b');
        assert!(!hasher.verify(&other, &stored).await.unwrap().ok);
    }

    #[tokio::test]
    async fn older_cost_asks_for_rehash() {
        let old = PasswordHasher::new(1, 4)
            .hash("pw-123456789")
            .await
            .unwrap();
        let v = PasswordHasher::new(1, 5)
            .verify("pw-123456789", &old)
            .await
            .unwrap();
        assert!(v.ok && v.needs_rehash);
    }
}
