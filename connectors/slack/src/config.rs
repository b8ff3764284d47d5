//! The connector's configuration, read once from the environment in `main`.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `SLACK_BOT_TOKEN` | unset | Bot token (`xoxb-...`) used by every tool but search. Unset: the connector starts, reports NOT_SERVING and its tools fail with FailedPrecondition. |
//! | `SLACK_USER_TOKEN` | unset | User token (`xoxp-...`) with `search:read`, used only by search. |
//! | `SLACK_API_BASE_URL` | `https://slack.com/api` | Web API base URL (tests point it at local servers). |
//! | `SLACK_ALLOW_WRITES` | `false` | Offer and allow the writing tools (send, update, delete, react, create channel). |
//! | `SLACK_ALLOW_BROADCAST_MENTIONS` | `false` | Allow messages that notify a whole channel, the workspace or a user group (`<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^ID>`, a plain `@here`, `@channel`, `@everyone`, `@group`, rich text `broadcast` and `usergroup` elements); otherwise sending or editing such a message is refused with PERMISSION_DENIED. |
//! | `SLACK_CHANNELS_ALLOW` | empty (all) | Comma-separated channel IDs or names; when set, only these channels can be used. |
//! | `SLACK_CHANNELS_DENY` | empty | Comma-separated channel IDs or names that can never be used (wins over the allow list). |
//! | `SLACK_CHANNEL_NAME_TTL` | `60` | Seconds a channel's name is trusted after the connector last saw it; past that, a channel named by the caller (and, with channel lists, a channel given by ID) is checked with `conversations.info` before use, so a renamed channel is neither written to by its old name nor judged by it. |
//! | `SLACK_TIMEOUT` | `30` | Seconds one HTTP request to Slack may take. |
//! | `SLACK_MAX_RESPONSE_BYTES` | `33554432` | Largest body of one Slack answer the connector reads (32 MiB); a larger one fails the call with an error naming this variable (declared larger: not read at all). |
//! | `SLACK_MAX_RETRIES` | `4` | Retries of a rate-limited (429) or, for reads, failed (5xx, network) request. |
//! | `SLACK_RETRY_BUDGET` | `30` | Seconds all waiting of one call may add up to, `Retry-After` included. |
//! | `SLACK_PACING` | `true` | Space calls per Slack method according to its rate-limit tier. |
//! | `SLACK_HEALTH_INTERVAL` | `60` | Seconds between `auth.test` health checks. |

use std::time::Duration;

use connector_kit::env::{self, EnvError};
use connector_kit::retry::RetryPolicy;
use reqwest::Url;
use secrecy::SecretString;

/// Where the Slack Web API lives unless `SLACK_API_BASE_URL` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://slack.com/api";
/// Default of `SLACK_MAX_RESPONSE_BYTES`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Everything the connector needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SLACK_BOT_TOKEN`: the bot token used by every tool but search.
    pub bot_token: Option<SecretString>,
    /// `SLACK_USER_TOKEN`: the user token used by search.
    pub user_token: Option<SecretString>,
    /// `SLACK_API_BASE_URL`: the Web API base, e.g. `https://slack.com/api`.
    pub base_url: Url,
    /// `SLACK_ALLOW_WRITES`: whether writing tools may run.
    pub allow_writes: bool,
    /// `SLACK_ALLOW_BROADCAST_MENTIONS`: whether messages may notify a whole
    /// channel, the workspace or a user group.
    pub allow_broadcast_mentions: bool,
    /// `SLACK_CHANNELS_ALLOW`: channel IDs or names; empty means every channel.
    pub channels_allow: Vec<String>,
    /// `SLACK_CHANNELS_DENY`: channel IDs or names never to touch.
    pub channels_deny: Vec<String>,
    /// `SLACK_CHANNEL_NAME_TTL`: how long a channel's name is trusted after
    /// it was seen.
    pub channel_name_ttl: Duration,
    /// `SLACK_TIMEOUT`: deadline of one HTTP request.
    pub request_timeout: Duration,
    /// `SLACK_MAX_RETRIES` and `SLACK_RETRY_BUDGET`.
    pub retry: RetryPolicy,
    /// `SLACK_PACING`: tier-aware client-side pacing of calls.
    pub pacing: bool,
    /// `SLACK_HEALTH_INTERVAL`: time between health checks.
    pub health_interval: Duration,
    /// `SLACK_MAX_RESPONSE_BYTES`: the largest body of one Slack answer read.
    pub max_response_bytes: usize,
}

impl Default for Config {
    /// The documented defaults, with no tokens.
    fn default() -> Self {
        Self {
            bot_token: None,
            user_token: None,
            base_url: Url::parse(DEFAULT_BASE_URL).expect("the default base URL is valid"),
            allow_writes: false,
            allow_broadcast_mentions: false,
            channels_allow: Vec::new(),
            channels_deny: Vec::new(),
            channel_name_ttl: crate::directory::DEFAULT_CHANNEL_NAME_TTL,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy {
                max_retries: 4,
                initial_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                max_total_delay: Duration::from_secs(30),
            },
            pacing: true,
            health_interval: Duration::from_secs(60),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl Config {
    /// Reads the configuration from the environment; errors name the variable.
    pub fn from_env() -> Result<Self, EnvError> {
        let defaults = Self::default();
        let base_url = parse_base_url(&env::string("SLACK_API_BASE_URL", DEFAULT_BASE_URL))
            .map_err(|message| EnvError::new("SLACK_API_BASE_URL", message))?;
        Ok(Self {
            bot_token: token("SLACK_BOT_TOKEN")?,
            user_token: token("SLACK_USER_TOKEN")?,
            base_url,
            allow_writes: env::flag("SLACK_ALLOW_WRITES", defaults.allow_writes)?,
            allow_broadcast_mentions: env::flag(
                "SLACK_ALLOW_BROADCAST_MENTIONS",
                defaults.allow_broadcast_mentions,
            )?,
            channels_allow: env::list("SLACK_CHANNELS_ALLOW"),
            channels_deny: env::list("SLACK_CHANNELS_DENY"),
            channel_name_ttl: env::seconds("SLACK_CHANNEL_NAME_TTL", defaults.channel_name_ttl)?,
            request_timeout: env::seconds("SLACK_TIMEOUT", defaults.request_timeout)?,
            retry: RetryPolicy {
                max_retries: env::parse("SLACK_MAX_RETRIES", defaults.retry.max_retries)?,
                max_total_delay: env::seconds(
                    "SLACK_RETRY_BUDGET",
                    defaults.retry.max_total_delay,
                )?,
                ..defaults.retry
            },
            pacing: env::flag("SLACK_PACING", defaults.pacing)?,
            health_interval: env::seconds("SLACK_HEALTH_INTERVAL", defaults.health_interval)?,
            max_response_bytes: env::at_least_one(
                "SLACK_MAX_RESPONSE_BYTES",
                defaults.max_response_bytes,
            )?,
        })
    }
}

/// A token variable: unset is fine, but a value with blanks inside is a copy-paste
/// slip worth catching at start (the value itself is never echoed).
fn token(name: &str) -> Result<Option<SecretString>, EnvError> {
    match env::var(name) {
        None => Ok(None),
        Some(raw) => {
            let trimmed = raw.trim();
            if trimmed.chars().any(char::is_whitespace) {
                return Err(EnvError::new(
                    name,
                    "the token contains whitespace; paste only the token (xoxb-... or xoxp-...)",
                ));
            }
            Ok(Some(SecretString::from(trimmed.to_owned())))
        }
    }
}

/// Parses the API base URL, which must be http(s) and may end with a slash.
pub fn parse_base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim())
        .map_err(|e| format!("expected a URL such as {DEFAULT_BASE_URL}, got {raw:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("expected an http or https URL, got {raw:?}"));
    }
    if url.cannot_be_a_base() {
        return Err(format!("{raw:?} cannot be used as a base URL"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_must_be_http() {
        assert!(parse_base_url("https://slack.com/api").is_ok());
        assert!(parse_base_url("http://127.0.0.1:9/api/").is_ok());
        let err = parse_base_url("ftp://slack.com/api").unwrap_err();
        assert!(err.contains("http or https"), "{err}");
        assert!(parse_base_url("slack.com").is_err());
    }
}
