//! The SMTP relay settings: which `smtp_*` keys go together, and the sender address.

use std::net::SocketAddr;

use url::Url;

use super::{ConfigError, Layered};

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

/// The SMTP settings: none without `smtp_host`, and then no other `smtp_*` setting may be given either
/// (it would silently do nothing).
pub(super) fn resolve_smtp(layered: &Layered) -> Result<Option<SmtpConfig>, ConfigError> {
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
pub(super) fn resolve_smtp_from(
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
