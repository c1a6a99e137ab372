//! `SecretStore` and `ClusterSecretStore`: how to reach a provider.
//!
//! Both kinds share one spec, as in ESO. Providers esox implements are typed; every other ESO
//! provider (`vault`, `azurekv`, `gcpsm`, …) is kept verbatim through
//! `x-kubernetes-preserve-unknown-fields`, so ESO manifests apply as written and the store
//! reports which provider it cannot serve instead of the apiserver rejecting it.

// kube-derive takes one `printcolumn(...)` per column; clippy reads repeated `type_ = "string"`
// inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;

/// Spec shared by `SecretStore` and `ClusterSecretStore`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "SecretStore",
    namespaced,
    status = "SecretStoreStatus",
    shortname = "ss",
    category = "external-secrets",
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Capabilities",
        type_ = "string",
        json_path = ".status.capabilities"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    doc = "SecretStore says how to reach an external secret provider; usable from its own namespace."
)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// Only the controller whose `--controller-class` matches reconciles this store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// The provider and how to authenticate to it.
    pub provider: SecretStoreProvider,
    /// Retry settings for provider calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<RetrySettings>,
    /// Seconds between store validations (0: the controller default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<i64>,
    /// Which namespaces may use a ClusterSecretStore (ignored on a SecretStore).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterSecretStoreCondition>,
}

/// Spec of a `ClusterSecretStore` (the same fields as a SecretStore's).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterSecretStore",
    status = "SecretStoreStatus",
    shortname = "css",
    category = "external-secrets",
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Capabilities",
        type_ = "string",
        json_path = ".status.capabilities"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    doc = "ClusterSecretStore says how to reach an external secret provider; usable from the namespaces its conditions allow."
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct ClusterSecretStoreSpec(pub SecretStoreSpec);

impl std::ops::Deref for ClusterSecretStoreSpec {
    type Target = SecretStoreSpec;
    fn deref(&self) -> &SecretStoreSpec {
        &self.0
    }
}

/// Which namespaces may use a ClusterSecretStore. Entries are OR-ed; within an entry, every
/// field given must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    /// Label selector on the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// Namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Regular expressions on namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_regexes: Vec<String>,
}

/// Retry settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    /// Maximum retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Interval between retries (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
}

/// The provider of a store: exactly one key should be set.
///
/// Deserialized by hand ([`SecretStoreProvider::deserialize`]): providers esox does not
/// implement are read depth-bounded ([`super::free_form`]), where serde's buffering for a
/// flattened map recursed into them, so one store with a provider block nested deeper than
/// serde_json's 128 levels failed the whole SecretStore list and stalled the store watch.
#[derive(Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct SecretStoreProvider {
    /// The in-cluster Fake provider (static data, for tests and demos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake: Option<FakeProvider>,
    /// AWS Secrets Manager or Parameter Store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsProvider>,
    /// HashiCorp Vault (or OpenBao through the Vault API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<super::vault::VaultProvider>,
    /// OpenBao's own block (read-only, `kv` mount by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_bao: Option<super::vault::OpenBaoProvider>,
    /// Secrets of a Kubernetes cluster (this one or another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<super::kubernetes::KubernetesProvider>,
    /// Every other ESO provider, kept verbatim.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for SecretStoreProvider {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = SecretStoreProvider;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a store provider object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = SecretStoreProvider::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "fake" => out.fake = map.next_value()?,
                        "aws" => out.aws = map.next_value()?,
                        // Read free-form first: a block that does not decode as a Vault spec
                        // stays in `other`, where building the provider reports why, instead
                        // of failing the whole store list.
                        "vault" => {
                            let value = map.next_value_seed(super::free_form::Seed)?;
                            match serde_json::from_value(value.clone()) {
                                Ok(vault) => out.vault = Some(vault),
                                Err(_) => {
                                    out.other.insert(key, value);
                                }
                            }
                        }
                        "openBao" => {
                            let value = map.next_value_seed(super::free_form::Seed)?;
                            match serde_json::from_value(value.clone()) {
                                Ok(bao) => out.open_bao = Some(bao),
                                Err(_) => {
                                    out.other.insert(key, value);
                                }
                            }
                        }
                        "kubernetes" => {
                            let value = map.next_value_seed(super::free_form::Seed)?;
                            match serde_json::from_value(value.clone()) {
                                Ok(k) => out.kubernetes = Some(k),
                                Err(_) => {
                                    out.other.insert(key, value);
                                }
                            }
                        }
                        _ => {
                            let value = map.next_value_seed(super::free_form::Seed)?;
                            out.other.insert(key, value);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Fields)
    }
}

impl SecretStoreProvider {
    /// Names of the providers set in this spec, in a stable order.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.fake.is_some() {
            names.push("fake".to_string());
        }
        if self.aws.is_some() {
            names.push("aws".to_string());
        }
        if self.vault.is_some() {
            names.push("vault".to_string());
        }
        if self.open_bao.is_some() {
            names.push("openBao".to_string());
        }
        if self.kubernetes.is_some() {
            names.push("kubernetes".to_string());
        }
        names.extend(self.other.keys().cloned());
        names
    }
}

/// The Fake provider: static data declared in the store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FakeProvider {
    /// The secrets this store serves.
    #[serde(default)]
    pub data: Vec<FakeProviderData>,
}

/// One secret of the Fake provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FakeProviderData {
    /// Remote key.
    pub key: String,
    /// Value (a JSON document for `property` and `dataFrom.extract`).
    #[serde(default)]
    pub value: String,
    /// Deprecated by ESO: a map served as a JSON object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub value_map: BTreeMap<String, String>,
    /// Version this entry answers to; an entry without one answers to no version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// AWS provider spec (ESO's fields).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    /// `SecretsManager` or `ParameterStore`.
    pub service: AwsService,
    /// AWS region.
    #[serde(default)]
    pub region: String,
    /// Role to assume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Roles assumed, in order, before `role`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_roles: Vec<String>,
    /// External ID for AssumeRole.
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// Session tags for AssumeRole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_tags: Vec<AwsTag>,
    /// Transitive tag keys for AssumeRole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitive_tag_keys: Vec<String>,
    /// Prefix added to every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Secrets Manager options.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub secrets_manager: Option<serde_json::Value>,
    /// How to authenticate; absent means the SDK default chain (IRSA in a pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,
}

/// AWS service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum AwsService {
    /// AWS Secrets Manager.
    #[default]
    SecretsManager,
    /// AWS Systems Manager Parameter Store.
    ParameterStore,
}

/// A key/value tag.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
pub struct AwsTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// AWS authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// Static keys from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AwsAuthSecretRef>,
    /// A ServiceAccount token exchanged with AssumeRoleWithWebIdentity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<AwsJwtAuth>,
}

/// Static AWS keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuthSecretRef {
    /// Access key id.
    #[serde(
        default,
        rename = "accessKeyIDSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_key_id_secret_ref: Option<SecretKeySelector>,
    /// Secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_secret_ref: Option<SecretKeySelector>,
    /// Session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_secret_ref: Option<SecretKeySelector>,
}

/// JWT (IRSA-style) authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwtAuth {
    /// The ServiceAccount whose token is exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Key in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Namespace (only honoured for ClusterSecretStores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A ServiceAccount.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    /// ServiceAccount name.
    pub name: String,
    /// Namespace (only honoured for ClusterSecretStores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Audiences for the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

/// Observed state of a store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// Conditions (`Ready`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `ReadOnly`, `WriteOnly` or `ReadWrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_read_typed_and_unknown_ones_verbatim() {
        let p: SecretStoreProvider = serde_json::from_str(
            r#"{"fake": {"data": [{"key": "k", "value": "v"}]}, "gcpsm": {"projectID": "p", "auth": {}}}"#,
        )
        .unwrap();
        assert_eq!(p.fake.as_ref().unwrap().data[0].key, "k");
        assert_eq!(p.other["gcpsm"]["projectID"], "p");
        assert_eq!(p.names(), ["fake", "gcpsm"]);
        // And back as it came.
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["gcpsm"]["projectID"], "p");
        assert!(back.get("aws").is_none());
    }

    #[test]
    fn a_provider_nested_deeper_than_serde_json_allows_still_decodes() {
        // 300 levels under an unknown provider: a SecretStore the apiserver accepts. The list
        // the store watch decodes holds it beside a healthy store.
        let deep = format!("{}1{}", r#"{"a":"#.repeat(300), "}".repeat(300));
        let list = format!(
            r#"[{{"provider": {{"gcpsm": {deep}}}}}, {{"provider": {{"fake": {{"data": []}}}}}}]"#
        );
        let specs: Vec<SecretStoreSpec> = serde_json::from_str(&list).unwrap();
        assert!(super::super::free_form::too_deep(
            &specs[0].provider.other["gcpsm"]
        ));
        assert!(specs[1].provider.fake.is_some());
    }

    #[test]
    fn a_vault_block_is_typed_and_one_that_does_not_decode_is_kept() {
        let p: SecretStoreProvider = serde_json::from_str(
            r#"{"vault": {"server": "https://v", "path": "secret", "version": "v2", "auth": {"kubernetes": {"mountPath": "kubernetes", "role": "r", "serviceAccountRef": {"name": "sa"}}}}}"#,
        )
        .unwrap();
        let vault = p.vault.as_ref().unwrap();
        assert_eq!(vault.path.as_deref(), Some("secret"));
        let k8s = vault.auth.as_ref().unwrap().kubernetes.as_ref().unwrap();
        assert_eq!(k8s.service_account_ref.as_ref().unwrap().name, "sa");
        assert_eq!(p.names(), ["vault"]);
        let bad: SecretStoreProvider = serde_json::from_str(r#"{"vault": {"server": 5}}"#).unwrap();
        assert!(bad.vault.is_none());
        assert_eq!(bad.other["vault"]["server"], 5);
        assert_eq!(bad.names(), ["vault"]);
    }
}
