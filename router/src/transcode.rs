//! JSON tool arguments ⇄ dynamic protobuf messages, and the gRPC codec for them.
//!
//! Arguments are checked against the request message before decoding so that an
//! error names the field and what was expected (`field "filter.limit": expected an
//! integer, got "ten"`), missing required fields are reported (proto3 would
//! silently default them), and enum values may be given by their short name
//! (`basic` for `ANALYSIS_DEPTH_BASIC`). Decoding itself is prost-reflect's
//! proto3 JSON mapping with unknown fields denied. Results are encoded back with
//! proto field names, every field present, and 64-bit integers as numbers.
//!
//! What the checks enforce, each error naming the field's path (`items[2].id`,
//! `labels["a"]`): integers in their type's range, as JSON numbers without a
//! fraction or decimal strings (`-3.0` or `3.5` for a `uint32` and `1e20` for an
//! `int64` are refused); floats in range, or `"NaN"`, `"Infinity"`,
//! `"-Infinity"` and numeric strings; booleans; strings; bytes as valid base64;
//! enums by name, short name or defined number; map keys of the key's type;
//! well-known wrappers (`google.protobuf.Int32Value`, ...) like the value they
//! wrap, `null` meaning unset; Timestamp and Duration strings that parse;
//! Struct as an object, ListValue as an array, Value as anything; at most one
//! member of a oneof; a field given once (not by both its names); required
//! fields present and not `null`. Before any of it, the nesting depth of the
//! arguments is measured with an explicit stack (no recursion) and refused
//! beyond [`MAX_ARGUMENT_DEPTH`], so the recursive checks and prost-reflect's
//! decoding below never go deeper than that, whatever the JSON parser allowed.
//!
//! The checks also rewrite the arguments to one canonical form
//! ([`canonicalize_arguments`]: proto field names, enum names, integers as
//! numbers, ...) before the call pipeline's authorize stage, so that a policy
//! reading `args` reads what the connector will receive, however the client
//! spelled it; [`message_from`] then decodes them.

use base64::Engine as _;
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

/// Deepest nesting of objects and arrays accepted in tool arguments
/// (`max_argument_depth`). serde_json's own parse limit is 128, but a
/// `google.protobuf.Struct` costs prost-reflect two message levels per JSON
/// level against prost's decoding limit of 100, so past about 48 levels a
/// free-form argument would fail with a message naming no field.
pub const MAX_ARGUMENT_DEPTH: usize = 32;

/// The deepest nesting of arrays and objects in `value` (a scalar is 0, `{}`
/// is 1), measured without recursion; stops counting once past `limit`.
fn nesting_depth(value: &Json, limit: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Json>> = match value {
            Json::Array(items) => Box::new(items.iter()),
            Json::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = depth + 1;
        deepest = deepest.max(depth);
        if depth > limit {
            return deepest;
        }
        stack.extend(children.map(|child| (child, depth)));
    }
    deepest
}

/// Decodes tool arguments into a request message: [`canonicalize_arguments`],
/// then [`message_from`] (what the call pipeline does in two stages).
#[cfg(test)]
pub(crate) fn decode_arguments(
    desc: &MessageDescriptor,
    arguments: Option<Map<String, Json>>,
) -> Result<DynamicMessage, ArgumentError> {
    let mut arguments = arguments.unwrap_or_default();
    canonicalize_arguments(desc, &mut arguments)?;
    message_from(desc, arguments)
}

/// Checks tool arguments against the request message `desc` and rewrites them
/// in place to the one form that means the same request, so that whoever reads
/// them before they are decoded (the policy's `args`, the audit line, the key
/// of a shared call) reads what the connector will receive:
///
/// * a field given by its JSON name (`userId`) is keyed by its proto name
///   (`user_id`), as the tool's schema names it;
/// * `null` for a field (unset, to the proto3 JSON mapping) is removed, except
///   for a `google.protobuf.Value`, where it is a value;
/// * an integer is a JSON integer (`"7"` and `7.0` become `7`), a float given as
///   a numeric string a JSON number (`"NaN"`, `"Infinity"`, `"-Infinity"` stay);
/// * an enum value is its full name (`2` and `loud` become `VOLUME_LOUD`);
/// * bytes are standard base64 with padding; Timestamp and Duration are
///   written as the router writes them in results; a wrapper like the value
///   it wraps.
///
/// * an integer map key is its decimal digits (`"007"` is `"7"`), given once.
///
/// Free-form values (`Struct`, `Value`, `ListValue`) and string map keys are
/// data and stay as given. On an error the arguments may be partly rewritten.
pub fn canonicalize_arguments(
    desc: &MessageDescriptor,
    arguments: &mut Map<String, Json>,
) -> Result<(), ArgumentError> {
    let depth = arguments
        .values()
        .map(|v| nesting_depth(v, MAX_ARGUMENT_DEPTH))
        .max()
        .map_or(1, |deepest| deepest + 1);
    if depth > MAX_ARGUMENT_DEPTH {
        return Err(ArgumentError(format!(
            "arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels of objects and arrays, \
             the router's limit max_argument_depth: flatten them"
        )));
    }
    if is_free_form(desc.full_name()) {
        return Ok(());
    }
    check_object(desc, arguments, "")
}

/// The request message of arguments that [`canonicalize_arguments`] accepted.
pub fn message_from(
    desc: &MessageDescriptor,
    arguments: Map<String, Json>,
) -> Result<DynamicMessage, ArgumentError> {
    DynamicMessage::deserialize_with_options(
        desc.clone(),
        Json::Object(arguments),
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
    check_object(desc, map, path)
}

/// Checks the fields of one message given as `map`, and makes them canonical
/// (see [`canonicalize_arguments`]).
fn check_object(
    desc: &MessageDescriptor,
    map: &mut Map<String, Json>,
    path: &str,
) -> Result<(), ArgumentError> {
    let mut oneofs_seen: Vec<(String, String)> = Vec::new();
    let mut fields_seen: Vec<u32> = Vec::new();
    // Keys to rename to the field's proto name, and `null`s to drop.
    let mut renamed: Vec<(String, String)> = Vec::new();
    let mut unset: Vec<String> = Vec::new();
    // The canonical key is the proto name, which prost-reflect reads as a JSON
    // name first: the catalog leaves out a tool with a field named like
    // another's JSON name (`schema::check_names`), so here both read alike.
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
        if fields_seen.contains(&field.number()) {
            return Err(ArgumentError(format!(
                "argument {:?} is given twice (as {:?} and {:?}); give it once",
                at(path, field.name()),
                field.name(),
                field.json_name()
            )));
        }
        fields_seen.push(field.number());
        if field_value.is_null() {
            if !null_is_a_value(&field) {
                unset.push(key.clone());
            } else if key != field.name() {
                renamed.push((key.clone(), field.name().to_owned()));
            }
            continue;
        }
        if key != field.name() {
            renamed.push((key.clone(), field.name().to_owned()));
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
    for key in unset {
        map.remove(&key);
    }
    // Each field was given once, so no proto name is taken by another key.
    for (given, name) in renamed {
        if let Some(value) = map.remove(&given) {
            map.insert(name, value);
        }
    }
    for field in desc.fields() {
        if is_required(&field) && map.get(field.name()).is_none_or(Json::is_null) {
            return Err(ArgumentError(format!(
                "missing required argument {:?}",
                at(path, field.name())
            )));
        }
    }
    Ok(())
}

/// Whether `null` for `field` is a value (a singular `google.protobuf.Value`:
/// its `null_value`) rather than "unset".
fn null_is_a_value(field: &FieldDescriptor) -> bool {
    !field.is_list()
        && !field.is_map()
        && matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Value")
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
            let key_kind = entry.map_entry_key_field().kind();
            let value_field = entry.map_entry_value_field();
            let mut renamed: Vec<(String, String)> = Vec::new();
            for (k, v) in entries.iter_mut() {
                if let Some(expected) = map_key_expectation(&key_kind, k) {
                    return Err(ArgumentError(format!(
                        "field {path:?}: key {k:?} is not {expected}"
                    )));
                }
                check_single(&value_field.kind(), v, &format!("{path}[{k:?}]"))?;
                if let Some(canonical) = integer_key(&key_kind, k).filter(|c| c != k) {
                    renamed.push((k.clone(), canonical));
                }
            }
            // `"007"` and `"+7"` are the key 7: written so, and given once.
            for (given, canonical) in renamed {
                if entries.contains_key(&canonical) {
                    return Err(ArgumentError(format!(
                        "field {path:?}: keys {given:?} and {canonical:?} are the same key; give it once"
                    )));
                }
                if let Some(v) = entries.remove(&given) {
                    entries.insert(canonical, v);
                }
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
        Kind::Double => {
            if let Some(canonical) = float_canonical(value, f64::MAX) {
                *value = canonical;
                return Ok(());
            }
            "a number"
        }
        Kind::Float => {
            if let Some(canonical) = float_canonical(value, f64::from(f32::MAX)) {
                *value = canonical;
                return Ok(());
            }
            "a number within the range of a 32-bit float"
        }
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => {
            let range = IntegerRange::of(kind);
            if let Some(canonical) = range.canonical(value) {
                *value = canonical;
                return Ok(());
            }
            return Err(ArgumentError(format!(
                "field {path:?}: expected {}, got {} ({})",
                range.kind,
                describe(value),
                range.expected
            )));
        }
        Kind::Bool => {
            if value.is_boolean() {
                return Ok(());
            }
            "true or false"
        }
        Kind::String => {
            if value.is_string() {
                return Ok(());
            }
            "a string"
        }
        Kind::Bytes => {
            if let Some(bytes) = value.as_str().and_then(base64_bytes) {
                *value = Json::String(base64::engine::general_purpose::STANDARD.encode(bytes));
                return Ok(());
            }
            "a base64 string"
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
                Json::Number(n) => {
                    if let Some(v) = n
                        .as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .and_then(|n| e.get_value(n))
                    {
                        *value = Json::String(v.name().to_owned());
                        return Ok(());
                    }
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
                if !is_free_form(m.full_name()) {
                    well_known_canonical(m, value);
                }
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

/// The values an integer kind takes, and how to say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IntegerRange {
    min: i128,
    max: i128,
    /// What the value should be, with its range.
    expected: &'static str,
    /// The same, short, for the error of a plain field (the range follows it).
    kind: &'static str,
}

impl IntegerRange {
    const INT32: Self = Self {
        min: i32::MIN as i128,
        max: i32::MAX as i128,
        expected: "an integer from -2147483648 to 2147483647",
        kind: "an integer",
    };
    const UINT32: Self = Self {
        min: 0,
        max: u32::MAX as i128,
        expected: "an integer from 0 to 4294967295",
        kind: "a non-negative integer",
    };
    const INT64: Self = Self {
        min: i64::MIN as i128,
        max: i64::MAX as i128,
        expected: "a 64-bit integer (a number, or a decimal string)",
        kind: "an integer",
    };
    const UINT64: Self = Self {
        min: 0,
        max: u64::MAX as i128,
        expected: "a non-negative 64-bit integer (a number, or a decimal string)",
        kind: "a non-negative integer",
    };

    /// The range of an integer kind (the 64-bit one for any other kind).
    fn of(kind: &Kind) -> Self {
        match kind {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Self::INT32,
            Kind::Uint32 | Kind::Fixed32 => Self::UINT32,
            Kind::Uint64 | Kind::Fixed64 => Self::UINT64,
            _ => Self::INT64,
        }
    }

    /// Whether `value` is an integer in range (see [`Self::value`]).
    fn contains(self, value: &Json) -> bool {
        self.value(value).is_some()
    }

    /// The integer `value` holds, if it is one in range: a JSON number without
    /// a fraction (`3.0` is 3; `3.5`, `-3.0` for an unsigned type, `1e20` for a
    /// 64-bit one are not), or a decimal string as the proto3 JSON mapping allows.
    fn value(self, value: &Json) -> Option<i128> {
        let n = match value {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    i128::from(i)
                } else if let Some(u) = n.as_u64() {
                    i128::from(u)
                } else {
                    // max + 1 is a power of two, exact as a double; max itself
                    // may round up to it, hence the strict comparison.
                    let f = n.as_f64()?;
                    if f.fract() != 0.0 || f < self.min as f64 || f >= (self.max + 1) as f64 {
                        return None;
                    }
                    f as i128
                }
            }
            // As prost-reflect parses them: Rust's integer syntax, no sign on
            // an unsigned type.
            Json::String(s) if self.min == 0 => i128::try_from(s.parse::<u128>().ok()?).ok()?,
            Json::String(s) => s.parse::<i128>().ok()?,
            _ => return None,
        };
        (self.min..=self.max).contains(&n).then_some(n)
    }

    /// `value` as a JSON integer, if it is an integer in range.
    fn canonical(self, value: &Json) -> Option<Json> {
        let n = self.value(value)?;
        i64::try_from(n)
            .map(Json::from)
            .or_else(|_| u64::try_from(n).map(Json::from))
            .ok()
    }
}

/// A JSON number within `max` in magnitude, `"NaN"`, `"Infinity"`,
/// `"-Infinity"`, or a string holding a finite number within `max`.
fn is_float(value: &Json, max: f64) -> bool {
    float_canonical(value, max).is_some()
}

/// A float [`is_float`] accepts, as a JSON number when it has one (`"1.5"` is
/// `1.5`); `"NaN"` and the infinities stay strings.
fn float_canonical(value: &Json, max: f64) -> Option<Json> {
    match value {
        Json::Number(n) => n.as_f64().filter(|f| f.abs() <= max).map(|_| value.clone()),
        Json::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => {
            Some(value.clone())
        }
        Json::String(s) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() <= max)
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number),
        _ => None,
    }
}

/// A well-known type's value (already checked) in its canonical form: what the
/// router writes for the message it decodes to (a Timestamp in UTC, a wrapper
/// like the value it wraps, a FieldMask's paths as the mapping writes them).
/// A value that does not decode is left for the decoding to refuse.
fn well_known_canonical(message: &MessageDescriptor, value: &mut Json) {
    if let Ok(decoded) = DynamicMessage::deserialize_with_options(
        message.clone(),
        &*value,
        &DeserializeOptions::new().deny_unknown_fields(true),
    ) {
        // A wrapped NaN or infinity has no JSON number: left as given.
        let canonical = encode_result(&decoded);
        if !canonical.is_null() {
            *value = canonical;
        }
    }
}

/// Whether `s` is base64 as prost-reflect decodes it: the standard or the
/// URL-safe alphabet, padded or not.
fn is_base64(s: &str) -> bool {
    base64_bytes(s).is_some()
}

/// The bytes of `s` read as prost-reflect reads base64 (see [`is_base64`]).
fn base64_bytes(s: &str) -> Option<Vec<u8>> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}

/// An integer map key (already checked) as the number's decimal digits.
fn integer_key(kind: &Kind, key: &str) -> Option<String> {
    match kind {
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => key.parse::<i64>().ok().map(|n| n.to_string()),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
            key.parse::<u64>().ok().map(|n| n.to_string())
        }
        _ => None,
    }
}

/// What a map key should have been, if `key` does not fit the key kind.
fn map_key_expectation(kind: &Kind, key: &str) -> Option<&'static str> {
    let ok = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => key.parse::<i32>().is_ok(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => key.parse::<i64>().is_ok(),
        Kind::Uint32 | Kind::Fixed32 => key.parse::<u32>().is_ok(),
        Kind::Uint64 | Kind::Fixed64 => key.parse::<u64>().is_ok(),
        Kind::Bool => matches!(key, "true" | "false"),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match kind {
        Kind::Bool => "true or false",
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
            "a non-negative integer of the key's type"
        }
        _ => "an integer of the key's type",
    })
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

/// For the well-known types with a JSON form of their own, what a wrong value
/// should have been (`None` when it fits, or for types without such a form).
fn well_known_expectation(full_name: &str, value: &Json) -> Option<&'static str> {
    use std::str::FromStr as _;
    let (ok, expected) = match full_name {
        "google.protobuf.Timestamp" => (
            value
                .as_str()
                .is_some_and(|s| prost_types::Timestamp::from_str(s).is_ok()),
            "an RFC 3339 timestamp string such as 2024-05-01T12:00:00Z",
        ),
        "google.protobuf.Duration" => (
            value
                .as_str()
                .is_some_and(|s| prost_types::Duration::from_str(s).is_ok()),
            "a duration string such as 1.5s",
        ),
        "google.protobuf.FieldMask" => {
            (value.is_string(), "a comma-separated string of field paths")
        }
        "google.protobuf.Struct" | "google.protobuf.Empty" => (value.is_object(), "an object"),
        "google.protobuf.Any" => (
            value.get("@type").is_some_and(Json::is_string),
            "an object with a \"@type\" string",
        ),
        "google.protobuf.ListValue" => (value.is_array(), "an array"),
        "google.protobuf.BoolValue" => (value.is_boolean(), "true or false"),
        "google.protobuf.StringValue" => (value.is_string(), "a string"),
        "google.protobuf.BytesValue" => (value.as_str().is_some_and(is_base64), "a base64 string"),
        "google.protobuf.DoubleValue" => (is_float(value, f64::MAX), "a number"),
        "google.protobuf.FloatValue" => (
            is_float(value, f64::from(f32::MAX)),
            "a number within the range of a 32-bit float",
        ),
        "google.protobuf.Int32Value" => {
            let range = IntegerRange::INT32;
            (range.contains(value), range.expected)
        }
        "google.protobuf.UInt32Value" => {
            let range = IntegerRange::UINT32;
            (range.contains(value), range.expected)
        }
        "google.protobuf.Int64Value" => {
            let range = IntegerRange::INT64;
            (range.contains(value), range.expected)
        }
        "google.protobuf.UInt64Value" => {
            let range = IntegerRange::UINT64;
            (range.contains(value), range.expected)
        }
        _ => (true, ""),
    };
    (!ok).then_some(expected)
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

    #[test]
    fn only_doubles_below_two_to_the_53_become_integers() {
        let mut v =
            serde_json::json!([9007199254740991.0, 9007199254740992.0, -9007199254740992.0]);
        whole_numbers_as_integers(&mut v);
        assert_eq!(
            v.to_string(),
            "[9007199254740991,9007199254740992.0,-9007199254740992.0]"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::{DescriptorPool, MapKey, Value};
    use serde_json::json;

    const TEST_PROTO: &str = r#"
syntax = "proto3";
package t;
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; COLOR_DARK_BLUE = 2; }
message Inner { string name = 1; optional int32 n = 2; }
message All {
  optional int32 i32 = 1; optional uint32 u32 = 2; optional int64 i64 = 3; optional uint64 u64 = 4;
  optional sint32 s32 = 5; optional fixed64 fx64 = 6; optional double d = 7; optional float f = 8;
  optional bool b = 9; optional string s = 10; optional bytes by = 11; optional Color color = 12;
  repeated int32 ints = 13; map<string, int32> counts = 14; map<int32, string> by_id = 15;
  map<bool, string> flags = 16; map<uint64, Inner> inners = 17;
  Inner inner = 18; repeated Inner inner_list = 19;
  google.protobuf.Int32Value w_i32 = 20; google.protobuf.UInt32Value w_u32 = 21;
  google.protobuf.Int64Value w_i64 = 22; google.protobuf.UInt64Value w_u64 = 23;
  google.protobuf.BoolValue w_b = 24; google.protobuf.StringValue w_s = 25;
  google.protobuf.BytesValue w_by = 26; google.protobuf.DoubleValue w_d = 27;
  google.protobuf.FloatValue w_f = 28;
  google.protobuf.Struct st = 29; google.protobuf.Value v = 30; google.protobuf.ListValue lv = 31;
  google.protobuf.Timestamp ts = 32; google.protobuf.Duration du = 33;
  google.protobuf.Empty em = 34; google.protobuf.FieldMask fm = 35; google.protobuf.Any any = 36;
  oneof target { string user = 40; int64 user_id = 41; }
  repeated Color colors = 42;
  map<int64, int64> big = 43;
  map<uint32, string> by_u32 = 44;
}
message Required { string name = 1; int32 count = 2; optional string note = 3; }
"#;

    struct TestFiles;

    impl protox::file::FileResolver for TestFiles {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            if name == "test.proto" {
                protox::file::File::from_source(name, TEST_PROTO)
            } else {
                protox::file::GoogleFileResolver::new().open_file(name)
            }
        }
    }

    fn pool() -> DescriptorPool {
        let mut compiler = protox::Compiler::with_file_resolver(TestFiles);
        compiler.include_imports(true);
        compiler
            .open_file("test.proto")
            .expect("test proto compiles");
        DescriptorPool::from_file_descriptor_set(compiler.file_descriptor_set()).unwrap()
    }

    fn message(name: &str) -> MessageDescriptor {
        pool().get_message_by_name(name).unwrap()
    }

    /// The message with every kind of field, for the property tests.
    pub(super) fn all_message() -> MessageDescriptor {
        message("t.All")
    }

    fn decode(name: &str, arguments: Json) -> Result<DynamicMessage, String> {
        let Json::Object(map) = arguments else {
            panic!("arguments must be an object")
        };
        decode_arguments(&message(name), Some(map)).map_err(|e| e.0)
    }

    fn ok(arguments: Json) -> DynamicMessage {
        decode("t.All", arguments.clone())
            .unwrap_or_else(|e| panic!("{arguments} was refused: {e}"))
    }

    /// Asserts `arguments` is refused with an error containing every one of `needles`.
    fn refused(arguments: Json, needles: &[&str]) {
        match decode("t.All", arguments.clone()) {
            Ok(m) => panic!("{arguments} was accepted as {m:?}"),
            Err(e) => {
                for needle in needles {
                    assert!(e.contains(needle), "{arguments}: {e:?} lacks {needle:?}");
                }
                assert!(
                    !e.starts_with("invalid arguments:"),
                    "{arguments}: refused by the decoder, not by a check naming the field: {e}"
                );
            }
        }
    }

    fn field(m: &DynamicMessage, name: &str) -> Value {
        m.get_field_by_name(name).unwrap().into_owned()
    }

    #[test]
    fn integers_are_accepted_up_to_their_bounds_as_numbers_and_strings() {
        let m = ok(json!({
            "i32": i32::MIN, "u32": u32::MAX, "i64": i64::MIN, "u64": u64::MAX,
            "s32": i32::MAX, "fx64": "18446744073709551615"
        }));
        assert_eq!(field(&m, "i32"), Value::I32(i32::MIN));
        assert_eq!(field(&m, "u32"), Value::U32(u32::MAX));
        assert_eq!(field(&m, "i64"), Value::I64(i64::MIN));
        assert_eq!(field(&m, "u64"), Value::U64(u64::MAX));
        assert_eq!(field(&m, "s32"), Value::I32(i32::MAX));
        assert_eq!(field(&m, "fx64"), Value::U64(u64::MAX));
        let m = ok(json!({"i64": "9223372036854775807", "u64": "0", "i32": "-7", "u32": 3.0}));
        assert_eq!(field(&m, "i64"), Value::I64(i64::MAX));
        assert_eq!(field(&m, "i32"), Value::I32(-7));
        assert_eq!(field(&m, "u32"), Value::U32(3));
        let m = ok(json!({"i32": 2147483647.0, "i64": -9.0e15, "u64": 1.8e19}));
        assert_eq!(field(&m, "i32"), Value::I32(i32::MAX));
        assert_eq!(field(&m, "i64"), Value::I64(-9_000_000_000_000_000));
        assert_eq!(field(&m, "u64"), Value::U64(18_000_000_000_000_000_000));
    }

    #[test]
    fn integers_out_of_range_or_with_a_fraction_are_refused_naming_the_field() {
        refused(
            json!({"i32": 2147483648i64}),
            &["\"i32\"", "-2147483648 to 2147483647"],
        );
        refused(json!({"i32": -2147483649i64}), &["\"i32\""]);
        refused(json!({"i32": 2147483648.0}), &["\"i32\""]);
        refused(json!({"s32": "2147483648"}), &["\"s32\""]);
        refused(json!({"u32": -1}), &["\"u32\"", "0 to 4294967295"]);
        refused(json!({"u32": -3.0}), &["\"u32\"", "got -3.0"]);
        refused(json!({"u32": 3.5}), &["\"u32\"", "got 3.5"]);
        refused(json!({"u32": 4294967296u64}), &["\"u32\""]);
        refused(json!({"u32": "4294967296"}), &["\"u32\""]);
        refused(json!({"i64": 1e20}), &["\"i64\"", "64-bit integer"]);
        refused(json!({"i64": 9.223372036854776e18}), &["\"i64\""]);
        refused(json!({"i64": -1e19}), &["\"i64\""]);
        refused(json!({"i64": "9223372036854775808"}), &["\"i64\""]);
        refused(json!({"u64": 1.8446744073709552e19}), &["\"u64\""]);
        refused(json!({"u64": "18446744073709551616"}), &["\"u64\""]);
        refused(json!({"u64": -1}), &["\"u64\"", "non-negative"]);
        refused(json!({"fx64": -0.5}), &["\"fx64\""]);
        refused(json!({"i32": true}), &["\"i32\"", "got true"]);
        refused(json!({"i32": [1]}), &["\"i32\"", "an array"]);
    }

    #[test]
    fn integer_strings_follow_rusts_syntax_as_the_decoder_does() {
        assert_eq!(field(&ok(json!({"i32": "+7"})), "i32"), Value::I32(7));
        assert_eq!(field(&ok(json!({"i32": "-0"})), "i32"), Value::I32(0));
        assert_eq!(field(&ok(json!({"u32": 0})), "u32"), Value::U32(0));
        assert_eq!(field(&ok(json!({"u32": -0.0})), "u32"), Value::U32(0));
        refused(json!({"u32": "-0"}), &["\"u32\""]);
        refused(json!({"i32": " 42"}), &["\"i32\""]);
        refused(json!({"i32": "4.2"}), &["\"i32\""]);
        refused(json!({"i64": "1e3"}), &["\"i64\""]);
        refused(json!({"i64": ""}), &["\"i64\""]);
        refused(json!({"u64": "0x10"}), &["\"u64\""]);
    }

    #[test]
    fn floats_take_numbers_special_strings_and_their_range() {
        let m = ok(json!({"d": "NaN", "f": "-Infinity"}));
        assert!(matches!(field(&m, "d"), Value::F64(d) if d.is_nan()));
        assert_eq!(field(&m, "f"), Value::F32(f32::NEG_INFINITY));
        assert_eq!(field(&ok(json!({"d": "1.5"})), "d"), Value::F64(1.5));
        assert_eq!(field(&ok(json!({"d": 1e300})), "d"), Value::F64(1e300));
        assert_eq!(field(&ok(json!({"f": 3})), "f"), Value::F32(3.0));
        refused(json!({"f": 1e39}), &["\"f\"", "32-bit float"]);
        refused(json!({"f": "1e39"}), &["\"f\""]);
        refused(json!({"d": "nan"}), &["\"d\""]);
        refused(json!({"d": "inf"}), &["\"d\""]);
        refused(json!({"d": "one"}), &["\"d\"", "a number"]);
        refused(json!({"d": false}), &["\"d\""]);
    }

    #[test]
    fn booleans_and_strings_are_not_converted() {
        refused(
            json!({"b": "true"}),
            &["\"b\"", "true or false", "got \"true\""],
        );
        refused(json!({"b": 1}), &["\"b\""]);
        refused(json!({"s": 5}), &["\"s\"", "a string"]);
        refused(json!({"s": {"a": 1}}), &["\"s\"", "an object"]);
        let m = ok(json!({"b": false, "s": "héllo ✓ \u{0}"}));
        assert_eq!(field(&m, "s"), Value::String("héllo ✓ \u{0}".into()));
    }

    #[test]
    fn bytes_must_be_base64_in_either_alphabet() {
        let m = ok(json!({"by": "aGVsbG8="}));
        assert_eq!(field(&m, "by"), Value::Bytes(b"hello".to_vec().into()));
        assert_eq!(
            field(&ok(json!({"by": "aGVsbG8"})), "by"),
            Value::Bytes(b"hello".to_vec().into())
        );
        assert_eq!(
            field(&ok(json!({"by": "-_8"})), "by"),
            Value::Bytes(vec![0xfb, 0xff].into())
        );
        refused(json!({"by": "not base64!"}), &["\"by\"", "base64"]);
        refused(json!({"by": ["aGk="]}), &["\"by\""]);
    }

    #[test]
    fn enums_take_names_short_names_and_defined_numbers() {
        assert_eq!(
            field(&ok(json!({"color": "COLOR_RED"})), "color"),
            Value::EnumNumber(1)
        );
        assert_eq!(
            field(&ok(json!({"color": "red"})), "color"),
            Value::EnumNumber(1)
        );
        assert_eq!(
            field(&ok(json!({"color": "dark-blue"})), "color"),
            Value::EnumNumber(2)
        );
        assert_eq!(
            field(&ok(json!({"color": 2})), "color"),
            Value::EnumNumber(2)
        );
        let list = ok(json!({"colors": ["Red", 2, "COLOR_UNSPECIFIED"]}));
        assert_eq!(
            field(&list, "colors"),
            Value::List(vec![
                Value::EnumNumber(1),
                Value::EnumNumber(2),
                Value::EnumNumber(0)
            ])
        );
        refused(
            json!({"color": 7}),
            &[
                "\"color\"",
                "COLOR_UNSPECIFIED, COLOR_RED, COLOR_DARK_BLUE",
                "got 7",
            ],
        );
        refused(json!({"color": "purple"}), &["\"color\"", "got \"purple\""]);
        refused(json!({"color": 1.5}), &["\"color\""]);
        refused(json!({"color": 4294967297u64}), &["\"color\""]);
        refused(json!({"colors": ["red", "green"]}), &["\"colors[1]\""]);
    }

    #[test]
    fn an_ambiguous_short_enum_name_is_refused() {
        let e = pool().get_enum_by_name("t.Color").unwrap();
        assert_eq!(
            resolve_enum_short_name(&e, "blue"),
            Some("COLOR_DARK_BLUE".into())
        );
        assert_eq!(
            resolve_enum_short_name(&e, "dark blue"),
            Some("COLOR_DARK_BLUE".into())
        );
        assert_eq!(resolve_enum_short_name(&e, "lue"), None, "only whole words");
        // "COLOR" is no value; "UNSPECIFIED" matches one; "" matches none.
        assert_eq!(resolve_enum_short_name(&e, "color"), None);
        assert_eq!(resolve_enum_short_name(&e, ""), None);
    }

    #[test]
    fn repeated_and_map_fields_are_checked_item_by_item_with_their_path() {
        let m = ok(json!({
            "ints": [1, "2", -3],
            "counts": {"a": 1, "": 2},
            "by_id": {"-5": "x"},
            "flags": {"true": "y"},
            "inners": {"18446744073709551615": {"name": "z"}},
            "big": {"-9223372036854775808": "9223372036854775807"}
        }));
        assert_eq!(
            field(&m, "ints"),
            Value::List(vec![Value::I32(1), Value::I32(2), Value::I32(-3)])
        );
        let Value::Map(by_id) = field(&m, "by_id") else {
            panic!("a map")
        };
        assert_eq!(
            by_id.get(&MapKey::I32(-5)),
            Some(&Value::String("x".into()))
        );
        refused(json!({"ints": 1}), &["\"ints\"", "expected an array"]);
        refused(json!({"ints": [1, "x"]}), &["\"ints[1]\""]);
        refused(json!({"ints": [1, 2147483648i64]}), &["\"ints[1]\""]);
        refused(
            json!({"counts": ["a"]}),
            &["\"counts\"", "expected an object"],
        );
        refused(json!({"counts": {"a": "x"}}), &["counts[\\\"a\\\"]"]);
        refused(
            json!({"by_id": {"abc": "x"}}),
            &["\"by_id\"", "key \"abc\""],
        );
        refused(json!({"by_id": {"2147483648": "x"}}), &["\"by_id\""]);
        refused(
            json!({"flags": {"yes": "x"}}),
            &["\"flags\"", "true or false"],
        );
        refused(
            json!({"inners": {"-1": {}}}),
            &["\"inners\"", "non-negative"],
        );
        // Each key kind has its own range, checked before decoding.
        refused(
            json!({"big": {"9223372036854775808": 1}}),
            &["\"big\"", "an integer of the key's type"],
        );
        refused(json!({"big": {"x": 1}}), &["\"big\"", "key \"x\""]);
        ok(json!({"by_u32": {"0": "a", "4294967295": "b"}}));
        refused(
            json!({"by_u32": {"4294967296": "a"}}),
            &["\"by_u32\"", "non-negative integer of the key's type"],
        );
        refused(
            json!({"by_u32": {"-1": "a"}}),
            &["\"by_u32\"", "non-negative integer of the key's type"],
        );
        refused(
            json!({"inners": {"1": {"bogus": 1}}}),
            &[
                "unknown argument",
                "inners[\\\"1\\\"].bogus",
                "expected one of: name, n",
            ],
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        refused(
            json!({"inner": {"name": "a", "nmae": "b"}}),
            &[
                "unknown argument \"inner.nmae\"",
                "expected one of: name, n",
            ],
        );
        refused(
            json!({"inner_list": [{"name": "a"}, {"bogus": 1}]}),
            &["unknown argument \"inner_list[1].bogus\""],
        );
        refused(json!({"bogus": 1}), &["unknown argument \"bogus\""]);
        refused(
            json!({"inner": 5}),
            &["field \"inner\": expected an object, got 5"],
        );
        let m = ok(json!({"innerList": [{"name": "camel"}]}));
        assert!(matches!(field(&m, "inner_list"), Value::List(l) if l.len() == 1));
    }

    /// `arguments` for `t.All` made canonical.
    fn canonical(arguments: Json) -> Json {
        let Json::Object(mut map) = arguments.clone() else {
            panic!("arguments must be an object")
        };
        canonicalize_arguments(&message("t.All"), &mut map)
            .unwrap_or_else(|e| panic!("{arguments} was refused: {e}"));
        Json::Object(map)
    }

    #[test]
    fn arguments_are_made_canonical_before_anything_reads_them() {
        // What a policy reading `args` sees is what the connector receives:
        // one spelling of each field, enum, number and well-known value.
        assert_eq!(
            canonical(json!({
                "userId": "7", "i32": 3.0, "u64": "18446744073709551615", "d": "1.5",
                "color": 2, "colors": ["red", 1, "COLOR_DARK_BLUE"],
                "by": "-_8", "ts": "2024-05-01T14:00:00+02:00", "du": "90s",
                "w_i64": "12", "w_d": "2.5", "s": null, "inner": {"n": "4", "name": "a"},
                "byId": {"+7": "a", "-0": "b"}, "big": {"007": 1},
                "v": null, "st": {"k": "7", "n": null}, "fm": "innerList,i32",
            })),
            json!({
                "user_id": 7, "i32": 3, "u64": 18446744073709551615u64, "d": 1.5,
                "color": "COLOR_DARK_BLUE", "colors": ["COLOR_RED", "COLOR_RED", "COLOR_DARK_BLUE"],
                "by": "+/8=", "ts": "2024-05-01T12:00:00Z", "du": "90s",
                "w_i64": 12, "w_d": 2.5, "inner": {"n": 4, "name": "a"},
                "by_id": {"7": "a", "0": "b"}, "big": {"7": 1},
                "v": null, "st": {"k": "7", "n": null}, "fm": "innerList,i32",
            })
        );
        // Already canonical: unchanged.
        let again =
            canonical(json!({"user_id": 7, "color": "COLOR_RED", "w_d": "NaN", "d": "-Infinity"}));
        assert_eq!(
            again,
            json!({"user_id": 7, "color": "COLOR_RED", "w_d": "NaN", "d": "-Infinity"})
        );
    }

    #[test]
    fn two_map_keys_that_are_one_number_are_refused() {
        refused(
            json!({"by_id": {"7": "a", "007": "b"}}),
            &["keys \"007\" and \"7\" are the same key"],
        );
        refused(json!({"big": {"+1": 1, "01": 2}}), &["are the same key"]);
    }

    #[test]
    fn a_field_given_by_both_its_names_is_refused() {
        refused(
            json!({"inner_list": [], "innerList": []}),
            &["\"inner_list\" is given twice"],
        );
    }

    #[test]
    fn wrappers_are_checked_like_the_value_they_wrap_and_null_unsets_them() {
        let m = ok(
            json!({"w_i32": null, "w_i64": "12", "w_u64": 5, "w_b": false, "w_s": "",
                          "w_by": "aGk=", "w_d": "Infinity", "w_f": 1.5, "w_u32": 0}),
        );
        assert!(!m.has_field_by_name("w_i32"));
        let w_i64 = field(&m, "w_i64");
        assert_eq!(
            w_i64
                .as_message()
                .and_then(|w| w.get_field_by_name("value"))
                .map(|v| v.into_owned()),
            Some(Value::I64(12))
        );
        refused(
            json!({"w_i32": "x"}),
            &["\"w_i32\"", "-2147483648 to 2147483647"],
        );
        refused(json!({"w_i32": 2147483648i64}), &["\"w_i32\""]);
        refused(json!({"w_u32": -1}), &["\"w_u32\"", "0 to 4294967295"]);
        refused(json!({"w_i64": 1e20}), &["\"w_i64\""]);
        refused(json!({"w_u64": -1}), &["\"w_u64\""]);
        refused(json!({"w_b": "false"}), &["\"w_b\"", "true or false"]);
        refused(json!({"w_s": 1}), &["\"w_s\"", "a string"]);
        refused(json!({"w_by": "%%%"}), &["\"w_by\"", "base64"]);
        refused(json!({"w_d": "x"}), &["\"w_d\"", "a number"]);
        refused(json!({"w_f": 1e39}), &["\"w_f\"", "32-bit float"]);
        refused(json!({"w_d": {"value": 1}}), &["\"w_d\""]);
    }

    #[test]
    fn timestamps_durations_and_other_well_known_types_are_checked() {
        let m = ok(
            json!({"ts": "2024-05-01T12:00:00Z", "du": "1.5s", "fm": "a,b.c",
                          "em": {}, "any": {"@type": "type.googleapis.com/t.Inner", "name": "x"}}),
        );
        assert!(m.has_field_by_name("ts") && m.has_field_by_name("du"));
        refused(json!({"ts": "yesterday"}), &["\"ts\"", "RFC 3339"]);
        refused(json!({"ts": 1714564800}), &["\"ts\""]);
        refused(json!({"du": "90"}), &["\"du\"", "1.5s"]);
        refused(json!({"fm": ["a"]}), &["\"fm\"", "comma-separated"]);
        refused(json!({"em": 5}), &["\"em\"", "an object"]);
        refused(json!({"any": {"name": "x"}}), &["\"any\"", "@type"]);
    }

    #[test]
    fn a_method_whose_request_is_a_struct_takes_any_object() {
        let desc = message("google.protobuf.Struct");
        let Json::Object(arguments) = json!({"anything": [1, {"x": null}], "n": "two"}) else {
            unreachable!()
        };
        let decoded = decode_arguments(&desc, Some(arguments.clone())).expect("free-form");
        assert_eq!(encode_result(&decoded), Json::Object(arguments));
    }

    #[test]
    fn free_form_struct_value_and_list_value_take_any_json_of_their_shape() {
        let m = ok(
            json!({"st": {"a": [1, {"b": null}], "c": "d"}, "v": [true, {"x": 1.5}],
                          "lv": [1, "two", null, {"three": [3]}]}),
        );
        let back = encode_result(&m);
        assert_eq!(back["st"], json!({"a": [1, {"b": null}], "c": "d"}));
        assert_eq!(back["v"], json!([true, {"x": 1.5}]));
        assert_eq!(back["lv"], json!([1, "two", null, {"three": [3]}]));
        refused(json!({"st": [1]}), &["\"st\"", "an object"]);
        refused(json!({"lv": {}}), &["\"lv\"", "an array"]);
        assert!(ok(json!({"v": "anything"})).has_field_by_name("v"));
    }

    /// `{"st": {"k": {"k": ... }}}` with `levels` objects in total.
    fn nested_struct(levels: usize) -> Json {
        let mut value = json!({});
        for _ in 2..levels {
            value = json!({ "k": value });
        }
        json!({ "st": value })
    }

    #[test]
    fn arguments_nested_past_max_argument_depth_are_refused_naming_it() {
        assert_eq!(
            nesting_depth(&nested_struct(MAX_ARGUMENT_DEPTH), usize::MAX),
            MAX_ARGUMENT_DEPTH
        );
        if let Err(e) = decode("t.All", nested_struct(MAX_ARGUMENT_DEPTH)) {
            panic!("{MAX_ARGUMENT_DEPTH} levels were refused: {e}");
        }
        let error = decode("t.All", nested_struct(MAX_ARGUMENT_DEPTH + 1)).unwrap_err();
        assert!(error.contains("max_argument_depth"), "{error}");
        assert!(error.contains("deeper than 32 levels"), "{error}");
        // Arrays count as much as objects.
        let mut list = json!([]);
        for _ in 0..MAX_ARGUMENT_DEPTH {
            list = json!([list]);
        }
        assert!(decode("t.All", json!({ "lv": list })).is_err());
    }

    #[test]
    fn a_very_deep_value_is_measured_without_recursion() {
        // Far past serde_json's parse limit: built in code, as a caller could
        // (not further: serde_json's Value drops recursively).
        let deep = || {
            let mut value = json!(null);
            for _ in 0..500 {
                value = Json::Array(vec![value]);
            }
            value
        };
        assert_eq!(
            nesting_depth(&deep(), 100),
            101,
            "counting stops past the limit"
        );
        assert_eq!(nesting_depth(&deep(), usize::MAX), 500);
        let error = decode("t.All", json!({ "v": deep() })).unwrap_err();
        assert!(error.contains("max_argument_depth"), "{error}");
        assert_eq!(nesting_depth(&json!(1), 10), 0);
        assert_eq!(nesting_depth(&json!({}), 10), 1);
        assert_eq!(nesting_depth(&json!({"a": [1, {"b": []}]}), 10), 4);
    }

    #[test]
    fn oneof_members_exclude_each_other_but_null_is_unset() {
        refused(
            json!({"user": "ann", "user_id": 7}),
            &["exclude each other", "\"user\"", "\"user_id\""],
        );
        let m = ok(json!({"user": "ann", "user_id": null}));
        assert_eq!(field(&m, "user"), Value::String("ann".into()));
        // Proto3 `optional` fields are synthetic oneofs of one: no conflict.
        assert!(decode("t.All", json!({"i32": 1, "u32": 2, "i64": 3})).is_ok());
    }

    #[test]
    fn required_fields_must_be_present_and_not_null() {
        let missing = decode("t.Required", json!({"count": 1})).unwrap_err();
        assert_eq!(missing, "missing required argument \"name\"");
        let null = decode("t.Required", json!({"name": null, "count": 1})).unwrap_err();
        assert_eq!(null, "missing required argument \"name\"");
        assert!(decode("t.Required", json!({"name": "x", "count": 0})).is_ok());
        assert!(decode("t.Required", json!({"name": "x", "count": 0, "note": null})).is_ok());
        let none = decode_arguments(&message("t.Required"), None).unwrap_err();
        assert!(none.0.starts_with("missing required argument"), "{none}");
        let nested = decode("t.All", json!({"inner": {"name": 3}})).unwrap_err();
        assert!(nested.contains("\"inner.name\""), "{nested}");
    }

    #[test]
    fn values_are_described_briefly_in_errors() {
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!("x".repeat(41))), "a string (41 characters)");
        assert_eq!(
            describe(&json!("x".repeat(40))),
            format!("{:?}", "x".repeat(40))
        );
        assert_eq!(describe(&json!({})), "an object");
        assert_eq!(at("", "a"), "a");
        assert_eq!(at("a", "b"), "a.b");
    }

    /// Answers every call with its request.
    struct Echo;

    impl tonic::server::UnaryService<DynamicMessage> for Echo {
        type Response = DynamicMessage;
        type Future = std::future::Ready<Result<tonic::Response<DynamicMessage>, Status>>;

        fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
            std::future::ready(Ok(tonic::Response::new(request.into_inner())))
        }
    }

    /// The body of one gRPC message: no compression flag, length, bytes.
    fn frame(message: &DynamicMessage) -> Vec<u8> {
        let bytes = message.encode_to_vec();
        let mut framed = vec![0u8];
        framed.extend(u32::try_from(bytes.len()).expect("small").to_be_bytes());
        framed.extend(bytes);
        framed
    }

    #[tokio::test]
    async fn the_codec_reads_and_writes_messages_known_only_at_run_time() {
        let desc = message("t.All");
        let sent = ok(json!({"i32": -7, "s": "héllo", "ints": [1, 2], "inner": {"name": "n"}}));
        let request = http::Request::builder()
            .header("content-type", "application/grpc")
            .body(axum::body::Body::from(frame(&sent)))
            .expect("request");
        let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(desc.clone()));
        let response = grpc.unary(Echo, request).await;
        assert_eq!(response.status(), http::StatusCode::OK);
        assert!(
            response.headers().get("grpc-status").is_none(),
            "no early error: {:?}",
            response.headers()
        );
        let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20)
            .await
            .expect("body");
        assert_eq!(body.as_ref(), frame(&sent).as_slice());
        let back = DynamicMessage::decode(desc, &body[5..]).expect("decodes");
        assert_eq!(encode_result(&back), encode_result(&sent));
    }

    #[tokio::test]
    async fn an_undecodable_response_is_an_internal_error_saying_so() {
        let request = http::Request::builder()
            .header("content-type", "application/grpc")
            // Field 1 (int32) as a length-delimited run that ends early.
            .body(axum::body::Body::from(vec![0u8, 0, 0, 0, 2, 0x0a, 0x05]))
            .expect("request");
        let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(message("t.All")));
        let response = grpc.unary(Echo, request).await;
        let status = Status::from_header_map(response.headers()).expect("an error status");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status
                .message()
                .contains("connector sent an undecodable response"),
            "{}",
            status.message()
        );
    }
}

/// Properties over generated input: any JSON against every connector's request
/// messages never panics, and what is accepted comes back the same through
/// proto and JSON again. `PROPTEST_CASES` raises the number of cases (512 by
/// default).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;
    use prost_reflect::DescriptorPool;

    /// The request message of every method of every Switchboard service, and
    /// the unit tests' message with every kind of field.
    fn request_messages() -> Vec<MessageDescriptor> {
        let pool = DescriptorPool::decode(switchboard_proto::FILE_DESCRIPTOR_SET)
            .expect("switchboard-proto's descriptor set decodes");
        let mut messages: Vec<MessageDescriptor> = pool
            .services()
            .flat_map(|s| s.methods().map(|m| m.input()).collect::<Vec<_>>())
            .collect();
        messages.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        messages.dedup_by(|a, b| a.full_name() == b.full_name());
        assert!(messages.len() > 10, "the connectors' request messages");
        messages.push(super::tests::all_message());
        messages
    }

    /// Every field name (proto and JSON) in `messages` and below, so that
    /// arbitrary objects often hit real fields.
    fn field_names(messages: &[MessageDescriptor]) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<MessageDescriptor> = messages.to_vec();
        while let Some(m) = stack.pop() {
            if !seen.insert(m.full_name().to_owned()) {
                continue;
            }
            for f in m.fields() {
                names.insert(f.name().to_owned());
                names.insert(f.json_name().to_owned());
                if let Kind::Message(inner) = f.kind() {
                    stack.push(inner);
                }
            }
        }
        names.into_iter().collect()
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(512),
            ..ProptestConfig::default()
        }
    }

    fn arbitrary_json(names: Vec<String>) -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(Json::from),
            "-?[0-9]{1,22}(\\.[0-9]{1,3})?(e[0-9]{1,3})?".prop_map(Json::from),
            prop_oneof![
                Just("NaN"),
                Just("Infinity"),
                Just("true"),
                Just("aGk="),
                Just("2024-05-01T12:00:00Z"),
                Just("1.5s"),
                Just("red")
            ]
            .prop_map(Json::from),
            "\\PC{0,12}".prop_map(Json::from),
        ];
        let keys = prop_oneof![select(names), "[a-zA-Z_0-9@-]{0,10}"];
        leaf.prop_recursive(8, 128, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                proptest::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Free-form JSON for Struct and Value: finite numbers, short strings.
    fn free_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            (-1.0e9f64..1.0e9).prop_map(Json::from),
            "\\PC{0,8}".prop_map(Json::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                proptest::collection::btree_map("\\PC{0,6}", inner, 0..4)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    fn integer<T: Arbitrary + ToString + Into<Json> + 'static>() -> BoxedStrategy<Json> {
        prop_oneof![
            any::<T>().prop_map(Into::into),
            any::<T>().prop_map(|n| Json::String(n.to_string())),
        ]
        .boxed()
    }

    /// Valid JSON for a value of `kind`, as the proto3 JSON mapping writes it.
    fn valid_value(kind: &Kind, depth: u32) -> BoxedStrategy<Json> {
        match kind {
            Kind::Double => prop_oneof![
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Json::from),
                Just(Json::from("NaN")),
                Just(Json::from("-Infinity")),
            ]
            .boxed(),
            Kind::Float => any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| Json::from(f64::from(f)))
                .boxed(),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => integer::<i32>(),
            Kind::Uint32 | Kind::Fixed32 => integer::<u32>(),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => integer::<i64>(),
            Kind::Uint64 | Kind::Fixed64 => integer::<u64>(),
            Kind::Bool => any::<bool>().prop_map(Json::from).boxed(),
            Kind::String => "\\PC{0,16}".prop_map(Json::from).boxed(),
            Kind::Bytes => proptest::collection::vec(any::<u8>(), 0..16)
                .prop_map(|b| Json::from(base64::engine::general_purpose::STANDARD.encode(b)))
                .boxed(),
            Kind::Enum(e) => {
                let values: Vec<Json> = e
                    .values()
                    .flat_map(|v| [Json::from(v.name()), Json::from(v.number())])
                    .collect();
                select(values).boxed()
            }
            Kind::Message(m) => valid_message(m, depth),
        }
    }

    fn valid_message(message: &MessageDescriptor, depth: u32) -> BoxedStrategy<Json> {
        match message.full_name() {
            "google.protobuf.Timestamp" => {
                return (0i64..253_402_300_799, 0i32..1_000_000_000)
                    .prop_map(|(seconds, nanos)| {
                        Json::from(prost_types::Timestamp { seconds, nanos }.to_string())
                    })
                    .boxed();
            }
            "google.protobuf.Duration" => {
                return (-315_576_000_000i64..315_576_000_000, 0i32..1_000_000_000)
                    .prop_map(|(seconds, nanos)| {
                        let nanos = if seconds < 0 { -nanos } else { nanos };
                        Json::from(prost_types::Duration { seconds, nanos }.to_string())
                    })
                    .boxed();
            }
            "google.protobuf.Struct" => {
                return proptest::collection::btree_map("\\PC{0,6}", free_json(), 0..4)
                    .prop_map(|m| Json::Object(m.into_iter().collect()))
                    .boxed();
            }
            "google.protobuf.Value" => return free_json().boxed(),
            "google.protobuf.ListValue" => {
                return proptest::collection::vec(free_json(), 0..4)
                    .prop_map(Json::Array)
                    .boxed();
            }
            "google.protobuf.Empty" => return Just(serde_json::json!({})).boxed(),
            "google.protobuf.FieldMask" => return Just(Json::from("a,b.c")).boxed(),
            name if name.starts_with("google.protobuf.") && name.ends_with("Value") => {
                let inner = message
                    .get_field_by_name("value")
                    .expect("a wrapper has value");
                // Not NaN or infinite: prost-reflect writes a wrapped double as a
                // bare f64, which serde_json's Value can only hold as null.
                let value = match inner.kind() {
                    Kind::Double => (-1.0e300f64..1.0e300).prop_map(Json::from).boxed(),
                    kind => valid_value(&kind, 0),
                };
                return prop_oneof![Just(Json::Null), value].boxed();
            }
            _ => {}
        }
        let mut fields: Vec<BoxedStrategy<Option<(String, Json)>>> = Vec::new();
        for field in message.fields() {
            if matches!(field.kind(), Kind::Message(ref m) if m.full_name() == "google.protobuf.Any")
            {
                continue;
            }
            let nested = matches!(field.kind(), Kind::Message(_)) && !field.is_map();
            if depth == 0 && (nested || field.is_list()) && !is_required(&field) {
                continue;
            }
            let name = field.name().to_owned();
            let value = if field.is_map() {
                let Kind::Message(entry) = field.kind() else {
                    continue;
                };
                let key = match entry.map_entry_key_field().kind() {
                    Kind::Bool => any::<bool>().prop_map(|b| b.to_string()).boxed(),
                    Kind::String => "\\PC{0,6}".boxed(),
                    Kind::Uint32 | Kind::Fixed32 => {
                        any::<u32>().prop_map(|n| n.to_string()).boxed()
                    }
                    Kind::Uint64 | Kind::Fixed64 => {
                        any::<u64>().prop_map(|n| n.to_string()).boxed()
                    }
                    Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                        any::<i32>().prop_map(|n| n.to_string()).boxed()
                    }
                    _ => any::<i64>().prop_map(|n| n.to_string()).boxed(),
                };
                let value = valid_value(
                    &entry.map_entry_value_field().kind(),
                    depth.saturating_sub(1),
                );
                proptest::collection::btree_map(key, value, 0..3)
                    .prop_map(|m| Json::Object(m.into_iter().collect()))
                    .boxed()
            } else if field.is_list() {
                proptest::collection::vec(valid_value(&field.kind(), depth.saturating_sub(1)), 0..3)
                    .prop_map(Json::Array)
                    .boxed()
            } else {
                valid_value(&field.kind(), depth.saturating_sub(1))
            };
            let entry = value.prop_map(move |v| Some((name.clone(), v)));
            fields.push(if is_required(&field) {
                entry.boxed()
            } else {
                prop_oneof![1 => Just(None), 2 => entry].boxed()
            });
        }
        let message = message.clone();
        fields
            .prop_map(move |fields| {
                let mut map = Map::new();
                let mut oneofs = Vec::new();
                for (name, value) in fields.into_iter().flatten() {
                    // At most one member of each (real) oneof.
                    if let Some(oneof) = message
                        .get_field_by_name(&name)
                        .and_then(|f| f.containing_oneof())
                        .filter(|o| !o.is_synthetic())
                    {
                        if oneofs.contains(&oneof.name().to_owned()) {
                            continue;
                        }
                        oneofs.push(oneof.name().to_owned());
                    }
                    map.insert(name, value);
                }
                Json::Object(map)
            })
            .boxed()
    }

    /// The result JSON of what `arguments` decode to, if they do.
    fn through_proto(message: &MessageDescriptor, arguments: Json) -> Result<Json, ArgumentError> {
        let Json::Object(map) = arguments else {
            return decode_arguments(message, None).map(|m| encode_result(&m));
        };
        decode_arguments(message, Some(map)).map(|m| encode_result(&m))
    }

    /// Whether every value given in `given` is in `result` as the same value: a
    /// field with every value of its own, numbers as the same number (or the
    /// same 32-bit float, which is all a `float` field keeps).
    fn covered(result: &Json, given: &Json) -> bool {
        match (result, given) {
            (Json::Object(r), Json::Object(g)) => g
                .iter()
                .all(|(k, v)| r.get(k).is_some_and(|rv| covered(rv, v))),
            (Json::Array(r), Json::Array(g)) => {
                r.len() == g.len() && r.iter().zip(g).all(|(a, b)| covered(a, b))
            }
            (Json::Number(r), Json::Number(g)) => {
                let (r, g) = (r.as_f64(), g.as_f64());
                r == g || r.map(|f| f as f32) == g.map(|f| f as f32)
            }
            _ => result == given,
        }
    }

    /// Canonical arguments mean what the given ones meant (where prost-reflect
    /// reads the given ones itself), are their own canonical form, and hold
    /// exactly the values the connector receives: each is in the router's JSON
    /// of the decoded message.
    fn assert_canonical(
        message: &MessageDescriptor,
        arguments: &Json,
    ) -> Result<(), TestCaseError> {
        let Json::Object(given) = arguments else {
            return Ok(());
        };
        let mut canonical = given.clone();
        if canonicalize_arguments(message, &mut canonical).is_err() {
            return Ok(());
        }
        let decoded = message_from(message, canonical.clone()).map_err(|e| {
            TestCaseError::fail(format!(
                "{}: canonical arguments {} of {arguments} do not decode: {e}",
                message.full_name(),
                Json::Object(canonical.clone())
            ))
        })?;
        let result = encode_result(&decoded);
        // Compared as the router's JSON of each (NaN is not equal to itself).
        if let Ok(as_given) = message_from(message, given.clone()) {
            prop_assert_eq!(
                &encode_result(&as_given),
                &result,
                "{}: {} means something else than {}",
                message.full_name(),
                Json::Object(canonical.clone()),
                arguments
            );
        }
        let mut again = canonical.clone();
        prop_assert!(canonicalize_arguments(message, &mut again).is_ok());
        prop_assert_eq!(&again, &canonical, "not a fixpoint");
        prop_assert!(
            covered(&result, &Json::Object(canonical.clone())),
            "{}: canonical {} is not what the connector receives, {}",
            message.full_name(),
            Json::Object(canonical),
            result
        );
        Ok(())
    }

    /// A result decodes back to itself: JSON → proto → JSON is a fixpoint once
    /// the JSON is the router's own (all fields, proto names, numbers).
    fn assert_round_trip(message: &MessageDescriptor, first: &Json) -> Result<(), TestCaseError> {
        let second = through_proto(message, first.clone()).map_err(|e| {
            TestCaseError::fail(format!(
                "{}: the router's own JSON {first} was refused: {e}",
                message.full_name()
            ))
        })?;
        prop_assert_eq!(&second, first, "{} did not round-trip", message.full_name());
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_json_never_panics_and_what_is_accepted_round_trips(
            (message, arguments) in {
                let messages = request_messages();
                let names = field_names(&messages);
                (select(messages), arbitrary_json(names))
            }
        ) {
            let wrapped = match arguments {
                Json::Object(map) => Json::Object(map),
                other => serde_json::json!({ "value": other }),
            };
            // A NaN or infinity in a DoubleValue or FloatValue comes back as
            // null (prost-reflect writes a wrapped float as a bare f64, which
            // serde_json's Value holds as null): no round trip for those.
            let non_finite = wrapped.to_string().contains("NaN")
                || wrapped.to_string().contains("Infinity");
            if let Ok(first) = through_proto(&message, wrapped)
                && !non_finite
            {
                assert_round_trip(&message, &first)?;
            }
        }

        #[test]
        fn canonical_arguments_are_what_the_connector_receives(
            (message, arguments) in {
                let messages = request_messages();
                let names = field_names(&messages);
                (select(messages), arbitrary_json(names))
            }
        ) {
            assert_canonical(&message, &arguments)?;
        }

        #[test]
        fn canonical_valid_arguments_are_what_the_connector_receives(
            (message, arguments) in select(request_messages())
                .prop_flat_map(|m| (Just(m.clone()), valid_message(&m, 3)))
        ) {
            assert_canonical(&message, &arguments)?;
        }

        #[test]
        fn generated_valid_arguments_are_accepted_and_round_trip(
            (message, arguments) in select(request_messages())
                .prop_flat_map(|m| (Just(m.clone()), valid_message(&m, 3)))
        ) {
            let first = through_proto(&message, arguments.clone()).map_err(|e| {
                TestCaseError::fail(format!(
                    "{}: valid arguments {arguments} were refused: {e}",
                    message.full_name()
                ))
            })?;
            assert_round_trip(&message, &first)?;
        }
    }
}
