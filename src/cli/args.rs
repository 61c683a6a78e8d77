//! The command line's grammar: every command, argument and default, as clap parses them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Latchkey: an OpenID Connect provider in one small binary"
)]
pub struct Cli {
    /// TOML configuration file; LATCHKEY_* environment variables override its values.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Manage staff accounts (the people who administer organizations).
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Manage an organization's admin API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

#[derive(Subcommand)]
pub(crate) enum StaffCommand {
    /// Print a single-use setup link (valid one hour) that creates a staff account for this address.
    Create {
        #[arg(long)]
        email: String,
        /// Make the account a platform operator (may create organizations).
        #[arg(long)]
        operator: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Create an API key and print its secret once.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// A scope the key holds (repeatable); `all` for every scope a key may hold.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List an organization's API keys (never their secrets).
    List(OrgArg),
    /// Revoke an API key at once.
    Revoke {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum OrgCommand {
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
pub(crate) enum Toggle {
    On,
    Off,
}

impl Toggle {
    pub(crate) fn on(self) -> bool {
        matches!(self, Toggle::On)
    }
}

#[derive(Args)]
pub(crate) struct OrgUpdate {
    #[arg(long)]
    pub(crate) slug: String,
    /// Display name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Whether people may create their own accounts (the sign-up page).
    #[arg(long, value_enum)]
    pub(crate) self_registration: Option<Toggle>,
    /// Sessions end after this many seconds without use (60–86400; default 1800).
    #[arg(long, value_name = "SECS")]
    pub(crate) session_idle_timeout: Option<u64>,
    /// Sessions end this many seconds after sign-in whatever happens (300 s–30 days; default 43200).
    #[arg(long, value_name = "SECS")]
    pub(crate) session_absolute_lifetime: Option<u64>,
    /// Shortest password allowed (8–128; default 10).
    #[arg(long, value_name = "N")]
    pub(crate) password_min_length: Option<u32>,
    /// Longest password allowed (up to 128).
    #[arg(long, value_name = "N")]
    pub(crate) password_max_length: Option<u32>,
    #[arg(long, value_enum)]
    pub(crate) password_require_lowercase: Option<Toggle>,
    #[arg(long, value_enum)]
    pub(crate) password_require_uppercase: Option<Toggle>,
    #[arg(long, value_enum)]
    pub(crate) password_require_digit: Option<Toggle>,
    #[arg(long, value_enum)]
    pub(crate) password_require_symbol: Option<Toggle>,
    /// Sign-in attempts per account and address per login window (default 5).
    #[arg(long, value_name = "N")]
    pub(crate) login_attempts: Option<u32>,
    /// The sign-in limit's window and first lock, in seconds (default 300).
    #[arg(long, value_name = "SECS")]
    pub(crate) login_window: Option<u64>,
    /// The longest a repeatedly reached sign-in limit locks an account for one address (default 3600).
    #[arg(long, value_name = "SECS")]
    pub(crate) login_lockout_max: Option<u64>,
    /// Password attempts per account per hour from addresses it has not signed in from, all together
    /// (default 20).
    #[arg(long, value_name = "N")]
    pub(crate) login_attempts_per_account_per_hour: Option<u32>,
    /// Wrong second-factor codes per user per mfa window (default 5).
    #[arg(long, value_name = "N")]
    pub(crate) mfa_attempts: Option<u32>,
    /// The second-factor limit's window and first lock, in seconds (default 300).
    #[arg(long, value_name = "SECS")]
    pub(crate) mfa_window: Option<u64>,
    /// The longest a repeatedly reached second-factor limit locks a user's second step (default 3600).
    #[arg(long, value_name = "SECS")]
    pub(crate) mfa_lockout_max: Option<u64>,
    /// Password-reset requests per email address per hour (default 3).
    #[arg(long, value_name = "N")]
    pub(crate) reset_per_email_per_hour: Option<u32>,
    /// Password-reset requests per client address per hour (default 10).
    #[arg(long, value_name = "N")]
    pub(crate) reset_per_ip_per_hour: Option<u32>,
    /// Code- and link-sending requests per application per hour (default 100).
    #[arg(long, value_name = "N")]
    pub(crate) code_requests_per_app_per_hour: Option<u32>,
    /// Sign-ups per client address (IPv6: per /64) per hour (default 10).
    #[arg(long, value_name = "N")]
    pub(crate) signup_per_ip_per_hour: Option<u32>,
    /// Sign-ups per email address per hour, each sending it a message (default 3).
    #[arg(long, value_name = "N")]
    pub(crate) signup_per_email_per_hour: Option<u32>,
    /// Token-endpoint requests per client per minute (default 1200).
    #[arg(long, value_name = "N")]
    pub(crate) token_requests_per_client_per_minute: Option<u32>,
    /// Introspection requests per client per minute (default 12000).
    #[arg(long, value_name = "N")]
    pub(crate) introspections_per_client_per_minute: Option<u32>,
    /// Who must use a second factor: optional (default), admins (owners and admins) or everyone.
    #[arg(long, value_name = "POLICY")]
    pub(crate) mfa_policy: Option<MfaPolicyArg>,
    /// Sensitive account actions need a second-factor proof at most this many minutes old (default 10).
    #[arg(long, value_name = "MINUTES")]
    pub(crate) step_up_minutes: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum MfaPolicyArg {
    Optional,
    Admins,
    Everyone,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AppType {
    Confidential,
    Public,
}

#[derive(Subcommand)]
pub(crate) enum AppCommand {
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
        /// Keep the old secret working for this many seconds (at most 604800, 7 days).
        #[arg(long, default_value_t = 0)]
        grace_secs: u64,
    },
}

#[derive(Args)]
pub(crate) struct AppCreate {
    #[arg(long)]
    pub(crate) org: String,
    #[arg(long)]
    pub(crate) name: String,
    #[arg(long = "type", value_enum)]
    pub(crate) client_type: AppType,
    /// Exact redirect URI (repeatable).
    #[arg(long = "redirect-uri")]
    pub(crate) redirect_uris: Vec<String>,
    /// Exact post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    pub(crate) post_logout_redirect_uris: Vec<String>,
    /// Comma-separated: authorization_code, refresh_token, client_credentials.
    #[arg(long = "grant", value_delimiter = ',', required = true)]
    pub(crate) grants: Vec<String>,
    /// Browser origin allowed to call the token, userinfo, revocation and JWKS endpoints (repeatable).
    #[arg(long = "cors-origin")]
    pub(crate) cors_origins: Vec<String>,
    /// The application belongs to the organization itself: no consent screen, and it may obtain the
    /// latchkey:sessions scope (the sessions API).
    #[arg(long)]
    pub(crate) first_party: bool,
    /// Token signing algorithm: RS256 (default), ES256 or EdDSA.
    #[arg(long)]
    pub(crate) signing_alg: Option<String>,
    /// Issue refresh tokens only when the client asks for the offline_access scope.
    #[arg(long)]
    pub(crate) require_offline_access: bool,
    /// INSECURE: let this confidential client skip PKCE (for legacy clients that cannot send it).
    #[arg(long)]
    pub(crate) insecure_allow_no_pkce: bool,
}

#[derive(Args)]
pub(crate) struct AppUpdate {
    #[arg(long)]
    pub(crate) org: String,
    #[arg(long)]
    pub(crate) client_id: String,
    /// Whether the application belongs to the organization itself (no consent screen; may obtain the
    /// latchkey:sessions scope).
    #[arg(long, value_enum)]
    pub(crate) first_party: Option<Toggle>,
}

#[derive(Args)]
pub(crate) struct OrgArg {
    /// Organization slug.
    #[arg(long)]
    pub(crate) org: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    Owner,
    Admin,
    Member,
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
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
pub(crate) struct UserArg {
    /// Organization slug.
    #[arg(long)]
    pub(crate) org: String,
    #[arg(long)]
    pub(crate) email: String,
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Activate the published next key, retire the current one and publish a new next key.
    Rotate(OrgArg),
    /// List signing keys and their states.
    List(OrgArg),
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
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
pub(crate) enum OutboxCommand {
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
