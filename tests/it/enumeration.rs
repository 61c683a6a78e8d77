//! Built as its own test binary (`tests/enumeration.rs`), which cargo runs after the others, alone: timing
//! measured while a hundred other tests share two cores is noise, not evidence.
//!
//! Enumeration protection: sign-in, sign-up, forgot-password and resend-verification answer a registered
//! address exactly as they answer an unknown one (status, body, header names), and take the same time.
//!
//! The same holds after the bcrypt cost is raised: users whose hashes still have the old cost (they have
//! not signed in since) answer a wrong password in the time of the new cost, like unknown addresses.
//!
//! Timing is measured, not assumed: requests for known and unknown addresses are interleaved (so drift
//! and noise from other processes hit both sides alike) and the medians must differ by less than 5 ms. A
//! round that misses is measured once more before failing: a burst of load from another process can move
//! one round's median, a real difference (a skipped hash is ~70 ms) shows in every round.

use std::time::{Duration, Instant};

use latchkey::audit::Actor;
use latchkey::users::NewUser;
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, TestDb, random_hex, test_config_with};
use crate::oauth_support::{
    Answer, Browser, fixture, fixture_with, hidden_field, set_org_settings,
};

const SAMPLES: usize = 25;
const MAX_MEDIAN_GAP: Duration = Duration::from_millis(5);

/// What a caller can see of an answer, with the per-request randomness (the address typed and cookie
/// values) masked out.
fn observable(answer: &Answer, email: &str) -> (StatusCode, String, Vec<String>) {
    let body = answer.body.replace(email, "EMAIL");
    let mut headers: Vec<String> = answer
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id" | "content-length"))
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default();
            match name.as_str() {
                // Same cookie names and attributes; the values are random either way.
                "set-cookie" => {
                    let (first, attrs) = value.split_once(';').unwrap_or((value, ""));
                    let cookie_name = first.split('=').next().unwrap_or_default();
                    format!("set-cookie: {cookie_name}=…;{attrs}")
                }
                _ => format!("{name}: {value}"),
            }
        })
        .collect();
    headers.sort();
    (answer.status, body, headers)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Sends `SAMPLES` requests for known and for unknown addresses, interleaved; checks the answers are
/// indistinguishable and the median times close.
async fn compare(what: &str, known: &[String], mut send: impl AsyncFnMut(&str) -> Answer) {
    let mut gaps = Vec::new();
    for round in 1..=2 {
        let (k, u) = measure(what, known, &mut send).await;
        println!("{what} (round {round}): median registered {k:?}, unknown {u:?}");
        let gap = k.abs_diff(u);
        if gap < MAX_MEDIAN_GAP {
            return;
        }
        gaps.push(gap);
    }
    panic!("{what}: median times for registered and unknown addresses differ by {gaps:?}");
}

async fn measure(
    what: &str,
    known: &[String],
    send: &mut impl AsyncFnMut(&str) -> Answer,
) -> (Duration, Duration) {
    let mut known_times = Vec::new();
    let mut unknown_times = Vec::new();
    let mut reference: Option<(StatusCode, String, Vec<String>)> = None;
    for (i, known_email) in known.iter().enumerate().take(SAMPLES) {
        let unknown_email = format!("nobody-{}@example.com", random_hex(6));
        // Alternate which goes first so neither side always runs on a warmer machine.
        let order: [(&str, bool); 2] = if i % 2 == 0 {
            [(known_email, true), (&unknown_email, false)]
        } else {
            [(&unknown_email, false), (known_email, true)]
        };
        for (email, is_known) in order {
            let started = Instant::now();
            let answer = send(email).await;
            let took = started.elapsed();
            let seen = observable(&answer, email);
            assert!(
                !seen.0.is_server_error(),
                "{what}: {} for {email}: {}",
                seen.0,
                answer.body
            );
            match &reference {
                None => reference = Some(seen),
                Some(expected) => assert_eq!(
                    &seen,
                    expected,
                    "{what}: the answer for a {} address differs",
                    if is_known { "registered" } else { "unknown" }
                ),
            }
            if is_known {
                known_times.push(took);
            } else {
                unknown_times.push(took);
            }
        }
    }
    (median(known_times), median(unknown_times))
}

async fn enumeration_is_not_possible(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    // This test is about answers and timing, not limits: lift the per-address reset and sign-up limits
    // it would hit.
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.reset_per_ip_per_hour = 1000;
        s.rate_limits.code_requests_per_app_per_hour = 1000;
        s.rate_limits.signup_per_ip_per_hour = 1000;
    })
    .await;
    // Unverified accounts: the path where a registered address does the most extra work (a new
    // verification link or reset code plus its email).
    let mut known = Vec::new();
    for _ in 0..SAMPLES {
        let email = format!("known-{}@example.com", random_hex(6));
        latchkey::users::create(
            &app.services,
            &Actor::operator(),
            &fx.org,
            NewUser {
                email: &email,
                password: Some("the real password 123"),
                name: None,
                verified: false,
                role: None,
            },
        )
        .await
        .expect("create user");
        known.push(email);
    }
    let slug = fx.org.slug.clone();
    let mut browser = Browser::new(&app);
    let page = browser.get(&format!("/o/{slug}/login")).await;
    let csrf = hidden_field(&page.body, "csrf");

    compare("sign-in", &known, async |email| {
        browser
            .post_form(
                &format!("/o/{slug}/login"),
                &[
                    ("csrf", &csrf),
                    ("email", email),
                    ("password", "wrong password 456"),
                ],
            )
            .await
    })
    .await;

    compare("sign-up", &known, async |email| {
        browser
            .post_form(
                &format!("/o/{slug}/signup"),
                &[
                    ("csrf", &csrf),
                    ("name", ""),
                    ("email", email),
                    ("password", "a brand new password 789"),
                ],
            )
            .await
    })
    .await;

    compare("forgot-password", &known, async |email| {
        let answer = browser
            .post_form(
                &format!("/o/{slug}/forgot-password"),
                &[("csrf", &csrf), ("email", email)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        answer
    })
    .await;

    compare("resend-verification", &known, async |email| {
        browser
            .post_form(
                &format!("/o/{slug}/verify-email/resend"),
                &[("csrf", &csrf), ("email", email)],
            )
            .await
    })
    .await;

    // The registered addresses did get mail (so the equal answers hid real work, not skipped it).
    let mailed = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM email_outbox WHERE recipient = '{}'",
            known[0]
        ))
        .await;
    assert!(
        mailed >= 3,
        "sign-up notice, reset code and verification link were queued, got {mailed}"
    );
    let strangers = app
        .db
        .scalar_i64(
            "SELECT COUNT(*) FROM email_outbox WHERE recipient LIKE 'nobody-%' \
             AND subject NOT LIKE 'Confirm your email%'",
        )
        .await;
    assert_eq!(
        strangers, 0,
        "unknown addresses get only the verification mail of their new account"
    );
    app.stop().await;
}

/// The bcrypt cost users were created under (the lowest allowed), and the cost it was raised to: one
/// step, so an unpadded wrong password would take half the time (about 65 ms less), while each sample
/// stays short enough for the noise of a loaded machine to stay small.
const OLD_COST: &str = "10";
const NEW_COST: &str = "11";
const STALE_SAMPLES: usize = 21;

async fn a_raised_cost_does_not_tell_registered_addresses(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    // Users made while the cost was lower...
    let old =
        latchkey::app::App::open(test_config_with(&db, &[("LATCHKEY_BCRYPT_COST", OLD_COST)]))
            .await
            .expect("services open");
    let fx = fixture_with(&old).await;
    let mut known = Vec::new();
    for _ in 0..STALE_SAMPLES {
        let email = format!("stale-{}@example.com", random_hex(6));
        latchkey::users::create(
            &old,
            &Actor::operator(),
            &fx.org,
            NewUser {
                email: &email,
                password: Some("the real password 123"),
                name: None,
                verified: true,
                role: None,
            },
        )
        .await
        .expect("create user");
        known.push(email);
    }
    drop(old);
    // ...then served with the cost raised.
    let app = TestApp::spawn_on(db, &[("LATCHKEY_BCRYPT_COST", NEW_COST)]).await;
    let credential = app
        .services
        .db
        .tenant(&fx.org.id)
        .credentials(&fx.user.id, latchkey::users::CredentialKind::Password)
        .await
        .unwrap()
        .remove(0);
    assert!(
        credential
            .secret
            .starts_with(format!("bcrypt-hmac$$2b${OLD_COST}$").as_bytes()),
        "the stored hashes still have the old cost"
    );
    let slug = fx.org.slug.clone();
    let mut browser = Browser::new(&app);
    let page = browser.get(&format!("/o/{slug}/login")).await;
    let csrf = hidden_field(&page.body, "csrf");
    compare(
        &format!("sign-in after the cost went from {OLD_COST} to {NEW_COST}"),
        &known,
        async |email| {
            browser
                .post_form(
                    &format!("/o/{slug}/login"),
                    &[
                        ("csrf", &csrf),
                        ("email", email),
                        ("password", "wrong password 456"),
                    ],
                )
                .await
        },
    )
    .await;
    app.stop().await;
}

/// One test for both backends, one after the other, so they do not load the machine for each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enumeration_is_not_possible_on_sqlite_and_postgres() {
    enumeration_is_not_possible(Backend::Sqlite).await;
    enumeration_is_not_possible(Backend::Postgres).await;
    a_raised_cost_does_not_tell_registered_addresses(Backend::Sqlite).await;
    a_raised_cost_does_not_tell_registered_addresses(Backend::Postgres).await;
}
