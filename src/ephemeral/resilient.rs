//! Redis first, this process as the fallback. When Redis stops answering, calls go to local state at once
//! (limits become per instance) and [`Ephemeral::degraded`] turns true, so responses can say so; Redis is
//! tried again after a short pause, and the service recovers on its own when it answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::memory::MemoryEphemeral;
use super::redis::RedisEphemeral;
use super::{Decision, Ephemeral, EphemeralError};

/// After a Redis failure, how long to answer locally before trying Redis again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Resilient {
    pub redis: RedisEphemeral,
    local: MemoryEphemeral,
    degraded: AtomicBool,
    /// Unix milliseconds before which Redis is not tried.
    skip_until_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Resilient {
    pub fn new(redis: RedisEphemeral) -> Self {
        Self {
            redis,
            local: MemoryEphemeral::new(),
            degraded: AtomicBool::new(false),
            skip_until_ms: AtomicU64::new(0),
        }
    }

    fn redis_usable(&self) -> bool {
        now_ms() >= self.skip_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &EphemeralError) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %error, "redis unreachable: degraded mode, using local state");
        }
        self.skip_until_ms
            .store(now_ms() + RETRY_AFTER.as_millis() as u64, Ordering::Relaxed);
    }

    fn succeeded(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("redis reachable again: leaving degraded mode");
        }
    }
}

macro_rules! redis_or_local {
    ($self:ident, $call:ident ( $($arg:expr),* )) => {{
        if $self.redis_usable() {
            match $self.redis.$call($($arg),*).await {
                Ok(v) => {
                    $self.succeeded();
                    return Ok(v);
                }
                Err(e) => $self.failed(&e),
            }
        }
        $self.local.$call($($arg),*).await
    }};
}

#[async_trait]
impl Ephemeral for Resilient {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError> {
        redis_or_local!(self, hit(key, limit, window))
    }

    async fn hit_counter(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError> {
        redis_or_local!(self, hit_counter(key, limit, window))
    }

    async fn clear(&self, key: &str) -> Result<(), EphemeralError> {
        // Clear both: a key counted locally during an outage must not outlive a successful sign-in.
        let _ = self.local.clear(key).await;
        redis_or_local!(self, clear(key))
    }

    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, EphemeralError> {
        redis_or_local!(self, remember_once(key, ttl))
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<(), EphemeralError> {
        redis_or_local!(self, lock(key, ttl))
    }

    async fn locked_for(&self, key: &str) -> Result<Option<Duration>, EphemeralError> {
        redis_or_local!(self, locked_for(key))
    }

    async fn unlock(&self, key: &str) -> Result<(), EphemeralError> {
        // Both: a lock set locally during an outage must not outlive a successful sign-in.
        let _ = self.local.unlock(key).await;
        redis_or_local!(self, unlock(key))
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), EphemeralError> {
        // Nobody to tell when Redis is down: other instances fall back to re-reading the database.
        redis_or_local!(self, publish(channel, message))
    }

    fn subscribe(&self, channel: &str) -> Option<tokio::sync::mpsc::Receiver<String>> {
        self.redis.subscribe(channel)
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        match self.redis.ping().await {
            Ok(()) => {
                self.succeeded();
                self.skip_until_ms.store(0, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }

    fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }
}
