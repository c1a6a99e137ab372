//! One slow or dead store never delays another: the real binary, moto behind a fault proxy.
//!
//! An AWS store whose every call goes unanswered (a black hole), one whose calls are late,
//! a healthy AWS store and a Fake store, all in one controller with two `--concurrent` turns
//! (fewer than the dead store's ExternalSecrets) and a 4 s `--provider-timeout`. Before the
//! bulkheads and the deadlines, the dead store's reconciles held every turn for ever: nothing
//! on any store refreshed and a new ExternalSecret never synced.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use esox_tests::manifests::{aws_static_store, fake_store_v1};
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
    // A canary: the log (at trace), the events and the statuses are scanned for it at the end.
    let canary = format!("canary-{}", rand::random::<u64>());
    put_aws_secret(&key, &canary, &[]).await;

    let mut manifests = String::new();
    manifests.push_str(&aws_static_store("dead", "SecretsManager", "DEADKEY:s"));
    manifests.push_str("---\n");
    manifests.push_str(&aws_static_store("slow", "SecretsManager", "SLOWKEY:s"));
    manifests.push_str("---\n");
    manifests.push_str(&aws_static_store("healthy", "SecretsManager", "OKKEY:s"));
    manifests.push_str("---\n");
    manifests.push_str(&fake_store_v1("fake", &[("k", "fake-value")]));
    let dead: Vec<String> = (0..6).map(|i| format!("dead-{i}")).collect();
    for name in &dead {
        manifests.push_str(&external_secret(name, "dead", &key));
    }
    manifests.push_str(&external_secret("slow-0", "slow", &key));
    manifests.push_str(&external_secret("healthy-0", "healthy", &key));
    manifests.push_str(&external_secret("fake-0", "fake", "k"));
    env.apply(&manifests).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("esox.log");
    let controller = env.spawn_controller_logging(
        &[
            ("AWS_ENDPOINT_URL", proxy.url.as_str()),
            ("ESOX_CONCURRENT", "2"),
            ("ESOX_PROVIDER_TIMEOUT", "4s"),
            ("RUST_LOG", "trace"),
        ],
        std::fs::File::create(&log_path).unwrap(),
    );
    // Everything syncs while the proxy passes everything through; the stores are validated.
    for name in dead
        .iter()
        .map(String::as_str)
        .chain(["slow-0", "healthy-0"])
    {
        env.wait_value(name, "value", &canary).await;
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
        env.wait_value(name, "value", &canary).await;
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

    // Through all of it, at trace: no value in the log, an event or a status.
    drop(controller);
    esox_tests::assert_no_secret_value(&env, &[&log_path], &canary).await;
}

/// Overload degrades fairly: 100 ExternalSecrets due every second through a controller
/// allowed 10 apiserver requests a second (a tenth of what they need). Every one is still
/// refreshed, oldest first, and the status of a late refresh says how late it ran.
#[tokio::test]
async fn overload_refreshes_every_object_and_says_it_is_late() {
    let env = TestEnv::without_controller("overload").await;
    // The issue's own figures (2000 at 10 s for 180 s, the binary's default budget):
    // ESOX_OVERLOAD_N=2000 ESOX_OVERLOAD_INTERVAL=10s ESOX_OVERLOAD_WINDOW=180 ESOX_OVERLOAD_QPS=
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let n: usize = var("ESOX_OVERLOAD_N", "100").parse().unwrap();
    let interval = var("ESOX_OVERLOAD_INTERVAL", "1s");
    let window = Duration::from_secs(var("ESOX_OVERLOAD_WINDOW", "25").parse().unwrap());
    let qps = var("ESOX_OVERLOAD_QPS", "10");
    let mut manifests = fake_store_v1("fake", &[("k", "v")]);
    for i in 0..n {
        manifests.push_str(&external_secret(&format!("es-{i}"), "fake", "k").replace(
            &format!("refreshInterval: {INTERVAL}"),
            &format!("refreshInterval: {interval}"),
        ));
    }
    env.apply(&manifests).await.unwrap();
    let limits = [
        ("ESOX_KUBE_QPS", qps.as_str()),
        ("ESOX_KUBE_BURST", qps.as_str()),
    ];
    let _controller = env.spawn_controller(if qps.is_empty() { &[] } else { &limits });
    let api = env.external_secrets();
    let cold = Instant::now();
    wait_for(
        Duration::from_secs(120.max(n as u64 / 5)),
        "all synced",
        || {
            let api = api.clone();
            async move {
                let list = api.list(&Default::default()).await.ok()?;
                let synced = list
                    .items
                    .iter()
                    .filter(|es| es.status.as_ref().is_some_and(|s| s.refresh_time.is_some()))
                    .count();
                (synced == n).then_some(())
            }
        },
    )
    .await
    .unwrap();
    eprintln!("overload: {n} synced in {:?}", cold.elapsed());

    // 25 s of overload (each object's turn comes about every 10 s), watched through one list
    // every second.
    let mut seen: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut late = 0;
    let start = Instant::now();
    while start.elapsed() < window {
        for es in api.list(&Default::default()).await.unwrap().items {
            let Some(status) = es.status else { continue };
            if let Some(t) = status.refresh_time {
                seen.entry(es.metadata.name.clone().unwrap_or_default())
                    .or_default()
                    .insert(t.0.to_string());
            }
            if status.conditions.iter().any(|c| {
                c.message
                    .as_deref()
                    .is_some_and(|m| m.contains("after it was due"))
            }) {
                late += 1;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let counts: Vec<usize> = seen.values().map(|s| s.len()).collect();
    let (min, max) = (
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    );
    eprintln!(
        "overload: {n} at {interval}: refreshes per object in {window:?}: min {min}, max {max}, total {}; late statuses seen {late}",
        counts.iter().sum::<usize>()
    );
    assert_eq!(counts.len(), n, "every ExternalSecret was seen");
    // Each one's first value is the one it had; two distinct values = refreshed in the window.
    assert!(
        min >= 2,
        "an ExternalSecret was not refreshed in {window:?} (min {min})"
    );
    assert!(
        max <= min * 4 + 2,
        "refreshes were not spread fairly (min {min}, max {max})"
    );
    // Behind its budget, the controller says so on the status.
    assert!(
        late > 0 || qps.is_empty(),
        "no status said its refresh ran late"
    );
}
