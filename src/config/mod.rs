//! Configuration: built-in defaults, then an optional TOML file, then `LATCHKEY_*` environment variables.
//!
//! Every key is flat; its environment name is `LATCHKEY_` + the key in upper case. A wrong or contradictory
//! value is reported as one [`ConfigError`] that names the setting, so start-up stops with one clear line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use url::Url;

mod smtp;
pub use smtp::{SmtpConfig, SmtpTls};
use smtp::{resolve_smtp, resolve_smtp_from};

/// A configuration problem, always tied to the setting that caused it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when standard output is not a terminal, human-readable otherwise.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordScheme {
    /// bcrypt over an HMAC-SHA-256 pre-hash, at `bcrypt_cost`.
    Bcrypt,
    /// Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).
    Argon2id,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base of every issuer and link, without a trailing slash.
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub master_key: MasterKeySource,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    /// A request head must be complete this long after its first byte (or after the connection opened).
    pub header_read_timeout_secs: u64,
    /// A kept-alive connection is closed after this long without a request.
    pub keep_alive_idle_secs: u64,
    /// Open connections at most; one more is answered 503 and closed. `None`: from the open-files limit
    /// (keeping room for database files and outgoing connections), at most 10,000.
    pub max_connections: Option<usize>,
    /// Peers whose forwarding header (`trusted_proxy_header`: `X-Forwarded-For` or `Forwarded`) names
    /// the client (empty: none, the socket's address is the client).
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    pub shutdown_grace_secs: u64,
    pub database_max_connections: u32,
    /// Threads that may hash passwords at once; the bounded pool that keeps a login flood off other traffic.
    pub password_hash_workers: usize,
    /// Hash requests that may wait for a worker; beyond that they are refused at once (503), so a login
    /// flood cannot pile up behind the pool.
    pub password_hash_queue: usize,
    /// The scheme new password hashes use; hashes in the other scheme are upgraded at sign-in.
    pub password_hash: PasswordScheme,
    pub bcrypt_cost: u32,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub authorization_code_ttl_secs: u64,
    pub id_token_ttl_secs: u64,
    /// Access tokens remembered as verified (about 1 KB each), so repeated introspection of one token
    /// skips the signature check; 0 turns this off.
    pub verified_token_cache: usize,
    /// Rotate every organization's signing key this often; 0 turns scheduled rotation off.
    pub key_rotation_days: u64,
    /// Where queued email is delivered; `None` keeps every message in the outbox (the development outbox,
    /// read with `latchkey outbox list/show`).
    pub smtp: Option<SmtpConfig>,
    /// The sender of every email: `smtp_from`, by default `no-reply@{host of public_url}`.
    pub smtp_from: lettre::message::Mailbox,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// 64 hex characters given directly (`LATCHKEY_MASTER_KEY`).
    Inline(String),
    /// A file holding 64 hex characters. `create_if_missing` is true only for the default path inside the
    /// data directory: an explicitly named key file that does not exist is a mistake, not a fresh install.
    File {
        path: PathBuf,
        create_if_missing: bool,
    },
}

/// Keys whose values are strings, and numeric keys, in the order they are documented.
const STRING_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "data_dir",
    "database_url",
    "redis_url",
    "master_key_file",
    "log_format",
    "log_level",
    "password_hash",
    "smtp_host",
    "smtp_tls",
    "smtp_username",
    "smtp_password",
    "smtp_from",
    "trusted_proxies",
    "trusted_proxy_header",
];
const NUMBER_KEYS: &[&str] = &[
    "max_body_bytes",
    "request_timeout_secs",
    "header_read_timeout_secs",
    "keep_alive_idle_secs",
    "max_connections",
    "shutdown_grace_secs",
    "database_max_connections",
    "password_hash_workers",
    "password_hash_queue",
    "bcrypt_cost",
    "access_token_ttl_secs",
    "refresh_token_ttl_secs",
    "authorization_code_ttl_secs",
    "id_token_ttl_secs",
    "key_rotation_days",
    "verified_token_cache",
    "smtp_port",
];

/// Raw values after layering: the file first, the environment on top. Each value remembers where it came
/// from so an error names the setting the operator actually wrote.
struct Layered {
    values: BTreeMap<&'static str, (String, String)>,
}

impl Layered {
    fn get(&self, key: &str) -> Option<(&str, &str)> {
        self.values
            .get(key)
            .map(|(origin, value)| (origin.as_str(), value.as_str()))
    }

    fn number(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let Some((origin, raw)) = self.get(key) else {
            return Ok(default);
        };
        let value: u64 = raw.trim().parse().map_err(|_| {
            ConfigError::new(origin, format!("expected a whole number, got {raw:?}"))
        })?;
        if !(min..=max).contains(&value) {
            return Err(ConfigError::new(
                origin,
                format!("must be between {min} and {max}, got {value}"),
            ));
        }
        Ok(value)
    }
}

fn env_name(key: &str) -> String {
    format!("LATCHKEY_{}", key.to_ascii_uppercase())
}

impl Config {
    /// Loads configuration from the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Loads configuration with an explicit environment lookup, so tests need not touch the process environment.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut values: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new("--config", format!("cannot read {shown}: {e}")))?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                ConfigError::new(
                    format!("--config {shown}"),
                    e.message().replace('\n', " ").trim().to_string(),
                )
            })?;
            for (key, value) in &table {
                let known = STRING_KEYS
                    .iter()
                    .chain(NUMBER_KEYS)
                    .find(|k| **k == key.as_str());
                let Some(known) = known else {
                    return Err(ConfigError::new(
                        format!("{key} (in {shown})"),
                        "unknown setting",
                    ));
                };
                let raw = match (value, NUMBER_KEYS.contains(known)) {
                    (toml::Value::String(s), false) => s.clone(),
                    (toml::Value::Integer(n), true) => n.to_string(),
                    (_, false) => {
                        return Err(ConfigError::new(
                            format!("{key} (in {shown})"),
                            "expected a string",
                        ));
                    }
                    (_, true) => {
                        return Err(ConfigError::new(
                            format!("{key} (in {shown})"),
                            "expected a whole number",
                        ));
                    }
                };
                values.insert(known, (format!("{key} (in {shown})"), raw));
            }
        }
        for key in STRING_KEYS.iter().chain(NUMBER_KEYS) {
            let name = env_name(key);
            if let Some(raw) = env(&name) {
                values.insert(key, (name, raw));
            }
        }
        let inline_master_key = env("LATCHKEY_MASTER_KEY");
        Self::resolve(Layered { values }, inline_master_key)
    }

    fn resolve(layered: Layered, inline_master_key: Option<String>) -> Result<Self, ConfigError> {
        let listen = match layered.get("listen") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some((origin, raw)) => raw.trim().parse().map_err(|_| {
                ConfigError::new(
                    origin,
                    format!("expected host:port such as 127.0.0.1:8080, got {raw:?}"),
                )
            })?,
        };

        let public_url = match layered.get("public_url") {
            None => {
                let host = if listen.ip().is_unspecified() {
                    "localhost".to_string()
                } else {
                    listen.to_string()
                };
                let base = if listen.ip().is_unspecified() {
                    format!("{host}:{}", listen.port())
                } else {
                    host
                };
                Url::parse(&format!("http://{base}"))
                    .map_err(|e| ConfigError::new("LATCHKEY_LISTEN", e.to_string()))?
            }
            Some((origin, raw)) => parse_public_url(origin, raw)?,
        };

        let data_dir = PathBuf::from(
            layered
                .get("data_dir")
                .map(|(_, v)| v)
                .unwrap_or("./latchkey-data"),
        );
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("LATCHKEY_DATA_DIR", "must not be empty"));
        }

        let database_url = match layered.get("database_url") {
            None => format!(
                "sqlite://{}",
                escape_sqlite_path(&data_dir.join("latchkey.db").display().to_string())
            ),
            Some((origin, raw)) => {
                let raw = raw.trim();
                if !(raw.starts_with("sqlite:")
                    || raw.starts_with("postgres://")
                    || raw.starts_with("postgresql://"))
                {
                    return Err(ConfigError::new(
                        origin,
                        "must start with sqlite:// (embedded) or postgres:// (PostgreSQL)",
                    ));
                }
                raw.to_string()
            }
        };

        let redis_url = match layered.get("redis_url") {
            None => None,
            Some((_, raw)) if raw.trim().is_empty() => None,
            Some((origin, raw)) => {
                let raw = raw.trim();
                if !(raw.starts_with("redis://") || raw.starts_with("rediss://")) {
                    return Err(ConfigError::new(
                        origin,
                        "must start with redis:// or rediss://",
                    ));
                }
                Url::parse(raw)
                    .map_err(|e| ConfigError::new(origin, format!("not a valid URL: {e}")))?;
                Some(raw.to_string())
            }
        };

        let master_key = match (inline_master_key, layered.get("master_key_file")) {
            (Some(_), Some((origin, _))) => {
                return Err(ConfigError::new(
                    "LATCHKEY_MASTER_KEY",
                    format!("both LATCHKEY_MASTER_KEY and {origin} are set; keep exactly one"),
                ));
            }
            (Some(inline), None) => MasterKeySource::Inline(inline),
            (None, Some((_, path))) => MasterKeySource::File {
                path: PathBuf::from(path),
                create_if_missing: false,
            },
            (None, None) => MasterKeySource::File {
                path: data_dir.join("master.key"),
                create_if_missing: true,
            },
        };

        let log_format = match layered.get("log_format") {
            None => LogFormat::Auto,
            Some((origin, raw)) => match raw.trim() {
                "auto" => LogFormat::Auto,
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => {
                    return Err(ConfigError::new(
                        origin,
                        format!("expected auto, json or pretty, got {other:?}"),
                    ));
                }
            },
        };
        let log_level = layered
            .get("log_level")
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(ConfigError::new(
                layered
                    .get("log_level")
                    .map(|(o, _)| o)
                    .unwrap_or("LATCHKEY_LOG_LEVEL"),
                format!("not a valid level or filter: {log_level:?} (try info or debug)"),
            ));
        }

        let password_hash = match layered.get("password_hash") {
            None => PasswordScheme::Bcrypt,
            Some((origin, raw)) => match raw.trim() {
                "bcrypt" => PasswordScheme::Bcrypt,
                "argon2id" => PasswordScheme::Argon2id,
                other => {
                    return Err(ConfigError::new(
                        origin,
                        format!("expected bcrypt or argon2id, got {other:?}"),
                    ));
                }
            },
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(2);
        let access_token_ttl_secs = layered.number("access_token_ttl_secs", 3600, 60, 86_400)?;
        let id_token_ttl_secs = layered.number("id_token_ttl_secs", 3600, 60, 86_400)?;
        let refresh_token_ttl_secs =
            layered.number("refresh_token_ttl_secs", 30 * 86_400, 300, 400 * 86_400)?;
        if refresh_token_ttl_secs < access_token_ttl_secs {
            return Err(ConfigError::new(
                "LATCHKEY_REFRESH_TOKEN_TTL_SECS",
                "must not be shorter than LATCHKEY_ACCESS_TOKEN_TTL_SECS",
            ));
        }

        let smtp = resolve_smtp(&layered)?;
        let trusted_proxy_header = match layered.get("trusted_proxy_header") {
            None => Default::default(),
            Some((origin, raw)) => crate::client_addr::ForwardingHeader::parse(raw)
                .map_err(|message| ConfigError::new(origin, message))?,
        };
        let trusted_proxies = match layered.get("trusted_proxies") {
            None => Default::default(),
            Some((origin, raw)) => crate::client_addr::TrustedProxies::parse(raw)
                .map_err(|message| ConfigError::new(origin, message))?,
        }
        .with_header(trusted_proxy_header);
        let header_read_timeout_secs = layered.number("header_read_timeout_secs", 10, 1, 300)?;
        let keep_alive_idle_secs = layered.number("keep_alive_idle_secs", 75, 1, 3600)?;
        let smtp_from = resolve_smtp_from(&layered, &public_url)?;

        Ok(Config {
            listen,
            public_url,
            data_dir,
            database_url,
            redis_url,
            master_key,
            log_format,
            log_level,
            max_body_bytes: layered.number("max_body_bytes", 64 * 1024, 1024, 16 * 1024 * 1024)?
                as usize,
            request_timeout_secs: layered.number("request_timeout_secs", 30, 1, 3600)?,
            header_read_timeout_secs,
            keep_alive_idle_secs,
            max_connections: match layered.get("max_connections") {
                None => None,
                Some(_) => Some(layered.number("max_connections", 0, 1, 1_000_000)? as usize),
            },
            trusted_proxies,
            shutdown_grace_secs: layered.number("shutdown_grace_secs", 30, 0, 3600)?,
            database_max_connections: layered.number("database_max_connections", 10, 1, 1000)?
                as u32,
            password_hash_workers: layered.number("password_hash_workers", cores.max(1), 1, 256)?
                as usize,
            password_hash_queue: layered.number(
                "password_hash_queue",
                4 * cores.max(1),
                0,
                100_000,
            )? as usize,
            password_hash,
            bcrypt_cost: layered.number("bcrypt_cost", 12, 10, 16)? as u32,
            access_token_ttl_secs,
            refresh_token_ttl_secs,
            authorization_code_ttl_secs: layered.number(
                "authorization_code_ttl_secs",
                60,
                5,
                60,
            )?,
            id_token_ttl_secs,
            key_rotation_days: layered.number("key_rotation_days", 90, 0, 3650)?,
            verified_token_cache: layered.number("verified_token_cache", 10_000, 0, 1_000_000)?
                as usize,
            smtp,
            smtp_from,
        })
    }

    pub fn database_kind(&self) -> DatabaseKind {
        if self.database_url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::Postgres
        }
    }

    /// The issuer of an organization: `{public_url}/o/{slug}`.
    pub fn issuer_for(&self, slug: &str) -> String {
        format!("{}/o/{slug}", self.public_base())
    }

    /// The public URL as a string without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// sqlx percent-decodes the path of a `sqlite://` URL and treats `?` as the start of options, so a data
/// directory whose name holds `%`, `?` or `#` must be escaped to survive the round trip.
fn escape_sqlite_path(path: &str) -> String {
    path.replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23")
}

fn parse_public_url(origin: &str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(origin, format!("not a valid URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConfigError::new(
            origin,
            "must be an http:// or https:// URL",
        ));
    }
    if url.host_str().is_none() {
        return Err(ConfigError::new(origin, "must name a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            origin,
            "must not have a query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(origin, "must not contain credentials"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
