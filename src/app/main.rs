//! The program: parse the command line, load the configuration, open the instance, and either serve or
//! hand one administration command to the CLI.

use std::process::ExitCode;

use clap::Parser;

use super::App;
use super::server::{Server, shutdown_signal};
use crate::cli::{self, Cli, Command, EXIT_FAILED, EXIT_USAGE, Output};
use crate::config::Config;
use crate::telemetry;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            out.error(&format!("configuration error: {e}"), None);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if matches!(cli.command, Command::Serve) {
        telemetry::init(config.log_format, &config.log_level);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out.error(&format!("cannot start the runtime: {e}"), None);
            return ExitCode::from(EXIT_FAILED);
        }
    };
    runtime.block_on(run(cli.command, config, out))
}

async fn run(command: Command, config: Config, out: Output) -> ExitCode {
    let password = match cli::password_input(&command, &out) {
        Ok(password) => password,
        Err(code) => return code,
    };
    let app = match App::open(config).await {
        Ok(app) => app,
        Err(e) => {
            out.error(&format!("configuration error: {e}"), None);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if matches!(command, Command::Serve) {
        return serve(app, &out).await;
    }
    let code = cli::run(&app, command, password, &out).await;
    app.db.close().await;
    code
}

async fn serve(app: App, out: &Output) -> ExitCode {
    if let Err(e) = announce_setup_link(&app).await {
        tracing::error!(error = %e, "could not prepare the staff organization");
    }
    let server = match Server::bind(app).await {
        Ok(server) => server,
        Err(e) => {
            out.error(&format!("configuration error: {e}"), None);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tracing::info!(listen = %server.local_addr(), "latchkey is ready");
    match server.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// On an instance without a platform operator, prints a single-use setup link (one hour) that creates
/// the first one. Nothing is reachable with a default password; without the link there is no way in but
/// `latchkey staff create --operator` at the server's shell.
async fn announce_setup_link(app: &App) -> Result<(), crate::error::Error> {
    if crate::staff::has_operator(app).await? {
        return Ok(());
    }
    let grant = crate::staff::SetupGrant {
        email: None,
        operator: true,
    };
    let link = crate::staff::issue_setup_link(app, &crate::audit::Actor::system(), &grant).await?;
    // The one place a secret is logged, on purpose: it is how the operator gets in. It works once,
    // for an hour, and a new start prints a new one until an operator exists.
    tracing::warn!(
        setup_link = %link,
        "no platform operator yet: open the setup link within one hour to create one (it works once)"
    );
    Ok(())
}
