//! The connector's errors, and their one mapping to gRPC status codes.

use tonic::{Code, Status};

/// What went wrong, in the caller's terms.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request field is missing or malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The language name is not one this connector knows.
    #[error("unknown language {given:?}; supported: {supported} (see ListLanguages)")]
    UnknownLanguage { given: String, supported: String },
    /// Neither `language` nor a `file_name` with a known extension was given.
    #[error(
        "cannot tell the language: give `language` (one of {supported}) or a `file_name` with a known extension"
    )]
    LanguageRequired { supported: String },
    /// The source is larger than the configured limit.
    #[error(
        "{what} is {size} bytes, over the limit of {limit} bytes (MAX_FILE_BYTES); analyse a smaller part"
    )]
    TooLarge { what: String, size: u64, limit: u64 },
    /// The code nests deeper than the metrics can safely follow.
    #[error(
        "{what} nests more than {limit} syntax-tree levels deep, the limit set by CODE_MAX_NESTING_DEPTH; analyse a less deeply nested part of it"
    )]
    TooDeep { what: String, limit: usize },
    /// Parsing took longer than `CODE_PARSE_TIMEOUT_SECS` (and was stopped).
    #[error(
        "{what} took longer than {secs} s to parse, the limit set by CODE_PARSE_TIMEOUT_SECS; the parser's error recovery is slow on heavily broken code, so fix its syntax errors or analyse a smaller part"
    )]
    ParseTimeout { what: String, secs: u64 },
    /// The content is not text.
    #[error("{0} looks like a binary file (it contains NUL bytes), not source code")]
    Binary(String),
    /// A requested path resolves outside the code root.
    #[error(
        "{path} is outside the code root {root}; give a path inside it (relative paths are resolved against it)"
    )]
    OutsideRoot { path: String, root: String },
    /// A requested path does not exist.
    #[error("{path} does not exist under the code root {root}")]
    NotFound { path: String, root: String },
    /// A resource URI this connector does not serve.
    #[error(
        "no resource {0}: this connector serves the files under its code root as file:///{{path}}, with the path relative to the root (e.g. file:///src/main.rs)"
    )]
    UnknownResource(String),
    /// A path under the root that the analyses skip: hidden, or excluded by
    /// .gitignore/.ignore rules.
    #[error(
        "{0} is hidden or excluded by .gitignore/.ignore rules under the code root, so it is not served (the analyses skip it too)"
    )]
    Ignored(String),
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Unreadable { path: String, message: String },
    /// An include/exclude glob is malformed.
    #[error("invalid glob {glob:?}: {message}")]
    InvalidGlob { glob: String, message: String },
    /// As many analyses run and wait as the connector allows.
    #[error(
        "the code analysis connector is busy: {running} analyses are running and {queued} more are waiting, the most MAX_CONCURRENT_ANALYSES and MAX_QUEUED_ANALYSES allow; retry in a moment"
    )]
    Busy { running: usize, queued: usize },
    /// A bug or a failed worker thread.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::InvalidArgument(_)
            | Error::UnknownLanguage { .. }
            | Error::LanguageRequired { .. }
            | Error::TooLarge { .. }
            | Error::TooDeep { .. }
            | Error::ParseTimeout { .. }
            | Error::Binary(_)
            | Error::InvalidGlob { .. } => Code::InvalidArgument,
            Error::OutsideRoot { .. } => Code::PermissionDenied,
            Error::NotFound { .. } | Error::UnknownResource(_) | Error::Ignored(_) => {
                Code::NotFound
            }
            Error::Unreadable { .. } => Code::FailedPrecondition,
            Error::Busy { .. } => Code::ResourceExhausted,
            Error::Internal(_) => Code::Internal,
        };
        Status::new(code, error.to_string())
    }
}
