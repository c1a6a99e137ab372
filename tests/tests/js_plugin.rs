//! A plugin written in JavaScript: `examples/plugins/js-envkeys` built by its `build.sh`
//! (npm: componentize-js with StarlingMonkey inside, or jco's QuickJS backend) and run under
//! the controller's default limits, as `esox plugin test` runs it. Skipped, saying so, when
//! node or npm is missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use esox::cli::plugin as author;
use esox::plugin::{Limits, Runtime, World};
use esox_tests::repo_root;

/// Why the JavaScript toolchain cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    for tool in ["node", "npm"] {
        match Command::new(tool).arg("--version").output() {
            Ok(o) if o.status.success() => {}
            other => return Some(format!("{tool} is not available ({other:?})")),
        }
    }
    None
}

/// The toolchain build.sh installs (for `jco wit`).
fn tools_dir() -> PathBuf {
    match std::env::var_os("ESOX_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
            .join(".cache/esox"),
    }
    .join("componentize-js")
}

/// One build at a time: the first one installs the toolchain into the shared cache.
static BUILD: Mutex<()> = Mutex::new(());

#[test]
fn js_plugin_builds_and_runs() {
    builds_and_runs("starlingmonkey");
}

#[test]
fn js_plugin_quickjs_builds_and_runs() {
    builds_and_runs("quickjs");
}

fn builds_and_runs(engine: &str) {
    if let Some(reason) = missing_tools() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let script = repo_root().join("examples/plugins/js-envkeys/build.sh");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("js-envkeys.wasm");
    let guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .env("ESOX_JS_ENGINE", engine)
        .status()
        .expect("run build.sh");
    let built = started.elapsed();
    drop(guard);
    assert!(status.success(), "build.sh failed for {engine}");
    let wasm = std::fs::read(&out).unwrap();
    eprintln!(
        "{engine}: js-envkeys.wasm is {} bytes, built in {built:.1?}",
        wasm.len()
    );

    // The component needs nothing from the host but the contract's own types (every WASI
    // feature disabled, or stubbed).
    let wit = Command::new(tools_dir().join("node_modules/.bin/jco"))
        .arg("wit")
        .arg(&out)
        .output()
        .expect("run jco wit");
    assert!(wit.status.success(), "jco wit failed");
    let wit = String::from_utf8(wit.stdout).unwrap();
    let imports: Vec<&str> = wit
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("import "))
        .collect();
    assert_eq!(imports, ["import esox:plugin/types@0.1.0;"], "{wit}");

    // Under the controller's default limits (2 s, 64 MiB), as `esox plugin test` runs it.
    let input =
        author::read_input(r#"{"db.password": "s3cr3t", "api-key": "k", "debug": "1"}"#).unwrap();
    let config = r#"{"prefix": "APP_", "rename": {"api-key": "TOKEN"}, "drop": ["debug"]}"#;
    let got = author::run(&wasm, World::Transformer, Limits::default(), &input, config).unwrap();
    let keys: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(keys, ["APP_DB_PASSWORD", "APP_TOKEN"]);
    assert_eq!(got["APP_DB_PASSWORD"].expose(), b"s3cr3t");
    assert_eq!(got["APP_TOKEN"].expose(), b"k");

    // The rest on one compiled component (compiling StarlingMonkey takes seconds; the
    // controller compiles once and instantiates per call, as here).
    let rt = Runtime::new(Limits::default()).unwrap();
    let started = Instant::now();
    let plugin = rt.load("js-envkeys", World::Transformer, &wasm).unwrap();
    let compile = started.elapsed();
    // Binary values pass through untouched; an empty config is `{}`.
    let binary = author::read_input(r#"{"tls.key": {"base64": "AP8Q"}}"#).unwrap();
    let got = rt.transform(&plugin, &binary, "").unwrap();
    assert_eq!(got["TLS_KEY"].expose(), [0x00, 0xff, 0x10]);
    // Config errors and collisions come back as the plugin's error, not a trap.
    let err = rt
        .transform(&plugin, &input, r#"{"prefix": 1}"#)
        .unwrap_err();
    assert!(err.to_string().contains("prefix must be a string"), "{err}");
    let clash = author::read_input(r#"{"a.b": "sekret-1", "a-b": "sekret-2"}"#).unwrap();
    let err = rt.transform(&plugin, &clash, "{}").unwrap_err();
    assert!(err.to_string().contains("both become A_B"), "{err}");
    assert!(!err.to_string().contains("sekret"), "{err}");

    // What a call costs: printed for examples/plugins/js-envkeys/README.md.
    let mut calls: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            rt.transform(&plugin, &input, config).unwrap();
            started.elapsed()
        })
        .collect();
    calls.sort();
    eprintln!(
        "{engine}: compiled in {compile:.1?}; a call (fresh instance) takes {:.1?} (median of 5)",
        calls[2]
    );
}
