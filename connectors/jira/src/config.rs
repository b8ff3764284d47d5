//! The connector's configuration, read once from the environment in `main`.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `JIRA_BASE_URL` | unset | site URL, e.g. `https://acme.atlassian.net`; unset = unconfigured (NOT_SERVING, every call fails with FailedPrecondition) |
//! | `JIRA_FLAVOR` | `cloud` | `cloud` (REST v3, Atlassian Document Format) or `datacenter` (REST v2, wiki markup) |
//! | `JIRA_EMAIL` | unset | Cloud: the account's email, with `JIRA_API_TOKEN` (basic auth) |
//! | `JIRA_API_TOKEN` | unset | Cloud: an API token of that account |
//! | `JIRA_PAT` | unset | a personal access token sent as `Authorization: Bearer` (Data Center); wins over email + token |
//! | `JIRA_READ_ONLY` | `false` | hide and refuse every tool that changes Jira |
//! | `JIRA_PROJECTS` | empty (all) | comma-separated project keys every tool is limited to (JQL included) |
//! | `JIRA_TIMEOUT_SECS` | `30` | deadline of one HTTP request to Jira |
//! | `JIRA_MAX_RESPONSE_BYTES` | `33554432` | largest body of one Jira answer the connector reads (32 MiB); a larger one fails the call with an error naming this variable (declared larger: not read at all) |
//! | `JIRA_MAX_RETRIES` | `4` | retries of a rate-limited (429) or unavailable (503) request |
//! | `JIRA_RETRY_MAX_WAIT_SECS` | `30` | upper bound of all waiting between retries of one call, `Retry-After` included |
//! | `JIRA_HEALTH_INTERVAL_SECS` | `60` | how often `GET /myself` re-checks the credentials |
//! | `JIRA_MAX_NESTING_DEPTH` | `32` | Markdown elements (quotes, lists, list items, emphasis, links) nested in one another that a description or comment may have; deeper is refused with INVALID_ARGUMENT naming this variable (1 to 60) |
//! | `JIRA_FIELDS_TTL_SECS` | `300` | how long the site's field list is reused; a field name missing from it fetches it again once it is older than a tenth of that (30 s) |
//!
//! Tests build [`Config`] directly instead of setting variables.

use std::time::Duration;

use connector_kit::env::{self, EnvError};
use connector_kit::retry::RetryPolicy;
use secrecy::SecretString;

use crate::richtext;

/// Default of `JIRA_FIELDS_TTL_SECS`.
pub const DEFAULT_FIELDS_TTL: Duration = Duration::from_secs(300);
/// Default of `JIRA_MAX_RESPONSE_BYTES`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Which Jira product the connector talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Jira Cloud: REST API v3, rich text as Atlassian Document Format.
    Cloud,
    /// Jira Data Center / Server: REST API v2, rich text as wiki markup.
    DataCenter,
}

impl Flavor {
    /// The REST API path prefix.
    pub fn api_prefix(self) -> &'static str {
        match self {
            Self::Cloud => "rest/api/3",
            Self::DataCenter => "rest/api/2",
        }
    }
}

/// How the connector authenticates to Jira.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Cloud: email + API token as HTTP basic auth.
    Basic {
        /// The account's email.
        email: String,
        /// The API token.
        token: SecretString,
    },
    /// A personal access token as `Authorization: Bearer`.
    Bearer(SecretString),
}

/// Where Jira is and how to log in.
#[derive(Debug, Clone)]
pub struct JiraSite {
    /// The site URL without a trailing slash, e.g. `https://acme.atlassian.net`.
    pub base_url: String,
    /// Cloud or Data Center.
    pub flavor: Flavor,
    /// The credentials.
    pub credentials: Credentials,
}

/// Everything the connector needs; built by [`Config::from_env`] or directly in tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Jira site; `None` when `JIRA_BASE_URL` is unset (the connector then
    /// starts, reports NOT_SERVING and refuses every call).
    pub site: Option<JiraSite>,
    /// Refuse every tool that changes Jira.
    pub read_only: bool,
    /// Upper-case project keys every tool is limited to; empty means all.
    pub projects: Vec<String>,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
    /// Retries of 429 / 503 answers.
    pub retry: RetryPolicy,
    /// How often the credentials are re-checked for health.
    pub health_interval: Duration,
    /// How long the site's field list is reused.
    pub fields_ttl: Duration,
    /// Nesting of Markdown elements accepted in rich text sent to Jira.
    pub max_nesting_depth: usize,
    /// `JIRA_MAX_RESPONSE_BYTES`: the largest body of one Jira answer read.
    pub max_response_bytes: usize,
}

impl Config {
    /// A configuration for `site` with every other setting at its default.
    pub fn new(site: Option<JiraSite>) -> Self {
        Self {
            site,
            read_only: false,
            projects: Vec::new(),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            health_interval: Duration::from_secs(60),
            fields_ttl: DEFAULT_FIELDS_TTL,
            max_nesting_depth: richtext::DEFAULT_MAX_NESTING_DEPTH,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Reads the variables listed in the module documentation. Errors name the
    /// variable and say what is expected.
    pub fn from_env() -> Result<Self, EnvError> {
        let site = match env::var("JIRA_BASE_URL") {
            None => None,
            Some(url) => {
                let flavor = match env::string("JIRA_FLAVOR", "cloud")
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "cloud" => Flavor::Cloud,
                    "datacenter" | "data-center" | "server" | "dc" => Flavor::DataCenter,
                    other => {
                        return Err(EnvError::new(
                            "JIRA_FLAVOR",
                            format!("expected cloud or datacenter, got {other:?}"),
                        ));
                    }
                };
                let credentials = credentials_from(
                    env::var("JIRA_EMAIL"),
                    env::var("JIRA_API_TOKEN"),
                    env::var("JIRA_PAT"),
                )?;
                Some(JiraSite {
                    base_url: normalize_base_url(&url)
                        .map_err(|m| EnvError::new("JIRA_BASE_URL", m))?,
                    flavor,
                    credentials,
                })
            }
        };
        let default_retry = RetryPolicy::default();
        let max_total_delay =
            env::seconds("JIRA_RETRY_MAX_WAIT_SECS", default_retry.max_total_delay)?;
        Ok(Self {
            site,
            read_only: env::flag("JIRA_READ_ONLY", false)?,
            projects: parse_projects(&env::list("JIRA_PROJECTS"))
                .map_err(|m| EnvError::new("JIRA_PROJECTS", m))?,
            request_timeout: env::seconds("JIRA_TIMEOUT_SECS", Duration::from_secs(30))?,
            retry: RetryPolicy {
                max_retries: env::parse("JIRA_MAX_RETRIES", default_retry.max_retries)?,
                max_total_delay,
                ..default_retry
            },
            health_interval: env::seconds("JIRA_HEALTH_INTERVAL_SECS", Duration::from_secs(60))?,
            fields_ttl: env::seconds("JIRA_FIELDS_TTL_SECS", DEFAULT_FIELDS_TTL)?,
            max_nesting_depth: nesting_depth(env::parse(
                "JIRA_MAX_NESTING_DEPTH",
                richtext::DEFAULT_MAX_NESTING_DEPTH,
            )?)?,
            max_response_bytes: env::at_least_one(
                "JIRA_MAX_RESPONSE_BYTES",
                DEFAULT_MAX_RESPONSE_BYTES,
            )?,
        })
    }
}

/// Checks `JIRA_MAX_NESTING_DEPTH` against the range where the ADF stored can
/// still be read back.
fn nesting_depth(depth: usize) -> Result<usize, EnvError> {
    if (1..=richtext::MAX_NESTING_DEPTH_LIMIT).contains(&depth) {
        Ok(depth)
    } else {
        Err(EnvError::new(
            "JIRA_MAX_NESTING_DEPTH",
            format!(
                "{depth} is outside 1..={}; deeper Markdown could not be stored as ADF that Jira's answers can be read back with",
                richtext::MAX_NESTING_DEPTH_LIMIT
            ),
        ))
    }
}

fn credentials_from(
    email: Option<String>,
    token: Option<String>,
    pat: Option<String>,
) -> Result<Credentials, EnvError> {
    match (email, token, pat) {
        (_, _, Some(pat)) => Ok(Credentials::Bearer(SecretString::from(pat))),
        (Some(email), Some(token), None) => Ok(Credentials::Basic {
            email,
            token: SecretString::from(token),
        }),
        (Some(_), None, None) => Err(EnvError::new(
            "JIRA_API_TOKEN",
            "JIRA_EMAIL is set but JIRA_API_TOKEN is not: create an API token for that account and set it",
        )),
        (None, _, None) => Err(EnvError::new(
            "JIRA_EMAIL",
            "JIRA_BASE_URL is set but there are no credentials: set JIRA_EMAIL and JIRA_API_TOKEN (Jira Cloud) or JIRA_PAT (Jira Data Center)",
        )),
    }
}

/// Checks the scheme and strips trailing slashes.
pub fn normalize_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| format!("{trimmed:?} is not a URL such as https://acme.atlassian.net: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{trimmed:?} is not an http(s) URL such as https://acme.atlassian.net"
        ));
    }
    Ok(trimmed.to_owned())
}

/// Upper-cases and checks project keys.
pub fn parse_projects(keys: &[String]) -> Result<Vec<String>, String> {
    keys.iter()
        .map(|k| {
            let key = k.to_ascii_uppercase();
            if crate::jira::keys::is_project_key(&key) {
                Ok(key)
            } else {
                Err(format!("{k:?} is not a project key such as PROJ"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pat_wins_over_email_and_token() {
        let c = credentials_from(Some("a@b.c".into()), Some("t".into()), Some("p".into()));
        assert!(matches!(c, Ok(Credentials::Bearer(_))));
    }

    #[test]
    fn missing_credentials_name_the_variables_to_set() {
        let err = credentials_from(None, None, None).unwrap_err().to_string();
        assert!(
            err.contains("JIRA_EMAIL") && err.contains("JIRA_PAT"),
            "{err}"
        );
        let err = credentials_from(Some("a@b.c".into()), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("JIRA_API_TOKEN"), "{err}");
    }

    #[test]
    fn base_urls_lose_trailing_slashes_and_need_a_scheme() {
        assert_eq!(
            normalize_base_url("https://acme.atlassian.net/").as_deref(),
            Ok("https://acme.atlassian.net")
        );
        assert!(normalize_base_url("acme.atlassian.net").is_err());
        assert!(normalize_base_url("ftp://acme").is_err());
    }

    #[test]
    fn project_keys_are_upper_cased_and_checked() {
        assert_eq!(
            parse_projects(&["proj".into(), "OPS".into()]),
            Ok(vec!["PROJ".into(), "OPS".into()])
        );
        assert!(parse_projects(&["not a key".into()]).is_err());
    }

    #[test]
    fn a_nesting_depth_outside_its_range_names_the_variable() {
        assert_eq!(nesting_depth(32).ok(), Some(32));
        for depth in [0, richtext::MAX_NESTING_DEPTH_LIMIT + 1] {
            let error = nesting_depth(depth)
                .expect_err("outside the range")
                .to_string();
            assert!(error.contains("JIRA_MAX_NESTING_DEPTH"), "{error}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let c = Credentials::Basic {
            email: "a@b.c".into(),
            token: SecretString::from("s3cret-token"),
        };
        assert!(!format!("{c:?}").contains("s3cret-token"));
    }
}
