//! The esox plugin SDK: bindings for the `wit/plugin.wit` contract, one module per world.
//!
//! A plugin is one small file: implement the world's `Guest` trait and export it with the
//! world's macro.
//!
//! ```ignore
//! use esox_plugin_sdk::generator::{Generated, Guest, PluginError};
//!
//! struct Constant;
//!
//! impl Guest for Constant {
//!     fn generate(_config: String, _state: Option<Vec<u8>>) -> Result<Generated, PluginError> {
//!         Ok(Generated { data: vec![esox_plugin_sdk::generator::entry("value", b"42")], state: None })
//!     }
//! }
//!
//! esox_plugin_sdk::generator::export_generator!(Constant);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` file is a component
//! the esox host loads.

/// The `generator-plugin` world: generate secret data from a JSON config.
pub mod generator {
    wit_bindgen::generate!({
        path: "../wit",
        world: "generator-plugin",
        pub_export_macro: true,
        export_macro_name: "export_generator",
        default_bindings_module: "esox_plugin_sdk::generator",
    });

    pub use self::esox::plugin::types::{Entry, PluginError};
    pub use self::exports::esox::plugin::generator::{Generated, Guest};

    /// Builds an entry.
    pub fn entry(key: &str, value: &[u8]) -> Entry {
        Entry {
            key: key.to_string(),
            value: value.to_vec(),
        }
    }

    /// A plugin error about the whole call.
    pub fn error(message: impl Into<String>) -> PluginError {
        PluginError {
            message: message.into(),
            key: None,
        }
    }
}

/// The `transformer-plugin` world: transform secret data.
pub mod transformer {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transformer-plugin",
        // One set of contract types (Entry, PluginError) for every world.
        with: { "esox:plugin/types@0.1.0": crate::generator::esox::plugin::types },
        pub_export_macro: true,
        export_macro_name: "export_transformer",
        default_bindings_module: "esox_plugin_sdk::transformer",
    });

    pub use self::exports::esox::plugin::transformer::Guest;
    pub use crate::generator::{Entry, PluginError, entry, error};
}

/// The `template-plugin` world: render templates.
pub mod template {
    wit_bindgen::generate!({
        path: "../wit",
        world: "template-plugin",
        // One set of contract types (Entry, PluginError) for every world.
        with: { "esox:plugin/types@0.1.0": crate::generator::esox::plugin::types },
        pub_export_macro: true,
        export_macro_name: "export_template_engine",
        default_bindings_module: "esox_plugin_sdk::template",
    });

    pub use self::exports::esox::plugin::template_engine::{Guest, Rendered, Scope, Template};
    pub use crate::generator::{Entry, PluginError, entry, error};

    /// ESO's `KeysAndValues` scope: the rendered text is a YAML map whose entries become the
    /// Secret's keys (ESO unmarshals it into a `map[string]string`); blank text is no entries.
    /// The error names only the position, never the text: it is rendered from secrets.
    ///
    /// ```
    /// let entries = esox_plugin_sdk::template::keys_and_values(b"user: app\npass: s3cr3t\n").unwrap();
    /// assert_eq!(entries[0].key, "pass");
    /// let err = esox_plugin_sdk::template::keys_and_values(b"user: [s3cr3t").unwrap_err();
    /// assert!(!err.contains("s3cr3t"));
    /// ```
    #[cfg(feature = "yaml")]
    pub fn keys_and_values(text: &[u8]) -> Result<Vec<Entry>, String> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let map: std::collections::BTreeMap<String, String> = serde_yaml::from_slice(text)
            .map_err(|e| {
                format!(
                    "could not unmarshal template to 'map[string][]byte': {}",
                    yaml_error_position(&e)
                )
            })?;
        Ok(map
            .into_iter()
            .map(|(key, v)| Entry {
                key,
                value: v.into_bytes(),
            })
            .collect())
    }

    /// A YAML error's position only: serde_yaml's messages can quote the input.
    #[cfg(feature = "yaml")]
    pub fn yaml_error_position(e: &serde_yaml::Error) -> String {
        match e.location() {
            Some(l) => format!("invalid YAML at line {} column {}", l.line(), l.column()),
            None => "invalid YAML".to_string(),
        }
    }
}
