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
