//! The control plane's records: staff memberships, admin API keys and team invitations. Staff are users of
//! the staff organization (see `staff`); these rows say what they may do in the organizations they
//! administer.

use serde::Serialize;

use crate::kernel::{ApiKeyId, InvitationId, OrgId, UserId};
use crate::model::orgs::Role;

/// A staff member's role in one organization, with who they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    pub org_id: OrgId,
    pub staff_id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub created_at: i64,
}

/// One organization a staff member belongs to, for their own list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub org_id: OrgId,
    pub slug: String,
    pub name: String,
    pub role: Role,
}

/// An organization's admin API key. The secret exists only in the answer that created or rotated it;
/// the store keeps its keyed hash (and, during a rotation's grace period, the previous one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// Scope names (see `staff::access::Scope`), sorted.
    pub scopes: Vec<String>,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    #[serde(skip)]
    pub previous_hash: Option<Vec<u8>>,
    /// Until when the secret replaced by the last rotation still works.
    pub previous_valid_until: Option<i64>,
    /// The actor id of whoever created it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<String>,
}

impl ApiKey {
    /// Whether the key may be used at `now` (not revoked, not expired).
    pub fn usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// An invitation to join an organization's team with a role. The link's token is stored as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub org_id: OrgId,
    pub email: String,
    #[serde(skip)]
    pub email_normalized: String,
    pub role: Role,
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Invitation {
    /// Whether the link can still be accepted at `now`.
    pub fn open(&self, now: i64) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && now < self.expires_at
    }
}
