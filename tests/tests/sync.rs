//! ExternalSecret sync behaviour against the real apiserver, with the Fake provider.
//!
//! Manifests are written as users write them (the seeds use `v1beta1`), applied as YAML.

use std::time::Duration;

use esox_tests::manifests::{
    SEED_CREDS as CREDS, external_secret, fake_store, fake_store_v1, seed_api_key,
    seed_db_credentials,
};
use esox_tests::{TestEnv, kubectl, secret_strings, wait_for};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn seed_extract_flow_v1beta1() {
    let env = TestEnv::new("seed-extract").await;
    env.apply(&fake_store(
        "aws-secrets-manager",
        &[("production/db/credentials", CREDS)],
    ))
    .await
    .unwrap();
    // The seeds' ExternalSecret, as written (only the store kind differs: a namespaced Fake store).
    env.apply(&seed_db_credentials("aws-secrets-manager", "SecretStore"))
        .await
        .unwrap();
    let secret = env
        .wait_secret("db-credentials-native", "synced secret", |s| {
            s.data.is_some()
        })
        .await;
    let data = secret_strings(&secret);
    assert_eq!(data["username"], "admin");
    assert_eq!(data["password"], "superSecretPassword123");
    assert_eq!(data["port"], "5432");
    assert_eq!(
        secret.labels()["reconcile.external-secrets.io/managed"],
        "true"
    );
    assert!(
        secret
            .labels()
            .contains_key("reconcile.external-secrets.io/created-by")
    );
    assert_eq!(
        secret.annotations()["reconcile.external-secrets.io/data-hash"].len(),
        56
    );
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ExternalSecret", "db-credentials-es", Some(true))
    );
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));

    let msg = env
        .wait_ready("db-credentials-es", "True", "SecretSynced")
        .await;
    assert_eq!(msg, "secret synced");
    let es = env
        .external_secrets()
        .get("db-credentials-es")
        .await
        .unwrap();
    let status = es.status.unwrap();
    assert_eq!(status.binding.unwrap().name, "db-credentials-native");
    assert!(status.refresh_time.is_some());
    assert!(status.synced_resource_version.unwrap().starts_with("1-"));
    assert!(
        env.events_for("db-credentials-es")
            .await
            .iter()
            .any(|e| e.starts_with("Created"))
    );

    // The printer columns users see in `kubectl get externalsecrets` (ESO's; tests/tests/columns.rs
    // checks every kind).
    let out = kubectl(&["get", "externalsecrets", "-n", &env.ns]);
    let header: Vec<_> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STORETYPE",
            "STORE",
            "REFRESH",
            "INTERVAL",
            "STATUS",
            "READY",
            "LAST",
            "SYNC"
        ],
        "{out}"
    );
    let row: Vec<_> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..6],
        [
            "db-credentials-es",
            "SecretStore",
            "aws-secrets-manager",
            "1h",
            "SecretSynced",
            "True"
        ],
        "{out}"
    );
    assert_eq!(row.len(), 7, "a LAST SYNC age: {out}");
    // The same object read through v1.
    let v1 = kubectl(&[
        "get",
        "externalsecrets.v1.external-secrets.io",
        "db-credentials-es",
        "-n",
        &env.ns,
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(v1, "external-secrets.io/v1");

    // The seeds' promise: "if you delete the ExternalSecret, Kubernetes' native garbage
    // collection instantly deletes the underlying native Secret" (the owner reference above,
    // followed by the stack's kube-controller-manager).
    env.external_secrets()
        .delete("db-credentials-es", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the Secret garbage-collected",
        || async {
            env.secrets()
                .get_opt("db-credentials-native")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn seed_property_flow_and_v1_manifest() {
    let env = TestEnv::new("seed-property").await;
    env.apply(&fake_store(
        "aws-secretsmgr",
        &[
            ("/production/api-key", r#"{"api_token_value":"tok-123"}"#),
            ("prod/db/credentials", CREDS),
        ],
    ))
    .await
    .unwrap();
    env.apply(&seed_api_key("aws-secretsmgr", "SecretStore"))
        .await
        .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: db-v1
spec:
  secretStoreRef:
    name: aws-secretsmgr
  target:
    name: db-v1
  data:
  - secretKey: db_user
    remoteRef: {key: prod/db/credentials, property: username}
  - secretKey: db_pass
    remoteRef: {key: prod/db/credentials, property: password}
  - secretKey: db_host
    remoteRef: {key: prod/db/credentials, property: host}
  - secretKey: db_port
    remoteRef: {key: prod/db/credentials, property: port}
"#,
    )
    .await
    .unwrap();
    let s = env
        .wait_secret("api-credentials", "api token", |s| s.data.is_some())
        .await;
    assert_eq!(
        secret_strings(&s),
        [("API_TOKEN".to_string(), "tok-123".to_string())].into()
    );
    let s = env
        .wait_secret("db-v1", "db secret", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(
        (
            d["db_user"].as_str(),
            d["db_host"].as_str(),
            d["db_port"].as_str()
        ),
        ("admin", "rds-prod-01.aws.com", "5432")
    );
    // Defaults applied by the CRD, as ESO's: 1h refresh, Owner, Retain.
    let es = env.external_secrets().get("db-v1").await.unwrap();
    assert_eq!(es.spec.refresh_interval.as_deref(), Some("1h"));
    // Four properties of one remote secret cost one provider call.
    let m = env.metrics();
    assert!(m.contains(r#"externalsecret_provider_api_calls_count_total{provider="fake",call="GetSecret",status="success"} 2"#), "{m}");
}

#[tokio::test]
async fn find_by_name_with_rewrite_and_path_convention() {
    let env = TestEnv::new("find").await;
    env.apply(&fake_store(
        "store",
        &[
            ("dev/app/backend-api", "b"),
            ("dev/app/worker", "w"),
            ("prod/app/worker", "p"),
        ],
    ))
    .await
    .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: dev-apps}
spec:
  refreshInterval: 10m
  secretStoreRef: {name: store, kind: SecretStore}
  target: {name: dev-apps}
  dataFrom:
  - find:
      name: {regexp: "^dev/app/.*"}
    rewrite:
    - regexp: {source: "dev/app/(.*)", target: "$1"}
  - find:
      path: prod/
  data:
  - secretKey: worker
    remoteRef: {key: prod/app/worker}
"#,
    )
    .await
    .unwrap();
    let s = env
        .wait_secret("dev-apps", "found secrets", |s| s.data.is_some())
        .await;
    assert_eq!(
        secret_strings(&s),
        [
            ("backend-api", "b"),
            ("prod_app_worker", "p"),
            ("worker", "p")
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    );
}

#[tokio::test]
async fn periodic_refresh_and_update_event() {
    let env = TestEnv::new("refresh").await;
    env.apply(&fake_store("store", &[("k", "v1")]))
        .await
        .unwrap();
    env.apply(&external_secret("es", "store", "1s", &[("value", "k")]))
        .await
        .unwrap();
    env.wait_value("es", "value", "v1").await;
    env.apply(&fake_store("store", &[("k", "v2")]))
        .await
        .unwrap();
    env.wait_value("es", "value", "v2").await;
    wait_for(Duration::from_secs(10), "Updated event", || async {
        env.events_for("es")
            .await
            .iter()
            .any(|e| e.starts_with("Updated"))
            .then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refresh_interval_zero_syncs_once_until_forced() {
    let env = TestEnv::new("once").await;
    env.apply(&fake_store("store", &[("k", "v1")]))
        .await
        .unwrap();
    env.apply(&external_secret("es", "store", "0", &[("value", "k")]))
        .await
        .unwrap();
    env.wait_value("es", "value", "v1").await;
    env.apply(&fake_store("store", &[("k", "v2")]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        secret_strings(&env.secrets().get("es").await.unwrap())["value"],
        "v1",
        "refreshInterval 0 must not refresh"
    );
    // Force-sync, as ESO documents it: change an annotation.
    env.force_sync("es").await;
    env.wait_value("es", "value", "v2").await;
}

#[tokio::test]
async fn self_heals_deleted_and_edited_secrets_at_once() {
    let env = TestEnv::new("selfheal").await;
    env.apply(&fake_store("store", &[("k", "good")]))
        .await
        .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: es}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store}
  target: {name: healed}
  data:
  - {secretKey: value, remoteRef: {key: k}}
"#,
    )
    .await
    .unwrap();
    let first = env
        .wait_secret("healed", "synced", |s| s.data.is_some())
        .await;

    env.secrets()
        .delete("healed", &DeleteParams::default())
        .await
        .unwrap();
    let recreated = env
        .wait_secret("healed", "recreated", |s| {
            s.uid() != first.uid() && s.data.is_some()
        })
        .await;
    assert_eq!(secret_strings(&recreated)["value"], "good");

    env.secrets()
        .patch(
            "healed",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": "dGFtcGVyZWQ=", "extra": "eA=="}})),
        )
        .await
        .unwrap();
    let restored = env.wait_value("healed", "value", "good").await;
    assert!(
        !secret_strings(&restored).contains_key("extra"),
        "Owner replaces the whole data"
    );
}

#[tokio::test]
async fn keep_last_good_on_provider_failure_and_recover() {
    let env = TestEnv::new("lastgood").await;
    env.apply(&fake_store("store", &[("k", "good")]))
        .await
        .unwrap();
    env.apply(&external_secret("es", "store", "1s", &[("value", "k")]))
        .await
        .unwrap();
    let synced = env.wait_secret("es", "synced", |s| s.data.is_some()).await;
    env.wait_ready("es", "True", "SecretSynced").await;

    // The provider loses the secret: the Kubernetes Secret must stay exactly as it was.
    env.apply(&fake_store("store", &[("other", "x")]))
        .await
        .unwrap();
    let msg = env.wait_ready("es", "False", "SecretSyncedError").await;
    assert!(
        msg.contains("could not get secret data from provider"),
        "{msg}"
    );
    assert!(msg.contains("\"k\""), "names the missing key: {msg}");
    let after = env.secrets().get("es").await.unwrap();
    assert_eq!(after.resource_version(), synced.resource_version());
    assert_eq!(secret_strings(&after)["value"], "good");
    wait_for(Duration::from_secs(10), "warning event", || async {
        env.events_for("es")
            .await
            .iter()
            .any(|e| e.starts_with("MissingProviderSecret") || e.starts_with("UpdateFailed"))
            .then_some(())
    })
    .await
    .unwrap();

    // The store breaks differently: a provider esox does not serve.
    env.apply(
        r#"
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {name: store}
spec:
  provider:
    gcpsm: {projectID: my-project}
"#,
    )
    .await
    .unwrap();
    wait_for(
        Duration::from_secs(20),
        "unsupported provider message",
        || async {
            let es = env.external_secrets().get("es").await.ok()?;
            let c = es
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            c.message.filter(|m| m.contains("gcpsm")).map(|_| ())
        },
    )
    .await
    .unwrap();
    assert_eq!(
        secret_strings(&env.secrets().get("es").await.unwrap())["value"],
        "good"
    );

    // Recovery.
    env.apply(&fake_store("store", &[("k", "good")]))
        .await
        .unwrap();
    env.wait_ready("es", "True", "SecretSynced").await;
}

#[tokio::test]
async fn creation_policies() {
    let env = TestEnv::new("creation").await;
    env.apply(&fake_store("store", &[("k", "managed")]))
        .await
        .unwrap();
    let es = |name: &str, policy: &str, target: &str| {
        format!(
            r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: {name}}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: store}}
  target: {{name: {target}, creationPolicy: {policy}}}
  data:
  - {{secretKey: value, remoteRef: {{key: k}}}}
"#
        )
    };
    // Orphan: created without an owner reference.
    env.apply(&es("orphan", "Orphan", "orphan")).await.unwrap();
    let s = env
        .wait_secret("orphan", "orphan secret", |s| s.data.is_some())
        .await;
    assert!(s.owner_references().is_empty());
    assert!(
        !s.labels()
            .contains_key("reconcile.external-secrets.io/created-by")
    );

    // Merge into a missing Secret: nothing is created, the status says why.
    env.apply(&es("merge", "Merge", "merged")).await.unwrap();
    let msg = env.wait_ready("merge", "False", "SecretMissing").await;
    assert!(msg.contains("Merge"), "{msg}");
    assert!(env.secrets().get_opt("merged").await.unwrap().is_none());
    // Once it exists, our key is merged in and foreign keys stay.
    let mut target = Secret::default();
    target.metadata.name = Some("merged".into());
    target.string_data = Some([("app-owned".to_string(), "keep-me".to_string())].into());
    env.secrets()
        .create(&PostParams::default(), &target)
        .await
        .unwrap();
    let s = env
        .wait_secret("merged", "merged secret", |s| {
            secret_strings(s).contains_key("value")
        })
        .await;
    assert_eq!(secret_strings(&s)["app-owned"], "keep-me");
    assert_eq!(secret_strings(&s)["value"], "managed");
    assert!(s.owner_references().is_empty());
    // Self-healing under Merge: editing our key restores it, without touching the foreign key.
    env.secrets()
        .patch(
            "merged",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": "YmFk"}})),
        )
        .await
        .unwrap();
    let s = env.wait_value("merged", "value", "managed").await;
    assert_eq!(secret_strings(&s)["app-owned"], "keep-me");

    // CreateOrMerge creates when missing.
    env.apply(&es("com", "CreateOrMerge", "created-or-merged"))
        .await
        .unwrap();
    env.wait_value("created-or-merged", "value", "managed")
        .await;

    // None: status synced, no Secret.
    env.apply(&es("none", "None", "never")).await.unwrap();
    env.wait_ready("none", "True", "SecretSynced").await;
    assert!(env.secrets().get_opt("never").await.unwrap().is_none());

    // Deleting the ExternalSecrets: the garbage collector (the stack's
    // kube-controller-manager) removes the Owner one's Secret; the Orphan one stays.
    env.apply(&es("owner", "Owner", "owned")).await.unwrap();
    env.wait_value("owned", "value", "managed").await;
    for name in ["orphan", "owner"] {
        env.external_secrets()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    wait_for(
        Duration::from_secs(30),
        "the owned Secret garbage-collected",
        || async {
            env.secrets()
                .get_opt("owned")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await
    .unwrap();
    let s = env.secrets().get("orphan").await.unwrap();
    assert_eq!(secret_strings(&s)["value"], "managed");
}

#[tokio::test]
async fn owner_adopts_unowned_secret_and_refuses_a_foreign_owner() {
    let env = TestEnv::new("owner").await;
    env.apply(&fake_store("store", &[("k", "v")]))
        .await
        .unwrap();
    let mut pre = Secret::default();
    pre.metadata.name = Some("pre-existing".into());
    pre.string_data = Some([("old".to_string(), "x".to_string())].into());
    env.secrets()
        .create(&PostParams::default(), &pre)
        .await
        .unwrap();
    let es = |name: &str| {
        format!(
            r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: {name}}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: store}}
  target: {{name: pre-existing}}
  data:
  - {{secretKey: value, remoteRef: {{key: k}}}}
"#
        )
    };
    env.apply(&es("first")).await.unwrap();
    let s = env
        .wait_secret("pre-existing", "adopted", |s| {
            !s.owner_references().is_empty()
        })
        .await;
    assert_eq!(s.owner_references()[0].name, "first");
    assert_eq!(
        secret_strings(&s),
        [("value".to_string(), "v".to_string())].into()
    );

    env.apply(&es("second")).await.unwrap();
    let msg = env.wait_ready("second", "False", "SecretSyncedError").await;
    assert!(msg.contains("owned by ExternalSecret \"first\""), "{msg}");
    let s = env.secrets().get("pre-existing").await.unwrap();
    assert_eq!(s.owner_references().len(), 1);
}

#[tokio::test]
async fn deletion_policy_delete_and_retain() {
    let env = TestEnv::new("deletion").await;
    env.apply(&fake_store("store", &[("k", "v"), ("j", "w")]))
        .await
        .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: del}
spec:
  refreshInterval: 1s
  secretStoreRef: {name: store}
  target: {deletionPolicy: Delete}
  data:
  - {secretKey: value, remoteRef: {key: k}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: keep}
spec:
  refreshInterval: 1s
  secretStoreRef: {name: store}
  dataFrom:
  - find: {name: {regexp: '^j$'}}
"#,
    )
    .await
    .unwrap();
    env.wait_secret("del", "synced", |s| s.data.is_some()).await;
    env.wait_secret("keep", "synced", |s| s.data.is_some())
        .await;
    env.apply(&fake_store("store", &[])).await.unwrap();
    let msg = env.wait_ready("del", "True", "SecretDeleted").await;
    assert!(msg.contains("DeletionPolicy"), "{msg}");
    assert!(env.secrets().get_opt("del").await.unwrap().is_none());
    // Retain with an empty find result keeps the Secret.
    let msg = env.wait_ready("keep", "True", "SecretSynced").await;
    wait_for(Duration::from_secs(10), "retain message", || async {
        let es = env.external_secrets().get("keep").await.ok()?;
        es.status?
            .conditions
            .into_iter()
            .find(|c| c.message.as_deref().is_some_and(|m| m.contains("Retain")))
            .map(|_| ())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {msg}"));
    assert_eq!(
        secret_strings(&env.secrets().get("keep").await.unwrap())["j"],
        "w"
    );
}

#[tokio::test]
async fn no_writes_when_nothing_changed() {
    let env = TestEnv::new("nowrite").await;
    env.apply(&fake_store("store", &[("k", "v")]))
        .await
        .unwrap();
    env.apply(&external_secret("es", "store", "1h", &[("value", "k")]))
        .await
        .unwrap();
    env.wait_secret("es", "synced", |s| s.data.is_some()).await;
    env.wait_ready("es", "True", "SecretSynced").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let es_rv = env
        .external_secrets()
        .get("es")
        .await
        .unwrap()
        .resource_version();
    // Touch the Secret's metadata: this triggers a reconcile through the Secret watch.
    let touched = env
        .secrets()
        .patch(
            "es",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.secrets().get("es").await.unwrap().resource_version(),
        touched.resource_version(),
        "no Secret write"
    );
    assert_eq!(
        env.external_secrets()
            .get("es")
            .await
            .unwrap()
            .resource_version(),
        es_rv,
        "no status write"
    );
}

#[tokio::test]
async fn invalid_input_gets_specific_status_and_event() {
    let env = TestEnv::new("invalid").await;
    env.apply(&fake_store("store", &[("dir/a b", "v"), ("k", "v")]))
        .await
        .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: badkeys}
spec:
  secretStoreRef: {name: store}
  dataFrom:
  - find: {name: {regexp: '^dir/'}}
    rewrite:
    - regexp: {source: 'dir/', target: 'x/'}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: badinterval}
spec:
  refreshInterval: 1d
  secretStoreRef: {name: store}
  data:
  - {secretKey: v, remoteRef: {key: k}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: nostore}
spec:
  secretStoreRef: {name: missing-store}
  data:
  - {secretKey: v, remoteRef: {key: k}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: badprop}
spec:
  secretStoreRef: {name: store}
  data:
  - {secretKey: v, remoteRef: {key: k, property: nope}}
"#,
    )
    .await
    .unwrap();
    let msg = env
        .wait_ready("badkeys", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("invalid secret keys") && msg.contains("x/a b"),
        "{msg}"
    );
    let msg = env
        .wait_ready("badinterval", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("spec.refreshInterval") && msg.contains("1d"),
        "{msg}"
    );
    let msg = env
        .wait_ready("nostore", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("SecretStore \"missing-store\" not found"),
        "{msg}"
    );
    let msg = env
        .wait_ready("badprop", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("key \"nope\" does not exist in secret \"k\""),
        "{msg}"
    );
    for name in ["badkeys", "badinterval", "nostore", "badprop"] {
        wait_for(Duration::from_secs(10), "warning event", || async {
            env.events_for(name)
                .await
                .iter()
                .any(|e| e.starts_with("UpdateFailed"))
                .then_some(())
        })
        .await
        .unwrap();
        assert!(env.secrets().get_opt(name).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn deletion_policy_merge_removes_only_our_keys() {
    let env = TestEnv::new("delmerge").await;
    env.apply(&fake_store("store", &[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    let mut target = Secret::default();
    target.metadata.name = Some("shared".into());
    target.string_data = Some([("app-owned".to_string(), "keep-me".to_string())].into());
    env.secrets()
        .create(&PostParams::default(), &target)
        .await
        .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: es}
spec:
  refreshInterval: 1s
  secretStoreRef: {name: store}
  target: {name: shared, creationPolicy: Merge, deletionPolicy: Merge}
  dataFrom:
  - find: {name: {regexp: '^[ab]$'}}
"#,
    )
    .await
    .unwrap();
    env.wait_secret("shared", "merged a and b", |s| secret_strings(s).len() == 3)
        .await;
    // The provider loses `b`, then everything: only our keys go, the app's key stays.
    env.apply(&fake_store("store", &[("a", "1")]))
        .await
        .unwrap();
    let s = env
        .wait_secret("shared", "b removed", |s| {
            !secret_strings(s).contains_key("b")
        })
        .await;
    assert_eq!(
        secret_strings(&s).keys().collect::<Vec<_>>(),
        ["a", "app-owned"]
    );
    env.apply(&fake_store("store", &[])).await.unwrap();
    let s = env
        .wait_secret("shared", "a removed", |s| {
            !secret_strings(s).contains_key("a")
        })
        .await;
    assert_eq!(
        secret_strings(&s),
        [("app-owned".to_string(), "keep-me".to_string())].into()
    );
    env.wait_ready("es", "True", "SecretSynced").await;
}

#[tokio::test]
async fn deleted_external_secrets_leave_no_metric_series() {
    let env = TestEnv::new("forget").await;
    env.apply(&fake_store("store", &[("k", "v")]))
        .await
        .unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: short-lived}
spec:
  secretStoreRef: {name: store}
  data:
  - {secretKey: value, remoteRef: {key: k}}
"#,
    )
    .await
    .unwrap();
    env.wait_ready("short-lived", "True", "SecretSynced").await;
    assert!(env.metrics().contains(r#"name="short-lived""#));
    env.external_secrets()
        .delete("short-lived", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), "metric series dropped", || async {
        (!env.metrics().contains(r#"name="short-lived""#)).then_some(())
    })
    .await
    .unwrap();
}

/// ESO's admission rules apply even without a webhook: the ExternalSecret gets ESO's message
/// on its status, and no Secret is written.
#[tokio::test]
async fn eso_admission_rules_are_reported_on_status() {
    let env = TestEnv::new("sync-rules").await;
    env.apply(&format!(
        "{}---\n{}",
        fake_store_v1("store", &[("k", "v")]),
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: dup}
spec:
  secretStoreRef: {name: store, kind: SecretStore}
  target: {name: dup, creationPolicy: Merge, deletionPolicy: Delete}
  data:
  - {secretKey: a, remoteRef: {key: k}}
  - {secretKey: b, remoteRef: {key: k}}
"#
    ))
    .await
    .unwrap();
    let msg = env.wait_ready("dup", "False", "SecretSyncedError").await;
    assert_eq!(
        msg,
        "invalid ExternalSecret: deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner"
    );
}

/// A saturated controller still gives every object its turn, in the order they became due.
/// Thirty ExternalSecrets refreshing every 100ms keep a controller with one reconcile slot
/// busy; ExternalSecrets created while it is saturated must still get their first sync
/// promptly, not wait behind the busy ones indefinitely (kube-runtime's own limit takes parked
/// objects in hash order, which starved some of them for minutes).
#[tokio::test]
async fn a_saturated_controller_still_syncs_every_object() {
    let env = TestEnv::with(
        "saturated",
        esox_tests::Options {
            concurrency: Some(1),
            ..Default::default()
        },
    )
    .await;
    env.apply(&fake_store("store", &[("k", "v")]))
        .await
        .unwrap();
    let es = |name: &str, interval: &str| {
        format!(
            r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: {name}}}
spec:
  refreshInterval: {interval}
  secretStoreRef: {{name: store, kind: SecretStore}}
  target: {{name: {name}}}
  data:
  - {{secretKey: v, remoteRef: {{key: k}}}}
"#
        )
    };
    let busy: Vec<String> = (0..30).map(|i| es(&format!("busy-{i}"), "100ms")).collect();
    env.apply(&busy.join("---\n")).await.unwrap();
    env.wait_secret("busy-29", "the busy objects cycling", |s| s.data.is_some())
        .await;
    let quiet: Vec<String> = (0..30).map(|i| es(&format!("quiet-{i}"), "1h")).collect();
    env.apply(&quiet.join("---\n")).await.unwrap();
    let secrets = env.secrets();
    let synced = wait_for(
        Duration::from_secs(60),
        "every quiet ExternalSecret synced",
        || {
            let secrets = secrets.clone();
            async move {
                let mut missing = Vec::new();
                for i in 0..30 {
                    let name = format!("quiet-{i}");
                    if secrets.get_opt(&name).await.ok().flatten().is_none() {
                        missing.push(name);
                    }
                }
                missing.is_empty().then_some(())
            }
        },
    )
    .await;
    // Leave nothing refreshing every 100ms behind for later tests' cluster-wide controllers.
    kube::Api::<esox::api::ExternalSecret>::namespaced(env.client.clone(), &env.ns)
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    synced.unwrap();
}

/// ESO's finalizer: every ExternalSecret carries it; deleting one under
/// `deletionPolicy: Delete` removes the Secret it controls (without waiting for a garbage
/// collector), under `Retain` leaves it, and the ExternalSecret then goes. (The `Retain` one is
/// an `Orphan` target: an `Owner` one would then go with the garbage collector, which
/// `creation_policies` checks.)
#[tokio::test]
async fn deleting_an_external_secret_under_delete_removes_its_secret() {
    let env = TestEnv::new("finalizer").await;
    env.apply(&fake_store("store", &[("k", "v")]))
        .await
        .unwrap();
    env.apply(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: deleting}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store}
  target: {name: deleted-with-it, deletionPolicy: Delete}
  data:
  - {secretKey: value, remoteRef: {key: k}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: retaining}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store}
  target: {name: kept, creationPolicy: Orphan}
  data:
  - {secretKey: value, remoteRef: {key: k}}
"#,
    )
    .await
    .unwrap();
    env.wait_value("deleted-with-it", "value", "v").await;
    env.wait_value("kept", "value", "v").await;
    for name in ["deleting", "retaining"] {
        let es = env.external_secrets().get(name).await.unwrap();
        assert_eq!(
            es.finalizers(),
            ["externalsecrets.external-secrets.io/externalsecret-cleanup"],
            "{name} carries ESO's finalizer"
        );
        env.external_secrets()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    wait_for(
        Duration::from_secs(20),
        "both ExternalSecrets gone",
        || async {
            let a = env.external_secrets().get_opt("deleting").await.unwrap();
            let b = env.external_secrets().get_opt("retaining").await.unwrap();
            (a.is_none() && b.is_none()).then_some(())
        },
    )
    .await
    .unwrap();
    assert!(
        env.secrets()
            .get_opt("deleted-with-it")
            .await
            .unwrap()
            .is_none(),
        "deletionPolicy Delete: the Secret went with its ExternalSecret"
    );
    assert!(
        env.secrets().get_opt("kept").await.unwrap().is_some(),
        "deletionPolicy Retain: esox leaves the Secret"
    );
}

/// ESO's `isSecretValid` exempts `Orphan`: a deleted Orphan target is not recreated before
/// the next refresh (or a force-sync), while an `Owner` target heals at once.
#[tokio::test]
async fn a_deleted_orphan_target_waits_for_the_next_refresh() {
    let env = TestEnv::new("orphan").await;
    env.apply(&fake_store("store", &[("k", "v")]))
        .await
        .unwrap();
    env.apply(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: orphan}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store}
  target: {name: orphan-target, creationPolicy: Orphan}
  data:
  - {secretKey: value, remoteRef: {key: k}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: owner}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store}
  target: {name: owner-target}
  data:
  - {secretKey: value, remoteRef: {key: k}}
"#,
    )
    .await
    .unwrap();
    env.wait_value("orphan-target", "value", "v").await;
    let owned = env.wait_value("owner-target", "value", "v").await;
    for name in ["orphan-target", "owner-target"] {
        env.secrets()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    env.wait_secret("owner-target", "Owner target recreated", |s| {
        s.uid() != owned.uid()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        env.secrets()
            .get_opt("orphan-target")
            .await
            .unwrap()
            .is_none(),
        "an Orphan target is not recreated before its refresh is due"
    );
    // A force-sync (an annotation change) is a refresh.
    env.force_sync("orphan").await;
    env.wait_value("orphan-target", "value", "v").await;
}

/// One Event recorder for the process: an ExternalSecret failing again and again makes one
/// Event object whose series counts the repeats, not one object per retry.
#[tokio::test]
async fn repeated_failures_make_one_event_with_a_count() {
    use k8s_openapi::api::events::v1::Event;
    let env = TestEnv::new("event-series").await;
    env.apply(&fake_store("store", &[("k", "v")]))
        .await
        .unwrap();
    env.apply(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: failing}
spec:
  refreshInterval: 1s
  secretStoreRef: {name: store}
  data:
  - {secretKey: value, remoteRef: {key: k, property: missing}}
"#,
    )
    .await
    .unwrap();
    env.wait_ready("failing", "False", "SecretSyncedError")
        .await;
    let events: kube::Api<Event> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let failures = || async {
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("failing")
                    && e.reason.as_deref() == Some("UpdateFailed")
            })
            .collect::<Vec<_>>()
    };
    // Retries back off 1 s, 2 s, 4 s, …: at least three failures within 15 s.
    let counted = wait_for(Duration::from_secs(30), "three failures", || async {
        let found = failures().await;
        (found.len() == 1 && found[0].series.as_ref().is_some_and(|s| s.count >= 3)).then_some(())
    })
    .await;
    let found: Vec<_> = failures()
        .await
        .into_iter()
        .map(|e| (e.metadata.name, e.series.map(|s| s.count)))
        .collect();
    assert!(
        counted.is_ok(),
        "one Event object counting the repeated failure, got {found:?}"
    );
}
