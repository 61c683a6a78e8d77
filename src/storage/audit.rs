//! The audit log: one hash chain per organization. An organization appends to and reads its own chain;
//! the audit writer's group commit and the start-up upgrade work across chains through the system door.

use super::prelude::{AuditEvent, AuditFilter, NewAuditEvent, OrgId};
use super::{OrgStore, StoreResult, SystemStore, dispatch};

pub(super) const AUDIT_COLUMNS: &str = "org_id, seq, at, actor_type, actor_id, actor_role, ip, user_agent, action, \
     target_type, target_id, before_state, after_state, prev_hash, hash, chain_version";

macro_rules! audit_queries {
    ($store:ty, $db:ty, $row:ty) => {
        const _: () = {
            use $crate::storage::audit::AUDIT_COLUMNS;
            use $crate::storage::prelude::*;
            type Tx<'a> = sqlx::Transaction<'a, $db>;

            impl $store {
                fn audit_from_row(row: &$row) -> StoreResult<AuditEvent> {
                    Ok(AuditEvent {
                        org_id: row.try_get("org_id")?,
                        seq: row.try_get("seq")?,
                        at: row.try_get("at")?,
                        actor_type: row.try_get("actor_type")?,
                        actor_id: row.try_get("actor_id")?,
                        actor_role: row.try_get("actor_role")?,
                        ip: row.try_get("ip")?,
                        user_agent: row.try_get("user_agent")?,
                        action: row.try_get("action")?,
                        target_type: row.try_get("target_type")?,
                        target_id: row.try_get("target_id")?,
                        before_state: row.try_get("before_state")?,
                        after_state: row.try_get("after_state")?,
                        prev_hash: row.try_get("prev_hash")?,
                        hash: row.try_get("hash")?,
                        chain_version: row.try_get("chain_version")?,
                    })
                }

                /// Appends `events` (all of one organization) to its chain inside `tx`. The head row is advanced
                /// with an upsert first, which takes the row lock (PostgreSQL) or the write lock (SQLite), so
                /// concurrent appends queue up instead of forking the chain. The events go in as one multi-row
                /// INSERT per chunk: the audit writer's batches cost a handful of statements, not four per event.
                pub(in crate::storage) async fn append_audit_chain_tx(
                    tx: &mut Tx<'_>,
                    sealing: &StoreSealing,
                    org_id: &OrgId,
                    events: &[&NewAuditEvent],
                ) -> StoreResult<Vec<AuditEvent>> {
                    // A legacy chain the keying migration recorded is closed before anything else joins it,
                    // but only while its head is still the one recorded (a chain written in later is never
                    // sealed; verification flags it).
                    let pending = sqlx::query("DELETE FROM audit_keying_pending WHERE org_id = $1 RETURNING seq, hash")
                        .bind(org_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                    let mut closing = None;
                    if let Some(pending) = pending {
                        let (seq, hash): (i64, String) = (pending.try_get("seq")?, pending.try_get("hash")?);
                        let head = sqlx::query("SELECT seq, hash FROM audit_heads WHERE org_id = $1")
                            .bind(org_id)
                            .fetch_optional(&mut **tx)
                            .await?;
                        if let Some(head) = head
                            && head.try_get::<i64, _>("seq")? == seq
                            && head.try_get::<String, _>("hash")? == hash
                        {
                            closing = Some(chain_keyed_event(org_id, seq, &hash));
                        }
                    }
                    let own = events.len();
                    let events: Vec<&NewAuditEvent> = closing.iter().chain(events.iter().copied()).collect();
                    if events.is_empty() {
                        return Ok(Vec::new());
                    }
                    // One statement creates the head (first event of the organization) or advances it.
                    let head = sqlx::query(
                        "INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, $2, $3) \
                         ON CONFLICT (org_id) DO UPDATE SET seq = audit_heads.seq + excluded.seq \
                         RETURNING seq, hash",
                    )
                    .bind(org_id)
                    .bind(events.len() as i64)
                    .bind(GENESIS_HASH)
                    .fetch_one(&mut **tx)
                    .await?;
                    let last_seq: i64 = head.try_get("seq")?;
                    let mut prev_hash: String = head.try_get("hash")?;
                    // Time never goes backwards within a chain: an instance whose clock is behind stamps
                    // the time of the event before. So a time range is a seq range (see `audit_page`).
                    let previous_at: Option<i64> =
                        sqlx::query_scalar("SELECT at FROM audit_events WHERE org_id = $1 AND seq = $2")
                            .bind(org_id)
                            .bind(last_seq - events.len() as i64)
                            .fetch_optional(&mut **tx)
                            .await?;
                    let clock_now = sealing.clock.now();
                    let now = clock_now.max(previous_at.unwrap_or(i64::MIN));
                    if now - clock_now > 300 {
                        // More than skew: some instance's clock ran ahead, and events keep its time until
                        // real time catches up.
                        tracing::warn!(org = %org_id, behind_secs = now - clock_now, "audit events stamped with an earlier event's later time: check the clocks of every instance");
                    }
                    let mut sealed = Vec::with_capacity(events.len());
                    for (i, event) in events.iter().enumerate() {
                        let e = event.seal(&sealing.audit, last_seq - events.len() as i64 + 1 + i as i64, now, &prev_hash);
                        prev_hash = e.hash.clone();
                        sealed.push(e);
                    }
                    for chunk in sealed.chunks(64) {
                        let mut insert = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO audit_events ({AUDIT_COLUMNS}) "));
                        insert.push_values(chunk, |mut row, e| {
                            row.push_bind(e.org_id.clone())
                                .push_bind(e.seq)
                                .push_bind(e.at)
                                .push_bind(e.actor_type.clone())
                                .push_bind(e.actor_id.clone())
                                .push_bind(e.actor_role.clone())
                                .push_bind(e.ip.clone())
                                .push_bind(e.user_agent.clone())
                                .push_bind(e.action.clone())
                                .push_bind(e.target_type.clone())
                                .push_bind(e.target_id.clone())
                                .push_bind(e.before_state.clone())
                                .push_bind(e.after_state.clone())
                                .push_bind(e.prev_hash.clone())
                                .push_bind(e.hash.clone())
                                .push_bind(e.chain_version);
                        });
                        insert.build().execute(&mut **tx).await?;
                    }
                    sqlx::query("UPDATE audit_heads SET hash = $2 WHERE org_id = $1")
                        .bind(org_id)
                        .bind(&prev_hash)
                        .execute(&mut **tx)
                        .await?;
                    // The caller's events, without a closing event put in front of them.
                    Ok(sealed.split_off(sealed.len() - own))
                }

                /// Appends one event of `org` inside `tx`; an event of another organization is refused.
                pub(in crate::storage) async fn append_audit_tx(
                    tx: &mut Tx<'_>,
                    sealing: &StoreSealing,
                    org: &OrgId,
                    event: &NewAuditEvent,
                ) -> StoreResult<AuditEvent> {
                    belongs(org, &event.org_id, "audit event")?;
                    let mut sealed = Self::append_audit_chain_tx(tx, sealing, org, &[event]).await?;
                    Ok(sealed.remove(0))
                }

                pub(in crate::storage) async fn append_audit(&self, org: &OrgId, event: &NewAuditEvent) -> StoreResult<AuditEvent> {
                    let mut tx = self.write_pool().begin().await?;
                    let sealed = Self::append_audit_tx(&mut tx, &self.sealing, org, event).await?;
                    tx.commit().await?;
                    Ok(sealed)
                }

                /// One page of this organization's events matching `filter`, in `seq` order after (or,
                /// newest first, before) the cursor `from`.
                pub(in crate::storage) async fn audit_page(
                    &self,
                    org: &OrgId,
                    filter: &AuditFilter,
                    from: Option<i64>,
                    newest_first: bool,
                    limit: i64,
                ) -> StoreResult<Vec<AuditEvent>> {
                    // A time range becomes the seq range it covers, found by two probes of the time index,
                    // so the page is read by seq from where the range starts rather than by walking the
                    // whole chain past everything newer (1.5 s at 10 million events on PostgreSQL).
                    let mut seq_range = (None, None);
                    if let Some(since) = filter.since {
                        let first: Option<i64> = sqlx::query_scalar(
                            "SELECT seq FROM audit_events WHERE org_id = $1 AND at >= $2 ORDER BY at, seq LIMIT 1",
                        )
                        .bind(org)
                        .bind(since)
                        .fetch_optional(self.read_pool())
                        .await?;
                        let Some(first) = first else { return Ok(Vec::new()) };
                        seq_range.0 = Some(first);
                    }
                    if let Some(until) = filter.until {
                        let last: Option<i64> = sqlx::query_scalar(
                            "SELECT seq FROM audit_events WHERE org_id = $1 AND at < $2 ORDER BY at DESC, seq DESC LIMIT 1",
                        )
                        .bind(org)
                        .bind(until)
                        .fetch_optional(self.read_pool())
                        .await?;
                        let Some(last) = last else { return Ok(Vec::new()) };
                        seq_range.1 = Some(last);
                    }
                    let mut query = sqlx::QueryBuilder::<$db>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE org_id = "));
                    query.push_bind(org);
                    if let Some(first) = seq_range.0 {
                        query.push(" AND seq >= ").push_bind(first);
                    }
                    if let Some(last) = seq_range.1 {
                        query.push(" AND seq <= ").push_bind(last);
                    }
                    if let Some(from) = from {
                        query.push(if newest_first { " AND seq < " } else { " AND seq > " }).push_bind(from);
                    }
                    if let Some(action) = &filter.action {
                        query.push(" AND action = ").push_bind(action.clone());
                    }
                    if let Some(actor) = &filter.actor {
                        query.push(" AND actor_id = ").push_bind(actor.clone());
                    }
                    if let Some(user) = &filter.user {
                        query
                            .push(" AND ((target_type = 'user' AND target_id = ")
                            .push_bind(user.to_string())
                            .push(") OR (actor_type = 'user' AND actor_id = ")
                            .push_bind(user.to_string())
                            .push("))");
                    }
                    // With the seq range known, `at + 0` keeps the planner on the primary key's range
                    // (the time index would fetch the whole range and sort it: 30 ms a day at 10 million).
                    if let Some(since) = filter.since {
                        query.push(" AND at + 0 >= ").push_bind(since);
                    }
                    if let Some(until) = filter.until {
                        query.push(" AND at + 0 < ").push_bind(until);
                    }
                    query.push(if newest_first { " ORDER BY seq DESC LIMIT " } else { " ORDER BY seq LIMIT " });
                    query.push_bind(limit);
                    let rows = query.build().fetch_all(self.read_pool()).await?;
                    rows.iter().map(Self::audit_from_row).collect()
                }

                pub(in crate::storage) async fn append_audit_batch(&self, events: &[NewAuditEvent]) -> StoreResult<()> {
                    // One chain per organization; order within each is kept.
                    let mut by_org: Vec<(&OrgId, Vec<&NewAuditEvent>)> = Vec::new();
                    for event in events {
                        match by_org.iter_mut().find(|(org, _)| **org == event.org_id) {
                            Some((_, list)) => list.push(event),
                            None => by_org.push((&event.org_id, vec![event])),
                        }
                    }
                    let mut tx = self.write_pool().begin().await?;
                    for (org_id, list) in &by_org {
                        Self::append_audit_chain_tx(&mut tx, &self.sealing, org_id, list).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                pub(in crate::storage) async fn audit_events(&self, org: &OrgId, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditEvent>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                    ))
                    .bind(org)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(Self::audit_from_row).collect()
                }

                pub(in crate::storage) async fn audit_head(&self, org: &OrgId) -> StoreResult<Option<(i64, String)>> {
                    let row = sqlx::query("SELECT seq, hash FROM audit_heads WHERE org_id = $1")
                        .bind(org)
                        .fetch_optional(self.read_pool())
                        .await?;
                    Ok(match row {
                        Some(row) => Some((row.try_get("seq")?, row.try_get("hash")?)),
                        None => None,
                    })
                }

                pub(in crate::storage) async fn audit_org_ids(&self) -> StoreResult<Vec<OrgId>> {
                    let rows = sqlx::query(
                        "SELECT id AS org_id FROM organizations UNION SELECT org_id FROM audit_heads \
                         UNION SELECT DISTINCT org_id FROM audit_events ORDER BY org_id",
                    )
                    .fetch_all(self.read_pool())
                    .await?;
                    rows.iter().map(|row| Ok(row.try_get("org_id")?)).collect()
                }

                pub(in crate::storage) async fn close_legacy_audit_chains(&self) -> StoreResult<Vec<(OrgId, i64)>> {
                    let pending = sqlx::query("SELECT org_id, seq FROM audit_keying_pending ORDER BY org_id")
                        .fetch_all(self.write_pool())
                        .await?;
                    let mut closed = Vec::new();
                    for row in &pending {
                        let org_id: OrgId = row.try_get("org_id")?;
                        let seq: i64 = row.try_get("seq")?;
                        let mut tx = self.write_pool().begin().await?;
                        // No events of its own: only the closing one, if the chain is still pending.
                        Self::append_audit_chain_tx(&mut tx, &self.sealing, &org_id, &[]).await?;
                        let head: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_heads WHERE org_id = $1")
                            .bind(&org_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        if head == Some(seq + 1) {
                            closed.push((org_id, seq));
                        }
                    }
                    Ok(closed)
                }
            }
        };
    };
}
pub(super) use audit_queries;

impl OrgStore<'_> {
    pub async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<AuditEvent> {
        dispatch!(self.backend, append_audit(self.org, event))
    }

    /// This organization's events with `seq > after_seq`, oldest first.
    pub async fn audit_events(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        dispatch!(self.backend, audit_events(self.org, after_seq, limit))
    }

    /// A page of this organization's events that match `filter` (see `audit_page` in the macro).
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        from: Option<i64>,
        newest_first: bool,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        dispatch!(
            self.backend,
            audit_page(self.org, filter, from, newest_first, limit)
        )
    }

    /// The last seq and hash of this organization's chain.
    pub async fn audit_head(&self) -> StoreResult<Option<(i64, String)>> {
        dispatch!(self.backend, audit_head(self.org))
    }
}

impl SystemStore<'_> {
    /// Appends many events, of any organizations, in one transaction (one disk sync for all): the audit
    /// writer's group commit.
    pub async fn append_audit_batch(&self, events: &[NewAuditEvent]) -> StoreResult<()> {
        dispatch!(self.backend, append_audit_batch(events))
    }

    /// Every organization that exists or ever had audit events: each must have a verifying history.
    pub async fn audit_org_ids(&self) -> StoreResult<Vec<OrgId>> {
        dispatch!(self.backend, audit_org_ids())
    }

    /// Closes the legacy chains the keying migration recorded (see `audit_keying_pending`), each in its
    /// own transaction; returns the organizations closed, with their legacy event count.
    pub async fn close_legacy_audit_chains(&self) -> StoreResult<Vec<(OrgId, i64)>> {
        dispatch!(self.backend, close_legacy_audit_chains())
    }
}
