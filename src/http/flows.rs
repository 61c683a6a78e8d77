//! Browser flows: the authorization endpoint, sign-in, consent and RP-initiated logout.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::oauth::{OrgFromPath, client_info};
use maud::{Markup, html};

use super::pages::{self, Page, see_other};
use crate::oauth::authorize::{self, AuthorizeParams, Refusal, Step, ValidRequest};
use crate::oauth::logout::{self, LogoutError, LogoutParams};
use crate::oauth::parse_scope;
use crate::orgs::Organization;
use crate::sessions::Session;
use crate::sessions::service::{self as sessions, ClientInfo, LoginError, SignIn};
use crate::time_now;
use crate::users::User;

fn page_error(org: &Organization, status: StatusCode, message: &str) -> Response {
    Page::error(&org.name, status, message).into_response()
}

/// The signed-in session, if any. A database failure is an error, not "signed out": treating it as
/// signed out would send users to re-enter passwords during an outage.
async fn current_session(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, crate::error::Error> {
    let Some(token) = pages::cookie_value(
        headers,
        &pages::session_cookie_name(&state.services.config, &org.slug),
    ) else {
        return Ok(None);
    };
    sessions::from_cookie(&state.services, org, &token).await
}

fn unavailable(org: &Organization) -> Response {
    let mut response = page_error(
        org,
        StatusCode::SERVICE_UNAVAILABLE,
        "We cannot check your sign-in right now. Please try again in a moment.",
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    response
}

/// A step that failed on our side: a 503 page with `Retry-After` when the database cannot serve now (the
/// user can simply retry), otherwise a logged 500.
fn failed(org: &Organization, what: &str, e: &crate::error::Error) -> Response {
    if e.retry_later() {
        tracing::warn!(error = %e, "{what}: try again later");
        return try_again_later(org);
    }
    tracing::error!(error = %e, "{what} failed");
    page_error(
        org,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side.",
    )
}

/// [`failed`] for a step whose error is already an OAuth error.
fn failed_oauth(org: &Organization, what: &str, e: &crate::oauth::OAuthError) -> Response {
    if e.retry_later() {
        tracing::warn!(error = %e.description, "{what}: try again later");
        return try_again_later(org);
    }
    tracing::error!(error = %e.description, "{what} failed");
    page_error(
        org,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Please try again.",
    )
}

fn try_again_later(org: &Organization) -> Response {
    let mut response = page_error(
        org,
        StatusCode::SERVICE_UNAVAILABLE,
        "We cannot complete this right now. Please try again in a moment.",
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    response
}

fn refusal_response(state: &AppState, org: &Organization, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(message) => page_error(org, StatusCode::BAD_REQUEST, &message),
        Refusal::Redirect {
            redirect_uri,
            state: s,
            error,
            description,
        } => {
            let issuer = state.provider.issuer(org);
            see_other(
                &authorize::error_redirect(
                    &issuer,
                    &redirect_uri,
                    s.as_deref(),
                    error,
                    &description,
                ),
                vec![],
            )
        }
        Refusal::Internal(e) => failed_oauth(org, "authorization", &e),
    }
}

/// Runs the decision for a validated request: sign in, consent, or issue the code.
#[allow(clippy::too_many_arguments)]
async fn proceed(
    state: &AppState,
    org: &Organization,
    params: &AuthorizeParams,
    req: &ValidRequest,
    pending_id: Option<&str>,
    resumed_from: Option<i64>,
    consent_just_given: bool,
    headers: &HeaderMap,
    client: &ClientInfo,
) -> Response {
    let provider = &state.provider;
    let Ok(session) = current_session(state, org, headers).await else {
        return unavailable(org);
    };
    let consented = match &session {
        Some((_, user)) => match provider
            .services
            .db
            .tenant(&org.id)
            .consent_scope(&user.id, &req.app.id)
            .await
        {
            Ok(scope) => scope,
            Err(_) => return unavailable(org),
        },
        None => None,
    };
    let mfa_required = match &session {
        Some((_, user)) => {
            match crate::mfa::required_by_policy(&provider.services, org, user).await {
                Ok(required) => required,
                Err(_) => return unavailable(org),
            }
        }
        None => false,
    };
    let step = authorize::next_step(
        req,
        session.as_ref().map(|(s, _)| s),
        mfa_required,
        consented.as_deref(),
        resumed_from,
        consent_just_given,
        time_now(),
    );
    let base = format!("/o/{}", org.slug);
    let pending = |state: &AppState| {
        let state = state.clone();
        let params = params.clone();
        let org = org.clone();
        let existing = pending_id.map(str::to_string);
        async move {
            match existing {
                Some(id) => Ok(id),
                None => authorize::save_pending(&state.provider, &org, &params).await,
            }
        }
    };
    match step {
        Step::Fail(error) => {
            let issuer = provider.issuer(org);
            let description = match error {
                "login_required" => "the user must sign in",
                "interaction_required" => "the user must prove a second factor",
                _ => "the user must consent",
            };
            see_other(
                &authorize::error_redirect(
                    &issuer,
                    &req.redirect_uri,
                    req.state.as_deref(),
                    error,
                    description,
                ),
                vec![],
            )
        }
        Step::Login => match pending(state).await {
            Ok(id) => see_other(&format!("{base}/login?req={id}"), vec![]),
            Err(e) => failed_oauth(org, "saving the authorization request", &e),
        },
        Step::SecondFactor => {
            let (session, user) = session.expect("SecondFactor implies a session");
            match pending(state).await {
                Ok(id) => {
                    let after = format!("{base}/authorize/resume?req={id}");
                    super::mfa::step_up(state, org, &session, &user, &after).await
                }
                Err(e) => failed_oauth(org, "saving the authorization request", &e),
            }
        }
        Step::Consent => match pending(state).await {
            Ok(id) => see_other(&format!("{base}/consent?req={id}"), vec![]),
            Err(e) => failed_oauth(org, "saving the authorization request", &e),
        },
        Step::Issue => {
            let (session, user) = session.expect("Issue implies a session");
            if let Some(id) = pending_id {
                match authorize::finish_pending(provider, org, id).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return page_error(
                            org,
                            StatusCode::BAD_REQUEST,
                            "This sign-in request was already completed.",
                        );
                    }
                    Err(e) => return failed_oauth(org, "finishing the authorization request", &e),
                }
            }
            match authorize::issue_code(provider, org, req, &session, &user, client).await {
                Ok(location) => see_other(&location, vec![]),
                Err(e) => failed_oauth(org, "issuing the code", &e),
            }
        }
    }
}

pub async fn authorize(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<AuthorizeParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return page_error(
            &org,
            StatusCode::BAD_REQUEST,
            "The authorization request is malformed (a parameter is repeated or invalid).",
        );
    };
    let req = match authorize::validate(&state.provider, &org, &params).await {
        Ok(req) => req,
        Err(refusal) => return refusal_response(&state, &org, refusal),
    };
    proceed(
        &state,
        &org,
        &params,
        &req,
        None,
        None,
        false,
        &headers,
        &client_info(&addr, &headers),
    )
    .await
}

/// `POST /authorize` (OpenID Connect Core §3.1.2.1): the same request, form-encoded. It answers with a
/// 303 to the same request as a GET, so everything after behaves exactly as for a GET, and the browser
/// sends its session cookie (SameSite=Lax cookies are not sent on a cross-site POST, but are on the
/// top-level GET that follows).
pub async fn authorize_post(
    OrgFromPath(org): OrgFromPath,
    form: Result<axum::Form<AuthorizeParams>, axum::extract::rejection::FormRejection>,
) -> Response {
    let malformed = || {
        page_error(
            &org,
            StatusCode::BAD_REQUEST,
            "The authorization request is malformed (a parameter is repeated or invalid).",
        )
    };
    let Ok(axum::Form(params)) = form else {
        return malformed();
    };
    match serde_urlencoded::to_string(&params) {
        Ok(query) => see_other(&format!("/o/{}/authorize?{query}", org.slug), vec![]),
        Err(_) => malformed(),
    }
}

#[derive(Debug, Deserialize)]
pub struct PendingQuery {
    req: Option<String>,
}

/// Loads and re-validates a stored request.
async fn load_request(
    state: &AppState,
    org: &Organization,
    id: Option<&str>,
) -> Result<(AuthorizeParams, ValidRequest, i64), Response> {
    let expired = || {
        page_error(
            org,
            StatusCode::BAD_REQUEST,
            "This sign-in request has expired or was already used. Start again from the application.",
        )
    };
    let id = id.filter(|s| !s.is_empty()).ok_or_else(expired)?;
    let (params, created_at) = match authorize::load_pending(&state.provider, org, id).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(failed_oauth(org, "loading the authorization request", &e)),
    };
    match authorize::validate(&state.provider, org, &params).await {
        Ok(req) => Ok((params, req, created_at)),
        Err(refusal) => Err(refusal_response(state, org, refusal)),
    }
}

pub async fn resume(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<PendingQuery>,
) -> Response {
    let (params, req, created_at) = match load_request(&state, &org, query.req.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    proceed(
        &state,
        &org,
        &params,
        &req,
        query.req.as_deref(),
        Some(created_at),
        false,
        &headers,
        &client_info(&addr, &headers),
    )
    .await
}

/// Where a sign-in continues: a pending authorization request, or a page of ours (the account page).
enum After {
    Request(String),
    Page(Option<String>),
}

impl After {
    fn hidden_field(&self) -> Markup {
        match self {
            After::Request(id) => pages::hidden("req", id),
            After::Page(Some(to)) => pages::hidden("return_to", to),
            After::Page(None) => html! {},
        }
    }

    fn req(&self) -> Option<&str> {
        match self {
            After::Request(id) => Some(id),
            After::Page(_) => None,
        }
    }
}

fn login_page(
    org: &Organization,
    after: &After,
    csrf: &str,
    email: &str,
    error: Option<&str>,
    targets: Vec<String>,
    passkeys: bool,
) -> Page {
    let req_query = after
        .req()
        .map(|r| {
            format!(
                "?req={}",
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    let body = html! {
        (pages::error_banner(error))
        form method="post" action={ "/o/" (org.slug) "/login" } {
            (after.hidden_field())
            (pages::hidden("csrf", csrf))
            label for="email" { "Email" }
            input id="email" name="email" type="email" autocomplete="username" required autofocus value=(email);
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        @if passkeys {
            (super::mfa::sign_in_form(org, csrf, after.hidden_field()))
        }
        p.muted.links {
            a href={ "/o/" (org.slug) "/forgot-password" (req_query) } { "Forgot your password?" }
            @if org.settings.self_registration {
                " · "
                a href={ "/o/" (org.slug) "/signup" (req_query) } { "Create an account" }
            }
        }
    };
    let mut page = Page::new(&org.name, "Sign in", body);
    page.form_targets = targets;
    page
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    req: Option<String>,
    return_to: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let passkeys = state.services.webauthn.is_some();
    let (csrf, csrf_cookie) = pages::csrf_token(&state.services.config, &headers);
    let mut page = match query.req.as_deref().filter(|r| !r.is_empty()) {
        Some(req_id) => {
            let (_, req, _) = match load_request(&state, &org, Some(req_id)).await {
                Ok(found) => found,
                Err(r) => return r,
            };
            let hint = req.login_hint.clone().unwrap_or_default();
            let targets = pages::csp_source(&req.redirect_uri).into_iter().collect();
            login_page(
                &org,
                &After::Request(req_id.to_string()),
                &csrf,
                &hint,
                None,
                targets,
                passkeys,
            )
        }
        None => {
            let after = After::Page(pages::safe_return_to(&org.slug, query.return_to.as_deref()));
            login_page(&org, &after, &csrf, "", None, vec![], passkeys)
        }
    };
    page.cookies.extend(csrf_cookie);
    page.into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    req: Option<String>,
    return_to: Option<String>,
    csrf: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let passkeys = state.services.webauthn.is_some();
    let config = state.services.config.clone();
    let Ok(axum::Form(form)) = form else {
        return page_error(
            &org,
            StatusCode::BAD_REQUEST,
            "The sign-in form was malformed.",
        );
    };
    if !pages::same_origin(&config, &headers)
        || !pages::csrf_ok(&config, &headers, form.csrf.as_deref().unwrap_or_default())
    {
        return page_error(
            &org,
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        );
    }
    let (after, targets): (After, Vec<String>) = match form.req.clone().filter(|r| !r.is_empty()) {
        Some(req_id) => {
            let (_, req, _) = match load_request(&state, &org, Some(&req_id)).await {
                Ok(found) => found,
                Err(r) => return r,
            };
            (
                After::Request(req_id),
                pages::csp_source(&req.redirect_uri).into_iter().collect(),
            )
        }
        None => (
            After::Page(pages::safe_return_to(&org.slug, form.return_to.as_deref())),
            vec![],
        ),
    };
    let email = form.email.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let csrf = form.csrf.unwrap_or_default();
    if email.trim().is_empty() || password.is_empty() {
        return login_page(
            &org,
            &after,
            &csrf,
            &email,
            Some("Enter your email and password."),
            targets,
            passkeys,
        )
        .status(StatusCode::BAD_REQUEST)
        .into_response();
    }
    let client = client_info(&addr, &headers);
    let location = match &after {
        After::Request(req_id) => {
            format!("/o/{}/authorize/resume?req={req_id}", org.slug)
        }
        After::Page(Some(to)) => to.clone(),
        After::Page(None) => format!("/o/{}/account", org.slug),
    };
    match sessions::password_login(&state.services, &org, &email, &password, &location, &client)
        .await
    {
        Ok(SignIn::Session(_, token)) => {
            // A new session id at every sign-in: nothing set before login survives it (no fixation).
            let cookie = pages::set_cookie(
                &config,
                &pages::session_cookie_name(&config, &org.slug),
                &token,
                Some(org.settings.session_absolute_lifetime_secs as i64),
                "Lax",
            );
            see_other(&location, vec![cookie])
        }
        Ok(SignIn::SecondFactor(challenge)) => super::mfa::to_challenge(&config, &org, &challenge),
        Err(LoginError::InvalidCredentials) => login_page(
            &org,
            &after,
            &csrf,
            &email,
            Some("Incorrect email or password."),
            targets,
            passkeys,
        )
        .status(StatusCode::UNAUTHORIZED)
        .into_response(),
        Err(LoginError::EmailNotVerified) => {
            let mut page = login_page(
                &org,
                &after,
                &csrf,
                &email,
                Some("Confirm your email address first: open the link we emailed you."),
                targets,
                passkeys,
            )
            .status(StatusCode::FORBIDDEN);
            let mut resend = format!(
                "/o/{}/verify-email/resend?email={}",
                org.slug,
                url::form_urlencoded::byte_serialize(email.trim().as_bytes()).collect::<String>()
            );
            if let Some(req) = after.req() {
                resend.push_str("&req=");
                resend.extend(url::form_urlencoded::byte_serialize(req.as_bytes()));
            }
            page.body = html! {
                (page.body)
                p.muted { a href=(resend) { "Send the link again" } }
            };
            page.into_response()
        }
        Err(LoginError::RateLimited(limited)) => {
            let mut response = login_page(
                &org,
                &after,
                &csrf,
                &email,
                Some("Too many sign-in attempts. Please wait a few minutes and try again."),
                targets,
                passkeys,
            )
            .status(StatusCode::TOO_MANY_REQUESTS)
            .into_response();
            super::rate_limit_headers(
                &mut response,
                &limited.decision,
                limited.policy,
                limited.window,
            );
            response
        }
        Err(LoginError::Busy) => {
            let mut response = page_error(
                &org,
                StatusCode::SERVICE_UNAVAILABLE,
                "We are busy right now. Please try again in a moment.",
            );
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("2"),
            );
            response
        }
        Err(LoginError::Other(e)) => failed(&org, "login", &e),
    }
}

fn scope_description(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are",
        "profile" => "See your name",
        "email" => "See your email address",
        "offline_access" => "Stay signed in to it when you are away",
        crate::oauth::scopes::SESSIONS => "See where you are signed in and sign you out there",
        _ => "Other access",
    }
}

pub async fn consent_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<PendingQuery>,
) -> Response {
    let req_id = query.req.clone().unwrap_or_default();
    let (_, req, _) = match load_request(&state, &org, Some(&req_id)).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Ok(session) = current_session(&state, &org, &headers).await else {
        return unavailable(&org);
    };
    let Some((_, user)) = session else {
        return see_other(&format!("/o/{}/login?req={req_id}", org.slug), vec![]);
    };
    let (csrf, csrf_cookie) = pages::csrf_token(&state.services.config, &headers);
    let scopes = parse_scope(&req.scope);
    let body = html! {
        p { strong { (req.app.name) } " wants to:" }
        ul.scopes {
            @for scope in &scopes {
                li { (scope_description(scope)) }
            }
        }
        p.muted { "Signed in as " (user.email) "." }
        form method="post" action={ "/o/" (org.slug) "/consent" } {
            (pages::hidden("req", &req_id))
            (pages::hidden("csrf", &csrf))
            button type="submit" name="decision" value="allow" { "Allow" }
            button.secondary type="submit" name="decision" value="deny" { "Deny" }
        }
    };
    let mut page = Page::new(&org.name, "Allow access?", body);
    page.form_targets = pages::csp_source(&req.redirect_uri).into_iter().collect();
    page.cookies.extend(csrf_cookie);
    page.into_response()
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    req: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

pub async fn consent_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<ConsentForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let config = state.services.config.clone();
    let Ok(axum::Form(form)) = form else {
        return page_error(
            &org,
            StatusCode::BAD_REQUEST,
            "The consent form was malformed.",
        );
    };
    if !pages::same_origin(&config, &headers)
        || !pages::csrf_ok(&config, &headers, form.csrf.as_deref().unwrap_or_default())
    {
        return page_error(
            &org,
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        );
    }
    let req_id = form.req.unwrap_or_default();
    let (params, req, created_at) = match load_request(&state, &org, Some(&req_id)).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Ok(session) = current_session(&state, &org, &headers).await else {
        return unavailable(&org);
    };
    let Some((_, user)) = session else {
        return see_other(&format!("/o/{}/login?req={req_id}", org.slug), vec![]);
    };
    let client = client_info(&addr, &headers);
    match form.decision.as_deref() {
        Some("allow") => {
            if let Err(e) =
                authorize::record_consent(&state.provider, &org, &req, &user, &client).await
            {
                return failed_oauth(&org, "recording consent", &e);
            }
            proceed(
                &state,
                &org,
                &params,
                &req,
                Some(&req_id),
                Some(created_at),
                true,
                &headers,
                &client,
            )
            .await
        }
        Some("deny") => {
            let _ = authorize::finish_pending(&state.provider, &org, &req_id).await;
            let issuer = state.provider.issuer(&org);
            see_other(
                &authorize::error_redirect(
                    &issuer,
                    &req.redirect_uri,
                    req.state.as_deref(),
                    "access_denied",
                    "the user denied access",
                ),
                vec![],
            )
        }
        _ => page_error(&org, StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
}

/// RP-initiated logout: the protocol is `oauth::logout`; this reads the request, asks for confirmation
/// when needed, and clears the session cookie.
pub async fn logout(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: axum::http::Method,
    headers: HeaderMap,
    Query(query): Query<LogoutParams>,
    body: axum::body::Bytes,
) -> Response {
    let is_post = method == axum::http::Method::POST;
    let params = match is_post {
        true => serde_urlencoded::from_bytes::<LogoutParams>(&body).ok(),
        false => Some(query),
    };
    let Some(params) = params else {
        let malformed = "The sign-out request was malformed.";
        return page_error(&org, StatusCode::BAD_REQUEST, malformed);
    };
    let Ok(session) = current_session(&state, &org, &headers).await else {
        return unavailable(&org);
    };
    let signed_in = session.as_ref().map(|(s, user)| logout::SignedIn {
        user_id: &user.id,
        session_id: &s.public_id,
    });
    let plan = match logout::check(&state.provider, &org, &params, signed_in, time_now()).await {
        Ok(plan) => plan,
        Err(LogoutError::Failed(e)) => return failed(&org, "checking the logout hint", &e),
        Err(refused) => return page_error(&org, StatusCode::BAD_REQUEST, refused.message()),
    };
    let config = &state.services.config;
    let cookie_name = pages::session_cookie_name(config, &org.slug);
    let session_token = pages::cookie_value(&headers, &cookie_name);
    let confirmed = is_post && logout_confirmed(config, &headers, &params);
    if plan.needs_confirmation(session_token.is_some(), confirmed) {
        return logout_confirmation(&state, &org, &headers, &plan);
    }
    if let Some(token) = session_token
        && let Err(e) =
            logout::sign_out(&state.provider, &org, &token, &client_info(&addr, &headers)).await
    {
        return failed(&org, "logout", &e);
    }
    signed_out(&org, &plan, pages::clear_cookie(config, &cookie_name))
}

/// The user confirmed on our own form: same origin, with its CSRF token.
fn logout_confirmed(
    config: &crate::config::Config,
    headers: &HeaderMap,
    params: &LogoutParams,
) -> bool {
    params.confirm.as_deref() == Some("yes")
        && pages::same_origin(config, headers)
        && pages::csrf_ok(config, headers, params.csrf.as_deref().unwrap_or_default())
}

/// Signed out: back to the client's registered URI, or a page saying so.
fn signed_out(org: &Organization, plan: &logout::Logout, clear: String) -> Response {
    match plan.redirect_location() {
        Some(location) => see_other(&location, vec![clear]),
        None => {
            let mut page = Page::new(
                &org.name,
                "Signed out",
                html! { p { "You are signed out." } },
            );
            page.cookies.push(clear);
            page.into_response()
        }
    }
}

/// "Do you want to sign out?": a form that posts the checked request back with a CSRF token.
fn logout_confirmation(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    plan: &logout::Logout,
) -> Response {
    let (csrf, csrf_cookie) = pages::csrf_token(&state.services.config, headers);
    let optional = |name: &str, value: &Option<String>| match value {
        Some(v) => pages::hidden(name, v),
        None => html! {},
    };
    let body = html! {
        p { "Do you want to sign out of " (org.name) "?" }
        form method="post" action={ "/o/" (org.slug) "/logout" } {
            (pages::hidden("csrf", &csrf))
            (pages::hidden("confirm", "yes"))
            (optional("client_id", &plan.client_id))
            (optional("post_logout_redirect_uri", &plan.redirect))
            (optional("state", &plan.state))
            button type="submit" { "Sign out" }
        }
    };
    let mut page = Page::new(&org.name, "Sign out", body);
    page.form_targets = plan
        .redirect
        .as_deref()
        .and_then(pages::csp_source)
        .into_iter()
        .collect();
    page.cookies.extend(csrf_cookie);
    page.into_response()
}
