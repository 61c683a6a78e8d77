//! The command line: non-interactive, scriptable administration. Every command accepts `--json`; errors
//! print one line on standard error and exit non-zero, changing nothing. The composition root (`app`)
//! parses the arguments, opens the instance and runs `serve` itself; every other command comes here with
//! the capabilities it may use, and goes through the same domain operations as the HTTP edge, so the CLI
//! cannot skip a rule the pages enforce.

mod apps;
mod args;
mod audit;
mod keys;
mod orgs;
mod outbox;
mod output;
mod staff;
mod users;

use std::io::Read;
use std::process::ExitCode;

use serde_json::json;

pub use args::Cli;
pub(crate) use args::Command;
pub use output::Output;

use crate::deps::{
    HasAuditKeys, HasClock, HasConfig, HasDb, HasEphemeral, HasMailer, HasPasswords, HasSecrets,
    HasWebauthn,
};
use crate::error::Error;
use args::UserCommand;

/// What the administration commands may use: everything an operator at the shell is trusted with.
pub trait CliDeps:
    HasDb
    + HasSecrets
    + HasAuditKeys
    + HasPasswords
    + HasEphemeral
    + HasClock
    + HasConfig
    + HasMailer
    + HasWebauthn
{
}

impl<T> CliDeps for T where
    T: HasDb
        + HasSecrets
        + HasAuditKeys
        + HasPasswords
        + HasEphemeral
        + HasClock
        + HasConfig
        + HasMailer
        + HasWebauthn
{
}

/// Exit codes: 1 for a refused or failed operation, 2 for usage and configuration errors.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// The password a command reads from standard input, read before the database is touched so that a
/// missing password changes nothing.
pub(crate) fn password_input(command: &Command, out: &Output) -> Result<Option<String>, ExitCode> {
    match command {
        Command::User(UserCommand::Create {
            password_stdin: true,
            ..
        }) => read_password().map(Some).map_err(|message| {
            out.error(&message, Some("password"));
            ExitCode::from(EXIT_USAGE)
        }),
        _ => Ok(None),
    }
}

/// Runs one administration command (anything but `serve`).
pub(crate) async fn run(
    deps: &impl CliDeps,
    command: Command,
    password: Option<String>,
    out: &Output,
) -> ExitCode {
    let result = match command {
        Command::Serve => unreachable!("the composition root runs the server"),
        Command::Migrate => {
            out.show(
                &json!({"migrated": true, "backend": deps.db().backend()}),
                |_| format!("database is up to date ({})", deps.db().backend()),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Org(cmd) => orgs::org_command(deps, cmd, out).await,
        Command::App(cmd) => apps::app_command(deps, cmd, out).await,
        Command::User(cmd) => users::user_command(deps, cmd, password, out).await,
        Command::Keys(cmd) => keys::keys_command(deps, cmd, out).await,
        Command::Audit(cmd) => audit::audit_command(deps, cmd, out).await,
        Command::Outbox(cmd) => outbox::outbox_command(deps, cmd, out).await,
        Command::Staff(cmd) => staff::staff_command(deps, cmd, out).await,
        Command::ApiKey(cmd) => staff::api_key_command(deps, cmd, out).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let field = match &e {
                Error::Invalid { field, .. } => Some(field.as_str()),
                _ => None,
            };
            out.error(&e.to_string(), field);
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Every organization's slug by its id, for commands that print rows of several organizations.
async fn org_slugs(
    deps: &impl CliDeps,
) -> Result<std::collections::HashMap<String, String>, Error> {
    Ok(deps
        .db()
        .system()
        .list_orgs()
        .await?
        .into_iter()
        .map(|org| (org.id.into_string(), org.slug))
        .collect())
}

fn read_password() -> Result<String, String> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.contains(['\n', '\r']) {
        return Err("--password-stdin: expected exactly one line on standard input".into());
    }
    if password.is_empty() {
        return Err("--password-stdin: no password on standard input".into());
    }
    Ok(password.to_string())
}
