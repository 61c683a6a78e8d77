//! Email verification by magic link: 128 bits from the OS CSPRNG, stored as a keyed hash, 30 minutes,
//! single use. Opening the link does not verify anything; the page it opens has a button that does
//! (see [`pending`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::{anonymous_actor, email_fingerprint, page_url, user_actor, wake_mailer};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasConfig, HasDb, HasEphemeral, HasMailer, HasSecrets};
use crate::error::Result;
use crate::model::email::OutgoingEmail;
use crate::model::onetime::{OneTimeToken, VERIFY_EMAIL_PURPOSE};
use crate::model::orgs::Organization;
use crate::model::users::User;
use crate::ratelimit;
use crate::sessions::service::ClientInfo;
use crate::users::normalize_email;

pub const LINK_TTL_SECS: i64 = 30 * 60;

/// A fresh verification token for `user` and the email that carries its link. Nothing is stored yet: the
/// caller stores both with the action that needs them.
pub fn new_link(
    deps: &(impl HasClock + HasConfig + HasSecrets),
    org: &Organization,
    user: &User,
    continue_request: Option<&str>,
) -> (OneTimeToken, OutgoingEmail) {
    let secret = URL_SAFE_NO_PAD.encode(crypto::random_bytes(16));
    let now = deps.now();
    let token = OneTimeToken {
        token_hash: deps.secrets().token_hash(&secret),
        org_id: org.id.clone(),
        user_id: Some(user.id.clone()),
        purpose: VERIFY_EMAIL_PURPOSE.into(),
        data: json!({ "req": continue_request }).to_string(),
        attempts: 0,
        created_at: now,
        expires_at: now + LINK_TTL_SECS,
        consumed_at: None,
    };
    let link = page_url(deps, org, &format!("verify-email?token={secret}"));
    let body = format!(
        "Welcome to {org}.\n\nTo confirm your email address, open this link within 30 minutes and press the button on the page:\n{link}\n\n\
         If you did not create an account, ignore this message.\n",
        org = org.name,
    );
    let email = OutgoingEmail::new(
        deps.now(),
        &org.id,
        &user.email,
        &format!("Confirm your email for {}", org.name),
        body,
    );
    (token, email)
}

/// What a valid link leads to.
#[derive(Debug)]
pub struct Verified {
    pub user: User,
    /// The pending authorization request the user was in when they signed up, if any.
    pub continue_request: Option<String>,
}

/// The open link `secret` and its user: `None` when the link is unknown, expired, used or foreign.
async fn open_link(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    secret: &str,
) -> Result<Option<(OneTimeToken, User)>> {
    let hash = deps.secrets().token_hash(secret);
    let Some(token) = deps
        .db()
        .tenant(&org.id)
        .one_time_token(&hash, VERIFY_EMAIL_PURPOSE)
        .await?
    else {
        return Ok(None);
    };
    if token.consumed_at.is_some() || token.expires_at <= deps.now() {
        return Ok(None);
    }
    let user = match &token.user_id {
        Some(id) => deps.db().tenant(&org.id).user_by_id(id).await?,
        None => None,
    };
    Ok(user.map(|user| (token, user)))
}

/// The user a link would verify, without using it. Opening the link only shows a page asking for a
/// click ([`verify`]): mail scanners and link previews fetch links by themselves, and if that confirmed
/// the address, whoever signed up with someone else's address would get that account.
pub async fn pending(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    secret: &str,
) -> Result<Option<User>> {
    Ok(open_link(deps, org, secret).await?.map(|(_, user)| user))
}

/// Consumes a verification link (the person's click). `None` when the link is unknown, expired or
/// already used.
pub async fn verify(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    secret: &str,
    client: &ClientInfo,
) -> Result<Option<Verified>> {
    let Some((token, user)) = open_link(deps, org, secret).await? else {
        return Ok(None);
    };
    let hash = token.token_hash.clone();
    let now = deps.now();
    let audit = NewAuditEvent::new(&org.id, &user_actor(&user, client), Action::EmailVerified)
        .target("user", &user.id)
        .change(
            Some(json!({"email_verified": user.email_verified})),
            Some(json!({"email_verified": true})),
        );
    if !deps
        .db()
        .tenant(&org.id)
        .verify_email(&hash, &user.id, now, &audit)
        .await?
    {
        return Ok(None);
    }
    let continue_request = serde_json::from_str::<serde_json::Value>(&token.data)
        .ok()
        .and_then(|d| d.get("req").and_then(|r| r.as_str()).map(str::to_string));
    let mut user = user;
    user.email_verified = true;
    Ok(Some(Verified {
        user,
        continue_request,
    }))
}

/// Sends a new link to an unverified account. The caller answers the same whatever happened here.
pub async fn resend(
    deps: &(impl HasClock + HasConfig + HasDb + HasEphemeral + HasMailer + HasSecrets),
    org: &Organization,
    email: &str,
    continue_request: Option<&str>,
    app_client_id: Option<&str>,
    client: &ClientInfo,
) -> Result<()> {
    let (_, normalized) = normalize_email(email)?;
    let limits = &org.settings.rate_limits;
    let network = ratelimit::client_network(client.ip.as_deref());
    // Narrowest first: the shared per-application budget only counts what these let through.
    ratelimit::enforce(
        deps,
        org,
        &anonymous_actor(client),
        &[
            super::per_client_rule(
                org,
                "verify-email-ip",
                &network,
                limits.reset_per_ip_per_hour,
            ),
            super::per_address_rule(
                deps,
                org,
                "verify-email",
                &normalized,
                limits.reset_per_email_per_hour,
            ),
            super::code_requests_rule(org, app_client_id),
        ],
    )
    .await?;
    let user = deps.db().tenant(&org.id).user_by_email(&normalized).await?;
    let audit = NewAuditEvent::new(
        &org.id,
        &anonymous_actor(client),
        Action::EmailVerificationRequested,
    )
    .change(
        None,
        Some(json!({"email_fingerprint": email_fingerprint(deps, &normalized)})),
    );
    match user.filter(|u| !u.email_verified && !u.disabled) {
        Some(user) => {
            let (token, message) = new_link(deps, org, &user, continue_request);
            let audit = audit.target("user", &user.id);
            deps.db()
                .tenant(&org.id)
                .issue_one_time_token(Some(&token), Some(&message), &audit)
                .await?;
            wake_mailer(deps);
        }
        // One transaction either way, so the timing does not tell.
        None => {
            deps.db()
                .tenant(&org.id)
                .issue_one_time_token(None, None, &audit)
                .await?;
        }
    }
    Ok(())
}
