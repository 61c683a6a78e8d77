//! An organization's team: its staff members and their roles, and invitations to join.
//!
//! Team Admins (and keys with `members:write`) manage Members: invite and remove them, and make a Member
//! a Team Admin. Anything that touches an Owner or a Team Admin, or makes someone an Owner, also needs
//! [`ManageOwners`] (Owners only). The last Owner cannot be removed or demoted; the store checks that
//! under the organization's row lock, so two concurrent demotions cannot both pass.

use serde::Serialize;

use super::access::{ChangeRoles, Granted, ManageMembers, ManageOwners, role_name};
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasConfig, HasDb, HasMailer, HasPasswords, HasSecrets};
use crate::error::{Error, Result};
use crate::kernel::{InvitationId, UserId};
use crate::model::email::OutgoingEmail;
use crate::model::orgs::{Organization, Role};
use crate::model::staff::{Invitation, StaffMember};
use crate::model::users::User;

/// How long an invitation link works.
pub const INVITATION_SECS: i64 = 7 * 86_400;

fn needs_owner(role: Role) -> bool {
    matches!(role, Role::Owner | Role::Admin)
}

fn owner_only(what: &str) -> Error {
    Error::Forbidden(format!("only an owner can {what}"))
}

async fn member(deps: &impl HasDb, org: &Organization, staff_id: &UserId) -> Result<StaffMember> {
    deps.db()
        .tenant(&org.id)
        .list_staff()
        .await?
        .into_iter()
        .find(|m| &m.staff_id == staff_id)
        .ok_or_else(|| Error::NotFound(format!("team member {staff_id}")))
}

/// Changes a member's role. From Member to Team Admin needs only `ChangeRoles`; touching an Owner or a
/// Team Admin, or making an Owner, needs `owners` too.
pub async fn change_role(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ChangeRoles>,
    owners: Option<&Granted<ManageOwners>>,
    org: &Organization,
    staff_id: &UserId,
    role: Role,
) -> Result<StaffMember> {
    grant.check(org)?;
    let before = member(deps, org, staff_id).await?;
    if (needs_owner(before.role) || role == Role::Owner) && owners.is_none() {
        return Err(owner_only(
            "change an owner's or team admin's role, or name an owner",
        ));
    }
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::MemberRoleChanged)
        .target("staff", staff_id)
        .change(
            Some(serde_json::json!({"role": role_name(before.role)})),
            Some(serde_json::json!({"role": role_name(role)})),
        );
    deps.db()
        .tenant(&org.id)
        .change_membership(staff_id, Some(role), &audit)
        .await?;
    Ok(StaffMember { role, ..before })
}

/// Removes a member from the team (their staff account stays).
pub async fn remove(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageMembers>,
    owners: Option<&Granted<ManageOwners>>,
    org: &Organization,
    staff_id: &UserId,
) -> Result<StaffMember> {
    grant.check(org)?;
    let before = member(deps, org, staff_id).await?;
    if needs_owner(before.role) && owners.is_none() {
        return Err(owner_only("remove an owner or a team admin"));
    }
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::MemberRemoved)
        .target("staff", staff_id)
        .change(
            Some(serde_json::json!({"email": before.email, "role": role_name(before.role)})),
            None,
        );
    deps.db()
        .tenant(&org.id)
        .change_membership(staff_id, None, &audit)
        .await?;
    Ok(before)
}

/// Makes an existing staff account a member with `role`, without an invitation: how an operator names
/// an organization's first Owner.
pub async fn add(
    deps: &(impl HasClock + HasDb),
    actor: &Actor,
    org: &Organization,
    staff: &User,
    role: Role,
) -> Result<()> {
    let audit = NewAuditEvent::new(&org.id, actor, Action::MemberAdded)
        .target("staff", &staff.id)
        .change(
            None,
            Some(serde_json::json!({"email": staff.email, "role": role_name(role)})),
        );
    deps.db()
        .tenant(&org.id)
        .add_membership(&staff.id, role, deps.now(), &audit)
        .await?;
    Ok(())
}

/// An invitation as sent: the link exists only here (and in the queued email).
#[derive(Debug, Serialize)]
pub struct SentInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    #[serde(skip)]
    pub link: String,
}

/// The accept page's URL for an invitation token.
pub fn accept_url(deps: &impl HasConfig, token: &str) -> String {
    let base = deps.config().public_url.as_str().trim_end_matches('/');
    format!("{base}/invitations/accept?token={token}")
}

/// Invites `email` to the team with `role`: a single-use link valid 7 days, stored hashed, mailed
/// through the outbox in the same transaction. Inviting an Owner or Team Admin needs `owners`.
pub async fn invite(
    deps: &(impl HasClock + HasConfig + HasDb + HasSecrets + HasMailer),
    grant: &Granted<ManageMembers>,
    owners: Option<&Granted<ManageOwners>>,
    org: &Organization,
    email: &str,
    role: Role,
) -> Result<SentInvitation> {
    grant.check(org)?;
    if needs_owner(role) && owners.is_none() {
        return Err(owner_only("invite an owner or a team admin"));
    }
    send_invitation(deps, grant.actor(), org, email, role).await
}

/// Sends an invitation on behalf of `actor` (a granted team manager, or an operator naming a new
/// organization's first Owner).
pub(crate) async fn send_invitation(
    deps: &(impl HasClock + HasConfig + HasDb + HasSecrets + HasMailer),
    actor: &Actor,
    org: &Organization,
    email: &str,
    role: Role,
) -> Result<SentInvitation> {
    let (email, email_normalized) = crate::users::normalize_email(email)?;
    let token = crypto::random_token();
    let now = deps.now();
    let invitation = Invitation {
        id: InvitationId::generate(),
        org_id: org.id.clone(),
        email: email.clone(),
        email_normalized,
        role,
        token_hash: deps.secrets().token_hash(&token),
        invited_by: actor.id.clone().unwrap_or_default(),
        created_at: now,
        expires_at: now + INVITATION_SECS,
        accepted_at: None,
        revoked_at: None,
    };
    let link = accept_url(deps, &token);
    let body = format!(
        "You have been invited to help administer {} on Latchkey as {}.\n\n\
         Accept the invitation (the link works once, for 7 days):\n{link}\n\n\
         If you did not expect this, ignore this message.",
        org.name,
        role_name(role)
    );
    let message = OutgoingEmail::new(
        now,
        &org.id,
        &email,
        &format!("Join {} on Latchkey", org.name),
        body,
    );
    let audit = NewAuditEvent::new(&org.id, actor, Action::InvitationSent)
        .target("invitation", &invitation.id)
        .change(
            None,
            Some(serde_json::to_value(&invitation).unwrap_or_default()),
        );
    deps.db()
        .tenant(&org.id)
        .create_invitation(&invitation, &message, &audit)
        .await?;
    deps.wake_email_delivery();
    Ok(SentInvitation { invitation, link })
}

pub async fn revoke_invitation(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageMembers>,
    org: &Organization,
    id: &InvitationId,
) -> Result<()> {
    grant.check(org)?;
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::InvitationRevoked)
        .target("invitation", id);
    if !deps
        .db()
        .tenant(&org.id)
        .revoke_invitation(id, deps.now(), &audit)
        .await?
    {
        return Err(Error::NotFound(format!("pending invitation {id}")));
    }
    Ok(())
}

/// The open invitation behind a link's token, with its organization.
pub async fn open_invitation(
    deps: &(impl HasClock + HasDb + HasSecrets),
    token: &str,
) -> Result<Option<(Invitation, Organization)>> {
    let hash = deps.secrets().token_hash(token);
    let Some(invitation) = deps.db().system().invitation_by_hash(&hash).await? else {
        return Ok(None);
    };
    if !invitation.open(deps.now()) {
        return Ok(None);
    }
    let org = deps.db().system().org_by_id(&invitation.org_id).await?;
    Ok(org.map(|org| (invitation, org)))
}

/// Accepts an invitation: links the staff account with the invited address, creating it (with this
/// password) when there is none. An existing account must accept from its own signed-in session
/// (`signed_in`), so a leaked link cannot attach someone else's account.
pub async fn accept(
    deps: &(impl HasClock + HasConfig + HasDb + HasSecrets + HasPasswords),
    token: &str,
    signed_in: Option<&User>,
    new_account: Option<super::SetupInput<'_>>,
) -> Result<(User, Organization)> {
    let gone = || {
        Error::invalid(
            "token",
            "this invitation is invalid, used, revoked or expired",
        )
    };
    let (invitation, org) = open_invitation(deps, token).await?.ok_or_else(gone)?;
    let staff_org = super::staff_org(deps).await?;
    let existing = deps
        .db()
        .tenant(&staff_org.id)
        .user_by_email(&invitation.email_normalized)
        .await?;
    let user = match (existing, signed_in, new_account) {
        (Some(existing), Some(me), _) if existing.id == me.id => existing,
        (Some(_), _, _) => {
            return Err(Error::Forbidden(
                "sign in to the staff account with the invited address to accept".into(),
            ));
        }
        (None, _, Some(input)) => {
            if crate::users::normalize_email(input.email)?.1 != invitation.email_normalized {
                return Err(Error::invalid(
                    "email",
                    "the invitation is for another address",
                ));
            }
            super::create_account(deps, &Actor::system(), input, false).await?
        }
        (None, _, None) => return Err(Error::invalid("password", "choose a password")),
    };
    let actor = Actor::staff(&user.id, role_name(invitation.role), None, None);
    let audit = NewAuditEvent::new(&org.id, &actor, Action::InvitationAccepted)
        .target("invitation", &invitation.id)
        .change(
            None,
            Some(serde_json::json!({"staff_id": user.id, "role": role_name(invitation.role)})),
        );
    if !deps
        .db()
        .tenant(&org.id)
        .accept_invitation(
            &invitation.id,
            &user.id,
            invitation.role,
            deps.now(),
            &audit,
        )
        .await?
    {
        return Err(gone());
    }
    Ok((user, org))
}
