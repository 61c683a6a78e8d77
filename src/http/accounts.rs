//! Self-service pages for people who are not signed in: sign-up, email verification (and resending the
//! link), forgot password and reset password. Each handler checks the form (CSRF + Origin), calls
//! `accounts::*` and renders the outcome; answers that could reveal whether an address is registered are
//! the same either way.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::oauth::{OrgFromPath, client_info};
use maud::{Markup, html};

use super::pages::{self, Page, error_banner, hidden, see_other};
use crate::accounts::reset::{self, ResetError};
use crate::accounts::{signup, verification};
use crate::error::Error;
use crate::orgs::Organization;

type FormResult<T> = Result<axum::Form<T>, axum::extract::rejection::FormRejection>;

/// Checks a posted form: well-formed, from our own pages (Origin), with the CSRF token of this browser.
/// The error is the page to answer with, returned once per request, so its size does not matter.
#[allow(clippy::result_large_err)]
fn checked_form<T>(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    form: FormResult<T>,
    csrf: impl Fn(&T) -> Option<&str>,
) -> Result<T, Response> {
    let Ok(axum::Form(form)) = form else {
        return Err(Page::error(
            &org.name,
            StatusCode::BAD_REQUEST,
            "The form was malformed.",
        )
        .into_response());
    };
    let config = &state.services.config;
    if !pages::same_origin(config, headers)
        || !pages::csrf_ok(config, headers, csrf(&form).unwrap_or_default())
    {
        return Err(Page::error(
            &org.name,
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        )
        .into_response());
    }
    Ok(form)
}

/// A page whose form needs this browser's CSRF token: sets the cookie when it is new.
fn with_csrf(state: &AppState, headers: &HeaderMap, build: impl FnOnce(&str) -> Page) -> Response {
    let (csrf, cookie) = pages::csrf_token(&state.services.config, headers);
    let mut page = build(&csrf);
    page.cookies.extend(cookie);
    page.into_response()
}

/// The message for a domain error on a form; 5xx causes are logged, not shown.
fn form_error(e: &Error) -> (StatusCode, String) {
    match e {
        Error::Invalid { field, message } => {
            let label = match field.as_str() {
                "email" => "Email",
                "password" | "new_password" => "Password",
                "name" => "Name",
                other => other,
            };
            (StatusCode::BAD_REQUEST, format!("{label} {message}."))
        }
        Error::RateLimited(limited) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many requests. Please try again in {} minutes.",
                limited.decision.reset_after.as_secs().div_ceil(60).max(1)
            ),
        ),
        Error::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "We are busy right now. Please try again in a moment.".into(),
        ),
        Error::Unavailable(cause) => {
            tracing::warn!(error = %cause, "account request: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "We cannot take this request right now. Please try again in a moment.".into(),
            )
        }
        other => {
            tracing::error!(error = %other, "account request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.".into(),
            )
        }
    }
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

/// Adds `Retry-After` (and the rate-limit headers) to a form page answering a refused request.
fn with_limit_headers(mut response: Response, e: &Error) -> Response {
    if let Error::RateLimited(limited) = e {
        super::rate_limit_headers(
            &mut response,
            &limited.decision,
            limited.policy,
            limited.window,
        );
    }
    response
}

fn retry_later(mut response: Response, status: StatusCode) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("2"),
        );
    }
    response
}

/// `?req=` ties these pages to a pending authorization request, so the user ends up back in the app.
#[derive(Debug, Default, Deserialize)]
pub struct ReqQuery {
    req: Option<String>,
}

fn req_suffix(req: Option<&str>) -> String {
    match req.filter(|r| !r.is_empty()) {
        Some(r) => format!("?req={}", urlencode(r)),
        None => String::new(),
    }
}

/// A labelled text-like input; maud escapes the value.
fn input(label: &str, name: &str, kind: &str, value: &str, autocomplete: &str) -> Markup {
    html! {
        label for=(name) { (label) }
        input id=(name) name=(name) type=(kind) value=(value) autocomplete=(autocomplete) required autofocus;
    }
}

fn password_rules(org: &Organization) -> Markup {
    html! { p.muted id="password-rules" { (crate::accounts::describe_password_rules(org)) } }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn sign_in_href(org: &Organization, req: Option<&str>) -> String {
    match req.filter(|r| !r.is_empty()) {
        Some(r) => format!("/o/{}/login?req={}", org.slug, urlencode(r)),
        None => format!("/o/{}/account", org.slug),
    }
}

// ---- Sign-up -------------------------------------------------------------------------------------

struct SignUpView<'a> {
    name: &'a str,
    email: &'a str,
    req: Option<&'a str>,
    error: Option<&'a str>,
}

fn signup_page(org: &Organization, csrf: &str, view: SignUpView<'_>) -> Page {
    let body = html! {
        (error_banner(view.error))
        form method="post" action={ "/o/" (org.slug) "/signup" } {
            (hidden("csrf", csrf))
            @if let Some(req) = view.req { (hidden("req", req)) }
            label for="name" { "Name (optional)" }
            input id="name" name="name" type="text" value=(view.name) autocomplete="name" maxlength="100";
            label for="email" { "Email" }
            input id="email" name="email" type="email" value=(view.email) autocomplete="email" required autofocus;
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="new-password" required
                aria-describedby="password-rules";
            (password_rules(org))
            button type="submit" { "Create account" }
        }
        p.muted.links { "Already have an account? " a href=(sign_in_href(org, view.req)) { "Sign in" } }
    };
    Page::new(&org.name, "Create your account", body)
}

fn registration_closed(org: &Organization) -> Response {
    Page::error(
        &org.name,
        StatusCode::NOT_FOUND,
        "This page does not exist.",
    )
    .into_response()
}

pub async fn signup_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<ReqQuery>,
) -> Response {
    if !org.settings.self_registration {
        return registration_closed(&org);
    }
    with_csrf(&state, &headers, |csrf| {
        signup_page(
            &org,
            csrf,
            SignUpView {
                name: "",
                email: "",
                req: query.req.as_deref(),
                error: None,
            },
        )
    })
}

#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    csrf: Option<String>,
    req: Option<String>,
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

pub async fn signup_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: FormResult<SignUpForm>,
) -> Response {
    if !org.settings.self_registration {
        return registration_closed(&org);
    }
    let form = match checked_form(&state, &org, &headers, form, |f| f.csrf.as_deref()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = form.name.unwrap_or_default();
    let email = form.email.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let req = form.req.filter(|r| !r.is_empty());
    let csrf = form.csrf.unwrap_or_default();
    let input = signup::SignUp {
        email: &email,
        password: &password,
        name: Some(&name),
        continue_request: req.as_deref(),
    };
    match signup::sign_up(&state.services, &org, input, &client_info(&addr, &headers)).await {
        Ok(()) => {
            let body = html! {
                p {
                    "We sent a message to " strong { (email.trim()) }
                    ". Open the link in it within 30 minutes to finish creating your account."
                }
                p.muted {
                    "No message? Check your spam folder, or "
                    a href={ "/o/" (org.slug) "/verify-email/resend" } { "send the link again" } "."
                }
            };
            Page::new(&org.name, "Check your email", body).into_response()
        }
        Err(e) => {
            let (status, message) = form_error(&e);
            let page = signup_page(
                &org,
                &csrf,
                SignUpView {
                    name: &name,
                    email: &email,
                    req: req.as_deref(),
                    error: Some(&message),
                },
            )
            .status(status);
            with_limit_headers(retry_later(page.into_response(), status), &e)
        }
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

fn link_expired(org: &Organization) -> Response {
    let body = html! {
        p { "This link has expired or was already used." }
        p {
            a href={ "/o/" (org.slug) "/verify-email/resend" } { "Send a new link" }
            " or "
            a href={ "/o/" (org.slug) "/account" } { "sign in" }
            " if you already confirmed your address."
        }
    };
    Page::new(&org.name, "Link expired", body)
        .status(StatusCode::BAD_REQUEST)
        .into_response()
}

fn confirm_email_page(org: &Organization, csrf: &str, token: &str, email: &str) -> Page {
    let body = html! {
        p { "Confirm that " strong { (email) } " is your email address." }
        form method="post" action={ "/o/" (org.slug) "/verify-email" } {
            (hidden("csrf", csrf))
            (hidden("token", token))
            button type="submit" { "Confirm my email address" }
        }
        p.muted { "If you did not create an account, do not confirm: close this page and nothing happens." }
    };
    Page::new(&org.name, "Confirm your email", body)
}

/// The emailed link: a page with a button, never the verification itself. Mail scanners and link
/// previews fetch links by themselves; the click (a POST with this browser's CSRF token) is the person.
pub async fn verify_email(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    if !plausible_token(&token) {
        return link_expired(&org);
    }
    match verification::pending(&state.services, &org, &token).await {
        Ok(Some(user)) => with_csrf(&state, &headers, |csrf| {
            confirm_email_page(&org, csrf, &token, &user.email)
        }),
        Ok(None) => link_expired(&org),
        Err(e) => {
            let (status, message) = form_error(&e);
            retry_later(
                Page::error(&org.name, status, &message).into_response(),
                status,
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct VerifyEmailForm {
    csrf: Option<String>,
    token: Option<String>,
}

pub async fn verify_email_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: FormResult<VerifyEmailForm>,
) -> Response {
    let form = match checked_form(&state, &org, &headers, form, |f| f.csrf.as_deref()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let token = form.token.unwrap_or_default();
    let outcome = if plausible_token(&token) {
        verification::verify(&state.services, &org, &token, &client_info(&addr, &headers)).await
    } else {
        Ok(None)
    };
    match outcome {
        Ok(Some(verified)) => {
            // Continue the application's sign-in if its request is still open; else the account page.
            let pending = app_of_request(&state, &org, verified.continue_request.as_deref())
                .await
                .and(verified.continue_request.as_deref());
            let next = sign_in_href(&org, pending);
            let body = html! {
                p { "Thank you. " strong { (verified.user.email) } " is confirmed." }
                p { a.button href=(next) { "Continue to sign in" } }
            };
            Page::new(&org.name, "Email confirmed", body).into_response()
        }
        Ok(None) => link_expired(&org),
        Err(e) => {
            let (status, message) = form_error(&e);
            retry_later(
                Page::error(&org.name, status, &message).into_response(),
                status,
            )
        }
    }
}

fn resend_page(
    org: &Organization,
    csrf: &str,
    email: &str,
    req: Option<&str>,
    error: Option<&str>,
) -> Page {
    let body = html! {
        (error_banner(error))
        p { "Enter your email address and we will send you a new link to confirm it." }
        form method="post" action={ "/o/" (org.slug) "/verify-email/resend" } {
            (hidden("csrf", csrf))
            @if let Some(req) = req { (hidden("req", req)) }
            (input("Email", "email", "email", email, "email"))
            button type="submit" { "Send link" }
        }
    };
    Page::new(&org.name, "Confirm your email", body)
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailQuery {
    email: Option<String>,
    req: Option<String>,
}

pub async fn resend_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<EmailQuery>,
) -> Response {
    with_csrf(&state, &headers, |csrf| {
        resend_page(
            &org,
            csrf,
            query.email.as_deref().unwrap_or_default(),
            query.req.as_deref().filter(|r| !r.is_empty()),
            None,
        )
    })
}

#[derive(Debug, Deserialize)]
pub struct EmailForm {
    csrf: Option<String>,
    email: Option<String>,
    req: Option<String>,
}

pub async fn resend_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: FormResult<EmailForm>,
) -> Response {
    let form = match checked_form(&state, &org, &headers, form, |f| f.csrf.as_deref()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let email = form.email.unwrap_or_default();
    let req = form.req.filter(|r| !r.is_empty());
    let app = app_of_request(&state, &org, req.as_deref()).await;
    match verification::resend(
        &state.services,
        &org,
        &email,
        req.as_deref().filter(|_| app.is_some()),
        app.as_deref(),
        &client_info(&addr, &headers),
    )
    .await
    {
        Ok(()) => {
            let body = html! {
                p {
                    "If " strong { (email.trim()) }
                    " belongs to an account waiting for confirmation, we sent it a new link. It works for 30 minutes."
                }
            };
            Page::new(&org.name, "Check your email", body).into_response()
        }
        Err(e) => {
            let (status, message) = form_error(&e);
            let page = resend_page(
                &org,
                &form.csrf.unwrap_or_default(),
                &email,
                req.as_deref(),
                Some(&message),
            )
            .status(status);
            with_limit_headers(retry_later(page.into_response(), status), &e)
        }
    }
}

// ---- Forgot and reset password -------------------------------------------------------------------

/// The reset session id of the browser that asked for it. Strict, so no other site's request carries it.
fn reset_cookie_name(state: &AppState) -> &'static str {
    if state.services.config.is_https() {
        "__Host-latchkey-reset"
    } else {
        "latchkey-reset"
    }
}

fn forgot_page(
    org: &Organization,
    csrf: &str,
    email: &str,
    req: Option<&str>,
    error: Option<&str>,
) -> Page {
    let body = html! {
        (error_banner(error))
        p { "Enter the email address of your account. We will send you a code and a link to choose a new password." }
        form method="post" action={ "/o/" (org.slug) "/forgot-password" } {
            (hidden("csrf", csrf))
            @if let Some(req) = req { (hidden("req", req)) }
            (input("Email", "email", "email", email, "email"))
            button type="submit" { "Send code" }
        }
        p.muted.links { a href=(sign_in_href(org, req)) { "Back to sign in" } }
    };
    Page::new(&org.name, "Reset your password", body)
}

pub async fn forgot_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<EmailQuery>,
) -> Response {
    with_csrf(&state, &headers, |csrf| {
        forgot_page(
            &org,
            csrf,
            query.email.as_deref().unwrap_or_default(),
            query.req.as_deref().filter(|r| !r.is_empty()),
            None,
        )
    })
}

pub async fn forgot_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: FormResult<EmailForm>,
) -> Response {
    let form = match checked_form(&state, &org, &headers, form, |f| f.csrf.as_deref()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let email = form.email.unwrap_or_default();
    let req = form.req.filter(|r| !r.is_empty());
    let app = app_of_request(&state, &org, req.as_deref()).await;
    match reset::request(
        &state.services,
        &org,
        &email,
        app.as_deref(),
        &client_info(&addr, &headers),
    )
    .await
    {
        Ok(session_id) => {
            let config = &state.services.config;
            let cookie = pages::set_cookie(
                config,
                reset_cookie_name(&state),
                &session_id,
                Some(reset::SESSION_TTL_SECS),
                "Strict",
            );
            see_other(
                &format!(
                    "/o/{}/reset-password{}",
                    org.slug,
                    req_suffix(req.as_deref())
                ),
                vec![cookie],
            )
        }
        Err(e) => {
            let (status, message) = form_error(&e);
            let page = forgot_page(
                &org,
                &form.csrf.unwrap_or_default(),
                &email,
                req.as_deref(),
                Some(&message),
            )
            .status(status);
            with_limit_headers(retry_later(page.into_response(), status), &e)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ResetQuery {
    session: Option<String>,
    code: Option<String>,
    req: Option<String>,
}

struct ResetView<'a> {
    session: &'a str,
    code: &'a str,
    req: Option<&'a str>,
    error: Option<&'a str>,
}

fn reset_page(org: &Organization, csrf: &str, view: ResetView<'_>) -> Page {
    let body = html! {
        (error_banner(view.error))
        p { "Enter the 6-digit code from the email we sent you and choose a new password." }
        form method="post" action={ "/o/" (org.slug) "/reset-password" } {
            (hidden("csrf", csrf))
            (hidden("session", view.session))
            @if let Some(req) = view.req { (hidden("req", req)) }
            label for="code" { "Code" }
            input id="code" name="code" type="text" value=(view.code) inputmode="numeric"
                autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus;
            label for="password" { "New password" }
            input id="password" name="password" type="password" autocomplete="new-password" required
                aria-describedby="password-rules";
            (password_rules(org))
            button type="submit" { "Set new password" }
        }
    };
    Page::new(&org.name, "Choose a new password", body)
}

fn reset_closed(org: &Organization, message: &str) -> Response {
    let body = html! {
        p { (message) }
        p { a href={ "/o/" (org.slug) "/forgot-password" } { "Request a new code" } }
    };
    Page::new(&org.name, "Reset your password", body)
        .status(StatusCode::BAD_REQUEST)
        .into_response()
}

const RESET_EXPIRED: &str = "This password reset has expired or was already used.";
const RESET_LOCKED: &str = "Too many wrong codes: this password reset is locked.";

pub async fn reset_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<ResetQuery>,
) -> Response {
    let session = query
        .session
        .filter(|s| !s.is_empty())
        .or_else(|| pages::cookie_value(&headers, reset_cookie_name(&state)))
        .unwrap_or_default();
    if session.is_empty() || session.len() > 64 {
        return reset_closed(&org, RESET_EXPIRED);
    }
    match reset::is_open(&state.services, &org, &session).await {
        Ok(true) => {}
        Ok(false) => return reset_closed(&org, RESET_EXPIRED),
        Err(e) => {
            let (status, message) = form_error(&e);
            return retry_later(
                Page::error(&org.name, status, &message).into_response(),
                status,
            );
        }
    }
    with_csrf(&state, &headers, |csrf| {
        reset_page(
            &org,
            csrf,
            ResetView {
                session: &session,
                code: query.code.as_deref().unwrap_or_default(),
                req: query.req.as_deref().filter(|r| !r.is_empty()),
                error: None,
            },
        )
    })
}

#[derive(Debug, Deserialize)]
pub struct ResetForm {
    csrf: Option<String>,
    session: Option<String>,
    code: Option<String>,
    password: Option<String>,
    req: Option<String>,
}

pub async fn reset_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: FormResult<ResetForm>,
) -> Response {
    let form = match checked_form(&state, &org, &headers, form, |f| f.csrf.as_deref()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let session = form.session.unwrap_or_default();
    let code = form.code.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let req = form.req.filter(|r| !r.is_empty());
    let csrf = form.csrf.unwrap_or_default();
    if session.is_empty() || session.len() > 64 {
        return reset_closed(&org, RESET_EXPIRED);
    }
    let again = |message: &str, status: StatusCode, keep_code: bool| {
        let page = reset_page(
            &org,
            &csrf,
            ResetView {
                session: &session,
                code: if keep_code { &code } else { "" },
                req: req.as_deref(),
                error: Some(message),
            },
        )
        .status(status);
        retry_later(page.into_response(), status)
    };
    if code.trim().is_empty() || password.is_empty() {
        return again(
            "Enter the code and a new password.",
            StatusCode::BAD_REQUEST,
            true,
        );
    }
    let client = client_info(&addr, &headers);
    match reset::complete(&state.services, &org, &session, &code, &password, &client).await {
        Ok(_) => {
            let clear = pages::clear_cookie(&state.services.config, reset_cookie_name(&state));
            let body = html! {
                p { "Your password is changed, and every device that was signed in has been signed out." }
                p { a.button href=(sign_in_href(&org, req.as_deref())) { "Sign in" } }
            };
            let mut page = Page::new(&org.name, "Password changed", body);
            page.cookies.push(clear);
            page.into_response()
        }
        Err(ResetError::WrongCode { attempts_left }) => again(
            &format!(
                "That code is not right. {attempts_left} {} left.",
                if attempts_left == 1 {
                    "attempt"
                } else {
                    "attempts"
                }
            ),
            StatusCode::BAD_REQUEST,
            false,
        ),
        Err(ResetError::Locked) => reset_closed(&org, RESET_LOCKED),
        Err(ResetError::Expired) => reset_closed(&org, RESET_EXPIRED),
        Err(ResetError::Invalid(e)) | Err(ResetError::Other(e)) => {
            let (status, message) = form_error(&e);
            again(&message, status, true)
        }
    }
}
