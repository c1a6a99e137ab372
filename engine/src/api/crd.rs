//! CustomResourceDefinitions for the `external-secrets.io` group.
//!
//! ESO serves `v1` and stopped serving `v1beta1`; most manifests users have (the seeds among
//! them) still say `v1beta1`. The two versions share field names, so we serve both from one
//! schema with conversion strategy `None`: the apiserver only rewrites `apiVersion`, no webhook
//! is needed, and the controller works on `v1` alone. `v1` is the storage version.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{ClusterSecretStore, ExternalSecret, SecretStore};

/// Versions served besides the storage version `v1`, with the same schema.
pub const EXTRA_SERVED_VERSIONS: &[&str] = &["v1beta1"];

/// Adds the extra served versions to a single-version CRD generated from the `v1` types.
fn with_served_versions(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let v1 = crd.spec.versions[0].clone();
    for version in EXTRA_SERVED_VERSIONS {
        let mut extra = v1.clone();
        extra.name = (*version).to_string();
        extra.storage = false;
        extra.served = true;
        crd.spec.versions.push(extra);
    }
    crd.spec.versions[0].storage = true;
    crd.metadata
        .labels
        .get_or_insert_default()
        .insert("external-secrets.io/component".into(), "controller".into());
    crd
}

/// A `v1alpha1`-only kind (PushSecret, ClusterPushSecret: ESO serves no other version),
/// labelled as ESO labels its CRDs.
fn labelled(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    crd.metadata
        .labels
        .get_or_insert_default()
        .insert("external-secrets.io/component".into(), "controller".into());
    crd
}

/// All CRDs esox serves.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        with_served_versions(ExternalSecret::crd()),
        with_served_versions(SecretStore::crd()),
        with_served_versions(ClusterSecretStore::crd()),
        with_served_versions(super::ClusterExternalSecret::crd()),
        labelled(super::PushSecret::crd()),
        labelled(super::ClusterPushSecret::crd()),
        super::generators::Password::crd(),
        super::generators::UUID::crd(),
        super::generators::Fake::crd(),
        super::generators::ClusterGenerator::crd(),
        super::generators::STSSessionToken::crd(),
        super::generators::VaultDynamicSecret::crd(),
        super::plugins::WasmPlugin::crd(),
        super::plugins::ClusterWasmPlugin::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream (what `esox crds` prints and `deploy/crds/` holds).
pub fn to_yaml() -> String {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD always serializes to YAML"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_v1_and_v1beta1_with_v1_stored() {
        for crd in all()
            .into_iter()
            .filter(|c| c.spec.group == super::super::GROUP)
            .filter(|c| !c.spec.names.kind.contains("PushSecret"))
        {
            let names: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(names, ["v1", "v1beta1"]);
            let stored: Vec<_> = crd.spec.versions.iter().filter(|v| v.storage).collect();
            assert_eq!(stored.len(), 1);
            assert_eq!(stored[0].name, "v1");
            assert!(crd.spec.versions.iter().all(|v| v.served));
        }
    }

    /// `(name, type, jsonPath)` of every printer column of every version of `kind`, with no
    /// priority set (ESO's columns all show in `kubectl get`).
    fn columns(kind: &str) -> Vec<Vec<(String, String, String)>> {
        let crd = all()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"));
        crd.spec
            .versions
            .iter()
            .map(|v| {
                v.additional_printer_columns
                    .iter()
                    .flatten()
                    .map(|c| {
                        assert_eq!(c.priority, None, "{kind} {}: {}", v.name, c.name);
                        (c.name.clone(), c.type_.clone(), c.json_path.clone())
                    })
                    .collect()
            })
            .collect()
    }

    fn expect(cols: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        cols.iter()
            .map(|(n, t, p)| (n.to_string(), t.to_string(), p.to_string()))
            .collect()
    }

    /// ESO's `additionalPrinterColumns` (config/crds/bases/external-secrets.io_*.yaml at
    /// v2.9.0), the same in `v1` and `v1beta1`.
    #[test]
    fn printer_columns_match_eso() {
        const READY_REASON: &str = ".status.conditions[?(@.type==\"Ready\")].reason";
        const READY_STATUS: &str = ".status.conditions[?(@.type==\"Ready\")].status";
        let es = expect(&[
            ("StoreType", "string", ".spec.secretStoreRef.kind"),
            ("Store", "string", ".spec.secretStoreRef.name"),
            ("Refresh Interval", "string", ".spec.refreshInterval"),
            ("Status", "string", READY_REASON),
            ("Ready", "string", READY_STATUS),
            ("Last Sync", "date", ".status.refreshTime"),
        ]);
        assert_eq!(columns("ExternalSecret"), [es.clone(), es]);
        let store = expect(&[
            ("AGE", "date", ".metadata.creationTimestamp"),
            ("Status", "string", READY_REASON),
            ("Capabilities", "string", ".status.capabilities"),
            ("Ready", "string", READY_STATUS),
        ]);
        for kind in ["SecretStore", "ClusterSecretStore"] {
            assert_eq!(columns(kind), [store.clone(), store.clone()], "{kind}");
        }
        let ces = expect(&[
            (
                "Store",
                "string",
                ".spec.externalSecretSpec.secretStoreRef.name",
            ),
            ("Refresh Interval", "string", ".spec.refreshTime"),
            ("Ready", "string", READY_STATUS),
        ]);
        assert_eq!(columns("ClusterExternalSecret"), [ces.clone(), ces]);
        let ps = expect(&[
            ("AGE", "date", ".metadata.creationTimestamp"),
            ("Status", "string", READY_REASON),
            ("Last Sync", "date", ".status.refreshTime"),
        ]);
        assert_eq!(columns("PushSecret"), [ps]);
        let cps = expect(&[
            ("AGE", "date", ".metadata.creationTimestamp"),
            ("Status", "string", READY_REASON),
        ]);
        assert_eq!(columns("ClusterPushSecret"), [cps]);
        // ESO's generators declare no columns, so kubectl shows NAME and AGE.
        for kind in [
            "Password",
            "UUID",
            "Fake",
            "ClusterGenerator",
            "STSSessionToken",
        ] {
            assert_eq!(columns(kind), [Vec::new()], "{kind}");
        }
    }

    /// esox's own plugin kinds: the world, the age, and the digest under `-o wide`.
    #[test]
    fn plugin_kinds_have_their_own_columns() {
        for kind in ["WasmPlugin", "ClusterWasmPlugin"] {
            let crd = all()
                .into_iter()
                .find(|c| c.spec.names.kind == kind)
                .unwrap();
            let cols: Vec<_> = crd.spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| (c.name.as_str(), c.priority))
                .collect();
            assert_eq!(cols, [("World", None), ("SHA256", Some(1)), ("Age", None)]);
        }
    }

    /// `templateFrom[].valuesDecodingStrategy` as ESO's v1 schema has it: optional, no default
    /// (the apiserver stores nothing when it is omitted), ESO's decoding enum.
    #[test]
    fn values_decoding_strategy_is_in_the_schema() {
        let crd = all()
            .into_iter()
            .find(|c| c.spec.names.kind == "ExternalSecret")
            .unwrap();
        for v in &crd.spec.versions {
            let schema = serde_json::to_value(&v.schema).unwrap();
            let field = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["target"]["properties"]
                ["template"]["properties"]["templateFrom"]["items"]["properties"]["valuesDecodingStrategy"];
            assert_eq!(field["type"], "string", "{}: {field}", v.name);
            assert_eq!(
                field["enum"],
                serde_json::json!(["Auto", "Base64", "Base64URL", "None"]),
                "{}",
                v.name
            );
            assert!(field.get("default").is_none(), "{}: {field}", v.name);
            // The same values as the `DecodingStrategy` type the other fields derive from.
            let derived = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["data"]["items"]
                ["properties"]["remoteRef"]["properties"]["decodingStrategy"]["enum"];
            assert_eq!(&field["enum"], derived);
        }
    }

    /// ESO 2.10 removed the schema defaults that made Argo CD show drift (#6797/#6798);
    /// esox's PushSecret schema has none on its own fields (the embedded ExternalSecret
    /// template keeps ESO's `engineVersion`/`mergePolicy` ones), so a manifest without a
    /// template is stored exactly as applied.
    #[test]
    fn push_secret_schemas_inject_no_defaults() {
        for kind in ["PushSecret", "ClusterPushSecret"] {
            let crd = all()
                .into_iter()
                .find(|c| c.spec.names.kind == kind)
                .unwrap();
            let mut schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            let mut spec = schema["openAPIV3Schema"]["properties"]["spec"].take();
            if kind == "ClusterPushSecret" {
                spec = spec["properties"]["pushSecretSpec"].take();
            }
            spec["properties"]["template"].take();
            spec["properties"]["selector"]["properties"]["generatorRef"].take();
            let text = spec.to_string();
            assert!(!text.contains("\"default\""), "{kind}: {text}");
            assert!(text.contains("conversionStrategy"), "{kind}");
        }
    }

    #[test]
    fn checked_in_crds_are_current() {
        // Cargo's run-time CARGO_MANIFEST_DIR: a build reused from another checkout keeps
        // the path it was compiled in.
        let path = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
            .join("../deploy/crds/external-secrets.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == to_yaml(),
            "deploy/crds/external-secrets.yaml is stale: run `cargo run -p esox -- crds > deploy/crds/external-secrets.yaml`"
        );
    }
}
