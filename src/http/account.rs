//! The signed-in account page (`{issuer}/account`: profile, password, active sessions, sign-out) and the
//! sessions API for applications (`{issuer}/api/me/sessions`, Bearer access token).
//!
//! Forms here carry a CSRF token derived from the session itself (see `pages::session_csrf`) and must
//! come from our own origin; [`SessionForm`] checks both.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{Kind, PageError, PageResult};
use super::extract::{Client, CsrfField, CsrfOnly, Org, SessionForm, SignedIn, TokenUser};
use super::pages::{self, Page, see_other};
use super::problem::{ApiError, ApiResult};
use super::views::account::{self as views, Notes};
use crate::accounts;
use crate::error::Error;
use crate::kernel::SessionId;
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::sessions::service::{self as sessions, ClientInfo};

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

/// The account page of `me`, with `notes` on it.
async fn render(
    state: &AppState,
    org: &Organization,
    me: &SignedIn,
    notes: Notes<'_>,
) -> PageResult<Page> {
    let list = sessions::list(&state.deps, org, &me.user)
        .await
        .map_err(|e| PageError::domain(org, &e, "Please try again in a moment."))?;
    let factors = crate::mfa::factors(&state.deps, &me.user)
        .await
        .map_err(|e| PageError::failed(org, &e))?;
    let factors = super::views::mfa::FactorsView {
        factors: &factors,
        passkeys_on: state.deps.webauthn().is_some(),
    };
    let csrf = me.csrf(state);
    Ok(views::account(
        org,
        &me.user,
        &me.session,
        &list,
        factors,
        &csrf,
        notes,
    ))
}

pub async fn account(
    State(state): State<AppState>,
    Org(org): Org,
    me: SignedIn,
    Query(query): Query<AccountQuery>,
) -> PageResult<Page> {
    // A session from before the organization required a second factor proves one (or enrols) first.
    let required = crate::mfa::required_by_policy(&state.deps, &org, &me.user)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    if required && me.session.acr.as_deref() != Some(crate::model::sessions::ACR_MFA) {
        let after = format!("/o/{}/account", org.slug);
        return Err(super::mfa::step_up(&state, &org, &me.session, &me.user, &after).await);
    }
    let notes = Notes {
        notice: done_notice(query.done.as_deref()),
        ..Default::default()
    };
    render(&state, &org, &me, notes).await
}

fn back(org: &Organization, done: &str, cookies: Vec<String>) -> Response {
    see_other(&format!("/o/{}/account?done={done}", org.slug), cookies)
}

#[derive(Debug, Deserialize)]
pub struct ProfileForm {
    csrf: Option<String>,
    name: Option<String>,
}

impl CsrfField for ProfileForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub async fn profile_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    SessionForm { form, me }: SessionForm<ProfileForm>,
) -> PageResult {
    let name = form.name.unwrap_or_default();
    match accounts::update_name(&state.deps, &org, &me.user, &name, &client).await {
        Ok(()) => Ok(back(&org, "profile", vec![])),
        Err(Error::Invalid { message, .. }) => {
            let text = format!("Name {message}.");
            let notes = Notes {
                profile_error: Some(&text),
                name_value: Some(&name),
                ..Default::default()
            };
            let page = render(&state, &org, &me, notes).await?;
            Err(PageError::page(Kind::BadRequest, page))
        }
        Err(e) => Err(PageError::failed(&org, &e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
}

impl CsrfField for PasswordForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// What the password section says about a refused change, and its kind.
fn password_refusal(e: Error) -> Result<(Kind, String), Error> {
    match e {
        Error::Invalid { field, message } => {
            let label = match field.as_str() {
                "current_password" => "The current password",
                "new_password" => "The new password",
                _ => "Password",
            };
            Ok((Kind::BadRequest, format!("{label} {message}.")))
        }
        Error::RateLimited(limited) => Ok((
            Kind::Limited(limited),
            "Too many password attempts. Please wait a few minutes and try again.".into(),
        )),
        other => Err(other),
    }
}

pub async fn password_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    SessionForm { form, me }: SessionForm<PasswordForm>,
) -> PageResult {
    let after = format!("/o/{}/account?done=stepped-up", org.slug);
    let (_, proof) = super::mfa::fresh_factors(&state, &org, &me, &after).await?;
    let current = form.current_password.unwrap_or_default();
    let new = form.new_password.unwrap_or_default();
    let outcome = if current.is_empty() || new.is_empty() {
        Err(Error::invalid(
            "password",
            "fields must both be filled in: your current password and a new one",
        ))
    } else {
        let deps = &state.deps;
        accounts::password::change(
            deps,
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
    let new_token = match outcome.map_err(password_refusal) {
        Ok((_, new_token)) => new_token,
        Err(Ok((kind, text))) => {
            let notes = Notes {
                password_error: Some(&text),
                ..Default::default()
            };
            return Err(PageError::page(
                kind,
                render(&state, &org, &me, notes).await?,
            ));
        }
        Err(Err(e)) => return Err(PageError::failed(&org, &e)),
    };
    let cookie = pages::session_cookie(state.deps.config(), &org, &new_token);
    Ok(back(&org, "password", vec![cookie]))
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: Option<String>,
    session: Option<String>,
}

impl CsrfField for RevokeForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub async fn revoke_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    SessionForm { form, me }: SessionForm<RevokeForm>,
) -> PageResult {
    let target = SessionId::from(form.session.unwrap_or_default());
    if target == me.session.public_id {
        // Signing out this device is the sign-out button's job; do the same here.
        return sign_out(&state, &org, &me.token, &client).await;
    }
    let revoked = sessions::revoke(&state.deps, &org, &me.user, &target, &client)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    if !revoked {
        let notes = Notes {
            notice: Some("That session was already signed out."),
            ..Default::default()
        };
        let page = render(&state, &org, &me, notes).await?;
        return Err(PageError::page(Kind::NotFound, page));
    }
    Ok(back(&org, "revoked", vec![]))
}

pub async fn revoke_others_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    SessionForm { me, .. }: SessionForm<CsrfOnly>,
) -> PageResult {
    let keep = &me.session.public_id;
    sessions::revoke_others(&state.deps, &org, &me.user, keep, &client)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    Ok(back(&org, "revoked-others", vec![]))
}

pub async fn signout_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    SessionForm { me, .. }: SessionForm<CsrfOnly>,
) -> PageResult {
    sign_out(&state, &org, &me.token, &client).await
}

async fn sign_out(
    state: &AppState,
    org: &Organization,
    token: &str,
    client: &ClientInfo,
) -> PageResult {
    sessions::end(&state.deps, org, token, client)
        .await
        .map_err(|e| PageError::failed(org, &e))?;
    let config = state.deps.config();
    let clear = pages::clear_cookie(config, &pages::session_cookie_name(config, &org.slug));
    let mut page = views::signed_out(org);
    page.cookies.push(clear);
    Ok(page.into_response())
}

// ---- Sessions API (Bearer, see `TokenUser`) ----------------------------------------------------------

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

fn no_store(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn api_list_sessions(State(state): State<AppState>, me: TokenUser) -> ApiResult {
    let list = sessions::list(&state.deps, &me.org, &me.user).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|s| session_json(s, me.sid.as_deref()))
        .collect();
    Ok(no_store(json!({ "sessions": items })))
}

pub async fn api_revoke_session(
    State(state): State<AppState>,
    me: TokenUser,
    Path((_, id)): Path<(String, String)>,
    Client(client): Client,
) -> ApiResult {
    if !sessions::revoke(
        &state.deps,
        &me.org,
        &me.user,
        &SessionId::from(id),
        &client,
    )
    .await?
    {
        return Err(ApiError::new(Kind::NotFound, "no such active session"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn api_revoke_other_sessions(
    State(state): State<AppState>,
    me: TokenUser,
    Client(client): Client,
) -> ApiResult {
    let Some(sid) = me.sid.clone() else {
        return Err(ApiError::new(
            Kind::BadRequest,
            "this access token does not come from a browser session, so there is no 'other'",
        ));
    };
    let count = sessions::revoke_others(&state.deps, &me.org, &me.user, &sid, &client).await?;
    Ok(no_store(json!({ "revoked": count })))
}
