//! Ephemeral state in this process: the embedded default, and the fallback while Redis is unreachable.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Decision, Ephemeral, EphemeralError};

/// Above this many keys, expired ones are swept on the next write, so memory stays bounded by live state.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct MemoryEphemeral {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    markers: Mutex<HashMap<String, Instant>>,
    locks: Mutex<HashMap<String, Instant>>,
}

impl MemoryEphemeral {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Sliding-window decision over `hits` (oldest first) at `now`; records the hit when allowed.
pub(crate) fn slide(
    hits: &mut VecDeque<Instant>,
    now: Instant,
    limit: u32,
    window: Duration,
) -> Decision {
    while hits
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        hits.pop_front();
    }
    let allowed = (hits.len() as u32) < limit;
    if allowed {
        hits.push_back(now);
    }
    let reset_after = hits
        .front()
        .map(|t| window.saturating_sub(now.duration_since(*t)))
        .unwrap_or_default();
    Decision {
        allowed,
        limit,
        remaining: limit.saturating_sub(hits.len() as u32),
        reset_after,
    }
}

#[async_trait]
impl Ephemeral for MemoryEphemeral {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, hits| {
                hits.back()
                    .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(86_400))
            });
        }
        let hits = windows.entry(key.to_string()).or_default();
        Ok(slide(hits, now, limit, window))
    }

    async fn clear(&self, key: &str) -> Result<(), EphemeralError> {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }

    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, EphemeralError> {
        let now = Instant::now();
        let mut markers = self.markers.lock().unwrap_or_else(|e| e.into_inner());
        if markers.len() > SWEEP_ABOVE {
            markers.retain(|_, until| *until > now);
        }
        match markers.get(key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                markers.insert(key.to_string(), now + ttl);
                Ok(true)
            }
        }
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<(), EphemeralError> {
        let now = Instant::now();
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > SWEEP_ABOVE {
            locks.retain(|_, until| *until > now);
        }
        locks.insert(key.to_string(), now + ttl);
        Ok(())
    }

    async fn locked_for(&self, key: &str) -> Result<Option<Duration>, EphemeralError> {
        let now = Instant::now();
        let locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Ok(locks
            .get(key)
            .filter(|until| **until > now)
            .map(|until| *until - now))
    }

    async fn unlock(&self, key: &str) -> Result<(), EphemeralError> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides_instead_of_resetting_at_an_edge() {
        let start = Instant::now();
        let window = Duration::from_secs(10);
        let mut hits = VecDeque::new();
        for i in 0..3 {
            assert!(slide(&mut hits, start + Duration::from_secs(i), 3, window).allowed);
        }
        // Just before the first hit ages out: still full.
        assert!(!slide(&mut hits, start + Duration::from_millis(9_999), 3, window).allowed);
        // Once it has aged out, exactly one more is allowed.
        let d = slide(&mut hits, start + Duration::from_secs(10), 3, window);
        assert!(d.allowed && d.remaining == 0);
        assert!(!slide(&mut hits, start + Duration::from_secs(10), 3, window).allowed);
    }

    #[tokio::test]
    async fn markers_are_remembered_once() {
        let m = MemoryEphemeral::new();
        assert!(
            m.remember_once("totp:1", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            !m.remember_once("totp:1", Duration::from_secs(60))
                .await
                .unwrap()
        );
    }
}
