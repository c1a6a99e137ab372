//! Free-form JSON fields (a template plugin's `config`, `rewrite.merge`, `secretsManager`),
//! read with a depth limit.
//!
//! The apiserver keeps such fields as given (`x-kubernetes-preserve-unknown-fields`), nested
//! as deep as its own JSON decoder allows (10 000 levels). serde_json refuses documents nested
//! deeper than 128 levels, and an object the watch cannot decode fails the whole list: one
//! ExternalSecret with a 200-level `config` would stop the controller from seeing any
//! ExternalSecret at all. These fields are therefore read down to [`MAX_DEPTH`] levels; what
//! lies deeper is skipped without recursion (serde_json skips values iteratively) and
//! replaced by [`TOO_DEEP`], which [`super::validate::external_secret`] reports on the
//! object's status.

use std::fmt;

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How deep a free-form field is read (no plugin config or merge needs more).
pub const MAX_DEPTH: usize = 32;

/// What stands in for a value nested deeper than [`MAX_DEPTH`]: a string no manifest has
/// reason to hold.
pub const TOO_DEEP: &str = "\u{0}esox: nested deeper than the limit";

/// For `#[serde(default, deserialize_with = "…")]` on an `Option<Value>` field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            Bounded { depth: 0 }.deserialize(d).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

/// Whether `v` holds a part that was too deep to read.
pub fn too_deep(v: &Value) -> bool {
    // Iterative: the value is at most MAX_DEPTH deep, but this is cheap to make certain.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s == TOO_DEEP => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    false
}

/// A JSON value read at `depth` levels below the field.
struct Bounded {
    depth: usize,
}

/// Reads one free-form value depth-bounded, as a `DeserializeSeed` (for a map whose values
/// are free-form, read by hand).
pub struct Seed;

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Bounded { depth: 0 }.deserialize(d)
    }
}

impl<'de> DeserializeSeed<'de> for Bounded {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        // The field itself is depth 0: MAX_DEPTH levels of arrays and objects, and the
        // scalars inside the deepest, are read.
        if self.depth > MAX_DEPTH {
            IgnoredAny::deserialize(d)?;
            return Ok(Value::String(TOO_DEEP.into()));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Bounded { depth: self.depth }.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Bounded {
            depth: self.depth + 1,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(Bounded {
                depth: self.depth + 1,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ExternalSecret;

    fn nested(levels: usize) -> String {
        format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels))
    }

    fn es_with_merge(merge: &str) -> String {
        format!(
            r#"{{"apiVersion":"external-secrets.io/v1","kind":"ExternalSecret","metadata":{{"name":"x"}},"spec":{{"dataFrom":[{{"extract":{{"key":"k"}},"rewrite":[{{"merge":{merge}}}]}}],"target":{{"template":{{"plugins":[{{"ref":{{"kind":"Builtin","name":"p"}},"config":{merge}}}]}}}}}}}}"#
        )
    }

    /// A list the watch decodes: one ExternalSecret 10 000 levels deep does not make the
    /// whole list unreadable, and it says what is wrong with it.
    #[test]
    fn a_deep_free_form_field_does_not_fail_the_list() {
        // What plain serde_json does with it (and did, before this module).
        let deep = nested(10_000);
        assert!(
            serde_json::from_str::<Value>(&deep)
                .unwrap_err()
                .to_string()
                .starts_with("recursion limit exceeded")
        );
        let list = format!(
            r#"{{"items":[{},{}]}}"#,
            es_with_merge(&deep),
            es_with_merge(r#"{"shallow":[1,2.5,"x",null,true]}"#)
        );
        #[derive(serde::Deserialize)]
        struct List {
            items: Vec<ExternalSecret>,
        }
        let list: List = serde_json::from_str(&list).unwrap();
        let deep = &list.items[0].spec;
        assert!(too_deep(
            deep.data_from[0].rewrite[0].merge.as_ref().unwrap()
        ));
        let config = deep.target.template.as_ref().unwrap().plugins[0]
            .config
            .as_ref();
        assert!(too_deep(config.unwrap()));
        let shallow = &list.items[1].spec;
        assert_eq!(
            shallow.data_from[0].rewrite[0].merge,
            Some(serde_json::json!({"shallow": [1, 2.5, "x", null, true]}))
        );
        assert!(!too_deep(
            shallow.data_from[0].rewrite[0].merge.as_ref().unwrap()
        ));
        // Up to the limit a value is kept whole, one level more is not.
        let at = |levels| {
            let es: ExternalSecret = serde_json::from_str(&es_with_merge(&nested(levels))).unwrap();
            too_deep(es.spec.data_from[0].rewrite[0].merge.as_ref().unwrap())
        };
        assert!(!at(MAX_DEPTH));
        assert!(at(MAX_DEPTH + 1));
        // From a Value (tests, the webhook) the same rules apply.
        let v: Value = serde_json::from_str(&es_with_merge(&nested(MAX_DEPTH + 1))).unwrap();
        let es: ExternalSecret = serde_json::from_value(v).unwrap();
        assert!(too_deep(
            es.spec.data_from[0].rewrite[0].merge.as_ref().unwrap()
        ));
        // Absent and null stay absent; the round trip is unchanged.
        let es: ExternalSecret = serde_json::from_str(&es_with_merge("null")).unwrap();
        assert_eq!(es.spec.data_from[0].rewrite[0].merge, None);
        let text = es_with_merge(r#"{"a":{"b":[1,{"c":"d"}]}}"#);
        let es: ExternalSecret = serde_json::from_str(&text).unwrap();
        let back: ExternalSecret =
            serde_json::from_value(serde_json::to_value(&es).unwrap()).unwrap();
        assert_eq!(back.spec, es.spec);
    }
}
