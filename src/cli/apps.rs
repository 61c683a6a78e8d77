//! `latchkey app …`: register, update, rotate and list applications.

use serde_json::json;

use crate::apps::{self, NewApplication};
use crate::audit::Actor;
use crate::error::Error;
use crate::model::apps::{ClientType, GrantType};
use crate::orgs;

use super::CliDeps;
use super::args::*;
use super::output::Output;
use std::process::ExitCode;

fn parse_grants(raw: &[String]) -> Result<Vec<GrantType>, Error> {
    raw.iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .map(|g| {
            GrantType::parse(g).ok_or_else(|| {
                Error::invalid("grant", format!("unknown grant {g:?}; use authorization_code, refresh_token or client_credentials"))
            })
        })
        .collect()
}

pub(super) async fn app_command(
    deps: &impl CliDeps,
    cmd: AppCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        AppCommand::Create(args) => {
            let grant_types = parse_grants(&args.grants)?;
            let org = orgs::find(deps, &args.org).await?;
            let input = NewApplication {
                name: args.name,
                client_type: match args.client_type {
                    AppType::Confidential => ClientType::Confidential,
                    AppType::Public => ClientType::Public,
                },
                redirect_uris: args.redirect_uris,
                post_logout_redirect_uris: args.post_logout_redirect_uris,
                grant_types,
                cors_origins: args.cors_origins,
                first_party: args.first_party,
                signing_alg: args.signing_alg,
                require_offline_access: args.require_offline_access,
                insecure_allow_no_pkce: args.insecure_allow_no_pkce,
            };
            let created = apps::create(deps, &Actor::operator(), &org, input).await?;
            let issuer = deps.config().issuer_for(&org.slug);
            let mut value = serde_json::to_value(&created).unwrap_or_default();
            value["issuer"] = json!(issuer);
            out.show(&value, |_| {
                let mut text = format!(
                    "created application {}\nclient_id: {}\n",
                    created.app.name, created.app.client_id
                );
                if let Some(secret) = &created.client_secret {
                    text.push_str(&format!(
                        "client_secret: {secret}\n(shown this once; store it now)\n"
                    ));
                }
                text.push_str(&format!("issuer: {issuer}"));
                text
            });
        }
        AppCommand::Update(args) => {
            let org = orgs::find(deps, &args.org).await?;
            let changes = apps::AppChanges {
                first_party: args.first_party.map(Toggle::on),
                ..Default::default()
            };
            let app =
                apps::update(deps, &Actor::operator(), &org, &args.client_id, changes).await?;
            out.show(&json!(app), |_| {
                format!(
                    "updated application {}\nclient_id: {}\nfirst_party: {}",
                    app.name, app.client_id, app.first_party
                )
            });
        }
        AppCommand::RotateSecret {
            org,
            client_id,
            grace_secs,
        } => {
            let org = orgs::find(deps, &org).await?;
            let (app, secret) =
                apps::rotate_secret(deps, &Actor::operator(), &org, &client_id, grace_secs).await?;
            let old_until = app.previous_secret_valid_until;
            let old = match old_until {
                Some(until) => format!("keeps working until {until} (Unix time)"),
                None => "is refused within 5 seconds".into(),
            };
            out.show(
                &json!({"client_id": app.client_id, "name": app.name, "client_secret": secret,
                        "previous_secret_valid_until": old_until}),
                |_| {
                    format!(
                        "new client secret for {} ({})\nclient_secret: {secret}\n(shown this once; the old secret {old})",
                        app.name, app.client_id
                    )
                },
            );
        }
        AppCommand::List(OrgArg { org }) => {
            let org = orgs::find(deps, &org).await?;
            let list = deps.db().tenant(&org.id).list_apps().await?;
            out.show(&json!(list), |_| {
                list.iter()
                    .map(|a| format!("{}\t{}\t{}", a.client_id, a.client_type.as_str(), a.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
