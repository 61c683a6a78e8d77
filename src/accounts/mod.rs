//! The account lifecycle behind the hosted pages: sign-up, email verification, password reset and
//! password changes, and the password policy they all apply. Nothing here knows about HTTP.
//!
//! Every answer that could reveal whether an email address is registered (sign-up, resend verification,
//! forgot password) is the same either way, and both ways do the same expensive work: one password hash
//! (sign-up) and one database transaction, so timing does not tell either.

pub mod password;
pub mod policy;
pub mod reset;
pub mod signup;
pub mod verification;

use crate::audit::Actor;
use crate::crypto::password::PasswordError;
use crate::error::Error;
use crate::orgs::Organization;
use crate::ratelimit;
use crate::service::Services;
use crate::sessions::service::ClientInfo;
use crate::users::User;

/// An absolute link to a page of the organization's hosted pages, e.g. `reset-password?…`.
pub fn page_url(services: &Services, org: &Organization, path_and_query: &str) -> String {
    format!("{}/{path_and_query}", services.config.issuer_for(&org.slug))
}

pub use crate::sessions::service::user_actor;

/// The actor for a request from someone not signed in.
pub fn anonymous_actor(client: &ClientInfo) -> Actor {
    Actor {
        actor_type: "anonymous".into(),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        ..Default::default()
    }
}

/// A short keyed fingerprint of an email address for audit entries about addresses that may not belong
/// to anyone: the log must not become a list of addresses people typed.
pub fn email_fingerprint(services: &Services, email: &str) -> String {
    hex::encode(
        &services
            .secrets
            .token_hash(&crate::users::identity_key(email))[..8],
    )
}

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
    policy::check(&org.settings.password_policy, password, email, name)
}

/// Tells the delivery worker that mail is waiting (it also polls, so this only saves latency).
pub fn wake_mailer(services: &Services) {
    services.wake_email_delivery();
}

/// One sentence describing the organization's password rules, for the forms that set a password.
pub fn describe_password_rules(org: &Organization) -> String {
    policy::describe(&org.settings.password_policy)
}

/// Sets the user's display name (empty clears it).
pub async fn update_name(
    services: &Services,
    org: &Organization,
    user: &User,
    name: &str,
    client: &ClientInfo,
) -> Result<(), Error> {
    let name = match name.trim() {
        "" => None,
        n => Some(crate::orgs::validate_name("name", n)?),
    };
    let audit =
        crate::audit::NewAuditEvent::new(&org.id, &user_actor(user, client), "user.updated")
            .target("user", &user.id)
            .change(
                Some(serde_json::json!({"name": user.name})),
                Some(serde_json::json!({"name": name})),
            );
    services
        .db
        .tenant(&org.id)
        .update_user_name(&user.id, name.as_deref(), services.clock.now(), &audit)
        .await?;
    Ok(())
}

/// The per-application cap on unauthenticated requests that send codes or links (resend verification,
/// password reset); outside an authorization request it applies to the organization's own pages.
///
/// It is shared by everyone, so callers put it after their per-client and per-address rules
/// ([`ratelimit::enforce`] stops at the first refusal): only requests within those narrower limits
/// count against it, and one client hammering the form cannot spend it for every user.
pub(crate) fn code_requests_rule(
    org: &Organization,
    app_client_id: Option<&str>,
) -> ratelimit::Rule<'static> {
    let app = app_client_id.unwrap_or("-");
    ratelimit::Rule {
        policy: "code-requests",
        key: format!("codes:{}:{app}", org.id),
        limit: org.settings.rate_limits.code_requests_per_app_per_hour,
        window: ratelimit::HOUR,
        subject: "application",
    }
}

/// An hourly limit per client address (IPv6: per /64); `network` is [`ratelimit::client_network`]'s.
pub(crate) fn per_client_rule<'a>(
    org: &Organization,
    policy: &'static str,
    network: &'a str,
    limit: u32,
) -> ratelimit::Rule<'a> {
    ratelimit::Rule {
        policy,
        key: format!("{policy}:{}:{network}", org.id),
        limit,
        window: ratelimit::HOUR,
        subject: network,
    }
}

/// An hourly limit per email address, keyed by a fingerprint of its canonical form, so it counts the same
/// whether or not the address is registered and however the address was spelled.
pub(crate) fn per_address_rule(
    services: &Services,
    org: &Organization,
    policy: &'static str,
    canonical_email: &str,
    limit: u32,
) -> ratelimit::Rule<'static> {
    ratelimit::Rule {
        policy,
        key: format!(
            "{policy}:{}:{}",
            org.id,
            ratelimit::key_part(services, canonical_email)
        ),
        limit,
        window: ratelimit::HOUR,
        subject: "email",
    }
}
