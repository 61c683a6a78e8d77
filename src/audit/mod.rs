//! The audit trail: an append-only, per-organization hash chain of every sensitive action.
//!
//! Each event's `hash` is HMAC-SHA-256, under a key derived from the master key, over a canonical JSON
//! array of its fields and the previous event's hash, so editing, deleting or reordering a row breaks the
//! chain from that point on, and someone who can write the database but lacks the master key cannot
//! recompute it. Events written before the chain was keyed (`chain_version` 1) used plain SHA-256; they
//! are accepted only as a prefix closed by a keyed `audit.chain_keyed` event (see [`ChainVerifier`]).

use crate::kernel::OrgId;
pub mod service;
pub mod writer;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::crypto::AuditKeys;

/// The hash that precedes the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Events hashed with plain SHA-256, before the chain was keyed.
pub const CHAIN_LEGACY: i64 = 1;
/// Events linked with HMAC-SHA-256 under the master key's audit chain key.
pub const CHAIN_KEYED: i64 = 2;
/// The first keyed event after a legacy prefix: it links to the legacy head under the key, so that
/// prefix can no longer be rewritten without breaking the chain.
pub const CHAIN_KEYED_ACTION: &str = "audit.chain_keyed";

/// The keyed event that closes an organization's legacy (unkeyed) chain whose head was `seq`, `hash`.
pub fn chain_keyed_event(org_id: &str, seq: i64, hash: &str) -> NewAuditEvent {
    NewAuditEvent::new(org_id, &Actor::system(), CHAIN_KEYED_ACTION)
        .target("audit_chain", org_id)
        .change(
            None,
            Some(serde_json::json!({"legacy_seq": seq, "legacy_head": hash, "chain_version": CHAIN_KEYED})),
        )
}

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
    pub org_id: OrgId,
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
            org_id: OrgId::from(org_id),
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

    /// Builds the stored event that follows `prev_hash` at position `seq`, keyed under `keys`.
    pub fn seal(&self, keys: &AuditKeys, seq: i64, at: i64, prev_hash: &str) -> AuditEvent {
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

/// Where and why a chain stops being valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {reason}")]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Walks one organization's chain from its first event, a page at a time. Every event must follow the
/// previous one by seq and hash and hash to what it claims. A legacy (plain SHA-256) event is accepted only
/// before the first keyed event, and a legacy prefix must be closed by a keyed [`CHAIN_KEYED_ACTION`]
/// event: otherwise anyone could rewrite the whole chain as legacy events.
pub struct ChainVerifier<'k> {
    keys: &'k AuditKeys,
    /// The last verified event's seq and hash (0 and the genesis hash before the first).
    pub seq: i64,
    pub hash: String,
    last_version: Option<i64>,
}

impl<'k> ChainVerifier<'k> {
    pub fn new(keys: &'k AuditKeys) -> Self {
        Self {
            keys,
            seq: 0,
            hash: GENESIS_HASH.to_string(),
            last_version: None,
        }
    }

    /// Checks the next events; on a break, `seq` and `hash` stay at the last good event.
    pub fn feed<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a AuditEvent>,
    ) -> Result<(), ChainBreak> {
        for event in events {
            let expected_seq = self.seq + 1;
            if event.seq != expected_seq {
                return Err(ChainBreak {
                    seq: expected_seq,
                    reason: format!("event {expected_seq} is missing"),
                });
            }
            if event.prev_hash != self.hash {
                return Err(ChainBreak {
                    seq: event.seq,
                    reason: "does not follow the previous event".into(),
                });
            }
            match (self.last_version, event.chain_version) {
                (Some(CHAIN_KEYED), CHAIN_LEGACY) => {
                    return Err(ChainBreak {
                        seq: event.seq,
                        reason: "an unkeyed event after the chain was keyed (forged)".into(),
                    });
                }
                (Some(CHAIN_LEGACY), CHAIN_KEYED) if event.action != CHAIN_KEYED_ACTION => {
                    return Err(ChainBreak {
                        seq: event.seq,
                        reason: format!(
                            "the unkeyed events before it are not closed by {CHAIN_KEYED_ACTION}"
                        ),
                    });
                }
                _ => {}
            }
            match event.compute_hash(self.keys) {
                Some(hash)
                    if crate::crypto::constant_time_eq(hash.as_bytes(), event.hash.as_bytes()) => {}
                Some(_) => {
                    return Err(ChainBreak {
                        seq: event.seq,
                        reason: "contents do not match its hash (modified, or written without the master key)".into(),
                    });
                }
                None => {
                    return Err(ChainBreak {
                        seq: event.seq,
                        reason: format!("unknown chain version {}", event.chain_version),
                    });
                }
            }
            self.seq = event.seq;
            self.hash = event.hash.clone();
            self.last_version = Some(event.chain_version);
        }
        Ok(())
    }

    /// Checks the end of the walk: an organization always has history (its creation is an event), and
    /// a chain may not end in unkeyed events.
    pub fn finish(&self) -> Result<(), ChainBreak> {
        match self.last_version {
            None => Err(ChainBreak {
                seq: 1,
                reason: "the organization has no audit history; its creation is always recorded (events removed)".into(),
            }),
            Some(CHAIN_LEGACY) => Err(ChainBreak {
                seq: self.seq + 1,
                reason: format!(
                    "the chain ends in unkeyed events with no {CHAIN_KEYED_ACTION} event (forged or never re-anchored)"
                ),
            }),
            Some(_) => Ok(()),
        }
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

    fn keys() -> AuditKeys {
        crate::crypto::MasterKey::from_hex(&"11".repeat(32))
            .unwrap()
            .audit_keys()
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let keys = keys();
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let e = NewAuditEvent::new("org_1", &Actor::system(), "thing.done").seal(
                    &keys,
                    seq,
                    1_700_000_000 + seq,
                    &prev,
                );
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(events: &[AuditEvent]) -> Result<(i64, String), ChainBreak> {
        let keys = keys();
        let mut verifier = ChainVerifier::new(&keys);
        verifier.feed(events)?;
        verifier.finish()?;
        Ok((verifier.seq, verifier.hash))
    }

    /// Rewrites `events` as a plain SHA-256 chain, as someone without the master key could.
    fn relink_unkeyed(events: &mut [AuditEvent]) {
        let keys = keys();
        let mut prev = GENESIS_HASH.to_string();
        for e in events.iter_mut() {
            e.chain_version = CHAIN_LEGACY;
            e.prev_hash = prev.clone();
            e.hash = e.compute_hash(&keys).unwrap();
            prev = e.hash.clone();
        }
    }

    #[test]
    fn intact_chain_verifies() {
        let events = chain(5);
        let (last, hash) = verify(&events).unwrap();
        assert_eq!(last, 5);
        assert_eq!(hash, events[4].hash);
    }

    #[test]
    fn modified_event_is_detected() {
        let mut events = chain(5);
        events[2].action = "nothing.happened".into();
        assert_eq!(verify(&events).unwrap_err().seq, 3);
    }

    #[test]
    fn removed_event_is_detected() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(verify(&events).unwrap_err().seq, 2);
    }

    #[test]
    fn rehashed_forgery_without_the_key_is_detected() {
        let mut events = chain(3);
        events[1].action = "forged".into();
        let other = crate::crypto::MasterKey::generate().audit_keys();
        events[1].hash = events[1].compute_hash(&other).unwrap();
        assert_eq!(verify(&events).unwrap_err().seq, 2);
    }

    #[test]
    fn a_chain_rewritten_with_plain_sha256_is_detected() {
        let mut events = chain(3);
        events[1].action = "forged".into();
        relink_unkeyed(&mut events);
        assert!(verify(&events).unwrap_err().reason.contains("unkeyed"));
        // Keeping the keyed tail does not help: it no longer follows the rewritten prefix.
        let mut events = chain(3);
        relink_unkeyed(&mut events[..2]);
        assert_eq!(verify(&events).unwrap_err().seq, 3);
    }

    #[test]
    fn a_legacy_prefix_closed_by_a_keyed_anchor_verifies() {
        let keys = keys();
        let mut events = chain(2);
        relink_unkeyed(&mut events);
        let anchor = NewAuditEvent::new("org_1", &Actor::system(), CHAIN_KEYED_ACTION).seal(
            &keys,
            3,
            1_700_000_003,
            &events[1].hash,
        );
        events.push(anchor);
        assert_eq!(verify(&events).unwrap().0, 3);
        // Any other keyed event right after the legacy prefix is refused.
        let mut other = events.clone();
        other[2] = NewAuditEvent::new("org_1", &Actor::system(), "thing.done").seal(
            &keys,
            3,
            1_700_000_003,
            &events[1].hash,
        );
        assert_eq!(verify(&other).unwrap_err().seq, 3);
    }

    #[test]
    fn an_empty_history_does_not_verify() {
        assert!(verify(&[]).unwrap_err().reason.contains("no audit history"));
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
