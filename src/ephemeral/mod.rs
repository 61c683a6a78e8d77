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
