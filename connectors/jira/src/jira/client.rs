//! The HTTP side: one request to the Jira REST API, with authentication, a
//! deadline, retries of 429 / 503 (honouring `Retry-After`), and Jira's error
//! bodies turned into [`Error`]s that name the field.
//!
//! Retry rule: a 429 means Jira did not process the request, so it is retried for
//! every method; a 503 or a connection failure is retried only for requests that
//! are safe to repeat (reads, and idempotent writes such as PUT).

use std::time::Duration;

use connector_kit::retry::{Attempt, RetryPolicy, parse_retry_after, retry};
use connector_kit::upstream;
use reqwest::{Method, StatusCode, header};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::config::{Credentials, Flavor, JiraSite};
use crate::error::Error;

/// Whether a request may be sent again after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads and idempotent writes: retried on 429, 503 and connection failures.
    Safe,
    /// Non-idempotent writes: retried on 429 only.
    Once,
}

/// A Jira REST client for one site.
#[derive(Clone)]
pub struct JiraHttp {
    http: reqwest::Client,
    base_url: String,
    flavor: Flavor,
    credentials: Credentials,
    retry: RetryPolicy,
    timeout: Duration,
    /// `JIRA_MAX_RESPONSE_BYTES`.
    max_response_bytes: usize,
}

impl std::fmt::Debug for JiraHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraHttp")
            .field("base_url", &self.base_url)
            .field("flavor", &self.flavor)
            .finish_non_exhaustive()
    }
}

/// One request: method, path below the API prefix, query and body.
#[derive(Debug)]
pub struct Call<'a> {
    /// HTTP method.
    pub method: Method,
    /// Path segments below `rest/api/N/` (each is percent-encoded).
    pub path: Vec<&'a str>,
    /// Query parameters.
    pub query: Vec<(&'a str, String)>,
    /// JSON body.
    pub body: Option<Value>,
    /// What the call does, for error messages ("issue PROJ-1").
    pub what: String,
    /// Whether it may be repeated.
    pub repeat: Repeat,
}

impl<'a> Call<'a> {
    /// A GET of `path`.
    pub fn get(path: Vec<&'a str>, what: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            what: what.into(),
            repeat: Repeat::Safe,
        }
    }

    /// A request with a JSON body.
    pub fn send(
        method: Method,
        path: Vec<&'a str>,
        body: Value,
        what: impl Into<String>,
        repeat: Repeat,
    ) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            body: Some(body),
            what: what.into(),
            repeat,
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &'a str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }
}

impl JiraHttp {
    /// A client for `site` reading answers of at most `max_response_bytes`.
    pub fn new(
        site: &JiraSite,
        retry: RetryPolicy,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "switchboard-jira-connector/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            base_url: site.base_url.clone(),
            flavor: site.flavor,
            credentials: site.credentials.clone(),
            retry,
            timeout,
            max_response_bytes,
        })
    }

    /// Cloud or Data Center.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The site URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &[&str]) -> Result<reqwest::Url, Error> {
        let mut url =
            reqwest::Url::parse(&self.base_url).map_err(|e| Error::UnexpectedResponse {
                what: "building a request".into(),
                reason: format!("invalid JIRA_BASE_URL: {e}"),
            })?;
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| Error::UnexpectedResponse {
                    what: "building a request".into(),
                    reason: "JIRA_BASE_URL cannot be a base URL".into(),
                })?;
            segments.pop_if_empty();
            segments.extend(self.flavor.api_prefix().split('/'));
            segments.extend(path);
        }
        Ok(url)
    }

    /// Sends `call`, retrying per the policy; returns the JSON body (`Null` for
    /// an empty one, e.g. 204).
    pub async fn execute(&self, call: Call<'_>) -> Result<Value, Error> {
        let url = self.url(&call.path)?;
        let started = std::time::Instant::now();
        let result = retry(self.retry, || self.attempt(&call, url.clone())).await;
        tracing::debug!(
            method = %call.method,
            path = url.path(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "jira request"
        );
        result
    }

    async fn attempt(&self, call: &Call<'_>, url: reqwest::Url) -> Result<Value, Attempt<Error>> {
        let observed = upstream::UpstreamCall::start(
            "jira",
            &operation(&call.method, &call.path),
            call.method.as_str(),
            url.as_str(),
        );
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .header(header::ACCEPT, "application/json");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        request = match &self.credentials {
            Credentials::Basic { email, token } => {
                request.basic_auth(email, Some(token.expose_secret()))
            }
            Credentials::Bearer(token) => request.bearer_auth(token.expose_secret()),
        };
        request = request.headers(observed.trace_headers());
        let span = observed.span().clone();
        let response = match tracing::Instrument::instrument(request.send(), span).await {
            Ok(response) => {
                observed.finish(Some(response.status().as_u16()));
                response
            }
            Err(e) => {
                observed.finish(None);
                return Err(self.transport_error(call, &e));
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body =
            match upstream::read_body(response, self.max_response_bytes, "JIRA_MAX_RESPONSE_BYTES")
                .await
            {
                Ok(body) => body,
                Err(upstream::BodyError::Transport(e)) => {
                    return Err(self.transport_error(call, &e));
                }
                Err(too_large) => {
                    return Err(Attempt::Fail(Error::UnexpectedResponse {
                        what: call.what.clone(),
                        reason: too_large.to_string(),
                    }));
                }
            };
        let text = String::from_utf8_lossy(&body);
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            // serde_json stops at 128 nested levels, so a hostile document cannot
            // exhaust the stack while it is read (or dropped).
            return serde_json::from_str(&text).map_err(|e| {
                let reason = if e.to_string().starts_with("recursion limit exceeded") {
                    "it nests more than 128 levels deep, more than the connector reads (rich text nested that deep cannot be shown here; open it in Jira)".to_owned()
                } else {
                    format!("the body is not JSON ({e})")
                };
                Attempt::Fail(Error::UnexpectedResponse {
                    what: call.what.clone(),
                    reason,
                })
            });
        }
        Err(classify(status, &text, retry_after, call))
    }

    fn transport_error(&self, call: &Call<'_>, e: &reqwest::Error) -> Attempt<Error> {
        if e.is_timeout() {
            return Attempt::Fail(Error::Timeout {
                what: call.what.clone(),
                seconds: self.timeout.as_secs(),
            });
        }
        let error = Error::Unavailable {
            what: call.what.clone(),
            reason: describe_transport(e),
        };
        match call.repeat {
            Repeat::Safe if e.is_connect() || e.is_request() => Attempt::Retry {
                error,
                retry_after: None,
            },
            _ => Attempt::Fail(error),
        }
    }
}

/// The path segments the connector writes itself; any other segment (an issue
/// or project key, an id) is shown as `{id}`.
const LITERAL_SEGMENTS: &[&str] = &[
    "assignee",
    "comment",
    "field",
    "issue",
    "issueLink",
    "issueLinkType",
    "jql",
    "myself",
    "project",
    "search",
    "transitions",
    "user",
];

/// The metric label of a request: its method and endpoint template, e.g.
/// `GET issue/{id}/comment`. Keys and ids never appear in it, so the label set
/// stays bounded whatever the agent asks for.
fn operation(method: &Method, path: &[&str]) -> String {
    let template: Vec<&str> = path
        .iter()
        .map(|segment| {
            if LITERAL_SEGMENTS.contains(segment) {
                segment
            } else {
                "{id}"
            }
        })
        .collect();
    format!("{method} {}", template.join("/"))
}

/// The reqwest error chain without the URL (which is the site's, harmless, but
/// the chain is what tells connection refused from TLS failures).
fn describe_transport(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{what}: {}", connector_kit::error_chain(cause)),
        None => what.to_owned(),
    }
}

fn classify(
    status: StatusCode,
    body: &str,
    retry_after: Option<Duration>,
    call: &Call<'_>,
) -> Attempt<Error> {
    let reasons = error_reasons(body);
    let detail = if reasons.is_empty() {
        String::new()
    } else {
        format!(": {reasons}")
    };
    match status.as_u16() {
        401 => Attempt::Fail(Error::Unauthorized),
        403 => Attempt::Fail(Error::Forbidden {
            what: call.what.clone(),
            detail,
        }),
        404 => Attempt::Fail(Error::NotFound {
            what: call.what.clone(),
            detail,
        }),
        429 => Attempt::Retry {
            error: Error::RateLimited {
                retry_after: retry_after
                    .map(|d| format!(", it asked to wait {} s", d.as_secs()))
                    .unwrap_or_default(),
                wait: retry_after,
            },
            retry_after,
        },
        code @ (502..=504) => {
            let error = Error::Unavailable {
                what: call.what.clone(),
                reason: format!("HTTP {code}{detail}"),
            };
            if code == 503 && call.repeat == Repeat::Safe {
                Attempt::Retry { error, retry_after }
            } else {
                Attempt::Fail(error)
            }
        }
        code if status.is_client_error() => Attempt::Fail(Error::Rejected {
            what: call.what.clone(),
            status: code,
            reasons: if reasons.is_empty() {
                "no reason given".to_owned()
            } else {
                reasons
            },
        }),
        code => Attempt::Fail(Error::Unavailable {
            what: call.what.clone(),
            reason: format!("HTTP {code}{detail}"),
        }),
    }
}

/// Jira's `{"errorMessages": [...], "errors": {"field": "message"}}` (also the
/// newer `{"message": ...}` shape) as one line, each field named; a plain-text
/// body is quoted, shortened.
pub fn error_reasons(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        if text.is_empty() || text.starts_with('<') {
            return String::new();
        }
        return shorten(text, 300);
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(messages) = json.get("errorMessages").and_then(Value::as_array) {
        parts.extend(messages.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(errors) = json.get("errors").and_then(Value::as_object) {
        let mut fields: Vec<_> = errors.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (field, message) in fields {
            let message = message
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| message.to_string());
            parts.push(format!("field `{field}`: {message}"));
        }
    }
    for key in ["message", "errorMessage"] {
        if let Some(m) = json.get(key).and_then(Value::as_str) {
            parts.push(m.to_owned());
        }
    }
    parts.retain(|p| !p.trim().is_empty());
    parts.join("; ")
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_label_names_the_endpoint_never_the_key() {
        assert_eq!(
            operation(&Method::GET, &["issue", "PROJ-123", "comment"]),
            "GET issue/{id}/comment"
        );
        assert_eq!(
            operation(&Method::POST, &["search", "jql"]),
            "POST search/jql"
        );
        assert_eq!(
            operation(&Method::GET, &["project", "attacker\u{202e}chosen"]),
            "GET project/{id}"
        );
    }

    #[test]
    fn error_bodies_name_each_field() {
        let body = r#"{"errorMessages":["Issue does not exist"],"errors":{"summary":"You must specify a summary of the issue.","priority":"Priority name 'Urgent' is not valid"}}"#;
        assert_eq!(
            error_reasons(body),
            "Issue does not exist; field `priority`: Priority name 'Urgent' is not valid; field `summary`: You must specify a summary of the issue."
        );
    }

    #[test]
    fn html_and_empty_bodies_give_no_reason() {
        assert_eq!(error_reasons(""), "");
        assert_eq!(error_reasons("<html>oops</html>"), "");
        assert_eq!(error_reasons("plain words"), "plain words");
    }

    #[test]
    fn a_429_is_retried_with_its_hint_and_a_400_is_not() {
        let call = Call::get(vec!["myself"], "the current user");
        assert!(matches!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                "",
                Some(Duration::from_secs(2)),
                &call
            ),
            Attempt::Retry {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, "{}", None, &call),
            Attempt::Fail(Error::Rejected { .. })
        ));
    }

    #[test]
    fn a_503_is_retried_only_when_the_request_is_safe_to_repeat() {
        let read = Call::get(vec!["myself"], "x");
        let write = Call::send(Method::POST, vec!["issue"], Value::Null, "x", Repeat::Once);
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, "", None, &read),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, "", None, &write),
            Attempt::Fail(_)
        ));
    }
}
