//! The account lifecycle behind the hosted pages: sign-up, email verification, password reset and
//! password changes, and the password policy they all apply. Nothing here knows about HTTP.
//!
//! Every answer that could reveal whether an email address is registered (sign-up, resend verification,
//! forgot password) is the same either way, and both ways do the same expensive work: one password hash
//! (sign-up) and one database transaction, so timing does not tell either.

pub mod password;
pub use crate::users::password_policy as policy;
pub mod reset;
pub mod signup;
pub mod verification;

use crate::audit::Action;
use crate::deps::{HasClock, HasDb, HasMailer, HasSecrets};
use crate::error::Error;
use crate::model::orgs::Organization;
use crate::model::users::User;
use crate::ratelimit;
use crate::sessions::service::ClientInfo;

pub use crate::orgs::page_url;

pub use crate::model::audit::user_actor;

pub use crate::model::audit::anonymous_actor;

/// A short keyed fingerprint of an email address for audit entries about addresses that may not belong
/// to anyone: the log must not become a list of addresses people typed.
pub fn email_fingerprint(deps: &impl HasSecrets, email: &str) -> String {
    hex::encode(
        &deps
            .secrets()
            .token_hash(&crate::users::identity_key(email))[..8],
    )
}

pub use crate::users::check_password;
pub(crate) use crate::users::hashing_error;

/// Tells the delivery worker that mail is waiting (it also polls, so this only saves latency).
pub fn wake_mailer(deps: &impl HasMailer) {
    deps.wake_email_delivery();
}

/// One sentence describing the organization's password rules, for the forms that set a password.
pub fn describe_password_rules(org: &Organization) -> String {
    policy::describe(&org.settings.password_policy)
}

/// Sets the user's display name (empty clears it).
pub async fn update_name(
    deps: &(impl HasClock + HasDb),
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
        crate::audit::NewAuditEvent::new(&org.id, &user_actor(user, client), Action::UserUpdated)
            .target("user", &user.id)
            .change(
                Some(serde_json::json!({"name": user.name})),
                Some(serde_json::json!({"name": name})),
            );
    deps.db()
        .tenant(&org.id)
        .update_user_name(&user.id, name.as_deref(), deps.now(), &audit)
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
    deps: &impl HasSecrets,
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
            ratelimit::key_part(deps, canonical_email)
        ),
        limit,
        window: ratelimit::HOUR,
        subject: "email",
    }
}
