//! The command line: `latchkey serve` and non-interactive, scriptable administration. Every command
//! accepts `--json`; errors print one line on standard error and exit non-zero, changing nothing.

mod output;

use crate::kernel::OrgId;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::apps::{self, ClientType, GrantType, NewApplication};
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::email::{OutboxEntry, OutboxStatus};
use crate::error::Error;
use crate::orgs::{self, NewOrganization, Role};
use crate::server::{Server, shutdown_signal};
use crate::service::Services;
use crate::users::{self, NewUser};
use crate::{keys, telemetry};
use output::Output;

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Latchkey: an OpenID Connect provider in one small binary"
)]
pub struct Cli {
    /// TOML configuration file; LATCHKEY_* environment variables override its values.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite in ./latchkey-data unless configured otherwise).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage applications (OAuth clients).
    #[command(subcommand)]
    App(AppCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage token-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Read the email outbox: queued, sent and failed messages (without SMTP, every message stays here).
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization with its own user pool, issuer and signing keys.
    Create {
        /// URL-safe identifier used in the issuer: {public_url}/o/{slug}.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List organizations.
    List,
    /// Show an organization with its settings.
    Show {
        #[arg(long)]
        slug: String,
    },
    /// Change an organization's name or settings (only the options given change).
    Update(Box<OrgUpdate>),
}

#[derive(Clone, Copy, ValueEnum)]
enum Toggle {
    On,
    Off,
}

impl Toggle {
    fn on(self) -> bool {
        matches!(self, Toggle::On)
    }
}

#[derive(Args)]
struct OrgUpdate {
    #[arg(long)]
    slug: String,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Whether people may create their own accounts (the sign-up page).
    #[arg(long, value_enum)]
    self_registration: Option<Toggle>,
    /// Sessions end after this many seconds without use (60–86400; default 1800).
    #[arg(long, value_name = "SECS")]
    session_idle_timeout: Option<u64>,
    /// Sessions end this many seconds after sign-in whatever happens (300 s–30 days; default 43200).
    #[arg(long, value_name = "SECS")]
    session_absolute_lifetime: Option<u64>,
    /// Shortest password allowed (8–128; default 10).
    #[arg(long, value_name = "N")]
    password_min_length: Option<u32>,
    /// Longest password allowed (up to 128).
    #[arg(long, value_name = "N")]
    password_max_length: Option<u32>,
    #[arg(long, value_enum)]
    password_require_lowercase: Option<Toggle>,
    #[arg(long, value_enum)]
    password_require_uppercase: Option<Toggle>,
    #[arg(long, value_enum)]
    password_require_digit: Option<Toggle>,
    #[arg(long, value_enum)]
    password_require_symbol: Option<Toggle>,
    /// Sign-in attempts per account and address per login window (default 5).
    #[arg(long, value_name = "N")]
    login_attempts: Option<u32>,
    /// The sign-in limit's window and first lock, in seconds (default 300).
    #[arg(long, value_name = "SECS")]
    login_window: Option<u64>,
    /// The longest a repeatedly reached sign-in limit locks an account for one address (default 3600).
    #[arg(long, value_name = "SECS")]
    login_lockout_max: Option<u64>,
    /// Password attempts per account per hour from addresses it has not signed in from, all together
    /// (default 20).
    #[arg(long, value_name = "N")]
    login_attempts_per_account_per_hour: Option<u32>,
    /// Wrong second-factor codes per user per mfa window (default 5).
    #[arg(long, value_name = "N")]
    mfa_attempts: Option<u32>,
    /// The second-factor limit's window and first lock, in seconds (default 300).
    #[arg(long, value_name = "SECS")]
    mfa_window: Option<u64>,
    /// The longest a repeatedly reached second-factor limit locks a user's second step (default 3600).
    #[arg(long, value_name = "SECS")]
    mfa_lockout_max: Option<u64>,
    /// Password-reset requests per email address per hour (default 3).
    #[arg(long, value_name = "N")]
    reset_per_email_per_hour: Option<u32>,
    /// Password-reset requests per client address per hour (default 10).
    #[arg(long, value_name = "N")]
    reset_per_ip_per_hour: Option<u32>,
    /// Code- and link-sending requests per application per hour (default 100).
    #[arg(long, value_name = "N")]
    code_requests_per_app_per_hour: Option<u32>,
    /// Sign-ups per client address (IPv6: per /64) per hour (default 10).
    #[arg(long, value_name = "N")]
    signup_per_ip_per_hour: Option<u32>,
    /// Sign-ups per email address per hour, each sending it a message (default 3).
    #[arg(long, value_name = "N")]
    signup_per_email_per_hour: Option<u32>,
    /// Token-endpoint requests per client per minute (default 1200).
    #[arg(long, value_name = "N")]
    token_requests_per_client_per_minute: Option<u32>,
    /// Introspection requests per client per minute (default 12000).
    #[arg(long, value_name = "N")]
    introspections_per_client_per_minute: Option<u32>,
    /// Who must use a second factor: optional (default), admins (owners and admins) or everyone.
    #[arg(long, value_name = "POLICY")]
    mfa_policy: Option<MfaPolicyArg>,
    /// Sensitive account actions need a second-factor proof at most this many minutes old (default 10).
    #[arg(long, value_name = "MINUTES")]
    step_up_minutes: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum MfaPolicyArg {
    Optional,
    Admins,
    Everyone,
}

#[derive(Clone, Copy, ValueEnum)]
enum AppType {
    Confidential,
    Public,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Register an application. A confidential client's secret is printed this once.
    Create(AppCreate),
    /// Change an application (only the options given change).
    Update(AppUpdate),
    /// List an organization's applications.
    List(OrgArg),
    /// Give a confidential application a new client secret, printed this once; the old one is refused within 5 s.
    RotateSecret {
        #[arg(long)]
        org: String,
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Args)]
struct AppCreate {
    #[arg(long)]
    org: String,
    #[arg(long)]
    name: String,
    #[arg(long = "type", value_enum)]
    client_type: AppType,
    /// Exact redirect URI (repeatable).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Exact post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Comma-separated: authorization_code, refresh_token, client_credentials.
    #[arg(long = "grant", value_delimiter = ',', required = true)]
    grants: Vec<String>,
    /// Browser origin allowed to call the token, userinfo, revocation and JWKS endpoints (repeatable).
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// The application belongs to the organization itself: no consent screen, and it may obtain the
    /// latchkey:sessions scope (the sessions API).
    #[arg(long)]
    first_party: bool,
    /// Token signing algorithm: RS256 (default), ES256 or EdDSA.
    #[arg(long)]
    signing_alg: Option<String>,
    /// Issue refresh tokens only when the client asks for the offline_access scope.
    #[arg(long)]
    require_offline_access: bool,
    /// INSECURE: let this confidential client skip PKCE (for legacy clients that cannot send it).
    #[arg(long)]
    insecure_allow_no_pkce: bool,
}

#[derive(Args)]
struct AppUpdate {
    #[arg(long)]
    org: String,
    #[arg(long)]
    client_id: String,
    /// Whether the application belongs to the organization itself (no consent screen; may obtain the
    /// latchkey:sessions scope).
    #[arg(long, value_enum)]
    first_party: Option<Toggle>,
}

#[derive(Args)]
struct OrgArg {
    /// Organization slug.
    #[arg(long)]
    org: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Owner,
    Admin,
    Member,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password, if any, is read from standard input, never from the command line.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// Mark the email address as already verified.
        #[arg(long)]
        verified: bool,
        #[arg(long)]
        name: Option<String>,
        /// Make the user a member of the organization's administration with this role.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// List an organization's users.
    List(OrgArg),
    /// Disable a user: signs them out everywhere and makes their tokens inactive at once.
    Disable(UserArg),
    /// Enable a disabled user again (sessions and tokens ended by disabling stay ended).
    Enable(UserArg),
}

#[derive(Args)]
struct UserArg {
    /// Organization slug.
    #[arg(long)]
    org: String,
    #[arg(long)]
    email: String,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Activate the published next key, retire the current one and publish a new next key.
    Rotate(OrgArg),
    /// List signing keys and their states.
    List(OrgArg),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the keyed hash chain from the first event to the head: of one organization, or of every
    /// organization that exists or ever had events; with --checkpoint, also that each chain still holds
    /// the checkpointed head.
    Verify {
        /// Organization slug (default: all).
        #[arg(long)]
        org: Option<String>,
        /// A file of checkpoints printed by `audit checkpoint` (one JSON line each).
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Verify the chain and print a signed checkpoint of its head (one JSON line per organization), to
    /// keep outside the database.
    Checkpoint {
        /// Organization slug (default: all).
        #[arg(long)]
        org: Option<String>,
    },
    /// Print audit events, oldest first.
    List {
        #[arg(long)]
        org: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List messages, newest first, without their bodies.
    List {
        /// Only this organization's messages (its slug).
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
    /// Print one message, body included.
    Show {
        /// The message id (eml_…), as printed by `outbox list`.
        id: String,
    },
}

/// Exit codes: 1 for a refused or failed operation, 2 for usage and configuration errors.
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

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
    // Read the password before touching the database, so a missing password changes nothing.
    let password = match &command {
        Command::User(UserCommand::Create {
            password_stdin: true,
            ..
        }) => match read_password() {
            Ok(p) => Some(p),
            Err(message) => {
                out.error(&message, Some("password"));
                return ExitCode::from(EXIT_USAGE);
            }
        },
        _ => None,
    };
    let services = match Services::open(config).await {
        Ok(s) => s,
        Err(e) => {
            out.error(&format!("configuration error: {e}"), None);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = match command {
        Command::Serve => return serve(services, &out).await,
        Command::Migrate => {
            out.show(
                &json!({"migrated": true, "backend": services.db.backend()}),
                |_| format!("database is up to date ({})", services.db.backend()),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Org(cmd) => org_command(&services, cmd, &out).await,
        Command::App(cmd) => app_command(&services, cmd, &out).await,
        Command::User(cmd) => user_command(&services, cmd, password, &out).await,
        Command::Keys(cmd) => keys_command(&services, cmd, &out).await,
        Command::Audit(cmd) => audit_command(&services, cmd, &out).await,
        Command::Outbox(cmd) => outbox_command(&services, cmd, &out).await,
    };
    services.db.close().await;
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

async fn serve(services: Services, out: &Output) -> ExitCode {
    let server = match Server::bind(services).await {
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

async fn org_command(
    services: &Services,
    cmd: OrgCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        OrgCommand::Create { slug, name } => {
            let org = orgs::create(
                services,
                &Actor::operator(),
                NewOrganization {
                    slug: &slug,
                    name: &name,
                },
            )
            .await?;
            let issuer = services.config.issuer_for(&org.slug);
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
            let org = orgs::find(services, &slug).await?;
            show_org(services, &org, out);
        }
        OrgCommand::Update(update) => {
            let before = orgs::find(services, &update.slug).await?;
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
                    MfaPolicyArg::Optional => crate::mfa::MfaPolicy::Optional,
                    MfaPolicyArg::Admins => crate::mfa::MfaPolicy::Admins,
                    MfaPolicyArg::Everyone => crate::mfa::MfaPolicy::Everyone,
                };
            }
            if let Some(minutes) = update.step_up_minutes {
                settings.mfa.step_up_minutes = minutes;
            }
            let org = orgs::update(
                services,
                &Actor::operator(),
                &before,
                update.name.as_deref(),
                settings,
            )
            .await?;
            show_org(services, &org, out);
        }
        OrgCommand::List => {
            let list: Vec<_> = services
                .db
                .system()
                .list_orgs()
                .await?
                .into_iter()
                .map(|org| {
                    let mut v = serde_json::to_value(&org).unwrap_or_default();
                    v["issuer"] = json!(services.config.issuer_for(&org.slug));
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

fn show_org(services: &Services, org: &orgs::Organization, out: &Output) {
    let mut value = serde_json::to_value(org).unwrap_or_default();
    value["issuer"] = json!(services.config.issuer_for(&org.slug));
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

async fn app_command(
    services: &Services,
    cmd: AppCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        AppCommand::Create(args) => {
            let grant_types = parse_grants(&args.grants)?;
            let org = orgs::find(services, &args.org).await?;
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
            let created = apps::create(services, &Actor::operator(), &org, input).await?;
            let issuer = services.config.issuer_for(&org.slug);
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
            let org = orgs::find(services, &args.org).await?;
            let changes = apps::AppChanges {
                first_party: args.first_party.map(Toggle::on),
            };
            let app =
                apps::update(services, &Actor::operator(), &org, &args.client_id, changes).await?;
            out.show(&json!(app), |_| {
                format!(
                    "updated application {}\nclient_id: {}\nfirst_party: {}",
                    app.name, app.client_id, app.first_party
                )
            });
        }
        AppCommand::RotateSecret { org, client_id } => {
            let org = orgs::find(services, &org).await?;
            let (app, secret) =
                apps::rotate_secret(services, &Actor::operator(), &org, &client_id).await?;
            out.show(
                &json!({"client_id": app.client_id, "name": app.name, "client_secret": secret}),
                |_| {
                    format!(
                        "new client secret for {} ({})\nclient_secret: {secret}\n(shown this once; the old secret is refused within 5 seconds)",
                        app.name, app.client_id
                    )
                },
            );
        }
        AppCommand::List(OrgArg { org }) => {
            let org = orgs::find(services, &org).await?;
            let list = services.db.tenant(&org.id).list_apps().await?;
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

/// `user disable` and `user enable`.
async fn set_user_disabled(
    services: &Services,
    UserArg { org, email }: UserArg,
    disable: bool,
    out: &Output,
) -> Result<(), Error> {
    let org = orgs::find(services, &org).await?;
    let change = users::set_disabled(services, &Actor::operator(), &org, &email, disable).await?;
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

async fn user_command(
    services: &Services,
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
            let org = orgs::find(services, &org).await?;
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
            let user = users::create(services, &Actor::operator(), &org, input).await?;
            let mut value = serde_json::to_value(&user).unwrap_or_default();
            if let Some(role) = role {
                value["role"] = json!(role.as_str());
            }
            out.show(&value, |_| {
                format!("created user {} ({})", user.email, user.id)
            });
        }
        UserCommand::Disable(arg) => set_user_disabled(services, arg, true, out).await?,
        UserCommand::Enable(arg) => set_user_disabled(services, arg, false, out).await?,
        UserCommand::List(OrgArg { org }) => {
            let org = orgs::find(services, &org).await?;
            let list = services.db.tenant(&org.id).list_users().await?;
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

async fn keys_command(
    services: &Services,
    cmd: KeysCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    match cmd {
        KeysCommand::Rotate(OrgArg { org }) => {
            let org = orgs::find(services, &org).await?;
            let rotations = keys::rotate(services, &Actor::operator(), &org).await?;
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
            let org = orgs::find(services, &org).await?;
            let list = services.db.tenant(&org.id).signing_keys().await?;
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

async fn audit_command(
    services: &Services,
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
                    audit::service::parse_checkpoints(services, &text)?
                }
                None => Vec::new(),
            };
            let single = org.is_some();
            let targets = audit_targets(services, org.as_deref()).await?;
            let mut reports = Vec::new();
            for (org_id, label) in &targets {
                let mut report = audit::service::verify_org_id(services, org_id, label).await?;
                for cp in checkpoints.iter().filter(|cp| cp.org_id == *org_id) {
                    audit::service::check_against(services, &mut report, cp).await?;
                }
                reports.push(report);
            }
            if let Some(stray) = checkpoints
                .iter()
                .find(|cp| !targets.iter().any(|(id, _)| *id == cp.org_id))
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
                return Ok(ExitCode::from(EXIT_FAILED));
            }
        }
        AuditCommand::Checkpoint { org } => {
            // Always JSON lines: the output is meant to be appended to a file kept elsewhere.
            let mut lines = Vec::new();
            for (org_id, label) in audit_targets(services, org.as_deref()).await? {
                let checkpoint = audit::service::checkpoint(services, &org_id, &label).await?;
                lines.push(serde_json::to_string(&checkpoint).unwrap_or_default());
            }
            println!("{}", lines.join("\n"));
        }
        AuditCommand::List { org, after, limit } => {
            let org = orgs::find(services, &org).await?;
            let events = audit::service::list(services, &org, after, limit).await?;
            out.show(&json!(events), |_| {
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\t{}\t{}:{}\t{}",
                            e.seq,
                            output::rfc3339(e.at),
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
    services: &Services,
    org: Option<&str>,
) -> Result<Vec<(OrgId, String)>, Error> {
    if let Some(slug) = org {
        let org = orgs::find(services, slug).await?;
        return Ok(vec![(org.id, org.slug)]);
    }
    let slugs: std::collections::HashMap<String, String> = services
        .db
        .system()
        .list_orgs()
        .await?
        .into_iter()
        .map(|org| (org.id.into_string(), org.slug))
        .collect();
    Ok(services
        .db
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

async fn outbox_command(
    services: &Services,
    cmd: OutboxCommand,
    out: &Output,
) -> Result<ExitCode, Error> {
    let slugs: std::collections::HashMap<String, String> = services
        .db
        .system()
        .list_orgs()
        .await?
        .into_iter()
        .map(|org| (org.id.into_string(), org.slug))
        .collect();
    let slug_of = |org_id: &str| slugs.get(org_id).map(String::as_str);
    match cmd {
        OutboxCommand::List { org, limit } => {
            let list = match org {
                Some(slug) => {
                    let org = orgs::find(services, &slug).await?;
                    services.db.tenant(&org.id).list_outbox(limit).await?
                }
                None => services.db.system().list_outbox(limit).await?,
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
                            output::rfc3339(e.email.created_at),
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
            let entry = services
                .db
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
                    output::rfc3339(email.created_at),
                    outbox_status_text(&entry)
                );
                if let Some(sent_at) = entry.sent_at {
                    text.push_str(&format!("sent: {}\n", output::rfc3339(sent_at)));
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
                    services.config.smtp_from, email.recipient, email.subject, body
                ));
                text
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
