//! Shared helpers: an MCP client that records notifications, and stack start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use integration_tests::process::{Connector, HttpRouter, Process, binary};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProgressNotificationParam, Tool,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, watch};

/// Records what the server sends unprompted.
#[derive(Clone)]
pub struct Recorder {
    pub list_changed: watch::Sender<usize>,
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    pub progress_count: Arc<AtomicUsize>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            list_changed: watch::channel(0).0,
            progress: Arc::default(),
            progress_count: Arc::default(),
        }
    }
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("switchboard-tests", "0"),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.send_modify(|n| *n += 1);
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().await.push(params);
        self.progress_count.fetch_add(1, Ordering::SeqCst);
    }
}

pub type Client = RunningService<RoleClient, Recorder>;

/// `name=url` spec for a connector.
pub fn spec(name: &str, connector: &Connector) -> String {
    format!("{name}={}", connector.url())
}

/// Starts the calculator test connector.
pub async fn calculator() -> Connector {
    Connector::start("test-connector", 0, &[])
        .await
        .expect("start test connector")
}

/// An MCP client talking to `switchboard --stdio` started with `args`.
pub async fn stdio_client(args: &[String]) -> (Client, Recorder) {
    let path = binary("switchboard").expect("switchboard binary");
    let mut cmd = tokio::process::Command::new(path);
    cmd.arg("--stdio").args(args).env("RUST_LOG", "warn");
    let transport = TokioChildProcess::new(cmd).expect("spawn switchboard --stdio");
    let recorder = Recorder::new();
    let client = recorder
        .clone()
        .serve(transport)
        .await
        .expect("MCP initialize over stdio");
    (client, recorder)
}

/// An MCP client talking to a router over Streamable HTTP.
pub async fn http_client(router: &HttpRouter) -> (Client, Recorder) {
    http_client_at(&router.mcp_url()).await
}

/// An MCP client talking to the router at `url` over Streamable HTTP.
pub async fn http_client_at(url: &str) -> (Client, Recorder) {
    let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
    let recorder = Recorder::new();
    let client = recorder
        .clone()
        .serve(transport)
        .await
        .expect("MCP initialize over HTTP");
    (client, recorder)
}

/// Connector specs as `--connector` arguments.
pub fn connector_args(specs: &[String]) -> Vec<String> {
    specs
        .iter()
        .flat_map(|s| ["--connector".to_owned(), s.clone()])
        .collect()
}

pub fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

pub async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool} failed at the protocol level: {e}"))
}

/// The text of a result's first content block.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

pub async fn tool_names(client: &Client) -> Vec<String> {
    client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

pub async fn find_tool(client: &Client, name: &str) -> Tool {
    client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("tool {name} is not listed"))
}

/// Waits until the client has seen more than `seen` list_changed notifications.
pub async fn wait_list_changed(recorder: &Recorder, seen: usize) {
    let mut rx = recorder.list_changed.subscribe();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|n| *n > seen))
        .await
        .expect("notifications/tools/list_changed within 30s")
        .expect("recorder alive");
}

/// Waits, through list_changed notifications, until the listed tool names satisfy
/// `done` (a notification may also be a late one from an earlier change).
pub async fn wait_for_tools(
    client: &Client,
    recorder: &Recorder,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut rx = recorder.list_changed.subscribe();
    loop {
        rx.mark_unchanged();
        let names = tool_names(client).await;
        if done(&names) {
            return;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !remaining.is_zero(),
            "timed out waiting for {what}; tools: {names:?}"
        );
        let _ = tokio::time::timeout(remaining, rx.changed()).await;
    }
}

/// Restarts a connector on the same port with extra environment.
pub async fn restart(connector: &mut Connector, env: &[(&str, &str)]) {
    connector.process.kill().await.expect("kill connector");
    let port = connector.addr.port();
    *connector = Connector::start("test-connector", port, env)
        .await
        .expect("restart test connector");
}

/// Keeps a process alive for the test's duration.
#[allow(dead_code)]
pub fn keep(_p: &Process) {}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A `redis-server` of this test's own, on a free port.
pub async fn own_redis() -> Option<(tokio::process::Child, u16)> {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let message = "redis-server is not installed (apt-get install redis-server)";
        assert!(!in_ci(), "CI=true: {message}");
        eprintln!("\n*** SKIPPED (not passed): {message}\n");
        return None;
    }
    let port = integration_tests::process::free_port().expect("port");
    let mut command = tokio::process::Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let process = command.spawn().expect("start redis-server");
    let addr = format!("127.0.0.1:{port}");
    integration_tests::process::wait_until("redis-server", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(&addr).await.is_ok()
    })
    .await
    .expect("redis-server up");
    Some((process, port))
}

/// The `_meta` of a stateless (2026-07-28) request from a client that can
/// answer questions (it declares `elicitation`).
pub fn answering_client_meta() -> Value {
    serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "rounds-test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}
    })
}
