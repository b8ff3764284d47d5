//! The OpenAPI 3.1 document of the REST front door, built from the tools a
//! caller may use: one path per tool (`operationId` = the tool's name,
//! tagged with its connector), the request body from the tool's input
//! schema, the 200 envelope with its output schema, problem details for
//! every error, and the bearer-token scheme when an issuer is set.
//!
//! Besides the tools: `POST /batch`, `GET /resources` and
//! `GET /prompts/{name}`; a server-streaming tool's 200 also offers
//! `text/event-stream`. Documents are cached ([`Documents`]): one is built
//! per catalog version and set of tools a caller may see, so a caller gets
//! the same bytes (and `ETag`) until the catalog changes.
//!
//! A tool schema's `$defs` cannot stay inline: in an OpenAPI document
//! `#/$defs/X` would resolve against the document's root. Each definition
//! moves to `components/schemas` (under its own name, or prefixed with the
//! tool's when another tool defines the same name differently) and every
//! `$ref` pointing at it is rewritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{Offered, problem};
use crate::catalog::ToolCatalog;

/// Documents kept at once: one per set of visible tools (callers under the
/// same policy rules share one).
const CACHED_DOCUMENTS: u64 = 64;

/// One built document and its entity tag.
#[derive(Debug)]
pub struct Built {
    /// The document's bytes.
    pub body: String,
    /// A strong `ETag`: a hash of the bytes.
    pub etag: String,
}

/// The cache of built documents, keyed by the catalog's version and the
/// tools a caller may see; a new catalog version drops the old entries.
pub struct Documents {
    version: watch::Receiver<u64>,
    newest: AtomicU64,
    cache: moka::sync::Cache<[u8; 32], Arc<Built>>,
    builds: AtomicU64,
}

impl Documents {
    /// Documents of `catalog`'s tools, rebuilt when it changes.
    pub fn new(catalog: &ToolCatalog) -> Self {
        Self {
            version: catalog.subscribe(),
            newest: AtomicU64::new(0),
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHED_DOCUMENTS)
                .build(),
            builds: AtomicU64::new(0),
        }
    }

    /// The catalog's version now.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// The document of `tools` at catalog `version`, built by `build` only
    /// when it is not cached.
    pub fn get_or_build(
        &self,
        version: u64,
        tools: &[Offered],
        build: impl FnOnce() -> String,
    ) -> Arc<Built> {
        if self.newest.fetch_max(version, Ordering::AcqRel) < version {
            self.cache.invalidate_all();
        }
        let mut key = Sha256::new();
        key.update(version.to_be_bytes());
        for offered in tools {
            key.update(offered.tool.name.as_bytes());
            key.update([0]);
        }
        self.cache.get_with(key.finalize().into(), || {
            self.builds.fetch_add(1, Ordering::Relaxed);
            let body = build();
            Arc::new(Built {
                etag: etag(body.as_bytes()),
                body,
            })
        })
    }

    /// How many documents were built (not served from the cache).
    #[cfg(test)]
    fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }
}

/// A strong entity tag for `bytes`.
fn etag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// What the document says besides the tools.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The issuer whose tokens the router accepts, when auth is on.
    pub issuer: Option<String>,
    /// Every scope a policy rule asks for.
    pub scopes: Vec<String>,
    /// The most calls in one batch (`max_batch_calls`).
    pub max_batch_calls: usize,
}

/// The document for `tools`.
pub fn document(tools: &[Offered], site: &Site) -> Json {
    let mut components = Map::new();
    components.insert("Problem".into(), problem::schema());
    let mut paths = Map::new();
    paths.insert("/tools".into(), list_operation());
    paths.insert("/batch".into(), batch_operation(site.max_batch_calls));
    paths.insert("/resources".into(), resource_operation());
    paths.insert("/prompts/{name}".into(), prompt_operation());
    let mut tags = BTreeSet::new();
    for Offered {
        tool,
        connector,
        streaming,
    } in tools
    {
        tags.insert(connector.clone());
        let name = tool.name.to_string();
        let input = hoist(
            Json::Object((*tool.input_schema).clone()),
            &name,
            "input",
            &mut components,
        );
        let output = tool.output_schema.as_ref().map_or_else(
            || json!({ "description": "The tool declares no output schema: always null." }),
            |schema| {
                hoist(
                    Json::Object((**schema).clone()),
                    &name,
                    "output",
                    &mut components,
                )
            },
        );
        paths.insert(
            format!("/tools/{name}"),
            json!({ "post": tool_operation(tool, connector, *streaming, input, output) }),
        );
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The router's tools over plain HTTP: POST a tool's arguments as a JSON object, get its result; several calls at once with POST /batch; resources and prompts of the connectors. The same authentication, policy, limits and audit as MCP. This document lists only the tools the caller may use.",
        },
        "servers": [{ "url": "/api/v1" }],
        "tags": tags.iter().map(|t| json!({ "name": t, "description": format!("Tools of the connector {t}.") })).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": responses(),
        },
    });
    if let Some(issuer) = &site.issuer {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        document["components"]["securitySchemes"] = json!({
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": format!("An access token from {issuer}. Scopes the policy asks for: {}.", if site.scopes.is_empty() { "none".to_owned() } else { site.scopes.join(" ") }),
            },
            "issuer": { "type": "openIdConnect", "openIdConnectUrl": discovery },
        });
        document["security"] = json!([{ "bearer": [] }]);
    }
    document
}

/// `GET /tools`.
fn list_operation() -> Json {
    json!({ "get": {
        "operationId": "switchboard:listTools",
        "summary": "The tools the caller may use.",
        "responses": {
            "200": {
                "description": "The tools.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": { "tools": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "name": { "type": "string" },
                            "connector": { "type": "string" },
                            "title": { "type": "string" },
                            "description": { "type": "string" },
                            "inputSchema": { "type": "object" },
                            "outputSchema": { "type": "object" },
                            "annotations": { "type": "object" },
                        },
                        "required": ["name", "connector", "inputSchema"],
                    } } },
                    "required": ["tools"],
                } } },
            },
            "401": { "$ref": "#/components/responses/Unauthorized" },
        },
    } })
}

/// `POST /batch`.
fn batch_operation(max_calls: usize) -> Json {
    let mut operation = json!({ "post": {
        "operationId": "switchboard:batch",
        "summary": "Several tool calls at once.",
        "description": format!("Runs the calls concurrently (at most max_calls_per_session at once), each authorized and limited on its own, and answers each call's status and result in the order given; one failing call does not fail the others. At most {max_calls} calls (max_batch_calls): a bigger batch is answered 413 and none of its calls runs."),
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": {
                "type": "object",
                "properties": { "calls": {
                    "type": "array",
                    "maxItems": max_calls,
                    "items": {
                        "type": "object",
                        "properties": {
                            "tool": { "type": "string", "description": "The tool's name, as GET /tools lists it." },
                            "arguments": { "type": "object", "description": "The tool's arguments; none when left out." },
                        },
                        "required": ["tool"],
                        "additionalProperties": false,
                    },
                } },
                "required": ["calls"],
                "additionalProperties": false,
            } } },
        },
        "responses": {
            "200": {
                "description": "One answer per call, in order.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": { "results": { "type": "array", "items": {
                        "type": "object",
                        "description": "With status 200 the call's envelope (result, content, isError); otherwise its problem document under problem.",
                        "properties": {
                            "tool": { "type": "string" },
                            "status": { "type": "integer", "description": "The HTTP status the call alone would have got." },
                            "result": { "description": "The tool's structured result (null when it declares none)." },
                            "content": { "type": "array", "items": { "type": "object" } },
                            "isError": { "type": "boolean" },
                            "problem": { "$ref": "#/components/schemas/Problem" },
                        },
                        "required": ["tool", "status"],
                    } } },
                    "required": ["results"],
                } } },
            },
        },
    } });
    for (status, name) in [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("408", "SlowBody"),
        ("413", "TooLarge"),
        ("415", "UnsupportedMediaType"),
        ("503", "Unavailable"),
    ] {
        operation["post"]["responses"][status] =
            json!({ "$ref": format!("#/components/responses/{name}") });
    }
    operation
}

/// `GET /resources?uri=`.
fn resource_operation() -> Json {
    let mut operation = json!({ "get": {
        "operationId": "switchboard:readResource",
        "summary": "Reads a resource of a connector.",
        "description": "The URI as the router names it (prefixed with the connector's prefix and +, as resources/list over MCP shows it). Answered from the router's cache for as long as the connector allows.",
        "parameters": [{
            "name": "uri",
            "in": "query",
            "required": true,
            "description": "The resource's URI.",
            "schema": { "type": "string", "minLength": 1 },
        }],
        "responses": {
            "200": {
                "description": "The resource's contents.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": { "contents": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "uri": { "type": "string" },
                            "mimeType": { "type": "string" },
                            "text": { "type": "string" },
                            "blob": { "type": "string", "description": "Base64." },
                        },
                        "required": ["uri"],
                    } } },
                    "required": ["contents"],
                } } },
            },
        },
    } });
    add_surface_errors(&mut operation["get"]["responses"]);
    operation
}

/// `GET /prompts/{name}`.
fn prompt_operation() -> Json {
    let mut operation = json!({ "get": {
        "operationId": "switchboard:getPrompt",
        "summary": "Gets a prompt of a connector, its arguments as the query.",
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": true,
                "description": "The prompt's name, as prompts/list over MCP shows it.",
                "schema": { "type": "string" },
            },
            {
                "name": "arguments",
                "in": "query",
                "required": false,
                "description": "The prompt's arguments, each as a query parameter of its name (given once).",
                "style": "form",
                "explode": true,
                "schema": { "type": "object", "additionalProperties": { "type": "string" } },
            },
        ],
        "responses": {
            "200": {
                "description": "The prompt's messages.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": {
                        "description": { "type": "string" },
                        "messages": { "type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "role": { "type": "string", "enum": ["user", "assistant"] },
                                "content": { "type": "object" },
                            },
                            "required": ["role", "content"],
                        } },
                    },
                    "required": ["messages"],
                } } },
            },
        },
    } });
    add_surface_errors(&mut operation["get"]["responses"]);
    operation
}

/// The problems a resource read or prompt get can end with.
fn add_surface_errors(responses: &mut Json) {
    for (status, name) in [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("502", "ToolError"),
    ] {
        responses[status] = json!({ "$ref": format!("#/components/responses/{name}") });
    }
}

/// `POST /tools/{name}`.
fn tool_operation(
    tool: &rmcp::model::Tool,
    connector: &str,
    streaming: bool,
    input: Json,
    output: Json,
) -> Json {
    let mut operation = json!({
        "operationId": tool.name,
        "tags": [connector],
        "summary": tool.title.as_deref().unwrap_or(&tool.name),
        "description": tool.description.as_deref().unwrap_or(""),
        "requestBody": {
            "required": false,
            "description": "The tool's arguments. An empty body means no arguments.",
            "content": { "application/json": { "schema": input } },
        },
        "responses": {
            "200": {
                "description": "The tool's result.",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": {
                        "result": output,
                        "content": { "type": "array", "description": "The MCP content blocks of the result.", "items": { "type": "object" } },
                        "isError": { "type": "boolean", "const": false },
                    },
                    "required": ["result", "content", "isError"],
                } } },
            },
        },
    });
    if streaming {
        operation["responses"]["200"]["content"]["text/event-stream"] = json!({
            "schema": {
                "type": "string",
                "description": "With Accept: text/event-stream, server-sent events as the call runs: `message` (a streamed message, as JSON), `progress` ({progress, total, message}), `log` ({level, logger, data}), then one `result` (the 200 envelope) or `error` (a problem document).",
            },
        });
    }
    let errors = [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("408", "SlowBody"),
        ("409", "ToolError"),
        ("413", "TooLarge"),
        ("415", "UnsupportedMediaType"),
        ("422", "ToolError"),
        ("429", "Limited"),
        ("502", "ToolError"),
        ("503", "Unavailable"),
        ("504", "Deadline"),
    ];
    for (status, name) in errors {
        operation["responses"][status] =
            json!({ "$ref": format!("#/components/responses/{name}") });
    }
    if let Some(annotations) = &tool.annotations
        && let Ok(value) = serde_json::to_value(annotations)
    {
        operation["x-mcp-annotations"] = value;
    }
    operation
}

/// The shared problem responses.
fn responses() -> Json {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
        })
    };
    let retry = json!({ "Retry-After": { "description": "Seconds to wait before retrying.", "schema": { "type": "integer" } } });
    let mut limited = problem("A limit refused the call: wait Retry-After seconds.");
    limited["headers"] = retry.clone();
    let mut unavailable = problem(
        "The connector is not serving, or the router is reading as many request bodies as it allows (max_body_bytes_in_flight): retry later.",
    );
    unavailable["headers"] = retry;
    json!({
        "BadRequest": problem("The arguments do not fit the tool's input schema, or the body is not JSON."),
        "Unauthorized": problem("No valid bearer token (see WWW-Authenticate)."),
        "Forbidden": problem("The token lacks a scope the policy asks for (see WWW-Authenticate)."),
        "NotFound": problem("No such tool, resource or prompt is offered to the caller."),
        "SlowBody": problem("The body was not sent within body_read_timeout."),
        "TooLarge": problem("The body is larger than max_body_bytes."),
        "UnsupportedMediaType": problem("The body is not application/json."),
        "Limited": limited,
        "Unavailable": unavailable,
        "Deadline": problem("The connector did not answer in time."),
        "ToolError": problem("The tool or its connector failed; detail has its message, content its content blocks."),
    })
}

/// Moves `schema`'s `$defs` into `components` and rewrites its `$ref`s.
fn hoist(mut schema: Json, tool: &str, side: &str, components: &mut Map<String, Json>) -> Json {
    let defs = take_defs(&mut schema);
    if defs.is_empty() {
        return schema;
    }
    let mut renamed = HashMap::new();
    let mut placed = BTreeMap::new();
    for (name, definition) in defs {
        let plain = component_name(&name);
        let key = match components.get(&plain) {
            None => plain,
            Some(existing) if *existing == definition => plain,
            Some(_) => component_name(&format!("{tool}.{side}.{name}")),
        };
        renamed.insert(
            format!("#/$defs/{name}"),
            format!("#/components/schemas/{key}"),
        );
        placed.insert(key, definition);
    }
    rewrite(&mut schema, &renamed);
    for (key, mut definition) in placed {
        rewrite(&mut definition, &renamed);
        components.insert(key, definition);
    }
    schema
}

/// Removes every `$defs` in `schema`, wherever it is (a streaming tool's
/// output schema nests its message schema, `$defs` and all, under
/// `messages.items`), and returns them merged.
fn take_defs(schema: &mut Json) -> Map<String, Json> {
    let mut defs = Map::new();
    let mut stack = vec![schema];
    while let Some(node) = stack.pop() {
        match node {
            Json::Object(map) => {
                if let Some(Json::Object(found)) = map.remove("$defs") {
                    for (name, definition) in found {
                        defs.entry(name).or_insert(definition);
                    }
                }
                stack.extend(map.values_mut());
            }
            Json::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    defs
}

/// A component key (`^[a-zA-Z0-9.\-_]+$`) for a definition name.
fn component_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Rewrites every `$ref` in `schema` found in `renamed`, walking with an
/// explicit stack.
fn rewrite(schema: &mut Json, renamed: &HashMap<String, String>) {
    let mut stack = vec![schema];
    while let Some(node) = stack.pop() {
        match node {
            Json::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if key == "$ref"
                        && let Some(target) = value.as_str().and_then(|r| renamed.get(r))
                    {
                        *value = Json::String(target.clone());
                    } else {
                        stack.push(value);
                    }
                }
            }
            Json::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::Tool;

    use super::*;

    fn tool(name: &str, input: Json) -> Tool {
        let Json::Object(input) = input else {
            panic!("object")
        };
        Tool::new(name.to_owned(), "a tool", Arc::new(input))
    }

    fn offered(tool: Tool, connector: &str) -> Offered {
        Offered {
            tool,
            connector: connector.to_owned(),
            streaming: false,
        }
    }

    #[test]
    fn a_document_is_built_once_per_catalog_version_and_set_of_tools() {
        let catalog = ToolCatalog::new(["calc".to_owned()], std::time::Duration::ZERO);
        let documents = Documents::new(&catalog);
        let one = [offered(tool("calc_add", json!({"type": "object"})), "calc")];
        let version = documents.version();
        let first = documents.get_or_build(version, &one, || "doc 1".into());
        let again = documents.get_or_build(version, &one, || "doc 2".into());
        assert_eq!(again.body, "doc 1", "served from the cache");
        assert_eq!(first.etag, again.etag);
        assert_eq!(documents.builds(), 1);
        // Another caller seeing other tools gets its own document.
        let none = documents.get_or_build(version, &[], || "empty".into());
        assert_eq!(none.body, "empty");
        assert_eq!(documents.builds(), 2);
        // A catalog change makes the next request build it again.
        catalog.notify_changed();
        let version = documents.version();
        let rebuilt = documents.get_or_build(version, &one, || "doc 3".into());
        assert_eq!(rebuilt.body, "doc 3");
        assert_ne!(rebuilt.etag, first.etag);
        assert_eq!(documents.builds(), 3);
    }

    #[test]
    fn batch_resources_and_prompts_are_described() {
        let site = Site {
            max_batch_calls: 7,
            ..Site::default()
        };
        let mut count = tool("calc_count", json!({"type": "object"}));
        count.output_schema = None;
        let doc = document(
            &[Offered {
                tool: count,
                connector: "calc".into(),
                streaming: true,
            }],
            &site,
        );
        let calls = &doc["paths"]["/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["properties"]["calls"];
        assert_eq!(calls["maxItems"], 7);
        assert_eq!(
            doc["paths"]["/batch"]["post"]["responses"]["413"]["$ref"],
            "#/components/responses/TooLarge"
        );
        assert_eq!(
            doc["paths"]["/resources"]["get"]["parameters"][0]["name"],
            "uri"
        );
        assert!(doc["paths"]["/prompts/{name}"]["get"].is_object());
        assert!(
            doc["paths"]["/tools/calc_count"]["post"]["responses"]["200"]["content"]
                ["text/event-stream"]
                .is_object()
        );
    }

    #[test]
    fn defs_move_to_components_and_refs_follow() {
        let a = tool(
            "a_get",
            json!({"type": "object", "properties": {"n": {"$ref": "#/$defs/t.Node"}},
                   "$defs": {"t.Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/t.Node"}}}}}),
        );
        let b = tool(
            "b_get",
            json!({"type": "object", "properties": {"n": {"$ref": "#/$defs/t.Node"}},
                   "$defs": {"t.Node": {"type": "string"}}}),
        );
        let doc = document(&[offered(a, "a"), offered(b, "b")], &Site::default());
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["t.Node"]["properties"]["next"]["$ref"],
            "#/components/schemas/t.Node"
        );
        assert_eq!(schemas["b_get.input.t.Node"]["type"], "string");
        let b_input = &doc["paths"]["/tools/b_get"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(
            b_input["properties"]["n"]["$ref"],
            "#/components/schemas/b_get.input.t.Node"
        );
        assert!(b_input.get("$defs").is_none());
        // Nested $defs (a streaming tool's output) move as well.
        let mut streaming = tool("c_watch", json!({"type": "object"}));
        let Json::Object(output) = json!({"type": "object", "properties": {"messages": {"type": "array",
            "items": {"type": "object", "properties": {"h": {"$ref": "#/$defs/t.H"}},
                      "$defs": {"t.H": {"type": "number"}}}}}})
        else {
            panic!("object")
        };
        streaming.output_schema = Some(Arc::new(output));
        let nested = document(&[offered(streaming, "c")], &Site::default());
        let text = nested.to_string();
        assert!(
            !text.contains("#/$defs/") && !text.contains("\"$defs\""),
            "{text}"
        );
        assert_eq!(nested["components"]["schemas"]["t.H"]["type"], "number");
        assert_eq!(doc["paths"]["/tools/a_get"]["post"]["operationId"], "a_get");
        assert_eq!(doc["paths"]["/tools/a_get"]["post"]["tags"], json!(["a"]));
        assert!(doc.get("security").is_none());
    }

    #[test]
    fn an_issuer_adds_the_bearer_scheme() {
        let site = Site {
            issuer: Some("https://id.example/".into()),
            scopes: vec!["calc:read".into()],
            max_batch_calls: 64,
        };
        let doc = document(&[], &site);
        assert_eq!(
            doc["components"]["securitySchemes"]["issuer"]["openIdConnectUrl"],
            "https://id.example/.well-known/openid-configuration"
        );
        assert_eq!(doc["security"], json!([{ "bearer": [] }]));
        let scheme = &doc["components"]["securitySchemes"]["bearer"]["description"];
        assert!(
            scheme.as_str().is_some_and(|d| d.contains("calc:read")),
            "{scheme}"
        );
    }
}
