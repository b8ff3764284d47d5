//! A real HAProxy (Debian package `haproxy`) in front of router replicas, on
//! loopback ports, as a deployment's load balancer would be: `balance
//! roundrobin`, no stickiness of any kind, and a new balancing decision for
//! every request (`option http-server-close`, `http-reuse never`), so
//! consecutive requests of one client go to alternating replicas. A replica
//! that is not ready (`/readyz`: still starting, or draining to stop) is
//! taken out (checked every 300 ms, out after two failures, back after one success); a
//! request whose connection to a dead replica is refused is sent to another
//! (`option redispatch`, `retries`), as HAProxy does in production.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::process::{free_port, scratch_dir, wait_until};

/// The `haproxy` binary, if installed (`scripts/install-tools.sh haproxy`).
pub fn binary() -> Option<PathBuf> {
    let found = std::process::Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then(|| PathBuf::from("haproxy"))
}

/// A running HAProxy, killed when dropped.
#[derive(Debug)]
pub struct Balancer {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
}

impl Balancer {
    /// Starts HAProxy on a free loopback port, balancing over `replicas`.
    pub async fn start(replicas: &[SocketAddr]) -> anyhow::Result<Self> {
        if binary().is_none() {
            bail!("haproxy is not installed: run scripts/install-tools.sh haproxy");
        }
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut servers = String::new();
        for (i, replica) in replicas.iter().enumerate() {
            servers.push_str(&format!(
                "  server r{i} {replica} check inter 300ms fall 2 rise 1\n"
            ));
        }
        let config = format!(
            "global\n  maxconn 512\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n  \
             timeout http-keep-alive 10s\n  timeout check 2s\n  option http-server-close\n  http-reuse never\n  \
             retries 3\n  option redispatch 1\n\
             frontend mcp\n  bind {addr}\n  default_backend routers\n\
             backend routers\n  balance roundrobin\n  option httpchk GET /readyz\n{servers}"
        );
        let dir = scratch_dir("haproxy");
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).context("write haproxy.cfg")?;
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start haproxy")?;
        let balancer = Self { child, addr };
        let health = format!("http://{addr}/healthz");
        wait_until(
            "haproxy in front of the routers",
            Duration::from_secs(20),
            || {
                let health = health.clone();
                async move { crate::process::http_ok(&health).await }
            },
        )
        .await?;
        Ok(balancer)
    }

    /// The MCP endpoint through the balancer.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stops HAProxy.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}
