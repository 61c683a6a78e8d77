//! Ephemeral state shared between instances (rate limits, replay nonces, caches) lives in Redis when one is
//! configured. This module holds the Redis connection; the rate-limit and nonce interfaces build on it.

pub mod redis;
