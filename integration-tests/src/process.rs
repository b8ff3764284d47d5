//! Real processes on ephemeral loopback ports, cleaned up on drop.
//!
//! Binaries are found next to the running test executable (`target/<profile>/`);
//! `make test` builds them all first. Ports are taken from the OS (bind port 0,
//! read it back) and waited on by asking the process itself (gRPC health,
//! `/healthz`), never by sleeping.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// The directory holding the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a workspace binary, with a clear message when it has not been built.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir().join(name);
    if !path.exists() {
        bail!(
            "binary {} not found: build it first with `cargo build --workspace --bins` (make test does)",
            path.display()
        );
    }
    Ok(path)
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// A fresh directory under the system temp dir, unique to this process and call.
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}-{n}", std::process::id()));
    // A leftover from an earlier process with the same id is not ours to keep.
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create scratch dir {}: {e}", dir.display());
    }
    dir
}

/// A free loopback port (bound and released; the OS will not hand it out again at once).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind an ephemeral port")?;
    Ok(listener.local_addr()?.port())
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    name: String,
}

impl Process {
    /// Starts `binary` with `args` and extra environment.
    pub fn spawn(binary: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let path = self::binary(binary)?;
        let mut cmd = Command::new(&path);
        cmd.args(args)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", path.display()))?;
        Ok(Self {
            child,
            name: binary.to_owned(),
        })
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .with_context(|| format!("kill {}", self.name))
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .with_context(|| format!("{} did not stop within 20s of SIGTERM", self.name))?
            .with_context(|| format!("wait for {}", self.name))
    }

    /// The OS process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Polls `probe` until it returns true, up to `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if probe().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// A connector process on an ephemeral port.
#[derive(Debug)]
pub struct Connector {
    /// The process.
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Connector {
    /// Starts connector `binary` on `port` (0 for a fresh one) and waits until it
    /// answers health checks (SERVING or NOT_SERVING).
    pub async fn start(binary: &str, port: u16, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = if port == 0 { free_port()? } else { port };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let listen = addr.to_string();
        let mut all_env = vec![("LISTEN_ADDR", listen.as_str())];
        all_env.extend_from_slice(env);
        let process = Process::spawn(binary, &[], &all_env)?;
        let url = format!("http://{addr}");
        wait_until(
            &format!("{binary} on {addr}"),
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    !matches!(
                        connector_kit::healthcheck::check(&url, "", Duration::from_millis(500))
                            .await,
                        connector_kit::healthcheck::HealthcheckOutcome::Unreachable(_)
                    )
                }
            },
        )
        .await?;
        Ok(Self { process, addr })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the connector reports SERVING (e.g. once its upstream answered).
    pub async fn wait_serving(&self) -> anyhow::Result<()> {
        let url = self.url();
        wait_until(
            "the connector to be SERVING",
            Duration::from_secs(60),
            || {
                let url = url.clone();
                async move {
                    connector_kit::healthcheck::check(&url, "", Duration::from_secs(1)).await
                        == connector_kit::healthcheck::HealthcheckOutcome::Serving
                }
            },
        )
        .await
    }
}

/// A router serving Streamable HTTP on an ephemeral port.
#[derive(Debug)]
pub struct HttpRouter {
    /// The process.
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl HttpRouter {
    /// Starts `switchboard` in front of `connectors` (`name=url` specs) with extra args.
    pub async fn start(connectors: &[String], extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_on(free_port()?, connectors, extra).await
    }

    /// [`HttpRouter::start`] on loopback port `port` (a replica started again
    /// where the one before it listened).
    pub async fn start_on(
        port: u16,
        connectors: &[String],
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let listen = addr.to_string();
        let mut args = vec!["--listen", listen.as_str()];
        for c in connectors {
            args.push("--connector");
            args.push(c.as_str());
        }
        args.extend_from_slice(extra);
        let process = Process::spawn("switchboard", &args, &[])?;
        let health = format!("http://{addr}/healthz");
        wait_until("switchboard /healthz", Duration::from_secs(30), || {
            let health = health.clone();
            async move { http_ok(&health).await }
        })
        .await?;
        Ok(Self { process, addr })
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

/// Whether an HTTP GET answers 200.
pub async fn http_ok(url: &str) -> bool {
    http_get_status(url).await == Some(200)
}

/// The status of an HTTP GET, if anything answers within two seconds.
pub async fn http_get_status(url: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let response = client.get(url).send().await.ok()?;
    Some(response.status().as_u16())
}
