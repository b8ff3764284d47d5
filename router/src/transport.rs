//! Serving MCP: stdio and Streamable HTTP, plus the probes orchestrators use.
//!
//! [`serve_stdio`] and [`serve_http`] speak MCP through rmcp for the handler
//! [`McpHandler::connect`] made (the upstreams, the shared catalog and the
//! health watchers). Over
//! HTTP the endpoint is `/mcp` (POST for JSON-RPC, GET for the SSE stream, both
//! protocol eras), with Host and Origin validation and a body limit, next to
//! `/healthz` (the process is up) and `/readyz` (connectors have answered).
//!
//! HTTP is served by hyper directly (HTTP/1.1), so every bound is set here, in
//! one place: at most `max_connections` connections (one more is answered 503
//! and closed), `header_read_timeout` for each request's headers and for an
//! idle keep-alive connection, TCP_NODELAY on every accepted socket (so the end
//! of an SSE response is not held back by Nagle's algorithm), and in front of
//! the MCP service the body timeout, parse errors and session slots of
//! the `admission` module. With an issuer, `/mcp` is authenticated first
//! (`admission::authenticate`) and the RFC 9728 protected resource metadata
//! is served, unauthenticated, next to the probes; without one the router
//! says at start-up that HTTP is unauthenticated, loudly when it listens off
//! loopback. With `--session-store`, sessions are shared with the other
//! replicas through Redis (`session`): rmcp restores a session it does not
//! hold from the store, and every request naming one renews it there first.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::admission::{self, Admission};
use crate::audit::FrontDoor;
use crate::catalog::{ConnectorStatus, ToolCatalog};
use crate::config::{ClientLimits, Config};
use crate::limits::LimitLog;
use crate::mcp::McpHandler;
use crate::polling::{PollingSessions, SsePolling};
use crate::session::guard::SessionGuard;
use crate::session::{SharedSessions, StoreSettings};

/// How long open connections may take to finish once shutdown starts. Sessions
/// are cancelled first, so what is left is answers being written, and clients
/// still sending a request (hyper waits for those): no reason to wait long.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Connections over `max_connections` being told so at once; beyond it they
/// are closed without a word.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long telling a refused connection may take.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long start-up waits for the session store's first answer.
const STORE_STARTUP_WAIT: Duration = Duration::from_secs(3);

static CONNECTIONS_REFUSED: LimitLog = LimitLog::new("max_connections");
static SLOW_HEADERS: LimitLog = LimitLog::new("header_read_timeout");

/// Serves one MCP session over stdin/stdout until the client disconnects or
/// `shutdown` completes. Sockets and pipes are read and written on the
/// reactor, not the blocking pool ([`crate::stdio`]); a message over
/// `max_body_bytes` is answered with an error, not read.
pub async fn serve_stdio(
    router: McpHandler,
    max_body_bytes: usize,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (input, output, driven) = crate::stdio::streams();
    tracing::debug!(?driven, "standard streams");
    let transport = crate::stdio::BoundedTransport::new(input, output, max_body_bytes);
    let service = router
        .serve(transport)
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
    router: McpHandler,
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let mut mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone())
        .with_max_request_body_bytes(config.max_body_bytes)
        // A stateless (2026-07-28) request whose first message is its answer
        // gets it as one JSON body instead of an SSE stream (the specification
        // lets the server choose); one that sends progress or asks the client
        // something first still streams. Sessions of 2025-11-25 always stream.
        .with_json_response(true)
        .with_cancellation_token(cancel.child_token());
    let catalog = router.catalog().clone();
    let limits = config.client_limits;
    anyhow::ensure!(
        limits.max_body_bytes_in_flight >= config.max_body_bytes,
        "max_body_bytes_in_flight ({}) is smaller than max_body_bytes ({}): no body of the largest allowed size could ever be read",
        limits.max_body_bytes_in_flight,
        config.max_body_bytes
    );
    let shared = shared_sessions(config, &cancel).await?;
    let mut sessions = PollingSessions::new(&limits, config.sse_poll_after.is_some());
    let draining = CancellationToken::new();
    let mut router = router.with_draining(draining.clone());
    if let Some(shared) = &shared {
        let listeners = Arc::new(crate::session::listen::Listeners::new(
            shared.clone(),
            router.pipeline().clone(),
        ));
        let parking = Arc::new(crate::rounds::Parking::new(shared.replica().to_owned()));
        sessions = sessions.with_store(shared.clone(), listeners.clone(), parking.clone());
        mcp_config.session_store = Some(Arc::new(shared.clone()));
        router = router.with_shared_sessions(shared.clone(), listeners, parking, sessions.feeds());
    }
    let sessions = Arc::new(sessions);
    if let Some(shared) = &shared {
        tokio::spawn(crate::session::relay::listen(
            shared.clone(),
            sessions.clone(),
            cancel.child_token(),
        ));
    }
    let drain = Drain {
        state: Arc::new(AtomicBool::new(false)),
        delay: config.drain_delay,
        timeout: config.drain_timeout,
        sessions: Some(sessions.clone()),
        listens: draining,
    };
    let router = match config.sse_poll_after {
        // Clients are told to come back after half a second.
        Some(after) => router.with_polling(SsePolling::new(
            sessions.clone(),
            after,
            std::time::Duration::from_millis(500),
        )),
        None => router,
    };
    let security = router.security().clone();
    let admission = Arc::new(
        Admission::new(sessions.clone(), limits, config.max_body_bytes)
            .with_security(security.clone(), catalog.clone()),
    );
    // REST bodies count against the same budget as /mcp bodies.
    let rest = crate::rest::routes(
        router.pipeline().clone(),
        crate::rest::Bounds {
            max_body_bytes: config.max_body_bytes,
            limits,
            bodies: admission.bodies(),
        },
    );
    let guard = shared
        .clone()
        .map(|shared| Arc::new(SessionGuard::new(shared, sessions.clone())));
    let mcp = StreamableHttpService::new(move || Ok(router.session()), sessions, mcp_config);
    // Outermost first: authentication, then admission (body, step-up,
    // sessions), then (with a session store) the session's renewal in the
    // store.
    let mut mcp = axum::Router::new().fallback_service(mcp);
    if let Some(guard) = guard {
        mcp = mcp.layer(axum::middleware::from_fn_with_state(
            guard,
            crate::session::guard::guard,
        ));
    }
    let gate =
        admission::Gate::new(security.clone(), FrontDoor::Http, &limits).with_store(shared.clone());
    let mcp = mcp
        .layer(axum::middleware::from_fn_with_state(
            admission,
            admission::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(gate),
            admission::authenticate,
        ));
    let probe = Probe {
        catalog: catalog.clone(),
        sessions: shared,
        draining: drain.state.clone(),
    };
    let mut app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(Arc::new(probe)))
        .nest_service("/mcp", mcp)
        // The REST front door, authenticated like /mcp.
        .nest_service(
            "/api/v1",
            rest.layer(axum::middleware::from_fn_with_state(
                Arc::new(admission::Gate::new(
                    security.clone(),
                    FrontDoor::Rest,
                    &limits,
                )),
                admission::authenticate,
            ))
            .layer(axum::middleware::from_fn(crate::rest::auth_problems)),
        );
    // Metrics name every tool and connector: with an issuer they are not
    // served to anyone who reaches the public listener, only on
    // --metrics-listen.
    if config.metrics_listen.is_none() && security.auth.is_none() {
        app = app.route(
            "/metrics",
            get(crate::metrics::serve).with_state(catalog.clone()),
        );
    }
    match &security.auth {
        // RFC 9728 metadata, unauthenticated: clients read it to get a token.
        Some(auth) => app = app.merge(auth.metadata().routes()),
        None => {
            let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
            if loopback {
                tracing::info!(
                    "HTTP clients are not authenticated (no --auth-issuer): for use on this machine only"
                );
            } else {
                tracing::warn!(
                    "HTTP clients are NOT authenticated (no --auth-issuer) and the router listens on a non-loopback address: anyone who reaches it can call every tool; set --auth-issuer and --public-url, or listen on 127.0.0.1"
                );
            }
        }
    }
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "switchboard listening on http://{}/mcp", addr.map(|a| a.to_string()).unwrap_or_default());
    serve_connections(listener, app, &limits, shutdown, &cancel, drain).await;
    Ok(())
}

/// The session store of `config`, connected (or the reason it is not logged)
/// before the first request; `None` without `--session-store`.
async fn shared_sessions(
    config: &Config,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<SharedSessions>> {
    let Some(url) = &config.session_store else {
        tracing::info!(
            "MCP sessions live in this replica (no --session-store): run one replica, or share them through redis"
        );
        return Ok(None);
    };
    let settings = StoreSettings {
        url: url.clone(),
        prefix: config.session_prefix.clone(),
        ttl: config.client_limits.session_idle_timeout,
        keys: config.session_keys.clone(),
        max_initialize_bytes: config.client_limits.max_initialize_bytes,
    };
    let shared =
        SharedSessions::start(&settings, cancel.child_token()).map_err(anyhow::Error::msg)?;
    if !shared.connected(STORE_STARTUP_WAIT).await {
        tracing::warn!(
            "the session store does not answer yet: sessions cannot be opened or served until it does; 2026-07-28 requests are served"
        );
    }
    Ok(Some(shared))
}

/// Serves only `GET /metrics` on `listener` (`--metrics-listen`), with the
/// same connection bounds as the HTTP listener, until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    catalog: Arc<ToolCatalog>,
    limits: &ClientLimits,
    shutdown: impl Future<Output = ()>,
) {
    let app = axum::Router::new()
        .route("/metrics", get(crate::metrics::serve))
        .with_state(catalog);
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "metrics on http://{}/metrics", addr.map(|a| a.to_string()).unwrap_or_default());
    serve_connections(
        listener,
        app,
        limits,
        shutdown,
        &CancellationToken::new(),
        Drain::none(),
    )
    .await;
}

/// What shutting down does before it cancels the sessions: a rolling
/// restart must cost no call.
struct Drain {
    /// Set once draining starts: `/readyz` answers 503 so balancers send no
    /// more requests here.
    state: Arc<AtomicBool>,
    /// How long new connections are still served once draining starts
    /// (`drain_delay`), for balancers to notice.
    delay: Duration,
    /// How long requests in flight may take to finish (`drain_timeout`).
    timeout: Duration,
    /// The sessions whose listen streams are closed (clients reconnect
    /// elsewhere).
    sessions: Option<Arc<PollingSessions>>,
    /// Cancelled to end stateless listen streams.
    listens: CancellationToken,
}

impl Drain {
    /// No drain: stop at once (the metrics listener).
    fn none() -> Self {
        Self {
            state: Arc::new(AtomicBool::new(false)),
            delay: Duration::ZERO,
            timeout: Duration::ZERO,
            sessions: None,
            listens: CancellationToken::new(),
        }
    }
}

/// After a listen stream is closed for a drain, clients reconnect after this.
const RECONNECT_AFTER_DRAIN: Duration = Duration::from_millis(500);

/// The HTTP exchanges whose answer is still being written: a request counts
/// from when its head is read until its response body is done (or dropped).
#[derive(Debug, Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> Exchange {
        self.count.fetch_add(1, Ordering::SeqCst);
        Exchange(self.clone())
    }

    /// Waits until no exchange is in flight.
    async fn settled(&self) {
        loop {
            let idle = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One exchange in flight, until dropped.
#[derive(Debug)]
struct Exchange(Arc<InFlight>);

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A response body that holds its [`Exchange`] until it is done.
struct Tracked {
    body: axum::body::Body,
    _exchange: Exchange,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Accepts connections on `listener` and serves `app` on each, within
/// `limits`, until `shutdown` completes; then drains (`drain`: says so on
/// `/readyz`, serves on for its delay, stops accepting, closes listen
/// streams and waits for requests in flight, its timeout at most), cancels
/// `sessions` (which ends their SSE streams) and waits [`SHUTDOWN_GRACE`] at
/// most for open connections to finish.
async fn serve_connections(
    listener: TcpListener,
    app: axum::Router,
    limits: &ClientLimits,
    shutdown: impl Future<Output = ()>,
    sessions: &CancellationToken,
    drain: Drain,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let graceful = GracefulShutdown::new();
    let in_flight = Arc::new(InFlight::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let header_timeout = limits.header_read_timeout;
    let stop = async {
        shutdown.await;
        drain.state.store(true, Ordering::SeqCst);
        if !drain.delay.is_zero() {
            tracing::info!(delay = ?drain.delay, "draining: /readyz answers 503; new connections are still served meanwhile");
            tokio::time::sleep(drain.delay).await;
        }
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let max = limits.max_connections;
            CONNECTIONS_REFUSED.hit(
                max,
                "the router has as many HTTP connections open as it allows; new connections refused",
            );
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, max).await;
                    drop(refusal);
                });
            }
            continue;
        };
        // Whether the connection carried a request: a header timeout after
        // one is an idle keep-alive connection closed, not a slow client.
        let served = Arc::new(AtomicBool::new(false));
        let service = {
            let (app, served, in_flight) = (app.clone(), served.clone(), in_flight.clone());
            hyper::service::service_fn(move |request| {
                served.store(true, Ordering::Relaxed);
                let exchange = in_flight.enter();
                let answer = app.clone().oneshot(request);
                async move {
                    let response = answer.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                        body,
                        _exchange: exchange,
                    }))
                }
            })
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                if error.is_timeout() && served.load(Ordering::Relaxed) {
                    tracing::debug!("idle HTTP connection closed after header_read_timeout");
                } else if error.is_timeout() {
                    SLOW_HEADERS.hit(
                        format!("{}s", header_timeout.as_secs_f64()),
                        "a client did not send request headers in time; connections closed",
                    );
                } else {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    // Idle connections close now, busy ones after their answer.
    let closing = graceful.shutdown();
    let mut closing = std::pin::pin!(closing);
    let mut closed = false;
    if !drain.timeout.is_zero() {
        drain.listens.cancel();
        if let Some(sessions) = &drain.sessions {
            sessions.close_listen_streams(RECONNECT_AFTER_DRAIN).await;
        }
        let settled = tokio::select! {
            () = in_flight.settled() => true,
            () = &mut closing => {
                closed = true;
                true
            }
            () = tokio::time::sleep(drain.timeout) => false,
        };
        if settled {
            tracing::info!("drained: no request in flight");
        } else {
            tracing::warn!(timeout = ?drain.timeout, "requests still in flight after drain_timeout are cancelled");
        }
    }
    sessions.cancel();
    if !closed && tokio::time::timeout(SHUTDOWN_GRACE, closing).await.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open at shutdown were closed");
    }
}

/// Tells a connection over `max_connections` why it is closed: a 503 with a
/// JSON-RPC error naming the setting.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": admission::LIMIT_REACHED,
            "message": format!("the router has {max} HTTP connections open, the most it allows (max_connections = {max}): retry later"),
            "data": { "setting": "max_connections", "limit": max },
        },
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// What `/readyz` reports on.
#[derive(Debug)]
struct Probe {
    catalog: Arc<ToolCatalog>,
    /// The session store, if sessions are shared.
    sessions: Option<SharedSessions>,
    /// Set once shutdown started: not ready, whatever else.
    draining: Arc<AtomicBool>,
}

/// 200 once every connector has answered (or the startup wait is over), with each
/// connector's state and the sessions' mode (single replica, or shared through
/// Redis and whether it answers: never a reason for not being ready, since
/// stateless requests are served either way); 503 before.
async fn readyz(State(probe): State<Arc<Probe>>) -> impl IntoResponse {
    let catalog = &probe.catalog;
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
    let draining = probe.draining.load(Ordering::SeqCst);
    let ready = catalog.is_ready() && !draining;
    // With --limits-redis: whether limits are shared now (never a reason
    // for not being ready: calls go on under local limits).
    let limits = crate::rate::shared::readiness();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let sessions = match &probe.sessions {
        Some(shared) => shared.readiness(),
        None => crate::session::single_replica_readiness(),
    };
    let mut body = json!({ "ready": ready, "connectors": connectors, "sessions": sessions });
    if draining {
        body["draining"] = json!(true);
        body["detail"] =
            json!("shutting down: requests in flight finish, new ones belong elsewhere");
    }
    if let Some(limits) = limits {
        body["limits"] = limits;
    }
    (code, axum::Json(body))
}
