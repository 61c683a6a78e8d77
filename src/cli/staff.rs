//! `latchkey staff …` and `latchkey api-key …`: the operator's break-glass path into the control plane,
//! through the same domain operations as the admin API, audited as the operator.

use std::process::ExitCode;

use serde_json::json;

use super::CliDeps;
use super::args::{ApiKeyCommand, OrgArg, StaffCommand};
use super::output::Output;
use crate::audit::Actor;
use crate::error::Error;
use crate::kernel::ApiKeyId;
use crate::orgs;
use crate::staff::access::{Access, CreateApiKeys, ManageApiKeys};
use crate::staff::{self, SetupGrant, api_keys};

pub(super) async fn staff_command(
    deps: &impl CliDeps,
    cmd: StaffCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        StaffCommand::Create { email, operator } => {
            let grant = SetupGrant {
                email: Some(email.trim().to_string()),
                operator,
            };
            let link = staff::issue_setup_link(deps, &Actor::operator(), &grant).await?;
            out.show(
                &json!({"email": grant.email, "operator": operator, "setup_link": link,
                        "expires_in_secs": staff::SETUP_LINK_SECS}),
                |_| {
                    format!(
                        "setup link for {} ({}), valid one hour, single use:\n{link}",
                        email.trim(),
                        if operator {
                            "platform operator"
                        } else {
                            "staff"
                        }
                    )
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn api_key_command(
    deps: &impl CliDeps,
    cmd: ApiKeyCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        ApiKeyCommand::Create {
            org,
            name,
            scopes,
            expires_in,
        } => {
            let org = orgs::find(deps, &org).await?;
            let access = Access::shell_operator(&org);
            let grant = access.grant::<CreateApiKeys>()?;
            let input = api_keys::NewApiKey {
                name: &name,
                scopes: &scopes,
                expires_in_days: expires_in,
            };
            let issued = api_keys::create(deps, &grant, &access.scopes(), &org, input).await?;
            out.show(&json!(issued), |_| {
                format!(
                    "API key {} ({}) for {}\nscopes: {}\nsecret: {}\n(shown this once)",
                    issued.key.name,
                    issued.key.id,
                    org.slug,
                    issued.key.scopes.join(" "),
                    issued.secret
                )
            });
        }
        ApiKeyCommand::List(OrgArg { org }) => {
            let org = orgs::find(deps, &org).await?;
            let keys = deps.db().tenant(&org.id).list_api_keys().await?;
            out.show(&json!(keys), |_| {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}  {}  {}  {}",
                            k.id,
                            k.name,
                            k.scopes.join(","),
                            if k.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ApiKeyCommand::Revoke { org, id } => {
            let org = orgs::find(deps, &org).await?;
            let grant = Access::shell_operator(&org).grant::<ManageApiKeys>()?;
            let key = api_keys::revoke(deps, &grant, &org, &ApiKeyId::from(id)).await?;
            out.show(&json!(key), |_| {
                format!("revoked API key {} ({})", key.name, key.id)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
