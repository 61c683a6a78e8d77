//! The account page's factor management: removing a factor, email codes, new recovery codes.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{account_path, sensitive};
use crate::http::AppState;
use crate::http::error::{Kind, PageError, PageResult};
use crate::http::extract::{Client, CsrfField, CsrfOnly, Org, SessionForm};
use crate::http::pages::see_other;
use crate::http::views::mfa as views;
use crate::mfa;
use crate::model::users::CredentialKind;

#[derive(Debug, Deserialize)]
pub struct FactorForm {
    csrf: Option<String>,
    factor: Option<String>,
    /// Which passkey (a user may have several).
    credential: Option<String>,
}

impl CsrfField for FactorForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl FactorForm {
    fn kind(&self) -> Option<CredentialKind> {
        match self.factor.as_deref() {
            Some("totp") => Some(CredentialKind::Totp),
            Some("email") => Some(CredentialKind::EmailOtp),
            Some("passkey") => Some(CredentialKind::Webauthn),
            _ => None,
        }
    }
}

pub async fn remove_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    form: SessionForm<FactorForm>,
) -> PageResult {
    let unknown = || PageError::say(&org, Kind::BadRequest, "Unknown verification method.");
    let kind = form.form.kind().ok_or_else(unknown)?;
    let (factors, proof) = sensitive(&state, &org, &form).await?;
    let SessionForm { form, me } = form;
    let credential_id = form
        .credential
        .as_deref()
        .filter(|_| kind == CredentialKind::Webauthn);
    let deps = &state.deps;
    let removal = mfa::remove_factor(
        deps,
        &org,
        &proof,
        &me.user,
        &factors,
        kind,
        credential_id,
        &client,
    )
    .await;
    let removed = format!("{}?done=factor-removed", account_path(&org));
    match removal {
        Ok(true) => Ok(see_other(&removed, vec![])),
        Ok(false) => Ok(see_other(&account_path(&org), vec![])),
        Err(mfa::RemoveError::LastRequiredFactor) => {
            Err(PageError::page(Kind::Conflict, views::cannot_remove(&org)))
        }
        Err(mfa::RemoveError::Other(e)) => Err(PageError::failed(&org, &e)),
    }
}

pub async fn email_enable_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    form: SessionForm<CsrfOnly>,
) -> PageResult {
    let (factors, proof) = sensitive(&state, &org, &form).await?;
    let user = &form.me.user;
    let deps = &state.deps;
    match mfa::enable_email(deps, &org, &proof, user, &factors, &client).await {
        Ok(_) if factors.recovery_codes().is_empty() => {
            // The first factor comes with recovery codes.
            let codes = mfa::recovery::regenerate(deps, &org, &proof, user, &client)
                .await
                .map_err(|e| PageError::failed(&org, &e))?;
            Ok(views::recovery_codes(&org, &codes, &account_path(&org)).into_response())
        }
        Ok(_) => Ok(see_other(
            &format!("{}?done=email-codes", account_path(&org)),
            vec![],
        )),
        Err(crate::error::Error::Invalid { .. }) => Err(PageError::say(
            &org,
            Kind::BadRequest,
            "Confirm your email address before using codes by email.",
        )),
        Err(e) => Err(PageError::failed(&org, &e)),
    }
}

pub async fn recovery_codes_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    form: SessionForm<CsrfOnly>,
) -> PageResult {
    let (factors, proof) = sensitive(&state, &org, &form).await?;
    if !factors.enrolled() {
        let message = "Turn on two-step verification first.";
        return Err(PageError::say(&org, Kind::BadRequest, message));
    }
    let codes = mfa::recovery::regenerate(&state.deps, &org, &proof, &form.me.user, &client)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    Ok(views::recovery_codes(&org, &codes, &account_path(&org)).into_response())
}
