//! Retries for upstream HTTP calls: exponential backoff with jitter (tokio-retry),
//! honouring `Retry-After`, bounded in attempts and in total waiting time.
//!
//! The operation classifies each failure as [`Attempt::Retry`] (429, 503, a
//! connection reset on an idempotent request) or [`Attempt::Fail`]; only the former
//! is tried again. A `Retry-After` hint replaces the backoff delay for that wait.
//! When the hint is longer than the remaining budget the error is returned at once
//! rather than sleeping past the caller's deadline.
//!
//! When the upstream still rate limits after the retries, the connector answers
//! with [`upstream_rate_limited`]: `RESOURCE_EXHAUSTED` plus the trailer
//! [`UPSTREAM_RATE_LIMITED`], so the router tells the caller "upstream rate
//! limited" (and how long to wait) apart from its own limits.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_retry::RetryIf;
use tokio_retry::strategy::{ExponentialBackoff, jitter};

/// gRPC trailer metadata on a status that reports the upstream's rate limit
/// (HTTP 429, Slack's `ratelimited`): the whole seconds the upstream asked to
/// wait, `0` when it did not say.
pub const UPSTREAM_RATE_LIMITED: &str = "switchboard-upstream-rate-limited";

/// The status of a call the upstream API rate limited (retries included):
/// `RESOURCE_EXHAUSTED` with `message`, marked with [`UPSTREAM_RATE_LIMITED`]
/// and the wait the upstream asked for, if it said.
pub fn upstream_rate_limited(
    message: impl Into<String>,
    retry_after: Option<Duration>,
) -> tonic::Status {
    let mut status = tonic::Status::resource_exhausted(message);
    let secs = retry_after.map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    status.metadata_mut().insert(
        UPSTREAM_RATE_LIMITED,
        tonic::metadata::MetadataValue::from(secs),
    );
    status
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: usize,
    /// First backoff delay; it doubles on each retry (with full jitter).
    pub initial_delay: Duration,
    /// Upper bound of one backoff delay.
    pub max_delay: Duration,
    /// Upper bound of all waiting together, `Retry-After` included.
    pub max_total_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_total_delay: Duration::from_secs(30),
        }
    }
}

/// A failed attempt, classified by the operation.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Worth another try, after `retry_after` if the server said so.
    Retry {
        /// The error to return if no retry is left.
        error: E,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Final: return it.
    Fail(E),
}

impl<E> Attempt<E> {
    fn into_error(self) -> E {
        match self {
            Self::Retry { error, .. } | Self::Fail(error) => error,
        }
    }
}

/// Runs `operation` until it succeeds, fails permanently, or the policy is spent.
pub async fn retry<T, E, F, Fut>(policy: RetryPolicy, mut operation: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let hint: Arc<Mutex<Option<Duration>>> = Arc::default();
    let strategy = Delays::new(policy, hint.clone());
    let action = || {
        let hint = hint.clone();
        let attempt = operation();
        async move {
            let result = attempt.await;
            if let Err(Attempt::Retry {
                retry_after: Some(after),
                ..
            }) = &result
                && let Ok(mut slot) = hint.lock()
            {
                *slot = Some(*after);
            }
            result
        }
    };
    RetryIf::start(strategy, action, |e: &Attempt<E>| {
        matches!(e, Attempt::Retry { .. })
    })
    .await
    .map_err(Attempt::into_error)
}

/// Backoff delays with jitter; a pending `Retry-After` hint takes the place of the
/// next delay. Ends when retries or the total budget are spent.
struct Delays {
    backoff: std::iter::Take<ExponentialBackoff>,
    hint: Arc<Mutex<Option<Duration>>>,
    remaining: Duration,
}

impl Delays {
    fn new(policy: RetryPolicy, hint: Arc<Mutex<Option<Duration>>>) -> Self {
        // ExponentialBackoff yields base^n * factor: base 2 with the initial delay
        // as factor gives initial, 2*initial, 4*initial, ...
        let factor = u64::try_from(policy.initial_delay.as_millis() / 2).unwrap_or(u64::MAX);
        Self {
            backoff: ExponentialBackoff::from_millis(2)
                .factor(factor.max(1))
                .max_delay(policy.max_delay)
                .take(policy.max_retries),
            hint,
            remaining: policy.max_total_delay,
        }
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let backoff = jitter(self.backoff.next()?);
        let hinted = self.hint.lock().ok().and_then(|mut h| h.take());
        let delay = hinted.unwrap_or(backoff);
        if delay > self.remaining {
            return None;
        }
        self.remaining -= delay;
        Some(delay)
    }
}

/// Parses a `Retry-After` header value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn an_upstream_rate_limit_is_marked_with_the_wait_it_asked_for() {
        let status =
            upstream_rate_limited("Jira is rate limiting", Some(Duration::from_millis(1500)));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "Jira is rate limiting");
        let wait = status
            .metadata()
            .get(UPSTREAM_RATE_LIMITED)
            .map(|v| v.to_str().ok());
        assert_eq!(wait, Some(Some("2")), "whole seconds, rounded up");
        let unsaid = upstream_rate_limited("slow down", None);
        let wait = unsaid
            .metadata()
            .get(UPSTREAM_RATE_LIMITED)
            .map(|v| v.to_str().ok());
        assert_eq!(wait, Some(Some("0")));
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            initial_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
            max_total_delay: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_success() {
        let calls = AtomicUsize::new(0);
        let result: Result<u32, &str> = retry(fast(), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(Attempt::Retry {
                        error: "busy",
                        retry_after: None,
                    })
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicUsize::new(0);
        let result: Result<u32, &str> = retry(fast(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Attempt::Fail("bad request")) }
        })
        .await;
        assert_eq!(result, Err("bad request"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_stop_after_the_policy_is_spent() {
        let calls = AtomicUsize::new(0);
        let result: Result<u32, &str> = retry(fast(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(Attempt::Retry {
                    error: "busy",
                    retry_after: None,
                })
            }
        })
        .await;
        assert_eq!(result, Err("busy"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_budget_fails_at_once() {
        let calls = AtomicUsize::new(0);
        let policy = RetryPolicy {
            max_total_delay: Duration::from_secs(1),
            ..fast()
        };
        let result: Result<u32, &str> = retry(policy, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(Attempt::Retry {
                    error: "rate limited",
                    retry_after: Some(Duration::from_secs(3600)),
                })
            }
        })
        .await;
        assert_eq!(result, Err("rate limited"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after(" 0.25 "),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("later"), None);
    }
}
