//! Builds the built-in plugins (and the test fixtures) for `wasm32-wasip2`, so the controller
//! embeds them and tests can load the fixtures.
//!
//! The plugins are workspace crates; they are built by a nested `cargo build` into their own
//! target directory (sharing the outer one would deadlock on its lock). The resulting
//! directory is passed to the crate as `ESOX_PLUGIN_DIR`: `src/builtin.rs` embeds the built-ins
//! from it, and tests read the fixtures there.

use std::path::PathBuf;
use std::process::Command;

const PLUGINS: &[&str] = &[
    "esox-plugin-gotemplate",
    "esox-plugin-minijinja",
    "esox-plugin-pkcs12",
    "esox-plugin-password",
    "esox-plugin-uuid",
    "esox-plugin-fake",
    "esox-plugin-hostile",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for dir in ["wit", "sdk", "plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = match std::env::var("ESOX_WASM_TARGET_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("wasm-target"),
    };
    println!("cargo:rerun-if-env-changed=ESOX_WASM_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=ESOX_WASM_TOOLCHAIN");
    // `ESOX_WASM_TOOLCHAIN=stable`: build the plugins with that rustup toolchain rather than the
    // one building this crate (the fuzz targets build with nightly, whose wasm32-wasip2 target a
    // machine may not have).
    let toolchain = std::env::var("ESOX_WASM_TOOLCHAIN")
        .ok()
        .filter(|t| !t.is_empty());
    let cargo = match &toolchain {
        Some(_) => "cargo".to_string(),
        None => std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
    };
    let mut cmd = Command::new(cargo);
    if let Some(toolchain) = &toolchain {
        // Through the rustup proxy, with cargo's choice of compiler for this build removed.
        cmd.env("RUSTUP_TOOLCHAIN", toolchain)
            .env_remove("RUSTC")
            .env_remove("RUSTDOC")
            .env_remove("RUSTC_BOOTSTRAP");
    }
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for p in PLUGINS {
        cmd.args(["-p", p]);
    }
    // Host build settings must not leak into the Wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the Wasm plugins");
    if !status.success() {
        panic!(
            "building the Wasm plugins failed; is the target installed? run `rustup target add wasm32-wasip2`"
        );
    }
    let out = target_dir.join("wasm32-wasip2/release");
    println!("cargo:rustc-env=ESOX_PLUGIN_DIR={}", out.display());
}
