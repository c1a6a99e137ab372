//! A transformer that flattens JSON values into one key per leaf:
//! `db = {"user": "app", "port": 5432}` becomes `db_user = app` and `db_port = 5432`.
//!
//! Config (JSON, all optional): `{"separator": "_", "keep": false}`; `keep` keeps the original
//! JSON key beside its leaves. Values that are not JSON objects or arrays pass through.

use esox_plugin_sdk::transformer::{Entry, Guest, PluginError, entry, error};

/// Flattens every JSON object or array value of `input`.
pub fn flatten(input: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
    let config: serde_json::Value = if config.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(config).map_err(|e| error(format!("config is not JSON: {e}")))?
    };
    let sep = config["separator"].as_str().unwrap_or("_");
    let keep = config["keep"].as_bool().unwrap_or(false);
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

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct JsonFlatten;

impl Guest for JsonFlatten {
    fn transform(input: Vec<Entry>, config: String) -> Result<Vec<Entry>, PluginError> {
        flatten(input, &config)
    }
}

#[cfg(target_arch = "wasm32")]
esox_plugin_sdk::transformer::export_transformer!(JsonFlatten);

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
}
