//! Email: messages are written to a durable outbox (the `email_outbox` table) in the same transaction as
//! the action that causes them, so an acknowledged action never loses its email. With SMTP configured a
//! delivery worker sends them; without it they stay in the outbox for `latchkey outbox list/show`.

use serde::Serialize;

use crate::{crypto, time_now};

/// One message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingEmail {
    pub id: String,
    pub org_id: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub created_at: i64,
}

impl OutgoingEmail {
    pub fn new(org_id: &str, recipient: &str, subject: &str, body_text: String) -> Self {
        Self {
            id: crypto::random_id("eml"),
            org_id: org_id.to_string(),
            recipient: recipient.to_string(),
            subject: subject.to_string(),
            body_text,
            created_at: time_now(),
        }
    }
}
