//! The tool catalog: connector descriptors → MCP tools, and the live list the router serves.
//!
//! - [`build`]: turns each RPC method of a connector's services into an MCP
//!   [`Tool`] (name, description, JSON Schemas, annotations). It changes when
//!   the mapping from proto to MCP tool changes.
//! - [`live`]: the [`ToolCatalog`] that holds what every connector currently
//!   contributes and its health, and finds a tool by name for a call. It
//!   changes when the way the router tracks connectors changes.
//!
//! This file holds what both speak of: a [`ToolEntry`] (a tool and where its
//! calls go), the generic services a connector may serve besides its tools
//! ([`Features`]), and the well-known message and service names.

mod build;
mod live;

pub use build::{ConnectorTools, tools_for_connector};
pub use live::{ConnectorStatus, Resolved, ToolCatalog};

use prost_reflect::MethodDescriptor;
use rmcp::model::Tool;

/// Response type of methods that return MCP content (see `content.proto`).
pub const TOOL_RESULT: &str = "switchboard.mcp.v1.ToolResult";
/// Streamed type of methods that interleave progress and logs with a result.
pub const STREAM_EVENT: &str = "switchboard.mcp.v1.StreamEvent";
/// The generic resources service; aggregated, never turned into tools.
pub const RESOURCES_SERVICE: &str = "switchboard.mcp.v1.Resources";
/// The generic prompts service; aggregated, never turned into tools.
pub const PROMPTS_SERVICE: &str = "switchboard.mcp.v1.Prompts";

/// The service through which a connector gets its questions answered.
pub const INTERACTIONS_SERVICE: &str = "switchboard.mcp.v1.Interactions";

/// Which generic MCP services a connector serves besides its tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// It serves `switchboard.mcp.v1.Resources`.
    pub resources: bool,
    /// It serves `switchboard.mcp.v1.Prompts`.
    pub prompts: bool,
}

impl Features {
    /// The features among a connector's advertised services.
    pub fn of(services: &[String]) -> Self {
        Self {
            resources: services.iter().any(|s| s == RESOURCES_SERVICE),
            prompts: services.iter().any(|s| s == PROMPTS_SERVICE),
        }
    }
}

/// One tool: what the client sees, and where calls go.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    /// The MCP tool definition.
    pub tool: Tool,
    /// The connector that serves it.
    pub connector: String,
    /// The RPC method.
    pub method: MethodDescriptor,
    /// gRPC path, `/package.Service/Method`.
    pub path: String,
    /// Safe to retry when the connector is briefly unavailable (read-only or idempotent).
    pub retryable: bool,
}

impl ToolEntry {
    /// Whether the method streams several responses.
    pub fn server_streaming(&self) -> bool {
        self.method.is_server_streaming()
    }
}
