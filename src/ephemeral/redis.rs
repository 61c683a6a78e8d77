//! The Redis connection: one multiplexed connection manager that reconnects on its own.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
}

const TIMEOUT: Duration = Duration::from_secs(1);

pub struct Redis {
    client: redis::Client,
    /// Created on first use, so an instance starts (and reports not-ready) while Redis is still coming up.
    manager: OnceCell<ConnectionManager>,
}

impl Redis {
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            manager: OnceCell::new(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
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
        .map_err(|_| RedisError::Timeout(TIMEOUT))??;
        Ok(manager.clone())
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map_err(|_| RedisError::Timeout(TIMEOUT))??;
        Ok(())
    }
}
