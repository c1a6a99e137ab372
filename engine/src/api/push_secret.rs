//! `PushSecret` and `ClusterPushSecret` (`external-secrets.io/v1alpha1`): a cluster Secret
//! (or a generator's output) pushed out to one or more stores.
//!
//! Fields, status and printer columns are ESO's (`apis/externalsecrets/v1alpha1/
//! pushsecret_types.go`, v2.9.0). One deliberate difference in the CRD: no schema `default:`
//! anywhere (ESO has them on `refreshInterval`, `updatePolicy`, `deletionPolicy`,
//! `conversionStrategy` and `secretStoreRefs[].kind`; ESO 2.10 dropped `conversionStrategy`'s
//! after Argo CD showed perpetual drift, #6797/#6798). The defaults are applied in code, so
//! the stored object is exactly what was applied.

// kube-derive takes one `printcolumn(...)` per column; clippy reads repeated `type_ = "string"`
// inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ExternalSecretTemplate, GeneratorRef, StoreKind};

/// ESO's finalizer on a PushSecret with `deletionPolicy: Delete`.
pub const PUSH_SECRET_FINALIZER: &str = "pushsecret.externalsecrets.io/finalizer";

/// The refresh interval when none is given (ESO's CRD default).
pub const DEFAULT_PUSH_REFRESH: &str = "1h0m0s";

/// Spec of a PushSecret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "PushSecret",
    namespaced,
    status = "PushSecretStatus",
    shortname = "ps",
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
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.refreshTime"),
    doc = "PushSecret pushes a Kubernetes Secret (or a generator's output) to external secret stores."
)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSpec {
    /// How often to push again, as a Go duration (default `1h0m0s`); `0` pushes once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,

    /// The stores to push to.
    pub secret_store_refs: Vec<PushSecretStoreRef>,

    /// `Replace` (default) or `IfNotExists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<PushSecretUpdatePolicy>,

    /// `None` (default) or `Delete`: remove what was pushed when the PushSecret, an entry or a
    /// store goes away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<PushSecretDeletionPolicy>,

    /// The source: a Secret in the PushSecret's namespace, or a generator.
    pub selector: PushSecretSelector,

    /// What to push, key by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<PushSecretData>,

    /// Bulk pushes: every key of the source (or those matching `match.regexp`), renamed by
    /// `rewrite`, to the stores `storeRef` picks; one remote secret per key, or all of them
    /// bundled into `remoteKey`. An explicit `data[]` entry for the same source key wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_to: Vec<PushSecretDataTo>,

    /// A template applied to a copy of the source Secret before pushing: its keys are added
    /// to (or replace) the source's, as in ESO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,
}

/// One bulk push rule (ESO's `PushSecretDataTo`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.storeRef) && (has(self.storeRef.name) || has(self.storeRef.labelSelector))",
        "message": "storeRef must specify either name or labelSelector"
    },
    {
        "rule": "!has(self.remoteKey) || !has(self.rewrite) || size(self.rewrite) == 0",
        "message": "remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)"
    }
]))]
pub struct PushSecretDataTo {
    /// The store(s) of `secretStoreRefs` this rule pushes to: by name, or every one whose
    /// labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<PushSecretStoreRef>,
    /// When set, every matched key goes into this one remote secret as a JSON object;
    /// otherwise each key is its own remote secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_key: Option<String>,
    /// Which source keys (all when absent).
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<PushSecretDataToMatch>,
    /// Renames applied in order to each matched key to make its remote key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<PushSecretRewrite>,
    /// Provider-specific metadata for every entry this rule makes, kept verbatim.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub metadata: Option<serde_json::Value>,
    /// `None` (default) or `ReverseUnicode`, on the source key names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_strategy: Option<PushSecretConversionStrategy>,
}

/// Which source keys a `dataTo` rule takes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct PushSecretDataToMatch {
    /// Keys matching this regular expression (Go RE2 syntax); all keys when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// One rename of a `dataTo` rule: exactly one of `regexp` or `transform`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.regexp) && !has(self.transform)) || (!has(self.regexp) && has(self.transform))",
    "message": "exactly one of regexp or transform must be set"
}]))]
pub struct PushSecretRewrite {
    /// Replace a regular expression in the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<super::RewriteRegexp>,
    /// Rename the key with a Go template (`{{ .value }}` is the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<super::RewriteTransform>,
}

impl PushSecretRewrite {
    /// The same rename as an ExternalSecret `rewrite` entry (so one implementation runs both).
    pub fn as_external_secret_rewrite(&self) -> super::ExternalSecretRewrite {
        super::ExternalSecretRewrite {
            regexp: self.regexp.clone(),
            transform: self.transform.clone(),
            merge: None,
        }
    }
}

impl PushSecretSpec {
    /// `updatePolicy`, defaulted.
    pub fn update_policy(&self) -> PushSecretUpdatePolicy {
        self.update_policy.unwrap_or_default()
    }

    /// `deletionPolicy`, defaulted.
    pub fn deletion_policy(&self) -> PushSecretDeletionPolicy {
        self.deletion_policy.unwrap_or_default()
    }

    /// `refreshInterval`, defaulted (as written: a Go duration).
    pub fn refresh_interval(&self) -> &str {
        self.refresh_interval
            .as_deref()
            .unwrap_or(DEFAULT_PUSH_REFRESH)
    }
}

/// A store to push to: by name, or every store of `kind` whose labels match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStoreRef {
    /// The store's name (ignored when `labelSelector` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "dns_name_schema")]
    pub name: Option<String>,
    /// Every store whose labels match (a SecretStore only in the PushSecret's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// `SecretStore` (default) or `ClusterSecretStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreKind>,
}

fn dns_name_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 253,
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    })
}

/// How existing remote secrets are treated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum PushSecretUpdatePolicy {
    /// Overwrite (what esox manages).
    #[default]
    Replace,
    /// Push only entries that do not exist remotely yet.
    IfNotExists,
}

/// What happens remotely when something pushed stops being pushed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum PushSecretDeletionPolicy {
    /// Leave it.
    #[default]
    None,
    /// Delete it from the provider.
    Delete,
}

/// Key-name conversion on the source Secret's keys.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum PushSecretConversionStrategy {
    /// Keys as they are.
    #[default]
    None,
    /// `_U005b_` → `[` and so on (the reverse of ExternalSecret's `Unicode`).
    ReverseUnicode,
}

/// The source of a PushSecret: exactly one of `secret` or `generatorRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct PushSecretSelector {
    /// A Secret in the PushSecret's namespace, by name or labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<PushSecretSecret>,
    /// A generator whose output is pushed (a new value every refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// A source Secret by name or by label selector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretSecret {
    /// The Secret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "dns_name_schema")]
    pub name: Option<String>,
    /// Every Secret whose labels match (each pushed in turn, the last wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// One entry to push.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretData {
    /// Which key goes where.
    #[serde(rename = "match")]
    pub match_: PushSecretMatch,
    /// Provider-specific metadata (e.g. AWS `PushSecretMetadata`), kept verbatim.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub metadata: Option<serde_json::Value>,
    /// `None` (default) or `ReverseUnicode`, on the source key name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_strategy: Option<PushSecretConversionStrategy>,
}

/// A source key and where it goes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretMatch {
    /// The source key; empty or absent pushes the whole Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// Where it goes.
    pub remote_ref: PushSecretRemoteRef,
}

/// The remote secret (and property) to write.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretRemoteRef {
    /// Name of the remote secret.
    pub remote_key: String,
    /// Property inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
}

/// A PushSecret's condition (ESO's `PushSecretStatusCondition`: the same shape as
/// ExternalSecret's).
pub type PushSecretStatusCondition = super::Condition;

/// What was pushed where: `"<Kind>/<store>"` → `"<remoteKey>[/<property>]"` → the entry.
pub type SyncedPushSecretsMap = BTreeMap<String, BTreeMap<String, PushSecretData>>;

/// Observed state of a PushSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushSecretStatus {
    /// When the source was last pushed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient_time"
    )]
    pub refresh_time: Option<Time>,
    /// `<generation>-<hash of labels and annotations>` at the last push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// What was pushed to which store, including entries that already existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_push_secrets: Option<SyncedPushSecretsMap>,
    /// Conditions; `Ready` is the one users watch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PushSecretStatusCondition>,
}

/// Spec of a ClusterPushSecret: one PushSecret stamped into every namespace a selector picks.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterPushSecret",
    status = "ClusterPushSecretStatus",
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
    doc = "ClusterPushSecret creates the same PushSecret in every namespace its selectors pick."
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPushSecretSpec {
    /// The spec of the PushSecrets to create.
    pub push_secret_spec: PushSecretSpec,
    /// How often to recheck namespaces (default 1h).
    #[serde(
        default,
        rename = "refreshTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_interval: Option<String>,
    /// The PushSecrets' name; defaults to the ClusterPushSecret's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "dns_name_schema")]
    pub push_secret_name: Option<String>,
    /// Labels and annotations of the PushSecrets (they replace the PushSecrets' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_metadata: Option<PushSecretMetadata>,
    /// Namespaces whose labels match any of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
}

/// Labels and annotations for the PushSecrets a ClusterPushSecret makes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
pub struct PushSecretMetadata {
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A namespace a ClusterPushSecret could not provision, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct ClusterPushSecretNamespaceFailure {
    /// The namespace.
    pub namespace: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Observed state of a ClusterPushSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPushSecretStatus {
    /// Namespaces that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_namespaces: Vec<ClusterPushSecretNamespaceFailure>,
    /// Namespaces that hold the PushSecret (sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioned_namespaces: Vec<String>,
    /// The name of the PushSecrets made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_name: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PushSecretStatusCondition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eso_manifest_round_trips() {
        let manifest = serde_json::json!({
            "refreshInterval": "10s",
            "secretStoreRefs": [{"name": "aws", "kind": "ClusterSecretStore"}],
            "updatePolicy": "Replace",
            "deletionPolicy": "Delete",
            "selector": {"secret": {"name": "tls"}},
            "data": [{
                "match": {"secretKey": "tls.crt", "remoteRef": {"remoteKey": "certs/app", "property": "crt"}},
                "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"secretPushFormat": "string"}},
                "conversionStrategy": "None"
            }]
        });
        let spec: PushSecretSpec = serde_json::from_value(manifest.clone()).unwrap();
        assert_eq!(spec.deletion_policy(), PushSecretDeletionPolicy::Delete);
        assert_eq!(serde_json::to_value(&spec).unwrap(), manifest);
        let empty: PushSecretSpec = serde_json::from_value(serde_json::json!({
            "secretStoreRefs": [], "selector": {"secret": {"name": "x"}}
        }))
        .unwrap();
        assert_eq!(empty.refresh_interval(), "1h0m0s");
        assert_eq!(empty.update_policy(), PushSecretUpdatePolicy::Replace);
    }

    /// A metadata object nested deeper than serde_json reads (the apiserver keeps 10 000
    /// levels) still decodes, so one such PushSecret cannot stop the watch of them all; the
    /// part too deep is marked for the validation to name.
    #[test]
    fn deeply_nested_metadata_decodes_and_is_marked() {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(300), "}".repeat(300));
        let text = format!(
            r#"{{"secretStoreRefs": [], "selector": {{"secret": {{"name": "x"}}}},
              "data": [{{"match": {{"remoteRef": {{"remoteKey": "r"}}}}, "metadata": {deep}}}],
              "dataTo": [{{"storeRef": {{"name": "a"}}, "metadata": {deep}}}]}}"#
        );
        let spec: PushSecretSpec = serde_json::from_str(&text).unwrap();
        assert!(super::super::free_form::too_deep(
            spec.data[0].metadata.as_ref().unwrap()
        ));
        assert!(super::super::free_form::too_deep(
            spec.data_to[0].metadata.as_ref().unwrap()
        ));
    }
}
