//! Client-side pacing per Slack method, by Slack's rate-limit tier.
//!
//! Slack limits each Web API method per workspace and app by tier (Tier 2: about
//! 20 calls a minute, Tier 3: 50, Tier 4: 100, `chat.postMessage`: about one a
//! second). Retrying on 429 alone makes a long listing (a large workspace's
//! channels or users) run into storms of 429s; spacing the calls to the tier's
//! rate avoids them. Each method gets a GCRA schedule (a leaky bucket as a single
//! timestamp): a small burst goes out at once, further calls are spaced to the
//! tier's interval. Calls reserve their slot before waiting, so concurrent
//! callers queue fairly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Slack's rate-limit tiers, with the methods this connector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// About 20 calls a minute (listings, search, create).
    Two,
    /// About 50 calls a minute (history, replies, edits, reactions).
    Three,
    /// About 100 calls a minute (single-object reads).
    Four,
    /// `chat.postMessage`: about one message a second.
    PostMessage,
}

impl Tier {
    /// The tier of a Web API method.
    pub fn of(method: &str) -> Self {
        match method {
            "conversations.list" | "conversations.create" | "users.list" | "search.messages" => {
                Self::Two
            }
            "chat.postMessage" => Self::PostMessage,
            "users.info" | "users.profile.get" | "auth.test" => Self::Four,
            _ => Self::Three,
        }
    }

    /// Average time between two calls.
    pub fn interval(self) -> Duration {
        match self {
            Self::Two => Duration::from_secs(3),
            Self::Three => Duration::from_millis(1200),
            Self::Four => Duration::from_millis(600),
            Self::PostMessage => Duration::from_secs(1),
        }
    }

    /// Calls that may go out back to back before spacing starts.
    pub fn burst(self) -> u32 {
        match self {
            Self::Two => 5,
            Self::Three => 10,
            Self::Four => 20,
            Self::PostMessage => 3,
        }
    }
}

/// One GCRA step: given the method's theoretical arrival time `tat` (if any),
/// returns how long this call must wait and the new `tat`.
pub fn schedule(
    tat: Option<Instant>,
    now: Instant,
    interval: Duration,
    burst: u32,
) -> (Duration, Instant) {
    let tolerance = interval * burst.saturating_sub(1);
    let start = tat.map_or(now, |t| t.max(now));
    let allowed_at = start.checked_sub(tolerance).unwrap_or(now);
    (allowed_at.saturating_duration_since(now), start + interval)
}

/// Paces calls per method; shared by all calls of one connector.
#[derive(Debug)]
pub struct Pacer {
    enabled: bool,
    schedules: Mutex<HashMap<&'static str, Instant>>,
}

impl Pacer {
    /// A pacer; a disabled one never waits.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            schedules: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until `method` may be called again.
    pub async fn wait(&self, method: &'static str) {
        if !self.enabled {
            return;
        }
        let tier = Tier::of(method);
        let delay = {
            let Ok(mut schedules) = self.schedules.lock() else {
                return;
            };
            let (delay, tat) = schedule(
                schedules.get(method).copied(),
                Instant::now(),
                tier.interval(),
                tier.burst(),
            );
            schedules.insert(method, tat);
            delay
        };
        if !delay.is_zero() {
            tracing::debug!(
                method,
                delay_ms = delay.as_millis() as u64,
                "pacing slack call"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_out_at_once_then_calls_are_spaced() {
        let now = Instant::now();
        let interval = Duration::from_secs(3);
        let mut tat = None;
        for _ in 0..5 {
            let (wait, next) = schedule(tat, now, interval, 5);
            assert_eq!(wait, Duration::ZERO);
            tat = Some(next);
        }
        let (wait, next) = schedule(tat, now, interval, 5);
        assert_eq!(wait, interval);
        let (wait, _) = schedule(Some(next), now, interval, 5);
        assert_eq!(wait, interval * 2);
    }

    #[test]
    fn an_idle_method_gets_its_full_burst_back() {
        let start = Instant::now();
        let interval = Duration::from_secs(1);
        let (_, tat) = schedule(None, start, interval, 3);
        let (_, tat) = schedule(Some(tat), start, interval, 3);
        let (_, tat) = schedule(Some(tat), start, interval, 3);
        let later = start + Duration::from_secs(60);
        let (wait, _) = schedule(Some(tat), later, interval, 3);
        assert_eq!(wait, Duration::ZERO);
    }

    #[test]
    fn listings_are_tier_two_and_single_reads_tier_four() {
        assert_eq!(Tier::of("conversations.list"), Tier::Two);
        assert_eq!(Tier::of("users.list"), Tier::Two);
        assert_eq!(Tier::of("users.info"), Tier::Four);
        assert_eq!(Tier::of("conversations.history"), Tier::Three);
        assert_eq!(Tier::of("chat.postMessage"), Tier::PostMessage);
    }
}
