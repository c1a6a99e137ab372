//! `ClusterExternalSecret`: one ExternalSecret stamped into every namespace a selector (or a
//! list of names) picks.
//!
//! Fields, status and printer columns are ESO's `external-secrets.io/v1` ones
//! (`apis/externalsecrets/v1/clusterexternalsecret_types.go`); the same schema is served as
//! `v1beta1` (see [`crate::api::crd`]). The status condition is ESO's own small shape (type,
//! status, message: no reason, no transition time), so tooling reading ESO's status reads
//! esox's.

// kube-derive takes one `printcolumn(...)` per column; clippy reads repeated `type_ = "string"`
// inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ExternalSecretSpec;

/// The group and kind ESO's ownership check compares (`ClusterExtSecretGroupKind`).
pub const CLUSTER_EXTERNAL_SECRET_KIND: &str = "ClusterExternalSecret";

/// ESO's annotation that forces a refresh; a ClusterExternalSecret mirrors its own onto the
/// ExternalSecrets it makes.
pub const FORCE_SYNC_ANNOTATION: &str = "external-secrets.io/force-sync";

/// Spec of a ClusterExternalSecret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ClusterExternalSecret",
    status = "ClusterExternalSecretStatus",
    shortname = "ces",
    category = "external-secrets",
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.externalSecretSpec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Refresh Interval",
        type_ = "string",
        json_path = ".spec.refreshTime"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    doc = "ClusterExternalSecret creates the same ExternalSecret in every namespace its selectors pick."
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretSpec {
    /// The spec of the ExternalSecrets to create, copied verbatim into each.
    pub external_secret_spec: ExternalSecretSpec,

    /// The name of the ExternalSecrets to create; defaults to the ClusterExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "external_secret_name_schema")]
    pub external_secret_name: Option<String>,

    /// Labels and annotations of the ExternalSecrets to create (they replace the
    /// ExternalSecrets' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_metadata: Option<ExternalSecretMetadata>,

    /// Deprecated: use `namespaceSelectors`. Namespaces whose labels match; ORed with the
    /// others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Namespaces whose labels match any of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,

    /// Deprecated: use `namespaceSelectors`. Namespaces by name; ORed with the selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "namespaces_schema")]
    pub namespaces: Vec<String>,

    /// How often the namespaces are checked again (a Go duration; default `1h`). esox also
    /// reacts to namespace label changes at once.
    #[serde(
        default,
        rename = "refreshTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_time: Option<String>,
}

/// ESO's `externalSecretName` validation: a DNS-1123 subdomain.
fn external_secret_name_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 253,
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    })
}

/// ESO's `namespaces` validation: DNS-1123 labels.
fn namespaces_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": 63,
            "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
        }
    })
}

/// Labels and annotations for the ExternalSecrets a ClusterExternalSecret makes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretMetadata {
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A namespace the ExternalSecret could not be written to, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretNamespaceFailure {
    /// The namespace.
    pub namespace: String,
    /// Why (ESO's words, e.g. `external secret already exists in namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// ESO's ClusterExternalSecret condition: type, status, message (no reason, no time).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatusCondition {
    /// `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// Why not ready (`one or more namespaces failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Observed state of a ClusterExternalSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatus {
    /// The name of the ExternalSecrets it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,
    /// Namespaces it could not write the ExternalSecret to, sorted by namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_namespaces: Vec<ClusterExternalSecretNamespaceFailure>,
    /// Namespaces holding its ExternalSecret, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioned_namespaces: Vec<String>,
    /// Conditions; `Ready` is the one ESO writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterExternalSecretStatusCondition>,
}

impl ClusterExternalSecret {
    /// The name of its ExternalSecrets: `externalSecretName`, else its own name.
    pub fn external_secret_name(&self) -> String {
        super::name_or_own(self.spec.external_secret_name.as_ref(), &self.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_eso_manifests_and_defaults_the_name() {
        let ces: ClusterExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterExternalSecret",
            "metadata": {"name": "shared"},
            "spec": {
                "externalSecretSpec": {
                    "secretStoreRef": {"name": "fake", "kind": "ClusterSecretStore"},
                    "data": [{"secretKey": "k", "remoteRef": {"key": "r"}}],
                },
                "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
                "namespaces": ["one"],
                "refreshTime": "1m",
                "externalSecretMetadata": {"labels": {"l": "v"}},
            },
        }))
        .unwrap();
        assert_eq!(ces.external_secret_name(), "shared");
        assert_eq!(ces.spec.refresh_time.as_deref(), Some("1m"));
        assert_eq!(ces.spec.namespaces, ["one"]);
        let status: ClusterExternalSecretStatus = serde_json::from_value(serde_json::json!({
            "externalSecretName": "shared",
            "provisionedNamespaces": ["a"],
            "failedNamespaces": [{"namespace": "b", "reason": "external secret already exists in namespace"}],
            "conditions": [{"type": "Ready", "status": "False", "message": "one or more namespaces failed"}],
        }))
        .unwrap();
        assert_eq!(status.failed_namespaces[0].namespace, "b");
    }
}
