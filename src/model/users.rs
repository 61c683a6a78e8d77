//! Users and their credentials, as stored.

use serde::{Deserialize, Serialize};

use crate::kernel::{CredentialId, OrgId, UserId};
use crate::model::orgs::Role;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    pub email: String,
    #[serde(skip)]
    pub email_normalized: String,
    pub email_verified: bool,
    pub name: Option<String>,
    /// Bumped to revoke every token and session of the user at once.
    pub session_version: i64,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Password,
    Totp,
    Webauthn,
    RecoveryCode,
    /// Email codes turned on as a second factor (no secret: the code goes to the verified address).
    EmailOtp,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Password => "password",
            CredentialKind::Totp => "totp",
            CredentialKind::Webauthn => "webauthn",
            CredentialKind::RecoveryCode => "recovery_code",
            CredentialKind::EmailOtp => "email_otp",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Password,
            Self::Totp,
            Self::Webauthn,
            Self::RecoveryCode,
            Self::EmailOtp,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A credential. `secret` is a slow hash (passwords), a keyed hash (recovery codes) or sealed bytes
/// (TOTP seeds), never the plain secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: CredentialId,
    pub user_id: UserId,
    pub kind: CredentialKind,
    pub name: Option<String>,
    pub secret: Vec<u8>,
    pub data: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Credential {
    /// A password credential from a stored hash (see `crypto::password`).
    pub fn password(user_id: &str, hash: String, now: i64) -> Self {
        Self {
            id: CredentialId::generate(),
            user_id: UserId::from(user_id),
            kind: CredentialKind::Password,
            name: None,
            secret: hash.into_bytes(),
            data: "{}".into(),
            created_at: now,
            last_used_at: None,
        }
    }
}

/// An organization member as listed: the user and their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
}
