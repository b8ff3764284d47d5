//! RFC 9457 problem details: every REST error is an `application/problem+json`
//! body with `type`, `title`, `status` and `detail`, plus a `code` naming the
//! kind of problem so a program can branch without parsing the text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem, ready to be answered.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    extra: Option<(&'static str, Json)>,
}

impl Problem {
    /// A problem answered with `status`; `code` is a short stable name
    /// (`unknown_tool`, `arguments`, ...), `detail` what a person should do.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            headers: Vec::new(),
            extra: None,
        }
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`).
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// Adds one extension member to the body.
    pub fn with_member(mut self, name: &'static str, value: Json) -> Self {
        self.extra = Some((name, value));
        self
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> Json {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some((name, value)) = &self.extra {
            body[*name] = value.clone();
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// The JSON Schema of a problem document, for the OpenAPI document.
pub fn schema() -> Json {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem details document.",
        "properties": {
            "type": { "type": "string", "description": "Always about:blank: the status says what kind of problem it is." },
            "title": { "type": "string", "description": "The HTTP status phrase." },
            "status": { "type": "integer", "description": "The HTTP status code." },
            "detail": { "type": "string", "description": "What went wrong and what to do, for a person." },
            "code": {
                "type": "string",
                "description": "A stable name of the kind of problem: unknown_tool, unknown_resource, unknown_prompt, arguments, unsupported_media_type, too_large, slow_body, unreadable_body, busy, limited, unavailable, deadline, tool_error, insufficient_scope, unauthenticated, not_found, malformed.",
            },
            "content": { "type": "array", "description": "With code tool_error: the tool's MCP content blocks." },
        },
        "required": ["type", "title", "status", "detail", "code"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_has_the_rfc_9457_members_and_its_headers() {
        let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "limited", "slow down")
            .with_header(header::RETRY_AFTER, "1");
        let body = problem.body();
        assert_eq!(body["status"], 429);
        assert_eq!(body["title"], "Too Many Requests");
        assert_eq!(body["detail"], "slow down");
        assert_eq!(body["type"], "about:blank");
        let response = problem.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
