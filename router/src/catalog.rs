//! The tool catalog: connector descriptors → MCP tools, and the live list the router serves.
//!
//! [`tools_for_service`] turns each RPC method of a connector's services into an MCP
//! [`Tool`]: name `<prefix>_<method_in_snake_case>` (or the `tool.name` option),
//! description from the method comment, input/output JSON Schema from the messages
//! ([`crate::schema`]), annotations from `idempotency_level` and the `tool` option.
//!
//! [`ToolCatalog`] holds what every connector currently contributes and its health.
//! The [`crate::upstream`] watchers update it; the MCP handler reads it. Each change
//! of the listed tools bumps a version that sessions watch to send
//! `notifications/tools/list_changed`. Names are data: a tool is found by
//! comparing its whole name (a scan over the connectors in configuration order,
//! so the first connector wins a collision, which is logged), never by
//! splitting the name on `_`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prost_reflect::{
    DescriptorPool, MessageDescriptor, MethodDescriptor, ServiceDescriptor, Value,
};
use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Map, Value as Json, json};
use tokio::sync::watch;

use crate::config::UpstreamLimits;
use crate::schema::{Comments, Direction, SchemaError, SchemaLimits, message_schema};

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

/// The `switchboard.mcp.v1.tool` option of a method, as far as it is set.
#[derive(Debug, Default)]
struct ToolOptions {
    name: Option<String>,
    title: Option<String>,
    destructive: Option<bool>,
    open_world: Option<bool>,
    hidden: bool,
    input_schema: Option<String>,
}

fn tool_options(method: &MethodDescriptor) -> ToolOptions {
    let pool = method.parent_pool();
    let Some(ext) = pool.get_extension_by_name("switchboard.mcp.v1.tool") else {
        return ToolOptions::default();
    };
    let options = method.options();
    if !options.has_extension(&ext) {
        return ToolOptions::default();
    }
    let value = options.get_extension(&ext);
    let Some(msg) = value.as_message() else {
        return ToolOptions::default();
    };
    let string = |name: &str| {
        msg.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty())
    };
    let flag = |name: &str| {
        msg.has_field_by_name(name)
            .then(|| msg.get_field_by_name(name).and_then(|v| v.as_bool()))
            .flatten()
    };
    ToolOptions {
        name: string("name"),
        title: string("title"),
        destructive: flag("destructive"),
        open_world: flag("open_world"),
        hidden: flag("hidden").unwrap_or(false),
        input_schema: string("input_schema"),
    }
}

/// `idempotency_level` of a method: 0 unknown, 1 no side effects, 2 idempotent.
fn idempotency_level(method: &MethodDescriptor) -> i32 {
    method
        .options()
        .get_field_by_name("idempotency_level")
        .and_then(|v| match v.as_ref() {
            Value::EnumNumber(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// Builds the tools of one service of a connector. Client-streaming methods
/// cannot be called with one JSON object and are skipped (with a log line);
/// the names of methods marked hidden go to `hidden`. A method whose schema is
/// over `limits` is left out too, with the reason logged and kept in `withheld`.
fn tools_for_service(
    connector: &str,
    prefix: &str,
    service: &ServiceDescriptor,
    comments: &Comments,
    limits: SchemaLimits,
    hidden: &mut Vec<String>,
    withheld: &mut Vec<String>,
) -> Vec<ToolEntry> {
    let mut out = Vec::new();
    for method in service.methods() {
        if method.is_client_streaming() {
            tracing::warn!(
                connector,
                method = method.full_name(),
                "client-streaming method cannot be a tool, skipped"
            );
            continue;
        }
        let options = tool_options(&method);
        let base = options
            .name
            .clone()
            .unwrap_or_else(|| switchboard_proto::snake_case(method.name()));
        let name = if prefix.is_empty() {
            base
        } else {
            format!("{prefix}_{base}")
        };
        if options.hidden {
            hidden.push(name);
            continue;
        }
        let description = comments
            .get(&method.parent_file(), method.path())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!("Calls {} on the {connector} connector.", method.full_name())
            });

        let custom = options.input_schema.as_deref().and_then(|raw| {
            match serde_json::from_str::<Json>(raw) {
                Ok(Json::Object(schema)) => Some((schema, raw.len())),
                _ => {
                    tracing::warn!(
                        connector,
                        method = method.full_name(),
                        "tool option input_schema is not a JSON object, generated schema used"
                    );
                    None
                }
            }
        });
        let schemas = match custom {
            Some((_, size)) if size > limits.max_bytes => Err(SchemaError::TooLarge {
                message: method.input().full_name().to_owned(),
                size,
                limit: limits.max_bytes,
            }),
            Some((schema, _)) => Ok(schema),
            None => message_schema(&method.input(), comments, Direction::Input, limits),
        }
        .and_then(|input| {
            output_schema(
                &method.output(),
                method.is_server_streaming(),
                comments,
                limits,
            )
            .map(|output| (input, output))
        });
        let (input, output) = match schemas {
            Ok(schemas) => schemas,
            Err(error) => {
                tracing::warn!(
                    connector,
                    method = method.full_name(),
                    tool = %name,
                    %error,
                    "tool left out of the catalog"
                );
                withheld.push(format!("{name}: {error}"));
                continue;
            }
        };

        let level = idempotency_level(&method);
        let read_only = level == 1;
        let mut annotations = ToolAnnotations::new();
        annotations.title = options.title.clone();
        annotations.read_only_hint = Some(read_only);
        annotations.idempotent_hint = Some(level >= 1);
        annotations.destructive_hint = if read_only {
            Some(false)
        } else {
            options.destructive.or(Some(false))
        };
        annotations.open_world_hint = options.open_world.or(Some(false));

        let mut tool = Tool::new(name, description, Arc::new(input)).with_annotations(annotations);
        if let Some(title) = options.title {
            tool = tool.with_title(title);
        }
        if let Some(output) = output {
            tool = tool.with_raw_output_schema(Arc::new(output));
        }
        out.push(ToolEntry {
            tool,
            connector: connector.to_owned(),
            path: format!("/{}/{}", service.full_name(), method.name()),
            retryable: level >= 1,
            method,
        });
    }
    out
}

/// The output schema; `None` for well-known result types whose JSON is not an object.
fn output_schema(
    message: &MessageDescriptor,
    streaming: bool,
    comments: &Comments,
    limits: SchemaLimits,
) -> Result<Option<Map<String, Json>>, SchemaError> {
    if matches!(
        message.full_name(),
        "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.Struct"
            | TOOL_RESULT
            | STREAM_EVENT
    ) || (message.full_name().starts_with("google.protobuf.")
        && message.full_name() != "google.protobuf.Empty")
    {
        return Ok(None);
    }
    let item = message_schema(message, comments, Direction::Output, limits)?;
    if !streaming {
        return Ok(Some(item));
    }
    Ok(Some(stream_schema(item)))
}

/// The output schema of a streaming method: every message under `messages`.
/// The message schema's shared definitions move to the root, where its
/// `#/$defs/...` references resolve.
fn stream_schema(mut item: Map<String, Json>) -> Map<String, Json> {
    let defs = item.remove("$defs");
    let mut wrapped = Map::new();
    wrapped.insert("type".into(), json!("object"));
    wrapped.insert(
        "properties".into(),
        json!({
            "messages": {
                "type": "array",
                "description": "Every message the method streamed, in order.",
                "items": Json::Object(item),
            }
        }),
    );
    wrapped.insert("required".into(), json!(["messages"]));
    if let Some(defs) = defs {
        wrapped.insert("$defs".into(), defs);
    }
    wrapped
}

/// A connector's tools, and the names its hidden methods would have.
#[derive(Debug, Default)]
pub struct ConnectorTools {
    /// The tools, sorted by name.
    pub tools: Vec<ToolEntry>,
    /// Methods marked hidden (e.g. writes a read-only deployment turns off).
    pub hidden: Vec<String>,
    /// Methods left out because their schema is over the limits, with why.
    pub withheld: Vec<String>,
}

/// Builds every tool of a connector from its descriptor pool and advertised services.
pub fn tools_for_connector(
    connector: &str,
    prefix: &str,
    pool: &DescriptorPool,
    services: &[String],
    limits: &UpstreamLimits,
) -> ConnectorTools {
    let files: Vec<_> = pool.files().collect();
    let comments = Comments::new(files.iter());
    let mut tools = Vec::new();
    let mut hidden = Vec::new();
    let mut withheld = Vec::new();
    for name in services {
        if name == RESOURCES_SERVICE || name == PROMPTS_SERVICE || name == INTERACTIONS_SERVICE {
            continue;
        }
        match pool.get_service_by_name(name) {
            Some(service) => tools.extend(tools_for_service(
                connector,
                prefix,
                &service,
                &comments,
                SchemaLimits::from(limits),
                &mut hidden,
                &mut withheld,
            )),
            None => {
                tracing::warn!(connector, service = %name, "advertised service has no descriptor")
            }
        }
    }
    tools.sort_by(|a, b| a.tool.name.cmp(&b.tool.name));
    ConnectorTools {
        tools,
        hidden,
        withheld,
    }
}

/// What the router knows of a connector's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorStatus {
    /// Not contacted yet.
    Starting,
    /// SERVING; its tools are current.
    Serving,
    /// Reachable but NOT_SERVING (e.g. not configured, upstream down).
    NotServing,
    /// Cannot be reached; the reason is kept for error messages.
    Unreachable(String),
}

impl std::fmt::Display for ConnectorStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Starting => f.write_str("starting"),
            Self::Serving => f.write_str("serving"),
            Self::NotServing => f.write_str("not serving"),
            Self::Unreachable(reason) => write!(f, "unreachable ({reason})"),
        }
    }
}

#[derive(Debug)]
struct ConnectorState {
    name: String,
    status: ConnectorStatus,
    since: Instant,
    /// Whether the connector has given a definitive answer (for the startup wait).
    settled: bool,
    tools: Vec<Arc<ToolEntry>>,
    /// Names of the connector's methods it marks hidden.
    hidden: Vec<String>,
    features: Features,
}

/// Warns about every tool of `connector` that another connector also offers
/// under the same name: the one configured first is listed and called, the
/// other is unreachable until a prefix tells them apart.
fn warn_collisions(state: &[ConnectorState], connector: &str) {
    let Some(mine) = state.iter().find(|c| c.name == connector) else {
        return;
    };
    for other in state.iter().filter(|c| c.name != connector) {
        for tool in &mine.tools {
            if other.tools.iter().any(|t| t.tool.name == tool.tool.name) {
                let winner = state
                    .iter()
                    .find(|c| c.name == connector || c.name == other.name)
                    .map_or(connector, |c| c.name.as_str());
                tracing::warn!(
                    tool = %tool.tool.name,
                    connectors = %format!("{connector}, {}", other.name),
                    winner,
                    "two connectors offer a tool of the same name: only the one configured first is listed and called; give one of them another prefix"
                );
            }
        }
    }
}

/// A tool looked up for a call, with its connector's current state.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The tool.
    pub entry: Arc<ToolEntry>,
    /// The connector's status.
    pub status: ConnectorStatus,
    /// How long it has had that status.
    pub for_duration: Duration,
}

/// The live catalog shared by the upstream watchers and the MCP sessions.
#[derive(Debug)]
pub struct ToolCatalog {
    state: RwLock<Vec<ConnectorState>>,
    version: watch::Sender<u64>,
    /// Bumped when a connector's resources or prompts may have changed.
    surface_version: watch::Sender<u64>,
    settled: watch::Sender<usize>,
    ready_deadline: Instant,
}

impl ToolCatalog {
    /// A catalog for these connectors (in listing order); the first `tools/list`
    /// waits until `startup_timeout` from now at most.
    pub fn new(connectors: impl IntoIterator<Item = String>, startup_timeout: Duration) -> Self {
        let now = Instant::now();
        let state = connectors
            .into_iter()
            .map(|name| ConnectorState {
                name,
                status: ConnectorStatus::Starting,
                since: now,
                settled: false,
                tools: Vec::new(),
                hidden: Vec::new(),
                features: Features::default(),
            })
            .collect();
        Self {
            state: RwLock::new(state),
            version: watch::channel(0).0,
            surface_version: watch::channel(0).0,
            settled: watch::channel(0).0,
            ready_deadline: now + startup_timeout,
        }
    }

    fn write<R>(&self, f: impl FnOnce(&mut Vec<ConnectorState>) -> R) -> R {
        let mut guard = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    fn read<R>(&self, f: impl FnOnce(&Vec<ConnectorState>) -> R) -> R {
        let guard = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }

    /// Records a connector's status. A definitive answer (serving or not serving)
    /// settles it for the startup wait.
    pub fn set_status(&self, connector: &str, status: ConnectorStatus) {
        let newly_settled = self.write(|state| {
            let Some(c) = state.iter_mut().find(|c| c.name == connector) else {
                return false;
            };
            if c.status != status {
                c.status = status.clone();
                c.since = Instant::now();
            }
            let definitive = matches!(
                status,
                ConnectorStatus::Serving | ConnectorStatus::NotServing
            );
            if definitive && !c.settled {
                c.settled = true;
                return true;
            }
            false
        });
        if newly_settled {
            self.settled.send_modify(|n| *n += 1);
        }
    }

    /// Replaces a connector's tools; notifies sessions if the listed tools changed.
    pub fn set_tools(&self, connector: &str, tools: Vec<ToolEntry>) {
        let changed = self.write(|state| {
            let Some(c) = state.iter_mut().find(|c| c.name == connector) else {
                return false;
            };
            let same = c.tools.len() == tools.len()
                && c.tools.iter().zip(&tools).all(|(a, b)| a.tool == b.tool);
            c.tools = tools.into_iter().map(Arc::new).collect();
            warn_collisions(state, connector);
            !same
        });
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
    }

    /// Publishes what a connector serves now that it is SERVING, in one step: its
    /// tools, its generic services and its status change together, so a client
    /// told to list again (sessions are notified here) can call what it lists.
    pub fn publish(&self, connector: &str, tools: ConnectorTools, features: Features) {
        let newly_settled = self.write(|state| {
            let Some(c) = state.iter_mut().find(|c| c.name == connector) else {
                return false;
            };
            c.tools = tools.tools.into_iter().map(Arc::new).collect();
            c.hidden = tools.hidden;
            c.features = features;
            if c.status != ConnectorStatus::Serving {
                c.status = ConnectorStatus::Serving;
                c.since = Instant::now();
            }
            let newly = !std::mem::replace(&mut c.settled, true);
            warn_collisions(state, connector);
            newly
        });
        // A connector that comes back may have been redeployed: every session
        // lists again, whether or not the tools look the same.
        self.notify_changed();
        if newly_settled {
            self.settled.send_modify(|n| *n += 1);
        }
    }

    /// Tells every session to list the tools again (a connector came back and may
    /// have been redeployed, so clients that cached the list should refresh it).
    pub fn notify_changed(&self) {
        self.version.send_modify(|v| *v += 1);
        self.surface_version.send_modify(|v| *v += 1);
    }

    /// Withdraws a connector's tools, resources and prompts (down for longer
    /// than the grace period).
    pub fn withdraw(&self, connector: &str) {
        self.write(|state| {
            if let Some(c) = state.iter_mut().find(|c| c.name == connector) {
                c.hidden.clear();
            }
        });
        self.set_tools(connector, Vec::new());
        self.set_features(connector, Features::default());
    }

    /// Records which generic services a connector serves; tells sessions to list
    /// resources and prompts again when that changed.
    pub fn set_features(&self, connector: &str, features: Features) {
        let changed = self.write(|state| {
            let Some(c) = state.iter_mut().find(|c| c.name == connector) else {
                return false;
            };
            let changed = c.features != features;
            c.features = features;
            changed
        });
        if changed {
            self.surface_version.send_modify(|v| *v += 1);
        }
    }

    /// Connectors that are serving now and offer `feature`, in configuration order.
    pub fn serving_with(&self, feature: impl Fn(&Features) -> bool) -> Vec<String> {
        self.read(|state| {
            state
                .iter()
                .filter(|c| c.status == ConnectorStatus::Serving && feature(&c.features))
                .map(|c| c.name.clone())
                .collect()
        })
    }

    /// A connector's status and how long it has had it.
    pub fn status(&self, connector: &str) -> Option<(ConnectorStatus, Duration)> {
        self.read(|state| {
            state
                .iter()
                .find(|c| c.name == connector)
                .map(|c| (c.status.clone(), c.since.elapsed()))
        })
    }

    /// Every connector with its status, in configuration order.
    pub fn statuses(&self) -> Vec<(String, ConnectorStatus, usize)> {
        self.read(|state| {
            state
                .iter()
                .map(|c| (c.name.clone(), c.status.clone(), c.tools.len()))
                .collect()
        })
    }

    /// All listed tools, ordered by name. When names collide, the connector
    /// configured first wins (and a warning is logged when the tools are set).
    pub fn tools(&self) -> Vec<Tool> {
        let mut by_name: BTreeMap<String, Tool> = BTreeMap::new();
        self.read(|state| {
            for c in state {
                for t in &c.tools {
                    by_name
                        .entry(t.tool.name.to_string())
                        .or_insert_with(|| t.tool.clone());
                }
            }
        });
        by_name.into_values().collect()
    }

    /// Finds a tool by name, with its connector's state.
    pub fn resolve(&self, name: &str) -> Option<Resolved> {
        self.read(|state| {
            state.iter().find_map(|c| {
                c.tools
                    .iter()
                    .find(|t| t.tool.name == name)
                    .map(|t| Resolved {
                        entry: t.clone(),
                        status: c.status.clone(),
                        for_duration: c.since.elapsed(),
                    })
            })
        })
    }

    /// The connector that hides a method under the tool name `name`, if one does.
    pub fn hidden_by(&self, name: &str) -> Option<String> {
        self.read(|state| {
            state
                .iter()
                .find(|c| c.hidden.iter().any(|h| h == name))
                .map(|c| c.name.clone())
        })
    }

    /// The tool named `name` as it is listed, if any.
    pub fn tool(&self, name: &str) -> Option<Tool> {
        self.resolve(name).map(|r| r.entry.tool.clone())
    }

    /// Watches the listed tools' version (bumped on every change).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Watches the version of the resources and prompts on offer (bumped when a
    /// connector starts or stops serving them, or comes back and may have changed).
    pub fn subscribe_surface(&self) -> watch::Receiver<u64> {
        self.surface_version.subscribe()
    }

    /// Whether every connector has answered, or the startup wait is over.
    pub fn is_ready(&self) -> bool {
        *self.settled.borrow() >= self.read(Vec::len) || Instant::now() >= self.ready_deadline
    }

    /// Waits until every connector has answered, at most until the startup deadline.
    pub async fn wait_ready(&self) {
        let total = self.read(Vec::len);
        let mut rx = self.settled.subscribe();
        let deadline = tokio::time::Instant::from_std(self.ready_deadline);
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|n| *n >= total)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connectors_pool() -> DescriptorPool {
        DescriptorPool::decode(switchboard_proto::FILE_DESCRIPTOR_SET)
            .expect("switchboard-proto's descriptor set decodes")
    }

    fn services(pool: &DescriptorPool) -> Vec<String> {
        pool.services().map(|s| s.full_name().to_owned()).collect()
    }

    #[test]
    fn every_connector_tool_fits_the_default_schema_limits() {
        let pool = connectors_pool();
        let tools = tools_for_connector(
            "c",
            "c",
            &pool,
            &services(&pool),
            &UpstreamLimits::default(),
        );
        assert!(tools.withheld.is_empty(), "{:?}", tools.withheld);
        assert!(tools.tools.len() > 20, "{} tools", tools.tools.len());
    }

    #[test]
    fn a_tool_over_the_schema_limits_is_withheld_with_its_reason_and_the_others_stay() {
        let pool = connectors_pool();
        let all = tools_for_connector(
            "c",
            "c",
            &pool,
            &services(&pool),
            &UpstreamLimits::default(),
        );
        let sizes: Vec<usize> = all
            .tools
            .iter()
            .map(|t| serde_json::to_vec(&*t.tool.input_schema).map_or(0, |b| b.len()))
            .collect();
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let limits = UpstreamLimits {
            max_schema_bytes: largest - 1,
            ..UpstreamLimits::default()
        };
        let bounded = tools_for_connector("c", "c", &pool, &services(&pool), &limits);
        assert!(!bounded.withheld.is_empty());
        assert!(
            bounded
                .withheld
                .iter()
                .all(|w| w.contains("max_schema_bytes")),
            "{:?}",
            bounded.withheld
        );
        assert_eq!(
            bounded.tools.len() + bounded.withheld.len(),
            all.tools.len()
        );
        assert!(!bounded.tools.is_empty(), "the other tools stay");
    }

    #[test]
    fn a_streamed_messages_shared_definitions_sit_at_the_root_where_refs_resolve() {
        let item = json!({
            "type": "object",
            "properties": { "a": { "$ref": "#/$defs/pkg.Shared" }, "b": { "$ref": "#/$defs/pkg.Shared" } },
            "$defs": { "pkg.Shared": { "type": "object" } },
        });
        let Json::Object(item) = item else {
            unreachable!("an object literal")
        };
        let wrapped = Json::Object(stream_schema(item));
        assert_eq!(wrapped["$defs"]["pkg.Shared"], json!({ "type": "object" }));
        let items = &wrapped["properties"]["messages"]["items"];
        assert!(items.get("$defs").is_none(), "{wrapped}");
        assert_eq!(items["properties"]["a"]["$ref"], "#/$defs/pkg.Shared");
        let plain = json!({ "type": "object", "properties": {} });
        let Json::Object(plain) = plain else {
            unreachable!("an object literal")
        };
        assert!(Json::Object(stream_schema(plain)).get("$defs").is_none());
    }

    #[test]
    fn a_tool_name_two_connectors_offer_is_logged_and_the_first_configured_wins() {
        let pool = connectors_pool();
        let offered = |name: &str| {
            tools_for_connector(
                name,
                "x",
                &pool,
                &services(&pool),
                &UpstreamLimits::default(),
            )
        };
        let catalog = ToolCatalog::new(["a".to_owned(), "b".to_owned()], Duration::from_secs(1));
        let quiet = crate::testlog::warnings(|| {
            catalog.publish("a", offered("a"), Features::default());
        });
        assert!(!quiet.contains("same name"), "{quiet}");
        let logged = crate::testlog::warnings(|| {
            catalog.publish("b", offered("b"), Features::default());
        });
        assert!(
            logged.contains("two connectors offer a tool of the same name"),
            "{logged}"
        );
        assert!(
            logged.contains("winner=a") || logged.contains("winner=\"a\""),
            "{logged}"
        );
        let name = catalog
            .tools()
            .first()
            .map(|t| t.name.to_string())
            .unwrap_or_default();
        let resolved = catalog.resolve(&name).expect("listed");
        assert_eq!(resolved.entry.connector, "a");
    }
}
