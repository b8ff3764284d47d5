//! The bound on one message over stdio, and an answer for each message over
//! it.
//!
//! Over stdio a message is a line. rmcp's line reader bounds a line (16 MiB by
//! default) and drops a longer one with a line in the log and nothing else: a
//! request over the bound never gets an answer (its client waits for its own
//! timeout), and a client's answer to one of the router's questions
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`) is lost the
//! same way, leaving the call that asked waiting. Here a line is bounded by
//! the router's `max_body_bytes`, the bound of an HTTP body, and each line
//! over it is answered:
//!
//! - a request gets JSON-RPC error -32600 naming the setting (`data.setting`,
//!   `data.limit`), with the request's id;
//! - a client's answer reaches the router as an error answer to that
//!   question, so the call waiting on it ends with the reason;
//! - a notification has no one to answer: it is dropped with a warning;
//! - a line whose kind or id cannot be told gets the error without an id
//!   (JSON-RPC's answer to a request it cannot read).
//!
//! The line is never held. [`Observed`] hands the bytes on to rmcp's reader,
//! which drops a line over the bound, and reads the top level of each line as
//! it passes with a [`Scanner`]: which of `method`, `result` and `error` it
//! has, and the text of its `id` (at most [`MAX_ID_BYTES`]), wherever they are
//! in the line (the TypeScript SDK writes `id` last, after `params`). Keys and
//! ids are decoded by serde_json, so an escaped key (`"\u0069d"`) reads as
//! rmcp would read it.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::limits::LimitLog;

/// Largest `id` text read from a line over the bound (a JSON number or
/// string, with any spaces around it); a longer one counts as no id.
pub const MAX_ID_BYTES: usize = 256;

/// Largest top-level key text read, quotes and escapes included; a longer key
/// is none of the four the scanner looks for (each fits with every character
/// escaped).
const MAX_KEY_BYTES: usize = 64;

/// Lines over the bound read but not answered yet. Reading stops while this
/// many wait (each is a few hundred bytes, read from at least `max_body_bytes`
/// of input); answering them starts it again.
pub const MAX_UNANSWERED: usize = 16;

/// Warnings about lines over the bound, at most one every 10 s.
static LINES_REFUSED: LimitLog = LimitLog::new("max_body_bytes");

/// MCP over stdio with each message bounded by `max_bytes`: rmcp's transport
/// on [`Observed`] input, answering what its reader drops.
pub struct BoundedTransport<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite,
{
    inner: AsyncRwTransport<RoleServer, Observed<R>, W>,
    found: Arc<Found>,
    max_bytes: usize,
    /// The input ended: what was found before its end is still answered.
    ended: bool,
    /// An answer being written. Kept here, not in `receive`'s future: rmcp
    /// drops that future whenever another event comes first, and a write
    /// dropped halfway would leave half a line on the output.
    sending: Option<Sending>,
}

/// A write of rmcp's transport, in progress.
type Sending = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

impl<R, W> BoundedTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    /// The transport on `input` and `output`, each message at most
    /// `max_bytes` (its line's end not counted).
    pub fn new(input: R, output: W, max_bytes: usize) -> Self {
        let found = Arc::new(Found::default());
        // rmcp counts the line's end; a line of exactly `max_bytes` passes.
        let max_line = max_bytes.saturating_add(1);
        let observed = Observed::new(input, max_line, found.clone());
        let inner = AsyncRwTransport::new(observed, output).with_max_line_length(max_line);
        Self {
            inner,
            found,
            max_bytes,
            ended: false,
            sending: None,
        }
    }

    /// The error a line over the bound is answered with.
    fn too_large(&self, line: &Oversized) -> ErrorData {
        let what = match line.kind {
            Kind::Answer(_) => "the client's answer",
            _ => "the message",
        };
        too_large(what, line.bytes, self.max_bytes)
    }
}

/// The error for `what` (a message, the client's answer), `bytes` long, over
/// `max_body_bytes` = `max`; over stdio and over HTTP alike.
pub fn too_large(what: &str, bytes: impl std::fmt::Display, max: usize) -> ErrorData {
    ErrorData::new(
        ErrorCode::INVALID_REQUEST,
        format!(
            "{what} is {bytes} bytes, more than the router accepts (max_body_bytes = {max}): send less, or raise --max-body-bytes / SWITCHBOARD_MAX_BODY_BYTES"
        ),
        Some(json!({ "setting": "max_body_bytes", "limit": max })),
    )
}

impl<R, W> Transport<RoleServer> for BoundedTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            if let Some(sending) = self.sending.as_mut() {
                let sent = sending.await;
                self.sending = None;
                if let Err(error) = sent {
                    tracing::debug!(%error, "an answer to a message over max_body_bytes could not be written");
                    return None;
                }
            }
            if let Some(line) = self.found.next() {
                LINES_REFUSED.hit(
                    self.max_bytes,
                    &format!(
                        "a message over stdio is over max_body_bytes: not read ({} bytes, kind {})",
                        line.bytes,
                        line.kind.name()
                    ),
                );
                let error = self.too_large(&line);
                let answer = match line.kind {
                    Kind::Request(id) => ServerJsonRpcMessage::error(error, Some(id)),
                    Kind::Unknown => ServerJsonRpcMessage::error(error, None),
                    Kind::Answer(id) => return Some(ClientJsonRpcMessage::error(error, Some(id))),
                    Kind::Notification => continue,
                };
                self.sending = Some(Box::pin(self.inner.send(answer)));
                continue;
            }
            if self.ended {
                return None;
            }
            // rmcp's receive keeps a line it has begun across cancellation
            // (its service loop polls it in a select too).
            tokio::select! {
                biased;
                message = self.inner.receive() => match message {
                    Some(message) => return Some(message),
                    // A line over the bound just before the end may have
                    // been found by the same read.
                    None => self.ended = true,
                },
                () = self.found.notify.notified() => {}
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await
    }
}

/// Lines over the bound the reader found, waiting for an answer.
#[derive(Debug, Default)]
struct Found {
    lines: Mutex<VecDeque<Oversized>>,
    /// Told when a line is added, or when reading stopped for answers.
    notify: Notify,
}

impl Found {
    fn lines(&self) -> MutexGuard<'_, VecDeque<Oversized>> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next(&self) -> Option<Oversized> {
        self.lines().pop_front()
    }
}

/// A line over the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Oversized {
    /// Its size, its end not counted.
    bytes: usize,
    kind: Kind,
}

/// What a line says it is, by the keys at its top level (as rmcp tells a
/// request from an answer).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `method` and `id`.
    Request(RequestId),
    /// `result` or `error`, and `id`: the client's answer to a question.
    Answer(RequestId),
    /// `method` without `id`.
    Notification,
    /// Anything else: not an object, no readable id, or an id too long.
    Unknown,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Self::Request(_) => "request",
            Self::Answer(_) => "answer",
            Self::Notification => "notification",
            Self::Unknown => "unknown",
        }
    }
}

/// Input passed on unchanged to rmcp's reader, each line measured and its
/// top level read on the way; a line over the bound is put in [`Found`].
pub struct Observed<R> {
    input: R,
    /// Largest line, its end counted (as rmcp's reader counts it).
    max_line: usize,
    /// Bytes of the current line so far.
    line: usize,
    scanner: Scanner,
    found: Arc<Found>,
}

impl<R> Observed<R> {
    fn new(input: R, max_line: usize, found: Arc<Found>) -> Self {
        Self {
            input,
            max_line,
            line: 0,
            scanner: Scanner::default(),
            found,
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(end) => {
                    self.scanner.feed(&bytes[..end]);
                    self.line = self.line.saturating_add(end + 1);
                    if self.line > self.max_line {
                        let line = Oversized {
                            bytes: self.line - 1,
                            kind: self.scanner.kind(),
                        };
                        self.found.lines().push_back(line);
                        self.found.notify.notify_one();
                    }
                    self.line = 0;
                    self.scanner.reset();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.scanner.feed(bytes);
                    self.line = self.line.saturating_add(bytes.len());
                    bytes = &[];
                }
            }
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Observed<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.found.lines().len() >= MAX_UNANSWERED {
            // The transport is polled in the same task: told, it answers
            // them and reads on.
            this.found.notify.notify_one();
            return Poll::Pending;
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.input).poll_read(cx, buf))?;
        this.observe(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

/// Where the scanner is in a line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the first byte that is not a space or a byte order mark.
    #[default]
    Before,
    /// Inside the top-level object.
    Inside,
    /// Past its end, or the line is not an object: nothing more to read.
    Over,
}

/// Reads the top level of one JSON object streamed in pieces, holding at most
/// [`MAX_KEY_BYTES`] and [`MAX_ID_BYTES`]: which of `method`, `result` and
/// `error` it has, and the text of its first `id`. It does not check the
/// JSON: a line that is not what it seems gets an answer without an id.
#[derive(Debug, Default)]
pub struct Scanner {
    phase: Phase,
    /// Open objects and arrays; 1 is the top level.
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// At the top level, the next string is a key.
    expect_key: bool,
    /// The string being read is a top-level key, kept in `key`.
    in_key: bool,
    key: Vec<u8>,
    /// The last top-level key was `id`: its value is read into `id`.
    key_is_id: bool,
    in_id: bool,
    id: Vec<u8>,
    /// The first top-level `id`'s text, or `None` when too long.
    id_text: Option<Option<Vec<u8>>>,
    method: bool,
    answer: bool,
    /// The top-level object ended.
    closed: bool,
}

impl Scanner {
    /// Ready for the next line, keeping what it allocated.
    pub fn reset(&mut self) {
        let (mut key, mut id) = (std::mem::take(&mut self.key), std::mem::take(&mut self.id));
        key.clear();
        id.clear();
        *self = Self {
            key,
            id,
            ..Self::default()
        };
    }

    /// Reads the next piece of the line.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() && self.phase != Phase::Over {
            if self.in_string && !self.escaped && !self.in_key && !self.in_id {
                // The inside of a string nobody keeps: jump to its next quote
                // or escape.
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    Some(at) => i += at,
                    None => return,
                }
            }
            self.byte(bytes[i]);
            i += 1;
        }
    }

    fn byte(&mut self, b: u8) {
        if self.phase == Phase::Before {
            match b {
                b' ' | b'\t' | b'\r' | 0xEF | 0xBB | 0xBF => {}
                b'{' => {
                    self.phase = Phase::Inside;
                    self.depth = 1;
                    self.expect_key = true;
                }
                _ => self.phase = Phase::Over,
            }
            return;
        }
        // The byte that ends the top-level id (`,` or the object's `}`) is
        // not part of it.
        let ends_value = !self.in_string && self.depth == 1 && matches!(b, b',' | b'}');
        if self.in_id && !ends_value {
            keep(&mut self.id, b, MAX_ID_BYTES);
        }
        if self.in_string {
            if self.in_key {
                keep(&mut self.key, b, MAX_KEY_BYTES);
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                if self.in_key {
                    self.in_key = false;
                    self.read_key();
                }
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.expect_key {
                    self.in_key = true;
                    self.key.clear();
                    keep(&mut self.key, b, MAX_KEY_BYTES);
                }
            }
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.end_id();
                    self.phase = Phase::Over;
                    self.closed = true;
                }
            }
            b':' if self.depth == 1 => {
                self.expect_key = false;
                if self.key_is_id && self.id_text.is_none() {
                    self.in_id = true;
                    self.id.clear();
                }
            }
            b',' if self.depth == 1 => {
                self.end_id();
                self.expect_key = true;
            }
            _ => {}
        }
    }

    /// The top-level key just read, as serde_json reads it.
    fn read_key(&mut self) {
        let name = if self.key.len() > MAX_KEY_BYTES {
            None
        } else if self.key.contains(&b'\\') {
            serde_json::from_slice::<String>(&self.key).ok()
        } else {
            self.key
                .get(1..self.key.len().saturating_sub(1))
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned)
        };
        self.key_is_id = false;
        match name.as_deref() {
            Some("method") => self.method = true,
            Some("result" | "error") => self.answer = true,
            Some("id") => self.key_is_id = true,
            _ => {}
        }
    }

    fn end_id(&mut self) {
        if !self.in_id {
            return;
        }
        self.in_id = false;
        self.id_text = Some((self.id.len() <= MAX_ID_BYTES).then(|| self.id.clone()));
    }

    /// The id of a client's answer whose object has not ended (it may be too
    /// large to read to its end): its top-level `id` has been read whole and
    /// a `result` or `error` key seen, no `method`. What clients write puts
    /// the `id` before the result; one written the other way round is not
    /// recognised before its end.
    pub fn answer_so_far(&self) -> Option<RequestId> {
        if self.method || !self.answer {
            return None;
        }
        let text = self.id_text.as_ref()?.as_ref()?;
        serde_json::from_slice::<RequestId>(text).ok()
    }

    /// What the line read so far is: [`Kind::Unknown`] unless its object
    /// ended.
    fn kind(&self) -> Kind {
        if !self.closed {
            return Kind::Unknown;
        }
        let id = self.id_text.as_ref().map(|text| {
            text.as_ref()
                .and_then(|t| serde_json::from_slice::<RequestId>(t).ok())
        });
        match (id, self.method, self.answer) {
            (Some(Some(id)), true, _) => Kind::Request(id),
            (Some(Some(id)), false, true) => Kind::Answer(id),
            (None, true, _) => Kind::Notification,
            _ => Kind::Unknown,
        }
    }
}

/// Appends `b` to `kept` until it is one byte past `max` (which marks it too
/// long without holding more).
fn keep(kept: &mut Vec<u8>, b: u8, max: usize) {
    if kept.len() <= max {
        kept.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(line: &str) -> Kind {
        let mut scanner = Scanner::default();
        scanner.feed(line.as_bytes());
        scanner.kind()
    }

    /// The same line fed one byte at a time reads the same.
    fn kind_bytewise(line: &str) -> Kind {
        let mut scanner = Scanner::default();
        for b in line.as_bytes() {
            scanner.feed(std::slice::from_ref(b));
        }
        scanner.kind()
    }

    fn number(n: i64) -> RequestId {
        RequestId::Number(n)
    }

    #[test]
    fn an_answer_is_known_by_its_id_and_result_before_its_end() {
        let read = |prefix: &str| {
            let mut scanner = Scanner::default();
            scanner.feed(prefix.as_bytes());
            scanner.answer_so_far()
        };
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","id":3,"result":{"content":"xxxx"#),
            Some(number(3))
        );
        assert_eq!(
            read(r#"{"id":"a\"b","error":{"code":1"#),
            Some(RequestId::String("a\"b".into()))
        );
        // The id not read whole yet, a request, or a result before its id.
        assert_eq!(read(r#"{"jsonrpc":"2.0","id":3"#), None);
        assert_eq!(read(r#"{"id":3,"method":"ping","result":{"#), None);
        assert_eq!(read(r#"{"result":{"x":1},"id":4"#), None);
        assert_eq!(read(r#"{"id":3,"params":{"result":1"#), None);
    }

    #[test]
    fn requests_answers_and_notifications_are_told_apart_wherever_their_id_is() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"id":1}}"#,
                Kind::Request(number(7)),
            ),
            // The TypeScript SDK: method, params, jsonrpc, then id.
            (
                r#"{"method":"tools/call","params":{"arguments":{"id":"x","method":2}},"jsonrpc":"2.0","id":"abc"}"#,
                Kind::Request(RequestId::String("abc".into())),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"result":{"action":"accept"}}"#,
                Kind::Answer(number(3)),
            ),
            (
                r#" {"error":{"code":-1,"message":"no"},"id": 12 ,"jsonrpc":"2.0"}"#,
                Kind::Answer(number(12)),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"id":4}}"#,
                Kind::Notification,
            ),
            // Escaped keys and string ids read as serde_json reads them.
            (
                r#"{"\u0069d":"a\"b","m\u0065thod":"ping"}"#,
                Kind::Request(RequestId::String("a\"b".into())),
            ),
            // A byte order mark and a carriage return before the object.
            (
                "\u{feff}\r{\"id\":1,\"method\":\"ping\"}",
                Kind::Request(number(1)),
            ),
        ];
        for (line, kind) in cases {
            assert_eq!(kind_of(line), kind, "{line}");
            assert_eq!(kind_bytewise(line), kind, "byte by byte: {line}");
        }
    }

    #[test]
    fn what_cannot_be_told_is_unknown() {
        let long_id = format!(r#"{{"id":"{}","method":"ping"}}"#, "x".repeat(MAX_ID_BYTES));
        for line in [
            "[1,2,3]",
            "not json",
            r#"{"id":{"nested":1},"method":"ping"}"#,
            r#"{"id":1.5,"method":"ping"}"#,
            r#"{"id":null,"method":"ping"}"#,
            r#"{"id":1}"#,
            // Cut before its id ends.
            r#"{"method":"ping","id":12"#,
            long_id.as_str(),
        ] {
            assert_eq!(kind_of(line), Kind::Unknown, "{line}");
        }
    }

    #[test]
    fn only_the_top_level_counts() {
        // `id`, `method` and `result` inside params, strings with braces,
        // quotes and colons in them.
        let line = r#"{"params":{"id":9,"method":"x","result":1,"s":"}\",{:"},"jsonrpc":"2.0","method":"m","id":2,"x":["{\"id\":3}"]}"#;
        assert_eq!(kind_of(line), Kind::Request(number(2)));
        // After the object ends nothing is read.
        assert_eq!(kind_of(r#"{"method":"m"} {"id":1}"#), Kind::Notification);
    }

    #[test]
    fn the_first_id_is_kept_and_the_scanner_holds_at_most_its_bounds() {
        assert_eq!(
            kind_of(r#"{"id":1,"id":2,"method":"m"}"#),
            Kind::Request(number(1))
        );
        let mut scanner = Scanner::default();
        let huge = format!(
            r#"{{"id":"{}","{}":1,"method":"m"}}"#,
            "i".repeat(100_000),
            "k".repeat(100_000)
        );
        scanner.feed(huge.as_bytes());
        assert!(scanner.id.len() <= MAX_ID_BYTES + 1);
        assert!(scanner.key.len() <= MAX_KEY_BYTES + 1);
        assert_eq!(scanner.kind(), Kind::Unknown);
        scanner.reset();
        scanner.feed(br#"{"id":5,"method":"m"}"#);
        assert_eq!(scanner.kind(), Kind::Request(number(5)));
    }

    #[test]
    fn lines_over_the_bound_are_found_and_the_rest_pass_unseen() {
        let found = Arc::new(Found::default());
        // A bound of 21 bytes: a line of 22 with its end.
        let mut observed = Observed::new(tokio::io::empty(), 22, found.clone());
        let at = br#"{"id":1,"method":"a"}"#;
        assert_eq!(at.len(), 21);
        let over = br#"{"id":1,"method":"ab"}"#;
        let notification = br#"{"method":"n","params":"long"}"#;
        let mut input = Vec::new();
        for line in [&at[..], over, at, notification] {
            input.extend_from_slice(line);
            input.push(b'\n');
        }
        // In pieces of three bytes, as reads may come.
        for piece in input.chunks(3) {
            observed.observe(piece);
        }
        let lines: Vec<Oversized> = found.lines().drain(..).collect();
        assert_eq!(
            lines,
            [
                Oversized {
                    bytes: over.len(),
                    kind: Kind::Request(number(1))
                },
                Oversized {
                    bytes: notification.len(),
                    kind: Kind::Notification
                }
            ]
        );
    }

    mod property {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::super::*;

        fn key() -> impl Strategy<Value = String> + Clone {
            prop_oneof![
                Just("id".to_owned()),
                Just("method".to_owned()),
                Just("result".to_owned()),
                Just("error".to_owned()),
                Just("params".to_owned()),
                Just("jsonrpc".to_owned()),
                ".{0,8}",
            ]
        }

        /// `key` as JSON text, plainly or with every character escaped.
        fn key_text(key: &str, escaped: bool) -> String {
            if !escaped {
                return Value::from(key).to_string();
            }
            let mut text = String::from("\"");
            for unit in key.encode_utf16() {
                text.push_str(&format!("\\u{unit:04x}"));
            }
            text.push('"');
            text
        }

        /// What the line is, read by serde_json as a whole.
        fn expected(fields: &[(String, Value)]) -> Kind {
            let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            let id = get("id").map(|id| {
                let text = id.to_string();
                (text.len() <= MAX_ID_BYTES)
                    .then(|| serde_json::from_value::<RequestId>(id.clone()).ok())
                    .flatten()
            });
            let method = get("method").is_some();
            let answer = get("result").is_some() || get("error").is_some();
            match (id, method, answer) {
                (Some(Some(id)), true, _) => Kind::Request(id),
                (Some(Some(id)), false, true) => Kind::Answer(id),
                (None, true, _) => Kind::Notification,
                _ => Kind::Unknown,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever the object holds, in whatever order and however its
            /// keys are written, fed in pieces of any size, the scanner reads
            /// its top level as serde_json does.
            #[test]
            fn the_scanner_reads_the_top_level_as_serde_json_does(
                fields in prop::collection::vec(
                    (key(), prop_oneof![crate::testjson::any_json(key()), any::<i64>().prop_map(Value::from), ".{0,6}".prop_map(Value::from)]),
                    0..7,
                ),
                escaped in any::<bool>(),
                piece in 1usize..64,
            ) {
                // Each key once, as serde_json's map would keep it.
                let mut unique: Vec<(String, Value)> = Vec::new();
                for (k, v) in fields {
                    if !unique.iter().any(|(seen, _)| *seen == k) {
                        unique.push((k, v));
                    }
                }
                let body: Vec<String> = unique
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", key_text(k, escaped)))
                    .collect();
                let line = format!("{{{}}}", body.join(","));
                let mut scanner = Scanner::default();
                for chunk in line.as_bytes().chunks(piece) {
                    scanner.feed(chunk);
                }
                prop_assert_eq!(scanner.kind(), expected(&unique), "{}", line);
            }
        }
    }

    mod transport {
        use proptest::prelude::*;
        use rmcp::model::JsonRpcMessage;
        use serde_json::{Value, json};
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

        use super::super::*;

        /// The bound these tests give the transport.
        const MAX: usize = 512;

        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Sent {
            Request,
            Notification,
            Answer,
        }

        /// One line of `kind` with id `id`, padded by `pad` bytes, `id` first
        /// or last.
        fn line(kind: Sent, id: i64, pad: usize, id_last: bool) -> String {
            let pad = "p".repeat(pad);
            let body = match kind {
                Sent::Request => json!({"method": "tools/call",
                    "params": {"name": "t", "arguments": {"pad": pad}}}),
                Sent::Notification => json!({"method": "notifications/progress",
                    "params": {"progressToken": "t", "progress": 1, "message": pad}}),
                Sent::Answer => json!({"result": {"pad": pad}}),
            };
            let Value::Object(body) = body else {
                unreachable!("an object")
            };
            let mut text = String::from("{");
            if !id_last && kind != Sent::Notification {
                text.push_str(&format!(r#""id":{id},"#));
            }
            for (k, v) in &body {
                text.push_str(&format!("{}:{v},", Value::from(k.as_str())));
            }
            text.push_str(r#""jsonrpc":"2.0""#);
            if id_last && kind != Sent::Notification {
                text.push_str(&format!(r#","id":{id}"#));
            }
            text.push('}');
            text
        }

        /// What the router sees and what the client reads back, for `lines`
        /// written in pieces of `piece` bytes.
        async fn exchange(
            lines: Vec<String>,
            piece: usize,
            max: usize,
        ) -> (Vec<ClientJsonRpcMessage>, Vec<Value>) {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let (server_in, server_out) = tokio::io::split(server);
            let (client_in, mut client_out) = tokio::io::split(client);
            let mut transport = BoundedTransport::new(server_in, server_out, max);
            let write = async move {
                let mut all = Vec::new();
                for line in lines {
                    all.extend_from_slice(line.as_bytes());
                    all.push(b'\n');
                }
                for chunk in all.chunks(piece) {
                    client_out.write_all(chunk).await.expect("write");
                }
                client_out.shutdown().await.expect("end of input");
            };
            let serve = async move {
                let mut received = Vec::new();
                while let Some(message) = transport.receive().await {
                    received.push(message);
                }
                transport.close().await.expect("close");
                received
            };
            let read = async move {
                let mut answers = Vec::new();
                let mut lines = BufReader::new(client_in).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    answers.push(serde_json::from_str::<Value>(&line).expect("JSON"));
                }
                answers
            };
            let ((), received, answers) = tokio::join!(write, serve, read);
            (received, answers)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Lines of every kind around the bound, in any order and any
            /// pieces: each line within the bound reaches the router as it
            /// was, each request over it is answered with its id, each answer
            /// over it reaches the router as an error for its id, and nothing
            /// else comes back.
            #[test]
            fn every_line_is_delivered_or_answered_exactly_once(
                sent in prop::collection::vec(
                    (
                        prop_oneof![Just(Sent::Request), Just(Sent::Notification), Just(Sent::Answer)],
                        prop_oneof![0usize..64, (MAX - 140)..(MAX - 40), MAX..(MAX * 20)],
                        any::<bool>(),
                    ),
                    1..24,
                ),
                piece in prop_oneof![1usize..16, 16usize..5000],
            ) {
                let lines: Vec<(Sent, i64, String)> = sent
                    .iter()
                    .enumerate()
                    .map(|(i, &(kind, pad, id_last))| {
                        let id = i as i64;
                        (kind, id, line(kind, id, pad, id_last))
                    })
                    .collect();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let (received, answers) = runtime
                    .block_on(exchange(lines.iter().map(|(_, _, l)| l.clone()).collect(), piece, MAX));

                let mut expect_received = Vec::new();
                let mut expect_answered = Vec::new();
                for (kind, id, text) in &lines {
                    let over = text.len() > MAX;
                    match (kind, over) {
                        (_, false) => expect_received.push((*kind, *id, false)),
                        (Sent::Request, true) => expect_answered.push(*id),
                        (Sent::Answer, true) => expect_received.push((*kind, *id, true)),
                        (Sent::Notification, true) => {}
                    }
                }
                let got_received: Vec<(Sent, i64, bool)> = received
                    .iter()
                    .map(|m| match m {
                        JsonRpcMessage::Request(r) => (Sent::Request, id_number(&r.id), false),
                        JsonRpcMessage::Notification(_) => (Sent::Notification, -1, false),
                        JsonRpcMessage::Response(r) => (Sent::Answer, id_number(&r.id), false),
                        JsonRpcMessage::Error(e) => {
                            (Sent::Answer, e.id.as_ref().map_or(-2, id_number), true)
                        }
                    })
                    .collect();
                let expect_received: Vec<(Sent, i64, bool)> = expect_received
                    .into_iter()
                    .map(|(k, id, e)| (k, if k == Sent::Notification { -1 } else { id }, e))
                    .collect();
                // Lines over the bound are handled when found: order within
                // each kind is kept.
                let mut sorted_got = got_received.clone();
                let mut sorted_expected = expect_received.clone();
                sorted_got.sort_by_key(|&(_, id, e)| (id, e));
                sorted_expected.sort_by_key(|&(_, id, e)| (id, e));
                prop_assert_eq!(sorted_got, sorted_expected);
                let answered: Vec<i64> = answers
                    .iter()
                    .map(|a| {
                        assert_eq!(a["error"]["data"]["setting"], "max_body_bytes", "{a}");
                        a["id"].as_i64().unwrap_or(-2)
                    })
                    .collect();
                prop_assert_eq!(answered, expect_answered);
            }
        }

        /// Many lines over the bound in one read: reading stops while
        /// [`MAX_UNANSWERED`] wait, and every one is answered, in order.
        #[tokio::test]
        async fn a_flood_of_lines_over_the_bound_is_answered_in_order() {
            let lines: Vec<String> = (0..200)
                .map(|id| format!(r#"{{"id":{id},"method":"tools/call"}}"#))
                .collect();
            let (received, answers) = exchange(lines, 1 << 20, 8).await;
            assert!(received.is_empty(), "{received:?}");
            let ids: Vec<i64> = answers.iter().filter_map(|a| a["id"].as_i64()).collect();
            assert_eq!(ids, (0..200).collect::<Vec<i64>>());
        }

        /// rmcp's service loop polls `receive` in a select and drops it when
        /// another branch is ready: an answer being written when that
        /// happens is still written whole, once.
        #[tokio::test]
        async fn an_answer_cut_off_by_a_cancelled_receive_is_written_whole_once() {
            // Pipes of 64 bytes: the answer (about 300) waits for the client
            // to read.
            let (client, server) = tokio::io::duplex(64);
            let (server_in, server_out) = tokio::io::split(server);
            let (client_in, mut client_out) = tokio::io::split(client);
            let mut transport = BoundedTransport::new(server_in, server_out, 8);
            client_out
                .write_all(b"{\"id\":1,\"method\":\"m\"}\n")
                .await
                .expect("write");
            let cut =
                tokio::time::timeout(std::time::Duration::from_millis(200), transport.receive())
                    .await;
            assert!(cut.is_err(), "the answer cannot be written yet: {cut:?}");
            client_out.shutdown().await.expect("end of input");
            let read = tokio::spawn(async move {
                let mut lines = BufReader::new(client_in).lines();
                let mut answers = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    answers.push(line);
                }
                answers
            });
            assert!(transport.receive().await.is_none(), "the input ended");
            drop(transport);
            let answers = read.await.expect("reader");
            assert_eq!(answers.len(), 1, "{answers:?}");
            let answer: Value = serde_json::from_str(&answers[0]).expect("a whole JSON line");
            assert_eq!(answer["id"], 1, "{answer}");
        }

        fn id_number(id: &RequestId) -> i64 {
            match id {
                RequestId::Number(n) => *n,
                RequestId::String(_) => -3,
            }
        }
    }
}
