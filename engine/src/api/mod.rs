//! The `external-secrets.io` API, as ESO defines it.
//!
//! These types stand alone (no controller code) so tests and tools can use them.

pub mod cluster_external_secret;
pub mod condition;
pub mod crd;
pub mod duration;
pub mod external_secret;
pub mod free_form;
pub mod generators;
pub mod kubernetes;
pub mod plugins;
pub mod push_secret;
pub mod region;
pub mod secret_store;
pub mod validate;
pub mod vault;

pub use cluster_external_secret::{
    ClusterExternalSecret, ClusterExternalSecretSpec, ClusterExternalSecretStatus,
};
pub use condition::Condition;
pub use external_secret::*;
pub use kubernetes::*;
pub use push_secret::{
    ClusterPushSecret, ClusterPushSecretSpec, ClusterPushSecretStatus, PushSecret, PushSecretSpec,
    PushSecretStatus,
};
pub use secret_store::*;
pub use vault::*;

/// The API group shared with ESO.
pub const GROUP: &str = "external-secrets.io";

/// `text` as an error message repeats it: whole when it has at most `max` bytes, else its
/// start (cut at a character boundary) and its length. A manifest field can be a megabyte
/// long, and messages go to the status, an Event and the log; they name what is wrong, they
/// need not repeat it all.
pub fn abbreviate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// A name a spec may set (`target.name`, `externalSecretName`), else the object's own: ESO
/// treats an empty one as unset.
pub(crate) fn name_or_own(explicit: Option<&String>, meta: &kube::api::ObjectMeta) -> String {
    explicit
        .filter(|n| !n.is_empty())
        .or(meta.name.as_ref())
        .cloned()
        .unwrap_or_default()
}

/// A `metav1.Time` field that reads as `None` when it holds a time esox cannot represent.
///
/// The apiserver checks only that it is RFC 3339, so a status can say
/// `9999-12-31T23:59:59Z`, past the last instant a timestamp holds here; failing to decode
/// one object fails the whole watch list, and the controller would see no object at all.
pub(crate) fn lenient_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, D::Error> {
    let Some(v) = <Option<serde_json::Value> as serde::Deserialize>::deserialize(d)? else {
        return Ok(None);
    };
    Ok(serde_json::from_value(v).ok())
}

/// Schema for a free-form JSON object kept verbatim by the apiserver (structural schemas need a
/// `type`, so a bare `serde_json::Value` would be rejected).
pub(crate) fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn abbreviate_keeps_short_text_and_cuts_long_text_at_a_boundary() {
        assert_eq!(super::abbreviate("short", 8), "short");
        assert_eq!(super::abbreviate("12345678", 8), "12345678");
        assert_eq!(super::abbreviate("123456789", 8), "12345678… (9 bytes)");
        // 'é' is two bytes: the cut moves back to the boundary instead of splitting one.
        assert_eq!(super::abbreviate("ééééé", 5), "éé… (10 bytes)");
        assert_eq!(super::abbreviate("ééééé", 0), "… (10 bytes)");
    }
}
