//! One-time tokens of one organization: verification links, reset links, email codes, ceremony state.

use super::prelude::{NewAuditEvent, OneTimeToken, OutgoingEmail};
use super::{OrgStore, StoreResult, dispatch};

pub(super) const ONE_TIME_COLUMNS: &str =
    "token_hash, org_id, user_id, purpose, data, attempts, created_at, expires_at, consumed_at";

macro_rules! one_time_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::onetime::ONE_TIME_COLUMNS;
            use $crate::storage::prelude::*;
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                fn one_time_from_row(row: &$row) -> StoreResult<OneTimeToken> {
                    Ok(OneTimeToken {
                        token_hash: row.try_get("token_hash")?,
                        org_id: row.try_get("org_id")?,
                        user_id: row.try_get("user_id")?,
                        purpose: row.try_get("purpose")?,
                        data: row.try_get("data")?,
                        attempts: row.try_get("attempts")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                        consumed_at: row.try_get("consumed_at")?,
                    })
                }

                pub(in crate::storage) async fn insert_one_time_tx(tx: &mut Tx<'_>, org: &OrgId, token: &OneTimeToken) -> StoreResult<()> {
                    belongs(org, &token.org_id, "one-time token")?;
                    sqlx::query(&format!(
                        "INSERT INTO one_time_tokens ({ONE_TIME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    ))
                    .bind(&token.token_hash)
                    .bind(org)
                    .bind(&token.user_id)
                    .bind(&token.purpose)
                    .bind(&token.data)
                    .bind(token.attempts)
                    .bind(token.created_at)
                    .bind(token.expires_at)
                    .bind(token.consumed_at)
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                }

                /// Consumes a live one-time token inside `tx`; true only for the caller that consumed it.
                pub(in crate::storage) async fn consume_one_time_tx(
                    tx: &mut Tx<'_>,
                    org: &OrgId,
                    token_hash: &[u8],
                    purpose: &str,
                    now: i64,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE one_time_tokens SET consumed_at = $3 \
                         WHERE token_hash = $1 AND purpose = $2 AND org_id = $4 AND consumed_at IS NULL AND expires_at > $3",
                    )
                    .bind(token_hash)
                    .bind(purpose)
                    .bind(now)
                    .bind(org)
                    .execute(&mut **tx)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                pub(in crate::storage) async fn insert_one_time_token(&self, org: &OrgId, token: &OneTimeToken) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::insert_one_time_tx(&mut tx, org, token).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn one_time_token(&self, org: &OrgId, token_hash: &[u8], purpose: &str) -> StoreResult<Option<OneTimeToken>> {
                    let row = sqlx::query(&format!(
                        "SELECT {ONE_TIME_COLUMNS} FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2 AND org_id = $3"
                    ))
                    .bind(token_hash)
                    .bind(purpose)
                    .bind(org)
                    .fetch_optional(self.read_pool())
                    .await?;
                    row.as_ref().map(Self::one_time_from_row).transpose()
                }

                pub(in crate::storage) async fn consume_one_time_token(&self, org: &OrgId, token_hash: &[u8], purpose: &str, now: i64) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let done = Self::consume_one_time_tx(&mut tx, org, token_hash, purpose, now).await?;
                    tx.commit().await?;
                    Ok(done)
                }

                pub(in crate::storage) async fn issue_one_time_token(
                    &self,
                    org: &OrgId,
                    token: Option<&OneTimeToken>,
                    email: Option<&OutgoingEmail>,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    if let Some(token) = token {
                        Self::insert_one_time_tx(&mut tx, org, token).await?;
                    }
                    if let Some(email) = email {
                        Self::insert_email_tx(&mut tx, &self.sealing, org, email).await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn reissue_one_time_token(
                    &self,
                    org: &OrgId,
                    token: &OneTimeToken,
                    email: Option<&OutgoingEmail>,
                    audit: Option<&NewAuditEvent>,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query("DELETE FROM one_time_tokens WHERE token_hash = $1 AND org_id = $2")
                        .bind(&token.token_hash)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?;
                    Self::insert_one_time_tx(&mut tx, org, token).await?;
                    if let Some(email) = email {
                        Self::insert_email_tx(&mut tx, &self.sealing, org, email).await?;
                    }
                    if let Some(audit) = audit {
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn count_token_attempt(
                    &self,
                    org: &OrgId,
                    token_hash: &[u8],
                    purpose: &str,
                    max_attempts: i64,
                    now: i64,
                ) -> StoreResult<Option<i64>> {
                    let row = sqlx::query(
                        "UPDATE one_time_tokens SET attempts = attempts + 1 \
                         WHERE token_hash = $1 AND purpose = $2 AND org_id = $5 AND consumed_at IS NULL \
                         AND expires_at > $3 AND attempts < $4 RETURNING attempts",
                    )
                    .bind(token_hash)
                    .bind(purpose)
                    .bind(now)
                    .bind(max_attempts)
                    .bind(org)
                    .fetch_optional(self.write_pool())
                    .await?;
                    row.map(|r| r.try_get::<i64, _>("attempts")).transpose().map_err(Into::into)
                }

                pub(in crate::storage) async fn release_token_attempt(&self, org: &OrgId, token_hash: &[u8], purpose: &str) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE one_time_tokens SET attempts = attempts - 1 \
                         WHERE token_hash = $1 AND purpose = $2 AND org_id = $3 AND attempts > 0",
                    )
                    .bind(token_hash)
                    .bind(purpose)
                    .bind(org)
                    .execute(self.write_pool())
                    .await?;
                    Ok(())
                }
            }
        };
    };
}
pub(super) use one_time_queries;

impl OrgStore<'_> {
    pub async fn insert_one_time_token(&self, token: &OneTimeToken) -> StoreResult<()> {
        dispatch!(self.backend, insert_one_time_token(self.org, token))
    }

    pub async fn one_time_token(
        &self,
        token_hash: &[u8],
        purpose: &str,
    ) -> StoreResult<Option<OneTimeToken>> {
        dispatch!(self.backend, one_time_token(self.org, token_hash, purpose))
    }

    /// Consumes the token if it is unconsumed and unexpired; true only for the caller that consumed it.
    pub async fn consume_one_time_token(
        &self,
        token_hash: &[u8],
        purpose: &str,
        now: i64,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            consume_one_time_token(self.org, token_hash, purpose, now)
        )
    }

    /// Stores a one-time token and/or an email together with the audit event.
    pub async fn issue_one_time_token(
        &self,
        token: Option<&OneTimeToken>,
        email: Option<&OutgoingEmail>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            issue_one_time_token(self.org, token, email, audit)
        )
    }

    /// Like `issue_one_time_token`, replacing any earlier token with the same hash (a new email code
    /// replaces the one sent before).
    pub async fn reissue_one_time_token(
        &self,
        token: &OneTimeToken,
        email: Option<&OutgoingEmail>,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            reissue_one_time_token(self.org, token, email, audit)
        )
    }

    /// Counts one attempt against a live token (unconsumed, unexpired, under `max_attempts`); returns
    /// the new count, or `None` when the token is not live or already at the limit.
    pub async fn count_token_attempt(
        &self,
        token_hash: &[u8],
        purpose: &str,
        max_attempts: i64,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        dispatch!(
            self.backend,
            count_token_attempt(self.org, token_hash, purpose, max_attempts, now)
        )
    }

    /// Gives back one attempt counted by `count_token_attempt` (never below zero), for an attempt that
    /// turned out right but could not finish for another reason.
    pub async fn release_token_attempt(&self, token_hash: &[u8], purpose: &str) -> StoreResult<()> {
        dispatch!(
            self.backend,
            release_token_attempt(self.org, token_hash, purpose)
        )
    }
}
