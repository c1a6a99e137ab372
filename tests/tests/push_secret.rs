//! PushSecret against the real apiserver and moto: the seeds' scenario (a cert-manager-style
//! `kubernetes.io/tls` Secret pushed to AWS Secrets Manager, renewed, read back elsewhere by
//! an ExternalSecret), ESO's policies and the bad inputs that must report clearly and never
//! overwrite what esox does not own.

use std::time::Duration;

use esox_tests::manifests::aws_static_store;
use esox_tests::{TestEnv, aws_config, put_aws_secret, wait_for};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const KEY: &str = "AKIDESOXTEST:esox-test-secret";

/// A self-signed certificate and key made by openssl, as cert-manager would leave them.
fn openssl_tls(dir: &std::path::Path, cn: &str) -> (Vec<u8>, Vec<u8>) {
    let key = dir.join(format!("{cn}.key"));
    let crt = dir.join(format!("{cn}.crt"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (std::fs::read(crt).unwrap(), std::fs::read(key).unwrap())
}

fn tls_secret(name: &str, crt: &[u8], key: &[u8]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.type_ = Some("kubernetes.io/tls".into());
    s.data = Some(
        [
            ("tls.crt".to_string(), ByteString(crt.to_vec())),
            ("tls.key".to_string(), ByteString(key.to_vec())),
        ]
        .into(),
    );
    s
}

async fn sm() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_config().await)
}

/// The remote value (binary or string) and its tags, or `None` when the secret is missing.
async fn remote(name: &str) -> Option<(Vec<u8>, Vec<(String, String)>)> {
    let sm = sm().await;
    let v = sm.get_secret_value().secret_id(name).send().await.ok()?;
    let bytes = match (v.secret_string(), v.secret_binary()) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, Some(b)) => b.as_ref().to_vec(),
        _ => Vec::new(),
    };
    let d = sm.describe_secret().secret_id(name).send().await.ok()?;
    let tags = d
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    Some((bytes, tags))
}

async fn wait_remote(name: &str, what: &str, check: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    wait_for(Duration::from_secs(60), what, || async {
        remote(name).await.map(|(v, _)| v).filter(|v| check(v))
    })
    .await
    .unwrap()
}

/// The PushSecret's Ready condition as `(status, reason, message)`.
async fn ready(env: &TestEnv, name: &str) -> Option<(String, String, String)> {
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    let ps = api.get(name).await.ok()?;
    let c = ps
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

async fn wait_push(env: &TestEnv, name: &str, status: &str, reason: &str) -> String {
    wait_for(
        Duration::from_secs(60),
        &format!("PushSecret {name} {status}/{reason}"),
        || async {
            ready(env, name)
                .await
                .filter(|(s, r, _)| s == status && r == reason)
                .map(|(_, _, m)| m)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", futures::executor::block_on(ready(env, name))))
}

/// The seeds' scenario: a TLS Secret minted in the cluster is pushed to AWS Secrets Manager,
/// renewing it updates AWS at once (opt-in source watch), and an ExternalSecret in another
/// namespace reads it back byte for byte. Deleting the PushSecret (deletionPolicy Delete)
/// removes what it pushed.
#[tokio::test]
async fn tls_certificate_is_pushed_to_aws_renewed_and_read_back_elsewhere() {
    let env = TestEnv::with(
        "push-tls",
        esox_tests::Options {
            cluster_wide: false,
            ..Default::default()
        },
    )
    .await;
    let reader = TestEnv::new("push-tls-reader").await;
    let tmp = tempfile::tempdir().unwrap();
    let remote_crt = format!("{}/ingress/tls.crt", env.ns);
    let remote_key = format!("{}/ingress/tls.key", env.ns);

    let (crt, key) = openssl_tls(tmp.path(), "app.example.com");
    env.secrets()
        .create(&PostParams::default(), &tls_secret("app-tls", &crt, &key))
        .await
        .unwrap();
    env.apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push-app-tls
  annotations:
    esox.dev/push-on-source-change: "true"
spec:
  refreshInterval: 1h
  updatePolicy: Replace
  deletionPolicy: Delete
  secretStoreRefs:
    - name: aws
      kind: SecretStore
  selector:
    secret:
      name: app-tls
  data:
    - match:
        secretKey: tls.crt
        remoteRef:
          remoteKey: {remote_crt}
    - match:
        secretKey: tls.key
        remoteRef:
          remoteKey: {remote_key}
"#
    ))
    .await
    .unwrap();
    let msg = wait_push(&env, "push-app-tls", "True", "Synced").await;
    assert_eq!(msg, "PushSecret synced successfully");
    let (pushed, tags) = remote(&remote_crt).await.expect("pushed to AWS");
    assert_eq!(pushed, crt, "the certificate is in AWS byte for byte");
    assert!(
        tags.contains(&("managed-by".into(), "external-secrets".into())),
        "{tags:?}"
    );
    assert_eq!(remote(&remote_key).await.unwrap().0, key);

    // ESO's status: what went where.
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    let ps = api.get("push-app-tls").await.unwrap();
    let synced = ps.status.unwrap().synced_push_secrets.unwrap();
    let keys: Vec<_> = synced["SecretStore/aws"].keys().cloned().collect();
    assert_eq!(keys, [remote_crt.clone(), remote_key.clone()]);
    assert!(
        ps.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"pushsecret.externalsecrets.io/finalizer".to_string())
    );

    // Renewal: cert-manager rewrites the Secret; AWS follows without waiting for the hour.
    let (crt2, key2) = openssl_tls(tmp.path(), "renewed.example.com");
    assert_ne!(crt, crt2);
    env.secrets()
        .replace(
            "app-tls",
            &PostParams::default(),
            &tls_secret("app-tls", &crt2, &key2),
        )
        .await
        .unwrap();
    wait_remote(&remote_crt, "renewed certificate in AWS", |v| {
        v == crt2.as_slice()
    })
    .await;
    wait_remote(&remote_key, "renewed key in AWS", |v| v == key2.as_slice()).await;

    // Another namespace reads it back with an ExternalSecret, byte for byte.
    reader
        .apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    reader
        .apply(&format!(
            r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: app-tls}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: aws, kind: SecretStore}}
  target:
    name: app-tls-copy
    template: {{type: kubernetes.io/tls}}
  data:
  - secretKey: tls.crt
    remoteRef: {{key: {remote_crt}}}
  - secretKey: tls.key
    remoteRef: {{key: {remote_key}}}
"#
        ))
        .await
        .unwrap();
    let copy = reader
        .wait_secret("app-tls-copy", "TLS Secret read back", |s| s.data.is_some())
        .await;
    assert_eq!(copy.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = copy.data.unwrap();
    assert_eq!(data["tls.crt"].0, crt2);
    assert_eq!(data["tls.key"].0, key2);

    // An unchanged source is not written again (ESO #5443): the version stays.
    let sm = sm().await;
    let before = sm
        .describe_secret()
        .secret_id(&remote_crt)
        .send()
        .await
        .unwrap();
    let versions = before
        .version_ids_to_stages()
        .map(|m| m.len())
        .unwrap_or_default();
    api.patch(
        "push-app-tls",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = sm
        .describe_secret()
        .secret_id(&remote_crt)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after
            .version_ids_to_stages()
            .map(|m| m.len())
            .unwrap_or_default(),
        versions,
        "no new version for an unchanged value"
    );

    // deletionPolicy Delete: deleting the PushSecret deletes what it pushed, then it goes.
    api.delete("push-app-tls", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(Duration::from_secs(60), "PushSecret gone", || async {
        api.get_opt("push-app-tls")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    let gone = sm.describe_secret().secret_id(&remote_crt).send().await;
    assert!(
        gone.map(|d| d.deleted_date().is_some()).unwrap_or(true),
        "the pushed certificate is deleted (or scheduled for deletion)"
    );
}

/// Bad input: each gives a clear `Errored` status and a Warning event, and nothing remote
/// that esox does not own is overwritten.
#[tokio::test]
async fn bad_input_is_reported_and_unowned_secrets_are_left_alone() {
    let env = TestEnv::new("push-bad").await;
    env.apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    env.apply(&aws_static_store("ssm", "ParameterStore", KEY))
        .await
        .unwrap();
    // A provider esox does not implement: ReadOnly, nothing can be pushed there.
    env.apply(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: gcp}\nspec: {provider: {gcpsm: {projectID: p}}}\n",
    )
    .await
    .unwrap();
    let mut src = Secret::default();
    src.metadata.name = Some("src".into());
    src.string_data = Some([("v".to_string(), "pushed-canary-value".to_string())].into());
    env.secrets()
        .create(&PostParams::default(), &src)
        .await
        .unwrap();
    let unowned = format!("{}/unowned", env.ns);
    put_aws_secret(&unowned, "someone-elses", &[]).await;
    let push = |name: &str, store: &str, selector: &str, remote: &str| {
        format!(
            r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: {name}}}
spec:
  secretStoreRefs: [{{name: {store}}}]
  selector: {{secret: {selector}}}
  data:
  - match: {{secretKey: v, remoteRef: {{remoteKey: {remote}}}}}
"#
        )
    };
    let ns = &env.ns;
    env.apply(
        &[
            push("readonly", "gcp", "{name: src}", &format!("{ns}/ro")),
            push("missing", "aws", "{name: nope}", &format!("{ns}/missing")),
            push(
                "nomatch",
                "aws",
                "{selector: {matchLabels: {app: none}}}",
                &format!("{ns}/nomatch"),
            ),
            push("unowned", "aws", "{name: src}", &unowned),
            push("first", "aws", "{name: src}", &format!("{ns}/shared")),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    let m = wait_push(&env, "readonly", "False", "Errored").await;
    assert!(
        m.starts_with(
            "set secret failed: could not get secrets client for store SecretStore/gcp: "
        ),
        "{m}"
    );
    let m = wait_push(&env, "missing", "False", "Errored").await;
    assert_eq!(m, "could not get source secret");
    let m = wait_push(&env, "nomatch", "False", "Errored").await;
    assert!(
        m.starts_with("could not get source secret: no Secret in namespace"),
        "{m}"
    );
    let m = wait_push(&env, "unowned", "False", "Errored").await;
    assert_eq!(
        m,
        format!(
            "set secret failed: could not write remote ref {unowned} to target secretstore aws: secret not managed by external-secrets"
        )
    );
    assert_eq!(
        remote(&unowned).await.unwrap().0,
        b"someone-elses",
        "a secret esox does not manage is never overwritten"
    );
    wait_push(&env, "first", "True", "Synced").await;
    env.apply(&push(
        "second",
        "aws",
        "{name: src}",
        &format!("{ns}/shared"),
    ))
    .await
    .unwrap();
    let m = wait_push(&env, "second", "False", "Errored").await;
    assert_eq!(
        m,
        format!(
            "set secret failed: remote key {ns}/shared in SecretStore/aws is already pushed by PushSecret {ns}/first"
        )
    );
    for name in ["readonly", "missing", "unowned", "second"] {
        let events = env.events_for(name).await;
        assert!(
            events.iter().any(|e| e.contains("Errored")),
            "{name}: {events:?}"
        );
    }
    // The store reports what it can do.
    env.wait_store("ssm", |status, _, _| status == "True").await;
    env.wait_store("aws", |status, _, _| status == "True").await;
    let stores: Api<esox::api::SecretStore> = Api::namespaced(env.client.clone(), &env.ns);
    let caps = |s: esox::api::SecretStore| s.status.and_then(|s| s.capabilities);
    assert_eq!(
        caps(stores.get("ssm").await.unwrap()).as_deref(),
        Some("ReadWrite")
    );
    env.wait_store("gcp", |status, _, _| status == "False")
        .await;
    assert_eq!(
        caps(stores.get("gcp").await.unwrap()).as_deref(),
        Some("ReadOnly")
    );
    assert_eq!(
        caps(stores.get("aws").await.unwrap()).as_deref(),
        Some("ReadWrite")
    );
    esox_tests::assert_no_secret_value(&env, &[], "pushed-canary-value").await;
}

/// The CRD stores a PushSecret exactly as applied: no schema default is injected (ESO
/// #6797/#6798), so GitOps tools see no drift.
#[tokio::test]
async fn a_push_secret_is_stored_exactly_as_applied() {
    let env = TestEnv::without_controller("push-crd").await;
    let spec = json!({
        "secretStoreRefs": [{"name": "aws"}, {"labelSelector": {"matchLabels": {"team": "a"}}, "kind": "ClusterSecretStore"}],
        "selector": {"secret": {"name": "src"}},
        "data": [{
            "match": {"secretKey": "tls.crt", "remoteRef": {"remoteKey": "certs/app", "property": "crt"}},
            "metadata": {"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"secretPushFormat": "string", "tags": {"team": "a"}}}
        }, {
            "match": {"remoteRef": {"remoteKey": "certs/whole"}}
        }]
    });
    env.apply(
        &serde_json::to_string(&json!({
            "apiVersion": "external-secrets.io/v1alpha1",
            "kind": "PushSecret",
            "metadata": {"name": "as-applied"},
            "spec": spec,
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "external-secrets.io",
            "v1alpha1",
            "PushSecret",
        )),
    );
    let stored = api.get("as-applied").await.unwrap();
    assert_eq!(stored.data["spec"], spec);
}

/// ClusterPushSecret: one PushSecret in each selected namespace, pushing that namespace's
/// Secret to the Fake store; a namespace relabelled out loses its PushSecret; a PushSecret of
/// that name it does not own is never touched.
#[tokio::test]
async fn cluster_push_secret_stamps_a_push_secret_per_selected_namespace() {
    let _lock = esox_tests::cluster_lock().await;
    let label = "esox-push-test";
    let a = TestEnv::with(
        "cps-a",
        esox_tests::Options {
            cluster_wide: true,
            namespace_labels: [(label.to_string(), "yes".to_string())].into(),
            ..Default::default()
        },
    )
    .await;
    let b = TestEnv::with(
        "cps-b",
        esox_tests::Options {
            no_controller: true,
            namespace_labels: [(label.to_string(), "yes".to_string())].into(),
            ..Default::default()
        },
    )
    .await;
    let cps_name = format!("cps-{}", a.ns);
    // b already has a PushSecret of that name that is not the ClusterPushSecret's.
    b.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: {cps_name}}}
spec:
  secretStoreRefs: [{{name: nowhere}}]
  selector: {{secret: {{name: nothing}}}}
"#
    ))
    .await
    .unwrap();
    let mut src = Secret::default();
    src.metadata.name = Some("src".into());
    src.string_data = Some([("v".to_string(), "x".to_string())].into());
    a.secrets()
        .create(&PostParams::default(), &src)
        .await
        .unwrap();
    a.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: fake}}
spec: {{provider: {{fake: {{data: []}}}}}}
---
apiVersion: external-secrets.io/v1alpha1
kind: ClusterPushSecret
metadata: {{name: {cps_name}}}
spec:
  namespaceSelectors: [{{matchLabels: {{{label}: "yes"}}}}]
  pushSecretSpec:
    secretStoreRefs: [{{name: fake}}]
    selector: {{secret: {{name: src}}}}
    data:
    - match: {{secretKey: v, remoteRef: {{remoteKey: pushed}}}}
"#
    ))
    .await
    .unwrap();
    let api: Api<esox::api::ClusterPushSecret> = Api::all(a.client.clone());
    let status = wait_for(
        Duration::from_secs(60),
        "ClusterPushSecret status",
        || async {
            api.get(&cps_name)
                .await
                .ok()
                .and_then(|c| c.status)
                .filter(|s| s.provisioned_namespaces.contains(&a.ns))
        },
    )
    .await
    .unwrap();
    assert!(
        status.failed_namespaces.iter().any(|f| f.namespace == b.ns
            && f.reason.as_deref() == Some("push secret already exists in namespace")),
        "{status:?}"
    );
    // The stamped PushSecret in a pushes a's Secret to the Fake store.
    wait_push(&a, &cps_name, "True", "Synced").await;
    // b's own PushSecret is untouched.
    let bps: Api<esox::api::PushSecret> = Api::namespaced(b.client.clone(), &b.ns);
    assert!(
        bps.get(&cps_name)
            .await
            .unwrap()
            .metadata
            .owner_references
            .is_none()
    );
    // Relabel a out: its PushSecret goes.
    let nsapi: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(a.client.clone());
    nsapi
        .patch(
            &a.ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {label: null}}})),
        )
        .await
        .unwrap();
    let aps: Api<esox::api::PushSecret> = Api::namespaced(a.client.clone(), &a.ns);
    wait_for(Duration::from_secs(30), "PushSecret removed", || async {
        aps.get_opt(&cps_name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    api.delete(&cps_name, &DeleteParams::default())
        .await
        .unwrap();
}
