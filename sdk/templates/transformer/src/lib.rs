//! A transformer: secret data in, secret data out.
//!
//! Config (JSON, from the ExternalSecret's `template.plugins[].config`):
//! `{"prefix": "APP_"}` adds a prefix to every key.

use esox_plugin_sdk::transformer::{Entry, PluginError};
use serde::Deserialize;

/// The config; an ExternalSecret that declares none gets the default.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Added in front of every key.
    pub prefix: String,
}

/// The transformation, callable natively in tests.
pub fn transform(input: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
    let config: Config = esox_plugin_sdk::config(config)?;
    Ok(input
        .into_iter()
        .map(|e| Entry {
            key: format!("{}{}", config.prefix, e.key),
            value: e.value,
        })
        .collect())
}

esox_plugin_sdk::transformer!(transform);

#[cfg(test)]
mod tests {
    use super::*;
    use esox_plugin_sdk::transformer::entry;

    #[test]
    fn prefixes_keys() {
        let out = transform(vec![entry("a", b"1")], r#"{"prefix": "X_"}"#).unwrap();
        assert_eq!(out[0].key, "X_a");
        assert_eq!(out[0].value, b"1");
        assert_eq!(transform(vec![entry("a", b"1")], "").unwrap()[0].key, "a");
    }

    #[test]
    fn a_misspelt_config_is_an_error() {
        let err = transform(vec![], r#"{"prefx": "X_"}"#).unwrap_err();
        assert!(
            err.message.contains("unknown field `prefx`"),
            "{}",
            err.message
        );
    }
}
