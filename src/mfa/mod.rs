//! Multi-factor authentication: second factors (TOTP, email codes), recovery codes, the second step of
//! signing in ([`challenge`]), the organization's MFA policy, and step-up before sensitive actions.
//!
//! A user "has MFA" once a second factor is enrolled (an authenticator app or email codes); recovery
//! codes are the fallback that comes with the first one. What a session proved is in its `amr`/`acr`,
//! which flow into the ID token.
//!
//! The rules guarding factors live in the operations themselves, not in their callers: every change to
//! a user's factors (and to their password, in `accounts::password`) takes a [`step_up::StepUp`] proof,
//! and [`remove_factor`] refuses to remove the last factor the organization's policy requires.

pub use crate::model::settings::{MfaPolicy, MfaSettings};

pub mod challenge;
pub mod email_code;
pub mod passkey;
pub mod recovery;
pub mod step_up;
pub mod totp;

use serde_json::json;

use crate::audit::{Action, NewAuditEvent};
use crate::deps::{
    HasClock, HasConfig, HasDb, HasEphemeral, HasMailer, HasPasswords, HasSecrets, HasWebauthn,
};
use crate::error::{Error, Result};
use crate::model::orgs::{Organization, Role};
use crate::model::users::{Credential, CredentialKind, User};
use crate::ratelimit::{self, Limited};
use crate::sessions::service::{ClientInfo, user_actor};
use step_up::StepUp;

pub use crate::model::sessions::{
    AMR_EMAIL, AMR_MFA, AMR_PASSKEY, AMR_PASSWORD, AMR_RECOVERY, AMR_TOTP,
};

impl MfaSettings {
    pub fn validate(&self) -> Result<()> {
        if !(1..=24 * 60).contains(&self.step_up_minutes) {
            return Err(Error::invalid(
                "step_up_minutes",
                "must be between 1 and 1440",
            ));
        }
        Ok(())
    }
}

/// How a second factor was proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    Email,
    Recovery,
    Passkey,
}

impl Method {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "totp" => Some(Self::Totp),
            "email" => Some(Self::Email),
            "recovery" => Some(Self::Recovery),
            "passkey" => Some(Self::Passkey),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Email => "email",
            Self::Recovery => "recovery",
            Self::Passkey => "passkey",
        }
    }

    pub fn amr(self) -> &'static str {
        match self {
            Self::Totp => AMR_TOTP,
            Self::Email => AMR_EMAIL,
            Self::Recovery => AMR_RECOVERY,
            Self::Passkey => AMR_PASSKEY,
        }
    }
}

/// A user's second factors and recovery codes.
#[derive(Debug, Clone, Default)]
pub struct Factors {
    pub credentials: Vec<Credential>,
}

impl Factors {
    fn of_kind(&self, kind: CredentialKind) -> impl Iterator<Item = &Credential> {
        self.credentials.iter().filter(move |c| c.kind == kind)
    }

    pub fn totp(&self) -> Option<&Credential> {
        self.of_kind(CredentialKind::Totp).next()
    }

    pub fn email(&self) -> Option<&Credential> {
        self.of_kind(CredentialKind::EmailOtp).next()
    }

    pub fn passkeys(&self) -> Vec<&Credential> {
        self.of_kind(CredentialKind::Webauthn).collect()
    }

    pub fn recovery_codes(&self) -> Vec<&Credential> {
        self.of_kind(CredentialKind::RecoveryCode).collect()
    }

    /// Whether any second factor is enrolled (recovery codes alone are not one).
    pub fn enrolled(&self) -> bool {
        self.totp().is_some() || self.email().is_some() || !self.passkeys().is_empty()
    }

    /// The methods the user can prove a second factor with, in the order they are offered.
    pub fn methods(&self) -> Vec<Method> {
        let mut methods = Vec::new();
        if !self.passkeys().is_empty() {
            methods.push(Method::Passkey);
        }
        if self.totp().is_some() {
            methods.push(Method::Totp);
        }
        if self.email().is_some() {
            methods.push(Method::Email);
        }
        if !self.recovery_codes().is_empty() {
            methods.push(Method::Recovery);
        }
        methods
    }
}

pub async fn factors(deps: &impl HasDb, user: &User) -> Result<Factors> {
    let credentials = deps
        .db()
        .tenant(&user.org_id)
        .user_credentials(&user.id)
        .await?
        .into_iter()
        .filter(|c| c.kind != CredentialKind::Password)
        .collect();
    Ok(Factors { credentials })
}

/// Whether the organization's policy makes this user use a second factor.
pub async fn required_by_policy(
    deps: &impl HasDb,
    org: &Organization,
    user: &User,
) -> Result<bool> {
    Ok(match org.settings.mfa.policy {
        MfaPolicy::Optional => false,
        MfaPolicy::Everyone => true,
        MfaPolicy::Admins => matches!(
            deps.db().tenant(&org.id).member_role(&user.id).await?,
            Some(Role::Owner | Role::Admin)
        ),
    })
}

/// Why a second-factor proof failed.
#[derive(Debug)]
pub enum ProofError {
    /// Wrong, expired or replayed code; the same answer for each, so nothing is learned from it.
    Wrong,
    /// Too many wrong codes for this user recently.
    Locked(Limited),
    /// The method is not available to this user (not enrolled, or no email code was sent).
    Unavailable,
    /// The hashing pool is saturated.
    Busy,
    Other(Error),
}

impl From<Error> for ProofError {
    fn from(e: Error) -> Self {
        match e {
            Error::RateLimited(limited) => ProofError::Locked(limited),
            Error::Busy => ProofError::Busy,
            other => ProofError::Other(other),
        }
    }
}

impl From<crate::storage::StoreError> for ProofError {
    fn from(e: crate::storage::StoreError) -> Self {
        ProofError::Other(e.into())
    }
}

/// The key counting a user's second-factor attempts (and, with suffixes, their lock and strikes).
pub fn proof_limit_key(org: &Organization, user: &User) -> String {
    format!("mfa:{}:{}", org.id, user.id)
}

/// A presented second-factor code. `binding` ties email codes to the challenge they were sent for.
pub struct Proof<'a> {
    pub method: Method,
    pub code: &'a str,
    pub binding: &'a str,
}

/// Checks a second-factor code. Attempts are counted per user before the code is looked at (so
/// parallel guesses cannot slip past the limit); a success forgets them. Successes and failures are
/// audited.
pub async fn prove(
    deps: &(
         impl HasClock
         + HasConfig
         + HasDb
         + HasEphemeral
         + HasMailer
         + HasPasswords
         + HasSecrets
         + HasWebauthn
     ),
    org: &Organization,
    user: &User,
    factors: &Factors,
    proof: Proof<'_>,
    client: &ClientInfo,
) -> std::result::Result<(), ProofError> {
    let Proof {
        method,
        code,
        binding,
    } = proof;
    // Reaching the limit locks the second step for the window, doubling each further time within a
    // day (capped), so guessing cannot simply resume every few minutes.
    let limit_key = proof_limit_key(org, user);
    let limits = &org.settings.rate_limits;
    let rule = ratelimit::Lockout {
        key: &limit_key,
        limit: limits.mfa_attempts,
        window: std::time::Duration::from_secs(limits.mfa_window_secs),
        max_lock: std::time::Duration::from_secs(limits.mfa_lockout_max_secs),
    };
    if let Some(locked) = ratelimit::hit_with_lockout(deps, &rule).await? {
        let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::RateLimited)
            .change(
                None,
                Some(json!({
                    "policy": "mfa",
                    "subject": user.id,
                    "retry_after_secs": locked.retry_after.as_secs(),
                    "lockout_started": locked.strike,
                })),
            );
        deps.db().tenant(&org.id).append_audit(&audit).await?;
        return Err(ProofError::Locked(locked.limited("mfa", &rule)));
    }
    let code = code.trim();
    let outcome = match method {
        Method::Totp => match factors.totp() {
            Some(credential) => totp::check(deps, credential, code).await,
            None => Err(ProofError::Unavailable),
        },
        Method::Email => match factors.email() {
            Some(_) => email_code::check(deps, org, user, binding, code).await,
            None => Err(ProofError::Unavailable),
        },
        Method::Recovery => recovery::consume(deps, org, user, factors, code, client).await,
        Method::Passkey => passkey::check(deps, org, user, factors, binding, code, client).await,
    };
    let actor = user_actor(user, client);
    match &outcome {
        Ok(()) => {
            ratelimit::forget_lockout(deps, &limit_key).await;
            let audit = NewAuditEvent::new(&org.id, &actor, Action::MfaSucceeded)
                .target("user", &user.id)
                .change(None, Some(json!({"method": method.as_str()})));
            deps.db().tenant(&org.id).append_audit(&audit).await?;
        }
        Err(ProofError::Wrong | ProofError::Unavailable) => {
            let audit = NewAuditEvent::new(&org.id, &actor, Action::MfaFailed)
                .target("user", &user.id)
                .change(None, Some(json!({"method": method.as_str()})));
            deps.db().tenant(&org.id).append_audit(&audit).await?;
        }
        Err(_) => {}
    }
    outcome
}

/// Enables email codes as a factor for a user with a verified address.
pub async fn enable_email(
    deps: &(impl HasClock + HasDb),
    org: &Organization,
    proof: &StepUp,
    user: &User,
    factors: &Factors,
    client: &ClientInfo,
) -> Result<bool> {
    proof.check(org, user)?;
    if factors.email().is_some() {
        return Ok(false);
    }
    if !user.email_verified {
        return Err(Error::invalid("email", "confirm your email address first"));
    }
    let credential = Credential {
        id: crate::kernel::CredentialId::generate(),
        user_id: user.id.clone(),
        kind: CredentialKind::EmailOtp,
        name: None,
        secret: Vec::new(),
        data: "{}".into(),
        created_at: deps.now(),
        last_used_at: None,
    };
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::MfaEnrolled)
        .target("credential", &credential.id)
        .change(None, Some(json!({"factor": "email"})));
    deps.db()
        .tenant(&org.id)
        .add_credentials(&user.id, &[credential], &[], &audit)
        .await?;
    Ok(true)
}

/// Whether a credential is a second factor (recovery codes are only a fallback for one).
pub fn is_factor(kind: CredentialKind) -> bool {
    matches!(
        kind,
        CredentialKind::Totp | CredentialKind::EmailOtp | CredentialKind::Webauthn
    )
}

/// Why a factor was not removed.
#[derive(Debug)]
pub enum RemoveError {
    /// The organization's policy requires a second factor of this user, and this is their last one:
    /// another must be set up first.
    LastRequiredFactor,
    Other(Error),
}

impl From<Error> for RemoveError {
    fn from(e: Error) -> Self {
        RemoveError::Other(e)
    }
}

impl From<crate::storage::StoreError> for RemoveError {
    fn from(e: crate::storage::StoreError) -> Self {
        RemoveError::Other(e.into())
    }
}

/// Removes a second factor (the given credential, or the user's factor of that kind); removing the last
/// one also removes the recovery codes (they would be a second factor on their own otherwise). Returns
/// whether it existed. The last factor the organization's policy requires is never removed, whoever
/// asks: that is [`RemoveError::LastRequiredFactor`], and nothing changes.
#[allow(clippy::too_many_arguments)]
pub async fn remove_factor(
    deps: &impl HasDb,
    org: &Organization,
    proof: &StepUp,
    user: &User,
    factors: &Factors,
    kind: CredentialKind,
    credential_id: Option<&str>,
    client: &ClientInfo,
) -> std::result::Result<bool, RemoveError> {
    proof.check(org, user)?;
    let Some(credential) = factors
        .credentials
        .iter()
        .find(|c| c.kind == kind && credential_id.is_none_or(|id| id == c.id))
    else {
        return Ok(false);
    };
    let mut ids = vec![credential.id.clone()];
    let remaining = factors
        .credentials
        .iter()
        .filter(|c| c.id != credential.id && is_factor(c.kind))
        .count();
    if remaining == 0 && required_by_policy(deps, org, user).await? {
        return Err(RemoveError::LastRequiredFactor);
    }
    if remaining == 0 {
        ids.extend(factors.recovery_codes().iter().map(|c| c.id.clone()));
    }
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::MfaRemoved)
        .target("credential", &credential.id)
        .change(
            Some(json!({"factor": kind.as_str()})),
            Some(json!({"mfa_enrolled": remaining > 0})),
        );
    Ok(deps
        .db()
        .tenant(&org.id)
        .delete_credentials(&user.id, &ids, &audit)
        .await?
        > 0)
}
