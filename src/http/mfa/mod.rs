//! Second-factor pages: the challenge after the password (and for step-up), enrolment of an
//! authenticator app, passkeys, and the account page's factor management. The logic is in
//! [`crate::mfa`]; these handlers parse forms, call it and render a view from `views::mfa`.
//!
//! The open challenge's id lives in an HttpOnly cookie (never in a URL). Challenge forms use the
//! double-submit CSRF cookie (there is no session yet); account forms use the session's CSRF token.

mod challenge;
mod factors;
mod passkey;
mod totp;

pub use challenge::{challenge_email, challenge_enrol, challenge_page, challenge_submit};
pub use factors::{email_enable_submit, recovery_codes_submit, remove_submit};
pub use passkey::{
    challenge_passkey_options, passkey_setup_form, passkey_setup_options, passkey_setup_submit,
    sign_in_passkey, sign_in_passkey_options,
};
pub use totp::{totp_setup_form, totp_setup_submit};

use axum::response::Response;

use super::AppState;
use super::error::{PageError, PageResult};
use super::extract::{CsrfField, SessionForm, SignedIn};
use super::pages::{self, see_other};
use crate::config::Config;
use crate::mfa::challenge::{self as domain_challenge, Challenge};
use crate::mfa::step_up::{self as step_ups, StepUp};
use crate::mfa::{self, Factors};
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::User;

fn challenge_cookie_name(config: &Config, slug: &str) -> String {
    if config.is_https() {
        format!("__Host-latchkey-mfa-{slug}")
    } else {
        format!("latchkey-mfa-{slug}")
    }
}

fn challenge_path(org: &Organization) -> String {
    format!("/o/{}/login/mfa", org.slug)
}

fn account_path(org: &Organization) -> String {
    format!("/o/{}/account", org.slug)
}

/// Sends the browser to the challenge `id`.
pub fn to_challenge(config: &Config, org: &Organization, id: &str) -> Response {
    let cookie = pages::set_cookie(
        config,
        &challenge_cookie_name(config, &org.slug),
        id,
        Some(domain_challenge::TTL_SECS),
        "Lax",
    );
    see_other(&challenge_path(org), vec![cookie])
}

/// Makes the signed-in `session` prove a second factor (or enrol one) before going on to `after`: the
/// redirect to the challenge, as the error that stops the handler asking for it.
pub async fn step_up(
    state: &AppState,
    org: &Organization,
    session: &Session,
    user: &User,
    after: &str,
) -> PageError {
    let deps = &state.deps;
    let factors = match mfa::factors(deps, user).await {
        Ok(f) => f,
        Err(e) => return PageError::failed(org, &e),
    };
    let open = Challenge {
        after: after.to_string(),
        amr: session.amr.clone(),
        step_up_of: Some(hex::encode(&session.id_hash)),
        enrol: !factors.enrolled(),
    };
    match domain_challenge::start(deps, org, user, &open).await {
        Ok(id) => PageError::answer(to_challenge(deps.config(), org, &id)),
        Err(e) => PageError::failed(org, &e),
    }
}

/// The user's factors and the step-up proof a sensitive action needs, or, when the session must prove a
/// second factor again, the step-up to `after`.
pub(crate) async fn fresh_factors(
    state: &AppState,
    org: &Organization,
    me: &SignedIn,
    after: &str,
) -> PageResult<(Factors, StepUp)> {
    let factors = mfa::factors(&state.deps, &me.user)
        .await
        .map_err(|e| PageError::failed(org, &e))?;
    match step_ups::prove(org, &me.session, &factors, state.deps.now()) {
        Ok(proof) => Ok((factors, proof)),
        Err(_) => Err(step_up(state, org, &me.session, &me.user, after).await),
    }
}

/// A sensitive account action's factors and step-up proof (otherwise the step-up, back to the account
/// page, where the user repeats the action).
async fn sensitive<T: CsrfField>(
    state: &AppState,
    org: &Organization,
    form: &SessionForm<T>,
) -> PageResult<(Factors, StepUp)> {
    let after = format!("{}?done=stepped-up", account_path(org));
    fresh_factors(state, org, &form.me, &after).await
}
