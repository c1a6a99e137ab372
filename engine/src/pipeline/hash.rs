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

    #[test]
    fn matches_go_formatting() {
        // sha3-224("map[]")
        assert_eq!(secret_map_hash(&SecretMap::new()).len(), 56);
        let data: SecretMap = [("b".to_string(), "hi".into()), ("a".to_string(), "".into())].into();
        let expected = hex::encode(Sha3_224::digest(b"map[a:[] b:[104 105]]"));
        assert_eq!(secret_map_hash(&data), expected);
    }
}
