//! Email: messages are written to a durable outbox (the `email_outbox` table) in the same transaction as
//! the action that causes them, so an acknowledged action never loses its email. With SMTP configured a
//! delivery worker ([`delivery`]) sends them; without it they stay in the outbox for
//! `latchkey outbox list/show`.
//!
//! A queued message's body (codes, links) is sealed under the master key (AES-256-GCM, bound to the message
//! id) and deleted once the message is delivered; recipient, subject and timestamps stay as the record.
//!
//! After queueing, call [`Services::wake_email_delivery`](crate::service::Services::wake_email_delivery)
//! (or use [`queue`], which does both) so the worker sends at once instead of at its next poll.

use crate::kernel::{EmailId, OrgId};
pub mod delivery;
pub mod smtp;

use serde::Serialize;

use crate::service::Services;
use crate::storage::StoreResult;
use crate::time_now;

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
    pub fn new(org_id: &str, recipient: &str, subject: &str, body_text: String) -> Self {
        Self {
            id: EmailId::generate(),
            org_id: OrgId::from(org_id),
            recipient: recipient.to_string(),
            subject: subject.to_string(),
            body_text,
            created_at: time_now(),
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

/// Queues one email on its own and wakes the delivery worker. Emails that belong to an action are
/// queued by that action's store method (in its transaction); call
/// [`Services::wake_email_delivery`] after it commits.
pub async fn queue(services: &Services, email: &OutgoingEmail) -> StoreResult<()> {
    services
        .db
        .tenant(&email.org_id)
        .enqueue_email(email)
        .await?;
    services.wake_email_delivery();
    Ok(())
}
