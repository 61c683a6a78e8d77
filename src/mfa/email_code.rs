//! Email codes as a second factor: 6 digits, valid 5 minutes, stored as a bcrypt hash (cost 10, on the
//! bounded hashing pool), dead after 5 wrong attempts. A code belongs to one sign-in challenge; asking
//! again replaces it. Sending is limited per user.

use rand::Rng;
use rand::rngs::OsRng;
use serde_json::json;

use super::ProofError;
use crate::audit::{Action, NewAuditEvent};
use crate::crypto::password::PasswordError;
use crate::deps::{HasClock, HasDb, HasEphemeral, HasMailer, HasPasswords, HasSecrets};
use crate::error::{Error, Result};
use crate::model::email::OutgoingEmail;
use crate::model::onetime::OneTimeToken;
use crate::model::orgs::Organization;
use crate::model::users::User;
use crate::ratelimit::{self, Rule};
use crate::sessions::service::{ClientInfo, user_actor};

pub const PURPOSE: &str = "mfa_email_code";
pub const TTL_SECS: i64 = 5 * 60;
pub const MAX_ATTEMPTS: i64 = 5;
pub const BCRYPT_COST: u32 = 10;
/// Codes sent to one user per hour.
pub const SENDS_PER_HOUR: u32 = 5;

fn token_hash(deps: &impl HasSecrets, binding: &str) -> Vec<u8> {
    deps.secrets().token_hash(&format!("mfa-email:{binding}"))
}

fn busy(e: PasswordError) -> Error {
    match e {
        PasswordError::Busy => Error::Busy,
        other => Error::Internal(other.to_string()),
    }
}

/// Emails a new code for the challenge `binding`, replacing any earlier one.
pub async fn send(
    deps: &(impl HasClock + HasDb + HasEphemeral + HasMailer + HasPasswords + HasSecrets),
    org: &Organization,
    user: &User,
    binding: &str,
    client: &ClientInfo,
) -> Result<()> {
    ratelimit::enforce(
        deps,
        org,
        &user_actor(user, client),
        &[Rule {
            policy: "mfa-email",
            key: format!("mfa-email:{}:{}", org.id, user.id),
            limit: SENDS_PER_HOUR,
            window: ratelimit::HOUR,
            subject: &user.id,
        }],
    )
    .await?;
    let code = format!("{:06}", OsRng.gen_range(0..1_000_000u32));
    let code_hash = deps
        .passwords()
        .hash_code(&code, BCRYPT_COST)
        .await
        .map_err(busy)?;
    let now = deps.now();
    let token = OneTimeToken {
        token_hash: token_hash(deps, binding),
        org_id: org.id.clone(),
        user_id: Some(user.id.clone()),
        purpose: PURPOSE.into(),
        data: json!({ "code_hash": code_hash }).to_string(),
        attempts: 0,
        created_at: now,
        expires_at: now + TTL_SECS,
        consumed_at: None,
    };
    let message = OutgoingEmail::new(
        deps.now(),
        &org.id,
        &user.email,
        &format!("Your {} sign-in code", org.name),
        format!(
            "Your {org} sign-in code is {code}\n\nIt works once, for the next 5 minutes.\n\n\
             If you did not just sign in, someone knows your password: change it at once.\n",
            org = org.name,
        ),
    );
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::MfaEmailCodeSent)
        .target("user", &user.id);
    deps.db()
        .tenant(&org.id)
        .reissue_one_time_token(&token, Some(&message), Some(&audit))
        .await?;
    deps.wake_email_delivery();
    Ok(())
}

/// Checks a code sent for the challenge `binding`; a right one is used up.
pub(super) async fn check(
    deps: &(impl HasClock + HasDb + HasPasswords + HasSecrets),
    org: &Organization,
    user: &User,
    binding: &str,
    code: &str,
) -> std::result::Result<(), ProofError> {
    let hash = token_hash(deps, binding);
    let Some(token) = deps
        .db()
        .tenant(&org.id)
        .one_time_token(&hash, PURPOSE)
        .await?
    else {
        return Err(ProofError::Wrong);
    };
    let now = deps.now();
    if token.user_id.as_ref() != Some(&user.id)
        || token.consumed_at.is_some()
        || token.expires_at <= now
    {
        return Err(ProofError::Wrong);
    }
    // Counted before the comparison: parallel guesses cannot compare more than MAX_ATTEMPTS codes.
    if deps
        .db()
        .tenant(&org.id)
        .count_token_attempt(&hash, PURPOSE, MAX_ATTEMPTS, now)
        .await?
        .is_none()
    {
        return Err(ProofError::Wrong);
    }
    let stored = serde_json::from_str::<serde_json::Value>(&token.data)
        .ok()
        .and_then(|d| {
            d.get("code_hash")
                .and_then(|h| h.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProofError::Wrong);
    }
    let ok = deps
        .passwords()
        .verify_code(code, &stored)
        .await
        .map_err(|e| ProofError::from(busy(e)))?;
    if ok
        && deps
            .db()
            .tenant(&org.id)
            .consume_one_time_token(&hash, PURPOSE, now)
            .await?
    {
        Ok(())
    } else {
        Err(ProofError::Wrong)
    }
}
