//! JSON values in and out: tool parameters to bind, result values to return.
//!
//! Results travel as `google.protobuf.Value`, whose numbers are doubles, so an
//! integer beyond ±2^53 is sent as a decimal string rather than silently
//! rounded; exact decimals are strings too. Timestamps are ISO 8601, binary
//! data base64.
//!
//! [`ValueCap`] holds each value to `DB_MAX_VALUE_BYTES`: text and binary values
//! are read borrowed from the row and only their first bytes are copied, so a
//! huge value is never duplicated, decoded or returned whole.

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

/// The per-value byte cap of one result, and which columns it cut.
#[derive(Debug)]
pub struct ValueCap {
    max: usize,
    /// Column indexes that had a value cut, with the largest original size.
    cut: std::collections::BTreeMap<usize, usize>,
}

impl ValueCap {
    /// A cap of `max` bytes per value (as JSON text).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            cut: Default::default(),
        }
    }

    /// The cap, in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether a value whose wire form takes `len` bytes fits as it is.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.max
    }

    /// Text of column `column`, cut at a character boundary to fit the cap.
    pub fn text(&mut self, column: usize, text: &str) -> Value {
        if text.len() <= self.max {
            return string(text);
        }
        self.record(column, text.len());
        string(prefix(text, self.max))
    }

    /// Text given as bytes that should be UTF-8: cut to fit, invalid sequences
    /// replaced.
    pub fn text_bytes(&mut self, column: usize, bytes: &[u8]) -> Value {
        let kept = if bytes.len() <= self.max {
            bytes
        } else {
            self.record(column, bytes.len());
            &bytes[..self.max]
        };
        match std::str::from_utf8(kept) {
            Ok(text) => string(text),
            // A cut through a character: drop the partial character.
            Err(e) if e.error_len().is_none() => {
                string(String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned())
            }
            Err(_) => string(String::from_utf8_lossy(kept).into_owned()),
        }
    }

    /// Binary data of column `column` as base64, cut so the base64 fits the cap.
    pub fn bytes(&mut self, column: usize, data: &[u8]) -> Value {
        let room = self.max / 4 * 3;
        if data.len() <= room {
            return bytes(data);
        }
        self.record(column, data.len());
        bytes(&data[..room])
    }

    /// Stands in for a value of column `column` that is over the cap and has no
    /// meaningful prefix (an array, a number): a string saying so.
    pub fn omitted(&mut self, column: usize, len: usize) -> Value {
        self.record(column, len);
        string(format!(
            "(value of {len} bytes omitted: over DB_MAX_VALUE_BYTES, {} bytes)",
            self.max
        ))
    }

    fn record(&mut self, column: usize, len: usize) {
        let largest = self.cut.entry(column).or_default();
        *largest = (*largest).max(len);
    }

    /// What was cut, naming the columns (from `columns`) and the limit, or
    /// `None` when every value fitted.
    pub fn note(&self, columns: &[(String, String)]) -> Option<String> {
        if self.cut.is_empty() {
            return None;
        }
        let named: Vec<String> = self
            .cut
            .iter()
            .map(|(i, len)| {
                let name = columns.get(*i).map(|(n, _)| n.as_str()).unwrap_or("?");
                format!("{name:?} (up to {len} bytes)")
            })
            .collect();
        Some(format!(
            "values longer than DB_MAX_VALUE_BYTES ({} bytes) were cut to that size in column(s) {}; select a part (substring, length) instead",
            self.max,
            named.join(", ")
        ))
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    fn long_text_is_cut_at_a_character_boundary_and_named() {
        let mut cap = ValueCap::new(5);
        assert_eq!(cap.text(0, "abc"), string("abc"));
        assert!(cap.note(&[]).is_none(), "nothing was cut yet");
        // 'é' is two bytes: a cut at byte 5 would split the third one.
        assert_eq!(cap.text(1, "ééééé"), string("éé"));
        assert_eq!(cap.text_bytes(1, "ééééé".as_bytes()), string("éé"));
        let columns = vec![
            ("a".to_owned(), "TEXT".to_owned()),
            ("b".to_owned(), "TEXT".to_owned()),
        ];
        let note = cap.note(&columns).expect("a cut is reported");
        assert!(note.contains("DB_MAX_VALUE_BYTES (5 bytes)"), "{note}");
        assert!(note.contains("\"b\" (up to 10 bytes)"), "{note}");
    }

    #[test]
    fn long_binary_values_keep_base64_within_the_cap() {
        let mut cap = ValueCap::new(8);
        let Some(Kind::StringValue(b64)) = cap.bytes(0, &[7u8; 100]).kind else {
            panic!("bytes are a string");
        };
        assert!(b64.len() <= 8, "{b64}");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .map(|b| b.len()),
            Ok(6)
        );
        assert!(cap.note(&[]).is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        /// Whatever the text and the cap: the kept text is the longest prefix
        /// that fits and ends on a character boundary, and a cut is reported.
        #[test]
        fn cut_text_is_the_longest_fitting_prefix(text in "\\PC{0,200}", max in 0usize..300) {
            let mut cap = ValueCap::new(max);
            let Some(Kind::StringValue(kept)) = cap.text(0, &text).kind else {
                panic!("text is a string");
            };
            proptest::prop_assert!(kept.len() <= max || kept == text);
            proptest::prop_assert!(text.starts_with(&kept));
            if kept.len() < text.len() {
                let next = text[kept.len()..].chars().next().map_or(0, char::len_utf8);
                proptest::prop_assert!(kept.len() + next > max, "a longer prefix fits");
                proptest::prop_assert!(cap.note(&[]).is_some());
            } else {
                proptest::prop_assert!(cap.note(&[]).is_none());
            }
            // The byte path agrees with the text path.
            let mut other = ValueCap::new(max);
            proptest::prop_assert_eq!(other.text_bytes(0, text.as_bytes()), string(kept));
        }

        /// Whatever the data and the cap: the base64 fits and decodes to a prefix.
        #[test]
        fn cut_bytes_keep_base64_within_the_cap(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), max in 4usize..300) {
            let mut cap = ValueCap::new(max);
            let Some(Kind::StringValue(b64)) = cap.bytes(0, &data).kind else {
                panic!("bytes are a string");
            };
            proptest::prop_assert!(b64.len() <= max);
            let decoded = base64::engine::general_purpose::STANDARD.decode(&b64).unwrap_or_default();
            proptest::prop_assert!(data.starts_with(&decoded));
            proptest::prop_assert_eq!(decoded.len() < data.len(), cap.note(&[]).is_some());
        }
    }

    #[test]
    fn intervals_are_iso_8601_durations() {
        assert_eq!(iso_interval(14, 3, 3_723_500_000), "P1Y2M3DT1H2M3.5S");
        assert_eq!(iso_interval(0, 0, 0), "PT0S");
        assert_eq!(iso_interval(0, -1, 0), "P-1D");
    }
}
