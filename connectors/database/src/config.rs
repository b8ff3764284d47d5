//! Configuration, read once from the environment at start.
//!
//! | Variable | Default | Meaning |
//! | --- | --- | --- |
//! | `DATABASE_URL` | unset: embedded SQLite demo | `postgres://`, `mysql://`/`mariadb://` or `sqlite:` URL (secret) |
//! | `DB_DEMO_PATH` | `switchboard-demo.sqlite3` | file of the demo database, created on first start |
//! | `DB_ACCESS_MODE` | `read-only` | `read-only` or `read-write` (offers and enables Execute) |
//! | `DB_POOL_SIZE` | `5` | connections per pool |
//! | `DB_STATEMENT_TIMEOUT` | `30` | seconds one statement may run |
//! | `DB_CONNECT_TIMEOUT` | `5` | seconds to wait for a connection |
//! | `DB_MAX_ROWS` | `10000` | most rows one query may return (cap on `max_rows`) |
//! | `DB_MAX_RESULT_BYTES` | `2097152` | most bytes of values one result may hold, the first row included |
//! | `DB_MAX_VALUE_BYTES` | `1048576` | most bytes of one value (as JSON text); a longer value is cut and the result says so |
//! | `DB_ALLOW_PRIVILEGED` | `false` | serve read-only even when the database user can write (start-up check overridden, loud warning) |
//! | `DB_EXPLAIN_ANALYZE` | `true` | whether Explain may run the query (`analyze`) |
//! | `DB_ALLOW_FUNCTIONS` | empty | more functions a read-only query may call, comma-separated, case-insensitive (`name` or `schema.name`); hard-denied ones (sleep, locks, files, SQL as text …) fail at start |
//! | `DB_MAX_SQL_TOKENS` | `10000` | most tokens one read-only statement may have |
//! | `DB_HEALTH_INTERVAL` | `5` | seconds between database health checks |
//! | `CACHE_REDIS_URL` | unset: in-process cache | Redis URL for a cache shared by replicas (secret) |
//! | `CACHE_MAX_BYTES` | `67108864` | size of the in-process cache |
//! | `DB_SCHEMA_TTL` | `60` | seconds the router may cache a read of a table's schema resource (0: no caching) |
//! | `DB_SCHEMA_WATCH_INTERVAL` | `30` | seconds between checks of a subscribed table's schema for changes |
//! | `DB_TRACE_STATEMENTS` | `false` | put the SQL text in trace spans (`db.statement`); it can hold literal values |

use std::path::PathBuf;
use std::time::Duration;

use connector_kit::env::{self, EnvError};
use secrecy::{ExposeSecret, SecretString};

/// The smallest `DB_MAX_VALUE_BYTES`: room for a note-sized prefix of a value.
pub const MIN_VALUE_BYTES: usize = 64;

/// Whether the connector may change data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// Query, Explain and the schema tools only; Execute is refused.
    ReadOnly,
    /// Execute is available too.
    ReadWrite,
}

impl std::str::FromStr for AccessMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "read-only" | "readonly" | "ro" => Ok(Self::ReadOnly),
            "read-write" | "readwrite" | "rw" => Ok(Self::ReadWrite),
            other => Err(format!("expected read-only or read-write, got {other:?}")),
        }
    }
}

/// Which database to serve.
#[derive(Debug, Clone)]
pub enum Target {
    /// A database URL (`postgres://`, `mysql://`, `mariadb://`, `sqlite:`); may hold a password.
    Url(SecretString),
    /// The embedded SQLite demo database at this path, created when missing.
    Demo(PathBuf),
}

/// Everything the connector needs, built by [`Config::from_env`] or directly in tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database.
    pub target: Target,
    /// Read-only (default) or read-write.
    pub access_mode: AccessMode,
    /// Connections per pool.
    pub pool_size: u32,
    /// How long one statement may run.
    pub statement_timeout: Duration,
    /// How long to wait for a connection (also bounds each health check).
    pub connect_timeout: Duration,
    /// Cap on rows per result.
    pub max_rows: u32,
    /// Cap on the size of one result's values, in bytes (as JSON text).
    pub max_result_bytes: usize,
    /// Cap on the size of one value, in bytes (as JSON text); longer values are cut.
    pub max_value_bytes: usize,
    /// Serve in read-only mode even when the database user has write privileges.
    pub allow_privileged: bool,
    /// Whether Explain may run the query.
    pub explain_analyze: bool,
    /// Functions a read-only query may call beyond the engine's allow-list
    /// (lower case, checked by `guard::functions::parse_allowed`).
    pub allow_functions: std::collections::BTreeSet<String>,
    /// Most tokens one read-only statement may have.
    pub max_sql_tokens: usize,
    /// Time between health checks of the database.
    pub health_interval: Duration,
    /// Redis URL of the shared cache, or `None` for the in-process cache.
    pub cache_redis_url: Option<SecretString>,
    /// Capacity of the in-process cache in bytes.
    pub cache_max_bytes: u64,
    /// How long the router may serve a table's schema resource from its cache.
    pub schema_ttl: Duration,
    /// How often a subscribed table's schema is checked for changes.
    pub schema_watch_interval: Duration,
    /// Whether trace spans carry the SQL text (`db.statement`).
    pub trace_statements: bool,
}

impl Config {
    /// Defaults for `target` (the values documented above).
    pub fn new(target: Target) -> Self {
        Self {
            target,
            access_mode: AccessMode::ReadOnly,
            pool_size: 5,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_rows: 10_000,
            max_result_bytes: 2 * 1024 * 1024,
            max_value_bytes: 1024 * 1024,
            allow_privileged: false,
            explain_analyze: true,
            allow_functions: std::collections::BTreeSet::new(),
            max_sql_tokens: crate::guard::DEFAULT_MAX_TOKENS,
            health_interval: Duration::from_secs(5),
            cache_redis_url: None,
            cache_max_bytes: 64 * 1024 * 1024,
            schema_ttl: Duration::from_secs(60),
            schema_watch_interval: Duration::from_secs(30),
            trace_statements: false,
        }
    }

    /// Reads the environment; errors name the variable.
    pub fn from_env() -> Result<Self, EnvError> {
        let target = match env::var("DATABASE_URL") {
            Some(url) => Target::Url(SecretString::from(url)),
            None => Target::Demo(PathBuf::from(env::string(
                "DB_DEMO_PATH",
                "switchboard-demo.sqlite3",
            ))),
        };
        let defaults = Self::new(target);
        let config = Self {
            access_mode: env::parse("DB_ACCESS_MODE", defaults.access_mode)?,
            pool_size: env::parse("DB_POOL_SIZE", defaults.pool_size)?,
            statement_timeout: env::seconds("DB_STATEMENT_TIMEOUT", defaults.statement_timeout)?,
            connect_timeout: env::seconds("DB_CONNECT_TIMEOUT", defaults.connect_timeout)?,
            max_rows: env::parse("DB_MAX_ROWS", defaults.max_rows)?,
            max_result_bytes: env::parse("DB_MAX_RESULT_BYTES", defaults.max_result_bytes)?,
            max_value_bytes: env::parse("DB_MAX_VALUE_BYTES", defaults.max_value_bytes)?,
            allow_privileged: env::flag("DB_ALLOW_PRIVILEGED", defaults.allow_privileged)?,
            explain_analyze: env::flag("DB_EXPLAIN_ANALYZE", defaults.explain_analyze)?,
            allow_functions: crate::guard::functions::parse_allowed(&env::list(
                "DB_ALLOW_FUNCTIONS",
            ))
            .map_err(|e| EnvError::new("DB_ALLOW_FUNCTIONS", e))?,
            max_sql_tokens: env::parse("DB_MAX_SQL_TOKENS", defaults.max_sql_tokens)?,
            health_interval: env::seconds("DB_HEALTH_INTERVAL", defaults.health_interval)?,
            cache_redis_url: env::var("CACHE_REDIS_URL").map(SecretString::from),
            cache_max_bytes: env::parse("CACHE_MAX_BYTES", defaults.cache_max_bytes)?,
            schema_ttl: env::seconds("DB_SCHEMA_TTL", defaults.schema_ttl)?,
            schema_watch_interval: env::seconds(
                "DB_SCHEMA_WATCH_INTERVAL",
                defaults.schema_watch_interval,
            )?,
            trace_statements: env::flag("DB_TRACE_STATEMENTS", defaults.trace_statements)?,
            ..defaults
        };
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that cannot work, naming the variable.
    pub fn validate(&self) -> Result<(), EnvError> {
        if self.pool_size == 0 {
            return Err(EnvError::new("DB_POOL_SIZE", "must be at least 1"));
        }
        if self.max_rows == 0 {
            return Err(EnvError::new("DB_MAX_ROWS", "must be at least 1"));
        }
        let allowed: Vec<String> = self.allow_functions.iter().cloned().collect();
        crate::guard::functions::parse_allowed(&allowed)
            .map_err(|e| EnvError::new("DB_ALLOW_FUNCTIONS", e))?;
        if self.max_sql_tokens == 0 {
            return Err(EnvError::new("DB_MAX_SQL_TOKENS", "must be at least 1"));
        }
        if self.max_value_bytes < MIN_VALUE_BYTES {
            return Err(EnvError::new(
                "DB_MAX_VALUE_BYTES",
                format!("must be at least {MIN_VALUE_BYTES}"),
            ));
        }
        if self.statement_timeout.is_zero() {
            return Err(EnvError::new(
                "DB_STATEMENT_TIMEOUT",
                "must be more than 0 seconds",
            ));
        }
        if self.health_interval.is_zero() {
            return Err(EnvError::new(
                "DB_HEALTH_INTERVAL",
                "must be more than 0 seconds",
            ));
        }
        if self.schema_watch_interval.is_zero() {
            return Err(EnvError::new(
                "DB_SCHEMA_WATCH_INTERVAL",
                "must be more than 0 seconds",
            ));
        }
        if let Target::Url(url) = &self.target {
            let url = url.expose_secret();
            let known = [
                "postgres://",
                "postgresql://",
                "mysql://",
                "mariadb://",
                "sqlite:",
            ];
            if !known.iter().any(|scheme| url.starts_with(scheme)) {
                return Err(EnvError::new(
                    "DATABASE_URL",
                    "must start with postgres://, postgresql://, mysql://, mariadb:// or sqlite: (value not shown: it may hold a password)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_accept_common_spellings() {
        assert_eq!("read-only".parse(), Ok(AccessMode::ReadOnly));
        assert_eq!("READ_WRITE".parse(), Ok(AccessMode::ReadWrite));
        assert!("admin".parse::<AccessMode>().is_err());
    }

    #[test]
    fn a_value_cap_too_small_to_hold_a_prefix_is_refused_by_name() {
        let mut config = Config::new(Target::Demo(PathBuf::from("demo.sqlite3")));
        config.max_value_bytes = MIN_VALUE_BYTES - 1;
        let error = config.validate().expect_err("too small").to_string();
        assert!(error.contains("DB_MAX_VALUE_BYTES"), "{error}");
        config.max_value_bytes = MIN_VALUE_BYTES;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn an_unknown_url_scheme_is_refused_without_showing_the_url() {
        let config = Config::new(Target::Url(SecretString::from("oracle://u:hunter2@db/x")));
        let error = config
            .validate()
            .expect_err("oracle is not supported")
            .to_string();
        assert!(error.contains("DATABASE_URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
