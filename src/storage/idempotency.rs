//! Idempotency records of the admin API: a create retried with the same `Idempotency-Key` gets the first
//! answer instead of creating twice. Keyed by scope (the organization, or `-` outside one), the caller and
//! the key; the stored answer is sealed (it may hold a secret shown once). A record older than a day is
//! forgotten.

use super::{Db, StoreResult, dispatch};

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody used the key: the caller runs the request and then completes or releases the claim.
    New,
    /// The same request ran before: its status and sealed answer.
    Replay(i64, Vec<u8>),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_SECS: i64 = 86_400;

macro_rules! idempotency_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::idempotency::{Claim, IDEMPOTENCY_TTL_SECS};
            use $crate::storage::prelude::*;

            impl $store {
                pub(in crate::storage) async fn claim_idempotency(
                    &self,
                    scope: &str,
                    principal: &[u8],
                    key: &str,
                    request_hash: &[u8],
                    now: i64,
                ) -> StoreResult<Claim> {
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND principal = $2 AND idem_key = $3 AND created_at < $4")
                        .bind(scope)
                        .bind(principal)
                        .bind(key)
                        .bind(now - IDEMPOTENCY_TTL_SECS)
                        .execute(&mut *tx)
                        .await?;
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys (scope, principal, idem_key, request_hash, status, response, created_at) \
                         VALUES ($1, $2, $3, $4, 0, NULL, $5) ON CONFLICT (scope, principal, idem_key) DO NOTHING",
                    )
                    .bind(scope)
                    .bind(principal)
                    .bind(key)
                    .bind(request_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    let claim = if inserted == 1 {
                        Claim::New
                    } else {
                        let row = sqlx::query("SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND principal = $2 AND idem_key = $3")
                            .bind(scope)
                            .bind(principal)
                            .bind(key)
                            .fetch_one(&mut *tx)
                            .await?;
                        let stored: Vec<u8> = row.try_get("request_hash")?;
                        let status: i64 = row.try_get("status")?;
                        let response: Option<Vec<u8>> = row.try_get("response")?;
                        match (stored == request_hash, status, response) {
                            (false, _, _) => Claim::Mismatch,
                            (true, 0, _) | (true, _, None) => Claim::InProgress,
                            (true, status, Some(response)) => Claim::Replay(status, response),
                        }
                    };
                    tx.commit().await?;
                    Ok(claim)
                }

                pub(in crate::storage) async fn finish_idempotency(
                    &self,
                    scope: &str,
                    principal: &[u8],
                    key: &str,
                    outcome: Option<(i64, &[u8])>,
                ) -> StoreResult<()> {
                    match outcome {
                        Some((status, response)) => {
                            sqlx::query("UPDATE idempotency_keys SET status = $4, response = $5 WHERE scope = $1 AND principal = $2 AND idem_key = $3")
                                .bind(scope)
                                .bind(principal)
                                .bind(key)
                                .bind(status)
                                .bind(response)
                                .execute(self.write_pool())
                                .await?;
                        }
                        None => {
                            sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND principal = $2 AND idem_key = $3 AND status = 0")
                                .bind(scope)
                                .bind(principal)
                                .bind(key)
                                .execute(self.write_pool())
                                .await?;
                        }
                    }
                    Ok(())
                }
            }
        };
    };
}
pub(super) use idempotency_queries;

impl Db {
    /// Claims an idempotency key for a request (see [`Claim`]).
    pub async fn claim_idempotency(
        &self,
        scope: &str,
        principal: &[u8],
        key: &str,
        request_hash: &[u8],
        now: i64,
    ) -> StoreResult<Claim> {
        dispatch!(
            &*self.backend,
            claim_idempotency(scope, principal, key, request_hash, now)
        )
    }

    /// Stores the answer of a claimed request (`Some((status, sealed))`), or gives the key back when the
    /// request failed (`None`), so a retry runs it again.
    pub async fn finish_idempotency(
        &self,
        scope: &str,
        principal: &[u8],
        key: &str,
        outcome: Option<(i64, &[u8])>,
    ) -> StoreResult<()> {
        dispatch!(
            &*self.backend,
            finish_idempotency(scope, principal, key, outcome)
        )
    }
}
