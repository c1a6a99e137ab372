//! Keep-last-good against a real outage: moto is stopped after a sync and started again.
//! (Its own test binary: stopping moto would disturb other AWS tests running in parallel.)

use esox_tests::manifests::aws_static_store;
use esox_tests::{TestEnv, put_aws_secret, repo_root, secret_strings};
use kube::ResourceExt;

fn stack(args: &[&str]) {
    let status = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/stack.sh"))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/stack.sh {args:?}");
}

#[tokio::test]
async fn outage_keeps_the_secret_and_recovers() {
    let env = TestEnv::new("aws-outage").await;
    let key = format!("{}/db", env.ns);
    put_aws_secret(&key, r#"{"password":"before-outage"}"#, &[]).await;
    env.apply(&format!(
        r#"{store}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: es}}
spec:
  refreshInterval: 1s
  secretStoreRef: {{name: aws}}
  dataFrom:
  - extract: {{key: "{key}"}}
"#,
        store = aws_static_store("aws", "SecretsManager", "AKID:s"),
    ))
    .await
    .unwrap();
    let synced = env.wait_secret("es", "synced", |s| s.data.is_some()).await;
    env.wait_ready("es", "True", "SecretSynced").await;

    stack(&["stop-service", "moto"]);
    let msg = env.wait_ready("es", "False", "SecretSyncedError").await;
    stack(&["start-service", "moto"]);
    assert!(
        msg.contains("could not get secret data from provider")
            && msg.contains("secretsmanager:GetSecretValue"),
        "{msg}"
    );
    let during = env.secrets().get("es").await.unwrap();
    assert_eq!(
        during.resource_version(),
        synced.resource_version(),
        "the Secret is untouched during the outage"
    );
    assert_eq!(secret_strings(&during)["password"], "before-outage");

    // moto keeps its data in memory: after the restart the remote secret is published again.
    put_aws_secret(&key, r#"{"password":"after-outage"}"#, &[]).await;
    env.wait_ready("es", "True", "SecretSynced").await;
    env.wait_value("es", "password", "after-outage").await;
}
