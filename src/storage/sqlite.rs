//! The embedded default: SQLite in WAL mode with foreign keys on and `synchronous = FULL`, so an
//! acknowledged write is on disk before the answer leaves (it survives `kill -9` and power loss).
//!
//! SQLite allows one writer at a time. Writes go through a single-connection pool, so they queue in-process
//! instead of failing with SQLITE_BUSY; reads use a separate pool and run concurrently thanks to WAL.
//!
//! The writer connection is checked each time it is given back: one left inside a transaction (a COMMIT
//! that failed on a full disk, and the ROLLBACK after it) is closed, never reused. The database files are
//! readable by their owner only.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};

use super::migrate;
use super::{StoreResult, StoreSealing};

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    sealing: Arc<StoreSealing>,
}

impl SqliteStore {
    pub async fn connect(url: &str, sealing: Arc<StoreSealing>) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        restrict_to_owner(url, &options);
        let writer = connect_with_retry(
            pool_options(1).after_release(|conn, _| Box::pin(fit_for_reuse(conn))),
            &options,
        )
        .await?;
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
                    return Err(e.into());
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

/// Whether a connection given back to the writer pool may serve the next write. When a COMMIT fails on a
/// full disk, SQLite may already have rolled the transaction back; the driver's ROLLBACK then fails too
/// and its transaction depth stays at one, so the next `begin()` issues a SAVEPOINT instead of BEGIN. Once
/// such a RELEASE fails and is rolled back only to its savepoint, SQLite stays inside a transaction that
/// is never committed while every later write is answered as done. So the connection must be outside a
/// transaction in SQLite's view and in the driver's, or it is closed (which rolls back) and the pool opens
/// a fresh one.
async fn fit_for_reuse(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // BEGIN succeeds only outside a transaction. Running it also waits for any ROLLBACK the driver queued
    // when a transaction was dropped, so the driver's depth read below is up to date.
    if let Err(e) = sqlx::query("BEGIN").execute(&mut *conn).await {
        tracing::warn!(error = %e, "closing a database connection left inside a transaction");
        return Ok(false);
    }
    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
    if conn.is_in_transaction() {
        tracing::warn!(
            "closing a database connection the driver still counts inside a transaction"
        );
        return Ok(false);
    }
    Ok(true)
}

/// The database holds password hashes, sealed signing keys and token hashes: its files are made readable
/// by their owner only, whatever the umask. SQLite creates the `-wal` and `-shm` files with the mode of the
/// database file, so creating that file 0600 (and tightening files left by an older version) covers all.
fn restrict_to_owner(url: &str, options: &SqliteConnectOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if url.contains(":memory:") || url.contains("mode=memory") {
            return;
        }
        let path = options.get_filename();
        // An empty file is an empty database to SQLite. Failing here (no such directory) is left for
        // SQLite to report.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0
                && let Err(e) =
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(error = %e, file = ?file, "cannot make the database file private");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (url, options);
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

// The queries, written once in each aggregate's file.
super::instance::instance_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::orgs::org_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::apps::app_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::users::user_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::credentials::credential_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::sessions::session_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::onetime::one_time_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::consents::consent_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::grants::grant_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::keys::key_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::outbox::outbox_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::audit::audit_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::staff::staff_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
super::idempotency::idempotency_queries!(SqliteStore, sqlx::Sqlite, SqliteRow);
