//! The audit trail: one structured log line per call, on the `audit` tracing
//! target, so operators can route it apart from the diagnostic logs
//! (`RUST_LOG=audit=info`, or a dedicated layer filtering on the target).
//!
//! Each line has: `time_unix_ms`, `principal` (the token's `sub`, or `stdio`),
//! `tool`, `connector`, `outcome` (`ok`, `tool_error`, `denied`,
//! `unauthenticated`, `rate_limited`), `duration_ms`, `trace_id` (empty when
//! there is none), and, only when [`AuditConfig::log_arguments`] is on, the
//! call's `arguments` as JSON: values under keys that name a secret (see
//! [`is_secret_key`]) replaced by `"[redacted]"`, walked with an explicit stack,
//! the whole cut to [`AuditConfig::max_argument_bytes`]. Bearer tokens never
//! reach this module.
//!
//! Wiring: the call pipeline calls [`AuditEvent::emit`] once per call, after
//! the outcome is known (also for refusals before the call, with the tool
//! name as requested).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

/// Default of [`AuditConfig::max_argument_bytes`].
pub const DEFAULT_MAX_ARGUMENT_BYTES: usize = 2048;
/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";

/// Audit settings (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Log each call's arguments (redacted and cut). Off by default: arguments
    /// can hold personal data.
    pub log_arguments: bool,
    /// Largest logged arguments text, in bytes; longer is cut and marked `…[truncated]`.
    pub max_argument_bytes: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            log_arguments: false,
            max_argument_bytes: DEFAULT_MAX_ARGUMENT_BYTES,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The tool answered.
    Ok,
    /// The tool answered with `isError: true` (or the connector failed).
    ToolError,
    /// The policy refused it (hidden or insufficient scope).
    Denied,
    /// No valid token.
    Unauthenticated,
    /// A rate or concurrency limit refused it.
    RateLimited,
}

impl Outcome {
    /// The value of the `outcome` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Denied => "denied",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::RateLimited => "rate_limited",
        }
    }
}

/// One call, as audited.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// The principal's `sub`, or `stdio`; `None` when unauthenticated.
    pub principal: Option<&'a str>,
    /// The tool as named by the client.
    pub tool: &'a str,
    /// Its connector (empty when the tool is unknown or hidden).
    pub connector: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
    /// The W3C trace id, if any.
    pub trace_id: Option<&'a str>,
    /// The call's arguments (logged only when enabled).
    pub arguments: Option<&'a Value>,
}

/// Whether a key names a secret, compared without case, `-` or `_`: it
/// contains `password`, `passwd`, `secret`, `token`, `apikey`, `authorization`,
/// `credential`, `cookie`, `privatekey`, or is `pwd`, `auth` or `key`.
pub fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    const CONTAINS: [&str; 9] = [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "authorization",
        "credential",
        "cookie",
        "privatekey",
    ];
    CONTAINS.iter().any(|s| k.contains(s)) || matches!(k.as_str(), "pwd" | "auth" | "key")
}

/// A copy of `value` with every value under a secret key redacted, walked
/// with an explicit stack (no recursion on client-shaped data).
pub fn redact(value: &Value) -> Value {
    let mut out = value.clone();
    let mut stack: Vec<&mut Value> = vec![&mut out];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if is_secret_key(k) {
                        *v = Value::String(REDACTED.to_owned());
                    } else {
                        stack.push(v);
                    }
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str("…[truncated]");
    s
}

impl AuditEvent<'_> {
    /// The arguments field as logged, or `None` when arguments are not logged.
    pub fn arguments_field(&self, config: &AuditConfig) -> Option<String> {
        if !config.log_arguments {
            return None;
        }
        let args = self.arguments?;
        Some(cut(redact(args).to_string(), config.max_argument_bytes))
    }

    /// Writes the audit line.
    pub fn emit(&self, config: &AuditConfig) {
        let time_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let principal = self.principal.unwrap_or("");
        let duration_ms = self.duration.as_secs_f64() * 1000.0;
        let trace_id = self.trace_id.unwrap_or("");
        match self.arguments_field(config) {
            Some(arguments) => tracing::info!(
                target: "audit",
                time_unix_ms,
                principal,
                tool = self.tool,
                connector = self.connector,
                outcome = self.outcome.as_str(),
                duration_ms,
                trace_id,
                arguments = %arguments,
                "tool call"
            ),
            None => tracing::info!(
                target: "audit",
                time_unix_ms,
                principal,
                tool = self.tool,
                connector = self.connector,
                outcome = self.outcome.as_str(),
                duration_ms,
                trace_id,
                "tool call"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON lines `f` logs.
    fn lines(f: impl FnOnce()) -> Vec<Value> {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn event<'a>(args: &'a Value, outcome: Outcome) -> AuditEvent<'a> {
        AuditEvent {
            principal: Some("alice"),
            tool: "database_query",
            connector: "database",
            outcome,
            duration: Duration::from_millis(12),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            arguments: Some(args),
        }
    }

    #[test]
    fn one_line_on_the_audit_target_with_every_field() {
        let args = json!({"sql": "select 1"});
        let logged = lines(|| event(&args, Outcome::Ok).emit(&AuditConfig::default()));
        assert_eq!(logged.len(), 1);
        let line = &logged[0];
        assert_eq!(line["target"], "audit");
        let f = &line["fields"];
        assert_eq!(f["principal"], "alice");
        assert_eq!(f["tool"], "database_query");
        assert_eq!(f["connector"], "database");
        assert_eq!(f["outcome"], "ok");
        assert_eq!(f["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!((f["duration_ms"].as_f64().unwrap_or(0.0) - 12.0).abs() < 0.5);
        assert!(f["time_unix_ms"].as_u64().unwrap_or(0) > 1_600_000_000_000);
        assert!(f.get("arguments").is_none(), "arguments are off by default");
    }

    #[test]
    fn outcomes_have_their_names() {
        let names: Vec<&str> = [
            Outcome::Ok,
            Outcome::ToolError,
            Outcome::Denied,
            Outcome::Unauthenticated,
            Outcome::RateLimited,
        ]
        .iter()
        .map(|o| o.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "ok",
                "tool_error",
                "denied",
                "unauthenticated",
                "rate_limited"
            ]
        );
        let args = json!({});
        let logged = lines(|| event(&args, Outcome::RateLimited).emit(&AuditConfig::default()));
        assert_eq!(logged[0]["fields"]["outcome"], "rate_limited");
    }

    #[test]
    fn an_unauthenticated_call_has_an_empty_principal() {
        let mut e = event(&Value::Null, Outcome::Unauthenticated);
        e.principal = None;
        e.trace_id = None;
        let logged = lines(|| e.emit(&AuditConfig::default()));
        assert_eq!(logged[0]["fields"]["principal"], "");
        assert_eq!(logged[0]["fields"]["trace_id"], "");
    }

    #[test]
    fn arguments_when_enabled_are_redacted_and_cut() {
        let args = json!({
            "sql": "select 1",
            "password": "hunter2",
            "nested": [{"api_key": "k1", "Authorization": "Bearer x", "keep": "v"}],
            "db_token": {"deep": "t"}
        });
        let config = AuditConfig {
            log_arguments: true,
            ..AuditConfig::default()
        };
        let logged = lines(|| event(&args, Outcome::ToolError).emit(&config));
        let text = logged[0]["fields"]["arguments"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let parsed: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(parsed["sql"], "select 1");
        assert_eq!(parsed["password"], REDACTED);
        assert_eq!(parsed["nested"][0]["api_key"], REDACTED);
        assert_eq!(parsed["nested"][0]["Authorization"], REDACTED);
        assert_eq!(parsed["nested"][0]["keep"], "v");
        assert_eq!(parsed["db_token"], REDACTED);
        for secret in ["hunter2", "k1", "Bearer x", "\"t\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let big = json!({"text": "é".repeat(5000)});
        let small = AuditConfig {
            log_arguments: true,
            max_argument_bytes: 101,
        };
        let field = event(&big, Outcome::Ok)
            .arguments_field(&small)
            .expect("on");
        assert!(field.ends_with("…[truncated]"), "{field}");
        assert!(field.len() <= 101 + "…[truncated]".len());
    }

    #[test]
    fn secret_keys_are_recognised_whatever_their_spelling() {
        for k in [
            "password",
            "DB_PASSWORD",
            "client-secret",
            "accessToken",
            "X-API-Key",
            "apiKey",
            "pwd",
            "key",
            "auth",
            "privateKey",
            "Cookie",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["sql", "project", "keys_only", "author", "limit", "channel"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn nested_arguments_are_redacted_at_every_depth() {
        // As deep as serde_json parses client input (its limit is 128).
        let mut v = json!({"password": "p", "keep": 1});
        for i in 0..120 {
            v = if i % 2 == 0 {
                json!([v])
            } else {
                json!({"level": v})
            };
        }
        let r = redact(&v);
        let mut node = &r;
        loop {
            node = match node {
                Value::Array(items) => &items[0],
                Value::Object(map) if map.contains_key("level") => &map["level"],
                _ => break,
            };
        }
        assert_eq!(node["password"], REDACTED);
        assert_eq!(node["keep"], 1);
    }
}
