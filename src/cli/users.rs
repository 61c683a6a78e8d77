//! `latchkey user …`: create, disable, enable and list users.

use serde_json::json;

use crate::audit::Actor;
use crate::error::Error;
use crate::model::orgs::Role;
use crate::orgs;
use crate::users::{self, NewUser};

use super::CliDeps;
use super::args::*;
use super::output::Output;
use std::process::ExitCode;

/// `user disable` and `user enable`.
async fn set_user_disabled(
    deps: &impl CliDeps,
    UserArg { org, email }: UserArg,
    disable: bool,
    out: &Output,
) -> Result<(), Error> {
    let org = orgs::find(deps, &org).await?;
    let change = users::set_disabled(deps, &Actor::operator(), &org, &email, disable).await?;
    let word = if disable { "disabled" } else { "enabled" };
    out.show(&json!(change), |_| match (change.changed, disable) {
        (false, _) => format!("user {} is already {word}", change.user.email),
        (true, true) => format!(
            "disabled user {} ({}); {} session(s) ended, tokens inactive",
            change.user.email, change.user.id, change.sessions_ended
        ),
        (true, false) => format!("enabled user {} ({})", change.user.email, change.user.id),
    });
    Ok(())
}

pub(super) async fn user_command(
    deps: &impl CliDeps,
    cmd: UserCommand,
    password: Option<String>,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        UserCommand::Create {
            org,
            email,
            verified,
            name,
            role,
            ..
        } => {
            let org = orgs::find(deps, &org).await?;
            let role = role.map(|r| match r {
                RoleArg::Owner => Role::Owner,
                RoleArg::Admin => Role::Admin,
                RoleArg::Member => Role::Member,
            });
            let input = NewUser {
                email: &email,
                password: password.as_deref(),
                name: name.as_deref(),
                verified,
                role,
            };
            let user = users::create(deps, &Actor::operator(), &org, input).await?;
            let mut value = serde_json::to_value(&user).unwrap_or_default();
            if let Some(role) = role {
                value["role"] = json!(role.as_str());
            }
            out.show(&value, |_| {
                format!("created user {} ({})", user.email, user.id)
            });
        }
        UserCommand::Disable(arg) => set_user_disabled(deps, arg, true, out).await?,
        UserCommand::Enable(arg) => set_user_disabled(deps, arg, false, out).await?,
        UserCommand::List(OrgArg { org }) => {
            let org = orgs::find(deps, &org).await?;
            let list = deps.db().tenant(&org.id).list_users().await?;
            out.show(&json!(list), |_| {
                list.iter()
                    .map(|u| format!("{}\t{}\tverified={}", u.id, u.email, u.email_verified))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
