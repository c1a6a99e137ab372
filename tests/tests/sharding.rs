//! `--shard-mode` with real controller processes on the real apiserver.
//!
//! - ExternalSecrets: three replicas share them (spread), a fourth joins and takes only its
//!   share (join), leaves with SIGTERM and its share is back with the others within one lease
//!   duration (leave), one is killed with SIGKILL and its share is taken over once its Lease
//!   expires (kill -9); no Secret or status was written by two replicas in overlapping time.
//! - PushSecrets to a Kubernetes store: a source change is pushed by the owner only, the
//!   source watches follow a join, a SIGKILLed owner's share is pushed by the others, no
//!   remote Secret or status has two writers at once, and a restart writes only Leases.
//! - A restart of three replicas with every ExternalSecret fresh writes only Leases.
//!
//! The processes run as distinct ServiceAccounts of namespace `esox-budget`, whose every
//! request the stack's audit log records: who wrote what, and when, is read from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use esox_tests::manifests::{external_secret, fake_store};
use esox_tests::{ControllerProcess, Log, TestEnv, stack_env, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

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
    spawn_in(env, &env.ns, name, kubeconfig)
}

/// A replica of `env`'s namespace whose Leases live in `leases` (their group: the default).
fn spawn_in(
    env: &TestEnv,
    leases: &str,
    name: &'static str,
    kubeconfig: &std::path::Path,
) -> Replica {
    // The tests of this file run at once: each names its logs after its Lease namespace.
    let (log, file) = Log::new(&format!("sharding-{leases}-{name}"));
    let lease = format!("{}s", LEASE.as_secs());
    let process = env.spawn_controller_on(
        kubeconfig,
        &[
            ("ESOX_SHARD_MODE", "true"),
            ("ESOX_LEADER_ELECTION_NAMESPACE", leases),
            ("ESOX_LEADER_ELECTION_LEASE_DURATION", &lease),
            ("ESOX_LEADER_ELECTION_RENEW_DEADLINE", "4s"),
            ("ESOX_LEADER_ELECTION_RETRY_PERIOD", "500ms"),
        ],
        file,
    );
    Replica { name, process, log }
}

/// Stops a replica with SIGTERM; it exits cleanly (its Lease deleted) within 20 s.
fn stop(r: &mut Replica) {
    let (status, _) = r
        .process
        .terminate(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{} exits on SIGTERM", r.name));
    assert!(
        status.success(),
        "{} exits cleanly: {status:?}\n{}",
        r.name,
        r.log.tail()
    );
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

/// The value of a replica's metric sample `series` (name and labels as exposed).
async fn sample(r: &Replica, series: &str) -> Option<usize> {
    r.process
        .metrics()
        .await
        .lines()
        .find(|l| l.strip_prefix(series).is_some_and(|v| v.starts_with(' ')))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as usize)
}

/// `esox_shard_owned_objects{kind="ExternalSecret"}` of a replica.
async fn owned(r: &Replica) -> Option<usize> {
    sample(r, "esox_shard_owned_objects{kind=\"ExternalSecret\"}").await
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

/// A Fake SecretStore `fake` with N keys, `k-i` = `v-i`.
async fn fake_store_of_n(env: &TestEnv) {
    let keys: Vec<(String, String)> = (0..N)
        .map(|i| (format!("k-{i}"), format!("v-{i}")))
        .collect();
    let entries: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.apply(&fake_store("fake", &entries)).await.unwrap();
}

/// N ExternalSecrets `es-i`, each reading `k-i` from `fake` every `interval`.
async fn external_secrets(env: &TestEnv, interval: &str) {
    for i in 0..N {
        let key = format!("k-{i}");
        env.apply(&external_secret(
            &format!("es-{i}"),
            "fake",
            interval,
            &[("v", &key)],
        ))
        .await
        .unwrap();
    }
}

/// One audited request.
#[derive(Debug, Clone)]
struct Audited {
    user: String,
    verb: String,
    /// `resource` or `resource/subresource`.
    what: String,
    namespace: String,
    name: String,
    at: jiff::Timestamp,
    /// The JTI of the ServiceAccount token it was made with.
    credential: Option<String>,
    /// The JTI of the token it issued (a TokenRequest).
    issued: Option<String>,
}

impl Audited {
    fn is_write(&self) -> bool {
        ["create", "update", "patch", "delete"].contains(&self.verb.as_str())
    }
}

/// Every request in the stack's audit log, one per audit ID.
fn audit_log() -> Vec<Audited> {
    let mut out = Vec::new();
    for (at, ev) in esox_tests::audit::entries(jiff::Timestamp::MIN) {
        let obj = &ev["objectRef"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let what = match obj["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", s(&obj["resource"])),
            None => s(&obj["resource"]),
        };
        let jti = |v: &Value| {
            v.as_str()
                .and_then(|c| c.strip_prefix("JTI="))
                .map(str::to_string)
        };
        out.push(Audited {
            user: s(&ev["user"]["username"]),
            verb: s(&ev["verb"]),
            what,
            namespace: s(&obj["namespace"]),
            name: s(&obj["name"]),
            at,
            credential: jti(&ev["user"]["extra"]["authentication.kubernetes.io/credential-id"][0]),
            issued: jti(&ev["annotations"]["authentication.kubernetes.io/issued-credential-id"]),
        });
    }
    out
}

/// [`audit_log`] once the requests made so far are in it (the log backend writes each one
/// as it completes).
async fn audit_log_now() -> Vec<Audited> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    audit_log()
}

/// `user` of a `shard-*`-style ServiceAccount of `esox-budget` without its prefix.
fn replica_of(user: &str, prefix: &str) -> Option<String> {
    user.strip_prefix(&format!("system:serviceaccount:{SA_NAMESPACE}:{prefix}"))
        .map(str::to_string)
}

/// One audited write to an ExternalSecret's Secret or status.
struct Write {
    who: String,
    object: String,
    at: jiff::Timestamp,
}

/// The writes of the `shard-*` ServiceAccounts to Secrets and ExternalSecret statuses in `ns`.
fn audited_writes(ns: &str) -> Vec<Write> {
    audit_log()
        .into_iter()
        .filter(|r| r.namespace == ns && ["create", "update", "patch"].contains(&r.verb.as_str()))
        .filter_map(|r| {
            let who = replica_of(&r.user, "shard-")?;
            let object = match r.what.as_str() {
                "secrets" => format!("secret {}", r.name),
                "externalsecrets/status" => format!("status {}", r.name),
                _ => return None,
            };
            Some(Write {
                who,
                object,
                at: r.at,
            })
        })
        .collect()
}

/// Asserts that no object changed writers more than `changes` times (the membership changes
/// that could move it): two writers at once alternate at every write.
fn no_double_writers(writes: &[Write], changes: usize) {
    let worst = most_switches(writes);
    eprintln!(
        "audited writes: {}; most writer switches on one object: {worst:?}",
        writes.len()
    );
    assert!(
        worst.0 <= changes,
        "an object written by two replicas at once: {worst:?}"
    );
}

/// The most writer switches on one object (its writers in time order, a switch each time
/// the writer changes), and that object with its runs.
fn most_switches(writes: &[Write]) -> (usize, String, String) {
    let mut by_object: BTreeMap<&str, Vec<&Write>> = BTreeMap::new();
    for w in writes {
        by_object.entry(&w.object).or_default().push(w);
    }
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
    worst
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
    fake_store_of_n(&env).await;

    // Spread: three replicas, then the ExternalSecrets (refreshed every 3 s, so that every
    // replica writes all along and a second writer would show in the audit log).
    let a = spawn(&env, "a", &ids["shard-a"]);
    let b = spawn(&env, "b", &ids["shard-b"]);
    let mut c = spawn(&env, "c", &ids["shard-c"]);
    settled(&env, 3).await;
    external_secrets(&env, "3s").await;
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
    stop(&mut d);
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
    let objects: BTreeSet<&str> = writes.iter().map(|w| w.object.as_str()).collect();
    assert!(
        objects.len() >= N,
        "every ExternalSecret written: {} objects",
        objects.len()
    );
    // Each membership change (join, leave, kill) moves an object at most once: three writer
    // switches at most. Two writers at once alternate every refresh (3 s) for the minutes
    // this test runs.
    no_double_writers(&writes, 3);
    drop((a, b, c));
}

/// PushSecrets: the ServiceAccounts of the replicas are `push-*`.
const PUSH_REPLICAS: [&str; 4] = ["push-a", "push-b", "push-c", "push-d"];
/// PushSecrets in the push test (enough that each of three replicas owns some).
const M: usize = 24;

/// `esox_pushsecret_source_watches` of a replica.
async fn source_watches(r: &Replica) -> usize {
    sample(r, "esox_pushsecret_source_watches")
        .await
        .unwrap_or(0)
}

/// Waits until every remote Secret of `names` has `v` = `want`.
async fn remotes_are(env: &TestEnv, names: &[String], want: &str) {
    let api = env.secrets();
    let result = wait_for(
        Duration::from_secs(90),
        &format!("every remote Secret at {want}"),
        || {
            let api = api.clone();
            async move {
                for name in names {
                    let s = api.get_opt(name).await.ok()??;
                    if s.data?.get("v")?.0 != want.as_bytes() {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The replica (`a`, `b`, …) that requested each ServiceAccount token (by token ID).
fn token_owners(log: &[Audited]) -> HashMap<String, String> {
    log.iter()
        .filter(|r| r.what == "serviceaccounts/token")
        .filter_map(|r| Some((r.issued.clone()?, replica_of(&r.user, "push-")?)))
        .collect()
}

/// Who wrote each remote Secret (`remote namespace`) and each PushSecret status (`home`)
/// received at or after `since`: object → replicas (`a`, `b`, …). A remote write is made
/// with the store's ServiceAccount token, which each replica requests for itself: the token's
/// ID (in the audit log of both the TokenRequest and the write) says which replica wrote.
fn push_writers(
    log: &[Audited],
    remote: &str,
    home: &str,
    tag: &str,
    since: jiff::Timestamp,
) -> BTreeMap<String, BTreeSet<String>> {
    let tokens = token_owners(log);
    let pusher = format!("system:serviceaccount:{SA_NAMESPACE}:{tag}-pusher");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in log.iter().filter(|r| r.at >= since && r.is_write()) {
        let (object, who) = if r.user == pusher && r.namespace == remote && r.what == "secrets" {
            let who = r
                .credential
                .as_ref()
                .and_then(|c| tokens.get(c))
                .cloned()
                .unwrap_or_else(|| format!("unknown token {:?}", r.credential));
            (format!("remote {}", r.name), who)
        } else if r.namespace == home
            && r.what == "pushsecrets/status"
            && r.name.starts_with(tag)
            && let Some(who) = replica_of(&r.user, "push-")
        {
            (format!("status {}", r.name), who)
        } else {
            continue;
        };
        out.entry(object).or_default().insert(who);
    }
    out
}

/// PushSecrets spread over three processes, each pushing its share to a Kubernetes store (the
/// stack's own apiserver, so every remote write is in the audit log), with
/// `esox.dev/push-on-source-change`: a source change is pushed by the PushSecret's owner only,
/// and only the owner watches the source (the watch follows ownership when a fourth replica
/// joins); a killed owner's share is taken over once its Lease expires; the writers of each
/// remote Secret and status never overlap; and a restart of all three writes only Leases.
#[tokio::test]
async fn push_secrets_follow_ownership_over_three_replicas() {
    // Remote Secrets and the Leases in `env.ns`; the PushSecrets, their sources, the store and
    // its ServiceAccount in `esox-budget`, whose ServiceAccounts the stack audits.
    let env = TestEnv::without_controller("sharding-push").await;
    let mut home = TestEnv::without_controller("sharding-push-home").await;
    home.ns = SA_NAMESPACE.to_string();
    let tag = env.ns.clone();
    let dir = tempfile::tempdir().unwrap();
    let ids = identities(&env, dir.path(), &PUSH_REPLICAS).await;
    // What an earlier run left in `esox-budget` (no finalizers: deletionPolicy None).
    let pushes: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), SA_NAMESPACE);
    let stores: Api<esox::api::SecretStore> = Api::namespaced(env.client.clone(), SA_NAMESPACE);
    pushes
        .delete_collection(&Default::default(), &Default::default())
        .await
        .unwrap();
    stores
        .delete_collection(&Default::default(), &Default::default())
        .await
        .unwrap();
    let stack = stack_env().unwrap();
    let ca = std::fs::read_to_string(format!("{}/pki/ca.crt", stack["ESOX_STACK_DIR"])).unwrap();
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca);
    env.apply(&format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: {tag}-pusher, namespace: {SA_NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pusher, namespace: {remote}}}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, create, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: pusher, namespace: {remote}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pusher}}
subjects:
- {{kind: ServiceAccount, name: {tag}-pusher, namespace: {SA_NAMESPACE}}}
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: {tag}, namespace: {SA_NAMESPACE}}}
spec:
  provider:
    kubernetes:
      remoteNamespace: {remote}
      server: {{url: "{url}", caBundle: {ca}}}
      auth:
        serviceAccount: {{name: {tag}-pusher}}
"#,
        remote = env.ns,
        url = stack["ESOX_APISERVER_URL"],
    ))
    .await
    .unwrap();
    let remotes: Vec<String> = (0..M).map(|i| format!("r-{i}")).collect();
    let sources = |value: &'static str| {
        let home = &home;
        let tag = &tag;
        async move {
            for i in 0..M {
                esox_tests::push::source(home, &format!("{tag}-src-{i}"), &[("v", value)]).await;
            }
        }
    };
    sources("v0").await;

    let spawn = |name: &'static str| spawn_in(&home, &env.ns, name, &ids[&format!("push-{name}")]);
    let a = spawn("a");
    let b = spawn("b");
    let mut c = spawn("c");
    settled(&env, 3).await;
    let started = jiff::Timestamp::now();
    for i in 0..M {
        home.apply(&format!(
            r#"apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: {tag}-ps-{i}
  annotations: {{esox.dev/push-on-source-change: "true"}}
spec:
  refreshInterval: 1h
  secretStoreRefs: [{{name: {tag}, kind: SecretStore}}]
  selector: {{secret: {{name: {tag}-src-{i}}}}}
  data:
  - match: {{remoteRef: {{remoteKey: r-{i}}}}}
"#
        ))
        .await
        .unwrap();
    }
    for i in 0..M {
        esox_tests::push::wait_push(&home, &format!("{tag}-ps-{i}"), "True", "Synced").await;
    }
    remotes_are(&env, &remotes, "v0").await;
    // The owner of each PushSecret: the one replica that wrote its status and remote Secret.
    let first = push_writers(&audit_log_now().await, &env.ns, SA_NAMESPACE, &tag, started);
    let owner_of = |writers: &BTreeMap<String, BTreeSet<String>>, i: usize| -> String {
        let status = &writers[&format!("status {tag}-ps-{i}")];
        assert_eq!(
            status.len(),
            1,
            "ps-{i}'s status written by one replica: {writers:?}"
        );
        status.iter().next().unwrap().clone()
    };
    let owners: Vec<String> = (0..M).map(|i| owner_of(&first, i)).collect();
    for (i, o) in owners.iter().enumerate() {
        assert_eq!(
            first[&format!("remote r-{i}")],
            BTreeSet::from([o.clone()]),
            "r-{i} pushed by ps-{i}'s owner only"
        );
    }
    for r in [&a, &b, &c] {
        let mine = owners.iter().filter(|o| *o == r.name).count();
        assert!(mine > 0, "{} owns no PushSecret: {owners:?}", r.name);
        // Each replica watches the sources of its own share, and only those.
        let watched = wait_for(Duration::from_secs(10), "source watches", || async {
            (source_watches(r).await == mine).then_some(())
        })
        .await;
        if let Err(e) = watched {
            panic!("{}: {e}: {} != {mine}", r.name, source_watches(r).await);
        }
    }
    eprintln!("push spread: {owners:?}");

    // A source change is pushed by its owner, and by nobody else.
    let changed = jiff::Timestamp::now();
    sources("v1").await;
    remotes_are(&env, &remotes, "v1").await;
    let writers = push_writers(&audit_log_now().await, &env.ns, SA_NAMESPACE, &tag, changed);
    for (i, o) in owners.iter().enumerate() {
        assert_eq!(
            writers.get(&format!("remote r-{i}")),
            Some(&BTreeSet::from([o.clone()])),
            "r-{i}'s change pushed by its owner only: {writers:?}"
        );
    }

    // Join: d takes its share, source watches included; the others drop theirs.
    let mut d = spawn("d");
    settled(&env, 4).await;
    let all = [&a, &b, &c, &d];
    let handed = wait_for(
        Duration::from_secs(30),
        "every source watched once, some by d",
        || async {
            let mut total = 0;
            for r in all {
                total += source_watches(r).await;
            }
            (total == M && source_watches(&d).await > 0).then_some(())
        },
    )
    .await;
    if let Err(e) = handed {
        let mut counts = Vec::new();
        for r in all {
            counts.push((r.name, source_watches(r).await));
        }
        panic!("{e}: {counts:?}");
    }
    let joined = jiff::Timestamp::now();
    sources("v2").await;
    remotes_are(&env, &remotes, "v2").await;
    let writers = push_writers(&audit_log_now().await, &env.ns, SA_NAMESPACE, &tag, joined);
    let mut after_join = owners.clone();
    for (i, o) in owners.iter().enumerate() {
        let w = &writers[&format!("remote r-{i}")];
        assert_eq!(w.len(), 1, "r-{i} pushed by one replica: {writers:?}");
        let now = w.iter().next().unwrap();
        assert!(
            now == o || now == "d",
            "r-{i} moved only to d: {o} -> {now}"
        );
        after_join[i] = now.clone();
    }
    assert!(after_join.iter().any(|o| o == "d"), "d took nothing");

    // Kill -9 of an owner: its share is pushed again once its Lease expired.
    d.process.kill();
    let killed = Instant::now();
    let killed_at = jiff::Timestamp::now();
    sources("v3").await;
    remotes_are(&env, &remotes, "v3").await;
    let took = killed.elapsed();
    assert!(
        took <= 3 * LEASE,
        "d's share pushed by its new owners in {took:?} (lease {LEASE:?})"
    );
    assert!(
        took >= LEASE / 2,
        "d's share pushed in {took:?}, before its Lease could expire"
    );
    eprintln!("push kill -9: d's share pushed again in {took:?}");
    let writers = push_writers(
        &audit_log_now().await,
        &env.ns,
        SA_NAMESPACE,
        &tag,
        killed_at,
    );
    for (i, o) in after_join.iter().enumerate() {
        let w = &writers[&format!("remote r-{i}")];
        assert_eq!(w.len(), 1, "r-{i} pushed by one replica: {writers:?}");
        let now = w.iter().next().unwrap();
        if o == "d" {
            assert_eq!(now, &owners[i], "r-{i} back with its owner before d joined");
        } else {
            assert_eq!(now, o, "r-{i} stays where it was");
        }
    }
    settled(&env, 3).await;

    // No double writers over the whole test: the writers of each remote Secret and status,
    // in time order, change at most twice (the join and the kill).
    let log = audit_log_now().await;
    let tokens = token_owners(&log);
    let pusher = format!("system:serviceaccount:{SA_NAMESPACE}:{tag}-pusher");
    let writes: Vec<Write> = log
        .iter()
        .filter(|r| r.at >= started && r.is_write())
        .filter_map(|r| {
            if r.user == pusher && r.namespace == env.ns && r.what == "secrets" {
                let who = tokens.get(r.credential.as_ref()?)?.clone();
                Some(Write {
                    who,
                    object: format!("remote {}", r.name),
                    at: r.at,
                })
            } else if r.what == "pushsecrets/status" && r.name.starts_with(&tag) {
                Some(Write {
                    who: replica_of(&r.user, "push-")?,
                    object: format!("status {}", r.name),
                    at: r.at,
                })
            } else {
                None
            }
        })
        .collect();
    no_double_writers(&writes, 2);

    // A restart of all three with everything pushed writes nothing but Leases.
    let (mut a, mut b) = (a, b);
    for r in [&mut a, &mut b, &mut c] {
        stop(r);
    }
    drop((a, b, c, d));
    let restarted = jiff::Timestamp::now();
    let again = [spawn("a"), spawn("b"), spawn("c")];
    settled(&env, 3).await;
    for r in &again {
        r.process.wait_ready().await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    let written = restart_writes(&tag, restarted, "push-");
    eprintln!("push restart: {written:#?}");
    assert!(
        written.keys().all(|k| !touches_user_objects(k)),
        "a restart with everything pushed writes only Leases: {written:#?}"
    );
    drop(again);
    pushes
        .delete_collection(&Default::default(), &Default::default())
        .await
        .unwrap();
}

/// Whether a `restart_writes` key writes something a user owns or reads: a Secret, an
/// ExternalSecret or PushSecret (or their status), an Event. Leases are the replicas' own;
/// a TokenRequest or an access review (store validation) is a create that stores nothing.
fn touches_user_objects(key: &str) -> bool {
    let what = key.split(' ').nth(2).unwrap_or_default();
    ["secrets", "externalsecrets", "pushsecrets", "events"]
        .contains(&what.split('/').next().unwrap_or_default())
}

/// Writes received since `since` by the replicas (`prefix` ServiceAccounts) and the pushers
/// of test `tag`, counted by "who verb resource namespace/name".
fn restart_writes(tag: &str, since: jiff::Timestamp, prefix: &str) -> BTreeMap<String, usize> {
    let pusher = format!("system:serviceaccount:{SA_NAMESPACE}:{tag}-pusher");
    let mut out = BTreeMap::new();
    for r in audit_log().iter().filter(|r| r.at >= since && r.is_write()) {
        let who = match replica_of(&r.user, prefix) {
            Some(who) => who,
            None if r.user == pusher => "pusher".into(),
            None => continue,
        };
        let key = format!("{who} {} {} {}/{}", r.verb, r.what, r.namespace, r.name);
        *out.entry(key).or_default() += 1;
    }
    out
}

/// A restart of all three replicas with every ExternalSecret synced and fresh writes no
/// Secret, status or Event: only the replicas' Leases (new members, their acknowledgements,
/// the leader Lease).
#[tokio::test]
async fn a_restart_of_three_replicas_writes_only_leases() {
    let env = TestEnv::without_controller("sharding-restart").await;
    let dir = tempfile::tempdir().unwrap();
    let ids = identities(&env, dir.path(), &["restart-a", "restart-b", "restart-c"]).await;
    fake_store_of_n(&env).await;
    let start = |name: &'static str| spawn(&env, name, &ids[&format!("restart-{name}")]);
    let mut first = [start("a"), start("b"), start("c")];
    settled(&env, 3).await;
    // Not 1h: a first periodic refresh comes on the object's grid, anywhere within one
    // interval after the sync (controller/refresh.rs), and would fall in the window now and
    // then; once a year it does not.
    external_secrets(&env, "8760h").await;
    owners(&env, &first.iter().collect::<Vec<_>>()).await;
    // The last status writes land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for r in &mut first {
        stop(r);
    }
    drop(first);

    let restarted = jiff::Timestamp::now();
    let again = [start("a"), start("b"), start("c")];
    settled(&env, 3).await;
    owners(&env, &again.iter().collect::<Vec<_>>()).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let written = restart_writes("", restarted, "restart-");
    let leases: usize = written
        .iter()
        .filter(|(k, _)| k.contains(" leases "))
        .map(|(_, n)| n)
        .sum();
    eprintln!("restart: {leases} Lease writes; all writes: {written:#?}");
    assert!(
        written.keys().all(|k| !touches_user_objects(k)),
        "a restart with everything fresh writes only Leases: {written:#?}"
    );
    drop(again);
}
