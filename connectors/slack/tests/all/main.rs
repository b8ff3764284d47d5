//! The Slack connector's integration tests, one binary: the connector runs
//! in-process on an ephemeral port and is called with the generated gRPC client.
//!
//! - `contract`: every tool's requests against Slack's Web API spec (Prism).
//! - `descriptors`: the proto contract the router turns into tools.
//! - `behaviour`: errors, paging, rate limits, names and policy against a
//!   scripted Slack (wiremock).
//! - `metrics`: upstream durations and 429s in the metrics registry.
//! - `prompts`: the MCP prompts and their argument completion (Prompts service).

mod behaviour;
mod contract;
mod descriptors;
mod metrics;
mod prompts;
mod support;
