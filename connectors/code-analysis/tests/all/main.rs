//! Integration tests: the real connector served in-process on an ephemeral port,
//! called through the generated tonic client.

mod analyze_code;
mod analyze_path;
mod fuzz;
mod mcp;
mod nested_code;
mod nesting;
mod reference;
mod security;
mod support;
