//! Browser sessions at the provider, as stored (the id only as a keyed hash).

use serde::Serialize;

use crate::kernel::{OrgId, SessionId, UserId};

/// `amr` values (RFC 8176 where one fits): every session that proved a second factor carries `mfa`.
pub const AMR_MFA: &str = "mfa";
pub const AMR_PASSWORD: &str = "pwd";
pub const AMR_TOTP: &str = "otp";
pub const AMR_EMAIL: &str = "email";
pub const AMR_RECOVERY: &str = "recovery";
/// A passkey with user verification: a hardware- or platform-held key and the user's presence.
pub const AMR_PASSKEY: &str = "hwk";

/// `acr` values: what kind of authentication happened.
pub const ACR_PASSWORD: &str = "urn:latchkey:acr:password";
pub const ACR_MFA: &str = "urn:latchkey:acr:mfa";

/// Where a request came from, for the session record and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

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
