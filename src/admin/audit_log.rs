//! Reading the audit log through the admin API. Reading is itself recorded (`audit.read`, and
//! `audit.exported` for an export), so who looked at what is in the same verifiable chain.

use super::Page;
use crate::audit::{Action, NewAuditEvent};
use crate::deps::{HasClock, HasDb};
use crate::error::{Error, Result};
use crate::model::audit::{AuditEvent, AuditFilter};
use crate::model::orgs::Organization;
use crate::staff::access::{ExportAudit, Granted, ReadAudit};

/// Events fetched per step of an export.
pub const EXPORT_CHUNK: i64 = 1000;

/// Checks a filter a caller sent: a known action.
pub fn check_filter(filter: &AuditFilter) -> Result<()> {
    if let Some(action) = &filter.action
        && action.parse::<Action>().is_err()
    {
        return Err(Error::invalid(
            "action",
            format!("unknown action {action:?}"),
        ));
    }
    // A range that ends before it starts is empty: it matches nothing, as the query will find.
    Ok(())
}

fn filter_json(filter: &AuditFilter) -> serde_json::Value {
    serde_json::json!({
        "action": filter.action, "actor": filter.actor, "user": filter.user,
        "since": filter.since, "until": filter.until,
    })
}

/// A page of matching events, newest first, below the cursor `before` (a seq). Audited.
pub async fn list(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ReadAudit>,
    org: &Organization,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<AuditEvent>> {
    grant.check(org)?;
    check_filter(filter)?;
    let store = deps.db().tenant(&org.id);
    let read = NewAuditEvent::new(&org.id, grant.actor(), Action::AuditRead)
        .target("audit_log", &org.id)
        .change(None, Some(filter_json(filter)));
    store.append_audit(&read).await?;
    let events = store.audit_page(filter, before, true, limit + 1).await?;
    Ok(Page::of(events, limit, |e| e.seq.to_string()))
}

/// Starts an export: records it, and returns the seq the export stops at (the head when it started), so
/// an export is a consistent snapshot even while events keep arriving.
pub async fn start_export(
    deps: &(impl HasClock + HasDb),
    grant: &Granted<ExportAudit>,
    org: &Organization,
    filter: &AuditFilter,
) -> Result<i64> {
    grant.check(org)?;
    check_filter(filter)?;
    let store = deps.db().tenant(&org.id);
    let export = NewAuditEvent::new(&org.id, grant.actor(), Action::AuditExported)
        .target("audit_log", &org.id)
        .change(None, Some(filter_json(filter)));
    let recorded = store.append_audit(&export).await?;
    Ok(recorded.seq)
}

/// The next chunk of an export: matching events after `after`, oldest first, up to `last`.
pub async fn export_chunk(
    deps: &impl HasDb,
    grant: &Granted<ExportAudit>,
    org: &Organization,
    filter: &AuditFilter,
    after: i64,
    last: i64,
) -> Result<Vec<AuditEvent>> {
    grant.check(org)?;
    let mut events = deps
        .db()
        .tenant(&org.id)
        .audit_page(filter, Some(after), false, EXPORT_CHUNK)
        .await?;
    events.retain(|e| e.seq <= last);
    Ok(events)
}
