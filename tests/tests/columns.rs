//! The printer columns `kubectl get` shows for each kind, on the real apiserver: ESO's
//! (`additionalPrinterColumns` of config/crds/bases/external-secrets.io_*.yaml at v2.9.0) for
//! ESO's kinds, in both served versions.

use esox_tests::manifests::fake_store_v1;
use esox_tests::{Options, TestEnv, cluster_lock, kubectl};

/// The header and the single row of `kubectl get`, split into words.
fn table(args: &[&str]) -> (Vec<String>, Vec<String>) {
    let out = kubectl(args);
    let mut lines = out.lines();
    let words = |l: Option<&str>| -> Vec<String> {
        l.unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let header = words(lines.next());
    let row = words(lines.next());
    assert!(lines.next().is_none(), "one row expected: {out}");
    (header, row)
}

/// A kubectl age (`5s`, `2m3s`, …).
fn is_age(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
}

#[tokio::test]
async fn kubectl_get_shows_esos_columns() {
    let _guard = cluster_lock().await;
    let env = TestEnv::with(
        "columns",
        Options {
            cluster_wide: true,
            ..Default::default()
        },
    )
    .await;
    let css = format!("css-{}", env.ns);
    let store = fake_store_v1("store", &[("k", "v")]);
    env.apply(&format!(
        r#"{store}---
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {{name: {css}}}
spec:
  conditions: [{{namespaces: ["{ns}"]}}]
  provider:
    fake:
      data: [{{key: k, value: v}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: listed}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: store, kind: SecretStore}}
  data:
  - {{secretKey: v, remoteRef: {{key: k}}}}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: listed-cluster}}
spec:
  refreshInterval: 10m
  secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
  data:
  - {{secretKey: v, remoteRef: {{key: k}}}}
"#,
        ns = env.ns
    ))
    .await
    .unwrap();
    env.wait_ready("listed", "True", "SecretSynced").await;
    env.wait_ready("listed-cluster", "True", "SecretSynced")
        .await;

    let es_header = [
        "NAME",
        "STORETYPE",
        "STORE",
        "REFRESH",
        "INTERVAL",
        "STATUS",
        "READY",
        "LAST",
        "SYNC",
    ];
    for resource in [
        "es",
        "externalsecrets.v1.external-secrets.io",
        "externalsecrets.v1beta1.external-secrets.io",
    ] {
        let (header, row) = table(&["get", resource, "listed", "-n", &env.ns]);
        assert_eq!(header, es_header, "{resource}");
        assert_eq!(
            row[..6],
            [
                "listed",
                "SecretStore",
                "store",
                "1h",
                "SecretSynced",
                "True"
            ],
            "{resource}: {row:?}"
        );
        assert_eq!(row.len(), 7, "{resource}: {row:?}");
        assert!(is_age(&row[6]), "LAST SYNC is an age: {row:?}");
    }
    let (_, row) = table(&["get", "es", "listed-cluster", "-n", &env.ns]);
    assert_eq!(
        row[..6],
        [
            "listed-cluster",
            "ClusterSecretStore",
            css.as_str(),
            "10m",
            "SecretSynced",
            "True"
        ],
        "{row:?}"
    );

    let store_header = ["NAME", "AGE", "STATUS", "CAPABILITIES", "READY"];
    for (args, name) in [
        (vec!["get", "ss", "store", "-n", env.ns.as_str()], "store"),
        (
            vec![
                "get",
                "secretstores.v1beta1.external-secrets.io",
                "store",
                "-n",
                env.ns.as_str(),
            ],
            "store",
        ),
        (vec!["get", "css", css.as_str()], css.as_str()),
    ] {
        let (header, row) = table(&args);
        assert_eq!(header, store_header, "{args:?}");
        assert_eq!(row.len(), 5, "{args:?}: {row:?}");
        assert_eq!(row[0], name);
        assert!(is_age(&row[1]), "AGE: {row:?}");
        // Fake stores can be pushed to: ReadWrite, as ESO's Fake provider says.
        assert_eq!(row[2..], ["Valid", "ReadWrite", "True"], "{args:?}");
    }

    // Generators declare no columns (as in ESO): kubectl's NAME and AGE.
    env.apply(
        "apiVersion: generators.external-secrets.io/v1alpha1\nkind: Password\nmetadata: {name: pw}\nspec: {length: 12}\n",
    )
    .await
    .unwrap();
    let (header, row) = table(&["get", "passwords", "pw", "-n", &env.ns]);
    assert_eq!(header, ["NAME", "AGE"]);
    assert_eq!(row[0], "pw");

    // Delete the cluster-scoped store so it does not outlive the test.
    kubectl(&["delete", "css", &css, "--wait=false"]);
}
