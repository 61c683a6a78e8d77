//! Organizations (tenants) and their settings, as stored.

use serde::{Deserialize, Serialize};

use crate::kernel::OrgId;
use crate::model::settings::{MfaSettings, PasswordPolicy, RateLimits};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub settings: OrgSettings,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Per-organization policy. Every field has a default so new settings never need a data migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrgSettings {
    pub self_registration: bool,
    pub session_idle_timeout_secs: u64,
    pub session_absolute_lifetime_secs: u64,
    pub rate_limits: RateLimits,
    pub password_policy: PasswordPolicy,
    pub mfa: MfaSettings,
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            self_registration: true,
            session_idle_timeout_secs: 30 * 60,
            session_absolute_lifetime_secs: 12 * 3600,
            rate_limits: Default::default(),
            password_policy: Default::default(),
            mfa: Default::default(),
        }
    }
}

/// A member's role inside an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}
