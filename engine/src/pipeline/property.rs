//! `property` and `dataFrom.extract` on a fetched secret, by the rule of the ESO provider
//! that reads that kind of secret ([`Fetched`]).
//!
//! - A Kubernetes Secret ([`Fetched::Map`]) is its data: a `property` is a data key, its
//!   bytes verbatim (`tls.crt`, a keystore), else `key.path` inside that key's JSON; `extract`
//!   is the data as it is. Metadata (`metadataPolicy: Fetch`) reads `labels`/`annotations`.
//! - A value ([`Fetched::Value`]) is looked up as JSON with gjson's path syntax as ESO uses
//!   it: dot-separated keys, `\.` escapes, array indexes, `#` (array length), `#.key`
//!   (collect `key` from every array element) and `*`/`?` wildcards in keys. A literal key
//!   containing dots wins over the nested path (`"a.b"` first, then `a` → `b`), so flat
//!   JSON documents with dotted keys (common in Secrets Manager) work without escaping.
//!   When neither finds it and the path's first segment names a string that itself holds
//!   JSON, the rest of the path is looked up inside that string (ESO would report the
//!   property missing; esox finds it).

use serde_json::Value;

use crate::provider::{Fetched, MapOf};
use crate::secret::{SecretBytes, SecretMap};

/// Why a `property` could not be read. Messages name the property and the remote key (both
/// from the manifest), never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyError {
    /// The property is not there; the message is the provider's (ESO's words).
    Missing(String),
    /// The secret is not JSON at all; the parser's reason (a position, no content).
    NotJson(String),
    /// A property of `dataFrom.extract` does not hold a JSON object.
    NotObject(String),
}

/// A key, property or path from a manifest or a provider as an error message repeats it.
fn shown(text: &str) -> String {
    crate::api::abbreviate(text, 256)
}

/// The value of `property` in a fetched secret (`data[].remoteRef.property`), by the rule of
/// the provider that fetched it.
pub fn lookup(fetched: &Fetched, key: &str, property: &str) -> Result<Vec<u8>, PropertyError> {
    match fetched {
        Fetched::Value { bytes, .. } => {
            let doc: Value = serde_json::from_slice(bytes.expose())
                .map_err(|e| PropertyError::NotJson(e.to_string()))?;
            extract(&doc, property).ok_or_else(|| {
                PropertyError::Missing(format!(
                    "key {:?} does not exist in secret {:?}",
                    shown(property),
                    shown(key)
                ))
            })
        }
        Fetched::Map {
            entries,
            of: MapOf::SecretData,
        } => secret_data(entries, property).ok_or_else(|| {
            PropertyError::Missing(format!(
                "property {} does not exist in data of secret {:?}",
                shown(property),
                shown(key)
            ))
        }),
        Fetched::Map {
            entries,
            of: MapOf::SecretMetadata,
        } => secret_metadata(entries, property).ok_or_else(|| {
            PropertyError::Missing(format!(
                "property {} does not exist in metadata of secret {:?}",
                shown(property),
                shown(key)
            ))
        }),
    }
}

/// ESO's Kubernetes `getFromSecretData`: the data key `property` byte for byte (`file.png`,
/// `tls.crt`); else, for `first.rest`, the gjson path `rest` inside the JSON of key `first`.
fn secret_data(data: &SecretMap, property: &str) -> Option<Vec<u8>> {
    if let Some(v) = data.get(property) {
        return Some(v.expose().to_vec());
    }
    let (first, rest) = property.split_once('.')?;
    if first.is_empty() || rest.is_empty() {
        return None;
    }
    let inner: Value = serde_json::from_slice(data.get(first)?.expose()).ok()?;
    lookup_path(&inner, &split_path(rest)).map(|v| value_bytes(&v))
}

/// ESO's Kubernetes `getFromSecretMetadata`: `labels` or `annotations` (the JSON object),
/// `labels.<key>` (the value), and beyond that a gjson path into the value, whose segments
/// ESO joins without their dots (`labels.k.a.b` looks up `ab`); kept, so a manifest reads
/// what it reads in ESO.
fn secret_metadata(meta: &SecretMap, property: &str) -> Option<Vec<u8>> {
    let path: Vec<&str> = property.split('.').collect();
    let raw = match path[0] {
        "labels" | "annotations" => meta.get(path[0])?,
        _ => return None,
    };
    if path.len() == 1 {
        return Some(raw.expose().to_vec());
    }
    let map: Option<std::collections::BTreeMap<String, String>> =
        serde_json::from_slice(raw.expose()).ok()?;
    let value = map?.get(path[1])?.clone();
    if path.len() == 2 {
        return Some(value.into_bytes());
    }
    let inner: Value = serde_json::from_str(&value).ok()?;
    lookup_path(&inner, &split_path(&path[2..].concat())).map(|v| value_bytes(&v))
}

/// The map `dataFrom.extract` reads from a fetched secret, by the rule of the provider that
/// fetched it: a map as it is (a Kubernetes Secret's data, byte for byte); a value as a JSON
/// object, string values unquoted, others as JSON text (with a `property`, the object at
/// that path).
pub fn extract_map(
    fetched: &Fetched,
    key: &str,
    property: Option<&str>,
) -> Result<SecretMap, PropertyError> {
    let not_object = || {
        PropertyError::NotObject(format!(
            "unable to unmarshal secret {:?}: not a JSON object",
            shown(key)
        ))
    };
    match fetched {
        Fetched::Map { entries, .. } => match property {
            None => Ok(entries.clone()),
            Some(prop) => map_property(entries, key, prop),
        },
        Fetched::Value { bytes, .. } => {
            let doc: Value = serde_json::from_slice(bytes.expose()).map_err(|_| not_object())?;
            let doc = match property {
                None => doc,
                Some(prop) => {
                    let found = extract(&doc, prop).ok_or_else(|| {
                        PropertyError::Missing(format!(
                            "key {:?} does not exist in secret {:?}",
                            shown(prop),
                            shown(key)
                        ))
                    })?;
                    serde_json::from_slice(&found).map_err(|_| not_object())?
                }
            };
            let Value::Object(obj) = doc else {
                return Err(not_object());
            };
            Ok(obj
                .iter()
                .map(|(k, v)| (k.clone(), SecretBytes::new(value_bytes(v))))
                .collect())
        }
    }
}

/// ESO's Kubernetes `getPropertyMap`: the data key `property` must hold a JSON object; each
/// of its fields becomes a key whose value is the field re-marshalled as JSON (so strings
/// keep their quotes, as in ESO).
fn map_property(
    entries: &SecretMap,
    key: &str,
    property: &str,
) -> Result<SecretMap, PropertyError> {
    let raw = entries.get(property).ok_or_else(|| {
        PropertyError::Missing(format!(
            "property {} does not exist in key {}",
            shown(property),
            shown(key)
        ))
    })?;
    let invalid =
        || PropertyError::NotObject("failed to unmarshal secret: invalid JSON format".into());
    let Value::Object(obj) = serde_json::from_slice(raw.expose()).map_err(|_| invalid())? else {
        return Err(invalid());
    };
    Ok(obj
        .iter()
        .map(|(k, v)| (k.clone(), SecretBytes::new(go_marshal(v))))
        .collect())
}

/// Go's `json.Marshal` (without HTML escaping, as ESO's `esutils.JSONMarshal`) of a JSON value.
fn go_marshal(v: &Value) -> Vec<u8> {
    let text = serde_json::to_string(v).unwrap_or_default();
    text.replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .into_bytes()
}

/// Looks up `path` in a JSON document. Returns the value as Secret bytes: strings unquoted,
/// everything else as compact JSON (gjson's `Raw`).
pub fn extract(document: &Value, path: &str) -> Option<Vec<u8>> {
    if let Value::Object(map) = document
        && let Some(v) = map.get(path)
    {
        return Some(value_bytes(v));
    }
    lookup_path(document, &split_path(path))
        .map(|v| value_bytes(&v))
        .or_else(|| inside_string(document, path))
}

/// `first.rest` where `first` is a top-level string holding JSON: `rest` inside it.
fn inside_string(document: &Value, path: &str) -> Option<Vec<u8>> {
    let (first, rest) = path.split_once('.')?;
    if first.is_empty() || rest.is_empty() {
        return None;
    }
    let Value::String(text) = document.as_object()?.get(first)? else {
        return None;
    };
    let inner: Value = serde_json::from_str(text).ok()?;
    if !matches!(inner, Value::Object(_) | Value::Array(_)) {
        return None;
    }
    extract(&inner, rest)
}

/// Bytes of a JSON value as ESO stores them: strings raw, other values as JSON text.
pub fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    }
}

fn split_path(path: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn lookup_path(value: &Value, parts: &[String]) -> Option<Value> {
    let Some((head, rest)) = parts.split_first() else {
        return Some(value.clone());
    };
    match value {
        Value::Array(items) => {
            if head == "#" {
                if rest.is_empty() {
                    return Some(Value::from(items.len()));
                }
                let collected: Vec<Value> = items
                    .iter()
                    .filter_map(|item| lookup_path(item, rest))
                    .collect();
                return Some(Value::Array(collected));
            }
            let idx: usize = head.parse().ok()?;
            lookup_path(items.get(idx)?, rest)
        }
        Value::Object(map) => {
            if head.contains(['*', '?']) {
                let (_, v) = map.iter().find(|(k, _)| wildcard_match(head, k))?;
                return lookup_path(v, rest);
            }
            lookup_path(map.get(head)?, rest)
        }
        _ => None,
    }
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(doc: &Value, path: &str) -> Option<String> {
        extract(doc, path).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn nested_and_literal_paths() {
        let doc = json!({"a": {"b": "nested"}, "a.b": "literal", "c": {"d": {"e": 5}}});
        assert_eq!(get(&doc, "a.b").as_deref(), Some("literal"));
        assert_eq!(get(&doc, "c.d.e").as_deref(), Some("5"));
        assert_eq!(get(&doc, "c.d").as_deref(), Some(r#"{"e":5}"#));
        assert_eq!(get(&doc, "missing"), None);
    }

    #[test]
    fn arrays_escapes_and_wildcards() {
        let doc = json!({"list": [{"n": "x"}, {"n": "y"}], "dotted.key": {"v": "1"}, "hello": "w"});
        assert_eq!(get(&doc, "list.1.n").as_deref(), Some("y"));
        assert_eq!(get(&doc, "list.#").as_deref(), Some("2"));
        assert_eq!(get(&doc, "list.#.n").as_deref(), Some(r#"["x","y"]"#));
        assert_eq!(get(&doc, r"dotted\.key.v").as_deref(), Some("1"));
        assert_eq!(get(&doc, "hel*").as_deref(), Some("w"));
        assert_eq!(get(&doc, "h?llo").as_deref(), Some("w"));
    }

    fn secret_data(pairs: &[(&str, &[u8])]) -> Fetched {
        Fetched::Map {
            entries: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), SecretBytes::new(v.to_vec())))
                .collect(),
            of: MapOf::SecretData,
        }
    }

    #[test]
    fn a_kubernetes_property_is_a_data_key_byte_for_byte_then_a_path_inside_it() {
        let binary: &[u8] = &[0x30, 0x82, 0xff, 0x00, 0xfe];
        let s = secret_data(&[
            ("cert.der", binary),
            (
                "config",
                br#"{"db":{"user":"admin","port":5432},"a.b":"dotted"}"#,
            ),
            ("config.db", b"literal wins"),
            ("text", b"not json"),
        ]);
        let get = |p: &str| lookup(&s, "remote", p);
        assert_eq!(get("cert.der").unwrap(), binary);
        assert_eq!(get("config.db").unwrap(), b"literal wins");
        assert_eq!(get("config.db.user").unwrap(), b"admin");
        assert_eq!(get("config.db.port").unwrap(), b"5432");
        assert_eq!(get(r"config.a\.b").unwrap(), b"dotted");
        for missing in [
            "nope",
            "config.nope",
            "text.x",
            ".config",
            "config.",
            "cert",
        ] {
            assert_eq!(
                get(missing),
                Err(PropertyError::Missing(format!(
                    "property {missing} does not exist in data of secret \"remote\""
                ))),
                "{missing}"
            );
        }
    }

    #[test]
    fn kubernetes_metadata_properties_read_as_in_eso() {
        let meta = Fetched::Map {
            entries: [
                ("annotations".to_string(), SecretBytes::from("null")),
                (
                    "labels".to_string(),
                    SecretBytes::from(r#"{"app":"web","conf":"{\"ab\":\"joined\"}"}"#),
                ),
            ]
            .into(),
            of: MapOf::SecretMetadata,
        };
        let get = |p: &str| lookup(&meta, "s", p);
        assert_eq!(get("labels.app").unwrap(), b"web");
        assert_eq!(
            get("labels").unwrap(),
            br#"{"app":"web","conf":"{\"ab\":\"joined\"}"}"#
        );
        assert_eq!(get("annotations").unwrap(), b"null");
        // ESO joins the segments after the label's key without their dots.
        assert_eq!(get("labels.conf.a.b").unwrap(), b"joined");
        assert_eq!(
            get("labels.nope"),
            Err(PropertyError::Missing(
                "property labels.nope does not exist in metadata of secret \"s\"".into()
            ))
        );
        assert!(get("annotations.x").is_err());
        assert!(get("data").is_err());
    }

    #[test]
    fn extract_takes_a_kubernetes_secret_as_it_is_and_a_property_as_eso_does() {
        let binary: &[u8] = &[0xff, 0x00, 0x01];
        let s = secret_data(&[
            ("bin", binary),
            (
                "config",
                br#"{"user":"admin","port":5432,"nested":{"b":1,"a":"x"}}"#,
            ),
            ("text", b"plain"),
        ]);
        let whole = extract_map(&s, "k", None).unwrap();
        assert_eq!(whole["bin"].expose(), binary);
        assert_eq!(whole["text"].expose(), b"plain");
        let config = extract_map(&s, "k", Some("config")).unwrap();
        // ESO re-marshals each field as JSON: strings keep their quotes.
        assert_eq!(config["user"].expose(), br#""admin""#);
        assert_eq!(config["port"].expose(), b"5432");
        assert_eq!(config["nested"].expose(), br#"{"a":"x","b":1}"#);
        assert_eq!(
            extract_map(&s, "k", Some("nope")).unwrap_err(),
            PropertyError::Missing("property nope does not exist in key k".into())
        );
        for not_object in ["text", "bin"] {
            assert_eq!(
                extract_map(&s, "k", Some(not_object)).unwrap_err(),
                PropertyError::NotObject("failed to unmarshal secret: invalid JSON format".into())
            );
        }
    }
}
