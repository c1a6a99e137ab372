//! A transformer that flattens JSON values into one key per leaf:
//! `db = {"user": "app", "port": 5432}` becomes `db_user = app` and `db_port = 5432`.
//!
//! Config (JSON, all optional): `{"separator": "_", "keep": false}`; `keep` keeps the original
//! JSON key beside its leaves. Values that are not JSON objects or arrays pass through.

use esox_plugin_sdk::transformer::{Entry, PluginError, entry};
use serde::Deserialize;

/// The config; every field is optional.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Between a key and its leaves' names (default `_`).
    pub separator: String,
    /// Keep the original JSON key beside its leaves.
    pub keep: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            separator: "_".into(),
            keep: false,
        }
    }
}

/// Flattens every JSON object or array value of `input`.
pub fn flatten(input: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
    let Config {
        separator: sep,
        keep,
    } = esox_plugin_sdk::config(config)?;
    let sep = sep.as_str();
    let mut out = Vec::new();
    for e in input {
        match serde_json::from_slice::<serde_json::Value>(&e.value) {
            Ok(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                leaves(&e.key, &v, sep, &mut out);
                if keep {
                    out.push(e);
                }
            }
            _ => out.push(e),
        }
    }
    Ok(out)
}

fn leaves(prefix: &str, v: &serde_json::Value, sep: &str, out: &mut Vec<Entry>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                leaves(&format!("{prefix}{sep}{k}"), v, sep, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(&format!("{prefix}{sep}{i}"), v, sep, out);
            }
        }
        serde_json::Value::String(s) => out.push(entry(prefix, s.as_bytes())),
        other => out.push(entry(prefix, other.to_string().as_bytes())),
    }
}

esox_plugin_sdk::transformer!(flatten);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_nested_json_and_keeps_the_rest() {
        let out = flatten(
            vec![
                entry("db", br#"{"user":"app","port":5432,"hosts":["a","b"]}"#),
                entry("plain", b"text"),
            ],
            r#"{"separator": "."}"#,
        )
        .unwrap();
        let got: Vec<(String, String)> = out
            .into_iter()
            .map(|e| (e.key, String::from_utf8(e.value).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("db.hosts.0", "a"),
                ("db.hosts.1", "b"),
                ("db.port", "5432"),
                ("db.user", "app"),
                ("plain", "text")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }
    #[test]
    fn empty_config_is_the_default_and_bad_config_is_an_error() {
        let out = flatten(vec![entry("db", br#"{"user":"app"}"#)], " ").unwrap();
        assert_eq!(out[0].key, "db_user");
        let out = flatten(vec![entry("db", br#"{"user":"app"}"#)], r#"{"keep": true}"#).unwrap();
        assert_eq!(out.len(), 2);
        let e = flatten(vec![], r#"{"separator": 1}"#).unwrap_err();
        assert!(
            e.message.starts_with("invalid config: invalid type"),
            "{}",
            e.message
        );
    }
}
