//! Plugins built into the `esox` binary, compiled by `wasm/build.rs` from `plugins/`.
//!
//! Adding one: its crate in the workspace members, its package in `build.rs`'s `PLUGINS`, and
//! here a variant, its place in [`Builtin::ALL`] and an arm in each of the three matches.

use crate::World;

/// Where the build put the plugin components (built-ins and test fixtures).
pub const PLUGIN_DIR: &str = env!("ESOX_PLUGIN_DIR");

macro_rules! component {
    ($file:literal) => {
        include_bytes!(concat!(env!("ESOX_PLUGIN_DIR"), "/", $file, ".wasm"))
    };
}

/// The built-in plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// ESO's Password generator.
    Password,
    /// ESO's UUID generator.
    Uuid,
    /// ESO's Fake generator.
    Fake,
    /// ESO's Go template engine (`engineVersion: v2` or unset).
    GoTemplate,
    /// The minijinja template engine (`engineVersion: minijinja`).
    Minijinja,
    /// PKCS#12 extraction (a transformer).
    Pkcs12,
}

impl Builtin {
    /// Every built-in, in discriminant order.
    pub const ALL: [Builtin; 6] = [
        Builtin::Password,
        Builtin::Uuid,
        Builtin::Fake,
        Builtin::GoTemplate,
        Builtin::Minijinja,
        Builtin::Pkcs12,
    ];

    /// The plugin name used in declarations, errors and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Password => "password",
            Builtin::Uuid => "uuid",
            Builtin::Fake => "fake",
            Builtin::GoTemplate => "gotemplate",
            Builtin::Minijinja => "minijinja",
            Builtin::Pkcs12 => "pkcs12",
        }
    }

    /// The world it implements.
    pub fn world(self) -> World {
        match self {
            Builtin::Password | Builtin::Uuid | Builtin::Fake => World::Generator,
            Builtin::GoTemplate | Builtin::Minijinja => World::Template,
            Builtin::Pkcs12 => World::Transformer,
        }
    }

    /// The embedded component.
    pub fn component(self) -> &'static [u8] {
        match self {
            Builtin::Password => component!("esox_plugin_password"),
            Builtin::Uuid => component!("esox_plugin_uuid"),
            Builtin::Fake => component!("esox_plugin_fake"),
            Builtin::GoTemplate => component!("esox_plugin_gotemplate"),
            Builtin::Minijinja => component!("esox_plugin_minijinja"),
            Builtin::Pkcs12 => component!("esox_plugin_pkcs12"),
        }
    }

    /// The built-in called `name`, if any.
    pub fn by_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Path of a component built alongside the built-ins (test fixtures such as `esox_plugin_hostile`).
pub fn component_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(PLUGIN_DIR).join(format!("{name}.wasm"))
}

#[cfg(test)]
mod tests {
    use super::Builtin;

    #[test]
    fn all_is_in_discriminant_order_with_unique_names() {
        for (i, b) in Builtin::ALL.iter().enumerate() {
            assert_eq!(*b as usize, i, "{b:?}");
            assert_eq!(Builtin::by_name(b.name()), Some(*b));
        }
    }
}
