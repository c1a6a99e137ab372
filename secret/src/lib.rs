//! Secret bytes as a type: redacted in every `Debug`, zeroized on drop.
//!
//! Secret values flow through the controller as [`SecretBytes`] so that a stray `{:?}` in a
//! log line, an error or a panic message prints `<redacted>` instead of the value.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

/// A secret value. Its `Debug` never shows the content; its memory is wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The raw bytes. Callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8, if it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes::new(v)
    }
}

impl From<&str> for SecretBytes {
    fn from(v: &str) -> Self {
        SecretBytes::new(v.as_bytes().to_vec())
    }
}

impl From<String> for SecretBytes {
    fn from(v: String) -> Self {
        SecretBytes::new(v.into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// Secret data keyed by Secret key.
pub type SecretMap = BTreeMap<String, SecretBytes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretBytes::from("canary-value-123");
        let printed = format!(
            "{s:?} {:?}",
            SecretMap::from([("k".to_string(), s.clone())])
        );
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("redacted"));
    }
}
