//! Secrets are sacred: no secret value in any log line (at trace level), event, or status.

use std::time::Duration;

use esox_tests::manifests::{aws_static_store, fake_store};
use esox_tests::{TestEnv, logs, wait_for};

const CANARY: &str = "CANARY-s3cr3t-7f3a9c";

#[tokio::test]
async fn secret_values_never_reach_logs_events_or_status() {
    let env = TestEnv::new("hygiene").await;
    let doc = format!(r#"{{"user":"{CANARY}-user","nested":{{"pw":"{CANARY}-pw"}}}}"#);
    env.apply(&fake_store(
        "store",
        &[("creds", &doc), ("raw", &format!("{CANARY}-raw"))],
    ))
    .await
    .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: ok}
spec:
  refreshInterval: 1s
  secretStoreRef: {name: store}
  dataFrom:
  - extract: {key: creds}
  data:
  - {secretKey: pw, remoteRef: {key: creds, property: nested.pw}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: failing}
spec:
  refreshInterval: 1s
  secretStoreRef: {name: store}
  data:
  - {secretKey: a, remoteRef: {key: raw, property: missing}}
  - {secretKey: b, remoteRef: {key: raw, decodingStrategy: Base64}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: failing-decode}
spec:
  refreshInterval: 1s
  secretStoreRef: {name: store}
  data:
  - {secretKey: b, remoteRef: {key: raw, decodingStrategy: Base64}}
"#,
    )
    .await
    .unwrap();
    // The same through the AWS provider: the SDK's own logging must not leak either.
    esox_tests::put_aws_secret(&format!("{}/canary", env.ns), &doc, &[]).await;
    env.apply(&format!(
        r#"{store}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: aws-ok}}
spec:
  refreshInterval: 1s
  secretStoreRef: {{name: aws}}
  dataFrom:
  - extract: {{key: "{}/canary"}}
"#,
        env.ns,
        store = aws_static_store("aws", "SecretsManager", "AKID:s"),
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
