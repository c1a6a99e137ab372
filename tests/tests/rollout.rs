//! Rollout restarts against the real apiserver and kube-controller-manager (its Deployment
//! controller makes the ReplicaSets a user sees in `kubectl rollout history`), with values
//! rotated in moto.
//!
//! The Deployments are the seeds' (`000_*`: `nodejs-backend`, `envFrom` the Secret;
//! `002_*`: `my-app`, with Reloader's annotation, and the volume-mounting variant). As the
//! seeds print them they lack `spec.selector` and pod labels, which `apps/v1` requires; the
//! tests add exactly those.

use std::collections::BTreeMap;
use std::time::Duration;

use esox_tests::manifests::aws_static_store;
use esox_tests::{TestEnv, put_aws_secret, secret_strings, service_account_kubeconfig, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const RESTART_KEY: &str = "secret.restart.esox.io/db-credentials-native";

/// moto, through a SecretStore `aws` with the keys moto accepts.
async fn store(env: &TestEnv) {
    env.apply(&aws_static_store(
        "aws",
        "SecretsManager",
        "esox-local:esox-local",
    ))
    .await
    .unwrap();
}

/// The seeds' ExternalSecret shape (`dataFrom.extract` into `db-credentials-native`), reading
/// `remote`, with `annotations`.
fn external_secret(remote: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: BTreeMap<_, _> = annotations.iter().copied().collect();
    format!(
        r#"apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: db-credentials-es
  annotations: {annotations}
spec:
  refreshInterval: "1h"
  secretStoreRef:
    name: aws
    kind: SecretStore
  target:
    name: db-credentials-native
    creationPolicy: Owner
  dataFrom:
  - extract:
      key: {remote}
"#,
        annotations = serde_json::to_string(&annotations).unwrap()
    )
}

/// The seeds' `nodejs-backend` (000), named `name`, annotated with `annotations`; `paused`.
fn nodejs_backend(name: &str, annotations: &[(&str, &str)], paused: bool) -> String {
    let annotations: BTreeMap<_, _> = annotations.iter().copied().collect();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations: {annotations}
spec:
  replicas: 3
  paused: {paused}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: api
        image: my-company/nodejs-backend:v2.4.1
        envFrom:
        - secretRef:
            name: db-credentials-native # This is managed by ESO!
"#,
        annotations = serde_json::to_string(&annotations).unwrap()
    )
}

/// The seeds' `my-app` (002) with Reloader's annotation, reading the Secret `secret` as
/// environment variables.
fn my_app_with_reloader(name: &str, secret: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations:
    # Tells Reloader to watch this specific Secret for changes
    secret.reloader.stakater.com/reload: "{secret}"
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: my-app-container
        image: my-company/my-app:1.0
        envFrom:
        - secretRef:
            name: {secret} # Injected as Environment Variables
"#
    )
}

/// The seeds' volume-mounting `my-app` (002), with `reloader.stakater.com/auto: "true"`,
/// mounting Secret `secret`.
fn my_app_auto(name: &str, secret: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations:
    reloader.stakater.com/auto: "true"
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: my-app-container
        image: my-company/my-app:1.0
        volumeMounts:
        - name: db-config-volume
          mountPath: /app/config
          readOnly: true
      volumes:
      - name: db-config-volume
        secret:
          secretName: {secret}
"#
    )
}

/// The ReplicaSets Deployment `name` owns (what `kubectl rollout history` lists).
async fn replica_sets(env: &TestEnv, name: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), &env.ns);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.kind == "Deployment" && o.name == name)
        })
        .collect()
}

/// Waits until Deployment `name` has `n` ReplicaSets; returns them.
async fn wait_replica_sets(env: &TestEnv, name: &str, n: usize) -> Vec<ReplicaSet> {
    wait_for(
        Duration::from_secs(30),
        &format!("{n} ReplicaSet(s) of Deployment {name}"),
        || async {
            let rs = replica_sets(env, name).await;
            (rs.len() == n).then_some(rs)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The restart annotation of a ReplicaSet's pod template.
fn restarted_for(rs: &ReplicaSet) -> Option<String> {
    rs.spec
        .as_ref()?
        .template
        .as_ref()?
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTART_KEY)
        .cloned()
}

/// The first 16 hex digits of the Secret's data hash, which the restart annotation carries.
async fn secret_hash(env: &TestEnv) -> String {
    let s = env.secrets().get("db-credentials-native").await.unwrap();
    s.annotations()["reconcile.external-secrets.io/data-hash"][..16].to_string()
}

/// A force-sync with a fresh annotation value each time (ESO's documented way).
async fn force_sync(env: &TestEnv, n: u32) {
    env.external_secrets()
        .patch(
            "db-credentials-es",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": n.to_string()}}})),
        )
        .await
        .unwrap();
}

/// Waits until the ExternalSecret's status says it synced its current metadata (a
/// force-sync is done).
async fn wait_synced(env: &TestEnv) {
    let api = env.external_secrets();
    wait_for(Duration::from_secs(30), "the force-sync done", || {
        let api = api.clone();
        async move {
            let es = api.get("db-credentials-es").await.ok()?;
            let done = es.status.as_ref()?.synced_resource_version.as_deref()
                == Some(esox::controller::external_secret::resource_version(&es).as_str());
            done.then_some(())
        }
    })
    .await
    .unwrap();
}

/// The Events on the ExternalSecret as `reason: note` lines, one per occurrence (a series,
/// kube's aggregation of repeats, counts as its count).
async fn es_events(env: &TestEnv) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns);
    let list = api.list(&Default::default()).await.unwrap().items;
    let mut out = Vec::new();
    for e in list {
        if e.regarding.as_ref().and_then(|r| r.name.as_deref()) != Some("db-credentials-es") {
            continue;
        }
        let n = e.series.as_ref().map_or(1, |s| s.count);
        let line = format!(
            "{}: {}",
            e.reason.unwrap_or_default(),
            e.note.unwrap_or_default()
        );
        for _ in 0..n {
            out.push(line.clone());
        }
    }
    out
}

fn count(events: &[String], reason: &str) -> usize {
    events.iter().filter(|e| e.starts_with(reason)).count()
}

/// Waits until ExternalSecret `db-credentials-es` has `n` events starting with `reason`.
async fn wait_events(env: &TestEnv, reason: &str, n: usize) -> Vec<String> {
    let found = wait_for(
        Duration::from_secs(30),
        &format!("{n} {reason} event(s)"),
        || async {
            let ev = es_events(env).await;
            (count(&ev, reason) >= n).then_some(ev)
        },
    )
    .await;
    match found {
        Ok(ev) => ev,
        Err(e) => panic!("{e}; events: {:?}", es_events(env).await),
    }
}

#[tokio::test]
async fn a_rotation_restarts_the_named_deployment_once() {
    let env = TestEnv::new("rollout-esox").await;
    let remote = format!("{}/db/credentials", env.ns);
    put_aws_secret(&remote, r#"{"password":"v1"}"#, &[]).await;
    store(&env).await;
    // The seeds' Deployment, named by the esox annotation; and one with Reloader's annotation,
    // which does nothing without --reloader-compat.
    env.apply(&nodejs_backend("nodejs-backend", &[], false))
        .await
        .unwrap();
    env.apply(&my_app_with_reloader("my-app", "db-credentials-native"))
        .await
        .unwrap();
    wait_replica_sets(&env, "nodejs-backend", 1).await;
    wait_replica_sets(&env, "my-app", 1).await;
    env.apply(&external_secret(
        &remote,
        &[("restart.esox.io/targets", "deployment/nodejs-backend")],
    ))
    .await
    .unwrap();
    env.wait_value("db-credentials-native", "password", "v1")
        .await;
    env.wait_ready("db-credentials-es", "True", "SecretSynced")
        .await;

    // First sync: no restart.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replica_sets(&env, "nodejs-backend").await.len(), 1);
    // The same value again: none.
    force_sync(&env, 1).await;
    wait_synced(&env).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replica_sets(&env, "nodejs-backend").await.len(), 1);
    let events = es_events(&env).await;
    assert_eq!(count(&events, "RolloutRestart"), 0, "{events:?}");

    // Rotated in moto, force-synced: one new ReplicaSet, carrying the new data's hash.
    put_aws_secret(&remote, r#"{"password":"v2"}"#, &[]).await;
    force_sync(&env, 2).await;
    env.wait_value("db-credentials-native", "password", "v2")
        .await;
    let hash = secret_hash(&env).await;
    let sets = wait_replica_sets(&env, "nodejs-backend", 2).await;
    let newest: Vec<_> = sets.iter().filter_map(restarted_for).collect();
    assert_eq!(newest, [hash], "the new ReplicaSet's pod template");
    let events = wait_events(&env, "RolloutRestartTriggered", 1).await;
    assert!(
        events.contains(
            &"RolloutRestartTriggered: rollout restart triggered for Deployment/nodejs-backend"
                .to_string()
        ),
        "{events:?}"
    );
    env.wait_ready("db-credentials-es", "True", "SecretSynced")
        .await;
    assert!(
        env.metrics()
            .contains("esox_rollout_restart_total{result=\"triggered\"} 1"),
        "{}",
        env.metrics()
    );

    // The same value again: no second rollout.
    force_sync(&env, 3).await;
    wait_synced(&env).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replica_sets(&env, "nodejs-backend").await.len(), 2);
    // Reloader's annotation alone did nothing (the mode is off).
    assert_eq!(replica_sets(&env, "my-app").await.len(), 1);
    let events = es_events(&env).await;
    assert_eq!(count(&events, "RolloutRestartTriggered"), 1, "{events:?}");
}

#[tokio::test]
async fn paused_and_missing_targets_warn_and_the_secret_stays_ready() {
    let env = TestEnv::new("rollout-paused").await;
    let remote = format!("{}/db/credentials", env.ns);
    put_aws_secret(&remote, r#"{"password":"v1"}"#, &[]).await;
    store(&env).await;
    env.apply(&nodejs_backend("paused-app", &[], true))
        .await
        .unwrap();
    env.apply(&external_secret(
        &remote,
        &[(
            "restart.esox.io/targets",
            "deployment/paused-app,deployment/not-there,pod/nonsense",
        )],
    ))
    .await
    .unwrap();
    env.wait_value("db-credentials-native", "password", "v1")
        .await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let generation = deployments
        .get("paused-app")
        .await
        .unwrap()
        .metadata
        .generation;

    put_aws_secret(&remote, r#"{"password":"v2"}"#, &[]).await;
    force_sync(&env, 1).await;
    env.wait_value("db-credentials-native", "password", "v2")
        .await;
    let events = wait_events(&env, "RolloutRestartFailed", 3).await;
    for expected in [
        "RolloutRestartFailed: rollout restart skipped for Deployment/paused-app: it is paused",
        &format!(
            "RolloutRestartFailed: rollout restart failed for Deployment/not-there: not found in namespace {}",
            env.ns
        ),
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected}: {events:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("RolloutRestartFailed") && e.contains("\"pod/nonsense\"")),
        "{events:?}"
    );
    // Not patched; the ExternalSecret is Ready.
    assert_eq!(
        deployments
            .get("paused-app")
            .await
            .unwrap()
            .metadata
            .generation,
        generation
    );
    env.wait_ready("db-credentials-es", "True", "SecretSynced")
        .await;
    let m = env.metrics();
    assert!(
        m.contains("esox_rollout_restart_total{result=\"paused\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("esox_rollout_restart_total{result=\"failed\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn min_interval_debounces_and_makes_the_trailing_restart() {
    let env = TestEnv::new("rollout-debounce").await;
    let remote = format!("{}/db/credentials", env.ns);
    put_aws_secret(&remote, r#"{"password":"v1"}"#, &[]).await;
    store(&env).await;
    env.apply(&nodejs_backend("api", &[], false)).await.unwrap();
    wait_replica_sets(&env, "api", 1).await;
    env.apply(&external_secret(
        &remote,
        &[
            ("restart.esox.io/targets", "deployment/api"),
            ("restart.esox.io/min-interval", "20s"),
        ],
    ))
    .await
    .unwrap();
    env.wait_value("db-credentials-native", "password", "v1")
        .await;

    put_aws_secret(&remote, r#"{"password":"v2"}"#, &[]).await;
    force_sync(&env, 1).await;
    wait_replica_sets(&env, "api", 2).await;
    let first = std::time::Instant::now();
    // Two more changes inside the interval: no restart now...
    for (n, v) in [(2, "v3"), (3, "v4")] {
        put_aws_secret(&remote, &format!(r#"{{"password":"{v}"}}"#), &[]).await;
        force_sync(&env, n).await;
        env.wait_value("db-credentials-native", "password", v).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replica_sets(&env, "api").await.len(), 2);
    assert!(
        first.elapsed() < Duration::from_secs(20),
        "the test was too slow to tell"
    );
    // ...one when it has passed, for the latest data.
    let hash = secret_hash(&env).await;
    let sets = wait_replica_sets(&env, "api", 3).await;
    assert!(
        first.elapsed() >= Duration::from_secs(15),
        "restarted after {:?}",
        first.elapsed()
    );
    assert!(
        sets.iter()
            .any(|rs| restarted_for(rs) == Some(hash.clone()))
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replica_sets(&env, "api").await.len(), 3);
    let events = es_events(&env).await;
    assert_eq!(count(&events, "RolloutRestartTriggered"), 2, "{events:?}");
}

#[tokio::test]
async fn reloader_annotations_with_reloader_compat() {
    let env = TestEnv::without_controller("rollout-reloader").await;
    let remote = format!("{}/app/db", env.ns);
    put_aws_secret(&remote, r#"{"password":"v1"}"#, &[]).await;
    store(&env).await;
    // The seeds' two Deployments (002): named by Reloader's annotation; `auto` and mounting
    // the Secret; plus an `auto` one that does not use it.
    env.apply(&my_app_with_reloader("my-app", "db-credentials-native"))
        .await
        .unwrap();
    env.apply(&my_app_auto("my-app-files", "db-credentials-native"))
        .await
        .unwrap();
    env.apply(&my_app_auto("unrelated", "some-other-secret"))
        .await
        .unwrap();
    let _controller = env.spawn_controller(&[("ESOX_RELOADER_COMPAT", "true")]);
    env.apply(&external_secret(&remote, &[])).await.unwrap();
    env.wait_value("db-credentials-native", "password", "v1")
        .await;
    for d in ["my-app", "my-app-files", "unrelated"] {
        wait_replica_sets(&env, d, 1).await;
    }
    put_aws_secret(&remote, r#"{"password":"v2"}"#, &[]).await;
    force_sync(&env, 1).await;
    env.wait_value("db-credentials-native", "password", "v2")
        .await;
    let hash = secret_hash(&env).await;
    for d in ["my-app", "my-app-files"] {
        let sets = wait_replica_sets(&env, d, 2).await;
        assert!(
            sets.iter()
                .any(|rs| restarted_for(rs) == Some(hash.clone())),
            "{d}"
        );
    }
    wait_events(&env, "RolloutRestartTriggered", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replica_sets(&env, "unrelated").await.len(), 1);
}

/// The state a controller killed between the Secret write and the patch leaves: the first
/// controller may read Deployments but not patch them, so it writes the rotated Secret and
/// cannot restart; it is killed (-9) and a controller that may starts: exactly one rollout.
#[tokio::test]
async fn killed_between_write_and_patch_restarts_exactly_once() {
    let env = TestEnv::without_controller("rollout-kill").await;
    let remote = format!("{}/db/credentials", env.ns);
    put_aws_secret(&remote, r#"{"password":"v1"}"#, &[]).await;
    store(&env).await;
    env.apply(&nodejs_backend("nodejs-backend", &[], false))
        .await
        .unwrap();
    wait_replica_sets(&env, "nodejs-backend", 1).await;
    env.apply(&external_secret(
        &remote,
        &[("restart.esox.io/targets", "deployment/nodejs-backend")],
    ))
    .await
    .unwrap();
    // Everything esox needs, but Deployments only `get`.
    let sa = "esox-no-patch";
    env.apply(&format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: {sa}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {ns}-no-patch}}
rules:
- apiGroups: ["", "external-secrets.io", "generators.external-secrets.io", "events.k8s.io", "coordination.k8s.io", "plugins.esox.dev", "apiextensions.k8s.io"]
  resources: ["*"]
  verbs: ["*"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-no-patch}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-no-patch}}
subjects: [{{kind: ServiceAccount, name: {sa}, namespace: {ns}}}]
"#,
        ns = env.ns
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&env.client, &env.ns, sa, dir.path()).await;
    let mut first = env.spawn_controller_on(&kubeconfig, &[], std::process::Stdio::null());
    env.wait_value("db-credentials-native", "password", "v1")
        .await;
    put_aws_secret(&remote, r#"{"password":"v2"}"#, &[]).await;
    force_sync(&env, 1).await;
    env.wait_value("db-credentials-native", "password", "v2")
        .await;
    let events = wait_events(&env, "RolloutRestartFailed", 1).await;
    assert!(
        events
            .iter()
            .any(|e| e.contains("could not patch Deployment/nodejs-backend")),
        "{events:?}"
    );
    first.kill();
    assert_eq!(replica_sets(&env, "nodejs-backend").await.len(), 1);

    // A controller that may patch: the Secret is already written, nothing is due, and the
    // restart is made once.
    let env_file = esox_tests::stack_env().unwrap();
    let admin = std::path::Path::new(&env_file["KUBECONFIG"]);
    let second = env.spawn_controller_on(admin, &[], std::process::Stdio::null());
    let hash = secret_hash(&env).await;
    let sets = wait_replica_sets(&env, "nodejs-backend", 2).await;
    assert!(
        sets.iter()
            .any(|rs| restarted_for(rs) == Some(hash.clone()))
    );
    drop(second);
    // And a third start (a second replica, a restart) restarts nothing more.
    let third = env.spawn_controller_on(admin, &[], std::process::Stdio::null());
    third.wait_ready().await;
    force_sync(&env, 2).await;
    wait_synced(&env).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replica_sets(&env, "nodejs-backend").await.len(), 2);
    let events = es_events(&env).await;
    assert_eq!(count(&events, "RolloutRestartTriggered"), 1, "{events:?}");
    assert_eq!(
        secret_strings(&env.secrets().get("db-credentials-native").await.unwrap())["password"],
        "v2"
    );
}

/// An Argo Rollout target (`argo.Rollout/web`, VSO's spelling): `spec.restartAt` set once, on
/// the change only. The Rollout CRD is a stand-in with Argo's group, version and names (the
/// schema keeps any field), so the patch esox makes is what the apiserver stores.
#[tokio::test]
async fn an_argo_rollout_gets_restart_at() {
    let env = TestEnv::new("rollout-argo").await;
    env.apply(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rollouts.argoproj.io}
spec:
  group: argoproj.io
  names: {kind: Rollout, plural: rollouts, singular: rollout, listKind: RolloutList}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
    )
    .await
    .unwrap();
    let rollout = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec: {replicas: 1}
"#;
    wait_for(
        Duration::from_secs(30),
        "the Rollout CRD served",
        || async { env.apply(rollout).await.ok() },
    )
    .await
    .unwrap();
    let remote = format!("{}/db/credentials", env.ns);
    put_aws_secret(&remote, r#"{"password":"v1"}"#, &[]).await;
    store(&env).await;
    env.apply(&external_secret(
        &remote,
        &[("restart.esox.io/targets", "argo.Rollout/web")],
    ))
    .await
    .unwrap();
    env.wait_value("db-credentials-native", "password", "v1")
        .await;
    let ar = kube::api::ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        plural: "rollouts".into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(env.client.clone(), &env.ns, &ar);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let web = api.get("web").await.unwrap();
    assert!(
        web.data["spec"].get("restartAt").is_none(),
        "first sync: {web:?}"
    );

    put_aws_secret(&remote, r#"{"password":"v2"}"#, &[]).await;
    force_sync(&env, 1).await;
    env.wait_value("db-credentials-native", "password", "v2")
        .await;
    let hash = secret_hash(&env).await;
    let web = wait_for(Duration::from_secs(30), "spec.restartAt", || async {
        let web = api.get("web").await.ok()?;
        web.data["spec"].get("restartAt").is_some().then_some(web)
    })
    .await
    .unwrap();
    assert_eq!(web.annotations().get(RESTART_KEY), Some(&hash));
    let events = wait_events(&env, "RolloutRestartTriggered", 1).await;
    assert!(
        events.contains(
            &"RolloutRestartTriggered: rollout restart triggered for Rollout/web".to_string()
        ),
        "{events:?}"
    );
}
