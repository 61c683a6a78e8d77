//! Staff: the people who administer organizations. They are not end users of those organizations: each
//! is a user of the built-in staff organization, signs in through its hosted pages (with every protection
//! end users have: limits, lockout, enumeration protection, sessions, audit), and must use a second
//! factor (the staff organization's MFA policy is "everyone", so sign-in leads through enrolment).
//! A staff member's role in an organization is a row of `staff_memberships`; Owners of the staff
//! organization itself are the platform operators, who create organizations and name their first Owner.
//!
//! The first operator is made from a single-use setup link (256 bits, stored hashed, one hour) that
//! `latchkey serve` prints on an empty database, or that `latchkey staff create --operator` prints.

pub mod access;
pub mod api_keys;
pub mod team;

use serde::{Deserialize, Serialize};

use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasConfig, HasDb, HasPasswords, HasSecrets};
use crate::error::{Error, Result};
use crate::kernel::OrgId;
use crate::model::onetime::OneTimeToken;
use crate::model::orgs::{OrgSettings, Organization, Role};
use crate::model::settings::MfaPolicy;
use crate::model::users::User;
use crate::orgs::{self, NewOrganization};
use access::{Principal, StaffPrincipal};

/// Where the staff organization's id is kept in `instance_meta`.
const STAFF_ORG_META: &str = "staff_org_id";
/// The purpose of setup-link tokens (in the staff organization's one-time tokens).
pub const SETUP_PURPOSE: &str = "staff_setup";
/// How long a setup link works.
pub const SETUP_LINK_SECS: i64 = 3600;
/// The slug the staff organization is created with (another if an organization already has it).
const STAFF_SLUG: &str = "staff";

/// The staff organization's settings: no self-registration, a second factor for everyone.
fn staff_settings() -> OrgSettings {
    let mut settings = OrgSettings {
        self_registration: false,
        ..OrgSettings::default()
    };
    settings.mfa.policy = MfaPolicy::Everyone;
    settings
}

/// The staff organization, created on first use. Its id is recorded in the instance metadata, so an
/// ordinary organization that happens to be called `staff` never becomes it.
pub async fn staff_org(deps: &(impl HasClock + HasDb + HasSecrets)) -> Result<Organization> {
    let system = deps.db().system();
    if let Some(id) = deps.db().meta_get(STAFF_ORG_META).await? {
        let id = OrgId::from(String::from_utf8_lossy(&id).into_owned());
        return system
            .org_by_id(&id)
            .await?
            .ok_or_else(|| Error::Internal("the staff organization is missing".into()));
    }
    let slug = match system.org_by_slug(STAFF_SLUG).await? {
        None => STAFF_SLUG.to_string(),
        Some(_) => format!("{STAFF_SLUG}-{}", &hex::encode(crypto::random_bytes(3))),
    };
    let org = orgs::create(
        deps,
        &Actor::system(),
        NewOrganization {
            slug: &slug,
            name: "Latchkey staff",
        },
    )
    .await?;
    let org = orgs::update(deps, &Actor::system(), &org, None, staff_settings()).await?;
    deps.db()
        .meta_insert_if_absent(STAFF_ORG_META, org.id.as_bytes())
        .await?;
    // Two instances starting at once: the one recorded first wins; the other's is left unused.
    let recorded = deps
        .db()
        .meta_get(STAFF_ORG_META)
        .await?
        .unwrap_or_default();
    let id = OrgId::from(String::from_utf8_lossy(&recorded).into_owned());
    deps.db()
        .system()
        .org_by_id(&id)
        .await?
        .ok_or_else(|| Error::Internal("the staff organization is missing".into()))
}

/// The staff organization's id, when it exists (never creates it). Listings of tenants leave it out: it
/// is Latchkey's own, administered through `latchkey staff`, not a customer organization.
pub async fn staff_org_id(deps: &impl HasDb) -> Result<Option<OrgId>> {
    Ok(deps
        .db()
        .meta_get(STAFF_ORG_META)
        .await?
        .map(|id| OrgId::from(String::from_utf8_lossy(&id).into_owned())))
}

/// Whether a platform operator exists yet.
pub async fn has_operator(deps: &(impl HasClock + HasDb + HasSecrets)) -> Result<bool> {
    let staff = staff_org(deps).await?;
    let team = deps.db().tenant(&staff.id).list_staff().await?;
    Ok(team.iter().any(|m| m.role == Role::Owner))
}

/// What a setup link creates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetupGrant {
    /// The address the account must have; `None` lets the person choose (the first-start link).
    pub email: Option<String>,
    pub operator: bool,
}

/// Issues a single-use setup link and returns its URL. Audited in the staff organization.
pub async fn issue_setup_link(
    deps: &(impl HasClock + HasConfig + HasDb + HasSecrets),
    actor: &Actor,
    grant: &SetupGrant,
) -> Result<String> {
    if let Some(email) = &grant.email {
        crate::users::normalize_email(email)?;
    }
    let staff = staff_org(deps).await?;
    let token = crypto::random_token();
    let now = deps.now();
    let record = OneTimeToken {
        token_hash: deps.secrets().token_hash(&token),
        org_id: staff.id.clone(),
        user_id: None,
        purpose: SETUP_PURPOSE.into(),
        data: serde_json::to_string(grant).unwrap_or_else(|_| "{}".into()),
        attempts: 0,
        created_at: now,
        expires_at: now + SETUP_LINK_SECS,
        consumed_at: None,
    };
    let audit = NewAuditEvent::new(&staff.id, actor, Action::StaffSetupLinkIssued)
        .target("setup_link", "staff")
        .change(None, Some(serde_json::to_value(grant).unwrap_or_default()));
    deps.db()
        .tenant(&staff.id)
        .issue_one_time_token(Some(&record), None, &audit)
        .await?;
    Ok(setup_url(deps, &token))
}

/// The setup page's URL for `token`.
pub fn setup_url(deps: &impl HasConfig, token: &str) -> String {
    let base = deps.config().public_url.as_str().trim_end_matches('/');
    format!("{base}/setup?token={token}")
}

/// The open setup grant behind a link's token, if it still works.
pub async fn setup_grant(
    deps: &(impl HasClock + HasDb + HasSecrets),
    token: &str,
) -> Result<Option<SetupGrant>> {
    let staff = staff_org(deps).await?;
    let hash = deps.secrets().token_hash(token);
    let record = deps
        .db()
        .tenant(&staff.id)
        .one_time_token(&hash, SETUP_PURPOSE)
        .await?;
    let now = deps.now();
    Ok(record
        .filter(|r| r.consumed_at.is_none() && now < r.expires_at)
        .and_then(|r| serde_json::from_str(&r.data).ok()))
}

/// What the person types on the setup page.
pub struct SetupInput<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub password: &'a str,
}

/// Uses a setup link once: creates the staff account (its email counts as verified: the link reached
/// them, or an operator named it) and, for an operator link, makes it an Owner of the staff organization.
/// The account has no second factor yet; its first sign-in leads through enrolment.
pub async fn complete_setup(
    deps: &(impl HasClock + HasDb + HasSecrets + HasPasswords),
    token: &str,
    input: SetupInput<'_>,
) -> Result<User> {
    let grant = setup_grant(deps, token)
        .await?
        .ok_or_else(|| Error::invalid("token", "this setup link is invalid, used or expired"))?;
    let staff = staff_org(deps).await?;
    let (_, wanted) = crate::users::normalize_email(input.email)?;
    if let Some(fixed) = &grant.email
        && crate::users::normalize_email(fixed)?.1 != wanted
    {
        return Err(Error::invalid("email", "this link is for another address"));
    }
    crate::users::check_password(&staff, input.password, input.email, input.name)?;
    let hash = deps.secrets().token_hash(token);
    let now = deps.now();
    let store = deps.db().tenant(&staff.id);
    if !store
        .consume_one_time_token(&hash, SETUP_PURPOSE, now)
        .await?
    {
        return Err(Error::invalid(
            "token",
            "this setup link is invalid, used or expired",
        ));
    }
    create_account(deps, &Actor::system(), input, grant.operator).await
}

/// Creates a staff account with a password; an operator is also made Owner of the staff organization.
pub async fn create_account(
    deps: &(impl HasClock + HasDb + HasSecrets + HasPasswords),
    actor: &Actor,
    input: SetupInput<'_>,
    operator: bool,
) -> Result<User> {
    let staff = staff_org(deps).await?;
    let user = crate::users::create(
        deps,
        actor,
        &staff,
        crate::users::NewUser {
            email: input.email,
            password: Some(input.password),
            name: input.name,
            verified: true,
            role: None,
        },
    )
    .await?;
    if operator {
        let audit = NewAuditEvent::new(&staff.id, actor, Action::StaffCreated)
            .target("staff", &user.id)
            .change(
                None,
                Some(serde_json::json!({"email": user.email, "operator": true})),
            );
        deps.db()
            .tenant(&staff.id)
            .add_membership(&user.id, Role::Owner, deps.now(), &audit)
            .await?;
    }
    Ok(user)
}

/// The staff member behind a staff-organization session, or `None` when the session is not a staff
/// session that proved a second factor (a staff account without one is sent to enrol at sign-in and can
/// do nothing else before).
pub async fn principal(
    deps: &(impl HasClock + HasDb + HasSecrets),
    staff: &Organization,
    user: User,
    session: crate::model::sessions::Session,
) -> Result<Option<Principal>> {
    if session.mfa_at.is_none() || user.disabled {
        return Ok(None);
    }
    let operator = deps
        .db()
        .tenant(&staff.id)
        .membership_role(&user.id)
        .await?
        == Some(Role::Owner);
    Ok(Some(Principal::Staff(StaffPrincipal {
        user,
        session,
        operator,
    })))
}

/// The role of a staff member in `org`.
pub async fn role_in(
    deps: &impl HasDb,
    org: &Organization,
    principal: &Principal,
) -> Result<Option<Role>> {
    match principal.staff_id() {
        Some(id) => Ok(deps.db().tenant(&org.id).membership_role(id).await?),
        None => Ok(None),
    }
}
