//! MCP content from the shared `switchboard.mcp.v1` messages (`content.proto`).
//!
//! A method that returns `ToolResult` (or streams `StreamEvent`s) speaks MCP
//! content directly: this module maps those messages one to one onto MCP JSON
//! (text, image, audio, embedded resource, resource link, structuredContent,
//! isError), namespacing every resource URI with the connector's prefix so
//! that a later `resources/read` finds its way back. Bytes become base64 here.

use std::borrow::Cow;

use base64::Engine as _;
use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage};
use rmcp::model::CallToolResult;
use serde_json::{Map, Value as Json, json};
use switchboard_proto::mcp::v1 as pb;

/// Whether `c` is a control character a terminal may act on: C0 but tab,
/// line feed and carriage return, DEL, and C1.
fn is_terminal_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Text from a connector as a client may show it in a terminal: every
/// control character a terminal acts on (ESC starting an ANSI sequence that
/// clears the screen, moves the cursor or hides the text after it, BEL, ...)
/// replaced by its visible Control Picture (`␛`, `␇`, `␡`; C1 by `�`), so
/// such text cannot hide from the person what the model reads. Tab and line
/// breaks stay. Results the router writes as JSON need none of this (JSON
/// escapes them); this is for the text a connector hands clients as it is:
/// text content, resource text, prompt messages, descriptions, titles,
/// elicitation messages, its error messages.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_terminal_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                '\u{7f}' => '\u{2421}',
                '\u{80}'..='\u{9f}' => '\u{fffd}',
                c if is_terminal_control(c) => {
                    char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}')
                }
                c => c,
            })
            .collect(),
    )
}

/// Inserts a connector's text (a title, a description) under `key` unless
/// it is empty, made [`terminal_safe`].
pub fn insert_text(map: &mut Map<String, Json>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.into(), json!(terminal_safe(value)));
    }
}

/// A connector's completion values as clients get them: at most `max`, and
/// none a terminal would act on (a value is what the client types in, so it
/// is left out rather than changed).
pub fn completion_values(values: &[String], max: usize) -> Vec<&str> {
    values
        .iter()
        .map(String::as_str)
        .filter(|v| !has_terminal_control(v))
        .take(max)
        .collect()
}

/// Whether a connector's name or URI holds a terminal control character
/// (such an item is left out: renaming it would break its identity).
pub fn has_terminal_control(text: &str) -> bool {
    text.chars().any(is_terminal_control)
}

/// A connector's resource URI as clients see it: `<prefix>+<uri>` (a valid URI
/// scheme, so `db://x` of connector `database` becomes `database+db://x`), or
/// unchanged when the connector has no prefix.
pub fn outward_uri(prefix: &str, uri: &str) -> String {
    if prefix.is_empty() {
        uri.to_owned()
    } else {
        format!("{prefix}+{uri}")
    }
}

/// The connector's own URI for a client-facing one, if it belongs to the
/// connector with this prefix (any URI may belong to an unprefixed connector).
pub fn inward_uri<'a>(prefix: &str, uri: &'a str) -> Option<&'a str> {
    if prefix.is_empty() {
        Some(uri)
    } else {
        uri.strip_prefix(prefix)?.strip_prefix('+')
    }
}

/// A name (prompt) as clients see it: `<prefix>_<name>`, or unchanged.
pub fn outward_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}_{name}")
    }
}

/// The connector's own name for a client-facing one, if it can belong to the
/// connector with this prefix.
pub fn inward_name<'a>(prefix: &str, name: &'a str) -> Option<&'a str> {
    if prefix.is_empty() {
        Some(name)
    } else {
        name.strip_prefix(prefix)?.strip_prefix('_')
    }
}

/// Re-reads a dynamic message as one of the shared typed messages.
pub fn decode<T: Message + Default>(message: &DynamicMessage) -> Result<T, String> {
    T::decode(message.encode_to_vec().as_slice())
        .map_err(|e| format!("malformed {}: {e}", message.descriptor().full_name()))
}

/// Joins result parts: content blocks in order, the last structured result,
/// an error if any part is one.
pub fn merge(parts: impl IntoIterator<Item = pb::ToolResult>) -> pb::ToolResult {
    let mut out = pb::ToolResult::default();
    for part in parts {
        out.content.extend(part.content);
        if part.structured.is_some() {
            out.structured = part.structured;
        }
        out.is_error |= part.is_error;
    }
    out
}

/// The MCP tool result for a `ToolResult`. Structured content without any
/// content block also gets a text block with its JSON, as MCP recommends.
pub fn tool_result(result: &pb::ToolResult, prefix: &str) -> Result<CallToolResult, String> {
    let mut content: Vec<Json> = result
        .content
        .iter()
        .filter_map(|c| content_json(c, prefix))
        .collect();
    let structured = result.structured.as_ref().map(struct_json);
    if content.is_empty()
        && let Some(s) = &structured
    {
        content.push(json!({ "type": "text", "text": s.to_string() }));
    }
    let mut out = Map::new();
    out.insert("content".into(), Json::Array(content));
    if let Some(s) = structured {
        out.insert("structuredContent".into(), s);
    }
    out.insert("isError".into(), Json::Bool(result.is_error));
    // 2026-07-28 clients require it (rmcp strips it for older ones).
    out.insert("resultType".into(), json!("complete"));
    serde_json::from_value(Json::Object(out)).map_err(|e| format!("invalid tool result: {e}"))
}

/// One content block as MCP JSON; `None` for an empty block.
pub fn content_json(content: &pb::Content, prefix: &str) -> Option<Json> {
    use pb::content::Kind;
    let b64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
    let mut block = match content.kind.as_ref()? {
        Kind::Text(t) => json!({ "type": "text", "text": terminal_safe(&t.text) }),
        Kind::Image(m) => json!({ "type": "image", "data": b64(&m.data), "mimeType": m.mime_type }),
        Kind::Audio(m) => json!({ "type": "audio", "data": b64(&m.data), "mimeType": m.mime_type }),
        Kind::Resource(r) => {
            json!({ "type": "resource", "resource": resource_contents_json(r, prefix) })
        }
        Kind::ResourceLink(l) => {
            let mut link = Map::new();
            link.insert("type".into(), json!("resource_link"));
            link.insert("uri".into(), json!(outward_uri(prefix, &l.uri)));
            link.insert("name".into(), json!(terminal_safe(&l.name)));
            insert_text(&mut link, "title", &l.title);
            insert_text(&mut link, "description", &l.description);
            insert_text(&mut link, "mimeType", &l.mime_type);
            if let Some(size) = l.size {
                link.insert("size".into(), json!(size));
            }
            Json::Object(link)
        }
    };
    if let (Some(a), Json::Object(map)) = (&content.annotations, &mut block) {
        let mut annotations = Map::new();
        let audience: Vec<&str> = a.audience.iter().filter_map(|r| role_name(*r)).collect();
        if !audience.is_empty() {
            annotations.insert("audience".into(), json!(audience));
        }
        if let Some(p) = a.priority {
            annotations.insert("priority".into(), json!(p.clamp(0.0, 1.0)));
        }
        if !annotations.is_empty() {
            map.insert("annotations".into(), Json::Object(annotations));
        }
    }
    Some(block)
}

/// A resource's contents as MCP JSON (text or base64 blob).
pub fn resource_contents_json(r: &pb::ResourceContents, prefix: &str) -> Json {
    use pb::resource_contents::Body;
    let mut out = Map::new();
    out.insert("uri".into(), json!(outward_uri(prefix, &r.uri)));
    if !r.mime_type.is_empty() {
        out.insert("mimeType".into(), json!(r.mime_type));
    }
    match &r.body {
        Some(Body::Blob(data)) => {
            out.insert(
                "blob".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(data)),
            );
        }
        Some(Body::Text(text)) => {
            out.insert("text".into(), json!(terminal_safe(text)));
        }
        None => {
            out.insert("text".into(), json!(""));
        }
    }
    Json::Object(out)
}

/// Content blocks for a prompt message (prompts carry one block each).
pub fn prompt_content(content: Option<&pb::Content>, prefix: &str) -> Json {
    content
        .and_then(|c| content_json(c, prefix))
        .unwrap_or_else(|| json!({ "type": "text", "text": "" }))
}

/// The MCP name of a `switchboard.mcp.v1.Role`; `None` when unspecified.
pub fn role_name(role: i32) -> Option<&'static str> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::User) => Some("user"),
        Ok(pb::Role::Assistant) => Some("assistant"),
        _ => None,
    }
}

/// `google.protobuf.Struct` as a JSON object, by the proto3 JSON mapping, with
/// whole numbers written as integers like every tool result.
pub fn struct_json(s: &prost_types::Struct) -> Json {
    crate::transcode::encode_result(&s.transcode_to_dynamic())
}

/// `google.protobuf.Value` as JSON, as [`struct_json`]; an unset value is null.
pub fn value_json(v: &prost_types::Value) -> Json {
    if v.kind.is_none() {
        return Json::Null;
    }
    crate::transcode::encode_result(&v.transcode_to_dynamic())
}

/// Severity of an MCP log level, 0 (debug) to 7 (emergency).
pub fn severity(level: &str) -> u8 {
    match level {
        "debug" => 0,
        "info" => 1,
        "notice" => 2,
        "warning" => 3,
        "error" => 4,
        "critical" => 5,
        "alert" => 6,
        "emergency" => 7,
        _ => 1,
    }
}

/// The MCP name of a proto log level (unset counts as info).
pub fn level_name(level: i32) -> &'static str {
    match pb::LogLevel::try_from(level).unwrap_or(pb::LogLevel::Unspecified) {
        pb::LogLevel::Debug => "debug",
        pb::LogLevel::Unspecified | pb::LogLevel::Info => "info",
        pb::LogLevel::Notice => "notice",
        pb::LogLevel::Warning => "warning",
        pb::LogLevel::Error => "error",
        pb::LogLevel::Critical => "critical",
        pb::LogLevel::Alert => "alert",
        pb::LogLevel::Emergency => "emergency",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_keeps_no_control_a_terminal_would_act_on() {
        assert!(matches!(
            terminal_safe("plain\ttext\r\nwith lines"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            terminal_safe("ok\u{1b}[2J\u{1b}[1Ahidden\u{7}\u{7f}\u{9b}31m\u{0}"),
            "ok\u{241b}[2J\u{241b}[1Ahidden\u{2407}\u{2421}\u{fffd}31m\u{2400}"
        );
        // Beyond C1, nothing is touched (non-ASCII text, bidi marks).
        assert_eq!(terminal_safe("été \u{202e}x"), "été \u{202e}x");
        assert!(has_terminal_control("a\u{1b}b") && !has_terminal_control("a\nb"));
    }

    #[test]
    fn text_content_and_resource_text_reach_clients_without_escapes() {
        let text = pb::Content {
            kind: Some(pb::content::Kind::Text(pb::TextContent {
                text: "red\u{1b}[31m".into(),
            })),
            ..Default::default()
        };
        assert_eq!(
            content_json(&text, "x").expect("block")["text"],
            "red\u{241b}[31m"
        );
        let resource = pb::ResourceContents {
            uri: "file:///a".into(),
            body: Some(pb::resource_contents::Body::Text(
                "\u{1b}]0;title\u{7}".into(),
            )),
            ..Default::default()
        };
        assert_eq!(
            resource_contents_json(&resource, "x")["text"],
            "\u{241b}]0;title\u{2407}"
        );
        let link = pb::Content {
            kind: Some(pb::content::Kind::ResourceLink(pb::ResourceLink {
                uri: "file:///a".into(),
                name: "a\u{1b}[8m".into(),
                description: "b\u{7}".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let link = content_json(&link, "x").expect("block");
        assert_eq!(
            (&link["name"], &link["description"]),
            (&json!("a\u{241b}[8m"), &json!("b\u{2407}"))
        );
        assert!(
            link.get("title").is_none(),
            "empty text is left out: {link}"
        );
        let values = [
            "ab".to_owned(),
            "a\u{1b}[2J".to_owned(),
            "ac".to_owned(),
            "ad".to_owned(),
        ];
        assert_eq!(completion_values(&values, 2), ["ab", "ac"]);
    }

    use super::*;

    fn text(t: &str) -> pb::Content {
        pb::Content {
            kind: Some(pb::content::Kind::Text(pb::TextContent { text: t.into() })),
            annotations: None,
        }
    }

    #[test]
    fn uris_are_namespaced_by_prefix_and_mapped_back() {
        assert_eq!(
            outward_uri("database", "db://t/users"),
            "database+db://t/users"
        );
        assert_eq!(
            inward_uri("database", "database+db://t/users"),
            Some("db://t/users")
        );
        assert_eq!(inward_uri("database", "jira+x://1"), None);
        assert_eq!(
            inward_uri("", "test://static-text"),
            Some("test://static-text")
        );
        assert_eq!(
            inward_name("code_analysis", "code_analysis_review"),
            Some("review")
        );
        assert_eq!(inward_name("jira", "code_analysis_review"), None);
    }

    #[test]
    fn every_content_kind_maps_one_to_one() {
        let result = pb::ToolResult {
            content: vec![
                text("hello"),
                pb::Content {
                    kind: Some(pb::content::Kind::Image(pb::MediaContent {
                        data: vec![1, 2, 3],
                        mime_type: "image/png".into(),
                    })),
                    annotations: Some(pb::Annotations {
                        audience: vec![pb::Role::User as i32],
                        priority: Some(0.5),
                    }),
                },
                pb::Content {
                    kind: Some(pb::content::Kind::Audio(pb::MediaContent {
                        data: vec![0],
                        mime_type: "audio/wav".into(),
                    })),
                    annotations: None,
                },
                pb::Content {
                    kind: Some(pb::content::Kind::Resource(pb::ResourceContents {
                        uri: "db://t".into(),
                        mime_type: "text/plain".into(),
                        body: Some(pb::resource_contents::Body::Text("rows".into())),
                    })),
                    annotations: None,
                },
                pb::Content {
                    kind: Some(pb::content::Kind::ResourceLink(pb::ResourceLink {
                        uri: "db://u".into(),
                        name: "u".into(),
                        size: Some(7),
                        ..Default::default()
                    })),
                    annotations: None,
                },
            ],
            structured: None,
            is_error: true,
        };
        let out = serde_json::to_value(tool_result(&result, "database").unwrap()).unwrap();
        let content = &out["content"];
        assert_eq!(content[0], json!({"type": "text", "text": "hello"}));
        assert_eq!(content[1]["data"], "AQID");
        assert_eq!(content[1]["annotations"]["audience"], json!(["user"]));
        assert_eq!(content[2]["type"], "audio");
        assert_eq!(content[3]["resource"]["uri"], "database+db://t");
        assert_eq!(content[3]["resource"]["text"], "rows");
        assert_eq!(content[4]["type"], "resource_link");
        assert_eq!(content[4]["uri"], "database+db://u");
        assert_eq!(content[4]["size"], 7);
        assert_eq!(out["isError"], true);
    }

    #[test]
    fn parts_merge_in_order_and_structured_alone_gets_a_text_block() {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert(
            "n".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(3.0)),
            },
        );
        let merged = merge([
            pb::ToolResult {
                content: vec![text("a")],
                ..Default::default()
            },
            pb::ToolResult {
                content: vec![text("b")],
                structured: Some(prost_types::Struct { fields }),
                is_error: false,
            },
        ]);
        assert_eq!(merged.content.len(), 2);
        let only_structured = pb::ToolResult {
            content: vec![],
            ..merged.clone()
        };
        let out = serde_json::to_value(tool_result(&only_structured, "").unwrap()).unwrap();
        assert_eq!(out["structuredContent"], json!({"n": 3}));
        assert_eq!(out["content"][0]["text"], "{\"n\":3}");
        assert_eq!(out["isError"], false);
    }

    #[test]
    fn log_levels_order_like_syslog() {
        assert!(severity("debug") < severity("info"));
        assert!(severity(level_name(pb::LogLevel::Error as i32)) > severity("warning"));
        assert_eq!(level_name(0), "info");
    }
}
