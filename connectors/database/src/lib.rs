//! The database connector: SQL databases (PostgreSQL, MySQL/MariaDB, SQLite) as
//! gRPC tools for an AI agent, safe by default.
//!
//! - [`config`]: environment variables, read once.
//! - [`guard`]: the parser-based read-only check (first safety layer).
//! - [`engine`]: pools, read-only connections and transactions, timeouts,
//!   caps, value decoding and catalog queries per engine (the other layers).
//! - [`cache`]: query result cache, in process or in Redis.
//! - [`service`]: the gRPC service (argument checking and mapping).
//! - [`resources`]: table schemas as MCP resources (`db://<schema>/<table>`).
//! - [`prompts`]: MCP prompts that guide the model through the tools.
//! - [`demo`]: the embedded SQLite demo database.
//! - [`telemetry`]: pool and cache metrics, client spans of database operations.
//!
//! [`serve`] runs it all on a listener until shutdown, with health following
//! the database: NOT_SERVING while it cannot be reached, SERVING when it answers.
//! In read-only mode it refuses to serve as a database user that can write
//! (checked at start, or when the database first answers; see
//! [`Database::check_access`]) unless `DB_ALLOW_PRIVILEGED=true`.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod guard;
pub mod prompts;
pub mod resources;
pub mod service;
pub mod telemetry;
pub mod values;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connector_kit::{Cadence, ConnectorServer, Health, Probe, follow_upstream};
use switchboard_proto::database::v1::database_server::{self, DatabaseServer};
use switchboard_proto::mcp::v1::prompts_server::PromptsServer;
use switchboard_proto::mcp::v1::resources_server::ResourcesServer;

pub use config::{AccessMode, Config, Target};
pub use engine::{Database, EngineKind};
pub use service::DatabaseService;

/// First wait after a failed health check; doubles up to the check interval.
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// Serves the connector on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let db = Arc::new(
        Database::open(&config)
            .await
            .context("cannot open the database")?,
    );
    // A database that answers now is checked now; one that is down is checked
    // by the health watcher when it first answers.
    match tokio::time::timeout(config.connect_timeout, db.check_access()).await {
        Ok(Err(error::Error::NotAllowed(refusal))) => {
            db.close().await;
            anyhow::bail!(refusal);
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot check the database user's privileges yet; checking when the database answers");
        }
        Err(_) => tracing::warn!(
            "the database did not answer the privilege check in time; checking when it answers"
        ),
        Ok(Ok(())) => {}
    }
    let cache = match &config.cache_redis_url {
        Some(url) => cache::QueryCache::redis(db.identity(), url).map_err(anyhow::Error::msg)?,
        None => cache::QueryCache::memory(db.identity(), config.cache_max_bytes),
    };
    tracing::info!(shared = cache.is_shared(), "query cache ready");
    let service = DatabaseService::new(db.clone(), Arc::new(cache));
    let resources = resources::SchemaResources::new(
        db.clone(),
        config.schema_ttl,
        config.schema_watch_interval,
    );
    let mut server = ConnectorServer::new("database", switchboard_proto::FILE_DESCRIPTOR_SET)
        .add_service(DatabaseServer::new(service))
        .add_service(ResourcesServer::new(resources))
        .add_service(PromptsServer::new(prompts::DatabasePrompts::new(
            db.clone(),
        )));
    if config.access_mode == AccessMode::ReadOnly {
        // Execute would only be refused: the agent is not offered it.
        server = server.hide_writing_tools(database_server::SERVICE_NAME);
    }
    let health = server.health();
    let (refused, refusal) = tokio::sync::oneshot::channel::<String>();
    let watcher = tokio::spawn(follow_database(
        db.clone(),
        health,
        config.health_interval,
        refused,
    ));
    let refused_with = tokio::sync::OnceCell::new();
    let served = server
        .serve(listener, async {
            tokio::select! {
                () = shutdown => {}
                Ok(message) = refusal => {
                    let _ = refused_with.set(message);
                }
            }
        })
        .await;
    watcher.abort();
    db.close().await;
    served?;
    if let Some(refusal) = refused_with.get() {
        anyhow::bail!(refusal.clone());
    }
    Ok(())
}

/// Keeps the connector's health in step with the database: checks it every
/// `interval` while it answers, and retries with backoff while it does not.
/// Before it first reports SERVING, the database user's privileges are
/// checked; a refusal is sent on `refused` and ends the watch (and the server).
async fn follow_database(
    db: Arc<Database>,
    health: Health,
    interval: Duration,
    refused: tokio::sync::oneshot::Sender<String>,
) {
    let cadence = Cadence::every(interval).retrying(FIRST_RETRY, interval);
    let checks = || async {
        let checked = match db.ping().await {
            Ok(()) => db.check_access().await,
            Err(error) => Err(error),
        };
        match checked {
            Ok(()) => Probe::Up,
            Err(error::Error::NotAllowed(refusal)) => Probe::Stop(refusal),
            Err(error) => Probe::Down(error.to_string()),
        }
    };
    let refusal = follow_upstream(&health, db.identity(), cadence, checks).await;
    let _ = refused.send(refusal);
}
