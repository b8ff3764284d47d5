//! Reporting a bound being hit, once, not once per request of a flood.
//!
//! Every bound on what clients may hold (connections, sessions, calls per
//! session, subscriptions, notification queues; see
//! [`crate::config::ClientLimits`]) answers the client that hits it with an
//! error naming the setting. The operator hears of it through a [`LimitLog`]:
//! the first hit logs a warning at once, later hits within [`LOG_EVERY`] are
//! only counted, and the next warning says how many there were. A flood of
//! ten thousand refused sessions is a handful of log lines.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shortest time between two warnings about the same bound.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate-limited warnings about one bound (see the module docs).
#[derive(Debug)]
pub struct LimitLog {
    setting: &'static str,
    every: Duration,
    last: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl LimitLog {
    /// Warnings about the bound set by `setting` (its config key), at most one
    /// every [`LOG_EVERY`].
    pub const fn new(setting: &'static str) -> Self {
        Self::every(setting, LOG_EVERY)
    }

    /// Warnings about `setting`, at most one every `every`.
    pub const fn every(setting: &'static str, every: Duration) -> Self {
        Self {
            setting,
            every,
            last: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Records one hit of the bound, whose value is `limit`; logs `what` as a
    /// warning unless one was logged less than the interval ago. Returns
    /// whether it logged.
    pub fn hit(&self, limit: impl std::fmt::Display, what: &str) -> bool {
        let now = Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *last = Some(now);
        let also = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(
            setting = self.setting,
            limit = %limit,
            also_refused_since_last_warning = also,
            "{what}"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_hits_logs_once_per_interval() {
        let log = LimitLog::every("max_sessions", Duration::from_millis(200));
        assert!(log.hit(3, "session limit reached"), "the first hit logs");
        for _ in 0..1000 {
            assert!(!log.hit(3, "session limit reached"));
        }
        assert_eq!(log.unlogged.load(Ordering::Relaxed), 1000);
        std::thread::sleep(Duration::from_millis(250));
        assert!(log.hit(3, "session limit reached"), "logs again later");
        assert_eq!(
            log.unlogged.load(Ordering::Relaxed),
            0,
            "the count went out with that warning"
        );
    }
}
