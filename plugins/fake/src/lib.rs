//! ESO's Fake generator, inside Wasm: returns the static `data` of its spec (for tests and
//! demos of generator pipelines).

use std::collections::BTreeMap;

use esox_plugin_sdk::generator::{Entry, Generated, PluginError, entry};
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

/// The generator's whole call: the spec as JSON in, its data out.
pub fn generate(config: &str) -> Result<Generated, PluginError> {
    let spec: Spec = esox_plugin_sdk::config_named(config, "Fake spec")?;
    Ok(Generated {
        data: entries(&spec),
        state: None,
    })
}

esox_plugin_sdk::generator!(generate);

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

    #[test]
    fn generate_reads_the_spec() {
        let g = super::generate(r#"{"data": {"k": "v"}}"#).unwrap();
        assert_eq!(
            (g.data[0].key.as_str(), g.data[0].value.as_slice()),
            ("k", &b"v"[..])
        );
        assert!(super::generate("").unwrap().data.is_empty());
        let e = super::generate(r#"{"data": ["k"]}"#).unwrap_err();
        assert!(
            e.message
                .starts_with("invalid Fake spec: invalid type: sequence"),
            "{}",
            e.message
        );
    }
}
