//! JSON Schema for tool inputs and outputs, generated from protobuf messages.
//!
//! The schema describes exactly what [`crate::transcode`] accepts and produces: the
//! proto3 JSON mapping with proto field names (snake_case), 64-bit integers as
//! JSON numbers, enums by value name, bytes as base64, and the well-known types
//! (Timestamp, Duration, Struct, Value, wrappers, FieldMask, Empty, Any) as the
//! proto3 JSON mapping says. Field comments become property descriptions, so the
//! proto comments are what the model reads. Recursive messages go to `$defs`.

use std::collections::{BTreeMap, HashMap};

use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, Value};
use serde_json::{Map, Value as Json, json};

/// Which side of a call the schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Tool arguments: `required` is computed, unknown properties are refused.
    Input,
    /// Tool results: every field is present (defaults included).
    Output,
}

/// Leading comments of a file's declarations, by source path.
#[derive(Debug, Default, Clone)]
pub struct Comments {
    by_file: HashMap<String, HashMap<Vec<i32>, String>>,
}

impl Comments {
    /// Indexes the source comments of every file in `files`.
    pub fn new<'a>(files: impl IntoIterator<Item = &'a FileDescriptor>) -> Self {
        let mut by_file = HashMap::new();
        for file in files {
            let proto = file.file_descriptor_proto();
            let mut map = HashMap::new();
            if let Some(info) = &proto.source_code_info {
                for location in &info.location {
                    if let Some(text) = location.leading_comments.as_deref() {
                        let text = clean_comment(text);
                        if !text.is_empty() {
                            map.insert(location.path.clone(), text);
                        }
                    }
                }
            }
            by_file.insert(file.name().to_owned(), map);
        }
        Self { by_file }
    }

    /// The leading comment of the declaration at `path` in `file`.
    pub fn get(&self, file: &FileDescriptor, path: &[i32]) -> Option<&str> {
        self.by_file
            .get(file.name())
            .and_then(|m| m.get(path))
            .map(String::as_str)
    }
}

/// Joins comment lines into paragraphs: single newlines become spaces (proto
/// comments wrap at ~80 columns), blank lines and list items are kept.
pub fn clean_comment(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.lines().map(str::trim) {
        if line.is_empty() {
            if !out.ends_with("\n\n") && !out.is_empty() {
                out.push_str("\n\n");
            }
        } else if out.is_empty() || out.ends_with('\n') {
            out.push_str(line);
        } else if line.starts_with("- ") || line.starts_with("* ") || line.starts_with('|') {
            out.push('\n');
            out.push_str(line);
        } else {
            out.push(' ');
            out.push_str(line);
        }
    }
    out.trim().to_owned()
}

/// Reads the `switchboard.mcp.v1.field` option of a field.
#[derive(Debug, Default, Clone)]
pub struct FieldHints {
    /// Explicit required / not required.
    pub required: Option<bool>,
    /// Example values (parsed JSON; a value that does not parse is kept as a string).
    pub examples: Vec<Json>,
}

/// Reads the field option (if the pool knows the extension).
pub fn field_hints(field: &FieldDescriptor) -> FieldHints {
    let pool = field.parent_pool();
    let Some(ext) = pool.get_extension_by_name("switchboard.mcp.v1.field") else {
        return FieldHints::default();
    };
    let options = field.options();
    if !options.has_extension(&ext) {
        return FieldHints::default();
    }
    let value = options.get_extension(&ext);
    let Some(msg) = value.as_message() else {
        return FieldHints::default();
    };
    let required = msg
        .get_field_by_name("required")
        .filter(|_| msg.has_field_by_name("required"))
        .and_then(|v| v.as_bool());
    let examples = msg
        .get_field_by_name("examples")
        .and_then(|v| {
            v.as_list().map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.to_owned())))
                    .collect()
            })
        })
        .unwrap_or_default();
    FieldHints { required, examples }
}

/// Whether an input field is required (see `options.proto`).
pub fn is_required(field: &FieldDescriptor) -> bool {
    if let Some(explicit) = field_hints(field).required {
        return explicit;
    }
    !field.is_list()
        && !field.is_map()
        && !field.supports_presence()
        && field.containing_oneof().is_none()
        && !matches!(field.kind(), Kind::Message(_))
}

/// Builds the JSON Schema of `message`.
pub fn message_schema(
    message: &MessageDescriptor,
    comments: &Comments,
    direction: Direction,
) -> Map<String, Json> {
    let mut builder = Builder {
        comments,
        direction,
        stack: Vec::new(),
        defs: BTreeMap::new(),
        pending: Vec::new(),
    };
    let mut root = builder.object(message);
    // Recursive messages referenced from inside: build their definitions.
    while let Some(desc) = builder.pending.pop() {
        if !builder.defs.contains_key(desc.full_name()) {
            builder.defs.insert(desc.full_name().to_owned(), Json::Null);
            let body = builder.object(&desc);
            builder
                .defs
                .insert(desc.full_name().to_owned(), Json::Object(body));
        }
    }
    if !builder.defs.is_empty() {
        root.insert(
            "$defs".into(),
            Json::Object(builder.defs.into_iter().collect()),
        );
    }
    root
}

struct Builder<'a> {
    comments: &'a Comments,
    direction: Direction,
    stack: Vec<String>,
    defs: BTreeMap<String, Json>,
    pending: Vec<MessageDescriptor>,
}

impl Builder<'_> {
    fn object(&mut self, message: &MessageDescriptor) -> Map<String, Json> {
        self.stack.push(message.full_name().to_owned());
        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut oneofs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for field in message.fields() {
            let mut schema = self.field(&field);
            if let Some(doc) = self.comments.get(&field.parent_file(), field.path()) {
                let doc = doc.to_owned();
                add_description(&mut schema, &doc);
            }
            let hints = field_hints(&field);
            if !hints.examples.is_empty() {
                schema.insert("examples".into(), Json::Array(hints.examples));
            }
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                oneofs
                    .entry(oneof.name().to_owned())
                    .or_default()
                    .push(field.name().to_owned());
            }
            if self.direction == Direction::Input && is_required(&field) {
                required.push(Json::String(field.name().to_owned()));
            }
            properties.insert(field.name().to_owned(), Json::Object(schema));
        }
        // A oneof is presented as plain properties (models handle those best) with
        // a note on each member; the transcoder rejects setting two of them.
        for members in oneofs.values() {
            for member in members {
                if let Some(Json::Object(schema)) = properties.get_mut(member) {
                    let others: Vec<&str> = members
                        .iter()
                        .filter(|m| *m != member)
                        .map(String::as_str)
                        .collect();
                    add_description(
                        schema,
                        &format!("Set at most one of: {member}, {}.", others.join(", ")),
                    );
                }
            }
        }
        self.stack.pop();
        let mut out = Map::new();
        out.insert("type".into(), json!("object"));
        if let Some(doc) = self.comments.get(&message.parent_file(), message.path()) {
            out.insert("description".into(), json!(doc));
        }
        out.insert("properties".into(), Json::Object(properties));
        if !required.is_empty() {
            out.insert("required".into(), Json::Array(required));
        }
        if self.direction == Direction::Input {
            out.insert("additionalProperties".into(), json!(false));
        }
        out
    }

    fn field(&mut self, field: &FieldDescriptor) -> Map<String, Json> {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return Map::new();
            };
            let value = entry.map_entry_value_field();
            let value_schema = self.kind(&value.kind());
            let mut out = Map::new();
            out.insert("type".into(), json!("object"));
            out.insert("additionalProperties".into(), Json::Object(value_schema));
            return out;
        }
        let item = self.kind(&field.kind());
        if field.is_list() {
            let mut out = Map::new();
            out.insert("type".into(), json!("array"));
            out.insert("items".into(), Json::Object(item));
            out
        } else {
            item
        }
    }

    fn kind(&mut self, kind: &Kind) -> Map<String, Json> {
        let value = match kind {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({"type": "integer"}),
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "integer", "minimum": 0}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Enum(e) => {
                let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
                let mut out = json!({"type": "string", "enum": names});
                if let Some(doc) = self.comments.get(&e.parent_file(), e.path()) {
                    out["description"] = json!(doc);
                }
                out
            }
            Kind::Message(m) => return self.message(m),
        };
        match value {
            Json::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn message(&mut self, message: &MessageDescriptor) -> Map<String, Json> {
        if let Some(wkt) = well_known(message.full_name()) {
            return wkt;
        }
        if self.stack.iter().any(|n| n == message.full_name()) {
            self.pending.push(message.clone());
            let mut out = Map::new();
            out.insert(
                "$ref".into(),
                json!(format!("#/$defs/{}", message.full_name())),
            );
            return out;
        }
        self.object(message)
    }
}

fn add_description(schema: &mut Map<String, Json>, doc: &str) {
    let text = match schema.get("description").and_then(Json::as_str) {
        Some(existing) if !existing.is_empty() => format!("{doc}\n\n{existing}"),
        _ => doc.to_owned(),
    };
    schema.insert("description".into(), Json::String(text));
}

/// The proto3 JSON mapping of the well-known types.
fn well_known(full_name: &str) -> Option<Map<String, Json>> {
    let value = match full_name {
        "google.protobuf.Timestamp" => json!({
            "type": "string", "format": "date-time",
            "description": "RFC 3339 timestamp, e.g. 2024-05-01T12:00:00Z"
        }),
        "google.protobuf.Duration" => json!({
            "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$",
            "description": "Duration in seconds with an s suffix, e.g. 1.5s"
        }),
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Empty" => json!({"type": "object", "properties": {}}),
        "google.protobuf.FieldMask" => json!({
            "type": "string", "description": "Comma-separated field paths in lowerCamelCase"
        }),
        "google.protobuf.Any" => json!({
            "type": "object", "required": ["@type"],
            "properties": {"@type": {"type": "string"}}
        }),
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({"type": ["number", "null"]})
        }
        "google.protobuf.Int32Value"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.UInt64Value" => json!({"type": ["integer", "null"]}),
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        "google.protobuf.StringValue" => json!({"type": ["string", "null"]}),
        "google.protobuf.BytesValue" => {
            json!({"type": ["string", "null"], "contentEncoding": "base64"})
        }
        _ => return None,
    };
    match value {
        Json::Object(map) => Some(map),
        _ => None,
    }
}
