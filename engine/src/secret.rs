//! Secret bytes as a type: redacted in every `Debug`, zeroized on drop.
//!
//! The types live in the `esox-secret` crate, shared with the Wasm host (`esox-wasm`), which
//! hands them to plugins; this module keeps their `esox::secret::…` paths.

pub use esox_secret::{SecretBytes, SecretMap};
