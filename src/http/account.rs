//! The signed-in account page (`{issuer}/account`: profile, password, active sessions, sign-out) and the
//! sessions API for applications (`{issuer}/api/me/sessions`, Bearer access token).
//!
//! Forms here carry a CSRF token derived from the session itself (see `pages::session_csrf`) and must
//! come from our own origin.

use crate::kernel::SessionId;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::oauth::{OrgFromPath, client_info, org_or_404};
use maud::html;

use super::pages::{self, Page, error_banner, hidden, see_other};
use super::problem::Problem;
use crate::accounts;
use crate::error::Error;
use crate::oauth::{introspect, scopes};
use crate::orgs::Organization;
use crate::sessions::Session;
use crate::sessions::service as sessions;
use crate::users::User;

/// The signed-in user of this browser: their session, and the cookie value it was found by.
pub(super) struct SignedIn {
    pub session: Session,
    pub user: User,
    pub token: String,
}

/// The signed-in user of this browser; `Err` is a page to answer with.
pub(super) async fn signed_in(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
) -> Result<SignedIn, Response> {
    let config = &state.services.config;
    let to_login = || {
        see_other(
            &format!(
                "/o/{slug}/login?return_to=/o/{slug}/account",
                slug = org.slug
            ),
            vec![],
        )
    };
    let Some(token) = pages::cookie_value(headers, &pages::session_cookie_name(config, &org.slug))
    else {
        return Err(to_login());
    };
    match sessions::from_cookie(&state.services, org, &token).await {
        Ok(Some((session, user))) => Ok(SignedIn {
            session,
            user,
            token,
        }),
        Ok(None) => Err(to_login()),
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            let mut response = Page::error(
                &org.name,
                StatusCode::SERVICE_UNAVAILABLE,
                "We cannot check your sign-in right now. Please try again in a moment.",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Err(response)
        }
    }
}

pub(super) fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| unix.to_string())
}

#[derive(Default)]
struct Notes<'a> {
    notice: Option<&'a str>,
    profile_error: Option<&'a str>,
    password_error: Option<&'a str>,
    name_value: Option<&'a str>,
}

fn account_page(
    org: &Organization,
    user: &User,
    current: &Session,
    list: &[Session],
    factors: super::mfa::FactorsView<'_>,
    csrf: &str,
    notes: Notes<'_>,
) -> Page {
    let slug = &org.slug;
    let name_value = notes
        .name_value
        .unwrap_or(user.name.as_deref().unwrap_or_default());
    let body = html! {
        @if let Some(notice) = notes.notice {
            p.notice role="status" { (notice) }
        }
        section aria-labelledby="profile-h" {
            h2 id="profile-h" { "Profile" }
            (error_banner(notes.profile_error))
            p.muted {
                (user.email) " · "
                @if user.email_verified { "confirmed" } @else { "not confirmed" }
            }
            form method="post" action={ "/o/" (slug) "/account/profile" } {
                (hidden("csrf", csrf))
                label for="name" { "Name" }
                input id="name" name="name" type="text" value=(name_value) autocomplete="name" maxlength="100";
                button type="submit" { "Save profile" }
            }
        }
        section aria-labelledby="password-h" {
            h2 id="password-h" { "Password" }
            (error_banner(notes.password_error))
            form method="post" action={ "/o/" (slug) "/account/password" } {
                (hidden("csrf", csrf))
                label for="current_password" { "Current password" }
                input id="current_password" name="current_password" type="password"
                    autocomplete="current-password" required;
                label for="new_password" { "New password" }
                input id="new_password" name="new_password" type="password" autocomplete="new-password"
                    required aria-describedby="password-rules";
                p.muted id="password-rules" {
                    (accounts::describe_password_rules(org)) " Other devices will be signed out."
                }
                button type="submit" { "Change password" }
            }
        }
        (super::mfa::account_section(org, user, factors, csrf))
        section aria-labelledby="sessions-h" {
            h2 id="sessions-h" { "Active sessions" }
            ul.sessions {
                @for s in list {
                    li.session {
                        div {
                            strong { (s.user_agent.as_deref().unwrap_or("Unknown browser")) }
                            br;
                            span.muted {
                                (s.ip.as_deref().unwrap_or("unknown address"))
                                " · signed in " (format_time(s.created_at))
                                " · last seen " (format_time(s.last_seen_at))
                            }
                        }
                        @if s.public_id == current.public_id {
                            span.badge { "This device" }
                        } @else {
                            form.inline method="post" action={ "/o/" (slug) "/account/sessions/revoke" } {
                                (hidden("csrf", csrf))
                                (hidden("session", &s.public_id))
                                button.secondary.small type="submit" { "Sign out" }
                            }
                        }
                    }
                }
            }
            @if list.len() > 1 {
                form method="post" action={ "/o/" (slug) "/account/sessions/revoke-others" } {
                    (hidden("csrf", csrf))
                    button.secondary type="submit" { "Sign out all other sessions" }
                }
            }
        }
        form method="post" action={ "/o/" (slug) "/account/signout" } {
            (hidden("csrf", csrf))
            button.secondary type="submit" { "Sign out" }
        }
    };
    Page::new(&org.name, "Your account", body)
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
}

fn done_notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "profile" => Some("Your profile is saved."),
        "password" => Some("Your password is changed. Your other devices were signed out."),
        "revoked" => Some("That session is signed out."),
        "revoked-others" => Some("All your other sessions are signed out."),
        "stepped-up" => Some("Verified. You can go ahead now."),
        "totp" => Some("Your authenticator app is set up."),
        "email-codes" => Some("Sign-in codes by email are on."),
        "factor-removed" => Some("That verification method is removed."),
        "passkey" => Some("Your passkey is added."),
        _ => None,
    }
}

async fn render(
    state: &AppState,
    org: &Organization,
    me: &SignedIn,
    notes: Notes<'_>,
    status: StatusCode,
) -> Response {
    let list = match sessions::list(&state.services, org, &me.user).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "listing sessions failed");
            return Page::error(
                &org.name,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            )
            .into_response();
        }
    };
    let factors = match crate::mfa::factors(&state.services, &me.user).await {
        Ok(f) => f,
        Err(e) => return unexpected(org, &e),
    };
    let csrf = pages::session_csrf(&state.services.secrets, &me.token);
    let factors = super::mfa::FactorsView {
        factors: &factors,
        passkeys_on: state.services.webauthn.is_some(),
    };
    account_page(org, &me.user, &me.session, &list, factors, &csrf, notes)
        .status(status)
        .into_response()
}

pub async fn account(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<AccountQuery>,
) -> Response {
    let me = match signed_in(&state, &org, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    // A session from before the organization required a second factor proves one (or enrols) first.
    match crate::mfa::required_by_policy(&state.services, &org, &me.user).await {
        Ok(true) if me.session.acr.as_deref() != Some(crate::oauth::ACR_MFA) => {
            let after = format!("/o/{}/account", org.slug);
            return super::mfa::step_up(&state, &org, &me.session, &me.user, &after).await;
        }
        Ok(_) => {}
        Err(e) => return unexpected(&org, &e),
    }
    let notes = Notes {
        notice: done_notice(query.done.as_deref()),
        ..Default::default()
    };
    render(&state, &org, &me, notes, StatusCode::OK).await
}

/// A posted account form: signed in, from our origin, with this session's CSRF token.
pub(super) async fn checked<T>(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    form: Result<axum::Form<T>, axum::extract::rejection::FormRejection>,
    csrf: impl Fn(&T) -> Option<&str>,
) -> Result<(T, SignedIn), Response> {
    let me = signed_in(state, org, headers).await?;
    let Ok(axum::Form(form)) = form else {
        return Err(Page::error(
            &org.name,
            StatusCode::BAD_REQUEST,
            "The form was malformed.",
        )
        .into_response());
    };
    let expected = pages::session_csrf(&state.services.secrets, &me.token);
    let presented = csrf(&form).unwrap_or_default();
    if !pages::same_origin(&state.services.config, headers)
        || !crate::crypto::constant_time_eq(expected.as_bytes(), presented.as_bytes())
    {
        return Err(Page::error(
            &org.name,
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        )
        .into_response());
    }
    Ok((form, me))
}

fn back(org: &Organization, done: &str, cookies: Vec<String>) -> Response {
    see_other(&format!("/o/{}/account?done={done}", org.slug), cookies)
}

pub(super) fn unexpected(org: &Organization, e: &Error) -> Response {
    let status = if e.retry_later() {
        tracing::warn!(error = %e, "account action deferred");
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        tracing::error!(error = %e, "account action failed");
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut response = Page::error(
        &org.name,
        status,
        "Something went wrong. Please try again in a moment.",
    )
    .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    csrf: Option<String>,
    name: Option<String>,
}

pub async fn profile_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<ProfileForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, me) = match checked(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let name = form.name.unwrap_or_default();
    let client = client_info(&addr, &headers);
    match accounts::update_name(&state.services, &org, &me.user, &name, &client).await {
        Ok(()) => back(&org, "profile", vec![]),
        Err(Error::Invalid { message, .. }) => {
            let text = format!("Name {message}.");
            let notes = Notes {
                profile_error: Some(&text),
                name_value: Some(&name),
                ..Default::default()
            };
            render(&state, &org, &me, notes, StatusCode::BAD_REQUEST).await
        }
        Err(e) => unexpected(&org, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
}

pub async fn password_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<PasswordForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, me) = match checked(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let factors = match crate::mfa::factors(&state.services, &me.user).await {
        Ok(factors) => factors,
        Err(e) => return unexpected(&org, &e),
    };
    let proof = match crate::mfa::step_up::prove(&org, &me.session, &factors, crate::time_now()) {
        Ok(proof) => proof,
        Err(_) => {
            let after = format!("/o/{}/account?done=stepped-up", org.slug);
            return super::mfa::step_up(&state, &org, &me.session, &me.user, &after).await;
        }
    };
    let current = form.current_password.unwrap_or_default();
    let new = form.new_password.unwrap_or_default();
    let client = client_info(&addr, &headers);
    let outcome = if current.is_empty() || new.is_empty() {
        Err(Error::invalid(
            "password",
            "fields must both be filled in: your current password and a new one",
        ))
    } else {
        accounts::password::change(
            &state.services,
            &org,
            &proof,
            &me.session,
            &me.user,
            &current,
            &new,
            &client,
        )
        .await
    };
    match outcome {
        Ok((_, new_token)) => {
            let config = &state.services.config;
            let cookie = pages::set_cookie(
                config,
                &pages::session_cookie_name(config, &org.slug),
                &new_token,
                Some(org.settings.session_absolute_lifetime_secs as i64),
                "Lax",
            );
            back(&org, "password", vec![cookie])
        }
        Err(Error::Invalid { field, message }) => {
            let label = match field.as_str() {
                "current_password" => "The current password",
                "new_password" => "The new password",
                _ => "Password",
            };
            let text = format!("{label} {message}.");
            let notes = Notes {
                password_error: Some(&text),
                ..Default::default()
            };
            render(&state, &org, &me, notes, StatusCode::BAD_REQUEST).await
        }
        Err(Error::RateLimited(limited)) => {
            let notes = Notes {
                password_error: Some(
                    "Too many password attempts. Please wait a few minutes and try again.",
                ),
                ..Default::default()
            };
            let mut response =
                render(&state, &org, &me, notes, StatusCode::TOO_MANY_REQUESTS).await;
            super::rate_limit_headers(
                &mut response,
                &limited.decision,
                limited.policy,
                limited.window,
            );
            response
        }
        Err(e) => unexpected(&org, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: Option<String>,
    session: Option<String>,
}

pub async fn revoke_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<RevokeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, me) = match checked(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let target = SessionId::from(form.session.unwrap_or_default());
    let client = client_info(&addr, &headers);
    if target == me.session.public_id {
        // Signing out this device is the sign-out button's job; do the same here.
        return sign_out(&state, &org, &me.token, &client).await;
    }
    match sessions::revoke(&state.services, &org, &me.user, &target, &client).await {
        Ok(true) => back(&org, "revoked", vec![]),
        Ok(false) => {
            let notes = Notes {
                notice: Some("That session was already signed out."),
                ..Default::default()
            };
            render(&state, &org, &me, notes, StatusCode::NOT_FOUND).await
        }
        Err(e) => unexpected(&org, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

pub async fn revoke_others_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, me) = match checked(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let client = client_info(&addr, &headers);
    match sessions::revoke_others(
        &state.services,
        &org,
        &me.user,
        &me.session.public_id,
        &client,
    )
    .await
    {
        Ok(_) => back(&org, "revoked-others", vec![]),
        Err(e) => unexpected(&org, &e),
    }
}

pub async fn signout_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, me) = match checked(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    sign_out(&state, &org, &me.token, &client_info(&addr, &headers)).await
}

async fn sign_out(
    state: &AppState,
    org: &Organization,
    token: &str,
    client: &sessions::ClientInfo,
) -> Response {
    if let Err(e) = sessions::end(&state.services, org, token, client).await {
        return unexpected(org, &e);
    }
    let config = &state.services.config;
    let clear = pages::clear_cookie(config, &pages::session_cookie_name(config, &org.slug));
    let body = html! {
        p { "You are signed out." }
        p { a href={ "/o/" (org.slug) "/account" } { "Sign in again" } }
    };
    let mut page = Page::new(&org.name, "Signed out", body);
    page.cookies.push(clear);
    page.into_response()
}

// ---- Sessions API (Bearer) ---------------------------------------------------------------------------

/// The user behind a Bearer access token, and the session (`sid`) it came from. The token must carry
/// the `latchkey:sessions` scope and come from a first-party application (see `oauth::scopes`); without
/// that the answer is 403 `insufficient_scope` (RFC 6750 §3.1).
async fn bearer_user(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
) -> Result<(User, Option<String>), Response> {
    let unauthorized = |description: &str| {
        let mut response = Problem::new(StatusCode::UNAUTHORIZED, description).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        response
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(unauthorized("a Bearer access token is required"));
    };
    let busy = |e: crate::oauth::OAuthError| {
        tracing::error!(error = ?e, "access token validation failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is busy; try again shortly",
        )
        .into_response()
    };
    match introspect::validate_access_token(&state.provider, org, token).await {
        Ok(Some(valid)) => match valid.user {
            Some(user) => {
                match scopes::permits_sessions_api(&state.provider, org, &valid.claims).await {
                    Ok(true) => {}
                    Ok(false) => return Err(insufficient_scope()),
                    Err(e) => return Err(busy(e)),
                }
                Ok((user, valid.claims.sid.as_deref().map(str::to_string)))
            }
            None => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "this endpoint needs a token issued to a user",
            )
            .into_response()),
        },
        Ok(None) => Err(unauthorized(
            "the access token is invalid, expired or revoked",
        )),
        Err(e) => Err(busy(e)),
    }
}

/// 403 for a valid token that lacks the sessions scope, naming the scope it needs (RFC 6750 §3.1).
fn insufficient_scope() -> Response {
    let mut response = Problem::new(
        StatusCode::FORBIDDEN,
        format!(
            "this endpoint needs an access token with the {} scope, which only the organization's own applications can obtain",
            scopes::SESSIONS
        ),
    )
    .into_response();
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\"",
        scopes::SESSIONS
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn session_json(s: &Session, current: Option<&str>) -> Value {
    json!({
        "id": s.public_id,
        "created_at": s.created_at,
        "last_seen_at": s.last_seen_at,
        "expires_at": s.expires_at,
        "ip": s.ip,
        "user_agent": s.user_agent,
        "amr": s.amr,
        "current": current == Some(s.public_id.as_str()),
    })
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn api_list_sessions(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
) -> Response {
    let (user, sid) = match bearer_user(&state, &org, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match sessions::list(&state.services, &org, &user).await {
        Ok(list) => {
            let items: Vec<Value> = list
                .iter()
                .map(|s| session_json(s, sid.as_deref()))
                .collect();
            no_store(Json(json!({ "sessions": items })).into_response())
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

pub async fn api_revoke_session(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let org = match org_or_404(&state, &slug).await {
        Ok(org) => org,
        Err(r) => return r,
    };
    let (user, _) = match bearer_user(&state, &org, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let client = client_info(&addr, &headers);
    match sessions::revoke(&state.services, &org, &user, &SessionId::from(id), &client).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => Problem::new(StatusCode::NOT_FOUND, "no such active session").into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}

pub async fn api_revoke_other_sessions(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (user, sid) = match bearer_user(&state, &org, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(sid) = sid else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "this access token does not come from a browser session, so there is no 'other'",
        )
        .into_response();
    };
    let client = client_info(&addr, &headers);
    match sessions::revoke_others(&state.services, &org, &user, &SessionId::from(sid), &client)
        .await
    {
        Ok(count) => no_store(Json(json!({ "revoked": count })).into_response()),
        Err(e) => Problem::from(e).into_response(),
    }
}
