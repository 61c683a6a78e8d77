//! The SMTP side of delivery: a lettre transport built from the configuration, and the message built
//! from an outbox row. Bodies are sent, never logged.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::OutgoingEmail;
use crate::config::{SmtpConfig, SmtpTls};

/// How long one SMTP command may take before the attempt counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message itself cannot be sent (for example, its recipient is not an address): retrying would
    /// fail the same way.
    #[error("{0}")]
    Undeliverable(String),
    /// The relay could not be reached, refused, or failed: worth another attempt later.
    #[error("{0}")]
    Smtp(String),
}

/// Sends outbox messages through the configured relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for logs.
    relay: String,
}

impl Mailer {
    pub fn new(smtp: &SmtpConfig, from: Mailbox) -> Result<Self, String> {
        let builder = match smtp.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                .map_err(|e| error_chain(&e))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .map_err(|e| error_chain(&e))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        };
        let mut builder = builder.port(smtp.port).timeout(Some(COMMAND_TIMEOUT));
        if let Some((user, password)) = &smtp.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            relay: format!("{}:{}", smtp.host, smtp.port),
        })
    }

    pub fn relay(&self) -> &str {
        &self.relay
    }

    /// Builds the message for `email` (plain text, UTF-8, a Message-ID derived from the outbox id so a
    /// retried message can be recognized) and hands it to the relay.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
        let message = build_message(&self.from, email)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| SendError::Smtp(error_chain(&e)))
    }
}

fn build_message(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, SendError> {
    let to: Mailbox = email.recipient.parse().map_err(|e| {
        SendError::Undeliverable(format!("the recipient is not a valid email address: {e}"))
    })?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}@{}>", email.id, from.email.domain())))
        .header(ContentType::TEXT_PLAIN)
        .body(email.body_text.clone())
        .map_err(|e| SendError::Undeliverable(format!("cannot build the message: {e}")))
}

/// An error and its sources on one line (lettre's top-level messages are terse), kept short enough to
/// store.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if text.len() > 500 {
        let mut cut = 500;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(recipient: &str) -> OutgoingEmail {
        OutgoingEmail::new(
            crate::time_now(),
            "org_1",
            recipient,
            "Your code",
            "Your code is 123456.\nÜnïcödé too.".into(),
        )
    }

    #[test]
    fn messages_carry_sender_recipient_subject_and_a_stable_message_id() {
        let from: Mailbox = "Acme <no-reply@acme.test>".parse().unwrap();
        let mail = email("ann@example.com");
        let message = build_message(&from, &mail).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.contains("From: Acme <no-reply@acme.test>"), "{text}");
        assert!(text.contains("To: ann@example.com"), "{text}");
        assert!(text.contains("Subject: Your code"), "{text}");
        assert!(
            text.contains(&format!("Message-ID: <{}@acme.test>", mail.id)),
            "{text}"
        );
        assert!(text.contains("text/plain; charset=utf-8"), "{text}");
    }

    #[test]
    fn a_recipient_that_is_not_an_address_is_undeliverable() {
        let from: Mailbox = "no-reply@acme.test".parse().unwrap();
        assert!(matches!(
            build_message(&from, &email("not an address")),
            Err(SendError::Undeliverable(_))
        ));
    }
}
