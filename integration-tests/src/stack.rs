//! The whole Switchboard stack as local processes: every connector listed in
//! `deploy/connectors.toml` and the router, with each service's log lines
//! prefixed by its name.
//!
//! This is the one place that knows how to start everything: `make run` uses it
//! through the `stack` binary, and tests and benchmarks use it as a library
//! (with ephemeral ports). Stopping sends SIGTERM to every process, waits for
//! them to exit, and kills any that do not, so no process is left behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::process::{binary, free_port, http_ok, wait_until};

/// One connector of the stack.
#[derive(Debug, Clone)]
pub struct ConnectorSpec {
    /// Router-side name (tool prefix).
    pub name: &'static str,
    /// Binary name.
    pub binary: &'static str,
    /// Port it listens on.
    pub port: u16,
}

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Where the router serves Streamable HTTP.
    pub router_addr: SocketAddr,
    /// The connectors to start.
    pub connectors: Vec<ConnectorSpec>,
    /// Working directory of the processes (code analysis analyses it; the demo
    /// database is created there unless configured otherwise).
    pub workdir: PathBuf,
    /// Extra environment for every process.
    pub env: Vec<(String, String)>,
}

/// The deployed connectors: `deploy/connectors.toml`, the list compose, the
/// Kubernetes manifests and `.env.example` are generated from
/// (`make deploy-sync`). Compiled in, so the runner needs no file at run time.
const CONNECTORS_TOML: &str = include_str!("../../deploy/connectors.toml");

/// One `[[connectors]]` entry of `deploy/connectors.toml` (the fields the stack
/// runner uses; the deployment fields are read by scripts/sync-deploy).
#[derive(Debug, serde::Deserialize)]
struct Deployed {
    name: String,
    binary: String,
    port: u16,
}

#[derive(Debug, serde::Deserialize)]
struct DeployedList {
    connectors: Vec<Deployed>,
}

/// `deploy/connectors.toml` parsed once; the error names the file.
static DEPLOYED: LazyLock<Result<Vec<Deployed>, String>> =
    LazyLock::new(|| parse_connectors(CONNECTORS_TOML));

fn parse_connectors(text: &str) -> Result<Vec<Deployed>, String> {
    let list: DeployedList =
        toml::from_str(text).map_err(|e| format!("deploy/connectors.toml: {e}"))?;
    if list.connectors.is_empty() {
        return Err("deploy/connectors.toml lists no connector".to_owned());
    }
    Ok(list.connectors)
}

/// Every connector of `deploy/connectors.toml`, on its deployed port.
pub fn default_connectors() -> anyhow::Result<Vec<ConnectorSpec>> {
    let deployed = DEPLOYED.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(deployed
        .iter()
        .map(|c| ConnectorSpec {
            name: &c.name,
            binary: &c.binary,
            port: c.port,
        })
        .collect())
}

impl StackConfig {
    /// The default local stack: router on 127.0.0.1:8080, connectors on their
    /// deployed ports.
    pub fn local(workdir: PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            router_addr: ([127, 0, 0, 1], 8080).into(),
            connectors: default_connectors()?,
            workdir,
            env: Vec::new(),
        })
    }

    /// The same stack on ephemeral ports (tests, benchmarks).
    pub fn ephemeral(workdir: PathBuf) -> anyhow::Result<Self> {
        let mut connectors = default_connectors()?;
        for c in &mut connectors {
            c.port = free_port()?;
        }
        Ok(Self {
            router_addr: ([127, 0, 0, 1], free_port()?).into(),
            connectors,
            workdir,
            env: Vec::new(),
        })
    }

    /// `name=http://127.0.0.1:port` for every connector.
    pub fn connector_specs(&self) -> Vec<String> {
        self.connectors
            .iter()
            .map(|c| format!("{}=http://127.0.0.1:{}", c.name, c.port))
            .collect()
    }

    /// Arguments for `switchboard --stdio` against this stack's connectors.
    pub fn stdio_args(&self) -> Vec<String> {
        let mut args = vec!["--stdio".to_owned()];
        for spec in self.connector_specs() {
            args.push("--connector".to_owned());
            args.push(spec);
        }
        args
    }
}

struct Service {
    name: String,
    child: Child,
}

/// A running stack.
pub struct Stack {
    services: Vec<Service>,
    config: StackConfig,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("router", &self.config.router_addr)
            .field(
                "services",
                &self.services.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn spawn_service(
    name: &str,
    path: &Path,
    args: &[String],
    env: &[(String, String)],
    workdir: &Path,
) -> anyhow::Result<Service> {
    let mut cmd = Command::new(path);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", path.display()))?;
    let width = 14;
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        let prefix = format!("{name:>width$} |");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{prefix} {line}");
            }
        });
    }
    Ok(Service {
        name: name.to_owned(),
        child,
    })
}

impl Stack {
    /// Starts every connector, then the router, and waits until the router is ready.
    pub async fn start(config: StackConfig) -> anyhow::Result<Self> {
        let mut services = Vec::new();
        for c in &config.connectors {
            let path = binary(c.binary)?;
            let mut env = config.env.clone();
            env.push(("LISTEN_ADDR".into(), format!("127.0.0.1:{}", c.port)));
            services.push(spawn_service(c.name, &path, &[], &env, &config.workdir)?);
        }
        let mut args = vec!["--listen".to_owned(), config.router_addr.to_string()];
        for spec in config.connector_specs() {
            args.push("--connector".to_owned());
            args.push(spec);
        }
        let router = binary("switchboard")?;
        services.push(spawn_service(
            "switchboard",
            &router,
            &args,
            &config.env,
            &config.workdir,
        )?);
        let mut stack = Self { services, config };

        let ready = format!("http://{}/readyz", stack.config.router_addr);
        let waited = wait_until("the router to be ready", Duration::from_secs(60), || {
            let ready = ready.clone();
            async move { http_ok(&ready).await }
        })
        .await;
        if let Err(e) = waited {
            let exited = stack.exited();
            stack.stop().await;
            if !exited.is_empty() {
                bail!(
                    "{} exited during start-up (see its log lines above)",
                    exited.join(", ")
                );
            }
            return Err(e);
        }
        Ok(stack)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The router's MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.config.router_addr)
    }

    /// Names of services that have exited.
    pub fn exited(&mut self) -> Vec<String> {
        self.services
            .iter_mut()
            .filter_map(|s| matches!(s.child.try_wait(), Ok(Some(_))).then(|| s.name.clone()))
            .collect()
    }

    /// SIGTERM to everything (router first), then SIGKILL to what is left after 10 s.
    pub async fn stop(&mut self) {
        for service in self.services.iter().rev() {
            if let Some(pid) = service.child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for service in &mut self.services {
            match tokio::time::timeout(Duration::from_secs(10), service.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    eprintln!(
                        "stack: {} did not stop within 10s, killing it",
                        service.name
                    );
                    let _ = service.child.kill().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn default_connectors_are_the_entries_of_deploy_connectors_toml() {
        let connectors = default_connectors().expect("deploy/connectors.toml parses");
        let names: Vec<&str> = connectors.iter().map(|c| c.name).collect();
        // Every entry, in file order, and nothing else.
        let in_file: Vec<&str> = CONNECTORS_TOML
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .collect();
        assert_eq!(names, in_file);
        assert!(names.contains(&"code_analysis"));
        let ports: HashSet<u16> = connectors.iter().map(|c| c.port).collect();
        assert_eq!(ports.len(), connectors.len(), "two connectors share a port");
        let binaries: HashSet<&str> = connectors.iter().map(|c| c.binary).collect();
        assert_eq!(
            binaries.len(),
            connectors.len(),
            "two connectors share a binary"
        );
    }

    #[test]
    fn a_broken_or_empty_list_is_an_error_naming_the_file() {
        let broken = parse_connectors("[[connectors]]\nname = \"x\"\n").expect_err("no binary");
        assert!(broken.contains("deploy/connectors.toml"), "{broken}");
        let empty = parse_connectors("connectors = []\n").expect_err("empty");
        assert!(empty.contains("no connector"), "{empty}");
        let port = parse_connectors("[[connectors]]\nname = \"x\"\nbinary = \"x\"\nport = 70000\n")
            .expect_err("port out of range");
        assert!(port.contains("deploy/connectors.toml"), "{port}");
    }
}
