//! Grants (token families) of one organization, with their authorization codes, refresh tokens and
//! revoked access tokens. Codes and refresh tokens name their family, not the organization, so their
//! queries filter through the family (`EXISTS (SELECT 1 FROM token_families WHERE … AND org_id = …)`, a
//! primary-key probe rather than a read of every family of the organization).

use super::prelude::{AuthorizationCode, Grant, GrantId, NewAuditEvent, RefreshToken};
use super::{OrgStore, StoreResult, SystemStore, dispatch};

pub(super) const GRANT_COLUMNS: &str = "id, org_id, app_id, user_id, session_id, scope, auth_time, amr, acr, \
     session_version, created_at, expires_at, revoked_at, revoked_reason";
pub(super) const CODE_COLUMNS: &str = "code_hash, family_id, redirect_uri, nonce, code_challenge, created_at, expires_at, consumed_at";
pub(super) const REFRESH_COLUMNS: &str = "token_hash, family_id, created_at, expires_at, used_at";

macro_rules! grant_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::grants::{CODE_COLUMNS, GRANT_COLUMNS, REFRESH_COLUMNS};
            use $crate::storage::prelude::*;
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                fn grant_from_row(row: &$row) -> StoreResult<Grant> {
                    Ok(Grant {
                        id: row.try_get("id")?,
                        org_id: row.try_get("org_id")?,
                        app_id: row.try_get("app_id")?,
                        user_id: row.try_get("user_id")?,
                        session_id: row.try_get("session_id")?,
                        scope: row.try_get("scope")?,
                        auth_time: row.try_get("auth_time")?,
                        amr: parse_json("token_families.amr", &row.try_get::<String, _>("amr")?)?,
                        acr: row.try_get("acr")?,
                        session_version: row.try_get("session_version")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                        revoked_at: row.try_get("revoked_at")?,
                        revoked_reason: row.try_get("revoked_reason")?,
                    })
                }

                fn code_from_row(row: &$row) -> StoreResult<AuthorizationCode> {
                    Ok(AuthorizationCode {
                        code_hash: row.try_get("code_hash")?,
                        grant_id: row.try_get("family_id")?,
                        redirect_uri: row.try_get("redirect_uri")?,
                        nonce: row.try_get("nonce")?,
                        code_challenge: row.try_get("code_challenge")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                        consumed_at: row.try_get("consumed_at")?,
                    })
                }

                fn refresh_from_row(row: &$row) -> StoreResult<RefreshToken> {
                    Ok(RefreshToken {
                        token_hash: row.try_get("token_hash")?,
                        grant_id: row.try_get("family_id")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                        used_at: row.try_get("used_at")?,
                    })
                }

                /// Stores a refresh token of a family of this organization (NotFound for another's family).
                async fn insert_refresh_tx(tx: &mut Tx<'_>, org: &OrgId, token: &RefreshToken) -> StoreResult<()> {
                    let stored = sqlx::query(&format!(
                        "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) \
                         SELECT $1, id, $3, $4, $5 FROM token_families WHERE id = $2 AND org_id = $6"
                    ))
                    .bind(&token.token_hash)
                    .bind(&token.grant_id)
                    .bind(token.created_at)
                    .bind(token.expires_at)
                    .bind(token.used_at)
                    .bind(org)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if stored == 0 {
                        return Err(StoreError::NotFound(format!("grant {}", token.grant_id)));
                    }
                    Ok(())
                }

                pub(in crate::storage) async fn create_grant(
                    &self,
                    org: &OrgId,
                    grant: &Grant,
                    code: Option<&AuthorizationCode>,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    belongs(org, &grant.org_id, "grant")?;
                    if code.is_some_and(|code| code.grant_id != grant.id) {
                        return Err(StoreError::WrongTenant("authorization code"));
                    }
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query(&format!(
                        "INSERT INTO token_families ({GRANT_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                    ))
                    .bind(&grant.id)
                    .bind(org)
                    .bind(&grant.app_id)
                    .bind(&grant.user_id)
                    .bind(&grant.session_id)
                    .bind(&grant.scope)
                    .bind(grant.auth_time)
                    .bind(json_list(&grant.amr))
                    .bind(&grant.acr)
                    .bind(grant.session_version)
                    .bind(grant.created_at)
                    .bind(grant.expires_at)
                    .bind(grant.revoked_at)
                    .bind(&grant.revoked_reason)
                    .execute(&mut *tx)
                    .await?;
                    if let Some(code) = code {
                        sqlx::query(&format!("INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                            .bind(&code.code_hash)
                            .bind(&code.grant_id)
                            .bind(&code.redirect_uri)
                            .bind(&code.nonce)
                            .bind(&code.code_challenge)
                            .bind(code.created_at)
                            .bind(code.expires_at)
                            .bind(code.consumed_at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn grant(&self, org: &OrgId, id: &GrantId) -> StoreResult<Option<Grant>> {
                    let row = sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM token_families WHERE id = $1 AND org_id = $2"))
                        .bind(id)
                        .bind(org)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::grant_from_row).transpose()
                }

                pub(in crate::storage) async fn code_by_hash(&self, org: &OrgId, code_hash: &[u8]) -> StoreResult<Option<AuthorizationCode>> {
                    let row = sqlx::query(&format!(
                        "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1 \
                         AND EXISTS (SELECT 1 FROM token_families WHERE token_families.id = authorization_codes.family_id AND token_families.org_id = $2)"
                    ))
                    .bind(code_hash)
                    .bind(org)
                    .fetch_optional(self.read_pool())
                    .await?;
                    row.as_ref().map(Self::code_from_row).transpose()
                }

                pub(in crate::storage) async fn redeem_code(
                    &self,
                    org: &OrgId,
                    code_hash: &[u8],
                    now: i64,
                    refresh: Option<&RefreshToken>,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let consumed = sqlx::query(
                        "UPDATE authorization_codes SET consumed_at = $2 WHERE code_hash = $1 AND consumed_at IS NULL \
                         AND EXISTS (SELECT 1 FROM token_families WHERE token_families.id = authorization_codes.family_id AND token_families.org_id = $3)",
                    )
                    .bind(code_hash)
                    .bind(now)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if !consumed {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    if let Some(refresh) = refresh {
                        Self::insert_refresh_tx(&mut tx, org, refresh).await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                pub(in crate::storage) async fn refresh_token_by_hash(&self, org: &OrgId, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>> {
                    let row = sqlx::query(&format!(
                        "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1 \
                         AND EXISTS (SELECT 1 FROM token_families WHERE token_families.id = refresh_tokens.family_id AND token_families.org_id = $2)"
                    ))
                    .bind(token_hash)
                    .bind(org)
                    .fetch_optional(self.read_pool())
                    .await?;
                    row.as_ref().map(Self::refresh_from_row).transpose()
                }

                pub(in crate::storage) async fn rotate_refresh_token(
                    &self,
                    org: &OrgId,
                    old_hash: &[u8],
                    new: &RefreshToken,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let used = sqlx::query(
                        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
                         AND EXISTS (SELECT 1 FROM token_families WHERE token_families.id = refresh_tokens.family_id AND token_families.org_id = $3)",
                    )
                    .bind(old_hash)
                    .bind(now)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if !used {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    Self::insert_refresh_tx(&mut tx, org, new).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                pub(in crate::storage) async fn revoke_grant(
                    &self,
                    org: &OrgId,
                    id: &GrantId,
                    now: i64,
                    reason: &str,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let revoked = sqlx::query(
                        "UPDATE token_families SET revoked_at = $2, revoked_reason = $3 \
                         WHERE id = $1 AND org_id = $4 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(reason)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if revoked {
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok(revoked)
                }

                /// The jti is random and unique across organizations, so the list is one table; the
                /// organization that revoked it is in the audit event written with it.
                pub(in crate::storage) async fn revoke_access_token(
                    &self,
                    org: &OrgId,
                    jti: &str,
                    expires_at: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
                        .bind(jti)
                        .bind(expires_at)
                        .execute(&mut *tx)
                        .await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn revoked_access_tokens(&self, now: i64) -> StoreResult<Vec<String>> {
                    let rows = sqlx::query("SELECT jti FROM revoked_access_tokens WHERE expires_at > $1")
                        .bind(now)
                        .fetch_all(self.read_pool())
                        .await?;
                    rows.iter().map(|row| Ok(row.try_get("jti")?)).collect()
                }
            }
        };
    };
}
pub(super) use grant_queries;

impl OrgStore<'_> {
    /// Stores a grant and, for the code flow, its authorization code.
    pub async fn create_grant(
        &self,
        grant: &Grant,
        code: Option<&AuthorizationCode>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(self.backend, create_grant(self.org, grant, code, audit))
    }

    pub async fn grant(&self, id: &GrantId) -> StoreResult<Option<Grant>> {
        dispatch!(self.backend, grant(self.org, id))
    }

    pub async fn code_by_hash(&self, code_hash: &[u8]) -> StoreResult<Option<AuthorizationCode>> {
        dispatch!(self.backend, code_by_hash(self.org, code_hash))
    }

    /// Consumes the code and stores the first refresh token in one transaction. False when the code had
    /// already been consumed (a replay): nothing is written then.
    pub async fn redeem_code(
        &self,
        code_hash: &[u8],
        now: i64,
        refresh: Option<&RefreshToken>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            redeem_code(self.org, code_hash, now, refresh, audit)
        )
    }

    pub async fn refresh_token_by_hash(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<RefreshToken>> {
        dispatch!(self.backend, refresh_token_by_hash(self.org, token_hash))
    }

    /// Marks `old_hash` used and stores `new` in one transaction. False when `old_hash` was already used.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshToken,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            rotate_refresh_token(self.org, old_hash, new, now, audit)
        )
    }

    /// Revokes a grant and every token issued from it; false if it was already revoked.
    pub async fn revoke_grant(
        &self,
        id: &GrantId,
        now: i64,
        reason: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(self.backend, revoke_grant(self.org, id, now, reason, audit))
    }

    pub async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            revoke_access_token(self.org, jti, expires_at, audit)
        )
    }
}

impl SystemStore<'_> {
    /// JTIs of revoked access tokens that have not expired yet, of every organization (the in-memory
    /// revocation set is one for the process).
    pub async fn revoked_access_tokens(&self, now: i64) -> StoreResult<Vec<String>> {
        dispatch!(self.backend, revoked_access_tokens(now))
    }
}
