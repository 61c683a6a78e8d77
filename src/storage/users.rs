//! Users of one organization, their membership role, sign-up and verification.

use super::prelude::{
    Credential, Member, NewAuditEvent, OneTimeToken, OutgoingEmail, Role, User, UserId,
};
use super::{OrgStore, StoreResult, dispatch};

pub(super) const USER_COLUMNS: &str = "id, org_id, email, email_normalized, email_verified, name, session_version, disabled, created_at, updated_at";

macro_rules! user_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::prelude::*;
            use $crate::storage::users::{USER_COLUMNS, prefix_end};
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                fn user_from_row(row: &$row) -> StoreResult<User> {
                    Ok(User {
                        id: row.try_get("id")?,
                        org_id: row.try_get("org_id")?,
                        email: row.try_get("email")?,
                        email_normalized: row.try_get("email_normalized")?,
                        email_verified: row.try_get("email_verified")?,
                        name: row.try_get("name")?,
                        session_version: row.try_get("session_version")?,
                        disabled: row.try_get("disabled")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                }

                async fn insert_user_tx(tx: &mut Tx<'_>, org: &OrgId, user: &User, credentials: &[Credential]) -> StoreResult<()> {
                    belongs(org, &user.org_id, "user")?;
                    sqlx::query(&format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
                        .bind(&user.id)
                        .bind(org)
                        .bind(&user.email)
                        .bind(&user.email_normalized)
                        .bind(user.email_verified)
                        .bind(&user.name)
                        .bind(user.session_version)
                        .bind(user.disabled)
                        .bind(user.created_at)
                        .bind(user.updated_at)
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| conflict_or(e, &format!("a user with email {}", user.email)))?;
                    for c in credentials {
                        if c.user_id != user.id {
                            return Err(StoreError::WrongTenant("credential"));
                        }
                        Self::insert_credential_tx(tx, c).await?;
                    }
                    Ok(())
                }

                /// Fails with NotFound unless the user exists in this organization: the check before
                /// writing rows (credentials, consents) whose table names the user but not the organization.
                pub(in crate::storage) async fn user_in_org_tx(tx: &mut Tx<'_>, org: &OrgId, user_id: &UserId) -> StoreResult<()> {
                    let found = sqlx::query("SELECT 1 FROM users WHERE id = $1 AND org_id = $2")
                        .bind(user_id)
                        .bind(org)
                        .fetch_optional(&mut **tx)
                        .await?;
                    match found {
                        Some(_) => Ok(()),
                        None => Err(StoreError::NotFound(format!("user {user_id}"))),
                    }
                }

                pub(in crate::storage) async fn create_user(
                    &self,
                    org: &OrgId,
                    user: &User,
                    credentials: &[Credential],
                    role: Option<Role>,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::insert_user_tx(&mut tx, org, user, credentials).await?;
                    if let Some(role) = role {
                        sqlx::query("INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                            .bind(org)
                            .bind(&user.id)
                            .bind(role.as_str())
                            .bind(user.created_at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn user_by_id(&self, org: &OrgId, id: &UserId) -> StoreResult<Option<User>> {
                    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND org_id = $2"))
                        .bind(id)
                        .bind(org)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::user_from_row).transpose()
                }

                pub(in crate::storage) async fn user_by_email(&self, org: &OrgId, email_normalized: &str) -> StoreResult<Option<User>> {
                    let row = sqlx::query(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND email_normalized = $2"
                    ))
                    .bind(org)
                    .bind(email_normalized)
                    .fetch_optional(self.read_pool())
                    .await?;
                    row.as_ref().map(Self::user_from_row).transpose()
                }

                pub(in crate::storage) async fn list_users(&self, org: &OrgId) -> StoreResult<Vec<User>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 ORDER BY email_normalized"
                    ))
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::user_from_row).collect()
                }

                /// One page of the organization's users in email order, after `after` (the last email of
                /// the previous page), optionally only those whose email starts with `prefix`. The range on
                /// the (org_id, email_normalized) index keeps a deep page as cheap as the first.
                pub(in crate::storage) async fn users_page(
                    &self,
                    org: &OrgId,
                    after: Option<&str>,
                    prefix: Option<&str>,
                    limit: i64,
                ) -> StoreResult<Vec<User>> {
                    let mut query = sqlx::QueryBuilder::<$db>::new(format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = "));
                    query.push_bind(org);
                    if let Some(after) = after {
                        query.push(" AND email_normalized > ").push_bind(after);
                    }
                    if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
                        query.push(" AND email_normalized >= ").push_bind(prefix);
                        if let Some(end) = prefix_end(prefix) {
                            query.push(" AND email_normalized < ").push_bind(end);
                        }
                        query
                            .push(" AND substr(email_normalized, 1, ")
                            .push_bind(prefix.chars().count() as i32)
                            .push(") = ")
                            .push_bind(prefix);
                    }
                    query.push(" ORDER BY email_normalized LIMIT ").push_bind(limit);
                    let rows = query.build().fetch_all(self.read_pool()).await?;
                    rows.iter().map(Self::user_from_row).collect()
                }

                /// Deletes a user with everything that hangs off them (credentials, sessions, grants,
                /// consents); false when there is no such user in this organization.
                pub(in crate::storage) async fn delete_user(&self, org: &OrgId, user_id: &UserId, audit: &NewAuditEvent) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let gone = sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
                        .bind(user_id)
                        .bind(org)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if gone == 0 {
                        return Ok(false);
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                pub(in crate::storage) async fn member_role(&self, org: &OrgId, user_id: &UserId) -> StoreResult<Option<Role>> {
                    let role: Option<String> =
                        sqlx::query_scalar("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
                            .bind(org)
                            .bind(user_id)
                            .fetch_optional(self.read_pool())
                            .await?;
                    role.map(|r| Role::parse(&r).ok_or_else(|| StoreError::Corrupt(format!("role {r:?}"))))
                        .transpose()
                }

                pub(in crate::storage) async fn list_members(&self, org: &OrgId) -> StoreResult<Vec<Member>> {
                    let rows = sqlx::query(
                        "SELECT m.user_id, u.email, m.role FROM org_members m JOIN users u ON u.id = m.user_id \
                         WHERE m.org_id = $1 AND u.org_id = $1 ORDER BY u.email_normalized",
                    )
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let role: String = row.try_get("role")?;
                            Ok(Member {
                                user_id: row.try_get("user_id")?,
                                email: row.try_get("email")?,
                                role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                            })
                        })
                        .collect()
                }

                /// Bumps the user's session_version inside `tx`; returns the new one.
                pub(in crate::storage) async fn bump_session_version_tx(
                    tx: &mut Tx<'_>,
                    org: &OrgId,
                    user_id: &UserId,
                    now: i64,
                ) -> StoreResult<i64> {
                    let row = sqlx::query(
                        "UPDATE users SET session_version = session_version + 1, updated_at = $3 \
                         WHERE id = $1 AND org_id = $2 RETURNING session_version",
                    )
                    .bind(user_id)
                    .bind(org)
                    .bind(now)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
                    Ok(row.try_get("session_version")?)
                }

                /// Marks the user updated inside `tx` (NotFound unless in this organization); returns the
                /// unchanged session_version.
                pub(in crate::storage) async fn touch_user_tx(
                    tx: &mut Tx<'_>,
                    org: &OrgId,
                    user_id: &UserId,
                    now: i64,
                ) -> StoreResult<i64> {
                    let row = sqlx::query(
                        "UPDATE users SET updated_at = $3 WHERE id = $1 AND org_id = $2 RETURNING session_version",
                    )
                    .bind(user_id)
                    .bind(org)
                    .bind(now)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
                    Ok(row.try_get("session_version")?)
                }

                pub(in crate::storage) async fn bump_session_version(&self, org: &OrgId, user_id: &UserId, audit: &NewAuditEvent) -> StoreResult<i64> {
                    let mut tx = self.write_pool().begin().await?;
                    let version = Self::bump_session_version_tx(&mut tx, org, user_id, self.sealing.clock.now()).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(version)
                }

                pub(in crate::storage) async fn update_user_name(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    name: Option<&str>,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    let done = sqlx::query("UPDATE users SET name = $3, updated_at = $4 WHERE id = $1 AND org_id = $2")
                        .bind(user_id)
                        .bind(org)
                        .bind(name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if done == 0 {
                        return Err(StoreError::NotFound(format!("user {user_id}")));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn set_user_disabled(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    disabled: bool,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<Option<u64>> {
                    let mut tx = self.write_pool().begin().await?;
                    // Disabling also bumps session_version, so every token and session of the user dies with it
                    // and stays dead if the user is enabled again.
                    let changed = sqlx::query(
                        "UPDATE users SET disabled = $3, updated_at = $4, \
                         session_version = session_version + CASE WHEN $3 THEN 1 ELSE 0 END \
                         WHERE id = $1 AND org_id = $2 AND disabled <> $3",
                    )
                    .bind(user_id)
                    .bind(org)
                    .bind(disabled)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    let mut ended = 0;
                    if changed > 0 {
                        if disabled {
                            ended = Self::revoke_all_sessions_tx(&mut tx, org, user_id, now).await?;
                            sqlx::query(
                                "UPDATE token_families SET revoked_at = $3, revoked_reason = 'user_disabled' \
                                 WHERE user_id = $1 AND org_id = $2 AND revoked_at IS NULL",
                            )
                            .bind(user_id)
                            .bind(org)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    }
                    tx.commit().await?;
                    Ok((changed > 0).then_some(ended))
                }

                pub(in crate::storage) async fn register_user(
                    &self,
                    org: &OrgId,
                    user: &User,
                    credentials: &[Credential],
                    verification: &OneTimeToken,
                    email: &OutgoingEmail,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::insert_user_tx(&mut tx, org, user, credentials).await?;
                    Self::insert_one_time_tx(&mut tx, org, verification).await?;
                    Self::insert_email_tx(&mut tx, &self.sealing, org, email).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn verify_email(
                    &self,
                    org: &OrgId,
                    token_hash: &[u8],
                    user_id: &UserId,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    if !Self::consume_one_time_tx(&mut tx, org, token_hash, VERIFY_EMAIL_PURPOSE, now).await? {
                        return Ok(false);
                    }
                    sqlx::query("UPDATE users SET email_verified = TRUE, updated_at = $3 WHERE id = $1 AND org_id = $2")
                        .bind(user_id)
                        .bind(org)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        };
    };
}
pub(super) use user_queries;

impl OrgStore<'_> {
    /// Creates a user with its credentials and, if given, a membership role.
    pub async fn create_user(
        &self,
        user: &User,
        credentials: &[Credential],
        role: Option<Role>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            create_user(self.org, user, credentials, role, audit)
        )
    }

    pub async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        dispatch!(self.backend, user_by_id(self.org, id))
    }

    pub async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>> {
        dispatch!(self.backend, user_by_email(self.org, email_normalized))
    }

    pub async fn list_users(&self) -> StoreResult<Vec<User>> {
        dispatch!(self.backend, list_users(self.org))
    }

    /// Up to `limit` users in email order after the email `after`, those starting with `prefix` only.
    pub async fn users_page(
        &self,
        after: Option<&str>,
        prefix: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<User>> {
        dispatch!(self.backend, users_page(self.org, after, prefix, limit))
    }

    /// Deletes the user and what hangs off them; false when there is none.
    pub async fn delete_user(&self, user_id: &UserId, audit: &NewAuditEvent) -> StoreResult<bool> {
        dispatch!(self.backend, delete_user(self.org, user_id, audit))
    }

    /// The user's role in this organization, if a member.
    pub async fn member_role(&self, user_id: &UserId) -> StoreResult<Option<Role>> {
        dispatch!(self.backend, member_role(self.org, user_id))
    }

    pub async fn list_members(&self) -> StoreResult<Vec<Member>> {
        dispatch!(self.backend, list_members(self.org))
    }

    /// Increments the user's session version (revoking every token and session issued before); returns it.
    pub async fn bump_session_version(
        &self,
        user_id: &UserId,
        audit: &NewAuditEvent,
    ) -> StoreResult<i64> {
        dispatch!(self.backend, bump_session_version(self.org, user_id, audit))
    }

    pub async fn update_user_name(
        &self,
        user_id: &UserId,
        name: Option<&str>,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            update_user_name(self.org, user_id, name, now, audit)
        )
    }

    /// Disables or enables a user. Disabling bumps session_version and ends every session and grant of the
    /// user in the same transaction. `None` when the user was already in that state (nothing written),
    /// otherwise the number of sessions ended.
    pub async fn set_user_disabled(
        &self,
        user_id: &UserId,
        disabled: bool,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<u64>> {
        dispatch!(
            self.backend,
            set_user_disabled(self.org, user_id, disabled, now, audit)
        )
    }

    /// Sign-up: the user, its credentials, the verification token and its email, in one transaction, so an
    /// acknowledged sign-up never loses its email.
    pub async fn register_user(
        &self,
        user: &User,
        credentials: &[Credential],
        verification: &OneTimeToken,
        email: &OutgoingEmail,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            register_user(self.org, user, credentials, verification, email, audit)
        )
    }

    /// Consumes the verification token and marks the user's email verified; false (nothing written) if
    /// the token was not live.
    pub async fn verify_email(
        &self,
        token_hash: &[u8],
        user_id: &UserId,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            verify_email(self.org, token_hash, user_id, now, audit)
        )
    }
}

/// The smallest string greater than every string starting with `prefix`: its last character incremented
/// (`None` when that is not possible, and the range is then open-ended).
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}
