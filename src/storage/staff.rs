//! The control plane's rows: staff memberships (a staff account's role in an organization), admin API keys
//! and team invitations. Memberships, keys and invitations belong to the organization they grant access
//! to, so they sit behind its door; looking a presented secret up (an API key, an invitation link) and
//! listing one staff member's organizations span organizations and sit behind the system door.

use super::prelude::{
    ApiKey, ApiKeyId, Invitation, InvitationId, Membership, NewAuditEvent, Role, StaffMember,
    UserId,
};
use super::{OrgStore, StoreResult, SystemStore, dispatch};

pub(super) const API_KEY_COLUMNS: &str = "id, org_id, name, scopes, secret_hash, previous_hash, previous_valid_until, \
     created_by, created_at, expires_at, revoked_at, last_used_at, last_used_ip";
pub(super) const INVITATION_COLUMNS: &str = "id, org_id, email, email_normalized, role, token_hash, invited_by, \
     created_at, expires_at, accepted_at, revoked_at";

/// Why a membership change was refused by the store's own guard.
pub const LAST_OWNER: &str = "the organization's last owner cannot be removed or demoted";

macro_rules! staff_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::prelude::*;
            use $crate::storage::staff::{API_KEY_COLUMNS, INVITATION_COLUMNS, LAST_OWNER};
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            fn role_of(text: &str) -> StoreResult<Role> {
                Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("role {text:?}")))
            }

            impl $store {
                fn api_key_from_row(row: &$row) -> StoreResult<ApiKey> {
                    Ok(ApiKey {
                        id: row.try_get("id")?,
                        org_id: row.try_get("org_id")?,
                        name: row.try_get("name")?,
                        scopes: parse_json("api_keys.scopes", &row.try_get::<String, _>("scopes")?)?,
                        secret_hash: row.try_get("secret_hash")?,
                        previous_hash: row.try_get("previous_hash")?,
                        previous_valid_until: row.try_get("previous_valid_until")?,
                        created_by: row.try_get("created_by")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                        revoked_at: row.try_get("revoked_at")?,
                        last_used_at: row.try_get("last_used_at")?,
                        last_used_ip: row.try_get("last_used_ip")?,
                    })
                }

                fn invitation_from_row(row: &$row) -> StoreResult<Invitation> {
                    Ok(Invitation {
                        id: row.try_get("id")?,
                        org_id: row.try_get("org_id")?,
                        email: row.try_get("email")?,
                        email_normalized: row.try_get("email_normalized")?,
                        role: role_of(&row.try_get::<String, _>("role")?)?,
                        token_hash: row.try_get("token_hash")?,
                        invited_by: row.try_get("invited_by")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                        accepted_at: row.try_get("accepted_at")?,
                        revoked_at: row.try_get("revoked_at")?,
                    })
                }

                /// Takes the organization's row lock for the rest of `tx`, so concurrent membership
                /// changes of one organization run one after the other and the last-owner guard holds.
                async fn lock_org_tx(tx: &mut Tx<'_>, org: &OrgId) -> StoreResult<()> {
                    let found = sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
                        .bind(org)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                    if found == 0 {
                        return Err(StoreError::NotFound(format!("organization {org}")));
                    }
                    Ok(())
                }

                async fn owners_tx(tx: &mut Tx<'_>, org: &OrgId) -> StoreResult<i64> {
                    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM staff_memberships WHERE org_id = $1 AND role = 'owner'")
                        .bind(org)
                        .fetch_one(&mut **tx)
                        .await?)
                }

                async fn upsert_membership_tx(tx: &mut Tx<'_>, org: &OrgId, staff_id: &UserId, role: Role, now: i64) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO staff_memberships (org_id, staff_id, role, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (org_id, staff_id) DO UPDATE SET role = excluded.role",
                    )
                    .bind(org)
                    .bind(staff_id)
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn add_membership(
                    &self,
                    org: &OrgId,
                    staff_id: &UserId,
                    role: Role,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::lock_org_tx(&mut tx, org).await?;
                    Self::upsert_membership_tx(&mut tx, org, staff_id, role, now).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn membership_role(&self, org: &OrgId, staff_id: &UserId) -> StoreResult<Option<Role>> {
                    let role: Option<String> =
                        sqlx::query_scalar("SELECT role FROM staff_memberships WHERE org_id = $1 AND staff_id = $2")
                            .bind(org)
                            .bind(staff_id)
                            .fetch_optional(self.read_pool())
                            .await?;
                    role.as_deref().map(role_of).transpose()
                }

                pub(in crate::storage) async fn list_staff(&self, org: &OrgId) -> StoreResult<Vec<StaffMember>> {
                    let rows = sqlx::query(
                        "SELECT m.org_id, m.staff_id, u.email, u.name, m.role, m.created_at \
                         FROM staff_memberships m JOIN users u ON u.id = m.staff_id \
                         WHERE m.org_id = $1 ORDER BY u.email_normalized",
                    )
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(StaffMember {
                                org_id: row.try_get("org_id")?,
                                staff_id: row.try_get("staff_id")?,
                                email: row.try_get("email")?,
                                name: row.try_get("name")?,
                                role: role_of(&row.try_get::<String, _>("role")?)?,
                                created_at: row.try_get("created_at")?,
                            })
                        })
                        .collect()
                }

                /// Changes a member's role (`Some`) or removes them (`None`); false when they are not a
                /// member. Refused with a conflict when it would leave the organization without an owner.
                pub(in crate::storage) async fn change_membership(
                    &self,
                    org: &OrgId,
                    staff_id: &UserId,
                    role: Option<Role>,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::lock_org_tx(&mut tx, org).await?;
                    let changed = match role {
                        Some(role) => sqlx::query("UPDATE staff_memberships SET role = $3 WHERE org_id = $1 AND staff_id = $2")
                            .bind(org)
                            .bind(staff_id)
                            .bind(role.as_str())
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                        None => sqlx::query("DELETE FROM staff_memberships WHERE org_id = $1 AND staff_id = $2")
                            .bind(org)
                            .bind(staff_id)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                    };
                    if changed == 0 {
                        return Ok(false);
                    }
                    if Self::owners_tx(&mut tx, org).await? == 0 {
                        return Err(StoreError::Conflict(LAST_OWNER.into()));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                pub(in crate::storage) async fn memberships_of(&self, staff_id: &UserId) -> StoreResult<Vec<Membership>> {
                    let rows = sqlx::query(
                        "SELECT o.id, o.slug, o.name, m.role FROM staff_memberships m \
                         JOIN organizations o ON o.id = m.org_id WHERE m.staff_id = $1 ORDER BY o.slug",
                    )
                    .bind(staff_id)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(Membership {
                                org_id: row.try_get("id")?,
                                slug: row.try_get("slug")?,
                                name: row.try_get("name")?,
                                role: role_of(&row.try_get::<String, _>("role")?)?,
                            })
                        })
                        .collect()
                }

                pub(in crate::storage) async fn create_api_key(&self, org: &OrgId, key: &ApiKey, audit: &NewAuditEvent) -> StoreResult<()> {
                    belongs(org, &key.org_id, "API key")?;
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query(&format!(
                        "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                    ))
                    .bind(&key.id)
                    .bind(org)
                    .bind(&key.name)
                    .bind(json_list(&key.scopes))
                    .bind(&key.secret_hash)
                    .bind(&key.previous_hash)
                    .bind(key.previous_valid_until)
                    .bind(&key.created_by)
                    .bind(key.created_at)
                    .bind(key.expires_at)
                    .bind(key.revoked_at)
                    .bind(key.last_used_at)
                    .bind(&key.last_used_ip)
                    .execute(&mut *tx)
                    .await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn api_key(&self, org: &OrgId, id: &ApiKeyId) -> StoreResult<Option<ApiKey>> {
                    let row = sqlx::query(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1 AND org_id = $2"))
                        .bind(id)
                        .bind(org)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::api_key_from_row).transpose()
                }

                /// The key whose current or (still valid) previous secret has this hash.
                pub(in crate::storage) async fn api_key_by_hash(&self, hash: &[u8], now: i64) -> StoreResult<Option<ApiKey>> {
                    let row = sqlx::query(&format!(
                        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1 \
                         UNION ALL SELECT {API_KEY_COLUMNS} FROM api_keys WHERE previous_hash = $1 AND previous_valid_until > $2"
                    ))
                    .bind(hash)
                    .bind(now)
                    .fetch_optional(self.read_pool())
                    .await?;
                    row.as_ref().map(Self::api_key_from_row).transpose()
                }

                pub(in crate::storage) async fn list_api_keys(&self, org: &OrgId) -> StoreResult<Vec<ApiKey>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at, id"
                    ))
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::api_key_from_row).collect()
                }

                /// Replaces a live key's secret; the old one keeps working until `previous_valid_until`.
                pub(in crate::storage) async fn rotate_api_key(
                    &self,
                    org: &OrgId,
                    id: &ApiKeyId,
                    secret_hash: &[u8],
                    previous_valid_until: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let changed = sqlx::query(
                        "UPDATE api_keys SET previous_hash = secret_hash, previous_valid_until = $4, secret_hash = $3 \
                         WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(org)
                    .bind(secret_hash)
                    .bind(previous_valid_until)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 0 {
                        return Ok(false);
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                pub(in crate::storage) async fn revoke_api_key(&self, org: &OrgId, id: &ApiKeyId, now: i64, audit: &NewAuditEvent) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let changed = sqlx::query(
                        "UPDATE api_keys SET revoked_at = $3, previous_hash = NULL, previous_valid_until = NULL \
                         WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(org)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 0 {
                        return Ok(false);
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                /// Notes a use (bookkeeping, not audited: each request the key makes is audited itself).
                pub(in crate::storage) async fn touch_api_key(&self, org: &OrgId, id: &ApiKeyId, now: i64, ip: Option<&str>) -> StoreResult<()> {
                    sqlx::query("UPDATE api_keys SET last_used_at = $3, last_used_ip = $4 WHERE id = $1 AND org_id = $2")
                        .bind(id)
                        .bind(org)
                        .bind(now)
                        .bind(ip)
                        .execute(self.write_pool())
                        .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn create_invitation(
                    &self,
                    org: &OrgId,
                    invitation: &Invitation,
                    email: &OutgoingEmail,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    belongs(org, &invitation.org_id, "invitation")?;
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query(&format!(
                        "INSERT INTO invitations ({INVITATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    ))
                    .bind(&invitation.id)
                    .bind(org)
                    .bind(&invitation.email)
                    .bind(&invitation.email_normalized)
                    .bind(invitation.role.as_str())
                    .bind(&invitation.token_hash)
                    .bind(&invitation.invited_by)
                    .bind(invitation.created_at)
                    .bind(invitation.expires_at)
                    .bind(invitation.accepted_at)
                    .bind(invitation.revoked_at)
                    .execute(&mut *tx)
                    .await?;
                    Self::insert_email_tx(&mut tx, &self.sealing, org, email).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn list_invitations(&self, org: &OrgId) -> StoreResult<Vec<Invitation>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = $1 \
                         AND accepted_at IS NULL AND revoked_at IS NULL ORDER BY created_at, id"
                    ))
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::invitation_from_row).collect()
                }

                pub(in crate::storage) async fn invitation_by_hash(&self, hash: &[u8]) -> StoreResult<Option<Invitation>> {
                    let row = sqlx::query(&format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1"))
                        .bind(hash)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::invitation_from_row).transpose()
                }

                pub(in crate::storage) async fn revoke_invitation(&self, org: &OrgId, id: &InvitationId, now: i64, audit: &NewAuditEvent) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let changed = sqlx::query(
                        "UPDATE invitations SET revoked_at = $3 WHERE id = $1 AND org_id = $2 \
                         AND accepted_at IS NULL AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(org)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 0 {
                        return Ok(false);
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                /// Uses an open invitation once: marks it accepted and gives `staff_id` its role, in one
                /// transaction; false when it was used, revoked or expired meanwhile.
                pub(in crate::storage) async fn accept_invitation(
                    &self,
                    org: &OrgId,
                    id: &InvitationId,
                    staff_id: &UserId,
                    role: Role,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::lock_org_tx(&mut tx, org).await?;
                    let used = sqlx::query(
                        "UPDATE invitations SET accepted_at = $3 WHERE id = $1 AND org_id = $2 \
                         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
                    )
                    .bind(id)
                    .bind(org)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if used == 0 {
                        return Ok(false);
                    }
                    Self::upsert_membership_tx(&mut tx, org, staff_id, role, now).await?;
                    if Self::owners_tx(&mut tx, org).await? == 0 {
                        return Err(StoreError::Conflict(LAST_OWNER.into()));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        };
    };
}
pub(super) use staff_queries;

impl OrgStore<'_> {
    /// Gives a staff account a role in this organization (or changes the one it has).
    pub async fn add_membership(
        &self,
        staff_id: &UserId,
        role: Role,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            add_membership(self.org, staff_id, role, now, audit)
        )
    }

    pub async fn membership_role(&self, staff_id: &UserId) -> StoreResult<Option<Role>> {
        dispatch!(self.backend, membership_role(self.org, staff_id))
    }

    /// The organization's team, by email.
    pub async fn list_staff(&self) -> StoreResult<Vec<StaffMember>> {
        dispatch!(self.backend, list_staff(self.org))
    }

    /// Changes a member's role, or removes them with `None`; false when not a member. Refuses (conflict)
    /// to leave the organization without an owner, checked under the organization's row lock.
    pub async fn change_membership(
        &self,
        staff_id: &UserId,
        role: Option<Role>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            change_membership(self.org, staff_id, role, audit)
        )
    }

    pub async fn create_api_key(&self, key: &ApiKey, audit: &NewAuditEvent) -> StoreResult<()> {
        dispatch!(self.backend, create_api_key(self.org, key, audit))
    }

    pub async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>> {
        dispatch!(self.backend, api_key(self.org, id))
    }

    pub async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        dispatch!(self.backend, list_api_keys(self.org))
    }

    pub async fn rotate_api_key(
        &self,
        id: &ApiKeyId,
        secret_hash: &[u8],
        previous_valid_until: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            rotate_api_key(self.org, id, secret_hash, previous_valid_until, audit)
        )
    }

    pub async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(self.backend, revoke_api_key(self.org, id, now, audit))
    }

    pub async fn touch_api_key(
        &self,
        id: &ApiKeyId,
        now: i64,
        ip: Option<&str>,
    ) -> StoreResult<()> {
        dispatch!(self.backend, touch_api_key(self.org, id, now, ip))
    }

    /// Records an invitation and queues its email, in one transaction.
    pub async fn create_invitation(
        &self,
        invitation: &Invitation,
        email: &crate::model::email::OutgoingEmail,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            create_invitation(self.org, invitation, email, audit)
        )
    }

    /// Pending invitations (neither accepted nor revoked; expired ones included, shown as such).
    pub async fn list_invitations(&self) -> StoreResult<Vec<Invitation>> {
        dispatch!(self.backend, list_invitations(self.org))
    }

    pub async fn revoke_invitation(
        &self,
        id: &InvitationId,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(self.backend, revoke_invitation(self.org, id, now, audit))
    }

    pub async fn accept_invitation(
        &self,
        id: &InvitationId,
        staff_id: &UserId,
        role: Role,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        dispatch!(
            self.backend,
            accept_invitation(self.org, id, staff_id, role, now, audit)
        )
    }
}

impl SystemStore<'_> {
    /// The API key a presented secret belongs to, in whichever organization: the Bearer header names no
    /// organization, so the lookup cannot be behind one door. The caller binds the key to its org.
    pub async fn api_key_by_hash(&self, hash: &[u8], now: i64) -> StoreResult<Option<ApiKey>> {
        dispatch!(self.backend, api_key_by_hash(hash, now))
    }

    /// The invitation a link's token belongs to (the link names no organization).
    pub async fn invitation_by_hash(&self, hash: &[u8]) -> StoreResult<Option<Invitation>> {
        dispatch!(self.backend, invitation_by_hash(hash))
    }

    /// Every organization a staff account is a member of, with its role there.
    pub async fn memberships_of(&self, staff_id: &UserId) -> StoreResult<Vec<Membership>> {
        dispatch!(self.backend, memberships_of(staff_id))
    }
}
