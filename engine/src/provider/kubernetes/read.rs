//! What a remote Secret reads as, without IO: ESO's documents for `get` and `find`, and the
//! label selector of `find.tags`.
//!
//! - data: `{"key": "value", …}`, keys sorted, each value the Secret's bytes as a string
//!   (Go's `string(v)`: bytes that are not UTF-8 become U+FFFD, as in ESO), so `property`
//!   (a literal key first, then `key.path` inside a JSON value) and `dataFrom.extract` work
//!   on it in the pipeline;
//! - `metadataPolicy: Fetch`: `{"annotations": {…}, "labels": {…}}`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};

use crate::secret::SecretBytes;

/// The data document of a Secret.
pub fn data_document(secret: &Secret) -> SecretBytes {
    let map: Map<String, Value> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(String::from_utf8_lossy(&v.0).into_owned()),
            )
        })
        .collect();
    SecretBytes::new(serde_json::to_vec(&Value::Object(map)).unwrap_or_default())
}

/// The metadata document of a Secret (`metadataPolicy: Fetch`).
pub fn metadata_document(secret: &Secret) -> SecretBytes {
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let doc = serde_json::json!({ "labels": labels, "annotations": annotations });
    SecretBytes::new(serde_json::to_vec(&doc).unwrap_or_default())
}

/// The label selector for `find.tags` (every tag must match), refusing what is not a label
/// key or value, so a tag cannot smuggle selector syntax (`a,b!=c`) into the query (ESO's
/// `labels.ValidatedSelectorFromSet`).
pub fn tag_selector(tags: &BTreeMap<String, String>) -> Result<String, String> {
    let mut parts = Vec::new();
    for (k, v) in tags {
        if !label_key(k) {
            return Err(format!(
                "unable to validate selector tags: {:?} is not a valid label key",
                crate::api::abbreviate(k, 80)
            ));
        }
        if !label_value(v) {
            return Err(format!(
                "unable to validate selector tags: the value of {k:?} is not a valid label value"
            ));
        }
        parts.push(format!("{k}={v}"));
    }
    Ok(parts.join(","))
}

fn name_part(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn label_value(v: &str) -> bool {
    v.is_empty() || name_part(v, 63)
}

fn label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    let b = l.as_bytes();
                    !b.is_empty()
                        && b.len() <= 63
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                })
                && name_part(name, 63)
        }
        None => name_part(k, 63),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(data: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn data_reads_as_esos_json_and_properties_find_literal_then_nested_keys() {
        let s = secret(&[
            ("file.png", b"png"),
            ("config", br#"{"db":{"user":"admin"},"port":5432}"#),
            ("plain", b"a<b>&c"),
        ]);
        let doc = data_document(&s);
        assert_eq!(
            std::str::from_utf8(doc.expose()).unwrap(),
            r#"{"config":"{\"db\":{\"user\":\"admin\"},\"port\":5432}","file.png":"png","plain":"a<b>&c"}"#
        );
        let v: Value = serde_json::from_slice(doc.expose()).unwrap();
        let get = |p: &str| {
            crate::pipeline::property::extract(&v, p).map(|b| String::from_utf8(b).unwrap())
        };
        assert_eq!(get("file.png").as_deref(), Some("png"));
        assert_eq!(get("config.db.user").as_deref(), Some("admin"));
        assert_eq!(get("config.port").as_deref(), Some("5432"));
        assert_eq!(get("config.db").as_deref(), Some(r#"{"user":"admin"}"#));
        assert_eq!(get("config.nope"), None);
        assert_eq!(get("nope"), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_read_as_in_eso() {
        let doc = data_document(&secret(&[("bin", &[0xff, b'a'])]));
        assert_eq!(
            std::str::from_utf8(doc.expose()).unwrap(),
            "{\"bin\":\"\u{fffd}a\"}"
        );
    }

    #[test]
    fn metadata_reads_as_labels_and_annotations() {
        let mut s = secret(&[]);
        s.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let doc = metadata_document(&s);
        assert_eq!(
            std::str::from_utf8(doc.expose()).unwrap(),
            r#"{"annotations":{},"labels":{"app":"web"}}"#
        );
    }

    #[test]
    fn tags_become_a_selector_and_selector_syntax_is_refused() {
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            tag_selector(&tags(&[("test", "ns-1"), ("example.com/team", "a")])).unwrap(),
            "example.com/team=a,test=ns-1"
        );
        assert!(tag_selector(&tags(&[("a", "b,c!=d")])).is_err());
        assert!(tag_selector(&tags(&[("a,b", "c")])).is_err());
        assert!(tag_selector(&tags(&[("Example.com/x", "c")])).is_err());
        assert_eq!(tag_selector(&tags(&[("a", "")])).unwrap(), "a=");
    }
}
