//! `ExternalSecret`: what to fetch, from which store, and how to shape the Kubernetes Secret.
//!
//! Field names, defaults and enum spellings follow ESO's `external-secrets.io/v1` API exactly so
//! that ESO manifests apply unchanged. The same schema is also served as `v1beta1` (see
//! [`crate::api::crd`]), which is what most ESO manifests in the wild still say.

// kube-derive takes one `printcolumn(...)` per column; clippy reads repeated `type_ = "string"`
// inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;

/// Spec of an ExternalSecret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "external-secrets.io",
    version = "v1",
    kind = "ExternalSecret",
    namespaced,
    status = "ExternalSecretStatus",
    shortname = "es",
    category = "external-secrets",
    printcolumn(
        name = "StoreType",
        type_ = "string",
        json_path = ".spec.secretStoreRef.kind"
    ),
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Refresh Interval",
        type_ = "string",
        json_path = ".spec.refreshInterval"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.refreshTime"),
    doc = "ExternalSecret keeps a Kubernetes Secret in sync with data held by an external secret store."
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// The store to fetch from. Optional when every entry names its own `sourceRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_store_ref: Option<SecretStoreRef>,

    /// The Secret to create or update.
    #[serde(default = "default_target")]
    pub target: ExternalSecretTarget,

    /// When to refresh: `CreatedOnce`, `Periodic` (the default) or `OnChange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_policy: Option<RefreshPolicy>,

    /// How often to refresh, as a Go duration. `0` syncs once and then only on spec changes.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: Option<String>,

    /// Individual keys to fetch, each into one key of the Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ExternalSecretData>,

    /// Whole secrets or searches whose keys all go into the Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_from: Vec<ExternalSecretDataFromRemoteRef>,
}

fn default_refresh_interval() -> Option<String> {
    Some("1h".to_string())
}

fn default_target() -> ExternalSecretTarget {
    ExternalSecretTarget {
        creation_policy: CreationPolicy::Owner,
        deletion_policy: DeletionPolicy::Retain,
        ..Default::default()
    }
}

/// Reference to a `SecretStore` or `ClusterSecretStore`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// Name of the store.
    #[serde(default)]
    pub name: String,
    /// `SecretStore` (the default) or `ClusterSecretStore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreKind>,
}

impl SecretStoreRef {
    /// The referenced kind, applying ESO's default.
    pub fn kind(&self) -> StoreKind {
        self.kind.unwrap_or_default()
    }
}

/// The two kinds of store.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// A namespaced store, usable only from its own namespace.
    #[default]
    SecretStore,
    /// A cluster-wide store, usable from namespaces its conditions allow.
    ClusterSecretStore,
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreKind::SecretStore => "SecretStore",
            StoreKind::ClusterSecretStore => "ClusterSecretStore",
        })
    }
}

/// When ESO re-fetches data for an ExternalSecret.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// Sync once when the ExternalSecret is created; never again.
    CreatedOnce,
    /// Sync every `refreshInterval`.
    #[default]
    Periodic,
    /// Sync only when the ExternalSecret's spec, labels or annotations change.
    OnChange,
}

/// The Secret esox writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTarget {
    /// Name of the Secret; defaults to the ExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether and how esox owns the Secret.
    #[serde(default)]
    pub creation_policy: CreationPolicy,
    /// What to do with the Secret when the provider no longer has the data.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// How to shape the Secret from the fetched data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,
    /// Make the Secret immutable; esox then never updates it once written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
}

/// ESO's creation policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum CreationPolicy {
    /// Create the Secret and own it (ownerReference, garbage-collected with the ExternalSecret).
    #[default]
    Owner,
    /// Create the Secret without an ownerReference; it outlives the ExternalSecret.
    Orphan,
    /// Merge into an existing Secret; never create one.
    Merge,
    /// Do not create or update any Secret.
    None,
    /// Create the Secret if missing, otherwise merge into it.
    CreateOrMerge,
}

/// ESO's deletion policies: what happens when the provider returns no data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the Secret as it is.
    #[default]
    Retain,
    /// Delete the Secret.
    Delete,
    /// Remove only the keys esox manages from the Secret.
    Merge,
}

/// Template for the Secret (rendered by the Wasm template engines).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplate {
    /// Secret type, e.g. `kubernetes.io/tls`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `v2` (the default) selects ESO-compatible Go templates.
    #[serde(default = "default_engine_version")]
    pub engine_version: Option<String>,
    /// Labels and annotations for the Secret, rendered as templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ExternalSecretTemplateMetadata>,
    /// `Replace` (the default) or `Merge` the template output with the fetched data.
    #[serde(default)]
    pub merge_policy: TemplateMergePolicy,
    /// Templates per Secret key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Templates read from ConfigMaps, Secrets or literals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template_from: Vec<TemplateFrom>,
    /// esox extension: transformer plugins applied in order to the fetched data before
    /// templating (each sees the previous one's output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<TemplatePlugin>,
}

/// One transformer in a template's plugin pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplatePlugin {
    /// Which plugin.
    #[serde(rename = "ref")]
    pub plugin_ref: PluginRef,
    /// The plugin's configuration, handed to it as JSON.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub config: Option<serde_json::Value>,
}

/// A reference to a plugin: a built-in, or a plugin object (`WasmPlugin` in the
/// ExternalSecret's namespace, `ClusterWasmPlugin` cluster-wide).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PluginRef {
    /// `Builtin`, `WasmPlugin` or `ClusterWasmPlugin`.
    pub kind: PluginSource,
    /// The plugin's name.
    pub name: String,
}

/// Where a referenced plugin comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum PluginSource {
    /// Built into esox (`pkcs12`, ...).
    #[default]
    Builtin,
    /// A `WasmPlugin` object in the ExternalSecret's namespace.
    WasmPlugin,
    /// A `ClusterWasmPlugin` object approved by the platform team.
    ClusterWasmPlugin,
}

fn default_engine_version() -> Option<String> {
    Some("v2".to_string())
}

/// Template merge policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum TemplateMergePolicy {
    /// Only the template output ends up in the Secret.
    #[default]
    Replace,
    /// Template output is merged over the fetched data.
    Merge,
}

/// Metadata templates for the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplateMetadata {
    /// Annotations to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Finalizers to set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// One source of templates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    /// Templates from a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<TemplateRef>,
    /// Templates from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<TemplateRef>,
    /// Where the rendered output goes: `Data` (the default), `Annotations` or `Labels`.
    #[serde(default = "default_template_target")]
    pub target: Option<TemplateTarget>,
    /// A literal template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// How the rendered values of this entry are decoded before they reach the target:
    /// `None` when omitted, `Base64`, `Base64URL` or `Auto`. Keys are never decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "decoding_strategy_schema")]
    pub values_decoding_strategy: Option<DecodingStrategy>,
}

/// ESO's `ExternalSecretDecodingStrategy` enum as its v1 CRD has it for
/// `valuesDecodingStrategy` (optional, no default), keeping the field's own description.
fn decoding_strategy_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Auto", "Base64", "Base64URL", "None"]
    })
}

impl TemplateFrom {
    /// The decoding applied to this entry's rendered values (ESO: none when omitted).
    pub fn values_decoding(&self) -> DecodingStrategy {
        self.values_decoding_strategy
            .unwrap_or(DecodingStrategy::None)
    }
}

fn default_template_target() -> Option<TemplateTarget> {
    Some(TemplateTarget::Data)
}

/// Where rendered templates go.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum TemplateTarget {
    /// Secret data.
    #[default]
    Data,
    /// Secret annotations.
    Annotations,
    /// Secret labels.
    Labels,
}

/// A ConfigMap or Secret holding templates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Object name (same namespace as the ExternalSecret).
    pub name: String,
    /// Keys to use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<TemplateRefItem>,
}

/// One key of a template source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    /// Key in the ConfigMap or Secret.
    pub key: String,
    /// `Values` (the default) renders the value; `KeysAndValues` renders both.
    #[serde(default = "default_template_scope")]
    pub template_as: Option<TemplateScope>,
}

fn default_template_scope() -> Option<TemplateScope> {
    Some(TemplateScope::Values)
}

/// How a template source is rendered.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum TemplateScope {
    /// Render the values only.
    #[default]
    Values,
    /// Render keys and values.
    KeysAndValues,
}

/// One key of the Secret, fetched from the store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// Key in the Secret.
    pub secret_key: String,
    /// What to fetch.
    pub remote_ref: ExternalSecretDataRemoteRef,
    /// Overrides `secretStoreRef` for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<StoreSourceRef>,
}

/// A remote secret (and optionally one property of it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataRemoteRef {
    /// Key (name or path) of the remote secret.
    pub key: String,
    /// `None` (the default) or `Fetch` to read the secret's metadata (tags) instead.
    #[serde(default)]
    pub metadata_policy: MetadataPolicy,
    /// Property of a JSON secret, as a gjson-style path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Version of the remote secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How keys are converted: `Default` or `Unicode`.
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,
    /// How values are decoded: `None` (the default), `Base64`, `Base64URL` or `Auto`.
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,
    /// What to do with values containing NUL bytes: `Ignore` (the default) or `Fail`.
    #[serde(default)]
    pub null_byte_policy: NullBytePolicy,
}

/// Metadata policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq, Hash)]
pub enum MetadataPolicy {
    /// Fetch the value.
    #[default]
    None,
    /// Fetch the metadata (tags).
    Fetch,
}

/// Key conversion.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum ConversionStrategy {
    /// Keep keys as they are.
    #[default]
    Default,
    /// Replace characters invalid in Secret keys by `_UXXXX_` escapes.
    Unicode,
}

/// Value decoding.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum DecodingStrategy {
    /// Try base64 then base64url, falling back to the raw value.
    Auto,
    /// Standard base64.
    Base64,
    /// URL-safe base64.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// No decoding.
    #[default]
    None,
}

/// NUL byte handling.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum NullBytePolicy {
    /// Keep values with NUL bytes.
    #[default]
    Ignore,
    /// Fail the sync when a value contains a NUL byte.
    Fail,
}

/// Where one entry's data comes from, overriding `secretStoreRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreSourceRef {
    /// A store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<SecretStoreRef>,
    /// A generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

/// Reference to a generator (`generators.external-secrets.io`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorRef {
    /// API version of the generator, e.g. `generators.external-secrets.io/v1alpha1`.
    #[serde(default = "default_generator_api_version")]
    pub api_version: Option<String>,
    /// Kind of the generator, e.g. `Password`.
    pub kind: String,
    /// Name of the generator.
    pub name: String,
}

fn default_generator_api_version() -> Option<String> {
    Some("generators.external-secrets.io/v1alpha1".to_string())
}

/// A whole remote secret, or a search, whose keys all go into the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataFromRemoteRef {
    /// Extract every property of one remote secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<ExternalSecretDataRemoteRef>,
    /// Find remote secrets by name, path or tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<ExternalSecretFind>,
    /// Rewrite the keys found, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<ExternalSecretRewrite>,
    /// Overrides `secretStoreRef` for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<StoreSourceRef>,
}

/// Search for remote secrets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretFind {
    /// Root path to search under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Match secret names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FindName>,
    /// Match tags (all pairs must match).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// How keys are converted.
    #[serde(default)]
    pub conversion_strategy: ConversionStrategy,
    /// How values are decoded.
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,
}

/// Name matcher.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FindName {
    /// Regular expression the name must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,
}

/// One key rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretRewrite {
    /// Replace a regular expression in every key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<RewriteRegexp>,
    /// Rewrite every key with a template (`{{ .value }}` is the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<RewriteTransform>,
    /// Merge JSON values into one key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub merge: Option<serde_json::Value>,
}

/// Regexp rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RewriteRegexp {
    /// Regular expression (Go RE2 syntax).
    pub source: String,
    /// Replacement, with `$1`/`${name}` references.
    pub target: String,
}

/// Template rewrite.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RewriteTransform {
    /// Go template; `.value` is the key being rewritten.
    pub template: String,
}

/// Observed state of an ExternalSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// When the data was last fetched from the provider.
    // A time esox cannot represent (the apiserver accepts `9999-12-31T23:59:59Z`) reads as
    // none: never refreshed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::lenient_time"
    )]
    pub refresh_time: Option<Time>,
    /// The ExternalSecret's generation (and metadata hash) at the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// Conditions; `Ready` is the one users watch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Secret this ExternalSecret writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<LocalObjectReference>,
}

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct LocalObjectReference {
    /// Name of the object.
    #[serde(default)]
    pub name: String,
}

impl ExternalSecret {
    /// Name of the Secret this ExternalSecret writes (`target.name`, else its own name).
    pub fn target_name(&self) -> String {
        super::name_or_own(self.spec.target.name.as_ref(), &self.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status times the apiserver accepts but a timestamp cannot hold do not make the object
    /// (and with it the whole watch list) unreadable.
    #[test]
    fn status_times_beyond_what_esox_represents_read_as_none() {
        let es = |t: &str| -> ExternalSecret {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "x"},
                "spec": {},
                "status": {
                    "refreshTime": t,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}],
                },
            }))
            .unwrap()
        };
        let status = es("9999-12-31T23:59:59Z").status.unwrap();
        assert_eq!(status.refresh_time, None);
        assert_eq!(status.conditions[0].last_transition_time, None);
        let status = es("2024-01-02T03:04:05Z").status.unwrap();
        assert_eq!(
            status.refresh_time.unwrap().0,
            "2024-01-02T03:04:05Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert!(status.conditions[0].last_transition_time.is_some());
        let text = r#"{"metadata":{"name":"x"},"spec":{},"status":{"refreshTime":null}}"#;
        let es: ExternalSecret = serde_json::from_str(text).unwrap();
        assert_eq!(es.status.unwrap().refresh_time, None);
    }

    /// ESO v1's `templateFrom[].valuesDecodingStrategy` is read, and left out when omitted (so a
    /// round trip does not add a default ESO would not store).
    #[test]
    fn template_from_values_decoding_strategy() {
        let from: TemplateFrom = serde_json::from_value(serde_json::json!({
            "literal": "a: SGVsbG8=",
            "valuesDecodingStrategy": "Base64URL",
        }))
        .unwrap();
        assert_eq!(
            from.values_decoding_strategy,
            Some(DecodingStrategy::Base64Url)
        );
        assert_eq!(from.values_decoding(), DecodingStrategy::Base64Url);

        let from: TemplateFrom =
            serde_json::from_value(serde_json::json!({"literal": "a: b"})).unwrap();
        assert_eq!(from.values_decoding_strategy, None);
        assert_eq!(from.values_decoding(), DecodingStrategy::None);
        let back = serde_json::to_value(&from).unwrap();
        assert!(back.get("valuesDecodingStrategy").is_none(), "{back}");

        for bad in ["base64", "Hex", ""] {
            let r: Result<TemplateFrom, _> =
                serde_json::from_value(serde_json::json!({"valuesDecodingStrategy": bad}));
            assert!(r.is_err(), "{bad:?}");
        }
    }
}
