//! The audit trail: an append-only, per-organization hash chain of every sensitive action.
//!
//! Each event's `hash` is SHA-256 over a canonical JSON array of its fields and the previous event's hash,
//! so editing, deleting or reordering a row breaks the chain from that point on, and `audit verify` finds it.

pub mod service;
pub mod writer;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash that precedes the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something, from where.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Actor {
    /// `operator` (the CLI), `user`, `client`, `api_key` or `system`.
    pub actor_type: String,
    pub id: Option<String>,
    pub role: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// The person at the command line. The OS user name is the best identity the CLI has.
    pub fn operator() -> Self {
        let who = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| os_uid());
        Actor {
            actor_type: "operator".into(),
            id: Some(format!("cli:{who}")),
            role: Some("operator".into()),
            ip: None,
            user_agent: Some(format!("latchkey-cli/{}", env!("CARGO_PKG_VERSION"))),
        }
    }

    pub fn system() -> Self {
        Actor {
            actor_type: "system".into(),
            id: Some("latchkey".into()),
            ..Default::default()
        }
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
    pub org_id: String,
    pub actor: Actor,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl NewAuditEvent {
    pub fn new(org_id: &str, actor: &Actor, action: &str) -> Self {
        Self {
            org_id: org_id.to_string(),
            actor: actor.clone(),
            action: action.to_string(),
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

    /// Builds the stored event that follows `prev_hash` at position `seq`.
    pub fn seal(&self, seq: i64, at: i64, prev_hash: &str) -> AuditEvent {
        let mut event = AuditEvent {
            org_id: self.org_id.clone(),
            seq,
            at,
            actor_type: self.actor.actor_type.clone(),
            actor_id: self.actor.id.clone(),
            actor_role: self.actor.role.clone(),
            ip: self.actor.ip.clone(),
            user_agent: self.actor.user_agent.clone(),
            action: self.action.clone(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            before_state: self.before.as_ref().map(Value::to_string),
            after_state: self.after.as_ref().map(Value::to_string),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }
}

/// A stored audit event. `before_state`/`after_state` hold the JSON text exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub org_id: String,
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
}

impl AuditEvent {
    pub fn compute_hash(&self) -> String {
        // A JSON array of plain strings, numbers and nulls serializes deterministically.
        let canonical = serde_json::json!([
            "latchkey-audit-v1",
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
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Where and why a chain stops being valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {reason}")]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Walks a chain from its first event. Every event must follow the previous one by seq and hash, and
/// hash to what it claims. Returns the hash at the end.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    mut expected_seq: i64,
    mut prev_hash: String,
) -> Result<(i64, String), ChainBreak> {
    for event in events {
        if event.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                reason: format!("event {expected_seq} is missing"),
            });
        }
        if event.prev_hash != prev_hash {
            return Err(ChainBreak {
                seq: event.seq,
                reason: "does not follow the previous event".into(),
            });
        }
        if event.compute_hash() != event.hash {
            return Err(ChainBreak {
                seq: event.seq,
                reason: "contents do not match its hash (modified)".into(),
            });
        }
        prev_hash = event.hash.clone();
        expected_seq += 1;
    }
    Ok((expected_seq - 1, prev_hash))
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

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let e = NewAuditEvent::new("org_1", &Actor::system(), "thing.done").seal(
                    seq,
                    1_700_000_000 + seq,
                    &prev,
                );
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let events = chain(5);
        let (last, hash) = verify_chain(&events, 1, GENESIS_HASH.into()).unwrap();
        assert_eq!(last, 5);
        assert_eq!(hash, events[4].hash);
    }

    #[test]
    fn modified_event_is_detected() {
        let mut events = chain(5);
        events[2].action = "nothing.happened".into();
        assert_eq!(
            verify_chain(&events, 1, GENESIS_HASH.into())
                .unwrap_err()
                .seq,
            3
        );
    }

    #[test]
    fn removed_event_is_detected() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(
            verify_chain(&events, 1, GENESIS_HASH.into())
                .unwrap_err()
                .seq,
            2
        );
    }

    #[test]
    fn rehashed_forgery_still_breaks_the_link() {
        let mut events = chain(3);
        events[1].action = "forged".into();
        events[1].hash = events[1].compute_hash();
        assert_eq!(
            verify_chain(&events, 1, GENESIS_HASH.into())
                .unwrap_err()
                .seq,
            3
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let v = redact(
            serde_json::json!({"name": "web", "client_secret": "abc", "nested": {"password_hash": "x"}}),
        );
        assert_eq!(v["name"], "web");
        assert_eq!(v["client_secret"], "[redacted]");
        assert_eq!(v["nested"]["password_hash"], "[redacted]");
    }

    #[test]
    fn a_password_policy_is_a_setting_not_a_secret() {
        let v = redact(serde_json::json!({
            "settings": {"password_policy": {"min_length": 12, "require_digit": true, "secret": "x"}}
        }));
        assert_eq!(v["settings"]["password_policy"]["min_length"], 12);
        assert_eq!(v["settings"]["password_policy"]["require_digit"], true);
        assert_eq!(v["settings"]["password_policy"]["secret"], "[redacted]");
    }
}
