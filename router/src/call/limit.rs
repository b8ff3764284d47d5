//! The limit stage: whether a call may start now, and how many reach a
//! connector at once.
//!
//! In order: the session's call slots (`max_calls_per_session`, refused at
//! once: a client that floods one session cannot queue work); the `[[limit]]`
//! rate limits of the principal and the tool ([`crate::rate`], refused at once
//! with the time to wait); then, once the call is decoded, identical read-only
//! calls share one connector call ([`super::share`]), and a connector with
//! `max_in_flight` takes that many calls at once, the others waiting up to its
//! `queue_timeout` ([`ConnectorCap`]).
//!
//! Who "the principal" is for limits ([`principal_key`]): the token's `sub`
//! when HTTP clients authenticate; otherwise the MCP session (each client its
//! own allowance), and the local user (`stdio`) over stdio and where there is
//! no session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::decode::Target;
use super::share::{self, Flights, Joined};
use super::{Caller, Failure, FailureKind, invoke, shape};
use crate::config::{Config, ConnectorConfig};
use crate::limits::LimitLog;
use crate::rate::{RateLimits, Refused};

static CALLS_REFUSED: LimitLog = LimitLog::new("max_calls_per_session");
static RATE_REFUSED: LimitLog = LimitLog::new("limit");
static QUEUE_TIMED_OUT: LimitLog = LimitLog::new("max_in_flight");

/// What a shared call ends with, handed to every waiter.
pub(crate) type SharedOutcome = Result<rmcp::model::CallToolResult, Failure>;

/// The limits every session shares: the rate limits, the connectors'
/// concurrency caps and the calls in flight that identical ones may join.
/// Cheap to clone. The default limits nothing and shares read-only calls.
#[derive(Debug, Clone)]
pub struct CallLimits {
    rates: Arc<RateLimits>,
    caps: Arc<HashMap<String, ConnectorCap>>,
    flights: Option<Arc<Flights<SharedOutcome>>>,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            rates: Arc::new(RateLimits::new(Vec::new())),
            caps: Arc::default(),
            flights: Some(Arc::default()),
        }
    }
}

impl CallLimits {
    /// The limits `config` sets: its `[[limit]]` rules (shared through Redis
    /// with `limits_redis`, connected in the background until `shutdown`), the
    /// `max_in_flight` of its connectors, and in-flight sharing unless
    /// `share_in_flight` is off. Only a malformed Redis URL is an error.
    pub fn from_config(config: &Config, shutdown: &CancellationToken) -> Result<Self, String> {
        let mut rates = RateLimits::new(config.rate_limits.clone());
        if let Some(url) = &config.limits_redis {
            rates = rates.with_shared(crate::rate::shared::SharedStore::start(
                url,
                shutdown.child_token(),
            )?);
        }
        Ok(Self {
            rates: Arc::new(rates),
            caps: Arc::new(
                config
                    .connectors
                    .iter()
                    .filter_map(ConnectorCap::of)
                    .map(|cap| (cap.connector.clone(), cap))
                    .collect(),
            ),
            flights: config.share_in_flight.then(Arc::default),
        })
    }

    /// Counts the call of `tool` by `principal` against the rate limits; the
    /// failure naming the limit and the time to wait otherwise.
    pub async fn admit(&self, tool: &str, principal: &str) -> Result<(), Failure> {
        self.rates
            .check(tool, principal)
            .await
            .map_err(|refused| rate_refused(tool, principal, &refused))
    }

    /// A place among `connector`'s calls for one of `tool` when the
    /// connector has a cap (held until dropped), waiting for one if need be.
    pub async fn enter(
        &self,
        connector: &str,
        tool: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<OwnedSemaphorePermit>, Failure> {
        match self.caps.get(connector) {
            Some(cap) => cap.enter(tool, cancel).await.map(Some),
            None => Ok(None),
        }
    }

    /// How a call of `tool` (`entry`) by `principal` with `arguments` is
    /// shared with identical ones, when it may be.
    pub(crate) fn shared(
        &self,
        entry: &crate::catalog::ToolEntry,
        principal: &str,
        tool: &str,
        arguments: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<SharedCall<'_>> {
        let flights = self.flights.as_ref()?;
        if !share::shareable(entry) {
            return None;
        }
        Some(SharedCall {
            flights,
            key: share::key(principal, tool, arguments)?,
            cap: self.caps.get(&entry.connector).cloned(),
        })
    }
}

/// A read-only call that identical ones may join ([`share`]).
pub(crate) struct SharedCall<'a> {
    flights: &'a Arc<Flights<SharedOutcome>>,
    key: String,
    cap: Option<ConnectorCap>,
}

impl SharedCall<'_> {
    /// The result of the identical call running now, or of this one, run
    /// (within the connector's cap) in a task that every identical call
    /// arriving meanwhile waits for. This caller's `cancel` ends only its
    /// own wait; the connector's call is cancelled when no one waits.
    pub(crate) async fn join(
        self,
        tool: &str,
        target: Target,
        message: prost_reflect::DynamicMessage,
        traceparent: String,
        forwarded: tonic::metadata::MetadataMap,
        cancel: &CancellationToken,
    ) -> Result<rmcp::model::CallToolResult, Failure> {
        let (name, cap) = (tool.to_owned(), self.cap);
        let joined = self
            .flights
            .run(self.key, cancel, move |flight| async move {
                let _place = match &cap {
                    Some(cap) => Some(cap.enter(&name, &flight).await?),
                    None => None,
                };
                // The leader's trace has the connector's call; the others
                // share its result.
                let hop = crate::trace::Hop::start(&target.entry, &traceparent);
                let outcome = invoke::run(
                    &target,
                    message,
                    hop.traceparent(&traceparent),
                    &forwarded,
                    &flight,
                    None,
                )
                .await;
                hop.end(match &outcome {
                    Ok(_) => tonic::Code::Ok,
                    Err(invoke::Ended::Cancelled) => tonic::Code::Cancelled,
                    Err(invoke::Ended::Status(status)) => status.code(),
                });
                shape::result(&name, &target, outcome)
            })
            .await;
        match joined {
            Joined::Done { result, led } => {
                if !led {
                    crate::metrics::record_shared_call();
                }
                result
            }
            Joined::Cancelled => Err(Failure {
                kind: FailureKind::Cancelled,
                message: format!("{tool}: cancelled by the client"),
                retry_after: None,
            }),
        }
    }
}

/// The tool error of a call a rate limit refused.
fn rate_refused(tool: &str, principal: &str, refused: &Refused) -> Failure {
    let limit = &refused.limit;
    crate::metrics::record_rejection(limit.per.reason());
    RATE_REFUSED.hit(limit.describe(), "calls refused by a [[limit]] rate limit");
    let whose = match limit.per {
        crate::rate::Per::Principal => format!("for principal {principal:?} "),
        crate::rate::Per::Tool => format!("for the tool {tool} (all principals together) "),
        crate::rate::Per::Global => "for all principals together ".to_owned(),
    };
    let secs = refused.retry_after_secs();
    Failure {
        kind: FailureKind::Limited,
        message: format!(
            "{tool}: rate limited: the router's limit #{} of {} calls {whose}is used up ([[limit]] rate = \"{}\", burst = {}, per = \"{}\", tools = {:?}); retry after {secs} s",
            refused.rule,
            limit.rate,
            limit.rate,
            limit.burst,
            limit.per.as_str(),
            limit.tools,
        ),
        retry_after: Some(Duration::from_secs(secs)),
    }
}

/// Who a call counts against (see the module docs): the token's `sub` when
/// clients authenticate (`authenticated`), else the front door's session,
/// else the local user.
pub fn principal_key(caller: &Caller, authenticated: bool) -> String {
    let sub = caller.principal.as_ref().map(|p| p.sub.as_str());
    match (authenticated, sub, caller.client.as_deref()) {
        (true, Some(sub), _) => sub.to_owned(),
        (_, _, Some(client)) => client.to_owned(),
        (_, Some(sub), None) => sub.to_owned(),
        (_, None, None) => String::new(),
    }
}

/// A connector's concurrency cap (`max_in_flight`, `queue_timeout`).
#[derive(Debug, Clone)]
pub struct ConnectorCap {
    connector: String,
    permits: Arc<Semaphore>,
    max: usize,
    queue_timeout: Duration,
}

impl ConnectorCap {
    /// The cap `connector` is configured with, if any.
    pub fn of(connector: &ConnectorConfig) -> Option<Self> {
        let max = connector.max_in_flight?;
        Some(Self::new(&connector.name, max, connector.queue_timeout))
    }

    /// At most `max` calls to `connector` at once; others wait up to
    /// `queue_timeout` for one to end.
    pub fn new(connector: &str, max: usize, queue_timeout: Duration) -> Self {
        Self {
            connector: connector.to_owned(),
            permits: Arc::new(Semaphore::new(max)),
            max,
            queue_timeout,
        }
    }

    /// A place among the connector's calls for one of `tool`, held until
    /// dropped: at once when there is one, else after waiting up to
    /// `queue_timeout`; the failure when none came in time or `cancel` fired.
    pub async fn enter(
        &self,
        tool: &str,
        cancel: &CancellationToken,
    ) -> Result<OwnedSemaphorePermit, Failure> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waited = tokio::select! {
            () = cancel.cancelled() => {
                return Err(Failure {
                    kind: FailureKind::Cancelled,
                    message: format!("{tool}: cancelled by the client"),
                    retry_after: None,
                });
            }
            waited = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()) => waited,
        };
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out (the semaphore is never closed).
            _ => {
                let (connector, max) = (&self.connector, self.max);
                crate::metrics::record_rejection("max_in_flight");
                QUEUE_TIMED_OUT.hit(
                    format!("{connector}: {max}"),
                    "calls to a connector at its max_in_flight waited queue_timeout and were refused",
                );
                Err(Failure {
                    kind: FailureKind::Limited,
                    message: format!(
                        "{tool}: connector {connector} is at its limit of {max} concurrent calls (max_in_flight = {max}); this call waited {} s (queue_timeout) for one to finish: retry in a little while",
                        self.queue_timeout.as_secs_f64()
                    ),
                    retry_after: Some(Duration::from_secs(1)),
                })
            }
        }
    }
}

/// The call slots of one session: a permit per tool call in flight.
#[derive(Debug, Clone)]
pub struct CallSlots {
    permits: Arc<Semaphore>,
    max: usize,
}

impl CallSlots {
    /// Slots for at most `max` calls at once.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot for a call of `tool`, held until the permit is dropped; the
    /// failure to answer when all are taken.
    pub fn admit(&self, tool: &str) -> Result<OwnedSemaphorePermit, Failure> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            let max = self.max;
            crate::metrics::record_rejection("max_calls_per_session");
            CALLS_REFUSED.hit(
                max,
                "a session hit its limit of tool calls at once; calls refused",
            );
            Failure {
                kind: FailureKind::Limited,
                message: format!(
                    "{tool}: refused: this session already runs {max} tool calls at once, the most the router allows (max_calls_per_session = {max}); wait for one to finish, then call again"
                ),
                retry_after: None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_runs_at_most_its_slots_and_a_finished_call_frees_one() {
        let slots = CallSlots::new(2);
        let first = slots.admit("t").expect("first");
        let _second = slots.admit("t").expect("second");
        let refused = slots.admit("db_query").expect_err("third is refused");
        assert_eq!(refused.kind, FailureKind::Limited);
        assert!(
            refused
                .message
                .starts_with("db_query: refused: this session already runs 2 tool calls"),
            "{}",
            refused.message
        );
        assert!(refused.message.contains("max_calls_per_session = 2"));
        drop(first);
        assert!(slots.admit("t").is_ok(), "a finished call frees its slot");
    }

    #[tokio::test]
    async fn a_capped_connector_queues_calls_then_refuses_naming_its_limit() {
        let cap = ConnectorCap::new("jira", 2, Duration::from_millis(50));
        let never = CancellationToken::new();
        let first = cap.enter("jira_get", &never).await.expect("first");
        let _second = cap.enter("jira_get", &never).await.expect("second");
        let refused = cap
            .enter("jira_get", &never)
            .await
            .expect_err("third waits, then fails");
        assert_eq!(refused.kind, FailureKind::Limited);
        assert!(
            refused
                .message
                .contains("connector jira is at its limit of 2 concurrent calls"),
            "{}",
            refused.message
        );
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        // A waiting call gets the place a finished one frees.
        let waiting = {
            let cap = cap.clone();
            tokio::spawn(async move { cap.enter("jira_get", &CancellationToken::new()).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first);
        let _third = waiting.await.expect("task").expect("the freed place");
        // A waiting call the client cancels leaves the queue at once.
        let cancel = CancellationToken::new();
        cancel.cancel();
        let cancelled = cap.enter("jira_get", &cancel).await.expect_err("cancelled");
        assert_eq!(cancelled.kind, FailureKind::Cancelled);
    }

    #[tokio::test]
    async fn a_rate_refusal_says_which_limit_and_when_to_retry() {
        let config = Config {
            rate_limits: vec![
                crate::rate::LimitRule::new(
                    vec!["calc_*".into()],
                    crate::rate::Per::Principal,
                    "1/min",
                    Some(1),
                )
                .expect("rule"),
            ],
            ..Config::default()
        };
        let limits = CallLimits::from_config(&config, &CancellationToken::new()).expect("limits");
        limits.admit("calc_add", "alice").await.expect("first");
        let refused = limits.admit("calc_add", "alice").await.expect_err("second");
        assert_eq!(refused.kind, FailureKind::Limited);
        assert!(refused.message.starts_with("calc_add: rate limited: the router's limit #1 of 1/min calls for principal \"alice\""), "{}", refused.message);
        assert!(
            refused.message.contains("retry after 60 s"),
            "{}",
            refused.message
        );
        assert_eq!(refused.retry_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn the_principal_is_the_token_subject_else_the_session_else_the_local_user() {
        use crate::audit::FrontDoor;
        use crate::auth::Principal;
        let local = Caller::new(Some(Principal::local()), FrontDoor::Stdio, None);
        assert_eq!(principal_key(&local, false), "stdio");
        let session =
            Caller::new(Some(Principal::local()), FrontDoor::Http, None).with_client("session 1");
        assert_eq!(principal_key(&session, false), "session 1");
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), serde_json::json!("alice"));
        let alice = Principal::from_claims(claims).expect("principal");
        let token = Caller::new(Some(alice), FrontDoor::Http, None).with_client("session 2");
        assert_eq!(principal_key(&token, true), "alice");
    }
}
