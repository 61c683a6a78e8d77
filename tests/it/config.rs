//! Configuration as the operator meets it: the real binary with no configuration at all, and the one-line
//! errors (exit code 2) that name the setting at fault.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::{
    ServeProcess, free_port, fresh_master_key, run_cli_in, send_signal, wait_with_timeout,
};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Exit code 2, and standard error is exactly one line that mentions every `needles`.
fn assert_one_line_config_error(result: &(i32, String, String), needles: &[&str]) {
    let (code, stdout, stderr) = result;
    assert_eq!(*code, 2, "exit code; stdout={stdout} stderr={stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stderr, got: {stderr:?}"
    );
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "stderr {:?} should mention {needle:?}",
            lines[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_serve_creates_its_data_dir_and_is_ready_within_a_second() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    // Only the port is chosen (8080 may be taken on a developer machine); everything else is a default.
    let only_listen = env(&[("LATCHKEY_LISTEN", &format!("127.0.0.1:{port}"))]);
    let spawned = Instant::now();
    let mut server = ServeProcess::start(cwd.path(), port, &only_listen);
    let ready_after = server.wait_ready(Duration::from_secs(10)).await;
    println!(
        "zero-config start: /readyz answered 200 after {} ms",
        ready_after.as_millis()
    );
    assert!(spawned.elapsed() >= ready_after);
    assert!(
        ready_after < Duration::from_secs(1),
        "ready after {ready_after:?}, expected under 1 s"
    );

    let client = reqwest::Client::new();
    let ready: serde_json::Value = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["database_backend"], "sqlite");
    assert_eq!(ready["checks"]["redis"], "not_configured");

    let data = cwd.path().join("latchkey-data");
    assert!(data.is_dir(), "./latchkey-data created");
    assert_eq!(mode(&data), 0o700, "the data directory is private");
    assert!(
        data.join("latchkey.db").is_file(),
        "./latchkey-data/latchkey.db created"
    );
    let key_path = data.join("master.key");
    assert_eq!(mode(&key_path), 0o600, "master.key is private");
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(key.len(), 65, "64 hex characters and a newline: {key:?}");
    assert!(key.ends_with('\n'));
    assert!(
        key[..64]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{key:?}"
    );

    // The CLI in the same directory finds the same database and key, and the issuer defaults from listen.
    let (code, stdout, stderr) = run_cli_in(
        cwd.path(),
        &[
            "--json", "org", "create", "--slug", "acme", "--name", "Acme",
        ],
        &only_listen,
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let org: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(org["issuer"], format!("http://127.0.0.1:{port}/o/acme"));
    assert_eq!(
        std::fs::read_to_string(&key_path).unwrap(),
        key,
        "the key is never rewritten"
    );

    // Keep an idle keep-alive connection open: shutdown must not wait for it.
    assert_eq!(
        client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let term_sent = Instant::now();
    send_signal(server.pid(), "TERM");
    let status = wait_with_timeout(&mut server.child, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no exit within 5 s of SIGTERM; log:\n{}", server.log_text()));
    println!(
        "zero-config stop: exited {} ms after SIGTERM",
        term_sent.elapsed().as_millis()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "clean exit on SIGTERM; log:\n{}",
        server.log_text()
    );
    assert!(
        server.log_text().contains("shutting down"),
        "shutdown is logged: {}",
        server.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_at_all_listens_on_127_0_0_1_8080() {
    if std::net::TcpListener::bind("127.0.0.1:8080").is_err() {
        println!("SKIPPED (127.0.0.1:8080 is in use on this machine)");
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start_without_listen(cwd.path(), &BTreeMap::new());
    assert_eq!(server.base, "http://127.0.0.1:8080");
    server.wait_ready(Duration::from_secs(10)).await;
    assert!(cwd.path().join("latchkey-data/master.key").is_file());
    send_signal(server.pid(), "TERM");
    let status =
        wait_with_timeout(&mut server.child, Duration::from_secs(5)).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn unparsable_listen_exits_2_with_one_line_naming_latchkey_listen() {
    let cwd = tempfile::tempdir().unwrap();
    let result = run_cli_in(
        cwd.path(),
        &["serve"],
        &env(&[("LATCHKEY_LISTEN", "abc")]),
        None,
    );
    assert_one_line_config_error(&result, &["LATCHKEY_LISTEN", "abc"]);
    assert!(result.1.is_empty(), "nothing on stdout");
    assert!(
        !cwd.path().join("latchkey-data").exists(),
        "a configuration error creates nothing"
    );
}

#[test]
fn unknown_key_in_the_toml_file_exits_2_naming_the_key() {
    let cwd = tempfile::tempdir().unwrap();
    let file = cwd.path().join("latchkey.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\nlisten_adress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let file_arg = file.display().to_string();
    let result = run_cli_in(
        cwd.path(),
        &["--config", &file_arg, "serve"],
        &BTreeMap::new(),
        None,
    );
    assert_one_line_config_error(&result, &["listen_adress", "unknown setting"]);
    assert!(!cwd.path().join("latchkey-data").exists());

    // The same file named through LATCHKEY_CONFIG is read the same way.
    let result = run_cli_in(
        cwd.path(),
        &["org", "list"],
        &env(&[("LATCHKEY_CONFIG", &file_arg)]),
        None,
    );
    assert_one_line_config_error(&result, &["listen_adress"]);
}

#[test]
fn a_wrongly_typed_value_in_the_toml_file_exits_2_naming_the_key() {
    let cwd = tempfile::tempdir().unwrap();
    let file = cwd.path().join("latchkey.toml");
    std::fs::write(&file, "bcrypt_cost = \"twelve\"\n").unwrap();
    let result = run_cli_in(
        cwd.path(),
        &["--config", file.to_str().unwrap(), "org", "list"],
        &BTreeMap::new(),
        None,
    );
    assert_one_line_config_error(&result, &["bcrypt_cost", "whole number"]);
}

#[test]
fn master_key_and_master_key_file_together_exit_2() {
    let cwd = tempfile::tempdir().unwrap();
    let key_file = cwd.path().join("k");
    let vars = env(&[
        ("LATCHKEY_MASTER_KEY", &fresh_master_key()),
        ("LATCHKEY_MASTER_KEY_FILE", key_file.to_str().unwrap()),
    ]);
    let result = run_cli_in(cwd.path(), &["serve"], &vars, None);
    assert_one_line_config_error(
        &result,
        &["LATCHKEY_MASTER_KEY", "LATCHKEY_MASTER_KEY_FILE"],
    );
    assert!(!cwd.path().join("latchkey-data").exists());
}

#[test]
fn a_master_key_other_than_the_databases_exits_2_naming_the_setting() {
    let cwd = tempfile::tempdir().unwrap();
    // First start: the default key file is created and the database is set up with it.
    let (code, _, stderr) = run_cli_in(cwd.path(), &["migrate"], &BTreeMap::new(), None);
    assert_eq!(code, 0, "{stderr}");
    assert!(cwd.path().join("latchkey-data/master.key").is_file());

    let inline = env(&[("LATCHKEY_MASTER_KEY", &fresh_master_key())]);
    let result = run_cli_in(cwd.path(), &["org", "list"], &inline, None);
    assert_one_line_config_error(&result, &["LATCHKEY_MASTER_KEY", "master key"]);

    let other_file = cwd.path().join("other.key");
    std::fs::write(&other_file, format!("{}\n", fresh_master_key())).unwrap();
    std::fs::set_permissions(
        &other_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let by_file = env(&[("LATCHKEY_MASTER_KEY_FILE", other_file.to_str().unwrap())]);
    let result = run_cli_in(cwd.path(), &["serve"], &by_file, None);
    assert_one_line_config_error(&result, &["LATCHKEY_MASTER_KEY_FILE", "master key"]);

    // The right key still works.
    let (code, _, stderr) = run_cli_in(cwd.path(), &["org", "list"], &BTreeMap::new(), None);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_master_key_file_readable_by_others_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let key_file = cwd.path().join("open.key");
    std::fs::write(&key_file, format!("{}\n", fresh_master_key())).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let vars = env(&[("LATCHKEY_MASTER_KEY_FILE", key_file.to_str().unwrap())]);
    let result = run_cli_in(cwd.path(), &["migrate"], &vars, None);
    assert_one_line_config_error(&result, &["LATCHKEY_MASTER_KEY_FILE", "chmod 600"]);
    assert!(
        !cwd.path().join("latchkey-data/latchkey.db").exists(),
        "nothing set up with an exposed key"
    );
}

#[test]
fn an_explicit_master_key_file_that_does_not_exist_is_not_created() {
    let cwd = tempfile::tempdir().unwrap();
    let key_file = cwd.path().join("missing.key");
    let vars = env(&[("LATCHKEY_MASTER_KEY_FILE", key_file.to_str().unwrap())]);
    let result = run_cli_in(cwd.path(), &["migrate"], &vars, None);
    assert_one_line_config_error(&result, &["LATCHKEY_MASTER_KEY_FILE", "does not exist"]);
    assert!(!key_file.exists());
}

#[test]
fn a_malformed_inline_master_key_exits_2() {
    let cwd = tempfile::tempdir().unwrap();
    let result = run_cli_in(
        cwd.path(),
        &["migrate"],
        &env(&[("LATCHKEY_MASTER_KEY", "not-hex")]),
        None,
    );
    assert_one_line_config_error(&result, &["LATCHKEY_MASTER_KEY", "64 hexadecimal"]);
}

#[test]
fn out_of_range_numbers_and_bad_urls_exit_2_naming_the_setting() {
    let cwd = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("LATCHKEY_BCRYPT_COST", "4"),
        ("LATCHKEY_DATABASE_URL", "mysql://localhost/x"),
        ("LATCHKEY_PUBLIC_URL", "https://id.example.com/?q=1"),
        ("LATCHKEY_REDIS_URL", "http://127.0.0.1:6379"),
        ("LATCHKEY_LOG_FORMAT", "xml"),
    ] {
        let result = run_cli_in(cwd.path(), &["org", "list"], &env(&[(var, value)]), None);
        assert_one_line_config_error(&result, &[var]);
    }
    assert!(!cwd.path().join("latchkey-data").exists());
}

#[test]
fn a_data_dir_with_spaces_in_its_name_works() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("my data dir");
    let vars = env(&[("LATCHKEY_DATA_DIR", data.to_str().unwrap())]);
    let (code, _, stderr) = run_cli_in(cwd.path(), &["migrate"], &vars, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(data.join("latchkey.db").is_file());
    assert!(data.join("master.key").is_file());
}

#[test]

fn a_data_dir_with_percent_or_question_mark_in_its_name_works() {
    for name in ["pct%41dir", "what?dir"] {
        let cwd = tempfile::tempdir().unwrap();
        let data = cwd.path().join(name);
        let vars = env(&[("LATCHKEY_DATA_DIR", data.to_str().unwrap())]);
        let (code, _, stderr) = run_cli_in(cwd.path(), &["migrate"], &vars, None);
        assert_eq!(code, 0, "LATCHKEY_DATA_DIR={name:?}: {stderr}");
        assert!(
            data.join("latchkey.db").is_file(),
            "the database lives in the data dir {name:?}"
        );
    }
}

/// The library loader, for the defaults that derive from other settings.
fn load(pairs: &[(&str, &str)]) -> Result<latchkey::config::Config, latchkey::config::ConfigError> {
    let vars = env(pairs);
    latchkey::config::Config::load_from(None, |name| vars.get(name).cloned())
}

#[test]
fn public_url_defaults_from_listen_including_wildcard_and_ipv6() {
    assert_eq!(
        load(&[("LATCHKEY_LISTEN", "127.0.0.1:9000")])
            .unwrap()
            .public_base(),
        "http://127.0.0.1:9000"
    );
    assert_eq!(
        load(&[("LATCHKEY_LISTEN", "0.0.0.0:9000")])
            .unwrap()
            .public_base(),
        "http://localhost:9000"
    );
    assert_eq!(
        load(&[("LATCHKEY_LISTEN", "[::1]:9000")])
            .unwrap()
            .public_base(),
        "http://[::1]:9000"
    );
    let config = load(&[("LATCHKEY_PUBLIC_URL", "https://id.example.com/auth/")]).unwrap();
    assert_eq!(
        config.issuer_for("acme"),
        "https://id.example.com/auth/o/acme"
    );
    assert!(config.is_https());
}

#[test]
fn a_toml_file_is_layered_under_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latchkey.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7000\"\nbcrypt_cost = 11\nlog_level = \"debug\"\n",
    )
    .unwrap();
    let vars = env(&[("LATCHKEY_LISTEN", "127.0.0.1:7001")]);
    let config =
        latchkey::config::Config::load_from(Some(&file), |name| vars.get(name).cloned()).unwrap();
    assert_eq!(
        config.listen.port(),
        7001,
        "the environment wins over the file"
    );
    assert_eq!(config.bcrypt_cost, 11, "the file wins over the default");
    assert_eq!(config.log_level, "debug");
    let err = latchkey::config::Config::load_from(Some(&file), |name| {
        (name == "LATCHKEY_BCRYPT_COST").then(|| "99".to_string())
    })
    .unwrap_err();
    assert_eq!(
        err.setting, "LATCHKEY_BCRYPT_COST",
        "the error names where the bad value came from"
    );
}

#[test]
fn smtp_mistakes_exit_2_naming_the_setting() {
    let cwd = tempfile::tempdir().unwrap();
    let host = ("LATCHKEY_SMTP_HOST", "smtp.example.com");
    for (vars, setting) in [
        (
            vec![host, ("LATCHKEY_SMTP_TLS", "ssl")],
            "LATCHKEY_SMTP_TLS",
        ),
        (
            vec![host, ("LATCHKEY_SMTP_PORT", "0")],
            "LATCHKEY_SMTP_PORT",
        ),
        (
            vec![host, ("LATCHKEY_SMTP_USERNAME", "mailer")],
            "LATCHKEY_SMTP_USERNAME",
        ),
        (
            vec![host, ("LATCHKEY_SMTP_PASSWORD", "s3cret")],
            "LATCHKEY_SMTP_PASSWORD",
        ),
        (
            vec![host, ("LATCHKEY_SMTP_FROM", "not an address")],
            "LATCHKEY_SMTP_FROM",
        ),
        (
            vec![("LATCHKEY_SMTP_HOST", "smtp://smtp.example.com")],
            "LATCHKEY_SMTP_HOST",
        ),
        (vec![("LATCHKEY_SMTP_TLS", "tls")], "LATCHKEY_SMTP_TLS"),
    ] {
        let result = run_cli_in(cwd.path(), &["org", "list"], &env(&vars), None);
        assert_one_line_config_error(&result, &[setting]);
        assert!(
            !result.2.contains("s3cret"),
            "the password is never printed: {}",
            result.2
        );
    }
    assert!(!cwd.path().join("latchkey-data").exists());
}

#[test]
fn smtp_settings_in_the_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latchkey.toml");
    std::fs::write(
        &file,
        "smtp_host = \"mail.example.com\"\nsmtp_tls = \"tls\"\nsmtp_username = \"mailer\"\n\
         smtp_password = \"pw\"\nsmtp_from = \"Example <id@example.com>\"\n",
    )
    .unwrap();
    let config = latchkey::config::Config::load_from(Some(&file), |_| None).unwrap();
    let smtp = config.smtp.unwrap();
    assert_eq!(smtp.host, "mail.example.com");
    assert_eq!(smtp.port, 465, "the port follows tls");
    assert_eq!(
        smtp.credentials,
        Some(("mailer".to_string(), "pw".to_string()))
    );
    assert_eq!(config.smtp_from.to_string(), "Example <id@example.com>");
    std::fs::write(
        &file,
        "smtp_host = \"mail.example.com\"\nsmtp_port = \"587\"\n",
    )
    .unwrap();
    let err = latchkey::config::Config::load_from(Some(&file), |_| None).unwrap_err();
    assert!(err.setting.starts_with("smtp_port (in "), "{err}");
}
