//! Wire types shared by the server and the browser. Serde only, no I/O.
//!
//! - [`events`]: the card's `SyncEvent` (plus `seq` and `organizationId`).
//! - [`frames`]: everything else the server sends (control frames) and the client's commands.
//! - [`close_codes`]: WebSocket close codes and what a client does with each.
//! - [`health`]: the `GET /health` report.
//! - [`timestamp`], [`text`]: timestamps on the wire, and the serde glue of string-form values.

pub mod auth;
pub mod close_codes;
pub mod events;
pub mod frames;
pub mod health;
pub mod text;
pub mod timestamp;
pub mod validate;

/// Strategies for the property tests of every parser of client input.
#[cfg(test)]
pub(crate) mod arbitrary {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// Text as clients send it: empty, short, long, any Unicode, or near a length limit.
    pub fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "\\PC{0,24}",
            "[a-z0-9-]{1,140}",
            (0usize..20_000).prop_map(|n| "x".repeat(n)),
        ]
    }

    /// Any JSON value, nested a few levels.
    pub fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A JSON object whose keys are mostly `known` ones, with any values.
    pub fn object_with(
        known: &'static [&'static str],
    ) -> impl Strategy<Value = Map<String, Value>> {
        let key = prop_oneof![
            4 => prop::sample::select(known).prop_map(str::to_owned),
            1 => "\\PC{0,12}",
        ];
        prop::collection::btree_map(key, json(), 0..8).prop_map(|m| m.into_iter().collect())
    }
}
