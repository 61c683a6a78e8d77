-- Users are listed and searched by email prefix in code-point order whatever the database's collation: a
-- linguistic collation would put some addresses with the prefix outside the range scanned for it. Equality
-- (and so the unique constraint) is unchanged.
ALTER TABLE users ALTER COLUMN email_normalized TYPE TEXT COLLATE "C";

-- Admin listings at scale: audit events filtered by actor, by the user they concern and by time, without
-- scanning an organization's whole history.
CREATE INDEX audit_events_by_actor ON audit_events (org_id, actor_id, seq);
CREATE INDEX audit_events_by_target ON audit_events (org_id, target_id, seq);
CREATE INDEX audit_events_by_time ON audit_events (org_id, at, seq);
