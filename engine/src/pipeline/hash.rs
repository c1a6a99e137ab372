//! ESO's `reconcile.external-secrets.io/data-hash` annotation.
//!
//! ESO hashes `fmt.Sprintf("%+v", secret.Data)` with SHA3-224. Go prints a
//! `map[string][]byte` as `map[k1:[104 105] k2:[]]` with keys sorted, so we rebuild that exact
//! text. Matching the format matters: a cluster moving from ESO to esox keeps its annotations
//! valid, and esox does not rewrite every Secret on its first pass.

use std::fmt::Write as _;

use sha3::{Digest, Sha3_224};

use crate::secret::SecretMap;

/// The data-hash annotation value for Secret data.
pub fn data_hash<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> String {
    let mut text = String::from("map[");
    let mut first = true;
    // BTreeMap iteration and Go's fmt both order keys bytewise.
    let mut entries: Vec<_> = data.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in entries {
        if !first {
            text.push(' ');
        }
        first = false;
        text.push_str(key);
        text.push_str(":[");
        for (i, b) in value.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            let _ = write!(text, "{b}");
        }
        text.push(']');
    }
    text.push(']');
    hex::encode(Sha3_224::digest(text.as_bytes()))
}

/// Go's `%+v` rendering of a `map[string]string`: `map[k1:v1 k2:v2]`, keys sorted.
pub fn go_string_map(m: &std::collections::BTreeMap<String, String>) -> String {
    let entries: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", entries.join(" "))
}

/// ESO's `ObjectHash` of a plain string (`%+v` of a string is the string itself).
pub fn data_hash_text(text: &str) -> String {
    hex::encode(Sha3_224::digest(text.as_bytes()))
}

/// The data-hash of a [`SecretMap`].
pub fn secret_map_hash(data: &SecretMap) -> String {
    data_hash(data.iter().map(|(k, v)| (k, v.expose())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with Go: `fmt.Sprintf("%x", sha3.Sum224([]byte(fmt.Sprintf("%+v", m))))`
    /// for `m := map[string][]byte{"username": []byte("admin"), "password": []byte("s3cr3t"), "empty": {}}`
    /// and for an empty map — exactly what ESO's `ObjectHash(secret.Data)` computes.
    #[test]
    fn matches_eso_object_hash_computed_by_go() {
        let data: SecretMap = [
            ("username".to_string(), "admin".into()),
            ("password".to_string(), "s3cr3t".into()),
            ("empty".to_string(), "".into()),
        ]
        .into();
        assert_eq!(
            secret_map_hash(&data),
            "b2b25e8c317c9cfd2ef0d3e766343c628878d8ca897907aa868807d0"
        );
        assert_eq!(
            secret_map_hash(&SecretMap::new()),
            "74a974446e359fb3e6baff9bd0058950e6edd0f040888d9989b0a11b"
        );
    }

    /// Computed with Go: `ObjectHash(meta{annotations: {"force-sync": "1", "a": "b"}})` and of
    /// an empty `meta{}`, the struct ESO hashes for `syncedResourceVersion`.
    #[test]
    fn matches_eso_meta_hash_computed_by_go() {
        let ann: std::collections::BTreeMap<String, String> = [
            ("force-sync".to_string(), "1".to_string()),
            ("a".to_string(), "b".to_string()),
        ]
        .into();
        let text = format!(
            "{{annotations:{} labels:{}}}",
            go_string_map(&ann),
            go_string_map(&Default::default())
        );
        assert_eq!(text, "{annotations:map[a:b force-sync:1] labels:map[]}");
        assert_eq!(
            data_hash_text(&text),
            "eac1bdd903a102baf057725c83a95ecf1ba1c050bd6e678979c700b9"
        );
        let empty = format!(
            "{{annotations:{} labels:{}}}",
            go_string_map(&Default::default()),
            go_string_map(&Default::default())
        );
        assert_eq!(
            data_hash_text(&empty),
            "f47fe3c0b255b6dd8047cdffa772587bb829efe7a1cb70febeda2eb2"
        );
    }

    #[test]
    fn matches_go_formatting() {
        // sha3-224("map[]")
        assert_eq!(secret_map_hash(&SecretMap::new()).len(), 56);
        let data: SecretMap = [("b".to_string(), "hi".into()), ("a".to_string(), "".into())].into();
        let expected = hex::encode(Sha3_224::digest(b"map[a:[] b:[104 105]]"));
        assert_eq!(secret_map_hash(&data), expected);
    }
}
