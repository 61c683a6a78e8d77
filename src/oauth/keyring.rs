//! Signing keys in memory: per organization, a signer per algorithm, verifiers by `kid`, and the JWKS
//! document pre-rendered so the JWKS endpoint answers from memory.
//!
//! Entries are reloaded from the database after `REFRESH` (so a rotation done by another instance or the
//! CLI is picked up) and at once when a token names a `kid` we do not know yet.

use crate::deps::{HasClock, HasDb, HasSecrets};
use crate::kernel::OrgId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use josekit::jwk::Jwk;
use josekit::jws::{JwsSigner, JwsVerifier};

use crate::error::{Error, Result};
use crate::model::keys::{KeyState, SigningKeyRecord};

/// Seconds, by the injected clock, before cached keys are read again.
const REFRESH_SECS: i64 = 30;
/// An unknown `kid` triggers at most one reload per organization in this window, so forged tokens with
/// random kids cannot turn into a database flood.
const UNKNOWN_KID_RELOAD_GAP_SECS: i64 = 5;

pub struct ActiveSigner {
    pub kid: String,
    pub signer: Box<dyn JwsSigner>,
}

pub struct OrgKeys {
    pub signers: HashMap<String, ActiveSigner>,
    pub verifiers: HashMap<String, Box<dyn JwsVerifier>>,
    /// `{"keys": [...]}`: public keys only.
    pub jwks: String,
    /// When these were read, by the injected clock.
    loaded_at: i64,
}

impl OrgKeys {
    pub fn signer(&self, alg: &str) -> Option<&ActiveSigner> {
        self.signers.get(alg)
    }
}

#[derive(Default)]
pub struct KeyRing {
    orgs: RwLock<HashMap<String, Arc<OrgKeys>>>,
}

fn verifier_for(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    Some(match alg {
        "RS256" => Box::new(super::rs256::Rs256Verifier::from_jwk(jwk).ok()?),
        "ES256" => Box::new(josekit::jws::ES256.verifier_from_jwk(jwk).ok()?),
        "EdDSA" => Box::new(josekit::jws::EdDSA.verifier_from_jwk(jwk).ok()?),
        _ => return None,
    })
}

fn signer_for(alg: &str, der: &[u8], kid: &str) -> Option<Box<dyn JwsSigner>> {
    Some(match alg {
        "RS256" => Box::new(super::rs256::Rs256Signer::from_der(der, kid).ok()?),
        "ES256" => {
            let mut s = josekit::jws::ES256.signer_from_der(der).ok()?;
            s.set_key_id(kid);
            Box::new(s)
        }
        "EdDSA" => {
            let mut s = josekit::jws::EdDSA.signer_from_der(der).ok()?;
            s.set_key_id(kid);
            Box::new(s)
        }
        _ => return None,
    })
}

/// Builds the in-memory form of an organization's keys. Keys past their publication window are dropped.
pub fn build(deps: &impl HasSecrets, records: &[SigningKeyRecord], now: i64) -> Result<OrgKeys> {
    let mut signers = HashMap::new();
    let mut verifiers = HashMap::new();
    let mut published = Vec::new();
    for record in records {
        if record.state == KeyState::Retired
            && record.publish_until.is_some_and(|until| until < now)
        {
            continue;
        }
        let jwk = Jwk::from_bytes(record.public_jwk.as_bytes()).map_err(|e| {
            Error::Internal(format!(
                "signing key {} has a bad public JWK: {e}",
                record.kid
            ))
        })?;
        let verifier = verifier_for(&record.alg, &jwk)
            .ok_or_else(|| Error::Internal(format!("signing key {} cannot verify", record.kid)))?;
        verifiers.insert(record.kid.to_string(), verifier);
        published.push(serde_json::Value::Object(jwk.as_ref().clone()));
        if record.state == KeyState::Active {
            let der = deps
                .secrets()
                .open(&record.kid, &record.private_key_sealed)
                .map_err(|e| Error::Internal(format!("signing key {}: {e}", record.kid)))?;
            let signer = signer_for(&record.alg, &der, &record.kid).ok_or_else(|| {
                Error::Internal(format!("signing key {} cannot sign", record.kid))
            })?;
            signers.insert(
                record.alg.clone(),
                ActiveSigner {
                    kid: record.kid.to_string(),
                    signer,
                },
            );
        }
    }
    let jwks = serde_json::json!({ "keys": published }).to_string();
    Ok(OrgKeys {
        signers,
        verifiers,
        jwks,
        loaded_at: now,
    })
}

impl KeyRing {
    /// The organization's keys, from memory when fresh.
    pub async fn get(
        &self,
        deps: &(impl HasClock + HasDb + HasSecrets),
        org_id: &OrgId,
    ) -> Result<Arc<OrgKeys>> {
        if let Some(keys) = self.cached(org_id)
            && deps.now() - keys.loaded_at < REFRESH_SECS
        {
            return Ok(keys);
        }
        self.reload(deps, org_id).await
    }

    /// The keys, reloaded once if there is no active signer for `alg` yet (an application that just
    /// switched algorithm, registered by another process).
    pub async fn get_for_alg(
        &self,
        deps: &(impl HasClock + HasDb + HasSecrets),
        org_id: &OrgId,
        alg: &str,
    ) -> Result<Arc<OrgKeys>> {
        let keys = self.get(deps, org_id).await?;
        if keys.signer(alg).is_some() {
            return Ok(keys);
        }
        self.reload(deps, org_id).await
    }

    /// Reloads when `kid` is unknown, at most once per `UNKNOWN_KID_RELOAD_GAP_SECS`.
    pub async fn get_with_kid(
        &self,
        deps: &(impl HasClock + HasDb + HasSecrets),
        org_id: &OrgId,
        kid: &str,
    ) -> Result<Arc<OrgKeys>> {
        let keys = self.get(deps, org_id).await?;
        if keys.verifiers.contains_key(kid)
            || deps.now() - keys.loaded_at < UNKNOWN_KID_RELOAD_GAP_SECS
        {
            return Ok(keys);
        }
        self.reload(deps, org_id).await
    }

    fn cached(&self, org_id: &OrgId) -> Option<Arc<OrgKeys>> {
        self.orgs.read().ok()?.get(org_id.as_str()).cloned()
    }

    pub async fn reload(
        &self,
        deps: &(impl HasClock + HasDb + HasSecrets),
        org_id: &OrgId,
    ) -> Result<Arc<OrgKeys>> {
        let records = deps.db().tenant(org_id).signing_keys().await?;
        let keys = Arc::new(build(deps, &records, deps.now())?);
        if let Ok(mut map) = self.orgs.write() {
            map.insert(org_id.to_string(), keys.clone());
        }
        Ok(keys)
    }
}
