//! Fuzzing the router's JSON-RPC handling over stdio: whatever a client writes
//! (garbage, arbitrary JSON, malformed or well-formed JSON-RPC with odd ids,
//! methods and params, deep nesting, huge strings, invalid UTF-8), the router
//! answers and stays up. After every hostile line the test sends a `ping` and
//! requires its answer, so a crash, a hang or a session torn down by one bad
//! line fails the property on the line that caused it.
//!
//! Cases: 64 generated lines plus a fixed corpus by default; set
//! `SWITCHBOARD_FUZZ_CASES` for a longer run.

use std::process::Stdio;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use integration_tests::process::binary;

use crate::support::{calculator, spec};

/// How long the router may take to answer a probe after a hostile line.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A `switchboard --stdio` process driven line by line.
struct RawStdioRouter {
    child: Child,
    stdin: ChildStdin,
    /// Every JSON message the router wrote to stdout, in order.
    out: mpsc::Receiver<Value>,
    probes: u64,
}

impl RawStdioRouter {
    async fn start(connector: &str) -> Self {
        let mut child = Command::new(binary("switchboard").expect("switchboard binary"))
            .args(["--stdio", "--connector", connector])
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn switchboard --stdio");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, out) = mpsc::channel(4096);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("the router wrote a line to stdout that is not JSON ({e}): {line:.200}")
                });
                if tx.send(value).await.is_err() {
                    break;
                }
            }
        });
        let mut router = Self {
            child,
            stdin,
            out,
            probes: 0,
        };
        router
            .write_line(
                json!({
                    "jsonrpc": "2.0", "id": "init", "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "jsonrpc-fuzz", "version": "0"}
                    }
                })
                .to_string()
                .as_bytes(),
            )
            .await
            .expect("write initialize");
        let init = router
            .wait_for_id(&json!("init"))
            .await
            .expect("initialize answered");
        assert!(init.get("result").is_some(), "initialize failed: {init}");
        router
            .write_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await
            .expect("write initialized");
        router
    }

    async fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.stdin.write_all(line).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await
    }

    /// Reads the router's output until the message answering `id`.
    async fn wait_for_id(&mut self, id: &Value) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.out.recv()).await {
                Err(_) => {
                    return Err(format!(
                        "no answer to request {id} within {PROBE_TIMEOUT:?}"
                    ));
                }
                Ok(None) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!("the router closed stdout (exit status {status:?})"));
                }
                Ok(Some(message)) if message.get("id") == Some(id) => return Ok(message),
                Ok(Some(_)) => {}
            }
        }
    }

    /// Writes `line`, then a `ping`, and requires the ping's answer: the router
    /// survived the line and its session still works.
    async fn survives(&mut self, line: &[u8]) -> Result<(), String> {
        self.write_line(line)
            .await
            .map_err(|e| format!("the router stopped reading stdin: {e}"))?;
        self.probes += 1;
        let id = json!(format!("probe-{}", self.probes));
        let ping = json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string();
        self.write_line(ping.as_bytes())
            .await
            .map_err(|e| format!("the router stopped reading stdin: {e}"))?;
        let answer = self.wait_for_id(&id).await?;
        if answer.get("result").is_none() {
            return Err(format!("ping after the line failed: {answer}"));
        }
        Ok(())
    }
}

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Methods the router knows, and some it does not.
fn method() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "initialize",
            "ping",
            "tools/list",
            "tools/call",
            "resources/list",
            "resources/read",
            "resources/subscribe",
            "resources/unsubscribe",
            "resources/templates/list",
            "prompts/list",
            "prompts/get",
            "completion/complete",
            "logging/setLevel",
            "notifications/cancelled",
            "notifications/progress",
            "notifications/initialized",
            "notifications/roots/list_changed",
            "sampling/createMessage",
        ])
        .prop_map(Value::from),
        ".{0,30}".prop_map(Value::String),
        any_json(),
    ]
}

/// Request ids as a client might send them, valid or not (never a probe's).
fn request_id() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        any::<i64>().prop_map(|n| Some(Value::from(n))),
        "[a-z0-9]{0,8}".prop_map(|s| Some(Value::String(s))),
        Just(Some(json!(1.5))),
        Just(Some(json!({"id": 1}))),
        Just(Some(json!([1]))),
    ]
}

/// Params: arbitrary JSON, or shapes close to real ones with wrong parts.
fn params() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        any_json().prop_map(Some),
        (".{0,20}", any_json()).prop_map(|(name, arguments)| Some(json!({
            "name": name, "arguments": arguments
        }))),
        any_json().prop_map(|arguments| Some(json!({"name": "calc_add", "arguments": arguments}))),
        any_json().prop_map(|uri| Some(json!({"uri": uri}))),
        any_json().prop_map(|level| Some(json!({"level": level}))),
        any_json().prop_map(|meta| Some(json!({"_meta": meta}))),
    ]
}

/// A JSON-RPC-shaped message with any part wrong.
fn jsonrpc_message() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(Some(json!("2.0"))),
            Just(None),
            Just(Some(json!("1.0"))),
            Just(Some(json!(2)))
        ],
        request_id(),
        method(),
        params(),
    )
        .prop_map(|(version, id, method, params)| {
            let mut message = serde_json::Map::new();
            if let Some(version) = version {
                message.insert("jsonrpc".into(), version);
            }
            if let Some(id) = id {
                message.insert("id".into(), id);
            }
            message.insert("method".into(), method);
            if let Some(params) = params {
                message.insert("params".into(), params);
            }
            Value::Object(message)
        })
}

/// One line a hostile client could write.
fn hostile_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => jsonrpc_message().prop_map(|m| m.to_string().into_bytes()),
        1 => prop::collection::vec(jsonrpc_message(), 0..6)
            .prop_map(|batch| Value::Array(batch).to_string().into_bytes()),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => "[^\n\r]{0,200}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..200),
        1 => (1usize..20_000).prop_map(|depth| {
            let mut s = "[".repeat(depth);
            s.push_str(&"]".repeat(depth));
            s.into_bytes()
        }),
    ]
}

/// Lines that earlier reviews or other servers' bug reports suggest.
fn corpus() -> Vec<Vec<u8>> {
    let deep_params = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"calc_add","arguments":{}1{}}}}}"#,
        r#"{"a":"#.repeat(50_000),
        "}".repeat(50_000)
    );
    let huge_string = format!(
        r#"{{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{{"name":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    vec![
        b"".to_vec(),
        b"   ".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"calc_add\"}}"
            .to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{}}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":1,\"message\":\"x\"}}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"probe-1\"}}"
            .to_vec(),
        b"\xff\xfe\xfd not utf-8".to_vec(),
        "{\"jsonrpc\":\"2.0\",\"id\":\"\u{202e}\u{0}\",\"method\":\"ping\"}"
            .as_bytes()
            .to_vec(),
        format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes(),
        "[".repeat(300_000).into_bytes(),
        deep_params.into_bytes(),
        huge_string.into_bytes(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_answers_and_survives_any_line_a_client_writes() {
    let connector = calculator().await;
    let mut router = RawStdioRouter::start(&spec("calc", &connector)).await;

    for (i, line) in corpus().into_iter().enumerate() {
        if let Err(e) = router.survives(&line).await {
            panic!(
                "corpus line {i} ({} bytes, starting {:?}) broke the router: {e}",
                line.len(),
                String::from_utf8_lossy(&line[..line.len().min(80)])
            );
        }
    }

    let cases = std::env::var("SWITCHBOARD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let handle = tokio::runtime::Handle::current();
    let mut router = tokio::task::spawn_blocking(move || {
        let router = std::cell::RefCell::new(router);
        let mut runner = TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            max_shrink_iters: 32,
            ..ProptestConfig::default()
        });
        let result = runner.run(&hostile_line(), |line| {
            handle
                .block_on(router.borrow_mut().survives(&line))
                .map_err(TestCaseError::fail)
        });
        if let Err(e) = result {
            panic!("a generated line broke the router: {e}");
        }
        router.into_inner()
    })
    .await
    .expect("fuzz task");

    // The session still does real work after all of it.
    router
        .write_line(br#"{"jsonrpc":"2.0","id":"final","method":"tools/list"}"#)
        .await
        .expect("write tools/list");
    let tools = router
        .wait_for_id(&json!("final"))
        .await
        .expect("tools/list answered");
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "tools/list after fuzzing: {tools}"
    );
    drop(connector);
}
