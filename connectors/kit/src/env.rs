//! Typed environment variables.
//!
//! Connectors read their environment once, in `main`, into a plain config struct
//! (`Config::from_env`). These helpers make every malformed value fail at start
//! with a message that names the variable and says what was expected.

use std::str::FromStr;
use std::time::Duration;

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {message}")]
pub struct EnvError {
    /// The variable's name.
    pub name: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl EnvError {
    /// An error about variable `name`.
    pub fn new(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

/// The variable's value, or `None` when it is unset or empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable's value, or `default` when it is unset or empty.
pub fn string(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_owned())
}

/// The variable parsed as `T`, or `default` when unset.
pub fn parse<T>(name: &str, default: T) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| EnvError::new(name, format!("cannot parse {raw:?}: {e}"))),
    }
}

/// A count or size that must be at least 1 (a bound of 0 would refuse
/// everything), or `default` when unset.
pub fn at_least_one(name: &str, default: usize) -> Result<usize, EnvError> {
    match parse(name, default)? {
        0 => Err(EnvError::new(name, "must be at least 1")),
        n => Ok(n),
    }
}

/// A boolean (`true/false`, `1/0`, `yes/no`, `on/off`), or `default` when unset.
pub fn flag(name: &str, default: bool) -> Result<bool, EnvError> {
    match var(name) {
        None => Ok(default),
        Some(raw) => parse_flag(&raw)
            .ok_or_else(|| EnvError::new(name, format!("expected true or false, got {raw:?}"))),
    }
}

/// A duration in seconds (fractions allowed, e.g. `0.5`), or `default` when unset.
pub fn seconds(name: &str, default: Duration) -> Result<Duration, EnvError> {
    match var(name) {
        None => Ok(default),
        Some(raw) => parse_seconds(&raw).ok_or_else(|| {
            EnvError::new(
                name,
                format!("expected a number of seconds such as 30 or 0.5, got {raw:?}"),
            )
        }),
    }
}

/// A comma-separated list with blanks removed; empty when unset.
pub fn list(name: &str) -> Vec<String> {
    var(name)
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_flag(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_seconds(raw: &str) -> Option<Duration> {
    let secs: f64 = raw.trim().trim_end_matches('s').parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_accept_common_spellings() {
        assert_eq!(parse_flag("TRUE"), Some(true));
        assert_eq!(parse_flag(" off "), Some(false));
        assert_eq!(parse_flag("maybe"), None);
    }

    #[test]
    fn seconds_accept_fractions_and_a_unit_suffix() {
        assert_eq!(parse_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("soon"), None);
    }
}
