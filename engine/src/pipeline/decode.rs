//! `decodingStrategy`: how fetched values are decoded before they reach the Secret.

use base64::DecodeError as Base64Error;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use crate::api::DecodingStrategy;

/// Decoding failure (never carries the value, not even the offending byte).
#[derive(Debug, Clone, thiserror::Error)]
#[error("failed to decode value with strategy {strategy}: {reason}")]
pub struct DecodeError {
    strategy: &'static str,
    reason: String,
}

impl DecodeError {
    fn base64(strategy: &'static str, e: Base64Error) -> DecodeError {
        // The base64 crate's own messages print the offending symbol; Go's (which ESO shows)
        // give only the position, and so do we.
        let reason = match e {
            Base64Error::InvalidByte(offset, _) | Base64Error::InvalidLastSymbol { offset, .. } => {
                format!("illegal base64 data at input byte {offset}")
            }
            Base64Error::InvalidLength(len) => format!("invalid base64 input length {len}"),
            Base64Error::InvalidPadding => "invalid base64 padding".to_string(),
        };
        DecodeError { strategy, reason }
    }
}

/// Decodes `value` per ESO's rules: `Base64`/`Base64URL` must decode, `Auto` tries both and
/// falls back to the raw bytes, `None` keeps the bytes.
pub fn decode(strategy: DecodingStrategy, value: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match strategy {
        DecodingStrategy::None => Ok(value.to_vec()),
        DecodingStrategy::Base64 => STANDARD
            .decode(value)
            .map_err(|e| DecodeError::base64("Base64", e)),
        DecodingStrategy::Base64Url => URL_SAFE
            .decode(value)
            .map_err(|e| DecodeError::base64("Base64URL", e)),
        DecodingStrategy::Auto => Ok(STANDARD
            .decode(value)
            .or_else(|_| URL_SAFE.decode(value))
            .unwrap_or_else(|_| value.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies() {
        assert_eq!(
            decode(DecodingStrategy::Base64, b"aGVsbG8=").unwrap(),
            b"hello"
        );
        assert_eq!(
            decode(DecodingStrategy::Base64Url, b"Pz8_").unwrap(),
            b"???"
        );
        assert!(decode(DecodingStrategy::Base64, b"Pz8_").is_err());
        assert_eq!(decode(DecodingStrategy::Auto, b"Pz8_").unwrap(), b"???");
        assert_eq!(
            decode(DecodingStrategy::Auto, b"not base64!").unwrap(),
            b"not base64!"
        );
        assert_eq!(
            decode(DecodingStrategy::None, b"aGVsbG8=").unwrap(),
            b"aGVsbG8="
        );
    }

    #[test]
    fn errors_do_not_leak_values() {
        let err = decode(DecodingStrategy::Base64, b"sup3r-s3cret!").unwrap_err();
        assert!(!err.to_string().contains("sup3r"));
        // Not even the offending byte, only where it is (as Go's error says it).
        assert_eq!(
            err.to_string(),
            "failed to decode value with strategy Base64: illegal base64 data at input byte 12"
        );
        let err = decode(DecodingStrategy::Base64, b"hun!er2=").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to decode value with strategy Base64: illegal base64 data at input byte 3"
        );
        // A symbol of the alphabet in a position that cannot end the input ('B' at 1).
        let err = decode(DecodingStrategy::Base64, b"QB==").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to decode value with strategy Base64: illegal base64 data at input byte 1"
        );
        let err = decode(DecodingStrategy::Base64Url, b"QUJD?").unwrap_err();
        assert!(!err.to_string().contains('?'), "{err}");
    }
}
