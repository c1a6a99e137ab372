//! ESO's UUID generator, inside Wasm: one random (version 4) UUID under the key `uuid`, from
//! the host's CSPRNG.

use esox_plugin_sdk::generator::{Generated, PluginError, entry, error};

/// Formats 16 random bytes as an RFC 4122 version 4 UUID.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The generator's whole call: a fresh UUID under `uuid` (ESO's UUID spec has no fields, so
/// the config is not read).
pub fn generate(_config: &str) -> Result<Generated, PluginError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| error(format!("no randomness from the host: {e}")))?;
    Ok(Generated {
        data: vec![entry("uuid", uuid_v4(bytes).as_bytes())],
        state: None,
    })
}

esox_plugin_sdk::generator!(generate);

#[cfg(test)]
mod tests {
    #[test]
    fn version_and_variant_bits() {
        let u = super::uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let u = super::uuid_v4([0; 16]);
        assert_eq!(u, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn generates_one_fresh_uuid() {
        let a = super::generate("").unwrap();
        let b = super::generate("{}").unwrap();
        assert_eq!(a.data.len(), 1);
        assert_eq!(a.data[0].key, "uuid");
        let u = String::from_utf8(a.data[0].value.clone()).unwrap();
        assert_eq!((u.len(), &u[14..15]), (36, "4"), "{u}");
        assert_ne!(a.data[0].value, b.data[0].value);
        assert_eq!(a.state, None);
    }
}
