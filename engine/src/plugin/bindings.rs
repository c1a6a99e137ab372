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
    });
}

/// The `template-plugin` world.
pub mod template {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "template-plugin",
    });
}
