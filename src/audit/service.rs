//! Reading and verifying an organization's audit chain, closing legacy chains under the key, and signed
//! checkpoints that pin a chain's head outside the database.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AuditEvent, ChainBreak, ChainVerifier};
use crate::deps::{HasAuditKeys, HasClock, HasDb};
use crate::error::{Error, Result};
use crate::kernel::OrgId;
use crate::model::orgs::Organization;
use crate::storage::{Db, StoreResult};

const PAGE: i64 = 1000;
const CHECKPOINT_LABEL: &str = "latchkey-audit-checkpoint-v1";

#[derive(Debug, Serialize)]
pub struct Verification {
    /// The organization's slug (its id when the organization row is gone).
    pub org: String,
    pub org_id: OrgId,
    pub events: i64,
    pub head_hash: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The checkpointed event this chain was also checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_seq: Option<i64>,
}

impl Verification {
    fn break_at(&mut self, e: ChainBreak) {
        self.ok = false;
        self.broken_at = Some(e.seq);
        self.reason = Some(e.reason);
    }
}

/// Verifies `org`'s chain; see [`verify_org_id`].
pub async fn verify(
    deps: &(impl HasAuditKeys + HasDb),
    org: &Organization,
) -> Result<Verification> {
    verify_org_id(deps, &org.id, &org.slug).await
}

/// Walks the whole chain page by page under the audit key, then checks that it ends exactly at the
/// recorded head, which catches rows deleted from the end as well as edits and gaps in the middle. An
/// organization with no history at all fails: its creation is always recorded.
pub async fn verify_org_id(
    deps: &(impl HasAuditKeys + HasDb),
    org_id: &OrgId,
    label: &str,
) -> Result<Verification> {
    let mut verifier = ChainVerifier::new(deps.audit_keys());
    let mut outcome: std::result::Result<(), ChainBreak> = Ok(());
    loop {
        let page = deps
            .db()
            .tenant(org_id)
            .audit_events(verifier.seq, PAGE)
            .await?;
        if page.is_empty() {
            break;
        }
        if let Err(e) = verifier.feed(&page) {
            outcome = Err(e);
            break;
        }
    }
    if outcome.is_ok() {
        outcome = verifier.finish();
    }
    if outcome.is_ok() {
        let (seq, hash) = (verifier.seq, &verifier.hash);
        outcome = match deps.db().tenant(org_id).audit_head().await? {
            None => Err(ChainBreak {
                seq: seq + 1,
                reason: "the organization has no chain head (removed)".into(),
            }),
            Some((head_seq, head_hash)) if head_seq != seq || head_hash != *hash => {
                Err(ChainBreak {
                    seq: seq + 1,
                    reason: format!(
                        "the log ends at event {seq} but the head records event {head_seq} (events removed)"
                    ),
                })
            }
            Some(_) => Ok(()),
        };
    }
    let mut report = Verification {
        org: label.to_string(),
        org_id: org_id.clone(),
        events: verifier.seq,
        head_hash: verifier.hash.clone(),
        ok: true,
        broken_at: None,
        reason: None,
        checkpoint_seq: None,
    };
    if let Err(e) = outcome {
        report.break_at(e);
    }
    Ok(report)
}

pub async fn list(
    deps: &impl HasDb,
    org: &Organization,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    Ok(deps
        .db()
        .tenant(&org.id)
        .audit_events(after_seq, limit.clamp(1, PAGE))
        .await?)
}

/// Closes every legacy (unkeyed, plain SHA-256) chain the keying migration recorded with a keyed
/// [`CHAIN_KEYED_ACTION`] event that links to its head: from then on the legacy prefix cannot change
/// without the master key. Runs at every start, so a start that died before finishing is made good by the
/// next; an instance that appends to such a chain first closes it the same way. Returns how many it closed.
pub async fn key_legacy_chains(db: &Db) -> StoreResult<usize> {
    let closed = db.system().close_legacy_audit_chains().await?;
    for (org_id, seq) in &closed {
        tracing::info!(org_id = %org_id, legacy_events = seq, "audit chain keyed under the master key");
    }
    Ok(closed.len())
}

/// A signed statement that an organization's chain had `head` at `seq`, to keep outside the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The organization's slug when the checkpoint was made (informational; not signed).
    pub org: String,
    pub org_id: OrgId,
    pub seq: i64,
    pub head: String,
    pub at: i64,
    /// HMAC-SHA-256 under the master key's checkpoint key, hex.
    pub mac: String,
}

impl crate::model::OrgOwned for Checkpoint {
    fn org_id(&self) -> &OrgId {
        &self.org_id
    }
}

impl Checkpoint {
    fn signed_text(org_id: &str, seq: i64, head: &str, at: i64) -> String {
        json!([CHECKPOINT_LABEL, org_id, seq, head, at]).to_string()
    }

    fn is_authentic(&self, deps: &impl HasAuditKeys) -> bool {
        let Ok(tag) = hex::decode(&self.mac) else {
            return false;
        };
        let text = Self::signed_text(&self.org_id, self.seq, &self.head, self.at);
        deps.audit_keys().checkpoint_matches(text.as_bytes(), &tag)
    }
}

/// Verifies the chain and signs its head. A broken chain gets no checkpoint.
pub async fn checkpoint(
    deps: &(impl HasAuditKeys + HasClock + HasDb),
    org_id: &OrgId,
    label: &str,
) -> Result<Checkpoint> {
    let report = verify_org_id(deps, org_id, label).await?;
    if !report.ok {
        return Err(Error::Conflict(format!(
            "audit chain of {label} is BROKEN at event {}: {}; no checkpoint made",
            report.broken_at.unwrap_or_default(),
            report.reason.unwrap_or_default()
        )));
    }
    let at = deps.now();
    let text = Checkpoint::signed_text(org_id, report.events, &report.head_hash, at);
    Ok(Checkpoint {
        org: label.to_string(),
        org_id: org_id.clone(),
        seq: report.events,
        head: report.head_hash,
        at,
        mac: hex::encode(deps.audit_keys().checkpoint_mac(text.as_bytes())),
    })
}

/// Reads checkpoints, one JSON object a line (blank lines skipped). A line that does not parse, or whose
/// signature does not verify under this master key, is an error naming the line.
pub fn parse_checkpoints(deps: &impl HasAuditKeys, text: &str) -> Result<Vec<Checkpoint>> {
    let mut list = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let checkpoint: Checkpoint = serde_json::from_str(line).map_err(|e| {
            Error::invalid(
                "checkpoint",
                format!("line {}: not a checkpoint: {e}", n + 1),
            )
        })?;
        if !checkpoint.is_authentic(deps) {
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "line {}: the signature does not verify (edited, or made with another master key)",
                    n + 1
                ),
            ));
        }
        list.push(checkpoint);
    }
    if list.is_empty() {
        return Err(Error::invalid("checkpoint", "the file holds no checkpoint"));
    }
    Ok(list)
}

/// Checks that a verified chain still contains the checkpointed head at the checkpointed position: a
/// chain cut back (and its head moved) or rewritten since the checkpoint fails here.
pub async fn check_against(
    deps: &impl HasDb,
    report: &mut Verification,
    checkpoint: &Checkpoint,
) -> Result<()> {
    report.checkpoint_seq = Some(checkpoint.seq);
    if !report.ok {
        return Ok(());
    }
    if report.events < checkpoint.seq {
        report.break_at(ChainBreak {
            seq: report.events + 1,
            reason: format!(
                "the log ends at event {} but a checkpoint made at {} records event {} (events removed)",
                report.events,
                checkpoint.at,
                checkpoint.seq
            ),
        });
        return Ok(());
    }
    let event = deps
        .db()
        .tenant(&checkpoint.org_id)
        .audit_events(checkpoint.seq - 1, 1)
        .await?;
    let matches = event
        .first()
        .is_some_and(|e| e.seq == checkpoint.seq && e.hash == checkpoint.head);
    if !matches {
        report.break_at(ChainBreak {
            seq: checkpoint.seq,
            reason: "the event does not match the checkpoint's head (history rewritten)".into(),
        });
    }
    Ok(())
}
