//! Browser sessions at the provider. The cookie holds an opaque 256-bit id; the database holds its keyed
//! hash, so a database leak does not hand out live sessions. Which OAuth grants outlive a sign-out is
//! decided in [`grants`].

pub mod grants;
pub mod service;

use crate::kernel::{OrgId, SessionId, UserId};

use serde::Serialize;

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
