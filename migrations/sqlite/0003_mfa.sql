-- Multi-factor authentication: email codes become an enrollable factor (kind 'email_otp'), and a session
-- remembers when its holder last proved a second factor (for step-up on sensitive actions).
-- Kept column-for-column identical to migrations/postgres/0003_mfa.sql.

-- SQLite cannot alter a CHECK constraint: the table is rebuilt (nothing references credentials).
CREATE TABLE credentials_new (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('password', 'totp', 'webauthn', 'recovery_code', 'email_otp')),
    name         TEXT,
    secret       BLOB NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
INSERT INTO credentials_new (id, user_id, kind, name, secret, data, created_at, last_used_at)
    SELECT id, user_id, kind, name, secret, data, created_at, last_used_at FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_by_user ON credentials (user_id, kind);

ALTER TABLE sessions ADD COLUMN mfa_at INTEGER;
