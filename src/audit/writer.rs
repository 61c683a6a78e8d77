//! Group commit for audit events on hot paths (token issuance): events from concurrent requests are
//! written in one transaction, so one disk sync covers many of them. Each caller still waits until its
//! event is committed before answering, so an acknowledged action is never missing from the log.

use tokio::sync::{mpsc, oneshot};

use super::NewAuditEvent;
use crate::error::{Error, Result};
use crate::storage::Db;

const MAX_BATCH: usize = 256;

type Job = (NewAuditEvent, oneshot::Sender<Result<()>>);

#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
}

impl AuditWriter {
    pub fn start(db: Db) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            // Whatever queued up while the previous batch was committing goes into the next one.
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                // Let the requests that are ready to run (under load: signing their tokens) finish and
                // queue their events first, so one transaction and one disk sync cover all of them. With
                // nothing else to run this returns at once, so an idle server adds no delay.
                tokio::task::yield_now().await;
                while batch.len() < MAX_BATCH
                    && let Ok(job) = rx.try_recv()
                {
                    batch.push(job);
                }
                let (events, waiting): (Vec<NewAuditEvent>, Vec<_>) = batch.drain(..).unzip();
                // Every waiter gets the batch's outcome, classified like any storage error, so an
                // unavailable database is answered 503 (retry) and only a real fault 500.
                let outcome = db
                    .system()
                    .append_audit_batch(&events)
                    .await
                    .map_err(Error::from);
                if let Err(e) = &outcome {
                    tracing::error!(error = %e, count = events.len(), "audit batch failed");
                }
                for done in waiting {
                    let _ = done.send(copy_outcome(&outcome));
                }
            }
        });
        Self { tx }
    }

    /// Appends `event` and waits for it to be committed. `Error::Unavailable` when the database cannot
    /// take writes now; another error when the event could not be written for another reason.
    pub async fn record(&self, event: NewAuditEvent) -> Result<()> {
        let stopped = || Error::Internal("the audit writer has stopped".into());
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send((event, done_tx)).await.is_err() {
            return Err(stopped());
        }
        done_rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// One batch's outcome for each of its waiters (errors are not `Clone`; their class and message are kept).
fn copy_outcome(outcome: &Result<()>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(Error::Unavailable(cause)) => Err(Error::Unavailable(cause.clone())),
        Err(other) => Err(Error::Internal(other.to_string())),
    }
}
