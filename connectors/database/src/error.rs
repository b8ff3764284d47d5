//! The connector's one error type and its mapping to gRPC status codes.
//!
//! Every failure the agent can see goes through [`Error`] and is turned into a
//! [`tonic::Status`] in exactly one place ([`From<Error> for Status`]). Messages
//! say what failed and what to do; they never contain the database URL or its
//! password (sqlx errors are rendered without connection strings, and the URL is
//! only ever held as a secret).

use tonic::{Code, Status};

/// What went wrong, in the caller's terms.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (empty SQL, bad parameter, unknown option).
    #[error("{0}")]
    InvalidArgument(String),
    /// The read-only guard refused the statement; the text names the reason.
    #[error("refused: {0}")]
    Refused(String),
    /// The operation is not allowed by the operator's configuration.
    #[error("{0}")]
    NotAllowed(String),
    /// A schema, table or other named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database rejected the statement (syntax, unknown column, a
    /// read-only transaction refusing a write, a constraint ...).
    #[error("the database rejected the statement: {0}")]
    Database(String),
    /// The database refused the statement for lack of privileges.
    #[error("the database denied permission: {0}")]
    DatabasePermission(String),
    /// The statement ran longer than the statement timeout and was cancelled.
    #[error(
        "the statement was cancelled by the statement timeout (DB_STATEMENT_TIMEOUT, {seconds} s); narrow it with filters, LIMIT or an index (see Explain)"
    )]
    Timeout {
        /// The timeout that was hit, in seconds (0 when the database did not say).
        seconds: f64,
    },
    /// The database cannot be reached or the pool has no free connection.
    #[error("the database is unavailable: {0}; retry later")]
    Unavailable(String),
    /// A value in the result could not be represented.
    #[error("cannot read column {column:?}: {message}")]
    Decode {
        /// The column's name.
        column: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// A short, fixed name of the kind of error, for `error.type` on spans
    /// (never the message: it can quote the statement).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Refused(_) => "refused",
            Error::NotAllowed(_) => "not_allowed",
            Error::NotFound(_) => "not_found",
            Error::Database(_) => "database",
            Error::DatabasePermission(_) => "permission_denied",
            Error::Timeout { .. } => "timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Decode { .. } => "decode",
        }
    }

    /// Whether the connection broke under the operation (an I/O error): a read
    /// may be tried once more on another connection.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(self, Error::Unavailable(message) if message.starts_with(CONNECTION_FAILED))
    }

    /// Classifies a sqlx error: connection trouble is `Unavailable`, server-side
    /// refusals keep the database's own message (and SQLSTATE) so the agent can
    /// fix its SQL.
    pub fn from_sqlx(error: sqlx::Error) -> Self {
        if is_timeout(&error) {
            return Error::Timeout { seconds: 0.0 };
        }
        match error {
            sqlx::Error::RowNotFound => Error::NotFound("no such object".to_owned()),
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let message = if code.is_empty() {
                    db.message().to_owned()
                } else {
                    format!("{} (SQLSTATE {code})", db.message())
                };
                // 42501: insufficient_privilege (PostgreSQL); 1142/1227/1044: MySQL access denied.
                if code == "42501" || (code == "42000" && db.message().contains("denied")) {
                    Error::DatabasePermission(message)
                } else {
                    Error::Database(message)
                }
            }
            sqlx::Error::PoolTimedOut => Error::Unavailable(
                "no database connection became free in time (all busy or the database is down)"
                    .to_owned(),
            ),
            sqlx::Error::PoolClosed => {
                Error::Unavailable("the connection pool is closed".to_owned())
            }
            sqlx::Error::Io(e) => Error::Unavailable(format!("{CONNECTION_FAILED}{e}")),
            sqlx::Error::Tls(e) => Error::Unavailable(format!("TLS failed: {e}")),
            sqlx::Error::Protocol(e) => Error::Unavailable(format!("protocol error: {e}")),
            sqlx::Error::WorkerCrashed => {
                Error::Unavailable("the SQLite worker stopped".to_owned())
            }
            sqlx::Error::ColumnDecode { index, source } => Error::Decode {
                column: index,
                message: source.to_string(),
            },
            sqlx::Error::Configuration(e) => Error::Unavailable(format!("configuration: {e}")),
            other => Error::Database(other.to_string()),
        }
    }
}

/// How the message of a broken connection starts.
const CONNECTION_FAILED: &str = "connection failed: ";

/// True when the database cancelled the statement for running too long:
/// PostgreSQL `statement_timeout` (SQLSTATE 57014), MariaDB `max_statement_time`
/// (70100 / error 1969), MySQL `max_execution_time` (error 3024), or SQLite
/// interrupted by the connector's progress handler.
pub fn is_timeout(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            code == "57014"
                || code == "70100"
                || code == "HY000" && db.message().contains("maximum statement execution time")
                || db.message().contains("max_statement_time")
                || db.message() == "interrupted"
        }
        _ => false,
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::from_sqlx(error)
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::InvalidArgument(_)
            | Error::Refused(_)
            | Error::Database(_)
            | Error::Decode { .. } => Code::InvalidArgument,
            Error::NotAllowed(_) | Error::DatabasePermission(_) => Code::PermissionDenied,
            Error::NotFound(_) => Code::NotFound,
            Error::Timeout { .. } => Code::DeadlineExceeded,
            Error::Unavailable(_) => Code::Unavailable,
        };
        Status::new(code, error.to_string())
    }
}
