//! Plugins built into the `esox` binary, compiled by `engine/build.rs` from `plugins/`.

/// Where the build put the plugin components (built-ins and test fixtures).
pub const PLUGIN_DIR: &str = env!("ESOX_PLUGIN_DIR");

/// The Password generator (ESO's Password spec).
pub const PASSWORD: &[u8] = include_bytes!(concat!(
    env!("ESOX_PLUGIN_DIR"),
    "/esox_plugin_password.wasm"
));

/// The UUID generator.
pub const UUID: &[u8] = include_bytes!(concat!(env!("ESOX_PLUGIN_DIR"), "/esox_plugin_uuid.wasm"));

/// The Fake generator.
pub const FAKE: &[u8] = include_bytes!(concat!(env!("ESOX_PLUGIN_DIR"), "/esox_plugin_fake.wasm"));

/// Path of a component built alongside the built-ins (test fixtures such as `esox_plugin_hostile`).
pub fn component_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(PLUGIN_DIR).join(format!("{name}.wasm"))
}
