//! Serving MCP: stdio and Streamable HTTP, plus the probes orchestrators use.
//!
//! [`start`] creates the upstream channels, the shared catalog and the health
//! watchers; [`serve_stdio`] and [`serve_http`] then speak MCP through rmcp. Over
//! HTTP the endpoint is `/mcp` (POST for JSON-RPC, GET for the SSE stream, both
//! protocol eras), with Host and Origin validation and a body limit, next to
//! `/healthz` (the process is up) and `/readyz` (connectors have answered).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::{ConnectorStatus, ToolCatalog};
use crate::config::Config;
use crate::mcp::Router;
use crate::polling::{PollingSessions, SsePolling};
use crate::upstream::Upstream;

/// Creates the upstreams and the catalog and starts watching every connector.
/// Watchers stop when `shutdown` is cancelled.
pub fn start(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Router> {
    let catalog = Arc::new(ToolCatalog::new(
        config.connectors.iter().map(|c| c.name.clone()),
        config.startup_timeout,
    ));
    let mut upstreams = Vec::new();
    for connector in &config.connectors {
        let upstream = Upstream::new(
            connector.clone(),
            config.dns_refresh,
            shutdown.child_token(),
        )
        .map_err(anyhow::Error::msg)?
        .with_limits(config.limits);
        upstream.spawn_watcher(catalog.clone(), config.tool_grace, shutdown.child_token());
        upstreams.push(upstream);
    }
    if config.connectors.is_empty() {
        tracing::warn!(
            "no connectors configured: use --connector NAME=URL, SWITCHBOARD_CONNECTORS or --config"
        );
    }
    Ok(Router::new(catalog, upstreams))
}

/// Serves one MCP session over stdin/stdout until the client disconnects or
/// `shutdown` completes.
pub async fn serve_stdio(router: Router, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let service = router
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP handshake over stdio failed")?;
    let cancel = service.cancellation_token();
    tokio::select! {
        r = service.waiting() => { r.context("MCP session over stdio failed")?; }
        () = shutdown => { cancel.cancel(); }
    }
    Ok(())
}

/// Serves Streamable HTTP on `listener` until `shutdown` completes.
pub async fn serve_http(
    router: Router,
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone())
        .with_max_request_body_bytes(config.max_body_bytes)
        .with_cancellation_token(cancel.child_token());
    let catalog = router.catalog().clone();
    let sessions = Arc::new(PollingSessions::default());
    let router = match config.sse_poll_after {
        // Clients are told to come back after half a second.
        Some(after) => router.with_polling(SsePolling::new(
            sessions.clone(),
            after,
            std::time::Duration::from_millis(500),
        )),
        None => router,
    };
    let mcp = StreamableHttpService::new(move || Ok(router.session()), sessions, mcp_config);
    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(catalog)
        .nest_service("/mcp", mcp);
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "switchboard listening on http://{}/mcp", addr.map(|a| a.to_string()).unwrap_or_default());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await
        .context("HTTP server failed")
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// 200 once every connector has answered (or the startup wait is over), with each
/// connector's state; 503 before.
async fn readyz(State(catalog): State<Arc<ToolCatalog>>) -> impl IntoResponse {
    let connectors: Vec<_> = catalog
        .statuses()
        .into_iter()
        .map(|(name, status, tools)| {
            json!({
                "name": name,
                "status": status.to_string(),
                "serving": status == ConnectorStatus::Serving,
                "tools": tools,
            })
        })
        .collect();
    let ready = catalog.is_ready();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({ "ready": ready, "connectors": connectors })),
    )
}
