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
}
