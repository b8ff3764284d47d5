//! JSON tool arguments ⇄ dynamic protobuf messages, and the gRPC codec for them.
//!
//! Arguments are checked against the request message before decoding so that an
//! error names the field and what was expected (`field "filter.limit": expected an
//! integer, got "ten"`), missing required fields are reported (proto3 would
//! silently default them), and enum values may be given by their short name
//! (`basic` for `ANALYSIS_DEPTH_BASIC`). Decoding itself is prost-reflect's
//! proto3 JSON mapping with unknown fields denied. Results are encoded back with
//! proto field names, every field present, and 64-bit integers as numbers.

use prost::Message;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value as Json};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::schema::is_required;

/// Arguments that do not fit the request message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgumentError(pub String);

/// Decodes tool arguments into a request message.
pub fn decode_arguments(
    desc: &MessageDescriptor,
    arguments: Option<Map<String, Json>>,
) -> Result<DynamicMessage, ArgumentError> {
    let mut value = Json::Object(arguments.unwrap_or_default());
    check_message(desc, &mut value, "")?;
    DynamicMessage::deserialize_with_options(
        desc.clone(),
        value,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(|e| ArgumentError(format!("invalid arguments: {e}")))
}

/// Encodes a response message as the tool's structured result.
pub fn encode_result(message: &DynamicMessage) -> Json {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    let mut json = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or_else(|e| Json::String(format!("<result could not be encoded as JSON: {e}>")));
    whole_numbers_as_integers(&mut json);
    json
}

/// Writes whole doubles as integers (`41` rather than `41.0`): the same JSON
/// number, but what a reader expects for counts and ids, which reach the router
/// as doubles when a connector returns them in a `google.protobuf.Value`. Only
/// values that a double represents exactly (below 2^53) are rewritten.
fn whole_numbers_as_integers(value: &mut Json) {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Json::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < EXACT
            {
                *value = Json::from(f as i64);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Json::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

fn at(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.chars().count() > 40 => {
            format!("a string ({} characters)", s.chars().count())
        }
        Json::String(s) => format!("{s:?}"),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn check_message(
    desc: &MessageDescriptor,
    value: &mut Json,
    path: &str,
) -> Result<(), ArgumentError> {
    if is_free_form(desc.full_name()) {
        return Ok(());
    }
    let Json::Object(map) = value else {
        let what = if path.is_empty() {
            "arguments".to_owned()
        } else {
            format!("field {path:?}")
        };
        return Err(ArgumentError(format!(
            "{what}: expected an object, got {}",
            describe(value)
        )));
    };
    let mut oneofs_seen: Vec<(String, String)> = Vec::new();
    for (key, field_value) in map.iter_mut() {
        let field = desc
            .get_field_by_name(key)
            .or_else(|| desc.get_field_by_json_name(key));
        let Some(field) = field else {
            let known: Vec<String> = desc.fields().map(|f| f.name().to_owned()).collect();
            let known = if known.is_empty() {
                "it takes no arguments".to_owned()
            } else {
                format!("expected one of: {}", known.join(", "))
            };
            return Err(ArgumentError(format!(
                "unknown argument {:?}; {known}",
                at(path, key)
            )));
        };
        if field_value.is_null() {
            continue;
        }
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            if let Some((_, other)) = oneofs_seen.iter().find(|(o, _)| o == oneof.name()) {
                return Err(ArgumentError(format!(
                    "arguments {:?} and {:?} exclude each other; give only one",
                    at(path, other),
                    at(path, field.name())
                )));
            }
            oneofs_seen.push((oneof.name().to_owned(), field.name().to_owned()));
        }
        check_field(&field, field_value, &at(path, field.name()))?;
    }
    for field in desc.fields() {
        if is_required(&field)
            && !map.contains_key(field.name())
            && !map.contains_key(field.json_name())
        {
            return Err(ArgumentError(format!(
                "missing required argument {:?}",
                at(path, field.name())
            )));
        }
    }
    Ok(())
}

fn check_field(field: &FieldDescriptor, value: &mut Json, path: &str) -> Result<(), ArgumentError> {
    if field.is_map() {
        let Json::Object(entries) = value else {
            return Err(ArgumentError(format!(
                "field {path:?}: expected an object, got {}",
                describe(value)
            )));
        };
        if let Kind::Message(entry) = field.kind() {
            let value_field = entry.map_entry_value_field();
            for (k, v) in entries.iter_mut() {
                check_single(&value_field.kind(), v, &format!("{path}[{k:?}]"))?;
            }
        }
        return Ok(());
    }
    if field.is_list() {
        let Json::Array(items) = value else {
            return Err(ArgumentError(format!(
                "field {path:?}: expected an array, got {}",
                describe(value)
            )));
        };
        for (i, item) in items.iter_mut().enumerate() {
            check_single(&field.kind(), item, &format!("{path}[{i}]"))?;
        }
        return Ok(());
    }
    check_single(&field.kind(), value, path)
}

fn check_single(kind: &Kind, value: &mut Json, path: &str) -> Result<(), ArgumentError> {
    let expected = match kind {
        Kind::Double | Kind::Float => {
            if value.is_number() || matches!(value.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
            {
                return Ok(());
            }
            "a number"
        }
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => {
            if is_integer(value, true) {
                return Ok(());
            }
            "an integer"
        }
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
            if is_integer(value, false) {
                return Ok(());
            }
            "a non-negative integer"
        }
        Kind::Bool => {
            if value.is_boolean() {
                return Ok(());
            }
            "true or false"
        }
        Kind::String | Kind::Bytes => {
            if value.is_string() {
                return Ok(());
            }
            if matches!(kind, Kind::Bytes) {
                "a base64 string"
            } else {
                "a string"
            }
        }
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            match value {
                Json::String(s) => {
                    if e.get_value_by_name(s).is_some() {
                        return Ok(());
                    }
                    if let Some(full) = resolve_enum_short_name(e, s) {
                        *value = Json::String(full);
                        return Ok(());
                    }
                }
                Json::Number(n)
                    if n.as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .is_some_and(|n| e.get_value(n).is_some()) =>
                {
                    return Ok(());
                }
                _ => {}
            }
            return Err(ArgumentError(format!(
                "field {path:?}: expected one of {}, got {}",
                names.join(", "),
                describe(value)
            )));
        }
        Kind::Message(m) => {
            if let Some(expected) = well_known_expectation(m.full_name(), value) {
                return Err(ArgumentError(format!(
                    "field {path:?}: expected {expected}, got {}",
                    describe(value)
                )));
            }
            if is_well_known(m.full_name()) {
                return Ok(());
            }
            return check_message(m, value, path);
        }
    };
    Err(ArgumentError(format!(
        "field {path:?}: expected {expected}, got {}",
        describe(value)
    )))
}

fn is_integer(value: &Json, signed: bool) -> bool {
    match value {
        Json::Number(n) => {
            n.as_u64().is_some()
                || (signed && n.as_i64().is_some())
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && (signed || f >= 0.0))
        }
        // The proto3 JSON mapping also accepts integers as decimal strings.
        Json::String(s) => {
            let s = s.trim();
            if signed {
                s.parse::<i64>().is_ok()
            } else {
                s.parse::<u64>().is_ok()
            }
        }
        _ => false,
    }
}

/// `basic`, `Basic` or `BASIC` for `ANALYSIS_DEPTH_BASIC` (the enum's common prefix
/// stripped), as long as exactly one value matches.
fn resolve_enum_short_name(e: &prost_reflect::EnumDescriptor, given: &str) -> Option<String> {
    let wanted = given.trim().to_ascii_uppercase().replace(['-', ' '], "_");
    let mut found = None;
    for v in e.values() {
        let name = v.name();
        if name == wanted || name.ends_with(&format!("_{wanted}")) {
            if found.is_some() {
                return None;
            }
            found = Some(name.to_owned());
        }
    }
    found
}

fn is_free_form(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue"
    )
}

fn is_well_known(full_name: &str) -> bool {
    full_name.starts_with("google.protobuf.")
}

/// For the well-known types with a scalar JSON form, what a wrong value should have been.
fn well_known_expectation(full_name: &str, value: &Json) -> Option<&'static str> {
    let ok = match full_name {
        "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask" => {
            value.is_string()
        }
        "google.protobuf.Struct" => value.is_object(),
        "google.protobuf.ListValue" => value.is_array(),
        "google.protobuf.BoolValue" => value.is_boolean(),
        "google.protobuf.StringValue" | "google.protobuf.BytesValue" => value.is_string(),
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => value.is_number(),
        "google.protobuf.Int32Value" | "google.protobuf.Int64Value" => is_integer(value, true),
        "google.protobuf.UInt32Value" | "google.protobuf.UInt64Value" => is_integer(value, false),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match full_name {
        "google.protobuf.Timestamp" => "an RFC 3339 timestamp string such as 2024-05-01T12:00:00Z",
        "google.protobuf.Duration" => "a duration string such as 1.5s",
        "google.protobuf.FieldMask" => "a comma-separated string of field paths",
        "google.protobuf.Struct" => "an object",
        "google.protobuf.ListValue" => "an array",
        "google.protobuf.BoolValue" => "true or false",
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => "a number",
        "google.protobuf.UInt32Value" | "google.protobuf.UInt64Value" => "a non-negative integer",
        "google.protobuf.Int32Value" | "google.protobuf.Int64Value" => "an integer",
        _ => "a string",
    })
}

/// A tonic codec for messages known only at run time.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    response: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec that decodes responses as `response`.
    pub fn new(response: MessageDescriptor) -> Self {
        Self { response }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.response.clone())
    }
}

/// Encodes dynamic request messages.
#[derive(Debug)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode request: {e}")))
    }
}

/// Decodes dynamic response messages of one type.
#[derive(Debug)]
pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let mut message = DynamicMessage::new(self.0.clone());
        message.merge(src).map_err(|e| {
            Status::internal(format!("connector sent an undecodable response: {e}"))
        })?;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod whole_number_tests {
    use super::*;

    #[test]
    fn whole_doubles_are_written_as_integers() {
        let mut v = serde_json::json!({"n": 41.0, "x": 2.5, "rows": [[3.0, "3.0"]], "big": 1e300});
        whole_numbers_as_integers(&mut v);
        assert_eq!(
            v.to_string(),
            r#"{"big":1e+300,"n":41,"rows":[[3,"3.0"]],"x":2.5}"#
        );
    }
}
