//! Limits on the unauthenticated requests that send codes and links: password-reset requests per email
//! (3/hour) and per client address (10/hour), verification resends, and the per-application cap. A limited
//! request is 429 with Retry-After and RateLimit headers, answered the same for registered and unknown
//! addresses, and audited.

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, random_hex};
use crate::oauth_support::*;

async fn forgot(browser: &mut Browser<'_>, slug: &str, csrf: &str, email: &str) -> Answer {
    browser
        .post_form(
            &format!("/o/{slug}/forgot-password"),
            &[("csrf", csrf), ("email", email)],
        )
        .await
}

async fn reset_requests_are_limited_per_email_and_address(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let slug = fx.org.slug.clone();
    let mut browser = Browser::new(&app);
    let csrf = hidden_field(
        &browser
            .get(&format!("/o/{slug}/forgot-password"))
            .await
            .body,
        "csrf",
    );
    let stranger = format!("nobody-{}@example.com", random_hex(4));
    let mut refused = Vec::new();
    for email in [fx.email.as_str(), stranger.as_str()] {
        for attempt in 1..=3 {
            let answer = forgot(&mut browser, &slug, &csrf, email).await;
            assert_eq!(
                answer.status,
                StatusCode::SEE_OTHER,
                "request {attempt} for {email} is accepted"
            );
        }
        let answer = forgot(&mut browser, &slug, &csrf, email).await;
        assert_eq!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "a fourth within the hour is refused"
        );
        assert!(
            answer
                .header("retry-after")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert!(
            answer
                .header("ratelimit-policy")
                .unwrap()
                .contains("\"reset-email\";q=3;w=3600")
        );
        assert!(answer.header("ratelimit").unwrap().contains("r=0"));
        assert!(answer.body.contains("Too many requests"), "{}", answer.body);
        assert!(answer.body.contains(email), "what was typed is kept");
        refused.push(answer.body.replace(email, "EMAIL"));
    }
    assert_eq!(
        refused[0], refused[1],
        "the refusal does not tell registered from unknown"
    );
    let mails = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM email_outbox WHERE recipient = '{}'",
            fx.email
        ))
        .await;
    assert_eq!(mails, 3, "only the accepted requests sent mail");

    // Per address: 10 an hour whatever the emails (6 spent above plus the 2 refusals, which counted
    // against the address before the per-email limit refused them).
    let mut statuses = Vec::new();
    for i in 0..4 {
        let answer = forgot(
            &mut browser,
            &slug,
            &csrf,
            &format!("other{i}-{}@example.com", random_hex(3)),
        )
        .await;
        statuses.push(answer.status);
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                answer
                    .header("ratelimit-policy")
                    .unwrap()
                    .contains("\"reset-ip\";q=10")
            );
        }
    }
    assert_eq!(
        statuses,
        vec![
            StatusCode::SEE_OTHER,
            StatusCode::SEE_OTHER,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let audited = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE org_id = '{}' AND action = 'rate_limited'",
            fx.org.id
        ))
        .await;
    assert_eq!(audited, 4, "every refusal is audited");
    app.stop().await;
}

async fn code_requests_are_capped_per_application(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.code_requests_per_app_per_hour = 2;
    })
    .await;
    let slug = fx.org.slug.clone();
    let mut browser = Browser::new(&app);
    let csrf = hidden_field(
        &browser
            .get(&format!("/o/{slug}/verify-email/resend"))
            .await
            .body,
        "csrf",
    );
    let mut statuses = Vec::new();
    for i in 0..3 {
        let answer = browser
            .post_form(
                &format!("/o/{slug}/verify-email/resend"),
                &[("csrf", &csrf), ("email", &format!("u{i}@example.com"))],
            )
            .await;
        statuses.push(answer.status);
    }
    assert_eq!(
        statuses,
        vec![
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Resets draw on the same allowance.
    let answer = forgot(&mut browser, &slug, &csrf, "u9@example.com").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        answer
            .header("ratelimit-policy")
            .unwrap()
            .contains("\"code-requests\";q=2")
    );
    app.stop().await;
}

backend_tests! {
    reset_requests_are_limited_per_email_and_address => reset_requests_are_limited_per_email_and_address_sqlite, reset_requests_are_limited_per_email_and_address_postgres;
    code_requests_are_capped_per_application => code_requests_are_capped_per_application_sqlite, code_requests_are_capped_per_application_postgres;
}

/// A sign-in from `source` (a loopback address) through the login page without an authorization request.
async fn sign_in_from(
    app: &TestApp,
    source: std::net::IpAddr,
    slug: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
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
    http.post(app.url(&format!("/o/{slug}/login")))
        .header("origin", app.base.clone())
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// Reaching the sign-in limit locks the account for that address only; each further time within a day
/// the lock doubles (up to the cap); the right password from another address still signs in at once.
async fn sign_in_lockouts_back_off_exponentially_and_only_for_the_attacking_address(app: TestApp) {
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.login_attempts = 2;
        s.rate_limits.login_window_secs = 1;
        s.rate_limits.login_lockout_max_secs = 4;
    })
    .await;
    let attacker: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let victim: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let slug = fx.org.slug.clone();
    let mut retry_afters = Vec::new();
    for round in 1..=4 {
        for _ in 0..2 {
            let r = sign_in_from(&app, attacker, &slug, &fx.email, "wrong password 1").await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "round {round}: guesses within the limit are checked"
            );
        }
        let r = sign_in_from(&app, attacker, &slug, &fx.email, "wrong password 1").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        retry_afters.push(retry_after);
        // Locked: even the right password waits, from this address...
        let r = sign_in_from(&app, attacker, &slug, &fx.email, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        // ...but not from the victim's.
        if round == 4 {
            let r = sign_in_from(&app, victim, &slug, &fx.email, PASSWORD).await;
            assert_eq!(
                r.status(),
                StatusCode::SEE_OTHER,
                "the owner signs in from elsewhere"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(retry_after * 1000 + 200)).await;
    }
    assert_eq!(retry_afters, vec![1, 2, 4, 4], "locks double up to the cap");
    // After the lock the right password works, and it forgets the strikes.
    let r = sign_in_from(&app, attacker, &slug, &fx.email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    for _ in 0..2 {
        sign_in_from(&app, attacker, &slug, &fx.email, "wrong password 1").await;
    }
    let r = sign_in_from(&app, attacker, &slug, &fx.email, "wrong password 1").await;
    assert_eq!(
        r.headers()["retry-after"].to_str().unwrap(),
        "1",
        "back to the first lock"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_lockouts_back_off_exponentially_in_memory() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    sign_in_lockouts_back_off_exponentially_and_only_for_the_attacking_address(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_lockouts_back_off_exponentially_with_redis() {
    let Some(redis) = crate::helpers::redis_url() else {
        return;
    };
    let Some(db) = crate::helpers::TestDb::new(Backend::Postgres).await else {
        return;
    };
    let app = TestApp::spawn_on(db, &[("LATCHKEY_REDIS_URL", redis.as_str())]).await;
    sign_in_lockouts_back_off_exponentially_and_only_for_the_attacking_address(app).await;
}
