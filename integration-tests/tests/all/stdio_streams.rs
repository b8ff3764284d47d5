//! MCP over stdio on the standard streams clients really give the router:
//! socket pairs (Node's `child_process`: Claude Code, the Inspector) and pipes
//! (Python's `subprocess`, Tokio's `process`), both driven on the runtime's
//! reactor. Each case checks, on the real binary, that the router says which
//! way it drives them, answers sequential and concurrent calls, passes a
//! megabyte-sized answer and request through non-blocking writes and reads
//! that cannot take them in one go, and exits cleanly when its input ends.
//! A message over `max_body_bytes` is answered, not read, whatever it is.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use integration_tests::process::{Connector, binary};

use crate::support::{calculator, spec};

/// How long one answer, or the exit after the end of input, may take.
const WAIT: Duration = Duration::from_secs(20);

/// One MCP session over a router's standard streams, line by line.
struct Session<W, R> {
    input: W,
    output: tokio::io::Lines<BufReader<R>>,
}

impl<W: AsyncWrite + Unpin, R: AsyncRead + Unpin> Session<W, R> {
    async fn send(&mut self, message: Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.input
            .write_all(&line)
            .await
            .expect("write to the router");
        self.input.flush().await.expect("flush to the router");
    }

    /// Writes `line` and its end as they are.
    async fn send_line(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the router");
        self.input.flush().await.expect("flush to the router");
    }

    /// The next message the router writes.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.output.next_line())
            .await
            .expect("a message in time")
            .expect("read the router's output")
            .expect("the router closed its output early");
        serde_json::from_str(&line).expect("a JSON line")
    }

    /// The next answer (a message with an id), skipping notifications.
    async fn answer(&mut self) -> Value {
        loop {
            let message = self.next().await;
            if message.get("id").is_some() {
                return message;
            }
        }
    }

    async fn initialize(&mut self) {
        self.initialize_with(json!({})).await;
    }

    async fn initialize_with(&mut self, capabilities: Value) {
        self.send(json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities,
                       "clientInfo": {"name": "stdio-streams", "version": "0"}}
        }))
        .await;
        let answer = self.answer().await;
        assert!(answer.get("result").is_some(), "initialize: {answer}");
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }

    fn add(id: u64) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "calculator_add", "arguments": {"a": id, "b": 0.5}}})
    }

    fn sum_of(answer: &Value) -> f64 {
        answer["result"]["structuredContent"]["sum"]
            .as_f64()
            .unwrap_or_else(|| panic!("a sum in {answer}"))
    }

    /// Sequential calls, concurrent calls, and a large request and answer.
    async fn exercise(&mut self) {
        for id in 1..=20 {
            self.send(Self::add(id)).await;
            let answer = self.answer().await;
            assert_eq!(answer["id"], json!(id));
            assert_eq!(Self::sum_of(&answer), id as f64 + 0.5, "{answer}");
        }
        // Thirty calls in flight at once, answered in any order.
        for id in 100..130 {
            self.send(Self::add(id)).await;
        }
        let mut sums = HashMap::new();
        for _ in 100..130 {
            let answer = self.answer().await;
            let id = answer["id"].as_u64().expect("a numeric id");
            sums.insert(id, Self::sum_of(&answer));
        }
        assert_eq!(sums.len(), 30);
        for (id, sum) in sums {
            assert_eq!(sum, id as f64 + 0.5);
        }
        // A 256 KiB request whose answer repeats it four times: more than a
        // socket or pipe buffer takes at once, both ways.
        let message = "stdio ".repeat(256 * 1024 / 6);
        self.send(json!({"jsonrpc": "2.0", "id": 500, "method": "tools/call",
                         "params": {"name": "calculator_echo",
                                    "arguments": {"message": message, "repeat": 4}}}))
            .await;
        let answer = self.answer().await;
        assert_eq!(answer["id"], json!(500));
        let echoed = answer["result"]["structuredContent"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("an echoed message, got {:.300}", answer.to_string()));
        assert_eq!(echoed, [message.as_str(); 4].join(" "));
    }
}

fn router(connector: &str) -> Command {
    let mut command = Command::new(binary("switchboard").expect("switchboard binary"));
    command
        .args(["--stdio", "--connector", connector])
        .env(
            "RUST_LOG",
            "warn,switchboard_router::transport=debug,switchboard::runtime=info",
        )
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Waits for the router to exit after its input ended; returns its log.
async fn exits_cleanly(child: Child) -> String {
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the router exits once its input ends")
        .expect("wait for the router");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "exit {:?}: {log}", output.status);
    log
}

#[tokio::test]
async fn over_socket_pairs_as_node_starts_it() {
    let connector = calculator().await;
    let (ours_in, theirs_in) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let (ours_out, theirs_out) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let child = router(&spec("calculator", &connector))
        .stdin(Stdio::from(OwnedFd::from(theirs_in)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .spawn()
        .expect("spawn switchboard --stdio");
    let stream = |s: std::os::unix::net::UnixStream| {
        s.set_nonblocking(true).expect("non-blocking");
        tokio::net::UnixStream::from_std(s).expect("a tokio socket")
    };
    let mut session = Session {
        input: stream(ours_in),
        output: BufReader::new(stream(ours_out)).lines(),
    };
    session.initialize().await;
    session.exercise().await;
    // End of input: the client closes its end.
    drop(session);
    let log = exits_cleanly(child).await;
    assert!(log.contains("driven=Sockets"), "{log}");
    // One client: one worker thread, which all the calls above shared.
    assert!(log.contains("workers=1"), "{log}");
}

#[tokio::test]
async fn over_pipes_as_python_and_tokio_start_it() {
    let connector = calculator().await;
    let mut child = router(&spec("calculator", &connector))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn switchboard --stdio");
    let mut session = Session {
        input: child.stdin.take().expect("piped stdin"),
        output: BufReader::new(child.stdout.take().expect("piped stdout")).lines(),
    };
    session.initialize().await;
    session.exercise().await;
    drop(session);
    let log = exits_cleanly(child).await;
    assert!(log.contains("driven=Pipes"), "{log}");
    assert!(log.contains("workers=1"), "{log}");
}

/// A socket for input and a pipe for output: not both sockets, so neither is
/// made non-blocking and both keep the blocking handles (a socket switched to
/// non-blocking and then read through a blocking handle would fail at once).
#[tokio::test]
async fn over_a_socket_for_input_and_a_pipe_for_output() {
    let connector = calculator().await;
    let (ours_in, theirs_in) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let mut child = router(&spec("calculator", &connector))
        .stdin(Stdio::from(OwnedFd::from(theirs_in)))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn switchboard --stdio");
    ours_in.set_nonblocking(true).expect("non-blocking");
    let mut session = Session {
        input: tokio::net::UnixStream::from_std(ours_in).expect("a tokio socket"),
        output: BufReader::new(child.stdout.take().expect("piped stdout")).lines(),
    };
    session.initialize().await;
    session.exercise().await;
    drop(session);
    let log = exits_cleanly(child).await;
    assert!(log.contains("driven=Blocking"), "{log}");
}

/// The bound the tests below give the router.
const BOUND: usize = 64 * 1024;

/// A session over a child's pipes.
type Piped = Session<tokio::process::ChildStdin, tokio::process::ChildStdout>;

/// A router on pipes with `--max-body-bytes` at [`BOUND`].
fn bounded_router(connector: &str) -> (Child, Piped) {
    let mut child = router(connector)
        .args(["--max-body-bytes", &BOUND.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn switchboard --stdio");
    let session = Session {
        input: child.stdin.take().expect("piped stdin"),
        output: BufReader::new(child.stdout.take().expect("piped stdout")).lines(),
    };
    (child, session)
}

/// The refusal of a message over [`BOUND`]: JSON-RPC -32600 naming the setting.
fn assert_too_large(answer: &Value) {
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert_eq!(
        answer["error"]["data"]["setting"], "max_body_bytes",
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["limit"], BOUND, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("max_body_bytes") && message.contains("SWITCHBOARD_MAX_BODY_BYTES"),
        "{answer}"
    );
}

/// An echo request as the TypeScript SDK writes it (`id` last, after
/// `params`), padded to exactly `size` bytes.
fn echo_line(id: u64, size: usize) -> String {
    let line = |message: &str| {
        format!(
            r#"{{"method":"tools/call","params":{{"name":"calculator_echo","arguments":{{"message":"{message}"}}}},"jsonrpc":"2.0","id":{id}}}"#
        )
    };
    let frame = line("").len();
    assert!(size > frame, "{size} bytes cannot hold a request");
    line(&"s".repeat(size - frame))
}

#[tokio::test]
async fn a_message_over_max_body_bytes_is_answered_not_dropped() {
    let connector = calculator().await;
    let (child, mut session) = bounded_router(&spec("calculator", &connector));
    session.initialize().await;

    // One byte over, its id at the end of the line: refused with that id.
    session.send_line(&echo_line(41, BOUND + 1)).await;
    let refused = session.answer().await;
    assert_eq!(refused["id"], 41, "{refused}");
    assert_too_large(&refused);
    // Far over (4 MiB, more than any pipe holds), its id first.
    let huge = "h".repeat(4 << 20);
    session
        .send(
            json!({"jsonrpc": "2.0", "id": "far", "method": "tools/call",
                     "params": {"name": "calculator_echo", "arguments": {"message": huge}}}),
        )
        .await;
    let refused = session.answer().await;
    assert_eq!(refused["id"], "far", "{refused}");
    assert_too_large(&refused);

    // Exactly at the bound: read and answered.
    session.send_line(&echo_line(42, BOUND)).await;
    let answer = session.answer().await;
    assert_eq!(answer["id"], 42, "{answer}");
    let echoed = answer["result"]["structuredContent"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(echoed.len() > BOUND - 200, "{:.300}", answer.to_string());

    // A notification over it: nobody to answer; the next call is served.
    session
        .send(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                     "params": {"progressToken": huge, "progress": 1}}))
        .await;
    // Something that is no message at all: an error without an id.
    session.send_line(&format!("[\"{huge}\"]")).await;
    let unknown = session.next().await;
    assert!(unknown.get("id").is_none(), "{unknown}");
    assert_too_large(&unknown);
    session.send(Piped::add(43)).await;
    let answer = session.answer().await;
    assert_eq!(answer["id"], 43, "{answer}");
    assert_eq!(Piped::sum_of(&answer), 43.5, "{answer}");

    drop(session);
    let log = exits_cleanly(child).await;
    assert!(
        log.contains("a message over stdio is over max_body_bytes"),
        "{log}"
    );
    assert!(
        !log.contains("hhhhhhhh"),
        "the log holds no content: {log:.2000}"
    );
}

#[tokio::test]
async fn a_client_answer_over_max_body_bytes_ends_the_call_that_asked() {
    let connector = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start conformance-connector");
    let (child, mut session) = bounded_router(&format!("conformance={}", connector.url()));
    session
        .initialize_with(json!({"elicitation": {"form": {}}}))
        .await;
    session
        .send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "conformance_test_elicitation",
                                "arguments": {"message": "Who?"}}}))
        .await;
    let question = session.answer().await;
    assert_eq!(question["method"], "elicitation/create", "{question}");
    // The answer, over the bound: the call ends with the reason instead of
    // waiting for an answer that never comes.
    session
        .send(json!({"jsonrpc": "2.0", "id": question["id"],
                     "result": {"action": "accept",
                                "content": {"name": "n".repeat(BOUND)}}}))
        .await;
    let answer = session.answer().await;
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer.to_string().contains("max_body_bytes"),
        "the call says why: {answer}"
    );
    drop(session);
    exits_cleanly(child).await;
}
