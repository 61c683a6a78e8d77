//! The delivery worker: started by `latchkey serve` when `smtp_host` is set, stopped on shutdown.
//!
//! It polls the outbox every second, and at once when woken ([`HasMailer::wake_email_delivery`](crate::deps::HasMailer::wake_email_delivery)). Each pass
//! claims due messages for a lease (safe with several instances sharing PostgreSQL), sends them, and marks
//! each sent or failed. A failure is retried with exponential backoff; after `max_attempts` the message
//! is marked failed and kept. Logs name the message id and organization, never the body, subject,
//! recipient, codes or links.

use std::time::Duration;

use futures_util::future::join_all;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::OutboxEntry;
use super::smtp::{Mailer, SendError};
use crate::deps::{HasClock, HasDb, HasSecrets};
use crate::storage::StoreResult;

/// How delivery paces itself. [`Default`] is what the server uses; tests shorten the backoff.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Time between looks at the outbox when nobody wakes the worker.
    pub poll_interval: Duration,
    /// Wait after the first failure; doubled after each further failure, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Attempts before a message is marked failed (and kept).
    pub max_attempts: i64,
    /// Messages claimed (and sent concurrently) per round.
    pub batch: i64,
    /// One message's whole hand-over may take this long; the claim lasts twice as long.
    pub send_timeout: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            max_attempts: 10,
            batch: 10,
            send_timeout: Duration::from_secs(60),
        }
    }
}

impl DeliveryOptions {
    /// Seconds to wait before the next attempt after `failures` failed attempts (1 = the first).
    pub fn backoff_secs(&self, failures: i64) -> i64 {
        let base = self.retry_base.as_secs().max(1);
        let cap = self.retry_cap.as_secs().max(base);
        let exponent = failures.saturating_sub(1).clamp(0, 32) as u32;
        base.saturating_mul(1u64 << exponent).min(cap) as i64
    }

    fn lease_secs(&self) -> i64 {
        (self.send_timeout.as_secs().max(1) * 2) as i64
    }
}

/// Starts the worker; it finishes the message in hand and exits once `stop` turns true. `wakeup` is the
/// signal behind [`HasMailer::wake_email_delivery`](crate::deps::HasMailer).
pub fn spawn(
    deps: impl HasDb + HasClock + HasSecrets + Send + Sync + 'static,
    wakeup: Arc<tokio::sync::Notify>,
    mailer: Mailer,
    options: DeliveryOptions,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(relay = mailer.relay(), "email delivery started");
        loop {
            if *stop.borrow() {
                break;
            }
            if let Err(e) = deliver_due(&deps, &mailer, &options, &stop).await {
                tracing::warn!(error = %e, "email delivery: cannot read the outbox; retrying");
            }
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                _ = wakeup.notified() => {}
                _ = tokio::time::sleep(options.poll_interval) => {}
            }
        }
        tracing::info!("email delivery stopped");
    })
}

/// Sends everything due now, a batch at a time; returns how many messages were handed over.
pub async fn deliver_due(
    deps: &(impl HasClock + HasDb),
    mailer: &Mailer,
    options: &DeliveryOptions,
    stop: &watch::Receiver<bool>,
) -> StoreResult<usize> {
    let mut delivered = 0;
    loop {
        let now = deps.now();
        let claimed = deps
            .db()
            .system()
            .claim_due_emails(now, now + options.lease_secs(), options.batch.max(1))
            .await?;
        let count = claimed.len();
        let outcomes = join_all(
            claimed
                .iter()
                .map(|entry| deliver_one(deps, mailer, options, entry)),
        )
        .await;
        for outcome in outcomes {
            delivered += usize::from(outcome?);
        }
        if (count as i64) < options.batch.max(1) || *stop.borrow() {
            return Ok(delivered);
        }
    }
}

/// Sends one claimed message and records the outcome; true when it was handed over.
async fn deliver_one(
    deps: &(impl HasClock + HasDb),
    mailer: &Mailer,
    options: &DeliveryOptions,
    entry: &OutboxEntry,
) -> StoreResult<bool> {
    let email = &entry.email;
    let result = match tokio::time::timeout(options.send_timeout, mailer.send(email)).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Smtp(format!(
            "timed out after {} s",
            options.send_timeout.as_secs()
        ))),
    };
    let now = deps.now();
    let attempt = entry.attempts + 1;
    match result {
        Ok(()) => {
            deps.db().system().mark_email_sent(&email.id, now).await?;
            tracing::info!(
                email_id = %email.id,
                org_id = %email.org_id,
                attempt,
                relay = mailer.relay(),
                "email sent"
            );
            Ok(true)
        }
        Err(e) => {
            let message = e.to_string();
            let give_up =
                matches!(e, SendError::Undeliverable(_)) || attempt >= options.max_attempts;
            if give_up {
                deps.db()
                    .system()
                    .mark_email_failed(&email.id, &message, now, Some(now))
                    .await?;
                tracing::error!(
                    email_id = %email.id,
                    org_id = %email.org_id,
                    attempt,
                    error = %message,
                    "email not delivered; giving up (the message stays in the outbox)"
                );
            } else {
                let wait = options.backoff_secs(attempt);
                deps.db()
                    .system()
                    .mark_email_failed(&email.id, &message, now + wait, None)
                    .await?;
                tracing::warn!(
                    email_id = %email.id,
                    org_id = %email.org_id,
                    attempt,
                    retry_in_secs = wait,
                    error = %message,
                    "email delivery failed; will retry"
                );
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let options = DeliveryOptions::default();
        let waits: Vec<i64> = (1..=10).map(|n| options.backoff_secs(n)).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(options.backoff_secs(1000), 3600);
        let quick = DeliveryOptions {
            retry_base: Duration::from_millis(10),
            ..DeliveryOptions::default()
        };
        assert_eq!(quick.backoff_secs(1), 1, "whole seconds, at least one");
    }
}
