//! Hardening of the self-service account flows, over real HTTP on SQLite and PostgreSQL:
//! - opening an emailed verification link confirms nothing (mail scanners open links); its button does;
//! - sign-up is limited per client address and per email address, the same for registered and unknown
//!   addresses, so nobody can flood a mailbox or mail hundreds of addresses;
//! - one client hammering reset or resend cannot spend the organization's shared budget for everyone
//!   (in memory and with Redis);
//! - look-alike spellings of an address reach the same account (NFD, upper case, `xn--` domains) or are
//!   refused (zero-width, full-width, mixed scripts), on every way in: sign-up, sign-in, reset, the CLI.

use std::net::IpAddr;

use latchkey::audit::Actor;
use latchkey::users::NewUser;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::accounts::{link_in, mails_to};
use crate::helpers::{Backend, TestApp, TestDb, random_hex, redis_url, run_cli_async};
use crate::oauth_support::*;

/// A browser at a chosen client address (any of 127.0.0.0/8 reaches the test server), holding the CSRF
/// cookie and token of the organization's public forms.
struct Visitor<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

/// What a visitor got back.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl<'a> Visitor<'a> {
    async fn from(app: &'a TestApp, fx: &Fixture, address: &str) -> Visitor<'a> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(address.parse::<IpAddr>().unwrap())
            .build()
            .unwrap();
        let page = http
            .get(app.url(&fx.path("/forgot-password")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let cookie = page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let csrf = hidden_field(&page.text().await.unwrap(), "csrf");
        Visitor {
            app,
            http,
            cookie,
            csrf,
        }
    }

    /// Posts a public form (with this browser's CSRF token) from our own origin.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let resp = self
            .http
            .post(self.app.url(path))
            .header("origin", self.app.base.clone())
            .header("cookie", self.cookie.clone())
            .form(&form)
            .send()
            .await
            .unwrap();
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn sign_up(&self, fx: &Fixture, email: &str) -> Reply {
        self.post(
            &fx.path("/signup"),
            &[("name", ""), ("email", email), ("password", PASSWORD)],
        )
        .await
    }

    async fn forgot(&self, fx: &Fixture, email: &str) -> Reply {
        self.post(&fx.path("/forgot-password"), &[("email", email)])
            .await
    }

    async fn resend(&self, fx: &Fixture, email: &str) -> Reply {
        self.post(&fx.path("/verify-email/resend"), &[("email", email)])
            .await
    }

    async fn sign_in(&self, fx: &Fixture, email: &str, password: &str) -> Reply {
        self.post(
            &fx.path("/login"),
            &[("email", email), ("password", password)],
        )
        .await
    }
}

async fn mail_count(db: &TestDb, recipient: &str) -> usize {
    mails_to(db, recipient).await.len()
}

async fn users_in_org(app: &TestApp, fx: &Fixture) -> i64 {
    app.db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM users WHERE org_id = '{}'",
            fx.org.id
        ))
        .await
}

async fn is_verified(app: &TestApp, user_id: &str) -> bool {
    app.db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM users WHERE id = '{user_id}' AND email_verified"
        ))
        .await
        == 1
}

async fn user_id_of(app: &TestApp, fx: &Fixture, canonical_email: &str) -> String {
    app.services
        .db
        .tenant(&fx.org.id)
        .user_by_email(canonical_email)
        .await
        .unwrap()
        .expect("user exists")
        .id
        .into_string()
}

// ---------------------------------------------------------------------------------------------------------
// 4. Verification needs a click

async fn opening_a_verification_link_confirms_nothing_until_its_button_is_pressed(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let email = format!("victim-{}@example.com", random_hex(4));
    let attacker = Visitor::from(&app, &fx, "127.0.0.1").await;
    assert_eq!(attacker.sign_up(&fx, &email).await.status, StatusCode::OK);
    let user_id = user_id_of(&app, &fx, &email).await;
    let link = link_in(
        &mails_to(&app.db, &email).await[0].body,
        "/verify-email?token=",
    );

    // The victim's mail gateway and a chat link preview fetch the link: nothing is confirmed.
    for _ in 0..2 {
        let scanned = app.http.get(&link).send().await.unwrap();
        assert_eq!(scanned.status(), StatusCode::OK);
        let body = scanned.text().await.unwrap();
        assert!(body.contains("Confirm my email address"), "{body}");
        assert!(!body.contains("is confirmed"), "{body}");
    }
    assert!(!is_verified(&app, &user_id).await, "a GET confirms nothing");

    // A person's browser: the page's form, with its CSRF token.
    let mut b = Browser::new(&app);
    let page = b.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden_field(&page.body, "csrf");
    let token = hidden_field(&page.body, "token");
    assert!(!is_verified(&app, &user_id).await);

    // Forgeries: no token, a wrong token, another site's origin.
    let path = fx.path("/verify-email");
    let missing = b.post_form(&path, &[("token", &token)]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.body);
    let wrong = b
        .post_form(&path, &[("csrf", &"0".repeat(43)), ("token", &token)])
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let foreign = app
        .http
        .post(app.url(&path))
        .header("origin", "https://evil.example")
        .header("cookie", b.cookie_header())
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(
        !is_verified(&app, &user_id).await,
        "refused posts change nothing"
    );

    let confirmed = b
        .post_form(&path, &[("csrf", &csrf), ("token", &token)])
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert!(
        confirmed.body.contains("is confirmed"),
        "{}",
        confirmed.body
    );
    assert!(is_verified(&app, &user_id).await);

    // Used up: the page and the button both say so.
    let again = b
        .post_form(&path, &[("csrf", &csrf), ("token", &token)])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get(&link).await.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------------------
// 5. Sign-up limits

async fn one_client_address_cannot_sign_up_many_addresses(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| s.rate_limits.signup_per_ip_per_hour = 3).await;
    let spammer = Visitor::from(&app, &fx, "127.0.0.1").await;
    let targets: Vec<String> = (0..5)
        .map(|i| format!("target{i}-{}@example.com", random_hex(3)))
        .collect();
    let mut statuses = Vec::new();
    for target in &targets {
        let reply = spammer.sign_up(&fx, target).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                reply
                    .header("ratelimit-policy")
                    .contains("\"signup-ip\";q=3;w=3600"),
                "{:?}",
                reply.headers
            );
            assert!(reply.header("retry-after").parse::<u64>().unwrap() > 0);
            assert!(reply.body.contains("Too many requests"), "{}", reply.body);
        }
        statuses.push(reply.status);
    }
    use StatusCode as S;
    assert_eq!(
        statuses,
        [
            S::OK,
            S::OK,
            S::OK,
            S::TOO_MANY_REQUESTS,
            S::TOO_MANY_REQUESTS
        ]
    );
    for (i, target) in targets.iter().enumerate() {
        let expected = usize::from(i < 3);
        assert_eq!(
            mail_count(&app.db, target).await,
            expected,
            "only accepted sign-ups send mail ({target})"
        );
    }
    assert_eq!(
        users_in_org(&app, &fx).await,
        1 + 3,
        "refused sign-ups create nothing"
    );

    // Another client address is not affected.
    let other = Visitor::from(&app, &fx, "127.0.0.2").await;
    let fresh = format!("fresh-{}@example.com", random_hex(3));
    assert_eq!(other.sign_up(&fx, &fresh).await.status, StatusCode::OK);
    app.stop().await;
}

async fn sign_ups_for_one_address_are_limited_alike_whether_registered_or_not(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.signup_per_email_per_hour = 3;
        s.rate_limits.signup_per_ip_per_hour = 100;
    })
    .await;
    let unknown = format!("nobody-{}@example.com", random_hex(4));
    let registered_before = mail_count(&app.db, &fx.email).await;
    let mut seen = Vec::new();
    for (n, target) in [fx.email.as_str(), unknown.as_str()]
        .into_iter()
        .enumerate()
    {
        let mut statuses = Vec::new();
        let mut refusal = String::new();
        for attempt in 0..6 {
            // From a different client address each time: the limit follows the target address.
            let visitor = Visitor::from(&app, &fx, &format!("127.0.{n}.{}", 10 + attempt)).await;
            let reply = visitor.sign_up(&fx, target).await;
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                assert!(
                    reply
                        .header("ratelimit-policy")
                        .contains("\"signup-email\";q=3"),
                    "{:?}",
                    reply.headers
                );
                refusal = reply
                    .body
                    .replace(target, "EMAIL")
                    .replace(&visitor.csrf, "CSRF");
            }
            statuses.push(reply.status);
        }
        seen.push((statuses, refusal));
    }
    use StatusCode as S;
    let expected = vec![
        S::OK,
        S::OK,
        S::OK,
        S::TOO_MANY_REQUESTS,
        S::TOO_MANY_REQUESTS,
        S::TOO_MANY_REQUESTS,
    ];
    assert_eq!(seen[0].0, expected, "registered address");
    assert_eq!(seen[1].0, expected, "unknown address");
    assert_eq!(
        seen[0].1, seen[1].1,
        "the refusal page does not tell them apart"
    );
    assert_eq!(
        mail_count(&app.db, &fx.email).await - registered_before,
        3,
        "the registered owner gets at most 3 messages"
    );
    assert_eq!(mail_count(&app.db, &unknown).await, 3);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------------------
// 6. The organization's shared budget

async fn one_client_cannot_lock_the_organization_out_of_resets(app: TestApp) {
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.code_requests_per_app_per_hour = 10;
        s.rate_limits.reset_per_ip_per_hour = 3;
    })
    .await;
    let attacker = Visitor::from(&app, &fx, "127.0.0.1").await;
    for (what, policy) in [("reset", "reset-ip"), ("resend", "verify-email-ip")] {
        let mut refused = 0;
        for i in 0..25 {
            let target = format!("spray{i}-{}@example.com", random_hex(3));
            let reply = match what {
                "reset" => attacker.forgot(&fx, &target).await,
                _ => attacker.resend(&fx, &target).await,
            };
            if i < 3 {
                assert!(
                    reply.status.is_success() || reply.status.is_redirection(),
                    "{what} {i}"
                );
            } else {
                assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{what} {i}");
                assert!(
                    reply
                        .header("ratelimit-policy")
                        .contains(&format!("\"{policy}\";q=3")),
                    "{what} is refused by its per-address limit: {:?}",
                    reply.headers
                );
                refused += 1;
            }
        }
        assert_eq!(refused, 22);
    }

    // Someone else, from another address, still gets their reset.
    let before = mail_count(&app.db, &fx.email).await;
    let owner = Visitor::from(&app, &fx, "127.0.0.2").await;
    let reply = owner.forgot(&fx, &fx.email).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(mail_count(&app.db, &fx.email).await, before + 1);
    app.stop().await;
}

async fn one_client_cannot_lock_the_organization_out_of_resets_in_memory(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    one_client_cannot_lock_the_organization_out_of_resets(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_lock_the_organization_out_of_resets_with_redis() {
    let Some(redis) = redis_url() else {
        return;
    };
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let app = TestApp::spawn_on(db, &[("LATCHKEY_REDIS_URL", redis.as_str())]).await;
    one_client_cannot_lock_the_organization_out_of_resets(app).await;
}

// ---------------------------------------------------------------------------------------------------------
// 10. Look-alike addresses

async fn look_alike_spellings_reach_the_same_account_or_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let tag = random_hex(3);
    // Stored as typed: composed ë and ü.
    let owner_email = format!("zo\u{00EB}-{tag}@b\u{00FC}cher.example");
    latchkey::users::create(
        &app.services,
        &Actor::operator(),
        &fx.org,
        NewUser {
            email: &owner_email,
            password: Some(PASSWORD),
            name: None,
            verified: true,
            role: None,
        },
    )
    .await
    .expect("create user");
    let users_before = users_in_org(&app, &fx).await;
    let variants = [
        format!("zoe\u{0308}-{tag}@bu\u{0308}cher.example"), // decomposed (NFD)
        format!("ZO\u{00CB}-{tag}@B\u{00DC}CHER.EXAMPLE"),   // upper case, IDN domain
        format!("Zo\u{00EB}-{tag}@XN--BCHER-KVA.example"),   // the domain's ASCII form
    ];
    let visitor = Visitor::from(&app, &fx, "127.0.0.1").await;

    // Sign-up: answered as for any registered address (no second account); the owner is told.
    for variant in &variants {
        let reply = visitor.sign_up(&fx, variant).await;
        assert_eq!(reply.status, StatusCode::OK, "{variant:?}: {}", reply.body);
        assert!(reply.body.contains("Check your email"), "{}", reply.body);
    }
    assert_eq!(
        users_in_org(&app, &fx).await,
        users_before,
        "no second account"
    );
    let mails = mails_to(&app.db, &owner_email).await;
    assert_eq!(mails.len(), 3, "{mails:#?}");
    assert!(mails.iter().all(|m| m.subject.contains("You already have")));

    // Sign-in and reset find the same account.
    for variant in &variants {
        let reply = Visitor::from(&app, &fx, "127.0.0.3")
            .await
            .sign_in(&fx, variant, PASSWORD)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "sign-in as {variant:?}"
        );
    }
    let reply = Visitor::from(&app, &fx, "127.0.0.4")
        .await
        .forgot(&fx, &variants[0])
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    // (Mails are ordered by the second they were queued in, so look for it rather than take the last.)
    let mails = mails_to(&app.db, &owner_email).await;
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.subject.contains("Reset your"))
            .count(),
        1,
        "{mails:#?}"
    );

    // The CLI refuses a second account under a look-alike spelling too.
    let mut env = app.db.env();
    env.insert("LATCHKEY_PUBLIC_URL".into(), app.base.clone());
    let (code, _, stderr) = run_cli_async(
        &[
            "user",
            "create",
            "--org",
            &fx.org.slug,
            "--email",
            &variants[0],
        ],
        &env,
        None,
    )
    .await;
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(users_in_org(&app, &fx).await, users_before);

    // Spellings that would only look like an existing address are refused, naming the field.
    let (local, domain) = fx.email.split_once('@').unwrap();
    let look_alikes = [
        (
            format!("{}\u{200B}{}@{domain}", &local[..2], &local[2..]),
            "invisible",
        ), // zero-width space
        (format!("{local}\u{00AD}@{domain}"), "invisible"), // soft hyphen
        (format!("\u{202E}{local}@{domain}"), "invisible"), // bidi override
        (format!("\u{FF41}{}@{domain}", &local[1..]), "look-alike"), // full-width a
        (
            format!("{}\u{0430}{}@{domain}", &local[..3], &local[4..]),
            "alphabets",
        ), // Cyrillic a
    ];
    for (look_alike, reason) in &look_alikes {
        let before = users_in_org(&app, &fx).await;
        let reply = visitor.sign_up(&fx, look_alike).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{look_alike:?}");
        assert!(
            reply.body.contains("Email must not") && reply.body.contains(reason),
            "{look_alike:?}: {}",
            reply.body
        );
        assert_eq!(users_in_org(&app, &fx).await, before);
        assert_eq!(mail_count(&app.db, look_alike).await, 0);
        // A reset request for one is refused the same way, and sends nothing.
        let reply = visitor.forgot(&fx, look_alike).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{look_alike:?}");
    }
    app.stop().await;
}

backend_tests! {
    opening_a_verification_link_confirms_nothing_until_its_button_is_pressed => verification_needs_a_click_sqlite, verification_needs_a_click_postgres;
    one_client_address_cannot_sign_up_many_addresses => signup_is_limited_per_client_sqlite, signup_is_limited_per_client_postgres;
    sign_ups_for_one_address_are_limited_alike_whether_registered_or_not => signup_is_limited_per_target_alike_sqlite, signup_is_limited_per_target_alike_postgres;
    one_client_cannot_lock_the_organization_out_of_resets_in_memory => one_client_cannot_lock_out_resets_sqlite, one_client_cannot_lock_out_resets_postgres;
    look_alike_spellings_reach_the_same_account_or_are_refused => look_alike_addresses_sqlite, look_alike_addresses_postgres;
}
