//! ESO's reconciler switches on the real apiserver: `esox` started with ESO's flags, in ESO's
//! syntax (`--enable-push-secret-reconciler=false`, …), leaves the kinds switched off to
//! another controller — no status, no finalizer, no child object — and never lists or watches
//! them, by the apiserver's own audit log (the process runs as the audited ServiceAccount, see
//! `esox_tests::audit`), while ExternalSecrets on a SecretStore still sync. And
//! `--controller-class`: stores of another class, and what reads them, are left alone.

use std::time::Duration;

use esox_tests::audit::{assert_audited_stack, audited, identity};
use esox_tests::manifests::{external_secret, fake_cluster_store, fake_store_v1};
use esox_tests::{Log, TestEnv, cluster_lock};
use kube::api::DeleteParams;
use kube::{Api, Resource};

/// Neither a status nor a finalizer: what an object no controller touched looks like.
fn untouched<K: Resource + serde::Serialize>(obj: &K) -> Result<(), String> {
    let v = serde_json::to_value(obj).unwrap();
    let status_empty = v["status"].is_null()
        || v["status"].as_object().is_some_and(|s| {
            s.values()
                .all(|f| f.is_null() || f == &serde_json::json!([]))
        });
    let finalizers = obj.meta().finalizers.clone().unwrap_or_default();
    if status_empty && finalizers.is_empty() {
        Ok(())
    } else {
        Err(format!("status {} finalizers {finalizers:?}", v["status"]))
    }
}

/// [`untouched`] on object `name` of `api`.
async fn untouched_at<K>(api: Api<K>, name: &str) -> Result<(), String>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    untouched(&api.get(name).await.unwrap())
}

#[tokio::test]
async fn switched_off_controllers_watch_nothing_and_leave_their_objects_alone() {
    // The controller runs cluster-wide.
    let _guard = cluster_lock().await;
    let env = TestEnv::without_controller("switches").await;
    assert_audited_stack();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = identity(&env, dir.path()).await;
    let ns = &env.ns;
    let (css, ces, cps) = (
        format!("{ns}-css"),
        format!("{ns}-ces"),
        format!("{ns}-cps"),
    );
    esox_tests::push::source(&env, "src", &[("v", "pushed-value")]).await;
    env.apply(&format!(
        r#"{store}---
{css_yaml}---
{plain}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: via-css}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
  data: [{{secretKey: key, remoteRef: {{key: k}}}}]
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: push}}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{{name: fake}}]
  selector: {{secret: {{name: src}}}}
  data:
  - match: {{secretKey: v, remoteRef: {{remoteKey: pushed}}}}
---
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {{name: {ces}}}
spec:
  refreshTime: 1h
  namespaces: [{ns}]
  externalSecretName: stamped
  externalSecretSpec:
    refreshInterval: 1h
    secretStoreRef: {{name: fake}}
    data: [{{secretKey: key, remoteRef: {{key: k}}}}]
---
apiVersion: external-secrets.io/v1alpha1
kind: ClusterPushSecret
metadata: {{name: {cps}}}
spec:
  namespaceSelectors: [{{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}]
  pushSecretName: stamped-push
  pushSecretSpec:
    secretStoreRefs: [{{name: fake}}]
    selector: {{secret: {{name: src}}}}
    data:
    - match: {{secretKey: v, remoteRef: {{remoteKey: pushed-by-cps}}}}
"#,
        store = fake_store_v1("fake", &[("k", "v")]),
        css_yaml = fake_cluster_store(&css, &[("k", "from-css")]),
        plain = external_secret("plain", "fake", "1h", &[("key", "k")]),
    ))
    .await
    .unwrap();

    let since = jiff::Timestamp::now();
    let (log, file) = Log::new("switches");
    let controller = env.spawn_cluster_controller(
        &kubeconfig,
        &[
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-external-secret-reconciler=false",
            "--enable-cluster-store-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
        ],
        file,
    );
    controller.wait_ready().await;
    // An ExternalSecret on a SecretStore syncs as ever ...
    env.wait_value("plain", "key", "v").await;
    // ... and the store is validated (its reconciler is on).
    env.wait_store("fake", |status, _, _| status == "True")
        .await;
    // Time for a controller that was running to have touched everything.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let requests = audited(ns, since);

    let client = env.client.clone();
    let checks = [
        (
            "PushSecret",
            untouched_at(
                Api::<esox::api::PushSecret>::namespaced(client.clone(), ns),
                "push",
            )
            .await,
        ),
        (
            "ClusterExternalSecret",
            untouched_at(
                Api::<esox::api::ClusterExternalSecret>::all(client.clone()),
                &ces,
            )
            .await,
        ),
        (
            "ClusterPushSecret",
            untouched_at(
                Api::<esox::api::ClusterPushSecret>::all(client.clone()),
                &cps,
            )
            .await,
        ),
        (
            "ClusterSecretStore",
            untouched_at(
                Api::<esox::api::ClusterSecretStore>::all(client.clone()),
                &css,
            )
            .await,
        ),
        (
            "ExternalSecret reading the ClusterSecretStore",
            untouched_at(env.external_secrets(), "via-css").await,
        ),
    ];
    let external_secrets = env.external_secrets();
    let children = [
        (
            "the ClusterExternalSecret's ExternalSecret",
            external_secrets.get_opt("stamped").await.unwrap().is_some(),
        ),
        (
            "the ClusterPushSecret's PushSecret",
            Api::<esox::api::PushSecret>::namespaced(env.client.clone(), ns)
                .get_opt("stamped-push")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "the Secret of the ExternalSecret reading the ClusterSecretStore",
            env.secrets().get_opt("via-css").await.unwrap().is_some(),
        ),
    ];
    let mut events = Vec::new();
    for name in ["push", "via-css"] {
        events.extend(env.events_for(name).await);
    }
    drop(controller);
    let _ = Api::<esox::api::ClusterExternalSecret>::all(client.clone())
        .delete(&ces, &DeleteParams::default())
        .await;
    let _ = Api::<esox::api::ClusterPushSecret>::all(client.clone())
        .delete(&cps, &DeleteParams::default())
        .await;
    let _ = Api::<esox::api::ClusterSecretStore>::all(client.clone())
        .delete(&css, &DeleteParams::default())
        .await;

    for (what, result) in checks {
        if let Err(e) = result {
            panic!("{what} was touched: {e}\n{}", log.tail());
        }
    }
    for (what, exists) in children {
        assert!(!exists, "{what} was made\n{}", log.tail());
    }
    assert!(events.is_empty(), "no event on them: {events:?}");

    // The apiserver's count: ExternalSecrets and SecretStores were watched (the log is read
    // right), the kinds switched off were never listed, watched or read.
    let seen = |resource: &str| {
        requests
            .iter()
            .filter(|r| r.what.split([' ', '/']).next() == Some(resource))
            .map(|r| format!("{} {}", r.verb, r.what))
            .collect::<Vec<_>>()
    };
    for on in ["externalsecrets", "secretstores"] {
        let got = seen(on);
        assert!(
            got.iter().any(|r| r == &format!("watch {on}")),
            "{on} are watched: {got:?}"
        );
    }
    for off in [
        "pushsecrets",
        "clusterexternalsecrets",
        "clusterpushsecrets",
        "clustersecretstores",
        "namespaces",
    ] {
        let got = seen(off);
        assert!(
            got.is_empty(),
            "{off}: no request at all with its controller switched off: {got:?}"
        );
    }
}

/// `--controller-class` as ESO's: esox run as class `esox` serves the stores of its class (and
/// those without one), and leaves a store of another class to its controller: the store is
/// not validated, an ExternalSecret reading it gets no finalizer, status, event or Secret, a
/// PushSecret pushing to it is not pushed. Moving the store to esox's class (`spec.controller`
/// alone) hands its ExternalSecret over at once, well before its 1 h refresh.
#[tokio::test]
async fn controller_class_splits_stores_between_two_controllers() {
    let env = TestEnv::without_controller("class").await;
    let class = |store: String, controller: &str| {
        store.replace("spec:\n", &format!("spec:\n  controller: {controller}\n"))
    };
    esox_tests::push::source(&env, "src", &[("v", "pushed-value")]).await;
    env.apply(&format!(
        r#"{mine}---
{theirs}---
{open}---
{a}---
{b}---
{c}---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: push}}
spec:
  refreshInterval: 2s
  secretStoreRefs: [{{name: theirs}}]
  selector: {{secret: {{name: src}}}}
  data:
  - match: {{secretKey: v, remoteRef: {{remoteKey: pushed}}}}
"#,
        mine = class(fake_store_v1("mine", &[("k", "from-mine")]), "esox"),
        theirs = class(fake_store_v1("theirs", &[("k", "from-theirs")]), "default"),
        open = fake_store_v1("open", &[("k", "from-open")]),
        a = external_secret("a", "mine", "1h", &[("key", "k")]),
        b = external_secret("b", "theirs", "1h", &[("key", "k")]),
        c = external_secret("c", "open", "1h", &[("key", "k")]),
    ))
    .await
    .unwrap();

    let (log, file) = Log::new("class");
    let controller = env.spawn_controller_logging(&[("ESOX_CONTROLLER_CLASS", "esox")], file);
    controller.wait_ready().await;
    // Its own store and a store without a class are served ...
    env.wait_value("a", "key", "from-mine").await;
    env.wait_value("c", "key", "from-open").await;
    env.wait_store("mine", |status, _, _| status == "True")
        .await;
    env.wait_store("open", |status, _, _| status == "True")
        .await;
    // ... another class's is left alone (time for a controller that would touch it to do so).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stores: Api<esox::api::SecretStore> = Api::namespaced(env.client.clone(), &env.ns);
    let pushes: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    for (what, result) in [
        (
            "the store of another class",
            untouched_at(stores.clone(), "theirs").await,
        ),
        (
            "the ExternalSecret reading it",
            untouched_at(env.external_secrets(), "b").await,
        ),
        (
            "the PushSecret pushing to it",
            untouched_at(pushes.clone(), "push").await,
        ),
    ] {
        if let Err(e) = result {
            panic!("{what} was touched: {e}\n{}", log.tail());
        }
    }
    assert!(
        env.secrets().get_opt("b").await.unwrap().is_none(),
        "no Secret for b\n{}",
        log.tail()
    );
    let mut events = env.events_for("b").await;
    events.extend(env.events_for("theirs").await);
    events.extend(env.events_for("push").await);
    assert!(events.is_empty(), "no event on them: {events:?}");

    // The store moves to esox's class: its ExternalSecret is synced at once (within
    // `wait_value`'s 30 s; its refresh is 1 h away, so only the store watch can wake it), the
    // store validated, the PushSecret pushed (at its next look, 2 s).
    stores
        .patch(
            "theirs",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"controller": "esox"}})),
        )
        .await
        .unwrap();
    env.wait_value("b", "key", "from-theirs").await;
    env.wait_store("theirs", |status, _, _| status == "True")
        .await;
    esox_tests::push::wait_push(&env, "push", "True", "Synced").await;
    drop(controller);
}
