//! Ephemeral state in this process: the embedded default, and the fallback while Redis is unreachable.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Counted, Decision, Ephemeral, EphemeralError};

/// Above this many keys, expired ones are swept on the next write, so memory stays bounded by live state.
const SWEEP_ABOVE: usize = 10_000;

/// One sliding-window counter: which fixed window it is in, and that window's and the previous one's hits.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    window_ms: u64,
    index: u64,
    current: u64,
    previous: u64,
}

pub struct MemoryEphemeral {
    /// Fixed windows are numbered from here.
    epoch: Instant,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    counters: Mutex<HashMap<String, Counter>>,
    markers: Mutex<HashMap<String, Instant>>,
    locks: Mutex<HashMap<String, Instant>>,
}

impl Default for MemoryEphemeral {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            windows: Mutex::default(),
            counters: Mutex::default(),
            markers: Mutex::default(),
            locks: Mutex::default(),
        }
    }
}

impl MemoryEphemeral {
    pub fn new() -> Self {
        Self::default()
    }
}

/// A sliding-window-counter hit at `since_epoch`: rolls the counter into the current fixed window, then
/// counts the hit if it fits.
fn count(counter: &mut Counter, since_epoch: Duration, limit: u32, window: Duration) -> Counted {
    let window_ms = window.as_millis().max(1) as u64;
    let now_ms = since_epoch.as_millis() as u64;
    let index = now_ms / window_ms;
    if index != counter.index || window_ms != counter.window_ms {
        counter.previous = if index == counter.index + 1 && window_ms == counter.window_ms {
            counter.current
        } else {
            0
        };
        counter.current = 0;
        counter.index = index;
        counter.window_ms = window_ms;
    }
    let elapsed = Duration::from_millis(now_ms % window_ms);
    let allowed = Counted::fits(counter.previous, counter.current, elapsed, window, limit);
    if allowed {
        counter.current += 1;
    }
    Counted {
        allowed,
        previous: counter.previous,
        current: counter.current,
        elapsed,
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

    async fn hit_counter(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Decision, EphemeralError> {
        let since_epoch = self.epoch.elapsed();
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() > SWEEP_ABOVE {
            // A counter two windows old counts nothing any more.
            let now_ms = since_epoch.as_millis() as u64;
            counters.retain(|_, c| now_ms / c.window_ms.max(1) <= c.index + 1);
        }
        let counter = match counters.get_mut(key) {
            Some(counter) => counter,
            None => counters.entry(key.to_string()).or_default(),
        };
        Ok(count(counter, since_epoch, limit, window).decision(limit, window))
    }

    async fn clear(&self, key: &str) -> Result<(), EphemeralError> {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.counters
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

    #[test]
    fn the_counter_weighs_the_previous_window_by_its_overlap() {
        let window = Duration::from_secs(60);
        let mut c = Counter::default();
        for _ in 0..10 {
            assert!(count(&mut c, Duration::from_secs(30), 10, window).allowed);
        }
        assert!(!count(&mut c, Duration::from_secs(59), 10, window).allowed);
        // 15 s into the next window, the previous 10 hits still weigh 7.5: two more fit, not ten.
        assert!(count(&mut c, Duration::from_secs(75), 10, window).allowed);
        assert!(count(&mut c, Duration::from_secs(75), 10, window).allowed);
        let refused = count(&mut c, Duration::from_secs(75), 10, window);
        assert!(!refused.allowed);
        // The next fits once 10 * (1 - t/60) + 2 <= 9, at t = 18 s: 3 s from now.
        let d = refused.decision(10, window);
        assert_eq!(d.remaining, 0);
        assert!(
            (d.reset_after.as_secs_f64() - 3.0).abs() < 0.01,
            "{:?}",
            d.reset_after
        );
        assert!(count(&mut c, Duration::from_millis(78_001), 10, window).allowed);
        // Two windows later nothing is left of either.
        let fresh = count(&mut c, Duration::from_secs(200), 10, window);
        assert!(fresh.allowed && fresh.previous == 0 && fresh.current == 1);
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
