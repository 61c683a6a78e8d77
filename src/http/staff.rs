//! Staff pages outside any organization: `/setup` (a setup link creates a staff account) and
//! `/invitations/accept` (a team invitation). Both are anonymous forms with the browser's CSRF cookie
//! and an Origin check; the rules are `staff`'s.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::Kind;
use super::extract::{Expected, form_verified};
use super::pages::{self, Page};
use super::views::staff::{self as views, AccountForm, InvitationView};
use crate::error::Error;
use crate::staff::{self, SetupInput, access::role_name, team};

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct AccountPost {
    csrf: Option<String>,
    #[serde(default)]
    token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    password: Option<String>,
}

fn unverified() -> Response {
    Page::error(
        "Latchkey",
        Kind::Forbidden.status(),
        "This form could not be verified. Reload the page and try again.",
    )
    .into_response()
}

fn failed(e: &Error) -> Response {
    let kind = super::error::Kind::of(e);
    Page::error("Latchkey", kind.status(), crate::http::error::TRY_AGAIN).into_response()
}

async fn sign_in_link(state: &AppState) -> Result<String, Error> {
    let staff = staff::staff_org(&state.deps).await?;
    Ok(format!("/o/{}/login", staff.slug))
}

/// `/`: the front page (how to finish setup, until the first operator exists).
pub async fn home(State(state): State<AppState>) -> Response {
    let found = async {
        let link = sign_in_link(&state).await?;
        Ok::<_, Error>((link, staff::has_operator(&state.deps).await?))
    };
    match found.await {
        Ok((link, set_up)) => views::home(&link, set_up).into_response(),
        Err(e) => failed(&e),
    }
}

pub async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    match staff::setup_grant(&state.deps, &query.token).await {
        Ok(Some(grant)) => pages::with_csrf(state.deps.config(), &headers, |csrf| {
            let form = AccountForm {
                token: &query.token,
                email: grant.email.as_deref().unwrap_or_default(),
                email_fixed: grant.email.is_some(),
                name: "",
                error: None,
            };
            views::setup(csrf, form, grant.operator)
        })
        .into_response(),
        Ok(None) => views::link_closed("setup").into_response(),
        Err(e) => failed(&e),
    }
}

pub async fn setup_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<AccountPost>,
) -> Response {
    let config = state.deps.config();
    if !form_verified(
        config,
        &headers,
        Expected::BrowserCookie,
        form.csrf.as_deref(),
    ) {
        return unverified();
    }
    let Ok(Some(grant)) = staff::setup_grant(&state.deps, &form.token).await else {
        return views::link_closed("setup").into_response();
    };
    let input = SetupInput {
        email: grant.email.as_deref().unwrap_or(&form.email),
        name: Some(form.name.as_str()).filter(|n| !n.trim().is_empty()),
        password: form.password.as_deref().unwrap_or_default(),
    };
    match staff::complete_setup(&state.deps, &form.token, input).await {
        Ok(_) => match sign_in_link(&state).await {
            Ok(link) => views::account_created(&link).into_response(),
            Err(e) => failed(&e),
        },
        Err(e @ (Error::Invalid { .. } | Error::Conflict(_))) => {
            setup_again(&state, &headers, &form, &grant, &e)
        }
        Err(e) => failed(&e),
    }
}

/// The setup form again, with what was typed and why it was refused.
fn setup_again(
    state: &AppState,
    headers: &HeaderMap,
    form: &AccountPost,
    grant: &staff::SetupGrant,
    e: &Error,
) -> Response {
    let message = e.to_string();
    let page = pages::with_csrf(state.deps.config(), headers, |csrf| {
        let again = AccountForm {
            token: &form.token,
            email: grant.email.as_deref().unwrap_or(&form.email),
            email_fixed: grant.email.is_some(),
            name: &form.name,
            error: Some(&message),
        };
        views::setup(csrf, again, grant.operator)
    });
    Kind::of(e).answer(page.into_response())
}

/// The staff member signed in on this browser, if any.
async fn signed_in_staff(
    state: &AppState,
    headers: &HeaderMap,
) -> Option<crate::model::users::User> {
    let staff = staff::staff_org(&state.deps).await.ok()?;
    let cookie = pages::session_cookie_name(state.deps.config(), &staff.slug);
    let token = pages::cookie_value(headers, &cookie)?;
    let (_, user) = crate::sessions::service::from_cookie(&state.deps, &staff, &token)
        .await
        .ok()??;
    Some(user)
}

async fn invitation_page(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    form: Option<&AccountPost>,
    error: Option<&str>,
) -> Result<Response, Error> {
    let Some((invitation, org)) = team::open_invitation(&state.deps, token).await? else {
        return Ok(views::link_closed("invitation").into_response());
    };
    let staff = staff::staff_org(&state.deps).await?;
    let existing = state
        .deps
        .db()
        .tenant(&staff.id)
        .user_by_email(&invitation.email_normalized)
        .await?
        .is_some();
    let me = signed_in_staff(state, headers).await;
    let sign_in = format!("/o/{}/login", staff.slug);
    Ok(pages::with_csrf(state.deps.config(), headers, |csrf| {
        let view = InvitationView {
            org_name: &org.name,
            role: role_name(invitation.role),
            existing,
            signed_in_as: me.as_ref().map(|u| u.email.as_str()),
            sign_in: &sign_in,
        };
        let form = AccountForm {
            token,
            email: &invitation.email,
            email_fixed: true,
            name: form.map(|f| f.name.as_str()).unwrap_or_default(),
            error,
        };
        views::invitation(csrf, view, form)
    })
    .into_response())
}

pub async fn invitation_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    invitation_page(&state, &headers, &query.token, None, None)
        .await
        .unwrap_or_else(|e| failed(&e))
}

pub async fn invitation_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<AccountPost>,
) -> Response {
    let config = state.deps.config();
    if !form_verified(
        config,
        &headers,
        Expected::BrowserCookie,
        form.csrf.as_deref(),
    ) {
        return unverified();
    }
    let me = signed_in_staff(&state, &headers).await;
    let input = form.password.as_deref().map(|password| SetupInput {
        email: &form.email,
        name: Some(form.name.as_str()).filter(|n| !n.trim().is_empty()),
        password,
    });
    match team::accept(&state.deps, &form.token, me.as_ref(), input).await {
        Ok((_, org)) => match sign_in_link(&state).await {
            Ok(link) => views::invitation_accepted(&org.name, &link).into_response(),
            Err(e) => failed(&e),
        },
        Err(e @ (Error::Invalid { .. } | Error::Conflict(_) | Error::Forbidden(_))) => {
            let message = e.to_string();
            let page = invitation_page(&state, &headers, &form.token, Some(&form), Some(&message))
                .await
                .unwrap_or_else(|e| failed(&e));
            Kind::of(&e).answer(page)
        }
        Err(e) => failed(&e),
    }
}
