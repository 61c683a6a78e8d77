//! Access tokens whose signature and claims already checked out, looked up by the SHA-256 of the token.
//!
//! A resource server introspects the same bearer token on every call it serves, and the RSA verification
//! is most of that work, yet its answer cannot change for the same string. Everything that can change is
//! still checked on every request by the caller: expiry, the key still being published, the `jti` or the
//! grant being revoked, the user's session_version. Only tokens that passed verification go in, so a
//! forged token never reaches the cache. The key covers the organization too, so a token verified by one
//! organization is a miss at another.
//!
//! Bounded by two generations: entries go into the newer one; when it is full the older one is dropped
//! and the newer one takes its place, so recently used tokens stay and memory stays under `capacity`
//! entries. A hit in the older generation moves the entry to the newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::claims::AccessClaims;
use crate::kernel::OrgId;

pub type TokenKey = [u8; 32];

pub struct Verified {
    pub kid: String,
    pub exp: i64,
    pub claims: Arc<AccessClaims>,
}

pub struct VerifiedTokens {
    /// Entries per generation; zero turns the cache off.
    generation_size: usize,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    newer: HashMap<TokenKey, Arc<Verified>>,
    older: HashMap<TokenKey, Arc<Verified>>,
}

impl VerifiedTokens {
    /// Holds at most `capacity` tokens; zero keeps nothing.
    pub fn new(capacity: usize) -> Self {
        Self {
            generation_size: capacity / 2,
            generations: Mutex::new(Generations::default()),
        }
    }

    /// The cache key of `token` as verified by `org`.
    pub fn key(org: &OrgId, token: &str) -> TokenKey {
        let mut digest = Sha256::new();
        digest.update(org.as_bytes());
        digest.update([0]);
        digest.update(token.as_bytes());
        digest.finalize().into()
    }

    pub fn get(&self, key: &TokenKey) -> Option<Arc<Verified>> {
        if self.generation_size == 0 {
            return None;
        }
        let mut generations = self.generations.lock().ok()?;
        if let Some(hit) = generations.newer.get(key) {
            return Some(hit.clone());
        }
        let hit = generations.older.remove(key)?;
        generations.insert(self.generation_size, *key, hit.clone());
        Some(hit)
    }

    pub fn put(&self, key: TokenKey, verified: Verified) {
        if self.generation_size == 0 {
            return;
        }
        if let Ok(mut generations) = self.generations.lock() {
            generations.insert(self.generation_size, key, Arc::new(verified));
        }
    }

    pub fn len(&self) -> usize {
        self.generations
            .lock()
            .map(|g| g.newer.len() + g.older.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Generations {
    fn insert(&mut self, generation_size: usize, key: TokenKey, value: Arc<Verified>) {
        if self.newer.len() >= generation_size && !self.newer.contains_key(&key) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::from("org_1")
    }

    #[test]
    fn a_token_verified_by_one_organization_is_a_miss_at_another() {
        let cache = VerifiedTokens::new(10);
        cache.put(VerifiedTokens::key(&org(), "t"), entry(1));
        assert!(cache.get(&VerifiedTokens::key(&org(), "t")).is_some());
        assert!(
            cache
                .get(&VerifiedTokens::key(&OrgId::from("org_2"), "t"))
                .is_none()
        );
    }

    fn entry(n: i64) -> Verified {
        Verified {
            kid: "k".into(),
            exp: n,
            claims: Arc::new(AccessClaims::default()),
        }
    }

    #[test]
    fn keeps_recent_tokens_within_capacity() {
        let cache = VerifiedTokens::new(4);
        for n in 0..10 {
            cache.put(VerifiedTokens::key(&org(), &format!("t{n}")), entry(n));
            assert!(cache.len() <= 4);
        }
        assert!(cache.get(&VerifiedTokens::key(&org(), "t0")).is_none());
        assert_eq!(
            cache.get(&VerifiedTokens::key(&org(), "t9")).unwrap().exp,
            9
        );
        assert_eq!(
            cache.get(&VerifiedTokens::key(&org(), "t8")).unwrap().exp,
            8
        );
    }

    #[test]
    fn a_hit_in_the_older_generation_survives_the_next_turnover() {
        let cache = VerifiedTokens::new(4);
        cache.put(VerifiedTokens::key(&org(), "a"), entry(1));
        cache.put(VerifiedTokens::key(&org(), "b"), entry(2));
        cache.put(VerifiedTokens::key(&org(), "c"), entry(3)); // a and b move to the older generation
        assert!(cache.get(&VerifiedTokens::key(&org(), "a")).is_some()); // a comes back to the newer one
        cache.put(VerifiedTokens::key(&org(), "d"), entry(4)); // older (b) is dropped
        assert!(cache.get(&VerifiedTokens::key(&org(), "b")).is_none());
        assert!(cache.get(&VerifiedTokens::key(&org(), "a")).is_some());
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let cache = VerifiedTokens::new(0);
        cache.put(VerifiedTokens::key(&org(), "a"), entry(1));
        assert!(cache.get(&VerifiedTokens::key(&org(), "a")).is_none());
        assert!(cache.is_empty());
    }
}
