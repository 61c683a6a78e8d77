//! Configuration: built-in defaults, then an optional TOML file, then `LATCHKEY_*` environment variables.
//!
//! Every key is flat; its environment name is `LATCHKEY_` + the key in upper case. A wrong or contradictory
//! value is reported as one [`ConfigError`] that names the setting, so start-up stops with one clear line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use url::Url;

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

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587 by default).
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465 by default).
    Tls,
    /// No encryption at all (port 25 by default): only for a relay on the same host or network.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// The SMTP relay the delivery worker hands messages to.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// User name and password, both or neither.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field(
                "username",
                &self.credentials.as_ref().map(|(user, _)| user.as_str()),
            )
            .finish()
    }
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

/// The SMTP settings: none without `smtp_host`, and then no other `smtp_*` setting may be given either
/// (it would silently do nothing).
fn resolve_smtp(layered: &Layered) -> Result<Option<SmtpConfig>, ConfigError> {
    let text = |key: &str| {
        layered
            .get(key)
            .map(|(origin, raw)| (origin, raw.trim()))
            .filter(|(_, raw)| !raw.is_empty())
    };
    let Some((host_origin, host)) = text("smtp_host") else {
        for key in ["smtp_port", "smtp_tls", "smtp_username", "smtp_password"] {
            if let Some((origin, _)) = layered.get(key) {
                return Err(ConfigError::new(
                    origin,
                    "has no effect without smtp_host (LATCHKEY_SMTP_HOST); set the host or remove this",
                ));
            }
        }
        return Ok(None);
    };
    if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
        || host.contains("://")
        || host.parse::<SocketAddr>().is_ok()
    {
        return Err(ConfigError::new(
            host_origin,
            format!(
                "expected a host name or IP address without scheme or port (use smtp_port), got {host:?}"
            ),
        ));
    }
    url::Host::parse(host).map_err(|e| {
        ConfigError::new(
            host_origin,
            format!("not a valid host name ({e}): {host:?}"),
        )
    })?;
    let tls = match layered.get("smtp_tls") {
        None => SmtpTls::Starttls,
        Some((origin, raw)) => match raw.trim() {
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                return Err(ConfigError::new(
                    origin,
                    format!("expected starttls, tls or none, got {other:?}"),
                ));
            }
        },
    };
    let port = layered.number("smtp_port", u64::from(tls.default_port()), 1, 65_535)? as u16;
    let credentials = match (layered.get("smtp_username"), layered.get("smtp_password")) {
        (None, None) => None,
        (Some((origin, user)), None) => {
            return Err(ConfigError::new(
                origin,
                format!(
                    "a user name without a password: set smtp_password (LATCHKEY_SMTP_PASSWORD) too, or neither (user {user:?})"
                ),
            ));
        }
        (None, Some((origin, _))) => {
            return Err(ConfigError::new(
                origin,
                "a password without a user name: set smtp_username (LATCHKEY_SMTP_USERNAME) too, or neither",
            ));
        }
        (Some((origin, user)), Some((password_origin, password))) => {
            if user.trim().is_empty() {
                return Err(ConfigError::new(origin, "must not be empty"));
            }
            if password.is_empty() {
                return Err(ConfigError::new(password_origin, "must not be empty"));
            }
            Some((user.trim().to_string(), password.to_string()))
        }
    };
    Ok(Some(SmtpConfig {
        host: host.to_string(),
        port,
        tls,
        credentials,
    }))
}

/// `smtp_from` as a mailbox (`addr@example.com` or `Name <addr@example.com>`), by default
/// `no-reply@{host of public_url}` (`no-reply@localhost` when that host cannot be an address's domain).
fn resolve_smtp_from(
    layered: &Layered,
    public_url: &Url,
) -> Result<lettre::message::Mailbox, ConfigError> {
    match layered.get("smtp_from") {
        Some((origin, raw)) => raw.trim().parse().map_err(|e| {
            ConfigError::new(
                origin,
                format!(
                    "expected an email address such as no-reply@example.com or \"Name <no-reply@example.com>\", got {raw:?} ({e})"
                ),
            )
        }),
        None => {
            let host = public_url.host_str().unwrap_or("localhost");
            Ok(format!("no-reply@{host}")
                .parse()
                .unwrap_or_else(|_| lettre::message::Mailbox::new(
                    None,
                    lettre::Address::new("no-reply", "localhost").expect("a valid address"),
                )))
        }
    }
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
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(None, |name| env.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = load(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_base(), "http://127.0.0.1:8080");
        assert_eq!(config.database_kind(), DatabaseKind::Sqlite);
        assert_eq!(config.issuer_for("acme"), "http://127.0.0.1:8080/o/acme");
        assert!(matches!(
            config.master_key,
            MasterKeySource::File {
                create_if_missing: true,
                ..
            }
        ));
    }

    #[test]
    fn trusted_proxies_are_validated_and_connection_limits_range_checked() {
        let err = load(&[("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, nginx")]).unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_TRUSTED_PROXIES");
        assert!(err.message.contains("\"nginx\""), "{}", err.message);
        let config = load(&[("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8 ::1")]).unwrap();
        assert!(config.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
        assert!(load(&[]).unwrap().trusted_proxies.is_empty());
        for key in [
            "LATCHKEY_HEADER_READ_TIMEOUT_SECS",
            "LATCHKEY_MAX_CONNECTIONS",
        ] {
            assert_eq!(load(&[(key, "0")]).unwrap_err().setting, key);
        }
    }

    #[test]
    fn wrong_listen_names_the_setting() {
        let err = load(&[("LATCHKEY_LISTEN", "nonsense")]).unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_LISTEN");
    }

    #[test]
    fn both_master_key_sources_are_contradictory() {
        let err = load(&[
            ("LATCHKEY_MASTER_KEY", "00"),
            ("LATCHKEY_MASTER_KEY_FILE", "/tmp/k"),
        ])
        .unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_MASTER_KEY");
    }

    #[test]
    fn public_url_with_query_is_rejected() {
        let err = load(&[("LATCHKEY_PUBLIC_URL", "https://id.example.com/?x=1")]).unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_PUBLIC_URL");
    }

    #[test]
    fn numbers_are_range_checked() {
        let err = load(&[("LATCHKEY_BCRYPT_COST", "4")]).unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_BCRYPT_COST");
        let err = load(&[("LATCHKEY_MAX_BODY_BYTES", "lots")]).unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_MAX_BODY_BYTES");
        assert_eq!(load(&[]).unwrap().verified_token_cache, 10_000);
        let off = load(&[("LATCHKEY_VERIFIED_TOKEN_CACHE", "0")]).unwrap();
        assert_eq!(off.verified_token_cache, 0);
        let err = load(&[("LATCHKEY_VERIFIED_TOKEN_CACHE", "-1")]).unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_VERIFIED_TOKEN_CACHE");
    }

    #[test]
    fn unknown_database_scheme_is_rejected() {
        let err = load(&[("LATCHKEY_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.setting, "LATCHKEY_DATABASE_URL");
    }

    #[test]
    fn smtp_is_off_by_default_and_the_sender_follows_public_url() {
        let config = load(&[]).unwrap();
        assert!(config.smtp.is_none());
        assert_eq!(config.smtp_from.to_string(), "no-reply@127.0.0.1");
        let config = load(&[("LATCHKEY_PUBLIC_URL", "https://id.example.com/auth")]).unwrap();
        assert_eq!(config.smtp_from.to_string(), "no-reply@id.example.com");
        let config = load(&[("LATCHKEY_LISTEN", "[::1]:9000")]).unwrap();
        assert!(config.smtp_from.email.to_string().starts_with("no-reply@"));
    }

    #[test]
    fn smtp_port_follows_the_tls_mode() {
        for (mode, port) in [("starttls", 587), ("tls", 465), ("none", 25)] {
            let config = load(&[
                ("LATCHKEY_SMTP_HOST", "smtp.example.com"),
                ("LATCHKEY_SMTP_TLS", mode),
            ])
            .unwrap();
            assert_eq!(config.smtp.unwrap().port, port, "{mode}");
        }
        let smtp = load(&[("LATCHKEY_SMTP_HOST", "smtp.example.com")])
            .unwrap()
            .smtp
            .unwrap();
        assert_eq!((smtp.tls, smtp.port), (SmtpTls::Starttls, 587));
        assert!(smtp.credentials.is_none());
        let smtp = load(&[
            ("LATCHKEY_SMTP_HOST", "127.0.0.1"),
            ("LATCHKEY_SMTP_PORT", "2525"),
            ("LATCHKEY_SMTP_TLS", "none"),
            ("LATCHKEY_SMTP_USERNAME", "mailer"),
            ("LATCHKEY_SMTP_PASSWORD", "s3cret"),
            ("LATCHKEY_SMTP_FROM", "Acme Sign-in <login@acme.test>"),
        ])
        .unwrap();
        let config = smtp.smtp.as_ref().unwrap();
        assert_eq!(config.port, 2525);
        assert_eq!(
            config.credentials,
            Some(("mailer".to_string(), "s3cret".to_string()))
        );
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "Debug hides the password"
        );
        assert_eq!(smtp.smtp_from.email.to_string(), "login@acme.test");
        assert_eq!(smtp.smtp_from.name.as_deref(), Some("Acme Sign-in"));
    }

    #[test]
    fn smtp_mistakes_name_the_setting() {
        let host = ("LATCHKEY_SMTP_HOST", "smtp.example.com");
        for (env, setting) in [
            (
                vec![host, ("LATCHKEY_SMTP_TLS", "ssl")],
                "LATCHKEY_SMTP_TLS",
            ),
            (
                vec![host, ("LATCHKEY_SMTP_PORT", "0")],
                "LATCHKEY_SMTP_PORT",
            ),
            (
                vec![host, ("LATCHKEY_SMTP_PORT", "70000")],
                "LATCHKEY_SMTP_PORT",
            ),
            (
                vec![host, ("LATCHKEY_SMTP_USERNAME", "u")],
                "LATCHKEY_SMTP_USERNAME",
            ),
            (
                vec![host, ("LATCHKEY_SMTP_PASSWORD", "p")],
                "LATCHKEY_SMTP_PASSWORD",
            ),
            (
                vec![host, ("LATCHKEY_SMTP_FROM", "not an address")],
                "LATCHKEY_SMTP_FROM",
            ),
            (
                vec![("LATCHKEY_SMTP_FROM", "Name <broken")],
                "LATCHKEY_SMTP_FROM",
            ),
            (
                vec![("LATCHKEY_SMTP_HOST", "smtp://mail.example.com")],
                "LATCHKEY_SMTP_HOST",
            ),
            (
                vec![("LATCHKEY_SMTP_HOST", "mail.example.com:587")],
                "LATCHKEY_SMTP_HOST",
            ),
            (
                vec![
                    ("LATCHKEY_SMTP_USERNAME", "u"),
                    ("LATCHKEY_SMTP_PASSWORD", "p"),
                ],
                "LATCHKEY_SMTP_USERNAME",
            ),
            (vec![("LATCHKEY_SMTP_PORT", "25")], "LATCHKEY_SMTP_PORT"),
        ] {
            let err = load(&env).unwrap_err();
            assert_eq!(err.setting, setting, "{env:?}: {err}");
        }
    }
}
