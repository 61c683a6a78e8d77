//! Password hashing on a bounded pool.
//!
//! Two schemes, chosen by configuration (`password_hash`); both are recognised when verifying, and a hash
//! in the other scheme (or with other parameters) is reported as needing a re-hash, which sign-in does.
//!
//! - `bcrypt-hmac$…`: bcrypt reads at most 72 bytes, so every password is first reduced with HMAC-SHA-256
//!   under a fixed, public label and base64-encoded (44 bytes): no byte of a long password is silently
//!   ignored, and a leaked unsalted SHA-256 from elsewhere cannot be fed in directly ("password shucking").
//! - `argon2id$…`: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane) over the password itself
//!   (no length limit), as a PHC string.
//!
//! Hashing is CPU-bound and deliberately slow. It runs on the blocking pool behind a semaphore sized by
//! configuration, and at most `queue` further requests may wait for it: beyond that a request is refused at
//! once with [`PasswordError::Busy`] (the HTTP edge answers 503 with `Retry-After`), so a login flood
//! neither starves token, JWKS or introspection traffic nor piles up unbounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::PasswordScheme;

const BCRYPT_PREFIX: &str = "bcrypt-hmac$";
const ARGON2_PREFIX: &str = "argon2id$";
const PREHASH_LABEL: &[u8] = b"latchkey password prehash v1";

/// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 degree of parallelism.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_LANES: u32 = 1;

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
    /// Requests holding or waiting for a permit.
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    scheme: PasswordScheme,
    cost: u32,
    /// A hash of a fixed password under this hasher's scheme, for [`Self::verify_dummy`].
    dummy: Arc<std::sync::OnceLock<String>>,
}

/// Releases an in-flight slot when the request finishes, however it finishes.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHasher {
    /// `workers` hashes at once, at most `queue` more waiting; new hashes use `scheme` (bcrypt at `cost`).
    pub fn new(workers: usize, queue: usize, scheme: PasswordScheme, cost: u32) -> Self {
        let workers = workers.max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity: workers + queue,
            scheme,
            cost,
            dummy: Arc::new(std::sync::OnceLock::new()),
        }
    }

    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_string();
        let (scheme, cost) = (self.scheme, self.cost);
        self.run(move || hash_now(&password, scheme, cost)).await
    }

    /// Checks `password` against `stored`. Also reports whether the hash was made under another policy
    /// (the other scheme, a different cost or parameters) so the caller can re-hash after a successful login.
    /// A wrong password against a bcrypt hash of a lower cost than the configured one costs as much as
    /// against a current hash (see [`pad_to_current_cost`]), inside the same pool slot.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verified, PasswordError> {
        let password = password.to_string();
        let stored = stored.to_string();
        let (scheme, cost) = (self.scheme, self.cost);
        self.run(move || {
            let ok = verify_now(&password, &stored)?;
            if !ok {
                pad_to_current_cost(&password, &stored, scheme, cost);
            }
            Ok(Verified {
                ok,
                needs_rehash: ok && !is_current(&stored, scheme, cost),
            })
        })
        .await
    }

    /// Spends the same time as a real verification under the configured scheme; used when the account does
    /// not exist so that timing does not reveal which emails are registered.
    /// Makes the dummy hash now, in the background, so the first unknown-address sign-in after start does
    /// not pay for two hashes (which would make it measurably slower than a registered one).
    pub fn warm_up(&self) {
        let (scheme, cost, dummy) = (self.scheme, self.cost, self.dummy.clone());
        tokio::task::spawn_blocking(move || {
            dummy.get_or_init(|| {
                hash_now("latchkey dummy password", scheme, cost).unwrap_or_default()
            });
        });
    }

    /// Refused with [`PasswordError::Busy`] exactly like a real verification, so a full pool answers
    /// registered and unknown addresses alike.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), PasswordError> {
        let password = password.to_string();
        let (scheme, cost, dummy) = (self.scheme, self.cost, self.dummy.clone());
        self.run(move || {
            // Made once, on the pool like every hash, then reused.
            let stored = dummy.get_or_init(|| {
                hash_now("latchkey dummy password", scheme, cost).unwrap_or_default()
            });
            let _ = verify_now(&password, stored);
            Ok(())
        })
        .await
    }

    /// Hashes a short-lived code (email sign-in codes) with bcrypt at `cost`, on the same bounded pool.
    pub async fn hash_code(&self, code: &str, cost: u32) -> Result<String, PasswordError> {
        let code = code.to_string();
        self.run(move || {
            bcrypt::hash(code, cost).map_err(|e| PasswordError::Hashing(e.to_string()))
        })
        .await
    }

    /// Checks a code against a hash from [`Self::hash_code`].
    pub async fn verify_code(&self, code: &str, stored: &str) -> Result<bool, PasswordError> {
        let (code, stored) = (code.to_string(), stored.to_string());
        self.run(move || Ok(bcrypt::verify(code, &stored).unwrap_or(false)))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        // Admission first: a full pool and queue refuses now rather than making the caller wait.
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(PasswordError::Busy);
        }
        let _slot = Slot(self.in_flight.clone());
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

fn hash_now(password: &str, scheme: PasswordScheme, cost: u32) -> Result<String, PasswordError> {
    match scheme {
        PasswordScheme::Bcrypt => bcrypt::hash(prehash(password), cost)
            .map(|h| format!("{BCRYPT_PREFIX}{h}"))
            .map_err(|e| PasswordError::Hashing(e.to_string())),
        PasswordScheme::Argon2id => {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| format!("{ARGON2_PREFIX}{h}"))
                .map_err(|e| PasswordError::Hashing(e.to_string()))
        }
    }
}

fn verify_now(password: &str, stored: &str) -> Result<bool, PasswordError> {
    if let Some(bcrypt_hash) = stored.strip_prefix(BCRYPT_PREFIX) {
        return bcrypt::verify(prehash(password), bcrypt_hash)
            .map_err(|_| PasswordError::UnknownFormat);
    }
    if let Some(phc) = stored.strip_prefix(ARGON2_PREFIX) {
        let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::UnknownFormat)?;
        // The parameters come from the stored hash, so older parameters still verify.
        return Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok());
    }
    Err(PasswordError::UnknownFormat)
}

/// A syntactically valid bcrypt hash (of nothing anyone types) whose cost digits are replaced to make
/// padding work of a chosen cost.
const PADDING_BCRYPT: &str = "$2b$04$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";

/// The cost of a `bcrypt-hmac$` hash.
fn bcrypt_cost(stored: &str) -> Option<u32> {
    stored
        .strip_prefix(BCRYPT_PREFIX)
        .and_then(|h| h.get(4..6))
        .and_then(|c| c.parse::<u32>().ok())
}

/// After a wrong password against a bcrypt hash of a lower cost than the configured one (users who have
/// not signed in since the cost was raised), does the work that is missing, so a wrong password costs
/// what it costs against a current hash, and what an unknown address costs: bcrypt's work doubles with
/// each cost step, so verifications at the stored cost, stored+1, …, current−1 add up to exactly one
/// more at the current cost less the one already done (2^c + 2^(c+1) + … + 2^(n−1) = 2^n − 2^c).
/// Without this, such users answered a wrong password in a quarter of the time after a raise from 10 to
/// 12, which told registered addresses from unknown ones.
fn pad_to_current_cost(password: &str, stored: &str, scheme: PasswordScheme, cost: u32) {
    if scheme != PasswordScheme::Bcrypt {
        return;
    }
    let Some(stored_cost) = bcrypt_cost(stored) else {
        return;
    };
    for step in stored_cost..cost {
        let padding = format!("{BCRYPT_PREFIX}$2b${step:02}{}", &PADDING_BCRYPT[6..]);
        let _ = verify_now(password, &padding);
    }
}

/// Whether `stored` was made with the configured scheme and parameters.
fn is_current(stored: &str, scheme: PasswordScheme, cost: u32) -> bool {
    match scheme {
        PasswordScheme::Bcrypt => bcrypt_cost(stored) == Some(cost),
        PasswordScheme::Argon2id => stored
            .strip_prefix(ARGON2_PREFIX)
            .and_then(|phc| PasswordHash::new(phc).ok())
            .and_then(|h| Params::try_from(&h).ok())
            .is_some_and(|p| {
                p.m_cost() == ARGON2_MEMORY_KIB
                    && p.t_cost() == ARGON2_ITERATIONS
                    && p.p_cost() == ARGON2_LANES
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcrypt_hasher(cost: u32) -> PasswordHasher {
        PasswordHasher::new(2, 4, PasswordScheme::Bcrypt, cost)
    }

    #[tokio::test]
    async fn hash_then_verify_in_both_schemes() {
        for hasher in [
            bcrypt_hasher(4),
            PasswordHasher::new(2, 4, PasswordScheme::Argon2id, 0),
        ] {
            let stored = hasher.hash("correct horse battery staple").await.unwrap();
            let right = hasher
                .verify("correct horse battery staple", &stored)
                .await
                .unwrap();
            assert_eq!(
                right,
                Verified {
                    ok: true,
                    needs_rehash: false
                }
            );
            assert!(
                !hasher
                    .verify("correct horse battery stapler", &stored)
                    .await
                    .unwrap()
                    .ok
            );
        }
        let stored = bcrypt_hasher(4).hash("pw").await.unwrap();
        assert!(stored.starts_with("bcrypt-hmac$$2b$04$"));
        let stored = PasswordHasher::new(1, 0, PasswordScheme::Argon2id, 0)
            .hash("pw")
            .await
            .unwrap();
        assert!(stored.starts_with("argon2id$$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[tokio::test]
    async fn bytes_past_72_still_count() {
        for hasher in [
            bcrypt_hasher(4),
            PasswordHasher::new(1, 0, PasswordScheme::Argon2id, 0),
        ] {
            let long = "a".repeat(100);
            let stored = hasher.hash(&long).await.unwrap();
            let mut other = "a".repeat(99);
            other.push('b');
            assert!(!hasher.verify(&other, &stored).await.unwrap().ok);
            assert!(hasher.verify(&long, &stored).await.unwrap().ok);
        }
    }

    #[tokio::test]
    async fn another_cost_or_scheme_asks_for_rehash() {
        let old = bcrypt_hasher(4).hash("pw-123456789").await.unwrap();
        let v = bcrypt_hasher(5).verify("pw-123456789", &old).await.unwrap();
        assert!(v.ok && v.needs_rehash);
        let argon = PasswordHasher::new(1, 0, PasswordScheme::Argon2id, 0);
        let v = argon.verify("pw-123456789", &old).await.unwrap();
        assert!(v.ok && v.needs_rehash, "bcrypt hashes move to argon2id");
        let new = argon.hash("pw-123456789").await.unwrap();
        let v = bcrypt_hasher(4).verify("pw-123456789", &new).await.unwrap();
        assert!(v.ok && v.needs_rehash, "and back");
        assert!(matches!(
            argon.verify("x", "md5$abc").await,
            Err(PasswordError::UnknownFormat)
        ));
    }

    #[test]
    fn padding_hashes_are_valid_bcrypt_of_each_cost_and_never_match() {
        for cost in 4..=6 {
            let padding = format!("{BCRYPT_PREFIX}$2b${cost:02}{}", &PADDING_BCRYPT[6..]);
            assert_eq!(bcrypt_cost(&padding), Some(cost));
            assert!(matches!(verify_now("anything", &padding), Ok(false)));
        }
    }

    #[tokio::test]
    async fn a_wrong_password_against_a_lower_cost_hash_still_verifies_right_ones() {
        let old = bcrypt_hasher(4).hash("pw-123456789").await.unwrap();
        let raised = bcrypt_hasher(6);
        assert!(!raised.verify("wrong", &old).await.unwrap().ok);
        assert!(raised.verify("pw-123456789", &old).await.unwrap().ok);
    }

    #[tokio::test]
    async fn warm_up_makes_the_dummy_hash_ahead_of_the_first_unknown_address() {
        let hasher = bcrypt_hasher(4);
        assert!(hasher.dummy.get().is_none());
        hasher.warm_up();
        for _ in 0..500 {
            if hasher.dummy.get().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let dummy = hasher.dummy.get().expect("made in the background");
        assert!(dummy.starts_with("bcrypt-hmac$$2b$04$"));
        assert!(hasher.verify_dummy("anything").await.is_ok());
    }

    #[tokio::test]
    async fn a_full_pool_and_queue_refuses_at_once() {
        let hasher = PasswordHasher::new(1, 1, PasswordScheme::Bcrypt, 4);
        let gate = Arc::new(std::sync::Barrier::new(2));
        let held = {
            let (hasher, gate) = (hasher.clone(), gate.clone());
            tokio::spawn(async move {
                hasher
                    .run(move || {
                        gate.wait();
                        Ok(())
                    })
                    .await
            })
        };
        // Wait until the first request holds the only worker.
        while hasher.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let queued = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.run(|| Ok(())).await })
        };
        while hasher.in_flight.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(hasher.hash("x").await, Err(PasswordError::Busy)),
            "the third request finds the worker and the queue full"
        );
        gate.wait();
        held.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert!(hasher.hash("x").await.is_ok(), "and capacity comes back");
        assert_eq!(hasher.in_flight.load(Ordering::Acquire), 0);
    }
}
