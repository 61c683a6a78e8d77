//! Organizations: tenants, each with its own user pool, applications, signing keys and issuer.

pub use crate::model::orgs::{OrgSettings, Organization, Role};

use crate::deps::{HasClock, HasDb, HasSecrets};
use crate::kernel::OrgId;

use crate::audit::{Action, Actor, NewAuditEvent};
use crate::error::{Error, Result};
use crate::keys;

/// Slugs appear in issuer URLs, so they are short, lower-case and URL-safe.
pub fn validate_slug(slug: &str) -> Result<()> {
    let ok_chars = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(2..=40).contains(&slug.len()) || !ok_chars || slug.starts_with('-') || slug.ends_with('-')
    {
        return Err(Error::invalid(
            "slug",
            "must be 2 to 40 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ));
    }
    Ok(())
}

pub fn validate_name(field: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "must be 1 to 100 characters without control characters",
        ));
    }
    Ok(name.to_string())
}

pub struct NewOrganization<'a> {
    pub slug: &'a str,
    pub name: &'a str,
}

/// Creates an organization together with its first signing keys (the active one and the published next one).
pub async fn create(
    deps: &(impl HasClock + HasDb + HasSecrets),
    actor: &Actor,
    input: NewOrganization<'_>,
) -> Result<Organization> {
    validate_slug(input.slug)?;
    let name = validate_name("name", input.name)?;
    let now = deps.now();
    let org = Organization {
        id: OrgId::generate(),
        slug: input.slug.to_string(),
        name,
        settings: OrgSettings::default(),
        created_at: now,
        updated_at: now,
    };
    let initial_keys = keys::initial_key_pair(deps, &org.id, now).await?;
    let audit = NewAuditEvent::new(&org.id, actor, Action::OrgCreated)
        .target("organization", &org.id)
        .change(None, Some(serde_json::to_value(&org).unwrap_or_default()));
    deps.db()
        .system()
        .create_org(&org, &initial_keys, &audit)
        .await?;
    Ok(org)
}

pub async fn find(deps: &impl HasDb, slug: &str) -> Result<Organization> {
    deps.db()
        .system()
        .org_by_slug(slug)
        .await?
        .ok_or_else(|| Error::NotFound(format!("organization {slug:?}")))
}

impl OrgSettings {
    /// Checks settings an operator changed; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let idle = self.session_idle_timeout_secs;
        let absolute = self.session_absolute_lifetime_secs;
        if !(60..=86_400).contains(&idle) {
            return Err(Error::invalid(
                "session_idle_timeout",
                "must be 60 to 86400 seconds",
            ));
        }
        if !(300..=30 * 86_400).contains(&absolute) {
            return Err(Error::invalid(
                "session_absolute_lifetime",
                "must be 300 seconds to 30 days",
            ));
        }
        if idle > absolute {
            return Err(Error::invalid(
                "session_idle_timeout",
                "must not be longer than the absolute lifetime",
            ));
        }
        self.password_policy.validate()?;
        self.mfa.validate()?;
        self.rate_limits.validate()
    }
}

/// Replaces an organization's name and settings after checking them; audited with before and after.
pub async fn update(
    deps: &(impl HasClock + HasDb),
    actor: &Actor,
    before: &Organization,
    name: Option<&str>,
    settings: OrgSettings,
) -> Result<Organization> {
    settings.validate()?;
    let name = match name {
        Some(n) => validate_name("name", n)?,
        None => before.name.clone(),
    };
    let org = Organization {
        name,
        settings,
        updated_at: deps.now(),
        ..before.clone()
    };
    let audit = NewAuditEvent::new(&org.id, actor, Action::OrgUpdated)
        .target("organization", &org.id)
        .change(
            Some(serde_json::to_value(before).unwrap_or_default()),
            Some(serde_json::to_value(&org).unwrap_or_default()),
        );
    deps.db().tenant(&org.id).update_org(&org, &audit).await?;
    Ok(org)
}

/// An absolute link to a page of the organization's hosted pages, e.g. `reset-password?…`.
pub fn page_url(
    deps: &impl crate::deps::HasConfig,
    org: &Organization,
    path_and_query: &str,
) -> String {
    format!("{}/{path_and_query}", deps.config().issuer_for(&org.slug))
}
