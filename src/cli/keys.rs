//! `latchkey keys …`: rotate and list signing keys.

use serde_json::json;

use crate::audit::Actor;
use crate::error::Error;
use crate::keys;
use crate::orgs;

use super::CliDeps;
use super::args::*;
use super::output::Output;
use std::process::ExitCode;

pub(super) async fn keys_command(
    deps: &impl CliDeps,
    cmd: KeysCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        KeysCommand::Rotate(OrgArg { org }) => {
            let org = orgs::find(deps, &org).await?;
            let rotations = keys::rotate(deps, &Actor::operator(), &org).await?;
            out.show(&json!(rotations), |_| {
                rotations
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: active {} (was {}), next {}",
                            r.alg,
                            r.activated,
                            r.retired.as_deref().unwrap_or("none"),
                            r.next
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::List(OrgArg { org }) => {
            let org = orgs::find(deps, &org).await?;
            let list = deps.db().tenant(&org.id).signing_keys().await?;
            out.show(&json!(list), |_| {
                list.iter()
                    .map(|k| format!("{}\t{}\t{}", k.kid, k.alg, k.state.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
