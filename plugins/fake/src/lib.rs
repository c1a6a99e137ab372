//! ESO's Fake generator, inside Wasm: returns the static `data` of its spec (for tests and
//! demos of generator pipelines).

use std::collections::BTreeMap;

use esox_plugin_sdk::generator::{Entry, Generated, Guest, PluginError, entry, error};
use serde::Deserialize;

/// ESO's Fake generator spec.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Spec {
    /// The data to return.
    pub data: BTreeMap<String, String>,
}

/// The entries a spec yields.
pub fn entries(spec: &Spec) -> Vec<Entry> {
    spec.data
        .iter()
        .map(|(k, v)| entry(k, v.as_bytes()))
        .collect()
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Fake;

impl Guest for Fake {
    fn generate(config: String, _state: Option<Vec<u8>>) -> Result<Generated, PluginError> {
        let spec: Spec =
            serde_json::from_str(&config).map_err(|e| error(format!("invalid Fake spec: {e}")))?;
        Ok(Generated {
            data: entries(&spec),
            state: None,
        })
    }
}

// The component exports exist only in the Wasm build.
#[cfg(target_arch = "wasm32")]
esox_plugin_sdk::generator::export_generator!(Fake);

#[cfg(test)]
mod tests {
    #[test]
    fn returns_the_declared_data() {
        let spec: super::Spec = serde_json::from_str(r#"{"data": {"a": "1", "b": "2"}}"#).unwrap();
        let e = super::entries(&spec);
        assert_eq!(
            e.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(e[1].value, b"2");
    }
}
