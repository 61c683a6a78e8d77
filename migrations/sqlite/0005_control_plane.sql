-- The control plane: staff (users of the staff organization) and their roles in the organizations they
-- administer, organization API keys, team invitations, client-secret rotation with overlap and
-- idempotent creates. Kept column-for-column identical to migrations/postgres/0005_control_plane.sql.

-- Staff membership: a user of the staff organization holds a role in an organization. Owners of the
-- staff organization itself are the platform operators.
CREATE TABLE staff_memberships (
    org_id     TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    staff_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, staff_id)
);
CREATE INDEX staff_memberships_by_staff ON staff_memberships (staff_id);

-- The never-used placeholder of 0001 is replaced by keys with scopes, expiry and rotation.
DROP TABLE api_keys;
CREATE TABLE api_keys (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    scopes               TEXT NOT NULL DEFAULT '[]',
    secret_hash          BLOB NOT NULL UNIQUE,
    previous_hash        BLOB UNIQUE,
    previous_valid_until INTEGER,
    created_by           TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER,
    revoked_at           INTEGER,
    last_used_at         INTEGER,
    last_used_ip         TEXT
);
CREATE INDEX api_keys_by_org ON api_keys (org_id, created_at);

CREATE TABLE invitations (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash       BLOB NOT NULL UNIQUE,
    invited_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    accepted_at      INTEGER,
    revoked_at       INTEGER
);
CREATE INDEX invitations_by_org ON invitations (org_id, created_at);

-- A rotated client secret keeps working until previous_secret_valid_until.
ALTER TABLE applications ADD COLUMN previous_secret_hash BLOB;
ALTER TABLE applications ADD COLUMN previous_secret_valid_until INTEGER;

-- A create retried with the same Idempotency-Key returns the first answer (sealed: it may hold a secret
-- shown once) instead of creating twice; status 0 marks a request still running.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    principal    BLOB NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL,
    response     BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, principal, idem_key)
);

-- Admin listings at scale: audit events filtered by action.
CREATE INDEX audit_events_by_action ON audit_events (org_id, action, seq);
