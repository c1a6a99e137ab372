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

use crate::provider::{Fetched, Lookup, MapOf};
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
    /// ESO's `NoSecretErr` (the Fake provider's missing property), which deletion policies
    /// act on; reported, when nothing skips it, as the more specific error it wraps.
    NoSecret(Box<PropertyError>),
}

/// A key, property or path from a manifest or a provider as an error message repeats it.
fn shown(text: &str) -> String {
    crate::api::abbreviate(text, 256)
}

/// The value of `property` in a fetched secret (`data[].remoteRef.property`), by the rule of
/// the provider that fetched it.
pub fn lookup(fetched: &Fetched, key: &str, property: &str) -> Result<Vec<u8>, PropertyError> {
    match fetched {
        Fetched::Value { bytes, lookup } => value_property(bytes, *lookup, key, property),
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

/// A property of a single value, by the rule of the provider that fetched it ([`Lookup`]).
fn value_property(
    bytes: &SecretBytes,
    rule: Lookup,
    key: &str,
    property: &str,
) -> Result<Vec<u8>, PropertyError> {
    let parsed = serde_json::from_slice::<Value>(bytes.expose());
    match rule {
        Lookup::Json => {
            let doc = parsed.map_err(|e| PropertyError::NotJson(e.to_string()))?;
            extract(&doc, property).ok_or_else(|| {
                PropertyError::Missing(format!(
                    "key {:?} does not exist in secret {:?}",
                    shown(property),
                    shown(key)
                ))
            })
        }
        Lookup::Vault | Lookup::OpenBao => {
            let missing = || {
                PropertyError::Missing(format!(
                    "cannot find secret data for key: {:?}",
                    shown(property)
                ))
            };
            let doc = parsed.map_err(|_| missing())?;
            if rule == Lookup::OpenBao {
                let v = doc
                    .as_object()
                    .and_then(|m| m.get(property))
                    .ok_or_else(missing)?;
                return Ok(value_bytes(v));
            }
            extract(&doc, property).ok_or_else(missing)
        }
        Lookup::Fake => {
            let no_secret = |e| PropertyError::NoSecret(Box::new(e));
            let doc = parsed.map_err(|e| no_secret(PropertyError::NotJson(e.to_string())))?;
            lookup_path(&doc, &split_path(property))
                .or_else(|| find(&doc, property))
                .map(|v| value_bytes(&v))
                .ok_or_else(|| {
                    no_secret(PropertyError::Missing(format!(
                        "key {:?} does not exist in secret {:?}",
                        shown(property),
                        shown(key)
                    )))
                })
        }
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
        Fetched::Value { bytes, lookup } => {
            let doc: Value = match property {
                None => serde_json::from_slice(bytes.expose()).map_err(|_| not_object())?,
                Some(prop) => {
                    let found = value_property(bytes, *lookup, key, prop)?;
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
/// `null` empty, everything else as JSON text (gjson's `String()`).
pub fn extract(document: &Value, path: &str) -> Option<Vec<u8>> {
    find(document, path).map(|v| value_bytes(&v))
}

/// The value at `path` in a JSON document: a literal top-level key first, then the gjson
/// path, then the path inside a top-level string that holds JSON.
pub fn find(document: &Value, path: &str) -> Option<Value> {
    if let Value::Object(map) = document
        && let Some(v) = map.get(path)
    {
        return Some(v.clone());
    }
    lookup_path(document, &split_path(path)).or_else(|| inside_string(document, path))
}

/// `first.rest` where `first` is a top-level string holding JSON: `rest` inside it.
fn inside_string(document: &Value, path: &str) -> Option<Value> {
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
    find(&inner, rest)
}

/// Bytes of a JSON value as ESO stores them (gjson's `String()`): strings raw, `null`
/// empty, a number that is not an integer in Go's shortest form (`1000`, not `1000.0`),
/// other values as JSON text.
pub fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.clone().into_bytes(),
        Value::Null => Vec::new(),
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .map(|f| f.to_string())
            .unwrap_or_default()
            .into_bytes(),
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

    #[test]
    fn each_provider_looks_a_property_up_as_its_eso_provider_does() {
        let doc = br#"{"a":{"b":"nested"},"a.b":"literal","n":null,"f":1e3,"g":1.50,"i":5432,"t":true,"o":{"x":[1,2]},"s":"{\"in\":\"side\"}"}"#;
        let value = |lookup| Fetched::Value {
            bytes: SecretBytes::new(doc.to_vec()),
            lookup,
        };
        let missing_json = |p: &str| {
            Err(PropertyError::Missing(format!(
                "key {p:?} does not exist in secret \"k\""
            )))
        };
        let missing_vault = |p: &str| {
            Err(PropertyError::Missing(format!(
                "cannot find secret data for key: {p:?}"
            )))
        };
        let ok = |v: &str| Ok(v.as_bytes().to_vec());
        // (rule, property, expected)
        type Case<'a> = (Lookup, &'a str, Result<Vec<u8>, PropertyError>);
        let cases: Vec<Case> = vec![
            // AWS (SecretString/SecretBinary, parameters): the dotted key first, then the path.
            (Lookup::Json, "a.b", ok("literal")),
            (Lookup::Json, r"a\.b", ok("literal")),
            (Lookup::Json, "a", ok(r#"{"b":"nested"}"#)),
            (Lookup::Json, "n", ok("")),
            (Lookup::Json, "f", ok("1000")),
            (Lookup::Json, "g", ok("1.5")),
            (Lookup::Json, "i", ok("5432")),
            (Lookup::Json, "t", ok("true")),
            (Lookup::Json, "o.x.1", ok("2")),
            (Lookup::Json, "o.x.#", ok("2")),
            (Lookup::Json, "s.in", ok("side")),
            (Lookup::Json, "nope", missing_json("nope")),
            (Lookup::Json, "a.c", missing_json("a.c")),
            // Vault: the data map's key first, then gjson; its own message.
            (Lookup::Vault, "a.b", ok("literal")),
            (Lookup::Vault, "o.x.0", ok("1")),
            (Lookup::Vault, "n", ok("")),
            (Lookup::Vault, "nope", missing_vault("nope")),
            // OpenBao: the key only.
            (Lookup::OpenBao, "a.b", ok("literal")),
            (Lookup::OpenBao, "i", ok("5432")),
            (Lookup::OpenBao, "o.x", missing_vault("o.x")),
            // Fake: gjson's path first (ESO calls gjson.Get alone), missing is NoSecretErr.
            (Lookup::Fake, "a.b", ok("nested")),
            (Lookup::Fake, "i", ok("5432")),
            (
                Lookup::Fake,
                "nope",
                Err(PropertyError::NoSecret(Box::new(
                    missing_json("nope").unwrap_err(),
                ))),
            ),
        ];
        for (rule, property, expected) in cases {
            assert_eq!(
                lookup(&value(rule), "k", property),
                expected,
                "{rule:?} {property}"
            );
        }
        // A value that is not JSON: an error for AWS, NoSecretErr for the Fake provider.
        let text = |lookup| Fetched::Value {
            bytes: SecretBytes::from("plain"),
            lookup,
        };
        assert!(matches!(
            lookup(&text(Lookup::Json), "k", "a"),
            Err(PropertyError::NotJson(_))
        ));
        assert!(matches!(
            lookup(&text(Lookup::Fake), "k", "a"),
            Err(PropertyError::NoSecret(e)) if matches!(*e, PropertyError::NotJson(_))
        ));
        assert_eq!(lookup(&text(Lookup::Vault), "k", "a"), missing_vault("a"));
    }

    #[test]
    fn extract_with_a_property_follows_the_providers_rule() {
        let doc = br#"{"db":{"user":"u","port":5432,"none":null},"db.x":{"k":"v"}}"#;
        let value = |lookup| Fetched::Value {
            bytes: SecretBytes::new(doc.to_vec()),
            lookup,
        };
        let map = extract_map(&value(Lookup::Json), "k", Some("db")).unwrap();
        assert_eq!(map["user"].expose(), b"u");
        assert_eq!(map["port"].expose(), b"5432");
        assert_eq!(map["none"].expose(), b"");
        let map = extract_map(&value(Lookup::Vault), "k", Some("db.x")).unwrap();
        assert_eq!(map["k"].expose(), b"v");
        assert!(matches!(
            extract_map(&value(Lookup::Fake), "k", Some("zz")),
            Err(PropertyError::NoSecret(_))
        ));
        assert_eq!(
            extract_map(&value(Lookup::Vault), "k", Some("zz")),
            Err(PropertyError::Missing(
                "cannot find secret data for key: \"zz\"".into()
            ))
        );
    }
}
