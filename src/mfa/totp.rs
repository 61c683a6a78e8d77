//! TOTP (RFC 6238, via totp-rs): SHA-1, 6 digits, 30-second steps, one step of drift either way.
//!
//! A seed is sealed (AES-256-GCM under the master key, bound to its credential id) from the moment it is
//! made; enrolment keeps it in a short-lived pending record until the user proves their app has it with a
//! valid code. An accepted code is remembered (in the shared ephemeral store) until it cannot be valid
//! any more, so a replayed code is refused.

use std::time::Duration;

use serde_json::json;
use totp_rs::{Algorithm, TOTP};

use super::step_up::StepUp;
use super::{ProofError, recovery};
use crate::audit::{Action, NewAuditEvent};
use crate::crypto;
use crate::deps::{HasClock, HasDb, HasEphemeral, HasSecrets};
use crate::error::{Error, Result};
use crate::model::onetime::OneTimeToken;
use crate::model::orgs::Organization;
use crate::model::users::{Credential, CredentialKind, User};
use crate::sessions::service::{ClientInfo, user_actor};

pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// Steps of clock drift accepted either way.
pub const SKEW: u8 = 1;
const SEED_BYTES: usize = 20;
pub const ENROL_PURPOSE: &str = "totp_enrol";
const ENROL_TTL_SECS: i64 = 15 * 60;
const MAX_ENROL_ATTEMPTS: i64 = 5;

/// An enrolment in progress: what the user needs to add the account to their app.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The pending record's id (carried by the confirmation form).
    pub id: String,
    pub secret_base32: String,
    pub otpauth_url: String,
    /// The otpauth URL as a QR code, rendered here as SVG (no external service sees the seed).
    pub qr_svg: String,
}

fn generator(seed: Vec<u8>, org: &Organization, user: &User) -> Result<TOTP> {
    // The otpauth label is "issuer:account"; neither part may contain a colon.
    let issuer = org.name.replace(':', " ");
    let account = user.email.replace(':', " ");
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        SKEW,
        STEP_SECS,
        seed,
        Some(issuer),
        account,
    )
    .map_err(|e| Error::Internal(format!("totp: {e}")))
}

fn enrolment(id: &str, seed: Vec<u8>, org: &Organization, user: &User) -> Result<Enrolment> {
    let totp = generator(seed, org, user)?;
    let otpauth_url = totp.get_url();
    let qr_svg = qrcode::QrCode::new(otpauth_url.as_bytes())
        .map_err(|e| Error::Internal(format!("qr code: {e}")))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrolment {
        id: id.to_string(),
        secret_base32: totp.get_secret_base32(),
        otpauth_url,
        qr_svg,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    credential_id: String,
    sealed_seed: String,
}

/// Starts an enrolment: a new seed, sealed, kept pending for 15 minutes.
pub async fn begin(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    user: &User,
) -> Result<Enrolment> {
    let credential_id = crypto::random_id("cred");
    let seed = crypto::random_bytes(SEED_BYTES);
    let sealed = deps.secrets().seal(&credential_id, &seed);
    let id = crypto::random_token();
    let now = deps.now();
    let pending = Pending {
        credential_id,
        sealed_seed: hex::encode(sealed),
    };
    deps.db()
        .tenant(&org.id)
        .insert_one_time_token(&OneTimeToken {
            token_hash: deps.secrets().token_hash(&id),
            org_id: org.id.clone(),
            user_id: Some(user.id.clone()),
            purpose: ENROL_PURPOSE.into(),
            data: serde_json::to_string(&pending).unwrap_or_default(),
            attempts: 0,
            created_at: now,
            expires_at: now + ENROL_TTL_SECS,
            consumed_at: None,
        })
        .await?;
    enrolment(&id, seed, org, user)
}

/// The usable pending enrolment `id` of this user, with its seed opened.
async fn load_pending(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    user: &User,
    id: &str,
) -> Result<Option<(Pending, Vec<u8>)>> {
    let Some(token) = deps
        .db()
        .tenant(&org.id)
        .one_time_token(&deps.secrets().token_hash(id), ENROL_PURPOSE)
        .await?
    else {
        return Ok(None);
    };
    if token.user_id.as_ref() != Some(&user.id)
        || token.consumed_at.is_some()
        || token.expires_at <= deps.now()
        || token.attempts >= MAX_ENROL_ATTEMPTS
    {
        return Ok(None);
    }
    let Ok(pending) = serde_json::from_str::<Pending>(&token.data) else {
        return Ok(None);
    };
    let sealed = hex::decode(&pending.sealed_seed).unwrap_or_default();
    let seed = deps
        .secrets()
        .open(&pending.credential_id, &sealed)
        .map_err(|e| Error::Internal(format!("totp seed: {e}")))?;
    Ok(Some((pending, seed)))
}

/// The enrolment again (to show it once more after a wrong code); `None` once it is no longer usable.
pub async fn pending(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    user: &User,
    id: &str,
) -> Result<Option<Enrolment>> {
    match load_pending(deps, org, user, id).await? {
        Some((_, seed)) => Ok(Some(enrolment(id, seed, org, user)?)),
        None => Ok(None),
    }
}

#[derive(Debug)]
pub enum ConfirmError {
    /// Unknown, expired, used or out of attempts: start again.
    Expired,
    Wrong,
    Other(Error),
}

impl From<Error> for ConfirmError {
    fn from(e: Error) -> Self {
        ConfirmError::Other(e)
    }
}

impl From<crate::storage::StoreError> for ConfirmError {
    fn from(e: crate::storage::StoreError) -> Self {
        ConfirmError::Other(e.into())
    }
}

/// Completes an enrolment with a code from the app. Replaces an earlier authenticator app, and creates
/// recovery codes if the user has none: those are returned, to be shown once.
pub async fn confirm(
    deps: &(impl HasClock + HasDb + HasEphemeral + HasSecrets),
    org: &Organization,
    proof: &StepUp,
    user: &User,
    id: &str,
    code: &str,
    client: &ClientInfo,
) -> std::result::Result<Option<Vec<String>>, ConfirmError> {
    proof.check(org, user)?;
    let Some((pending, seed)) = load_pending(deps, org, user, id).await? else {
        return Err(ConfirmError::Expired);
    };
    let hash = deps.secrets().token_hash(id);
    let now = deps.now();
    // Counted before the comparison, so parallel guesses cannot exceed the limit.
    if deps
        .db()
        .tenant(&org.id)
        .count_token_attempt(&hash, ENROL_PURPOSE, MAX_ENROL_ATTEMPTS, now)
        .await?
        .is_none()
    {
        return Err(ConfirmError::Expired);
    }
    if !code_matches(deps, &pending.credential_id, &seed, code).await {
        return Err(ConfirmError::Wrong);
    }
    if !deps
        .db()
        .tenant(&org.id)
        .consume_one_time_token(&hash, ENROL_PURPOSE, now)
        .await?
    {
        return Err(ConfirmError::Expired);
    }
    let credential = Credential {
        id: pending.credential_id.as_str().into(),
        user_id: user.id.clone(),
        kind: CredentialKind::Totp,
        name: Some("Authenticator app".into()),
        secret: hex::decode(&pending.sealed_seed).unwrap_or_default(),
        data: "{}".into(),
        created_at: now,
        last_used_at: None,
    };
    let has_codes = !super::factors(deps, user)
        .await?
        .recovery_codes()
        .is_empty();
    let (codes, mut credentials) = if has_codes {
        (None, vec![])
    } else {
        let (plain, stored) = recovery::generate(deps, user, now);
        (Some(plain), stored)
    };
    credentials.insert(0, credential);
    let mut replace = vec![CredentialKind::Totp];
    if codes.is_some() {
        replace.push(CredentialKind::RecoveryCode);
    }
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::MfaEnrolled)
        .target("credential", &pending.credential_id)
        .change(
            None,
            Some(json!({"factor": "totp", "recovery_codes_generated": codes.is_some()})),
        );
    deps.db()
        .tenant(&org.id)
        .add_credentials(&user.id, &credentials, &replace, &audit)
        .await?;
    Ok(codes)
}

/// Whether `code` is valid for `seed` now (±1 step) and has not been accepted before.
async fn code_matches(
    deps: &(impl HasClock + HasEphemeral),
    credential_id: &str,
    seed: &[u8],
    code: &str,
) -> bool {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Unchecked: the seed is ours (always 160 bits), and no otpauth label is needed to compute codes.
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW,
        STEP_SECS,
        seed.to_vec(),
        None,
        String::new(),
    );
    let now = deps.now().max(0) as u64;
    let mut matched = None;
    for offset in -i64::from(SKEW)..=i64::from(SKEW) {
        let at = now.saturating_add_signed(offset * STEP_SECS as i64);
        // Every candidate is compared (no early exit), in constant time.
        if crypto::constant_time_eq(totp.generate(at).as_bytes(), code.as_bytes()) {
            matched = Some(at / STEP_SECS);
        }
    }
    let Some(step) = matched else {
        return false;
    };
    // Remembered for longer than the code can be valid (its step, plus the drift allowance).
    let ttl = Duration::from_secs(STEP_SECS * (2 * u64::from(SKEW) + 2));
    deps.ephemeral()
        .remember_once(&format!("totp:{credential_id}:{step}"), ttl)
        .await
        .unwrap_or(false)
}

/// Checks a code against an enrolled authenticator app.
pub(super) async fn check(
    deps: &(impl HasClock + HasEphemeral + HasSecrets),
    credential: &Credential,
    code: &str,
) -> std::result::Result<(), ProofError> {
    let seed = deps
        .secrets()
        .open(&credential.id, &credential.secret)
        .map_err(|e| ProofError::Other(Error::Internal(format!("totp seed: {e}"))))?;
    if code_matches(deps, &credential.id, &seed, code).await {
        Ok(())
    } else {
        Err(ProofError::Wrong)
    }
}
