//! PostgreSQL, for deployments with several stateless instances. One pooled connection set serves reads
//! and writes; migrations take an advisory lock so instances starting together apply them once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};

use super::migrate;
use super::{StoreResult, StoreSealing};

/// Arbitrary but fixed: the advisory lock id that serializes migrations across instances.
const MIGRATION_LOCK_ID: i64 = 0x6c61_7463_686b_6579; // "latchkey"

pub struct PgStore {
    pool: PgPool,
    sealing: Arc<StoreSealing>,
}

impl PgStore {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        sealing: Arc<StoreSealing>,
    ) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("latchkey");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool, sealing })
    }

    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    fn read_pool(&self) -> &PgPool {
        &self.pool
    }

    async fn close_impl(&self) {
        self.pool.close().await;
    }

    async fn migrate_impl(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_ID)
            .execute(&mut *conn)
            .await?;
        let result = apply_migrations(&mut conn).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_ID)
            .execute(&mut *conn)
            .await;
        Ok(result?)
    }
}

/// Applies pending migrations, each in its own transaction. The caller holds the advisory lock.
async fn apply_migrations(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(migrate::CREATE_TABLE)
        .execute(&mut *conn)
        .await?;
    let mut applied = Vec::new();
    for m in migrate::POSTGRES {
        let done = sqlx::query("SELECT 1 FROM latchkey_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *conn)
            .await?;
        if done.is_some() {
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(m.sql)).await?;
        sqlx::query(
            "INSERT INTO latchkey_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(crate::time_now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        applied.push(m.name.to_string());
    }
    Ok(applied)
}

// The queries, written once in each aggregate's file.
super::instance::instance_queries!(PgStore, sqlx::Postgres, PgRow);
super::orgs::org_queries!(PgStore, sqlx::Postgres, PgRow);
super::apps::app_queries!(PgStore, sqlx::Postgres, PgRow);
super::users::user_queries!(PgStore, sqlx::Postgres, PgRow);
super::credentials::credential_queries!(PgStore, sqlx::Postgres, PgRow);
super::sessions::session_queries!(PgStore, sqlx::Postgres, PgRow);
super::onetime::one_time_queries!(PgStore, sqlx::Postgres, PgRow);
super::consents::consent_queries!(PgStore, sqlx::Postgres, PgRow);
super::grants::grant_queries!(PgStore, sqlx::Postgres, PgRow);
super::keys::key_queries!(PgStore, sqlx::Postgres, PgRow);
super::outbox::outbox_queries!(PgStore, sqlx::Postgres, PgRow);
super::audit::audit_queries!(PgStore, sqlx::Postgres, PgRow);
super::staff::staff_queries!(PgStore, sqlx::Postgres, PgRow);
super::idempotency::idempotency_queries!(PgStore, sqlx::Postgres, PgRow);
