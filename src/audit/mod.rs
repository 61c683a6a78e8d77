//! The audit trail: an append-only, per-organization hash chain of every sensitive action.
//!
//! Each event's `hash` is HMAC-SHA-256, under a key derived from the master key, over a canonical JSON
//! array of its fields and the previous event's hash, so editing, deleting or reordering a row breaks the
//! chain from that point on, and someone who can write the database but lacks the master key cannot
//! recompute it. Events written before the chain was keyed (`chain_version` 1) used plain SHA-256; they
//! are accepted only as a prefix closed by a keyed `audit.chain_keyed` event (see [`ChainVerifier`]).

pub mod service;
pub mod writer;

pub use crate::model::audit::*;

use crate::crypto::AuditKeys;

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
                let e = NewAuditEvent::new("org_1", &Actor::system(), Action::OrgCreated).seal(
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
        other[2] = NewAuditEvent::new("org_1", &Actor::system(), Action::OrgCreated).seal(
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
