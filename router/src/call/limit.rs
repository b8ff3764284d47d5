//! The limit stage: whether a call may start now. Today one bound: the tool
//! calls a session runs at once (`max_calls_per_session`), refused at once when
//! hit (a client that floods one session cannot queue work).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Failure, FailureKind};
use crate::limits::LimitLog;

static CALLS_REFUSED: LimitLog = LimitLog::new("max_calls_per_session");

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
}
