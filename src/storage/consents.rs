//! Consents: the scopes a user of one organization granted to one of its applications.

use super::prelude::{AppId, NewAuditEvent, UserId};
use super::{OrgStore, StoreResult, dispatch};

macro_rules! consent_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::prelude::*;

            impl $store {
                pub(in crate::storage) async fn consent_scope(&self, org: &OrgId, user_id: &UserId, app_id: &AppId) -> StoreResult<Option<String>> {
                    let row = sqlx::query(
                        "SELECT scope FROM consents WHERE user_id = $1 AND app_id = $2 \
                         AND EXISTS (SELECT 1 FROM users WHERE users.id = consents.user_id AND users.org_id = $3)",
                    )
                    .bind(user_id)
                    .bind(app_id)
                    .bind(org)
                    .fetch_optional(self.read_pool())
                    .await?;
                    Ok(match row {
                        Some(row) => Some(row.try_get("scope")?),
                        None => None,
                    })
                }

                pub(in crate::storage) async fn save_consent(
                    &self,
                    org: &OrgId,
                    user_id: &UserId,
                    app_id: &AppId,
                    scope: &str,
                    now: i64,
                    audit: &NewAuditEvent,
                ) -> StoreResult<()> {
                    let mut tx = self.write_pool().begin().await?;
                    // Only a user and an application of this organization can be linked.
                    let saved = sqlx::query(
                        "INSERT INTO consents (user_id, app_id, scope, created_at) \
                         SELECT u.id, a.id, $3, $4 FROM users u JOIN applications a ON a.org_id = u.org_id \
                         WHERE u.id = $1 AND a.id = $2 AND u.org_id = $5 \
                         ON CONFLICT (user_id, app_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
                    )
                    .bind(user_id)
                    .bind(app_id)
                    .bind(scope)
                    .bind(now)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if saved == 0 {
                        return Err(StoreError::NotFound(format!("user {user_id} or application {app_id}")));
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, org, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        };
    };
}
pub(super) use consent_queries;

impl OrgStore<'_> {
    /// The scope the user consented to for the application, if any.
    pub async fn consent_scope(
        &self,
        user_id: &UserId,
        app_id: &AppId,
    ) -> StoreResult<Option<String>> {
        dispatch!(self.backend, consent_scope(self.org, user_id, app_id))
    }

    pub async fn save_consent(
        &self,
        user_id: &UserId,
        app_id: &AppId,
        scope: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        dispatch!(
            self.backend,
            save_consent(self.org, user_id, app_id, scope, now, audit)
        )
    }
}
