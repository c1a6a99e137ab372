//! One slow or dead store never delays another: the real binary, moto behind a fault proxy.
//!
//! An AWS store whose every call goes unanswered (a black hole), one whose calls are late,
//! a healthy AWS store and a Fake store, all in one controller with two `--concurrent` turns
//! (fewer than the dead store's ExternalSecrets) and a 4 s `--provider-timeout`. Before the
//! bulkheads and the deadlines, the dead store's reconciles held every turn for ever: nothing
//! on any store refreshed and a new ExternalSecret never synced.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use esox_tests::manifests::aws_static_store;
use esox_tests::proxy::{Fault, FaultProxy};
use esox_tests::{TestEnv, put_aws_secret, stack_env, wait_for};

const INTERVAL: &str = "2s";

fn external_secret(name: &str, store: &str, key: &str) -> String {
    format!(
        r#"---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: {name}}}
spec:
  refreshInterval: {INTERVAL}
  secretStoreRef: {{name: {store}}}
  data:
  - secretKey: value
    remoteRef: {{key: "{key}"}}
"#
    )
}

/// The distinct `status.refreshTime`s ExternalSecret `name` shows while polled for `window`.
async fn refreshes(env: &TestEnv, name: &str, window: Duration) -> usize {
    let api = env.external_secrets();
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    while start.elapsed() < window {
        if let Ok(es) = api.get(name).await
            && let Some(t) = es.status.and_then(|s| s.refresh_time)
        {
            seen.insert(t.0.to_string());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen.len()
}

#[tokio::test]
async fn a_dead_store_holds_back_no_other_store() {
    let env = TestEnv::without_controller("store-faults").await;
    let moto = stack_env().unwrap()["ESOX_MOTO_URL"].clone();
    let proxy = FaultProxy::start(&moto, Vec::new()).await;
    let key = format!("{}/db", env.ns);
    put_aws_secret(&key, "remote-value", &[]).await;

    let mut manifests = String::new();
    manifests.push_str(&aws_static_store("dead", "SecretsManager", "DEADKEY:s"));
    manifests.push_str("---\n");
    manifests.push_str(&aws_static_store("slow", "SecretsManager", "SLOWKEY:s"));
    manifests.push_str("---\n");
    manifests.push_str(&aws_static_store("healthy", "SecretsManager", "OKKEY:s"));
    manifests.push_str(
        r#"---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: fake}
spec:
  provider:
    fake:
      data:
      - {key: k, value: fake-value}
"#,
    );
    let dead: Vec<String> = (0..6).map(|i| format!("dead-{i}")).collect();
    for name in &dead {
        manifests.push_str(&external_secret(name, "dead", &key));
    }
    manifests.push_str(&external_secret("slow-0", "slow", &key));
    manifests.push_str(&external_secret("healthy-0", "healthy", &key));
    manifests.push_str(&external_secret("fake-0", "fake", "k"));
    env.apply(&manifests).await.unwrap();

    let _controller = env.spawn_controller(&[
        ("AWS_ENDPOINT_URL", proxy.url.as_str()),
        ("ESOX_CONCURRENT", "2"),
        ("ESOX_PROVIDER_TIMEOUT", "4s"),
    ]);
    // Everything syncs while the proxy passes everything through; the stores are validated.
    for name in dead
        .iter()
        .map(String::as_str)
        .chain(["slow-0", "healthy-0"])
    {
        env.wait_value(name, "value", "remote-value").await;
    }
    env.wait_value("fake-0", "value", "fake-value").await;

    // Now the dead store stops answering and the slow one answers 3 s late.
    proxy.set(vec![
        ("DEADKEY".into(), Fault::BlackHole),
        ("SLOWKEY".into(), Fault::Delay(Duration::from_secs(3))),
    ]);

    // The dead store's ExternalSecrets say why, naming the deadline; their Secrets are kept.
    for name in &dead {
        let msg = env.wait_ready(name, "False", "SecretSyncedError").await;
        assert!(
            msg.contains("no answer from the provider within 4s"),
            "{name}: {msg}"
        );
    }
    assert!(proxy.faulted() >= dead.len(), "the fault was hit");
    for name in &dead {
        env.wait_value(name, "value", "remote-value").await;
    }

    // The other stores keep their refresh rate: at a 2 s interval, 10 s hold about five
    // refreshes (at least three, allowing for a loaded machine).
    let window = Duration::from_secs(10);
    let (fake, healthy, slow) = tokio::join!(
        refreshes(&env, "fake-0", window),
        refreshes(&env, "healthy-0", window),
        refreshes(&env, "slow-0", window),
    );
    assert!(fake >= 3, "the Fake store refreshed {fake} times in 10 s");
    assert!(
        healthy >= 3,
        "the healthy AWS store refreshed {healthy} times in 10 s"
    );
    // A slow store is slow, not failed: its calls (3 s, under the deadline) still land.
    assert!(slow >= 1, "the slow store refreshed {slow} times in 10 s");
    env.wait_ready("slow-0", "True", "SecretSynced").await;

    // A new ExternalSecret on a healthy store syncs at once.
    let start = Instant::now();
    env.apply(&external_secret("fake-new", "fake", "k"))
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "fake-new synced", || {
        let api = env.secrets();
        async move { api.get_opt("fake-new").await.ok().flatten() }
    })
    .await
    .unwrap();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a new ExternalSecret on a healthy store took {took:?} while a store is dead"
    );
    eprintln!(
        "dead store: fake {fake}, healthy {healthy}, slow {slow} refreshes in 10 s; new ExternalSecret in {took:?}"
    );
}
