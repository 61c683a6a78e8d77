//! Ephemeral state in Redis, shared by every instance. Each rate-limit hit is one Lua script, so the
//! check and the record are atomic across instances; time comes from the Redis server, so instance clocks
//! need not agree.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::{Counted, Decision, Ephemeral, EphemeralError};

const TIMEOUT: Duration = Duration::from_secs(1);
const PREFIX: &str = "latchkey:";

/// Sliding-window log in a sorted set: drop hits older than the window, count, add this hit if under the
/// limit. Returns {allowed, count, ms until the oldest hit leaves the window}.
const SLIDING_WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = 0
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, count, reset}
";

/// Sliding-window counter in a hash {w: fixed-window index, c: its hits, p: the previous window's}. The
/// weighting matches [`super::weighted`]. Returns {allowed, previous, current, ms into the window}.
const SLIDING_COUNTER: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local index = math.floor(now / window)
local state = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(state[1]) or -2
local c = tonumber(state[2]) or 0
local p = tonumber(state[3]) or 0
if w ~= index then
  if w == index - 1 then p = c else p = 0 end
  c = 0
end
local elapsed = now % window
local allowed = 0
if p * (1 - elapsed / window) + c + 1 <= limit then
  c = c + 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'w', index, 'c', c, 'p', p)
redis.call('PEXPIRE', KEYS[1], 2 * window)
return {allowed, p, c, elapsed}
";

pub struct RedisEphemeral {
    client: redis::Client,
    /// Created on first use, so an instance starts (and reports not-ready) while Redis is still coming up.
    manager: OnceCell<ConnectionManager>,
    script: redis::Script,
    counter: redis::Script,
}

impl RedisEphemeral {
    pub fn new(url: &str) -> Result<Self, EphemeralError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            manager: OnceCell::new(),
            script: redis::Script::new(SLIDING_WINDOW),
            counter: redis::Script::new(SLIDING_COUNTER),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, EphemeralError> {
        let manager = tokio::time::timeout(
            TIMEOUT,
            self.manager.get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT));
                ConnectionManager::new_with_config(self.client.clone(), config).await
            }),
        )
        .await
        .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(manager.clone())
    }

    pub async fn ping(&self) -> Result<(), EphemeralError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(())
    }
}

/// Keeps a subscription to `channel` alive (reconnecting after errors) and forwards its messages.
async fn forward_messages(
    client: redis::Client,
    channel: String,
    tx: tokio::sync::mpsc::Sender<String>,
) {
    use futures_util::StreamExt;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        if let Ok(payload) = msg.get_payload::<String>()
                            && tx.send(payload).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, channel = %channel, "redis subscription failed; retrying")
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[async_trait]
impl Ephemeral for RedisEphemeral {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError> {
        let mut conn = self.connection().await?;
        // A unique member per hit, so two hits in the same millisecond both count.
        let member = hex::encode(crate::crypto::random_bytes(8));
        let mut invocation = self.script.key(format!("{PREFIX}rl:{key}"));
        invocation
            .arg(window.as_millis() as u64)
            .arg(limit)
            .arg(member);
        let (allowed, count, reset_ms): (i64, i64, i64) =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: limit.saturating_sub(count.max(0) as u32),
            reset_after: Duration::from_millis(reset_ms.max(0) as u64),
        })
    }

    async fn hit_counter(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError> {
        let mut conn = self.connection().await?;
        let mut invocation = self.counter.key(format!("{PREFIX}rc:{key}"));
        invocation.arg(window.as_millis().max(1) as u64).arg(limit);
        let (allowed, previous, current, elapsed_ms): (i64, i64, i64, i64) =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(Counted {
            allowed: allowed == 1,
            previous: previous.max(0) as u64,
            current: current.max(0) as u64,
            elapsed: Duration::from_millis(elapsed_ms.max(0) as u64),
        }
        .decision(limit, window))
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), EphemeralError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(
            TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(format!("{PREFIX}{channel}"))
                .arg(message)
                .query_async::<i64>(&mut conn),
        )
        .await
        .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(())
    }

    fn subscribe(&self, channel: &str) -> Option<tokio::sync::mpsc::Receiver<String>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(forward_messages(
            self.client.clone(),
            format!("{PREFIX}{channel}"),
            tx,
        ));
        Some(rx)
    }

    async fn clear(&self, key: &str) -> Result<(), EphemeralError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(
            TIMEOUT,
            redis::cmd("DEL")
                .arg(format!("{PREFIX}rl:{key}"))
                .arg(format!("{PREFIX}rc:{key}"))
                .query_async::<i64>(&mut conn),
        )
        .await
        .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(())
    }

    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, EphemeralError> {
        let mut conn = self.connection().await?;
        let set: Option<String> = tokio::time::timeout(
            TIMEOUT,
            redis::cmd("SET")
                .arg(format!("{PREFIX}once:{key}"))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async(&mut conn),
        )
        .await
        .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(set.is_some())
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<(), EphemeralError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(
            TIMEOUT,
            redis::cmd("SET")
                .arg(format!("{PREFIX}lock:{key}"))
                .arg(1)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<()>(&mut conn),
        )
        .await
        .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(())
    }

    async fn locked_for(&self, key: &str) -> Result<Option<Duration>, EphemeralError> {
        let mut conn = self.connection().await?;
        let millis: i64 = tokio::time::timeout(
            TIMEOUT,
            redis::cmd("PTTL")
                .arg(format!("{PREFIX}lock:{key}"))
                .query_async(&mut conn),
        )
        .await
        .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        // -2: no such key; -1: no expiry (never set by us).
        Ok((millis > 0).then(|| Duration::from_millis(millis as u64)))
    }

    async fn unlock(&self, key: &str) -> Result<(), EphemeralError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(
            TIMEOUT,
            redis::cmd("DEL")
                .arg(format!("{PREFIX}lock:{key}"))
                .query_async::<()>(&mut conn),
        )
        .await
        .map_err(|_| EphemeralError::Timeout(TIMEOUT))??;
        Ok(())
    }
}
