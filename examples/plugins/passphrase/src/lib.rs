//! A custom generator: a passphrase of random words (like `correct-horse-battery-staple`),
//! from the host's CSPRNG.
//!
//! Config (JSON): `{"words": 4, "separator": "-", "key": "passphrase"}`. Words come from a
//! 256-word list, so each word adds 8 bits of entropy; 4 words is 32 bits, 8 words 64 bits.

use esox_plugin_sdk::generator::{Generated, Guest, PluginError, entry, error};

const WORDS: &str = include_str!("words.txt");

/// Generates a passphrase as configured.
pub fn generate(config: &str) -> Result<Generated, PluginError> {
    let config: serde_json::Value = serde_json::from_str(if config.trim().is_empty() {
        "{}"
    } else {
        config
    })
    .map_err(|e| error(format!("config is not JSON: {e}")))?;
    let n = config["words"].as_u64().unwrap_or(4);
    if !(1..=64).contains(&n) {
        return Err(error("words must be between 1 and 64"));
    }
    let sep = config["separator"].as_str().unwrap_or("-");
    let key = config["key"].as_str().unwrap_or("passphrase");
    let list: Vec<&str> = WORDS.split_whitespace().collect();
    let mut bytes = vec![0u8; n as usize];
    getrandom::fill(&mut bytes).map_err(|e| error(format!("no randomness from the host: {e}")))?;
    let phrase: Vec<&str> = bytes
        .iter()
        .map(|b| list[*b as usize % list.len()])
        .collect();
    Ok(Generated {
        data: vec![entry(key, phrase.join(sep).as_bytes())],
        state: None,
    })
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Passphrase;

impl Guest for Passphrase {
    fn generate(config: String, _state: Option<Vec<u8>>) -> Result<Generated, PluginError> {
        generate(&config)
    }
}

#[cfg(target_arch = "wasm32")]
esox_plugin_sdk::generator::export_generator!(Passphrase);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_separator() {
        assert_eq!(WORDS.split_whitespace().count(), 256);
        let g = generate(r#"{"words": 6, "separator": "."}"#).unwrap();
        let s = String::from_utf8(g.data[0].value.clone()).unwrap();
        assert_eq!(s.split('.').count(), 6);
        assert!(generate(r#"{"words": 0}"#).is_err());
    }
}
