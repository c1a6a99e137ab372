//! Host bindings for `wit/plugin.wit`: the one place the contract is turned into Rust types.
//! (Generated code: its items are documented in the WIT file.)
#![allow(missing_docs)]

/// The `generator-plugin` world.
pub mod generator {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "generator-plugin",
    });
}

/// The `transformer-plugin` world.
pub mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer-plugin",
        // One set of contract types for every world.
        with: { "esox:plugin/types": super::generator::esox::plugin::types },
    });
}

/// The `template-plugin` world.
pub mod template {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "template-plugin",
        // One set of contract types for every world.
        with: { "esox:plugin/types": super::generator::esox::plugin::types },
    });
}

/// The contract's entry record (the same type in every world; the generator's is used).
pub type Entry = generator::esox::plugin::types::Entry;

/// The contract's error record, as a guest returns it.
pub type GuestError = generator::esox::plugin::types::PluginError;
