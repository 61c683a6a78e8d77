//! Loading the configuration: defaults, file and environment layers, and errors that name the setting.

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
