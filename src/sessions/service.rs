//! Starting a session, finding the session behind a cookie, listing and ending sessions.

use crate::deps::{HasClock, HasDb, HasSecrets};
use crate::kernel::SessionId;
use serde_json::json;

use super::Session;
use super::grants::{KeepGrants, SignOut};
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::error::Result;
use crate::model::orgs::Organization;
use crate::model::users::User;

pub use crate::model::audit::user_actor;
pub use crate::model::sessions::ClientInfo;

/// Only idle-time changes this coarse are written back, so browsing does not write on every request.
const TOUCH_GRANULARITY_SECS: i64 = 60;

/// A new session for `user` and its cookie value (the only copy of the secret); not stored yet.
pub fn new_session(
    deps: &(impl HasClock + HasSecrets),
    org: &Organization,
    user: &User,
    amr: Vec<String>,
    acr: &str,
    client: &ClientInfo,
) -> (Session, String) {
    let now = deps.now();
    let token = crypto::random_token();
    let session = Session {
        id_hash: deps.secrets().token_hash(&token),
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
        mfa_at: amr
            .iter()
            .any(|m| m == crate::model::sessions::AMR_MFA)
            .then_some(now),
        amr,
    };
    (session, token)
}

/// Creates a session for `user` and returns it with the cookie value (the only copy of the secret).
pub async fn start(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    user: &User,
    amr: Vec<String>,
    acr: &str,
    client: &ClientInfo,
) -> Result<(Session, String)> {
    let (session, token) = new_session(deps, org, user, amr, acr, client);
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::LoginSucceeded)
        .target("session", &session.public_id)
        .change(None, Some(json!({"amr": session.amr, "acr": session.acr})));
    deps.db()
        .tenant(&org.id)
        .create_session(&session, &audit)
        .await?;
    Ok((session, token))
}

/// The live session behind a cookie value: not revoked, within its absolute and idle lifetimes, its user
/// enabled and not signed out everywhere since.
pub async fn from_cookie(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    token: &str,
) -> Result<Option<(Session, User)>> {
    let hash = deps.secrets().token_hash(token);
    let Some(session) = deps.db().tenant(&org.id).session_by_hash(&hash).await? else {
        return Ok(None);
    };
    let now = deps.now();
    let idle_limit = org.settings.session_idle_timeout_secs as i64;
    if session.revoked_at.is_some()
        || session.expires_at <= now
        || session.last_seen_at + idle_limit <= now
    {
        return Ok(None);
    }
    let Some(user) = deps
        .db()
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
        deps.db().tenant(&org.id).touch_session(&hash, now).await?;
    }
    Ok(Some((session, user)))
}

pub async fn end(
    deps: &(impl HasClock + HasDb + HasSecrets),
    org: &Organization,
    token: &str,
    client: &ClientInfo,
) -> Result<bool> {
    let hash = deps.secrets().token_hash(token);
    let Some(session) = deps.db().tenant(&org.id).session_by_hash(&hash).await? else {
        return Ok(false);
    };
    let actor = Actor::user(
        &session.user_id,
        client.ip.clone(),
        client.user_agent.clone(),
    );
    let audit =
        NewAuditEvent::new(&org.id, &actor, Action::Logout).target("session", &session.public_id);
    Ok(deps
        .db()
        .tenant(&org.id)
        .revoke_session(
            &hash,
            KeepGrants::after(SignOut::Session).scopes(),
            deps.now(),
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
pub async fn list(
    deps: &(impl HasClock + HasDb),
    org: &Organization,
    user: &User,
) -> Result<Vec<Session>> {
    let now = deps.now();
    Ok(deps
        .db()
        .tenant(&org.id)
        .user_sessions(&user.id, now)
        .await?
        .into_iter()
        .filter(|s| is_live(org, user, s, now))
        .collect())
}

/// Signs out one of the user's sessions (by its public id); false if there was no such session.
pub async fn revoke(
    deps: &(impl HasClock + HasDb),
    org: &Organization,
    user: &User,
    public_id: &SessionId,
    client: &ClientInfo,
) -> Result<bool> {
    let audit = NewAuditEvent::new(&org.id, &user_actor(user, client), Action::SessionRevoked)
        .target("session", public_id);
    Ok(deps
        .db()
        .tenant(&org.id)
        .revoke_user_session(
            &user.id,
            public_id,
            KeepGrants::after(SignOut::Session).scopes(),
            deps.now(),
            &audit,
        )
        .await?)
}

/// Signs out every session of the user but `keep` (the one making the request); returns how many.
pub async fn revoke_others(
    deps: &(impl HasClock + HasDb),
    org: &Organization,
    user: &User,
    keep: &SessionId,
    client: &ClientInfo,
) -> Result<u64> {
    let audit = NewAuditEvent::new(
        &org.id,
        &user_actor(user, client),
        Action::SessionRevokedOthers,
    )
    .target("user", &user.id)
    .change(None, Some(json!({"kept": keep})));
    Ok(deps
        .db()
        .tenant(&org.id)
        .revoke_other_sessions(
            &user.id,
            keep,
            KeepGrants::after(SignOut::OtherSessions).scopes(),
            deps.now(),
            &audit,
        )
        .await?)
}
