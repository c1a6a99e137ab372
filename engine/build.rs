//! Builds the built-in plugins (and the test fixtures) for `wasm32-wasip2`, so the controller
//! embeds them and tests can load the fixtures.
//!
//! The plugins are workspace crates; they are built by a nested `cargo build` into their own
//! target directory (sharing the outer one would deadlock on its lock). The resulting
//! directory is passed to the crate as `ESOX_PLUGIN_DIR`. The list of packages is
//! `plugins/builtin.txt`, which `scripts/demo.sh` also reads: a first run starts the same
//! build alongside esox's (Cargo would run this script late, on the critical path), and this
//! script then finds it done.

use std::path::PathBuf;
use std::process::Command;

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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    let list = root.join("plugins/builtin.txt");
    let list = std::fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", list.display()));
    for p in list
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
    {
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
