//! ClusterExternalSecret against the real apiserver: ExternalSecrets stamped into namespaces
//! chosen by name and by label selector, synced from a Fake ClusterSecretStore; a namespace
//! relabelled out loses its ExternalSecret at once (ESO waits for `refreshTime`); a new
//! matching namespace is provisioned; an unowned ExternalSecret of that name is reported and
//! left alone; a deleted child comes back; deleting the ClusterExternalSecret deletes its
//! ExternalSecrets (esox's own cleanup, under the CES's finalizer, before the garbage
//! collector could) and the garbage collector then their Secrets; no namespace ever carries a
//! finalizer of esox's.
//!
//! The controller runs cluster-wide, so the tests take [`cluster_lock`]; cluster-scoped
//! objects are named after the test's namespace (unique per run) and deleted at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use esox::api::{ClusterExternalSecret, ExternalSecret};
use esox_tests::manifests::fake_cluster_store;
use esox_tests::{TestEnv, cluster_lock, kubectl, wait_for, wait_secret_value};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

async fn label_namespace(client: &Client, name: &str, key: &str, value: Option<&str>) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
    )
    .await
    .unwrap();
}

async fn wait_es_gone(client: &Client, ns: &str, name: &str, timeout: Duration) -> Duration {
    let api: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    wait_for(timeout, &format!("ExternalSecret {ns}/{name} gone"), || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await {
                Ok(None) => Some(()),
                _ => None,
            }
        }
    })
    .await
    .unwrap();
    start.elapsed()
}

/// The CES status once `check` accepts it.
async fn wait_status(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&esox::api::ClusterExternalSecretStatus) -> bool,
) -> esox::api::ClusterExternalSecretStatus {
    let api: Api<ClusterExternalSecret> = Api::all(client.clone());
    let check = &check;
    let last = std::sync::Mutex::new(String::new());
    let last = &last;
    let got = wait_for(Duration::from_secs(60), what, || {
        let api = api.clone();
        async move {
            let status = api.get(name).await.ok()?.status?;
            *last.lock().unwrap() = serde_json::to_string(&status).unwrap_or_default();
            check(&status).then_some(status)
        }
    })
    .await;
    match got {
        Ok(s) => s,
        Err(e) => panic!("{e}; last status: {}", last.lock().unwrap()),
    }
}

fn ready(status: &esox::api::ClusterExternalSecretStatus) -> Option<(&str, Option<&str>)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.as_str(), c.message.as_deref()))
}

#[tokio::test]
async fn provisions_by_name_and_label_follows_namespace_labels_and_cleans_up() {
    let (_guard, env) = TestEnv::cluster_wide("ces").await;
    let client = env.client.clone();
    let run = env.ns.clone();
    let css = format!("css-{run}");
    let ces_name = format!("ces-{run}");
    let (ns_a, ns_b, ns_named, ns_taken, ns_late) = (
        format!("{run}-a"),
        format!("{run}-b"),
        format!("{run}-named"),
        format!("{run}-taken"),
        format!("{run}-late"),
    );
    let selector = ("esox-test-ces", run.as_str());
    for ns in [&ns_a, &ns_b, &ns_taken] {
        create_namespace(&client, ns, &[selector]).await;
    }
    create_namespace(&client, &ns_named, &[]).await;

    env.apply(&fake_cluster_store(&css, &[("db-password", "s3cr3t")]))
        .await
        .unwrap();
    // An ExternalSecret of that name that is not the ClusterExternalSecret's.
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: {ces_name}, namespace: {ns_taken}}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
  target: {{name: theirs}}
  data:
  - secretKey: mine
    remoteRef: {{key: db-password}}
"#
    ))
    .await
    .unwrap();
    // As many users still write it: v1beta1.
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: ClusterExternalSecret
metadata: {{name: {ces_name}}}
spec:
  refreshTime: 1h
  namespaceSelectors:
  - matchLabels: {{esox-test-ces: {run}}}
  namespaces: [{ns_named}]
  externalSecretMetadata:
    labels: {{team: platform}}
    annotations: {{note: stamped}}
  externalSecretSpec:
    refreshInterval: 1h
    secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
    target: {{name: db}}
    data:
    - secretKey: password
      remoteRef: {{key: db-password}}
"#
    ))
    .await
    .unwrap();

    // By label and by name: the ExternalSecrets sync their Secrets.
    for ns in [&ns_a, &ns_b, &ns_named] {
        wait_secret_value(&client, ns, "db", "password", "s3cr3t").await;
    }
    let mut provisioned = vec![ns_a.clone(), ns_b.clone(), ns_named.clone()];
    provisioned.sort();
    let status = wait_status(&client, &ces_name, "provisioned and failed", |s| {
        s.provisioned_namespaces == provisioned && !s.failed_namespaces.is_empty()
    })
    .await;
    assert_eq!(
        status.external_secret_name.as_deref(),
        Some(ces_name.as_str())
    );
    assert_eq!(status.failed_namespaces.len(), 1, "{status:?}");
    assert_eq!(status.failed_namespaces[0].namespace, ns_taken);
    assert_eq!(
        status.failed_namespaces[0].reason.as_deref(),
        Some("external secret already exists in namespace")
    );
    assert_eq!(
        ready(&status),
        Some(("False", Some("one or more namespaces failed")))
    );

    // The child: ESO's controller owner reference, the CES's metadata.
    let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns_a);
    let child = es_api.get(&ces_name).await.unwrap();
    let owner = child
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .expect("a controller owner reference");
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str()
        ),
        (
            "external-secrets.io/v1",
            "ClusterExternalSecret",
            ces_name.as_str()
        )
    );
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(child.metadata.generation, Some(1), "written once");
    assert_eq!(
        child.labels().get("team").map(String::as_str),
        Some("platform")
    );
    assert_eq!(
        child.annotations().get("note").map(String::as_str),
        Some("stamped")
    );

    // The unowned one is untouched.
    let theirs: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns_taken);
    let theirs_es = theirs.get(&ces_name).await.unwrap();
    assert!(theirs_es.owner_references().is_empty());
    assert_eq!(theirs_es.spec.target.name.as_deref(), Some("theirs"));

    // A child deleted by hand comes back.
    let uid = child.uid();
    es_api
        .delete(&ces_name, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the deleted child recreated",
        || {
            let es_api = es_api.clone();
            let uid = uid.clone();
            let ces_name = ces_name.clone();
            async move {
                let es = es_api.get_opt(&ces_name).await.ok()??;
                (es.uid() != uid && es.metadata.deletion_timestamp.is_none()).then_some(())
            }
        },
    )
    .await
    .unwrap();

    // Relabelled out: its ExternalSecret goes at once, not at refreshTime (1h).
    let start = Instant::now();
    label_namespace(&client, &ns_b, selector.0, Some("other")).await;
    wait_es_gone(&client, &ns_b, &ces_name, Duration::from_secs(15)).await;
    let relabel_latency = start.elapsed();
    eprintln!("relabelled-out namespace: ExternalSecret gone after {relabel_latency:?}");
    let mut provisioned = vec![ns_a.clone(), ns_named.clone()];
    provisioned.sort();
    wait_status(&client, &ces_name, "relabelled namespace dropped", |s| {
        s.provisioned_namespaces == provisioned
    })
    .await;

    // A namespace created later with the label is provisioned.
    let start = Instant::now();
    create_namespace(&client, &ns_late, &[selector]).await;
    wait_secret_value(&client, &ns_late, "db", "password", "s3cr3t").await;
    eprintln!(
        "new matching namespace: Secret synced after {:?}",
        start.elapsed()
    );

    // The unowned ExternalSecret removed: the namespace is provisioned, Ready.
    theirs
        .delete(&ces_name, &DeleteParams::default())
        .await
        .unwrap();
    let mut provisioned = vec![
        ns_a.clone(),
        ns_named.clone(),
        ns_late.clone(),
        ns_taken.clone(),
    ];
    provisioned.sort();
    let status = wait_status(&client, &ces_name, "all provisioned, Ready", |s| {
        s.provisioned_namespaces == provisioned && s.failed_namespaces.is_empty()
    })
    .await;
    assert_eq!(ready(&status), Some(("True", None)));

    // Writes only on change: the child never deleted or edited was written once, though its
    // status changed and the ClusterExternalSecret was reconciled many times since.
    let named: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns_named);
    assert_eq!(
        named.get(&ces_name).await.unwrap().metadata.generation,
        Some(1)
    );
    let ces_api: Api<ClusterExternalSecret> = Api::all(client.clone());
    let version = ces_api.get(&ces_name).await.unwrap().resource_version();
    let child_version = named.get(&ces_name).await.unwrap().resource_version();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ces_api.get(&ces_name).await.unwrap().resource_version(),
        version,
        "no status write without a change"
    );
    assert_eq!(
        named.get(&ces_name).await.unwrap().resource_version(),
        child_version,
        "no write to a child without a change (labels and annotations included)"
    );

    // No finalizer of esox's on any namespace (ESO leaves `…/ces-<name>` behind).
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in [&ns_a, &ns_b, &ns_named, &ns_taken, &ns_late] {
        let n = ns_api.get(ns).await.unwrap();
        assert!(n.finalizers().is_empty(), "{ns}: {:?}", n.finalizers());
    }
    // The CES carries ESO's cleanup finalizer.
    let ces = ces_api.get(&ces_name).await.unwrap();
    assert_eq!(
        ces.finalizers(),
        ["externalsecrets.external-secrets.io/clusterexternalsecret-cleanup"]
    );

    // Deleted: its ExternalSecrets are deleted by esox (it does not rely on a garbage
    // collector), then it goes itself.
    ces_api
        .delete(&ces_name, &DeleteParams::default())
        .await
        .unwrap();
    for ns in &provisioned {
        wait_es_gone(&client, ns, &ces_name, Duration::from_secs(30)).await;
    }
    wait_for(
        Duration::from_secs(30),
        "the ClusterExternalSecret gone",
        || {
            let ces_api = ces_api.clone();
            let ces_name = ces_name.clone();
            async move {
                ces_api
                    .get_opt(&ces_name)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await
    .unwrap();
    // The Secrets those ExternalSecrets owned go with them: the stack's garbage collector
    // (kube-controller-manager) follows their ownerReferences, as in a real cluster.
    for ns in &provisioned {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        wait_for(
            Duration::from_secs(30),
            &format!("Secret db in {ns} garbage-collected"),
            || {
                let secrets = secrets.clone();
                async move { secrets.get_opt("db").await.ok()?.is_none().then_some(()) }
            },
        )
        .await
        .unwrap();
    }

    // Cleanup of cluster-scoped objects (names are unique).
    let css_api: Api<esox::api::ClusterSecretStore> = Api::all(client.clone());
    let _ = css_api.delete(&css, &DeleteParams::default()).await;
    for ns in [&ns_a, &ns_b, &ns_named, &ns_taken, &ns_late] {
        let _ = ns_api.delete(ns, &DeleteParams::default()).await;
    }
    assert!(
        relabel_latency < Duration::from_secs(5),
        "relabel took {relabel_latency:?}"
    );
}

/// A rename deletes the old-name ExternalSecrets; an edited child is put back; an invalid
/// selector is reported as ESO does (`unknown`), without touching what exists.
#[tokio::test]
async fn rename_drift_and_invalid_selectors() {
    let (_guard, env) = TestEnv::cluster_wide("ces-rename").await;
    let client = env.client.clone();
    let run = env.ns.clone();
    let css = format!("css-{run}");
    let ces_name = format!("ces-{run}");
    let store = fake_cluster_store(&css, &[("k", "v1")]);
    env.apply(&format!(
        r#"{store}---
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {{name: {ces_name}}}
spec:
  refreshTime: 1h
  namespaces: [{run}]
  externalSecretSpec:
    refreshInterval: 1h
    secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
    target: {{name: out}}
    data:
    - secretKey: key
      remoteRef: {{key: k}}
"#
    ))
    .await
    .unwrap();
    wait_secret_value(&client, &run, "out", "key", "v1").await;
    wait_status(&client, &ces_name, "Ready", |s| {
        ready(s) == Some(("True", None))
    })
    .await;

    // ESO's printer columns, in both served versions.
    for resource in [
        "ces",
        "clusterexternalsecrets.v1.external-secrets.io",
        "clusterexternalsecrets.v1beta1.external-secrets.io",
    ] {
        let out = kubectl(&["get", resource, &ces_name]);
        let mut lines = out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>());
        assert_eq!(
            lines.next().unwrap_or_default(),
            ["NAME", "STORE", "REFRESH", "INTERVAL", "READY"],
            "{resource}: {out}"
        );
        assert_eq!(
            lines.next().unwrap_or_default(),
            [ces_name.as_str(), css.as_str(), "1h", "True"],
            "{resource}: {out}"
        );
    }
    // ESO's metrics.
    let metrics = env.metrics();
    assert!(
        metrics.contains(&format!(
            "clusterexternalsecret_status_condition{{name=\"{ces_name}\",namespace=\"\",condition=\"Ready\",status=\"True\"}} 1"
        )),
        "{metrics}"
    );

    // Drift: an edit to the child's spec is put back.
    let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &run);
    es_api
        .patch(
            &ces_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"refreshInterval": "5m"}})),
        )
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the edited child restored", || {
        let es_api = es_api.clone();
        let ces_name = ces_name.clone();
        async move {
            let es = es_api.get(&ces_name).await.ok()?;
            (es.spec.refresh_interval.as_deref() == Some("1h")).then_some(())
        }
    })
    .await
    .unwrap();

    // The ClusterExternalSecret changes: the child follows (spec and ESO's force-sync
    // annotation, mirrored and then removed with it).
    let ces_api: Api<ClusterExternalSecret> = Api::all(client.clone());
    ces_api
        .patch(
            &ces_name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"external-secrets.io/force-sync": "1"}},
                "spec": {"externalSecretSpec": {"refreshInterval": "2h"}},
            })),
        )
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the child updated", || {
        let es_api = es_api.clone();
        let ces_name = ces_name.clone();
        async move {
            let es = es_api.get(&ces_name).await.ok()?;
            (es.spec.refresh_interval.as_deref() == Some("2h")
                && es.annotations().get("external-secrets.io/force-sync") == Some(&"1".to_string()))
            .then_some(())
        }
    })
    .await
    .unwrap();
    ces_api
        .patch(
            &ces_name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"external-secrets.io/force-sync": null}}}),
            ),
        )
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "force-sync removed from the child",
        || {
            let es_api = es_api.clone();
            let ces_name = ces_name.clone();
            async move {
                let es = es_api.get(&ces_name).await.ok()?;
                (!es.annotations()
                    .contains_key("external-secrets.io/force-sync"))
                .then_some(())
            }
        },
    )
    .await
    .unwrap();

    // Rename: the old name goes, the new one comes.
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {{name: {ces_name}}}
spec:
  namespaces: [{run}]
  externalSecretName: renamed
  externalSecretSpec:
    refreshInterval: 1h
    secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
    target: {{name: out}}
    data:
    - secretKey: key
      remoteRef: {{key: k}}
"#
    ))
    .await
    .unwrap();
    wait_es_gone(&client, &run, &ces_name, Duration::from_secs(30)).await;
    wait_for(Duration::from_secs(30), "renamed ExternalSecret", || {
        let es_api = es_api.clone();
        async move { es_api.get_opt("renamed").await.ok()?.map(|_| ()) }
    })
    .await
    .unwrap();
    let status = wait_status(&client, &ces_name, "the new name in status", |s| {
        s.external_secret_name.as_deref() == Some("renamed")
    })
    .await;
    assert_eq!(status.provisioned_namespaces, [run.as_str()]);

    // An invalid selector: failedNamespaces `unknown`, Ready False, the ExternalSecret kept.
    ces_api
        .patch(
            &ces_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"namespaceSelectors": [
                {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}
            ]}})),
        )
        .await
        .unwrap();
    let status = wait_status(&client, &ces_name, "selector error", |s| {
        s.failed_namespaces.iter().any(|f| f.namespace == "unknown")
    })
    .await;
    assert_eq!(
        ready(&status),
        Some(("False", Some("one or more namespaces failed")))
    );
    assert_eq!(status.provisioned_namespaces, [run.as_str()]);
    assert!(es_api.get_opt("renamed").await.unwrap().is_some());

    ces_api
        .delete(&ces_name, &DeleteParams::default())
        .await
        .unwrap();
    wait_es_gone(&client, &run, "renamed", Duration::from_secs(30)).await;
    let css_api: Api<esox::api::ClusterSecretStore> = Api::all(client.clone());
    let _ = css_api.delete(&css, &DeleteParams::default()).await;
}

/// `examples/cluster-external-secrets/db-credentials.yaml` and the store it reads
/// (`examples/stores/fake.yaml`), applied as written but for the cluster-scoped names (made
/// unique to this run) and the label value.
#[tokio::test]
async fn the_example_applies_and_syncs() {
    let (_guard, env) = TestEnv::cluster_wide("ces-example").await;
    let client = env.client.clone();
    let run = env.ns.clone();
    let root = esox_tests::repo_root();
    let stores = std::fs::read_to_string(root.join("examples/stores/fake.yaml")).unwrap();
    let store = stores
        .split("\n---\n")
        .find(|doc| doc.contains("name: aws-secrets-manager\n"))
        .expect("the example store")
        .replace("name: aws-secrets-manager\n", &format!("name: css-{run}\n"));
    let example =
        std::fs::read_to_string(root.join("examples/cluster-external-secrets/db-credentials.yaml"))
            .unwrap()
            .replace("name: aws-secrets-manager\n", &format!("name: css-{run}\n"))
            .replace(
                "metadata:\n  name: db-credentials\n",
                &format!("metadata:\n  name: ces-{run}\n"),
            )
            .replace(
                "esox.dev/db-credentials: \"true\"",
                &format!("esox.dev/db-credentials: {run}"),
            );
    env.apply(&store).await.unwrap();
    env.apply(&example).await.unwrap();
    label_namespace(&client, &run, "esox.dev/db-credentials", Some(&run)).await;
    wait_secret_value(&client, &run, "db-credentials", "username", "admin").await;
    let es: Api<ExternalSecret> = Api::namespaced(client.clone(), &run);
    let child = es.get("db-credentials").await.unwrap();
    assert_eq!(
        child
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("platform-team")
    );
    label_namespace(&client, &run, "esox.dev/db-credentials", None).await;
    wait_es_gone(&client, &run, "db-credentials", Duration::from_secs(10)).await;

    let ces_api: Api<ClusterExternalSecret> = Api::all(client.clone());
    ces_api
        .delete(&format!("ces-{run}"), &DeleteParams::default())
        .await
        .unwrap();
    let css_api: Api<esox::api::ClusterSecretStore> = Api::all(client.clone());
    let _ = css_api
        .delete(&format!("css-{run}"), &DeleteParams::default())
        .await;
}

/// The binary upgraded before the chart's RBAC: with an older chart's rules (no
/// ClusterExternalSecrets, namespaces `get` only) esox says why it does not process
/// ClusterExternalSecrets, and everything else runs and reports ready as before.
#[tokio::test]
async fn without_the_rbac_for_it_the_rest_still_runs() {
    let _guard = cluster_lock().await;
    let env = TestEnv::without_controller("ces-norbac").await;
    let client = env.client.clone();
    let run = env.ns.clone();
    env.apply(&format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: esox}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {run}-old}}
rules:
- apiGroups: [external-secrets.io]
  resources: [externalsecrets, secretstores, clustersecretstores]
  verbs: [get, list, watch]
- apiGroups: [external-secrets.io]
  resources: [externalsecrets]
  verbs: [patch]
- apiGroups: [external-secrets.io]
  resources: [externalsecrets/status, secretstores/status, clustersecretstores/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [namespaces, configmaps]
  verbs: [get]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {run}-old}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {run}-old}}
subjects:
- {{kind: ServiceAccount, name: esox, namespace: {run}}}
---
{store}---
{es}"#,
        store = esox_tests::manifests::fake_store("fake", &[("k", "v")]),
        es = esox_tests::manifests::external_secret("plain", "fake", "1h", &[("key", "k")]),
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        esox_tests::service_account_kubeconfig(&client, &run, "esox", dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = dir.path().join("esox.log");
    /// The controller process, stopped however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = std::process::Command::new(esox_tests::esox_bin())
        .args(["controller", "--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start esox controller");
    let child = Stop(child);
    let addr = format!("127.0.0.1:{port}");
    let outcome = async {
        wait_for(Duration::from_secs(60), "/readyz 200", || async {
            esox_tests::http_get(&addr, "/readyz")
                .await
                .starts_with("HTTP/1.1 200")
                .then_some(())
        })
        .await?;
        wait_secret_value(&client, &run, "plain", "key", "v").await;
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        anyhow::ensure!(
            log.contains("ClusterExternalSecrets are not processed: no permission to list clusterexternalsecrets"),
            "log: {log}"
        );
        Ok(())
    }
    .await;
    drop(child);
    let rbac = kube::Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(client.clone());
    let _ = rbac
        .delete(&format!("{run}-old"), &DeleteParams::default())
        .await;
    let binding = kube::Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone());
    let _ = binding
        .delete(&format!("{run}-old"), &DeleteParams::default())
        .await;
    outcome.unwrap();
}
