//! One-time tokens: pending authorization requests, email verification links, password-reset sessions,
//! email codes. Stored as keyed hashes, single use, with an expiry and an attempt counter.

use crate::kernel::{OrgId, UserId};

/// Purposes, one per kind of token.
pub const VERIFY_EMAIL_PURPOSE: &str = "verify_email";
pub const PASSWORD_RESET_PURPOSE: &str = "password_reset";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    pub token_hash: Vec<u8>,
    pub org_id: OrgId,
    pub user_id: Option<UserId>,
    pub purpose: String,
    /// JSON document with whatever the purpose needs.
    pub data: String,
    pub attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}
