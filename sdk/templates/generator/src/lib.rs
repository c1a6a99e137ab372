//! A generator: JSON config in, fresh secret data out (randomness from the host).
//!
//! Config (JSON, the WasmPlugin's `spec.config`): `{"length": 16}`, the token's length in
//! bytes (it is written in hex, so twice as many characters).

use esox_plugin_sdk::generator::{Generated, PluginError, entry, error};
use serde::Deserialize;

/// The config; a WasmPlugin that declares none gets the default.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Random bytes in the token.
    pub length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { length: 16 }
    }
}

/// The generation, callable natively in tests.
pub fn generate(config: &str) -> Result<Generated, PluginError> {
    let config: Config = esox_plugin_sdk::config(config)?;
    if config.length == 0 || config.length > 4096 {
        return Err(error("length must be between 1 and 4096"));
    }
    let mut bytes = vec![0u8; config.length];
    getrandom(&mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Generated {
        data: vec![entry("token", token.as_bytes())],
        state: None,
    })
}

/// WASI random: the host's CSPRNG, the only randomness a plugin has.
fn getrandom(buf: &mut [u8]) -> Result<(), PluginError> {
    getrandom::fill(buf).map_err(|e| error(format!("no randomness from the host: {e}")))
}

esox_plugin_sdk::generator!(generate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_has_the_length() {
        let g = generate(r#"{"length": 8}"#).unwrap();
        assert_eq!(g.data[0].key, "token");
        assert_eq!(g.data[0].value.len(), 16);
        assert_eq!(generate("").unwrap().data[0].value.len(), 32);
        assert!(generate(r#"{"length": 0}"#).is_err());
    }
}
