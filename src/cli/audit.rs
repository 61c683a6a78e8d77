//! `latchkey audit …`: verify, checkpoint and list the audit chain.

use crate::kernel::OrgId;

use serde_json::json;

use crate::audit::{self};
use crate::error::Error;
use crate::model::OrgOwned;
use crate::orgs;

use super::CliDeps;
use super::args::*;
use super::output::Output;
use std::process::ExitCode;

pub(super) async fn audit_command(
    deps: &impl CliDeps,
    cmd: AuditCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        AuditCommand::Verify { org, checkpoint } => {
            let checkpoints = match &checkpoint {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        Error::invalid("checkpoint", format!("cannot read {}: {e}", path.display()))
                    })?;
                    audit::service::parse_checkpoints(deps, &text)?
                }
                None => Vec::new(),
            };
            let single = org.is_some();
            let targets = audit_targets(deps, org.as_deref()).await?;
            let mut reports = Vec::new();
            for (org_id, label) in &targets {
                let mut report = audit::service::verify_org_id(deps, org_id, label).await?;
                for cp in checkpoints.iter().filter(|cp| cp.belongs_to(org_id)) {
                    audit::service::check_against(deps, &mut report, cp).await?;
                }
                reports.push(report);
            }
            if let Some(stray) = checkpoints
                .iter()
                .find(|cp| !targets.iter().any(|(id, _)| cp.belongs_to(id)))
                && !single
            {
                // A checkpointed organization that is gone entirely (no row, no head, no events).
                return Err(Error::NotFound(format!(
                    "organization {:?} ({}) of a checkpoint has no audit history at all (removed)",
                    stray.org, stray.org_id
                )));
            }
            if single && checkpoint.is_some() && reports.iter().all(|r| r.checkpoint_seq.is_none())
            {
                return Err(Error::invalid(
                    "checkpoint",
                    "the file holds no checkpoint of this organization",
                ));
            }
            let text = |_: &serde_json::Value| {
                reports
                    .iter()
                    .map(|report| match &report.broken_at {
                        None => format!(
                            "audit chain of {} is intact: {} events, head {}{}",
                            report.org,
                            report.events,
                            report.head_hash,
                            report
                                .checkpoint_seq
                                .map(|seq| format!(", contains checkpoint at event {seq}"))
                                .unwrap_or_default()
                        ),
                        Some(seq) => format!(
                            "audit chain of {} is BROKEN at event {seq}: {}",
                            report.org,
                            report.reason.as_deref().unwrap_or("")
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            if single {
                out.show(&json!(reports[0]), text);
            } else {
                out.show(&json!(reports), text);
            }
            if reports.iter().any(|r| !r.ok) {
                return Ok(ExitCode::from(super::EXIT_FAILED));
            }
        }
        AuditCommand::Checkpoint { org } => {
            // Always JSON lines: the output is meant to be appended to a file kept elsewhere.
            let mut lines = Vec::new();
            for (org_id, label) in audit_targets(deps, org.as_deref()).await? {
                let checkpoint = audit::service::checkpoint(deps, &org_id, &label).await?;
                lines.push(serde_json::to_string(&checkpoint).unwrap_or_default());
            }
            println!("{}", lines.join("\n"));
        }
        AuditCommand::List { org, after, limit } => {
            let org = orgs::find(deps, &org).await?;
            let events = audit::service::list(deps, &org, after, limit).await?;
            out.show(&json!(events), |_| {
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\t{}\t{}:{}\t{}",
                            e.seq,
                            super::output::rfc3339(e.at),
                            e.action,
                            e.actor_type,
                            e.actor_id.as_deref().unwrap_or("-"),
                            e.target_id.as_deref().unwrap_or("-")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The organizations an audit command covers: the one named, or every organization that exists or ever
/// had events (labelled by slug, or by id when its row is gone).
async fn audit_targets(
    deps: &impl CliDeps,
    org: Option<&str>,
) -> Result<Vec<(OrgId, String)>, Error> {
    if let Some(slug) = org {
        let org = orgs::find(deps, slug).await?;
        return Ok(vec![(org.id, org.slug)]);
    }
    let slugs = super::org_slugs(deps).await?;
    Ok(deps
        .db()
        .system()
        .audit_org_ids()
        .await?
        .into_iter()
        .map(|id| {
            let label = slugs
                .get(id.as_str())
                .cloned()
                .unwrap_or_else(|| id.to_string());
            (id, label)
        })
        .collect())
}
