//! PushSecret against the real apiserver and moto: the seeds' scenario (a cert-manager-style
//! `kubernetes.io/tls` Secret pushed to AWS Secrets Manager, renewed, read back elsewhere by
//! an ExternalSecret), ESO's policies and the bad inputs that must report clearly and never
//! overwrite what esox does not own.

use std::time::Duration;

use esox_tests::manifests::aws_static_store;
use esox_tests::push::{source as source_secret, wait_push};
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

const CANARY: &str = "pushed-template-canary";

/// `spec.template` in both engines, rendered in Wasm by the shipped binary at trace: the Go
/// template (with a `templateFrom` ConfigMap) pushed to AWS Secrets Manager and the minijinja
/// one to the Fake store land byte for byte (the Fake one read back by an ExternalSecret);
/// the source's own keys stay pushable beside the rendered ones (ESO's merge). A template
/// that fails reports ESO's `Errored` with the engine's message and pushes nothing. No value
/// reaches the log, a status or an event.
#[tokio::test]
async fn templated_pushes_land_byte_for_byte_in_both_engines_and_a_bad_one_pushes_nothing() {
    let env = TestEnv::with(
        "push-tpl",
        esox_tests::Options {
            no_controller: true,
            ..Default::default()
        },
    )
    .await;
    let ns = env.ns.clone();
    let (log, file) = esox_tests::Log::new(&format!("push-tpl-{ns}"));
    let _esox = env.spawn_controller_logging(&[("RUST_LOG", "trace")], file);
    source_secret(&env, "db", &[("user", "admin"), ("password", CANARY)]).await;
    env.apply(&format!(
        r#"{aws}---
{fake}---
apiVersion: v1
kind: ConfigMap
metadata: {{name: tpl}}
data:
  config.yaml: "user: {{{{ .user }}}}\npassword: {{{{ .password | b64enc }}}}\n"
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: go}}
spec:
  refreshInterval: 1h
  secretStoreRefs: [{{name: aws}}]
  selector: {{secret: {{name: db}}}}
  template:
    type: Opaque
    data:
      dsn: "postgres://{{{{ .user }}}}:{{{{ .password }}}}@db:5432/app"
    templateFrom:
    - configMap:
        name: tpl
        items: [{{key: config.yaml}}]
  data:
  - match: {{secretKey: dsn, remoteRef: {{remoteKey: {ns}/go/dsn}}}}
  - match: {{secretKey: config.yaml, remoteRef: {{remoteKey: {ns}/go/config}}}}
  - match: {{secretKey: user, remoteRef: {{remoteKey: {ns}/go/user}}}}
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: jinja}}
spec:
  refreshInterval: 1h
  secretStoreRefs: [{{name: fake}}]
  selector: {{secret: {{name: db}}}}
  template:
    engineVersion: minijinja
    data:
      dsn: "postgres://{{{{ user }}}}:{{{{ password | upper }}}}@db:5432/app"
  data:
  - match: {{secretKey: dsn, remoteRef: {{remoteKey: jinja-dsn}}}}
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: broken}}
spec:
  refreshInterval: 1h
  secretStoreRefs: [{{name: aws}}]
  selector: {{secret: {{name: db}}}}
  template:
    data:
      dsn: "{{{{ .password }}}}{{{{ .nope.deeper }}}}"
  data:
  - match: {{secretKey: user, remoteRef: {{remoteKey: {ns}/broken/user}}}}
"#,
        aws = aws_static_store("aws", "SecretsManager", KEY),
        fake = esox_tests::manifests::fake_store_v1("fake", &[]),
    ))
    .await
    .unwrap();

    let msg = wait_push(&env, "go", "True", "Synced").await;
    assert_eq!(msg, "PushSecret synced successfully");
    let dsn = format!("postgres://admin:{CANARY}@db:5432/app");
    assert_eq!(
        remote(&format!("{ns}/go/dsn")).await.unwrap().0,
        dsn.as_bytes()
    );
    use base64::Engine as _;
    let config = format!(
        "user: admin\npassword: {}\n",
        base64::engine::general_purpose::STANDARD.encode(CANARY)
    );
    assert_eq!(
        remote(&format!("{ns}/go/config")).await.unwrap().0,
        config.as_bytes(),
        "templateFrom renders into the pushed Secret"
    );
    assert_eq!(
        remote(&format!("{ns}/go/user")).await.unwrap().0,
        b"admin",
        "the source's keys stay beside the rendered ones"
    );

    wait_push(&env, "jinja", "True", "Synced").await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: readback}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: fake, kind: SecretStore}
  data:
  - secretKey: dsn
    remoteRef: {key: jinja-dsn}
"#,
    )
    .await
    .unwrap();
    let back = env
        .wait_secret("readback", "minijinja push read back", |s| s.data.is_some())
        .await;
    assert_eq!(
        back.data.unwrap()["dsn"].0,
        format!("postgres://admin:{}@db:5432/app", CANARY.to_uppercase()).as_bytes()
    );

    let msg = wait_push(&env, "broken", "False", "Errored").await;
    assert!(
        msg.starts_with("could not apply template: could not execute template:")
            && msg.contains("dsn"),
        "{msg}"
    );
    assert!(
        env.events_for("broken")
            .await
            .iter()
            .any(|e| e.contains("Errored") && e.contains("could not apply template")),
        "a Warning event says why"
    );
    assert!(
        remote(&format!("{ns}/broken/user")).await.is_none(),
        "a template error pushes nothing"
    );
    // A few refreshes and retries at trace, then: no value anywhere.
    tokio::time::sleep(Duration::from_secs(3)).await;
    esox_tests::assert_no_secret_value(&env, &[&log.0], CANARY).await;
    esox_tests::assert_no_secret_value(&env, &[], &CANARY.to_uppercase()).await;
}

/// `dataTo`: the source's keys matching `match.regexp` are renamed by a regexp, a Go template
/// (in Wasm) and a regexp again, each pushed to its own AWS secret; an explicit `data[]` entry
/// for one of those keys wins; a bundle pushes the keys it matches as one JSON object; the
/// status records every entry, and `deletionPolicy: Delete` removes them all with the
/// PushSecret.
#[tokio::test]
async fn data_to_pushes_matched_renamed_keys_and_delete_removes_them() {
    let env = TestEnv::new("push-datato").await;
    let ns = env.ns.clone();
    source_secret(
        &env,
        "app",
        &[
            ("db-host", "db.internal"),
            ("db-user", "app"),
            ("api-key", "pushed-datato-canary"),
            ("api-url", "https://api"),
            ("other", "x"),
        ],
    )
    .await;
    env.apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: bulk}}
spec:
  refreshInterval: 1h
  deletionPolicy: Delete
  secretStoreRefs: [{{name: aws}}]
  selector: {{secret: {{name: app}}}}
  data:
  - match: {{secretKey: db-user, remoteRef: {{remoteKey: {ns}/explicit-user}}}}
  dataTo:
  - storeRef: {{name: aws}}
    match: {{regexp: "^db-"}}
    rewrite:
    - regexp: {{source: "^db-(.*)$", target: "$1"}}
    - transform: {{template: "{{{{ .value | upper }}}}"}}
    - regexp: {{source: "^(.*)$", target: "{ns}/db/$1"}}
  - storeRef: {{name: aws}}
    match: {{regexp: "^api-"}}
    remoteKey: {ns}/api
"#
    ))
    .await
    .unwrap();
    let msg = wait_push(&env, "bulk", "True", "Synced").await;
    assert_eq!(msg, "PushSecret synced successfully");
    assert_eq!(
        remote(&format!("{ns}/db/HOST")).await.unwrap().0,
        b"db.internal"
    );
    assert_eq!(
        remote(&format!("{ns}/explicit-user")).await.unwrap().0,
        b"app",
        "explicit data[] wins for its key"
    );
    assert!(
        remote(&format!("{ns}/db/USER")).await.is_none(),
        "dataTo does not push a key data[] pushes"
    );
    let bundle: serde_json::Value =
        serde_json::from_slice(&remote(&format!("{ns}/api")).await.unwrap().0).unwrap();
    assert_eq!(
        bundle,
        json!({"api-key": "pushed-datato-canary", "api-url": "https://api"})
    );
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    let synced = api
        .get("bulk")
        .await
        .unwrap()
        .status
        .unwrap()
        .synced_push_secrets
        .unwrap();
    let keys: Vec<_> = synced["SecretStore/aws"].keys().cloned().collect();
    assert_eq!(
        keys,
        [
            format!("{ns}/api"),
            format!("{ns}/db/HOST"),
            format!("{ns}/explicit-user")
        ]
    );
    assert_eq!(
        synced["SecretStore/aws"][&format!("{ns}/db/HOST")]
            .match_
            .secret_key
            .as_deref(),
        Some("db-host"),
        "the status names the source key each dataTo entry came from"
    );
    esox_tests::assert_no_secret_value(&env, &[], "pushed-datato-canary").await;

    // A rule removed from the spec: what it pushed is deleted, the rest stays.
    api.patch(
        "bulk",
        &PatchParams::default(),
        &Patch::<()>::Json(
            serde_json::from_value(json!([
                {"op": "remove", "path": "/spec/dataTo/1"}
            ]))
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    let sm = sm().await;
    wait_for(Duration::from_secs(60), "the bundle deleted", || async {
        let d = sm
            .describe_secret()
            .secret_id(format!("{ns}/api"))
            .send()
            .await;
        d.map(|d| d.deleted_date().is_some())
            .unwrap_or(true)
            .then_some(())
    })
    .await
    .unwrap();
    let keys = wait_for(
        Duration::from_secs(30),
        "status without the bundle",
        || async {
            let synced = api.get("bulk").await.ok()?.status?.synced_push_secrets?;
            let keys: Vec<String> = synced.get("SecretStore/aws")?.keys().cloned().collect();
            (keys.len() == 2).then_some(keys)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        keys,
        [format!("{ns}/db/HOST"), format!("{ns}/explicit-user")]
    );
    assert_eq!(
        remote(&format!("{ns}/db/HOST")).await.unwrap().0,
        b"db.internal"
    );

    // deletionPolicy Delete: every entry, dataTo's included, goes with the PushSecret.
    api.delete("bulk", &DeleteParams::default()).await.unwrap();
    wait_for(Duration::from_secs(60), "PushSecret gone", || async {
        api.get_opt("bulk").await.unwrap().is_none().then_some(())
    })
    .await
    .unwrap();
    for key in ["db/HOST", "explicit-user"] {
        let gone = sm
            .describe_secret()
            .secret_id(format!("{ns}/{key}"))
            .send()
            .await;
        assert!(
            gone.map(|d| d.deleted_date().is_some()).unwrap_or(true),
            "{key} is deleted (or scheduled for deletion)"
        );
    }
}

/// Fault: the pushed secret is deleted by hand in AWS (marked for deletion, its name held for
/// the recovery window), then the PushSecret is deleted. ESO's delete reads the value first,
/// which AWS refuses for a secret marked for deletion, so ESO's PushSecret stays stuck behind
/// its finalizer for the whole window; esox counts a marked secret as deleted.
#[tokio::test]
async fn a_secret_deleted_by_hand_in_aws_does_not_hold_the_push_secret() {
    let env = TestEnv::new("push-byhand").await;
    let ns = env.ns.clone();
    source_secret(&env, "app", &[("token", "by-hand-canary")]).await;
    env.apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: byhand}}
spec:
  refreshInterval: 1h
  deletionPolicy: Delete
  secretStoreRefs: [{{name: aws}}]
  selector: {{secret: {{name: app}}}}
  data:
  - match: {{secretKey: token, remoteRef: {{remoteKey: {ns}/token}}}}
"#
    ))
    .await
    .unwrap();
    wait_push(&env, "byhand", "True", "Synced").await;
    let sm = sm().await;
    sm.delete_secret()
        .secret_id(format!("{ns}/token"))
        .send()
        .await
        .unwrap();
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    api.delete("byhand", &DeleteParams::default())
        .await
        .unwrap();
    let gone = wait_for(Duration::from_secs(30), "PushSecret gone", || async {
        api.get_opt("byhand").await.unwrap().is_none().then_some(())
    })
    .await;
    if let Err(e) = gone {
        let status = api.get("byhand").await.ok().and_then(|p| p.status);
        panic!("{e}; status: {status:?}");
    }
}

/// ESO's CEL rules on `dataTo` refuse at the apiserver, webhook or not.
#[tokio::test]
async fn data_to_cel_rules_refuse_at_the_apiserver() {
    let env = TestEnv::without_controller("push-cel").await;
    let ps = |data_to: &str| {
        format!(
            r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: cel}}
spec:
  secretStoreRefs: [{{name: a}}]
  selector: {{secret: {{name: s}}}}
  dataTo: [{data_to}]
"#
        )
    };
    for (data_to, message) in [
        (
            "{storeRef: {kind: SecretStore}}",
            "storeRef must specify either name or labelSelector",
        ),
        (
            "{storeRef: {name: a}, remoteKey: x, rewrite: [{regexp: {source: a, target: b}}]}",
            "remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)",
        ),
        (
            "{storeRef: {name: a}, rewrite: [{}]}",
            "exactly one of regexp or transform must be set",
        ),
    ] {
        let err = format!("{:#}", env.apply(&ps(data_to)).await.unwrap_err());
        assert!(err.contains(message), "{data_to}: {err}");
    }
    env.apply(&ps("{storeRef: {name: a}, match: {regexp: '^db-'}}"))
        .await
        .unwrap();
}

/// `examples/push-secrets/templated-dsn.yaml` as written, but for its namespace, its store (a
/// SecretStore on moto in the test namespace instead of the ClusterSecretStore) and a prefix
/// on its remote keys: the rendered connection string (the password URL-escaped by the Go
/// engine) and the `dataTo` keys land in AWS.
#[tokio::test]
async fn the_templated_push_example_works_as_written() {
    let env = TestEnv::new("push-example").await;
    let ns = env.ns.clone();
    source_secret(
        &env,
        "db",
        &[
            ("db-user", "app"),
            ("db-password", "s3cret/+&canary"),
            ("db-host", "db.internal"),
        ],
    )
    .await;
    env.apply(&aws_static_store("aws-secret-store", "SecretsManager", KEY))
        .await
        .unwrap();
    let example = std::fs::read_to_string(
        esox_tests::repo_root().join("examples/push-secrets/templated-dsn.yaml"),
    )
    .unwrap();
    let manifest = example
        .replace("my-app-namespace", &ns)
        .replace("kind: ClusterSecretStore", "kind: SecretStore")
        .replace("prod/", &format!("{ns}/prod/"));
    env.apply(&manifest).await.unwrap();
    let msg = wait_push(&env, "push-db-dsn", "True", "Synced").await;
    assert_eq!(msg, "PushSecret synced successfully");
    assert_eq!(
        remote(&format!("{ns}/prod/app/dsn")).await.unwrap().0,
        b"postgres://app:s3cret%2F%2B%26canary@db.internal:5432/app"
    );
    assert_eq!(
        remote(&format!("{ns}/prod/db/user")).await.unwrap().0,
        b"app"
    );
    assert_eq!(
        remote(&format!("{ns}/prod/db/host")).await.unwrap().0,
        b"db.internal"
    );
    assert!(remote(&format!("{ns}/prod/db/password")).await.is_none());
}
