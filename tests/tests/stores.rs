//! SecretStore and ClusterSecretStore behaviour: validation status, unsupported providers,
//! ClusterSecretStore namespace conditions, and the seeds' store manifests applying as written.

use std::collections::BTreeMap;

use esox_tests::manifests::{fake_store, irsa_cluster_store};
use esox_tests::{Options, TestEnv, cluster_lock, secret_strings, wait_for};
use std::time::Duration;

async fn store_ready(env: &TestEnv, kind: &str, name: &str) -> (String, String, String) {
    let ns = env.ns.clone();
    wait_for(
        Duration::from_secs(30),
        &format!("{kind} {name} status"),
        || {
            let client = env.client.clone();
            let ns = ns.clone();
            let kind = kind.to_string();
            let name = name.to_string();
            async move {
                let status = if kind == "SecretStore" {
                    kube::Api::<esox::api::SecretStore>::namespaced(client, &ns)
                        .get(&name)
                        .await
                        .ok()?
                        .status?
                } else {
                    kube::Api::<esox::api::ClusterSecretStore>::all(client)
                        .get(&name)
                        .await
                        .ok()?
                        .status?
                };
                let c = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
                Some((
                    c.status,
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default(),
                ))
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn secret_store_status_and_unsupported_providers() {
    let env = TestEnv::new("store-status").await;
    env.apply(&fake_store("fake", &[("k", "v")])).await.unwrap();
    // A provider esox does not serve (GCP Secret Manager, as ESO writes it): accepted by
    // the schema, reported as unsupported. (The seeds' Vault store is served: tests/vault.rs.)
    env.apply(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: gcp-backend
spec:
  provider:
    gcpsm:
      projectID: "my-project"
      auth:
        workloadIdentity:
          clusterLocation: europe-west1
          clusterName: prod
          serviceAccountRef:
            name: "my-app-sa"
"#,
    )
    .await
    .unwrap();
    assert_eq!(
        store_ready(&env, "SecretStore", "fake").await,
        ("True".into(), "Valid".into(), "store validated".into())
    );
    let (status, reason, message) = store_ready(&env, "SecretStore", "gcp-backend").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "UnsupportedProvider")
    );
    assert!(message.contains("\"gcpsm\""), "{message}");
    // The unknown provider's fields are kept verbatim, not pruned.
    let raw = kube::Api::<esox::api::SecretStore>::namespaced(env.client.clone(), &env.ns)
        .get("gcp-backend")
        .await
        .unwrap();
    assert_eq!(
        raw.spec.provider.other["gcpsm"]["auth"]["workloadIdentity"]["serviceAccountRef"]["name"],
        "my-app-sa"
    );
}

#[tokio::test]
async fn cluster_store_conditions_allow_and_deny_namespaces() {
    let _guard = cluster_lock().await;
    let env = TestEnv::with(
        "css-conditions",
        Options {
            cluster_wide: true,
            namespace_labels: BTreeMap::from([("team".into(), "a".into())]),
            ..Default::default()
        },
    )
    .await;
    let css = format!("css-{}", env.ns);
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: ClusterSecretStore
metadata: {{name: {css}-open}}
spec:
  conditions:
  - namespaceSelector: {{matchLabels: {{team: a}}}}
  provider:
    fake:
      data: [{{key: k, value: shared}}]
---
apiVersion: external-secrets.io/v1beta1
kind: ClusterSecretStore
metadata: {{name: {css}-closed}}
spec:
  conditions:
  - namespaces: [somewhere-else]
  - namespaceRegexes: ['^prod-']
  provider:
    fake:
      data: [{{key: k, value: shared}}]
"#
    ))
    .await
    .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: allowed}}
spec:
  secretStoreRef: {{name: {css}-open, kind: ClusterSecretStore}}
  data:
  - {{secretKey: v, remoteRef: {{key: k}}}}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: denied}}
spec:
  secretStoreRef: {{name: {css}-closed, kind: ClusterSecretStore}}
  data:
  - {{secretKey: v, remoteRef: {{key: k}}}}
"#
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("allowed", "synced from cluster store", |s| s.data.is_some())
        .await;
    assert_eq!(secret_strings(&s)["v"], "shared");
    let msg = env.wait_ready("denied", "False", "SecretSyncedError").await;
    assert!(msg.contains(&format!("using cluster store \"{css}-closed\" is not allowed from namespace \"{}\": denied by spec.condition", env.ns)), "{msg}");
    assert!(env.secrets().get_opt("denied").await.unwrap().is_none());
    assert_eq!(
        store_ready(&env, "ClusterSecretStore", &format!("{css}-open"))
            .await
            .1,
        "Valid"
    );
}

#[tokio::test]
async fn seeds_aws_store_manifests_apply_as_written() {
    let env = TestEnv::without_controller("seed-stores").await;
    let name = format!("aws-secrets-manager-{}", env.ns);
    env.apply(&irsa_cluster_store(&name, "external-secrets"))
        .await
        .unwrap();
    let css = kube::Api::<esox::api::ClusterSecretStore>::all(env.client.clone())
        .get(&name)
        .await
        .unwrap();
    let aws = css.spec.provider.aws.clone().unwrap();
    assert_eq!(aws.region, "us-east-1");
    let sa = aws.auth.unwrap().jwt.unwrap().service_account_ref.unwrap();
    assert_eq!(
        (sa.name.as_str(), sa.namespace.as_deref()),
        ("external-secrets-sa", Some("external-secrets"))
    );
}

/// ESO's flood gate: a store esox itself reports as not Ready serves nothing, even where the
/// fetch could succeed (here the `secretRef` names another namespace, and a Secret of the same
/// name exists in the ExternalSecret's own); once the store is fixed, its ExternalSecrets sync
/// at once, not at their next backoff.
#[tokio::test]
async fn an_unready_store_serves_nothing_until_it_is_ready() {
    let env = TestEnv::new("flood-gate").await;
    let key = format!("{}/db", env.ns);
    esox_tests::put_aws_secret(&key, "flood-value", &[]).await;
    let store = esox_tests::manifests::aws_static_store("aws", "SecretsManager", "AKID:s");
    let cross = store.replace(
        "            name: aws-creds\n            key: secret",
        "            name: aws-creds\n            namespace: elsewhere\n            key: secret",
    );
    assert_ne!(store, cross);
    env.apply(&format!(
        r#"{cross}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: gated}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: aws}}
  data:
  - secretKey: value
    remoteRef: {{key: "{key}"}}
"#
    ))
    .await
    .unwrap();
    let (status, reason, _) = store_ready(&env, "SecretStore", "aws").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidProviderConfig")
    );
    let msg = env.wait_ready("gated", "False", "SecretSyncedError").await;
    assert!(
        msg.starts_with("SecretStore \"aws\" is not ready: InvalidProviderConfig"),
        "{msg}"
    );
    assert!(
        env.secrets().get_opt("gated").await.unwrap().is_none(),
        "nothing is synced through a store that is not Ready"
    );
    // The store fixed: the ExternalSecret follows within seconds (its backoff would be longer
    // by now), because a store turning Ready reconciles the ExternalSecrets that read it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let start = std::time::Instant::now();
    env.apply(&store).await.unwrap();
    env.wait_value("gated", "value", "flood-value").await;
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "synced {:?} after the store was fixed",
        start.elapsed()
    );
}
