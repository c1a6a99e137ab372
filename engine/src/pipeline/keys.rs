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

/// Why a key is not a valid Secret key. Displays as Kubernetes' own wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// The key is empty.
    #[error("a valid config key must be non-empty")]
    Empty,
    /// The key is longer than 253 characters.
    #[error("must be no more than 253 characters")]
    TooLong,
    /// The key is `.`.
    #[error("must not be '.'")]
    Dot,
    /// The key is `..`.
    #[error("must not be '..'")]
    DotDot,
    /// The key has characters outside `[-._a-zA-Z0-9]`.
    #[error(
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
         (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
         '[-._a-zA-Z0-9]+')"
    )]
    InvalidCharacters,
}

impl KeyProblem {
    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(self) -> &'static str {
        match self {
            KeyProblem::Empty => "empty",
            KeyProblem::TooLong => "too_long",
            KeyProblem::Dot => "dot",
            KeyProblem::DotDot => "dot_dot",
            KeyProblem::InvalidCharacters => "invalid_characters",
        }
    }
}

/// Why a key is not a valid Secret key, if it is not one.
pub fn key_problem(key: &str) -> Option<KeyProblem> {
    if key.is_empty() {
        return Some(KeyProblem::Empty);
    }
    if key.len() > 253 {
        return Some(KeyProblem::TooLong);
    }
    if key == "." {
        return Some(KeyProblem::Dot);
    }
    if key == ".." {
        return Some(KeyProblem::DotDot);
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Some(KeyProblem::InvalidCharacters);
    }
    None
}

/// Some keys are not valid Secret keys. The message lists the bad keys and why (keys are
/// names, not secret values): the first [`InvalidKeys::LISTED`] of them, each shortened, and
/// how many more, so a find that matched ten thousand bad names makes a readable status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): {}",
    self.listed()
)]
pub struct InvalidKeys {
    /// Each bad key with its problem, in key order.
    pub keys: Vec<(String, KeyProblem)>,
}

impl InvalidKeys {
    /// How many bad keys the message names.
    pub const LISTED: usize = 10;

    fn listed(&self) -> String {
        let mut parts: Vec<String> = self
            .keys
            .iter()
            .take(Self::LISTED)
            .map(|(k, p)| format!("{:?}: {p}", crate::api::abbreviate(k, 64)))
            .collect();
        if self.keys.len() > Self::LISTED {
            parts.push(format!("and {} more", self.keys.len() - Self::LISTED));
        }
        parts.join("; ")
    }
}

/// Validates all keys; the error lists every bad key.
pub fn validate<'a>(keys: impl IntoIterator<Item = &'a String>) -> Result<(), InvalidKeys> {
    let keys: Vec<(String, KeyProblem)> = keys
        .into_iter()
        .filter_map(|k| key_problem(k).map(|p| (k.clone(), p)))
        .collect();
    if keys.is_empty() {
        Ok(())
    } else {
        Err(InvalidKeys { keys })
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
        assert_eq!(
            err.keys,
            [("bad/key".to_string(), KeyProblem::InvalidCharacters)]
        );
        let msg = err.to_string();
        assert!(msg.starts_with("invalid secret keys"), "{msg}");
        assert!(msg.contains("bad/key"));
        assert_eq!(key_problem(".."), Some(KeyProblem::DotDot));
        assert_eq!(key_problem(&"a".repeat(254)), Some(KeyProblem::TooLong));
    }

    /// The messages are Kubernetes' words, unchanged by the move to a typed error.
    #[test]
    fn messages_and_labels() {
        let keys = ["", ".", "..", "a b"].map(String::from);
        let err = validate(&keys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): \
             \"\": a valid config key must be non-empty; \
             \".\": must not be '.'; \
             \"..\": must not be '..'; \
             \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
        );
        let labels: Vec<_> = err.keys.iter().map(|(_, p)| p.metric_label()).collect();
        assert_eq!(labels, ["empty", "dot", "dot_dot", "invalid_characters"]);
        assert_eq!(KeyProblem::TooLong.metric_label(), "too_long");
    }

    /// Thousands of bad keys, or a very long one, make a message of bounded length.
    #[test]
    fn many_or_long_bad_keys_make_a_short_message() {
        let keys: Vec<String> = (0..2000).map(|i| format!("bad key {i}")).collect();
        let err = validate(&keys).unwrap_err();
        assert_eq!(err.keys.len(), 2000, "every key is kept for callers");
        let msg = err.to_string();
        assert!(msg.ends_with("; and 1990 more"), "{msg}");
        assert!(msg.len() < 2500, "{}", msg.len());
        let long = ["x/".repeat(100_000)];
        let msg = validate(&long).unwrap_err().to_string();
        assert!(msg.contains("(200000 bytes)"), "{msg}");
        assert!(msg.len() < 600, "{}", msg.len());
        // Control and unassigned characters convert to a valid key; letters outside ASCII
        // stay (as in ESO) and validation names them.
        for strategy in [ConversionStrategy::Default, ConversionStrategy::Unicode] {
            let k = convert(strategy, "a/b c\u{0}\u{10ffff}..");
            assert_eq!(key_problem(&k), None, "{strategy:?}: {k:?}");
            let k = convert(strategy, "é");
            assert_eq!(key_problem(&k), Some(KeyProblem::InvalidCharacters));
        }
    }
}
