//! A transformer that renders the data into one `.env` or `.properties` file, for
//! applications that read their configuration from a file.
//!
//! Config (JSON): `{"key": "app.env", "format": "env" | "properties", "keep": false}`.
//! `env` writes `NAME="value"` with shell-safe quoting and upper-cased names; `properties`
//! writes `name=value` with Java's escapes. `keep` keeps the input keys beside the file.

use esox_plugin_sdk::transformer::{Entry, PluginError, entry, error};
use serde::Deserialize;

/// The config; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The file's key (default `.env`, or `application.properties` for `properties`).
    pub key: Option<String>,
    /// `env` (the default) or `properties`.
    pub format: Option<String>,
    /// Keep the input keys beside the file.
    pub keep: bool,
}

/// Renders `input` into the configured file key.
pub fn render(input: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
    let config: Config = esox_plugin_sdk::config(config)?;
    let format = config.format.as_deref().unwrap_or("env");
    let key = config.key.as_deref().unwrap_or(if format == "properties" {
        "application.properties"
    } else {
        ".env"
    });
    let keep = config.keep;
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

esox_plugin_sdk::transformer!(render);

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

    #[test]
    fn empty_config_is_the_default_and_bad_config_is_an_error() {
        let out = render(vec![entry("a", b"1")], "").unwrap();
        assert_eq!(
            (out[0].key.as_str(), out[0].value.as_slice()),
            (".env", &b"A=\"1\"\n"[..])
        );
        let e = render(vec![], r#"{"keep": "yes"}"#).unwrap_err();
        assert!(
            e.message.starts_with("invalid config: invalid type"),
            "{}",
            e.message
        );
        let e = render(vec![entry("a", b"1")], r#"{"format": "ini"}"#).unwrap_err();
        assert!(
            e.message.contains("unknown format \"ini\""),
            "{}",
            e.message
        );
    }
}
