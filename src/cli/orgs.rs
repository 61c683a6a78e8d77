//! `latchkey org …`: create, show, update and list organizations.

use serde_json::json;

use crate::audit::Actor;
use crate::error::Error;
use crate::orgs::{self, NewOrganization};

use super::CliDeps;
use super::args::*;
use super::output::Output;
use std::process::ExitCode;

pub(super) async fn org_command(
    deps: &impl CliDeps,
    cmd: OrgCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        OrgCommand::Create { slug, name } => {
            let org = orgs::create(
                deps,
                &Actor::operator(),
                NewOrganization {
                    slug: &slug,
                    name: &name,
                },
            )
            .await?;
            let issuer = deps.config().issuer_for(&org.slug);
            let mut value = serde_json::to_value(&org).unwrap_or_default();
            value["issuer"] = json!(issuer);
            out.show(&value, |_| {
                format!(
                    "created organization {} ({})\nissuer: {issuer}",
                    org.slug, org.id
                )
            });
        }
        OrgCommand::Show { slug } => {
            let org = orgs::find(deps, &slug).await?;
            show_org(deps, &org, out);
        }
        OrgCommand::Update(update) => {
            let before = orgs::find(deps, &update.slug).await?;
            let mut settings = before.settings.clone();
            let set = |target: &mut bool, toggle: Option<Toggle>| {
                if let Some(t) = toggle {
                    *target = t.on();
                }
            };
            set(&mut settings.self_registration, update.self_registration);
            let policy = &mut settings.password_policy;
            set(
                &mut policy.require_lowercase,
                update.password_require_lowercase,
            );
            set(
                &mut policy.require_uppercase,
                update.password_require_uppercase,
            );
            set(&mut policy.require_digit, update.password_require_digit);
            set(&mut policy.require_symbol, update.password_require_symbol);
            if let Some(n) = update.password_min_length {
                policy.min_length = n;
            }
            if let Some(n) = update.password_max_length {
                policy.max_length = n;
            }
            if let Some(secs) = update.session_idle_timeout {
                settings.session_idle_timeout_secs = secs;
            }
            if let Some(secs) = update.session_absolute_lifetime {
                settings.session_absolute_lifetime_secs = secs;
            }
            let limits = &mut settings.rate_limits;
            if let Some(n) = update.login_attempts {
                limits.login_attempts = n;
            }
            if let Some(secs) = update.login_window {
                limits.login_window_secs = secs;
            }
            if let Some(secs) = update.login_lockout_max {
                limits.login_lockout_max_secs = secs;
            }
            if let Some(n) = update.login_attempts_per_account_per_hour {
                limits.login_attempts_per_account_per_hour = n;
            }
            if let Some(n) = update.mfa_attempts {
                limits.mfa_attempts = n;
            }
            if let Some(secs) = update.mfa_window {
                limits.mfa_window_secs = secs;
            }
            if let Some(secs) = update.mfa_lockout_max {
                limits.mfa_lockout_max_secs = secs;
            }
            if let Some(n) = update.reset_per_email_per_hour {
                limits.reset_per_email_per_hour = n;
            }
            if let Some(n) = update.reset_per_ip_per_hour {
                limits.reset_per_ip_per_hour = n;
            }
            if let Some(n) = update.code_requests_per_app_per_hour {
                limits.code_requests_per_app_per_hour = n;
            }
            if let Some(n) = update.signup_per_ip_per_hour {
                limits.signup_per_ip_per_hour = n;
            }
            if let Some(n) = update.signup_per_email_per_hour {
                limits.signup_per_email_per_hour = n;
            }
            if let Some(n) = update.token_requests_per_client_per_minute {
                limits.token_requests_per_client_per_minute = n;
            }
            if let Some(n) = update.introspections_per_client_per_minute {
                limits.introspections_per_client_per_minute = n;
            }
            if let Some(policy) = update.mfa_policy {
                settings.mfa.policy = match policy {
                    MfaPolicyArg::Optional => crate::model::settings::MfaPolicy::Optional,
                    MfaPolicyArg::Admins => crate::model::settings::MfaPolicy::Admins,
                    MfaPolicyArg::Everyone => crate::model::settings::MfaPolicy::Everyone,
                };
            }
            if let Some(minutes) = update.step_up_minutes {
                settings.mfa.step_up_minutes = minutes;
            }
            let org = orgs::update(
                deps,
                &Actor::operator(),
                &before,
                update.name.as_deref(),
                settings,
            )
            .await?;
            show_org(deps, &org, out);
        }
        OrgCommand::List => {
            let staff = crate::staff::staff_org_id(deps).await?;
            let list: Vec<_> = deps
                .db()
                .system()
                .list_orgs()
                .await?
                .into_iter()
                .filter(|org| Some(&org.id) != staff.as_ref())
                .map(|org| {
                    let mut v = serde_json::to_value(&org).unwrap_or_default();
                    v["issuer"] = json!(deps.config().issuer_for(&org.slug));
                    v
                })
                .collect();
            out.show(&json!(list), |_| {
                list.iter()
                    .map(|o| {
                        format!(
                            "{}\t{}\t{}",
                            o["slug"].as_str().unwrap_or(""),
                            o["name"].as_str().unwrap_or(""),
                            o["issuer"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_org(deps: &impl CliDeps, org: &orgs::Organization, out: &Output) {
    let mut value = serde_json::to_value(org).unwrap_or_default();
    value["issuer"] = json!(deps.config().issuer_for(&org.slug));
    out.show(&value, |v| {
        format!(
            "{} ({})\nname: {}\nissuer: {}\nsettings: {}",
            org.slug,
            org.id,
            org.name,
            v["issuer"].as_str().unwrap_or_default(),
            serde_json::to_string_pretty(&org.settings).unwrap_or_default()
        )
    });
}
