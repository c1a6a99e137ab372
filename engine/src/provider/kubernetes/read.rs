//! What a remote Secret reads as, without IO: the maps `get` returns, ESO's documents for
//! `find`, and the label selector of `find.tags`.
//!
//! - data: the Secret's `data`, byte for byte ([`Fetched::Map`]); the pipeline looks a
//!   `property` up as a data key and `dataFrom.extract` takes the map as it is, so binary
//!   values (a keystore, a DER certificate) arrive unchanged. Without a property, and for
//!   `find`, it is ESO's JSON document `{"key": "value", …}`, keys sorted, each value the
//!   Secret's bytes as Go's `string(v)` (bytes that are not UTF-8 become U+FFFD, as in ESO);
//! - `metadataPolicy: Fetch`: `labels` and `annotations`, each as a JSON object (`null` when
//!   the Secret has none, as Go marshals a nil map).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::provider::{Fetched, MapOf};
use crate::secret::{SecretBytes, SecretMap};

/// A Secret's data, verbatim.
pub fn data(secret: &Secret) -> Fetched {
    let entries: SecretMap = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), SecretBytes::new(v.0.clone())))
        .collect();
    Fetched::Map {
        entries,
        of: MapOf::SecretData,
    }
}

/// ESO's JSON document of a Secret's data (what `find` returns per Secret).
pub fn data_document(secret: &Secret) -> SecretBytes {
    data(secret).whole()
}

/// A Secret's labels and annotations (`metadataPolicy: Fetch`).
pub fn metadata(secret: &Secret) -> Fetched {
    let json = |m: &Option<BTreeMap<String, String>>| {
        SecretBytes::new(serde_json::to_vec(m).unwrap_or_default())
    };
    Fetched::Map {
        entries: [
            (
                "annotations".to_string(),
                json(&secret.metadata.annotations),
            ),
            ("labels".to_string(), json(&secret.metadata.labels)),
        ]
        .into(),
        of: MapOf::SecretMetadata,
    }
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
    fn data_is_the_secrets_bytes_and_reads_whole_as_esos_json() {
        let s = secret(&[
            ("file.png", b"png"),
            ("config", br#"{"db":{"user":"admin"},"port":5432}"#),
            ("plain", b"a<b>&c"),
            ("bin", &[0xff, 0x00, b'a']),
        ]);
        let Fetched::Map { entries, of } = data(&s) else {
            panic!("a Secret reads as a map");
        };
        assert_eq!(of, MapOf::SecretData);
        assert_eq!(entries["bin"].expose(), &[0xff, 0x00, b'a']);
        assert_eq!(entries["plain"].expose(), b"a<b>&c");
        // Go writes each byte that is not UTF-8 as the escape \ufffd, and NUL as \u0000.
        assert_eq!(
            std::str::from_utf8(data_document(&s).expose()).unwrap(),
            r#"{"bin":"\ufffd\u0000a","config":"{\"db\":{\"user\":\"admin\"},\"port\":5432}","file.png":"png","plain":"a<b>&c"}"#
        );
        let odd = secret(&[("k", b"\xe2\x82 \x08\x0c\x1f\xe2\x80\xa8\"\\")]);
        assert_eq!(
            std::str::from_utf8(data_document(&odd).expose()).unwrap(),
            r#"{"k":"\ufffd\ufffd \b\f\u001f\u2028\"\\"}"#
        );
    }

    #[test]
    fn metadata_reads_as_labels_and_annotations() {
        let mut s = secret(&[]);
        s.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let doc = metadata(&s).whole();
        assert_eq!(
            std::str::from_utf8(doc.expose()).unwrap(),
            r#"{"annotations":null,"labels":{"app":"web"}}"#
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
