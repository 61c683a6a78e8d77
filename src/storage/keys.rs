//! Signing keys: each organization's own, sealed at rest; rotation retires, promotes and publishes at once.

use super::prelude::{KeyId, NewAuditEvent, SigningKeyRecord};
use super::{OrgStore, StoreResult, SystemStore, dispatch};

pub(super) const KEY_COLUMNS: &str = "kid, org_id, alg, private_key, public_jwk, state, created_at, activated_at, retired_at, publish_until";

macro_rules! key_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::keys::KEY_COLUMNS;
            use $crate::storage::prelude::*;
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                fn key_from_row(row: &$row) -> StoreResult<SigningKeyRecord> {
                    let state: String = row.try_get("state")?;
                    Ok(SigningKeyRecord {
                        kid: row.try_get("kid")?,
                        org_id: row.try_get("org_id")?,
                        alg: row.try_get("alg")?,
                        private_key_sealed: row.try_get("private_key")?,
                        public_jwk: row.try_get("public_jwk")?,
                        state: KeyState::parse(&state)
                            .ok_or_else(|| StoreError::Corrupt(format!("signing_keys.state {state:?}")))?,
                        created_at: row.try_get("created_at")?,
                        activated_at: row.try_get("activated_at")?,
                        retired_at: row.try_get("retired_at")?,
                        publish_until: row.try_get("publish_until")?,
                    })
                }

                pub(in crate::storage) async fn insert_key_tx(tx: &mut Tx<'_>, org: &OrgId, key: &SigningKeyRecord) -> StoreResult<()> {
                    belongs(org, &key.org_id, "signing key")?;
                    sqlx::query(&format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
                        .bind(&key.kid)
                        .bind(org)
                        .bind(&key.alg)
                        .bind(&key.private_key_sealed)
                        .bind(&key.public_jwk)
                        .bind(key.state.as_str())
                        .bind(key.created_at)
                        .bind(key.activated_at)
                        .bind(key.retired_at)
                        .bind(key.publish_until)
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| conflict_or(e, "signing key"))?;
                    Ok(())
                }

                pub(in crate::storage) async fn orgs_with_keys_activated_before(&self, cutoff: i64) -> StoreResult<Vec<OrgId>> {
                    let ids = sqlx::query_scalar(
                        "SELECT DISTINCT org_id FROM signing_keys \
                         WHERE state = 'active' AND COALESCE(activated_at, created_at) < $1 ORDER BY org_id",
                    )
                    .bind(cutoff)
                    .fetch_all(self.read_pool())
                    .await?;
                    Ok(ids)
                }

                pub(in crate::storage) async fn signing_keys(&self, org: &OrgId) -> StoreResult<Vec<SigningKeyRecord>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE org_id = $1 ORDER BY created_at, kid"
                    ))
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::key_from_row).collect()
                }

                pub(in crate::storage) async fn add_signing_keys(
                    &self,
                    org: &OrgId,
                    keys: &[SigningKeyRecord],
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    for key in keys {
                        Self::insert_key_tx(&mut tx, org, key).await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                #[allow(clippy::too_many_arguments)]
                pub(in crate::storage) async fn rotate_signing_keys(
                    &self,
                    org: &OrgId,
                    alg: &str,
                    promote_kid: &KeyId,
                    new_keys: &[SigningKeyRecord],
                    now: i64,
                    retired_publish_until: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query(
                        "UPDATE signing_keys SET state = 'retired', retired_at = $3, publish_until = $4 \
                         WHERE org_id = $1 AND alg = $2 AND state = 'active'",
                    )
                    .bind(org)
                    .bind(alg)
                    .bind(now)
                    .bind(retired_publish_until)
                    .execute(&mut *tx)
                    .await?;
                    for key in new_keys {
                        Self::insert_key_tx(&mut tx, org, key).await?;
                    }
                    let promoted = sqlx::query(
                        "UPDATE signing_keys SET state = 'active', activated_at = $3 \
                         WHERE org_id = $1 AND kid = $2 AND state = 'next'",
                    )
                    .bind(org)
                    .bind(promote_kid)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    if promoted.rows_affected() != 1 {
                        // Another rotation won the race; roll back rather than leave two active keys.
                        return Err(StoreError::Conflict("a concurrent key rotation".into()));
                    }
                    sqlx::query("DELETE FROM signing_keys WHERE org_id = $1 AND state = 'retired' AND publish_until < $2")
                        .bind(org)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        };
    };
}
pub(super) use key_queries;

impl OrgStore<'_> {
    /// This organization's signing keys, oldest first.
    pub async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        dispatch!(self.backend, signing_keys(self.org))
    }

    pub async fn add_signing_keys(
        &self,
        keys: &[SigningKeyRecord],
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(self.backend, add_signing_keys(self.org, keys, audit))
    }

    /// Retires the active key of `alg`, activates `promote_kid`, inserts `new_keys` and drops retired keys
    /// whose publication window has ended, all at once.
    pub async fn rotate_signing_keys(
        &self,
        alg: &str,
        promote_kid: &KeyId,
        new_keys: &[SigningKeyRecord],
        now: i64,
        retired_publish_until: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            rotate_signing_keys(
                self.org,
                alg,
                promote_kid,
                new_keys,
                now,
                retired_publish_until,
                audit
            )
        )
    }
}

impl SystemStore<'_> {
    /// The organizations with an active key activated before `cutoff`: those due for scheduled rotation,
    /// found in one query however many organizations there are.
    pub async fn orgs_with_keys_activated_before(
        &self,
        cutoff: i64,
    ) -> StoreResult<Vec<crate::kernel::OrgId>> {
        dispatch!(self.backend, orgs_with_keys_activated_before(cutoff))
    }
}
