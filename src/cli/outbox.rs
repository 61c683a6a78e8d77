//! `latchkey outbox …`: inspect queued and sent email.

use serde_json::json;

use crate::error::Error;
use crate::model::email::{OutboxEntry, OutboxStatus};
use crate::orgs;

use super::CliDeps;
use super::args::*;
use super::output::Output;
use std::process::ExitCode;

/// An outbox message as JSON, with its status and its organization's slug; the body only when asked.
fn outbox_json(entry: &OutboxEntry, org_slug: Option<&str>, with_body: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(entry).unwrap_or_default();
    value["status"] = json!(entry.status().as_str());
    value["org"] = json!(org_slug);
    if !with_body && let Some(object) = value.as_object_mut() {
        object.remove("body_text");
    }
    value
}

/// `queued`, `queued (2 failed attempts)`, `sent`, `failed (10 failed attempts)`.
fn outbox_status_text(entry: &OutboxEntry) -> String {
    let status = entry.status();
    match (status, entry.attempts) {
        (OutboxStatus::Sent, _) | (_, 0) => status.as_str().to_string(),
        (_, 1) => format!("{} (1 failed attempt)", status.as_str()),
        (_, n) => format!("{} ({n} failed attempts)", status.as_str()),
    }
}

pub(super) async fn outbox_command(
    deps: &impl CliDeps,
    cmd: OutboxCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    let slugs = super::org_slugs(deps).await?;
    let slug_of = |org_id: &str| slugs.get(org_id).map(String::as_str);
    match cmd {
        OutboxCommand::List { org, limit } => {
            let list = match org {
                Some(slug) => {
                    let org = orgs::find(deps, &slug).await?;
                    deps.db().tenant(&org.id).list_outbox(limit).await?
                }
                None => deps.db().system().list_outbox(limit).await?,
            };
            let value: Vec<_> = list
                .iter()
                .map(|e| outbox_json(e, slug_of(&e.email.org_id), false))
                .collect();
            out.show(&json!(value), |_| {
                list.iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}",
                            e.email.id,
                            super::output::rfc3339(e.email.created_at),
                            e.email.recipient,
                            e.email.subject,
                            outbox_status_text(e)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OutboxCommand::Show { id } => {
            let entry = deps
                .db()
                .system()
                .outbox_entry(id.trim())
                .await?
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "email {id:?} is not in the outbox (see latchkey outbox list)"
                    ))
                })?;
            let value = outbox_json(&entry, slug_of(&entry.email.org_id), true);
            out.show(&value, |_| {
                let email = &entry.email;
                let mut text = format!(
                    "id: {}\norganization: {}\ncreated: {}\nstatus: {}\n",
                    email.id,
                    slug_of(&email.org_id).unwrap_or(&email.org_id),
                    super::output::rfc3339(email.created_at),
                    outbox_status_text(&entry)
                );
                if let Some(sent_at) = entry.sent_at {
                    text.push_str(&format!("sent: {}\n", super::output::rfc3339(sent_at)));
                }
                if let Some(error) = &entry.last_error {
                    text.push_str(&format!("last error: {error}\n"));
                }
                let body = if entry.sent_at.is_some() {
                    "(the body is deleted once the message is delivered)"
                } else {
                    email.body_text.as_str()
                };
                text.push_str(&format!(
                    "From: {}\nTo: {}\nSubject: {}\n\n{}",
                    deps.config().smtp_from,
                    email.recipient,
                    email.subject,
                    body
                ));
                text
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
