//! Leader election with two real controller processes on one Lease: one leads and syncs, the
//! other waits and writes nothing; when the leader dies the standby takes over and syncs.

use std::time::{Duration, Instant};

use esox_tests::manifests::{EsOptions, external_secret_with, fake_store_v1};
use esox_tests::{TestEnv, secret_strings};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// The ExternalSecret both controllers would sync: `k` of the Fake store into the Secret `out`.
fn synced_es(annotations: &[(&str, &str)]) -> String {
    external_secret_with(
        "es",
        "store",
        "1h",
        &[("k", "k")],
        EsOptions {
            store_kind: Some("SecretStore"),
            target: Some("out"),
            annotations,
        },
    )
}

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt("external-secrets-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn syncs(p: &esox_tests::ControllerProcess) -> u64 {
    p.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("externalsecret_sync_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn one_leader_syncs_and_the_standby_takes_over() {
    // No in-process controller: only the two processes under test write.
    let env = TestEnv::without_controller("leader").await;
    let le: Vec<(&str, &str)> = vec![
        ("ESOX_LEADER_ELECT", "true"),
        ("ESOX_LEADER_ELECTION_NAMESPACE", &env.ns),
        ("ESOX_LEADER_ELECTION_LEASE_DURATION", "4s"),
        ("ESOX_LEADER_ELECTION_RENEW_DEADLINE", "3s"),
        ("ESOX_LEADER_ELECTION_RETRY_PERIOD", "500ms"),
    ];
    let first = env.spawn_controller(&le);
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    while holder(&leases).await.is_none() {
        assert!(Instant::now() < deadline, "nobody took the Lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leader = holder(&leases).await.unwrap();
    let second = env.spawn_controller(&le);
    env.apply(&format!(
        "{}---\n{}",
        fake_store_v1("store", &[("k", "one")]),
        synced_es(&[])
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("out", "secret from the leader", |s| s.data.is_some())
        .await;
    assert_eq!(secret_strings(&s)["k"], "one");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some(leader.as_str()),
        "the leader keeps the Lease"
    );
    assert!(syncs(&first).await > 0, "the leader syncs");
    assert_eq!(syncs(&second).await, 0, "the standby writes nothing");

    // The leader dies without releasing the Lease: the standby takes over once it expires.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(h) = holder(&leases).await
            && h != leader
        {
            break;
        }
        assert!(Instant::now() < deadline, "the standby did not take over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.apply(&format!(
        "{}---\n{}",
        fake_store_v1("store", &[("k", "two")]),
        synced_es(&[("force-sync", "2")])
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("out", "secret from the new leader", |s| {
            secret_strings(s).get("k").map(String::as_str) == Some("two")
        })
        .await;
    assert_eq!(secret_strings(&s)["k"], "two");
    assert!(syncs(&second).await > 0, "the new leader syncs");
}
