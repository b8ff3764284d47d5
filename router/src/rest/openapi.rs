//! The OpenAPI 3.1 document of the REST front door, built from the tools a
//! caller may use: one path per tool (`operationId` = the tool's name,
//! tagged with its connector), the request body from the tool's input
//! schema, the 200 envelope with its output schema, problem details for
//! every error, and the bearer-token scheme when an issuer is set.
//!
//! A tool schema's `$defs` cannot stay inline: in an OpenAPI document
//! `#/$defs/X` would resolve against the document's root. Each definition
//! moves to `components/schemas` (under its own name, or prefixed with the
//! tool's when another tool defines the same name differently) and every
//! `$ref` pointing at it is rewritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rmcp::model::Tool;
use serde_json::{Map, Value as Json, json};

use super::problem;

/// What the document says besides the tools.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The issuer whose tokens the router accepts, when auth is on.
    pub issuer: Option<String>,
    /// Every scope a policy rule asks for.
    pub scopes: Vec<String>,
}

/// The document for `tools`, each with its connector's name.
pub fn document(tools: &[(Tool, String)], site: &Site) -> Json {
    let mut components = Map::new();
    components.insert("Problem".into(), problem::schema());
    let mut paths = Map::new();
    paths.insert("/tools".into(), list_operation());
    let mut tags = BTreeSet::new();
    for (tool, connector) in tools {
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
            json!({ "post": tool_operation(tool, connector, input, output) }),
        );
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The router's tools over plain HTTP: POST a tool's arguments as a JSON object, get its result. The same authentication, policy, limits and audit as MCP. This document lists only the tools the caller may use.",
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

/// `POST /tools/{name}`.
fn tool_operation(tool: &Tool, connector: &str, input: Json, output: Json) -> Json {
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
    let errors = [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
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
    let mut unavailable = problem("The connector is not serving: retry later.");
    unavailable["headers"] = retry;
    json!({
        "BadRequest": problem("The arguments do not fit the tool's input schema, or the body is not JSON."),
        "Unauthorized": problem("No valid bearer token (see WWW-Authenticate)."),
        "Forbidden": problem("The token lacks a scope the policy asks for (see WWW-Authenticate)."),
        "NotFound": problem("No such tool is offered to the caller."),
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
    use std::sync::Arc;

    use super::*;

    fn tool(name: &str, input: Json) -> Tool {
        let Json::Object(input) = input else {
            panic!("object")
        };
        Tool::new(name.to_owned(), "a tool", Arc::new(input))
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
        let doc = document(&[(a, "a".into()), (b, "b".into())], &Site::default());
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
        let nested = document(&[(streaming, "c".into())], &Site::default());
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
