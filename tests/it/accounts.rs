//! The hosted account pages over real HTTP: sign-up and email verification (also from inside an
//! authorization request), resending links, forgot/reset password with its code lockout, the account page
//! (profile, password, sessions, sign-out), the Bearer sessions API, and what protects all of it: CSRF and
//! Origin checks, security headers, escaping, no open redirects and server-side session lifetimes.
//!
//! Emails are read from the `email_outbox` table, where they are written (bodies sealed under the master
//! key) in the same transaction as the action that sends them.

use std::collections::{BTreeSet, HashSet};

use latchkey::apps::{ClientType, GrantType};
use latchkey::audit::Actor;
use latchkey::orgs::NewOrganization;
use latchkey::users::NewUser;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;

use crate::helpers::{Backend, TestApp, TestDb, random_hex};
use crate::oauth_support::*;

const NEW_PASSWORD: &str = "a brand new passphrase 42";
const EVIL_ORIGIN: &str = "https://evil.example";

// ---------------------------------------------------------------------------------------------------------
// The outbox

#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) id: String,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// Every message queued for `recipient`, oldest first.
pub(crate) async fn mails_to(db: &TestDb, recipient: &str) -> Vec<Mail> {
    let sql = "SELECT id, subject, body_text, body_sealed FROM email_outbox WHERE recipient = $1 ORDER BY created_at, id";
    let rows: Vec<(String, String, String, Option<Vec<u8>>)> = match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect to sqlite");
            let rows = sqlx::query_as(sql)
                .bind(recipient)
                .fetch_all(&mut conn)
                .await
                .expect("read the outbox");
            let _ = conn.close().await;
            rows
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url)
                .await
                .expect("connect to postgres");
            let rows = sqlx::query_as(sql)
                .bind(recipient)
                .fetch_all(&mut conn)
                .await
                .expect("read the outbox");
            let _ = conn.close().await;
            rows
        }
    };
    rows.into_iter()
        .map(|(id, subject, body, sealed)| Mail {
            body: db.outbox_body(&id, body, sealed),
            id,
            subject,
        })
        .collect()
}

/// The latest (subject, body_text) queued for `recipient`.
async fn latest_email(db: &TestDb, recipient: &str) -> Option<(String, String)> {
    mails_to(db, recipient)
        .await
        .pop()
        .map(|m| (m.subject, m.body))
}

/// One recipient's mailbox as a test sees it: what arrived since the last look.
struct Inbox<'a> {
    db: &'a TestDb,
    recipient: String,
    seen: HashSet<String>,
}

impl<'a> Inbox<'a> {
    async fn open(db: &'a TestDb, recipient: &str) -> Inbox<'a> {
        let seen = mails_to(db, recipient)
            .await
            .into_iter()
            .map(|m| m.id)
            .collect();
        Inbox {
            db,
            recipient: recipient.to_string(),
            seen,
        }
    }

    async fn fresh(&mut self) -> Vec<Mail> {
        let new: Vec<Mail> = mails_to(self.db, &self.recipient)
            .await
            .into_iter()
            .filter(|m| !self.seen.contains(&m.id))
            .collect();
        self.seen.extend(new.iter().map(|m| m.id.clone()));
        new
    }

    /// Exactly one new message, returned.
    async fn one(&mut self) -> Mail {
        let new = self.fresh().await;
        assert_eq!(
            new.len(),
            1,
            "expected exactly one new message to {}, got {new:#?}",
            self.recipient
        );
        new.into_iter().next().unwrap()
    }

    /// No new message.
    async fn none(&mut self, what: &str) {
        let new = self.fresh().await;
        assert!(
            new.is_empty(),
            "{what}: no message to {} expected, got {new:#?}",
            self.recipient
        );
    }
}

/// The absolute link in an email body that contains `marker`.
pub(crate) fn link_in(body: &str, marker: &str) -> String {
    body.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains(marker))
        .unwrap_or_else(|| panic!("no link with {marker} in: {body}"))
        .to_string()
}

/// The 6-digit code of a password-reset email.
fn code_in(body: &str) -> String {
    let start = body
        .find("Your code is ")
        .unwrap_or_else(|| panic!("no code in: {body}"))
        + "Your code is ".len();
    let code: String = body[start..].chars().take(6).collect();
    assert!(
        code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
        "a 6-digit code, got {code:?}"
    );
    code
}

/// A code that is certainly not `code`.
fn wrong_code(code: &str, n: u32) -> String {
    let value: u32 = code.parse().unwrap();
    format!("{:06}", (value + 1 + n) % 1_000_000)
}

// ---------------------------------------------------------------------------------------------------------
// Pages

/// The (unescaped) target of the first `href="PREFIX…"` in a page.
fn href(html: &str, prefix: &str) -> String {
    let marker = format!("href=\"{prefix}");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no link starting {prefix} in page: {html}"))
        + "href=\"".len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

fn session_cookie(fx: &Fixture) -> String {
    format!("latchkey-{}", fx.org.slug)
}

/// GETs a form page (asserting 200) and returns it with its CSRF token.
async fn open_form(b: &mut Browser<'_>, path: &str) -> (Answer, String) {
    let page = b.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    let csrf = hidden_field(&page.body, "csrf");
    (page, csrf)
}

async fn sign_up(
    b: &mut Browser<'_>,
    fx: &Fixture,
    email: &str,
    password: &str,
    name: &str,
    req: Option<&str>,
) -> Answer {
    let path = match req {
        Some(r) => fx.path(&format!("/signup?req={r}")),
        None => fx.path("/signup"),
    };
    let (page, csrf) = open_form(b, &path).await;
    if let Some(r) = req {
        assert_eq!(
            hidden_field(&page.body, "req"),
            r,
            "the sign-up form keeps req"
        );
    }
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("name", name),
        ("email", email),
        ("password", password),
    ];
    if let Some(r) = req {
        form.push(("req", r));
    }
    b.post_form(&fx.path("/signup"), &form).await
}

/// Opens an emailed verification link and presses its button (opening alone confirms nothing).
async fn confirm_link(b: &mut Browser<'_>, fx: &Fixture, link: &str) -> Answer {
    let (page, csrf) = open_form(b, link).await;
    assert!(
        page.body.contains("Confirm my email address"),
        "{}",
        page.body
    );
    let token = hidden_field(&page.body, "token");
    b.post_form(
        &fx.path("/verify-email"),
        &[("csrf", csrf.as_str()), ("token", token.as_str())],
    )
    .await
}

/// Signs in through the login page without an authorization request.
async fn sign_in(b: &mut Browser<'_>, fx: &Fixture, email: &str, password: &str) -> Answer {
    let (_, csrf) = open_form(b, &fx.path("/login")).await;
    b.post_form(
        &fx.path("/login"),
        &[("csrf", &csrf), ("email", email), ("password", password)],
    )
    .await
}

/// A new browser signed in as `email`, asserted to land on the account page.
async fn signed_in<'a>(app: &'a TestApp, fx: &Fixture, email: &str, password: &str) -> Browser<'a> {
    let mut b = Browser::new(app);
    let answer = sign_in(&mut b, fx, email, password).await;
    assert_eq!(
        answer.status,
        StatusCode::SEE_OTHER,
        "sign-in as {email}: {}",
        answer.body
    );
    assert_eq!(
        answer.location.as_deref(),
        Some(app.url(&fx.path("/account")).as_str())
    );
    assert!(b.cookies.contains_key(&session_cookie(fx)));
    b
}

/// Whether `email` / `password` signs in (from a fresh browser); panics on anything but yes or no.
async fn password_works(app: &TestApp, fx: &Fixture, email: &str, password: &str) -> bool {
    let mut b = Browser::new(app);
    let answer = sign_in(&mut b, fx, email, password).await;
    match answer.status {
        StatusCode::SEE_OTHER => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("sign-in answered {other}: {}", answer.body),
    }
}

/// The account page; asserted to be either the page (200) or the redirect to sign in.
async fn account(b: &mut Browser<'_>, fx: &Fixture) -> Option<Answer> {
    let page = b.get(&fx.path("/account")).await;
    match page.status {
        StatusCode::OK => Some(page),
        StatusCode::SEE_OTHER => {
            let to = page.location.clone().unwrap();
            assert_eq!(
                to,
                b.app.url(&format!(
                    "/o/{slug}/login?return_to=/o/{slug}/account",
                    slug = fx.org.slug
                ))
            );
            None
        }
        other => panic!("account page answered {other}: {}", page.body),
    }
}

async fn is_signed_in(b: &mut Browser<'_>, fx: &Fixture) -> bool {
    account(b, fx).await.is_some()
}

/// The account page's (session-bound) CSRF token.
async fn account_csrf(b: &mut Browser<'_>, fx: &Fixture) -> String {
    let page = account(b, fx).await.expect("signed in");
    hidden_field(&page.body, "csrf")
}

/// A form post with the browser's cookies but an `origin` of our choosing (`None`: no Origin at all).
async fn post_from(
    b: &Browser<'_>,
    path: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> (StatusCode, String) {
    let mut req = b.app.http.post(b.app.url(path)).form(form);
    if let Some(origin) = origin {
        req = req.header(reqwest::header::ORIGIN, origin);
    }
    if !b.cookies.is_empty() {
        req = req.header(reqwest::header::COOKIE, b.cookie_header());
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

fn set_cookie_names(answer: &Answer) -> BTreeSet<String> {
    answer
        .headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| {
            v.to_str()
                .unwrap()
                .split('=')
                .next()
                .unwrap()
                .trim()
                .to_string()
        })
        .collect()
}

fn header_names(answer: &Answer) -> BTreeSet<String> {
    answer
        .headers
        .keys()
        .map(|k| k.as_str().to_string())
        .collect()
}

async fn users_with_email(db: &TestDb, fx: &Fixture, email: &str) -> i64 {
    db.scalar_i64(&format!(
        "SELECT COUNT(*) FROM users WHERE org_id = '{}' AND email_normalized = '{}'",
        fx.org.id,
        email.to_lowercase()
    ))
    .await
}

async fn is_verified(db: &TestDb, user_id: &str) -> bool {
    db.scalar_i64(&format!(
        "SELECT COUNT(*) FROM users WHERE id = '{user_id}' AND email_verified"
    ))
    .await
        == 1
}

async fn session_version(db: &TestDb, user_id: &str) -> i64 {
    db.scalar_i64(&format!(
        "SELECT session_version FROM users WHERE id = '{user_id}'"
    ))
    .await
}

async fn user_id_of(app: &TestApp, fx: &Fixture, email: &str) -> String {
    app.services
        .db
        .tenant(&fx.org.id)
        .user_by_email(&email.to_lowercase())
        .await
        .unwrap()
        .expect("user exists")
        .id
        .into_string()
}

async fn user_name(app: &TestApp, fx: &Fixture) -> Option<String> {
    app.services
        .db
        .tenant(&fx.org.id)
        .user_by_id(&fx.user.id)
        .await
        .unwrap()
        .unwrap()
        .name
}

async fn add_user(app: &TestApp, fx: &Fixture, verified: bool) -> String {
    let email = format!("user-{}@example.com", random_hex(4));
    latchkey::users::create(
        &app.services,
        &Actor::operator(),
        &fx.org,
        NewUser {
            email: &email,
            password: Some(PASSWORD),
            name: None,
            verified,
            role: None,
        },
    )
    .await
    .expect("create user");
    email
}

fn fresh_email() -> String {
    format!("new-{}@example.com", random_hex(4))
}

// ---------------------------------------------------------------------------------------------------------
// 1. Sign-up, verification, sign-in

async fn sign_up_then_verify_then_sign_in_lands_on_the_account_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let email = fresh_email();
    let mut inbox = Inbox::open(&app.db, &email).await;
    let mut b = Browser::new(&app);

    let done = sign_up(&mut b, &fx, &email, PASSWORD, "Nina New", None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Check your email"), "{}", done.body);
    assert_eq!(users_with_email(&app.db, &fx, &email).await, 1);
    let user_id = user_id_of(&app, &fx, &email).await;
    assert!(!is_verified(&app.db, &user_id).await);

    // The right password does not open an unconfirmed account.
    let refused = sign_in(&mut b, &fx, &email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));

    let mail = inbox.one().await;
    assert!(mail.subject.contains("Confirm your email"), "{mail:?}");
    let link = link_in(&mail.body, "/verify-email?token=");
    assert!(
        link.starts_with(&format!("{}/verify-email?token=", fx.issuer(&app))),
        "{link}"
    );
    let confirmed = confirm_link(&mut b, &fx, &link).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert!(
        confirmed.body.contains("is confirmed"),
        "{}",
        confirmed.body
    );
    assert!(is_verified(&app.db, &user_id).await);
    // Without an authorization request, "Continue to sign in" goes to the account page.
    assert_eq!(href(&confirmed.body, "/o/"), fx.path("/account"));

    let signed = sign_in(&mut b, &fx, &email, PASSWORD).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(
        signed.location.as_deref(),
        Some(app.url(&fx.path("/account")).as_str())
    );
    let page = account(&mut b, &fx).await.expect("signed in");
    assert!(page.body.contains(&email));
    assert!(page.body.contains("Nina New"));
    assert!(!page.body.contains("not confirmed"));
}

async fn sign_up_started_from_an_authorization_request_returns_to_the_client_with_a_code(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let email = fresh_email();
    let mut inbox = Inbox::open(&app.db, &email).await;
    let mut b = Browser::new(&app);

    let start = b
        .get(&authorize_path(&fx, &client, SCOPE, Some(&p), &[]))
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let login_url = start.location.clone().unwrap();
    assert!(login_url.contains("/login?req="), "{login_url}");
    let req = query_param(&login_url, "req").unwrap();

    let login = b.get(&login_url).await;
    assert_eq!(login.status, StatusCode::OK);
    let signup_link = href(&login.body, &fx.path("/signup?"));
    assert_eq!(
        query_param(&app.url(&signup_link), "req").as_deref(),
        Some(req.as_str()),
        "the sign-up link carries the request"
    );

    let done = sign_up(&mut b, &fx, &email, PASSWORD, "Rita Relying", Some(&req)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let link = link_in(&inbox.one().await.body, "/verify-email?token=");
    let confirmed = confirm_link(&mut b, &fx, &link).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let next = href(&confirmed.body, &fx.path("/login?"));
    assert_eq!(
        query_param(&app.url(&next), "req").as_deref(),
        Some(req.as_str()),
        "Continue to sign in resumes the request"
    );

    let (page, csrf) = open_form(&mut b, &next).await;
    assert_eq!(hidden_field(&page.body, "req"), req);
    let signed = b
        .post_form(
            &fx.path("/login"),
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let resume = signed.location.clone().unwrap();
    assert!(resume.contains("/authorize/resume?req="), "{resume}");
    let back = walk(&mut b, &resume, None, "allow").await;
    assert!(back.redirect.starts_with(REDIRECT_URI), "{}", back.redirect);
    assert_eq!(back.param("state").as_deref(), Some("st-123"));

    let answer = redeem(&app, &fx, &client, &back.code(), &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let tokens = answer.json();
    let (_, id) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], user_id_of(&app, &fx, &email).await.as_str());
    assert_eq!(id["email"], email.as_str());
    assert_eq!(id["email_verified"], true);
}

backend_tests! {
    sign_up_then_verify_then_sign_in_lands_on_the_account_page => sqlite_sign_up_then_verify_then_sign_in_lands_on_the_account_page, postgres_sign_up_then_verify_then_sign_in_lands_on_the_account_page;
    sign_up_started_from_an_authorization_request_returns_to_the_client_with_a_code => sqlite_sign_up_from_an_authorization_request_returns_to_the_client_with_a_code, postgres_sign_up_from_an_authorization_request_returns_to_the_client_with_a_code;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Sign-up does not reveal registered addresses; self-registration can be turned off

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_with_a_registered_email_answers_exactly_as_for_a_new_one() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut owner = Inbox::open(&app.db, &fx.email).await;
    let new_email = fresh_email();
    // The attacker types the registered address in another case.
    let known_email = fx.email.to_uppercase();
    let mut b = Browser::new(&app);

    let fresh = sign_up(&mut b, &fx, &new_email, PASSWORD, "Someone", None).await;
    let known = sign_up(&mut b, &fx, &known_email, NEW_PASSWORD, "Someone", None).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.status, known.status);
    let csrf = b.cookies.get("latchkey-csrf").cloned().unwrap();
    let normal = |body: &str, email: &str| body.replace(email, "EMAIL").replace(&csrf, "CSRF");
    assert_eq!(
        normal(&fresh.body, &new_email),
        normal(&known.body, &known_email)
    );
    assert_eq!(header_names(&fresh), header_names(&known));

    // The owner hears about it; nobody else gets an account or a password.
    let mail = owner.one().await;
    assert!(
        mail.subject.contains("You already have"),
        "{}",
        mail.subject
    );
    assert!(mail.body.contains("/forgot-password"), "{}", mail.body);
    assert_eq!(users_with_email(&app.db, &fx, &fx.email).await, 1);
    assert!(password_works(&app, &fx, &fx.email, PASSWORD).await);
    assert!(!password_works(&app, &fx, &fx.email, NEW_PASSWORD).await);
    // The new address did get its account and its verification link.
    assert_eq!(users_with_email(&app.db, &fx, &new_email).await, 1);
    let (subject, _) = latest_email(&app.db, &new_email).await.unwrap();
    assert!(subject.contains("Confirm your email"), "{subject}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_self_registration_off_sign_up_is_404_and_not_offered() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let slug = format!("closed-{}", random_hex(4));
    let org = latchkey::orgs::create(
        &app.services,
        &Actor::operator(),
        NewOrganization {
            slug: &slug,
            name: "Closed Co",
        },
    )
    .await
    .unwrap();
    // Before the first request for this organization, so no cached copy has the old settings.
    app.db
        .exec(&format!(
            "UPDATE organizations SET settings = '{{\"self_registration\": false}}' WHERE id = '{}'",
            org.id
        ))
        .await
        .unwrap();
    let email = fresh_email();
    let mut b = Browser::new(&app);

    let login = b.get(&format!("/o/{slug}/login")).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(!login.body.contains("/signup"), "{}", login.body);
    assert!(login.body.contains("/forgot-password"));
    let csrf = hidden_field(&login.body, "csrf");

    let form = b.get(&format!("/o/{slug}/signup")).await;
    assert_eq!(form.status, StatusCode::NOT_FOUND);
    let posted = b
        .post_form(
            &format!("/o/{slug}/signup"),
            &[("csrf", &csrf), ("email", &email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.db
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM users WHERE org_id = '{}'",
                org.id
            ))
            .await,
        0
    );
    assert!(mails_to(&app.db, &email).await.is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// 3. Unverified accounts, resending and using verification links

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_user_cannot_sign_in_and_is_offered_a_new_link() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let email = add_user(&app, &fx, false).await;
    let mut b = Browser::new(&app);

    let answer = sign_in(&mut b, &fx, &email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(
        answer.body.contains("Confirm your email address first"),
        "{}",
        answer.body
    );
    let resend = href(&answer.body, &fx.path("/verify-email/resend?email="));
    assert_eq!(
        query_param(&app.url(&resend), "email").as_deref(),
        Some(email.as_str())
    );
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));
    assert!(!is_signed_in(&mut b, &fx).await);
    // A wrong password says nothing about the account's state.
    let wrong = sign_in(&mut b, &fx, &email, "not the password at all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.body.contains("Confirm your email"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_verification_answers_the_same_for_every_address_and_mails_only_the_unverified() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let unverified = add_user(&app, &fx, false).await;
    let unknown = fresh_email();
    let mut inboxes = [
        Inbox::open(&app.db, &unverified).await,
        Inbox::open(&app.db, &fx.email).await,
        Inbox::open(&app.db, &unknown).await,
    ];
    let mut b = Browser::new(&app);
    let mut answers = Vec::new();
    for email in [&unverified, &fx.email, &unknown] {
        let (_, csrf) = open_form(&mut b, &fx.path("/verify-email/resend")).await;
        let answer = b
            .post_form(
                &fx.path("/verify-email/resend"),
                &[("csrf", &csrf), ("email", email)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{email}: {}", answer.body);
        answers.push((
            answer.body.replace(email.as_str(), "EMAIL"),
            header_names(&answer),
        ));
    }
    assert_eq!(answers[0], answers[1], "unverified vs verified");
    assert_eq!(answers[0], answers[2], "unverified vs unknown");

    let mail = inboxes[0].one().await;
    inboxes[1].none("a verified address").await;
    inboxes[2].none("an unknown address").await;
    // The new link works.
    let link = link_in(&mail.body, "/verify-email?token=");
    assert_eq!(
        confirm_link(&mut b, &fx, &link).await.status,
        StatusCode::OK
    );
    assert!(password_works(&app, &fx, &unverified, PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_link_works_once_and_made_up_expired_or_foreign_links_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let other_org = fixture(&app).await;
    let mut b = Browser::new(&app);

    // Once.
    let first = fresh_email();
    let mut inbox = Inbox::open(&app.db, &first).await;
    assert_eq!(
        sign_up(&mut b, &fx, &first, PASSWORD, "", None)
            .await
            .status,
        StatusCode::OK
    );
    let link = link_in(&inbox.one().await.body, "/verify-email?token=");
    assert_eq!(
        confirm_link(&mut b, &fx, &link).await.status,
        StatusCode::OK
    );
    let again = b.get(&link).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("expired"), "{}", again.body);

    // Made up.
    for token in [
        random_hex(16),
        String::new(),
        "x".repeat(200),
        "' OR 1=1 --".into(),
    ] {
        let answer = b
            .get(&format!(
                "{}?token={}",
                fx.path("/verify-email"),
                url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{token:?}");
        assert!(answer.body.contains("expired"));
    }

    // Another organization's page does not accept this organization's link.
    let second = fresh_email();
    let mut inbox = Inbox::open(&app.db, &second).await;
    assert_eq!(
        sign_up(&mut b, &fx, &second, PASSWORD, "", None)
            .await
            .status,
        StatusCode::OK
    );
    let link = link_in(&inbox.one().await.body, "/verify-email?token=");
    let foreign = link.replace(
        &format!("/o/{}/", fx.org.slug),
        &format!("/o/{}/", other_org.org.slug),
    );
    assert_ne!(foreign, link);
    assert_eq!(b.get(&foreign).await.status, StatusCode::BAD_REQUEST);
    let second_id = user_id_of(&app, &fx, &second).await;
    assert!(!is_verified(&app.db, &second_id).await);

    // Expired.
    app.clock
        .advance(latchkey::accounts::verification::LINK_TTL_SECS + 1);
    let expired = b.get(&link).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert!(expired.body.contains("expired"));
    assert!(!is_verified(&app.db, &second_id).await);
}

// ---------------------------------------------------------------------------------------------------------
// 4. Password reset

/// Asks for a reset of `email` in `b`; returns the answer (asserted to be the redirect to the code form).
async fn forgot(b: &mut Browser<'_>, fx: &Fixture, email: &str) -> Answer {
    let (_, csrf) = open_form(b, &fx.path("/forgot-password")).await;
    let answer = b
        .post_form(
            &fx.path("/forgot-password"),
            &[("csrf", &csrf), ("email", email)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location.as_deref(),
        Some(b.app.url(&fx.path("/reset-password")).as_str())
    );
    answer
}

/// Opens the code form (from the reset cookie) and returns (session, csrf).
async fn reset_form(b: &mut Browser<'_>, fx: &Fixture) -> (String, String) {
    let (page, csrf) = open_form(b, &fx.path("/reset-password")).await;
    (hidden_field(&page.body, "session"), csrf)
}

async fn submit_reset(
    b: &mut Browser<'_>,
    fx: &Fixture,
    session: &str,
    csrf: &str,
    code: &str,
    password: &str,
) -> Answer {
    b.post_form(
        &fx.path("/reset-password"),
        &[
            ("csrf", csrf),
            ("session", session),
            ("code", code),
            ("password", password),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_answers_the_same_for_known_and_unknown_addresses() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let unknown = fresh_email();
    let mut owner = Inbox::open(&app.db, &fx.email).await;
    let mut nobody = Inbox::open(&app.db, &unknown).await;

    let mut known_browser = Browser::new(&app);
    let known = forgot(&mut known_browser, &fx, &fx.email).await;
    let mut unknown_browser = Browser::new(&app);
    let other = forgot(&mut unknown_browser, &fx, &unknown).await;
    assert_eq!(known.status, other.status);
    assert_eq!(set_cookie_names(&known), set_cookie_names(&other));
    assert!(set_cookie_names(&known).contains("latchkey-reset"));
    assert_eq!(header_names(&known), header_names(&other));
    // Both lead to the same code form.
    let (known_form, _) = open_form(&mut known_browser, &fx.path("/reset-password")).await;
    let (other_form, _) = open_form(&mut unknown_browser, &fx.path("/reset-password")).await;
    let strip = |page: &Answer, b: &Browser<'_>| {
        page.body
            .replace(b.cookies.get("latchkey-reset").unwrap(), "SESSION")
            .replace(b.cookies.get("latchkey-csrf").unwrap(), "CSRF")
    };
    assert_eq!(
        strip(&known_form, &known_browser),
        strip(&other_form, &unknown_browser)
    );

    let mail = owner.one().await;
    assert!(mail.subject.contains("Reset your"), "{}", mail.subject);
    code_in(&mail.body);
    let link = link_in(&mail.body, "/reset-password?session=");
    assert!(link.starts_with(&fx.issuer(&app)), "{link}");
    assert!(query_param(&link, "code").is_some());
    nobody.none("an unknown address").await;

    // No code opens the unknown address's session.
    let (session, csrf) = reset_form(&mut unknown_browser, &fx).await;
    let answer = submit_reset(
        &mut unknown_browser,
        &fx,
        &session,
        &csrf,
        "000000",
        NEW_PASSWORD,
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("not right"), "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_reset_codes_lock_the_reset_for_good() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut inbox = Inbox::open(&app.db, &fx.email).await;
    let mut b = Browser::new(&app);
    forgot(&mut b, &fx, &fx.email).await;
    let code = code_in(&inbox.one().await.body);
    let (session, csrf) = reset_form(&mut b, &fx).await;

    for attempt in 1..=5u32 {
        let answer = submit_reset(
            &mut b,
            &fx,
            &session,
            &csrf,
            &wrong_code(&code, attempt),
            NEW_PASSWORD,
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "attempt {attempt}");
        if attempt < 5 {
            let left = 5 - attempt;
            assert!(
                answer
                    .body
                    .contains(&format!("That code is not right. {left} attempt")),
                "attempt {attempt}: {}",
                answer.body
            );
        } else {
            assert!(
                answer.body.contains("Too many wrong codes"),
                "{}",
                answer.body
            );
        }
    }
    // The right code is refused now.
    let answer = submit_reset(&mut b, &fx, &session, &csrf, &code, NEW_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body.contains("Too many wrong codes"),
        "{}",
        answer.body
    );
    assert!(!answer.body.contains("Password changed"));
    let form = b.get(&fx.path("/reset-password")).await;
    assert_eq!(form.status, StatusCode::BAD_REQUEST);
    // So is the emailed link, from any browser.
    let link = b
        .get(&format!(
            "{}?session={session}&code={code}",
            fx.path("/reset-password")
        ))
        .await;
    assert_eq!(link.status, StatusCode::BAD_REQUEST);
    assert!(password_works(&app, &fx, &fx.email, PASSWORD).await);
    assert!(!password_works(&app, &fx, &fx.email, NEW_PASSWORD).await);
    inbox.none("a locked reset").await;
}

/// Parallel guesses: every wrong code that is compared is counted (and audited) before the answer, and a
/// code is compared only while fewer than five have been counted, so a burst of guesses sent at once
/// cannot check more than five codes, and the right one among them only wins if it was one of the five.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_parallel_reset_codes_checks_at_most_five() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut inbox = Inbox::open(&app.db, &fx.email).await;
    let mut b = Browser::new(&app);
    forgot(&mut b, &fx, &fx.email).await;
    let code = code_in(&inbox.one().await.body);
    let (session, csrf) = reset_form(&mut b, &fx).await;
    let cookie = b.cookie_header();
    let guesses: Vec<String> = (0..60u32)
        .map(|n| {
            if n == 30 {
                code.clone()
            } else {
                wrong_code(&code, n)
            }
        })
        .collect();
    let tasks: Vec<_> = guesses
        .into_iter()
        .map(|guess| {
            let http = app.http.clone();
            let url = app.url(&fx.path("/reset-password"));
            let (origin, cookie, csrf, session) = (
                app.base.clone(),
                cookie.clone(),
                csrf.clone(),
                session.clone(),
            );
            tokio::spawn(async move {
                let resp = http
                    .post(url)
                    .header("origin", origin)
                    .header("cookie", cookie)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("session", session.as_str()),
                        ("code", guess.as_str()),
                        ("password", NEW_PASSWORD),
                    ])
                    .send()
                    .await
                    .unwrap();
                (resp.status(), resp.text().await.unwrap())
            })
        })
        .collect();
    let mut succeeded = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == StatusCode::OK {
            assert!(body.contains("Password changed"), "{body}");
            succeeded += 1;
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        }
    }
    let actions = audit_actions(&app, &fx).await;
    let failures = actions
        .iter()
        .filter(|a| *a == "password_reset.code_failed" || *a == "password_reset.locked")
        .count();
    let attempts = app
        .db
        .scalar_i64("SELECT attempts FROM one_time_tokens WHERE purpose = 'password_reset'")
        .await;
    assert!(attempts <= 5, "attempts {attempts}");
    assert!(
        failures + succeeded <= 5,
        "{failures} wrong codes and {succeeded} right code were compared"
    );
    assert_eq!(
        password_works(&app, &fx, &fx.email, NEW_PASSWORD).await,
        succeeded == 1
    );
}

async fn a_password_reset_changes_the_password_and_signs_out_everywhere(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let mut existing = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let issued = tokens(&app, &fx, &client).await;
    let access_token = issued["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        introspect(&app, &fx, &client, &access_token).await["active"],
        true
    );
    let version = session_version(&app.db, &fx.user.id).await;
    let mut inbox = Inbox::open(&app.db, &fx.email).await;

    let mut b = Browser::new(&app);
    forgot(&mut b, &fx, &fx.email).await;
    let code = code_in(&inbox.one().await.body);
    let (session, csrf) = reset_form(&mut b, &fx).await;

    // The right code with a password the policy refuses: the error is shown and the code still works.
    let short = submit_reset(&mut b, &fx, &session, &csrf, &code, "short").await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(
        short
            .body
            .contains("Password must be at least 10 characters"),
        "{}",
        short.body
    );
    assert_eq!(hidden_field(&short.body, "session"), session);
    assert_eq!(
        app.db
            .scalar_i64("SELECT attempts FROM one_time_tokens WHERE purpose = 'password_reset'")
            .await,
        0,
        "the refused password cost no attempt"
    );
    assert!(
        is_signed_in(&mut existing, &fx).await,
        "nothing changed yet"
    );

    let done = submit_reset(&mut b, &fx, &session, &csrf, &code, NEW_PASSWORD).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Password changed"), "{}", done.body);
    assert!(
        !b.cookies.contains_key("latchkey-reset"),
        "the reset cookie is cleared"
    );

    assert!(!password_works(&app, &fx, &fx.email, PASSWORD).await);
    assert!(password_works(&app, &fx, &fx.email, NEW_PASSWORD).await);
    assert_eq!(session_version(&app.db, &fx.user.id).await, version + 1);
    assert!(
        !is_signed_in(&mut existing, &fx).await,
        "the browser session from before is dead"
    );
    assert_eq!(
        introspect(&app, &fx, &client, &access_token).await["active"],
        false,
        "the access token from before is dead"
    );
    let notice = inbox.one().await;
    assert!(
        notice.subject.contains("password was changed"),
        "{}",
        notice.subject
    );

    // Used up.
    let again = submit_reset(
        &mut b,
        &fx,
        &session,
        &csrf,
        &code,
        "yet another passphrase",
    )
    .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("expired"), "{}", again.body);
    let link = b
        .get(&format!(
            "{}?session={session}&code={code}",
            fx.path("/reset-password")
        ))
        .await;
    assert_eq!(link.status, StatusCode::BAD_REQUEST);
    assert!(password_works(&app, &fx, &fx.email, NEW_PASSWORD).await);
    assert!(!password_works(&app, &fx, &fx.email, "yet another passphrase").await);
}

backend_tests! {
    a_password_reset_changes_the_password_and_signs_out_everywhere => sqlite_a_password_reset_changes_the_password_and_signs_out_everywhere, postgres_a_password_reset_changes_the_password_and_signs_out_everywhere;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emailed_reset_link_works_from_another_browser() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut inbox = Inbox::open(&app.db, &fx.email).await;
    let mut asking = Browser::new(&app);
    forgot(&mut asking, &fx, &fx.email).await;
    let link = link_in(&inbox.one().await.body, "/reset-password?session=");

    // The phone that opens the email has no cookie from the browser that asked.
    let mut phone = Browser::new(&app);
    let page = phone.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let session = hidden_field(&page.body, "session");
    assert_eq!(Some(session.clone()), query_param(&link, "session"));
    let code = query_param(&link, "code").unwrap();
    assert!(
        page.body.contains(&format!("value=\"{code}\"")),
        "the code is filled in"
    );
    let csrf = hidden_field(&page.body, "csrf");
    let done = submit_reset(&mut phone, &fx, &session, &csrf, &code, NEW_PASSWORD).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(password_works(&app, &fx, &fx.email, NEW_PASSWORD).await);
}

// ---------------------------------------------------------------------------------------------------------
// 5. The account page

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_sends_visitors_who_are_not_signed_in_to_sign_in_and_back() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut b = Browser::new(&app);
    assert!(account(&mut b, &fx).await.is_none());
    // A made-up session cookie is no better.
    b.cookies
        .insert(session_cookie(&fx), "made-up-session-token".into());
    assert!(account(&mut b, &fx).await.is_none());
    b.cookies.clear();

    let to_login = format!(
        "/o/{slug}/login?return_to=/o/{slug}/account",
        slug = fx.org.slug
    );
    let (page, csrf) = open_form(&mut b, &to_login).await;
    let return_to = hidden_field(&page.body, "return_to");
    assert_eq!(return_to, fx.path("/account"));
    let answer = b
        .post_form(
            &fx.path("/login"),
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("email", &fx.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location.as_deref(),
        Some(app.url(&fx.path("/account")).as_str())
    );
    let page = account(&mut b, &fx).await.expect("signed in");
    assert!(page.body.contains(&fx.email));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_name_can_be_changed_and_an_overlong_name_is_refused_on_the_page() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut b = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let csrf = account_csrf(&mut b, &fx).await;

    let saved = b
        .post_form(
            &fx.path("/account/profile"),
            &[("csrf", &csrf), ("name", "Alice Renamed")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(
        saved.location.as_deref(),
        Some(app.url(&fx.path("/account?done=profile")).as_str())
    );
    let page = b.get(saved.location.as_deref().unwrap()).await;
    assert!(page.body.contains("Your profile is saved."));
    assert!(page.body.contains("value=\"Alice Renamed\""));
    assert_eq!(user_name(&app, &fx).await.as_deref(), Some("Alice Renamed"));

    let long = "x".repeat(101);
    let refused = b
        .post_form(
            &fx.path("/account/profile"),
            &[("csrf", &csrf), ("name", &long)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("Name must be 1 to 100 characters"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(&format!("value=\"{long}\"")),
        "the typed value is kept"
    );
    assert_eq!(user_name(&app, &fx).await.as_deref(), Some("Alice Renamed"));
    // Exactly 100 characters is fine.
    let hundred = "y".repeat(100);
    let saved = b
        .post_form(
            &fx.path("/account/profile"),
            &[("csrf", &csrf), ("name", &hundred)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(
        user_name(&app, &fx).await.as_deref(),
        Some(hundred.as_str())
    );
}

async fn changing_the_password_needs_the_current_one_and_continues_under_a_new_session(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let mut b = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let mut other = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let old_cookie = b.cookies.get(&session_cookie(&fx)).cloned().unwrap();
    let csrf = account_csrf(&mut b, &fx).await;
    let version = session_version(&app.db, &fx.user.id).await;
    let mut inbox = Inbox::open(&app.db, &fx.email).await;

    let wrong = b
        .post_form(
            &fx.path("/account/password"),
            &[
                ("csrf", &csrf),
                ("current_password", "not my password at all"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong
            .body
            .contains("The current password is not your current password."),
        "{}",
        wrong.body
    );
    let weak = b
        .post_form(
            &fx.path("/account/password"),
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(
        weak.body.contains("The new password must be at least 10"),
        "{}",
        weak.body
    );
    assert_eq!(session_version(&app.db, &fx.user.id).await, version);
    assert!(is_signed_in(&mut other, &fx).await);
    inbox.none("a refused change").await;

    let changed = b
        .post_form(
            &fx.path("/account/password"),
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(
        changed.location.as_deref(),
        Some(app.url(&fx.path("/account?done=password")).as_str())
    );
    let new_cookie = b.cookies.get(&session_cookie(&fx)).cloned().unwrap();
    assert_ne!(new_cookie, old_cookie, "a new session cookie");
    let page = b.get(changed.location.as_deref().unwrap()).await;
    assert_eq!(page.status, StatusCode::OK, "this browser stays signed in");
    assert!(page.body.contains("Your password is changed."));

    let mut stolen = Browser::new(&app);
    stolen.cookies.insert(session_cookie(&fx), old_cookie);
    assert!(
        !is_signed_in(&mut stolen, &fx).await,
        "the old cookie value is dead"
    );
    assert!(
        !is_signed_in(&mut other, &fx).await,
        "the other device is signed out"
    );
    assert_eq!(session_version(&app.db, &fx.user.id).await, version + 1);
    let notice = inbox.one().await;
    assert!(notice.subject.contains("password was changed"));
    assert!(!password_works(&app, &fx, &fx.email, PASSWORD).await);
    assert!(password_works(&app, &fx, &fx.email, NEW_PASSWORD).await);
}

backend_tests! {
    changing_the_password_needs_the_current_one_and_continues_under_a_new_session => sqlite_changing_the_password_needs_the_current_one_and_continues_under_a_new_session, postgres_changing_the_password_needs_the_current_one_and_continues_under_a_new_session;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_list_marks_this_device_and_signing_out_other_sessions_works() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut me = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let mut laptop = signed_in(&app, &fx, &fx.email, PASSWORD).await;

    let page = account(&mut me, &fx).await.unwrap();
    assert_eq!(page.body.matches("<li class=\"session\">").count(), 2);
    assert_eq!(page.body.matches("This device").count(), 1);
    let csrf = hidden_field(&page.body, "csrf");
    let laptop_id = hidden_field(&page.body, "session");
    assert!(page.body.contains("Sign out all other sessions"));

    // Someone else's session cannot be signed out from here.
    let stranger_email = add_user(&app, &fx, true).await;
    let mut stranger = signed_in(&app, &fx, &stranger_email, PASSWORD).await;
    let stranger_id = hidden_field(
        &account(
            &mut signed_in(&app, &fx, &stranger_email, PASSWORD).await,
            &fx,
        )
        .await
        .unwrap()
        .body,
        "session",
    );
    let refused = me
        .post_form(
            &fx.path("/account/sessions/revoke"),
            &[("csrf", &csrf), ("session", &stranger_id)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(is_signed_in(&mut stranger, &fx).await);

    let revoked = me
        .post_form(
            &fx.path("/account/sessions/revoke"),
            &[("csrf", &csrf), ("session", &laptop_id)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert!(!is_signed_in(&mut laptop, &fx).await);
    let page = account(&mut me, &fx).await.unwrap();
    assert_eq!(page.body.matches("<li class=\"session\">").count(), 1);
    assert!(!page.body.contains("Sign out all other sessions"));

    // Sign out all the others.
    let mut phone = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let mut tablet = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let page = account(&mut me, &fx).await.unwrap();
    assert_eq!(page.body.matches("<li class=\"session\">").count(), 3);
    let all = me
        .post_form(
            &fx.path("/account/sessions/revoke-others"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(all.status, StatusCode::SEE_OTHER, "{}", all.body);
    assert!(!is_signed_in(&mut phone, &fx).await);
    assert!(!is_signed_in(&mut tablet, &fx).await);
    assert!(is_signed_in(&mut me, &fx).await);
    assert!(
        is_signed_in(&mut stranger, &fx).await,
        "other users keep theirs"
    );

    // Sign out: the cookie is cleared and the session is dead on the server too.
    let cookie = me.cookies.get(&session_cookie(&fx)).cloned().unwrap();
    let out = me
        .post_form(&fx.path("/account/signout"), &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("You are signed out"));
    assert!(
        out.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .any(|v| {
                let v = v.to_str().unwrap();
                v.starts_with(&format!("{}=;", session_cookie(&fx))) && v.contains("Max-Age=0")
            }),
        "the session cookie is cleared"
    );
    assert!(!me.cookies.contains_key(&session_cookie(&fx)));
    let mut replay = Browser::new(&app);
    replay.cookies.insert(session_cookie(&fx), cookie);
    assert!(!is_signed_in(&mut replay, &fx).await);
}

// ---------------------------------------------------------------------------------------------------------
// 6. CSRF and Origin

/// The four ways a forged post arrives: no token, a wrong token, a foreign Origin, no Origin at all.
/// Each must answer 403.
async fn assert_forgeries_refused(
    b: &Browser<'_>,
    path: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) {
    let wrong = random_hex(16);
    fn with<'a>(fields: &[(&'a str, &'a str)], token: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut form = fields.to_vec();
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        form
    }
    let own = b.app.base.clone();
    let cases = [
        ("no token", with(fields, None), Some(own.as_str())),
        (
            "wrong token",
            with(fields, Some(&wrong)),
            Some(own.as_str()),
        ),
        (
            "foreign Origin",
            with(fields, Some(csrf)),
            Some(EVIL_ORIGIN),
        ),
        ("no Origin", with(fields, Some(csrf)), None),
    ];
    for (what, form, origin) in cases {
        let (status, body) = post_from(b, path, &form, origin).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} with {what}: {body}");
        assert!(
            body.contains("could not be verified"),
            "{path} with {what}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_account_forms_refuse_missing_or_wrong_csrf_tokens_and_foreign_origins() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let unverified = add_user(&app, &fx, false).await;
    let victim_email = fx.email.clone();
    let newcomer = fresh_email();
    let mut owner = Inbox::open(&app.db, &victim_email).await;
    let mut unverified_inbox = Inbox::open(&app.db, &unverified).await;

    // A real reset session, with its code, to attack with.
    let mut b = Browser::new(&app);
    forgot(&mut b, &fx, &victim_email).await;
    let code = code_in(&owner.one().await.body);
    let (session, csrf) = reset_form(&mut b, &fx).await;
    let resets = "SELECT COUNT(*) FROM one_time_tokens WHERE purpose = 'password_reset'";
    let reset_count = app.db.scalar_i64(resets).await;

    assert_forgeries_refused(
        &b,
        &fx.path("/signup"),
        &csrf,
        &[("email", &newcomer), ("password", PASSWORD)],
    )
    .await;
    assert_forgeries_refused(
        &b,
        &fx.path("/verify-email/resend"),
        &csrf,
        &[("email", &unverified)],
    )
    .await;
    assert_forgeries_refused(
        &b,
        &fx.path("/forgot-password"),
        &csrf,
        &[("email", &victim_email)],
    )
    .await;
    assert_forgeries_refused(
        &b,
        &fx.path("/reset-password"),
        &csrf,
        &[
            ("session", &session),
            ("code", &code),
            ("password", NEW_PASSWORD),
        ],
    )
    .await;

    // Nothing happened.
    assert_eq!(users_with_email(&app.db, &fx, &newcomer).await, 0);
    assert!(mails_to(&app.db, &newcomer).await.is_empty());
    unverified_inbox.none("a forged resend").await;
    owner.none("a forged forgot-password").await;
    assert_eq!(app.db.scalar_i64(resets).await, reset_count);
    assert_eq!(
        app.db
            .scalar_i64(
                "SELECT MAX(attempts) FROM one_time_tokens WHERE purpose = 'password_reset'"
            )
            .await,
        0,
        "no code attempt was counted"
    );
    assert!(password_works(&app, &fx, &victim_email, PASSWORD).await);

    // The same posts from our own page go through (so the refusals above were the checks at work).
    let done = submit_reset(&mut b, &fx, &session, &csrf, &code, NEW_PASSWORD).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let created = sign_up(&mut b, &fx, &newcomer, PASSWORD, "", None).await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(users_with_email(&app.db, &fx, &newcomer).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_account_forms_refuse_missing_or_wrong_csrf_tokens_and_foreign_origins() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut me = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let mut laptop = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let page = account(&mut me, &fx).await.unwrap();
    let csrf = hidden_field(&page.body, "csrf");
    let laptop_id = hidden_field(&page.body, "session");
    let version = session_version(&app.db, &fx.user.id).await;

    let forms: [(&str, Vec<(&str, &str)>); 5] = [
        ("/account/profile", vec![("name", "Mallory Was Here")]),
        (
            "/account/password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        ),
        ("/account/sessions/revoke", vec![("session", &laptop_id)]),
        ("/account/sessions/revoke-others", vec![]),
        ("/account/signout", vec![]),
    ];
    for (path, fields) in &forms {
        assert_forgeries_refused(&me, &fx.path(path), &csrf, fields).await;
    }

    // Nothing changed: name, password, both sessions.
    assert_eq!(user_name(&app, &fx).await.as_deref(), Some("Alice Example"));
    assert_eq!(session_version(&app.db, &fx.user.id).await, version);
    assert!(is_signed_in(&mut me, &fx).await);
    assert!(is_signed_in(&mut laptop, &fx).await);
    assert!(password_works(&app, &fx, &fx.email, PASSWORD).await);

    // The real token from our own page works.
    let saved = me
        .post_form(
            &fx.path("/account/profile"),
            &[("csrf", &csrf), ("name", "Alice Again")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(user_name(&app, &fx).await.as_deref(), Some("Alice Again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sessions_csrf_token_does_not_work_for_another_session() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut me = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let mut other = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let mine = account_csrf(&mut me, &fx).await;
    let theirs = account_csrf(&mut other, &fx).await;
    assert_ne!(mine, theirs);

    // My token in the other session's browser, and the other way round.
    let (status, _) = post_from(
        &other,
        &fx.path("/account/profile"),
        &[("csrf", &mine), ("name", "Cross Session")],
        Some(&app.base),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_from(
        &me,
        &fx.path("/account/signout"),
        &[("csrf", &theirs)],
        Some(&app.base),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor does the double-submit token of the public forms.
    let public = other.cookies.get("latchkey-csrf").cloned().unwrap();
    let (status, _) = post_from(
        &other,
        &fx.path("/account/profile"),
        &[("csrf", &public), ("name", "Cross Session")],
        Some(&app.base),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(user_name(&app, &fx).await.as_deref(), Some("Alice Example"));
    assert!(is_signed_in(&mut me, &fx).await);
    assert!(is_signed_in(&mut other, &fx).await);
}

// ---------------------------------------------------------------------------------------------------------
// 7. Headers, redirects, escaping

fn assert_page_headers(answer: &Answer, what: &str) {
    let csp = answer
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {directive} not in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"), "{what}");
    assert!(
        answer
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_pages_carry_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut inbox = Inbox::open(&app.db, &fx.email).await;
    let mut b = Browser::new(&app);
    for path in [
        "/login",
        "/signup",
        "/verify-email/resend",
        "/verify-email?token=nope",
        "/forgot-password",
        "/reset-password",
    ] {
        let answer = b.get(&fx.path(path)).await;
        assert_page_headers(&answer, path);
    }
    forgot(&mut b, &fx, &fx.email).await;
    let link = link_in(&inbox.one().await.body, "/reset-password?session=");
    let answer = b.get(&link).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_page_headers(&answer, "reset-password with a session");

    let mut me = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let page = account(&mut me, &fx).await.unwrap();
    assert_page_headers(&page, "/account");
    let csrf = hidden_field(&page.body, "csrf");
    let refused = me
        .post_form(
            &fx.path("/account/profile"),
            &[("csrf", &csrf), ("name", &"z".repeat(101))],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_page_headers(&refused, "the account page with an error");
    let out = me
        .post_form(&fx.path("/account/signout"), &[("csrf", &csrf)])
        .await;
    assert_page_headers(&out, "signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_never_leads_off_the_organizations_pages() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let other = fixture(&app).await;
    let account_url = app.url(&fx.path("/account"));
    let other_account = format!("/o/{}/account", other.org.slug);
    for evil in [
        "https://evil.example",
        "//evil.example",
        "https://evil.example/o/x/account",
        "/\\evil.example",
        other_account.as_str(),
        "/o/other/account",
    ] {
        let mut b = Browser::new(&app);
        let page = b
            .get(&format!(
                "{}?return_to={}",
                fx.path("/login"),
                url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("evil.example"), "{evil}: {}", page.body);
        assert!(!page.body.contains("name=\"return_to\""), "{evil}");
        let csrf = hidden_field(&page.body, "csrf");
        // The attacker posts the target directly.
        let answer = b
            .post_form(
                &fx.path("/login"),
                &[
                    ("csrf", &csrf),
                    ("return_to", evil),
                    ("email", &fx.email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(
            answer.location.as_deref(),
            Some(account_url.as_str()),
            "{evil}"
        );
    }
    // A page of this organization is where it says.
    let mut b = Browser::new(&app);
    let target = fx.path("/account?done=profile");
    let (_, csrf) = open_form(&mut b, &fx.path("/login")).await;
    let answer = b
        .post_form(
            &fx.path("/login"),
            &[
                ("csrf", &csrf),
                ("return_to", &target),
                ("email", &fx.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.location.as_deref(), Some(app.url(&target).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_html_escaped_on_the_account_and_sign_up_pages() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let script = "<script>alert(1)</script>";
    let mut me = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let csrf = account_csrf(&mut me, &fx).await;
    let saved = me
        .post_form(
            &fx.path("/account/profile"),
            &[("csrf", &csrf), ("name", script)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(user_name(&app, &fx).await.as_deref(), Some(script));
    let page = account(&mut me, &fx).await.unwrap();
    assert!(
        page.body
            .contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script"), "{}", page.body);

    // The name echoed back on a refused sign-up is escaped too, attribute breakout included.
    let mut b = Browser::new(&app);
    let breakout = "\"><script>alert(2)</script>";
    let refused = sign_up(&mut b, &fx, &fresh_email(), "short", breakout, None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(!refused.body.contains("<script"), "{}", refused.body);
    assert!(refused.body.contains("&quot;&gt;&lt;script&gt;"));
}

// ---------------------------------------------------------------------------------------------------------
// 8. The sessions API

async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("API call");
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

async fn sessions_api_lists_and_revokes_the_users_sessions(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = first_party_client(&app, &fx).await;
    let (issued, sid) = tokens_with_scope(&app, &fx, &client, SESSIONS_SCOPE).await;
    let token = issued["access_token"].as_str().unwrap().to_string();
    let mut laptop = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let list_path = fx.path("/api/me/sessions");

    let (status, headers, body) = api(&app, reqwest::Method::GET, &list_path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let list: Value = serde_json::from_str(&body).unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list}");
    assert_eq!(current[0]["id"], sid.as_str());
    let laptop_id = sessions.iter().find(|s| s["id"] != sid.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Another user's session is not mine to revoke.
    let stranger_email = add_user(&app, &fx, true).await;
    let mut stranger = signed_in(&app, &fx, &stranger_email, PASSWORD).await;
    let stranger_id = hidden_field(
        &account(
            &mut signed_in(&app, &fx, &stranger_email, PASSWORD).await,
            &fx,
        )
        .await
        .unwrap()
        .body,
        "session",
    );
    let (status, _, _) = api(
        &app,
        reqwest::Method::DELETE,
        &fx.path(&format!("/api/me/sessions/{stranger_id}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(is_signed_in(&mut stranger, &fx).await);
    let (status, _, _) = api(
        &app,
        reqwest::Method::DELETE,
        &fx.path("/api/me/sessions/ses_doesnotexist"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, body) = api(
        &app,
        reqwest::Method::DELETE,
        &fx.path(&format!("/api/me/sessions/{laptop_id}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!is_signed_in(&mut laptop, &fx).await);
    let (status, _, _) = api(
        &app,
        reqwest::Method::DELETE,
        &fx.path(&format!("/api/me/sessions/{laptop_id}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already revoked");

    let mut phone = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let mut tablet = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let (status, _, body) = api(
        &app,
        reqwest::Method::POST,
        &fx.path("/api/me/sessions/revoke-others"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(revoked["revoked"], 2);
    assert!(!is_signed_in(&mut phone, &fx).await);
    assert!(!is_signed_in(&mut tablet, &fx).await);
    assert!(is_signed_in(&mut stranger, &fx).await);
    let (_, _, body) = api(&app, reqwest::Method::GET, &list_path, Some(&token)).await;
    let list: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![sid.as_str()]);
}

backend_tests! {
    sessions_api_lists_and_revokes_the_users_sessions => sqlite_sessions_api_lists_and_revokes_the_users_sessions, postgres_sessions_api_lists_and_revokes_the_users_sessions;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_api_refuses_missing_garbage_and_client_credentials_tokens() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let _laptop = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let list_path = fx.path("/api/me/sessions");
    let mut service = new_app(ClientType::Confidential);
    service.grant_types = vec![GrantType::ClientCredentials];
    service.redirect_uris = vec![];
    service.post_logout_redirect_uris = vec![];
    let service = register(&app, &fx, service).await;
    let answer = token(&app, &fx, &service, &[("grant_type", "client_credentials")]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let machine_token = answer.json()["access_token"].as_str().unwrap().to_string();

    let calls = [
        (reqwest::Method::GET, list_path.clone()),
        (
            reqwest::Method::POST,
            fx.path("/api/me/sessions/revoke-others"),
        ),
        (reqwest::Method::DELETE, fx.path("/api/me/sessions/ses_x")),
    ];
    for (method, path) in &calls {
        let (status, headers, body) = api(&app, method.clone(), path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        let challenge = headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no WWW-Authenticate"));
        assert!(challenge.starts_with("Bearer"), "{challenge}");

        for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
            let (status, headers, _) = api(&app, method.clone(), path, Some(garbage)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {garbage}"
            );
            assert!(headers.get("www-authenticate").is_some());
        }

        let (status, _, body) = api(&app, method.clone(), path, Some(&machine_token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    // A user's access token for another organization does not work here.
    let elsewhere = fixture(&app).await;
    let elsewhere_client = confidential_client(&app, &elsewhere).await;
    let foreign = tokens(&app, &elsewhere, &elsewhere_client).await;
    let (status, _, _) = api(
        &app,
        reqwest::Method::GET,
        &list_path,
        foreign["access_token"].as_str(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------------------
// 9. Session lifetimes

async fn idle_timeout_and_absolute_lifetime_are_enforced_on_the_server(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let idle = fx.org.settings.session_idle_timeout_secs as i64;
    assert_eq!(idle, 30 * 60);
    let mut b = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let user = &fx.user.id;

    // Idle for a while, but less than the limit: still signed in (and the visit counts as activity).
    app.clock.advance(idle - 120);
    let now = app.clock.now();
    assert!(is_signed_in(&mut b, &fx).await);
    let seen = app
        .db
        .scalar_i64(&format!(
            "SELECT last_seen_at FROM sessions WHERE user_id = '{user}'"
        ))
        .await;
    assert!(seen >= now, "the visit was recorded");
    // Idle past the limit: the cookie is still there, the session is not.
    app.clock.advance(idle + 1);
    assert!(b.cookies.contains_key(&session_cookie(&fx)));
    assert!(!is_signed_in(&mut b, &fx).await);

    // Active all along, but past its absolute lifetime.
    let absolute = fx.org.settings.session_absolute_lifetime_secs as i64;
    let other_email = add_user(&app, &fx, true).await;
    let mut c = signed_in(&app, &fx, &other_email, PASSWORD).await;
    let started = app.clock.now();
    while app.clock.now() + idle / 2 < started + absolute {
        app.clock.advance(idle / 2);
        assert!(
            is_signed_in(&mut c, &fx).await,
            "active, within its lifetime"
        );
    }
    app.clock.advance(started + absolute - app.clock.now());
    assert!(!is_signed_in(&mut c, &fx).await);
    // And the sessions list no longer shows either.
    let mut fresh = signed_in(&app, &fx, &other_email, PASSWORD).await;
    let page = account(&mut fresh, &fx).await.unwrap();
    assert_eq!(page.body.matches("<li class=\"session\">").count(), 1);
}

backend_tests! {
    idle_timeout_and_absolute_lifetime_are_enforced_on_the_server => sqlite_idle_timeout_and_absolute_lifetime_are_enforced_on_the_server, postgres_idle_timeout_and_absolute_lifetime_are_enforced_on_the_server;
}

/// Tokens from a code flow with `scope`, and the session id (`sid`) they came from.
async fn tokens_with_scope(
    app: &TestApp,
    fx: &Fixture,
    client: &Client,
    scope: &str,
) -> (Value, String) {
    let p = pkce();
    let mut browser = Browser::new(app);
    let walked = walk(
        &mut browser,
        &authorize_path(fx, client, scope, Some(&p), &[]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    let answer = redeem(app, fx, client, &walked.code(), &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let issued = answer.json();
    let (_, claims) = jwt_parts(issued["access_token"].as_str().unwrap());
    let sid = claims["sid"].as_str().unwrap().to_string();
    (issued, sid)
}

/// Signing a session out ends what it signed in to: the access and refresh tokens issued from it stop
/// working at once. Grants with `offline_access` were asked for to outlive the session, and do.
async fn signing_out_a_session_ends_its_tokens_but_not_offline_ones(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = first_party_client(&app, &fx).await;
    let (online, online_sid) = tokens_with_scope(&app, &fx, &client, "openid email").await;
    let (offline, offline_sid) = tokens_with_scope(&app, &fx, &client, SCOPE).await;
    let (keeper, _) = tokens_with_scope(&app, &fx, &client, SESSIONS_SCOPE).await;
    let keeper_token = keeper["access_token"].as_str().unwrap();
    let online_token = online["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&app, &fx, &client, online_token).await["active"],
        true
    );

    for sid in [&online_sid, &offline_sid] {
        let (status, _, body) = api(
            &app,
            reqwest::Method::DELETE,
            &fx.path(&format!("/api/me/sessions/{sid}")),
            Some(keeper_token),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert_eq!(
        introspect(&app, &fx, &client, online_token).await["active"],
        false,
        "the signed-out session's access token is dead at once"
    );
    let refreshed = token(
        &app,
        &fx,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", online["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        refreshed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refreshed.body
    );
    assert_eq!(refreshed.json()["error"], "invalid_grant");

    let offline_token = offline["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&app, &fx, &client, offline_token).await["active"],
        true
    );
    let refreshed = token(
        &app,
        &fx,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", offline["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        refreshed.status,
        StatusCode::OK,
        "offline access outlives the session"
    );
    assert_eq!(
        introspect(&app, &fx, &client, keeper_token).await["active"],
        true
    );
}

backend_tests! {
    signing_out_a_session_ends_its_tokens_but_not_offline_ones => sqlite_signing_out_a_session_ends_its_tokens, postgres_signing_out_a_session_ends_its_tokens;
}

// ---- Client mistakes are 4xx, never 500 ------------------------------------------------------------

/// A NUL byte is text PostgreSQL refuses to store or compare ("data exception"). The account page's
/// session sign-out used to answer that refusal with 500 ("Something went wrong"); it is the client's
/// mistake, so it is 400 now, and on SQLite (which takes the byte) simply "already signed out".
async fn a_nul_byte_in_a_session_to_sign_out_is_a_client_error(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let mut me = signed_in(&app, &fx, &fx.email, PASSWORD).await;
    let page = account(&mut me, &fx).await.unwrap();
    let csrf = hidden_field(&page.body, "csrf");
    let refused = me
        .post_form(
            &fx.path("/account/sessions/revoke"),
            &[("csrf", &csrf), ("session", "ses\0x")],
        )
        .await;
    assert!(
        refused.status.is_client_error(),
        "{backend:?}: {} {}",
        refused.status,
        refused.body
    );
    assert!(
        is_signed_in(&mut me, &fx).await,
        "this device stays signed in"
    );
}

/// A path whose organization part cannot be a slug (a NUL byte, upper case, too long) used to be looked
/// up, and on PostgreSQL the lookup's refusal came back as 500; it is 404 without a lookup now.
async fn an_impossible_organization_slug_is_not_found(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in ["/o/%00/login", "/o/a%00b/account", "/o/UPPER/signup"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{backend:?} {path}");
    }
    // The OAuth endpoints still look the slug up; the database's refusal is a client error there too.
    let answer = app.get("/o/a%00b/.well-known/openid-configuration").await;
    assert!(
        answer.status().is_client_error(),
        "{backend:?}: {}",
        answer.status()
    );
}

backend_tests! {
    a_nul_byte_in_a_session_to_sign_out_is_a_client_error => sqlite_a_nul_byte_in_a_session_to_sign_out_is_a_client_error, postgres_a_nul_byte_in_a_session_to_sign_out_is_a_client_error;
    an_impossible_organization_slug_is_not_found => sqlite_an_impossible_organization_slug_is_not_found, postgres_an_impossible_organization_slug_is_not_found;
}
