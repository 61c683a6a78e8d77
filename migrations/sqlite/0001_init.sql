-- Latchkey schema, SQLite flavour. Timestamps are Unix seconds (INTEGER); JSON documents are TEXT.
-- Kept column-for-column identical to migrations/postgres/0001_init.sql so one set of queries serves both.

CREATE TABLE instance_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    settings   TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    email_verified   BOOLEAN NOT NULL DEFAULT FALSE,
    name             TEXT,
    session_version  INTEGER NOT NULL DEFAULT 1,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (org_id, email_normalized)
);

CREATE TABLE org_members (
    org_id     TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- Passwords (slow hash), TOTP seeds (sealed), WebAuthn credentials, recovery codes (hashed).
CREATE TABLE credentials (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('password', 'totp', 'webauthn', 'recovery_code')),
    name         TEXT,
    secret       BLOB NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX credentials_by_user ON credentials (user_id, kind);

CREATE TABLE applications (
    id                        TEXT PRIMARY KEY,
    org_id                    TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    client_id                 TEXT NOT NULL UNIQUE,
    name                      TEXT NOT NULL,
    client_type               TEXT NOT NULL CHECK (client_type IN ('public', 'confidential')),
    client_secret_hash        BLOB,
    redirect_uris             TEXT NOT NULL DEFAULT '[]',
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    grant_types               TEXT NOT NULL DEFAULT '[]',
    cors_origins              TEXT NOT NULL DEFAULT '[]',
    first_party               BOOLEAN NOT NULL DEFAULT FALSE,
    settings                  TEXT NOT NULL DEFAULT '{}',
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);
CREATE INDEX applications_by_org ON applications (org_id);

CREATE TABLE sessions (
    id_hash          BLOB PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_id        TEXT NOT NULL UNIQUE,
    auth_time        INTEGER NOT NULL,
    amr              TEXT NOT NULL DEFAULT '[]',
    acr              TEXT,
    ip               TEXT,
    user_agent       TEXT,
    session_version  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    app_id     TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, app_id)
);

-- Everything issued from one authorization (a code and the refresh tokens that follow it) shares a family,
-- so code reuse or refresh-token reuse can revoke all of it at once.
CREATE TABLE token_families (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    app_id         TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    user_id        TEXT REFERENCES users(id) ON DELETE CASCADE,
    session_id     TEXT,
    scope          TEXT NOT NULL,
    auth_time      INTEGER,
    amr            TEXT NOT NULL DEFAULT '[]',
    acr            TEXT,
    session_version INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);

CREATE INDEX token_families_by_user ON token_families (user_id);

CREATE TABLE authorization_codes (
    code_hash      BLOB PRIMARY KEY,
    family_id      TEXT NOT NULL REFERENCES token_families(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER
);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES token_families(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Access tokens revoked before they expire (RFC 7009); kept until `expires_at`.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

-- Signing keys: private halves sealed with AES-256-GCM under the master key, the record id as AAD.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    alg           TEXT NOT NULL,
    private_key   BLOB NOT NULL,
    public_jwk    TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER,
    retired_at    INTEGER,
    publish_until INTEGER
);
CREATE INDEX signing_keys_by_org ON signing_keys (org_id, state);

-- Email verification links, password-reset sessions, email codes: stored hashed, single use.
CREATE TABLE one_time_tokens (
    token_hash  BLOB PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_by   TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE webhook_endpoints (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     BLOB NOT NULL,
    events     TEXT NOT NULL DEFAULT '[]',
    disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_outbox (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (delivered_at, next_attempt_at);

CREATE TABLE email_outbox (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body_text  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

-- The audit log: one hash chain per organization. No foreign key, so deleting an organization never
-- deletes its history; triggers refuse UPDATE and DELETE.
CREATE TABLE audit_heads (
    org_id TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   TEXT NOT NULL
);

CREATE TABLE audit_events (
    org_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT,
    actor_role  TEXT,
    ip          TEXT,
    user_agent  TEXT,
    action      TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    before_state TEXT,
    after_state  TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
