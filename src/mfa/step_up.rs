//! Step-up: the proof, required by every sensitive operation, that the person behind a session proved a
//! second factor recently. Changing the password, enrolling or removing a factor and renewing recovery
//! codes take a [`StepUp`] argument, and the only ways to get one are the checks in this file, so an entry
//! point that forgets the check (a CLI command, an admin API) does not compile.
//!
//! A proof is bound to the organization, user and (when made from a session) the session it was made
//! for; an operation handed someone else's proof refuses it. It is neither `Clone` nor deserializable,
//! so it cannot be kept or carried past the request that made it.
//!
//! There is deliberately no operator proof: the CLI performs none of these operations (`user create`
//! sets a first password, `user disable`/`enable` go through `users::set_disabled`). An operator path,
//! if one is ever needed, is to be a separate constructor here, named as such and audited as the
//! operator.

use super::Factors;
use crate::error::{Error, Result};
use crate::kernel::{OrgId, SessionId, UserId};
use crate::model::OrgOwned;
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::User;

/// Proof that a sensitive operation may go ahead for one user. No public constructor: see [`prove`].
///
/// It cannot be built outside this module:
/// ```compile_fail
/// use latchkey::kernel::{OrgId, UserId};
/// let forged = latchkey::mfa::step_up::StepUp {
///     org_id: OrgId::from("org_1"),
///     user_id: UserId::from("usr_1"),
///     session_id: None,
/// };
/// ```
/// nor copied to outlive the check:
/// ```compile_fail
/// fn keep(proof: &latchkey::mfa::step_up::StepUp) -> latchkey::mfa::step_up::StepUp {
///     proof.clone()
/// }
/// ```
#[derive(Debug)]
pub struct StepUp {
    org_id: OrgId,
    user_id: UserId,
    /// The session (public id) the proof was made from; `None` for a proof made inside a sign-in
    /// challenge, before any session exists.
    session_id: Option<SessionId>,
}

/// The session must prove a second factor again (or, inside a challenge, the user already has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUpRequired;

impl std::fmt::Display for StepUpRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a recent second-factor proof is required")
    }
}

/// The step-up check: a proof when `session` proved a second factor within the organization's
/// step-up window, or when the user has no factor enrolled (there is nothing to step up with: the
/// organization's policy leads such users to enrol at sign-in, see `challenge`). `factors` must be
/// the session user's own.
pub fn prove(
    org: &Organization,
    session: &Session,
    factors: &Factors,
    now: i64,
) -> std::result::Result<StepUp, StepUpRequired> {
    let someone_elses = factors
        .credentials
        .iter()
        .any(|c| c.user_id != session.user_id);
    if !session.belongs_to(&org.id) || someone_elses {
        return Err(StepUpRequired);
    }
    let window = org.settings.mfa.step_up_minutes as i64 * 60;
    if factors.enrolled() && session.mfa_at.is_none_or(|at| now - at > window) {
        return Err(StepUpRequired);
    }
    Ok(StepUp {
        org_id: org.id.clone(),
        user_id: session.user_id.clone(),
        session_id: Some(session.public_id.clone()),
    })
}

/// The proof inside an enrolment challenge (sign-in, or a session whose organization now requires a
/// factor): the challenge is the fresh authentication, and it only allows enrolling while the user still
/// has no factor, so a leaked password cannot replace a factor enrolled meanwhile. Only `challenge`
/// calls this, after loading the open challenge from the store.
pub(super) fn for_enrolment_challenge(
    org: &Organization,
    user: &User,
    factors: &Factors,
) -> std::result::Result<StepUp, StepUpRequired> {
    if !user.belongs_to(&org.id) || factors.enrolled() {
        return Err(StepUpRequired);
    }
    Ok(StepUp {
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        session_id: None,
    })
}

impl OrgOwned for StepUp {
    fn org_id(&self) -> &OrgId {
        &self.org_id
    }
}

impl StepUp {
    /// Refuses a proof made for another organization or user. A mismatch is a bug in the caller, not
    /// a client mistake, hence an internal error.
    pub(crate) fn check(&self, org: &Organization, user: &User) -> Result<()> {
        if !self.belongs_to(&org.id) || self.user_id != user.id || !user.belongs_to(&org.id) {
            return Err(Error::Internal(
                "step-up proof made for another user".into(),
            ));
        }
        Ok(())
    }

    /// Like [`StepUp::check`], and the proof must also come from `session` (operations that continue
    /// the session, like a password change).
    pub(crate) fn check_session(
        &self,
        org: &Organization,
        user: &User,
        session: &Session,
    ) -> Result<()> {
        self.check(org, user)?;
        if session.user_id != user.id || self.session_id.as_ref() != Some(&session.public_id) {
            return Err(Error::Internal(
                "step-up proof made for another session".into(),
            ));
        }
        Ok(())
    }
}
