//! The request budget per reconcile (docs/architecture.md, "Request budget"), counted by the
//! apiserver itself: the `esox` binary runs as a ServiceAccount of namespace `esox-budget`,
//! whose every request the local stack's audit policy records (scripts/stack.sh), and the
//! test counts the audit log's entries for its namespace in each phase:
//!
//! - a cold sync of N ExternalSecrets by a running controller: no reads (stores, Secrets and
//!   ExternalSecrets come from watch caches), and per ExternalSecret only the writes a user
//!   sees: the finalizer, the Secret, the status, one event;
//! - a restart with everything in sync: nothing written, each managed Secret read once (the
//!   Secret watch holds metadata only);
//! - periodic refreshes that find nothing changed: the status's refresh time only.
//!
//! A change that adds a request per reconcile fails here with the counts that grew.

use std::collections::BTreeMap;
use std::time::Duration;

use esox_tests::audit::{Request, assert_audited_stack, audited, identity};
use esox_tests::manifests::{external_secret, fake_store};
use esox_tests::{TestEnv, wait_for};
use kube::api::{Patch, PatchParams};
use serde_json::json;

const N: usize = 20;

/// Requests received in `[from, to)`, counted by "verb what".
fn counts(
    requests: &[Request],
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests.iter().filter(|r| r.at >= from && r.at < to) {
        *out.entry(format!("{} {}", r.verb, r.what)).or_default() += 1;
    }
    out
}

fn count(c: &BTreeMap<String, usize>, key: &str) -> usize {
    c.get(key).copied().unwrap_or(0)
}

fn reads(c: &BTreeMap<String, usize>) -> usize {
    c.iter()
        .filter(|(k, _)| k.starts_with("get "))
        .map(|(_, n)| n)
        .sum()
}

fn writes(c: &BTreeMap<String, usize>) -> usize {
    c.iter()
        .filter(|(k, _)| {
            ["create ", "update ", "patch ", "delete "]
                .iter()
                .any(|v| k.starts_with(v))
        })
        .map(|(_, n)| n)
        .sum()
}

/// Waits until every ExternalSecret `es-0..N` is Ready with a status written for its current
/// generation.
async fn all_synced(env: &TestEnv) {
    let api = env.external_secrets();
    wait_for(Duration::from_secs(90), "all ExternalSecrets Ready", || {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|es| {
                    let status = serde_json::to_value(&es.status).unwrap_or_default();
                    let ready = status["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    // ESO's syncedResourceVersion: "<generation>-<metadata hash>".
                    let generation = format!("{}-", es.metadata.generation.unwrap_or(0));
                    ready
                        && status["syncedResourceVersion"]
                            .as_str()
                            .is_some_and(|v| v.starts_with(&generation))
                })
                .count();
            (ready == N).then_some(())
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn reconciles_stay_within_the_request_budget() {
    let env = TestEnv::without_controller("budget").await;
    assert_audited_stack();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = identity(&env, dir.path()).await;
    let keys: Vec<(String, String)> = (0..N)
        .map(|i| (format!("k-{i}"), format!("v-{i}")))
        .collect();
    let entries: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.apply(&fake_store("fake", &entries)).await.unwrap();

    let controller = env.spawn_controller(&[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    controller.wait_ready().await;
    // The store's own validation (one status write) is not part of the ExternalSecrets' budget.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. Cold sync of N new ExternalSecrets by a running controller. A year's interval: a
    // refresh falls on a per-object grid slot, possibly sooner than the interval after the
    // first sync (never later), so with 1h one of them could land in a phase's window.
    let cold_from = jiff::Timestamp::now();
    for (i, (key, _)) in keys.iter().enumerate() {
        env.apply(&external_secret(
            &format!("es-{i}"),
            "fake",
            "8760h",
            &[("v", key)],
        ))
        .await
        .unwrap();
    }
    all_synced(&env).await;
    // Events are written after the status; let the last ones land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cold_to = jiff::Timestamp::now();
    let log = audited(&env.ns, cold_from);
    let cold = counts(&log, cold_from, cold_to);
    eprintln!("cold sync of {N}: {cold:#?}");
    assert_eq!(
        reads(&cold),
        0,
        "a cold sync reads watch caches, not the apiserver: {cold:#?}"
    );
    assert_eq!(
        count(&cold, "create secrets"),
        N,
        "one Secret per ExternalSecret: {cold:#?}"
    );
    assert!(
        count(&cold, "patch externalsecrets/status") <= N,
        "one status write per ExternalSecret: {cold:#?}"
    );
    assert!(
        count(&cold, "create events") <= N,
        "one event per ExternalSecret synced: {cold:#?}"
    );
    assert!(
        writes(&cold) <= 4 * N,
        "at most 4 writes per ExternalSecret (finalizer, Secret, status, event): {cold:#?}"
    );
    assert!(
        cold.keys().all(|k| !k.starts_with("list ")),
        "no lists during a sync: {cold:#?}"
    );

    // 2. A restart with everything in sync writes nothing.
    drop(controller);
    let restart_from = jiff::Timestamp::now();
    let controller = env.spawn_controller(&[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    controller.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let restart_to = jiff::Timestamp::now();
    let restart = counts(&audited(&env.ns, restart_from), restart_from, restart_to);
    eprintln!("restart: {restart:#?}");
    assert_eq!(
        writes(&restart),
        0,
        "a restart with everything in sync writes nothing: {restart:#?}"
    );
    // The Secret watch holds metadata only (memory stays flat in unrelated Secrets), so a new
    // process reads each managed Secret once to check its data against its data-hash
    // annotation; nothing else is read, and nothing at all after that (phase 3).
    assert!(
        reads(&restart) == count(&restart, "get secrets") && reads(&restart) <= N,
        "a restart reads each managed Secret at most once, and nothing else: {restart:#?}"
    );
    let lists: usize = restart
        .iter()
        .filter(|(k, _)| k.starts_with("list ") && !k.ends_with("(probe)"))
        .map(|(_, n)| n)
        .sum();
    let probes: usize = restart
        .iter()
        .filter(|(k, _)| k.ends_with("(probe)"))
        .map(|(_, n)| n)
        .sum();
    // Kinds an older chart may lack (PushSecrets) are probed with one single-item list, so
    // that a missing CRD or RBAC rule is reported and the rest still runs.
    assert!(
        probes <= 1,
        "at most one single-item probe list (PushSecrets): {restart:#?}"
    );
    // (And of WasmPlugins: that watch drops a deleted or repinned plugin's compiled
    // component from memory; and of PushSecrets, the other kind esox reconciles.)
    assert!(
        lists <= 5,
        "one list each of ExternalSecrets, SecretStores, managed Secrets, WasmPlugins and \
         PushSecrets: {restart:#?}"
    );

    // 3. Periodic refreshes that find nothing changed write only the status's refresh time.
    for i in 0..N {
        env.external_secrets()
            .patch(
                &format!("es-{i}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"refreshInterval": "4s"}})),
            )
            .await
            .unwrap();
    }
    all_synced(&env).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refresh_from = jiff::Timestamp::now();
    let window = Duration::from_secs(12);
    tokio::time::sleep(window).await;
    let refresh_to = jiff::Timestamp::now();
    let refresh = counts(&audited(&env.ns, refresh_from), refresh_from, refresh_to);
    eprintln!("refreshes over {window:?} at 4s: {refresh:#?}");
    let status_writes = count(&refresh, "patch externalsecrets/status");
    // 12 s at 4 s is 3 refreshes each (a grid slot may fall either side of the window's ends).
    assert!(
        (2 * N..=4 * N).contains(&status_writes),
        "every ExternalSecret refreshed every 4s: {status_writes} status writes in {window:?}: {refresh:#?}"
    );
    assert_eq!(
        writes(&refresh),
        status_writes,
        "a refresh that changes nothing writes only its status: {refresh:#?}"
    );
    assert_eq!(
        reads(&refresh),
        0,
        "refreshes read the watch caches: {refresh:#?}"
    );
    drop(controller);
}
