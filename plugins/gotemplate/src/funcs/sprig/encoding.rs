//! base64 and base32 as Go encodes and decodes them; sprig's `b64dec`/`b32dec` return the error
//! text as the value.

use base64::Engine as _;

/// Go's base64.StdEncoding.DecodeString; sprig returns the error text as the value.
pub(super) fn b64dec(s: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    // Go's StdEncoding requires padding but ignores non-zero trailing bits.
    const GO_STD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    match GO_STD.decode(&clean) {
        Ok(v) => v,
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _) => i,
                base64::DecodeError::InvalidLastSymbol { offset, .. } => offset,
                // Go reports where the incomplete quantum starts.
                base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                    clean.len() - clean.len() % 4
                }
            };
            format!("illegal base64 data at input byte {at}").into_bytes()
        }
    }
}

pub(super) const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub(super) fn b32enc(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(B32[((n >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(super) fn b32dec(s: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if !clean.len().is_multiple_of(8) {
        return format!(
            "illegal base32 data at input byte {}",
            clean.len() - clean.len() % 8
        )
        .into_bytes();
    }
    let mut out = Vec::new();
    for (ci, chunk) in clean.chunks(8).enumerate() {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        let mut n: u64 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 8 - pad {
                0
            } else {
                match B32.iter().position(|x| *x == c) {
                    Some(v) => v as u64,
                    None => {
                        return format!("illegal base32 data at input byte {}", ci * 8 + i)
                            .into_bytes();
                    }
                }
            };
            n = (n << 5) | v;
        }
        let bytes = n.to_be_bytes();
        let keep = match pad {
            0 => 5,
            1 => 4,
            3 => 3,
            4 => 2,
            6 => 1,
            _ => {
                return format!("illegal base32 data at input byte {}", ci * 8 + 8 - pad)
                    .into_bytes();
            }
        };
        out.extend_from_slice(&bytes[3..3 + keep]);
    }
    out
}
