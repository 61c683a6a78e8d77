//! Storage: one interface ([`Store`]), two implementations (SQLite, the embedded default, and PostgreSQL).
//!
//! Both implementations are generated from the same queries in [`sql`]; the schemas in `migrations/` are
//! kept column-for-column identical, so the only per-backend code is connecting, migrating and pooling.

mod migrate;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::apps::Application;
use crate::audit::{AuditEvent, NewAuditEvent};
use crate::config::{Config, DatabaseKind};
use crate::email::{OutboxEntry, OutgoingEmail};
use crate::kernel::CredentialId;
use crate::keys::SigningKeyRecord;
use crate::oauth::records::{AuthorizationCode, Grant, RefreshToken};
use crate::onetime::OneTimeToken;
use crate::orgs::{Organization, Role};
use crate::sessions::Session;
use crate::users::{Credential, CredentialKind, Member, User};

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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
    /// Writes and commits one small row (an `instance_meta` entry): the database takes writes right now,
    /// which a read ping cannot tell (a full disk, a read-only standby).
    async fn probe_write(&self) -> StoreResult<()>;
    /// Applies pending migrations; returns the names of those applied now.
    async fn migrate(&self) -> StoreResult<Vec<String>>;
    async fn close(&self);

    async fn meta_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn meta_insert_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<()>;

    // Organizations. Every mutation takes the audit event that records it and writes both in one
    // transaction: an action is never stored without its audit entry, nor the other way round.
    async fn create_org(
        &self,
        org: &Organization,
        keys: &[SigningKeyRecord],
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    async fn org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>>;
    async fn org_by_id(&self, id: &str) -> StoreResult<Option<Organization>>;
    async fn list_orgs(&self) -> StoreResult<Vec<Organization>>;

    // Applications.
    async fn create_app(&self, app: &Application, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<Application>>;
    async fn list_apps(&self, org_id: &str) -> StoreResult<Vec<Application>>;
    /// Writes an application's changeable fields (name, URIs, origins, first-party flag, settings).
    async fn update_app(&self, app: &Application, audit: &NewAuditEvent) -> StoreResult<()>;

    // Users, credentials and membership.
    async fn create_user(
        &self,
        user: &User,
        credentials: &[Credential],
        role: Option<Role>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_email(
        &self,
        org_id: &str,
        email_normalized: &str,
    ) -> StoreResult<Option<User>>;
    async fn list_users(&self, org_id: &str) -> StoreResult<Vec<User>>;
    async fn credentials(
        &self,
        user_id: &str,
        kind: CredentialKind,
    ) -> StoreResult<Vec<Credential>>;
    /// Replaces a credential's secret (a password re-hashed under the current policy).
    async fn update_credential_secret(
        &self,
        credential_id: &str,
        secret: &[u8],
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// Every credential of a user, oldest first.
    async fn user_credentials(&self, user_id: &str) -> StoreResult<Vec<Credential>>;
    /// Adds credentials, first deleting the user's credentials of the `replace` kinds (a new set of
    /// recovery codes invalidates the old one).
    async fn add_credentials(
        &self,
        user_id: &str,
        credentials: &[Credential],
        replace: &[CredentialKind],
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// Deletes these credentials of the user; returns how many there were (audited only if any).
    async fn delete_credentials(
        &self,
        user_id: &str,
        ids: &[CredentialId],
        audit: &NewAuditEvent,
    ) -> StoreResult<u64>;
    /// Records a use of a credential: `consume` deletes it (single-use recovery codes), otherwise its last
    /// use is noted. False when it no longer exists (already consumed). The notice and audit go with it.
    async fn use_credential(
        &self,
        credential_id: &str,
        consume: bool,
        now: i64,
        notice: Option<&OutgoingEmail>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Records a use of a credential whose data changes with use (a passkey's signature counter).
    async fn update_credential_use(
        &self,
        credential_id: &str,
        data: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// The user's role in the organization, if a member.
    async fn member_role(&self, org_id: &str, user_id: &str) -> StoreResult<Option<Role>>;
    /// Marks a live session as having just proved a second factor, with its new `amr` and `acr`.
    async fn record_second_factor(
        &self,
        id_hash: &[u8],
        amr: &[String],
        acr: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Replaces an organization's name and settings.
    async fn update_org(&self, org: &Organization, audit: &NewAuditEvent) -> StoreResult<()>;
    /// Increments the user's session version (revoking every token and session issued before); returns it.
    async fn bump_session_version(&self, user_id: &str, audit: &NewAuditEvent) -> StoreResult<i64>;
    async fn list_members(&self, org_id: &str) -> StoreResult<Vec<Member>>;

    // Signing keys.
    async fn signing_keys(&self, org_id: &str) -> StoreResult<Vec<SigningKeyRecord>>;
    async fn add_signing_keys(
        &self,
        keys: &[SigningKeyRecord],
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// Retires the active key of `alg`, activates `promote_kid`, inserts `new_keys` and drops retired keys
    /// whose publication window has ended, all at once.
    #[allow(clippy::too_many_arguments)]
    async fn rotate_signing_keys(
        &self,
        org_id: &str,
        alg: &str,
        promote_kid: &str,
        new_keys: &[SigningKeyRecord],
        now: i64,
        retired_publish_until: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;

    // Browser sessions.
    async fn create_session(&self, session: &Session, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn session_by_hash(&self, id_hash: &[u8]) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, id_hash: &[u8], now: i64) -> StoreResult<()>;
    /// Marks the session revoked and ends the grants it made, except those whose scope holds one of
    /// `keep_scopes` (the domain's sign-out rule, `sessions::grants`); false if it was already revoked
    /// or does not exist.
    async fn revoke_session(
        &self,
        id_hash: &[u8],
        keep_scopes: &[&str],
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    /// The user's sessions that are neither revoked nor past their absolute lifetime, newest first.
    async fn user_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>>;
    /// Revokes one of the user's sessions by its public id, and its grants but those with one of
    /// `keep_scopes`; false if there was no such live session.
    async fn revoke_user_session(
        &self,
        user_id: &str,
        public_id: &str,
        keep_scopes: &[&str],
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Revokes every live session of the user but `keep_public_id`, and their grants but those with one
    /// of `keep_scopes`; returns how many sessions.
    async fn revoke_other_sessions(
        &self,
        user_id: &str,
        keep_public_id: &str,
        keep_scopes: &[&str],
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<u64>;

    // One-time tokens.
    async fn insert_one_time_token(&self, token: &OneTimeToken) -> StoreResult<()>;
    async fn one_time_token(
        &self,
        token_hash: &[u8],
        purpose: &str,
    ) -> StoreResult<Option<OneTimeToken>>;
    /// Consumes the token if it is unconsumed and unexpired; true only for the caller that consumed it.
    async fn consume_one_time_token(
        &self,
        token_hash: &[u8],
        purpose: &str,
        now: i64,
    ) -> StoreResult<bool>;

    // Accounts: sign-up, verification, reset and password changes. Each writes its tokens, its email and
    // its audit event in one transaction, so an acknowledged action never loses its email.
    async fn register_user(
        &self,
        user: &User,
        credentials: &[Credential],
        verification: &OneTimeToken,
        email: &OutgoingEmail,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// Stores a one-time token and/or an email together with the audit event.
    async fn issue_one_time_token(
        &self,
        token: Option<&OneTimeToken>,
        email: Option<&OutgoingEmail>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// Counts one attempt against a live token (unconsumed, unexpired, under `max_attempts`); returns
    /// the new count, or `None` when the token is not live or already at the limit.
    /// Like `issue_one_time_token`, replacing any earlier token with the same hash (a new email code
    /// replaces the one sent before).
    async fn reissue_one_time_token(
        &self,
        token: &OneTimeToken,
        email: Option<&OutgoingEmail>,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()>;
    async fn count_token_attempt(
        &self,
        token_hash: &[u8],
        purpose: &str,
        max_attempts: i64,
        now: i64,
    ) -> StoreResult<Option<i64>>;
    /// Gives back one attempt counted by `count_token_attempt` (never below zero), for an attempt that
    /// turned out right but could not finish for another reason.
    async fn release_token_attempt(&self, token_hash: &[u8], purpose: &str) -> StoreResult<()>;
    /// Consumes the verification token and marks the user's email verified; false (nothing written) if
    /// the token was not live.
    async fn verify_email(
        &self,
        token_hash: &[u8],
        user_id: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Replaces the user's password; with `sign_out_everywhere` (the domain's rule, `sessions::grants`)
    /// session_version is bumped and every session revoked, which ends every grant too. `consume` (token hash, purpose) must be live and is consumed, else nothing is written
    /// and `None` is returned. `new_session` (the caller's fresh session) is stored under the new version.
    #[allow(clippy::too_many_arguments)]
    async fn replace_password(
        &self,
        user_id: &str,
        password: &Credential,
        consume: Option<(&[u8], &str)>,
        new_session: Option<&Session>,
        email: Option<&OutgoingEmail>,
        sign_out_everywhere: bool,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<i64>>;
    async fn update_user_name(
        &self,
        user_id: &str,
        name: Option<&str>,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;

    // Email outbox.
    /// Queues one email on its own (most emails are queued by the store method of the action that sends them).
    async fn enqueue_email(&self, email: &OutgoingEmail) -> StoreResult<()>;
    /// Outbox messages, newest first, at most `limit`; only the organization's when `org_id` is given.
    async fn list_outbox(&self, org_id: Option<&str>, limit: i64) -> StoreResult<Vec<OutboxEntry>>;
    async fn outbox_entry(&self, id: &str) -> StoreResult<Option<OutboxEntry>>;
    /// Claims up to `limit` messages that are due at `now` (unsent, not given up, next attempt reached,
    /// not claimed by anyone whose lease is still running) until `lease_until`, oldest first. One
    /// statement that re-checks the claim on every row it updates, so instances sharing a database never
    /// claim the same message at once; a claim that outlives its lease (a crashed sender) is taken over.
    async fn claim_due_emails(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxEntry>>;
    /// Records the delivery and releases the claim.
    async fn mark_email_sent(&self, id: &str, now: i64) -> StoreResult<()>;
    /// Counts a failed attempt, keeps `error`, releases the claim and schedules the next attempt; with
    /// `gave_up_at` the message is marked failed and not tried again (it stays in the outbox).
    async fn mark_email_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: i64,
        gave_up_at: Option<i64>,
    ) -> StoreResult<()>;

    // Consents.
    async fn consent_scope(&self, user_id: &str, app_id: &str) -> StoreResult<Option<String>>;
    async fn save_consent(
        &self,
        user_id: &str,
        app_id: &str,
        scope: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;

    // Grants, authorization codes, refresh tokens, revoked access tokens.
    async fn create_grant(
        &self,
        grant: &Grant,
        code: Option<&AuthorizationCode>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    async fn grant(&self, id: &str) -> StoreResult<Option<Grant>>;
    async fn code_by_hash(&self, code_hash: &[u8]) -> StoreResult<Option<AuthorizationCode>>;
    /// Consumes the code and stores the first refresh token in one transaction. False when the code had
    /// already been consumed (a replay): nothing is written then.
    async fn redeem_code(
        &self,
        code_hash: &[u8],
        now: i64,
        refresh: Option<&RefreshToken>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn refresh_token_by_hash(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>>;
    /// Marks `old_hash` used and stores `new` in one transaction. False when `old_hash` was already used.
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshToken,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Revokes a grant and every token issued from it; false if it was already revoked.
    async fn revoke_grant(
        &self,
        id: &str,
        now: i64,
        reason: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// JTIs of revoked access tokens that have not expired yet.
    async fn revoked_access_tokens(&self, now: i64) -> StoreResult<Vec<String>>;

    // The audit log.
    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<AuditEvent>;
    /// Appends many events in one transaction (one disk sync for all): the audit writer's group commit.
    async fn append_audit_batch(&self, events: &[NewAuditEvent]) -> StoreResult<()>;
    /// Events with `seq > after_seq`, oldest first.
    async fn audit_events(
        &self,
        org_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// The last seq and hash of the organization's chain.
    async fn audit_head(&self, org_id: &str) -> StoreResult<Option<(i64, String)>>;
    /// Every organization that exists or ever had audit events: each must have a verifying history.
    async fn audit_org_ids(&self) -> StoreResult<Vec<String>>;
    /// Closes the legacy chains the keying migration recorded (see `audit_keying_pending`), each in its
    /// own transaction; returns the organizations closed, with their legacy event count.
    async fn close_legacy_audit_chains(&self) -> StoreResult<Vec<(String, i64)>>;
    /// Seals bodies queued before bodies were sealed (an upgraded database); returns how many.
    async fn seal_plain_outbox_bodies(&self) -> StoreResult<u64>;

    /// Disables or enables a user. Disabling bumps session_version and ends every session and grant of the
    /// user in the same transaction. `None` when the user was already in that state (nothing written),
    /// otherwise the number of sessions ended.
    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<Option<u64>>;
    /// Replaces a confidential application's client secret hash.
    async fn replace_client_secret(
        &self,
        app_id: &str,
        secret_hash: &[u8],
        now: i64,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
}

/// What the store needs from the master key: the sealer for email bodies in the outbox and the key that
/// links the audit chain. Both are computed inside the store's transactions.
pub struct StoreSealing {
    pub secrets: Arc<crate::crypto::SecretBox>,
    pub audit: crate::crypto::AuditKeys,
}

/// Connects to the database named by the configuration.
pub async fn connect(config: &Config, sealing: StoreSealing) -> StoreResult<Arc<dyn Store>> {
    let sealing = Arc::new(sealing);
    Ok(match config.database_kind() {
        DatabaseKind::Sqlite => {
            Arc::new(sqlite::SqliteStore::connect(&config.database_url, sealing).await?)
        }
        DatabaseKind::Postgres => Arc::new(
            postgres::PgStore::connect(
                &config.database_url,
                config.database_max_connections,
                sealing,
            )
            .await?,
        ),
    })
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
