-- Multi-factor authentication: email codes become an enrollable factor (kind 'email_otp'), and a session
-- remembers when its holder last proved a second factor (for step-up on sensitive actions).
-- Kept column-for-column identical to migrations/sqlite/0003_mfa.sql.

ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('password', 'totp', 'webauthn', 'recovery_code', 'email_otp'));

ALTER TABLE sessions ADD COLUMN mfa_at BIGINT;
