//! PEM blocks: parsing, encoding and filtering by type.
//!
//! Hand-written rather than a general PEM crate because what ESO users feed in is messy
//! (concatenated files, comments, CRLF line ends, trailing text) and ESO's `filterPEM` is
//! lenient about it: anything outside `-----BEGIN …-----`/`-----END …-----` pairs is skipped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Error;

/// One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, …) and decoded contents.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    /// The label between `BEGIN ` and the dashes.
    pub label: String,
    /// The DER bytes.
    pub der: Vec<u8>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Blocks can be private keys: never print their contents.
        write!(f, "Block({}, {} bytes)", self.label, self.der.len())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.der);
    }
}

/// Parses every PEM block in `input`, in order. Text around blocks is ignored; a block whose
/// base64 is broken or whose END is missing is an error naming the block's label.
pub fn parse(input: &str) -> Result<Vec<Block>, Error> {
    let mut blocks = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            return Err(Error::Pem(
                "a BEGIN line is not terminated by dashes".into(),
            ));
        };
        let label = after[..label_end].to_string();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            return Err(Error::Pem(format!(
                "the {} block has no END line",
                shown_label(&label)
            )));
        };
        let body: String = body_start[..end]
            .lines()
            // RFC 7468 allows headers (Proc-Type, DEK-Info) in legacy blocks; skip them.
            .filter(|l| !l.contains(':'))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD.decode(body.as_bytes()).map_err(|_| {
            Error::Pem(format!(
                "the {} block is not valid base64",
                shown_label(&label)
            ))
        })?;
        blocks.push(Block { label, der });
        rest = &body_start[end + end_marker.len()..];
    }
    Ok(blocks)
}

/// The labels an error names as they are. A label is read from the input (any text between
/// `-----BEGIN ` and dashes, so possibly secret data that merely looks like PEM); others are
/// reported as `PEM`.
const KNOWN_LABELS: &[&str] = &[
    "CERTIFICATE",
    "TRUSTED CERTIFICATE",
    "CERTIFICATE REQUEST",
    "NEW CERTIFICATE REQUEST",
    "X509 CRL",
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
    "PUBLIC KEY",
    "RSA PUBLIC KEY",
    "EC PARAMETERS",
    "PKCS7",
    "CMS",
];

/// How an error names a block's label: the label when it is a well-known one, else `PEM`.
pub fn shown_label(label: &str) -> &str {
    KNOWN_LABELS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(label))
        .copied()
        .unwrap_or("PEM")
}

/// Encodes one block as PEM text with 64-column lines, as Go's `encoding/pem` writes it.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// ESO's `filterPEM`: every block whose type matches `label` (case-insensitively),
/// re-encoded and concatenated in order; none is an empty string, input without any PEM
/// block is an error.
pub fn filter(label: &str, input: &str) -> Result<String, Error> {
    let blocks = parse(input)?;
    if blocks.is_empty() && !input.trim().is_empty() {
        return Err(Error::Pem("error filtering pem: found junk".into()));
    }
    Ok(blocks
        .iter()
        .filter(|b| b.label.eq_ignore_ascii_case(label))
        .map(|b| encode(&b.label, &b.der))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_filters_blocks() {
        let text = format!(
            "junk before\n{}middle\r\n{}",
            encode("CERTIFICATE", &[1, 2, 3]),
            encode("PRIVATE KEY", &[4; 100])
        );
        let blocks = parse(&text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].der, vec![4; 100]);
        assert_eq!(
            filter("PRIVATE KEY", &text).unwrap(),
            encode("PRIVATE KEY", &[4; 100])
        );
        assert_eq!(filter("rsa private key", &text).unwrap(), "");
        assert!(filter("CERTIFICATE", "no pem here").is_err());
    }

    #[test]
    fn long_blocks_wrap_at_64_columns() {
        let pem = encode("CERTIFICATE", &[7; 100]);
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }

    #[test]
    fn broken_blocks_are_named_without_content() {
        let err = parse("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CERTIFICATE") && !err.contains("!!!!"));
        assert!(parse("-----BEGIN X-----\nAAAA\n").is_err());
    }

    #[test]
    fn unknown_labels_are_not_repeated() {
        for text in [
            "-----BEGIN s3cret-canary-----\nAAAA\n",
            "-----BEGIN s3cret-canary-----\n!!\n-----END s3cret-canary-----\n",
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{err}");
            assert!(err.contains("the PEM block"), "{err}");
        }
        let err = parse("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("the RSA PRIVATE KEY block"), "{err}");
    }
}
