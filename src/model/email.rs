//! Outgoing email and its outbox entry, as stored (bodies sealed).

use serde::Serialize;

use crate::kernel::{EmailId, OrgId};

/// One message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingEmail {
    pub id: EmailId,
    pub org_id: OrgId,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub created_at: i64,
}

impl OutgoingEmail {
    /// A message queued at `created_at` (the caller's clock).
    pub fn new(
        created_at: i64,
        org_id: &str,
        recipient: &str,
        subject: &str,
        body_text: String,
    ) -> Self {
        Self {
            id: EmailId::generate(),
            org_id: OrgId::from(org_id),
            recipient: recipient.to_string(),
            subject: subject.to_string(),
            body_text,
            created_at,
        }
    }
}

/// The associated data a queued body is sealed with: the message id, under its own prefix so a sealed
/// body never opens as another kind of record with the same id.
pub fn body_aad(email_id: &str) -> String {
    format!("email_outbox.body:{email_id}")
}

/// Where a message stands in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for (another) delivery attempt, or for SMTP to be configured.
    Queued,
    Sent,
    /// Delivery gave up after too many failed attempts; the message is kept.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Queued => "queued",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }
}

/// A message with its delivery state, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    #[serde(flatten)]
    pub email: OutgoingEmail,
    pub sent_at: Option<i64>,
    /// Failed delivery attempts so far.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The next attempt is not made before this time.
    pub next_attempt_at: i64,
    /// Set when delivery gave up.
    pub failed_at: Option<i64>,
}

impl OutboxEntry {
    pub fn status(&self) -> OutboxStatus {
        if self.sent_at.is_some() {
            OutboxStatus::Sent
        } else if self.failed_at.is_some() {
            OutboxStatus::Failed
        } else {
            OutboxStatus::Queued
        }
    }
}
