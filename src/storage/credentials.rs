//! Credentials of one organization's users: passwords, TOTP seeds, passkeys, recovery codes, email-code
//! factors. The table names the user, not the organization, so every query filters through the user's
//! organization (`EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = …)`:
//! a primary-key probe, where `user_id IN (SELECT id …)` read every user of the organization, 400 ms
//! per sign-in at a million users on SQLite).

use super::prelude::{
    Credential, CredentialId, CredentialKind, NewAuditEvent, OutgoingEmail, Session, UserId,
};
use super::{OrgStore, StoreResult, dispatch};

pub(super) const CREDENTIAL_COLUMNS: &str =
    "id, user_id, kind, name, secret, data, created_at, last_used_at";

macro_rules! credential_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::credentials::CREDENTIAL_COLUMNS;
            use $crate::storage::prelude::*;
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                fn credential_from_row(row: &$row) -> StoreResult<Credential> {
                    let kind: String = row.try_get("kind")?;
                    Ok(Credential {
                        id: row.try_get("id")?,
                        user_id: row.try_get("user_id")?,
                        kind: CredentialKind::parse(&kind)
                            .ok_or_else(|| StoreError::Corrupt(format!("credentials.kind {kind:?}")))?,
                        name: row.try_get("name")?,
                        secret: row.try_get("secret")?,
                        data: row.try_get("data")?,
                        created_at: row.try_get("created_at")?,
                        last_used_at: row.try_get("last_used_at")?,
                    })
                }

                /// Inserts a credential; the caller has checked that its user belongs to the organization.
                pub(in crate::storage) async fn insert_credential_tx(tx: &mut Tx<'_>, c: &Credential) -> StoreResult<()> {
                    sqlx::query(&format!("INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                        .bind(&c.id)
                        .bind(&c.user_id)
                        .bind(c.kind.as_str())
                        .bind(&c.name)
                        .bind(&c.secret)
                        .bind(&c.data)
                        .bind(c.created_at)
                        .bind(c.last_used_at)
                        .execute(&mut **tx)
                        .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn credentials(&self, org: &OrgId, user_id: &UserId, kind: CredentialKind) -> StoreResult<Vec<Credential>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1 AND kind = $2 \
                         AND EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = $3) ORDER BY created_at, id"
                    ))
                    .bind(user_id)
                    .bind(kind.as_str())
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::credential_from_row).collect()
                }

                pub(in crate::storage) async fn user_credentials(&self, org: &OrgId, user_id: &UserId) -> StoreResult<Vec<Credential>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1 \
                         AND EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = $2) ORDER BY created_at, id"
                    ))
                    .bind(user_id)
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::credential_from_row).collect()
                }

                pub(in crate::storage) async fn update_credential_secret(
                    &self,
                    org: &OrgId,
                    credential_id: &CredentialId,
                    secret: &[u8],
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    let done = sqlx::query(
                        "UPDATE credentials SET secret = $2 WHERE id = $1 \
                         AND EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = $3)",
                    )
                    .bind(credential_id)
                    .bind(secret)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if done == 0 {
                        return Err(StoreError::NotFound(format!("credential {credential_id}")));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn add_credentials(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    credentials: &[Credential],
                    replace: &[CredentialKind],
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::user_in_org_tx(&mut tx, org, user_id).await?;
                    for kind in replace {
                        sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND kind = $2")
                            .bind(user_id)
                            .bind(kind.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    for c in credentials {
                        if c.user_id != *user_id {
                            return Err(StoreError::WrongTenant("credential"));
                        }
                        Self::insert_credential_tx(&mut tx, c).await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn delete_credentials(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    ids: &[CredentialId],
                    audit: &NewAuditEvent,
                ) -> StoreResult<u64> {
                    let mut tx = self.write_pool().begin().await?;
                    let mut deleted = 0;
                    for id in ids {
                        deleted += sqlx::query(
                            "DELETE FROM credentials WHERE user_id = $1 AND id = $2 \
                             AND EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = $3)",
                        )
                        .bind(user_id)
                        .bind(id)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    if deleted > 0 {
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok(deleted)
                }

                #[allow(clippy::too_many_arguments)]
                pub(in crate::storage) async fn use_credential(
                    &self,
                    org: &OrgId,
                    credential_id: &CredentialId,
                    consume: bool,
                    now: i64,
                    notice: Option<&OutgoingEmail>,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    // Consuming deletes the row, so two concurrent uses of one recovery code cannot both win.
                    let done = if consume {
                        sqlx::query(
                            "DELETE FROM credentials WHERE id = $1 AND EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = $2)",
                        )
                        .bind(credential_id)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?
                    } else {
                        sqlx::query(
                            "UPDATE credentials SET last_used_at = $3 WHERE id = $1 \
                             AND EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = $2)",
                        )
                        .bind(credential_id)
                        .bind(org)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                    }
                    .rows_affected()
                        == 1;
                    if done {
                        if let Some(email) = notice {
                            Self::insert_email_tx(&mut tx, &self.sealing, org, email).await?;
                        }
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok(done)
                }

                pub(in crate::storage) async fn update_credential_use(
                    &self,
                    org: &OrgId,
                    credential_id: &CredentialId,
                    data: &str,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    let done = sqlx::query(
                        "UPDATE credentials SET data = $2, last_used_at = $3 WHERE id = $1 \
                         AND EXISTS (SELECT 1 FROM users WHERE users.id = credentials.user_id AND users.org_id = $4)",
                    )
                    .bind(credential_id)
                    .bind(data)
                    .bind(now)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if done == 0 {
                        return Err(StoreError::NotFound(format!("credential {credential_id}")));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                #[allow(clippy::too_many_arguments)]
                pub(in crate::storage) async fn replace_password(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    password: &Credential,
                    consume: Option<(&[u8], &str)>,
                    new_session: Option<&Session>,
                    email: Option<&OutgoingEmail>,
                    sign_out_everywhere: bool,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<Option<i64>> {
                    if password.user_id != *user_id {
                        return Err(StoreError::WrongTenant("credential"));
                    }
                    let mut tx = self.write_pool().begin().await?;
                    if let Some((hash, purpose)) = consume
                        && !Self::consume_one_time_tx(&mut tx, org, hash, purpose, now).await?
                    {
                        return Ok(None);
                    }
                    // Signing out everywhere bumps session_version, which also ends every grant made under the
                    // old one; without it the version stays and only the password changes.
                    let version = if sign_out_everywhere {
                        Self::bump_session_version_tx(&mut tx, org, user_id, now).await?
                    } else {
                        Self::touch_user_tx(&mut tx, org, user_id, now).await?
                    };
                    sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND kind = 'password'")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    Self::insert_credential_tx(&mut tx, password).await?;
                    if sign_out_everywhere {
                        Self::revoke_all_sessions_tx(&mut tx, org, user_id, now).await?;
                    }
                    if let Some(session) = new_session {
                        let mut session = session.clone();
                        session.session_version = version;
                        Self::insert_session_tx(&mut tx, org, &session).await?;
                    }
                    if let Some(email) = email {
                        Self::insert_email_tx(&mut tx, &self.sealing, org, email).await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(Some(version))
                }
            }
        };
    };
}
pub(super) use credential_queries;

impl OrgStore<'_> {
    /// The user's credentials of one kind, oldest first.
    pub async fn credentials(
        &self,
        user_id: &UserId,
        kind: CredentialKind,
    ) -> StoreResult<Vec<Credential>> {
        dispatch!(self.backend, credentials(self.org, user_id, kind))
    }

    /// Every credential of a user, oldest first.
    pub async fn user_credentials(&self, user_id: &UserId) -> StoreResult<Vec<Credential>> {
        dispatch!(self.backend, user_credentials(self.org, user_id))
    }

    /// Replaces a credential's secret (a password re-hashed under the current policy).
    pub async fn update_credential_secret(
        &self,
        credential_id: &CredentialId,
        secret: &[u8],
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            update_credential_secret(self.org, credential_id, secret, audit)
        )
    }

    /// Adds credentials, first deleting the user's credentials of the `replace` kinds (a new set of
    /// recovery codes invalidates the old one).
    pub async fn add_credentials(
        &self,
        user_id: &UserId,
        credentials: &[Credential],
        replace: &[CredentialKind],
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            add_credentials(self.org, user_id, credentials, replace, audit)
        )
    }

    /// Deletes these credentials of the user; returns how many there were (audited only if any).
    pub async fn delete_credentials(
        &self,
        user_id: &UserId,
        ids: &[CredentialId],
        audit: &NewAuditEvent,
    ) -> StoreResult<u64> {
        dispatch!(
            self.backend,
            delete_credentials(self.org, user_id, ids, audit)
        )
    }

    /// Records a use of a credential: `consume` deletes it (single-use recovery codes), otherwise its last
    /// use is noted. False when it no longer exists (already consumed). The notice and audit go with it.
    pub async fn use_credential(
        &self,
        credential_id: &CredentialId,
        consume: bool,
        now: i64,
        notice: Option<&OutgoingEmail>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            use_credential(self.org, credential_id, consume, now, notice, audit)
        )
    }

    /// Records a use of a credential whose data changes with use (a passkey's signature counter).
    pub async fn update_credential_use(
        &self,
        credential_id: &CredentialId,
        data: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            update_credential_use(self.org, credential_id, data, now, audit)
        )
    }

    /// Replaces the user's password; with `sign_out_everywhere` (the domain's rule, `sessions::grants`)
    /// session_version is bumped and every session revoked, which ends every grant too. `consume` (token
    /// hash, purpose) must be live and is consumed, else nothing is written and `None` is returned.
    /// `new_session` (the caller's fresh session) is stored under the resulting version.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_password(
        &self,
        user_id: &UserId,
        password: &Credential,
        consume: Option<(&[u8], &str)>,
        new_session: Option<&Session>,
        email: Option<&OutgoingEmail>,
        sign_out_everywhere: bool,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<i64>> {
        dispatch!(
            self.backend,
            replace_password(
                self.org,
                user_id,
                password,
                consume,
                new_session,
                email,
                sign_out_everywhere,
                now,
                audit
            )
        )
    }
}
