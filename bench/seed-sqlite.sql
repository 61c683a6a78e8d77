-- Bulk seed for bench/admin.sh (SQLite): :orgs tenant organizations, :users users in the organization
-- `big`, :events audit events in its log. Parameters are substituted by bench/admin.sh (sed), so the
-- statements stay plain SQL. The seeded audit rows carry filler hashes: the data set measures reads, and
-- `latchkey audit verify` reports the seeded range of `big` as broken (the real events around it chain).
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @ORGS@)
INSERT INTO organizations (id, slug, name, settings, created_at, updated_at)
SELECT printf('org_%032x', i), printf('tenant-%05d', i), printf('Tenant %d', i), '{}', @NOW@, @NOW@ FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @USERS@)
INSERT INTO users (id, org_id, email, email_normalized, email_verified, name, session_version, disabled,
                   created_at, updated_at)
SELECT printf('usr_%032x', i), '@ORG@', printf('user%07d@example%d.com', i, i % 100),
       printf('user%07d@example%d.com', i, i % 100), 1, printf('User %d', i), 1, 0, @NOW@ - i, @NOW@ - i
FROM n;

-- The events go after the organization's real ones; audit_heads moves to the last.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @EVENTS@)
INSERT INTO audit_events (org_id, seq, at, actor_type, actor_id, actor_role, ip, user_agent, action,
                          target_type, target_id, before_state, after_state, prev_hash, hash, chain_version)
SELECT '@ORG@', @SEQ0@ + i, @NOW@ - 31536000 + i * 31536000 / @EVENTS@,
       CASE WHEN i % 10 = 0 THEN 'staff' ELSE 'user' END,
       CASE WHEN i % 10 = 0 THEN printf('usr_%032x', 2000000 + i % 50) ELSE printf('usr_%032x', 1 + i % @USERS@) END,
       CASE WHEN i % 10 = 0 THEN 'admin' ELSE NULL END,
       printf('203.0.113.%d', i % 250), 'bench/1.0',
       CASE i % 8 WHEN 0 THEN 'user.updated' WHEN 1 THEN 'login.succeeded' WHEN 2 THEN 'logout'
                  WHEN 3 THEN 'login.failed' WHEN 4 THEN 'token.issued' WHEN 5 THEN 'password.changed'
                  WHEN 6 THEN 'mfa.succeeded' ELSE 'email.verified' END,
       'user', printf('usr_%032x', 1 + i % @USERS@), NULL, NULL,
       printf('%064x', @SEQ0@ + i - 1), printf('%064x', @SEQ0@ + i), 2
FROM n;
UPDATE audit_heads SET seq = @SEQ0@ + @EVENTS@, hash = printf('%064x', @SEQ0@ + @EVENTS@) WHERE org_id = '@ORG@';
COMMIT;
ANALYZE;
