//! Control-plane faults, against a stack of this file's own (its apiserver and etcd are killed,
//! so it is not the suite's `.stack`): `scripts/stack.sh up` in a temporary state directory
//! (free ports), brought down after the last test here, or by a watchdog when this process
//! exits. The tests take turns on it.
//!
//! Each case checks what a user would: after the fault, a new ExternalSecret syncs and a
//! deleted managed Secret is restored within [`RECOVERY`] of the apiserver answering again,
//! `/readyz` says so, and SIGTERM stops the controller within its `--shutdown-grace`. A
//! provider call that never returns (no `--provider-timeout`) is cut short when the grace
//! period ends.
//!
//! The apiserver case failed before the watch fixes (controller/watch.rs): the new
//! ExternalSecret took 30-90 s and the deleted Secret never came back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use esox_tests::manifests::{aws_static_store, external_secret, fake_store};
use esox_tests::{ControllerProcess, Log, PrivateStack, TestEnv, secret_strings, wait_for};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::Value;

/// How soon after the apiserver answers again the controller must have caught up
/// (`ESOX_FAULTS_RECOVERY` seconds: more, to measure a controller that takes longer).
static RECOVERY: LazyLock<Duration> = LazyLock::new(|| seconds("ESOX_FAULTS_RECOVERY", 10));
/// `--shutdown-grace` of the controllers under test.
const GRACE: Duration = Duration::from_secs(5);
/// How long a killed service stays down (the apiserver's restart adds its own start time;
/// `ESOX_FAULTS_OUTAGE` seconds to measure longer outages).
static OUTAGE: LazyLock<Duration> = LazyLock::new(|| seconds("ESOX_FAULTS_OUTAGE", 15));

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}
/// The remote value every ExternalSecret here reads: the controllers log at trace, and no log
/// line, event or status may hold it ([`esox_tests::assert_no_secret_value`]).
static CANARY: LazyLock<String> =
    LazyLock::new(|| format!("canary-faults-{}", rand::random::<u64>()));

/// The controllers' environment: `--shutdown-grace` [`GRACE`], logging at trace.
fn controller_env(grace: &str) -> [(&'static str, &str); 2] {
    [("ESOX_SHUTDOWN_GRACE", grace), ("RUST_LOG", "trace")]
}

/// The tests in this file: the last to finish brings the stack down.
const TESTS: usize = 4;

/// The file's stack, started by the first test.
fn stack() -> &'static PrivateStack {
    static STACK: OnceLock<PrivateStack> = OnceLock::new();
    STACK.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("esox-faults-{}", std::process::id()));
        let start = Instant::now();
        let stack = PrivateStack::up(&dir);
        eprintln!(
            "[faults] private stack up in {:?} ({})",
            start.elapsed(),
            dir.display()
        );
        stack
    })
}

/// One test at a time on the stack; the last one brings it down.
struct Turn {
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

async fn turn() -> Turn {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = LOCK.lock().await;
    let _ = stack();
    Turn { _guard: guard }
}

impl Drop for Turn {
    fn drop(&mut self) {
        static DONE: AtomicUsize = AtomicUsize::new(0);
        if DONE.fetch_add(1, Ordering::SeqCst) + 1 == TESTS {
            stack().run(&["down"]);
        }
    }
}

/// Every Secret's name and resourceVersion.
async fn versions(secrets: &Api<Secret>) -> BTreeMap<String, String> {
    let list = secrets.list_metadata(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .map(|s| {
            (
                s.metadata.name.unwrap(),
                s.metadata.resource_version.unwrap(),
            )
        })
        .collect()
}

/// A Fake store `store` and ExternalSecrets `es-0..n` reading `k` (refresh 1h: only events
/// make them sync again).
fn workload(n: usize) -> String {
    let mut yaml = fake_store("store", &[("k", &CANARY)]);
    for i in 0..n {
        yaml.push_str("---\n");
        yaml.push_str(&external_secret(
            &format!("es-{i}"),
            "store",
            "1h",
            &[("k", "k")],
        ));
    }
    yaml
}

async fn wait_value(secrets: &Api<Secret>, name: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_for(
        timeout,
        &format!("Secret {name} with its value"),
        || async move {
            let s = secrets.get_opt(name).await.ok().flatten()?;
            (secret_strings(&s).get("k") == Some(&*CANARY)).then_some(())
        },
    )
    .await
}

/// The user's view after a fault: a new ExternalSecret syncs and a deleted managed Secret is
/// restored, both within [`RECOVERY`] of `back` (the apiserver answering again); then
/// `/readyz` says ready. Returns how long each took.
async fn recovers(
    env: &TestEnv,
    controller: &ControllerProcess,
    back: Instant,
    log: &Log,
    label: &str,
) -> (Duration, Duration) {
    let secrets = env.secrets();
    // The client may still be reconnecting: retry the two writes for a moment.
    wait_for(*RECOVERY, "delete Secret es-0", || async {
        match secrets.delete("es-0", &DeleteParams::default()).await {
            Ok(_) => Some(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Some(()),
            Err(_) => None,
        }
    })
    .await
    .unwrap();
    let new = format!("new-{label}");
    wait_for(*RECOVERY, "create a new ExternalSecret", || async {
        env.apply(&external_secret(&new, "store", "1h", &[("k", "k")]))
            .await
            .ok()
    })
    .await
    .unwrap();
    let accepted = back.elapsed();
    let left = RECOVERY.saturating_sub(accepted);
    let (healed, synced) = tokio::join!(
        async {
            wait_value(&secrets, "es-0", left)
                .await
                .map(|_| back.elapsed())
        },
        async {
            wait_value(&secrets, &new, left)
                .await
                .map(|_| back.elapsed())
        },
    );
    let (healed, synced) = match (healed, synced) {
        (Ok(h), Ok(s)) => (h, s),
        (h, s) => panic!(
            "{label}: not recovered within {:?} of the apiserver answering again \
             (deleted Secret restored: {h:?}; new ExternalSecret synced: {s:?}); controller log:\n{}",
            *RECOVERY,
            log.tail()
        ),
    };
    wait_for(*RECOVERY, "controller /readyz 200", || async {
        controller
            .get("/readyz")
            .await
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{label}: {e}; controller log:\n{}", log.tail()));
    assert!(
        controller.get("/healthz").await.starts_with("HTTP/1.1 200"),
        "{label}: /healthz"
    );
    eprintln!(
        "[faults] {label}: deleted Secret restored {healed:?}, new ExternalSecret synced {synced:?} after the apiserver answered again (the deletion and the new ExternalSecret accepted after {accepted:?})"
    );
    (healed, synced)
}

/// SIGTERM: the controller exits within its grace period (plus a margin for the exit).
fn stops(controller: &mut ControllerProcess, log: &Log, label: &str) {
    let (status, took) = controller
        .terminate(GRACE + Duration::from_secs(3))
        .unwrap_or_else(|| {
            panic!(
                "{label}: still running {:?} after SIGTERM; log:\n{}",
                GRACE + Duration::from_secs(3),
                log.tail()
            )
        });
    eprintln!("[faults] {label}: SIGTERM → exit ({status}) in {took:?}");
}

/// A synced workload of `n` ExternalSecrets and its controller.
async fn synced(label: &str, n: usize) -> (TestEnv, ControllerProcess, Log) {
    let stack = stack();
    let env = TestEnv::on_client(stack.client().await, label).await;
    env.apply(&workload(n)).await.unwrap();
    let (log, file) = Log::new(label);
    let grace = format!("{}s", GRACE.as_secs());
    let controller =
        env.spawn_controller_on(Path::new(stack.kubeconfig()), &controller_env(&grace), file);
    controller.wait_ready().await;
    let secrets = env.secrets();
    for i in 0..n {
        wait_value(&secrets, &format!("es-{i}"), Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}; log:\n{}", log.tail()));
    }
    (env, controller, log)
}

#[tokio::test]
async fn apiserver_killed_and_restarted() {
    let _turn = turn().await;
    let (env, mut controller, log) = synced("fault-apiserver", 3).await;
    stack().run(&["stop-service", "kube-apiserver", "--kill"]);
    let down = Instant::now();
    tokio::time::sleep(*OUTAGE).await;
    // Meanwhile: not ready (the caches are not live), and alive (a restart would not help).
    let readyz = controller.get("/readyz").await;
    assert!(
        readyz.starts_with("HTTP/1.1 503") && readyz.contains("failing for"),
        "/readyz during the outage: {readyz}"
    );
    assert!(
        controller.get("/healthz").await.starts_with("HTTP/1.1 200"),
        "/healthz during the outage"
    );
    stack().run(&["start-service", "kube-apiserver"]);
    let back = Instant::now();
    eprintln!("[faults] apiserver down for {:?}", back - down);
    recovers(&env, &controller, back, &log, "apiserver").await;
    stops(&mut controller, &log, "apiserver");
    esox_tests::assert_no_secret_value(&env, &[&log.0], &CANARY).await;
}

#[tokio::test]
async fn etcd_killed_and_restarted() {
    let _turn = turn().await;
    let (env, mut controller, log) = synced("fault-etcd", 3).await;
    stack().run(&["stop-service", "etcd", "--kill"]);
    let down = Instant::now();
    tokio::time::sleep(*OUTAGE).await;
    stack().run(&["start-service", "etcd"]);
    // "Answering again": the apiserver writes to etcd again (it serves reads from its watch
    // cache all along, and takes a while to reconnect).
    let probes: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(env.client.clone(), &env.ns);
    let attempt = AtomicUsize::new(0);
    wait_for(
        Duration::from_secs(90),
        "the apiserver writing to etcd",
        || {
            let mut probe = k8s_openapi::api::core::v1::ConfigMap::default();
            probe.metadata.name =
                Some(format!("probe-{}", attempt.fetch_add(1, Ordering::Relaxed)));
            let probes = probes.clone();
            async move {
                probes
                    .create(&PostParams::default(), &probe)
                    .await
                    .ok()
                    .map(|_| ())
            }
        },
    )
    .await
    .unwrap();
    let back = Instant::now();
    eprintln!("[faults] etcd down for {:?}", back - down);
    recovers(&env, &controller, back, &log, "etcd").await;
    stops(&mut controller, &log, "etcd");
    esox_tests::assert_no_secret_value(&env, &[&log.0], &CANARY).await;
}

/// Writes to Secrets in `ns` by the audited ServiceAccount, per Secret name.
fn secret_writes(audit_log: &str, ns: &str) -> BTreeMap<String, usize> {
    let user = format!("system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}");
    let file = std::fs::File::open(audit_log).expect("the private stack's audit log");
    let mut seen = std::collections::HashSet::new();
    let mut out = BTreeMap::new();
    for line in BufReader::new(file).lines() {
        let Ok(ev) = serde_json::from_str::<Value>(&line.unwrap_or_default()) else {
            continue;
        };
        let obj = &ev["objectRef"];
        if ev["user"]["username"] != user.as_str()
            || obj["resource"] != "secrets"
            || obj["namespace"] != ns
            || !["create", "update", "patch"].contains(&ev["verb"].as_str().unwrap_or_default())
            // A rejected write wrote nothing.
            || ev["responseStatus"]["code"].as_u64().is_some_and(|c| c >= 300)
            || !seen.insert(ev["auditID"].as_str().unwrap_or_default().to_string())
        {
            continue;
        }
        let name = obj["name"].as_str().unwrap_or("?").to_string();
        *out.entry(name).or_default() += 1;
    }
    out
}

/// The stack audits every request of the ServiceAccounts of this namespace.
const SA_NAMESPACE: &str = "esox-budget";
const SA_NAME: &str = "esox";

/// A kubeconfig for the audited ServiceAccount (bound to cluster-admin) on the private stack.
async fn audited_kubeconfig(env: &TestEnv, dir: &Path) -> PathBuf {
    env.apply(&format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {SA_NAMESPACE}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {SA_NAME}, namespace: {SA_NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: esox-faults}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects:
- {{kind: ServiceAccount, name: {SA_NAME}, namespace: {SA_NAMESPACE}}}
"#
    ))
    .await
    .unwrap();
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(env.client.clone(), SA_NAMESPACE);
    let request = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let response: k8s_openapi::api::authentication::v1::TokenRequest = api
        .create_subresource("token", SA_NAME, &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    let token = response.status.expect("token").token;
    let stack = stack();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": stack.env["ESOX_APISERVER_URL"],
            "certificate-authority": stack.dir.join("pki/ca.crt")}}],
        "users": [{"name": SA_NAME, "user": {"token": token}}],
        "contexts": [{"name": SA_NAME, "context": {"cluster": "local", "user": SA_NAME}}],
        "current-context": SA_NAME,
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn controller_killed_mid_cold_sync_and_restarted() {
    const N: usize = 200;
    let _turn = turn().await;
    let stack = stack();
    let env = TestEnv::on_client(stack.client().await, "fault-controller").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = audited_kubeconfig(&env, dir.path()).await;
    env.apply(&workload(N)).await.unwrap();
    let grace = format!("{}s", GRACE.as_secs());
    let extra = controller_env(&grace);
    let (first_log, file) = Log::new("controller-1");
    let mut first = env.spawn_controller_on(&kubeconfig, &extra, file);

    // Kill it once about a quarter of the Secrets are written.
    let secrets = env.secrets();
    let count = || async {
        secrets
            .list_metadata(&Default::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0)
    };
    wait_for(
        Duration::from_secs(60),
        "a quarter of the Secrets",
        || async { (count().await >= N / 4).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", first_log.tail()));
    first.kill();
    // A write in flight at the kill either lands within moments or never: after that, the
    // Secrets the first process wrote are fixed, and the restart must leave them alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written = versions(&secrets).await;
    let at_kill = written.len();
    assert!(
        at_kill < N,
        "killed after the cold sync ({at_kill} Secrets): no fault tested"
    );

    let (log, file) = Log::new("controller-2");
    let restarted = Instant::now();
    let mut second = env.spawn_controller_on(&kubeconfig, &extra, file);
    second.wait_ready().await;
    for i in 0..N {
        wait_value(&secrets, &format!("es-{i}"), Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}; log:\n{}", log.tail()));
    }
    eprintln!(
        "[faults] controller: killed at {at_kill}/{N} Secrets; all {N} correct {:?} after the restart",
        restarted.elapsed()
    );
    // The restart finds the Secrets the first process wrote in sync: not one is rewritten.
    let after = versions(&secrets).await;
    let rewritten: Vec<_> = written
        .iter()
        .filter(|(name, rv)| after.get(*name) != Some(*rv))
        .map(|(name, _)| name)
        .collect();
    assert!(
        rewritten.is_empty(),
        "Secrets in sync at the kill were written again after the restart: {rewritten:?}"
    );
    // And those it had not reached are written once each. (A request cut by the kill may
    // be missing from the audit log; the ones the second process writes all are there.)
    let audit_log = &stack.env["ESOX_AUDIT_LOG"];
    let writes = wait_for(
        Duration::from_secs(10),
        "the audit log of the restart's Secret writes",
        || async {
            let writes = secret_writes(audit_log, &env.ns);
            let logged = (0..N)
                .map(|i| format!("es-{i}"))
                .filter(|name| !written.contains_key(name))
                .all(|name| writes.contains_key(&name));
            logged.then_some(writes)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", secret_writes(audit_log, &env.ns)));
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "Secrets written more than once: {twice:?}"
    );

    recovers(&env, &second, Instant::now(), &log, "controller").await;
    stops(&mut second, &log, "controller");
    esox_tests::assert_no_secret_value(&env, &[&first_log.0, &log.0], &CANARY).await;
}

/// A TCP server that accepts connections and never answers (a provider endpoint that hangs);
/// its connections stay open until the test process exits.
fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn sigterm_cuts_a_provider_call_that_never_returns_short() {
    let _turn = turn().await;
    let stack = stack();
    let env = TestEnv::on_client(stack.client().await, "fault-provider").await;
    let mut yaml = aws_static_store("aws", "SecretsManager", "AKID:s");
    yaml.push_str("---\n");
    yaml.push_str(&external_secret("es-0", "aws", "1h", &[("k", "k")]));
    env.apply(&yaml).await.unwrap();
    let endpoint = black_hole();
    let (log, file) = Log::new("provider");
    let grace = format!("{}s", GRACE.as_secs());
    let mut controller = env.spawn_controller_on(
        Path::new(stack.kubeconfig()),
        &[
            ("ESOX_SHUTDOWN_GRACE", &grace),
            // No deadline on provider calls: the fetch never returns.
            ("ESOX_PROVIDER_TIMEOUT", "0"),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        file,
    );
    controller.wait_ready().await;
    // The fetch is under way (the store's validation and the ExternalSecret's fetch both
    // hang on the black hole); the process stays live and ready meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(controller.get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(controller.get("/readyz").await.starts_with("HTTP/1.1 200"));
    let (status, took) = controller
        .terminate(GRACE + Duration::from_secs(3))
        .unwrap_or_else(|| panic!("still running after SIGTERM; log:\n{}", log.tail()));
    eprintln!("[faults] provider: SIGTERM → exit ({status}) in {took:?}");
    assert!(
        took >= GRACE - Duration::from_millis(500),
        "the grace period was given: {took:?}"
    );
    let text = std::fs::read_to_string(&log.0).unwrap();
    assert!(
        text.contains("cut short"),
        "the exit says what it cut: {}",
        log.tail()
    );
}
