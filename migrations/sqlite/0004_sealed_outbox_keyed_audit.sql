-- Outbox bodies sealed under the master key; the audit chain keyed under it.
-- Kept column-for-column identical to migrations/postgres/0004_sealed_outbox_keyed_audit.sql.

-- New bodies go to body_sealed (AES-256-GCM, bound to the row id) and body_text stays empty. Rows still
-- queued are sealed by the server at start-up (SQL has no key); delivered rows lose their body now.
ALTER TABLE email_outbox ADD COLUMN body_sealed BLOB;
UPDATE email_outbox SET body_text = '' WHERE sent_at IS NOT NULL;

-- 1: plain SHA-256 (every event written so far); 2: HMAC-SHA-256 under the audit chain key. The server
-- closes each legacy chain with a keyed `audit.chain_keyed` event at start-up.
ALTER TABLE audit_events ADD COLUMN chain_version INTEGER NOT NULL DEFAULT 1;

-- An organization's chain head is never removed: verification requires one for every organization that
-- exists or ever had events.
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
BEGIN
    SELECT RAISE(ABORT, 'audit_heads rows are never deleted');
END;

-- The chains to close under the key, as their heads stand now. Recorded here, in the migration's own
-- transaction, so the duty survives a start that dies before doing it, and so a chain written into the
-- database later is never sealed: a chain is closed only while its head is still exactly this, and its
-- row goes in the same transaction as the closing event (or, for any instance, before its next event).
CREATE TABLE audit_keying_pending (
    org_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_keying_pending (org_id, seq, hash) SELECT org_id, seq, hash FROM audit_heads WHERE seq > 0;
