//! The embedded default: SQLite in WAL mode with foreign keys on and `synchronous = FULL`, so an
//! acknowledged write is on disk before the answer leaves (it survives `kill -9` and power loss).
//!
//! SQLite allows one writer at a time. Writes go through a single-connection pool, so they queue in-process
//! instead of failing with SQLITE_BUSY; reads use a separate pool and run concurrently thanks to WAL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};

use super::migrate;
use super::{Store, StoreError, StoreResult, StoreSealing};
use crate::apps::{Application, ClientType, GrantType};
use crate::audit::{AuditEvent, CHAIN_LEGACY, GENESIS_HASH, NewAuditEvent};
use crate::email::{OutboxEntry, OutgoingEmail};
use crate::keys::{KeyState, SigningKeyRecord};
use crate::oauth::records::{AuthorizationCode, Grant, RefreshToken};
use crate::onetime::OneTimeToken;
use crate::orgs::{Organization, Role};
use crate::sessions::Session;
use crate::users::{Credential, CredentialKind, Member, User};

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    sealing: Arc<StoreSealing>,
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    pub async fn connect(url: &str, sealing: Arc<StoreSealing>) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = connect_with_retry(pool_options(1), &options).await?;
        let reader = connect_with_retry(pool_options(8), &options).await?;
        Ok(Self {
            writer,
            reader,
            sealing,
        })
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    fn read_pool(&self) -> &SqlitePool {
        &self.reader
    }

    async fn close_impl(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    async fn migrate_impl(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.writer.acquire().await?;
        sqlx::query(migrate::CREATE_TABLE)
            .execute(&mut *conn)
            .await?;
        let mut applied = Vec::new();
        for m in migrate::SQLITE {
            // BEGIN IMMEDIATE takes the write lock up front, so two processes migrating at once serialize.
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            match apply_migration(&mut conn, m).await {
                Ok(ran) => {
                    sqlx::query("COMMIT").execute(&mut *conn).await?;
                    if ran {
                        applied.push(m.name.to_string());
                    }
                }
                Err(e) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    return Err(StoreError::Database(e));
                }
            }
        }
        Ok(applied)
    }
}

/// SQLite connections are files in this process: there is no server that could have dropped them, so
/// the pool's ping before every acquire (a round trip to the connection's worker thread, one more per
/// audit batch and per query) is skipped.
fn pool_options(max_connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
}

/// Switching a fresh database to WAL needs a moment of exclusive access, and SQLite answers "database is
/// locked" at once instead of waiting when several processes open a new database together. Retry briefly.
async fn connect_with_retry(
    pool: SqlitePoolOptions,
    options: &SqliteConnectOptions,
) -> StoreResult<SqlitePool> {
    let mut attempt = 0;
    loop {
        match pool.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(sqlx::Error::Database(e)) if attempt < 50 && e.message().contains("locked") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 + 10 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Applies `m` unless it already was; returns whether it ran. The caller holds the transaction.
async fn apply_migration(
    conn: &mut SqliteConnection,
    m: &migrate::Migration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("SELECT 1 FROM latchkey_migrations WHERE version = $1")
        .bind(m.version)
        .fetch_optional(&mut *conn)
        .await?;
    if done.is_some() {
        return Ok(false);
    }
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(m.sql)).await?;
    sqlx::query("INSERT INTO latchkey_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
        .bind(m.version)
        .bind(m.name)
        .bind(crate::time_now())
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

super::sql::impl_store!(SqliteStore, sqlx::Sqlite, SqliteRow);
