//! Admin API keys: per organization, made by an Owner or Team Admin from a staff session, with scopes
//! (a subset of the creator's), an optional expiry, rotation with a grace period and revocation.
//!
//! A key reads `lk_admin_` followed by 43 base64url characters (256 bits from the OS CSPRNG): the prefix
//! lets secret scanners recognise a leaked key. It is shown once; the store keeps its keyed hash (HMAC
//! under the master key), so a database dump does not reveal usable keys. Keys never create or change
//! keys: those capabilities are not grantable to them (`Scope::grantable_to_keys`) and need a staff session.

use serde::Serialize;

use super::access::{CreateApiKeys, Granted, ManageApiKeys, Scope};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasDb, HasSecrets};
use crate::error::{Error, Result};
use crate::kernel::ApiKeyId;
use crate::model::orgs::Organization;
use crate::model::staff::ApiKey;

/// What every admin API key starts with.
pub const PREFIX: &str = "lk_admin_";
/// The longest grace period a rotation may give the old secret.
pub const MAX_GRACE_SECS: u64 = 7 * 86_400;
/// The longest expiry a key may be created with.
pub const MAX_EXPIRY_DAYS: u64 = 3650;
/// Last use is written at most this often per key, so a busy key does not turn every read into a write.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// A key and its secret, the one time the secret exists outside the caller.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub secret: String,
}

pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub scopes: &'a [String],
    pub expires_in_days: Option<u64>,
}

fn new_secret() -> String {
    format!("{PREFIX}{}", crypto::random_token())
}

/// Checks requested scope names: known, grantable to keys, and held by the creator (`held`).
pub fn check_scopes(requested: &[String], held: &[Scope]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Err(Error::invalid("scopes", "name at least one scope"));
    }
    let mut names = Vec::new();
    for name in requested {
        let scopes: Vec<Scope> = if name == "all" {
            held.iter()
                .copied()
                .filter(|s| s.grantable_to_keys())
                .collect()
        } else {
            let scope = Scope::parse(name)
                .ok_or_else(|| Error::invalid("scopes", format!("unknown scope {name:?}")))?;
            if !scope.grantable_to_keys() {
                return Err(Error::invalid(
                    "scopes",
                    format!("{name} cannot be given to an API key"),
                ));
            }
            if !held.contains(&scope) {
                return Err(Error::invalid(
                    "scopes",
                    format!("{name} is not among your own capabilities"),
                ));
            }
            vec![scope]
        };
        names.extend(scopes.into_iter().map(|s| s.as_str().to_string()));
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Creates a key; `held` are the creator's own scopes (checked by `grant`, passed to bound the key's).
pub async fn create(
    deps: &(impl HasClock + HasDb + HasSecrets),
    grant: &Granted<CreateApiKeys>,
    held: &[Scope],
    org: &Organization,
    input: NewApiKey<'_>,
) -> Result<IssuedKey> {
    grant.check(org)?;
    let name = crate::orgs::validate_name("name", input.name)?;
    let scopes = check_scopes(input.scopes, held)?;
    if let Some(days) = input.expires_in_days
        && !(1..=MAX_EXPIRY_DAYS).contains(&days)
    {
        return Err(Error::invalid(
            "expires_in_days",
            format!("must be 1 to {MAX_EXPIRY_DAYS}"),
        ));
    }
    let now = deps.now();
    let secret = new_secret();
    let key = ApiKey {
        id: ApiKeyId::generate(),
        org_id: org.id.clone(),
        name,
        scopes,
        secret_hash: deps.secrets().token_hash(&secret),
        previous_hash: None,
        previous_valid_until: None,
        created_by: grant.actor().id.clone().unwrap_or_default(),
        created_at: now,
        expires_at: input.expires_in_days.map(|d| now + d as i64 * 86_400),
        revoked_at: None,
        last_used_at: None,
        last_used_ip: None,
    };
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::ApiKeyCreated)
        .target("api_key", &key.id)
        .change(None, Some(serde_json::to_value(&key).unwrap_or_default()));
    deps.db()
        .tenant(&org.id)
        .create_api_key(&key, &audit)
        .await?;
    Ok(IssuedKey { key, secret })
}

async fn find(deps: &impl HasDb, org: &Organization, id: &ApiKeyId) -> Result<ApiKey> {
    deps.db()
        .tenant(&org.id)
        .api_key(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("API key {id}")))
}

/// A new secret for a live key; the old one keeps working for `grace_secs` (at most 7 days).
/// The caller must hold every scope of the key (`held`): rotating hands out its new secret, so a Team
/// Admin cannot take over an Owner's key with scopes beyond their own.
pub async fn rotate(
    deps: &(impl HasClock + HasDb + HasSecrets),
    grant: &Granted<ManageApiKeys>,
    held: &[Scope],
    org: &Organization,
    id: &ApiKeyId,
    grace_secs: u64,
) -> Result<IssuedKey> {
    grant.check(org)?;
    if grace_secs > MAX_GRACE_SECS {
        return Err(Error::invalid(
            "grace_period_secs",
            format!("must be at most {MAX_GRACE_SECS} seconds (7 days)"),
        ));
    }
    let mut key = find(deps, org, id).await?;
    let beyond = key
        .scopes
        .iter()
        .any(|s| Scope::parse(s).is_none_or(|scope| !held.contains(&scope)));
    if beyond {
        return Err(Error::Forbidden(
            "this key has scopes beyond your own; only someone who holds them all can rotate it"
                .into(),
        ));
    }
    let now = deps.now();
    if !key.usable(now) {
        return Err(Error::Conflict(format!(
            "API key {id} is revoked or expired"
        )));
    }
    let secret = new_secret();
    let hash = deps.secrets().token_hash(&secret);
    let until = now + grace_secs as i64;
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::ApiKeyRotated)
        .target("api_key", &key.id)
        .change(
            None,
            Some(serde_json::json!({"previous_valid_until": until})),
        );
    if !deps
        .db()
        .tenant(&org.id)
        .rotate_api_key(id, &hash, until, &audit)
        .await?
    {
        return Err(Error::Conflict(format!("API key {id} is revoked")));
    }
    key.previous_hash = Some(std::mem::replace(&mut key.secret_hash, hash));
    key.previous_valid_until = Some(until);
    Ok(IssuedKey { key, secret })
}

/// Revokes a key (and any previous secret still in its grace period) at once.
pub async fn revoke(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageApiKeys>,
    org: &Organization,
    id: &ApiKeyId,
) -> Result<ApiKey> {
    grant.check(org)?;
    let mut key = find(deps, org, id).await?;
    let now = deps.now();
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::ApiKeyRevoked)
        .target("api_key", &key.id)
        .change(
            Some(serde_json::json!({"revoked_at": key.revoked_at})),
            Some(serde_json::json!({"revoked_at": now})),
        );
    if deps
        .db()
        .tenant(&org.id)
        .revoke_api_key(id, now, &audit)
        .await?
    {
        key.revoked_at = Some(now);
    }
    Ok(key)
}

/// Records a read made with `key` in its organization's audit log, with the request line
/// (`GET /api/v1/...?query`), so every request a key makes is attributed to it (changes are recorded
/// by the operations that make them; reads of the audit log also as `audit.read`).
pub async fn record_read(
    writer: &crate::audit::writer::AuditWriter,
    key: &ApiKey,
    ip: Option<String>,
    user_agent: Option<String>,
    request: &str,
) -> Result<()> {
    let actor = crate::audit::Actor::api_key(&key.id, ip, user_agent);
    let request: String = request.chars().take(512).collect();
    let event =
        NewAuditEvent::new(&key.org_id, &actor, Action::ApiKeyRead).target("request", &request);
    // Through the group-commit writer: concurrent reads share one transaction and one disk sync, and
    // each still waits for its event to be committed.
    writer.record(event).await
}

/// The usable key a presented secret belongs to (current secret, or the previous one within its grace
/// period), its last use noted; `None` for anything else. The lookup is by keyed hash, so it reveals
/// nothing about stored keys through timing.
pub async fn authenticate(
    deps: &(impl HasClock + HasDb + HasSecrets),
    presented: &str,
    ip: Option<&str>,
) -> Result<Option<ApiKey>> {
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let now = deps.now();
    let hash = deps.secrets().token_hash(presented);
    let Some(key) = deps.db().system().api_key_by_hash(&hash, now).await? else {
        return Ok(None);
    };
    if !key.usable(now) {
        return Ok(None);
    }
    if key
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USED_RESOLUTION_SECS)
    {
        deps.db()
            .tenant(&key.org_id)
            .touch_api_key(&key.id, now, ip)
            .await?;
    }
    Ok(Some(key))
}
