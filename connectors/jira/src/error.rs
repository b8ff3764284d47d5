//! What can go wrong in a Jira tool call, and the one place where it becomes a
//! gRPC status.
//!
//! Messages are written for the person (or model) reading the tool result: what
//! failed and what to do. They never contain credentials: Jira's answers are
//! quoted, the connector's own request headers never are.

use tonic::{Code, Status};

/// A failed tool call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `JIRA_BASE_URL` is not set.
    #[error(
        "the Jira connector is not configured: set JIRA_BASE_URL and either JIRA_EMAIL + JIRA_API_TOKEN (Jira Cloud) or JIRA_PAT (Jira Data Center), then restart it"
    )]
    NotConfigured,
    /// A write tool while `JIRA_READ_ONLY=true`.
    #[error(
        "{tool} changes Jira and the connector is read-only (JIRA_READ_ONLY=true); only reading tools are available"
    )]
    ReadOnly {
        /// The refused tool.
        tool: &'static str,
    },
    /// A project outside `JIRA_PROJECTS`.
    #[error(
        "project {project} is outside the projects this connector may use ({allowed}, set by JIRA_PROJECTS)"
    )]
    ProjectNotAllowed {
        /// The refused project key (or what was given).
        project: String,
        /// The allowed keys, comma-separated.
        allowed: String,
    },
    /// An issue asked for by a key of an allowed project that Jira now files
    /// under another project (moved, or its project renamed).
    #[error(
        "issue {key} is no longer in a project this connector may use ({allowed}, set by JIRA_PROJECTS): Jira has moved it to another project"
    )]
    IssueMovedOut {
        /// The key as asked for.
        key: String,
        /// The allowed keys, comma-separated.
        allowed: String,
    },
    /// A bad argument, named.
    #[error("invalid argument `{field}`: {message}")]
    InvalidArgument {
        /// The request field.
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The requested transition does not exist for the issue now.
    #[error("issue {key} has no transition {requested:?} now; available transitions: {available}")]
    NoSuchTransition {
        /// The issue.
        key: String,
        /// What was asked for.
        requested: String,
        /// `"Name" (id N) → Status`, comma-separated, or `none`.
        available: String,
    },
    /// A prompt (or other MCP reference) this connector does not have.
    #[error("{what} does not exist in the Jira connector; {hint}")]
    Unknown {
        /// What was asked for, e.g. `prompt "triage"`.
        what: String,
        /// What exists instead.
        hint: String,
    },
    /// Jira answered 401.
    #[error(
        "Jira rejected the connector's credentials (HTTP 401): check JIRA_EMAIL and JIRA_API_TOKEN (Cloud) or JIRA_PAT (Data Center), and that the token has not expired or been revoked"
    )]
    Unauthorized,
    /// Jira answered 403.
    #[error(
        "Jira refused {what} (HTTP 403): the connector's account lacks the permission for it{detail}; ask a Jira admin to grant it"
    )]
    Forbidden {
        /// What was attempted.
        what: String,
        /// Jira's own words, prefixed with ": ", or empty.
        detail: String,
    },
    /// Jira answered 404.
    #[error(
        "{what} was not found (HTTP 404){detail}: check the key, and that the connector's account can see it"
    )]
    NotFound {
        /// What was looked for.
        what: String,
        /// Jira's own words, prefixed with ": ", or empty.
        detail: String,
    },
    /// Jira rejected the request (400, 409, 413, 422) with its reasons.
    #[error("Jira rejected {what} (HTTP {status}): {reasons}")]
    Rejected {
        /// What was attempted.
        what: String,
        /// The HTTP status.
        status: u16,
        /// Jira's `errorMessages` and `errors` (field: message), joined.
        reasons: String,
    },
    /// Still rate limited after the retries.
    #[error(
        "Jira is rate limiting the connector (HTTP 429) and retries within the time budget did not help{retry_after}; try again later"
    )]
    RateLimited {
        /// ", it asked to wait N s" or empty.
        retry_after: String,
        /// The wait Jira asked for, if it said.
        wait: Option<std::time::Duration>,
    },
    /// Jira is down or unreachable.
    #[error("Jira is unavailable for {what}: {reason}; try again later")]
    Unavailable {
        /// What was attempted.
        what: String,
        /// The HTTP status or the connection error.
        reason: String,
    },
    /// The request to Jira timed out.
    #[error("Jira did not answer {what} within {seconds} s (JIRA_TIMEOUT_SECS)")]
    Timeout {
        /// What was attempted.
        what: String,
        /// The timeout.
        seconds: u64,
    },
    /// Jira answered with something the connector cannot read.
    #[error("unexpected answer from Jira to {what}: {reason}")]
    UnexpectedResponse {
        /// What was attempted.
        what: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl Error {
    /// An invalid-argument error.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    /// The gRPC code for this error, chosen by whose move it is next.
    pub fn code(&self) -> Code {
        match self {
            // The operator must configure or fix the connector.
            Self::NotConfigured | Self::Unauthorized => Code::FailedPrecondition,
            // Policy: the request is understood and refused.
            Self::ReadOnly { .. }
            | Self::ProjectNotAllowed { .. }
            | Self::IssueMovedOut { .. }
            | Self::Forbidden { .. } => Code::PermissionDenied,
            // The caller must change its arguments.
            Self::InvalidArgument { .. }
            | Self::NoSuchTransition { .. }
            | Self::Rejected { .. } => Code::InvalidArgument,
            Self::NotFound { .. } | Self::Unknown { .. } => Code::NotFound,
            Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Timeout { .. } => Code::DeadlineExceeded,
            Self::UnexpectedResponse { .. } => Code::Internal,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match &error {
            // Marked, so the router says "upstream rate limited", not its own limit.
            Error::RateLimited { wait, .. } => {
                connector_kit::retry::upstream_rate_limited(error.to_string(), *wait)
            }
            _ => Status::new(error.code(), error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_whose_move_it_is() {
        assert_eq!(
            Status::from(Error::NotConfigured).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(Error::ReadOnly {
                tool: "jira_create_issue"
            })
            .code(),
            Code::PermissionDenied
        );
        assert_eq!(
            Status::from(Error::invalid("key", "empty")).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            Status::from(Error::RateLimited {
                retry_after: String::new(),
                wait: None,
            })
            .code(),
            Code::ResourceExhausted
        );
        let marked = Status::from(Error::RateLimited {
            retry_after: ", it asked to wait 30 s".into(),
            wait: Some(std::time::Duration::from_secs(30)),
        });
        assert_eq!(
            marked
                .metadata()
                .get(connector_kit::retry::UPSTREAM_RATE_LIMITED)
                .and_then(|v| v.to_str().ok()),
            Some("30"),
            "the router can tell an upstream rate limit apart"
        );
    }

    #[test]
    fn not_configured_names_the_variables_to_set() {
        let message = Status::from(Error::NotConfigured).message().to_owned();
        for var in ["JIRA_BASE_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_PAT"] {
            assert!(message.contains(var), "{message}");
        }
    }
}
