//! The email outbox. Each organization reads its own messages; the delivery worker and the operator's
//! CLI work across organizations through the system door.

use super::prelude::{EmailId, OutboxEntry, OutgoingEmail};
use super::{OrgStore, StoreResult, SystemStore, dispatch};

pub(super) const OUTBOX_COLUMNS: &str = "id, org_id, recipient, subject, body_text, body_sealed, created_at, sent_at, attempts, \
     last_error, next_attempt_at, failed_at";

macro_rules! outbox_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::outbox::OUTBOX_COLUMNS;
            use $crate::storage::prelude::*;
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                /// An outbox row with its body unsealed. A delivered message has no body any more (empty); a row
                /// from before bodies were sealed still holds it in `body_text` until the start-up step seals it.
                fn outbox_from_row(&self, row: &$row) -> StoreResult<OutboxEntry> {
                    let id: String = row.try_get("id")?;
                    let sealed: Option<Vec<u8>> = row.try_get("body_sealed")?;
                    let body_text = match sealed {
                        Some(sealed) => {
                            let plain = self
                                .sealing
                                .secrets
                                .open(&body_aad(&id), &sealed)
                                .map_err(|e| StoreError::Corrupt(format!("email_outbox {id}: {e}")))?;
                            String::from_utf8(plain)
                                .map_err(|_| StoreError::Corrupt(format!("email_outbox {id}: body is not UTF-8")))?
                        }
                        None => row.try_get("body_text")?,
                    };
                    Ok(OutboxEntry {
                        email: OutgoingEmail {
                            id: id.into(),
                            org_id: row.try_get("org_id")?,
                            recipient: row.try_get("recipient")?,
                            subject: row.try_get("subject")?,
                            body_text,
                            created_at: row.try_get("created_at")?,
                        },
                        sent_at: row.try_get("sent_at")?,
                        attempts: row.try_get("attempts")?,
                        last_error: row.try_get("last_error")?,
                        next_attempt_at: row.try_get("next_attempt_at")?,
                        failed_at: row.try_get("failed_at")?,
                    })
                }

                /// Queues an email inside `tx`, so it is stored exactly when the action that sends it is. The body
                /// (codes, links) is sealed under the master key, bound to the message id; `body_text` stays empty.
                pub(in crate::storage) async fn insert_email_tx(
                    tx: &mut Tx<'_>,
                    sealing: &StoreSealing,
                    org: &OrgId,
                    email: &OutgoingEmail,
                ) -> StoreResult<()> {
                    belongs(org, &email.org_id, "email")?;
                    let sealed = sealing.secrets.seal(&body_aad(&email.id), email.body_text.as_bytes());
                    sqlx::query(
                        "INSERT INTO email_outbox (id, org_id, recipient, subject, body_text, body_sealed, created_at) \
                         VALUES ($1, $2, $3, $4, '', $5, $6)",
                    )
                    .bind(&email.id)
                    .bind(org)
                    .bind(&email.recipient)
                    .bind(&email.subject)
                    .bind(sealed)
                    .bind(email.created_at)
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn enqueue_email(&self, org: &OrgId, email: &OutgoingEmail) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::insert_email_tx(&mut tx, &self.sealing, org, email).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn list_outbox(&self, org: Option<&OrgId>, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
                    let rows = match org {
                        Some(org) => {
                            sqlx::query(&format!(
                                "SELECT {OUTBOX_COLUMNS} FROM email_outbox WHERE org_id = $1 \
                                 ORDER BY created_at DESC, id DESC LIMIT $2"
                            ))
                            .bind(org)
                            .bind(limit)
                            .fetch_all(self.read_pool())
                            .await?
                        }
                        None => {
                            sqlx::query(&format!(
                                "SELECT {OUTBOX_COLUMNS} FROM email_outbox ORDER BY created_at DESC, id DESC LIMIT $1"
                            ))
                            .bind(limit)
                            .fetch_all(self.read_pool())
                            .await?
                        }
                    };
                    rows.iter().map(|row| self.outbox_from_row(row)).collect()
                }

                pub(in crate::storage) async fn outbox_entry(&self, org: Option<&OrgId>, id: &str) -> StoreResult<Option<OutboxEntry>> {
                    let row = match org {
                        Some(org) => {
                            sqlx::query(&format!("SELECT {OUTBOX_COLUMNS} FROM email_outbox WHERE id = $1 AND org_id = $2"))
                                .bind(id)
                                .bind(org)
                                .fetch_optional(self.read_pool())
                                .await?
                        }
                        None => {
                            sqlx::query(&format!("SELECT {OUTBOX_COLUMNS} FROM email_outbox WHERE id = $1"))
                                .bind(id)
                                .fetch_optional(self.read_pool())
                                .await?
                        }
                    };
                    row.as_ref().map(|row| self.outbox_from_row(row)).transpose()
                }

                pub(in crate::storage) async fn claim_due_emails(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
                    // The outer WHERE repeats the claim conditions: on PostgreSQL a concurrent claimer that
                    // waited for a row lock re-checks them on the updated row and skips what was just claimed.
                    let rows = sqlx::query(&format!(
                        "UPDATE email_outbox SET claimed_until = $2 \
                         WHERE id IN (SELECT id FROM email_outbox \
                                      WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
                                        AND (claimed_until IS NULL OR claimed_until < $1) \
                                      ORDER BY created_at, id LIMIT $3) \
                           AND sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
                           AND (claimed_until IS NULL OR claimed_until < $1) \
                         RETURNING {OUTBOX_COLUMNS}"
                    ))
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(self.write_pool())
                    .await?;
                    let mut claimed = rows.iter().map(|row| self.outbox_from_row(row)).collect::<StoreResult<Vec<_>>>()?;
                    claimed.sort_by(|a, b| (a.email.created_at, &a.email.id).cmp(&(b.email.created_at, &b.email.id)));
                    Ok(claimed)
                }

                pub(in crate::storage) async fn mark_email_sent(&self, id: &EmailId, now: i64) -> StoreResult<()> {
                    sqlx::query(
                        // A delivered message keeps its metadata, never its body: the codes and links are gone.
                        "UPDATE email_outbox SET sent_at = $2, claimed_until = NULL, body_text = '', body_sealed = NULL \
                         WHERE id = $1 AND sent_at IS NULL",
                    )
                    .bind(id)
                    .bind(now)
                    .execute(self.write_pool())
                    .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn mark_email_failed(
                    &self,
                    id: &EmailId,
                    error: &str,
                    next_attempt_at: i64,
                    gave_up_at: Option<i64>,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE email_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, \
                         failed_at = $4, claimed_until = NULL WHERE id = $1 AND sent_at IS NULL",
                    )
                    .bind(id)
                    .bind(error)
                    .bind(next_attempt_at)
                    .bind(gave_up_at)
                    .execute(self.write_pool())
                    .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn seal_plain_outbox_bodies(&self) -> StoreResult<u64> {
                    let rows = sqlx::query(
                        "SELECT id, body_text FROM email_outbox WHERE body_sealed IS NULL AND body_text <> ''",
                    )
                    .fetch_all(self.write_pool())
                    .await?;
                    let mut sealed = 0;
                    for row in &rows {
                        let id: String = row.try_get("id")?;
                        let body: String = row.try_get("body_text")?;
                        let done = sqlx::query(
                            "UPDATE email_outbox SET body_sealed = $2, body_text = '' WHERE id = $1 AND body_sealed IS NULL",
                        )
                        .bind(&id)
                        .bind(self.sealing.secrets.seal(&body_aad(&id), body.as_bytes()))
                        .execute(self.write_pool())
                        .await?;
                        sealed += done.rows_affected();
                    }
                    Ok(sealed)
                }
            }
        };
    };
}
pub(super) use outbox_queries;

impl OrgStore<'_> {
    /// Queues one email on its own (most emails are queued by the store method of the action that sends them).
    pub async fn enqueue_email(&self, email: &OutgoingEmail) -> StoreResult<()> {
        dispatch!(self.backend, enqueue_email(self.org, email))
    }

    /// This organization's outbox messages, newest first, at most `limit`.
    pub async fn list_outbox(&self, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
        dispatch!(self.backend, list_outbox(Some(self.org), limit))
    }

    pub async fn outbox_entry(&self, id: &str) -> StoreResult<Option<OutboxEntry>> {
        dispatch!(self.backend, outbox_entry(Some(self.org), id))
    }
}

impl SystemStore<'_> {
    /// Every organization's outbox messages, newest first, at most `limit` (the operator's `outbox list`).
    pub async fn list_outbox(&self, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
        dispatch!(self.backend, list_outbox(None, limit))
    }

    /// A message of any organization by id (the operator's `outbox show`).
    pub async fn outbox_entry(&self, id: &str) -> StoreResult<Option<OutboxEntry>> {
        dispatch!(self.backend, outbox_entry(None, id))
    }

    /// Claims up to `limit` messages that are due at `now` (unsent, not given up, next attempt reached,
    /// not claimed by anyone whose lease is still running) until `lease_until`, oldest first. One
    /// statement that re-checks the claim on every row it updates, so instances sharing a database never
    /// claim the same message at once; a claim that outlives its lease (a crashed sender) is taken over.
    pub async fn claim_due_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxEntry>> {
        dispatch!(self.backend, claim_due_emails(now, lease_until, limit))
    }

    /// Records the delivery and releases the claim.
    pub async fn mark_email_sent(&self, id: &EmailId, now: i64) -> StoreResult<()> {
        dispatch!(self.backend, mark_email_sent(id, now))
    }

    /// Counts a failed attempt, keeps `error`, releases the claim and schedules the next attempt; with
    /// `gave_up_at` the message is marked failed and not tried again (it stays in the outbox).
    pub async fn mark_email_failed(
        &self,
        id: &EmailId,
        error: &str,
        next_attempt_at: i64,
        gave_up_at: Option<i64>,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            mark_email_failed(id, error, next_attempt_at, gave_up_at)
        )
    }

    /// Seals bodies queued before bodies were sealed (an upgraded database); returns how many.
    pub async fn seal_plain_outbox_bodies(&self) -> StoreResult<u64> {
        dispatch!(self.backend, seal_plain_outbox_bodies())
    }
}
