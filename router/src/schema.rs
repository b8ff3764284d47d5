//! JSON Schema for tool inputs and outputs, generated from protobuf messages.
//!
//! The schema describes exactly what [`crate::transcode`] accepts and produces: the
//! proto3 JSON mapping with proto field names (snake_case), 64-bit integers as
//! JSON numbers, enums by value name, bytes as base64, and the well-known types
//! (Timestamp, Duration, Struct, Value, wrappers, FieldMask, Empty, Any) as the
//! proto3 JSON mapping says. Field comments become property descriptions, so the
//! proto comments are what the model reads.
//!
//! A message used in more than one place (or recursively, or nested deeper than
//! [`MAX_INLINE_DEPTH`]) is written once under `$defs` and referenced with
//! `$ref`, so a schema grows linearly with the number of message types: a
//! "diamond" of shared messages (each with two fields of the next one's type)
//! would otherwise double at every level. The walk over the message graph is
//! iterative, and the schema is refused with a [`SchemaError`] naming the limit
//! when it has more definitions than `max_schema_defs` or more bytes than
//! `max_schema_bytes`.

use std::collections::{BTreeMap, HashMap, HashSet};

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
/// comments wrap at ~80 columns), blank lines and list items are kept. The
/// text becomes descriptions clients show, so terminal control characters
/// are made visible ([`crate::content::terminal_safe`]).
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
    crate::content::terminal_safe(out.trim()).into_owned()
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

/// Messages nested deeper than this inside one definition go to `$defs`, so
/// that building a schema never recurses deeper than this, whatever the
/// connector's messages look like.
pub const MAX_INLINE_DEPTH: usize = 32;

/// Bounds on one generated schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Largest serialized schema, in bytes (`max_schema_bytes`).
    pub max_bytes: usize,
    /// Most `$defs` entries (`max_schema_defs`).
    pub max_defs: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        let limits = crate::config::UpstreamLimits::default();
        Self {
            max_bytes: limits.max_schema_bytes,
            max_defs: limits.max_schema_defs,
        }
    }
}

impl From<&crate::config::UpstreamLimits> for SchemaLimits {
    fn from(limits: &crate::config::UpstreamLimits) -> Self {
        Self {
            max_bytes: limits.max_schema_bytes,
            max_defs: limits.max_schema_defs,
        }
    }
}

/// A schema over one of the [`SchemaLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// More message definitions than `max_schema_defs`.
    #[error(
        "the schema of {message} needs more than {limit} message definitions, the router's \
         limit max_schema_defs (SWITCHBOARD_MAX_SCHEMA_DEFS)"
    )]
    TooManyDefs {
        /// The message the schema describes.
        message: String,
        /// The limit.
        limit: usize,
    },
    /// A serialized schema larger than `max_schema_bytes`.
    #[error(
        "the schema of {message} is {size} bytes, more than the router's limit \
         max_schema_bytes (SWITCHBOARD_MAX_SCHEMA_BYTES) of {limit}"
    )]
    TooLarge {
        /// The message the schema describes.
        message: String,
        /// The schema's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A name in the descriptors that no protobuf compiler writes.
    #[error(
        "{what} {name} in the messages of {message} is not a protobuf identifier (ASCII letters, \
         digits and '_', not starting with a digit); the connector's descriptors were not made \
         by a protobuf compiler"
    )]
    NotAnIdentifier {
        /// The message the schema describes.
        message: String,
        /// What the name names (`field`, `message`, ...).
        what: &'static str,
        /// The name, quoted and escaped, at most [`SHOWN_NAME_CHARS`] characters.
        name: String,
    },
    /// A field whose name is another field's JSON name.
    #[error(
        "field {field:?} of {message} has the name that field {other:?} has as its JSON name: \
         arguments could not name either unambiguously"
    )]
    AmbiguousField {
        /// The message with the two fields.
        message: String,
        /// The field.
        field: String,
        /// The field whose JSON name it is.
        other: String,
    },
}

/// The most characters of an odd name an error shows.
pub const SHOWN_NAME_CHARS: usize = 64;

/// `name` quoted and escaped (control and direction characters show as
/// `\u{..}`), cut to [`SHOWN_NAME_CHARS`] characters.
pub fn shown_name(name: &str) -> String {
    let mut cut: String = name.chars().take(SHOWN_NAME_CHARS).collect();
    let more = cut.len() < name.len();
    cut = format!("{cut:?}");
    if more {
        cut.push_str(&format!(" (cut, {} bytes in all)", name.len()));
    }
    cut
}

/// Whether `name` is a protobuf identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks every name a tool's schema and arguments are made of, in `root` and
/// every message and enum reachable from it (an iterative walk, each message
/// once): message and enum names with their packages, field names and enum
/// value names are protobuf identifiers, and no field's name is another
/// field's JSON name. A connector's descriptors come from its reflection
/// service, not necessarily from a protobuf compiler, and these names become
/// JSON Schema property names, enum strings and `$defs` keys that clients and
/// model APIs check.
pub fn check_names(root: &MessageDescriptor) -> Result<(), SchemaError> {
    let odd = |what: &'static str, name: &str| SchemaError::NotAnIdentifier {
        message: root.full_name().to_owned(),
        what,
        name: shown_name(name),
    };
    let full_name_ok = |full: &str| full.split('.').all(is_identifier);
    let mut seen: HashSet<String> = HashSet::from([root.full_name().to_owned()]);
    let mut enums_seen: HashSet<String> = HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(message) = stack.pop() {
        if !full_name_ok(message.full_name()) {
            return Err(odd("message", message.full_name()));
        }
        for field in message.fields() {
            if !is_identifier(field.name()) {
                return Err(odd("field", field.name()));
            }
            if let Some(other) = message.get_field_by_json_name(field.name())
                && other.number() != field.number()
            {
                return Err(SchemaError::AmbiguousField {
                    message: message.full_name().to_owned(),
                    field: field.name().to_owned(),
                    other: other.name().to_owned(),
                });
            }
            match field.kind() {
                Kind::Message(target) if seen.insert(target.full_name().to_owned()) => {
                    stack.push(target);
                }
                Kind::Enum(e) if enums_seen.insert(e.full_name().to_owned()) => {
                    if !full_name_ok(e.full_name()) {
                        return Err(odd("enum", e.full_name()));
                    }
                    if let Some(value) = e.values().find(|v| !is_identifier(v.name())) {
                        return Err(odd("enum value", value.name()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Builds the JSON Schema of `message`, within `limits`.
pub fn message_schema(
    message: &MessageDescriptor,
    comments: &Comments,
    direction: Direction,
    limits: SchemaLimits,
) -> Result<Map<String, Json>, SchemaError> {
    let mut builder = Builder {
        comments,
        direction,
        stack: Vec::new(),
        shared: shared_messages(message),
        defs: BTreeMap::new(),
        pending: Vec::new(),
    };
    let mut root = builder.object(message);
    // Messages referenced by `$ref`: build each definition once.
    while let Some(desc) = builder.pending.pop() {
        if !builder.defs.contains_key(desc.full_name()) {
            if builder.defs.len() >= limits.max_defs {
                return Err(SchemaError::TooManyDefs {
                    message: message.full_name().to_owned(),
                    limit: limits.max_defs,
                });
            }
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
    let size = serde_json::to_vec(&root).map_or(usize::MAX, |bytes| bytes.len());
    if size > limits.max_bytes {
        return Err(SchemaError::TooLarge {
            message: message.full_name().to_owned(),
            size,
            limit: limits.max_bytes,
        });
    }
    Ok(root)
}

/// The message a field refers to (a map's value message for a map field).
fn referenced_message(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    let kind = if field.is_map() {
        match field.kind() {
            Kind::Message(entry) => entry.map_entry_value_field().kind(),
            _ => return None,
        }
    } else {
        field.kind()
    };
    match kind {
        Kind::Message(m) if well_known(m.full_name()).is_none() => Some(m),
        _ => None,
    }
}

/// The messages reachable from `root` that fields of more than one place refer
/// to: they are written once under `$defs`. A message's fields of its own type
/// do not count (its recursion is referenced anyway, and a message used once
/// stays inline where a reader expects it). An iterative walk, each message
/// visited once.
fn shared_messages(root: &MessageDescriptor) -> HashSet<String> {
    let mut references: HashMap<String, usize> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::from([root.full_name().to_owned()]);
    let mut stack = vec![root.clone()];
    while let Some(message) = stack.pop() {
        for field in message.fields() {
            let Some(target) = referenced_message(&field) else {
                continue;
            };
            if target.full_name() == message.full_name() {
                continue;
            }
            *references.entry(target.full_name().to_owned()).or_default() += 1;
            if seen.insert(target.full_name().to_owned()) {
                stack.push(target);
            }
        }
    }
    references
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| name)
        .collect()
}

struct Builder<'a> {
    comments: &'a Comments,
    direction: Direction,
    stack: Vec<String>,
    shared: HashSet<String>,
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
        if self.shared.contains(message.full_name())
            || self.stack.len() >= MAX_INLINE_DEPTH
            || self.stack.iter().any(|n| n == message.full_name())
        {
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

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    #[test]
    fn comments_become_descriptions_without_terminal_controls() {
        assert_eq!(
            clean_comment(" The id.\u{1b}[8m\n hidden text\u{1b}[0m\n\n - a list"),
            "The id.\u{241b}[8m hidden text\u{241b}[0m\n\n- a list"
        );
    }
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    };

    fn message_field(name: &str, number: i32, type_name: &str) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(Type::Message as i32),
            type_name: Some(format!(".t.{type_name}")),
            ..Default::default()
        }
    }

    fn string_field(name: &str) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(1),
            label: Some(Label::Optional as i32),
            r#type: Some(Type::String as i32),
            ..Default::default()
        }
    }

    fn pool(messages: Vec<DescriptorProto>) -> DescriptorPool {
        DescriptorPool::from_file_descriptor_set(FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("t.proto".into()),
                package: Some("t".into()),
                message_type: messages,
                syntax: Some("proto3".into()),
                ..Default::default()
            }],
        })
        .unwrap()
    }

    #[test]
    fn names_no_compiler_writes_are_refused_wherever_they_are_reachable() {
        let named = |name: &str, json_name: &str, number: i32| FieldDescriptorProto {
            json_name: Some(json_name.into()),
            number: Some(number),
            ..string_field(name)
        };
        let message = |name: &str, field: Vec<FieldDescriptorProto>| DescriptorProto {
            name: Some(name.into()),
            field,
            ..Default::default()
        };
        let check = |messages: Vec<DescriptorProto>| {
            check_names(&pool(messages).get_message_by_name("t.Root").expect("Root"))
        };
        assert!(check(vec![message("Root", vec![string_field("ok_name")])]).is_ok());
        // A field two levels down with a right-to-left override in its name.
        let error = check(vec![
            message("Root", vec![message_field("inner", 1, "Inner")]),
            message("Inner", vec![message_field("leaf", 1, "Leaf")]),
            message("Leaf", vec![string_field("admin\u{202e}resu")]),
        ])
        .expect_err("odd field name");
        assert!(
            error.to_string().contains(r#"field "admin\u{202e}resu""#),
            "{error}"
        );
        let error = check(vec![message("Root", vec![string_field(&"x y".repeat(50))])])
            .expect_err("long odd field name");
        assert!(
            error.to_string().contains("(cut, 150 bytes in all)"),
            "{error}"
        );
        // A field named like another field's JSON name: prost-reflect reads a
        // key as a JSON name first, so `bar` would set `foo`.
        let twins = vec![message(
            "Root",
            vec![named("foo", "bar", 1), named("bar", "baz", 2)],
        )];
        let root = pool(twins.clone())
            .get_message_by_name("t.Root")
            .expect("Root");
        let read = crate::transcode::message_from(
            &root,
            serde_json::from_value(json!({"bar": "x"})).expect("map"),
        )
        .expect("decodes");
        assert_eq!(crate::transcode::encode_result(&read)["foo"], "x");
        let error = check(twins).expect_err("ambiguous");
        assert!(
            matches!(&error, SchemaError::AmbiguousField { field, other, .. } if field == "bar" && other == "foo"),
            "{error}"
        );
    }

    /// D0 .. D<levels>, each with `left` and `right` of the next level's type.
    fn diamond(levels: usize) -> DescriptorPool {
        let mut messages: Vec<DescriptorProto> = (0..levels)
            .map(|i| DescriptorProto {
                name: Some(format!("D{i}")),
                field: vec![
                    message_field("left", 1, &format!("D{}", i + 1)),
                    message_field("right", 2, &format!("D{}", i + 1)),
                ],
                ..Default::default()
            })
            .collect();
        messages.push(DescriptorProto {
            name: Some(format!("D{levels}")),
            field: vec![string_field("leaf")],
            ..Default::default()
        });
        pool(messages)
    }

    /// C0 .. C<levels>, each with one field of the next level's type.
    fn chain(levels: usize) -> DescriptorPool {
        let mut messages: Vec<DescriptorProto> = (0..levels)
            .map(|i| DescriptorProto {
                name: Some(format!("C{i}")),
                field: vec![message_field("next", 1, &format!("C{}", i + 1))],
                ..Default::default()
            })
            .collect();
        messages.push(DescriptorProto {
            name: Some(format!("C{levels}")),
            field: vec![string_field("leaf")],
            ..Default::default()
        });
        pool(messages)
    }

    fn schema_of(
        pool: &DescriptorPool,
        name: &str,
        limits: SchemaLimits,
    ) -> Result<Map<String, Json>, SchemaError> {
        let message = pool.get_message_by_name(name).unwrap();
        message_schema(&message, &Comments::default(), Direction::Input, limits)
    }

    fn generous() -> SchemaLimits {
        SchemaLimits {
            max_bytes: usize::MAX,
            max_defs: usize::MAX,
        }
    }

    #[test]
    fn shared_messages_are_defined_once_so_a_diamond_stays_linear() {
        let schema = schema_of(&diamond(40), "t.D0", generous()).unwrap();
        let defs = schema["$defs"].as_object().unwrap();
        // D1 .. D40 are each used by two fields: one definition each.
        assert_eq!(defs.len(), 40, "{:?}", defs.keys().collect::<Vec<_>>());
        assert_eq!(
            schema["properties"]["left"],
            json!({"$ref": "#/$defs/t.D1"})
        );
        assert_eq!(
            defs["t.D39"]["properties"]["right"],
            json!({"$ref": "#/$defs/t.D40"})
        );
        assert_eq!(
            defs["t.D40"]["properties"]["leaf"],
            json!({"type": "string"})
        );
        let size = serde_json::to_vec(&schema).unwrap().len();
        assert!(size < 20_000, "a 40-level diamond took {size} bytes");
    }

    #[test]
    fn a_message_used_once_is_inlined() {
        let schema = schema_of(&chain(3), "t.C0", generous()).unwrap();
        assert!(!schema.contains_key("$defs"), "{schema:?}");
        assert_eq!(
            schema["properties"]["next"]["properties"]["next"]["properties"]["next"]["properties"]
                ["leaf"],
            json!({"type": "string"})
        );
    }

    #[test]
    fn a_deep_chain_is_cut_into_definitions_without_deep_recursion() {
        // 5000 nested messages would overflow the stack if inlined recursively.
        let levels = 5000;
        let schema = Json::Object(schema_of(&chain(levels), "t.C0", generous()).unwrap());
        let defs = schema["$defs"].as_object().unwrap();
        assert_eq!(
            defs.len(),
            levels / MAX_INLINE_DEPTH,
            "one definition per cut"
        );
        // Walk the whole chain through inline properties and $refs: all there.
        let mut node = &schema;
        let mut depth = 0;
        loop {
            if let Some(reference) = node.get("$ref").and_then(Json::as_str) {
                let name = reference.trim_start_matches("#/$defs/");
                node = &defs[name];
                continue;
            }
            match node["properties"].get("next") {
                Some(next) => {
                    node = next;
                    depth += 1;
                }
                None => break,
            }
        }
        assert_eq!(depth, levels);
        assert_eq!(node["properties"]["leaf"], json!({"type": "string"}));
    }

    #[test]
    fn recursive_messages_are_referenced() {
        let pool = pool(vec![DescriptorProto {
            name: Some("Node".into()),
            field: vec![message_field("child", 1, "Node")],
            ..Default::default()
        }]);
        let schema = schema_of(&pool, "t.Node", generous()).unwrap();
        assert_eq!(
            schema["properties"]["child"],
            json!({"$ref": "#/$defs/t.Node"})
        );
        assert!(schema["$defs"]["t.Node"]["properties"]["child"]["$ref"].is_string());
    }

    #[test]
    fn a_recursive_message_used_once_stays_inline_with_its_recursion_referenced() {
        let pool = pool(vec![
            DescriptorProto {
                name: Some("Root".into()),
                field: vec![message_field("meta", 1, "Meta")],
                ..Default::default()
            },
            DescriptorProto {
                name: Some("Meta".into()),
                field: vec![message_field("parent", 1, "Meta")],
                ..Default::default()
            },
        ]);
        let schema = schema_of(&pool, "t.Root", generous()).unwrap();
        assert_eq!(
            schema["properties"]["meta"]["properties"]["parent"],
            json!({"$ref": "#/$defs/t.Meta"})
        );
        assert!(schema["$defs"]["t.Meta"]["properties"]["parent"]["$ref"].is_string());
    }

    #[test]
    fn too_many_definitions_are_refused_naming_the_limit() {
        let limits = SchemaLimits {
            max_bytes: usize::MAX,
            max_defs: 10,
        };
        let error = schema_of(&diamond(40), "t.D0", limits).unwrap_err();
        assert_eq!(
            error,
            SchemaError::TooManyDefs {
                message: "t.D0".into(),
                limit: 10
            }
        );
        assert!(error.to_string().contains("max_schema_defs"), "{error}");
        assert!(schema_of(&diamond(10), "t.D0", limits).is_ok());
    }

    #[test]
    fn an_oversized_schema_is_refused_naming_the_limit() {
        let full = schema_of(&diamond(5), "t.D0", generous()).unwrap();
        let size = serde_json::to_vec(&full).unwrap().len();
        let exact = SchemaLimits {
            max_bytes: size,
            max_defs: usize::MAX,
        };
        assert!(schema_of(&diamond(5), "t.D0", exact).is_ok());
        let error = schema_of(
            &diamond(5),
            "t.D0",
            SchemaLimits {
                max_bytes: size - 1,
                ..exact
            },
        )
        .unwrap_err();
        assert!(
            matches!(error, SchemaError::TooLarge { size: s, limit, .. } if s == size && limit == size - 1),
            "{error:?}"
        );
        assert!(error.to_string().contains("max_schema_bytes"), "{error}");
    }
}
