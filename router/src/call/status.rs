//! What a connector's gRPC status means to the caller: the one table of status
//! codes. A tool call's failure becomes a tool result a model can act on
//! ([`describe_failure`]); a resource read's, prompt get's or completion's
//! becomes a protocol error ([`protocol_error`]). Both read the same row.

use rmcp::ErrorData as McpError;
use tonic::{Code, Status};

/// How a failure is answered when it must be a JSON-RPC error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `resource not found` (-32002).
    NotFound,
    /// `invalid params` (-32602): the request was wrong, the caller can fix it.
    InvalidParams,
    /// `internal error` (-32603): nothing the caller can change.
    Internal,
}

/// One row of the table: what to tell the caller, and how to answer it as a
/// protocol error.
struct Meaning {
    hint: &'static str,
    protocol: Protocol,
}

const fn row(hint: &'static str, protocol: Protocol) -> Meaning {
    Meaning { hint, protocol }
}

/// Whether a status reports a stream reset at the HTTP/2 level (RST_STREAM):
/// tonic gives it a code taken from the reset reason and this message. The
/// connection failed; no handler of the connector said anything.
fn is_reset(status: &Status) -> bool {
    status.message().starts_with("h2 protocol error")
}

/// Trailer metadata a connector puts on a `RESOURCE_EXHAUSTED` status when
/// its upstream API rate limited it (the kit's `upstream_rate_limited`): the
/// seconds the upstream asked to wait, `0` when it did not say.
pub const UPSTREAM_RATE_LIMITED: &str = "switchboard-upstream-rate-limited";

/// When `status` reports the connector's upstream rate limiting it: the wait
/// the upstream asked for (zero when it did not say).
pub fn upstream_rate_limited(status: &Status) -> Option<std::time::Duration> {
    if status.code() != Code::ResourceExhausted {
        return None;
    }
    let secs = status
        .metadata()
        .get(UPSTREAM_RATE_LIMITED)?
        .to_str()
        .ok()?;
    Some(std::time::Duration::from_secs(
        secs.trim().parse::<u64>().unwrap_or(0),
    ))
}

/// The table.
fn meaning(status: &Status) -> Meaning {
    use Protocol::{Internal, InvalidParams, NotFound};
    if upstream_rate_limited(status).is_some() {
        return row(
            "Upstream rate limited: the connector's upstream service (not the router) is refusing calls for now; wait before retrying, and make fewer calls.",
            Internal,
        );
    }
    match status.code() {
        Code::Internal | Code::Cancelled | Code::Unknown if is_reset(status) => row(
            "The connection to the connector broke off mid-call (the stream was reset; not a cancellation by you): retry in a little while; if it keeps happening, ask the operator to check the connector.",
            Internal,
        ),
        Code::InvalidArgument | Code::OutOfRange => row(
            "The arguments were rejected: correct them and call again.",
            InvalidParams,
        ),
        Code::NotFound => row(
            "The target does not exist: check the identifier (a list or search tool can find it).",
            NotFound,
        ),
        Code::AlreadyExists => row(
            "It already exists: use the existing one or pick another name.",
            Internal,
        ),
        Code::PermissionDenied => row(
            "Refused by policy or permissions; retrying will not help. Ask the operator if this access is needed.",
            InvalidParams,
        ),
        Code::Unauthenticated => row(
            "The connector's credentials were rejected by its upstream service; the operator must fix its configuration.",
            Internal,
        ),
        Code::FailedPrecondition => row(
            "The connector or the target is not in a state that allows this; see the message for what to change.",
            InvalidParams,
        ),
        Code::ResourceExhausted => row(
            "A rate limit or size limit was hit: wait before retrying, or ask for less.",
            Internal,
        ),
        Code::Unavailable => row(
            "The connector or its upstream is temporarily unavailable: retry in a little while.",
            Internal,
        ),
        Code::DeadlineExceeded => row("It took too long: retry, or narrow the request.", Internal),
        // The client's own cancellation is answered before any status is read,
        // so a Cancelled status means the connector's side ended the call (a
        // reset stream, a connector shutting down), not the caller.
        Code::Cancelled => row(
            "The connector ended the call before it finished (not a cancellation by you): retry; if it keeps happening, ask the operator to check the connector's logs.",
            Internal,
        ),
        Code::Internal => row(
            "The connector hit a bug while handling this call: retrying with the same arguments will probably fail the same way; report it to the operator (the connector's logs have the details).",
            Internal,
        ),
        Code::DataLoss => row(
            "The connector reported lost or corrupted data: do not retry blindly; ask the operator to check the connector and its upstream.",
            Internal,
        ),
        Code::Unimplemented => row(
            "The connector does not implement this method (it may be a different version): list the tools again.",
            Internal,
        ),
        Code::Aborted => row(
            "It conflicted with a concurrent change: fetch the current state and retry.",
            Internal,
        ),
        _ => row(
            "The connector failed unexpectedly; retrying may help, otherwise ask the operator to check its logs.",
            Internal,
        ),
    }
}

/// The HTTP status a REST caller gets for a connector's gRPC `code` on a tool
/// call: the caller's fault keeps its 4xx meaning, a connector that is down
/// or slow is 503 / 504, anything else the connector did is 502.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::FailedPrecondition => 422,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 502,
    }
}

/// The connector's own words (without terminal control characters, see
/// [`crate::content::terminal_safe`]), or a placeholder when it gave none.
fn details(status: &Status) -> std::borrow::Cow<'_, str> {
    match status.message().trim() {
        "" => "(no details)".into(),
        message => crate::content::terminal_safe(message),
    }
}

/// Turns a connector's gRPC status on a tool call into a message a model can
/// act on: what failed, the connector's words, and what to do.
pub fn describe_failure(tool: &str, connector: &str, status: &Status) -> String {
    let wait = match upstream_rate_limited(status) {
        Some(wait) if !wait.is_zero() => format!(" Retry after {} s.", wait.as_secs()),
        _ => String::new(),
    };
    format!(
        "{tool} failed: {}\n[connector {connector}, gRPC status {:?}] {}{wait}",
        details(status),
        status.code(),
        meaning(status).hint
    )
}

/// A connector's gRPC status on `what` (a read, a get, a completion) as a
/// JSON-RPC error a person can act on.
pub fn protocol_error(connector: &str, what: &str, status: &Status) -> McpError {
    let message = format!(
        "{what}: {} [connector {connector}, gRPC status {:?}] {}",
        details(status),
        status.code(),
        meaning(status).hint
    );
    match meaning(status).protocol {
        Protocol::NotFound => McpError::resource_not_found(message, None),
        Protocol::InvalidParams => McpError::invalid_params(message, None),
        Protocol::Internal => McpError::internal_error(message, None),
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::ErrorCode;

    use super::*;

    #[test]
    fn failures_name_tool_connector_and_what_to_do() {
        let text = describe_failure(
            "jira_get_issue",
            "jira",
            &Status::not_found("issue PROJ-9 does not exist"),
        );
        assert!(
            text.contains("jira_get_issue failed: issue PROJ-9 does not exist"),
            "{text}"
        );
        assert!(text.contains("connector jira"), "{text}");
        assert!(text.contains("check the identifier"), "{text}");
        let empty = describe_failure("t", "c", &Status::unavailable("  "));
        assert!(empty.contains("failed: (no details)"), "{empty}");
        // The connector's words cannot act on the client's terminal.
        let hidden = describe_failure("t", "c", &Status::internal("ok\u{1b}[8msecret"));
        assert!(hidden.contains("ok\u{241b}[8msecret"), "{hidden}");
        let error = protocol_error("c", "reading x", &Status::not_found("\u{1b}[2J"));
        assert!(error.message.contains("\u{241b}[2J"), "{}", error.message);
    }

    #[test]
    fn an_internal_status_says_the_connector_hit_a_bug() {
        let text = describe_failure(
            "calculator_divide",
            "calculator",
            &Status::internal("the handler panicked"),
        );
        assert!(text.contains("the handler panicked"), "{text}");
        assert!(text.contains("hit a bug"), "{text}");
        assert!(!text.contains("retrying may help"), "{text}");
    }

    #[test]
    fn a_reset_stream_is_not_called_a_cancellation_by_the_client() {
        let text = describe_failure(
            "calculator_sleep",
            "calculator",
            &Status::cancelled("stream reset by the connector"),
        );
        assert!(text.contains("not a cancellation by you"), "{text}");
        assert!(!text.contains("The call was cancelled"), "{text}");
        let unknown = describe_failure("t", "c", &Status::unknown("no grpc-status"));
        assert!(unknown.contains("failed unexpectedly"), "{unknown}");
        assert!(!unknown.contains("hit a bug"), "{unknown}");
        // An HTTP/2 reset is reported as Internal by tonic: not a bug of the
        // connector's handler, and not the client's cancellation either.
        let reset = describe_failure(
            "t",
            "c",
            &Status::internal(
                "h2 protocol error: stream error received: unspecific protocol error detected",
            ),
        );
        assert!(reset.contains("stream was reset"), "{reset}");
        assert!(reset.contains("not a cancellation by you"), "{reset}");
        assert!(!reset.contains("hit a bug"), "{reset}");
    }

    #[test]
    fn an_upstream_rate_limit_is_told_apart_from_other_resource_exhaustion() {
        let mut status =
            Status::resource_exhausted("Jira is rate limiting the connector (HTTP 429)");
        status.metadata_mut().insert(
            UPSTREAM_RATE_LIMITED,
            tonic::metadata::MetadataValue::from(30u64),
        );
        assert_eq!(
            upstream_rate_limited(&status),
            Some(std::time::Duration::from_secs(30))
        );
        let text = describe_failure("jira_search_issues", "jira", &status);
        assert!(text.contains("Upstream rate limited"), "{text}");
        assert!(text.contains("not the router"), "{text}");
        assert!(text.ends_with("Retry after 30 s."), "{text}");
        let plain = describe_failure("t", "c", &Status::resource_exhausted("too big"));
        assert!(!plain.contains("Upstream rate limited"), "{plain}");
        assert_eq!(
            upstream_rate_limited(&Status::resource_exhausted("x")),
            None
        );
        // Only on RESOURCE_EXHAUSTED.
        let mut other = Status::unavailable("down");
        other.metadata_mut().insert(
            UPSTREAM_RATE_LIMITED,
            tonic::metadata::MetadataValue::from(1u64),
        );
        assert_eq!(upstream_rate_limited(&other), None);
    }

    #[test]
    fn http_statuses_keep_the_callers_fault_apart_from_the_connectors() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::FailedPrecondition, 422),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 502),
            (Code::Unknown, 502),
            (Code::Unauthenticated, 502),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code), http, "{code:?}");
        }
    }

    #[test]
    fn protocol_errors_follow_the_same_table() {
        let cases = [
            (Status::not_found("gone"), ErrorCode::RESOURCE_NOT_FOUND),
            (Status::invalid_argument("bad"), ErrorCode::INVALID_PARAMS),
            (Status::permission_denied("no"), ErrorCode::INVALID_PARAMS),
            (Status::failed_precondition("no"), ErrorCode::INVALID_PARAMS),
            (Status::unavailable("down"), ErrorCode::INTERNAL_ERROR),
            (Status::internal("bug"), ErrorCode::INTERNAL_ERROR),
        ];
        for (status, code) in cases {
            let error = protocol_error("docs", "reading x failed", &status);
            assert_eq!(error.code, code, "{status:?}");
            assert!(
                error
                    .message
                    .starts_with(&format!("reading x failed: {}", status.message())),
                "{}",
                error.message
            );
            assert!(error.message.contains("[connector docs, gRPC status"));
            assert!(error.message.contains(meaning(&status).hint));
        }
    }
}
