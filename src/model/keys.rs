//! Signing key records, as stored (private keys sealed).

use serde::Serialize;

use crate::kernel::{KeyId, OrgId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Next,
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "next" => Some(KeyState::Next),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A signing key as stored: the private half sealed under the master key with the kid as associated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningKeyRecord {
    pub kid: KeyId,
    pub org_id: OrgId,
    pub alg: String,
    #[serde(skip)]
    pub private_key_sealed: Vec<u8>,
    /// The public JWK (with `kid`, `alg`, `use`) exactly as published.
    pub public_jwk: String,
    pub state: KeyState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}
