-- Bulk seed for bench/admin.sh (PostgreSQL): the same data set as bench/seed-sqlite.sql (see there).
SET synchronous_commit = off;
BEGIN;
INSERT INTO organizations (id, slug, name, settings, created_at, updated_at)
SELECT 'org_' || lpad(to_hex(i), 32, '0'), 'tenant-' || lpad(i::text, 5, '0'), 'Tenant ' || i, '{}', @NOW@, @NOW@
FROM generate_series(1, @ORGS@) AS i;

INSERT INTO users (id, org_id, email, email_normalized, email_verified, name, session_version, disabled,
                   created_at, updated_at)
SELECT 'usr_' || lpad(to_hex(i), 32, '0'), '@ORG@',
       'user' || lpad(i::text, 7, '0') || '@example' || (i % 100) || '.com',
       'user' || lpad(i::text, 7, '0') || '@example' || (i % 100) || '.com',
       TRUE, 'User ' || i, 1, FALSE, @NOW@ - i, @NOW@ - i
FROM generate_series(1, @USERS@) AS i;

INSERT INTO audit_events (org_id, seq, at, actor_type, actor_id, actor_role, ip, user_agent, action,
                          target_type, target_id, before_state, after_state, prev_hash, hash, chain_version)
SELECT '@ORG@', @SEQ0@ + i, @NOW@ - 31536000 + i * 31536000 / @EVENTS@,
       CASE WHEN i % 10 = 0 THEN 'staff' ELSE 'user' END,
       CASE WHEN i % 10 = 0 THEN 'usr_' || lpad(to_hex(2000000 + i % 50), 32, '0')
            ELSE 'usr_' || lpad(to_hex(1 + i % @USERS@), 32, '0') END,
       CASE WHEN i % 10 = 0 THEN 'admin' END,
       '203.0.113.' || (i % 250), 'bench/1.0',
       (ARRAY['user.updated', 'login.succeeded', 'logout', 'login.failed', 'token.issued', 'password.changed',
              'mfa.succeeded', 'email.verified'])[1 + i % 8],
       'user', 'usr_' || lpad(to_hex(1 + i % @USERS@), 32, '0'), NULL, NULL,
       lpad(to_hex(@SEQ0@ + i - 1), 64, '0'), lpad(to_hex(@SEQ0@ + i), 64, '0'), 2
FROM generate_series(1::bigint, @EVENTS@) AS i;
UPDATE audit_heads SET seq = @SEQ0@ + @EVENTS@, hash = lpad(to_hex(@SEQ0@ + @EVENTS@), 64, '0') WHERE org_id = '@ORG@';
COMMIT;
VACUUM ANALYZE;
