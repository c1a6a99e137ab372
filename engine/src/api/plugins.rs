//! `plugins.esox.dev`: user plugins, shipped to the cluster as WebAssembly components.
//!
//! Two kinds, for two levels of trust: a `ClusterWasmPlugin` is approved by the platform team
//! and usable from every namespace; a `WasmPlugin` lives in one namespace and only
//! ExternalSecrets of that namespace can use it, with a component stored in that same
//! namespace. Either way the component is pinned by its sha256 digest, checked before it is
//! compiled, so changing the ConfigMap cannot swap the code under an approved name.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The plugins API group.
pub const PLUGINS_GROUP: &str = "plugins.esox.dev";

/// The settings shared by both plugin kinds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PluginSpec {
    /// The contract world the component implements: `Transformer` or `Generator`.
    pub world: PluginWorld,
    /// Where the component (`.wasm`) is stored.
    pub source: ComponentSource,
    /// The component's sha256 (hex, optionally prefixed `sha256:`). esox refuses a component
    /// whose bytes do not hash to this.
    pub sha256: String,
    /// Default configuration (JSON) for generators; transformers get theirs from the
    /// ExternalSecret that uses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub config: Option<serde_json::Value>,
}

/// The plugin worlds users can implement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, JsonSchema, PartialEq, Eq)]
pub enum PluginWorld {
    /// Transforms fetched data before templating (`transformer-plugin`).
    #[default]
    Transformer,
    /// Generates data, referenced from `dataFrom[].sourceRef.generatorRef` (`generator-plugin`).
    Generator,
}

/// The CRD field names the host's worlds (template engines are built in, so a plugin object
/// cannot be one).
impl From<PluginWorld> for esox_wasm::World {
    fn from(world: PluginWorld) -> Self {
        match world {
            PluginWorld::Transformer => esox_wasm::World::Transformer,
            PluginWorld::Generator => esox_wasm::World::Generator,
        }
    }
}

/// Where the component is stored: one ConfigMap (`binaryData`) or Secret (`data`) key, or
/// several ConfigMaps whose keys are joined in order.
///
/// The stored bytes may be gzip-compressed (esox recognises gzip by its magic bytes), and a
/// ConfigMap holds at most 1 MiB: a JavaScript or Python component (2 to 20 MB) is shipped
/// compressed and split. `esox plugin pack` writes the objects. Either way `sha256` is the
/// digest of the component itself, as `esox plugin build` prints it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSource {
    /// A ConfigMap's `binaryData` key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ComponentRef>,
    /// A Secret's `data` key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ComponentRef>,
    /// ConfigMap `binaryData` keys whose contents, joined in this order, are the component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<ComponentRef>,
}

impl ComponentSource {
    /// Every object reference in the source.
    pub fn refs(&self) -> impl Iterator<Item = &ComponentRef> {
        self.config_map
            .iter()
            .chain(&self.secret)
            .chain(&self.config_maps)
    }
}

/// One object key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRef {
    /// Object name.
    pub name: String,
    /// Namespace: required for a `ClusterWasmPlugin`; a `WasmPlugin` always reads its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key holding the component bytes.
    pub key: String,
}

/// A plugin usable only from its own namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "plugins.esox.dev",
    version = "v1alpha1",
    kind = "WasmPlugin",
    namespaced,
    category = "esox",
    printcolumn = r#"{"name":"World","type":"string","jsonPath":".spec.world"}"#,
    printcolumn = r#"{"name":"SHA256","type":"string","jsonPath":".spec.sha256","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "WasmPlugin is a user plugin (a WebAssembly component) usable by ExternalSecrets in its namespace."
)]
pub struct WasmPluginSpec {
    /// The plugin.
    #[serde(flatten)]
    pub plugin: PluginSpec,
}

/// A plugin approved for the whole cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "plugins.esox.dev",
    version = "v1alpha1",
    kind = "ClusterWasmPlugin",
    category = "esox",
    printcolumn = r#"{"name":"World","type":"string","jsonPath":".spec.world"}"#,
    printcolumn = r#"{"name":"SHA256","type":"string","jsonPath":".spec.sha256","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "ClusterWasmPlugin is a user plugin (a WebAssembly component) approved for every namespace."
)]
pub struct ClusterWasmPluginSpec {
    /// The plugin.
    #[serde(flatten)]
    pub plugin: PluginSpec,
}

/// The sha256 a spec declares, normalised (lower-case hex, no prefix).
pub fn declared_digest(spec: &PluginSpec) -> String {
    spec.sha256
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_worlds_keep_their_names_and_map_to_the_hosts() {
        for (world, name, host) in [
            (
                PluginWorld::Transformer,
                "Transformer",
                esox_wasm::World::Transformer,
            ),
            (
                PluginWorld::Generator,
                "Generator",
                esox_wasm::World::Generator,
            ),
        ] {
            assert_eq!(serde_json::to_value(world).unwrap(), name);
            assert_eq!(esox_wasm::World::from(world), host);
        }
    }
}
