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
use super::pages::{self, Page, error_banner, escape, field, hidden, see_other};
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
        Error::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "We are busy right now. Please try again in a moment.".into(),
        ),
        other => {
            tracing::error!(error = %other, "account request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.".into(),
            )
        }
    }
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
        Some(r) => format!("?req={}", escape(&urlencode(r))),
        None => String::new(),
    }
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
    let body = format!(
        "{error}<form method=\"post\" action=\"/o/{slug}/signup\">{csrf}{req}\
         {name}{email}{password}\
         <p class=\"muted\" id=\"password-rules\">{rules}</p>\
         <button type=\"submit\">Create account</button></form>\
         <p class=\"muted links\">Already have an account? <a href=\"{signin}\">Sign in</a></p>",
        error = error_banner(view.error),
        slug = escape(&org.slug),
        csrf = hidden("csrf", csrf),
        req = view.req.map(|r| hidden("req", r)).unwrap_or_default(),
        name = field(
            "Name (optional)",
            "name",
            "text",
            view.name,
            "autocomplete=\"name\" maxlength=\"100\""
        ),
        email = field(
            "Email",
            "email",
            "email",
            view.email,
            "autocomplete=\"email\" required autofocus"
        ),
        password = field(
            "Password",
            "password",
            "password",
            "",
            "autocomplete=\"new-password\" required aria-describedby=\"password-rules\""
        ),
        rules = escape(&crate::accounts::describe_password_rules(org)),
        signin = escape(&sign_in_href(org, view.req)),
    );
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
            let body = format!(
                "<p>We sent a message to <strong>{email}</strong>. Open the link in it within 30 minutes to \
                 finish creating your account.</p>\
                 <p class=\"muted\">No message? Check your spam folder, or \
                 <a href=\"/o/{slug}/verify-email/resend\">send the link again</a>.</p>",
                email = escape(email.trim()),
                slug = escape(&org.slug),
            );
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
            retry_later(page.into_response(), status)
        }
    }
}

// ---- Email verification --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

pub async fn verify_email(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    let outcome = if token.is_empty() || token.len() > 64 {
        Ok(None)
    } else {
        verification::verify(&state.services, &org, &token, &client_info(&addr, &headers)).await
    };
    match outcome {
        Ok(Some(verified)) => {
            let next = sign_in_href(&org, verified.continue_request.as_deref());
            let body = format!(
                "<p>Thank you. <strong>{email}</strong> is confirmed.</p>\
                 <p><a class=\"button\" href=\"{next}\">Continue to sign in</a></p>",
                email = escape(&verified.user.email),
                next = escape(&next),
            );
            Page::new(&org.name, "Email confirmed", body).into_response()
        }
        Ok(None) => {
            let body = format!(
                "<p>This link has expired or was already used.</p>\
                 <p><a href=\"/o/{slug}/verify-email/resend\">Send a new link</a> or \
                 <a href=\"/o/{slug}/account\">sign in</a> if you already confirmed your address.</p>",
                slug = escape(&org.slug),
            );
            Page::new(&org.name, "Link expired", body)
                .status(StatusCode::BAD_REQUEST)
                .into_response()
        }
        Err(e) => {
            let (status, message) = form_error(&e);
            retry_later(
                Page::error(&org.name, status, &message).into_response(),
                status,
            )
        }
    }
}

fn resend_page(org: &Organization, csrf: &str, email: &str, error: Option<&str>) -> Page {
    let body = format!(
        "{error}<p>Enter your email address and we will send you a new link to confirm it.</p>\
         <form method=\"post\" action=\"/o/{slug}/verify-email/resend\">{csrf}{email}\
         <button type=\"submit\">Send link</button></form>",
        error = error_banner(error),
        slug = escape(&org.slug),
        csrf = hidden("csrf", csrf),
        email = field(
            "Email",
            "email",
            "email",
            email,
            "autocomplete=\"email\" required autofocus"
        ),
    );
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
        resend_page(&org, csrf, query.email.as_deref().unwrap_or_default(), None)
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
    match verification::resend(&state.services, &org, &email, &client_info(&addr, &headers)).await {
        Ok(()) => {
            let body = format!(
                "<p>If <strong>{email}</strong> belongs to an account waiting for confirmation, we sent it a \
                 new link. It works for 30 minutes.</p>",
                email = escape(email.trim()),
            );
            Page::new(&org.name, "Check your email", body).into_response()
        }
        Err(e) => {
            let (status, message) = form_error(&e);
            let page = resend_page(&org, &form.csrf.unwrap_or_default(), &email, Some(&message))
                .status(status);
            retry_later(page.into_response(), status)
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
    let body = format!(
        "{error}<p>Enter the email address of your account. We will send you a code and a link to choose a \
         new password.</p>\
         <form method=\"post\" action=\"/o/{slug}/forgot-password\">{csrf}{req}{email}\
         <button type=\"submit\">Send code</button></form>\
         <p class=\"muted links\"><a href=\"{signin}\">Back to sign in</a></p>",
        error = error_banner(error),
        slug = escape(&org.slug),
        csrf = hidden("csrf", csrf),
        req = req.map(|r| hidden("req", r)).unwrap_or_default(),
        email = field(
            "Email",
            "email",
            "email",
            email,
            "autocomplete=\"email\" required autofocus"
        ),
        signin = escape(&sign_in_href(org, req)),
    );
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
    match reset::request(&state.services, &org, &email, &client_info(&addr, &headers)).await {
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
            retry_later(page.into_response(), status)
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
    let body = format!(
        "{error}<p>Enter the 6-digit code from the email we sent you and choose a new password.</p>\
         <form method=\"post\" action=\"/o/{slug}/reset-password\">{csrf}{session}{req}{code}{password}\
         <p class=\"muted\" id=\"password-rules\">{rules}</p>\
         <button type=\"submit\">Set new password</button></form>",
        error = error_banner(view.error),
        slug = escape(&org.slug),
        csrf = hidden("csrf", csrf),
        session = hidden("session", view.session),
        req = view.req.map(|r| hidden("req", r)).unwrap_or_default(),
        code = field(
            "Code",
            "code",
            "text",
            view.code,
            "inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{6}\" maxlength=\"6\" required autofocus"
        ),
        password = field(
            "New password",
            "password",
            "password",
            "",
            "autocomplete=\"new-password\" required aria-describedby=\"password-rules\""
        ),
        rules = escape(&crate::accounts::describe_password_rules(org)),
    );
    Page::new(&org.name, "Choose a new password", body)
}

fn reset_closed(org: &Organization, message: &str) -> Response {
    let body = format!(
        "<p>{}</p><p><a href=\"/o/{slug}/forgot-password\">Request a new code</a></p>",
        escape(message),
        slug = escape(&org.slug),
    );
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
            let body = format!(
                "<p>Your password is changed, and every device that was signed in has been signed out.</p>\
                 <p><a class=\"button\" href=\"{next}\">Sign in</a></p>",
                next = escape(&sign_in_href(&org, req.as_deref())),
            );
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
