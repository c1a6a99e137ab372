//! The runtime and the host against real components: the built-in generators and the
//! hostile fixture (`plugins/testdata/hostile`), all built for wasm32-wasip2 by `build.rs`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::*;

fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        // Generous for a debug build on a loaded 2-core CI machine: a well-behaved call (the
        // chatty `stdout` one) must never reach it.
        Runtime::new(Limits {
            deadline: Duration::from_secs(2),
            max_memory: 32 << 20,
            ..Default::default()
        })
        .unwrap()
    })
    .clone()
}

fn hostile_bytes() -> Vec<u8> {
    std::fs::read(builtin::component_path("esox_plugin_hostile")).expect("hostile fixture built")
}

fn hostile() -> Plugin {
    runtime()
        .load("hostile", World::Generator, &hostile_bytes())
        .unwrap()
}

fn password() -> Plugin {
    runtime()
        .load(
            "password",
            World::Generator,
            builtin::Builtin::Password.component(),
        )
        .unwrap()
}

/// The failure, for `matches!`.
fn kind<T: std::fmt::Debug>(r: Result<T, PluginError>) -> PluginFailure {
    r.unwrap_err().kind
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
        matches!(err.kind, PluginFailure::Failed { .. })
            && err.to_string().contains("exceeds the length"),
        "{err}"
    );
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline() {
    let plugin = hostile();
    let started = Instant::now();
    let err = runtime().generate(&plugin, "loop", None).unwrap_err();
    assert!(matches!(err.kind, PluginFailure::Timeout { .. }), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "stopped at the 2 s deadline: {took:?}"
    );
}

#[test]
fn memory_bomb_is_refused() {
    let err = kind(runtime().generate(&hostile(), "alloc", None));
    assert!(matches!(err, PluginFailure::OutOfMemory { .. }), "{err}");
}

#[test]
fn huge_output_is_contained() {
    let err = kind(runtime().generate(&hostile(), "output", None));
    assert!(
        matches!(
            err,
            PluginFailure::OutOfMemory { .. } | PluginFailure::OutputTooLarge { .. }
        ),
        "{err}"
    );
    let err = kind(runtime().generate(&hostile(), "output2m", None));
    assert!(matches!(err, PluginFailure::OutputTooLarge { .. }), "{err}");
}

#[test]
fn panics_become_traps() {
    let err = kind(runtime().generate(&hostile(), "trap", None));
    assert!(matches!(err, PluginFailure::Trap { .. }), "{err}");
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
    // Chatty plugins are not fatal: their output is discarded.
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
    let err = kind(runtime().generate(&hostile(), &big, None));
    assert!(matches!(err, PluginFailure::InputTooLarge { .. }), "{err}");
}

#[test]
fn a_component_for_another_world_or_garbage_is_refused() {
    let err = runtime()
        .load("garbage", World::Generator, b"not wasm")
        .err()
        .unwrap();
    assert!(matches!(err.kind, PluginFailure::Load { .. }), "{err}");
    // A generator called as a transformer is refused before it runs.
    let err = runtime()
        .transform(&hostile(), &SecretMap::new(), "{}")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("it is a Generator plugin, used as a Transformer"),
        "{err}"
    );
}

#[test]
fn compiled_cache_serves_valid_entries_and_recompiles_corrupt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(HostConfig {
        cache_dir: Some(dir.path().into()),
        ..Default::default()
    })
    .unwrap();
    let bytes = builtin::Builtin::Uuid.component();
    let (_, first) = rt.load_traced("uuid", World::Generator, bytes).unwrap();
    assert_eq!(first, cache::Source::Compiled);
    let (plugin, second) = rt.load_traced("uuid", World::Generator, bytes).unwrap();
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
    let (_, third) = rt.load_traced("uuid", World::Generator, bytes).unwrap();
    assert_eq!(third, cache::Source::Compiled);

    // A generator is not a template engine.
    let err = rt
        .load("uuid", World::Template, bytes)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a Template plugin"), "{err}");
}

/// Records every call a host reports.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, &'static str, Duration)>>);

impl CallObserver for Recorder {
    fn observe(&self, call: &CallStats<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((call.plugin.to_string(), call.outcome, call.queued));
    }
}

fn small_host(max_instances: u32) -> Arc<PluginHost> {
    PluginHost::new(HostConfig {
        limits: Limits {
            deadline: Duration::from_secs(5),
            ..Default::default()
        },
        max_instances,
        cache_dir: None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_of_n_admits_more_callers_who_wait_and_all_succeed() {
    let host = small_host(2);
    let plugin = host
        .runtime()
        .load("hostile", World::Generator, &hostile_bytes())
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (host, plugin, recorder) = (host.clone(), plugin.clone(), recorder.clone());
            tokio::spawn(async move {
                host.generate(plugin, "slow".into(), &recorder)
                    .await
                    .map(|g| g.data["value"].as_str().map(str::to_string))
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().as_deref(), Some("fine"));
    }
    // Six 200 ms calls through two slots take at least three rounds.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(600), "{took:?}");
    let seen = recorder.0.lock().unwrap();
    assert_eq!(seen.len(), 6);
    assert!(
        seen.iter()
            .all(|(p, outcome, _)| p == "hostile" && *outcome == OK_OUTCOME)
    );
    assert!(
        seen.iter()
            .filter(|(_, _, queued)| *queued >= Duration::from_millis(100))
            .count()
            >= 4,
        "four callers waited for a slot: {seen:?}"
    );
}

#[test]
fn an_exhausted_pool_is_not_a_crash() {
    // The runtime alone admits nothing: a second call while one holds the only slot finds
    // the pool exhausted, and says so.
    let rt = Runtime::new(HostConfig {
        max_instances: 1,
        ..Default::default()
    })
    .unwrap();
    if !rt.pooling() {
        eprintln!("SKIPPED: no pooling allocator here (its address space could not be reserved)");
        return;
    }
    let plugin = rt
        .load("hostile", World::Generator, &hostile_bytes())
        .unwrap();
    let busy = {
        let (rt, plugin) = (rt.clone(), plugin.clone());
        std::thread::spawn(move || rt.generate(&plugin, "slow", None).map(|_| ()))
    };
    std::thread::sleep(Duration::from_millis(50));
    let err = rt.generate(&plugin, "ok", None).unwrap_err();
    assert!(
        matches!(err.kind, PluginFailure::PoolExhausted { .. }),
        "{err}"
    );
    assert_eq!(err.metric_label(), "pool_exhausted");
    assert!(
        err.to_string().contains("instance pool is exhausted"),
        "{err}"
    );
    busy.join().unwrap().unwrap();
    // The slot is back.
    rt.generate(&plugin, "ok", None).unwrap();
}

#[test]
fn without_address_space_for_the_pool_instances_are_allocated_on_demand() {
    // 65536 slots of about 4 GiB each: more address space than a 47-bit user space has.
    let rt = Runtime::new(HostConfig {
        max_instances: 1 << 16,
        ..Default::default()
    })
    .unwrap();
    if rt.pooling() {
        eprintln!("SKIPPED: this address space holds even a 256 TiB pool");
        return;
    }
    let plugin = rt
        .load("uuid", World::Generator, builtin::Builtin::Uuid.component())
        .unwrap();
    assert_eq!(
        rt.generate(&plugin, "{}", None).unwrap().data["uuid"].len(),
        36
    );
    let err = Runtime::new(HostConfig {
        max_instances: 0,
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_uses_of_a_plugin_compile_it_once() {
    let host = small_host(8);
    let bytes = builtin::Builtin::Uuid.component().to_vec();
    let first_use = |name: &'static str, sha: &'static str, bytes: Vec<u8>| {
        let host = host.clone();
        tokio::spawn(async move {
            host.user_plugin(name, World::Generator, sha, bytes)
                .await
                .map(|p| p.name().to_string())
        })
    };
    let calls: Vec<_> = (0..8)
        .map(|_| first_use("WasmPlugin/ns/u", "d1", bytes.clone()))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "WasmPlugin/ns/u");
    }
    assert_eq!(
        host.runtime().loads(),
        1,
        "one compilation for eight callers"
    );
    first_use("WasmPlugin/ns/u", "d1", bytes.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(host.runtime().loads(), 1, "then served from memory");

    // A new digest replaces the old one.
    first_use("WasmPlugin/ns/u", "d2", bytes.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(host.runtime().loads(), 2);
    assert_eq!(host.user_plugins(), 1);

    // A failed compilation is shared by those who waited for it, and not kept.
    let calls: Vec<_> = (0..4)
        .map(|_| first_use("WasmPlugin/ns/bad", "d3", b"not wasm".to_vec()))
        .collect();
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err.kind, PluginFailure::Load { .. }), "{err}");
    }
    assert_eq!(host.runtime().loads(), 3);
    assert_eq!(host.user_plugins(), 1);
    first_use("WasmPlugin/ns/bad", "d3", b"not wasm".to_vec())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(host.runtime().loads(), 4, "the next use tries again");

    assert_eq!(host.user_plugin_digests("WasmPlugin/ns/u"), ["d2"]);
    assert!(host.user_plugin_digests("WasmPlugin/ns/bad").is_empty());
    host.forget_user_plugin("WasmPlugin/ns/other");
    assert_eq!(host.user_plugins(), 1, "only the name given is forgotten");
    host.forget_user_plugin("WasmPlugin/ns/u");
    assert_eq!(host.user_plugins(), 0);
    assert!(host.user_plugin_digests("WasmPlugin/ns/u").is_empty());
    first_use("WasmPlugin/ns/u", "d2", bytes.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        host.runtime().loads(),
        5,
        "a forgotten plugin is compiled again on its next use"
    );
}

/// What the built-ins need from WASI, which is less than the linker links (all of p2: see
/// `Runtime::new` for the components that import more, and why they keep it linked).
#[test]
fn builtins_import_only_cli_io_clocks_and_random() {
    let rt = runtime();
    let needed = ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/"];
    for b in builtin::Builtin::ALL {
        for import in rt.wasi_imports(b.component()) {
            assert!(
                needed.iter().any(|n| import.starts_with(n)),
                "{b:?} imports {import}"
            );
        }
    }
    // The hostile fixture imports more: its file and socket probes are denied at run time.
    let hostile = rt.wasi_imports(&hostile_bytes());
    for import in ["wasi:filesystem/preopens", "wasi:sockets/tcp"] {
        assert!(hostile.contains(import), "{import} not in {hostile:?}");
    }
}

#[test]
fn every_builtin_fits_in_one_slot_of_the_pool() {
    // A pool of one slot holds exactly one instance's share of memories, tables and core
    // instances: a built-in that needed more would find the pool exhausted.
    let rt = Runtime::new(HostConfig {
        max_instances: 1,
        ..Default::default()
    })
    .unwrap();
    if !rt.pooling() {
        eprintln!("SKIPPED: no pooling allocator here (its address space could not be reserved)");
        return;
    }
    for b in builtin::Builtin::ALL {
        let plugin = rt.load(b.name(), b.world(), b.component()).unwrap();
        let result = match b.world() {
            World::Generator => rt.generate(&plugin, "{}", None).map(|_| ()),
            World::Transformer => rt.transform(&plugin, &SecretMap::new(), "{}").map(|_| ()),
            World::Template => rt.render(&plugin, &[], &SecretMap::new(), "{}").map(|_| ()),
        };
        if let Err(e) = result {
            assert!(
                !matches!(e.kind, PluginFailure::PoolExhausted { .. }),
                "{b:?}: {e}"
            );
        }
    }
}
