//! Connector descriptors → MCP tools.
//!
//! [`tools_for_connector`] turns each RPC method of a connector's services into
//! an MCP [`Tool`]: name `<prefix>_<method_in_snake_case>` (or the `tool.name`
//! option), description from the method comment, input/output JSON Schema from
//! the messages ([`crate::schema`]), annotations from `idempotency_level` and the
//! `tool` option. A method whose schema is over the limits, whose tool name is
//! not one the MCP specification allows ([`check_tool_name`]), or whose
//! messages carry names no protobuf compiler writes ([`check_names`]) is
//! withheld with its reason; methods marked hidden are named but not listed.
//! Nothing here knows
//! whether a connector is up: that is [`super::live`].

use std::sync::Arc;

use prost_reflect::{
    DescriptorPool, MessageDescriptor, MethodDescriptor, ServiceDescriptor, Value,
};
use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Map, Value as Json, json};

use super::{
    INTERACTIONS_SERVICE, PROMPTS_SERVICE, RESOURCES_SERVICE, STREAM_EVENT, TOOL_RESULT, ToolEntry,
};
use crate::config::UpstreamLimits;
use crate::schema::{
    Comments, Direction, SchemaError, SchemaLimits, check_names, message_schema, shown_name,
};

/// The longest tool name (the MCP specification's bound).
pub const MAX_TOOL_NAME_CHARS: usize = 128;

/// Whether `name` is a tool name as the MCP specification has them: 1 to 128
/// ASCII letters, digits, `_`, `-` and `.`. Clients and model APIs refuse
/// others, and one refused name can fail every request an agent makes.
pub fn check_tool_name(name: &str) -> Result<(), String> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "a tool name is made of ASCII letters, digits, '_', '-' and '.', this one has {c:?}"
        ));
    }
    // All ASCII from here: bytes are characters.
    if name.is_empty() || name.len() > MAX_TOOL_NAME_CHARS {
        return Err(format!(
            "a tool name is 1 to {MAX_TOOL_NAME_CHARS} characters, this one {}; give the method a shorter name (or the tool option `name`)",
            name.len()
        ));
    }
    Ok(())
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
        title: string("title").map(|t| crate::content::terminal_safe(&t).into_owned()),
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
        // Logged and kept with the reason; the name quoted and cut, as it may
        // be anything a connector sends.
        let mut withhold = |why: &dyn std::fmt::Display| {
            let shown = shown_name(&name);
            tracing::warn!(
                connector,
                method = method.full_name(),
                tool = %shown,
                %why,
                "tool left out of the catalog"
            );
            withheld.push(format!("{shown}: {why}"));
        };
        if let Err(why) = check_tool_name(&name) {
            withhold(&why);
            continue;
        }
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
        let schemas = check_names(&method.input())
            .and_then(|()| check_names(&method.output()))
            .and_then(|()| match custom {
                Some((_, size)) if size > limits.max_bytes => Err(SchemaError::TooLarge {
                    message: method.input().full_name().to_owned(),
                    size,
                    limit: limits.max_bytes,
                }),
                Some((schema, _)) => Ok(schema),
                None => message_schema(&method.input(), comments, Direction::Input, limits),
            })
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
                withhold(&error);
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Every connector's descriptors, as switchboard-proto compiles them.
    pub(in crate::catalog) fn connectors_pool() -> DescriptorPool {
        DescriptorPool::decode(switchboard_proto::FILE_DESCRIPTOR_SET)
            .expect("switchboard-proto's descriptor set decodes")
    }

    #[test]
    fn tool_names_are_what_the_mcp_specification_allows() {
        for good in [
            "a",
            "jira_search",
            "code-analysis.review_file",
            &"x".repeat(128),
        ] {
            assert_eq!(check_tool_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "1 to 128"),
            (&"x".repeat(129) as &str, "1 to 128"),
            ("drop tables", "' '"),
            ("jira/search", "'/'"),
            ("überblick", "'ü'"),
            ("admin\u{202e}resu", "'\\u{202e}'"),
        ] {
            let error = check_tool_name(bad).expect_err(bad);
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }

    #[test]
    fn every_connectors_descriptors_have_only_identifiers() {
        let pool = connectors_pool();
        for method in pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
        {
            check_names(&method.input()).expect("input names");
            check_names(&method.output()).expect("output names");
        }
        assert_eq!(
            shown_name(&format!("a\u{202e}{}", "b".repeat(100))),
            format!("\"a\\u{{202e}}{}\" (cut, 104 bytes in all)", "b".repeat(62))
        );
    }

    /// Every service of `pool`, as a connector would advertise them.
    pub(in crate::catalog) fn services(pool: &DescriptorPool) -> Vec<String> {
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
}
