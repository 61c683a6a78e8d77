-- Email delivery: the worker claims due messages for a short lease, retries failures with backoff and
-- gives up (keeping the row) after a bounded number of attempts.
-- Kept column-for-column identical to migrations/postgres/0002_email_delivery.sql.

ALTER TABLE email_outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE email_outbox ADD COLUMN claimed_until INTEGER;
ALTER TABLE email_outbox ADD COLUMN failed_at INTEGER;

CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX email_outbox_org ON email_outbox (org_id, created_at);
CREATE INDEX email_outbox_created ON email_outbox (created_at);
