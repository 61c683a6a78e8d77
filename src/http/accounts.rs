//! Self-service pages for people who are not signed in: sign-up, email verification (and resending the
//! link), forgot password and reset password. Each handler takes its checked form (CSRF + Origin, see
//! [`PageForm`]), calls `accounts::*` and renders the outcome; answers that could reveal whether an
//! address is registered are the same either way.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::AppState;
use super::error::{Kind, PageError, PageResult};
use super::extract::{Client, CsrfField, Org, PageForm};
use super::pages::{self, Page, see_other};
use super::views::accounts::{self as views, EmailView, ResetView, SignUpView};
use crate::accounts::reset::{self, ResetError};
use crate::accounts::{signup, verification};
use crate::error::Error;
use crate::model::orgs::Organization;

/// What a form says about a domain error; causes we must not show were logged by [`Kind::of`].
fn form_message(e: &Error) -> String {
    match e {
        Error::Invalid { field, message } => {
            let label = match field.as_str() {
                "email" => "Email",
                "password" | "new_password" => "Password",
                "name" => "Name",
                other => other,
            };
            format!("{label} {message}.")
        }
        Error::RateLimited(limited) => format!(
            "Too many requests. Please try again in {} minutes.",
            limited.decision.reset_after.as_secs().div_ceil(60).max(1)
        ),
        Error::Busy => "We are busy right now. Please try again in a moment.".into(),
        Error::Unavailable(_) => {
            "We cannot take this request right now. Please try again in a moment.".into()
        }
        _ => "Something went wrong on our side. Please try again.".into(),
    }
}

/// The form again, saying what went wrong; the error's kind decides the status.
fn form_again(e: &Error, page: impl FnOnce(&str) -> Page) -> PageError {
    let kind = Kind::of(e);
    PageError::page(kind, page(&form_message(e)))
}

/// The standard error page for a domain error, saying what [`form_message`] says.
fn failed(org: &Organization, e: &Error) -> PageError {
    let kind = Kind::of(e);
    PageError::page(
        kind,
        Page::error(&org.name, kind.status(), &form_message(e)),
    )
}

/// The client application of a pending authorization request, for per-application limits.
async fn app_of_request(state: &AppState, org: &Organization, req: Option<&str>) -> Option<String> {
    let id = req.filter(|r| !r.is_empty())?;
    crate::oauth::authorize::load_pending(&state.provider, org, id)
        .await
        .ok()
        .flatten()
        .and_then(|(params, _)| params.client_id)
}

/// `?req=` ties these pages to a pending authorization request, so the user ends up back in the app.
#[derive(Debug, Default, Deserialize)]
pub struct ReqQuery {
    req: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

// ---- Sign-up -------------------------------------------------------------------------------------

fn registration_closed(org: &Organization) -> PageError {
    PageError::say(org, Kind::NotFound, "This page does not exist.")
}

pub async fn signup_form(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<ReqQuery>,
) -> PageResult<Page> {
    if !org.settings.self_registration {
        return Err(registration_closed(&org));
    }
    let view = |error| SignUpView {
        name: "",
        email: "",
        req: query.req.as_deref(),
        error,
    };
    let config = state.deps.config();
    Ok(pages::with_csrf(config, &headers, |csrf| {
        views::signup(&org, csrf, view(None))
    }))
}

#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    csrf: Option<String>,
    req: Option<String>,
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

impl CsrfField for SignUpForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub async fn signup_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    form: Result<PageForm<SignUpForm>, PageError>,
) -> PageResult<Page> {
    if !org.settings.self_registration {
        return Err(registration_closed(&org));
    }
    let PageForm(form) = form?;
    let name = form.name.unwrap_or_default();
    let email = form.email.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let req = non_empty(form.req);
    let input = signup::SignUp {
        email: &email,
        password: &password,
        name: Some(&name),
        continue_request: req.as_deref(),
    };
    match signup::sign_up(&state.deps, &org, input, &client).await {
        Ok(()) => Ok(views::signup_sent(&org, email.trim())),
        Err(e) => Err(form_again(&e, |message| {
            let csrf = form.csrf.as_deref().unwrap_or_default();
            let view = SignUpView {
                name: &name,
                email: &email,
                req: req.as_deref(),
                error: Some(message),
            };
            views::signup(&org, csrf, view)
        })),
    }
}

// ---- Email verification --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn plausible_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 64
}

fn link_expired(org: &Organization) -> PageError {
    PageError::page(Kind::BadRequest, views::link_expired(org))
}

/// The emailed link: a page with a button, never the verification itself. Mail scanners and link
/// previews fetch links by themselves; the click (a POST with this browser's CSRF token) is the person.
pub async fn verify_email(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> PageResult<Page> {
    let token = query.token.unwrap_or_default();
    if !plausible_token(&token) {
        return Err(link_expired(&org));
    }
    match verification::pending(&state.deps, &org, &token).await {
        Ok(Some(user)) => Ok(pages::with_csrf(state.deps.config(), &headers, |csrf| {
            views::confirm_email(&org, csrf, &token, &user.email)
        })),
        Ok(None) => Err(link_expired(&org)),
        Err(e) => Err(failed(&org, &e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct VerifyEmailForm {
    csrf: Option<String>,
    token: Option<String>,
}

impl CsrfField for VerifyEmailForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub async fn verify_email_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    PageForm(form): PageForm<VerifyEmailForm>,
) -> PageResult<Page> {
    let token = form.token.unwrap_or_default();
    if !plausible_token(&token) {
        return Err(link_expired(&org));
    }
    let verified = verification::verify(&state.deps, &org, &token, &client)
        .await
        .map_err(|e| failed(&org, &e))?
        .ok_or_else(|| link_expired(&org))?;
    // Continue the application's sign-in if its request is still open; else the account page.
    let continue_request = verified.continue_request.as_deref();
    let pending = app_of_request(&state, &org, continue_request)
        .await
        .and(continue_request);
    let next = views::sign_in_href(&org, pending);
    Ok(views::email_confirmed(&verified.user.email, &org, &next))
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailQuery {
    email: Option<String>,
    req: Option<String>,
}

pub async fn resend_form(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<EmailQuery>,
) -> Page {
    let view = EmailView {
        email: query.email.as_deref().unwrap_or_default(),
        req: query.req.as_deref().filter(|r| !r.is_empty()),
        error: None,
    };
    pages::with_csrf(state.deps.config(), &headers, |csrf| {
        views::resend(&org, csrf, view)
    })
}

#[derive(Debug, Deserialize)]
pub struct EmailForm {
    csrf: Option<String>,
    email: Option<String>,
    req: Option<String>,
}

impl CsrfField for EmailForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl EmailForm {
    /// The form again with `error`, drawn by `page`.
    fn again(
        &self,
        org: &Organization,
        e: &Error,
        page: fn(&Organization, &str, EmailView<'_>) -> Page,
    ) -> PageError {
        form_again(e, |message| {
            let view = EmailView {
                email: self.email.as_deref().unwrap_or_default(),
                req: self.req.as_deref().filter(|r| !r.is_empty()),
                error: Some(message),
            };
            page(org, self.csrf.as_deref().unwrap_or_default(), view)
        })
    }
}

pub async fn resend_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    PageForm(form): PageForm<EmailForm>,
) -> PageResult<Page> {
    let email = form.email.clone().unwrap_or_default();
    let req = form.req.as_deref().filter(|r| !r.is_empty());
    let app = app_of_request(&state, &org, req).await;
    let continue_request = req.filter(|_| app.is_some());
    let deps = &state.deps;
    verification::resend(
        deps,
        &org,
        &email,
        continue_request,
        app.as_deref(),
        &client,
    )
    .await
    .map_err(|e| form.again(&org, &e, views::resend))?;
    Ok(views::resend_sent(&org, email.trim()))
}

// ---- Forgot and reset password -------------------------------------------------------------------

/// The reset session id of the browser that asked for it. Strict, so no other site's request carries it.
fn reset_cookie_name(state: &AppState) -> &'static str {
    if state.deps.config().is_https() {
        "__Host-latchkey-reset"
    } else {
        "latchkey-reset"
    }
}

pub async fn forgot_form(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<EmailQuery>,
) -> Page {
    let view = EmailView {
        email: query.email.as_deref().unwrap_or_default(),
        req: query.req.as_deref().filter(|r| !r.is_empty()),
        error: None,
    };
    pages::with_csrf(state.deps.config(), &headers, |csrf| {
        views::forgot(&org, csrf, view)
    })
}

pub async fn forgot_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    PageForm(form): PageForm<EmailForm>,
) -> PageResult {
    let email = form.email.clone().unwrap_or_default();
    let req = form.req.as_deref().filter(|r| !r.is_empty());
    let app = app_of_request(&state, &org, req).await;
    let session_id = reset::request(&state.deps, &org, &email, app.as_deref(), &client)
        .await
        .map_err(|e| form.again(&org, &e, views::forgot))?;
    let cookie = pages::set_cookie(
        state.deps.config(),
        reset_cookie_name(&state),
        &session_id,
        Some(reset::SESSION_TTL_SECS),
        "Strict",
    );
    let location = format!("/o/{}/reset-password{}", org.slug, views::req_suffix(req));
    Ok(see_other(&location, vec![cookie]))
}

#[derive(Debug, Default, Deserialize)]
pub struct ResetQuery {
    session: Option<String>,
    code: Option<String>,
    req: Option<String>,
}

const RESET_EXPIRED: &str = "This password reset has expired or was already used.";
const RESET_LOCKED: &str = "Too many wrong codes: this password reset is locked.";

fn reset_closed(org: &Organization, message: &str) -> PageError {
    PageError::page(Kind::BadRequest, views::reset_closed(org, message))
}

/// A reset session id as sent: plausible, or the reset is closed.
fn plausible_session(org: &Organization, session: &str) -> Result<(), PageError> {
    if session.is_empty() || session.len() > 64 {
        return Err(reset_closed(org, RESET_EXPIRED));
    }
    Ok(())
}

pub async fn reset_form(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<ResetQuery>,
) -> PageResult<Page> {
    let session = non_empty(query.session)
        .or_else(|| pages::cookie_value(&headers, reset_cookie_name(&state)))
        .unwrap_or_default();
    plausible_session(&org, &session)?;
    let open = reset::is_open(&state.deps, &org, &session).await;
    if !open.map_err(|e| failed(&org, &e))? {
        return Err(reset_closed(&org, RESET_EXPIRED));
    }
    let view = ResetView {
        session: &session,
        code: query.code.as_deref().unwrap_or_default(),
        req: query.req.as_deref().filter(|r| !r.is_empty()),
        error: None,
    };
    Ok(pages::with_csrf(state.deps.config(), &headers, |csrf| {
        views::reset(&org, csrf, view)
    }))
}

#[derive(Debug, Deserialize)]
pub struct ResetForm {
    csrf: Option<String>,
    session: Option<String>,
    code: Option<String>,
    password: Option<String>,
    req: Option<String>,
}

impl CsrfField for ResetForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl ResetForm {
    /// The reset form again with `message`, keeping the code unless it was the wrong one.
    fn again(&self, org: &Organization, kind: Kind, message: &str, keep_code: bool) -> PageError {
        let view = ResetView {
            session: self.session.as_deref().unwrap_or_default(),
            code: if keep_code {
                self.code.as_deref().unwrap_or_default()
            } else {
                ""
            },
            req: self.req.as_deref().filter(|r| !r.is_empty()),
            error: Some(message),
        };
        let csrf = self.csrf.as_deref().unwrap_or_default();
        PageError::page(kind, views::reset(org, csrf, view))
    }

    /// What a refused reset answers.
    fn refused(&self, org: &Organization, e: ResetError) -> PageError {
        match e {
            ResetError::WrongCode { attempts_left } => {
                let attempts = if attempts_left == 1 {
                    "attempt"
                } else {
                    "attempts"
                };
                let message = format!("That code is not right. {attempts_left} {attempts} left.");
                self.again(org, Kind::BadRequest, &message, false)
            }
            ResetError::Locked => reset_closed(org, RESET_LOCKED),
            ResetError::Expired => reset_closed(org, RESET_EXPIRED),
            ResetError::Invalid(e) | ResetError::Other(e) => {
                self.again(org, Kind::of(&e), &form_message(&e), true)
            }
        }
    }
}

pub async fn reset_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    PageForm(form): PageForm<ResetForm>,
) -> PageResult {
    let session = form.session.as_deref().unwrap_or_default();
    let code = form.code.as_deref().unwrap_or_default();
    let password = form.password.as_deref().unwrap_or_default();
    plausible_session(&org, session)?;
    if code.trim().is_empty() || password.is_empty() {
        let message = "Enter the code and a new password.";
        return Err(form.again(&org, Kind::BadRequest, message, true));
    }
    reset::complete(&state.deps, &org, session, code, password, &client)
        .await
        .map_err(|e| form.refused(&org, e))?;
    let clear = pages::clear_cookie(state.deps.config(), reset_cookie_name(&state));
    let req = form.req.as_deref().filter(|r| !r.is_empty());
    let mut page = views::password_changed(&org, req);
    page.cookies.push(clear);
    Ok(page.into_response())
}
