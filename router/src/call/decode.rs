//! The decode stage: the connector that serves the tool, checked to be up, and
//! the call's JSON arguments as that method's protobuf request message.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::DynamicMessage;
use serde_json::{Map, Value as Json};

use super::shape::ResultKind;
use super::{Failure, FailureKind};
use crate::catalog::{ConnectorStatus, Resolved, ToolEntry};
use crate::transcode::{ArgumentError, canonicalize_arguments, message_from};
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

/// Checks the call's arguments against the request message of `entry` and
/// rewrites them in place to their canonical form (JSON names to proto names,
/// enum numbers to names, numbers as numbers: see
/// [`canonicalize_arguments`]), so that the stages before [`arguments`] (the
/// policy's `args`, the audit line, the key of a shared call) read what the
/// connector will receive. Absent arguments are checked as `{}`, and stay
/// absent.
pub fn canonical(
    entry: &ToolEntry,
    arguments: &mut Option<Map<String, Json>>,
) -> Result<(), ArgumentError> {
    let input = entry.method.input();
    match arguments {
        Some(map) => canonicalize_arguments(&input, map),
        None => canonicalize_arguments(&input, &mut Map::new()),
    }
}

/// The arguments, made canonical by [`canonical`] with the outcome `checked`,
/// as the method's request message; a tool error naming the argument and what
/// is wrong with it otherwise.
pub fn arguments(
    name: &str,
    target: &Target,
    arguments: Option<Map<String, Json>>,
    checked: Result<(), ArgumentError>,
) -> Result<DynamicMessage, Failure> {
    checked
        .and_then(|()| message_from(&target.entry.method.input(), arguments.unwrap_or_default()))
        .map_err(|e| Failure {
            kind: FailureKind::Arguments,
            message: format!("{name}: {e}"),
            retry_after: None,
        })
}
