//! User plugins (`plugins.esox.dev`) on the real apiserver: components stored in ConfigMaps,
//! pinned by digest, scoped by namespace — and hostile components driven through
//! ExternalSecrets, each stopped by the sandbox while the other ExternalSecrets keep syncing.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use esox_tests::manifests::{EsOptions, external_secret_with, fake_store_v1};
use esox_tests::{TestEnv, plugin_host, secret_strings, wait_for};

fn hostile() -> Vec<u8> {
    std::fs::read(esox::plugin::builtin::component_path("esox_plugin_hostile"))
        .expect("the hostile fixture is built with the engine")
}

fn component_configmap(name: &str, bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
binaryData:
  plugin.wasm: {b64}
"#
    )
}

/// A test namespace (its controller running) holding the hostile fixture in the ConfigMap
/// `hostile`, and the fixture's digest.
async fn with_hostile_component(test: &str) -> (TestEnv, String) {
    let env = TestEnv::new(test).await;
    let bytes = hostile();
    let sha = hex::encode(Sha256::digest(&bytes));
    env.apply(&component_configmap("hostile", &bytes))
        .await
        .unwrap();
    (env, sha)
}

/// A generator `WasmPlugin` `name` running the hostile fixture as `behaviour` (`ok`, `loop`,
/// …), its component in the ConfigMap `hostile` (of `source_ns`, when given) pinned to
/// `digest`.
fn hostile_plugin(name: &str, digest: &str, behaviour: &str, source_ns: Option<&str>) -> String {
    let ns = source_ns
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: plugins.esox.dev/v1alpha1
kind: WasmPlugin
metadata: {{name: {name}}}
spec:
  world: Generator
  source:
    configMap: {{name: hostile, key: plugin.wasm{ns}}}
  sha256: {digest}
  config: {{behaviour: {behaviour}}}
"#
    )
}

fn generator_es(name: &str, kind: &str, plugin: &str) -> String {
    format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: {name}}}
spec:
  refreshInterval: 1h
  target: {{name: {name}}}
  dataFrom:
  - sourceRef:
      generatorRef: {{apiVersion: plugins.esox.dev/v1alpha1, kind: {kind}, name: {plugin}}}
"#
    )
}

#[tokio::test]
async fn hostile_plugins_are_contained_and_others_keep_syncing() {
    let (env, sha) = with_hostile_component("plugin-hostile").await;
    let behaviours = [
        "ok", "loop", "alloc", "output", "output2m", "trap", "file", "socket",
    ];
    for b in behaviours {
        env.apply(&hostile_plugin(&format!("hostile-{b}"), &sha, b, None))
            .await
            .unwrap();
        env.apply(&generator_es(
            &format!("es-{b}"),
            "WasmPlugin",
            &format!("hostile-{b}"),
        ))
        .await
        .unwrap();
    }
    // A healthy ExternalSecret beside them.
    let healthy = EsOptions {
        store_kind: Some("SecretStore"),
        ..Default::default()
    };
    env.apply(&format!(
        "{}---\n{}",
        fake_store_v1("store", &[("k", "v1")]),
        external_secret_with("healthy", "store", "1s", &[("k", "k")], healthy)
    ))
    .await
    .unwrap();

    let ns = env.ns.clone();
    let expect = [
        (
            "loop",
            format!("plugin WasmPlugin/{ns}/hostile-loop timed out after 2s"),
        ),
        (
            "alloc",
            format!(
                "plugin WasmPlugin/{ns}/hostile-alloc ran out of memory (limit 67108864 bytes)"
            ),
        ),
        // 100 MiB cannot even be built inside the 64 MiB memory limit.
        (
            "output",
            format!("plugin WasmPlugin/{ns}/hostile-output ran out of memory"),
        ),
        (
            "output2m",
            format!(
                "plugin WasmPlugin/{ns}/hostile-output2m output is 2097155 bytes, over the 1048576-byte limit"
            ),
        ),
        (
            "trap",
            format!("plugin WasmPlugin/{ns}/hostile-trap crashed"),
        ),
        (
            "file",
            format!("plugin WasmPlugin/{ns}/hostile-file: file access failed"),
        ),
        (
            "socket",
            format!("plugin WasmPlugin/{ns}/hostile-socket: socket failed"),
        ),
    ];
    for (b, text) in &expect {
        let msg = env
            .wait_ready(&format!("es-{b}"), "False", "SecretSyncedError")
            .await;
        assert!(msg.contains(text.as_str()), "{b}: {msg}");
        assert!(
            env.secrets()
                .get_opt(&format!("es-{b}"))
                .await
                .unwrap()
                .is_none(),
            "{b}: no Secret"
        );
    }
    // The well-behaved plugin and the provider-backed ExternalSecret are unaffected.
    let ok = env
        .wait_secret("es-ok", "ok plugin", |s| s.data.is_some())
        .await;
    assert_eq!(secret_strings(&ok)["value"], "fine");
    env.wait_value("healthy", "k", "v1").await;
    env.apply(&fake_store_v1("store", &[("k", "v2")]))
        .await
        .unwrap();
    env.wait_value("healthy", "k", "v2").await;

    let m = env.metrics();
    for outcome in [
        "timeout",
        "out_of_memory",
        "trap",
        "output_too_large",
        "plugin_error",
        "ok",
    ] {
        assert!(
            m.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome}: {m}"
        );
    }
}

/// The controller's plugin-object watch drops a plugin's compiled component from the host
/// when the object pins another digest or is deleted (`controller::plugins::
/// forget_stale_plugins`), instead of keeping it until newer plugins push it out.
#[tokio::test]
async fn deleted_and_repinned_plugins_are_dropped_from_the_host() {
    let (env, sha) = with_hostile_component("plugin-forget").await;
    let plugin = |name: &str, digest: &str| hostile_plugin(name, digest, "ok", None);
    let host = plugin_host();
    let host_name = |name: &str| format!("WasmPlugin/{}/{name}", env.ns);
    let compiled = |name: &str, want: Vec<String>, what: &'static str| {
        let (host, name) = (host.clone(), host_name(name));
        wait_for(std::time::Duration::from_secs(30), what, move || {
            let found = host.user_plugin_digests(&name);
            futures::future::ready((found == want).then_some(()))
        })
    };
    for name in ["repinned", "deleted"] {
        env.apply(&plugin(name, &sha)).await.unwrap();
        env.apply(&generator_es(name, "WasmPlugin", name))
            .await
            .unwrap();
    }
    for name in ["repinned", "deleted"] {
        env.wait_value(name, "value", "fine").await;
        assert_eq!(host.user_plugin_digests(&host_name(name)), [sha.as_str()]);
    }

    // Pinned to another digest (one no component has): its compiled component is dropped at
    // once, and only its own.
    env.apply(&plugin("repinned", &"0".repeat(64)))
        .await
        .unwrap();
    compiled("repinned", vec![], "the repinned plugin dropped")
        .await
        .unwrap();
    assert_eq!(
        host.user_plugin_digests(&host_name("deleted")),
        [sha.as_str()]
    );

    // Deleted: dropped.
    let api: kube::Api<esox::api::plugins::WasmPlugin> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    api.delete("deleted", &Default::default()).await.unwrap();
    compiled("deleted", vec![], "the deleted plugin dropped")
        .await
        .unwrap();
}

#[tokio::test]
async fn digests_and_namespaces_are_enforced() {
    let env = TestEnv::new("plugin-trust").await;
    let other = TestEnv::without_controller("plugin-other").await;
    let bytes = hostile();
    let sha = hex::encode(Sha256::digest(&bytes));
    env.apply(&component_configmap("hostile", &bytes))
        .await
        .unwrap();
    other
        .apply(&component_configmap("hostile", &bytes))
        .await
        .unwrap();
    let plugin = |name: &str, digest: &str, source_ns: Option<&str>| {
        hostile_plugin(name, digest, "ok", source_ns)
    };
    // Good digest: works. Then the same name with a wrong digest: refused, Secret kept.
    env.apply(&plugin("pinned", &sha, None)).await.unwrap();
    env.apply(&generator_es("pinned", "WasmPlugin", "pinned"))
        .await
        .unwrap();
    env.wait_value("pinned", "value", "fine").await;
    let wrong = "0".repeat(64);
    env.apply(&plugin("pinned", &wrong, None)).await.unwrap();
    // Force a refresh (ESO's force-sync annotation).
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: pinned, annotations: {force-sync: '1'}}
spec:
  refreshInterval: 1h
  target: {name: pinned}
  dataFrom:
  - sourceRef:
      generatorRef: {apiVersion: plugins.esox.dev/v1alpha1, kind: WasmPlugin, name: pinned}
"#,
    )
    .await
    .unwrap();
    let msg = env.wait_ready("pinned", "False", "SecretSyncedError").await;
    assert!(
        msg.contains(&format!("component digest mismatch: the component has sha256 {sha}, the plugin declares {wrong}; refusing to load it")),
        "{msg}"
    );
    assert_eq!(
        secret_strings(&env.secrets().get("pinned").await.unwrap())["value"],
        "fine"
    );

    // A WasmPlugin in another namespace is invisible here.
    other.apply(&plugin("theirs", &sha, None)).await.unwrap();
    env.apply(&generator_es("borrowed", "WasmPlugin", "theirs"))
        .await
        .unwrap();
    let msg = env
        .wait_ready("borrowed", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains(&format!(
            "WasmPlugin \"theirs\" not found in namespace \"{}\"",
            env.ns
        )),
        "{msg}"
    );

    // A WasmPlugin may not read a component from another namespace.
    env.apply(&plugin("reaching", &sha, Some(&other.ns)))
        .await
        .unwrap();
    env.apply(&generator_es("reaching", "WasmPlugin", "reaching"))
        .await
        .unwrap();
    let msg = env
        .wait_ready("reaching", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("a WasmPlugin may only use its own namespace"),
        "{msg}"
    );

    // A ClusterWasmPlugin (platform-approved) may, and works from any namespace.
    let cluster_name = format!("{}-approved", env.ns);
    env.apply(&format!(
        r#"
apiVersion: plugins.esox.dev/v1alpha1
kind: ClusterWasmPlugin
metadata: {{name: {cluster_name}}}
spec:
  world: Generator
  source:
    configMap: {{name: hostile, namespace: {}, key: plugin.wasm}}
  sha256: 'sha256:{}'
  config: {{behaviour: ok}}
"#,
        other.ns,
        sha.to_uppercase()
    ))
    .await
    .unwrap();
    env.apply(&generator_es(
        "approved",
        "ClusterWasmPlugin",
        &cluster_name,
    ))
    .await
    .unwrap();
    env.wait_value("approved", "value", "fine").await;

    // A generator is not a transformer.
    env.apply(&format!(
        r#"{}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: misused}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: store, kind: SecretStore}}
  target:
    template:
      engineVersion: minijinja
      plugins:
      - ref: {{kind: ClusterWasmPlugin, name: {cluster_name}}}
  data:
  - secretKey: k
    remoteRef: {{key: k}}
"#,
        fake_store_v1("store", &[("k", "v")])
    ))
    .await
    .unwrap();
    let msg = env
        .wait_ready("misused", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("is a Generator plugin, used here as a Transformer"),
        "{msg}"
    );
}
