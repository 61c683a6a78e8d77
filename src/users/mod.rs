//! Users: the people in an organization's user pool, and their credentials.

pub use crate::model::users::{Credential, CredentialKind, Member, User};

use crate::deps::{HasClock, HasDb, HasPasswords};
use crate::kernel::UserId;
pub mod address;
pub mod password_policy;

pub use address::EmailAddress;

use serde::Serialize;

use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto::password::PasswordError;
use crate::error::{Error, Result};
use crate::model::orgs::{Organization, Role};

/// Checks an email address and returns it as typed (trimmed, NFC) and in its canonical form, the one
/// that identifies an account (see [`address`]). Every address that enters Latchkey goes through here.
/// Mailbox existence is proven by the verification link, not by syntax rules.
pub fn normalize_email(email: &str) -> Result<(String, String)> {
    let address = EmailAddress::parse(email)?;
    Ok((
        address.display().to_string(),
        address.canonical().to_string(),
    ))
}

/// The form of a typed address that limits and fingerprints key on: the canonical address when it is one,
/// so every spelling of one account (decomposed, upper-case, `xn--`) shares one bucket; otherwise the
/// text as typed, trimmed and lower-cased.
pub fn identity_key(email: &str) -> String {
    EmailAddress::parse(email)
        .map(|address| address.canonical().to_string())
        .unwrap_or_else(|_| email.trim().to_lowercase())
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: Option<&'a str>,
    pub name: Option<&'a str>,
    pub verified: bool,
    pub role: Option<Role>,
}

pub async fn create(
    deps: &(impl HasClock + HasDb + HasPasswords),
    actor: &Actor,
    org: &Organization,
    input: NewUser<'_>,
) -> Result<User> {
    let (email, email_normalized) = normalize_email(input.email)?;
    let name = match input.name {
        Some(n) => Some(crate::orgs::validate_name("name", n)?),
        None => None,
    };
    if let Some(password) = input.password {
        check_password(org, password, &email, name.as_deref())?;
    }
    if deps
        .db()
        .tenant(&org.id)
        .user_by_email(&email_normalized)
        .await?
        .is_some()
    {
        return Err(Error::Conflict(format!(
            "a user with email {email} already exists in {}",
            org.slug
        )));
    }
    let now = deps.now();
    let user = User {
        id: UserId::generate(),
        org_id: org.id.clone(),
        email,
        email_normalized,
        email_verified: input.verified,
        name,
        session_version: 1,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let mut credentials = Vec::new();
    if let Some(password) = input.password {
        let hash = deps
            .passwords()
            .hash(password)
            .await
            .map_err(hashing_error)?;
        credentials.push(Credential::password(&user.id, hash, now));
    }
    let mut after = serde_json::to_value(&user).unwrap_or_default();
    after["has_password"] = serde_json::Value::Bool(input.password.is_some());
    if let Some(role) = input.role {
        after["role"] = serde_json::Value::String(role.as_str().into());
    }
    let audit = NewAuditEvent::new(&org.id, actor, Action::UserCreated)
        .target("user", &user.id)
        .change(None, Some(after));
    deps.db()
        .tenant(&org.id)
        .create_user(&user, &credentials, input.role, &audit)
        .await?;
    Ok(user)
}

/// What [`set_disabled`] did.
#[derive(Debug, Clone, Serialize)]
pub struct DisabledChange {
    pub user: User,
    /// False when the user was already in the asked state (nothing written, nothing audited).
    pub changed: bool,
    /// Sessions ended by disabling.
    pub sessions_ended: u64,
}

/// Disables or enables the user with this email in `org`. Disabling bumps the user's session_version and
/// ends their sessions and grants in the same transaction, so every session and token (refresh tokens
/// included) stops working at once, and stays dead if the user is enabled again; sign-in, introspection
/// and the token endpoint also refuse a disabled user.
pub async fn set_disabled(
    deps: &(impl HasClock + HasDb),
    actor: &Actor,
    org: &Organization,
    email: &str,
    disabled: bool,
) -> Result<DisabledChange> {
    let (_, email_normalized) = normalize_email(email)?;
    let mut user = deps
        .db()
        .tenant(&org.id)
        .user_by_email(&email_normalized)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "user {:?} in organization {:?}",
                email.trim(),
                org.slug
            ))
        })?;
    let action = if disabled {
        Action::UserDisabled
    } else {
        Action::UserEnabled
    };
    let audit = NewAuditEvent::new(&org.id, actor, action)
        .target("user", &user.id)
        .change(
            Some(serde_json::json!({"disabled": user.disabled})),
            Some(serde_json::json!({"disabled": disabled})),
        );
    let outcome = deps
        .db()
        .tenant(&org.id)
        .set_user_disabled(&user.id, disabled, deps.now(), &audit)
        .await?;
    if outcome.is_some() {
        user.disabled = disabled;
    }
    Ok(DisabledChange {
        user,
        changed: outcome.is_some(),
        sessions_ended: outcome.unwrap_or(0),
    })
}

/// A failed password hash: `Busy` when the bounded pool is full (the caller answers 503), otherwise internal.
pub(crate) fn hashing_error(e: PasswordError) -> Error {
    match e {
        PasswordError::Busy => Error::Busy,
        other => Error::Internal(other.to_string()),
    }
}

/// Checks a new password against the organization's policy; the error names the rule it breaks.
pub fn check_password(
    org: &Organization,
    password: &str,
    email: &str,
    name: Option<&str>,
) -> Result<(), Error> {
    password_policy::check(&org.settings.password_policy, password, email, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_address_shares_one_limit_key() {
        let key = identity_key("zo\u{eb}@b\u{fc}cher.example");
        for spelling in [
            "Zoe\u{308}@B\u{fc}cher.example",
            " ZO\u{cb}@XN--BCHER-KVA.example ",
        ] {
            assert_eq!(identity_key(spelling), key, "{spelling:?}");
        }
        assert_eq!(identity_key(" Not An Address "), "not an address");
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").unwrap(),
            ("Ann@Example.COM".into(), "ann@example.com".into())
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@nodot",
            "a b@example.com",
            "ann@.example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
