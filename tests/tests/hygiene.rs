//! Secrets are sacred: no secret value in any log line (at trace level), event, or status.

use std::time::Duration;

use esox_tests::{TestEnv, logs, wait_for};

const CANARY: &str = "CANARY-s3cr3t-7f3a9c";

#[tokio::test]
async fn secret_values_never_reach_logs_events_or_status() {
    let env = TestEnv::new("hygiene").await;
    let doc = format!(r#"{{"user":"{CANARY}-user","nested":{{"pw":"{CANARY}-pw"}}}}"#);
    env.apply(&format!(
        "apiVersion: external-secrets.io/v1beta1\nkind: SecretStore\nmetadata: {{name: store}}\nspec:\n  provider:\n    fake:\n      data:\n      - key: creds\n        value: '{doc}'\n      - key: raw\n        value: '{CANARY}-raw'\n"
    ))
    .await
    .unwrap();
    env.apply(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: ok}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {name: store}\n  dataFrom:\n  - extract: {key: creds}\n  data:\n  - {secretKey: pw, remoteRef: {key: creds, property: nested.pw}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: failing}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {name: store}\n  data:\n  - {secretKey: a, remoteRef: {key: raw, property: missing}}\n  - {secretKey: b, remoteRef: {key: raw, decodingStrategy: Base64}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: failing-decode}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {name: store}\n  data:\n  - {secretKey: b, remoteRef: {key: raw, decodingStrategy: Base64}}\n",
    )
    .await
    .unwrap();
    // The same through the AWS provider: the SDK's own logging must not leak either.
    esox_tests::put_aws_secret(&format!("{}/canary", env.ns), &doc, &[]).await;
    env.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws-creds}}\nstringData: {{id: AKID, secret: s}}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: aws}}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: us-east-1\n      auth: {{secretRef: {{accessKeyIDSecretRef: {{name: aws-creds, key: id}}, secretAccessKeySecretRef: {{name: aws-creds, key: secret}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: aws-ok}}\nspec:\n  refreshInterval: 1s\n  secretStoreRef: {{name: aws}}\n  dataFrom:\n  - extract: {{key: \"{}/canary\"}}\n",
        env.ns
    ))
    .await
    .unwrap();
    env.wait_secret("ok", "synced", |s| s.data.is_some()).await;
    env.wait_secret("aws-ok", "synced from AWS", |s| s.data.is_some())
        .await;
    env.wait_ready("failing", "False", "SecretSyncedError")
        .await;
    env.wait_ready("failing-decode", "False", "SecretSyncedError")
        .await;
    // Let a few refresh cycles and retries run at trace level.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let logs = logs();
    assert!(
        logs.len() > 1000,
        "trace logs were captured ({} bytes)",
        logs.len()
    );
    assert!(!logs.contains("CANARY"), "a secret value reached the logs");
    for name in ["ok", "aws-ok", "failing", "failing-decode"] {
        let events = env.events_for(name).await;
        assert!(
            !events.iter().any(|e| e.contains("CANARY")),
            "a secret value reached an event: {events:?}"
        );
        let es = env.external_secrets().get(name).await.unwrap();
        let status = serde_json::to_string(&es.status).unwrap();
        assert!(
            !status.contains("CANARY"),
            "a secret value reached the status: {status}"
        );
    }
    wait_for(Duration::from_secs(5), "events exist", || async {
        (!env.events_for("failing").await.is_empty()).then_some(())
    })
    .await
    .unwrap();
}
