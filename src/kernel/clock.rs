//! The clock domain operations read "now" from. Production uses the system clock; tests use a clock they
//! can move forward, so an expiry or a lockout window is crossed by advancing the clock instead of
//! rewriting timestamps in the database or sleeping.
//!
//! The HTTP edge runs each request inside [`Clock::pinned`], so every operation of one request sees the
//! same "now": a session created at sign-in, its `auth_time`, the tokens minted for it and the checks on
//! the way agree to the second, however long the password hash queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, from the system clock, plus an offset a test may advance. Cloning shares
/// the offset, so a test that advances its clock moves the server's time too.
#[derive(Clone, Default)]
pub struct Clock {
    offset: Option<Arc<AtomicI64>>,
}

tokio::task_local! {
    /// "Now" for the request running on this task, set by [`Clock::pinned`].
    static PINNED_NOW: i64;
}

impl Clock {
    /// The system clock; it cannot be advanced.
    pub fn system() -> Self {
        Clock { offset: None }
    }

    /// A clock that starts at the system time and can be moved forward with [`Clock::advance`].
    pub fn adjustable() -> Self {
        Clock {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Seconds since the Unix epoch: the unit of every stored timestamp. Inside [`Clock::pinned`], the
    /// time the pinned work started.
    pub fn now(&self) -> i64 {
        PINNED_NOW
            .try_with(|now| *now)
            .unwrap_or_else(|_| self.live())
    }

    /// Runs `work` with "now" fixed at the time it starts: every [`Clock::now`] on this task (not on
    /// tasks it spawns) reads that time until `work` ends.
    pub async fn pinned<F: std::future::Future>(&self, work: F) -> F::Output {
        PINNED_NOW.scope(self.live(), work).await
    }

    /// The time right now, pinned or not.
    fn live(&self) -> i64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        match &self.offset {
            Some(offset) => system + offset.load(Ordering::Relaxed),
            None => system,
        }
    }

    /// Moves an adjustable clock forward by `secs`; a system clock ignores it (and says so in debug builds).
    pub fn advance(&self, secs: i64) {
        match &self.offset {
            Some(offset) => {
                offset.fetch_add(secs, Ordering::Relaxed);
            }
            None => debug_assert!(false, "the system clock cannot be advanced"),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(_) => write!(f, "Clock(adjustable, now={})", self.now()),
            None => f.write_str("Clock(system)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pinned_clock_reads_one_time_for_the_whole_of_the_work() {
        let clock = Clock::adjustable();
        let inside = clock.clone();
        let (first, later) = clock
            .pinned(async move {
                let first = inside.now();
                inside.advance(120);
                (first, inside.now())
            })
            .await;
        assert_eq!(first, later, "one time for the whole request");
        assert!(clock.now() >= first + 120, "outside, time has moved on");
    }

    #[test]
    fn an_adjustable_clock_moves_forward_for_every_clone() {
        let clock = Clock::adjustable();
        let server_side = clock.clone();
        let before = server_side.now();
        clock.advance(3600);
        let after = server_side.now();
        assert!(
            (3600..3602).contains(&(after - before)),
            "{before} -> {after}"
        );
    }
}
