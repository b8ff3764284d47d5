//! JSON values in and out: tool parameters to bind, result values to return.
//!
//! Results travel as `google.protobuf.Value`, whose numbers are doubles, so an
//! integer beyond ±2^53 is sent as a decimal string rather than silently
//! rounded; exact decimals are strings too. Timestamps are ISO 8601, binary
//! data base64.

use base64::Engine as _;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// The largest integer a double holds exactly.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// SQL NULL.
pub fn null() -> Value {
    Value {
        kind: Some(Kind::NullValue(0)),
    }
}

/// A boolean.
pub fn boolean(b: bool) -> Value {
    Value {
        kind: Some(Kind::BoolValue(b)),
    }
}

/// A string.
pub fn string(s: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// An integer: a number when a double holds it exactly, else its decimal string.
pub fn int(i: i64) -> Value {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) {
        Value {
            kind: Some(Kind::NumberValue(i as f64)),
        }
    } else {
        string(i.to_string())
    }
}

/// An unsigned integer, as [`int`].
pub fn uint(u: u64) -> Value {
    match i64::try_from(u) {
        Ok(i) => int(i),
        Err(_) => string(u.to_string()),
    }
}

/// A floating-point number; NaN and infinities become the strings `NaN`,
/// `Infinity` and `-Infinity` (JSON has no numbers for them).
pub fn float(f: f64) -> Value {
    if f.is_finite() {
        Value {
            kind: Some(Kind::NumberValue(f)),
        }
    } else if f.is_nan() {
        string("NaN")
    } else if f > 0.0 {
        string("Infinity")
    } else {
        string("-Infinity")
    }
}

/// Binary data as base64 (standard alphabet, padded).
pub fn bytes(b: &[u8]) -> Value {
    string(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A list.
pub fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue { values })),
    }
}

/// Any JSON value, as the equivalent protobuf value.
pub fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => null(),
        serde_json::Value::Bool(b) => boolean(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => int(i),
            (None, Some(u)) => uint(u),
            _ => float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => string(s.clone()),
        serde_json::Value::Array(items) => list(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value {
            kind: Some(Kind::StructValue(Struct {
                fields: map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect(),
            })),
        },
    }
}

/// A protobuf value as JSON (for binding parameters and for cache keys).
pub fn to_json(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            // Whole numbers travel as doubles; bind them as integers.
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER as f64 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(to_json).collect())
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

/// Approximate size of a value as JSON text, for the result size cap.
pub fn json_size(value: &Value) -> usize {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => 4,
        Some(Kind::BoolValue(_)) => 5,
        Some(Kind::NumberValue(_)) => 12,
        Some(Kind::StringValue(s)) => s.len() + 2,
        Some(Kind::ListValue(l)) => 2 + l.values.iter().map(|v| json_size(v) + 1).sum::<usize>(),
        Some(Kind::StructValue(s)) => {
            2 + s
                .fields
                .iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
        }
    }
}

/// ISO 8601 for a duration given as months, days and microseconds (PostgreSQL INTERVAL).
pub fn iso_interval(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::from("P");
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        out.push_str(&format!("{years}Y"));
    }
    if months != 0 {
        out.push_str(&format!("{months}M"));
    }
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    if micros != 0 {
        let sign = if micros < 0 { "-" } else { "" };
        let micros = micros.unsigned_abs();
        let (hours, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
        let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (seconds, fraction) = (rest / 1_000_000, rest % 1_000_000);
        out.push('T');
        if hours != 0 {
            out.push_str(&format!("{sign}{hours}H"));
        }
        if minutes != 0 {
            out.push_str(&format!("{sign}{minutes}M"));
        }
        if seconds != 0 || fraction != 0 {
            if fraction == 0 {
                out.push_str(&format!("{sign}{seconds}S"));
            } else {
                let frac = format!("{fraction:06}");
                out.push_str(&format!("{sign}{seconds}.{}S", frac.trim_end_matches('0')));
            }
        }
    }
    if out == "P" {
        out.push_str("T0S");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_double_precision_become_strings() {
        assert_eq!(
            int(42),
            Value {
                kind: Some(Kind::NumberValue(42.0))
            }
        );
        assert_eq!(int(i64::MAX), string("9223372036854775807"));
        assert_eq!(uint(u64::MAX), string("18446744073709551615"));
    }

    #[test]
    fn non_finite_floats_become_named_strings() {
        assert_eq!(float(f64::NAN), string("NaN"));
        assert_eq!(float(f64::NEG_INFINITY), string("-Infinity"));
    }

    #[test]
    fn json_round_trips_and_whole_numbers_bind_as_integers() {
        let json = serde_json::json!({"a": [1, 2.5, "x", null, true]});
        assert_eq!(to_json(&from_json(&json)), json);
        assert!(to_json(&float(7.0)).is_i64());
    }

    #[test]
    fn intervals_are_iso_8601_durations() {
        assert_eq!(iso_interval(14, 3, 3_723_500_000), "P1Y2M3DT1H2M3.5S");
        assert_eq!(iso_interval(0, 0, 0), "PT0S");
        assert_eq!(iso_interval(0, -1, 0), "P-1D");
    }
}
