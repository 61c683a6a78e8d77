//! Organizations: the directory (system-wide) and each organization's own name and settings.

use super::prelude::{NewAuditEvent, Organization, SigningKeyRecord};
use super::{OrgStore, StoreResult, SystemStore, dispatch};

pub(super) const ORG_COLUMNS: &str = "id, slug, name, settings, created_at, updated_at";

macro_rules! org_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::orgs::ORG_COLUMNS;
            use $crate::storage::prelude::*;

            impl $store {
                fn org_from_row(row: &$row) -> StoreResult<Organization> {
                    Ok(Organization {
                        id: row.try_get("id")?,
                        slug: row.try_get("slug")?,
                        name: row.try_get("name")?,
                        settings: parse_json("organizations.settings", &row.try_get::<String, _>("settings")?)?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                }

                pub(in crate::storage) async fn create_org(
                    &self,
                    org: &Organization,
                    keys: &[SigningKeyRecord],
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    sqlx::query(&format!("INSERT INTO organizations ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
                        .bind(&org.id)
                        .bind(&org.slug)
                        .bind(&org.name)
                        .bind(serde_json::to_string(&org.settings).unwrap_or_else(|_| "{}".into()))
                        .bind(org.created_at)
                        .bind(org.updated_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| conflict_or(e, &format!("an organization with slug {:?}", org.slug)))?;
                    for key in keys {
                        Self::insert_key_tx(&mut tx, &org.id, key).await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, &org.id, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
                    let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE slug = $1"))
                        .bind(slug)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::org_from_row).transpose()
                }

                pub(in crate::storage) async fn org_by_id(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
                    let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::org_from_row).transpose()
                }

                pub(in crate::storage) async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
                    let rows = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY slug"))
                        .fetch_all(self.read_pool())
                        .await?;
                    rows.iter().map(Self::org_from_row).collect()
                }

                pub(in crate::storage) async fn orgs_page(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<Organization>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {ORG_COLUMNS} FROM organizations WHERE slug > $1 ORDER BY slug LIMIT $2"
                    ))
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::org_from_row).collect()
                }

                /// Deletes an organization and, by cascade, everything it owns but its audit log (append-only,
                /// kept so its history stays verifiable). `audit` goes into its chain first.
                pub(in crate::storage) async fn delete_org(&self, tenant: &OrgId, audit: &NewAuditEvent) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, tenant, audit).await?;
                    let gone = sqlx::query("DELETE FROM organizations WHERE id = $1")
                        .bind(tenant)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if gone == 0 {
                        return Ok(false);
                    }
                    tx.commit().await?;
                    Ok(true)
                }

                pub(in crate::storage) async fn update_org(
                    &self,
                    tenant: &OrgId,
                    org: &Organization,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    belongs(tenant, &org.id, "organization")?;
                    let mut tx = self.write_pool().begin().await?;
                    let settings = serde_json::to_string(&org.settings)
                        .map_err(|e| StoreError::Corrupt(format!("organization settings: {e}")))?;
                    let done = sqlx::query("UPDATE organizations SET name = $2, settings = $3, updated_at = $4 WHERE id = $1")
                        .bind(tenant)
                        .bind(&org.name)
                        .bind(settings)
                        .bind(org.updated_at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if done == 0 {
                        return Err(StoreError::NotFound(format!("organization {}", org.slug)));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, tenant, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        };
    };
}
pub(super) use org_queries;

impl SystemStore<'_> {
    /// Creates an organization with its first signing keys, audited in the same transaction.
    pub async fn create_org(
        &self,
        org: &Organization,
        keys: &[SigningKeyRecord],
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(self.backend, create_org(org, keys, audit))
    }

    pub async fn org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        dispatch!(self.backend, org_by_slug(slug))
    }

    pub async fn org_by_id(&self, id: &crate::kernel::OrgId) -> StoreResult<Option<Organization>> {
        dispatch!(self.backend, org_by_id(id))
    }

    /// Every organization, by slug.
    pub async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
        dispatch!(self.backend, list_orgs())
    }

    /// Up to `limit` organizations by slug after the slug `after`.
    pub async fn orgs_page(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Organization>> {
        dispatch!(self.backend, orgs_page(after, limit))
    }
}

impl OrgStore<'_> {
    /// Replaces this organization's name and settings.
    pub async fn update_org(&self, org: &Organization, audit: &NewAuditEvent) -> StoreResult<()> {
        dispatch!(self.backend, update_org(self.org, org, audit))
    }

    /// Deletes this organization and everything it owns except its audit log; false when already gone.
    pub async fn delete_org(&self, audit: &NewAuditEvent) -> StoreResult<bool> {
        dispatch!(self.backend, delete_org(self.org, audit))
    }
}
