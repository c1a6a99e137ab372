//! Property extraction from JSON secrets, with gjson's path syntax as ESO uses it.
//!
//! ESO providers call `gjson.Get(secret, property)`. We implement the parts of gjson's path
//! language that ESO users rely on: dot-separated keys, `\.` escapes, array indexes, `#` (array
//! length), `#.key` (collect `key` from every array element) and `*`/`?` wildcards in keys.
//! A literal key containing dots wins over the nested path (`"a.b"` first, then `a` → `b`), so
//! flat JSON documents with dotted keys (common in Secrets Manager) work without escaping.
//! When neither finds it and the path's first segment names a string that itself holds JSON,
//! the rest of the path is looked up inside that string: the Kubernetes provider's documents
//! are `{"key": "<the Secret value>"}`, and ESO reads `config.db.user` there as `db.user`
//! inside the JSON of data key `config` (for other providers ESO would report the property
//! missing; esox finds it).

use serde_json::Value;

/// Looks up `path` in a JSON document. Returns the value as Secret bytes: strings unquoted,
/// everything else as compact JSON (gjson's `Raw`).
pub fn extract(document: &Value, path: &str) -> Option<Vec<u8>> {
    if let Value::Object(map) = document
        && let Some(v) = map.get(path)
    {
        return Some(value_bytes(v));
    }
    lookup(document, &split_path(path))
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

fn lookup(value: &Value, parts: &[String]) -> Option<Value> {
    let Some((head, rest)) = parts.split_first() else {
        return Some(value.clone());
    };
    match value {
        Value::Array(items) => {
            if head == "#" {
                if rest.is_empty() {
                    return Some(Value::from(items.len()));
                }
                let collected: Vec<Value> =
                    items.iter().filter_map(|item| lookup(item, rest)).collect();
                return Some(Value::Array(collected));
            }
            let idx: usize = head.parse().ok()?;
            lookup(items.get(idx)?, rest)
        }
        Value::Object(map) => {
            if head.contains(['*', '?']) {
                let (_, v) = map.iter().find(|(k, _)| wildcard_match(head, k))?;
                return lookup(v, rest);
            }
            lookup(map.get(head)?, rest)
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
}
