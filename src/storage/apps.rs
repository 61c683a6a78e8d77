//! Applications (OAuth clients) of one organization.

use super::prelude::{AppId, Application, NewAuditEvent};
use super::{OrgStore, StoreResult, dispatch};

pub(super) const APP_COLUMNS: &str = "id, org_id, client_id, name, client_type, client_secret_hash, redirect_uris, \
     post_logout_redirect_uris, grant_types, cors_origins, first_party, settings, created_at, updated_at, \
     previous_secret_hash, previous_secret_valid_until";

macro_rules! app_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::apps::APP_COLUMNS;
            use $crate::storage::prelude::*;

            impl $store {
                fn app_from_row(row: &$row) -> StoreResult<Application> {
                    let client_type: String = row.try_get("client_type")?;
                    let grant_names: Vec<String> = parse_json("applications.grant_types", &row.try_get::<String, _>("grant_types")?)?;
                    Ok(Application {
                        id: row.try_get("id")?,
                        org_id: row.try_get("org_id")?,
                        client_id: row.try_get("client_id")?,
                        name: row.try_get("name")?,
                        client_type: ClientType::parse(&client_type)
                            .ok_or_else(|| StoreError::Corrupt(format!("applications.client_type {client_type:?}")))?,
                        client_secret_hash: row.try_get("client_secret_hash")?,
                        previous_secret_hash: row.try_get("previous_secret_hash")?,
                        previous_secret_valid_until: row.try_get("previous_secret_valid_until")?,
                        redirect_uris: parse_json("applications.redirect_uris", &row.try_get::<String, _>("redirect_uris")?)?,
                        post_logout_redirect_uris: parse_json(
                            "applications.post_logout_redirect_uris",
                            &row.try_get::<String, _>("post_logout_redirect_uris")?,
                        )?,
                        grant_types: grant_names
                            .iter()
                            .map(|g| GrantType::parse(g).ok_or_else(|| StoreError::Corrupt(format!("grant type {g:?}"))))
                            .collect::<StoreResult<_>>()?,
                        cors_origins: parse_json("applications.cors_origins", &row.try_get::<String, _>("cors_origins")?)?,
                        first_party: row.try_get("first_party")?,
                        settings: parse_json("applications.settings", &row.try_get::<String, _>("settings")?)?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                }

                pub(in crate::storage) async fn create_app(&self, org: &OrgId, app: &Application, audit: &NewAuditEvent) -> StoreResult<()> {
                    belongs(org, &app.org_id, "application")?;
                    let mut tx = self.write_pool().begin().await?;
                    let grants: Vec<&str> = app.grant_types.iter().map(|g| g.as_str()).collect();
                    sqlx::query(&format!(
                        "INSERT INTO applications ({APP_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                    ))
                    .bind(&app.id)
                    .bind(org)
                    .bind(&app.client_id)
                    .bind(&app.name)
                    .bind(app.client_type.as_str())
                    .bind(&app.client_secret_hash)
                    .bind(json_list(&app.redirect_uris))
                    .bind(json_list(&app.post_logout_redirect_uris))
                    .bind(json_list(&grants))
                    .bind(json_list(&app.cors_origins))
                    .bind(app.first_party)
                    .bind(serde_json::to_string(&app.settings).unwrap_or_else(|_| "{}".into()))
                    .bind(app.created_at)
                    .bind(app.updated_at)
                    .bind(&app.previous_secret_hash)
                    .bind(app.previous_secret_valid_until)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict_or(e, "an application with this client_id"))?;
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn app_by_client_id(&self, org: &OrgId, client_id: &str) -> StoreResult<Option<Application>> {
                    let row = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM applications WHERE org_id = $1 AND client_id = $2"))
                        .bind(org)
                        .bind(client_id)
                        .fetch_optional(self.read_pool())
                        .await?;
                    row.as_ref().map(Self::app_from_row).transpose()
                }

                pub(in crate::storage) async fn list_apps(&self, org: &OrgId) -> StoreResult<Vec<Application>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {APP_COLUMNS} FROM applications WHERE org_id = $1 ORDER BY created_at, name"
                    ))
                    .bind(org)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::app_from_row).collect()
                }

                pub(in crate::storage) async fn delete_app(&self, org: &OrgId, app_id: &AppId, audit: &NewAuditEvent) -> StoreResult<bool> {
                    let mut tx = self.write_pool().begin().await?;
                    let gone = sqlx::query("DELETE FROM applications WHERE id = $1 AND org_id = $2")
                        .bind(app_id)
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

                pub(in crate::storage) async fn update_app(&self, org: &OrgId, app: &Application, audit: &NewAuditEvent) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    let done = sqlx::query(
                        "UPDATE applications SET name = $3, redirect_uris = $4, post_logout_redirect_uris = $5, \
                         cors_origins = $6, first_party = $7, settings = $8, updated_at = $9, grant_types = $10 \
                         WHERE id = $1 AND org_id = $2",
                    )
                    .bind(&app.id)
                    .bind(org)
                    .bind(&app.name)
                    .bind(json_list(&app.redirect_uris))
                    .bind(json_list(&app.post_logout_redirect_uris))
                    .bind(json_list(&app.cors_origins))
                    .bind(app.first_party)
                    .bind(serde_json::to_string(&app.settings).unwrap_or_else(|_| "{}".into()))
                    .bind(app.updated_at)
                    .bind(json_list(&app.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>()))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if done == 0 {
                        return Err(StoreError::NotFound(format!("application {}", app.client_id)));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn replace_client_secret(
                    &self,
                    org: &OrgId,
                    app_id: &AppId,
                    secret_hash: &[u8],
                    now: i64,
                    previous_valid_until: Option<i64>,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    // With an overlap the old secret moves aside and keeps working until then.
                    let changed = sqlx::query(
                        "UPDATE applications SET \
                         previous_secret_hash = CASE WHEN $5 > $4 THEN client_secret_hash ELSE NULL END, \
                         previous_secret_valid_until = CASE WHEN $5 > $4 THEN $5 ELSE NULL END, \
                         client_secret_hash = $3, updated_at = $4 WHERE id = $1 AND org_id = $2",
                    )
                    .bind(app_id)
                    .bind(org)
                    .bind(secret_hash)
                    .bind(now)
                    .bind(previous_valid_until.unwrap_or(0))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 0 {
                        return Err(StoreError::NotFound(format!("application {app_id}")));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        };
    };
}
pub(super) use app_queries;

impl OrgStore<'_> {
    pub async fn create_app(&self, app: &Application, audit: &NewAuditEvent) -> StoreResult<()> {
        dispatch!(self.backend, create_app(self.org, app, audit))
    }

    /// This organization's application with this `client_id`; another organization's is `None`.
    pub async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<Application>> {
        dispatch!(self.backend, app_by_client_id(self.org, client_id))
    }

    pub async fn list_apps(&self) -> StoreResult<Vec<Application>> {
        dispatch!(self.backend, list_apps(self.org))
    }

    /// Writes an application's changeable fields (name, URIs, origins, first-party flag, settings).
    pub async fn update_app(&self, app: &Application, audit: &NewAuditEvent) -> StoreResult<()> {
        dispatch!(self.backend, update_app(self.org, app, audit))
    }

    /// Replaces a confidential application's client secret hash.
    pub async fn replace_client_secret(
        &self,
        app_id: &AppId,
        secret_hash: &[u8],
        now: i64,
        previous_valid_until: Option<i64>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            replace_client_secret(
                self.org,
                app_id,
                secret_hash,
                now,
                previous_valid_until,
                audit
            )
        )
    }

    /// Deletes an application with its grants and tokens; false when there is none.
    pub async fn delete_app(&self, app_id: &AppId, audit: &NewAuditEvent) -> StoreResult<bool> {
        dispatch!(self.backend, delete_app(self.org, app_id, audit))
    }
}
