//! Secret keys: conversion (`conversionStrategy`) and validation.
//!
//! Kubernetes accepts Secret keys made of `[-._a-zA-Z0-9]`, at most 253 characters, and not
//! `.` or `..`. Remote names often contain `/` or spaces, so ESO converts keys found through
//! `dataFrom` (`Default`: each other character becomes `_`; `Unicode`: `_UXXXX_` with the code
//! point in hex) and then validates every key, failing the sync with a tip to use a rewrite.

use crate::api::ConversionStrategy;

/// Converts a key found through `dataFrom` with ESO's strategy.
pub fn convert(strategy: ConversionStrategy, key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if c.is_alphanumeric() || matches!(c, '-' | '.' | '_') {
            out.push(c);
        } else {
            match strategy {
                ConversionStrategy::Default => out.push('_'),
                ConversionStrategy::Unicode => out.push_str(&format!("_U{:04x}_", c as u32)),
            }
        }
    }
    out
}

/// Why a key is not a valid Secret key (Kubernetes' own wording).
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("a valid config key must be non-empty".to_string());
    }
    if key.len() > 253 {
        return Some("must be no more than 253 characters".to_string());
    }
    if key == "." || key == ".." {
        return Some(format!("must not be '{key}'"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Some(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    None
}

/// Validates all keys; the error lists every bad key (keys are names, not secret values).
pub fn validate<'a>(keys: impl IntoIterator<Item = &'a String>) -> Result<(), String> {
    let bad: Vec<String> = keys
        .into_iter()
        .filter_map(|k| key_problem(k).map(|p| format!("{k:?}: {p}")))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): {}",
            bad.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion() {
        assert_eq!(
            convert(ConversionStrategy::Default, "dev/app/db"),
            "dev_app_db"
        );
        assert_eq!(
            convert(ConversionStrategy::Unicode, "a/b c"),
            "a_U002f_b_U0020_c"
        );
        assert_eq!(
            convert(ConversionStrategy::Default, "ok-key_1.x"),
            "ok-key_1.x"
        );
    }

    #[test]
    fn validation() {
        assert!(validate(&["good.key".to_string(), "GOOD_2".to_string()]).is_ok());
        let err = validate(&["bad/key".to_string()]).unwrap_err();
        assert!(err.starts_with("invalid secret keys"), "{err}");
        assert!(err.contains("bad/key"));
        assert!(key_problem("..").is_some());
        assert!(key_problem(&"a".repeat(254)).is_some());
    }
}
