//! Password policy and hashing, end to end: organization settings changed through the CLI and enforced,
//! argon2id selectable with transparent re-hashing at sign-in, and the hashing pool shedding load (503)
//! while token, JWKS and introspection traffic keeps being answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use latchkey::users::CredentialKind;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestDb, cli_json, open_services, run_cli};
use crate::oauth_support::*;

fn env_of(db: &TestDb) -> BTreeMap<String, String> {
    db.env()
}

async fn org_settings_change_through_the_cli_and_bad_values_change_nothing(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = env_of(&db);
    cli_json(
        &["org", "create", "--slug", "acme", "--name", "Acme"],
        &env,
        None,
    );
    let updated = cli_json(
        &[
            "org",
            "update",
            "--slug",
            "acme",
            "--name",
            "Acme Inc",
            "--self-registration",
            "off",
            "--password-min-length",
            "12",
            "--password-require-digit",
            "on",
            "--session-idle-timeout",
            "900",
            "--reset-per-email-per-hour",
            "5",
            "--token-requests-per-client-per-minute",
            "600",
            "--introspections-per-client-per-minute",
            "9000",
        ],
        &env,
        None,
    );
    let settings = &updated["settings"];
    assert_eq!(updated["name"], "Acme Inc");
    assert_eq!(settings["self_registration"], false);
    assert_eq!(settings["password_policy"]["min_length"], 12);
    assert_eq!(settings["password_policy"]["require_digit"], true);
    assert_eq!(settings["session_idle_timeout_secs"], 900);
    assert_eq!(
        settings["session_absolute_lifetime_secs"], 43200,
        "untouched"
    );
    assert_eq!(settings["rate_limits"]["reset_per_email_per_hour"], 5);
    assert_eq!(
        settings["rate_limits"]["token_requests_per_client_per_minute"],
        600
    );
    assert_eq!(
        settings["rate_limits"]["introspections_per_client_per_minute"],
        9000
    );
    let shown = cli_json(&["org", "show", "--slug", "acme"], &env, None);
    assert_eq!(shown, updated);

    for (args, field) in [
        (vec!["--password-min-length", "4"], "password_min_length"),
        (vec!["--session-idle-timeout", "10"], "session_idle_timeout"),
        (
            vec![
                "--session-idle-timeout",
                "7200",
                "--session-absolute-lifetime",
                "3600",
            ],
            "session_idle_timeout",
        ),
        (vec!["--login-attempts", "0"], "login_attempts"),
        (
            vec!["--token-requests-per-client-per-minute", "0"],
            "token_requests_per_client_per_minute",
        ),
        (vec!["--name", ""], "name"),
    ] {
        let mut full = vec!["org", "update", "--slug", "acme"];
        full.extend(args.iter().copied());
        let (code, stdout, stderr) = run_cli(&full, &env, None);
        assert_eq!(code, 1, "{args:?}: {stdout} {stderr}");
        assert!(
            stderr.contains(field),
            "{args:?}: the error names {field}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    let (code, _, stderr) = run_cli(
        &["org", "update", "--slug", "nope", "--name", "X"],
        &env,
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    let (code, _, _) = run_cli(
        &[
            "org",
            "update",
            "--slug",
            "acme",
            "--self-registration",
            "maybe",
        ],
        &env,
        None,
    );
    assert_eq!(code, 2, "a value outside on/off is a usage error");
    assert_eq!(
        cli_json(&["org", "show", "--slug", "acme"], &env, None),
        updated,
        "nothing changed"
    );

    // The policy applies to accounts made from now on, with the rule that failed named.
    let (code, _, stderr) = run_cli(
        &[
            "user",
            "create",
            "--org",
            "acme",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        &env,
        Some("no digits in here\n"),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("must contain a digit"), "{stderr}");
    let (code, _, stderr) = run_cli(
        &[
            "user",
            "create",
            "--org",
            "acme",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        &env,
        Some("short 1\n"),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("at least 12 characters"), "{stderr}");
    let audit = cli_json(&["audit", "list", "--org", "acme"], &env, None);
    let updates = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "org.updated")
        .count();
    assert_eq!(updates, 1, "one audited change: {audit}");
}

backend_tests! {
    org_settings_change_through_the_cli_and_bad_values_change_nothing => org_settings_cli_sqlite, org_settings_cli_postgres;
}

/// A bcrypt hash becomes an argon2id hash at the first sign-in after the operator switches schemes.
async fn switching_to_argon2id_rehashes_at_sign_in(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let services = open_services(&db).await;
    let app_env = [("LATCHKEY_PASSWORD_HASH", "argon2id")];
    let app = TestApp::spawn_on(db, &app_env).await;
    // The fixture is made through services opened with the default (bcrypt) configuration.
    let fx = fixture_with(&services).await;
    let stored = |creds: Vec<latchkey::users::Credential>| {
        String::from_utf8(creds.into_iter().next().unwrap().secret).unwrap()
    };
    let before = stored(
        services
            .db
            .tenant(&fx.org.id)
            .credentials(&fx.user.id, CredentialKind::Password)
            .await
            .unwrap(),
    );
    assert!(before.starts_with("bcrypt-hmac$"), "{before}");
    let client = confidential_client(&app, &fx).await;
    let _ = tokens(&app, &fx, &client).await;
    let after = stored(
        services
            .db
            .tenant(&fx.org.id)
            .credentials(&fx.user.id, CredentialKind::Password)
            .await
            .unwrap(),
    );
    assert!(
        after.starts_with("argon2id$$argon2id$v=19$m=19456,t=2,p=1$"),
        "{after}"
    );
    let _ = tokens(&app, &fx, &client).await;
    let events = services
        .db
        .tenant(&fx.org.id)
        .audit_events(0, 1000)
        .await
        .unwrap();
    let rehashed: Vec<_> = events
        .iter()
        .filter(|e| e.action == "credential.rehashed")
        .collect();
    assert_eq!(rehashed.len(), 1, "re-hashed once, then current");
    let text = rehashed[0].after_state.clone().unwrap_or_default();
    assert!(
        !text.contains("argon2id$v=19"),
        "no hash in the audit log: {text}"
    );
    app.stop().await;
}

backend_tests! {
    switching_to_argon2id_rehashes_at_sign_in => argon2id_rehash_sqlite, argon2id_rehash_postgres;
}

/// A flood of sign-ins larger than the hashing pool and its queue: the excess is refused at once with 503
/// and `Retry-After` (never a 500), and meanwhile the token endpoint, JWKS and introspection answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_flood_sheds_load_and_token_traffic_keeps_flowing() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("LATCHKEY_PASSWORD_HASH_WORKERS", "1"),
            ("LATCHKEY_PASSWORD_HASH_QUEUE", "1"),
            ("LATCHKEY_BCRYPT_COST", "13"),
        ],
    )
    .await
    .unwrap();
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| s.rate_limits.login_attempts = 1000).await;
    let mut service = new_app(latchkey::apps::ClientType::Confidential);
    service
        .grant_types
        .push(latchkey::apps::GrantType::ClientCredentials);
    let client = register(&app, &fx, service).await;
    let service_token = token(&app, &fx, &client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        service_token.status,
        StatusCode::OK,
        "{}",
        service_token.body
    );
    let access = service_token.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let mut browser = Browser::new(&app);
    let page = browser.get(&fx.path("/login")).await;
    let csrf = hidden_field(&page.body, "csrf");
    let cookie = browser.cookie_header();
    let flood: Vec<_> = (0..20)
        .map(|i| {
            let (http, url, origin, cookie, csrf) = (
                app.http.clone(),
                app.url(&fx.path("/login")),
                app.base.clone(),
                cookie.clone(),
                csrf.clone(),
            );
            let email = format!("flood{i}@example.com");
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("origin", origin)
                    .header("cookie", cookie)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("email", &email),
                        ("password", "wrong password 1"),
                    ])
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.headers().get("retry-after").is_some())
            })
        })
        .collect();
    // While the pool is busy, the hot endpoints answer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        assert!(!jwks(&app, &fx).await["keys"].as_array().unwrap().is_empty());
        let t = token(&app, &fx, &client, &[("grant_type", "client_credentials")]).await;
        assert_eq!(t.status, StatusCode::OK);
        let i: Value = introspect(&app, &fx, &client, &access).await;
        assert_eq!(i["active"], true);
        slowest = slowest.max(started.elapsed());
    }
    let mut shed = 0;
    let mut checked = 0;
    for task in flood {
        let (status, retry_after) = task.await.unwrap();
        match status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after, "503 says when to retry");
                shed += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    println!(
        "flood of 20 sign-ins: {checked} checked, {shed} refused with 503; slowest JWKS+token+introspection round during it: {slowest:?}"
    );
    assert!(shed > 0, "the excess was refused");
    assert!(checked >= 2, "the pool and its queue were used");
    app.stop().await;
}
