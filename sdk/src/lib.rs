//! The esox plugin SDK: bindings for the `wit/plugin.wit` contract, one module per world,
//! one macro per world that exports a plain function as the plugin, and typed config parsing.
//!
//! A plugin is a function and one line:
//!
//! ```
//! use esox_plugin_sdk::generator::{Generated, PluginError, entry};
//!
//! /// The config, from JSON; an empty config is the default.
//! #[derive(Default, serde::Deserialize)]
//! #[serde(default)]
//! struct Config {
//!     value: String,
//! }
//!
//! /// The generation, callable natively in tests.
//! fn constant(config: &str) -> Result<Generated, PluginError> {
//!     let config: Config = esox_plugin_sdk::config(config)?;
//!     Ok(Generated { data: vec![entry("value", config.value.as_bytes())], state: None })
//! }
//!
//! // The unit struct `Plugin`, its `Guest` impl and, on wasm32, the component's exports.
//! esox_plugin_sdk::generator!(constant);
//!
//! # fn main() {
//! assert_eq!(constant(r#"{"value": "42"}"#).unwrap().data[0].value, b"42");
//! assert_eq!(constant("").unwrap().data[0].value, b"");
//! let err = constant(r#"{"value": 42}"#).unwrap_err();
//! assert!(err.message.starts_with("invalid config: invalid type: integer `42`"), "{}", err.message);
//! # }
//! ```
//!
//! The macros are [`transformer!`], [`generator!`] and [`template!`]; [`config`] and
//! [`config_named`] parse a config. Build with `cargo build --target wasm32-wasip2 --release`
//! (or `esox plugin build`); the `.wasm` file is a component the esox host loads. The
//! package carries its own copy of the contract (`wit/plugin.wit`), so it builds outside the
//! esox repository: `esox plugin new` writes it beside a new plugin.

mod export;

use serde::de::DeserializeOwned;

/// Parses a plugin's JSON config (a transformer's `config`, a generator's spec) as `T`.
/// Empty or whitespace-only text is `T::default()`: a plugin declared without a config.
/// The error reads `invalid config: ` and serde's message, which names the field and the
/// expected type (config is declared in the ExternalSecret; it is not secret data).
///
/// ```
/// #[derive(Debug, Default, PartialEq, serde::Deserialize)]
/// #[serde(default, deny_unknown_fields)]
/// struct Config { prefix: String }
///
/// let c: Config = esox_plugin_sdk::config(r#"{"prefix": "X_"}"#).unwrap();
/// assert_eq!(c.prefix, "X_");
/// assert_eq!(esox_plugin_sdk::config::<Config>(" \n").unwrap(), Config::default());
/// let err = esox_plugin_sdk::config::<Config>(r#"{"prefx": "X_"}"#).unwrap_err();
/// assert!(err.message.starts_with("invalid config: unknown field `prefx`"), "{}", err.message);
/// assert_eq!(err.key, None);
/// ```
pub fn config<T: DeserializeOwned + Default>(text: &str) -> Result<T, generator::PluginError> {
    config_named(text, "config")
}

/// [`config`], with `what` naming the config in the error: `config_named::<Spec>(text,
/// "Password spec")` fails with `invalid Password spec: …`.
pub fn config_named<T: DeserializeOwned + Default>(
    text: &str,
    what: &str,
) -> Result<T, generator::PluginError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(text).map_err(|e| generator::error(format!("invalid {what}: {e}")))
}

/// The `generator-plugin` world: generate secret data from a JSON config.
pub mod generator {
    wit_bindgen::generate!({
        path: "wit",
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
        path: "wit",
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
        path: "wit",
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// `wit/` in this package is a copy of the repository's `wit/`, the contract's one source.
    /// Outside the repository (a packaged or vendored copy) there is nothing to compare.
    #[test]
    fn the_wit_copy_is_the_contract() {
        // Cargo's run-time CARGO_MANIFEST_DIR: a build reused from another checkout keeps
        // the path it was compiled in.
        let here = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let here = here.as_path();
        let source = here.join("../wit");
        if !source.join("plugin.wit").exists() {
            return;
        }
        let wit_files = |dir: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "wit"))
                .map(|p| p.file_name().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        let names = wit_files(&source);
        assert_eq!(
            names,
            wit_files(&here.join("wit")),
            "sdk/wit/ holds other .wit files than wit/"
        );
        for name in names {
            assert_eq!(
                std::fs::read_to_string(here.join("wit").join(&name)).unwrap(),
                std::fs::read_to_string(source.join(&name)).unwrap(),
                "sdk/wit/{0:?} differs from wit/{0:?}: run `cp wit/*.wit sdk/wit/`",
                name
            );
        }
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    struct Spec {
        length: Option<u32>,
        no_upper: bool,
    }

    #[test]
    fn config_empty_is_default_and_errors_name_the_config() {
        for empty in ["", " ", "\n\t "] {
            assert_eq!(super::config::<Spec>(empty).unwrap(), Spec::default());
        }
        let s: Spec = super::config(r#"{"length": 8, "noUpper": true}"#).unwrap();
        assert_eq!(
            s,
            Spec {
                length: Some(8),
                no_upper: true
            }
        );
        let e = super::config::<Spec>("{").unwrap_err();
        assert!(
            e.message.starts_with("invalid config: EOF"),
            "{}",
            e.message
        );
        assert_eq!(e.key, None);
        let e = super::config_named::<Spec>(r#"{"length": "8"}"#, "Password spec").unwrap_err();
        assert!(
            e.message
                .starts_with("invalid Password spec: invalid type: string \"8\", expected u32"),
            "{}",
            e.message
        );
        // Any JSON value with a default, for plugins that read config loosely.
        let v: serde_json::Value = super::config("").unwrap();
        assert!(v.is_null());
    }

    mod transformer_macro {
        use crate::transformer::{Entry, Guest, PluginError, entry, error};

        fn reverse(mut input: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
            if config == "fail" {
                return Err(error("asked to"));
            }
            input.reverse();
            Ok(input)
        }

        crate::transformer!(reverse);

        #[test]
        fn forwards_data_and_config() {
            let out = Plugin::transform(vec![entry("a", b"1"), entry("b", b"2")], String::new());
            assert_eq!(out.unwrap()[0].key, "b");
            let err = Plugin::transform(vec![], "fail".into()).unwrap_err();
            assert_eq!(err.message, "asked to");
        }
    }

    mod generator_macro {
        use crate::generator::{Generated, Guest, PluginError, entry};

        crate::generator!(|config: &str| -> Result<Generated, PluginError> {
            Ok(Generated {
                data: vec![entry("config", config.as_bytes())],
                state: None,
            })
        });

        #[test]
        fn forwards_the_config_and_ignores_the_reserved_state() {
            let g = Plugin::generate("{}".into(), Some(b"old".to_vec())).unwrap();
            assert_eq!(g.data[0].value, b"{}");
            assert_eq!(g.state, None);
        }
    }

    mod template_macro {
        use crate::template::{Entry, Guest, PluginError, Rendered, Scope, Template};

        fn lookup(templates: Vec<Template>, context: Vec<Entry>, options: &str) -> Vec<Rendered> {
            templates
                .into_iter()
                .map(|t| Rendered {
                    output: match context.iter().find(|e| e.key == t.text) {
                        Some(e) if matches!(t.scope, Scope::Values) => Ok(vec![Entry {
                            key: t.name.clone(),
                            value: [e.value.as_slice(), options.as_bytes()].concat(),
                        }]),
                        _ => Err(PluginError {
                            message: "no such key".into(),
                            key: Some(t.name.clone()),
                        }),
                    },
                    name: t.name,
                })
                .collect()
        }

        crate::template!(lookup);

        #[test]
        fn forwards_templates_context_and_options() {
            let t = |name: &str, text: &str| Template {
                name: name.into(),
                text: text.into(),
                scope: Scope::Values,
            };
            let out = Plugin::render(
                vec![t("x", "a"), t("y", "missing")],
                vec![crate::template::entry("a", b"1")],
                "!".into(),
            );
            assert_eq!(out[0].output.as_ref().unwrap()[0].value, b"1!");
            assert_eq!(
                out[1].output.as_ref().unwrap_err().key.as_deref(),
                Some("y")
            );
        }
    }
}
