//! Reading and verifying an organization's audit chain.

use serde::Serialize;

use super::{AuditEvent, ChainBreak, GENESIS_HASH, verify_chain};
use crate::error::Result;
use crate::orgs::Organization;
use crate::service::Services;

const PAGE: i64 = 1000;

#[derive(Debug, Serialize)]
pub struct Verification {
    pub org: String,
    pub events: i64,
    pub head_hash: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Walks the whole chain page by page, then checks that it ends exactly at the recorded head, which
/// catches rows deleted from the end as well as edits and gaps in the middle.
pub async fn verify(services: &Services, org: &Organization) -> Result<Verification> {
    let mut seq = 0;
    let mut hash = GENESIS_HASH.to_string();
    let mut outcome: std::result::Result<(), ChainBreak> = Ok(());
    loop {
        let page = services.store.audit_events(&org.id, seq, PAGE).await?;
        if page.is_empty() {
            break;
        }
        match verify_chain(&page, seq + 1, hash.clone()) {
            Ok((last, last_hash)) => {
                seq = last;
                hash = last_hash;
            }
            Err(e) => {
                // Report what did verify: the events of this page before the break.
                if let Some(good) = page.iter().take_while(|ev| ev.seq < e.seq).last() {
                    seq = good.seq;
                    hash = good.hash.clone();
                }
                outcome = Err(e);
                break;
            }
        }
    }
    if outcome.is_ok() {
        let (head_seq, head_hash) = services
            .store
            .audit_head(&org.id)
            .await?
            .unwrap_or((0, GENESIS_HASH.into()));
        if head_seq != seq || head_hash != hash {
            outcome = Err(ChainBreak {
                seq: seq + 1,
                reason: format!(
                    "the log ends at event {seq} but the head records event {head_seq} (events removed)"
                ),
            });
        }
    }
    Ok(match outcome {
        Ok(()) => Verification {
            org: org.slug.clone(),
            events: seq,
            head_hash: hash,
            ok: true,
            broken_at: None,
            reason: None,
        },
        Err(e) => Verification {
            org: org.slug.clone(),
            events: seq,
            head_hash: hash,
            ok: false,
            broken_at: Some(e.seq),
            reason: Some(e.reason),
        },
    })
}

pub async fn list(
    services: &Services,
    org: &Organization,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    Ok(services
        .store
        .audit_events(&org.id, after_seq, limit.clamp(1, PAGE))
        .await?)
}
