//! The instance itself, not a tenant: health probes, migrations, instance metadata (the master-key check).

use super::{Db, StoreResult, dispatch};

macro_rules! instance_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::prelude::*;

            impl $store {
                pub(in crate::storage) async fn ping(&self) -> StoreResult<()> {
                    sqlx::query("SELECT 1").execute(self.read_pool()).await?;
                    Ok(())
                }

                pub(in crate::storage) async fn probe_write(&self) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO instance_meta (key, value) VALUES ('write_probe', $1) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .bind($crate::time_now().to_be_bytes().to_vec())
                    .execute(self.write_pool())
                    .await?;
                    Ok(())
                }

                pub(in crate::storage) async fn migrate(&self) -> StoreResult<Vec<String>> {
                    self.migrate_impl().await
                }

                pub(in crate::storage) async fn close(&self) {
                    self.close_impl().await
                }

                pub(in crate::storage) async fn meta_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
                    let row = sqlx::query("SELECT value FROM instance_meta WHERE key = $1")
                        .bind(key)
                        .fetch_optional(self.read_pool())
                        .await?;
                    Ok(match row {
                        Some(row) => Some(row.try_get("value")?),
                        None => None,
                    })
                }

                pub(in crate::storage) async fn meta_insert_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<()> {
                    sqlx::query("INSERT INTO instance_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                        .bind(key)
                        .bind(value)
                        .execute(self.write_pool())
                        .await?;
                    Ok(())
                }
            }
        };
    };
}
pub(super) use instance_queries;

impl Db {
    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match &*self.backend {
            super::Backend::Sqlite(_) => "sqlite",
            super::Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        dispatch!(&*self.backend, ping())
    }

    /// Writes and commits one small row (an `instance_meta` entry): the database takes writes right now,
    /// which a read ping cannot tell (a full disk, a read-only standby).
    pub async fn probe_write(&self) -> StoreResult<()> {
        dispatch!(&*self.backend, probe_write())
    }

    /// Applies pending migrations; returns the names of those applied now.
    pub async fn migrate(&self) -> StoreResult<Vec<String>> {
        dispatch!(&*self.backend, migrate())
    }

    pub async fn close(&self) {
        dispatch!(&*self.backend, close())
    }

    pub async fn meta_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        dispatch!(&*self.backend, meta_get(key))
    }

    pub async fn meta_insert_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        dispatch!(&*self.backend, meta_insert_if_absent(key, value))
    }
}
