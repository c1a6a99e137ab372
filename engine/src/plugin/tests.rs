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

/// `esox plugin pack` output, read back the way the controller reads it: the ConfigMaps'
/// parts joined in order and decompressed give the component whose sha256 the plugin pins.
#[test]
fn packed_components_round_trip_through_configmaps() {
    use crate::cli::plugin as author;
    use base64::Engine as _;
    use sha2::Digest as _;
    // An incompressible 2.5 MB "component": three parts after gzip.
    let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    wasm.extend((0..2_500_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    let opts = author::PackOptions {
        name: "big",
        namespace: Some("team-a"),
        cluster: false,
        world: crate::api::plugins::PluginWorld::Transformer,
        config: None,
    };
    let packed = author::pack(&wasm, &opts).unwrap();
    assert_eq!(packed.parts, 3);
    let docs: Vec<serde_json::Value> = crate::render::documents(&packed.yaml).unwrap();
    assert_eq!(docs.len(), 4);
    let plugin: crate::api::plugins::WasmPlugin = serde_json::from_value(docs[3].clone()).unwrap();
    assert_eq!(plugin.metadata.namespace.as_deref(), Some("team-a"));
    let spec = plugin.spec.plugin;
    assert_eq!(spec.sha256, hex::encode(sha2::Sha256::digest(&wasm)));
    let mut joined = Vec::new();
    for (r, cm) in spec.source.config_maps.iter().zip(&docs) {
        assert_eq!(cm["metadata"]["name"], r.name.as_str());
        let part = base64::engine::general_purpose::STANDARD
            .decode(cm["binaryData"][&r.key].as_str().unwrap())
            .unwrap();
        assert!(part.len() <= author::PART_BYTES);
        joined.extend(part);
    }
    assert_eq!(unpack_component(joined).unwrap(), wasm);
    // A small component is one ConfigMap named after the plugin.
    let small = author::pack(&wasm[..1000], &opts).unwrap();
    assert_eq!(small.parts, 1);
    let docs: Vec<serde_json::Value> = crate::render::documents(&small.yaml).unwrap();
    assert_eq!(docs[1]["spec"]["source"]["configMap"]["name"], "big");
    // Not a component; a ClusterWasmPlugin without a namespace.
    assert!(author::pack(b"hello", &opts).is_err());
    let cluster = author::PackOptions {
        cluster: true,
        namespace: None,
        ..opts
    };
    assert!(author::pack(&wasm, &cluster).is_err());
}

#[test]
fn stored_components_are_decompressed_with_a_bound() {
    use std::io::Write as _;
    assert_eq!(
        unpack_component(b"\0asm-as-is".to_vec()).unwrap(),
        b"\0asm-as-is"
    );
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    // A gzip bomb: 65 MiB of zeros compress a thousandfold.
    let bomb = gz(&vec![0u8; (MAX_COMPONENT_BYTES + (1 << 20)) as usize]);
    assert!(bomb.len() < 1 << 20);
    let err = unpack_component(bomb).unwrap_err();
    assert!(err.contains("more than 64 MiB"), "{err}");
    let mut broken = gz(b"\0asm");
    broken.truncate(8);
    assert!(
        unpack_component(broken)
            .unwrap_err()
            .contains("not valid gzip")
    );
}
