//! MCP over stdio on the standard streams clients really give the router:
//! socket pairs (Node's `child_process`: Claude Code, the Inspector) and pipes
//! (Python's `subprocess`, Tokio's `process`), both driven on the runtime's
//! reactor. Each case checks, on the real binary, that the router says which
//! way it drives them, answers sequential and concurrent calls, passes a
//! megabyte-sized answer and request through non-blocking writes and reads
//! that cannot take them in one go, and exits cleanly when its input ends.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use integration_tests::process::binary;

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

    /// The next answer (a message with an id), skipping notifications.
    async fn answer(&mut self) -> Value {
        loop {
            let line = tokio::time::timeout(WAIT, self.output.next_line())
                .await
                .expect("an answer in time")
                .expect("read the router's output")
                .expect("the router closed its output early");
            let message: Value = serde_json::from_str(&line).expect("a JSON line");
            if message.get("id").is_some() {
                return message;
            }
        }
    }

    async fn initialize(&mut self) {
        self.send(json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
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
