//! Switchboard's MCP router.
//!
//! One MCP endpoint (stdio or Streamable HTTP) in front of any number of gRPC
//! connector services. The router knows no connector: it reads each connector's
//! descriptors over gRPC server reflection, makes one MCP tool per RPC method
//! (`catalog`, `schema`), and transcodes every `tools/call` from JSON to a
//! dynamic protobuf message and back (`transcode`). It watches each connector's
//! grpc.health.v1 status and re-reads its descriptors when it comes back
//! (`upstream`), so connectors can be added, restarted and upgraded without
//! touching the router.
//!
//! Every request flows through one call pipeline (`call`): authorize → limit →
//! decode (transcode) → invoke (the gRPC call) → shape, with an audit line and
//! a span around it; the MCP front door (`mcp`) only translates MCP to it and
//! back. Methods returning the shared
//! `switchboard.mcp.v1.ToolResult` / `StreamEvent` messages speak MCP content,
//! progress and logs directly (`content`); connectors serving the generic
//! `Resources` and `Prompts` services have them aggregated (`call::aggregate`).
#![forbid(unsafe_code)]

pub(crate) mod admission;
pub mod audit;
pub mod auth;
pub(crate) mod call;
pub(crate) mod catalog;
pub mod config;
pub(crate) mod content;
pub(crate) mod dns;
pub(crate) mod interact;
pub(crate) mod limits;
pub(crate) mod mcp;
pub mod metrics;
pub mod policy;
pub(crate) mod polling;
pub mod rate;
pub(crate) mod redis_link;
pub(crate) mod rest;
pub(crate) mod rounds;
pub(crate) mod schema;
pub mod session;
pub(crate) mod stdio;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testjson;
#[cfg(test)]
pub(crate) mod testlog;
pub(crate) mod trace;
pub(crate) mod transcode;
pub mod transport;
pub(crate) mod upstream;

pub use call::{CallLimits, Security};
pub use config::{Config, ConnectorConfig};
pub use mcp::McpHandler;
