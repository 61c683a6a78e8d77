//! The composition root: opens the data directory, the master key, the database and the ephemeral store
//! from configuration, and owns them as one [`App`]. Nothing below imports this module: the HTTP edge, the
//! CLI and the workers receive the `App` as the capabilities they name (`crate::deps`).

mod main;
pub mod server;

pub use main::main;

use std::sync::Arc;

use crate::config::{Config, MasterKeySource};
use crate::crypto::password::PasswordHasher;
use crate::crypto::{AuditKeys, MasterKey, SecretBox};
use crate::deps::{
    HasAuditKeys, HasClock, HasConfig, HasDb, HasEphemeral, HasMailer, HasPasswords, HasSecrets,
    HasWebauthn,
};
use crate::ephemeral::{self, Ephemeral};
use crate::kernel::Clock;
use crate::storage::{self, Db};

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    /// The database, through its tenant and system doors.
    pub db: Db,
    pub secrets: Arc<SecretBox>,
    /// Keys that verify the audit chain and sign its checkpoints.
    pub audit_keys: AuditKeys,
    pub passwords: PasswordHasher,
    /// Rate-limit windows and one-time markers: Redis when configured, this process otherwise.
    pub ephemeral: Arc<dyn Ephemeral>,
    /// Wakes the email delivery worker (see [`App::wake_email_delivery`]).
    pub email_wakeup: Arc<tokio::sync::Notify>,
    /// The WebAuthn relying party (the public URL's host); `None` when that host is an IP address.
    pub webauthn: Option<Arc<webauthn_rs::prelude::Webauthn>>,
    /// Where every domain operation reads "now": the system clock, or a test's adjustable one.
    pub clock: Clock,
}

/// Start-up failures, each naming the setting (or resource) at fault so the operator sees one clear line.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
}

fn setting(setting: &'static str, message: impl ToString) -> StartupError {
    StartupError::Setting {
        setting,
        message: message.to_string(),
    }
}

/// The key-check value: a known plaintext sealed under the master key when the database is first set up,
/// so an instance started with a different key refuses to run instead of failing on every secret later.
const MASTER_KEY_CHECK: &str = "master_key_check";
const MASTER_KEY_CHECK_PLAINTEXT: &[u8] = b"latchkey master key check v1";

impl App {
    /// Opens the data directory, the master key and the database, and applies migrations.
    pub async fn open(config: Config) -> Result<Self, StartupError> {
        Self::open_with_clock(config, Clock::system()).await
    }

    /// [`App::open`] with the clock to read time from (tests pass an adjustable one).
    pub async fn open_with_clock(config: Config, clock: Clock) -> Result<Self, StartupError> {
        if config.database_kind() == crate::config::DatabaseKind::Sqlite
            || matches!(
                config.master_key,
                MasterKeySource::File {
                    create_if_missing: true,
                    ..
                }
            )
        {
            create_data_dir(&config.data_dir)?;
        }
        let key_setting = match config.master_key {
            MasterKeySource::Inline(_) => "LATCHKEY_MASTER_KEY",
            MasterKeySource::File { .. } => "LATCHKEY_MASTER_KEY_FILE",
        };
        let master_key = match &config.master_key {
            MasterKeySource::Inline(hex) => {
                MasterKey::from_hex(hex).map_err(|e| setting("LATCHKEY_MASTER_KEY", e))?
            }
            MasterKeySource::File {
                path,
                create_if_missing,
            } => MasterKey::load_or_create(path, *create_if_missing)
                .map_err(|e| setting("LATCHKEY_MASTER_KEY_FILE", e))?,
        };
        let secrets = Arc::new(master_key.secret_box());
        let sealing = storage::StoreSealing {
            secrets: secrets.clone(),
            audit: master_key.audit_keys(),
            clock: clock.clone(),
        };
        let db = storage::connect(&config, sealing)
            .await
            .map_err(|e| setting("LATCHKEY_DATABASE_URL", e))?;
        db.migrate()
            .await
            .map_err(|e| setting("LATCHKEY_DATABASE_URL", format!("migration failed: {e}")))?;
        check_master_key(&db, &secrets, key_setting).await?;
        // An upgraded database: seal bodies queued in clear, and close the unkeyed audit chains the keying
        // migration recorded (at every start, so one that died before finishing is made good; a chain
        // written into the database later was never recorded and is never sealed).
        db.system()
            .seal_plain_outbox_bodies()
            .await
            .map_err(|e| setting("LATCHKEY_DATABASE_URL", e))?;
        crate::audit::service::key_legacy_chains(&db)
            .await
            .map_err(|e| setting("LATCHKEY_DATABASE_URL", e))?;
        let passwords = PasswordHasher::new(
            config.password_hash_workers,
            config.password_hash_queue,
            config.password_hash,
            config.bcrypt_cost,
        );
        let ephemeral = ephemeral::from_config(config.redis_url.as_deref())
            .map_err(|e| setting("LATCHKEY_REDIS_URL", e))?;
        let webauthn = crate::mfa::passkey::relying_party(&config.public_url);
        Ok(App {
            webauthn,
            config: Arc::new(config),
            db,
            secrets,
            audit_keys: master_key.audit_keys(),
            passwords,
            ephemeral,
            email_wakeup: Arc::new(tokio::sync::Notify::new()),
            clock,
        })
    }

    /// Tells the email delivery worker that messages were queued, so it sends them now instead of at its
    /// next poll. Call it after the transaction that queued them has committed; harmless (and cheap)
    /// when no worker runs.
    pub fn wake_email_delivery(&self) {
        self.email_wakeup.notify_one();
    }
}

fn create_data_dir(dir: &std::path::Path) -> Result<(), StartupError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        setting(
            "LATCHKEY_DATA_DIR",
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The directory holds the database and the master key: keep it to its owner.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

async fn check_master_key(
    store: &Db,
    secrets: &SecretBox,
    key_setting: &'static str,
) -> Result<(), StartupError> {
    let db = |e: crate::storage::StoreError| setting("LATCHKEY_DATABASE_URL", e);
    let sealed = secrets.seal(MASTER_KEY_CHECK, MASTER_KEY_CHECK_PLAINTEXT);
    store
        .meta_insert_if_absent(MASTER_KEY_CHECK, &sealed)
        .await
        .map_err(db)?;
    let stored = store
        .meta_get(MASTER_KEY_CHECK)
        .await
        .map_err(db)?
        .unwrap_or_default();
    match secrets.open(MASTER_KEY_CHECK, &stored) {
        Ok(plain) if plain == MASTER_KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(setting(
            key_setting,
            "this master key is not the one the database was set up with; every instance must share the same key",
        )),
    }
}

impl HasDb for App {
    fn db(&self) -> &Db {
        &self.db
    }
}

impl HasSecrets for App {
    fn secrets(&self) -> &SecretBox {
        &self.secrets
    }
}

impl HasAuditKeys for App {
    fn audit_keys(&self) -> &AuditKeys {
        &self.audit_keys
    }
}

impl HasPasswords for App {
    fn passwords(&self) -> &PasswordHasher {
        &self.passwords
    }
}

impl HasEphemeral for App {
    fn ephemeral(&self) -> &Arc<dyn Ephemeral> {
        &self.ephemeral
    }
}

impl HasClock for App {
    fn clock(&self) -> &Clock {
        &self.clock
    }
}

impl HasConfig for App {
    fn config(&self) -> &Config {
        &self.config
    }
}

impl HasMailer for App {
    fn wake_email_delivery(&self) {
        App::wake_email_delivery(self)
    }
}

impl HasWebauthn for App {
    fn webauthn(&self) -> Option<&webauthn_rs::prelude::Webauthn> {
        self.webauthn.as_deref()
    }
}
