//! Health that follows the upstream: the loop every connector with an upstream
//! runs beside its server.
//!
//! [`follow_upstream`] checks the upstream (the Jira credentials, the Slack bot
//! token, the database) now and again on a [`Cadence`], and flips [`Health`]
//! when the answer changes: SERVING while the check passes, NOT_SERVING while
//! it fails (a false alarm beats a silent failure). While failing it checks
//! sooner, so recovery is noticed soon. A check may also find that the
//! connector must not serve this upstream at all ([`Probe::Stop`]); the loop
//! then reports NOT_SERVING and ends with the reason.
//!
//! ```ignore
//! let health = server.health();
//! let watcher = tokio::spawn(async move {
//!     follow_upstream(&health, "jira", Cadence::every(interval), || async {
//!         match jira.myself().await {
//!             Ok(_) => Probe::Up,
//!             Err(error) => Probe::Down(error),
//!         }
//!     })
//!     .await
//! });
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::health::Health;

/// When the upstream is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Between checks while the upstream answers.
    interval: Duration,
    /// The first wait after a failed check.
    retry_first: Duration,
    /// The longest wait between failed checks (the wait doubles up to it).
    retry_max: Duration,
}

impl Cadence {
    /// A check every `interval`, whether the last one passed or not.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            retry_first: interval,
            retry_max: interval,
        }
    }

    /// While the checks fail, the next one comes after `first`, the wait
    /// doubling up to `max`; both are capped at the interval (failing never
    /// slows the checks down). A passing check starts over at `first`.
    pub fn retrying(self, first: Duration, max: Duration) -> Self {
        let retry_max = max.min(self.interval);
        Self {
            retry_first: first.min(retry_max),
            retry_max,
            ..self
        }
    }
}

/// What one check of the upstream found.
#[derive(Debug)]
pub enum Probe<E> {
    /// The upstream does what the connector needs: SERVING.
    Up,
    /// The upstream cannot be used now (unreachable, credentials rejected):
    /// NOT_SERVING, and checked again.
    Down(E),
    /// The connector must not serve this upstream at all (say, a database user
    /// that can write where the deployment is read-only): NOT_SERVING, and the
    /// loop ends with this reason.
    Stop(E),
}

/// Keeps `health` in step with `check`, run now and then on `cadence`, until a
/// check answers [`Probe::Stop`]; returns that reason (NOT_SERVING is set by
/// then). Only changes are reported to `health` and logged, with `upstream`
/// (a name from configuration, never a secret) saying what was checked.
pub async fn follow_upstream<E, F, Fut>(
    health: &Health,
    upstream: &str,
    cadence: Cadence,
    mut check: F,
) -> E
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Probe<E>>,
{
    let mut serving: Option<bool> = None;
    let mut retry = cadence.retry_first;
    loop {
        match check().await {
            Probe::Up => {
                if serving != Some(true) {
                    health.set_serving().await;
                    tracing::info!(upstream, "upstream answers, serving");
                    serving = Some(true);
                }
                retry = cadence.retry_first;
                tokio::time::sleep(cadence.interval).await;
            }
            Probe::Down(error) => {
                if serving == Some(false) {
                    tracing::debug!(upstream, %error, "upstream still failing");
                } else {
                    health.set_not_serving().await;
                    tracing::warn!(upstream, %error, "upstream failing, not serving");
                    serving = Some(false);
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(cadence.retry_max);
            }
            Probe::Stop(reason) => {
                health.set_not_serving().await;
                tracing::error!(upstream, %reason, "upstream refused, not serving");
                return reason;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_server::Health as _;
    use tonic_health::server::{HealthReporter, HealthService};

    use super::*;

    /// The overall status (`None` if the reporter had none).
    async fn status(service: &HealthService) -> Option<i32> {
        service
            .check(tonic::Request::new(HealthCheckRequest::default()))
            .await
            .ok()
            .map(|response| response.into_inner().status)
    }

    #[test]
    fn the_retry_waits_never_exceed_the_interval() {
        let second = Duration::from_secs(1);
        let cadence = Cadence::every(10 * second).retrying(20 * second, 30 * second);
        assert_eq!(cadence.retry_first, 10 * second);
        assert_eq!(cadence.retry_max, 10 * second);
        let cadence = Cadence::every(10 * second).retrying(second / 5, 60 * second);
        assert_eq!(cadence.retry_first, second / 5);
        assert_eq!(cadence.retry_max, 10 * second);
    }

    #[tokio::test]
    async fn health_follows_the_checks_until_one_stops_the_loop() {
        let reporter = HealthReporter::new();
        let service = HealthService::from_health_reporter(reporter.clone());
        let health = Health::new(reporter);
        // Each check answers the next probe and records the status it found.
        let probes = Arc::new(Mutex::new(VecDeque::from([
            Probe::Up,
            Probe::Down("refused"),
            Probe::Down("refused"),
            Probe::Up,
            Probe::Stop("not allowed"),
        ])));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cadence = Cadence::every(Duration::from_millis(5))
            .retrying(Duration::from_millis(1), Duration::from_millis(2));
        let reason = follow_upstream(&health, "test", cadence, || {
            let (probes, seen, service) = (probes.clone(), seen.clone(), &service);
            async move {
                let found = status(service).await;
                seen.lock().expect("not poisoned").push(found);
                probes
                    .lock()
                    .expect("not poisoned")
                    .pop_front()
                    .expect("the loop stops at the last probe")
            }
        })
        .await;
        assert_eq!(reason, "not allowed");
        let serving = Some(Wire::Serving as i32);
        let not_serving = Some(Wire::NotServing as i32);
        assert_eq!(status(&service).await, not_serving);
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            // The reporter starts SERVING; the server sets NOT_SERVING before
            // it serves, which this test leaves out.
            [serving, serving, not_serving, not_serving, serving]
        );
    }
}
