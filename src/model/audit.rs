//! Audit records: what happened (an [`Action`]), who did it (an [`Actor`]), and the stored, hash-linked
//! event. Below the store, so the store can seal and read events without importing the audit feature.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::crypto::AuditKeys;
use crate::kernel::{ApiKeyId, ClientId, OrgId, UserId};
use crate::model::sessions::ClientInfo;
use crate::model::users::User;

/// The hash that precedes the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Events hashed with plain SHA-256, before the chain was keyed.
pub const CHAIN_LEGACY: i64 = 1;
/// Events linked with HMAC-SHA-256 under the master key's audit chain key.
pub const CHAIN_KEYED: i64 = 2;
/// The first keyed event after a legacy prefix: it links to the legacy head under the key, so that
/// prefix can no longer be rewritten without breaking the chain.
pub const CHAIN_KEYED_ACTION: Action = Action::AuditChainKeyed;

/// The keyed event that closes an organization's legacy (unkeyed) chain whose head was `seq`, `hash`.
pub fn chain_keyed_event(org_id: &str, seq: i64, hash: &str) -> NewAuditEvent {
    NewAuditEvent::new(org_id, &Actor::system(), CHAIN_KEYED_ACTION)
        .target("audit_chain", org_id)
        .change(
            None,
            Some(serde_json::json!({"legacy_seq": seq, "legacy_head": hash, "chain_version": CHAIN_KEYED})),
        )
}

/// What kind of party acted. Stored as its `as_str()` name, which is part of the hashed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// The person at the command line.
    Operator,
    /// A signed-in end user (or a user something was done to on their own request).
    User,
    /// Someone not signed in: a sign-in attempt, a sign-up, a reset request.
    Anonymous,
    /// An OAuth client authenticated at the token, revocation or introspection endpoint.
    Client,
    /// An admin API key.
    ApiKey,
    /// A staff member (a user of the staff organization) administering an organization.
    Staff,
    /// Latchkey itself: scheduled rotation, chain maintenance.
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Operator => "operator",
            ActorKind::User => "user",
            ActorKind::Anonymous => "anonymous",
            ActorKind::Client => "client",
            ActorKind::ApiKey => "api_key",
            ActorKind::Staff => "staff",
            ActorKind::System => "system",
        }
    }
}

/// Who did something, from where.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<String>,
    pub role: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    fn from(kind: ActorKind, id: Option<String>, ip: Option<String>, ua: Option<String>) -> Self {
        Actor {
            kind,
            id,
            role: None,
            ip,
            user_agent: ua,
        }
    }

    /// An end user, by id, from the request's address and user agent.
    pub fn user(user_id: &UserId, ip: Option<String>, user_agent: Option<String>) -> Self {
        Self::from(ActorKind::User, Some(user_id.to_string()), ip, user_agent)
    }

    /// Someone not signed in.
    pub fn anonymous(ip: Option<String>, user_agent: Option<String>) -> Self {
        Self::from(ActorKind::Anonymous, None, ip, user_agent)
    }

    /// An OAuth client, by client id.
    pub fn client(client_id: &ClientId, ip: Option<String>, user_agent: Option<String>) -> Self {
        Self::from(
            ActorKind::Client,
            Some(client_id.to_string()),
            ip,
            user_agent,
        )
    }

    /// The person at the command line. The OS user name is the best identity the CLI has.
    pub fn operator() -> Self {
        let who = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| os_uid());
        Actor {
            kind: ActorKind::Operator,
            id: Some(format!("cli:{who}")),
            role: Some("operator".into()),
            ip: None,
            user_agent: Some(format!("latchkey-cli/{}", env!("CARGO_PKG_VERSION"))),
        }
    }

    /// A staff member acting in an organization, with their role there.
    pub fn staff(
        staff_id: &UserId,
        role: &str,
        ip: Option<String>,
        user_agent: Option<String>,
    ) -> Self {
        Actor {
            role: Some(role.into()),
            ..Self::from(ActorKind::Staff, Some(staff_id.to_string()), ip, user_agent)
        }
    }

    /// An admin API key, by id; its role is `api_key` and its scopes are in the key's own record.
    pub fn api_key(key_id: &ApiKeyId, ip: Option<String>, user_agent: Option<String>) -> Self {
        Actor {
            role: Some("api_key".into()),
            ..Self::from(ActorKind::ApiKey, Some(key_id.to_string()), ip, user_agent)
        }
    }

    pub fn system() -> Self {
        Self::from(ActorKind::System, Some("latchkey".into()), None, None)
    }
}

/// The actor for something a user did (or had done) from `client`.
pub fn user_actor(user: &User, client: &ClientInfo) -> Actor {
    Actor::user(&user.id, client.ip.clone(), client.user_agent.clone())
}

/// The actor for a request from someone not signed in.
pub fn anonymous_actor(client: &ClientInfo) -> Actor {
    Actor::anonymous(client.ip.clone(), client.user_agent.clone())
}

/// Which events an audit listing returns; every field narrows it, `None` leaves it open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The stored action name (`user.created`).
    pub action: Option<String>,
    /// The actor's id (a user id, an API key id, `cli:root`).
    pub actor: Option<String>,
    /// Events about this user or by them.
    pub user: Option<UserId>,
    /// `at >= since` (Unix seconds).
    pub since: Option<i64>,
    /// `at < until`.
    pub until: Option<i64>,
}

/// Declares [`Action`] with the stable dotted name each variant is stored (and hashed) under.
macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Everything the audit log records. The names are part of every stored event's hash and of what
        /// operators filter on, so a variant's name never changes; add a variant for a new kind of event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            /// Every action, for documentation and for parsing a filter.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }
        }
    };
}

actions! {
    OrgCreated => "org.created",
    OrgUpdated => "org.updated",
    AppCreated => "app.created",
    AppUpdated => "app.updated",
    AppSecretRotated => "app.secret_rotated",
    KeysCreated => "keys.created",
    KeysRotated => "keys.rotated",
    /// Closes a legacy (unkeyed) chain prefix; see the chain verifier.
    AuditChainKeyed => "audit.chain_keyed",
    UserCreated => "user.created",
    UserUpdated => "user.updated",
    UserDisabled => "user.disabled",
    UserEnabled => "user.enabled",
    UserSignedUp => "user.signed_up",
    SignupExistingEmail => "signup.existing_email",
    EmailVerificationRequested => "email.verification_requested",
    EmailVerified => "email.verified",
    CredentialRehashed => "credential.rehashed",
    LoginSucceeded => "login.succeeded",
    LoginFailed => "login.failed",
    LoginRefused => "login.refused",
    LoginRateLimited => "login.rate_limited",
    /// A per-client or per-account limit refused a request.
    RateLimited => "rate_limited",
    Logout => "logout",
    SessionRevoked => "session.revoked",
    /// Every session and grant of a user ended by an administrator.
    UserSessionsRevoked => "user.sessions_revoked",
    SessionRevokedOthers => "session.revoked_others",
    PasswordChanged => "password.changed",
    PasswordChangeFailed => "password.change_failed",
    PasswordChangeRateLimited => "password.change_rate_limited",
    PasswordResetRequested => "password_reset.requested",
    PasswordResetCodeFailed => "password_reset.code_failed",
    PasswordResetLocked => "password_reset.locked",
    PasswordResetCompleted => "password_reset.completed",
    MfaEnrolled => "mfa.enrolled",
    MfaRemoved => "mfa.removed",
    MfaSucceeded => "mfa.succeeded",
    MfaFailed => "mfa.failed",
    MfaStepUp => "mfa.step_up",
    MfaEmailCodeSent => "mfa.email_code.sent",
    MfaPasskeyUsed => "mfa.passkey.used",
    MfaRecoveryCodeUsed => "mfa.recovery_code.used",
    MfaRecoveryCodesGenerated => "mfa.recovery_codes.generated",
    ConsentGranted => "consent.granted",
    GrantCreated => "grant.created",
    GrantRevoked => "grant.revoked",
    TokenIssued => "token.issued",
    TokenRefreshed => "token.refreshed",
    TokenRevoked => "token.revoked",
    TokenCodeReuseDetected => "token.code_reuse_detected",
    TokenRefreshReuseDetected => "token.refresh_reuse_detected",
    OrgDeleted => "org.deleted",
    AppDeleted => "app.deleted",
    UserDeleted => "user.deleted",
    /// An administrator removed a user's second factors.
    UserFactorsReset => "user.factors_reset",
    /// An administrator bumped a user's session_version (every token and session ends).
    UserSessionVersionBumped => "user.session_version_bumped",
    StaffCreated => "staff.created",
    StaffSetupLinkIssued => "staff.setup_link_issued",
    MemberAdded => "member.added",
    MemberRoleChanged => "member.role_changed",
    MemberRemoved => "member.removed",
    InvitationSent => "invitation.sent",
    InvitationRevoked => "invitation.revoked",
    InvitationAccepted => "invitation.accepted",
    ApiKeyCreated => "api_key.created",
    ApiKeyRotated => "api_key.rotated",
    ApiKeyRevoked => "api_key.revoked",
    /// A read through the admin API with an API key (its changes are recorded as what they changed).
    ApiKeyRead => "api_key.read",
    /// Someone read the audit log through the admin API (reading is itself audited).
    AuditRead => "audit.read",
    AuditExported => "audit.exported",
    /// An admin API request refused for want of a role or scope.
    AccessDenied => "access.denied",
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| format!("unknown audit action {name:?}"))
    }
}

impl PartialEq<Action> for String {
    fn eq(&self, other: &Action) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Action> for str {
    fn eq(&self, other: &Action) -> bool {
        self == other.as_str()
    }
}

/// The numeric user id when no user name is in the environment (cron, containers).
fn os_uid() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return format!("uid={}", meta.uid());
        }
    }
    "unknown".into()
}

/// An event about to be appended; the store assigns `seq`, `at`, `prev_hash` and `hash`.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub org_id: OrgId,
    pub actor: Actor,
    pub action: Action,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl NewAuditEvent {
    pub fn new(org_id: &str, actor: &Actor, action: Action) -> Self {
        Self {
            org_id: OrgId::from(org_id),
            actor: actor.clone(),
            action,
            target_type: None,
            target_id: None,
            before: None,
            after: None,
        }
    }

    pub fn target(mut self, kind: &str, id: &str) -> Self {
        self.target_type = Some(kind.to_string());
        self.target_id = Some(id.to_string());
        self
    }

    /// Records state before and after; secrets are redacted on the way in.
    pub fn change(mut self, before: Option<Value>, after: Option<Value>) -> Self {
        self.before = before.map(redact);
        self.after = after.map(redact);
        self
    }

    /// Builds the stored event that follows `prev_hash` at position `seq`, keyed under `keys`.
    pub fn seal(&self, keys: &AuditKeys, seq: i64, at: i64, prev_hash: &str) -> AuditEvent {
        let mut event = AuditEvent {
            org_id: self.org_id.clone(),
            seq,
            at,
            actor_type: self.actor.kind.as_str().to_string(),
            actor_id: self.actor.id.clone(),
            actor_role: self.actor.role.clone(),
            ip: self.actor.ip.clone(),
            user_agent: self.actor.user_agent.clone(),
            action: self.action.as_str().to_string(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            before_state: self.before.as_ref().map(Value::to_string),
            after_state: self.after.as_ref().map(Value::to_string),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
            chain_version: CHAIN_KEYED,
        };
        event.hash = event
            .compute_hash(keys)
            .expect("a keyed event has a known version");
        event
    }
}

/// A stored audit event. `before_state`/`after_state` hold the JSON text exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub org_id: OrgId,
    pub seq: i64,
    pub at: i64,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub before_state: Option<String>,
    pub after_state: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// [`CHAIN_LEGACY`] or [`CHAIN_KEYED`]: how `hash` was computed.
    pub chain_version: i64,
}

impl AuditEvent {
    /// What `hash` should be, by the event's chain version; `None` for a version this build does not know.
    pub fn compute_hash(&self, keys: &AuditKeys) -> Option<String> {
        match self.chain_version {
            CHAIN_LEGACY => Some(hex::encode(Sha256::digest(
                self.canonical("latchkey-audit-v1").as_bytes(),
            ))),
            CHAIN_KEYED => Some(hex::encode(
                keys.chain_mac(self.canonical("latchkey-audit-v2").as_bytes()),
            )),
            _ => None,
        }
    }

    fn canonical(&self, label: &str) -> String {
        // A JSON array of plain strings, numbers and nulls serializes deterministically.
        serde_json::json!([
            label,
            self.org_id,
            self.seq,
            self.at,
            self.actor_type,
            self.actor_id,
            self.actor_role,
            self.ip,
            self.user_agent,
            self.action,
            self.target_type,
            self.target_id,
            self.before_state,
            self.after_state,
            self.prev_hash,
        ])
        .to_string()
    }
}

/// Fields whose values never enter the audit log.
const SECRET_MARKERS: &[&str] = &[
    "secret",
    "password",
    "token",
    "private",
    "code",
    "hash",
    "key_material",
];

/// Fields that match a marker but hold settings, not secrets: their contents are still redacted key by key.
const NOT_SECRET: &[&str] = &["password_policy"];

pub fn redact(mut value: Value) -> Value {
    redact_in_place(&mut value);
    value
}

fn redact_in_place(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                // Flags and counts (`has_password: true`) say nothing secret; strings and structures might.
                let may_hold_secret = !(inner.is_null() || inner.is_boolean() || inner.is_number());
                if may_hold_secret
                    && !NOT_SECRET.contains(&lower.as_str())
                    && SECRET_MARKERS.iter().any(|m| lower.contains(m))
                {
                    *inner = Value::String("[redacted]".into());
                } else {
                    redact_in_place(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_in_place),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_its_own_name_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for action in Action::ALL {
            assert!(seen.insert(action.as_str()), "{action} named twice");
            assert_eq!(action.as_str().parse::<Action>().unwrap(), *action);
        }
        assert!("user.nonsense".parse::<Action>().is_err());
    }

    #[test]
    fn a_sealed_event_stores_the_names_it_is_hashed_under() {
        let keys = crate::crypto::MasterKey::from_hex(&"11".repeat(32))
            .unwrap()
            .audit_keys();
        let actor = Actor::client(&ClientId::from("cli_x"), None, None);
        let event = NewAuditEvent::new("org_1", &actor, Action::TokenIssued).seal(
            &keys,
            1,
            1_700_000_000,
            GENESIS_HASH,
        );
        assert_eq!(event.action, "token.issued");
        assert_eq!(event.actor_type, "client");
        assert_eq!(event.actor_id.as_deref(), Some("cli_x"));
    }
}
