//! Passkeys (WebAuthn, via webauthn-rs): registered on the account page, used as a second factor, or as
//! the whole sign-in with a discoverable credential ("Sign in with a passkey").
//!
//! The relying party is the public URL's host, shared by every organization, so a passkey found by the
//! browser is accepted only for a user of the organization in the URL. User verification is required,
//! which makes a passkey multi-factor on its own. Ceremony state stays on the server in a single-use,
//! 5-minute record (webauthn-rs itself does not stop a replayed response).

use crate::deps::{HasClock, HasDb, HasSecrets, HasWebauthn};
use crate::kernel::UserId;
use std::sync::Arc;

use serde_json::json;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};
use webauthn_rs_proto::{
    AuthenticatorSelectionCriteria, ResidentKeyRequirement, UserVerificationPolicy,
};

use super::step_up::StepUp;
use super::{Factors, ProofError, recovery};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto;
use crate::error::{Error, Result};
use crate::model::onetime::OneTimeToken;
use crate::model::orgs::Organization;
use crate::model::users::{Credential, CredentialKind, User};
use crate::sessions::service::{ClientInfo, user_actor};

pub const REGISTER_PURPOSE: &str = "webauthn_register";
pub const AUTH_PURPOSE: &str = "webauthn_mfa";
pub const LOGIN_PURPOSE: &str = "webauthn_login";
const STATE_TTL_SECS: i64 = 5 * 60;
const MAX_NAME_CHARS: usize = 60;

/// The relying party for a public URL; `None` (passkeys off) when its host is an IP address, which
/// browsers refuse as a relying-party id.
pub fn relying_party(public_url: &Url) -> Option<Arc<Webauthn>> {
    let rp_id = public_url.domain()?.to_string();
    let origin = Url::parse(&public_url.origin().ascii_serialization()).ok()?;
    let built = WebauthnBuilder::new(&rp_id, &origin).and_then(|b| {
        b.rp_name(&rp_id)
            .timeout(std::time::Duration::from_secs(120))
            .build()
    });
    match built {
        Ok(webauthn) => Some(Arc::new(webauthn)),
        Err(e) => {
            tracing::warn!(error = %e, "passkeys are off: the public URL cannot be a WebAuthn relying party");
            None
        }
    }
}

fn webauthn(deps: &impl HasWebauthn) -> Result<&Webauthn> {
    deps.webauthn()
        .ok_or_else(|| Error::invalid("passkey", "passkeys need a public URL with a domain name"))
}

/// The WebAuthn user handle: the user id's 128 random bits (no personal data, stable per user).
pub fn user_handle(user: &User) -> Option<Uuid> {
    let hex_part = user.id.strip_prefix("usr_")?;
    Uuid::from_slice(&hex::decode(hex_part).ok()?).ok()
}

fn user_id_from_handle(handle: &Uuid) -> String {
    format!("usr_{}", hex::encode(handle.as_bytes()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    passkey: Passkey,
}

fn passkey_of(credential: &Credential) -> Option<Passkey> {
    serde_json::from_str::<Stored>(&credential.data)
        .ok()
        .map(|s| s.passkey)
}

fn passkeys(factors: &Factors) -> Vec<(&Credential, Passkey)> {
    factors
        .credentials
        .iter()
        .filter(|c| c.kind == CredentialKind::Webauthn)
        .filter_map(|c| passkey_of(c).map(|p| (c, p)))
        .collect()
}

async fn save_state(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    user: Option<&User>,
    key: &str,
    purpose: &str,
    state: String,
) -> Result<()> {
    let now = deps.now();
    let token = OneTimeToken {
        token_hash: deps.secrets().token_hash(&format!("{purpose}:{key}")),
        org_id: org.id.clone(),
        user_id: user.map(|u| u.id.clone()),
        purpose: purpose.into(),
        data: state,
        attempts: 0,
        created_at: now,
        expires_at: now + STATE_TTL_SECS,
        consumed_at: None,
    };
    // A newer ceremony for the same key replaces the older one.
    deps.db()
        .tenant(&org.id)
        .reissue_one_time_token(&token, None, None)
        .await?;
    Ok(())
}

/// Takes a ceremony's state once: `None` if unknown, expired, already used or not this user's.
async fn take_state(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    user: Option<&User>,
    key: &str,
    purpose: &str,
) -> Result<Option<String>> {
    let hash = deps.secrets().token_hash(&format!("{purpose}:{key}"));
    let Some(token) = deps
        .db()
        .tenant(&org.id)
        .one_time_token(&hash, purpose)
        .await?
    else {
        return Ok(None);
    };
    let now = deps.now();
    if token.consumed_at.is_some()
        || token.expires_at <= now
        || token.user_id.as_deref() != user.map(|u| u.id.as_str())
    {
        return Ok(None);
    }
    // Consumed before the response is checked: a replayed response finds no state.
    if !deps
        .db()
        .tenant(&org.id)
        .consume_one_time_token(&hash, purpose, now)
        .await?
    {
        return Ok(None);
    }
    Ok(Some(token.data))
}

/// Starts registering a passkey for `user`: returns (state id, options JSON for the browser).
pub async fn begin_registration(
    deps: &(impl HasClock + HasDb + HasSecrets + HasWebauthn),
    org: &Organization,
    proof: &StepUp,
    user: &User,
    factors: &Factors,
) -> Result<(String, serde_json::Value)> {
    proof.check(org, user)?;
    let webauthn = webauthn(deps)?;
    let handle =
        user_handle(user).ok_or_else(|| Error::Internal("user id is not a handle".into()))?;
    let exclude = passkeys(factors)
        .iter()
        .map(|(_, p)| p.cred_id().clone())
        .collect();
    let display = match &user.name {
        Some(name) => format!("{name} ({})", org.name),
        None => format!("{} ({})", user.email, org.name),
    };
    let (mut options, state) = webauthn
        .start_passkey_registration(handle, &user.email, &display, Some(exclude))
        .map_err(|e| Error::Internal(format!("webauthn: {e}")))?;
    // Discoverable, so the passkey can sign in without a typed address; user verification required,
    // so it counts as two factors. finish_passkey_registration does not depend on these fields.
    options.public_key.authenticator_selection = Some(AuthenticatorSelectionCriteria {
        authenticator_attachment: None,
        resident_key: Some(ResidentKeyRequirement::Required),
        require_resident_key: true,
        user_verification: UserVerificationPolicy::Required,
    });
    let id = crypto::random_token();
    let state = serde_json::to_string(&state).map_err(|e| Error::Internal(e.to_string()))?;
    save_state(deps, org, Some(user), &id, REGISTER_PURPOSE, state).await?;
    let options = serde_json::to_value(&options).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((id, options))
}

/// A browser's answer to a registration ceremony.
pub struct Registration<'a> {
    pub state_id: &'a str,
    /// The `RegisterPublicKeyCredential` JSON.
    pub response: &'a str,
    /// The user's label for the passkey.
    pub name: &'a str,
}

/// Finishes a registration with the browser's response; returns recovery codes to show when this is
/// the user's first factor.
pub async fn finish_registration(
    deps: &(impl HasClock + HasDb + HasSecrets + HasWebauthn),
    org: &Organization,
    proof: &StepUp,
    user: &User,
    factors: &Factors,
    registration: Registration<'_>,
    client: &ClientInfo,
) -> Result<Option<Vec<String>>> {
    proof.check(org, user)?;
    let Registration {
        state_id,
        response,
        name,
    } = registration;
    let webauthn = webauthn(deps)?;
    let name: String = name.trim().chars().take(MAX_NAME_CHARS).collect();
    let name = if name.is_empty() {
        "Passkey".to_string()
    } else {
        name
    };
    let rejected = || Error::invalid("passkey", "the passkey could not be registered; try again");
    let Some(state) = take_state(deps, org, Some(user), state_id, REGISTER_PURPOSE).await? else {
        return Err(rejected());
    };
    let state: PasskeyRegistration = serde_json::from_str(&state).map_err(|_| rejected())?;
    let response: RegisterPublicKeyCredential =
        serde_json::from_str(response).map_err(|_| rejected())?;
    let passkey = webauthn
        .finish_passkey_registration(&response, &state)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            rejected()
        })?;
    let now = deps.now();
    let credential = Credential {
        id: crate::kernel::CredentialId::generate(),
        user_id: user.id.clone(),
        kind: CredentialKind::Webauthn,
        name: Some(name.clone()),
        // The credential id (not secret) is what an assertion names.
        secret: passkey.cred_id().to_vec(),
        data: serde_json::to_string(&Stored { passkey })
            .map_err(|e| Error::Internal(e.to_string()))?,
        created_at: now,
        last_used_at: None,
    };
    let mut credentials = vec![credential.clone()];
    let codes = if factors.recovery_codes().is_empty() {
        let (plain, stored) = recovery::generate(deps, user, now);
        credentials.extend(stored);
        Some(plain)
    } else {
        None
    };
    let replace: &[CredentialKind] = if codes.is_some() {
        &[CredentialKind::RecoveryCode]
    } else {
        &[]
    };
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::MfaEnrolled)
        .target("credential", &credential.id)
        .change(
            None,
            Some(json!({"factor": "passkey", "name": name, "recovery_codes_generated": codes.is_some()})),
        );
    deps.db()
        .tenant(&org.id)
        .add_credentials(&user.id, &credentials, replace, &audit)
        .await?;
    Ok(codes)
}

/// Starts a passkey assertion as the second factor of challenge `binding`: options JSON for the browser.
pub async fn begin_second_factor(
    deps: &(impl HasClock + HasDb + HasSecrets + HasWebauthn),
    org: &Organization,
    user: &User,
    factors: &Factors,
    binding: &str,
) -> Result<serde_json::Value> {
    let webauthn = webauthn(deps)?;
    let keys: Vec<Passkey> = passkeys(factors).into_iter().map(|(_, p)| p).collect();
    if keys.is_empty() {
        return Err(Error::invalid("passkey", "no passkey is registered"));
    }
    let (options, state) = webauthn
        .start_passkey_authentication(&keys)
        .map_err(|e| Error::Internal(format!("webauthn: {e}")))?;
    let state = serde_json::to_string(&state).map_err(|e| Error::Internal(e.to_string()))?;
    save_state(deps, org, Some(user), binding, AUTH_PURPOSE, state).await?;
    serde_json::to_value(&options).map_err(|e| Error::Internal(e.to_string()))
}

/// Records a successful use: the new signature counter and backup flags, and the time.
async fn record_use(
    deps: &(impl HasClock + HasDb),
    org: &Organization,
    user: &User,
    credential: &Credential,
    mut passkey: Passkey,
    result: &webauthn_rs::prelude::AuthenticationResult,
    client: &ClientInfo,
) -> Result<()> {
    passkey.update_credential(result);
    let data =
        serde_json::to_string(&Stored { passkey }).map_err(|e| Error::Internal(e.to_string()))?;
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::MfaPasskeyUsed)
        .target("credential", &credential.id);
    deps.db()
        .tenant(&org.id)
        .update_credential_use(&credential.id, &data, deps.now(), &audit)
        .await?;
    Ok(())
}

/// Checks a passkey assertion (JSON from the browser) for the second factor of challenge `binding`.
pub(super) async fn check(
    deps: &(impl HasClock + HasDb + HasSecrets + HasWebauthn),
    org: &Organization,
    user: &User,
    factors: &Factors,
    binding: &str,
    response: &str,
    client: &ClientInfo,
) -> std::result::Result<(), ProofError> {
    let webauthn = webauthn(deps).map_err(|_| ProofError::Unavailable)?;
    let Some(state) = take_state(deps, org, Some(user), binding, AUTH_PURPOSE).await? else {
        return Err(ProofError::Wrong);
    };
    let state: PasskeyAuthentication =
        serde_json::from_str(&state).map_err(|_| ProofError::Wrong)?;
    let response: PublicKeyCredential =
        serde_json::from_str(response).map_err(|_| ProofError::Wrong)?;
    let result = webauthn
        .finish_passkey_authentication(&response, &state)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey assertion refused");
            ProofError::Wrong
        })?;
    let Some((credential, passkey)) = passkeys(factors)
        .into_iter()
        .find(|(_, p)| p.cred_id() == result.cred_id())
    else {
        return Err(ProofError::Wrong);
    };
    record_use(deps, org, user, credential, passkey, &result, client).await?;
    Ok(())
}

/// Starts a passwordless sign-in: (state id, options JSON for the browser).
pub async fn begin_sign_in(
    deps: &(impl HasClock + HasDb + HasSecrets + HasWebauthn),
    org: &Organization,
) -> Result<(String, serde_json::Value)> {
    let webauthn = webauthn(deps)?;
    let (mut options, state) = webauthn
        .start_discoverable_authentication()
        .map_err(|e| Error::Internal(format!("webauthn: {e}")))?;
    // A button, not autofill: no conditional mediation.
    options.mediation = None;
    let id = crypto::random_token();
    let state = serde_json::to_string(&state).map_err(|e| Error::Internal(e.to_string()))?;
    save_state(deps, org, None, &id, LOGIN_PURPOSE, state).await?;
    let options = serde_json::to_value(&options).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((id, options))
}

/// Finishes a passwordless sign-in: the user whose discoverable passkey answered. `None` for anything
/// that does not check out (unknown or used state, a passkey of another organization's user, a bad
/// signature, passkeys being off on this server), all alike: each is the client's mistake, not a fault.
pub async fn finish_sign_in(
    deps: &(impl HasClock + HasDb + HasSecrets + HasWebauthn),
    org: &Organization,
    state_id: &str,
    response: &str,
    client: &ClientInfo,
) -> Result<Option<User>> {
    let Some(webauthn) = deps.webauthn() else {
        return Ok(None);
    };
    let Some(state) = take_state(deps, org, None, state_id, LOGIN_PURPOSE).await? else {
        return Ok(None);
    };
    let Ok(state) = serde_json::from_str::<DiscoverableAuthentication>(&state) else {
        return Ok(None);
    };
    let Ok(response) = serde_json::from_str::<PublicKeyCredential>(response) else {
        return Ok(None);
    };
    let Ok((handle, _)) = webauthn.identify_discoverable_authentication(&response) else {
        return Ok(None);
    };
    let Some(user) = deps
        .db()
        .tenant(&org.id)
        .user_by_id(&UserId::from(user_id_from_handle(&handle)))
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    let factors = super::factors(deps, &user).await?;
    let keys = passkeys(&factors);
    let discoverable: Vec<DiscoverableKey> =
        keys.iter().map(|(_, p)| DiscoverableKey::from(p)).collect();
    let result = match webauthn.finish_discoverable_authentication(&response, state, &discoverable)
    {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = %e, "passkey sign-in refused");
            let audit =
                NewAuditEvent::new(&org.id, &user_actor(&user, client), Action::LoginFailed)
                    .target("user", &user.id)
                    .change(None, Some(json!({"method": "passkey"})));
            deps.db().tenant(&org.id).append_audit(&audit).await?;
            return Ok(None);
        }
    };
    let Some((credential, passkey)) = keys
        .into_iter()
        .find(|(_, p)| p.cred_id() == result.cred_id())
    else {
        return Ok(None);
    };
    record_use(deps, org, &user, credential, passkey, &result, client).await?;
    Ok(Some(user))
}
