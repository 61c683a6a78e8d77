//! The admin API's operations on an organization's resources. Each takes the [`Granted`] capability it
//! needs, so the matrix of `docs/rbac.md` is enforced here and not in handlers; each is audited with the
//! grant's actor (staff member and role, or API key) and calls the same feature code the CLI and the
//! hosted pages use (`apps`, `users`, `orgs`, `keys`), so no rule has a second implementation.

pub mod audit_log;
pub mod users;

use serde::Serialize;

use crate::apps::{self, AppChanges, CreatedApplication, NewApplication};
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::deps::{HasClock, HasConfig, HasDb, HasMailer, HasSecrets};
use crate::error::{Error, Result};
use crate::model::OrgOwned;
use crate::model::apps::Application;
use crate::model::keys::SigningKeyRecord;
use crate::model::orgs::{OrgSettings, Organization, Role};
use crate::model::staff::Membership;
use crate::staff::access::{
    DeleteOrg, Granted, ManageApps, ManageSettings, Principal, RotateClientSecret,
    RotateSigningKeys, ViewOrg,
};
use crate::staff::team;

/// The largest page any list returns.
pub const MAX_PAGE: i64 = 200;
/// The page size when the caller names none.
pub const DEFAULT_PAGE: i64 = 50;

/// Checks a requested page size.
pub fn page_size(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid("limit", format!("must be 1 to {MAX_PAGE}"))),
    }
}

/// One page of a list and the cursor of the next (absent on the last page).
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of up to `limit` items from `items` (fetched with one extra to know whether more follow).
    pub fn of(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Page<T> {
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Page { items, next_cursor }
    }
}

/// A platform operator: made only from a staff principal that is one.
pub struct Operator {
    actor: Actor,
}

impl Operator {
    pub fn of(principal: &Principal, ip: Option<String>, ua: Option<String>) -> Result<Operator> {
        match principal {
            Principal::Staff(staff) if staff.operator => Ok(Operator {
                actor: Actor::staff(&staff.user.id, "operator", ip, ua),
            }),
            _ => Err(Error::Forbidden(
                "only platform operators can do this".into(),
            )),
        }
    }
}

/// What the operator names when creating an organization.
pub struct NewOrg<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub owner_email: &'a str,
}

/// The organization an operator created, and how its first Owner joins.
#[derive(Debug, Serialize)]
pub struct CreatedOrg {
    pub organization: Organization,
    /// True when the owner already had a staff account and was made Owner directly; false when an
    /// Owner invitation was emailed instead.
    pub owner_added: bool,
}

/// Creates an organization (operators only) and names its first Owner: an existing staff account
/// becomes Owner at once; anyone else is sent an Owner invitation.
pub async fn create_org(
    deps: &(impl HasClock + HasConfig + HasDb + HasSecrets + HasMailer),
    operator: &Operator,
    input: NewOrg<'_>,
) -> Result<CreatedOrg> {
    let (_, owner) = crate::users::normalize_email(input.owner_email)
        .map_err(|_| Error::invalid("owner_email", "is not a valid email address"))?;
    let org = crate::orgs::create(
        deps,
        &operator.actor,
        crate::orgs::NewOrganization {
            slug: input.slug,
            name: input.name,
        },
    )
    .await?;
    let staff_org = crate::staff::staff_org(deps).await?;
    let existing = deps
        .db()
        .tenant(&staff_org.id)
        .user_by_email(&owner)
        .await?;
    let owner_added = match existing {
        Some(staff) => {
            team::add(deps, &operator.actor, &org, &staff, Role::Owner).await?;
            true
        }
        None => {
            team::send_invitation(deps, &operator.actor, &org, input.owner_email, Role::Owner)
                .await?;
            false
        }
    };
    Ok(CreatedOrg {
        organization: org,
        owner_added,
    })
}

/// The organizations a principal can see: every one for an operator, its memberships for staff, its
/// own for an API key. Operators page through all of them by slug.
pub async fn list_orgs(
    deps: &(impl HasClock + HasDb),
    principal: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Page<Membership>> {
    let staff_org = crate::staff::staff_org_id(deps).await?;
    let all: Vec<Membership> = match principal {
        Principal::Staff(staff) if staff.operator => deps
            .db()
            .system()
            .orgs_page(after, limit + 2)
            .await?
            .into_iter()
            .filter(|o| Some(&o.id) != staff_org.as_ref())
            .map(|o| Membership {
                org_id: o.id,
                slug: o.slug,
                name: o.name,
                role: Role::Member,
            })
            .collect(),
        Principal::Staff(staff) => deps
            .db()
            .system()
            .memberships_of(&staff.user.id)
            .await?
            .into_iter()
            .filter(|m| Some(&m.org_id) != staff_org.as_ref())
            .filter(|m| after.is_none_or(|a| m.slug.as_str() > a))
            .collect(),
        Principal::ApiKey(key) => deps
            .db()
            .system()
            .org_by_id(&key.org_id)
            .await?
            .filter(|o| after.is_none_or(|a| o.slug.as_str() > a))
            .map(|o| Membership {
                org_id: o.id,
                slug: o.slug,
                name: o.name,
                role: Role::Member,
            })
            .into_iter()
            .collect(),
    };
    Ok(Page::of(all, limit, |m| m.slug.clone()))
}

/// Deletes the organization with everything it owns; its audit log stays (append-only, verifiable).
pub async fn delete_org(
    deps: &(impl HasClock + HasDb + HasSecrets),
    grant: &Granted<DeleteOrg>,
    org: &Organization,
) -> Result<()> {
    grant.check(org)?;
    let staff = crate::staff::staff_org(deps).await?;
    if org.belongs_to(&staff.id) {
        return Err(Error::Conflict(
            "the staff organization cannot be deleted".into(),
        ));
    }
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::OrgDeleted)
        .target("organization", &org.id)
        .change(Some(serde_json::to_value(org).unwrap_or_default()), None);
    deps.db().tenant(&org.id).delete_org(&audit).await?;
    Ok(())
}

/// Replaces the name and settings after checking them (the same rules as the CLI).
pub async fn update_settings(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageSettings>,
    org: &Organization,
    name: Option<&str>,
    settings: OrgSettings,
) -> Result<Organization> {
    grant.check(org)?;
    crate::orgs::update(deps, grant.actor(), org, name, settings).await
}

pub async fn list_apps(
    deps: &impl HasDb,
    grant: &Granted<ViewOrg>,
    org: &Organization,
) -> Result<Vec<Application>> {
    grant.check(org)?;
    Ok(deps.db().tenant(&org.id).list_apps().await?)
}

pub async fn app(
    deps: &impl HasDb,
    grant: &Granted<ViewOrg>,
    org: &Organization,
    client_id: &str,
) -> Result<Application> {
    grant.check(org)?;
    find_app(deps, org, client_id).await
}

async fn find_app(deps: &impl HasDb, org: &Organization, client_id: &str) -> Result<Application> {
    deps.db()
        .tenant(&org.id)
        .app_by_client_id(client_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("application {client_id:?}")))
}

pub async fn create_app(
    deps: &(impl HasClock + HasDb + HasSecrets),
    grant: &Granted<ManageApps>,
    org: &Organization,
    input: NewApplication,
) -> Result<CreatedApplication> {
    grant.check(org)?;
    apps::create(deps, grant.actor(), org, input).await
}

pub async fn update_app(
    deps: &(impl HasClock + HasDb + HasSecrets),
    grant: &Granted<ManageApps>,
    org: &Organization,
    client_id: &str,
    changes: AppChanges,
) -> Result<Application> {
    grant.check(org)?;
    apps::update(deps, grant.actor(), org, client_id, changes).await
}

pub async fn delete_app(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageApps>,
    org: &Organization,
    client_id: &str,
) -> Result<()> {
    grant.check(org)?;
    let app = find_app(deps, org, client_id).await?;
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::AppDeleted)
        .target("application", &app.id)
        .change(Some(serde_json::to_value(&app).unwrap_or_default()), None);
    deps.db()
        .tenant(&org.id)
        .delete_app(&app.id, &audit)
        .await?;
    Ok(())
}

pub async fn rotate_client_secret(
    deps: &(impl HasClock + HasDb + HasSecrets),
    grant: &Granted<RotateClientSecret>,
    org: &Organization,
    client_id: &str,
    grace_secs: u64,
) -> Result<(Application, String)> {
    grant.check(org)?;
    apps::rotate_secret(deps, grant.actor(), org, client_id, grace_secs).await
}

pub async fn signing_keys(
    deps: &impl HasDb,
    grant: &Granted<ViewOrg>,
    org: &Organization,
) -> Result<Vec<SigningKeyRecord>> {
    grant.check(org)?;
    Ok(deps.db().tenant(&org.id).signing_keys().await?)
}

pub async fn rotate_signing_keys(
    deps: &(impl HasClock + HasConfig + HasDb + HasSecrets),
    grant: &Granted<RotateSigningKeys>,
    org: &Organization,
) -> Result<Vec<crate::keys::Rotation>> {
    grant.check(org)?;
    crate::keys::rotate(deps, grant.actor(), org).await
}
