//! `--shard-mode` with real controller processes on the real apiserver: three replicas share
//! the ExternalSecrets (spread), a fourth joins and takes only its share (join), leaves with
//! SIGTERM and its share is back with the others within one lease duration (leave), one is
//! killed with SIGKILL and its share is taken over once its Lease expires (kill -9). The
//! processes run as distinct ServiceAccounts of namespace `esox-budget`, whose every request
//! the stack's audit log records: at the end, no Secret or status of any ExternalSecret was
//! written by two replicas in overlapping time (no double writes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use esox_tests::manifests::{external_secret, fake_store};
use esox_tests::{ControllerProcess, Log, TestEnv, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;

use esox_tests::audit::SA_NAMESPACE;
const N: usize = 30;
/// Short leases (the defaults are 15 s / 10 s / 2 s).
const LEASE: Duration = Duration::from_secs(6);
const GROUP_LABEL: &str = "shard.esox.io/group";

struct Replica {
    name: &'static str,
    process: ControllerProcess,
    log: Log,
}

/// ServiceAccounts `shard-a`.. in `esox-budget`, bound to cluster-admin (RBAC is the chart's
/// test; here only who wrote what matters), and a kubeconfig for each.
async fn identities(
    env: &TestEnv,
    dir: &std::path::Path,
    names: &[&str],
) -> HashMap<String, std::path::PathBuf> {
    let mut out = HashMap::new();
    for name in names {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        out.insert(
            name.to_string(),
            esox_tests::audit::identity_named(env, name, &sub).await,
        );
    }
    out
}

fn spawn(env: &TestEnv, name: &'static str, kubeconfig: &std::path::Path) -> Replica {
    let (log, file) = Log::new(&format!("sharding-{name}"));
    let lease = format!("{}s", LEASE.as_secs());
    let process = env.spawn_controller_on(
        kubeconfig,
        &[
            ("ESOX_SHARD_MODE", "true"),
            ("ESOX_LEADER_ELECTION_NAMESPACE", &env.ns),
            ("ESOX_LEADER_ELECTION_LEASE_DURATION", &lease),
            ("ESOX_LEADER_ELECTION_RENEW_DEADLINE", "4s"),
            ("ESOX_LEADER_ELECTION_RETRY_PERIOD", "500ms"),
        ],
        file,
    );
    Replica { name, process, log }
}

/// The ExternalSecrets a replica reports (its `externalsecret_sync_calls_total` series: a
/// replica drops the series of what it hands over).
async fn reported(r: &Replica) -> BTreeSet<String> {
    r.process
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("externalsecret_sync_calls_total{"))
        .filter_map(|l| {
            let at = l.find("name=\"")? + 6;
            Some(l[at..at + l[at..].find('"')?].to_string())
        })
        .collect()
}

/// `esox_shard_owned_objects{kind="ExternalSecret"}` of a replica.
async fn owned(r: &Replica) -> Option<usize> {
    r.process
        .metrics()
        .await
        .lines()
        .find(|l| l.starts_with("esox_shard_owned_objects{kind=\"ExternalSecret\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as usize)
}

/// The member Leases: holder identity -> (acknowledged members, owned annotation).
async fn members(env: &TestEnv) -> BTreeMap<String, (usize, String)> {
    let api: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let list = api
        .list(&ListParams::default().labels(GROUP_LABEL))
        .await
        .unwrap();
    list.items
        .iter()
        .filter_map(|l| {
            let holder = l.spec.as_ref()?.holder_identity.clone()?;
            let ann = l.metadata.annotations.clone().unwrap_or_default();
            let acked = ann
                .get("shard.esox.io/members")
                .map(|m| m.split(',').filter(|s| !s.is_empty()).count())
                .unwrap_or(0);
            let owned = ann.get("shard.esox.io/owned").cloned().unwrap_or_default();
            Some((holder, (acked, owned)))
        })
        .collect()
}

/// Waits until there are `n` member Leases, each acknowledging `n` members.
async fn settled(env: &TestEnv, n: usize) {
    let result = wait_for(
        Duration::from_secs(60),
        &format!("{n} members, all acknowledged"),
        || async {
            let m = members(env).await;
            (m.len() == n && m.values().all(|(acked, _)| *acked == n)).then_some(())
        },
    )
    .await;
    if let Err(e) = result {
        panic!("{e}: {:?}", members(env).await);
    }
}

/// Who reports each ExternalSecret, once every one of them is reported by exactly one of
/// `replicas` and all are Ready.
async fn owners(env: &TestEnv, replicas: &[&Replica]) -> BTreeMap<String, &'static str> {
    let api = env.external_secrets();
    let result = wait_for(
        Duration::from_secs(90),
        "every ExternalSecret reported by one replica and Ready",
        || {
            let api = api.clone();
            async move {
                let mut by: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
                for r in replicas {
                    for name in reported(r).await {
                        by.entry(name).or_default().push(r.name);
                    }
                }
                if by.len() != N || by.values().any(|v| v.len() != 1) {
                    return None;
                }
                let list = api.list(&Default::default()).await.ok()?;
                let ready = list
                    .items
                    .iter()
                    .filter(|es| {
                        let status = serde_json::to_value(&es.status).unwrap_or_default();
                        status["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                    })
                    .count();
                (ready == N).then(|| by.into_iter().map(|(k, v)| (k, v[0])).collect())
            }
        },
    )
    .await;
    match result {
        Ok(o) => o,
        Err(e) => {
            for r in replicas {
                eprintln!(
                    "--- {} reports {:?}\n{}",
                    r.name,
                    reported(r).await,
                    r.log.tail()
                );
            }
            panic!("{e}");
        }
    }
}

/// One audited write to an ExternalSecret's Secret or status.
struct Write {
    who: String,
    object: String,
    at: jiff::Timestamp,
}

/// The writes of the `shard-*` ServiceAccounts to Secrets and ExternalSecret statuses in `ns`.
fn audited_writes(ns: &str) -> Vec<Write> {
    let prefix = format!("system:serviceaccount:{SA_NAMESPACE}:shard-");
    let mut out = Vec::new();
    for (at, ev) in esox_tests::audit::entries(jiff::Timestamp::MIN) {
        let Some(user) = ev["user"]["username"].as_str() else {
            continue;
        };
        if !user.starts_with(&prefix) || ev["objectRef"]["namespace"] != ns {
            continue;
        }
        if !["create", "update", "patch"].contains(&ev["verb"].as_str().unwrap_or_default()) {
            continue;
        }
        let obj = &ev["objectRef"];
        let object = match (obj["resource"].as_str(), obj["subresource"].as_str()) {
            (Some("secrets"), None) => {
                format!("secret {}", obj["name"].as_str().unwrap_or_default())
            }
            (Some("externalsecrets"), Some("status")) => {
                format!("status {}", obj["name"].as_str().unwrap_or_default())
            }
            _ => continue,
        };
        out.push(Write {
            who: user.trim_start_matches(&prefix).to_string(),
            object,
            at,
        });
    }
    out
}

#[tokio::test]
async fn three_replicas_spread_join_leave_and_kill_without_double_writes() {
    let env = TestEnv::without_controller("sharding").await;
    esox_tests::audit::assert_audited_stack();
    let dir = tempfile::tempdir().unwrap();
    let ids = identities(
        &env,
        dir.path(),
        &["shard-a", "shard-b", "shard-c", "shard-d"],
    )
    .await;
    let keys: Vec<(String, String)> = (0..N)
        .map(|i| (format!("k-{i}"), format!("v-{i}")))
        .collect();
    let entries: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.apply(&fake_store("fake", &entries)).await.unwrap();

    // Spread: three replicas, then the ExternalSecrets (refreshed every 3 s, so that every
    // replica writes all along and a second writer would show in the audit log).
    let a = spawn(&env, "a", &ids["shard-a"]);
    let b = spawn(&env, "b", &ids["shard-b"]);
    let mut c = spawn(&env, "c", &ids["shard-c"]);
    settled(&env, 3).await;
    for (i, (key, _)) in keys.iter().enumerate() {
        env.apply(&external_secret(
            &format!("es-{i}"),
            "fake",
            "3s",
            &[("v", key)],
        ))
        .await
        .unwrap();
    }
    let spread = owners(&env, &[&a, &b, &c]).await;
    let share = |o: &BTreeMap<String, &'static str>, who: &str| {
        o.iter()
            .filter(|(_, w)| **w == who)
            .map(|(k, _)| k.clone())
            .collect::<BTreeSet<_>>()
    };
    for r in [&a, &b, &c] {
        let mine = share(&spread, r.name).len();
        assert!(mine > 0, "{} owns nothing: {spread:?}", r.name);
        // The gauge follows at the next renewal.
        let gauge = wait_for(
            Duration::from_secs(10),
            "the owned-objects gauge",
            || async { (owned(r).await == Some(mine)).then_some(()) },
        )
        .await;
        if let Err(e) = gauge {
            panic!("{}: {e}: {:?} != {mine}", r.name, owned(r).await);
        }
    }
    eprintln!(
        "spread: a {} b {} c {}; Leases: {:?}",
        share(&spread, "a").len(),
        share(&spread, "b").len(),
        share(&spread, "c").len(),
        members(&env).await
    );
    // Store validation is leader-only: one replica holds the leader Lease.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let leader = leases.get("external-secrets-controller").await.unwrap();
    assert!(
        leader.spec.and_then(|s| s.holder_identity).is_some(),
        "a leader"
    );

    // Join: a fourth replica takes only its share; nothing moves between the others.
    let mut d = spawn(&env, "d", &ids["shard-d"]);
    settled(&env, 4).await;
    let joined = owners(&env, &[&a, &b, &c, &d]).await;
    let moved: Vec<_> = spread
        .iter()
        .filter(|(k, w)| joined[*k] != **w)
        .map(|(k, w)| (k.clone(), *w, joined[k]))
        .collect();
    assert!(!moved.is_empty(), "d took nothing");
    assert!(
        moved.iter().all(|(_, _, to)| *to == "d"),
        "only d's share moves, and only to d: {moved:?}"
    );
    assert!(moved.len() < N / 2, "d took more than its share: {moved:?}");

    // Leave: SIGTERM; d's share is back with its previous owners within one lease duration.
    let (status, _) = d
        .process
        .terminate(Duration::from_secs(20))
        .expect("d exits on SIGTERM");
    assert!(
        status.success(),
        "d exits cleanly: {status:?}\n{}",
        d.log.tail()
    );
    let left_at = Instant::now();
    let back = owners(&env, &[&a, &b, &c]).await;
    let took = left_at.elapsed();
    assert_eq!(back, spread, "d's share goes back where it was");
    assert!(
        took <= LEASE,
        "d's share taken over in {took:?} (lease {LEASE:?})"
    );
    eprintln!("leave: taken over in {took:?}");

    // Kill -9: c's share is taken over once its Lease expires (and not before).
    c.process.kill();
    let killed_at = Instant::now();
    let after = owners(&env, &[&a, &b]).await;
    let took = killed_at.elapsed();
    let c_share = share(&spread, "c");
    assert!(
        after
            .iter()
            .filter(|(k, _)| !c_share.contains(*k))
            .all(|(k, w)| spread[k] == *w),
        "only c's share moves"
    );
    assert!(
        took <= 3 * LEASE,
        "c's share taken over in {took:?} (lease {LEASE:?})"
    );
    assert!(
        took >= LEASE / 2,
        "c's share taken over in {took:?}, before its Lease could expire"
    );
    eprintln!("kill -9: taken over in {took:?}");
    settled(&env, 2).await;

    // Let the survivors refresh a little, then read who wrote what.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes = audited_writes(&env.ns);
    let mut by_object: BTreeMap<&str, Vec<&Write>> = BTreeMap::new();
    for w in &writes {
        by_object.entry(&w.object).or_default().push(w);
    }
    assert!(
        by_object.len() >= N,
        "every ExternalSecret written: {} objects",
        by_object.len()
    );
    // Each membership change (join, leave, kill) moves an object at most once: three writer
    // switches at most. Two writers at once alternate every refresh (3 s) for the minutes
    // this test runs.
    let mut worst = (0, String::new(), String::new());
    for (object, mut ws) in by_object {
        ws.sort_by_key(|w| w.at);
        let runs: Vec<(String, jiff::Timestamp)> =
            ws.iter()
                .fold(Vec::<(String, jiff::Timestamp)>::new(), |mut runs, w| {
                    if runs.last().is_none_or(|(who, _)| *who != w.who) {
                        runs.push((w.who.clone(), w.at));
                    }
                    runs
                });
        let switches = runs.len() - 1;
        if switches > worst.0 {
            worst = (switches, object.to_string(), format!("{runs:?}"));
        }
    }
    eprintln!(
        "audited writes: {}; most writer switches on one object: {worst:?}",
        writes.len()
    );
    assert!(
        worst.0 <= 3,
        "an object written by two replicas at once: {worst:?}"
    );
    drop((a, b, c));
}
