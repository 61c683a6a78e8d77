//! The second step of signing in, and step-up. After the password (or when a session must prove a
//! second factor again) a challenge is opened: a single-use, 10-minute record whose id lives in an
//! HttpOnly cookie. Proving a factor finishes it: a new session for a sign-in, or the existing session
//! marked as freshly proved for a step-up. A user with no factor where one is required enrols an
//! authenticator app inside the challenge first.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::step_up::{self, StepUp};
use super::{AMR_MFA, Method};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasDb, HasSecrets};
use crate::error::Result;
use crate::model::onetime::OneTimeToken;
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::User;
use crate::sessions::service::{self as sessions, ClientInfo, user_actor};

pub const PURPOSE: &str = "mfa_challenge";
pub const TTL_SECS: i64 = 10 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    /// Where the browser goes when it is done (a path on this server).
    pub after: String,
    /// What was proved already (`["pwd"]` after a password).
    pub amr: Vec<String>,
    /// For a step-up: the session (its id hash, hex) that is proving a factor again.
    pub step_up_of: Option<String>,
    /// The user must enrol a factor first (required by policy or by the application, and none yet).
    pub enrol: bool,
}

/// Opens a challenge for `user`; returns its id (for the cookie).
pub async fn start(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    user: &User,
    challenge: &Challenge,
) -> Result<String> {
    let id = crypto::random_token();
    let now = deps.now();
    deps.db()
        .tenant(&org.id)
        .insert_one_time_token(&OneTimeToken {
            token_hash: deps.secrets().token_hash(&id),
            org_id: org.id.clone(),
            user_id: Some(user.id.clone()),
            purpose: PURPOSE.into(),
            data: serde_json::to_string(challenge).unwrap_or_default(),
            attempts: 0,
            created_at: now,
            expires_at: now + TTL_SECS,
            consumed_at: None,
        })
        .await?;
    Ok(id)
}

/// The open challenge `id` and its user; `None` when unknown, expired, used or the user is disabled.
pub async fn load(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    id: &str,
) -> Result<Option<(Challenge, User)>> {
    let Some(token) = deps
        .db()
        .tenant(&org.id)
        .one_time_token(&deps.secrets().token_hash(id), PURPOSE)
        .await?
    else {
        return Ok(None);
    };
    if token.consumed_at.is_some() || token.expires_at <= deps.now() {
        return Ok(None);
    }
    let Ok(challenge) = serde_json::from_str::<Challenge>(&token.data) else {
        return Ok(None);
    };
    let Some(user_id) = token.user_id else {
        return Ok(None);
    };
    let user = deps
        .db()
        .tenant(&org.id)
        .user_by_id(&user_id)
        .await?
        .filter(|u| !u.disabled);
    Ok(user.map(|u| (challenge, u)))
}

/// The step-up proof for enrolling a factor inside the open enrolment challenge `id` of `user`: read
/// from the store again (a `Challenge` value alone proves nothing, anyone can build one), and only
/// while the user still has no factor. `None` when the challenge is not that.
pub async fn enrolment_proof(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    id: &str,
    user: &User,
) -> Result<Option<StepUp>> {
    let Some((open, owner)) = load(deps, org, id).await? else {
        return Ok(None);
    };
    if !open.enrol || owner.id != user.id {
        return Ok(None);
    }
    let factors = super::factors(deps, &owner).await?;
    Ok(step_up::for_enrolment_challenge(org, &owner, &factors).ok())
}

/// How a finished challenge ended.
pub enum Finished {
    /// A new session (cookie value included).
    SignedIn(Box<Session>, String),
    /// The existing session proved a factor again.
    SteppedUp,
    /// The challenge was already used (a replayed form) or the stepped-up session is gone.
    Gone,
}

fn merged_amr(first: &[String], method: Method) -> Vec<String> {
    let mut amr: Vec<String> = first.to_vec();
    for m in [method.amr(), AMR_MFA] {
        if !amr.iter().any(|a| a == m) {
            amr.push(m.to_string());
        }
    }
    amr
}

/// Finishes challenge `id` after `method` was proved.
pub async fn finish(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    id: &str,
    challenge: &Challenge,
    user: &User,
    method: Method,
    client: &ClientInfo,
) -> Result<Finished> {
    let now = deps.now();
    if !deps
        .db()
        .tenant(&org.id)
        .consume_one_time_token(&deps.secrets().token_hash(id), PURPOSE, now)
        .await?
    {
        return Ok(Finished::Gone);
    }
    match &challenge.step_up_of {
        Some(hash_hex) => {
            let id_hash = hex::decode(hash_hex).unwrap_or_default();
            let Some(session) = deps.db().tenant(&org.id).session_by_hash(&id_hash).await? else {
                return Ok(Finished::Gone);
            };
            let amr = merged_amr(&session.amr, method);
            let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::MfaStepUp)
                .target("session", &session.public_id)
                .change(None, Some(json!({"method": method.as_str(), "amr": amr})));
            let done = deps
                .db()
                .tenant(&org.id)
                .record_second_factor(&id_hash, &amr, crate::model::sessions::ACR_MFA, now, &audit)
                .await?;
            Ok(if done {
                Finished::SteppedUp
            } else {
                Finished::Gone
            })
        }
        None => {
            let amr = merged_amr(&challenge.amr, method);
            let (session, token) = sessions::start(
                deps,
                org,
                user,
                amr,
                crate::model::sessions::ACR_MFA,
                client,
            )
            .await?;
            Ok(Finished::SignedIn(Box::new(session), token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_gains_the_method_and_mfa_once() {
        let amr = merged_amr(&["pwd".into()], Method::Totp);
        assert_eq!(amr, vec!["pwd", "otp", "mfa"]);
        let again = merged_amr(&amr, Method::Recovery);
        assert_eq!(again, vec!["pwd", "otp", "mfa", "recovery"]);
    }
}
