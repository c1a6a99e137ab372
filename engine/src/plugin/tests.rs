//! Plugin objects as `esox plugin pack` writes them and the controller reads them back.

use super::*;

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
    let docs: Vec<serde_json::Value> = crate::offline::documents(&packed.yaml).unwrap();
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
    let docs: Vec<serde_json::Value> = crate::offline::documents(&small.yaml).unwrap();
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
fn calls_are_counted_in_the_controller_metrics() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = crate::metrics::Metrics::new(&mut registry);
    let call = |outcome| CallStats {
        plugin: "pkcs12",
        world: World::Transformer,
        outcome,
        queued: std::time::Duration::ZERO,
        elapsed: std::time::Duration::from_millis(3),
    };
    metrics.observe(&call(OK_OUTCOME));
    metrics.observe(&call("timeout"));
    metrics.observe(&call("timeout"));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"esox_plugin_calls_total{plugin="pkcs12",outcome="timeout"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"esox_plugin_calls_total{plugin="pkcs12",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"esox_plugin_call_duration_seconds_count{plugin="pkcs12"} 3"#),
        "{text}"
    );
}
