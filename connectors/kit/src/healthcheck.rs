//! `<connector> healthcheck [ADDR]`: a container health check without extra tools.
//!
//! Asks grpc.health.v1 `Check` of the connector at ADDR (default: its own
//! `LISTEN_ADDR`, with an unspecified IP such as 0.0.0.0 replaced by loopback) and
//! maps the answer to an exit code: 0 SERVING, 1 NOT_SERVING (or unknown), 2 unreachable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthcheckOutcome {
    /// SERVING.
    Serving,
    /// Reachable, but not serving (the status is named).
    NotServing(String),
    /// No answer (the reason is named).
    Unreachable(String),
}

impl HealthcheckOutcome {
    /// The process exit code for container health checks.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Serving => ExitCode::SUCCESS,
            Self::NotServing(_) => ExitCode::from(1),
            Self::Unreachable(_) => ExitCode::from(2),
        }
    }
}

impl std::fmt::Display for HealthcheckOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Serving => f.write_str("SERVING"),
            Self::NotServing(status) => write!(f, "{status}"),
            Self::Unreachable(reason) => write!(f, "unreachable: {reason}"),
        }
    }
}

/// Turns a listen address or URL into a URL to dial: `0.0.0.0:50051` becomes
/// `http://127.0.0.1:50051`.
pub fn dial_url(addr: &str) -> String {
    if addr.contains("://") {
        return addr.to_owned();
    }
    match addr.parse::<SocketAddr>() {
        Ok(mut sock) => {
            if sock.ip().is_unspecified() {
                sock.set_ip(match sock.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            format!("http://{sock}")
        }
        Err(_) => format!("http://{addr}"),
    }
}

/// Checks `service` (`""` for the whole connector) at `addr` within `timeout`.
pub async fn check(addr: &str, service: &str, timeout: Duration) -> HealthcheckOutcome {
    let url = dial_url(addr);
    let endpoint = match tonic::transport::Endpoint::from_shared(url.clone()) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return HealthcheckOutcome::Unreachable(format!("invalid address {url}: {e}")),
    };
    let call = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| format!("{url}: {}: {}", s.code(), s.message()))
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            HealthcheckOutcome::Unreachable(format!("no answer from {url} within {timeout:?}"))
        }
        Ok(Err(reason)) => HealthcheckOutcome::Unreachable(reason),
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => HealthcheckOutcome::Serving,
            other => HealthcheckOutcome::NotServing(other.as_str_name().to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_dialled_on_loopback() {
        assert_eq!(dial_url("0.0.0.0:50051"), "http://127.0.0.1:50051");
        assert_eq!(dial_url("[::]:50051"), "http://[::1]:50051");
        assert_eq!(dial_url("jira:50051"), "http://jira:50051");
        assert_eq!(dial_url("http://10.0.0.1:1"), "http://10.0.0.1:1");
    }
}
