//! Self-registration. The answer is the same whether or not the address is registered: a new address gets
//! an account and a verification link, a known one gets a note that someone tried to sign up with it.
//! Sign-ups are limited per client address and per email address (the same either way), so nobody can
//! flood an address with these messages or send verification mail to hundreds of addresses.

use crate::deps::{HasClock, HasConfig, HasDb, HasEphemeral, HasMailer, HasPasswords, HasSecrets};
use crate::kernel::UserId;
use serde_json::json;

use super::verification;
use super::{
    anonymous_actor, check_password, email_fingerprint, hashing_error, page_url, per_address_rule,
    per_client_rule, user_actor, wake_mailer,
};
use crate::audit::{Action, NewAuditEvent};
use crate::error::{Error, Result};
use crate::model::email::OutgoingEmail;
use crate::model::orgs::Organization;
use crate::model::users::{Credential, User};
use crate::ratelimit;
use crate::sessions::service::ClientInfo;
use crate::storage::StoreError;
use crate::users::normalize_email;

pub struct SignUp<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub name: Option<&'a str>,
    /// A pending authorization request to continue after verification.
    pub continue_request: Option<&'a str>,
}

/// Registers a new account, or (for a known address) tells its owner. Input errors come back as
/// `Error::Invalid` naming the field; everything else looks like success to the caller.
pub async fn sign_up(
    deps: &(impl HasClock + HasConfig + HasDb + HasEphemeral + HasMailer + HasPasswords + HasSecrets),
    org: &Organization,
    input: SignUp<'_>,
    client: &ClientInfo,
) -> Result<()> {
    if !org.settings.self_registration {
        return Err(Error::NotFound("sign-up".into()));
    }
    let (email, email_normalized) = normalize_email(input.email)?;
    let name = match input.name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => Some(crate::orgs::validate_name("name", n)?),
        None => None,
    };
    check_password(org, input.password, &email, name.as_deref())?;
    // Every accepted sign-up sends mail to the address, so both who asks and who receives are limited,
    // before the lookup: the limits count and answer the same whether or not the address is registered.
    let limits = &org.settings.rate_limits;
    let network = ratelimit::client_network(client.ip.as_deref());
    ratelimit::enforce(
        deps,
        org,
        &anonymous_actor(client),
        &[
            per_client_rule(org, "signup-ip", &network, limits.signup_per_ip_per_hour),
            per_address_rule(
                deps,
                org,
                "signup-email",
                &email_normalized,
                limits.signup_per_email_per_hour,
            ),
        ],
    )
    .await?;
    // The slow hash runs before the lookup's outcome matters, so both paths cost the same.
    let hash = deps
        .passwords()
        .hash(input.password)
        .await
        .map_err(hashing_error)?;
    if let Some(existing) = deps
        .db()
        .tenant(&org.id)
        .user_by_email(&email_normalized)
        .await?
    {
        return notify_existing(deps, org, &existing, client).await;
    }
    let now = deps.now();
    let user = User {
        id: UserId::generate(),
        org_id: org.id.clone(),
        email: email.clone(),
        email_normalized,
        email_verified: false,
        name,
        session_version: 1,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let password = Credential::password(&user.id, hash, now);
    let (token, email_message) = verification::new_link(deps, org, &user, input.continue_request);
    let mut after = serde_json::to_value(&user).unwrap_or_default();
    after["has_password"] = json!(true);
    after["self_registered"] = json!(true);
    let audit = NewAuditEvent::new(&org.id, &user_actor(&user, client), Action::UserSignedUp)
        .target("user", &user.id)
        .change(None, Some(after));
    match deps
        .db()
        .tenant(&org.id)
        .register_user(&user, &[password], &token, &email_message, &audit)
        .await
    {
        Ok(()) => {
            wake_mailer(deps);
            Ok(())
        }
        // Someone registered the same address a moment ago: answer as for any known address.
        Err(StoreError::Conflict(_)) => match deps
            .db()
            .tenant(&org.id)
            .user_by_email(&user.email_normalized)
            .await?
        {
            Some(existing) => notify_existing(deps, org, &existing, client).await,
            None => Err(Error::Internal("sign-up conflict without a user".into())),
        },
        Err(e) => Err(e.into()),
    }
}

async fn notify_existing(
    deps: &(impl HasClock + HasConfig + HasDb + HasMailer + HasSecrets),
    org: &Organization,
    existing: &User,
    client: &ClientInfo,
) -> Result<()> {
    let body = format!(
        "Someone, perhaps you, tried to create a new {org} account with this email address.\n\n\
         You already have an account. To sign in, go to:\n{signin}\n\n\
         Forgot your password? Reset it here:\n{reset}\n\n\
         If this was not you, you can ignore this message; nothing has changed.\n",
        org = org.name,
        signin = page_url(deps, org, "account"),
        reset = page_url(deps, org, "forgot-password"),
    );
    let message = OutgoingEmail::new(
        deps.now(),
        &org.id,
        &existing.email,
        &format!("You already have a {} account", org.name),
        body,
    );
    let audit = NewAuditEvent::new(
        &org.id,
        &anonymous_actor(client),
        Action::SignupExistingEmail,
    )
    .target("user", &existing.id)
    .change(
        None,
        Some(json!({"email_fingerprint": email_fingerprint(deps, &existing.email)})),
    );
    deps.db()
        .tenant(&org.id)
        .issue_one_time_token(None, Some(&message), &audit)
        .await?;
    wake_mailer(deps);
    Ok(())
}
