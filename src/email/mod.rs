//! Email: messages are written to a durable outbox (the `email_outbox` table) in the same transaction as
//! the action that causes them, so an acknowledged action never loses its email. With SMTP configured a
//! delivery worker ([`delivery`]) sends them; without it they stay in the outbox for
//! `latchkey outbox list/show`.
//!
//! A queued message's body (codes, links) is sealed under the master key (AES-256-GCM, bound to the message
//! id) and deleted once the message is delivered; recipient, subject and timestamps stay as the record.
//!
//! After queueing, call [`HasMailer::wake_email_delivery`](crate::deps::HasMailer::wake_email_delivery)
//! (or use [`queue`], which does both) so the worker sends at once instead of at its next poll.

pub use crate::model::email::{OutboxEntry, OutboxStatus, OutgoingEmail, body_aad};

pub mod delivery;
pub mod smtp;

use crate::deps::{HasDb, HasMailer};
use crate::storage::StoreResult;

/// Queues one email on its own and wakes the delivery worker. Emails that belong to an action are
/// queued by that action's store method (in its transaction); call
/// [`HasMailer::wake_email_delivery`](crate::deps::HasMailer::wake_email_delivery) after it commits.
pub async fn queue(deps: &(impl HasDb + HasMailer), email: &OutgoingEmail) -> StoreResult<()> {
    deps.db().tenant(&email.org_id).enqueue_email(email).await?;
    deps.wake_email_delivery();
    Ok(())
}
