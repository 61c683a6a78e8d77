//! Storage: the only way to the database, through two doors.
//!
//! - [`Db::tenant`] gives an [`OrgStore`]: every method behind it reads and writes one organization's rows,
//!   and its SQL filters on that organization (once, in the query), so a caller cannot reach another
//!   tenant's users, sessions, grants, keys, outbox or audit log by passing the wrong id.
//! - [`Db::system`] gives a [`SystemStore`] for the few jobs that span organizations: the organization
//!   directory, the email delivery worker, the revocation list, the audit writer's group commit and the
//!   start-up upgrades. Its callers are easy to find: `grep -rn 'system()' src`.
//!
//! Each aggregate has one file (`orgs`, `apps`, `users`, `credentials`, `sessions`, `onetime`, `consents`,
//! `grants`, `keys`, `outbox`, `audit`) holding its queries and its door methods. The queries are written
//! once for both backends: each file's macro expands them for SQLite and PostgreSQL (`sqlite.rs`,
//! `postgres.rs`), using only what both dialects share (`$n` placeholders, `RETURNING`, `ON CONFLICT`), and
//! the schemas in `migrations/` are kept column-for-column identical.

mod apps;
mod audit;
mod consents;
mod credentials;
mod grants;
pub mod idempotency;
mod instance;
mod keys;
mod migrate;
mod onetime;
mod orgs;
mod outbox;
pub mod postgres;
mod sessions;
pub mod sqlite;
mod staff;
mod users;

use std::sync::Arc;

use crate::config::{Config, DatabaseKind};
use crate::kernel::OrgId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the message says which thing already exists.
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Stored data that cannot be read back (a bug or tampering, never the client's fault).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The database cannot take the request now: unreachable, restarting, out of connections, out of disk,
    /// or failing I/O. Nothing was written; the client should retry shortly (503 with `Retry-After`).
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A record or audit event of one organization was handed to another organization's store: a bug,
    /// refused before anything is written.
    #[error("{0} belongs to another organization")]
    WrongTenant(&'static str),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Every driver error is classified once, here: the unavailable class becomes [`StoreError::Unavailable`].
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

/// Whether `e` says the database cannot serve right now (as opposed to a bug, bad data or a broken rule).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                pg_code_is_unavailable(code)
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse::<i32>().is_ok_and(sqlite_code_is_unavailable)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLSTATE classes and codes that mean "not now": 08 (connection exception), 53 (insufficient resources:
/// disk full, out of memory, too many connections), 57P01-57P03 (administrator or crash shutdown, cannot
/// connect now) and 25006 (read-only transaction: a standby during failover).
fn pg_code_is_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
}

/// SQLite result codes (extended codes carry the primary one in the low byte) that mean "not now":
/// BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN.
fn sqlite_code_is_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14)
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database: one of the two backends, reached through [`Db::tenant`] or [`Db::system`].
#[derive(Clone)]
pub struct Db {
    backend: Arc<Backend>,
}

enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Calls the backend's query method of the same name (written once, expanded for both backends).
macro_rules! dispatch {
    ($backend:expr, $method:ident($($arg:expr),* $(,)?)) => {
        match $backend {
            $crate::storage::Backend::Sqlite(b) => b.$method($($arg),*).await,
            $crate::storage::Backend::Postgres(b) => b.$method($($arg),*).await,
        }
    };
}
use dispatch;

/// One organization's rows. Made only by [`Db::tenant`]; every query behind it carries
/// `org_id = <this organization>`, and every record or audit event handed to it must belong to it.
#[derive(Clone, Copy)]
pub struct OrgStore<'a> {
    backend: &'a Backend,
    org: &'a OrgId,
}

impl OrgStore<'_> {
    /// The organization this handle is bound to.
    pub fn org_id(&self) -> &OrgId {
        self.org
    }
}

/// Work that spans organizations (see the module comment for the list). Made only by [`Db::system`].
#[derive(Clone, Copy)]
pub struct SystemStore<'a> {
    backend: &'a Backend,
}

impl Db {
    /// The door to one organization's rows.
    pub fn tenant<'a>(&'a self, org: &'a OrgId) -> OrgStore<'a> {
        OrgStore {
            backend: &self.backend,
            org,
        }
    }

    /// The door for cross-organization work; keep its callers few.
    pub fn system(&self) -> SystemStore<'_> {
        SystemStore {
            backend: &self.backend,
        }
    }
}

/// What the store computes inside its transactions: the sealer for email bodies in the outbox, the key that
/// links the audit chain, and the clock that stamps audit events and version bumps (the same clock the
/// domain reads, so a test that advances it sees consistent times everywhere).
pub struct StoreSealing {
    pub secrets: Arc<crate::crypto::SecretBox>,
    pub audit: crate::crypto::AuditKeys,
    pub clock: crate::kernel::Clock,
}

/// Connects to the database named by the configuration.
pub async fn connect(config: &Config, sealing: StoreSealing) -> StoreResult<Db> {
    let sealing = Arc::new(sealing);
    let backend = match config.database_kind() {
        DatabaseKind::Sqlite => {
            Backend::Sqlite(sqlite::SqliteStore::connect(&config.database_url, sealing).await?)
        }
        DatabaseKind::Postgres => Backend::Postgres(
            postgres::PgStore::connect(
                &config.database_url,
                config.database_max_connections,
                sealing,
            )
            .await?,
        ),
    };
    Ok(Db {
        backend: Arc::new(backend),
    })
}

/// What every aggregate's queries use, imported at once by their macros.
mod prelude {
    pub(super) use super::{
        StoreError, StoreResult, StoreSealing, belongs, conflict_or, json_list, parse_json,
    };
    pub(super) use crate::kernel::*;
    pub(super) use crate::model::apps::{Application, ClientType, GrantType};
    pub(super) use crate::model::audit::{
        AuditEvent, AuditFilter, GENESIS_HASH, NewAuditEvent, chain_keyed_event,
    };
    pub(super) use crate::model::email::{OutboxEntry, OutgoingEmail, body_aad};
    pub(super) use crate::model::grants::{AuthorizationCode, Grant, RefreshToken};
    pub(super) use crate::model::keys::{KeyState, SigningKeyRecord};
    pub(super) use crate::model::onetime::{OneTimeToken, VERIFY_EMAIL_PURPOSE};
    pub(super) use crate::model::orgs::{Organization, Role};
    pub(super) use crate::model::sessions::Session;
    pub(super) use crate::model::staff::{ApiKey, Invitation, Membership, StaffMember};
    pub(super) use crate::model::users::{Credential, CredentialKind, Member, User};
    pub(super) use sqlx::Row as _;
}

/// Refuses a record or event of another organization before anything is written.
fn belongs(org: &OrgId, record_org: &OrgId, what: &'static str) -> StoreResult<()> {
    if org == record_org {
        Ok(())
    } else {
        Err(StoreError::WrongTenant(what))
    }
}

fn json_list(items: &[impl serde::Serialize]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Maps a unique-constraint violation to a [`StoreError::Conflict`] with a message the caller can show.
fn conflict_or(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what} already exists"))
        }
        _ => StoreError::from(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_resource_and_shutdown_sqlstates_are_unavailable_others_are_not() {
        for code in [
            "08000", "08001", "08006", "53100", "53200", "53300", "57P01", "57P02", "57P03",
            "25006",
        ] {
            assert!(pg_code_is_unavailable(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "57014", "22001"] {
            assert!(!pg_code_is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn full_disk_io_busy_and_read_only_sqlite_codes_are_unavailable_others_are_not() {
        // Extended codes: IOERR_READ (266), BUSY_SNAPSHOT (517), READONLY_DBMOVED (1032).
        for code in [13, 10, 266, 5, 517, 6, 7, 8, 1032, 14] {
            assert!(sqlite_code_is_unavailable(code), "{code}");
        }
        // ERROR, CONSTRAINT, CONSTRAINT_UNIQUE (2067), CORRUPT, MISMATCH.
        for code in [1, 19, 2067, 11, 20] {
            assert!(!sqlite_code_is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn pool_and_io_errors_are_unavailable_a_missing_row_is_not() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_unavailable());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(StoreError::from(sqlx::Error::Io(reset)).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
