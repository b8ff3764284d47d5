//! The Slack Web API over HTTP: one method call at a time.
//!
//! Every call goes to `<SLACK_API_BASE_URL>/<method>` with the token in an
//! `Authorization: Bearer` header (never in the URL, so it cannot leak into logs),
//! parameters in the query string for reads and form-encoded for writes, as the
//! Web API accepts. Slack answers HTTP 200 with `{"ok": false, "error": ...}` for
//! most failures; those become [`Error::Slack`] with the code (and, for
//! `missing_scope`, the scope needed). HTTP 429 is retried after `Retry-After`
//! within the configured budget; 5xx, Slack's transient error codes and network
//! failures are retried for idempotent calls only. Calls are paced per method by
//! [`crate::pacing`]. Answers are returned as JSON; [`crate::model`] reads them.

use connector_kit::retry::{Attempt, RetryPolicy, parse_retry_after, retry};
use connector_kit::upstream;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tracing::Instrument;

use crate::config::Config;
use crate::error::Error;
use crate::pacing::Pacer;

/// Which of the configured tokens a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// `SLACK_BOT_TOKEN`.
    Bot,
    /// `SLACK_USER_TOKEN` (search).
    User,
}

/// How a method takes its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET with a query string (reads).
    Get,
    /// POST with a form-encoded body (writes).
    Post,
}

/// One Web API method call.
#[derive(Debug)]
pub struct Call<'a> {
    /// The method name, e.g. `conversations.history`.
    pub method: &'static str,
    /// GET or POST.
    pub verb: Verb,
    /// The token to send.
    pub token: Token,
    /// Safe to repeat: retried on 5xx and network errors too.
    pub idempotent: bool,
    /// The method's parameters.
    pub params: &'a [(&'static str, String)],
}

impl<'a> Call<'a> {
    /// A read: GET, bot token, idempotent.
    pub fn read(method: &'static str, params: &'a [(&'static str, String)]) -> Self {
        Self {
            method,
            verb: Verb::Get,
            token: Token::Bot,
            idempotent: true,
            params,
        }
    }

    /// A write: POST, bot token; `idempotent` when repeating it changes nothing.
    pub fn write(
        method: &'static str,
        idempotent: bool,
        params: &'a [(&'static str, String)],
    ) -> Self {
        Self {
            method,
            verb: Verb::Post,
            token: Token::Bot,
            idempotent,
            params,
        }
    }
}

/// A Slack Web API client with the connector's tokens.
#[derive(Debug)]
pub struct SlackApi {
    http: reqwest::Client,
    base_url: Url,
    bot_token: Option<SecretString>,
    user_token: Option<SecretString>,
    retry: RetryPolicy,
    pacer: Pacer,
    /// `SLACK_MAX_RESPONSE_BYTES`.
    max_response_bytes: usize,
}

impl SlackApi {
    /// A client for the configured workspace.
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!(
                "switchboard-slack-connector/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            bot_token: config.bot_token.clone(),
            user_token: config.user_token.clone(),
            retry: config.retry,
            pacer: Pacer::new(config.pacing),
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// Whether a bot token is configured.
    pub fn has_bot_token(&self) -> bool {
        self.bot_token.is_some()
    }

    /// The URL of `method`.
    fn url(&self, method: &str) -> Url {
        let mut url = self.base_url.clone();
        let path = format!("{}/{method}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// The `Authorization` header for `token`, or why it cannot be sent.
    fn authorization(&self, token: Token) -> Result<HeaderValue, Error> {
        let secret = match token {
            Token::Bot => self.bot_token.as_ref().ok_or(Error::NotConfigured {
                variable: "SLACK_BOT_TOKEN",
                purpose: "set it to the Slack app's bot token (xoxb-...) from OAuth & Permissions",
            })?,
            Token::User => {
                let secret = self.user_token.as_ref().ok_or(Error::NotConfigured {
                    variable: "SLACK_USER_TOKEN",
                    purpose: "searching Slack needs a user token (xoxp-...) with the search:read scope, since Slack does not allow search with bot tokens",
                })?;
                if secret.expose_secret().starts_with("xoxb-") {
                    return Err(Error::SearchNeedsUserToken);
                }
                secret
            }
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret()))
            .map_err(|_| Error::NotConfigured {
                variable: match token {
                    Token::Bot => "SLACK_BOT_TOKEN",
                    Token::User => "SLACK_USER_TOKEN",
                },
                purpose: "the configured token contains characters that cannot be sent in an HTTP header; paste the token again",
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Calls a method and returns its `ok: true` answer.
    pub async fn call(&self, call: Call<'_>) -> Result<Value, Error> {
        let authorization = self.authorization(call.token)?;
        let url = self.url(call.method);
        let span = tracing::debug_span!("slack_call", method = call.method);
        retry(self.retry, || self.attempt(&call, &url, &authorization))
            .instrument(span)
            .await
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        url: &Url,
        authorization: &HeaderValue,
    ) -> Result<Value, Attempt<Error>> {
        let method = call.method;
        self.pacer.wait(method).await;
        let observed = upstream::UpstreamCall::start(
            "slack",
            method,
            match call.verb {
                Verb::Get => "GET",
                Verb::Post => "POST",
            },
            url.as_str(),
        );
        let request = match call.verb {
            Verb::Get => self.http.get(url.clone()).query(call.params),
            Verb::Post => self.http.post(url.clone()).form(call.params),
        }
        .headers(observed.trace_headers())
        .header(AUTHORIZATION, authorization.clone());

        let response = match request.send().instrument(observed.span().clone()).await {
            Ok(response) => {
                observed.finish(Some(response.status().as_u16()));
                response
            }
            Err(e) => {
                observed.finish(None);
                let error = if e.is_timeout() {
                    Error::Timeout { method }
                } else {
                    Error::Network {
                        method,
                        message: describe(&e),
                    }
                };
                tracing::warn!(method, error = %error, "slack call failed");
                // A refused connection means nothing was sent: always safe to retry.
                return Err(if call.idempotent || e.is_connect() {
                    Attempt::Retry {
                        error,
                        retry_after: None,
                    }
                } else {
                    Attempt::Fail(error)
                });
            }
        };

        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            tracing::info!(
                method,
                retry_after_s = retry_after.map(|d| d.as_secs_f64()),
                "slack rate limited"
            );
            // Slack did not process a 429'd request, so even writes may be repeated.
            return Err(Attempt::Retry {
                error: Error::RateLimited {
                    method,
                    retry_after,
                },
                retry_after,
            });
        }
        if !status.is_success() {
            let error = Error::HttpStatus {
                method,
                status: status.as_u16(),
            };
            tracing::warn!(
                method,
                status = status.as_u16(),
                "slack answered an http error"
            );
            return Err(if status.is_server_error() && call.idempotent {
                Attempt::Retry {
                    error,
                    retry_after: None,
                }
            } else {
                Attempt::Fail(error)
            });
        }

        let bad = |message| Attempt::Fail(Error::BadResponse { method, message });
        let bytes = upstream::read_body(
            response,
            self.max_response_bytes,
            "SLACK_MAX_RESPONSE_BYTES",
        )
        .await
        .map_err(|e| match e {
            upstream::BodyError::Transport(e) => {
                bad(format!("the answer could not be read ({})", describe(&e)))
            }
            too_large => bad(too_large.to_string()),
        })?;
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON ({e})")))?;
        match body.get("ok").and_then(Value::as_bool) {
            Some(true) => {
                if let Some(warning) = body.get("warning").and_then(Value::as_str) {
                    tracing::debug!(method, warning, "slack warning");
                }
                Ok(body)
            }
            Some(false) => {
                let code = body
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown_error")
                    .to_owned();
                let transient = matches!(
                    code.as_str(),
                    "ratelimited"
                        | "fatal_error"
                        | "internal_error"
                        | "service_unavailable"
                        | "request_timeout"
                );
                let error = Error::Slack {
                    method,
                    needed: body
                        .get("needed")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    provided: body
                        .get("provided")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    code,
                };
                tracing::debug!(method, error = %error, "slack refused the call");
                Err(
                    if transient && (call.idempotent || error.slack_code() == Some("ratelimited")) {
                        Attempt::Retry {
                            error,
                            retry_after: None,
                        }
                    } else {
                        Attempt::Fail(error)
                    },
                )
            }
            None => Err(Attempt::Fail(Error::BadResponse {
                method,
                message: "the answer has no boolean \"ok\" field".to_owned(),
            })),
        }
    }
}

/// A reqwest error's kind and cause, without the URL (which never holds a token,
/// but keeps messages short).
fn describe(error: &reqwest::Error) -> String {
    let message = connector_kit::error_chain(error);
    match error.url() {
        // reqwest writes "error sending request for url (URL)".
        Some(url) => message.replace(&format!(" for url ({url})"), ""),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_keep_their_cause_and_drop_the_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let url = format!("http://{closed}/api/auth.test");
        let error = reqwest::get(&url).await.expect_err("nothing listens there");
        let message = describe(&error);
        assert!(message.starts_with("error sending request: "), "{message}");
        assert!(!message.contains("for url"), "{message}");
        assert!(!message.contains(&closed.to_string()), "{message}");
    }
}
