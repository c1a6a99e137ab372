//! A custom generator: a passphrase of random words (like `correct-horse-battery-staple`),
//! from the host's CSPRNG.
//!
//! Config (JSON): `{"words": 4, "separator": "-", "key": "passphrase"}`. Words come from a
//! 256-word list, so each word adds 8 bits of entropy; 4 words is 32 bits, 8 words 64 bits.

use esox_plugin_sdk::generator::{Generated, PluginError, entry, error};
use serde::Deserialize;

const WORDS: &str = include_str!("words.txt");

/// The config; every field is optional.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How many words (1 to 64; default 4).
    pub words: u64,
    /// Between words (default `-`).
    pub separator: String,
    /// The key of the passphrase (default `passphrase`).
    pub key: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            words: 4,
            separator: "-".into(),
            key: "passphrase".into(),
        }
    }
}

/// Generates a passphrase as configured.
pub fn generate(config: &str) -> Result<Generated, PluginError> {
    let Config {
        words: n,
        separator: sep,
        key,
    } = esox_plugin_sdk::config(config)?;
    if !(1..=64).contains(&n) {
        return Err(error("words must be between 1 and 64"));
    }
    let list: Vec<&str> = WORDS.split_whitespace().collect();
    let mut bytes = vec![0u8; n as usize];
    getrandom::fill(&mut bytes).map_err(|e| error(format!("no randomness from the host: {e}")))?;
    let phrase: Vec<&str> = bytes
        .iter()
        .map(|b| list[*b as usize % list.len()])
        .collect();
    Ok(Generated {
        data: vec![entry(&key, phrase.join(&sep).as_bytes())],
        state: None,
    })
}

esox_plugin_sdk::generator!(generate);

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
        let g = generate("").unwrap();
        assert_eq!(g.data[0].key, "passphrase");
        let s = String::from_utf8(g.data[0].value.clone()).unwrap();
        assert_eq!(s.split('-').count(), 4, "{s}");
        let e = generate(r#"{"words": "six"}"#).unwrap_err();
        assert!(
            e.message.starts_with("invalid config: invalid type"),
            "{}",
            e.message
        );
    }
}
