//! Recovery codes: ten single-use codes made with the first second factor, shown once, stored as keyed
//! hashes. Using one deletes it (so two concurrent uses cannot both succeed), is audited, and is told to
//! the user by email. A new set replaces the old one.

use rand::Rng;
use rand::rngs::OsRng;
use serde_json::json;

use super::step_up::StepUp;
use super::{Factors, ProofError};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasConfig, HasDb, HasMailer, HasSecrets};
use crate::error::Result;
use crate::model::email::OutgoingEmail;
use crate::model::orgs::Organization;
use crate::model::users::{Credential, CredentialKind, User};
use crate::orgs::page_url;
use crate::sessions::service::{ClientInfo, user_actor};

pub const COUNT: usize = 10;
/// No look-alikes (0/o, 1/l/i): codes are read off paper. 31 symbols, 10 per code: about 49 bits.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const LENGTH: usize = 10;

fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn hash(deps: &impl HasSecrets, user_id: &str, code: &str) -> Vec<u8> {
    deps.secrets()
        .token_hash(&format!("recovery:{user_id}:{}", normalize(code)))
}

/// A new set: the codes to show (as `xxxxx-xxxxx`) and the credentials to store.
pub fn generate(deps: &impl HasSecrets, user: &User, now: i64) -> (Vec<String>, Vec<Credential>) {
    let mut rng = OsRng;
    let codes: Vec<String> = (0..COUNT)
        .map(|_| {
            let raw: String = (0..LENGTH)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &raw[..LENGTH / 2], &raw[LENGTH / 2..])
        })
        .collect();
    let credentials = codes
        .iter()
        .map(|code| Credential {
            id: crate::kernel::CredentialId::generate(),
            user_id: user.id.clone(),
            kind: CredentialKind::RecoveryCode,
            name: None,
            secret: hash(deps, &user.id, code),
            data: "{}".into(),
            created_at: now,
            last_used_at: None,
        })
        .collect();
    (codes, credentials)
}

/// Replaces the user's recovery codes with a new set and returns it (to be shown once).
pub async fn regenerate(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    proof: &StepUp,
    user: &User,
    client: &ClientInfo,
) -> Result<Vec<String>> {
    proof.check(org, user)?;
    let (codes, credentials) = generate(deps, user, deps.now());
    let audit = NewAuditEvent::new(
        &org.id,
        &user_actor(user, client),
        Action::MfaRecoveryCodesGenerated,
    )
    .target("user", &user.id)
    .change(None, Some(json!({"count": codes.len()})));
    deps.db()
        .tenant(&org.id)
        .add_credentials(
            &user.id,
            &credentials,
            &[CredentialKind::RecoveryCode],
            &audit,
        )
        .await?;
    Ok(codes)
}

/// Uses up a recovery code of the user.
pub(super) async fn consume(
    deps: &(impl HasClock + HasConfig + HasDb + HasMailer + HasSecrets),
    org: &Organization,
    user: &User,
    factors: &Factors,
    code: &str,
    client: &ClientInfo,
) -> std::result::Result<(), ProofError> {
    let codes = factors.recovery_codes();
    if codes.is_empty() {
        return Err(ProofError::Unavailable);
    }
    let presented = hash(deps, &user.id, code);
    // Compared with every stored code, in constant time.
    let mut found = None;
    for credential in &codes {
        if crypto::constant_time_eq(&presented, &credential.secret) {
            found = Some(credential.id.clone());
        }
    }
    let Some(id) = found else {
        return Err(ProofError::Wrong);
    };
    let remaining = codes.len() - 1;
    let notice = OutgoingEmail::new(
        deps.now(),
        &org.id,
        &user.email,
        &format!("A recovery code was used for your {} account", org.name),
        format!(
            "A recovery code was just used to sign in to your {org} account. {remaining} unused \
             codes remain.\n\nIf this was not you, change your password and create new recovery codes \
             at once:\n{account}\n",
            org = org.name,
            account = page_url(deps, org, "account"),
        ),
    );
    let audit = NewAuditEvent::new(
        &org.id,
        &user_actor(user, client),
        Action::MfaRecoveryCodeUsed,
    )
    .target("credential", &id)
    .change(None, Some(json!({"remaining": remaining})));
    if !deps
        .db()
        .tenant(&org.id)
        .use_credential(&id, true, deps.now(), Some(&notice), &audit)
        .await?
    {
        // Another request used it first.
        return Err(ProofError::Wrong);
    }
    deps.wake_email_delivery();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn codes_are_compared_without_case_spaces_or_dashes() {
        assert_eq!(normalize(" AbCde-fGh23 "), "abcdefgh23");
        assert_eq!(normalize("abcde fgh23"), "abcdefgh23");
    }
}
