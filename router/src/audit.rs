//! The audit trail: one structured log line per call, on the `audit` tracing
//! target, so operators can route it apart from the diagnostic logs
//! (`RUST_LOG=audit=info`, or a dedicated layer filtering on the target).
//!
//! Each line has: `time_unix_ms`, `principal` (the token's `sub`, or `stdio`
//! for the local user: over stdio, and over HTTP without an issuer),
//! `front_door` (`stdio`, `http` for MCP over HTTP, `rest`), `tool`, `connector`, `outcome` (`ok`, `tool_error`, `denied`,
//! `unauthenticated`, `rate_limited`), `duration_ms`, `trace_id` (empty when
//! there is none), and, only when [`AuditConfig::log_arguments`] is on, the
//! call's `arguments` as JSON: values under keys that name a secret (see
//! [`is_secret_key`]) replaced by `"[redacted]"`, the whole cut to
//! [`AuditConfig::max_argument_bytes`]. The text is written as the arguments
//! are walked (an explicit stack) and the walk stops at the cut, so a call's
//! audit holds at most that many bytes of its arguments, whatever their size,
//! and never a copy of them. Bearer tokens never reach this module.
//!
//! Wiring: the call pipeline takes the arguments' text
//! ([`AuditConfig::arguments_text`]) before the arguments go to the connector,
//! and calls [`AuditEvent::emit`] once per call, after the outcome is known
//! (also for refusals before the call, with the tool name as requested).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};

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

/// Which front door a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontDoor {
    /// MCP over the router's standard streams.
    Stdio,
    /// MCP over Streamable HTTP (`/mcp`).
    Http,
    /// The REST API (`/api/v1`).
    Rest,
}

impl FrontDoor {
    /// The value of the `front_door` field.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontDoor::Stdio => "stdio",
            FrontDoor::Http => "http",
            FrontDoor::Rest => "rest",
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
    /// Where the call came in.
    pub front_door: FrontDoor,
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
    /// The call's arguments as logged ([`AuditConfig::arguments_text`]);
    /// written only when [`AuditConfig::log_arguments`] is on.
    pub arguments: Option<&'a str>,
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

impl AuditConfig {
    /// `arguments` as the audit line shows them (secret values redacted, cut
    /// to [`Self::max_argument_bytes`]), or `None` when arguments are not
    /// logged. No arguments show as `{}`.
    pub fn arguments_text(&self, arguments: Option<&Map<String, Value>>) -> Option<String> {
        if !self.log_arguments {
            return None;
        }
        let empty = Map::new();
        Some(redacted_text(
            arguments.unwrap_or(&empty),
            self.max_argument_bytes,
        ))
    }
}

/// `arguments` as compact JSON with every value under a secret key replaced by
/// [`REDACTED`], cut to at most `max` bytes on a character boundary and marked
/// when cut. Written while walking them with an explicit stack (no recursion
/// on client-shaped data), stopping once past `max`: whatever their size, it
/// holds at most `max + 1` bytes and copies nothing.
pub fn redacted_text(arguments: &Map<String, Value>, max: usize) -> String {
    /// An object or array being written: its remaining entries, and whether
    /// one was written yet.
    enum Open<'a> {
        Object(serde_json::map::Iter<'a>, bool),
        Array(std::slice::Iter<'a, Value>, bool),
    }
    let mut out = Capped::new(max.saturating_add(1));
    out.put(b"{");
    let mut stack = vec![Open::Object(arguments.iter(), false)];
    while !out.full() {
        let Some(open) = stack.last_mut() else { break };
        let (key, value, written) = match open {
            Open::Object(entries, written) => match entries.next() {
                Some((key, value)) => (Some(key.as_str()), value, std::mem::replace(written, true)),
                None => {
                    out.put(b"}");
                    stack.pop();
                    continue;
                }
            },
            Open::Array(items, written) => match items.next() {
                Some(value) => (None, value, std::mem::replace(written, true)),
                None => {
                    out.put(b"]");
                    stack.pop();
                    continue;
                }
            },
        };
        if written {
            out.put(b",");
        }
        if let Some(key) = key {
            out.json(key);
            out.put(b":");
            if is_secret_key(key) {
                out.json(REDACTED);
                continue;
            }
        }
        match value {
            Value::Object(map) => {
                out.put(b"{");
                stack.push(Open::Object(map.iter(), false));
            }
            Value::Array(items) => {
                out.put(b"[");
                stack.push(Open::Array(items.iter(), false));
            }
            scalar => out.json(scalar),
        }
    }
    out.cut(max)
}

/// Bytes written up to a cap; what comes after it is not kept.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(cap.min(4096)),
            cap,
        }
    }

    fn full(&self) -> bool {
        self.bytes.len() >= self.cap
    }

    fn put(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Writes `value` as JSON, stopping at the cap (a long string is not
    /// escaped past it).
    fn json(&mut self, value: &(impl serde::Serialize + ?Sized)) {
        // The only error is the cap reached.
        let _ = serde_json::to_writer(&mut *self, value);
    }

    /// The text, cut to at most `max` bytes on a character boundary and
    /// marked when anything was left out.
    fn cut(mut self, max: usize) -> String {
        if self.bytes.len() <= max {
            return String::from_utf8_lossy(&self.bytes).into_owned();
        }
        let mut end = max;
        // A continuation byte is inside a character.
        while end > 0 && self.bytes[end] & 0xC0 == 0x80 {
            end -= 1;
        }
        self.bytes.truncate(end);
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        text.push_str("…[truncated]");
        text
    }
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.full() {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.put(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AuditEvent<'_> {
    /// Writes the audit line.
    pub fn emit(&self, config: &AuditConfig) {
        let time_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let principal = self.principal.unwrap_or("");
        let duration_ms = self.duration.as_secs_f64() * 1000.0;
        let trace_id = self.trace_id.unwrap_or("");
        match self.arguments.filter(|_| config.log_arguments) {
            Some(arguments) => tracing::info!(
                target: "audit",
                time_unix_ms,
                principal,
                front_door = self.front_door.as_str(),
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
                front_door = self.front_door.as_str(),
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

    fn event(args: &str, outcome: Outcome) -> AuditEvent<'_> {
        AuditEvent {
            principal: Some("alice"),
            front_door: FrontDoor::Http,
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
        let logged =
            lines(|| event(r#"{"sql":"select 1"}"#, Outcome::Ok).emit(&AuditConfig::default()));
        assert_eq!(logged.len(), 1);
        let line = &logged[0];
        assert_eq!(line["target"], "audit");
        let f = &line["fields"];
        assert_eq!(f["principal"], "alice");
        assert_eq!(f["front_door"], "http");
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
        let logged = lines(|| event("{}", Outcome::RateLimited).emit(&AuditConfig::default()));
        assert_eq!(logged[0]["fields"]["outcome"], "rate_limited");
    }

    #[test]
    fn an_unauthenticated_call_has_an_empty_principal() {
        let mut e = event("{}", Outcome::Unauthenticated);
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
        let text = config.arguments_text(args.as_object()).expect("on");
        let logged = lines(|| event(&text, Outcome::ToolError).emit(&config));
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
        let field = small.arguments_text(big.as_object()).expect("on");
        assert!(field.ends_with("…[truncated]"), "{field}");
        assert!(field.len() <= 101 + "…[truncated]".len());
        assert_eq!(AuditConfig::default().arguments_text(big.as_object()), None);
        assert_eq!(config.arguments_text(None).as_deref(), Some("{}"));
    }

    #[test]
    fn huge_arguments_give_a_text_within_the_bound() {
        // 4 MiB in one string and a million numbers: the text stops at the
        // cut (the writer holds at most max + 1 bytes).
        let args = json!({
            "text": "x".repeat(4 << 20),
            "numbers": (0..1_000_000).collect::<Vec<u32>>(),
        });
        let map = args.as_object().expect("an object");
        for max in [0, 1, 10, 2048] {
            let text = redacted_text(map, max);
            assert!(text.ends_with("…[truncated]"), "{text}");
            assert!(text.len() <= max + "…[truncated]".len(), "{max}: {text}");
        }
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
        let text = redacted_text(v.as_object().expect("an object"), usize::MAX);
        let r: Value = serde_json::from_str(&text).expect("the text is JSON");
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

    /// What the audit showed before it wrote its text while walking: a
    /// redacted copy, serialized whole, then cut.
    fn copied_then_cut(value: &Value, max: usize) -> String {
        fn redact(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map.iter_mut() {
                        if is_secret_key(k) {
                            *v = Value::String(REDACTED.to_owned());
                        } else {
                            redact(v);
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(redact),
                _ => {}
            }
        }
        let mut copy = value.clone();
        redact(&mut copy);
        let mut text = copy.to_string();
        if text.len() <= max {
            return text;
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("…[truncated]");
        text
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever the arguments and the cut, the text is the one a redacted
        /// copy, serialized and cut, would give.
        #[test]
        fn the_text_is_what_a_redacted_copy_would_read(
            args in proptest::collection::vec(
                (secretish_key(), crate::testjson::any_json(secretish_key())),
                0..6,
            ),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let map: Map<String, Value> = args.into_iter().collect();
            let value = Value::Object(map.clone());
            let whole = copied_then_cut(&value, usize::MAX);
            let max = cut.index(whole.len() + 2);
            proptest::prop_assert_eq!(redacted_text(&map, usize::MAX), whole);
            proptest::prop_assert_eq!(redacted_text(&map, max), copied_then_cut(&value, max));
        }
    }

    fn secretish_key() -> impl proptest::strategy::Strategy<Value = String> + Clone {
        use proptest::prelude::*;
        prop_oneof![
            Just("password".to_owned()),
            Just("api_key".to_owned()),
            Just("Authorization".to_owned()),
            "[a-zA-Zé_-]{0,6}",
        ]
    }
}
