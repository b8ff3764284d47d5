//! Notifications of a session that leave outside a request's own answer:
//! a tool call's progress, logs and questions as they come, and
//! notifications that belong to no request stream (with a session store,
//! through the replica holding the client's listen stream).

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

use crate::call::Notice;

/// Where a session's notifications that belong to no request stream go
/// (rmcp sends them on the listen stream): this replica's copy of the
/// session, or with a session store the replica that holds the client's
/// listen stream.
#[derive(Clone)]
pub(super) struct Notifier {
    pub(super) peer: Peer<RoleServer>,
    pub(super) shared: Option<(crate::session::SharedSessions, String)>,
}

impl Notifier {
    pub(super) async fn send(&self, notification: rmcp::model::ServerNotification) -> bool {
        let peer = self.peer.clone();
        let local = |message: rmcp::model::ServerJsonRpcMessage| async move {
            match message {
                rmcp::model::JsonRpcMessage::Notification(n) => {
                    peer.send_notification(n.notification).await.is_ok()
                }
                _ => false,
            }
        };
        let message = rmcp::model::ServerJsonRpcMessage::notification(notification);
        match &self.shared {
            Some((shared, id)) => shared.notify(id, message, local).await,
            None => local(message).await,
        }
    }
}

/// Sends one log notification (MCP logging is deprecated by SEP-2577 in rmcp,
/// but clients of the current protocol versions use it).
async fn send_log(notifier: &Notifier, level: &str, logger: String, data: Json) -> bool {
    match log_notification(level, logger, data) {
        Some(notification) => notifier.send(notification).await,
        None => true,
    }
}

/// A progress notification of the request that sent `token`.
pub(crate) fn progress_notification(
    token: ProgressToken,
    progress: f64,
    total: Option<f64>,
    message: Option<String>,
) -> rmcp::model::ServerNotification {
    let mut param = ProgressNotificationParam::new(token, progress);
    if let Some(total) = total {
        param = param.with_total(total);
    }
    if let Some(message) = message {
        param = param.with_message(crate::content::terminal_safe(&message).into_owned());
    }
    rmcp::model::ServerNotification::ProgressNotification(rmcp::model::ProgressNotification::new(
        param,
    ))
}

/// A log notification (`None` for a level MCP does not know). A log line
/// given as text, and the logger's name, carry no terminal control
/// characters (clients print them); structured data stays as it is.
#[allow(deprecated)]
pub(crate) fn log_notification(
    level: &str,
    logger: String,
    data: Json,
) -> Option<rmcp::model::ServerNotification> {
    let data = match data {
        Json::String(text) => Json::String(crate::content::terminal_safe(&text).into_owned()),
        other => other,
    };
    let mut param = json!({ "level": level, "data": data });
    if !logger.is_empty() {
        param["logger"] = json!(crate::content::terminal_safe(&logger));
    }
    let param =
        serde_json::from_value::<rmcp::model::LoggingMessageNotificationParam>(param).ok()?;
    Some(rmcp::model::ServerNotification::LoggingMessageNotification(
        rmcp::model::LoggingMessageNotification::new(param),
    ))
}

/// Sends a tool call's notices to the client as they come, until the call
/// closes its queue or the client is gone. Questions are answered beside the
/// stream, which goes on meanwhile. Runs in the call's own task (not
/// spawned), so rmcp sends its questions on the call's stream.
pub(super) async fn forward_notices(
    notifier: Notifier,
    token: Option<ProgressToken>,
    mut notices: mpsc::Receiver<Notice>,
) {
    let peer = notifier.peer.clone();
    let mut questions = futures::stream::FuturesUnordered::new();
    loop {
        let notice = tokio::select! {
            notice = notices.recv() => notice,
            Some(()) = futures::StreamExt::next(&mut questions) => continue,
        };
        // The call is over: questions still open are moot.
        let Some(notice) = notice else { return };
        let sent = match notice {
            Notice::Progress {
                progress,
                total,
                message,
            } => {
                let Some(token) = token.clone() else { continue };
                let progress = progress_notification(token, progress, total, message);
                peer.send_notification(progress).await.is_ok()
            }
            Notice::Log {
                level,
                logger,
                data,
            } => send_log(&notifier, level, logger, data).await,
            Notice::Ask { ask, upstream } => {
                let peer = peer.clone();
                questions.push(async move {
                    crate::interact::answer(&peer, &upstream, ask).await;
                });
                true
            }
        };
        if !sent {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_and_log_text_reach_clients_without_terminal_controls() {
        let progress = progress_notification(
            ProgressToken(rmcp::model::NumberOrString::Number(1)),
            1.0,
            None,
            Some("50%\u{1b}[2K".into()),
        );
        let shown = serde_json::to_string(&progress).expect("JSON");
        assert!(shown.contains("50%\u{241b}[2K"), "{shown}");
        let log = log_notification("info", "db\u{7}".into(), json!("row\u{1b}[8m hidden"))
            .expect("a known level");
        let shown = serde_json::to_string(&log).expect("JSON");
        assert!(
            shown.contains("row\u{241b}[8m hidden") && shown.contains("db\u{2407}"),
            "{shown}"
        );
        // Structured data is the connector's data: JSON escapes it.
        let log = log_notification("info", String::new(), json!({"raw": "\u{1b}"})).expect("known");
        assert!(
            serde_json::to_string(&log)
                .expect("JSON")
                .contains("\\u001b")
        );
    }
}
