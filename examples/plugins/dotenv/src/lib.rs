//! A transformer that renders the data into one `.env` or `.properties` file, for
//! applications that read their configuration from a file.
//!
//! Config (JSON): `{"key": "app.env", "format": "env" | "properties", "keep": false}`.
//! `env` writes `NAME="value"` with shell-safe quoting and upper-cased names; `properties`
//! writes `name=value` with Java's escapes. `keep` keeps the input keys beside the file.

use esox_plugin_sdk::transformer::{Entry, Guest, PluginError, entry, error};

/// Renders `input` into the configured file key.
pub fn render(input: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
    let config: serde_json::Value = serde_json::from_str(if config.trim().is_empty() {
        "{}"
    } else {
        config
    })
    .map_err(|e| error(format!("config is not JSON: {e}")))?;
    let format = config["format"].as_str().unwrap_or("env");
    let key = config["key"].as_str().unwrap_or(if format == "properties" {
        "application.properties"
    } else {
        ".env"
    });
    let keep = config["keep"].as_bool().unwrap_or(false);
    let mut file = String::new();
    let mut sorted: Vec<&Entry> = input.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for e in sorted {
        let value = std::str::from_utf8(&e.value).map_err(|_| PluginError {
            message: "value is not UTF-8 text".into(),
            key: Some(e.key.clone()),
        })?;
        match format {
            "env" => {
                let name: String = e
                    .key
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let quoted = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('$', "\\$")
                    .replace('\n', "\\n");
                file.push_str(&format!("{name}=\"{quoted}\"\n"));
            }
            "properties" => {
                let mut v = String::new();
                for c in value.chars() {
                    match c {
                        '\\' => v.push_str("\\\\"),
                        '\n' => v.push_str("\\n"),
                        '\r' => v.push_str("\\r"),
                        '\t' => v.push_str("\\t"),
                        '=' | ':' | '#' | '!' => {
                            v.push('\\');
                            v.push(c);
                        }
                        c if (c as u32) > 0x7e => v.push_str(&format!("\\u{:04x}", c as u32)),
                        c => v.push(c),
                    }
                }
                file.push_str(&format!("{}={v}\n", e.key.replace([' ', '=', ':'], "_")));
            }
            other => {
                return Err(error(format!(
                    "unknown format {other:?}: use env or properties"
                )));
            }
        }
    }
    let mut out = if keep { input } else { Vec::new() };
    out.push(entry(key, file.as_bytes()));
    Ok(out)
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Dotenv;

impl Guest for Dotenv {
    fn transform(input: Vec<Entry>, config: String) -> Result<Vec<Entry>, PluginError> {
        render(input, &config)
    }
}

#[cfg(target_arch = "wasm32")]
esox_plugin_sdk::transformer::export_transformer!(Dotenv);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_properties() {
        let input = vec![entry("db-user", b"app"), entry("db_pass", b"p\"$x")];
        let out = render(input.clone(), r#"{"key": "app.env"}"#).unwrap();
        assert_eq!(out[0].key, "app.env");
        assert_eq!(out[0].value, b"DB_USER=\"app\"\nDB_PASS=\"p\\\"\\$x\"\n");
        let out = render(input, r#"{"format": "properties", "keep": true}"#).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].value, b"db-user=app\ndb_pass=p\"$x\n");
    }
}
