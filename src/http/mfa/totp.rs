//! Setting up an authenticator app from the account page.

use axum::extract::State;
use axum::response::IntoResponse;

use super::challenge::ProofForm;
use super::{account_path, fresh_factors, sensitive};
use crate::http::AppState;
use crate::http::error::{Kind, PageError, PageResult};
use crate::http::extract::{Client, Org, SessionForm, SignedIn};
use crate::http::pages::{Page, see_other};
use crate::http::views::mfa as views;
use crate::mfa::totp;

fn setup_path(slug: &str) -> String {
    format!("/o/{slug}/account/mfa/totp")
}

pub async fn totp_setup_form(
    State(state): State<AppState>,
    Org(org): Org,
    me: SignedIn,
) -> PageResult<Page> {
    fresh_factors(&state, &org, &me, &setup_path(&org.slug)).await?;
    let enrolment = totp::begin(&state.deps, &org, &me.user)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    Ok(views::totp_setup(&org, &enrolment, &me.csrf(&state), None))
}

pub async fn totp_setup_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    form: SessionForm<ProofForm>,
) -> PageResult {
    let (_, proof) = sensitive(&state, &org, &form).await?;
    let SessionForm { form, me } = form;
    let enrolment_id = form.enrolment.unwrap_or_default();
    let code = form.code.unwrap_or_default();
    let deps = &state.deps;
    let retry = || Ok(see_other(&setup_path(&org.slug), vec![]));
    match totp::confirm(deps, &org, &proof, &me.user, &enrolment_id, &code, &client).await {
        Ok(Some(codes)) => {
            Ok(views::recovery_codes(&org, &codes, &account_path(&org)).into_response())
        }
        Ok(None) => Ok(see_other(
            &format!("{}?done=totp", account_path(&org)),
            vec![],
        )),
        Err(totp::ConfirmError::Wrong) => {
            match totp::pending(deps, &org, &me.user, &enrolment_id).await {
                Ok(Some(enrolment)) => {
                    let message = "That code is not right. Check the app and try again.";
                    let page = views::totp_setup(&org, &enrolment, &me.csrf(&state), Some(message));
                    Err(PageError::page(Kind::Unauthorized, page))
                }
                Ok(None) => retry(),
                Err(e) => Err(PageError::failed(&org, &e)),
            }
        }
        Err(totp::ConfirmError::Expired) => retry(),
        Err(totp::ConfirmError::Other(e)) => Err(PageError::failed(&org, &e)),
    }
}
