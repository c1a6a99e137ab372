//! The runtime against real components: the built-in Password generator and the hostile
//! fixture (`plugins/testdata/hostile`), both built for wasm32-wasip2 by `build.rs`.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::*;

fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(Limits {
            deadline: Duration::from_millis(500),
            max_memory: 32 << 20,
            ..Default::default()
        })
        .unwrap()
    })
    .clone()
}

fn hostile() -> GeneratorPlugin {
    let bytes = std::fs::read(builtin::component_path("esox_plugin_hostile"))
        .expect("hostile fixture built");
    runtime().load_generator("hostile", &bytes).unwrap()
}

fn password() -> GeneratorPlugin {
    runtime()
        .load_generator("password", builtin::Builtin::Password.component())
        .unwrap()
}

#[test]
fn password_generator_runs_in_wasm() {
    let p = password();
    let cfg = r#"{"length": 32, "digits": 6, "symbols": 4, "secretKeys": ["a", "b"]}"#;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let out = runtime().generate(&p, cfg, None).unwrap();
        assert_eq!(out.data.keys().collect::<Vec<_>>(), ["a", "b"]);
        for v in out.data.values() {
            let s = v.as_str().unwrap();
            assert_eq!(s.chars().count(), 32);
            assert_eq!(s.chars().filter(|c| c.is_ascii_digit()).count(), 6);
            let mut chars = HashSet::new();
            assert!(s.chars().all(|c| chars.insert(c)), "no repeated characters");
            assert!(
                seen.insert(s.to_string()),
                "every password is new (host CSPRNG, fresh instance)"
            );
        }
    }
    let err = runtime()
        .generate(&p, r#"{"length": 4, "digits": 3, "symbols": 3}"#, None)
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Failed { .. }) && err.to_string().contains("exceeds the length"),
        "{err}"
    );
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline() {
    let plugin = hostile();
    let started = Instant::now();
    let err = runtime().generate(&plugin, "loop", None).unwrap_err();
    assert!(matches!(err, PluginError::Timeout { .. }), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "stopped at the 500 ms deadline: {took:?}"
    );
}

#[test]
fn memory_bomb_is_refused() {
    let err = runtime().generate(&hostile(), "alloc", None).unwrap_err();
    assert!(matches!(err, PluginError::OutOfMemory { .. }), "{err}");
}

#[test]
fn huge_output_is_contained() {
    let err = runtime().generate(&hostile(), "output", None).unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::OutOfMemory { .. } | PluginError::OutputTooLarge { .. }
        ),
        "{err}"
    );
}

#[test]
fn panics_become_traps() {
    let err = runtime().generate(&hostile(), "trap", None).unwrap_err();
    assert!(matches!(err, PluginError::Trap { .. }), "{err}");
}

#[test]
fn no_filesystem_network_or_environment() {
    let err = runtime().generate(&hostile(), "file", None).unwrap_err();
    assert!(err.to_string().contains("file access failed"), "{err}");
    let err = runtime().generate(&hostile(), "socket", None).unwrap_err();
    assert!(err.to_string().contains("socket failed"), "{err}");
    let out = runtime().generate(&hostile(), "env", None).unwrap();
    assert_eq!(
        out.data["env"].as_str(),
        Some("0"),
        "no environment variables"
    );
    // Chatty plugins are capped, not fatal.
    let out = runtime().generate(&hostile(), "stdout", None).unwrap();
    assert_eq!(out.data["value"].as_str(), Some("printed"));
}

#[test]
fn the_runtime_keeps_serving_after_hostile_calls() {
    let h = hostile();
    for behaviour in ["trap", "alloc", "loop", "trap"] {
        assert!(runtime().generate(&h, behaviour, None).is_err());
        assert_eq!(
            runtime().generate(&h, "ok", None).unwrap().data["value"].as_str(),
            Some("fine")
        );
    }
}

#[test]
fn oversized_input_is_refused_before_running() {
    let big = "x".repeat(runtime().limits().max_input + 1);
    let err = runtime().generate(&hostile(), &big, None).unwrap_err();
    assert!(matches!(err, PluginError::InputTooLarge { .. }), "{err}");
}

#[test]
fn a_component_for_another_world_or_garbage_is_refused() {
    let err = runtime()
        .load_generator("garbage", b"not wasm")
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::Load { .. }), "{err}");
}

#[test]
fn compiled_cache_serves_valid_entries_and_recompiles_corrupt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::with_cache(Limits::default(), Some(dir.path())).unwrap();
    let bytes = builtin::Builtin::Uuid.component();
    let (_, first) = rt.load_traced("uuid", Kind::Generator, bytes).unwrap();
    assert_eq!(first, cache::Source::Compiled);
    let (plugin, second) = rt.load_traced("uuid", Kind::Generator, bytes).unwrap();
    assert_eq!(second, cache::Source::Cache);
    // The cached component works.
    let out = rt.generate(&plugin, "{}", None).unwrap();
    assert_eq!(out.data["uuid"].len(), 36);

    // Flip a byte of the compiled code: the digest no longer matches, so it is recompiled.
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut file = std::fs::read(&entry).unwrap();
    let last = file.len() - 1;
    file[last] ^= 0xff;
    std::fs::write(&entry, file).unwrap();
    let (_, third) = rt.load_traced("uuid", Kind::Generator, bytes).unwrap();
    assert_eq!(third, cache::Source::Compiled);

    // A generator is not a template engine.
    let err = rt
        .load("uuid", Kind::Template, bytes)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a Template plugin"), "{err}");
}
