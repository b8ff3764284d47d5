//! Arbitrary JSON for property tests: every kind of value, strings full of
//! what JSON text must escape or quote, objects with keys from `keys`.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels, objects keyed by `keys`.
pub(crate) fn any_json<K>(keys: K) -> impl Strategy<Value = Value>
where
    K: Strategy<Value = String> + Clone + 'static,
{
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        // Quotes, escapes, brackets, colons, commas and any character.
        r#"(["\\{}\[\]:,]|.){0,12}"#.prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((keys.clone(), inner), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
