//! Token-signing keys: generation, sealing at rest, and rotation.
//!
//! Each organization holds, per algorithm, one `active` key (signs), one `next` key (published in JWKS
//! before it ever signs, so relying parties have cached it by the time it does) and any `retired` keys
//! (published until every token they signed has expired). `rotate` moves next → active → retired and
//! makes a new next key.

pub use crate::model::keys::{KeyState, SigningKeyRecord};

use crate::deps::{HasClock, HasConfig, HasDb, HasSecrets};
use crate::kernel::{KeyId, OrgId};
use josekit::jwk::KeyPair;
use josekit::jwk::alg::ed::EdCurve;
use serde::Serialize;

use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::error::{Error, Result};
use crate::model::orgs::Organization;

/// Generates a key pair for `alg` (RS256: RSA-2048; ES256: P-256; EdDSA: Ed25519) using OpenSSL.
fn generate_key_pair(alg: &str) -> Result<Box<dyn KeyPair>> {
    let pair: Box<dyn KeyPair> = match alg {
        "RS256" => Box::new(
            josekit::jws::RS256
                .generate_key_pair(2048)
                .map_err(internal)?,
        ),
        "ES256" => Box::new(josekit::jws::ES256.generate_key_pair().map_err(internal)?),
        "EdDSA" => Box::new(
            josekit::jws::EdDSA
                .generate_key_pair(EdCurve::Ed25519)
                .map_err(internal)?,
        ),
        other => {
            return Err(Error::invalid(
                "alg",
                format!("unsupported signing algorithm {other}"),
            ));
        }
    };
    Ok(pair)
}

fn internal(e: josekit::JoseError) -> Error {
    Error::Internal(format!("key generation failed: {e}"))
}

/// Makes a new key record; generation runs off the async runtime (RSA key generation takes ~100 ms).
pub async fn generate(
    deps: &impl HasSecrets,
    org_id: &str,
    alg: &str,
    state: KeyState,
    now: i64,
) -> Result<SigningKeyRecord> {
    let alg_owned = alg.to_string();
    let pair = tokio::task::spawn_blocking(move || generate_key_pair(&alg_owned))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let kid = crypto::random_id("key");
    let mut jwk = pair.to_jwk_public_key();
    jwk.set_key_id(&kid);
    jwk.set_algorithm(alg);
    jwk.set_key_use("sig");
    let private_der = pair.to_der_private_key();
    Ok(SigningKeyRecord {
        private_key_sealed: deps.secrets().seal(&kid, &private_der),
        kid: KeyId::from(kid),
        org_id: OrgId::from(org_id),
        alg: alg.to_string(),
        public_jwk: jwk.to_string(),
        state,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        retired_at: None,
        publish_until: None,
    })
}

/// The keys a new organization starts with: an active RS256 key and its published successor.
pub async fn initial_key_pair(
    deps: &impl HasSecrets,
    org_id: &str,
    now: i64,
) -> Result<Vec<SigningKeyRecord>> {
    Ok(vec![
        generate(deps, org_id, "RS256", KeyState::Active, now).await?,
        generate(deps, org_id, "RS256", KeyState::Next, now).await?,
    ])
}

/// How long a retired key stays published: the longest token lifetime plus the JWKS cache lifetime.
pub fn retired_publish_secs(deps: &impl HasConfig) -> i64 {
    let config = deps.config();
    (config.access_token_ttl_secs.max(config.id_token_ttl_secs) + JWKS_MAX_AGE_SECS) as i64
}

/// `Cache-Control: max-age` of the JWKS document.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

#[derive(Debug, Serialize)]
pub struct Rotation {
    pub alg: String,
    pub activated: String,
    pub retired: Option<String>,
    pub next: String,
}

/// Rotates every algorithm the organization signs with.
pub async fn rotate(
    deps: &(impl HasClock + HasConfig + HasDb + HasSecrets),
    actor: &Actor,
    org: &Organization,
) -> Result<Vec<Rotation>> {
    let now = deps.now();
    let existing = deps.db().tenant(&org.id).signing_keys().await?;
    let mut algs: Vec<String> = existing
        .iter()
        .filter(|k| k.state != KeyState::Retired)
        .map(|k| k.alg.clone())
        .collect();
    algs.sort();
    algs.dedup();
    if algs.is_empty() {
        algs.push("RS256".into());
    }
    let mut rotations = Vec::new();
    for alg in algs {
        let current = existing
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Active);
        let next = existing
            .iter()
            .find(|k| k.alg == alg && k.state == KeyState::Next);
        // The key that becomes active must already have been published; if there is none (damaged state),
        // a fresh key is activated rather than leaving the organization unable to sign.
        let mut new_keys = Vec::new();
        let promoted = match next {
            Some(k) => k.kid.clone(),
            None => {
                let k = generate(deps, &org.id, &alg, KeyState::Next, now).await?;
                let kid = k.kid.clone();
                new_keys.push(k);
                kid
            }
        };
        let successor = generate(deps, &org.id, &alg, KeyState::Next, now).await?;
        let rotation = Rotation {
            alg: alg.clone(),
            activated: promoted.to_string(),
            retired: current.map(|k| k.kid.to_string()),
            next: successor.kid.to_string(),
        };
        new_keys.push(successor);
        let audit = NewAuditEvent::new(&org.id, actor, Action::KeysRotated)
            .target("signing_key", &promoted)
            .change(
                current.map(|k| serde_json::json!({"active": k.kid})),
                Some(serde_json::to_value(&rotation).unwrap_or_default()),
            );
        let publish_until = now + retired_publish_secs(deps);
        deps.db()
            .tenant(&org.id)
            .rotate_signing_keys(&alg, &promoted, &new_keys, now, publish_until, &audit)
            .await?;
        rotations.push(rotation);
    }
    Ok(rotations)
}

/// Rotates the keys of every organization whose active key is older than `key_rotation_days`.
pub async fn rotate_due(deps: &(impl HasClock + HasConfig + HasDb + HasSecrets)) -> Result<()> {
    let days = deps.config().key_rotation_days;
    if days == 0 {
        return Ok(());
    }
    let cutoff = deps.now() - (days * 86_400) as i64;
    for org_id in deps
        .db()
        .system()
        .orgs_with_keys_activated_before(cutoff)
        .await?
    {
        // Deleted since the query: nothing to rotate.
        let Some(org) = deps.db().system().org_by_id(&org_id).await? else {
            continue;
        };
        match rotate(deps, &Actor::system(), &org).await {
            Ok(_) => tracing::info!(org = %org.slug, "signing keys rotated on schedule"),
            // Another instance rotated first: nothing to do.
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes sure the organization can sign with `alg`, generating an active and a next key if it has none.
pub async fn ensure_alg(
    deps: &(impl HasClock + HasDb + HasSecrets),
    actor: &Actor,
    org: &Organization,
    alg: &str,
) -> Result<()> {
    let keys = deps.db().tenant(&org.id).signing_keys().await?;
    if keys
        .iter()
        .any(|k| k.alg == alg && k.state == KeyState::Active)
    {
        return Ok(());
    }
    let now = deps.now();
    let new_keys = vec![
        generate(deps, &org.id, alg, KeyState::Active, now).await?,
        generate(deps, &org.id, alg, KeyState::Next, now).await?,
    ];
    let audit = NewAuditEvent::new(&org.id, actor, Action::KeysCreated)
        .target("signing_key", &new_keys[0].kid)
        .change(
            None,
            Some(
                serde_json::json!({"alg": alg, "active": new_keys[0].kid, "next": new_keys[1].kid}),
            ),
        );
    deps.db()
        .tenant(&org.id)
        .add_signing_keys(&new_keys, &audit)
        .await?;
    Ok(())
}
