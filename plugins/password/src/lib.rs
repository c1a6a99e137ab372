//! ESO's Password generator, inside Wasm.
//!
//! Spec (ESO `generators.external-secrets.io/v1alpha1` Password): `length` (default 24),
//! `digits` and `symbols` (default a quarter of the length each), `symbolCharacters`,
//! `noUpper`, `allowRepeat`, `secretKeys` (default `["password"]`, one password per key) and
//! `encoding` (`raw`, `base64`, `base64url`, `base32`, `hex`). The character placement follows
//! the go-password algorithm ESO uses: each character is inserted at a random position.
//! Randomness comes from the host's CSPRNG through `wasi:random`.

use esox_plugin_sdk::generator::{Generated, PluginError, entry, error};
use serde::Deserialize;

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const DEFAULT_SYMBOLS: &str = "~!@#$%^&*()_+`-={}|[]\\:\"<>?,./";

/// ESO's Password spec.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Spec {
    /// Password length.
    pub length: Option<usize>,
    /// Number of digits.
    pub digits: Option<usize>,
    /// Number of symbols.
    pub symbols: Option<usize>,
    /// Symbols to choose from.
    pub symbol_characters: Option<String>,
    /// Exclude upper-case letters.
    pub no_upper: bool,
    /// Allow a character to repeat.
    pub allow_repeat: bool,
    /// Keys to generate a password for.
    pub secret_keys: Vec<String>,
    /// Output encoding.
    pub encoding: Option<String>,
}

/// A source of uniform random indices.
pub trait Random {
    /// A uniform value in `0..n`.
    fn below(&mut self, n: usize) -> usize;
}

/// The host CSPRNG through `getrandom` (on wasm32-wasip2: `wasi:random`).
pub struct HostRandom;

impl Random for HostRandom {
    fn below(&mut self, n: usize) -> usize {
        // Rejection sampling keeps the distribution uniform.
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let mut buf = [0u8; 8];
            getrandom::fill(&mut buf).expect("the host provides randomness");
            let v = u64::from_le_bytes(buf);
            if v < zone {
                return (v % n) as usize;
            }
        }
    }
}

/// Generates one password per the spec.
pub fn password(spec: &Spec, rng: &mut impl Random) -> Result<String, String> {
    let length = spec.length.unwrap_or(24);
    let digits = spec.digits.unwrap_or(length / 4);
    let symbols = spec.symbols.unwrap_or(length / 4);
    if digits + symbols > length {
        return Err(format!(
            "number of digits ({digits}) and symbols ({symbols}) exceeds the length ({length})"
        ));
    }
    let letters_set: Vec<char> = if spec.no_upper {
        LOWER.chars().collect()
    } else {
        LOWER.chars().chain(UPPER.chars()).collect()
    };
    let symbol_set: Vec<char> = spec
        .symbol_characters
        .as_deref()
        .unwrap_or(DEFAULT_SYMBOLS)
        .chars()
        .collect();
    let digit_set: Vec<char> = DIGITS.chars().collect();
    let letters = length - digits - symbols;
    if symbols > 0 && symbol_set.is_empty() {
        return Err("symbolCharacters is empty but symbols were requested".into());
    }
    if !spec.allow_repeat {
        for (count, set, what) in [
            (letters, &letters_set, "letters"),
            (digits, &digit_set, "digits"),
            (symbols, &symbol_set, "symbols"),
        ] {
            if count > set.len() {
                return Err(format!(
                    "number of {what} ({count}) exceeds the {} available and allowRepeat is false",
                    set.len()
                ));
            }
        }
    }
    let mut out: Vec<char> = Vec::with_capacity(length);
    for (count, set) in [
        (letters, &letters_set),
        (digits, &digit_set),
        (symbols, &symbol_set),
    ] {
        for _ in 0..count {
            let c = loop {
                let c = set[rng.below(set.len())];
                if spec.allow_repeat || !out.contains(&c) {
                    break c;
                }
            };
            let at = rng.below(out.len() + 1);
            out.insert(at, c);
        }
    }
    Ok(out.into_iter().collect())
}

/// Encodes a password per `encoding`.
pub fn encode(encoding: Option<&str>, password: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let bytes = password.as_bytes();
    Ok(match encoding.unwrap_or("raw") {
        "raw" => bytes.to_vec(),
        "base64" => base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes(),
        "base64url" => base64::engine::general_purpose::URL_SAFE
            .encode(bytes)
            .into_bytes(),
        "base32" => data_encoding::BASE32.encode(bytes).into_bytes(),
        "hex" => data_encoding::HEXLOWER.encode(bytes).into_bytes(),
        other => {
            return Err(format!(
                "unknown encoding {other:?}: use raw, base64, base64url, base32 or hex"
            ));
        }
    })
}

/// The generator's whole call: the spec as JSON in, the keys out.
pub fn generate(config: &str) -> Result<Generated, PluginError> {
    let spec: Spec = esox_plugin_sdk::config_named(config, "Password spec")?;
    let keys = if spec.secret_keys.is_empty() {
        vec!["password".to_string()]
    } else {
        spec.secret_keys.clone()
    };
    let mut data = Vec::with_capacity(keys.len());
    for key in keys {
        let p = password(&spec, &mut HostRandom).map_err(error)?;
        data.push(entry(
            &key,
            &encode(spec.encoding.as_deref(), &p).map_err(error)?,
        ));
    }
    Ok(Generated { data, state: None })
}

esox_plugin_sdk::generator!(generate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_classes_and_no_repeats() {
        for _ in 0..50 {
            let spec = Spec {
                length: Some(32),
                digits: Some(5),
                symbols: Some(4),
                ..Default::default()
            };
            let p = password(&spec, &mut HostRandom).unwrap();
            assert_eq!(p.chars().count(), 32);
            assert_eq!(p.chars().filter(|c| c.is_ascii_digit()).count(), 5);
            assert_eq!(
                p.chars().filter(|c| DEFAULT_SYMBOLS.contains(*c)).count(),
                4
            );
            let mut seen = std::collections::HashSet::new();
            assert!(p.chars().all(|c| seen.insert(c)), "no repeats: {p}");
        }
        let spec = Spec {
            length: Some(12),
            digits: Some(0),
            symbols: Some(0),
            no_upper: true,
            ..Default::default()
        };
        assert!(
            password(&spec, &mut HostRandom)
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_lowercase())
        );
        let spec = Spec {
            length: Some(40),
            digits: Some(0),
            symbols: Some(0),
            no_upper: true,
            ..Default::default()
        };
        assert!(
            password(&spec, &mut HostRandom)
                .unwrap_err()
                .contains("allowRepeat is false")
        );
        let spec = Spec {
            length: Some(4),
            digits: Some(3),
            symbols: Some(3),
            ..Default::default()
        };
        assert!(password(&spec, &mut HostRandom).is_err());
    }

    #[test]
    fn generate_reads_the_spec_and_defaults_when_empty() {
        let g = generate("").unwrap();
        assert_eq!(g.data.len(), 1);
        assert_eq!(g.data[0].key, "password");
        assert_eq!(g.data[0].value.len(), 24);
        let g = generate(r#"{"length": 8, "secretKeys": ["a", "b"], "encoding": "hex"}"#).unwrap();
        let keys: Vec<&str> = g.data.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(g.data[0].value.len(), 16);
        let e = generate(r#"{"length": "8"}"#).unwrap_err();
        assert!(
            e.message
                .starts_with("invalid Password spec: invalid type: string \"8\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn encodings() {
        assert_eq!(encode(Some("hex"), "ab").unwrap(), b"6162");
        assert_eq!(encode(Some("base64"), "ab").unwrap(), b"YWI=");
        assert!(encode(Some("rot13"), "ab").is_err());
    }
}
