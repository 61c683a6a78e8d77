//! Password and second-factor guessing, hardened: a per-account cap across client addresses (with the
//! owner's known addresses exempt), the account page's current-password check under the same limits as
//! sign-in, and second-factor locks that double instead of resetting every few minutes.
//!
//! The server tells clients apart by their socket address, so a test plays several clients by binding
//! to different loopback addresses (127.0.0.2, 127.0.0.3, …). Locks are made short through the
//! organization's settings and waited out, as the sign-in lockout tests do.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use latchkey::sessions::service::ClientInfo;
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, TestDb, cli_json, random_hex, redis_url, run_cli};
use crate::oauth_support::*;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The server under test: in-memory limits on SQLite, Redis-held limits on PostgreSQL.
async fn spawn(backend: Backend) -> Option<TestApp> {
    match backend {
        Backend::Sqlite => TestApp::spawn(backend).await,
        Backend::Postgres => {
            let redis = redis_url()?;
            let db = TestDb::new(backend).await?;
            Some(TestApp::spawn_on(db, &[("LATCHKEY_REDIS_URL", redis.as_str())]).await)
        }
    }
}

/// A sign-in through the login page from a client bound to `source`.
async fn sign_in_from(
    app: &TestApp,
    source: IpAddr,
    slug: &str,
    email: &str,
    password: &str,
) -> Answer {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(source)
        .build()
        .unwrap();
    let page = http
        .get(app.url(&format!("/o/{slug}/login")))
        .send()
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf");
    let answer = http
        .post(app.url(&format!("/o/{slug}/login")))
        .header("origin", app.base.clone())
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let location = headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body = answer.text().await.unwrap().replace(&csrf, "CSRF");
    Answer {
        status,
        headers,
        location,
        body,
    }
}

async fn audits_with(app: &TestApp, fx: &Fixture, action: &str, detail: &str) -> i64 {
    app.db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE org_id = '{}' AND action = '{action}' \
             AND COALESCE(after_state, '') LIKE '%{detail}%'",
            fx.org.id
        ))
        .await
}

/// Eight addresses with five wrong passwords each used to mean 40 checked guesses at one account. Now
/// 20 are checked and the 21st, from an address that never guessed before, is refused, as is the right
/// password from yet another address; an address nobody registered gets exactly the same answers.
async fn the_account_cap_refuses_the_21st_guess_from_fresh_addresses(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let slug = fx.org.slug.clone();
    let stranger = format!("nobody-{}@example.com", random_hex(4));
    let mut refusals = Vec::new();
    for email in [fx.email.as_str(), stranger.as_str()] {
        let mut answers = Vec::new();
        for last in 2..=9u8 {
            for _ in 0..5 {
                let answer =
                    sign_in_from(&app, loopback(last), &slug, email, "wrong password 1").await;
                answers.push((last, answer));
            }
        }
        let checked = answers
            .iter()
            .take_while(|(_, a)| a.status == StatusCode::UNAUTHORIZED)
            .count();
        assert_eq!(checked, 20, "{email}: 20 guesses are checked");
        let (source, first_refusal) = &answers[20];
        assert_eq!(
            *source, 6,
            "the 21st guess comes from an address that has not guessed before"
        );
        assert!(
            answers[20..]
                .iter()
                .all(|(_, a)| a.status == StatusCode::TOO_MANY_REQUESTS),
            "{email}: every further guess is refused"
        );
        assert!(
            first_refusal
                .header("ratelimit-policy")
                .unwrap()
                .contains("\"login-account\";q=20;w=3600"),
            "{:?}",
            first_refusal.headers
        );
        let retry_after: u64 = first_refusal
            .header("retry-after")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&retry_after), "{retry_after}");
        // Even the right password waits, from a fresh address too.
        let right = sign_in_from(&app, loopback(10), &slug, email, PASSWORD).await;
        assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        refusals.push((
            first_refusal.status,
            first_refusal.body.replace(email, "EMAIL"),
        ));
    }
    assert_eq!(
        refusals[0], refusals[1],
        "the refusal does not tell registered from unknown"
    );
    assert_eq!(
        audits_with(&app, &fx, "login.failed", "").await,
        40,
        "20 checked guesses per address"
    );
    assert_eq!(
        audits_with(
            &app,
            &fx,
            "login.rate_limited",
            "\"policy\":\"login-account\""
        )
        .await,
        2 * 21,
        "every refusal is audited"
    );
    app.stop().await;
}

/// While attackers have spent the account's cap, the owner still signs in from an address they signed
/// in from before; that address stays under the per-address limit.
async fn the_owner_signs_in_from_a_known_address_while_the_cap_is_spent(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.login_attempts_per_account_per_hour = 3;
    })
    .await;
    let slug = fx.org.slug.clone();
    let home = loopback(9);
    let signed_in = sign_in_from(&app, home, &slug, &fx.email, PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    // The owner's sign-in counted too: two guesses are checked, the third is refused.
    let mut statuses = Vec::new();
    for last in 2..=4u8 {
        let answer = sign_in_from(&app, loopback(last), &slug, &fx.email, "wrong password 1").await;
        statuses.push(answer.status);
    }
    assert_eq!(
        statuses,
        vec![
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let fresh = sign_in_from(&app, loopback(5), &slug, &fx.email, PASSWORD).await;
    assert_eq!(
        fresh.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a new address waits"
    );
    let known = sign_in_from(&app, home, &slug, &fx.email, PASSWORD).await;
    assert_eq!(
        known.status,
        StatusCode::SEE_OTHER,
        "the owner's known address is not held back: {}",
        known.body
    );
    // A known address is no way around the per-address limit.
    for n in 1..=5 {
        let answer = sign_in_from(&app, home, &slug, &fx.email, "wrong password 2").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let locked = sign_in_from(&app, home, &slug, &fx.email, "wrong password 2").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked
            .header("ratelimit-policy")
            .unwrap()
            .starts_with("\"login\";"),
        "{:?}",
        locked.headers
    );
    app.stop().await;
}

/// Posts the password-change form of the account page from `browser`.
async fn change_password(b: &mut Browser<'_>, fx: &Fixture, current: &str) -> Answer {
    let page = b.get(&fx.path("/account")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = hidden_field(&page.body, "csrf");
    b.post_form(
        &fx.path("/account/password"),
        &[
            ("csrf", &csrf),
            ("current_password", current),
            ("new_password", "a brand new passphrase 42"),
        ],
    )
    .await
}

/// A stolen session cookie cannot brute-force the password through the password-change form: wrong
/// current passwords count against the sign-in limits, and past them even the right one gets 429.
async fn current_password_guesses_on_the_account_page_are_limited(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let mut b = signed_in(&app, &fx).await;

    for n in 1..=5 {
        let wrong = change_password(&mut b, &fx, &format!("guess number {n}")).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "guess {n}");
        assert!(wrong.body.contains("is not your current password"));
    }
    let refused = change_password(&mut b, &fx, PASSWORD).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "past the limit even the right password waits: {}",
        refused.body
    );
    assert!(refused.body.contains("Too many password attempts"));
    assert!(
        refused
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(
        refused
            .header("ratelimit-policy")
            .unwrap()
            .starts_with("\"login\";")
    );
    assert_eq!(
        audits_with(&app, &fx, "password.change_failed", "").await,
        5
    );
    assert_eq!(
        audits_with(&app, &fx, "password.change_rate_limited", "lockout_started").await,
        1
    );
    assert_eq!(
        audits_with(&app, &fx, "password.changed", "").await,
        0,
        "the password did not change"
    );
    // They are the same limits as sign-in's: this address is locked out of signing in as well.
    let again = sign_in_from(&app, loopback(1), &fx.org.slug, &fx.email, PASSWORD).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

/// The same cookie, used from other addresses (the attacker's), spends the per-account cap.
async fn a_stolen_cookie_from_many_addresses_meets_the_account_cap(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.login_attempts_per_account_per_hour = 3;
    })
    .await;
    let mut b = Browser::new(&app);
    let page = b.get(&fx.path("/login")).await;
    let csrf = hidden_field(&page.body, "csrf");
    let signed_in = b
        .post_form(
            &fx.path("/login"),
            &[
                ("csrf", &csrf),
                ("email", &fx.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let cookie = b.cookie_header();
    let account_csrf = hidden_field(&b.get(&fx.path("/account")).await.body, "csrf");
    let mut statuses = Vec::new();
    for last in 2..=5u8 {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(loopback(last))
            .build()
            .unwrap();
        let answer = http
            .post(app.url(&fx.path("/account/password")))
            .header("origin", app.base.clone())
            .header("cookie", cookie.clone())
            .form(&[
                ("csrf", account_csrf.as_str()),
                ("current_password", "stolen cookie guess"),
                ("new_password", "a brand new passphrase 42"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(answer.status());
    }
    assert_eq!(
        statuses,
        vec![
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the owner's sign-in and two guesses from addresses it never signed in from, then the cap"
    );
    assert_eq!(
        audits_with(
            &app,
            &fx,
            "password.change_rate_limited",
            "\"policy\":\"login-account\""
        )
        .await,
        2
    );
    app.stop().await;
}

/// Reaching the wrong-code limit locks the second step for the window, and each further time within a
/// day for twice as long (up to the cap), instead of letting guessing resume every few minutes.
async fn second_factor_lockouts_double(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.mfa_attempts = 1;
        s.rate_limits.mfa_window_secs = 1;
        s.rate_limits.mfa_lockout_max_secs = 4;
    })
    .await;
    let factors = latchkey::mfa::factors(&app.services, &fx.user)
        .await
        .unwrap();
    let proof = crate::domain_rules::fresh_proof(&app.services, &fx.org, &fx.user).await;
    assert!(
        latchkey::mfa::enable_email(
            &app.services,
            &fx.org,
            &proof,
            &fx.user,
            &factors,
            &ClientInfo::default()
        )
        .await
        .unwrap()
    );
    let mut b = Browser::new(&app);
    let page = b.get(&fx.path("/login")).await;
    let csrf = hidden_field(&page.body, "csrf");
    let password = b
        .post_form(
            &fx.path("/login"),
            &[
                ("csrf", &csrf),
                ("email", &fx.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(password.status, StatusCode::SEE_OTHER);
    assert!(password.location.unwrap().ends_with("/login/mfa"));
    let page = b.get(&fx.path("/login/mfa")).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden_field(&page.body, "csrf");
    let sent = b
        .post_form(&fx.path("/login/mfa/email"), &[("csrf", &csrf)])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);

    let mut locks = Vec::new();
    for round in 1..=3 {
        let wrong = b
            .post_form(
                &fx.path("/login/mfa"),
                &[("csrf", &csrf), ("method", "email"), ("code", "000000")],
            )
            .await;
        assert_eq!(
            wrong.status,
            StatusCode::UNAUTHORIZED,
            "round {round}: the guess within the limit is checked"
        );
        let refused = b
            .post_form(
                &fx.path("/login/mfa"),
                &[
                    ("csrf", &csrf),
                    ("method", "recovery"),
                    ("code", "abcde-fghij"),
                ],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "round {round}: locked, whatever the method"
        );
        let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        locks.push(retry_after);
        if round < 3 {
            tokio::time::sleep(Duration::from_millis(retry_after * 1000 + 200)).await;
        }
    }
    assert_eq!(locks, vec![1, 2, 4], "each lock within a day doubles");
    assert_eq!(
        audits_with(&app, &fx, "rate_limited", "\"lockout_started\":3").await,
        1,
        "the third lock is audited as such"
    );
    assert_eq!(audits_with(&app, &fx, "mfa.succeeded", "").await, 0);
    app.stop().await;
}

/// The new limits are organization settings, changed and validated through the CLI.
async fn the_new_limits_are_set_through_the_cli_and_validated(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    cli_json(
        &["org", "create", "--slug", "acme", "--name", "Acme"],
        &env,
        None,
    );
    let shown = cli_json(&["org", "show", "--slug", "acme"], &env, None);
    let limits = &shown["settings"]["rate_limits"];
    assert_eq!(limits["login_attempts_per_account_per_hour"], 20, "default");
    assert_eq!(limits["mfa_attempts"], 5, "default");
    let updated = cli_json(
        &[
            "org",
            "update",
            "--slug",
            "acme",
            "--login-attempts-per-account-per-hour",
            "30",
            "--mfa-attempts",
            "3",
            "--mfa-window",
            "120",
            "--mfa-lockout-max",
            "7200",
        ],
        &env,
        None,
    );
    let limits = &updated["settings"]["rate_limits"];
    assert_eq!(limits["login_attempts_per_account_per_hour"], 30);
    assert_eq!(limits["mfa_attempts"], 3);
    assert_eq!(limits["mfa_window_secs"], 120);
    assert_eq!(limits["mfa_lockout_max_secs"], 7200);
    for (args, field) in [
        (
            vec!["--login-attempts-per-account-per-hour", "0"],
            "login_attempts_per_account_per_hour",
        ),
        (vec!["--mfa-attempts", "0"], "mfa_attempts"),
        (vec!["--mfa-lockout-max", "60"], "mfa_lockout_max"),
    ] {
        let mut full = vec!["org", "update", "--slug", "acme"];
        full.extend(args.iter().copied());
        let (code, stdout, stderr) = run_cli(&full, &env, None);
        assert_eq!(code, 1, "{args:?}: {stdout} {stderr}");
        assert!(stderr.contains(field), "{args:?}: names {field}: {stderr}");
    }
    assert_eq!(
        cli_json(&["org", "show", "--slug", "acme"], &env, None),
        updated,
        "refused values change nothing"
    );
}

backend_tests! {
    the_new_limits_are_set_through_the_cli_and_validated => new_limits_through_the_cli_sqlite, new_limits_through_the_cli_postgres;
    the_account_cap_refuses_the_21st_guess_from_fresh_addresses => account_cap_refuses_the_21st_guess_sqlite, account_cap_refuses_the_21st_guess_postgres_redis;
    the_owner_signs_in_from_a_known_address_while_the_cap_is_spent => owner_signs_in_from_a_known_address_sqlite, owner_signs_in_from_a_known_address_postgres_redis;
    current_password_guesses_on_the_account_page_are_limited => current_password_guesses_are_limited_sqlite, current_password_guesses_are_limited_postgres_redis;
    a_stolen_cookie_from_many_addresses_meets_the_account_cap => stolen_cookie_meets_the_account_cap_sqlite, stolen_cookie_meets_the_account_cap_postgres_redis;
    second_factor_lockouts_double => second_factor_lockouts_double_sqlite, second_factor_lockouts_double_postgres_redis;
}
