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

pub use crate::model::email::{OutboxEntry, OutboxStatus, OutgoingEmail, body_aad};

pub mod delivery;
pub mod smtp;


use crate::service::Services;
use crate::storage::StoreResult;

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
