//! Signing in with a password, finding the session behind a cookie, signing out.

use crate::kernel::SessionId;
use serde_json::json;

use super::Session;
use super::grants::{KeepGrants, SignOut};
use crate::audit::{Actor, NewAuditEvent};
use crate::crypto::password::PasswordError;
use crate::error::{Error, Result};
use crate::orgs::Organization;
use crate::service::Services;
use crate::users::{CredentialKind, User, normalize_email};
use crate::{crypto, oauth};

/// Where the request came from, for the session record and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

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
    services: &Services,
    org: &Organization,
    email: &str,
    client: &ClientInfo,
) -> String {
    let account = hex::encode(
        &services
            .secrets
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
    services: &Services,
    org: &Organization,
    email: &str,
    client: &ClientInfo,
) -> Result<std::result::Result<PasswordAttempt, AttemptRefused>> {
    use crate::ratelimit::{self, Lockout};
    let limits = &org.settings.rate_limits;
    let pair_key = login_limit_key(services, org, email, client);
    let pair = Lockout {
        key: &pair_key,
        limit: limits.login_attempts,
        window: std::time::Duration::from_secs(limits.login_window_secs),
        max_lock: std::time::Duration::from_secs(limits.login_lockout_max_secs),
    };
    if let Some(locked) = ratelimit::hit_with_lockout(services, &pair).await? {
        return Ok(Err(AttemptRefused {
            limited: locked.limited("login", &pair),
            detail: json!({
                "policy": "login",
                "retry_after_secs": locked.retry_after.as_secs(),
                "lockout_started": locked.strike,
            }),
        }));
    }
    let known = services
        .ephemeral
        .locked_for(&known_address_key(&pair_key))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .is_some();
    if !known {
        let account_key = format!(
            "login-account:{}:{}",
            org.id,
            crate::ratelimit::key_part(services, email)
        );
        let limit = limits.login_attempts_per_account_per_hour.max(1);
        let decision = services
            .ephemeral
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
    pub async fn succeeded(self, services: &Services) {
        crate::ratelimit::forget_lockout(services, &self.pair_key).await;
        let _ = services
            .ephemeral
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
    services: &Services,
    org: &Organization,
    credential: &crate::users::Credential,
    password: &str,
    user: Option<&User>,
    client: &ClientInfo,
) {
    let Some(user) = user else { return };
    let result = async {
        let hash = services
            .passwords
            .hash(password)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), "credential.rehashed")
            .target("credential", &credential.id)
            .change(None, Some(json!({"scheme": hash.split('$').next()})));
        services
            .db
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

/// Only idle-time changes this coarse are written back, so browsing does not write on every request.
const TOUCH_GRANULARITY_SECS: i64 = 60;

/// The actor for something a user did (or had done) from `client`.
pub fn user_actor(user: &User, client: &ClientInfo) -> Actor {
    Actor {
        actor_type: "user".into(),
        id: Some(user.id.to_string()),
        role: None,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
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
    services: &Services,
    org: &Organization,
    email: &str,
    password: &str,
    after: &str,
    client: &ClientInfo,
) -> Result<SignIn, LoginError> {
    // An attempt is counted before the password is checked, so concurrent guesses cannot slip past the
    // limits; a successful sign-in forgets the per-address count.
    let attempt = match count_password_attempt(services, org, email, client).await? {
        Ok(attempt) => attempt,
        Err(refused) => {
            let actor = Actor {
                actor_type: "anonymous".into(),
                ip: client.ip.clone(),
                user_agent: client.user_agent.clone(),
                ..Default::default()
            };
            let audit = NewAuditEvent::new(&org.id, &actor, "login.rate_limited")
                .change(None, Some(refused.detail));
            services.db.tenant(&org.id).append_audit(&audit).await?;
            return Err(LoginError::RateLimited(refused.limited));
        }
    };
    let user = match normalize_email(email) {
        Ok((_, normalized)) => {
            services
                .db
                .tenant(&org.id)
                .user_by_email(&normalized)
                .await?
        }
        Err(_) => None,
    };
    let credential = match &user {
        Some(u) => services
            .db
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
            match services.passwords.verify(password, &stored).await {
                Ok(v) => {
                    let ok = v.ok && user.as_ref().is_some_and(|u| !u.disabled);
                    if ok && v.needs_rehash {
                        rehash(services, org, c, password, user.as_ref(), client).await;
                    }
                    ok
                }
                Err(PasswordError::Busy) => return Err(LoginError::Busy),
                Err(e) => return Err(LoginError::Other(Error::Internal(e.to_string()))),
            }
        }
        None => match services.passwords.verify_dummy(password).await {
            Err(PasswordError::Busy) => return Err(LoginError::Busy),
            _ => false,
        },
    };
    let Some(user) = user.filter(|_| verified) else {
        let anonymous = Actor {
            actor_type: "anonymous".into(),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            ..Default::default()
        };
        // The attempted address is recorded only as a keyed hash: the audit log must not become a list
        // of addresses people typed.
        let attempted = hex::encode(
            &services
                .secrets
                .token_hash(&crate::users::identity_key(email))[..8],
        );
        let audit = NewAuditEvent::new(&org.id, &anonymous, "login.failed").change(
            None,
            Some(json!({"method": "password", "email_fingerprint": attempted})),
        );
        services.db.tenant(&org.id).append_audit(&audit).await?;
        return Err(LoginError::InvalidCredentials);
    };
    attempt.succeeded(services).await;
    if !user.email_verified {
        let audit = NewAuditEvent::new(&org.id, &user_actor(&user, client), "login.refused")
            .target("user", &user.id)
            .change(None, Some(json!({"reason": "email_not_verified"})));
        services.db.tenant(&org.id).append_audit(&audit).await?;
        return Err(LoginError::EmailNotVerified);
    }
    let factors = crate::mfa::factors(services, &user).await?;
    let required = crate::mfa::required_by_policy(services, org, &user).await?;
    if factors.enrolled() || required {
        let challenge = crate::mfa::challenge::Challenge {
            after: after.to_string(),
            amr: vec![crate::mfa::AMR_PASSWORD.into()],
            step_up_of: None,
            enrol: !factors.enrolled(),
        };
        let id = crate::mfa::challenge::start(services, org, &user, &challenge).await?;
        return Ok(SignIn::SecondFactor(id));
    }
    let (session, token) = start(
        services,
        org,
        &user,
        vec![crate::mfa::AMR_PASSWORD.into()],
        oauth::ACR_PASSWORD,
        client,
    )
    .await?;
    Ok(SignIn::Session(Box::new(session), token))
}

/// A new session for `user` and its cookie value (the only copy of the secret); not stored yet.
pub fn new_session(
    services: &Services,
    org: &Organization,
    user: &User,
    amr: Vec<String>,
    acr: &str,
    client: &ClientInfo,
) -> (Session, String) {
    let now = services.clock.now();
    let token = crypto::random_token();
    let session = Session {
        id_hash: services.secrets.token_hash(&token),
        public_id: crate::kernel::SessionId::generate(),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        auth_time: now,
        acr: Some(acr.to_string()),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        session_version: user.session_version,
        created_at: now,
        last_seen_at: now,
        expires_at: now + org.settings.session_absolute_lifetime_secs as i64,
        revoked_at: None,
        mfa_at: amr.iter().any(|m| m == crate::mfa::AMR_MFA).then_some(now),
        amr,
    };
    (session, token)
}

/// Creates a session for `user` and returns it with the cookie value (the only copy of the secret).
pub async fn start(
    services: &Services,
    org: &Organization,
    user: &User,
    amr: Vec<String>,
    acr: &str,
    client: &ClientInfo,
) -> Result<(Session, String)> {
    let (session, token) = new_session(services, org, user, amr, acr, client);
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), "login.succeeded")
        .target("session", &session.public_id)
        .change(None, Some(json!({"amr": session.amr, "acr": session.acr})));
    services
        .db
        .tenant(&org.id)
        .create_session(&session, &audit)
        .await?;
    Ok((session, token))
}

/// The live session behind a cookie value: not revoked, within its absolute and idle lifetimes, its user
/// enabled and not signed out everywhere since.
pub async fn from_cookie(
    services: &Services,
    org: &Organization,
    token: &str,
) -> Result<Option<(Session, User)>> {
    let hash = services.secrets.token_hash(token);
    let Some(session) = services.db.tenant(&org.id).session_by_hash(&hash).await? else {
        return Ok(None);
    };
    let now = services.clock.now();
    let idle_limit = org.settings.session_idle_timeout_secs as i64;
    if session.revoked_at.is_some()
        || session.expires_at <= now
        || session.last_seen_at + idle_limit <= now
    {
        return Ok(None);
    }
    let Some(user) = services
        .db
        .tenant(&org.id)
        .user_by_id(&session.user_id)
        .await?
    else {
        return Ok(None);
    };
    if user.disabled || user.session_version != session.session_version {
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_GRANULARITY_SECS {
        services
            .db
            .tenant(&org.id)
            .touch_session(&hash, now)
            .await?;
    }
    Ok(Some((session, user)))
}

pub async fn end(
    services: &Services,
    org: &Organization,
    token: &str,
    client: &ClientInfo,
) -> Result<bool> {
    let hash = services.secrets.token_hash(token);
    let Some(session) = services.db.tenant(&org.id).session_by_hash(&hash).await? else {
        return Ok(false);
    };
    let actor = Actor {
        actor_type: "user".into(),
        id: Some(session.user_id.to_string()),
        role: None,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    };
    let audit = NewAuditEvent::new(&org.id, &actor, "logout").target("session", &session.public_id);
    Ok(services
        .db
        .tenant(&org.id)
        .revoke_session(
            &hash,
            KeepGrants::after(SignOut::Session).scopes(),
            services.clock.now(),
            &audit,
        )
        .await?)
}

/// Whether a stored session is live for `user` under the organization's timeouts.
fn is_live(org: &Organization, user: &User, session: &Session, now: i64) -> bool {
    session.revoked_at.is_none()
        && session.expires_at > now
        && session.last_seen_at + org.settings.session_idle_timeout_secs as i64 > now
        && session.session_version == user.session_version
}

/// The user's live sessions, newest first.
pub async fn list(services: &Services, org: &Organization, user: &User) -> Result<Vec<Session>> {
    let now = services.clock.now();
    Ok(services
        .db
        .tenant(&org.id)
        .user_sessions(&user.id, now)
        .await?
        .into_iter()
        .filter(|s| is_live(org, user, s, now))
        .collect())
}

/// Signs out one of the user's sessions (by its public id); false if there was no such session.
pub async fn revoke(
    services: &Services,
    org: &Organization,
    user: &User,
    public_id: &SessionId,
    client: &ClientInfo,
) -> Result<bool> {
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), "session.revoked")
        .target("session", public_id);
    Ok(services
        .db
        .tenant(&org.id)
        .revoke_user_session(
            &user.id,
            public_id,
            KeepGrants::after(SignOut::Session).scopes(),
            services.clock.now(),
            &audit,
        )
        .await?)
}

/// Signs out every session of the user but `keep` (the one making the request); returns how many.
pub async fn revoke_others(
    services: &Services,
    org: &Organization,
    user: &User,
    keep: &SessionId,
    client: &ClientInfo,
) -> Result<u64> {
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), "session.revoked_others")
        .target("user", &user.id)
        .change(None, Some(json!({"kept": keep})));
    Ok(services
        .db
        .tenant(&org.id)
        .revoke_other_sessions(
            &user.id,
            keep,
            KeepGrants::after(SignOut::OtherSessions).scopes(),
            services.clock.now(),
            &audit,
        )
        .await?)
}
