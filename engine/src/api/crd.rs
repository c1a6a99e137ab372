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

/// All CRDs esox serves.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        with_served_versions(ExternalSecret::crd()),
        with_served_versions(SecretStore::crd()),
        with_served_versions(ClusterSecretStore::crd()),
        super::generators::Password::crd(),
        super::generators::UUID::crd(),
        super::generators::Fake::crd(),
        super::generators::ClusterGenerator::crd(),
        super::generators::STSSessionToken::crd(),
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
        {
            let names: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(names, ["v1", "v1beta1"]);
            let stored: Vec<_> = crd.spec.versions.iter().filter(|v| v.storage).collect();
            assert_eq!(stored.len(), 1);
            assert_eq!(stored[0].name, "v1");
            assert!(crd.spec.versions.iter().all(|v| v.served));
        }
    }

    #[test]
    fn checked_in_crds_are_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/crds/external-secrets.yaml"
        );
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == to_yaml(),
            "deploy/crds/external-secrets.yaml is stale: run `cargo run -p esox -- crds > deploy/crds/external-secrets.yaml`"
        );
    }
}
