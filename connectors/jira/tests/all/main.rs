//! Integration tests of the Jira connector, one binary: the connector runs
//! in-process on `127.0.0.1:0` and is called with the generated gRPC client.
//!
//! - `contract`: every tool against Prism validating requests with the official
//!   Jira Cloud OpenAPI spec.
//! - `behaviour`: what a spec cannot show, against a scripted fake (wiremock):
//!   paging, 429 + Retry-After, 401, error bodies, ADF, project restriction,
//!   read-only, Data Center.
//! - `health`: NOT_SERVING / SERVING.
//! - `prompts`: the generic Prompts service (list, get, completion) and the
//!   connector's policies in it; no Jira needed.

mod behaviour;
mod contract;
mod health;
mod prompts;
mod support;
