//! Signing in with a password: the attempt limits and lockouts, the password check (with rehash), and
//! where a right password leads: straight to a session, or to a second-factor challenge first. Above both
//! `sessions` and `mfa`, which it joins.

use crate::deps::{HasClock, HasDb, HasEphemeral, HasPasswords, HasSecrets};
use serde_json::json;

use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto::password::PasswordError;
use crate::error::{Error, Result};
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::{CredentialKind, User};
use crate::sessions::service::start;
use crate::users::normalize_email;

use crate::model::audit::user_actor;
use crate::model::sessions::ClientInfo;

#[derive(Debug)]
pub enum LoginError {
    /// Wrong email or password; deliberately one answer for both.
    InvalidCredentials,
    /// Right password, but the address is not confirmed yet. Only someone who knows the password learns
    /// this, so it reveals nothing to others.
    EmailNotVerified,
    /// The password pool is saturated.
    Busy,
    /// Too many attempts for this account from this address; try again after `decision.reset_after`.
    RateLimited(crate::ratelimit::Limited),
    Other(Error),
}

impl From<Error> for LoginError {
    fn from(e: Error) -> Self {
        LoginError::Other(e)
    }
}

impl From<crate::storage::StoreError> for LoginError {
    fn from(e: crate::storage::StoreError) -> Self {
        LoginError::Other(e.into())
    }
}

/// The rate-limit key for sign-in attempts: organization, account and address. The address is hashed
/// with the token key, so the shared store never holds plain email addresses.
fn login_limit_key(
    deps: &impl HasSecrets,
    org: &Organization,
    email: &str,
    client: &ClientInfo,
) -> String {
    let account = hex::encode(
        &deps
            .secrets()
            .token_hash(&crate::users::identity_key(email))[..12],
    );
    format!(
        "login:{}:{account}:{}",
        org.id,
        client.ip.as_deref().unwrap_or("-")
    )
}

/// Why a password attempt was refused before the password was looked at: the 429 and what the audit
/// entry says.
pub struct AttemptRefused {
    pub limited: crate::ratelimit::Limited,
    pub detail: serde_json::Value,
}

/// A password attempt that was let through, to report the outcome of.
pub struct PasswordAttempt {
    pair_key: String,
}

/// Counts a password attempt (sign-in, or the current password on the account page) for `email` from
/// `client`, before the password is checked, so concurrent guesses cannot slip past. Two limits:
///
/// - per account and address (`login_attempts` per `login_window_secs`): reaching it locks the pair for
///   the window, doubling with every further time within a day (capped); the lock never reaches other
///   addresses;
/// - per account across addresses (`login_attempts_per_account_per_hour`), for addresses the account has
///   not signed in from with the right password lately: many addresses cannot multiply the first limit,
///   and the owner, from an address they signed in from before, is never held back by it.
///
/// Both apply alike whether or not the account exists (an unknown account has no known addresses), and
/// are keyed by a keyed hash of the address, so a refusal reveals nothing about registration.
pub async fn count_password_attempt(
    deps: &(impl HasEphemeral + HasSecrets),
    org: &Organization,
    email: &str,
    client: &ClientInfo,
) -> Result<std::result::Result<PasswordAttempt, AttemptRefused>> {
    use crate::ratelimit::{self, Lockout};
    let limits = &org.settings.rate_limits;
    let pair_key = login_limit_key(deps, org, email, client);
    let pair = Lockout {
        key: &pair_key,
        limit: limits.login_attempts,
        window: std::time::Duration::from_secs(limits.login_window_secs),
        max_lock: std::time::Duration::from_secs(limits.login_lockout_max_secs),
    };
    if let Some(locked) = ratelimit::hit_with_lockout(deps, &pair).await? {
        return Ok(Err(AttemptRefused {
            limited: locked.limited("login", &pair),
            detail: json!({
                "policy": "login",
                "retry_after_secs": locked.retry_after.as_secs(),
                "lockout_started": locked.strike,
            }),
        }));
    }
    let known = deps
        .ephemeral()
        .locked_for(&known_address_key(&pair_key))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .is_some();
    if !known {
        let account_key = format!(
            "login-account:{}:{}",
            org.id,
            crate::ratelimit::key_part(deps, email)
        );
        let limit = limits.login_attempts_per_account_per_hour.max(1);
        let decision = deps
            .ephemeral()
            .hit(&account_key, limit, ratelimit::HOUR)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        if !decision.allowed {
            return Ok(Err(AttemptRefused {
                limited: ratelimit::Limited {
                    decision,
                    policy: "login-account",
                    window: ratelimit::HOUR,
                },
                detail: json!({
                    "policy": "login-account",
                    "retry_after_secs": decision.reset_after.as_secs(),
                }),
            }));
        }
    }
    Ok(Ok(PasswordAttempt { pair_key }))
}

/// The marker that `client`'s address signed in to the account with the right password (kept as a
/// lock, the ephemeral store's value with a lifetime).
fn known_address_key(pair_key: &str) -> String {
    format!("{pair_key}:known")
}

impl PasswordAttempt {
    /// The password was right: the pair's count and strikes are forgotten, and the address is known to
    /// the account from now on (exempt from the cap across addresses). The per-account count is kept: a
    /// success does not make the attacker's guesses any fewer.
    pub async fn succeeded(self, deps: &impl HasEphemeral) {
        crate::ratelimit::forget_lockout(deps, &self.pair_key).await;
        let _ = deps
            .ephemeral()
            .lock(
                &known_address_key(&self.pair_key),
                crate::ratelimit::KNOWN_ADDRESS_TTL,
            )
            .await;
    }
}

/// Stores the password again under the current policy (scheme and cost) after it was proven right. A
/// failure here is logged, never a failed sign-in.
async fn rehash(
    deps: &(impl HasDb + HasPasswords),
    org: &Organization,
    credential: &crate::model::users::Credential,
    password: &str,
    user: Option<&User>,
    client: &ClientInfo,
) {
    let Some(user) = user else { return };
    let result = async {
        let hash = deps
            .passwords()
            .hash(password)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let audit = NewAuditEvent::new(
            &org.id,
            &user_actor(user, client),
            Action::CredentialRehashed,
        )
        .target("credential", &credential.id)
        .change(None, Some(json!({"scheme": hash.split('$').next()})));
        deps.db()
            .tenant(&org.id)
            .update_credential_secret(&credential.id, hash.as_bytes(), &audit)
            .await?;
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not re-hash a password under the current policy");
    }
}

/// What a correct password leads to.
pub enum SignIn {
    /// A session (and its cookie value).
    Session(Box<Session>, String),
    /// A second factor is needed first (or must be enrolled): the open challenge's id.
    SecondFactor(String),
}

/// Checks email and password. The same work (a full password hash) is done whether or not the account
/// exists, so neither the answer nor its timing reveals registered emails. A user with a second factor,
/// or whom the organization's policy requires to have one, gets a challenge rather than a session;
/// `after` is where the browser goes once signed in.
pub async fn password_login(
    deps: &(impl HasClock + HasDb + HasEphemeral + HasPasswords + HasSecrets),
    org: &Organization,
    email: &str,
    password: &str,
    after: &str,
    client: &ClientInfo,
) -> Result<SignIn, LoginError> {
    // An attempt is counted before the password is checked, so concurrent guesses cannot slip past the
    // limits; a successful sign-in forgets the per-address count.
    let attempt = match count_password_attempt(deps, org, email, client).await? {
        Ok(attempt) => attempt,
        Err(refused) => {
            let actor = Actor::anonymous(client.ip.clone(), client.user_agent.clone());
            let audit = NewAuditEvent::new(&org.id, &actor, Action::LoginRateLimited)
                .change(None, Some(refused.detail));
            deps.db().tenant(&org.id).append_audit(&audit).await?;
            return Err(LoginError::RateLimited(refused.limited));
        }
    };
    let user = match normalize_email(email) {
        Ok((_, normalized)) => deps.db().tenant(&org.id).user_by_email(&normalized).await?,
        Err(_) => None,
    };
    let credential = match &user {
        Some(u) => deps
            .db()
            .tenant(&org.id)
            .credentials(&u.id, CredentialKind::Password)
            .await?
            .into_iter()
            .next(),
        None => None,
    };
    let verified = match &credential {
        Some(c) => {
            let stored = String::from_utf8_lossy(&c.secret).into_owned();
            match deps.passwords().verify(password, &stored).await {
                Ok(v) => {
                    let ok = v.ok && user.as_ref().is_some_and(|u| !u.disabled);
                    if ok && v.needs_rehash {
                        rehash(deps, org, c, password, user.as_ref(), client).await;
                    }
                    ok
                }
                Err(PasswordError::Busy) => return Err(LoginError::Busy),
                Err(e) => return Err(LoginError::Other(Error::Internal(e.to_string()))),
            }
        }
        None => match deps.passwords().verify_dummy(password).await {
            Err(PasswordError::Busy) => return Err(LoginError::Busy),
            _ => false,
        },
    };
    let Some(user) = user.filter(|_| verified) else {
        let anonymous = Actor::anonymous(client.ip.clone(), client.user_agent.clone());
        // The attempted address is recorded only as a keyed hash: the audit log must not become a list
        // of addresses people typed.
        let attempted = hex::encode(
            &deps
                .secrets()
                .token_hash(&crate::users::identity_key(email))[..8],
        );
        let audit = NewAuditEvent::new(&org.id, &anonymous, Action::LoginFailed).change(
            None,
            Some(json!({"method": "password", "email_fingerprint": attempted})),
        );
        deps.db().tenant(&org.id).append_audit(&audit).await?;
        return Err(LoginError::InvalidCredentials);
    };
    attempt.succeeded(deps).await;
    if !user.email_verified {
        let audit = NewAuditEvent::new(&org.id, &user_actor(&user, client), Action::LoginRefused)
            .target("user", &user.id)
            .change(None, Some(json!({"reason": "email_not_verified"})));
        deps.db().tenant(&org.id).append_audit(&audit).await?;
        return Err(LoginError::EmailNotVerified);
    }
    let factors = crate::mfa::factors(deps, &user).await?;
    let required = crate::mfa::required_by_policy(deps, org, &user).await?;
    if factors.enrolled() || required {
        let challenge = crate::mfa::challenge::Challenge {
            after: after.to_string(),
            amr: vec![crate::model::sessions::AMR_PASSWORD.into()],
            step_up_of: None,
            enrol: !factors.enrolled(),
        };
        let id = crate::mfa::challenge::start(deps, org, &user, &challenge).await?;
        return Ok(SignIn::SecondFactor(id));
    }
    let (session, token) = start(
        deps,
        org,
        &user,
        vec![crate::model::sessions::AMR_PASSWORD.into()],
        crate::model::sessions::ACR_PASSWORD,
        client,
    )
    .await?;
    Ok(SignIn::Session(Box::new(session), token))
}
