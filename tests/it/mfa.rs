//! Multi-factor authentication over real HTTP: enrolling an authenticator app on the account page, the
//! second step of signing in (TOTP, email codes, recovery codes), the wrong-code limit, `amr`/`acr` in ID
//! tokens, `acr_values` / `max_age` / `prompt=login` on /authorize, step-up before sensitive account
//! actions, the organization's MFA policy, and refusals of malformed or forged second-step forms.
//!
//! TOTP codes are computed here from the key the enrolment page shows, with totp-rs. The server refuses
//! a code it has accepted before, so [`Authenticator`] never hands out the code of one 30-second step
//! twice (it uses the next step's code, which the server accepts as drift, or waits).

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use latchkey::kernel::Clock;
use latchkey::mfa::MfaPolicy;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{Backend, TestApp, TestDb};
use crate::oauth_support::*;

const ACR_MFA: &str = "urn:latchkey:acr:mfa";
const ACR_PASSWORD: &str = "urn:latchkey:acr:password";
const NEW_PASSWORD: &str = "a brand new passphrase 42";

// ---------------------------------------------------------------------------------------------------------
// The authenticator app

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// What a user's authenticator app would compute, from the key shown at enrolment.
struct Authenticator {
    totp: TOTP,
    /// 30-second steps whose code was handed out already (the server refuses a replayed code).
    used: HashSet<u64>,
    /// The server's clock: codes are computed for its time, and a test that has used every acceptable
    /// code moves it to the next step instead of waiting for one.
    clock: Clock,
}

impl Authenticator {
    fn from_key(key: &str, clock: &Clock) -> Authenticator {
        let seed = Secret::Encoded(key.to_string())
            .to_bytes()
            .unwrap_or_else(|e| panic!("the key {key:?} is not base32: {e:?}"));
        assert_eq!(seed.len(), 20, "a 160-bit seed");
        Authenticator {
            totp: TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, seed, None, String::new()),
            used: HashSet::new(),
            clock: clock.clone(),
        }
    }

    /// The enrolment page's key (`Key: <code class="secret">…</code>`).
    fn from_page(html: &str, clock: &Clock) -> Authenticator {
        let marker = "<code class=\"secret\">";
        let start = html
            .find(marker)
            .unwrap_or_else(|| panic!("no key on the enrolment page: {html}"))
            + marker.len();
        let end = html[start..].find("</code>").expect("closing </code>") + start;
        Authenticator::from_key(&html[start..end], clock)
    }

    /// A code the server accepts now and has not seen: this step's, the next one's (accepted as drift),
    /// or the previous one's while this step has a few seconds left; when all are used, moves the
    /// server's clock to the next step.
    async fn fresh_code(&mut self) -> String {
        loop {
            let now = self.clock.now() as u64;
            let step = now / 30;
            let left = 30 - now % 30;
            let mut candidates = vec![step, step + 1];
            if left >= 5 {
                candidates.push(step - 1);
            }
            for candidate in candidates {
                if self.used.insert(candidate) {
                    return self.totp.generate(candidate * 30);
                }
            }
            self.clock.advance(left as i64 + 1);
        }
    }

    /// A 6-digit code that is valid for none of the steps the server could accept right now.
    fn wrong_code(&self, n: u32) -> String {
        let now = self.clock.now() as u64;
        let valid: Vec<String> = (0..4)
            .map(|i| self.totp.generate(now + i * 30 - 30))
            .collect();
        let mut value = 123_456 + n * 7_919;
        loop {
            let code = format!("{:06}", value % 1_000_000);
            if !valid.contains(&code) {
                return code;
            }
            value += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pages and forms

fn session_cookie(fx: &Fixture) -> String {
    format!("latchkey-{}", fx.org.slug)
}

fn challenge_cookie(fx: &Fixture) -> String {
    format!("latchkey-mfa-{}", fx.org.slug)
}

fn assert_status(answer: &Answer, status: StatusCode, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
}

fn assert_redirect_to(app: &TestApp, answer: &Answer, path: &str, what: &str) {
    assert_status(answer, StatusCode::SEE_OTHER, what);
    assert_eq!(
        answer.location.as_deref(),
        Some(app.url(path).as_str()),
        "{what}: where to"
    );
}

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

/// The codes of a recovery-codes page: every `<code>` inside `<ol class="codes">`.
fn recovery_codes(html: &str) -> Vec<String> {
    let start = html
        .find("<ol class=\"codes\">")
        .unwrap_or_else(|| panic!("no recovery codes in page: {html}"));
    let end = html[start..].find("</ol>").expect("closing </ol>") + start;
    let codes: Vec<String> = html[start..end]
        .split("<code>")
        .skip(1)
        .map(|part| part.split("</code>").next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes: {codes:?}");
    for code in &codes {
        let (a, b) = code.split_once('-').expect("xxxxx-xxxxx");
        assert!(
            a.len() == 5
                && b.len() == 5
                && code.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()),
            "recovery code format: {code}"
        );
    }
    assert_eq!(
        codes.iter().collect::<HashSet<_>>().len(),
        10,
        "the codes differ"
    );
    codes
}

/// Posts the login form (no authorization request): the answer to the password.
async fn password_step(b: &mut Browser<'_>, fx: &Fixture, password: &str) -> Answer {
    let page = b.get(&fx.path("/login")).await;
    assert_status(&page, StatusCode::OK, "login page");
    let csrf = hidden_field(&page.body, "csrf");
    b.post_form(
        &fx.path("/login"),
        &[
            ("csrf", &csrf),
            ("email", &fx.email),
            ("password", password),
        ],
    )
    .await
}

/// A new browser signed in with the password only (the user has no factor), on the account page.
async fn password_session<'a>(app: &'a TestApp, fx: &Fixture) -> Browser<'a> {
    let mut b = Browser::new(app);
    let answer = password_step(&mut b, fx, PASSWORD).await;
    assert_redirect_to(app, &answer, &fx.path("/account"), "password-only sign-in");
    assert!(b.cookies.contains_key(&session_cookie(fx)));
    b
}

/// A new browser after a correct password of a user with a factor: at the challenge, no session yet.
async fn at_challenge<'a>(app: &'a TestApp, fx: &Fixture) -> Browser<'a> {
    let mut b = Browser::new(app);
    let answer = password_step(&mut b, fx, PASSWORD).await;
    assert_redirect_to(app, &answer, &fx.path("/login/mfa"), "password step");
    assert!(
        !b.cookies.contains_key(&session_cookie(fx)),
        "no session before the second factor: {:?}",
        b.cookies
    );
    assert!(b.cookies.contains_key(&challenge_cookie(fx)));
    b
}

/// The challenge page (asserted 200) and its CSRF token.
async fn challenge_page(b: &mut Browser<'_>, fx: &Fixture) -> (Answer, String) {
    let page = b.get(&fx.path("/login/mfa")).await;
    assert_status(&page, StatusCode::OK, "challenge page");
    let csrf = hidden_field(&page.body, "csrf");
    (page, csrf)
}

/// Posts a second-factor code to the open challenge.
async fn prove(b: &mut Browser<'_>, fx: &Fixture, csrf: &str, method: &str, code: &str) -> Answer {
    b.post_form(
        &fx.path("/login/mfa"),
        &[("csrf", csrf), ("method", method), ("code", code)],
    )
    .await
}

/// Asks for an email code at the open challenge (asserted to be sent).
async fn send_email_code(app: &TestApp, b: &mut Browser<'_>, fx: &Fixture, csrf: &str) {
    let sent = b
        .post_form(&fx.path("/login/mfa/email"), &[("csrf", csrf)])
        .await;
    assert_redirect_to(app, &sent, &fx.path("/login/mfa?sent=1"), "email code sent");
}

/// Signs in with password and TOTP in a new browser (landing on the account page).
async fn mfa_session<'a>(app: &'a TestApp, fx: &Fixture, auth: &mut Authenticator) -> Browser<'a> {
    let mut b = at_challenge(app, fx).await;
    let (_, csrf) = challenge_page(&mut b, fx).await;
    let code = auth.fresh_code().await;
    let answer = prove(&mut b, fx, &csrf, "totp", &code).await;
    assert_redirect_to(app, &answer, &fx.path("/account"), "TOTP sign-in");
    assert!(b.cookies.contains_key(&session_cookie(fx)));
    assert!(!b.cookies.contains_key(&challenge_cookie(fx)));
    b
}

/// The account page's (session-bound) CSRF token.
async fn account_csrf(b: &mut Browser<'_>, fx: &Fixture) -> String {
    let page = b.get(&fx.path("/account")).await;
    assert_status(&page, StatusCode::OK, "account page");
    hidden_field(&page.body, "csrf")
}

/// Sets up an authenticator app on the account page of signed-in browser `b` (a first factor): a wrong
/// code is refused first, then the right one shows the recovery codes.
async fn enrol_on_account(
    app: &TestApp,
    b: &mut Browser<'_>,
    fx: &Fixture,
) -> (Authenticator, Vec<String>) {
    let page = b.get(&fx.path("/account/mfa/totp")).await;
    assert_status(&page, StatusCode::OK, "enrolment page");
    assert!(page.body.contains("<svg"), "a QR code: {}", page.body);
    let csrf = hidden_field(&page.body, "csrf");
    let enrolment = hidden_field(&page.body, "enrolment");
    let mut auth = Authenticator::from_page(&page.body, &b.app.clock);

    let wrong = b
        .post_form(
            &fx.path("/account/mfa/totp"),
            &[
                ("csrf", &csrf),
                ("enrolment", &enrolment),
                ("code", &auth.wrong_code(0)),
            ],
        )
        .await;
    assert_status(&wrong, StatusCode::UNAUTHORIZED, "wrong enrolment code");
    assert_eq!(credentials(app, fx, "totp").await, 0, "not enrolled yet");
    assert_eq!(credentials(app, fx, "recovery_code").await, 0);

    let code = auth.fresh_code().await;
    let done = b
        .post_form(
            &fx.path("/account/mfa/totp"),
            &[("csrf", &csrf), ("enrolment", &enrolment), ("code", &code)],
        )
        .await;
    assert_status(&done, StatusCode::OK, "right enrolment code");
    let codes = recovery_codes(&done.body);
    assert_eq!(credentials(app, fx, "totp").await, 1, "enrolled");
    assert_eq!(credentials(app, fx, "recovery_code").await, 10);
    (auth, codes)
}

// ---------------------------------------------------------------------------------------------------------
// Database

async fn credentials(app: &TestApp, fx: &Fixture, kind: &str) -> i64 {
    app.db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM credentials WHERE user_id = '{}' AND kind = '{kind}'",
            fx.user.id
        ))
        .await
}

async fn audits(app: &TestApp, fx: &Fixture, action: &str) -> usize {
    audit_actions(app, fx)
        .await
        .iter()
        .filter(|a| a.as_str() == action)
        .count()
}

async fn rate_limited_audits(app: &TestApp, fx: &Fixture, policy: &str) -> i64 {
    app.db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE org_id = '{}' AND action = 'rate_limited' \
             AND after_state LIKE '%\"policy\":\"{policy}\"%'",
            fx.org.id
        ))
        .await
}

/// Every (id, subject, body_text) queued for `recipient`. (`created_at` has a one-second resolution, so
/// the order is no guide to which message is newest: [`SignInCodes`] goes by ids seen before.)
async fn mails_to(db: &TestDb, recipient: &str) -> Vec<(String, String, String)> {
    let sql = "SELECT id, subject, body_text, body_sealed FROM email_outbox WHERE recipient = $1";
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
        .map(|(id, subject, body, sealed)| {
            let body = db.outbox_body(&id, body, sealed);
            (id, subject, body)
        })
        .collect()
}

/// The fixture user's mailbox of sign-in codes: what arrived since the last look.
struct SignInCodes {
    seen: HashSet<String>,
}

impl SignInCodes {
    async fn open(app: &TestApp, fx: &Fixture) -> SignInCodes {
        let seen = mails_to(&app.db, &fx.email)
            .await
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        SignInCodes { seen }
    }

    /// The code of the one sign-in-code email that arrived since the last look.
    async fn one(&mut self, app: &TestApp, fx: &Fixture) -> String {
        let marker = "sign-in code is ";
        let new: Vec<(String, String, String)> = mails_to(&app.db, &fx.email)
            .await
            .into_iter()
            .filter(|(id, _, _)| !self.seen.contains(id))
            .collect();
        self.seen.extend(new.iter().map(|(id, _, _)| id.clone()));
        assert_eq!(new.len(), 1, "exactly one new email: {new:#?}");
        let (_, subject, body) = &new[0];
        assert!(subject.contains("sign-in code"), "{subject}");
        let start = body
            .find(marker)
            .unwrap_or_else(|| panic!("no code in: {body}"))
            + marker.len();
        let code: String = body[start..].chars().take(6).collect();
        assert!(
            code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
            "a 6-digit code, got {code:?}"
        );
        code
    }
}

// ---------------------------------------------------------------------------------------------------------
// Authorization requests

/// Where a walk through the hosted pages stopped.
enum Stop {
    /// A redirect that leaves the server (to the client).
    Client(String),
    /// At the second-factor challenge (`/login/mfa`), not yet fetched.
    Challenge,
    /// A page that is not a redirect (for example the recovery codes after enrolment).
    Page(Answer),
}

impl Stop {
    fn client(self) -> String {
        match self {
            Stop::Client(url) => url,
            Stop::Challenge => panic!("stopped at the challenge, expected the client"),
            Stop::Page(page) => panic!("stopped at a {} page: {}", page.status, page.body),
        }
    }

    fn challenge(self) {
        match self {
            Stop::Challenge => {}
            Stop::Client(url) => panic!("went back to the client ({url}), expected the challenge"),
            Stop::Page(page) => panic!("stopped at a {} page: {}", page.status, page.body),
        }
    }
}

/// Follows the server's redirects from `answer` like a browser: signs in with `password` on the login
/// page (noting it in `saw`), allows consent, and stops at the challenge, a page or the client.
async fn follow(
    b: &mut Browser<'_>,
    mut answer: Answer,
    fx: &Fixture,
    password: Option<&str>,
    saw: &mut Vec<&'static str>,
) -> Stop {
    let base = b.app.base.clone();
    for _ in 0..12 {
        let Some(location) = answer.location.clone() else {
            return Stop::Page(answer);
        };
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "redirects are 303");
        if !location.starts_with(&base) {
            return Stop::Client(location);
        }
        let action = location.split('?').next().unwrap().to_string();
        if action.ends_with("/login/mfa") {
            saw.push("challenge");
            return Stop::Challenge;
        } else if action.ends_with("/login") {
            saw.push("login");
            let page = b.get(&location).await;
            assert_status(&page, StatusCode::OK, "login page");
            let csrf = hidden_field(&page.body, "csrf");
            let req = hidden_field(&page.body, "req");
            let password = password.expect("the login page showed but no password was given");
            answer = b
                .post_form(
                    &action,
                    &[
                        ("req", &req),
                        ("csrf", &csrf),
                        ("email", &fx.email),
                        ("password", password),
                    ],
                )
                .await;
        } else if action.ends_with("/consent") {
            saw.push("consent");
            let page = b.get(&location).await;
            assert_status(&page, StatusCode::OK, "consent page");
            let csrf = hidden_field(&page.body, "csrf");
            let req = hidden_field(&page.body, "req");
            answer = b
                .post_form(
                    &action,
                    &[("req", &req), ("csrf", &csrf), ("decision", "allow")],
                )
                .await;
        } else {
            answer = b.get(&location).await;
        }
    }
    panic!("too many redirects");
}

/// Starts an authorization request at `path` and follows it.
async fn authorize(
    b: &mut Browser<'_>,
    fx: &Fixture,
    path: &str,
    password: Option<&str>,
    saw: &mut Vec<&'static str>,
) -> Stop {
    let answer = b.get(path).await;
    follow(b, answer, fx, password, saw).await
}

/// At the challenge: proves TOTP and follows on to the client.
async fn pass_totp(
    b: &mut Browser<'_>,
    fx: &Fixture,
    auth: &mut Authenticator,
    saw: &mut Vec<&'static str>,
) -> String {
    let (_, csrf) = challenge_page(b, fx).await;
    let code = auth.fresh_code().await;
    let answer = prove(b, fx, &csrf, "totp", &code).await;
    assert_status(&answer, StatusCode::SEE_OTHER, "TOTP accepted");
    follow(b, answer, fx, None, saw).await.client()
}

/// At a challenge that requires enrolment: checks the page, refuses a wrong code, enrols with the right
/// one, and returns the authenticator and the recovery-codes page.
async fn enrol_in_challenge(b: &mut Browser<'_>, fx: &Fixture) -> (Authenticator, Answer) {
    let (page, csrf) = challenge_page(b, fx).await;
    assert!(
        page.body.contains("<svg") && page.body.contains("Key:"),
        "the challenge shows the QR code and key: {}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("action=\"/o/{}/login/mfa/enrol\"", fx.org.slug)),
        "{}",
        page.body
    );
    let enrolment = hidden_field(&page.body, "enrolment");
    let mut auth = Authenticator::from_page(&page.body, &b.app.clock);
    let wrong = b
        .post_form(
            &fx.path("/login/mfa/enrol"),
            &[
                ("csrf", &csrf),
                ("enrolment", &enrolment),
                ("code", &auth.wrong_code(0)),
            ],
        )
        .await;
    assert_status(&wrong, StatusCode::UNAUTHORIZED, "wrong code at enrolment");
    let code = auth.fresh_code().await;
    let done = b
        .post_form(
            &fx.path("/login/mfa/enrol"),
            &[("csrf", &csrf), ("enrolment", &enrolment), ("code", &code)],
        )
        .await;
    assert_status(&done, StatusCode::OK, "enrolment in the challenge");
    recovery_codes(&done.body);
    assert!(!b.cookies.contains_key(&challenge_cookie(fx)));
    (auth, done)
}

/// The ID token's claims for the code in `redirect`.
async fn id_token_claims(
    app: &TestApp,
    fx: &Fixture,
    client: &Client,
    redirect: &str,
    p: &Pkce,
) -> Value {
    assert_eq!(query_param(redirect, "state").as_deref(), Some("st-123"));
    let code = query_param(redirect, "code")
        .unwrap_or_else(|| panic!("no code in the redirect {redirect}"));
    let answer = redeem(app, fx, client, &code, &p.verifier).await;
    assert_status(&answer, StatusCode::OK, "token");
    let id_token = answer.json()["id_token"]
        .as_str()
        .expect("an ID token")
        .to_string();
    jwt_parts(&id_token).1
}

fn amr(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap_or_else(|| panic!("amr array in {claims}"))
        .iter()
        .map(|v| v.as_str().expect("amr string").to_string())
        .collect()
}

fn assert_mfa_claims(claims: &Value, method: &str) {
    let amr = amr(claims);
    for expected in ["pwd", method, "mfa"] {
        assert!(
            amr.iter().any(|a| a == expected),
            "amr {amr:?} lacks {expected}"
        );
    }
    assert_eq!(claims["acr"], ACR_MFA, "{claims}");
}

// ---------------------------------------------------------------------------------------------------------
// 1. TOTP: enrolment, sign-in, ID token, replay

async fn totp_enrolment_then_sign_in_with_a_code(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;

    let mut b = password_session(&app, &fx).await;
    let (mut auth, _) = enrol_on_account(&app, &mut b, &fx).await;
    assert_eq!(audits(&app, &fx, "mfa.enrolled").await, 1);

    // Sign out.
    let csrf = account_csrf(&mut b, &fx).await;
    let out = b
        .post_form(&fx.path("/account/signout"), &[("csrf", &csrf)])
        .await;
    assert_status(&out, StatusCode::OK, "sign out");
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));

    // Sign in from an authorization request: the password leads to the challenge, not a session.
    let p = pkce();
    let mut saw = vec![];
    let mut b = Browser::new(&app);
    authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some(PASSWORD),
        &mut saw,
    )
    .await
    .challenge();
    assert_eq!(saw, ["login", "challenge"]);
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));
    assert!(b.cookies.contains_key(&challenge_cookie(&fx)));
    let (page, csrf) = challenge_page(&mut b, &fx).await;
    assert!(page.body.contains("Authenticator app"), "{}", page.body);
    assert!(page.body.contains("Recovery code"), "{}", page.body);
    assert!(!page.body.contains("Email code"), "email codes are off");
    assert_eq!(
        app.db
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM sessions WHERE user_id = '{}' AND revoked_at IS NULL",
                fx.user.id
            ))
            .await,
        0,
        "no live session before the second factor"
    );

    let code = auth.fresh_code().await;
    let answer = prove(&mut b, &fx, &csrf, "totp", &code).await;
    assert_status(&answer, StatusCode::SEE_OTHER, "TOTP accepted");
    assert!(
        answer
            .location
            .as_deref()
            .unwrap()
            .contains("/authorize/resume?req="),
        "back to the authorization request: {:?}",
        answer.location
    );
    assert!(b.cookies.contains_key(&session_cookie(&fx)), "signed in");
    assert!(
        !b.cookies.contains_key(&challenge_cookie(&fx)),
        "challenge over"
    );
    let redirect = follow(&mut b, answer, &fx, None, &mut saw).await.client();
    let claims = id_token_claims(&app, &fx, &client, &redirect, &p).await;
    assert_mfa_claims(&claims, "otp");
    assert_eq!(audits(&app, &fx, "mfa.succeeded").await, 1);
    assert_eq!(
        app.db
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM sessions WHERE user_id = '{}' AND revoked_at IS NULL \
                 AND acr = '{ACR_MFA}' AND mfa_at IS NOT NULL",
                fx.user.id
            ))
            .await,
        1,
        "the new session records the second factor"
    );

    // The same code again, in a new sign-in: refused, and no session.
    let mut other = at_challenge(&app, &fx).await;
    let (_, csrf) = challenge_page(&mut other, &fx).await;
    let replay = prove(&mut other, &fx, &csrf, "totp", &code).await;
    assert_status(&replay, StatusCode::UNAUTHORIZED, "replayed TOTP code");
    assert!(!other.cookies.contains_key(&session_cookie(&fx)));
    assert_eq!(audits(&app, &fx, "mfa.failed").await, 1);
    // The challenge is still open: a fresh code works.
    let code = auth.fresh_code().await;
    let answer = prove(&mut other, &fx, &csrf, "totp", &code).await;
    assert_redirect_to(
        &app,
        &answer,
        &fx.path("/account"),
        "fresh code after a replay",
    );
    assert!(other.cookies.contains_key(&session_cookie(&fx)));
}

backend_tests! {
    totp_enrolment_then_sign_in_with_a_code => sqlite_totp_enrolment_then_sign_in_with_a_code, postgres_totp_enrolment_then_sign_in_with_a_code;
}

// ---------------------------------------------------------------------------------------------------------
// 2. The wrong-code limit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_lock_the_second_step_even_for_the_right_code() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut b = password_session(&app, &fx).await;
    let (mut auth, _) = enrol_on_account(&app, &mut b, &fx).await;

    let mut b = at_challenge(&app, &fx).await;
    let (_, csrf) = challenge_page(&mut b, &fx).await;
    for n in 0..5 {
        let wrong = prove(&mut b, &fx, &csrf, "totp", &auth.wrong_code(n)).await;
        assert_status(&wrong, StatusCode::UNAUTHORIZED, &format!("wrong code {n}"));
        assert!(wrong.header("retry-after").is_none());
    }
    assert_eq!(audits(&app, &fx, "mfa.failed").await, 5);

    let code = auth.fresh_code().await;
    let locked = prove(&mut b, &fx, &csrf, "totp", &code).await;
    assert_status(&locked, StatusCode::TOO_MANY_REQUESTS, "sixth attempt");
    let retry_after: u64 = locked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=300).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert!(
        !b.cookies.contains_key(&session_cookie(&fx)),
        "not signed in"
    );
    assert_eq!(rate_limited_audits(&app, &fx, "mfa").await, 1);
    assert_eq!(audits(&app, &fx, "mfa.succeeded").await, 0);
    // The limit is per user: another browser with the right password is held back too.
    let mut other = at_challenge(&app, &fx).await;
    let (_, csrf) = challenge_page(&mut other, &fx).await;
    let code = auth.fresh_code().await;
    let locked = prove(&mut other, &fx, &csrf, "totp", &code).await;
    assert_status(&locked, StatusCode::TOO_MANY_REQUESTS, "other browser");
}

// ---------------------------------------------------------------------------------------------------------
// 3. Recovery codes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_signs_in_once_and_a_new_set_replaces_the_old() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut b = password_session(&app, &fx).await;
    let (mut auth, codes) = enrol_on_account(&app, &mut b, &fx).await;
    let mails_before = mails_to(&app.db, &fx.email).await.len();

    // A recovery code (typed in capitals, as read off paper) signs in.
    let mut b = at_challenge(&app, &fx).await;
    let (_, csrf) = challenge_page(&mut b, &fx).await;
    let answer = prove(&mut b, &fx, &csrf, "recovery", &codes[0].to_uppercase()).await;
    assert_redirect_to(&app, &answer, &fx.path("/account"), "recovery code");
    assert!(b.cookies.contains_key(&session_cookie(&fx)));
    assert_eq!(credentials(&app, &fx, "recovery_code").await, 9, "used up");
    assert_eq!(audits(&app, &fx, "mfa.recovery_code.used").await, 1);
    let mails = mails_to(&app.db, &fx.email).await;
    assert_eq!(mails.len(), mails_before + 1, "a notice is queued");
    let (_, _, body) = mails
        .iter()
        .find(|(_, subject, _)| subject.contains("recovery code was used"))
        .expect("the recovery-code notice");
    assert!(body.contains("9 unused"), "{body}");

    // The same code again: refused.
    let mut other = at_challenge(&app, &fx).await;
    let (_, other_csrf) = challenge_page(&mut other, &fx).await;
    let again = prove(&mut other, &fx, &other_csrf, "recovery", &codes[0]).await;
    assert_status(&again, StatusCode::UNAUTHORIZED, "recovery code reused");
    assert!(!other.cookies.contains_key(&session_cookie(&fx)));

    // New codes need a fresh second factor: once it is old, the session steps up first.
    app.clock
        .advance(fx.org.settings.mfa.step_up_minutes as i64 * 60 + 1);
    let csrf = account_csrf(&mut b, &fx).await;
    let renew = b
        .post_form(&fx.path("/account/mfa/recovery-codes"), &[("csrf", &csrf)])
        .await;
    assert_redirect_to(
        &app,
        &renew,
        &fx.path("/login/mfa"),
        "renewal needs step-up",
    );
    assert_eq!(credentials(&app, &fx, "recovery_code").await, 9, "not yet");
    let (_, challenge_csrf) = challenge_page(&mut b, &fx).await;
    let code = auth.fresh_code().await;
    let stepped = prove(&mut b, &fx, &challenge_csrf, "totp", &code).await;
    assert_redirect_to(
        &app,
        &stepped,
        &fx.path("/account?done=stepped-up"),
        "step-up",
    );
    assert_eq!(audits(&app, &fx, "mfa.step_up").await, 1);
    let renew = b
        .post_form(&fx.path("/account/mfa/recovery-codes"), &[("csrf", &csrf)])
        .await;
    assert_status(&renew, StatusCode::OK, "new recovery codes");
    let new_codes = recovery_codes(&renew.body);
    assert!(new_codes.iter().all(|c| !codes.contains(c)));
    assert_eq!(credentials(&app, &fx, "recovery_code").await, 10);
    assert_eq!(audits(&app, &fx, "mfa.recovery_codes.generated").await, 1);

    // An unused code of the old set no longer works; one of the new set does. (A new sign-in: the clock
    // moved past the earlier challenge's lifetime.)
    let mut other = at_challenge(&app, &fx).await;
    let (_, other_csrf) = challenge_page(&mut other, &fx).await;
    let old = prove(&mut other, &fx, &other_csrf, "recovery", &codes[1]).await;
    assert_status(&old, StatusCode::UNAUTHORIZED, "old set");
    let new = prove(&mut other, &fx, &other_csrf, "recovery", &new_codes[0]).await;
    assert_redirect_to(&app, &new, &fx.path("/account"), "new set");
    assert_eq!(credentials(&app, &fx, "recovery_code").await, 9);
}

// ---------------------------------------------------------------------------------------------------------
// 4. Email codes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_codes_sign_in_once_and_die_after_five_wrong_tries_or_expiry() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut b = password_session(&app, &fx).await;
    let csrf = account_csrf(&mut b, &fx).await;
    let on = b
        .post_form(&fx.path("/account/mfa/email"), &[("csrf", &csrf)])
        .await;
    assert_status(&on, StatusCode::OK, "email codes on (the first factor)");
    recovery_codes(&on.body);
    assert_eq!(credentials(&app, &fx, "email_otp").await, 1);
    let mut inbox = SignInCodes::open(&app, &fx).await;

    // Sign in: ask for a code, read it from the outbox, use it.
    let mut b = at_challenge(&app, &fx).await;
    let (page, csrf) = challenge_page(&mut b, &fx).await;
    assert!(page.body.contains("Email code"), "{}", page.body);
    let sent = b
        .post_form(&fx.path("/login/mfa/email"), &[("csrf", &csrf)])
        .await;
    assert_redirect_to(&app, &sent, &fx.path("/login/mfa?sent=1"), "code sent");
    let code = inbox.one(&app, &fx).await;
    let answer = prove(&mut b, &fx, &csrf, "email", &code).await;
    assert_redirect_to(&app, &answer, &fx.path("/account"), "email code");
    assert!(b.cookies.contains_key(&session_cookie(&fx)));

    // The same code a second time (in a new sign-in): refused.
    let mut b = at_challenge(&app, &fx).await;
    let (_, csrf) = challenge_page(&mut b, &fx).await;
    let again = prove(&mut b, &fx, &csrf, "email", &code).await;
    assert_status(&again, StatusCode::UNAUTHORIZED, "email code reused");
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));
    // A code of its own works (and a success forgets the wrong attempt).
    send_email_code(&app, &mut b, &fx, &csrf).await;
    let code = inbox.one(&app, &fx).await;
    let answer = prove(&mut b, &fx, &csrf, "email", &code).await;
    assert_redirect_to(&app, &answer, &fx.path("/account"), "second email code");

    // Five wrong tries kill the code.
    let mut b = at_challenge(&app, &fx).await;
    let (_, csrf) = challenge_page(&mut b, &fx).await;
    send_email_code(&app, &mut b, &fx, &csrf).await;
    let code = inbox.one(&app, &fx).await;
    let value: u32 = code.parse().unwrap();
    for n in 1..=5 {
        let wrong = format!("{:06}", (value + n) % 1_000_000);
        let answer = prove(&mut b, &fx, &csrf, "email", &wrong).await;
        assert_status(
            &answer,
            StatusCode::UNAUTHORIZED,
            &format!("wrong email code {n}"),
        );
    }
    assert_eq!(
        app.db
            .scalar_i64(
                "SELECT MAX(attempts) FROM one_time_tokens \
                 WHERE purpose = 'mfa_email_code' AND consumed_at IS NULL"
            )
            .await,
        5
    );
    // The per-user wrong-code limit (also 5) would answer 429 now; forget it, so that what refuses the
    // right code below is the dead code itself.
    app.services
        .ephemeral
        .clear(&format!("mfa:{}:{}", fx.org.id, fx.user.id))
        .await
        .unwrap();
    let dead = prove(&mut b, &fx, &csrf, "email", &code).await;
    assert_status(
        &dead,
        StatusCode::UNAUTHORIZED,
        "right code after five wrong",
    );
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));

    // An expired code fails.
    send_email_code(&app, &mut b, &fx, &csrf).await;
    let code = inbox.one(&app, &fx).await;
    app.clock.advance(latchkey::mfa::email_code::TTL_SECS + 1);
    let answer = prove(&mut b, &fx, &csrf, "email", &code).await;
    assert_status(&answer, StatusCode::UNAUTHORIZED, "expired email code");
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));

    // A new code for the same challenge still works.
    send_email_code(&app, &mut b, &fx, &csrf).await;
    let code = inbox.one(&app, &fx).await;
    let answer = prove(&mut b, &fx, &csrf, "email", &code).await;
    assert_redirect_to(&app, &answer, &fx.path("/account"), "fresh email code");
    assert_eq!(audits(&app, &fx, "mfa.email_code.sent").await, 5);
}

// ---------------------------------------------------------------------------------------------------------
// 5. acr_values, max_age and prompt=login

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acr_values_mfa_leads_a_password_only_user_through_enrolment() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let mut b = Browser::new(&app);

    // Without acr_values: a password is enough.
    let p = pkce();
    let mut saw = vec![];
    let redirect = authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some(PASSWORD),
        &mut saw,
    )
    .await
    .client();
    assert_eq!(saw, ["login", "consent"]);
    let claims = id_token_claims(&app, &fx, &client, &redirect, &p).await;
    assert_eq!(claims["acr"], ACR_PASSWORD);
    assert_eq!(amr(&claims), ["pwd"]);

    // With acr_values=mfa and prompt=none: the password-only session cannot do.
    let mfa = [("acr_values", ACR_MFA)];
    let mut saw = vec![];
    let redirect = authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[mfa[0], ("prompt", "none")]),
        None,
        &mut saw,
    )
    .await
    .client();
    assert!(redirect.starts_with(REDIRECT_URI), "{redirect}");
    assert_eq!(
        query_param(&redirect, "error").as_deref(),
        Some("interaction_required")
    );
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("st-123"));
    assert!(query_param(&redirect, "code").is_none());

    // Interactively: the user (who has no factor) enrols inside the challenge, then goes back.
    let p = pkce();
    let mut saw = vec![];
    authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &mfa),
        None,
        &mut saw,
    )
    .await
    .challenge();
    assert_eq!(saw, ["challenge"], "no new password for a step-up");
    let (_, codes_page) = enrol_in_challenge(&mut b, &fx).await;
    assert_eq!(credentials(&app, &fx, "totp").await, 1);
    let resume = href(
        &codes_page.body,
        &format!("/o/{}/authorize/resume?req=", fx.org.slug),
    );
    let answer = b.get(&resume).await;
    let redirect = follow(&mut b, answer, &fx, None, &mut saw).await.client();
    let claims = id_token_claims(&app, &fx, &client, &redirect, &p).await;
    assert_mfa_claims(&claims, "otp");

    // Now the session satisfies acr_values=mfa even with prompt=none.
    let p = pkce();
    let mut saw = vec![];
    let redirect = authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[mfa[0], ("prompt", "none")]),
        None,
        &mut saw,
    )
    .await
    .client();
    let claims = id_token_claims(&app, &fx, &client, &redirect, &p).await;
    assert_eq!(claims["acr"], ACR_MFA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_zero_and_prompt_login_ask_for_the_password_and_the_second_factor_again() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let mut b = password_session(&app, &fx).await;
    let (mut auth, _) = enrol_on_account(&app, &mut b, &fx).await;

    // A live MFA session.
    let mut b = Browser::new(&app);
    let p = pkce();
    let mut saw = vec![];
    authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some(PASSWORD),
        &mut saw,
    )
    .await
    .challenge();
    let redirect = pass_totp(&mut b, &fx, &mut auth, &mut saw).await;
    assert_eq!(saw, ["login", "challenge", "consent"]);
    let first = id_token_claims(&app, &fx, &client, &redirect, &p).await;
    assert_mfa_claims(&first, "otp");
    let first_sid = first["sid"].clone();

    // That session is enough for a plain request.
    let p = pkce();
    let mut saw = vec![];
    let redirect = authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[("acr_values", ACR_MFA)]),
        None,
        &mut saw,
    )
    .await
    .client();
    assert!(saw.is_empty(), "{saw:?}");
    let claims = id_token_claims(&app, &fx, &client, &redirect, &p).await;
    assert_eq!(claims["sid"], first_sid);

    for (what, extra) in [
        ("max_age=0", ("max_age", "0")),
        ("prompt=login", ("prompt", "login")),
    ] {
        // auth_time has a one-second resolution: let the session be older than max_age=0.
        app.clock.advance(2);
        let before = app.clock.now();
        let p = pkce();
        let mut saw = vec![];
        authorize(
            &mut b,
            &fx,
            &authorize_path(&fx, &client, SCOPE, Some(&p), &[extra]),
            Some(PASSWORD),
            &mut saw,
        )
        .await
        .challenge();
        assert_eq!(saw, ["login", "challenge"], "{what}");
        let redirect = pass_totp(&mut b, &fx, &mut auth, &mut saw).await;
        let claims = id_token_claims(&app, &fx, &client, &redirect, &p).await;
        assert_mfa_claims(&claims, "otp");
        assert!(
            claims["auth_time"].as_i64().unwrap() >= before,
            "{what}: a fresh sign-in: {claims}"
        );
        assert_ne!(claims["sid"], first_sid, "{what}: a new session");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 6. Step-up before a password change

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_needs_a_recent_second_factor() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut b = password_session(&app, &fx).await;
    let (mut auth, _) = enrol_on_account(&app, &mut b, &fx).await;

    let mut b = mfa_session(&app, &fx, &mut auth).await;
    let session_before = b.cookies[&session_cookie(&fx)].clone();
    app.clock
        .advance(fx.org.settings.mfa.step_up_minutes as i64 * 60 + 1);
    let csrf = account_csrf(&mut b, &fx).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
    ];
    let answer = b.post_form(&fx.path("/account/password"), &form).await;
    assert_redirect_to(&app, &answer, &fx.path("/login/mfa"), "step-up first");
    assert!(b.cookies.contains_key(&challenge_cookie(&fx)));
    assert_eq!(audits(&app, &fx, "password.changed").await, 0);

    // A wrong code does not step up.
    let (_, challenge_csrf) = challenge_page(&mut b, &fx).await;
    let wrong = prove(&mut b, &fx, &challenge_csrf, "totp", &auth.wrong_code(0)).await;
    assert_status(&wrong, StatusCode::UNAUTHORIZED, "wrong step-up code");
    let answer = b.post_form(&fx.path("/account/password"), &form).await;
    assert_redirect_to(&app, &answer, &fx.path("/login/mfa"), "still no step-up");

    let code = auth.fresh_code().await;
    let stepped = prove(&mut b, &fx, &challenge_csrf, "totp", &code).await;
    assert_redirect_to(
        &app,
        &stepped,
        &fx.path("/account?done=stepped-up"),
        "step-up",
    );
    assert_eq!(
        b.cookies[&session_cookie(&fx)],
        session_before,
        "a step-up keeps the session"
    );
    let page = b.get(&fx.path("/account?done=stepped-up")).await;
    assert_status(&page, StatusCode::OK, "account page");
    assert!(page.body.contains("Verified"), "{}", page.body);

    let answer = b.post_form(&fx.path("/account/password"), &form).await;
    assert_redirect_to(
        &app,
        &answer,
        &fx.path("/account?done=password"),
        "password change",
    );
    assert_eq!(audits(&app, &fx, "password.changed").await, 1);

    let mut old = Browser::new(&app);
    let refused = password_step(&mut old, &fx, PASSWORD).await;
    assert_status(&refused, StatusCode::UNAUTHORIZED, "old password");
    let mut new = Browser::new(&app);
    let accepted = password_step(&mut new, &fx, NEW_PASSWORD).await;
    assert_redirect_to(&app, &accepted, &fx.path("/login/mfa"), "new password");
}

// ---------------------------------------------------------------------------------------------------------
// 7. The organization's policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_organization_requires_mfa_users_enrol_at_sign_in_and_keep_a_factor() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| s.mfa.policy = MfaPolicy::Everyone).await;
    let client = confidential_client(&app, &fx).await;

    let mut b = Browser::new(&app);
    let p = pkce();
    let mut saw = vec![];
    authorize(
        &mut b,
        &fx,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some(PASSWORD),
        &mut saw,
    )
    .await
    .challenge();
    assert_eq!(saw, ["login", "challenge"]);
    assert!(
        !b.cookies.contains_key(&session_cookie(&fx)),
        "no session yet"
    );
    let (_, codes_page) = enrol_in_challenge(&mut b, &fx).await;
    assert!(b.cookies.contains_key(&session_cookie(&fx)), "signed in");
    assert_eq!(credentials(&app, &fx, "totp").await, 1);
    let resume = href(
        &codes_page.body,
        &format!("/o/{}/authorize/resume?req=", fx.org.slug),
    );
    let answer = b.get(&resume).await;
    let redirect = follow(&mut b, answer, &fx, None, &mut saw).await.client();
    let claims = id_token_claims(&app, &fx, &client, &redirect, &p).await;
    assert_mfa_claims(&claims, "otp");

    // Removing the only factor is refused while the policy requires one.
    let csrf = account_csrf(&mut b, &fx).await;
    let remove = b
        .post_form(
            &fx.path("/account/mfa/remove"),
            &[("csrf", &csrf), ("factor", "totp")],
        )
        .await;
    assert_status(&remove, StatusCode::CONFLICT, "removing the only factor");
    assert_eq!(credentials(&app, &fx, "totp").await, 1);
    assert_eq!(credentials(&app, &fx, "recovery_code").await, 10);
    assert_eq!(audits(&app, &fx, "mfa.removed").await, 0);
}

// ---------------------------------------------------------------------------------------------------------
// 8. Bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_forged_second_step_forms_are_refused_and_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut b = password_session(&app, &fx).await;
    let (mut auth, _) = enrol_on_account(&app, &mut b, &fx).await;

    // Account forms: an unknown factor, a missing CSRF token.
    let csrf = account_csrf(&mut b, &fx).await;
    let unknown = b
        .post_form(
            &fx.path("/account/mfa/remove"),
            &[("csrf", &csrf), ("factor", "sms")],
        )
        .await;
    assert_status(
        &unknown,
        StatusCode::BAD_REQUEST,
        "remove an unknown factor",
    );
    let no_csrf = b
        .post_form(&fx.path("/account/mfa/remove"), &[("factor", "totp")])
        .await;
    assert_status(&no_csrf, StatusCode::FORBIDDEN, "remove without CSRF");
    let no_csrf = b
        .post_form(&fx.path("/account/mfa/recovery-codes"), &[])
        .await;
    assert_status(&no_csrf, StatusCode::FORBIDDEN, "new codes without CSRF");
    assert_eq!(credentials(&app, &fx, "totp").await, 1);
    assert_eq!(credentials(&app, &fx, "recovery_code").await, 10);

    // Without a challenge cookie (but with a valid CSRF pair): 400.
    let mut b = Browser::new(&app);
    let login = b.get(&fx.path("/login")).await;
    let csrf = hidden_field(&login.body, "csrf");
    let code = auth.wrong_code(1);
    let answer = prove(&mut b, &fx, &csrf, "totp", &code).await;
    assert_status(&answer, StatusCode::BAD_REQUEST, "no challenge cookie");
    let answer = b
        .post_form(&fx.path("/login/mfa/email"), &[("csrf", &csrf)])
        .await;
    assert_status(
        &answer,
        StatusCode::BAD_REQUEST,
        "email code without challenge",
    );
    let page = b.get(&fx.path("/login/mfa")).await;
    assert_status(
        &page,
        StatusCode::BAD_REQUEST,
        "challenge page without cookie",
    );

    // With a challenge: missing or wrong CSRF token → 403; unknown or missing method → 400; email codes
    // when they are off → 400; enrolment when none is needed → back to the challenge.
    let mut b = at_challenge(&app, &fx).await;
    let (_, csrf) = challenge_page(&mut b, &fx).await;
    let answer = b
        .post_form(
            &fx.path("/login/mfa"),
            &[("method", "totp"), ("code", &code)],
        )
        .await;
    assert_status(&answer, StatusCode::FORBIDDEN, "missing CSRF");
    let answer = prove(&mut b, &fx, &"0".repeat(43), "totp", &code).await;
    assert_status(&answer, StatusCode::FORBIDDEN, "wrong CSRF");
    let answer = prove(&mut b, &fx, &csrf, "sms", &code).await;
    assert_status(&answer, StatusCode::BAD_REQUEST, "unknown method");
    let answer = b
        .post_form(&fx.path("/login/mfa"), &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_status(&answer, StatusCode::BAD_REQUEST, "missing method");
    let answer = b
        .post_form(&fx.path("/login/mfa/email"), &[("csrf", &csrf)])
        .await;
    assert_status(&answer, StatusCode::BAD_REQUEST, "email codes are off");
    let answer = b
        .post_form(
            &fx.path("/login/mfa/enrol"),
            &[("csrf", &csrf), ("enrolment", "x"), ("code", &code)],
        )
        .await;
    assert_redirect_to(
        &app,
        &answer,
        &fx.path("/login/mfa"),
        "enrolment not needed",
    );
    assert!(!b.cookies.contains_key(&session_cookie(&fx)));
    assert_eq!(
        audits(&app, &fx, "mfa.failed").await,
        0,
        "no code was checked"
    );
    assert_eq!(audits(&app, &fx, "mfa.email_code.sent").await, 0);
    assert_eq!(
        app.db
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM sessions WHERE user_id = '{}' AND revoked_at IS NULL",
                fx.user.id
            ))
            .await,
        1,
        "only the first browser's session"
    );

    // The challenge survived all that; it works once, and a replayed form after it is refused.
    let challenge = b.cookies[&challenge_cookie(&fx)].clone();
    let right = auth.fresh_code().await;
    let answer = prove(&mut b, &fx, &csrf, "totp", &right).await;
    assert_redirect_to(&app, &answer, &fx.path("/account"), "right code");
    let mut replay = Browser::new(&app);
    replay
        .cookies
        .insert(challenge_cookie(&fx), challenge.clone());
    replay
        .cookies
        .insert("latchkey-csrf".into(), b.cookies["latchkey-csrf"].clone());
    let second = auth.fresh_code().await;
    let answer = prove(&mut replay, &fx, &csrf, "totp", &second).await;
    assert_status(&answer, StatusCode::BAD_REQUEST, "a finished challenge");
    assert!(!replay.cookies.contains_key(&session_cookie(&fx)));
}

/// What is stored is never the secret itself: the TOTP seed is sealed under the master key (and opens to
/// the seed the app was given), recovery codes are keyed hashes, and an email code is a bcrypt (cost 10)
/// hash that does not contain the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_secrets_are_stored_sealed_or_hashed() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let services = &app.services;
    let client = latchkey::sessions::service::ClientInfo::default();
    let enrolment = latchkey::mfa::totp::begin(services, &fx.org, &fx.user)
        .await
        .unwrap();
    let seed = Secret::Encoded(enrolment.secret_base32.clone())
        .to_bytes()
        .unwrap();
    let code = TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, seed.clone(), None, String::new())
        .generate(unix_now());
    let proof = crate::domain_rules::fresh_proof(services, &fx.org, &fx.user).await;
    let shown = latchkey::mfa::totp::confirm(
        services,
        &fx.org,
        &proof,
        &fx.user,
        &enrolment.id,
        &code,
        &client,
    )
    .await
    .unwrap()
    .expect("the first factor comes with recovery codes");
    let stored = services
        .db
        .tenant(&fx.org.id)
        .user_credentials(&fx.user.id)
        .await
        .unwrap();
    let totp = stored
        .iter()
        .find(|c| c.kind == latchkey::users::CredentialKind::Totp)
        .unwrap();
    assert!(
        !totp
            .secret
            .windows(seed.len())
            .any(|w| w == seed.as_slice()),
        "the seed is not stored in the clear"
    );
    assert_eq!(
        services.secrets.open(&totp.id, &totp.secret).unwrap(),
        seed,
        "sealed under the master key, bound to the credential id"
    );
    assert!(
        services.secrets.open("cred_other", &totp.secret).is_err(),
        "a sealed seed moved to another credential does not open"
    );
    let hashes: Vec<&Vec<u8>> = stored
        .iter()
        .filter(|c| c.kind == latchkey::users::CredentialKind::RecoveryCode)
        .map(|c| &c.secret)
        .collect();
    assert_eq!(hashes.len(), 10);
    for code in &shown {
        assert!(
            hashes
                .iter()
                .all(|h| h.len() == 32 && h.as_slice() != code.as_bytes())
        );
    }

    latchkey::mfa::email_code::send(services, &fx.org, &fx.user, "challenge-1", &client)
        .await
        .unwrap();
    let token = services
        .db
        .tenant(&fx.org.id)
        .one_time_token(
            &services.secrets.token_hash("mfa-email:challenge-1"),
            latchkey::mfa::email_code::PURPOSE,
        )
        .await
        .unwrap()
        .expect("the email code record");
    let data: Value = serde_json::from_str(&token.data).unwrap();
    let hash = data["code_hash"].as_str().unwrap();
    assert!(hash.starts_with("$2b$10$"), "bcrypt at cost 10: {hash}");
    assert_eq!(token.expires_at - token.created_at, 300, "five minutes");
    let mail = services.db.tenant(&fx.org.id).list_outbox(1).await.unwrap();
    let sent_code: String = mail[0]
        .email
        .body_text
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap()
        .to_string();
    assert!(!token.data.contains(&sent_code));
}
