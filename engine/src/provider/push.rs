//! The provider push surface (PushSecret): ESO's `PushSecret(secret, data)`,
//! `DeleteSecret(remoteRef)` and `SecretExists(remoteRef)`.
//!
//! A provider that can write implements [`super::Provider::push_secret`],
//! [`super::Provider::delete_secret`] and [`super::Provider::secret_exists`] and reports
//! [`Capabilities::ReadWrite`] from [`super::Provider::capabilities`]; the defaults refuse with
//! [`super::ProviderError::Unsupported`] and report [`Capabilities::ReadOnly`].
//!
//! What the controller hands a provider:
//! - [`SourceSecret`]: the Secret to push (after the PushSecret template, if any): its data as
//!   [`SecretBytes`], type, labels and annotations.
//! - [`PushSecretData`]: one `spec.data[]` entry: `secretKey` (`None` = the whole Secret),
//!   `remoteKey`, `property`, and `metadata` as raw JSON that the provider decodes itself
//!   (e.g. AWS `PushSecretMetadata`, the Kubernetes provider's `remoteNamespace`). Delete and
//!   exists get the whole entry too (as recorded in `status.syncedPushSecrets`), so a provider
//!   can honour metadata there (ESO #6809: ESO passes only the remote ref).
//!
//! Rules every provider follows (ESO's, plus esox's):
//! - Compare before writing: when the remote value already equals what would be pushed,
//!   do not write and return [`PushOutcome::Unchanged`] (ESO #5443).
//! - Mark what you create as managed by external-secrets and refuse to overwrite or delete
//!   a remote secret that carries no such mark ([`super::ProviderError::NotManaged`] on push;
//!   delete of an unmanaged secret is a silent no-op, as ESO).
//! - Deleting a secret that does not exist succeeds.
//! - Error messages name keys and causes, never values.

use std::collections::BTreeMap;

use crate::secret::{SecretBytes, SecretMap};

use super::ProviderError;

/// The value of ESO's `managed-by` marker (AWS tag, Vault custom_metadata, …).
pub const MANAGED_BY_VALUE: &str = "external-secrets";
/// The key of ESO's `managed-by` marker.
pub const MANAGED_BY_KEY: &str = "managed-by";

/// What a store can do, as ESO reports in `status.capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capabilities {
    /// Read only (no PushSecret).
    ReadOnly,
    /// Write only (no ExternalSecret).
    WriteOnly,
    /// Both.
    ReadWrite,
}

impl Capabilities {
    /// ESO's spelling (`ReadOnly`, `WriteOnly`, `ReadWrite`).
    pub fn as_str(self) -> &'static str {
        match self {
            Capabilities::ReadOnly => "ReadOnly",
            Capabilities::WriteOnly => "WriteOnly",
            Capabilities::ReadWrite => "ReadWrite",
        }
    }

    /// Whether a PushSecret may write to the store.
    pub fn can_push(self) -> bool {
        self != Capabilities::ReadOnly
    }
}

/// The Secret being pushed (ESO's `*corev1.Secret` argument), after the template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSecret {
    /// Name of the source Secret.
    pub name: String,
    /// Namespace of the source Secret (the PushSecret's).
    pub namespace: String,
    /// `type` (`Opaque`, `kubernetes.io/tls`, …).
    pub type_: String,
    /// Data, decoded.
    pub data: SecretMap,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Where a value goes (ESO's `PushSecretRemoteRef`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteRef {
    /// The remote secret's name or path.
    pub remote_key: String,
    /// A property (field) inside the remote secret; `None` = the whole secret.
    pub property: Option<String>,
}

impl RemoteRef {
    /// ESO's status key: `<remoteKey>` or `<remoteKey>/<property>`.
    pub fn status_key(&self) -> String {
        match &self.property {
            Some(p) => format!("{}/{}", self.remote_key, p),
            None => self.remote_key.clone(),
        }
    }
}

/// One entry to push (ESO's `PushSecretData`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushSecretData {
    /// The source key; `None` pushes the whole Secret (as a JSON object of strings).
    pub secret_key: Option<String>,
    /// Where it goes.
    pub remote: RemoteRef,
    /// Provider-specific metadata, raw (`spec.data[].metadata`); the provider decodes it.
    pub metadata: Option<serde_json::Value>,
}

impl PushSecretData {
    /// The bytes to push, as ESO computes them: the value of `secret_key`, or with no key
    /// the whole Secret as a JSON object `{key: value-as-string}` (keys sorted, invalid UTF-8
    /// replaced, as Go's `string(v)` + `json.Marshal`).
    pub fn value(&self, secret: &SourceSecret) -> Result<SecretBytes, ProviderError> {
        match &self.secret_key {
            Some(key) => secret.data.get(key).cloned().ok_or_else(|| {
                ProviderError::InvalidPush(format!("secret key {key} does not exist"))
            }),
            None => Ok(whole_secret_json(&secret.data)),
        }
    }

    /// The remote key (shorthand).
    pub fn remote_key(&self) -> &str {
        &self.remote.remote_key
    }

    /// The property, if any (shorthand).
    pub fn property(&self) -> Option<&str> {
        self.remote.property.as_deref()
    }
}

/// All of a Secret's data as one JSON object of strings.
pub fn whole_secret_json(data: &SecretMap) -> SecretBytes {
    let map: BTreeMap<&str, String> = data
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()).into_owned()))
        .collect();
    SecretBytes::new(serde_json::to_vec(&map).unwrap_or_default())
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The provider wrote the value (created or updated).
    Written,
    /// The remote value already equalled the pushed one: no write (ESO #5443).
    Unchanged,
}

/// Sets `property` in the JSON object `existing` (empty = `{}`) to `value` as a string,
/// returning the new document, or `None` when it already holds exactly that string. A
/// non-empty `existing` that is not a JSON object is an error that does not echo its content.
pub fn merge_property(
    existing: Option<&[u8]>,
    property: &str,
    value: &SecretBytes,
) -> Result<Option<SecretBytes>, ProviderError> {
    let mut doc: serde_json::Map<String, serde_json::Value> = match existing {
        None => serde_json::Map::new(),
        Some([]) => serde_json::Map::new(),
        Some(b) => match serde_json::from_slice::<serde_json::Value>(b) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => {
                return Err(ProviderError::InvalidPush(
                    "pushing a property requires the remote secret to be a JSON object".into(),
                ));
            }
        },
    };
    let new = String::from_utf8_lossy(value.expose()).into_owned();
    if doc.get(property).and_then(|v| v.as_str()) == Some(new.as_str()) {
        return Ok(None);
    }
    doc.insert(property.to_string(), serde_json::Value::String(new));
    Ok(Some(SecretBytes::new(
        serde_json::to_vec(&doc).unwrap_or_default(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SourceSecret {
        SourceSecret {
            name: "s".into(),
            namespace: "ns".into(),
            type_: "Opaque".into(),
            data: SecretMap::from([
                ("b".to_string(), SecretBytes::from("2")),
                ("a".to_string(), SecretBytes::from("<1&>")),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn value_is_one_key_or_the_whole_secret_as_json() {
        let mut d = PushSecretData {
            secret_key: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(d.value(&secret()).unwrap().expose(), b"<1&>");
        d.secret_key = Some("nope".into());
        assert_eq!(
            d.value(&secret()).unwrap_err().to_string(),
            "secret key nope does not exist"
        );
        d.secret_key = None;
        assert_eq!(
            d.value(&secret()).unwrap().expose(),
            br#"{"a":"<1&>","b":"2"}"#
        );
    }

    #[test]
    fn property_merge() {
        let v = SecretBytes::from("x");
        assert_eq!(
            merge_property(None, "p", &v).unwrap().unwrap().expose(),
            br#"{"p":"x"}"#
        );
        assert!(
            merge_property(Some(br#"{"p":"x","q":"y"}"#), "p", &v)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            merge_property(Some(br#"{"q":"y"}"#), "p", &v)
                .unwrap()
                .unwrap()
                .expose(),
            br#"{"p":"x","q":"y"}"#
        );
        let err = merge_property(Some(b"secret-canary"), "p", &v).unwrap_err();
        assert!(!err.to_string().contains("canary"));
    }

    #[test]
    fn status_keys() {
        let mut r = RemoteRef {
            remote_key: "path/to/key".into(),
            property: None,
        };
        assert_eq!(r.status_key(), "path/to/key");
        r.property = Some("field1".into());
        assert_eq!(r.status_key(), "path/to/key/field1");
    }
}
