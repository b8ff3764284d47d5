//! Connector endpoints that follow DNS: every address a name resolves to is a
//! balanced endpoint, and the name is resolved again periodically.
//!
//! A connector URL with a host name (a compose service scaled to three replicas,
//! a headless Kubernetes Service) may stand for several addresses that change as
//! replicas come and go. tonic resolves a name once per connection, so a plain
//! channel would send every call to one replica. Here each resolved address
//! becomes its own endpoint in a balanced channel (keeping the original name as
//! the request authority), and addresses that disappear are removed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

/// How an endpoint is configured (timeouts, keep-alive).
pub type Configure = fn(Endpoint) -> Endpoint;

/// A balanced channel over every address of `urls`, re-resolved every `refresh`
/// until `shutdown`.
pub fn balanced_channel(
    urls: Vec<String>,
    refresh: Duration,
    configure: Configure,
    shutdown: CancellationToken,
) -> Result<Channel, String> {
    let mut targets = Vec::new();
    for url in urls {
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL {url}: {e}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("URL {url} has no host"))?
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        targets.push(Target {
            url,
            uri,
            host,
            port,
            scheme,
        });
    }
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    tokio::spawn(async move {
        let mut current: BTreeSet<SocketAddr> = BTreeSet::new();
        loop {
            current = refresh_once(&targets, &current, &changes, configure).await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(refresh) => {}
            }
            if changes.is_closed() {
                return;
            }
        }
    });
    Ok(channel)
}

struct Target {
    url: String,
    uri: http::Uri,
    host: String,
    port: u16,
    scheme: String,
}

async fn refresh_once(
    targets: &[Target],
    current: &BTreeSet<SocketAddr>,
    changes: &Sender<Change<SocketAddr, Endpoint>>,
    configure: Configure,
) -> BTreeSet<SocketAddr> {
    let mut next = BTreeSet::new();
    let mut endpoints = Vec::new();
    for target in targets {
        let host = target.host.trim_start_matches('[').trim_end_matches(']');
        match tokio::net::lookup_host((host, target.port)).await {
            Ok(addrs) => {
                for addr in addrs {
                    if next.insert(addr) {
                        endpoints.push((addr, target));
                    }
                }
            }
            Err(error) => {
                // Keep what we had for this name: a DNS hiccup must not drop replicas.
                tracing::warn!(url = %target.url, %error, "cannot resolve connector address");
                for addr in current {
                    if addr.port() == target.port {
                        next.insert(*addr);
                    }
                }
            }
        }
    }
    for (addr, target) in endpoints {
        if current.contains(&addr) {
            continue;
        }
        let url = match addr {
            SocketAddr::V4(a) => format!("{}://{a}", target.scheme),
            SocketAddr::V6(a) => format!("{}://[{}]:{}", target.scheme, a.ip(), a.port()),
        };
        match Endpoint::from_shared(url) {
            Ok(endpoint) => {
                let endpoint = configure(endpoint.origin(target.uri.clone()));
                tracing::debug!(url = %target.url, %addr, "connector replica added");
                if changes.send(Change::Insert(addr, endpoint)).await.is_err() {
                    return next;
                }
            }
            Err(error) => tracing::warn!(%addr, %error, "unusable connector address"),
        }
    }
    for addr in current.difference(&next) {
        tracing::debug!(%addr, "connector replica removed");
        if changes.send(Change::Remove(*addr)).await.is_err() {
            break;
        }
    }
    next
}
