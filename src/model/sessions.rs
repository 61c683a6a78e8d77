//! Browser sessions at the provider, as stored (the id only as a keyed hash).

use serde::Serialize;

use crate::kernel::{OrgId, SessionId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    #[serde(skip)]
    pub id_hash: Vec<u8>,
    /// Non-secret identifier, used as `sid` in ID tokens and in session lists.
    pub public_id: SessionId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The user's session_version at sign-in; a later bump ends the session.
    pub session_version: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// When its holder last proved a second factor (at sign-in or a later step-up).
    pub mfa_at: Option<i64>,
}
