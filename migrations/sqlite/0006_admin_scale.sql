-- Admin listings at scale: audit events filtered by actor, by the user they concern and by time, without
-- scanning an organization's whole history.
CREATE INDEX audit_events_by_actor ON audit_events (org_id, actor_id, seq);
CREATE INDEX audit_events_by_target ON audit_events (org_id, target_id, seq);
CREATE INDEX audit_events_by_time ON audit_events (org_id, at, seq);
