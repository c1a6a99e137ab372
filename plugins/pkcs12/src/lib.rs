//! PKCS#12 extraction as a transformer plugin: reads a `.p12` from one key of the fetched
//! data and adds the private key (PKCS#8 PEM) and the certificate chain (PEM, leaf →
//! intermediates → root) under new keys, before templating.
//!
//! Declared in an ExternalSecret template as
//! `plugins: [{ref: {kind: Builtin, name: pkcs12}, config: {key: keystore}}]`.
//! Config (JSON): `key` (required), `password` or `passwordKey` (a key of the data holding
//! it), `inputEncoding` (`none`, the default, or `base64`), `keyOutput` (default `tls.key`),
//! `certOutput` (default `tls.crt`), `removeInput` (default false).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use esox_plugin_sdk::transformer::{Entry, PluginError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    key: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_key: Option<String>,
    #[serde(default)]
    input_encoding: Encoding,
    #[serde(default = "default_key_output")]
    key_output: String,
    #[serde(default = "default_cert_output")]
    cert_output: String,
    #[serde(default)]
    remove_input: bool,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    None,
    Base64,
}

fn default_key_output() -> String {
    "tls.key".into()
}

fn default_cert_output() -> String {
    "tls.crt".into()
}

fn error(message: impl Into<String>, key: Option<&str>) -> PluginError {
    PluginError {
        message: message.into(),
        key: key.map(str::to_string),
    }
}

/// A config error without the config's values: serde's `invalid type: string "…"` quotes
/// them, and `password` is one. Field names (unknown, missing, duplicate) are shown.
fn config_error(e: &serde_json::Error) -> String {
    let m = e.to_string();
    if ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|p| m.starts_with(p))
    {
        return format!("pkcs12: invalid config: {m}");
    }
    format!(
        "pkcs12: invalid config: a value does not fit its field at line {} column {}",
        e.line(),
        e.column()
    )
}

/// Extracts key and chain as configured; the rest of the data passes through.
pub fn transform(mut data: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
    let config: Config = serde_json::from_str(config).map_err(|e| error(config_error(&e), None))?;
    let find = |k: &str| data.iter().position(|e| e.key == k);
    let Some(at) = find(&config.key) else {
        return Err(error(
            format!("pkcs12: key {:?} is not in the data", config.key),
            Some(&config.key),
        ));
    };
    let password = match (&config.password, &config.password_key) {
        (Some(_), Some(_)) => {
            return Err(error("pkcs12: set password or passwordKey, not both", None));
        }
        (Some(p), None) => p.clone(),
        (None, Some(k)) => {
            let i = find(k).ok_or_else(|| {
                error(
                    format!("pkcs12: passwordKey {k:?} is not in the data"),
                    Some(k),
                )
            })?;
            String::from_utf8(data[i].value.clone())
                .map_err(|_| error("pkcs12: the password is not UTF-8", Some(k)))?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        }
        (None, None) => String::new(),
    };
    let der = match config.input_encoding {
        Encoding::None => data[at].value.clone(),
        Encoding::Base64 => STANDARD
            .decode(data[at].value.trim_ascii())
            .map_err(|_| error("pkcs12: input is not valid base64", Some(&config.key)))?,
    };
    let key = esox_pem::pkcs12_key(&der, &password)
        .map_err(|e| error(e.to_string(), Some(&config.key)))?;
    let cert = esox_pem::pkcs12_cert(&der, &password)
        .map_err(|e| error(e.to_string(), Some(&config.key)))?;
    if config.remove_input {
        data.remove(at);
    }
    for (k, v) in [(config.key_output, key), (config.cert_output, cert)] {
        data.retain(|e| e.key != k);
        data.push(Entry {
            key: k,
            value: v.into_bytes(),
        });
    }
    Ok(data)
}

esox_plugin_sdk::transformer!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_input_errors_name_keys() {
        let data = vec![Entry {
            key: "ks".into(),
            value: b"junk".to_vec(),
        }];
        let e = transform(data.clone(), r#"{"key":"missing"}"#).unwrap_err();
        assert!(e.message.contains("\"missing\" is not in the data"));
        let e = transform(data.clone(), r#"{"key":"ks"}"#).unwrap_err();
        assert_eq!(e.message, "pkcs12: input is not a PKCS#12 file");
        assert_eq!(e.key.as_deref(), Some("ks"));
        let e = transform(data, r#"{"key":"ks","colour":"red"}"#).unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn config_errors_never_quote_values() {
        let data = vec![Entry {
            key: "ks".into(),
            value: b"junk".to_vec(),
        }];
        for config in [
            r#"{"key":"ks","password":12345678901}"#,
            r#"{"key":"ks","password":["canary-pw"]}"#,
            r#"{"key":"ks","inputEncoding":"canary-pw"}"#,
        ] {
            let e = transform(data.clone(), config).unwrap_err();
            assert!(
                e.message.starts_with("pkcs12: invalid config"),
                "{}",
                e.message
            );
            assert!(
                !e.message.contains("canary") && !e.message.contains("12345678901"),
                "{}",
                e.message
            );
        }
    }
}
