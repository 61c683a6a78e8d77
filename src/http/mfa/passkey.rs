//! Passkeys: as the second factor of a challenge, as the whole sign-in, and added from the account page.
//! The browser side is static/webauthn.js, which fetches options from the `…/options` endpoints below
//! (answered as JSON, which that script reads) and then submits the page's form with the browser's answer.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::challenge::ChallengeForm;
use super::{account_path, fresh_factors, sensitive};
use crate::error::Error;
use crate::http::AppState;
use crate::http::error::{Kind, PageError, PageResult};
use crate::http::extract::{Client, CsrfField, Org, PageForm, SessionForm, SignedIn};
use crate::http::pages::{self, Page, see_other};
use crate::http::views::mfa as views;
use crate::mfa;

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_refusal(status: StatusCode, description: &str) -> Response {
    json_answer(
        status,
        json!({ "error": "passkey_unavailable", "error_description": description }),
    )
}

/// A domain error as the script's JSON; the status (and its headers) comes from the error's kind.
fn json_failure(e: &Error) -> Response {
    let kind = Kind::of(e);
    let description = match e {
        Error::Invalid { message, .. } => message.as_str(),
        e if e.retry_later() => "The service is busy; try again shortly.",
        _ => "Something went wrong on our side.",
    };
    kind.answer(json_refusal(kind.status(), description))
}

/// The answer to an options request that opened a ceremony: its id and the options for the browser.
fn ceremony(opened: crate::error::Result<(String, serde_json::Value)>) -> Response {
    match opened {
        Ok((id, options)) => {
            json_answer(StatusCode::OK, json!({ "state": id, "options": options }))
        }
        Err(e) => json_failure(&e),
    }
}

/// Options for a passkey as the second factor of this browser's challenge.
pub async fn challenge_passkey_options(
    State(state): State<AppState>,
    Org(org): Org,
    ch: Result<ChallengeForm, PageError>,
) -> Response {
    let Ok(ch) = ch else {
        let message = "This sign-in has expired; sign in again.";
        return json_refusal(StatusCode::FORBIDDEN, message);
    };
    let factors = match mfa::factors(&state.deps, &ch.user).await {
        Ok(f) => f,
        Err(e) => return json_failure(&e),
    };
    let deps = &state.deps;
    match mfa::passkey::begin_second_factor(deps, &org, &ch.user, &factors, &ch.id).await {
        Ok(options) => json_answer(StatusCode::OK, json!({ "options": options })),
        Err(e) => json_failure(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct PasskeySignInForm {
    csrf: Option<String>,
    req: Option<String>,
    return_to: Option<String>,
    state: Option<String>,
    credential: Option<String>,
}

impl CsrfField for PasskeySignInForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// Options for "Sign in with a passkey" (no user known yet).
pub async fn sign_in_passkey_options(
    State(state): State<AppState>,
    Org(org): Org,
    form: Result<PageForm<PasskeySignInForm>, PageError>,
) -> Response {
    match form {
        Ok(_) => ceremony(mfa::passkey::begin_sign_in(&state.deps, &org).await),
        Err(PageError::Page(Kind::BadRequest, _)) => {
            json_refusal(StatusCode::BAD_REQUEST, "The form was malformed.")
        }
        Err(PageError::Page(..)) => json_refusal(
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        ),
        Err(e) => e.into_response(),
    }
}

impl PasskeySignInForm {
    /// Where the sign-in continues: the pending authorization request, or a page of ours.
    fn location(&self, slug: &str) -> String {
        match self.req.as_deref().filter(|r| !r.is_empty()) {
            Some(req) => format!(
                "/o/{slug}/authorize/resume?req={}",
                url::form_urlencoded::byte_serialize(req.as_bytes()).collect::<String>()
            ),
            None => pages::safe_return_to(slug, self.return_to.as_deref())
                .unwrap_or_else(|| format!("/o/{slug}/account")),
        }
    }

    /// Back to the sign-in page, keeping the pending request.
    fn retry(&self, slug: &str) -> String {
        let mut retry = format!("/o/{slug}/login");
        if let Some(req) = self.req.as_deref().filter(|r| !r.is_empty()) {
            retry.push_str("?req=");
            retry.extend(url::form_urlencoded::byte_serialize(req.as_bytes()));
        }
        retry
    }
}

/// "Sign in with a passkey": a discoverable passkey with user verification is the whole sign-in.
pub async fn sign_in_passkey(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    PageForm(form): PageForm<PasskeySignInForm>,
) -> PageResult {
    let deps = &state.deps;
    let state_id = form.state.as_deref().unwrap_or_default();
    let answer = form.credential.as_deref().unwrap_or_default();
    let failed = |e| PageError::failed(&org, &e);
    let Some(user) = mfa::passkey::finish_sign_in(deps, &org, state_id, answer, &client)
        .await
        .map_err(failed)?
    else {
        let page = views::passkey_not_accepted(&org, &form.retry(&org.slug));
        return Err(PageError::page(Kind::Unauthorized, page));
    };
    let amr = vec![
        mfa::AMR_PASSKEY.to_string(),
        "user".to_string(),
        mfa::AMR_MFA.to_string(),
    ];
    let acr = crate::model::sessions::ACR_MFA;
    let (_, token) = crate::sessions::service::start(deps, &org, &user, amr, acr, &client)
        .await
        .map_err(failed)?;
    let config = deps.config();
    let cookie = pages::session_cookie(config, &org, &token);
    Ok(see_other(&form.location(&org.slug), vec![cookie]))
}

pub async fn passkey_setup_form(
    State(state): State<AppState>,
    Org(org): Org,
    me: SignedIn,
) -> PageResult<Page> {
    if state.deps.webauthn().is_none() {
        let message = "Passkeys are not available on this server.";
        return Err(PageError::say(&org, Kind::NotFound, message));
    }
    let after = format!("/o/{}/account/passkeys/new", org.slug);
    fresh_factors(&state, &org, &me, &after).await?;
    Ok(views::passkey_setup(&org, &me.csrf(&state)))
}

#[derive(Debug, Deserialize)]
pub struct PasskeySetupForm {
    csrf: Option<String>,
    state: Option<String>,
    credential: Option<String>,
    name: Option<String>,
}

impl CsrfField for PasskeySetupForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub async fn passkey_setup_options(
    State(state): State<AppState>,
    Org(org): Org,
    form: Result<SessionForm<PasskeySetupForm>, PageError>,
) -> Response {
    let Ok(SessionForm { me, .. }) = form else {
        let message = "Your session could not be verified. Reload the page.";
        return json_refusal(StatusCode::FORBIDDEN, message);
    };
    let factors = match mfa::factors(&state.deps, &me.user).await {
        Ok(f) => f,
        Err(e) => return json_failure(&e),
    };
    let now = state.deps.now();
    let Ok(proof) = mfa::step_up::prove(&org, &me.session, &factors, now) else {
        let message = "Confirm it is you first: reload the page.";
        return json_refusal(StatusCode::FORBIDDEN, message);
    };
    let deps = &state.deps;
    ceremony(mfa::passkey::begin_registration(deps, &org, &proof, &me.user, &factors).await)
}

pub async fn passkey_setup_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    form: SessionForm<PasskeySetupForm>,
) -> PageResult {
    let (factors, proof) = sensitive(&state, &org, &form).await?;
    let SessionForm { form, me } = form;
    let registration = mfa::passkey::Registration {
        state_id: form.state.as_deref().unwrap_or_default(),
        response: form.credential.as_deref().unwrap_or_default(),
        name: form.name.as_deref().unwrap_or_default(),
    };
    let deps = &state.deps;
    let user = &me.user;
    match mfa::passkey::finish_registration(
        deps,
        &org,
        &proof,
        user,
        &factors,
        registration,
        &client,
    )
    .await
    {
        Ok(Some(codes)) => {
            Ok(views::recovery_codes(&org, &codes, &account_path(&org)).into_response())
        }
        Ok(None) => Ok(see_other(
            &format!("{}?done=passkey", account_path(&org)),
            vec![],
        )),
        Err(Error::Invalid { message, .. }) => {
            let page = views::passkey_not_added(&org, &message);
            Err(PageError::page(Kind::BadRequest, page))
        }
        Err(e) => Err(PageError::failed(&org, &e)),
    }
}
