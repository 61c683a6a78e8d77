//! Password reset. A request opens a reset session (256-bit id, 15 minutes) and emails a link and a
//! 6-digit code; the code (typed, or carried by the link) together with the session id proves the mailbox.
//! Five wrong codes lock the session for good; a successful reset consumes it, signs the user out
//! everywhere and sends a notification.
//!
//! A request for an unknown address opens a session too (one that no code opens), so the answer and its
//! cost are the same whether or not the address is registered.

use rand::Rng;
use rand::rngs::OsRng;
use serde_json::json;

use super::{
    anonymous_actor, check_password, email_fingerprint, hashing_error, page_url, user_actor,
    wake_mailer,
};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasConfig, HasDb, HasEphemeral, HasMailer, HasPasswords, HasSecrets};
use crate::error::{Error, Result};
use crate::model::email::OutgoingEmail;
use crate::model::onetime::{OneTimeToken, PASSWORD_RESET_PURPOSE};
use crate::model::orgs::Organization;
use crate::model::users::{Credential, User};
use crate::ratelimit;
use crate::sessions::service::ClientInfo;
use crate::users::normalize_email;

pub const SESSION_TTL_SECS: i64 = 15 * 60;
/// Wrong codes after which a reset session is locked for good.
pub const MAX_CODE_ATTEMPTS: i64 = 5;

fn code_hash(deps: &impl HasSecrets, session_id: &str, code: &str) -> Vec<u8> {
    deps.secrets()
        .token_hash(&format!("reset-code:{session_id}:{code}"))
}

/// Opens a reset session and returns its id (for the requesting browser). Only an invalid address is an
/// error; known or not, everything else looks the same.
pub async fn request(
    deps: &(impl HasClock + HasConfig + HasDb + HasEphemeral + HasMailer + HasSecrets),
    org: &Organization,
    email: &str,
    app_client_id: Option<&str>,
    client: &ClientInfo,
) -> Result<String> {
    let (_, normalized) = normalize_email(email)?;
    let limits = &org.settings.rate_limits;
    let network = ratelimit::client_network(client.ip.as_deref());
    // Narrowest first: the shared per-application budget only counts what these let through.
    ratelimit::enforce(
        deps,
        org,
        &anonymous_actor(client),
        &[
            super::per_client_rule(org, "reset-ip", &network, limits.reset_per_ip_per_hour),
            super::per_address_rule(
                deps,
                org,
                "reset-email",
                &normalized,
                limits.reset_per_email_per_hour,
            ),
            super::code_requests_rule(org, app_client_id),
        ],
    )
    .await?;
    let user = deps
        .db()
        .tenant(&org.id)
        .user_by_email(&normalized)
        .await?
        .filter(|u| !u.disabled);
    let session_id = crypto::random_token();
    let code = format!("{:06}", OsRng.gen_range(0..1_000_000u32));
    let now = deps.now();
    let token = OneTimeToken {
        token_hash: deps.secrets().token_hash(&session_id),
        org_id: org.id.clone(),
        user_id: user.as_ref().map(|u| u.id.clone()),
        purpose: PASSWORD_RESET_PURPOSE.into(),
        data: json!({ "code_hash": hex::encode(code_hash(deps, &session_id, &code)) }).to_string(),
        attempts: 0,
        created_at: now,
        expires_at: now + SESSION_TTL_SECS,
        consumed_at: None,
    };
    let mut audit = NewAuditEvent::new(
        &org.id,
        &anonymous_actor(client),
        Action::PasswordResetRequested,
    )
    .change(
        None,
        Some(json!({"email_fingerprint": email_fingerprint(deps, &normalized)})),
    );
    let message = user.as_ref().map(|user| {
        audit = audit.clone().target("user", &user.id);
        let link = page_url(
            deps,
            org,
            &format!("reset-password?session={session_id}&code={code}"),
        );
        let body = format!(
            "Someone asked to reset the password of your {org} account.\n\n\
             Your code is {code}\n\nOr open this link within 15 minutes:\n{link}\n\n\
             If this was not you, ignore this message: your password stays as it is.\n",
            org = org.name,
        );
        OutgoingEmail::new(
            deps.now(),
            &org.id,
            &user.email,
            &format!("Reset your {} password", org.name),
            body,
        )
    });
    deps.db()
        .tenant(&org.id)
        .issue_one_time_token(Some(&token), message.as_ref(), &audit)
        .await?;
    if message.is_some() {
        wake_mailer(deps);
    }
    Ok(session_id)
}

#[derive(Debug)]
pub enum ResetError {
    /// Unknown, expired or already used.
    Expired,
    /// Too many wrong codes.
    Locked,
    WrongCode {
        attempts_left: i64,
    },
    /// The new password breaks the policy (the code was right and is not used up).
    Invalid(Error),
    Other(Error),
}

impl From<Error> for ResetError {
    fn from(e: Error) -> Self {
        ResetError::Other(e)
    }
}

impl From<crate::storage::StoreError> for ResetError {
    fn from(e: crate::storage::StoreError) -> Self {
        ResetError::Other(e.into())
    }
}

/// Whether a reset session can still be used (for showing the form before anything is typed).
pub async fn is_open(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    session_id: &str,
) -> Result<bool> {
    let token = deps
        .db()
        .tenant(&org.id)
        .one_time_token(
            &deps.secrets().token_hash(session_id),
            PASSWORD_RESET_PURPOSE,
        )
        .await?;
    Ok(token.is_some_and(|t| {
        t.consumed_at.is_none() && t.expires_at > deps.now() && t.attempts < MAX_CODE_ATTEMPTS
    }))
}

/// Checks the code and sets the new password. On success the user is signed out everywhere.
pub async fn complete(
    deps: &(impl HasClock + HasConfig + HasDb + HasMailer + HasPasswords + HasSecrets),
    org: &Organization,
    session_id: &str,
    code: &str,
    new_password: &str,
    client: &ClientInfo,
) -> Result<User, ResetError> {
    let hash = deps.secrets().token_hash(session_id);
    let Some(token) = deps
        .db()
        .tenant(&org.id)
        .one_time_token(&hash, PASSWORD_RESET_PURPOSE)
        .await?
    else {
        return Err(ResetError::Expired);
    };
    let now = deps.now();
    if token.consumed_at.is_some() || token.expires_at <= now {
        return Err(ResetError::Expired);
    }
    if token.attempts >= MAX_CODE_ATTEMPTS {
        return Err(ResetError::Locked);
    }
    // The attempt is counted before the code is compared, so guesses sent in parallel cannot compare more
    // codes than the limit (counting after the comparison let every request that read the token before
    // the fifth count compare its code, and a right one among them win).
    let Some(attempts) = deps
        .db()
        .tenant(&org.id)
        .count_token_attempt(&hash, PASSWORD_RESET_PURPOSE, MAX_CODE_ATTEMPTS, now)
        .await?
    else {
        return Err(ResetError::Locked);
    };
    let stored_code = serde_json::from_str::<serde_json::Value>(&token.data)
        .ok()
        .and_then(|d| {
            d.get("code_hash")
                .and_then(|h| h.as_str())
                .map(str::to_string)
        })
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_default();
    let code = code.trim();
    let code_ok = token.user_id.is_some()
        && crypto::constant_time_eq(&code_hash(deps, session_id, code), &stored_code);
    let user = match &token.user_id {
        Some(id) if code_ok => deps.db().tenant(&org.id).user_by_id(id).await?,
        _ => None,
    };
    let Some(user) = user else {
        let left = MAX_CODE_ATTEMPTS - attempts;
        let mut audit = NewAuditEvent::new(
            &org.id,
            &anonymous_actor(client),
            Action::PasswordResetCodeFailed,
        )
        .change(None, Some(json!({"attempts_left": left})));
        if let Some(id) = &token.user_id {
            audit = audit.target("user", id);
        }
        if left == 0 {
            audit.action = Action::PasswordResetLocked;
        }
        deps.db().tenant(&org.id).append_audit(&audit).await?;
        return Err(if left == 0 {
            ResetError::Locked
        } else {
            ResetError::WrongCode {
                attempts_left: left,
            }
        });
    };
    if let Err(e) = check_password(org, new_password, &user.email, user.name.as_deref()) {
        // The code was right: a password the policy refuses does not cost an attempt.
        deps.db()
            .tenant(&org.id)
            .release_token_attempt(&hash, PASSWORD_RESET_PURPOSE)
            .await?;
        return Err(ResetError::Invalid(e));
    }
    let secret = deps
        .passwords()
        .hash(new_password)
        .await
        .map_err(hashing_error)?;
    let credential = Credential::password(&user.id, secret, now);
    let notice = OutgoingEmail::new(
        deps.now(),
        &org.id,
        &user.email,
        &format!("Your {} password was changed", org.name),
        format!(
            "The password of your {org} account was reset just now, and every device was signed out.\n\n\
             If this was not you, reset your password again at once:\n{reset}\n",
            org = org.name,
            reset = page_url(deps, org, "forgot-password"),
        ),
    );
    let audit = NewAuditEvent::new(
        &org.id,
        &user_actor(&user, client),
        Action::PasswordResetCompleted,
    )
    .target("user", &user.id)
    .change(None, Some(json!({"signed_out_everywhere": true})));
    let done = deps
        .db()
        .tenant(&org.id)
        .replace_password(
            &user.id,
            &credential,
            Some((&hash, PASSWORD_RESET_PURPOSE)),
            None,
            Some(&notice),
            crate::sessions::grants::SignOut::PasswordChanged.ends_everything(),
            now,
            &audit,
        )
        .await?;
    if done.is_none() {
        return Err(ResetError::Expired);
    }
    wake_mailer(deps);
    Ok(user)
}
