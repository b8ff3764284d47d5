//! The decode stage: the connector that serves the tool, checked to be up, and
//! the call's JSON arguments as that method's protobuf request message.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::DynamicMessage;
use serde_json::{Map, Value as Json};

use super::shape::ResultKind;
use super::{Failure, FailureKind};
use crate::catalog::{ConnectorStatus, Resolved, ToolEntry};
use crate::transcode::decode_arguments;
use crate::upstream::Upstream;

/// Where a call goes and how its answer is read.
#[derive(Debug, Clone)]
pub struct Target {
    /// The tool.
    pub entry: Arc<ToolEntry>,
    /// Its connector.
    pub upstream: Upstream,
    /// How the method's responses become a tool result.
    pub kind: ResultKind,
}

/// The target of a call of `name` (resolved in the catalog), when its
/// connector is serving; a down connector fails fast with how long it has been
/// down, before the arguments are even read.
pub fn target(
    name: &str,
    resolved: Resolved,
    upstreams: &HashMap<String, Upstream>,
) -> Result<Target, Failure> {
    let entry = resolved.entry;
    let connector = &entry.connector;
    if resolved.status != ConnectorStatus::Serving {
        return Err(Failure {
            kind: FailureKind::Unavailable,
            message: format!(
                "{name} cannot be called now: connector {connector:?} is {} (for {}s). \
                 Calls fail immediately until it is back; retry later, or ask the operator \
                 to check that the {connector} connector is running and healthy.",
                resolved.status,
                resolved.for_duration.as_secs()
            ),
            retry_after: None,
        });
    }
    let Some(upstream) = upstreams.get(connector) else {
        return Err(Failure {
            kind: FailureKind::Unavailable,
            message: format!(
                "{name} cannot be called: the router has no channel to connector {connector:?} (a bug: report it)"
            ),
            retry_after: None,
        });
    };
    Ok(Target {
        kind: ResultKind::of(&entry),
        upstream: upstream.clone(),
        entry,
    })
}

/// The arguments as the method's request message; a tool error naming the
/// argument and what is wrong with it otherwise.
pub fn arguments(
    name: &str,
    target: &Target,
    arguments: Option<Map<String, Json>>,
) -> Result<DynamicMessage, Failure> {
    decode_arguments(&target.entry.method.input(), arguments).map_err(|e| Failure {
        kind: FailureKind::Arguments,
        message: format!("{name}: {e}"),
        retry_after: None,
    })
}
