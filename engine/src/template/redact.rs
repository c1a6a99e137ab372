//! Defence in depth for the template step: no input secret value leaves it inside an error.
//!
//! The engines and the built-in plugins build their error messages without values (they name
//! the function, the key and the template position). A user plugin, a future function, or a
//! template that passes data to `fail` could still put a value into a message, and that
//! message becomes the ExternalSecret's `Ready` condition, a Warning event and a log line.
//! So before a [`TemplateError`](super::TemplateError) leaves [`apply`](super::apply), every
//! occurrence of every value the step was given is replaced by [`REDACTED`].
//!
//! What counts as "a value" (each at least [`MIN_LEN`] bytes, so that short values such as
//! `true` or `80` do not blank out every message):
//!
//! - the value as text (lossily decoded when it is not UTF-8), and trimmed of surrounding
//!   whitespace (errors quote trimmed input);
//! - its escaped forms, as an error built with `{:?}` (Rust), `%q` (Go) or JSON would print it;
//! - its base64 (standard alphabet with and without padding, URL alphabet without) and hex
//!   (lower and upper case) encodings;
//! - when it is base64 text, the decoded text (templates `b64dec` their input);
//! - when it is a JSON document, every string in it (templates `fromJson` their input);
//! - each line of a multi-line value (PEM bodies, dotenv files), of at least [`MIN_LINE_LEN`]
//!   bytes.
//!
//! Longer forms are replaced first, so a value that contains another is redacted whole.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::secret::SecretMap;

/// What a redacted value reads as in a message.
pub const REDACTED: &str = "<redacted>";

/// Values (and derived forms) shorter than this are not redacted: they would match too much.
pub const MIN_LEN: usize = 4;

/// Lines of multi-line values shorter than this are not redacted on their own.
pub const MIN_LINE_LEN: usize = 8;

/// At most this many forms are kept (the longest first): the step's input is bounded, but a
/// JSON value with very many strings should not make an error path slow.
const MAX_NEEDLES: usize = 20_000;

/// The forms of the values to remove from messages.
#[derive(Default)]
pub struct Redactor {
    needles: BTreeSet<String>,
}

impl Redactor {
    /// A redactor for nothing.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Adds every value of `map`.
    pub fn add_map(&mut self, map: &SecretMap) {
        for v in map.values() {
            self.add(v.expose());
        }
    }

    /// Adds one value and its derived forms.
    pub fn add(&mut self, value: &[u8]) {
        if value.len() < MIN_LEN {
            return;
        }
        let text = String::from_utf8_lossy(value);
        self.add_text(&text);
        self.add_text(text.trim());
        self.needle(STANDARD.encode(value));
        self.needle(STANDARD_NO_PAD.encode(value));
        self.needle(URL_SAFE_NO_PAD.encode(value));
        let hex = hex::encode(value);
        self.needle(hex.to_uppercase());
        self.needle(hex);
        if let Ok(decoded) = STANDARD.decode(value.trim_ascii())
            && let Ok(decoded) = String::from_utf8(decoded)
        {
            self.add_text(&decoded);
            self.add_text(decoded.trim());
        }
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(value) {
            self.add_json(&json, 0);
        }
        if text.contains('\n') {
            for line in text.lines() {
                let line = line.trim();
                if line.len() >= MIN_LINE_LEN {
                    self.add_text(line);
                }
            }
        }
    }

    /// Text and its escaped forms.
    fn add_text(&mut self, text: &str) {
        if text.len() < MIN_LEN {
            return;
        }
        self.needle(text.to_string());
        // `{:?}` (and Go's `%q`, which escapes the same common characters) and JSON.
        let debug = format!("{text:?}");
        self.needle(debug[1..debug.len() - 1].to_string());
        if let Ok(json) = serde_json::to_string(text) {
            self.needle(json[1..json.len() - 1].to_string());
        }
    }

    fn add_json(&mut self, v: &serde_json::Value, depth: usize) {
        if depth > 32 || self.needles.len() >= MAX_NEEDLES {
            return;
        }
        match v {
            serde_json::Value::String(s) => {
                self.add_text(s);
                self.add_text(s.trim());
            }
            serde_json::Value::Array(items) => {
                for i in items {
                    self.add_json(i, depth + 1);
                }
            }
            serde_json::Value::Object(m) => {
                for i in m.values() {
                    self.add_json(i, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn needle(&mut self, s: String) {
        if s.len() >= MIN_LEN && self.needles.len() < MAX_NEEDLES {
            self.needles.insert(s);
        }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `message` with every known form of every value replaced by [`REDACTED`].
    pub fn redact(&self, message: &str) -> String {
        let mut found: Vec<&str> = self
            .needles
            .iter()
            .map(String::as_str)
            .filter(|n| message.contains(n))
            .collect();
        if found.is_empty() {
            return message.to_string();
        }
        // Longest first: a value that contains another is replaced whole.
        found.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut out = message.to_string();
        for n in found {
            if out.contains(n) {
                out = out.replace(n, REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    fn redactor(values: &[&str]) -> Redactor {
        let mut r = Redactor::new();
        let map: SecretMap = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), SecretBytes::from(*v)))
            .collect();
        r.add_map(&map);
        r
    }

    #[test]
    fn raw_values_are_replaced() {
        let r = redactor(&["hunter2-hunter2"]);
        assert_eq!(
            r.redact("error calling fail: bad hunter2-hunter2 here"),
            "error calling fail: bad <redacted> here"
        );
        assert_eq!(r.redact("nothing to see"), "nothing to see");
    }

    #[test]
    fn short_values_are_left_alone() {
        let r = redactor(&["abc", "80", ""]);
        assert!(r.is_empty());
        assert_eq!(r.redact("abc 80 port"), "abc 80 port");
    }

    #[test]
    fn encoded_and_escaped_forms_are_replaced() {
        let v = "pa\"ss\nword-1234";
        let r = redactor(&[v]);
        let b64 = STANDARD.encode(v);
        let url = URL_SAFE_NO_PAD.encode(v);
        let hex = hex::encode(v);
        let msg = format!(
            "a {b64} b {url} c {hex} d {} e {v:?} f {}",
            hex.to_uppercase(),
            serde_json::to_string(v).unwrap()
        );
        let out = r.redact(&msg);
        for form in [v, "pa\\\"ss\\nword", &b64[..8], &hex, "word-1234"] {
            assert!(!out.contains(form), "{form:?} in {out}");
        }
        assert!(out.starts_with("a <redacted>"), "{out}");
    }

    #[test]
    fn trimmed_lines_decoded_and_json_forms_are_replaced() {
        let pem = "-----BEGIN X-----\nMIIBszCCAVmgAwIBAgIU\nshort\n-----END X-----\n";
        let b64 = STANDARD.encode("decoded-secret");
        let json = r#"{"db":{"password":"json-inner-secret"},"n":[ "listed-secret" ]}"#;
        let r = redactor(&["trailing-newline-secret\n", pem, &b64, json]);
        let out = r.redact(
            "t: \"trailing-newline-secret\" p: MIIBszCCAVmgAwIBAgIU d: decoded-secret \
             j: json-inner-secret l: listed-secret",
        );
        for form in [
            "trailing-newline-secret",
            "MIIBszCCAVmgAwIBAgIU",
            "decoded-secret",
            "json-inner-secret",
            "listed-secret",
        ] {
            assert!(!out.contains(form), "{form:?} in {out}");
        }
        // A short line of a multi-line value is not redacted on its own.
        assert_eq!(r.redact("short"), "short");
    }

    #[test]
    fn a_value_containing_another_is_replaced_whole() {
        let r = redactor(&["secret", "my-secret-value"]);
        assert_eq!(r.redact("x my-secret-value y"), "x <redacted> y");
        assert_eq!(r.redact("x secret y"), "x <redacted> y");
    }

    #[test]
    fn binary_values_are_matched_by_their_lossy_text_and_encodings() {
        let v = b"\xff\xfebinary-tail-secret";
        let mut r = Redactor::new();
        r.add(v);
        let lossy = String::from_utf8_lossy(v).into_owned();
        assert_eq!(r.redact(&format!("[{lossy}]")), "[<redacted>]");
        assert_eq!(
            r.redact(&format!("[{}]", STANDARD.encode(v))),
            "[<redacted>]"
        );
    }
}
