//! Who may do what in an organization: the capability matrix of `docs/rbac.md`, enforced by types.
//!
//! Every admin operation takes a [`Granted<C>`] for the capability `C` it needs (`Granted<ManageApps>`
//! to create an application, `Granted<DeleteOrg>` to delete the organization). The only way to get one
//! is [`Access::grant`], which checks the matrix for a staff member's role, the scopes of an API key, and
//! the step-up window for the capabilities that need a fresh second factor. So no entry point (an HTTP
//! handler, a console page, a future SDK) can forget a check: without the grant the call does not compile.
//! `Granted` has no public constructor and is not `Clone`:
//! ```compile_fail
//! fn forge(org: latchkey::kernel::OrgId) -> latchkey::staff::access::Granted<latchkey::staff::access::DeleteOrg> {
//!     latchkey::staff::access::Granted { org_id: org, actor: latchkey::audit::Actor::system(), role: None, _capability: std::marker::PhantomData }
//! }
//! ```

use std::collections::BTreeSet;
use std::marker::PhantomData;

use crate::audit::Actor;
use crate::error::{Error, Result};
use crate::kernel::{ApiKeyId, OrgId, UserId};
use crate::model::OrgOwned;
use crate::model::orgs::{Organization, Role};
use crate::model::sessions::Session;
use crate::model::staff::ApiKey;
use crate::model::users::User;

/// A scope: one row of the capability matrix. API keys carry a set of them; roles imply a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// View the organization, its applications (never secrets), users, sessions, settings, team, keys.
    OrgRead,
    /// Create, edit and delete applications; rotate client secrets.
    AppsWrite,
    /// Create, edit, disable and delete users; sign them out; reset their second factors.
    UsersWrite,
    /// Change the organization's settings.
    SettingsWrite,
    /// Rotate the organization's signing keys.
    SigningKeysWrite,
    /// Invite and remove Members; make a Member a Team Admin.
    MembersWrite,
    /// Invite, remove or change Owners and Team Admins; transfer ownership.
    OwnersWrite,
    /// Create, rotate and revoke API keys (never held by an API key itself).
    ApiKeysWrite,
    /// Read and export the audit log.
    AuditRead,
    /// Delete the organization.
    OrgDelete,
}

impl Scope {
    pub const ALL: [Scope; 10] = [
        Scope::OrgRead,
        Scope::AppsWrite,
        Scope::UsersWrite,
        Scope::SettingsWrite,
        Scope::SigningKeysWrite,
        Scope::MembersWrite,
        Scope::OwnersWrite,
        Scope::ApiKeysWrite,
        Scope::AuditRead,
        Scope::OrgDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OrgRead => "org:read",
            Scope::AppsWrite => "apps:write",
            Scope::UsersWrite => "users:write",
            Scope::SettingsWrite => "settings:write",
            Scope::SigningKeysWrite => "signing_keys:write",
            Scope::MembersWrite => "members:write",
            Scope::OwnersWrite => "owners:write",
            Scope::ApiKeysWrite => "api_keys:write",
            Scope::AuditRead => "audit:read",
            Scope::OrgDelete => "org:delete",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The matrix: whether a role holds this scope.
    pub fn held_by(self, role: Role) -> bool {
        match self {
            Scope::OrgRead => true,
            Scope::OwnersWrite | Scope::OrgDelete => role == Role::Owner,
            _ => matches!(role, Role::Owner | Role::Admin),
        }
    }

    /// Whether an API key may carry this scope. A key never creates or changes keys, and never does
    /// what needs a person with a second factor: changing Owners and Team Admins or deleting the
    /// organization (a key has no step-up, so a leaked one must not be able to take the organization).
    pub fn grantable_to_keys(self) -> bool {
        !matches!(
            self,
            Scope::ApiKeysWrite | Scope::OwnersWrite | Scope::OrgDelete
        )
    }
}

/// A capability an operation needs: the scope that allows it, and whether a staff session must have
/// proved a second factor within the organization's step-up window.
pub trait Capability {
    const SCOPE: Scope;
    const STEP_UP: bool = false;
}

macro_rules! capabilities {
    ($($(#[$doc:meta])* $name:ident => $scope:ident $(, $step_up:literal)?;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;
        impl Capability for $name {
            const SCOPE: Scope = Scope::$scope;
            $(const STEP_UP: bool = $step_up;)?
        }
    )*};
}

capabilities! {
    /// Read anything but secrets.
    ViewOrg => OrgRead;
    ManageApps => AppsWrite;
    /// A new client secret (shown once); a sensitive operation.
    RotateClientSecret => AppsWrite, true;
    ManageUsers => UsersWrite;
    DeleteUsers => UsersWrite, true;
    ManageSettings => SettingsWrite;
    RotateSigningKeys => SigningKeysWrite;
    /// Invite, remove and (within the role rules in `team`) change Members.
    ManageMembers => MembersWrite;
    /// Change a role; which roles the caller may touch is decided by `team`.
    ChangeRoles => MembersWrite, true;
    /// Invite, remove or change Owners and Team Admins (on top of `ManageMembers` or `ChangeRoles`).
    ManageOwners => OwnersWrite, true;
    CreateApiKeys => ApiKeysWrite, true;
    ManageApiKeys => ApiKeysWrite;
    ReadAudit => AuditRead;
    ExportAudit => AuditRead, true;
    DeleteOrg => OrgDelete, true;
}

/// Proof that the caller may use capability `C` in one organization, with the actor to audit.
#[derive(Debug)]
pub struct Granted<C> {
    org_id: OrgId,
    actor: Actor,
    role: Option<Role>,
    _capability: PhantomData<C>,
}

impl<C: Capability> Granted<C> {
    /// Who acts, for the audit event (staff id and role, or the API key).
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The caller's role when a staff member (an API key has none).
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Refuses a grant made for another organization (a bug in the caller, hence internal).
    pub fn check(&self, org: &Organization) -> Result<()> {
        if !self.belongs_to(&org.id) {
            return Err(Error::Internal(
                "capability granted for another organization".into(),
            ));
        }
        Ok(())
    }
}

impl<C> OrgOwned for Granted<C> {
    fn org_id(&self) -> &OrgId {
        &self.org_id
    }
}

/// A signed-in staff member: a user of the staff organization with a session that proved a second factor.
#[derive(Debug, Clone)]
pub struct StaffPrincipal {
    pub user: User,
    pub session: Session,
    /// An Owner of the staff organization: may create organizations and see all of them.
    pub operator: bool,
}

/// Who is calling the admin API.
#[derive(Debug, Clone)]
pub enum Principal {
    Staff(StaffPrincipal),
    ApiKey(ApiKey),
}

impl Principal {
    /// A stable id for idempotency records and rate limits.
    pub fn id(&self) -> String {
        match self {
            Principal::Staff(s) => s.user.id.to_string(),
            Principal::ApiKey(k) => k.id.to_string(),
        }
    }

    pub fn staff_id(&self) -> Option<&UserId> {
        match self {
            Principal::Staff(s) => Some(&s.user.id),
            Principal::ApiKey(_) => None,
        }
    }

    pub fn api_key_id(&self) -> Option<&ApiKeyId> {
        match self {
            Principal::ApiKey(k) => Some(&k.id),
            Principal::Staff(_) => None,
        }
    }
}

/// What a principal may do in one organization. Made only by [`Access::resolve`].
#[derive(Debug)]
pub struct Access {
    org_id: OrgId,
    step_up_minutes: u64,
    now: i64,
    actor: Actor,
    holder: Holder,
}

#[derive(Debug)]
enum Holder {
    Staff {
        role: Role,
        mfa_at: Option<i64>,
    },
    Key {
        scopes: BTreeSet<Scope>,
    },
    /// The person at the server's shell (the CLI): trusted with everything, audited as the operator.
    Shell,
}

impl Access {
    /// The principal's access to `org`: its role there (staff) or its scopes (an API key of `org`).
    /// `None` when it has no access at all, which callers answer as "not found" so an organization's
    /// existence is not revealed to outsiders.
    pub fn resolve(
        org: &Organization,
        staff_org: &Organization,
        principal: &Principal,
        role: Option<Role>,
        ip: Option<String>,
        user_agent: Option<String>,
        now: i64,
    ) -> Option<Access> {
        let (actor, holder) = match principal {
            Principal::Staff(staff) => {
                let role = role?;
                (
                    Actor::staff(&staff.user.id, role_name(role), ip, user_agent),
                    Holder::Staff {
                        role,
                        mfa_at: staff.session.mfa_at,
                    },
                )
            }
            Principal::ApiKey(key) => {
                if !key.belongs_to(&org.id) || !key.usable(now) {
                    return None;
                }
                let scopes = key.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
                (
                    Actor::api_key(&key.id, ip, user_agent),
                    Holder::Key { scopes },
                )
            }
        };
        // The stricter of the two windows: an administrator with settings:write cannot widen their own.
        let step_up_minutes = org
            .settings
            .mfa
            .step_up_minutes
            .min(staff_org.settings.mfa.step_up_minutes);
        Some(Access {
            org_id: org.id.clone(),
            step_up_minutes,
            now,
            actor,
            holder,
        })
    }

    /// The CLI's access: the operator at the shell, who can already read and write the database, may do
    /// everything, audited as the operator. Only the CLI calls this (the break-glass path).
    pub fn shell_operator(org: &Organization) -> Access {
        Access {
            org_id: org.id.clone(),
            step_up_minutes: org.settings.mfa.step_up_minutes,
            now: 0,
            actor: Actor::operator(),
            holder: Holder::Shell,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self.holder {
            Holder::Staff { role, .. } => Some(role),
            Holder::Key { .. } | Holder::Shell => None,
        }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Whether the caller holds `scope` (by role or by key), step-up aside.
    pub fn holds(&self, scope: Scope) -> bool {
        match &self.holder {
            Holder::Staff { role, .. } => scope.held_by(*role),
            Holder::Key { scopes } => scopes.contains(&scope) && scope.grantable_to_keys(),
            Holder::Shell => true,
        }
    }

    /// The Owner-only capability when the caller holds it; `None` when the role or scopes lack it.
    /// A stale second factor is still an error (step-up), not a quiet "no".
    pub fn owner_grant(&self) -> Result<Option<Granted<ManageOwners>>> {
        match self.grant::<ManageOwners>() {
            Ok(grant) => Ok(Some(grant)),
            Err(Error::Forbidden(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The scopes the caller holds.
    pub fn scopes(&self) -> Vec<Scope> {
        Scope::ALL.into_iter().filter(|s| self.holds(*s)).collect()
    }

    /// The grant for capability `C`, or why not: `Forbidden` without the scope, `StepUpRequired` for a
    /// staff session whose last second-factor proof is older than the organization's window.
    pub fn grant<C: Capability>(&self) -> Result<Granted<C>> {
        if !self.holds(C::SCOPE) {
            let who = match &self.holder {
                Holder::Staff { role, .. } => format!("the {} role", role_name(*role)),
                Holder::Key { .. } | Holder::Shell => "this API key".into(),
            };
            return Err(Error::Forbidden(format!(
                "{who} does not allow this (it needs {})",
                C::SCOPE.as_str()
            )));
        }
        if let Holder::Staff { mfa_at, .. } = self.holder {
            let window = self.step_up_minutes as i64 * 60;
            if C::STEP_UP && mfa_at.is_none_or(|at| self.now - at > window) {
                return Err(Error::StepUpRequired);
            }
        }
        Ok(Granted {
            org_id: self.org_id.clone(),
            actor: self.actor.clone(),
            role: self.role(),
            _capability: PhantomData,
        })
    }
}

/// How a role is named in the API, the audit log and `docs/rbac.md`.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "team_admin",
        Role::Member => "member",
    }
}

/// The role named `name` (`owner`, `team_admin`, `member`).
pub fn parse_role(name: &str) -> Option<Role> {
    match name {
        "owner" => Some(Role::Owner),
        "team_admin" => Some(Role::Admin),
        "member" => Some(Role::Member),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_matches_docs_rbac() {
        use Scope::*;
        let owner: Vec<_> = Scope::ALL
            .into_iter()
            .filter(|s| s.held_by(Role::Owner))
            .collect();
        assert_eq!(owner, Scope::ALL.to_vec());
        let admin: Vec<_> = Scope::ALL
            .into_iter()
            .filter(|s| s.held_by(Role::Admin))
            .collect();
        assert_eq!(
            admin,
            vec![
                OrgRead,
                AppsWrite,
                UsersWrite,
                SettingsWrite,
                SigningKeysWrite,
                MembersWrite,
                ApiKeysWrite,
                AuditRead
            ]
        );
        let member: Vec<_> = Scope::ALL
            .into_iter()
            .filter(|s| s.held_by(Role::Member))
            .collect();
        assert_eq!(member, vec![OrgRead]);
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert!(!ApiKeysWrite.grantable_to_keys());
        assert!(!OwnersWrite.grantable_to_keys() && !OrgDelete.grantable_to_keys());
    }
}
