//! End-to-end tests: real router and connector processes on ephemeral ports,
//! driven by the official Rust MCP client (rmcp) over stdio and Streamable HTTP.
//! One test binary so the suite links once.

mod support;

mod abuse;
mod auth;
mod auth_clients;
mod auth_http;
mod calls;
mod catalog;
mod claude_code;
mod code_analysis;
mod conformance;
mod connector_surface;
mod database;
mod faults;
mod http;
mod jira;
mod jsonrpc_fuzz;
mod lifecycle;
mod limits;
mod prometheus;
mod rest;
mod rest_tools;
mod runtime;
mod scaleout;
mod scaleout_clients;
mod scaleout_relay;
mod slack;
mod stdio_streams;
mod surface;
mod tracing;
