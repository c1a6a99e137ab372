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

/// The built-in generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// ESO's Password generator.
    Password,
    /// ESO's UUID generator.
    Uuid,
    /// ESO's Fake generator.
    Fake,
}

impl Generator {
    /// Every built-in generator, in discriminant order.
    pub const ALL: [Generator; 3] = [Generator::Password, Generator::Uuid, Generator::Fake];

    /// The plugin name used in errors and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Generator::Password => "password",
            Generator::Uuid => "uuid",
            Generator::Fake => "fake",
        }
    }

    /// The embedded component.
    pub fn component(self) -> &'static [u8] {
        match self {
            Generator::Password => PASSWORD,
            Generator::Uuid => UUID,
            Generator::Fake => FAKE,
        }
    }
}

/// Path of a component built alongside the built-ins (test fixtures such as `esox_plugin_hostile`).
pub fn component_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(PLUGIN_DIR).join(format!("{name}.wasm"))
}

#[cfg(test)]
mod tests {
    use super::Generator;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, g) in Generator::ALL.iter().enumerate() {
            assert_eq!(*g as usize, i, "{g:?}");
        }
    }
}
