//! What the provider stores about grants: the grant (a token family), its authorization code and its
//! refresh tokens. Codes and refresh tokens are stored only as keyed hashes.

use crate::kernel::{AppId, GrantId, OrgId, SessionId, UserId};
use serde::Serialize;

/// One authorization: everything issued from one code (or one client-credentials grant) belongs to it, so
/// code reuse, refresh-token reuse or revocation can revoke all of it at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub id: GrantId,
    pub org_id: OrgId,
    pub app_id: AppId,
    pub user_id: Option<UserId>,
    /// The browser session's public id (`sid`).
    pub session_id: Option<SessionId>,
    pub scope: String,
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// The user's session_version when the grant was made; a later bump invalidates the grant.
    pub session_version: i64,
    pub created_at: i64,
    /// Absolute end of the grant: no refresh token outlives it.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: Vec<u8>,
    pub grant_id: GrantId,
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    pub grant_id: GrantId,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}
