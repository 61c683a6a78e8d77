//! Administering an organization's users: list and search, create, rename, disable, delete, sign out,
//! reset second factors. Each operation takes its grant; the rules are those of `users` and `sessions`.

use serde::Serialize;

use super::Page;
use crate::audit::{Action, NewAuditEvent};
use crate::deps::{HasClock, HasDb, HasPasswords};
use crate::error::{Error, Result};
use crate::kernel::UserId;
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::{CredentialKind, User};
use crate::staff::access::{DeleteUsers, Granted, ManageUsers, ViewOrg};
use crate::users::{self, NewUser};

/// Up to `limit` users in email order after the cursor (the last email of the previous page),
/// optionally only those whose email starts with `prefix` (compared in canonical, lower-case form).
pub async fn list(
    deps: &impl HasDb,
    grant: &Granted<ViewOrg>,
    org: &Organization,
    after: Option<&str>,
    prefix: Option<&str>,
    limit: i64,
) -> Result<Page<User>> {
    grant.check(org)?;
    let prefix = prefix.map(|p| p.trim().to_lowercase());
    if prefix.as_ref().is_some_and(|p| p.chars().count() > 254) {
        return Err(Error::invalid(
            "email_prefix",
            "must be at most 254 characters",
        ));
    }
    let found = deps
        .db()
        .tenant(&org.id)
        .users_page(after, prefix.as_deref(), limit + 1)
        .await?;
    Ok(Page::of(found, limit, |u| u.email_normalized.clone()))
}

pub async fn get(
    deps: &impl HasDb,
    grant: &Granted<ViewOrg>,
    org: &Organization,
    id: &UserId,
) -> Result<User> {
    grant.check(org)?;
    find(deps, org, id).await
}

async fn find(deps: &impl HasDb, org: &Organization, id: &UserId) -> Result<User> {
    deps.db()
        .tenant(&org.id)
        .user_by_id(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {id}")))
}

pub async fn create(
    deps: &(impl HasClock + HasDb + HasPasswords),
    grant: &Granted<ManageUsers>,
    org: &Organization,
    input: NewUser<'_>,
) -> Result<User> {
    grant.check(org)?;
    users::create(deps, grant.actor(), org, input).await
}

/// What an update changes; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct UserChanges<'a> {
    /// A new display name; `Some("")` clears it.
    pub name: Option<&'a str>,
    pub disabled: Option<bool>,
}

pub async fn update(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageUsers>,
    org: &Organization,
    id: &UserId,
    changes: UserChanges<'_>,
) -> Result<User> {
    grant.check(org)?;
    let mut user = find(deps, org, id).await?;
    if let Some(name) = changes.name {
        let name = match name.trim() {
            "" => None,
            n => Some(crate::orgs::validate_name("name", n)?),
        };
        let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::UserUpdated)
            .target("user", &user.id)
            .change(
                Some(serde_json::json!({"name": user.name})),
                Some(serde_json::json!({"name": name})),
            );
        deps.db()
            .tenant(&org.id)
            .update_user_name(&user.id, name.as_deref(), deps.now(), &audit)
            .await?;
        user.name = name;
    }
    if let Some(disabled) = changes.disabled {
        user = users::set_disabled(deps, grant.actor(), org, &user.email, disabled)
            .await?
            .user;
    }
    find(deps, org, &user.id).await
}

/// Deletes the user with their credentials, sessions, grants and consents.
pub async fn delete(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<DeleteUsers>,
    org: &Organization,
    id: &UserId,
) -> Result<()> {
    grant.check(org)?;
    let user = find(deps, org, id).await?;
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::UserDeleted)
        .target("user", &user.id)
        .change(Some(serde_json::to_value(&user).unwrap_or_default()), None);
    if !deps
        .db()
        .tenant(&org.id)
        .delete_user(&user.id, &audit)
        .await?
    {
        return Err(Error::NotFound(format!("user {id}")));
    }
    Ok(())
}

pub async fn sessions(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ViewOrg>,
    org: &Organization,
    id: &UserId,
) -> Result<Vec<Session>> {
    grant.check(org)?;
    let user = find(deps, org, id).await?;
    crate::sessions::service::list(deps, org, &user).await
}

/// Bumps the user's session_version: every session and every token issued before ends at once (signing
/// them out everywhere). Returns the new version.
pub async fn bump_session_version(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageUsers>,
    org: &Organization,
    id: &UserId,
) -> Result<i64> {
    grant.check(org)?;
    let user = find(deps, org, id).await?;
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::UserSessionVersionBumped)
        .target("user", &user.id)
        .change(
            Some(serde_json::json!({"session_version": user.session_version})),
            None,
        );
    Ok(deps
        .db()
        .tenant(&org.id)
        .bump_session_version(&user.id, &audit)
        .await?)
}

/// What resetting a user's second factors removed.
#[derive(Debug, Serialize)]
pub struct FactorsReset {
    pub removed: u64,
}

/// Removes every second factor of the user (TOTP, passkeys, email codes, recovery codes), for someone
/// who lost them; their password stays. Their sessions end too (session_version bump), so whoever held
/// a factor's session must sign in again. The organization's policy leads them to enrol at sign-in.
pub async fn reset_factors(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ManageUsers>,
    org: &Organization,
    id: &UserId,
) -> Result<FactorsReset> {
    grant.check(org)?;
    let user = find(deps, org, id).await?;
    let store = deps.db().tenant(&org.id);
    let factors: Vec<_> = store
        .user_credentials(&user.id)
        .await?
        .into_iter()
        .filter(|c| c.kind != CredentialKind::Password)
        .collect();
    let ids: Vec<_> = factors.iter().map(|c| c.id.clone()).collect();
    let kinds: Vec<_> = factors.iter().map(|c| c.kind.as_str()).collect();
    let audit = NewAuditEvent::new(&org.id, grant.actor(), Action::UserFactorsReset)
        .target("user", &user.id)
        .change(Some(serde_json::json!({"factors": kinds})), None);
    let removed = store.delete_credentials(&user.id, &ids, &audit).await?;
    if removed > 0 {
        let bump = NewAuditEvent::new(&org.id, grant.actor(), Action::UserSessionVersionBumped)
            .target("user", &user.id)
            .change(None, Some(serde_json::json!({"reason": "factors_reset"})));
        store.bump_session_version(&user.id, &bump).await?;
    }
    Ok(FactorsReset { removed })
}
