//! Stored components: what a ConfigMap or Secret holds, turned back into a component.

/// The largest component esox decompresses: a bound against gzip bombs in a ConfigMap, well
/// above the ~20 MB of a Python component.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// Why a stored blob is not a component esox will load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnpackError {
    /// It starts like gzip but does not decompress.
    #[error("the stored component is not valid gzip: {0}")]
    Gzip(String),
    /// It decompresses past [`MAX_COMPONENT_BYTES`].
    #[error("the stored component decompresses to more than {} MiB", MAX_COMPONENT_BYTES >> 20)]
    TooLarge,
}

/// The component in a stored blob. Blobs starting with gzip's magic bytes are decompressed
/// (up to [`MAX_COMPONENT_BYTES`]); anything else is the component as it is (wasmtime judges
/// it). Compression exists because a ConfigMap holds 1 MiB and JavaScript or Python
/// components are several megabytes.
pub fn unpack_component(stored: Vec<u8>) -> Result<Vec<u8>, UnpackError> {
    use std::io::Read as _;
    if !stored.starts_with(&[0x1f, 0x8b]) {
        return Ok(stored);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(stored.as_slice())
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| UnpackError::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(UnpackError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_components_are_decompressed_with_a_bound() {
        use std::io::Write as _;
        assert_eq!(
            unpack_component(b"\0asm-as-is".to_vec()).unwrap(),
            b"\0asm-as-is"
        );
        let gz = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        };
        // A gzip bomb: 65 MiB of zeros compress a thousandfold.
        let bomb = gz(&vec![0u8; (MAX_COMPONENT_BYTES + (1 << 20)) as usize]);
        assert!(bomb.len() < 1 << 20);
        let err = unpack_component(bomb).unwrap_err();
        assert_eq!(err, UnpackError::TooLarge);
        assert!(err.to_string().contains("more than 64 MiB"), "{err}");
        let mut broken = gz(b"\0asm");
        broken.truncate(8);
        let err = unpack_component(broken).unwrap_err();
        assert!(matches!(err, UnpackError::Gzip(_)), "{err}");
        assert!(err.to_string().contains("not valid gzip"), "{err}");
    }
}
