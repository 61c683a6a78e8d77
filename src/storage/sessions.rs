//! Browser sessions of one organization's users, and the grants that end with them.

use super::prelude::{NewAuditEvent, Session, SessionId, UserId};
use super::{OrgStore, StoreResult, dispatch};

pub(super) const SESSION_COLUMNS: &str = "id_hash, org_id, user_id, public_id, auth_time, amr, acr, ip, user_agent, \
     session_version, created_at, last_seen_at, expires_at, revoked_at, mfa_at";

macro_rules! session_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::prelude::*;
            use $crate::storage::sessions::SESSION_COLUMNS;
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                fn session_from_row(row: &$row) -> StoreResult<Session> {
                    Ok(Session {
                        id_hash: row.try_get("id_hash")?,
                        org_id: row.try_get("org_id")?,
                        user_id: row.try_get("user_id")?,
                        public_id: row.try_get("public_id")?,
                        auth_time: row.try_get("auth_time")?,
                        amr: parse_json("sessions.amr", &row.try_get::<String, _>("amr")?)?,
                        acr: row.try_get("acr")?,
                        ip: row.try_get("ip")?,
                        user_agent: row.try_get("user_agent")?,
                        session_version: row.try_get("session_version")?,
                        created_at: row.try_get("created_at")?,
                        last_seen_at: row.try_get("last_seen_at")?,
                        expires_at: row.try_get("expires_at")?,
                        revoked_at: row.try_get("revoked_at")?,
                        mfa_at: row.try_get("mfa_at")?,
                    })
                }

                pub(in crate::storage) async fn insert_session_tx(tx: &mut Tx<'_>, org: &OrgId, session: &Session) -> StoreResult<()> {
                    belongs(org, &session.org_id, "session")?;
                    sqlx::query(&format!(
                        "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                    ))
                    .bind(&session.id_hash)
                    .bind(org)
                    .bind(&session.user_id)
                    .bind(&session.public_id)
                    .bind(session.auth_time)
                    .bind(json_list(&session.amr))
                    .bind(&session.acr)
                    .bind(&session.ip)
                    .bind(&session.user_agent)
                    .bind(session.session_version)
                    .bind(session.created_at)
                    .bind(session.last_seen_at)
                    .bind(session.expires_at)
                    .bind(session.revoked_at)
                    .bind(session.mfa_at)
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                }

                /// Ends the grants the browser sessions made (their refresh and access tokens die with them),
                /// except those whose scope holds one of `keep_scopes`: which grants outlive a session is the
                /// domain's rule (`sessions::grants`), handed over as data and matched per scope token here.
                async fn revoke_session_grants_tx(
                    tx: &mut Tx<'_>,
                    org: &OrgId,
                    user_id: &UserId,
                    session_public_ids: &[SessionId],
                    keep_scopes: &[&str],
                    now: i64,
                ) -> StoreResult<()> {
                    for sid in session_public_ids {
                        let rows = sqlx::query(
                            "SELECT id, scope FROM token_families \
                             WHERE user_id = $1 AND session_id = $2 AND org_id = $3 AND revoked_at IS NULL",
                        )
                        .bind(user_id)
                        .bind(sid)
                        .bind(org)
                        .fetch_all(&mut **tx)
                        .await?;
                        for row in rows {
                            let scope: String = row.try_get("scope")?;
                            if scope.split_ascii_whitespace().any(|s| keep_scopes.contains(&s)) {
                                continue;
                            }
                            let id: GrantId = row.try_get("id")?;
                            sqlx::query(
                                "UPDATE token_families SET revoked_at = $2, revoked_reason = 'session_ended' \
                                 WHERE id = $1 AND org_id = $3 AND revoked_at IS NULL",
                            )
                            .bind(id)
                            .bind(now)
                            .bind(org)
                            .execute(&mut **tx)
                            .await?;
                        }
                    }
                    Ok(())
                }

                /// Revokes every live session of the user (their grants are ended by the session_version bump
                /// that goes with this); returns how many.
                pub(in crate::storage) async fn revoke_all_sessions_tx(
                    tx: &mut Tx<'_>,
                    org: &OrgId,
                    user_id: &UserId,
                    now: i64,
                ) -> StoreResult<u64> {
                    Ok(sqlx::query(
                        "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND org_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(user_id)
                    .bind(org)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected())
                }

                pub(in crate::storage) async fn create_session(&self, org: &OrgId, session: &Session, audit: &NewAuditEvent) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::insert_session_tx(&mut tx, org, session).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn session_by_hash(&self, org: &OrgId, id_hash: &[u8]) -> StoreResult<Option<Session>> {
                    let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1 AND org_id = $2"))
                        .bind(id_hash)
                        .bind(org)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::session_from_row).transpose()
                }

                pub(in crate::storage) async fn touch_session(&self, org: &OrgId, id_hash: &[u8], now: i64) -> StoreResult<()> {
                    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND org_id = $3 AND revoked_at IS NULL")
                        .bind(id_hash)
                        .bind(now)
                        .bind(org)
                        .execute(self.write_pool())
                        .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn revoke_session(
                    &self,
                    org: &OrgId,
                    id_hash: &[u8],
                    keep_scopes: &[&str],
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let revoked = sqlx::query(
                        "UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND org_id = $3 AND revoked_at IS NULL \
                         RETURNING user_id, public_id",
                    )
                    .bind(id_hash)
                    .bind(now)
                    .bind(org)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let done = revoked.is_some();
                    if let Some(row) = revoked {
                        let user_id: UserId = row.try_get("user_id")?;
                        let public_id: SessionId = row.try_get("public_id")?;
                        Self::revoke_session_grants_tx(&mut tx, org, &user_id, &[public_id], keep_scopes, now).await?;
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok(done)
                }

                pub(in crate::storage) async fn user_sessions(&self, org: &OrgId, user_id: &UserId, now: i64) -> StoreResult<Vec<Session>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND org_id = $3 \
                         AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, public_id"
                    ))
                    .bind(user_id)
                    .bind(now)
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::session_from_row).collect()
                }

                pub(in crate::storage) async fn revoke_user_session(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    public_id: &SessionId,
                    keep_scopes: &[&str],
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let done = sqlx::query(
                        "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND public_id = $2 AND org_id = $4 \
                         AND revoked_at IS NULL",
                    )
                    .bind(user_id)
                    .bind(public_id)
                    .bind(now)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if done {
                        Self::revoke_session_grants_tx(&mut tx, org, user_id, std::slice::from_ref(public_id), keep_scopes, now).await?;
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok(done)
                }

                pub(in crate::storage) async fn revoke_other_sessions(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    keep_public_id: &SessionId,
                    keep_scopes: &[&str],
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<u64> {
                    let mut tx = self.write_pool().begin().await?;
                    let rows = sqlx::query(
                        "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND public_id <> $2 AND org_id = $4 \
                         AND revoked_at IS NULL RETURNING public_id",
                    )
                    .bind(user_id)
                    .bind(keep_public_id)
                    .bind(now)
                    .bind(org)
                    .fetch_all(&mut *tx)
                    .await?;
                    let ended = rows
                        .iter()
                        .map(|r| r.try_get::<SessionId, _>("public_id"))
                        .collect::<Result<Vec<_>, _>>()?;
                    Self::revoke_session_grants_tx(&mut tx, org, user_id, &ended, keep_scopes, now).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(ended.len() as u64)
                }

                #[allow(clippy::too_many_arguments)]
                pub(in crate::storage) async fn record_second_factor(
                    &self,
                    org: &OrgId,
                    id_hash: &[u8],
                    amr: &[String],
                    acr: &str,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let done = sqlx::query(
                        "UPDATE sessions SET mfa_at = $2, amr = $3, acr = $4 \
                         WHERE id_hash = $1 AND org_id = $5 AND revoked_at IS NULL",
                    )
                    .bind(id_hash)
                    .bind(now)
                    .bind(json_list(amr))
                    .bind(acr)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if done {
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok(done)
                }
            }
        };
    };
}
pub(super) use session_queries;

impl OrgStore<'_> {
    pub async fn create_session(
        &self,
        session: &Session,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(self.backend, create_session(self.org, session, audit))
    }

    /// The session whose cookie secret hashes to `id_hash`, if it is this organization's.
    pub async fn session_by_hash(&self, id_hash: &[u8]) -> StoreResult<Option<Session>> {
        dispatch!(self.backend, session_by_hash(self.org, id_hash))
    }

    pub async fn touch_session(&self, id_hash: &[u8], now: i64) -> StoreResult<()> {
        dispatch!(self.backend, touch_session(self.org, id_hash, now))
    }

    /// Marks the session revoked and ends the grants it made, except those whose scope holds one of
    /// `keep_scopes` (the domain's sign-out rule, `sessions::grants`); false if it was already revoked
    /// or does not exist.
    pub async fn revoke_session(
        &self,
        id_hash: &[u8],
        keep_scopes: &[&str],
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            revoke_session(self.org, id_hash, keep_scopes, now, audit)
        )
    }

    /// The user's sessions that are neither revoked nor past their absolute lifetime, newest first.
    pub async fn user_sessions(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<Session>> {
        dispatch!(self.backend, user_sessions(self.org, user_id, now))
    }

    /// Revokes one of the user's sessions by its public id, and its grants but those with one of
    /// `keep_scopes`; false if there was no such live session.
    pub async fn revoke_user_session(
        &self,
        user_id: &UserId,
        public_id: &SessionId,
        keep_scopes: &[&str],
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            revoke_user_session(self.org, user_id, public_id, keep_scopes, now, audit)
        )
    }

    /// Revokes every live session of the user but `keep_public_id`, and their grants but those with one
    /// of `keep_scopes`; returns how many sessions.
    pub async fn revoke_other_sessions(
        &self,
        user_id: &UserId,
        keep_public_id: &SessionId,
        keep_scopes: &[&str],
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<u64> {
        dispatch!(
            self.backend,
            revoke_other_sessions(self.org, user_id, keep_public_id, keep_scopes, now, audit)
        )
    }

    /// Marks a live session as having just proved a second factor, with its new `amr` and `acr`.
    pub async fn record_second_factor(
        &self,
        id_hash: &[u8],
        amr: &[String],
        acr: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            record_second_factor(self.org, id_hash, amr, acr, now, audit)
        )
    }
}
