//! The connector's one error type and its mapping to gRPC status codes.
//!
//! Every failure a tool can meet is a variant here, worded for the person (or
//! model) who called the tool: what went wrong and what to do about it. Slack's
//! own `ok: false` error codes are kept verbatim in the message so they can be
//! looked up, with a sentence of advice for the common ones. The gRPC code is
//! chosen in exactly one place, [`From<Error> for tonic::Status`].

use std::time::Duration;

use tonic::{Code, Status};

/// What went wrong in a Slack tool call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A token the call needs is not configured.
    #[error("the slack connector has no {variable} configured; {purpose}")]
    NotConfigured {
        /// The environment variable to set.
        variable: &'static str,
        /// What the token is for and where to get it.
        purpose: &'static str,
    },
    /// Search was asked of a bot token, which Slack does not allow.
    #[error(
        "searching Slack needs a user token (xoxp-...) with the search:read scope, but SLACK_USER_TOKEN holds a bot token; \
         Slack does not allow search with bot tokens: install the app for a user and set SLACK_USER_TOKEN to that user's token"
    )]
    SearchNeedsUserToken,
    /// An argument is missing or malformed.
    #[error("invalid argument {field}: {message}")]
    InvalidArgument {
        /// The request field at fault.
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The operator has not enabled writing tools.
    #[error(
        "{tool} changes Slack, and writes are disabled on this connector; the operator must set SLACK_ALLOW_WRITES=true to allow it"
    )]
    WritesDisabled {
        /// The refused tool.
        tool: &'static str,
    },
    /// A message would notify a whole channel, the workspace or a user group,
    /// and the operator has not allowed that.
    #[error(
        "{field} holds {mention}, which notifies {whom}; this connector does not post mentions that notify many people unless the operator sets SLACK_ALLOW_BROADCAST_MENTIONS=true. \
         Mention people by ID (<@U0123>, see slack_get_users); to write about such a mention without sending it, leave out the @ or write < as &lt;"
    )]
    BroadcastMention {
        /// The request field holding it (`text` or `blocks_json`).
        field: &'static str,
        /// The mention, quoted and cut.
        mention: String,
        /// Who it would notify.
        whom: &'static str,
    },
    /// The operator's channel policy refuses this channel.
    #[error("channel {channel} is not available through this connector: {reason}")]
    ChannelRefused {
        /// The channel as the caller named it.
        channel: String,
        /// Which list refused it.
        reason: &'static str,
    },
    /// A channel or user name matched nothing.
    #[error("{what}")]
    NameNotFound {
        /// What was looked for and how to find the right name.
        what: String,
    },
    /// Slack answered `ok: false`.
    #[error("{}", slack_message(method, code, needed.as_deref(), provided.as_deref()))]
    Slack {
        /// The Web API method, e.g. `chat.postMessage`.
        method: &'static str,
        /// Slack's error code, e.g. `not_in_channel`.
        code: String,
        /// For `missing_scope`: the scope(s) the method needs.
        needed: Option<String>,
        /// For `missing_scope`: the scopes the token has.
        provided: Option<String>,
    },
    /// Slack kept answering 429 until the retry budget was spent.
    #[error("{}", rate_limited_message(method, *retry_after))]
    RateLimited {
        /// The Web API method.
        method: &'static str,
        /// Slack's last `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Slack answered with an unexpected HTTP status.
    #[error("slack {method} answered HTTP {status}{}", http_advice(*status))]
    HttpStatus {
        /// The Web API method.
        method: &'static str,
        /// The HTTP status code.
        status: u16,
    },
    /// Slack could not be reached.
    #[error("cannot reach Slack for {method}: {message}; check the network and SLACK_API_BASE_URL")]
    Network {
        /// The Web API method.
        method: &'static str,
        /// What failed (never containing a token).
        message: String,
    },
    /// Slack did not answer in time.
    #[error("slack {method} did not answer within SLACK_TIMEOUT; retry later")]
    Timeout {
        /// The Web API method.
        method: &'static str,
    },
    /// Slack's answer was not the JSON the method documents.
    #[error("slack {method} returned an unexpected answer: {message}")]
    BadResponse {
        /// The Web API method.
        method: &'static str,
        /// What was wrong with it.
        message: String,
    },
}

impl Error {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    /// Slack's error code, for `ok: false` answers.
    pub fn slack_code(&self) -> Option<&str> {
        match self {
            Self::Slack { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The gRPC code for a Slack error code.
fn slack_status_code(code: &str) -> Code {
    match code {
        "channel_not_found" | "message_not_found" | "thread_not_found" | "user_not_found"
        | "users_not_found" | "no_such_subteam" => Code::NotFound,
        "missing_scope"
        | "not_allowed_token_type"
        | "cant_update_message"
        | "cant_delete_message"
        | "edit_window_closed"
        | "restricted_action"
        | "restricted_action_read_only_channel"
        | "restricted_action_thread_only_channel"
        | "restricted_action_non_threadable_channel"
        | "ekm_access_denied"
        | "access_denied"
        | "no_permission"
        | "team_access_not_granted"
        | "is_archived"
        | "channel_is_archived" => Code::PermissionDenied,
        "name_taken" => Code::AlreadyExists,
        "ratelimited" | "rate_limited" | "too_many_reactions" => Code::ResourceExhausted,
        "invalid_blocks"
        | "invalid_blocks_format"
        | "msg_too_long"
        | "no_text"
        | "too_many_attachments"
        | "invalid_name"
        | "invalid_name_specials"
        | "invalid_name_punctuation"
        | "invalid_name_maxlength"
        | "invalid_name_required"
        | "invalid_ts_latest"
        | "invalid_ts_oldest"
        | "invalid_cursor"
        | "invalid_limit"
        | "invalid_name_format"
        | "invalid_arguments"
        | "invalid_array_arg"
        | "invalid_arg_name"
        | "bad_timestamp"
        | "invalid_search_query" => Code::InvalidArgument,
        "fatal_error" | "internal_error" | "service_unavailable" | "request_timeout" => {
            Code::Unavailable
        }
        // not_in_channel, invalid_auth, not_authed, account_inactive, token_revoked,
        // token_expired, no_permission-like states the operator can fix, and codes
        // not listed here: the request was well-formed but Slack's state refuses it.
        _ => Code::FailedPrecondition,
    }
}

/// The message for an `ok: false` answer: Slack's code, then what to do.
fn slack_message(method: &str, code: &str, needed: Option<&str>, provided: Option<&str>) -> String {
    let advice = match code {
        "not_in_channel" => "the Slack app is not a member of this channel; invite it there (type /invite @<app name> in the channel) and try again".to_owned(),
        "channel_not_found" => "no channel with that ID is visible to the app; check the ID with slack_list_channels (private channels are only visible once the app is invited)".to_owned(),
        "missing_scope" => format!(
            "the token lacks the OAuth scope {}{}; add it under OAuth & Permissions in the Slack app settings and reinstall the app",
            needed.unwrap_or("that this method needs"),
            provided.map(|p| format!(" (it has: {p})")).unwrap_or_default()
        ),
        "invalid_auth" | "not_authed" => "Slack rejected the token; check SLACK_BOT_TOKEN (or SLACK_USER_TOKEN for search) holds a current token for this workspace".to_owned(),
        "token_revoked" | "token_expired" | "account_inactive" => "the token is no longer valid; reinstall the Slack app and update the connector's token".to_owned(),
        "not_allowed_token_type" => "this method does not accept this kind of token (search needs a user token in SLACK_USER_TOKEN)".to_owned(),
        "message_not_found" => "no message with that ts in this channel; check the ts (e.g. with slack_get_channel_history)".to_owned(),
        "thread_not_found" => "no thread with that ts in this channel; pass the parent message's ts".to_owned(),
        "user_not_found" | "users_not_found" => "no such user; check the ID with slack_get_users".to_owned(),
        "cant_update_message" | "cant_delete_message" => "the app can only edit or delete messages it posted itself".to_owned(),
        "edit_window_closed" => "the workspace no longer allows editing this message".to_owned(),
        "is_archived" | "channel_is_archived" => "the channel is archived; unarchive it in Slack first".to_owned(),
        "name_taken" => "a channel with that name already exists; pick another name or use the existing channel".to_owned(),
        "invalid_name" | "invalid_name_specials" | "invalid_name_punctuation" | "invalid_name_maxlength" | "invalid_name_required" => "channel names may contain only lowercase letters, digits, hyphens and underscores, at most 80 characters".to_owned(),
        "invalid_blocks" | "invalid_blocks_format" => "the Block Kit JSON was rejected; check it in Slack's Block Kit Builder".to_owned(),
        "msg_too_long" => "the message text is too long (Slack's limit is 40,000 characters)".to_owned(),
        "no_text" => "the message needs text".to_owned(),
        "ratelimited" | "rate_limited" => "Slack's rate limit was hit; retry in a minute".to_owned(),
        "restricted_action" | "restricted_action_read_only_channel" | "restricted_action_thread_only_channel" | "restricted_action_non_threadable_channel" => "the workspace's settings do not allow this action in this channel".to_owned(),
        "invalid_cursor" => "the page token is invalid or expired; start again without page_token".to_owned(),
        "fatal_error" | "internal_error" | "service_unavailable" | "request_timeout" => "Slack had an internal problem; retry later".to_owned(),
        _ => format!("see https://api.slack.com/methods/{method}#errors"),
    };
    format!("slack {method} failed with {code}: {advice}")
}

fn http_advice(status: u16) -> &'static str {
    match status {
        500.. => "; Slack is having trouble, retry later",
        404 | 405 => {
            "; check SLACK_API_BASE_URL points at the Slack Web API (https://slack.com/api)"
        }
        _ => "",
    }
}

fn rate_limited_message(method: &str, retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(
            "slack {method} is rate limited (HTTP 429) and retries did not get through; Slack asks to wait {} s before retrying",
            after.as_secs().max(1)
        ),
        None => format!(
            "slack {method} is rate limited (HTTP 429) and retries did not get through; retry in a minute"
        ),
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::NotConfigured { .. } | Error::SearchNeedsUserToken => Code::FailedPrecondition,
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::WritesDisabled { .. }
            | Error::ChannelRefused { .. }
            | Error::BroadcastMention { .. } => Code::PermissionDenied,
            Error::NameNotFound { .. } => Code::NotFound,
            Error::Slack { code, .. }
                if matches!(code.as_str(), "ratelimited" | "rate_limited") =>
            {
                return connector_kit::retry::upstream_rate_limited(error.to_string(), None);
            }
            Error::Slack { code, .. } => slack_status_code(code),
            // Marked, so the router says "upstream rate limited", not its own limit.
            Error::RateLimited { retry_after, .. } => {
                return connector_kit::retry::upstream_rate_limited(
                    error.to_string(),
                    *retry_after,
                );
            }
            Error::HttpStatus { status, .. } if *status >= 500 => Code::Unavailable,
            Error::HttpStatus { .. } => Code::FailedPrecondition,
            Error::Network { .. } | Error::BadResponse { .. } => Code::Unavailable,
            Error::Timeout { .. } => Code::DeadlineExceeded,
        };
        Status::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack(code: &str) -> Error {
        Error::Slack {
            method: "chat.postMessage",
            code: code.to_owned(),
            needed: None,
            provided: None,
        }
    }

    #[test]
    fn missing_scope_names_the_needed_scope() {
        let status = Status::from(Error::Slack {
            method: "conversations.history",
            code: "missing_scope".to_owned(),
            needed: Some("channels:history".to_owned()),
            provided: Some("chat:write".to_owned()),
        });
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(
            status.message().contains("missing_scope"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("channels:history"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("it has: chat:write"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn rate_limits_are_marked_as_the_upstreams_for_the_router() {
        let key = connector_kit::retry::UPSTREAM_RATE_LIMITED;
        let wait = |status: &Status| {
            status
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let exhausted = Status::from(Error::RateLimited {
            method: "conversations.history",
            retry_after: Some(Duration::from_secs(20)),
        });
        assert_eq!(exhausted.code(), Code::ResourceExhausted);
        assert_eq!(wait(&exhausted).as_deref(), Some("20"));
        let told = Status::from(slack("ratelimited"));
        assert_eq!(told.code(), Code::ResourceExhausted);
        assert_eq!(wait(&told).as_deref(), Some("0"));
        let other = Status::from(slack("too_many_reactions"));
        assert_eq!(other.code(), Code::ResourceExhausted);
        assert_eq!(wait(&other), None, "not a rate limit of the API");
    }

    #[test]
    fn slack_codes_map_to_deliberate_grpc_codes() {
        assert_eq!(
            Status::from(slack("channel_not_found")).code(),
            Code::NotFound
        );
        assert_eq!(
            Status::from(slack("not_in_channel")).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(slack("invalid_auth")).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(slack("invalid_blocks")).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            Status::from(slack("name_taken")).code(),
            Code::AlreadyExists
        );
        assert_eq!(Status::from(slack("fatal_error")).code(), Code::Unavailable);
    }

    #[test]
    fn unknown_slack_codes_point_to_the_method_docs() {
        let status = Status::from(slack("something_new"));
        assert!(
            status
                .message()
                .contains("https://api.slack.com/methods/chat.postMessage#errors"),
            "{}",
            status.message()
        );
    }
}
