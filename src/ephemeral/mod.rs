//! Ephemeral state: rate-limit windows and one-time markers (replayed nonces, used TOTP codes). Losing it
//! loses no user, session or revocation (the database holds those), so it lives in memory on a single
//! instance and in Redis when several instances must share it.
//!
//! [`Ephemeral`] is the interface; [`memory::MemoryEphemeral`] and [`redis::RedisEphemeral`] implement it,
//! and [`resilient::Resilient`] puts Redis in front of a local fallback so an outage degrades the service
//! instead of stopping it.

pub mod memory;
pub mod redis;
pub mod resilient;

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: unexpected answer: {0}")]
    Protocol(String),
}

/// The outcome of one rate-limit hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Hits still available in the current window after this one.
    pub remaining: u32,
    /// When the oldest counted hit leaves the window (when a refused caller may try again).
    pub reset_after: Duration,
}

/// A sliding-window-counter observation: the previous and current fixed windows' counts (after this
/// hit, if it was allowed) and how far into the current window it came.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    pub allowed: bool,
    pub previous: u64,
    pub current: u64,
    pub elapsed: Duration,
}

/// The estimate the counter limits: `current` plus `previous` weighted by the overlap left.
pub(crate) fn weighted(previous: u64, current: u64, elapsed: Duration, window: Duration) -> f64 {
    let overlap = 1.0 - (elapsed.as_secs_f64() / window.as_secs_f64()).min(1.0);
    previous as f64 * overlap + current as f64
}

impl Counted {
    /// Whether one more hit fits: the estimate including it stays within `limit`.
    pub(crate) fn fits(
        previous: u64,
        current: u64,
        elapsed: Duration,
        window: Duration,
        limit: u32,
    ) -> bool {
        weighted(previous, current + 1, elapsed, window) <= f64::from(limit)
    }

    pub(crate) fn decision(self, limit: u32, window: Duration) -> Decision {
        let estimate = weighted(self.previous, self.current, self.elapsed, window);
        let remaining = (f64::from(limit) - estimate).floor().max(0.0) as u32;
        let to_window_end = window.saturating_sub(self.elapsed);
        let reset_after = if self.allowed {
            to_window_end
        } else {
            // When the next hit would fit again: later in this window as the previous one's weight
            // fades, or, if this window alone is full, once this window's weight fades in the next.
            let room = f64::from(limit) - 1.0;
            let w = window.as_secs_f64();
            if (self.current as f64) <= room && self.previous > 0 {
                let at = w * (1.0 - (room - self.current as f64) / self.previous as f64);
                Duration::from_secs_f64((at - self.elapsed.as_secs_f64()).max(0.0))
            } else {
                let at = w * (1.0 - room / (self.current.max(1) as f64)).max(0.0);
                to_window_end + Duration::from_secs_f64(at)
            }
        };
        Decision {
            allowed: self.allowed,
            limit,
            remaining,
            // Round up so a client waiting `Retry-After` seconds is not refused again.
            reset_after: Duration::from_millis(
                reset_after.as_millis().min(u64::MAX as u128) as u64 + 1,
            ),
        }
    }
}

#[async_trait]
pub trait Ephemeral: Send + Sync + 'static {
    fn backend(&self) -> &'static str;

    /// Sliding-window log: records a hit on `key` unless `limit` hits already fall within the last
    /// `window`. Atomic: concurrent callers can never get more than `limit` allowed hits between them.
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError>;

    /// Sliding-window counter: constant state per key (this fixed window's count and the previous one's),
    /// estimating the sliding window as this window's hits plus the previous window's weighted by how
    /// much of it still overlaps. For high limits on hot paths, where a log entry per hit would cost too
    /// much; no edge bursts, though uneven traffic may be estimated slightly high or low. Atomic.
    async fn hit_counter(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError>;

    /// Forgets every hit on `key`.
    async fn clear(&self, key: &str) -> Result<(), EphemeralError>;

    /// Remembers `key` for `ttl`; false if it was already remembered (a replay).
    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, EphemeralError>;

    /// Locks `key` for `ttl` (replacing any earlier lock on it).
    async fn lock(&self, key: &str, ttl: Duration) -> Result<(), EphemeralError>;

    /// How much longer `key` stays locked; `None` when it is not locked.
    async fn locked_for(&self, key: &str) -> Result<Option<Duration>, EphemeralError>;

    /// Lifts a lock.
    async fn unlock(&self, key: &str) -> Result<(), EphemeralError>;

    /// Tells every other instance `message` on `channel` (nothing to tell when there is only this one).
    async fn publish(&self, _channel: &str, _message: &str) -> Result<(), EphemeralError> {
        Ok(())
    }

    /// Messages other instances publish on `channel`; `None` when there are no other instances.
    fn subscribe(&self, _channel: &str) -> Option<tokio::sync::mpsc::Receiver<String>> {
        None
    }

    /// Checks the shared backend (always fine in memory).
    async fn ping(&self) -> Result<(), EphemeralError> {
        Ok(())
    }

    /// Whether the shared backend is unreachable and a local fallback is answering.
    fn degraded(&self) -> bool {
        false
    }
}

/// The ephemeral store for a configuration: Redis (with the local fallback) when a URL is given.
pub fn from_config(
    redis_url: Option<&str>,
) -> Result<std::sync::Arc<dyn Ephemeral>, EphemeralError> {
    Ok(match redis_url {
        Some(url) => {
            std::sync::Arc::new(resilient::Resilient::new(redis::RedisEphemeral::new(url)?))
        }
        None => std::sync::Arc::new(memory::MemoryEphemeral::new()),
    })
}
