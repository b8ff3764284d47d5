//! The code-analysis connector: code metrics, security findings and hotspots for
//! source text and for files under a configured root, as the gRPC service
//! `switchboard.code_analysis.v1.CodeAnalysis` (MCP tools `code_analysis_*` through
//! the router).
//!
//! Parsing and metrics come from `big-code-analysis` (tree-sitter grammars for C,
//! C++, Go, Java, JavaScript, Python, Rust, TypeScript/TSX); security rules are
//! tree-sitter queries over the same trees. Everything runs in process.
//!
//! - [`config`]: settings from the environment.
//! - [`service`]: the gRPC trait impl (arguments and mapping).
//! - [`analyzer`]: the engine with its content-hash caches and parallel walks.
//! - [`file_index`]: per path, the stat and content hash of the files read, so an
//!   unchanged file is not read again.
//! - [`metrics`], [`review`], [`security`], [`summary`]: what is computed.
//! - [`code_root`]: path confinement and directory walking.
//! - [`telemetry`]: Prometheus counters of files and bytes analysed and cache lookups.
//! - [`resources`], [`prompts`]: the generic MCP services `switchboard.mcp.v1.Resources`
//!   (files under the root as `file:///{path}`) and `Prompts` (`review_file`).
#![forbid(unsafe_code)]

pub mod analyzer;
pub mod code_root;
pub mod config;
pub mod error;
pub mod file_index;
pub mod languages;
pub mod metrics;
pub mod prompts;
pub mod resources;
pub mod review;
pub mod security;
pub mod service;
pub mod summary;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use switchboard_proto::code_analysis::v1::code_analysis_server::CodeAnalysisServer;
use switchboard_proto::mcp::v1::prompts_server::PromptsServer;
use switchboard_proto::mcp::v1::resources_server::ResourcesServer;

pub use analyzer::Analyzer;
pub use config::Config;

/// Loads the grammars and rules, then serves the connector on `listener` until
/// `shutdown` completes. Health turns SERVING once everything is loaded.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let root = config.code_root.display().to_string();
    let analyzer = tokio::task::spawn_blocking(move || Analyzer::new(config)).await??;
    let analyzer = Arc::new(analyzer);
    let service = service::CodeAnalysisService::new(Arc::clone(&analyzer));
    let resources = resources::FileResources::new(Arc::clone(&analyzer));
    let prompts = prompts::ReviewPrompts::new(analyzer);
    let server = connector_kit::ConnectorServer::new(
        "code_analysis",
        switchboard_proto::FILE_DESCRIPTOR_SET,
    )
    .add_service(CodeAnalysisServer::new(service))
    .add_service(ResourcesServer::new(resources))
    .add_service(PromptsServer::new(prompts));
    // Grammars and rules are loaded and checked above; nothing upstream can fail later.
    server.health().set_serving().await;
    tracing::info!(code_root = %root, languages = languages::SUPPORTED.len(), "grammars and security rules loaded");
    server.serve(listener, shutdown).await?;
    Ok(())
}
