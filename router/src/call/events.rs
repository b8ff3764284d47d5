//! What a running call tells its caller before the result: progress, logs, and
//! questions for the client (elicitation, sampling). The invoke stage pushes
//! them into a bounded queue (`notification_queue`); the front door drains it
//! into its wire format (MCP notifications; SSE events for REST). When the
//! queue is full, progress and logs are dropped and counted; a question is
//! handed back, to be refused to the connector so it does not wait for nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value as Json;
use switchboard_proto::mcp::v1 as pb;
use tokio::sync::mpsc;

use crate::limits::LimitLog;
use crate::upstream::Upstream;

static NOTIFICATIONS_DROPPED: LimitLog = LimitLog::new("notification_queue");

/// Something to tell the client while a call runs.
#[derive(Debug)]
pub enum Notice {
    /// Progress of the call (MCP `notifications/progress`).
    Progress {
        /// How far along.
        progress: f64,
        /// Out of how much, when known.
        total: Option<f64>,
        /// What is happening.
        message: Option<String>,
    },
    /// A log message of the connector (MCP `notifications/message`).
    Log {
        /// Its MCP level name.
        level: &'static str,
        /// The logger, empty for none.
        logger: String,
        /// The message.
        data: Json,
    },
    /// A question for the client, to be answered to `upstream`.
    Ask {
        /// The question.
        ask: pb::ClientRequest,
        /// The connector waiting for the answer.
        upstream: Upstream,
    },
}

/// Where a call's notices go: a bounded queue, with what the caller wants of
/// them (progress only when it asked for it; logs from its level up).
#[derive(Debug)]
pub struct Notices {
    tx: Option<mpsc::Sender<Notice>>,
    capacity: usize,
    dropped: AtomicUsize,
    /// The caller asked for progress (an MCP progress token).
    pub progress: bool,
    /// The least severe log level the caller wants ([`crate::content::severity`]).
    pub min_log_level: u8,
}

impl Notices {
    /// A queue of `capacity` notices and the receiving end the front door drains.
    pub fn new(
        capacity: usize,
        progress: bool,
        min_log_level: u8,
    ) -> (Self, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let queue = Self {
            tx: Some(tx),
            capacity,
            dropped: AtomicUsize::new(0),
            progress,
            min_log_level,
        };
        (queue, rx)
    }

    /// Queues `notice`; a question that cannot be queued comes back with why.
    pub fn push(&self, notice: Notice) -> Option<(pb::ClientRequest, Upstream, String)> {
        let tx = self.tx.as_ref()?;
        let (notice, why) = match tx.try_send(notice) {
            Ok(()) => return None,
            Err(mpsc::error::TrySendError::Full(notice)) => (
                notice,
                format!(
                    "the router's notification queue for this call is full (notification_queue = {}): the question was not put to the client",
                    self.capacity
                ),
            ),
            Err(mpsc::error::TrySendError::Closed(notice)) => (
                notice,
                "the client is gone: the question was not put to it".to_owned(),
            ),
        };
        match notice {
            Notice::Ask { ask, upstream } => Some((ask, upstream, why)),
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Ends the queue (the front door's drain then finishes); how many notices
    /// were dropped (warned about, at most once a while).
    pub fn close(mut self) -> usize {
        self.tx = None;
        let dropped = self.dropped.into_inner();
        if dropped > 0 {
            NOTIFICATIONS_DROPPED.hit(
                self.capacity,
                "a slow client lost progress or log notifications of a tool call",
            );
            tracing::debug!(dropped, "notifications dropped");
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::ConnectorConfig;

    fn progress(n: f64) -> Notice {
        Notice::Progress {
            progress: n,
            total: None,
            message: None,
        }
    }

    fn upstream() -> Upstream {
        let config = ConnectorConfig::new("calc", "http://127.0.0.1:1");
        Upstream::new(config, Duration::from_secs(60), CancellationToken::new())
            .expect("a connector on an IP address")
    }

    fn ask(id: &str) -> Notice {
        Notice::Ask {
            ask: pb::ClientRequest {
                id: id.to_owned(),
                request: None,
            },
            upstream: upstream(),
        }
    }

    #[tokio::test]
    async fn a_full_notice_queue_drops_progress_and_hands_questions_back() {
        let (queue, mut rx) = Notices::new(2, true, 0);
        assert!(queue.push(progress(1.0)).is_none());
        assert!(queue.push(progress(2.0)).is_none());
        for n in 3..1000 {
            assert!(queue.push(progress(f64::from(n))).is_none());
        }
        let (back, to, why) = queue.push(ask("q-1")).expect("a question is never dropped");
        assert_eq!(back.id, "q-1");
        assert_eq!(to.name(), "calc");
        assert!(why.contains("notification_queue = 2"), "{why}");
        // What was queued is what the client gets, in order.
        assert!(matches!(rx.try_recv(), Ok(Notice::Progress { progress, .. }) if progress == 1.0));
        assert!(queue.push(progress(1000.0)).is_none(), "room again");
        assert_eq!(queue.close(), 997, "997 progress notices did not fit");
    }

    #[tokio::test]
    async fn a_question_for_a_client_that_is_gone_is_handed_back() {
        let (queue, rx) = Notices::new(4, false, 0);
        drop(rx);
        let (_, _, why) = queue.push(ask("q-2")).expect("handed back");
        assert!(why.contains("client is gone"), "{why}");
    }
}
