//! Rate-limit policies: which keys are limited, how much, and what a refusal looks like. The counting
//! itself (sliding windows, atomic in Redis) is [`crate::ephemeral`]'s.
//!
//! Keys never hold an email address in the clear (a keyed hash instead), and limits keyed by account apply
//! the same whether or not the account exists, so a 429 reveals nothing about registration.

pub use crate::error::Limited;

pub use crate::model::settings::RateLimits;

use std::time::Duration;

use serde_json::json;

use crate::audit::{Action, Actor, NewAuditEvent};
use crate::deps::{HasDb, HasEphemeral, HasSecrets};
use crate::ephemeral::Decision;
use crate::error::{Error, Result};
use crate::model::orgs::Organization;

impl RateLimits {
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &str, value: u64| {
            if value == 0 {
                Err(Error::invalid(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("login_attempts", self.login_attempts.into())?;
        positive("login_window", self.login_window_secs)?;
        positive(
            "login_attempts_per_account_per_hour",
            self.login_attempts_per_account_per_hour.into(),
        )?;
        positive("mfa_attempts", self.mfa_attempts.into())?;
        positive("mfa_window", self.mfa_window_secs)?;
        positive(
            "reset_per_email_per_hour",
            self.reset_per_email_per_hour.into(),
        )?;
        positive("reset_per_ip_per_hour", self.reset_per_ip_per_hour.into())?;
        positive(
            "code_requests_per_app_per_hour",
            self.code_requests_per_app_per_hour.into(),
        )?;
        positive("signup_per_ip_per_hour", self.signup_per_ip_per_hour.into())?;
        positive(
            "signup_per_email_per_hour",
            self.signup_per_email_per_hour.into(),
        )?;
        positive(
            "token_requests_per_client_per_minute",
            self.token_requests_per_client_per_minute.into(),
        )?;
        positive(
            "introspections_per_client_per_minute",
            self.introspections_per_client_per_minute.into(),
        )?;
        if self.login_lockout_max_secs < self.login_window_secs {
            return Err(Error::invalid(
                "login_lockout_max",
                "must not be shorter than the login window",
            ));
        }
        if self.mfa_lockout_max_secs < self.mfa_window_secs {
            return Err(Error::invalid(
                "mfa_lockout_max",
                "must not be shorter than the mfa window",
            ));
        }
        Ok(())
    }
}

pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// The lock after the `strike`-th time (1-based) the sign-in limit was reached within a day.
pub fn lockout(window: Duration, strike: u32, max: Duration) -> Duration {
    let factor = 1u32 << strike.saturating_sub(1).min(16);
    window.saturating_mul(factor).min(max).max(window.min(max))
}

/// How long a sign-in with the right password makes its address known to the account (exempt from the
/// per-account cap across addresses).
pub const KNOWN_ADDRESS_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A limit whose refusal locks `key` for a while: the first refusal of an episode locks it for `window`,
/// doubling each further time within a day, up to `max_lock` (see [`lockout`]).
pub struct Lockout<'a> {
    pub key: &'a str,
    pub limit: u32,
    pub window: Duration,
    pub max_lock: Duration,
}

/// A refusal by a [`Lockout`]: how long to wait, and the strike if this refusal started a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
    pub strike: Option<u32>,
}

impl Locked {
    /// The 429 to answer with.
    pub fn limited(self, policy: &'static str, rule: &Lockout<'_>) -> Limited {
        Limited {
            decision: Decision {
                allowed: false,
                limit: rule.limit.max(1),
                remaining: 0,
                reset_after: self.retry_after,
            },
            policy,
            window: rule.window,
        }
    }
}

/// Counts an attempt against `rule` before it is checked (so concurrent attempts cannot slip past);
/// `Some` when it must be refused. The first refusal of an episode adds a strike (kept for a day) and
/// locks the key for the doubled window; concurrent refusals must not each add a strike.
pub async fn hit_with_lockout(
    deps: &impl HasEphemeral,
    rule: &Lockout<'_>,
) -> Result<Option<Locked>> {
    let internal = |e: crate::ephemeral::EphemeralError| Error::Internal(e.to_string());
    let ephemeral = deps.ephemeral();
    let lock_key = format!("{}:lock", rule.key);
    if let Some(left) = ephemeral.locked_for(&lock_key).await.map_err(internal)? {
        return Ok(Some(Locked {
            retry_after: left,
            strike: None,
        }));
    }
    let window = rule.window.max(Duration::from_secs(1));
    let decision = ephemeral
        .hit(rule.key, rule.limit.max(1), window)
        .await
        .map_err(internal)?;
    if decision.allowed {
        return Ok(None);
    }
    if !ephemeral
        .remember_once(&format!("{}:episode", rule.key), window)
        .await
        .map_err(internal)?
    {
        let left = ephemeral.locked_for(&lock_key).await.map_err(internal)?;
        return Ok(Some(Locked {
            retry_after: left.unwrap_or(decision.reset_after),
            strike: None,
        }));
    }
    let strikes = ephemeral
        .hit(&format!("{}:strikes", rule.key), 1000, DAY)
        .await
        .map_err(internal)?;
    let strike = 1000 - strikes.remaining;
    let lock = lockout(window, strike, rule.max_lock.max(Duration::from_secs(1)));
    ephemeral.lock(&lock_key, lock).await.map_err(internal)?;
    Ok(Some(Locked {
        retry_after: lock,
        strike: Some(strike),
    }))
}

/// After a success: forgets the attempts and the strikes, so the next lock starts short again.
pub async fn forget_lockout(deps: &impl HasEphemeral, key: &str) {
    let _ = deps.ephemeral().clear(key).await;
    let _ = deps.ephemeral().clear(&format!("{key}:strikes")).await;
}

/// One limit to check: `key` may be hit `limit` times per `window`.
pub struct Rule<'a> {
    pub policy: &'static str,
    pub key: String,
    pub limit: u32,
    pub window: Duration,
    /// What the audit entry says was limited (never a secret or a plain email address).
    pub subject: &'a str,
}

/// Counts a hit on every rule in order and stops at the first that refuses; the refusal is audited.
pub async fn enforce(
    deps: &(impl HasDb + HasEphemeral),
    org: &Organization,
    actor: &Actor,
    rules: &[Rule<'_>],
) -> Result<()> {
    for rule in rules {
        let decision = deps
            .ephemeral()
            .hit(&rule.key, rule.limit.max(1), rule.window)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        if !decision.allowed {
            let audit = NewAuditEvent::new(&org.id, actor, Action::RateLimited).change(
                None,
                Some(json!({
                    "policy": rule.policy,
                    "subject": rule.subject,
                    "retry_after_secs": decision.reset_after.as_secs(),
                })),
            );
            deps.db().tenant(&org.id).append_audit(&audit).await?;
            return Err(Error::RateLimited(Limited {
                decision,
                policy: rule.policy,
                window: rule.window,
            }));
        }
    }
    Ok(())
}

/// Counts one request against a high per-client rate (token endpoint, introspection) with the
/// sliding-window counter, which costs the same at any rate. A client over its rate is audited once per
/// window, not once per refused request, so a flood cannot flood the audit log too.
pub async fn enforce_client_rate(
    deps: &(impl HasDb + HasEphemeral),
    org: &Organization,
    actor: &Actor,
    policy: &'static str,
    key: &str,
    limit: u32,
) -> Result<()> {
    let window = MINUTE;
    let decision = deps
        .ephemeral()
        .hit_counter(key, limit.max(1), window)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    if decision.allowed {
        return Ok(());
    }
    let first_refusal = deps
        .ephemeral()
        .remember_once(&format!("audited:{key}"), window)
        .await
        .unwrap_or(true);
    if first_refusal {
        let audit = NewAuditEvent::new(&org.id, actor, Action::RateLimited).change(
            None,
            Some(json!({
                "policy": policy,
                "subject": actor.id,
                "retry_after_secs": decision.reset_after.as_secs(),
            })),
        );
        deps.db().tenant(&org.id).append_audit(&audit).await?;
    }
    Err(Error::RateLimited(Limited {
        decision,
        policy,
        window,
    }))
}

/// A keyed fingerprint for use inside limit keys: stable per value, useless without the master key.
pub fn key_part(deps: &impl HasSecrets, value: &str) -> String {
    hex::encode(
        &deps
            .secrets()
            .token_hash(&format!("limit:{}", crate::users::identity_key(value)))[..12],
    )
}

/// The client a per-address limit counts: the IPv4 address, or the /64 network of an IPv6 address (one
/// subscriber usually holds a whole /64, so counting single IPv6 addresses would limit nobody).
pub fn client_network(ip: Option<&str>) -> String {
    use std::net::IpAddr;
    match ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => ip.unwrap_or("-").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_network() {
        assert_eq!(client_network(Some("203.0.113.7")), "203.0.113.7");
        assert_eq!(client_network(Some("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(
            client_network(Some("2001:db8:aa:bb:1:2:3:4")),
            client_network(Some("2001:db8:aa:bb:ffff::9")),
        );
        assert_eq!(
            client_network(Some("2001:db8:aa:bb::1")),
            "2001:db8:aa:bb::/64"
        );
        assert_ne!(
            client_network(Some("2001:db8:aa:bb::1")),
            client_network(Some("2001:db8:aa:bc::1"))
        );
        assert_eq!(client_network(None), "-");
    }

    #[test]
    fn signup_limits_must_be_positive() {
        for change in [
            |l: &mut RateLimits| l.signup_per_ip_per_hour = 0,
            |l: &mut RateLimits| l.signup_per_email_per_hour = 0,
        ] {
            let mut limits = RateLimits::default();
            change(&mut limits);
            assert!(limits.validate().is_err());
        }
        assert!(RateLimits::default().validate().is_ok());
    }

    #[test]
    fn lockouts_double_and_stop_at_the_cap() {
        let five = Duration::from_secs(300);
        let hour = Duration::from_secs(3600);
        let locks: Vec<u64> = (1..=6).map(|s| lockout(five, s, hour).as_secs()).collect();
        assert_eq!(locks, vec![300, 600, 1200, 2400, 3600, 3600]);
        assert_eq!(lockout(five, 100, hour), hour, "never longer than the cap");
    }

    #[test]
    fn the_account_cap_and_the_second_factor_limits_are_validated() {
        assert!(RateLimits::default().validate().is_ok());
        let zero_cap = RateLimits {
            login_attempts_per_account_per_hour: 0,
            ..Default::default()
        };
        assert!(zero_cap.validate().is_err());
        let zero_mfa = RateLimits {
            mfa_attempts: 0,
            ..Default::default()
        };
        assert!(zero_mfa.validate().is_err());
        let short_lock = RateLimits {
            mfa_window_secs: 600,
            mfa_lockout_max_secs: 300,
            ..Default::default()
        };
        assert!(short_lock.validate().is_err());
    }
}
