//! The validating webhook on the real apiserver: a ValidatingWebhookConfiguration (scoped to
//! this test's namespace) points at an esox process on loopback with a certificate the test
//! makes; invalid manifests are refused with ESO's messages, valid ones admitted.

use base64::Engine as _;
use std::time::Duration;

use esox_tests::manifests::fake_store_v1;
use esox_tests::{TestEnv, wait_for};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;

fn openssl(dir: &std::path::Path, args: &[&str]) {
    esox_tests::run_ok(dir, "openssl", args);
}

/// A ValidatingWebhookConfiguration `name` for the ExternalSecrets, SecretStores and
/// PushSecrets of namespace `ns` and the ClusterPushSecrets labelled [`TEST_LABEL`]`: ns` (a
/// namespace selector does not apply to cluster-scoped objects), calling esox on loopback
/// `port`, trusting `ca` (base64 PEM) if given.
fn webhook_config(name: &str, ns: &str, port: u16, ca: Option<&str>) -> String {
    let ca = ca
        .map(|c| format!("    caBundle: {c}\n"))
        .unwrap_or_default();
    let hook = |kind: &str, resource: &str| {
        let version = if kind.contains("push") {
            "v1alpha1"
        } else {
            "v1"
        };
        let selector = if kind.starts_with("cluster") {
            format!("  objectSelector:\n    matchLabels: {{{TEST_LABEL}: {ns}}}\n")
        } else {
            format!(
                "  namespaceSelector:\n    matchLabels: {{kubernetes.io/metadata.name: {ns}}}\n"
            )
        };
        format!(
            "- name: validate.{kind}.{ns}.esox.dev\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 5\n  clientConfig:\n    url: https://127.0.0.1:{port}/validate-external-secrets-io-{version}-{kind}\n{ca}{selector}  rules:\n  - apiGroups: [external-secrets.io]\n    apiVersions: ['*']\n    operations: [CREATE, UPDATE]\n    resources: [{resource}]\n"
        )
    };
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
{}{}{}{}"#,
        hook("externalsecret", "externalsecrets"),
        hook("secretstore", "secretstores"),
        hook("pushsecret", "pushsecrets"),
        hook("clusterpushsecret", "clusterpushsecrets")
    )
}

/// The label that puts a ClusterPushSecret under a test's webhook.
const TEST_LABEL: &str = "esox-test-webhook";

/// Applies an ExternalSecret the webhook must refuse until it does (the process starts, the
/// apiserver picks the configuration up); returns the refusal.
async fn wait_refused(env: &TestEnv) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let bad_es = r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: bad}
spec:
  secretStoreRef: {name: store, kind: SecretStore}
  target: {name: bad, creationPolicy: Merge, deletionPolicy: Delete}
  data:
  - {secretKey: a, remoteRef: {key: k}}
"#;
    loop {
        match env.apply(bad_es).await {
            Err(e) if format!("{e:#}").contains("denied the request") => return format!("{e:#}"),
            other => {
                if let Ok(()) = other {
                    // Admitted before the webhook was up: remove it and try again.
                    let api = env.external_secrets();
                    let _ = api.delete("bad", &Default::default()).await;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the webhook never refused: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

/// Applies `yaml`, which the webhook must refuse with every message of `said`.
async fn refused_saying(env: &TestEnv, yaml: &str, said: &[&str]) {
    let err = format!("{:#}", env.apply(yaml).await.expect_err("refused"));
    for s in said {
        assert!(err.contains(s), "{s}: {err}");
    }
}

#[tokio::test]
async fn webhook_refuses_invalid_manifests_with_esos_messages() {
    let env = TestEnv::without_controller("webhook").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=esox-webhook-ca",
            "-days",
            "1",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _esox = env.spawn_controller(&[
        ("ESOX_WEBHOOK_PORT", &port.to_string()),
        ("ESOX_WEBHOOK_HOST", "127.0.0.1"),
        ("ESOX_WEBHOOK_CERT_DIR", d.to_str().unwrap()),
    ]);
    let ca =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join("ca.crt")).unwrap());
    let name = format!("esox-test-{}", env.ns);
    env.apply(&webhook_config(&name, &env.ns, port, Some(&ca)))
        .await
        .unwrap();
    let err = wait_refused(&env).await;
    assert!(
        err.contains("deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner"),
        "{err}"
    );
    let err = env
        .apply(
            r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: empty}
spec:
  provider: {}
"#,
        )
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains(
            "store error for empty: secret stores must only have exactly one backend specified, found 0"
        ),
        "{err}"
    );
    // A namespaced store may not borrow credentials from another namespace (ESO's rule).
    let err = env
        .apply(r#"
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {name: borrow}
spec:
  provider:
    aws:
      service: SecretsManager
      region: eu-west-1
      auth: {secretRef: {accessKeyIDSecretRef: {name: a, key: k, namespace: kube-system}, secretAccessKeySecretRef: {name: a, key: k}}}
"#)
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("invalid Auth.SecretRef.AccessKeyID: namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore"),
        "{err}"
    );
    // PushSecrets (ESO has no webhook for them): what would fail at every reconcile.
    refused_saying(
        &env,
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {name: bad-push}
spec:
  refreshInterval: 1d
  secretStoreRefs: [{name: store}]
  selector: {secret: {name: src}}
  dataTo:
  - storeRef: {name: elsewhere}
    match: {regexp: "("}
  template:
    engineVersion: v9
"#,
        &[
            "spec.refreshInterval: time: unknown unit \"d\" in duration \"1d\"",
            "dataTo[0]: storeRef \"elsewhere\" not found in secretStoreRefs",
            "dataTo[0]: match failed: failed to compile regexp pattern \"(\"",
            "spec.template: could not apply template: unsupported template engine version: v9",
        ],
    )
    .await;
    // Valid manifests are admitted.
    env.apply(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {name: good-push}
spec:
  secretStoreRefs: [{name: store}]
  selector: {secret: {name: src}}
  dataTo: [{storeRef: {name: store}, match: {regexp: "^db-"}}]
  template: {engineVersion: minijinja, data: {k: "{{ v }}"}}
"#,
    )
    .await
    .unwrap();
    env.apply(&format!(
        "{}---\n{}",
        fake_store_v1("store", &[("k", "v")]),
        r#"apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: good}
spec:
  secretStoreRef: {name: store, kind: SecretStore}
  data:
  - {secretKey: a, remoteRef: {key: k}}
"#
    ))
    .await
    .unwrap();
    // ClusterPushSecrets (v1alpha1, cluster-scoped): the PushSecret rules on
    // spec.pushSecretSpec, and their own fields, with the messages ESO's reconcilers give.
    let ns = &env.ns;
    refused_saying(
        &env,
        &format!(
            r#"
apiVersion: external-secrets.io/v1alpha1
kind: ClusterPushSecret
metadata: {{name: {ns}-bad, labels: {{{TEST_LABEL}: {ns}}}}}
spec:
  refreshTime: 1d
  namespaceSelectors: [{{matchExpressions: [{{key: team, operator: In}}]}}]
  pushSecretSpec:
    secretStoreRefs: [{{kind: SecretStore}}]
    selector: {{secret: {{name: src}}}}
    dataTo: [{{storeRef: {{name: elsewhere}}, match: {{regexp: "^db-"}}}}]
"#
        ),
        &[
            "spec.refreshTime: time: unknown unit \"d\" in duration \"1d\"",
            "spec.namespaceSelectors[0].matchExpressions[0]: for 'in', 'notin' operators, values set can't be empty",
            "refStore Name must be provided",
            "dataTo[0]: storeRef \"elsewhere\" not found in secretStoreRefs",
        ],
    )
    .await;
    let cps: kube::Api<esox::api::ClusterPushSecret> = kube::Api::all(env.client.clone());
    assert!(
        cps.get_opt(&format!("{ns}-bad")).await.unwrap().is_none(),
        "the refused ClusterPushSecret is not stored"
    );
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: ClusterPushSecret
metadata: {{name: {ns}-good, labels: {{{TEST_LABEL}: {ns}}}}}
spec:
  refreshTime: 1h
  namespaceSelectors: [{{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}]
  pushSecretSpec:
    secretStoreRefs: [{{name: store}}]
    selector: {{secret: {{name: src}}}}
    data: [{{match: {{secretKey: v, remoteRef: {{remoteKey: r}}}}}}]
"#
    ))
    .await
    .unwrap();
    cps.delete(&format!("{ns}-good"), &Default::default())
        .await
        .unwrap();
    let api: kube::Api<ValidatingWebhookConfiguration> = kube::Api::all(env.client.clone());
    api.delete(&name, &Default::default()).await.unwrap();
}

/// With `ESOX_WEBHOOK_CERT_SECRET`, esox makes its own CA and serving certificate, stores them
/// in a Secret, fills the configuration's caBundle, and mends both: a deleted Secret is
/// re-issued (a new CA, served without a restart) and an emptied caBundle (what a `helm
/// upgrade` of a chart without one does) is set again.
#[tokio::test]
async fn webhook_provisions_and_mends_its_own_certificate() {
    let env = TestEnv::without_controller("webhook-certs").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("esox-test-{}", env.ns);
    env.apply(&webhook_config(&name, &env.ns, port, None))
        .await
        .unwrap();
    let _esox = env.spawn_controller(&[
        ("ESOX_WEBHOOK_PORT", &port.to_string()),
        ("ESOX_WEBHOOK_HOST", "127.0.0.1"),
        ("ESOX_WEBHOOK_CERT_SECRET", "esox-webhook-tls"),
        ("ESOX_WEBHOOK_CONFIG_NAME", &name),
        ("ESOX_WEBHOOK_DNS_NAMES", "127.0.0.1,esox-webhook.esox.svc"),
        ("POD_NAMESPACE", &env.ns),
    ]);
    let configs: kube::Api<ValidatingWebhookConfiguration> = kube::Api::all(env.client.clone());
    // The Secret holds ESO's keys and the configuration trusts its CA.
    let in_step = |previous: Option<Vec<u8>>| {
        let secrets = env.secrets();
        let configs = configs.clone();
        let name = name.clone();
        async move {
            wait_for(
                Duration::from_secs(30),
                "caBundle = the Secret's ca.crt",
                || {
                    let (secrets, configs, name, previous) = (
                        secrets.clone(),
                        configs.clone(),
                        name.clone(),
                        previous.clone(),
                    );
                    async move {
                        let s = secrets.get_opt("esox-webhook-tls").await.ok().flatten()?;
                        let data = s.data?;
                        let ca = data.get("ca.crt")?.0.clone();
                        if previous.as_ref() == Some(&ca) {
                            return None;
                        }
                        let hooks = configs.get(&name).await.ok()?.webhooks?;
                        hooks
                            .iter()
                            .all(|h| h.client_config.ca_bundle.as_ref().map(|b| &b.0) == Some(&ca))
                            .then(|| (data.keys().cloned().collect::<Vec<_>>(), ca))
                    }
                },
            )
            .await
            .unwrap()
        }
    };
    let (keys, first_ca) = in_step(None).await;
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    let err = wait_refused(&env).await;
    assert!(
        err.contains("deletionPolicy=Delete must not be used"),
        "{err}"
    );

    // A deleted Secret: a new CA and certificate, served without a restart.
    env.secrets()
        .delete("esox-webhook-tls", &Default::default())
        .await
        .unwrap();
    let (_, second_ca) = in_step(Some(first_ca)).await;
    let err = wait_refused(&env).await;
    assert!(
        err.contains("deletionPolicy=Delete must not be used"),
        "{err}"
    );

    // An emptied caBundle is set again.
    let mut vwc = configs.get(&name).await.unwrap();
    for h in vwc.webhooks.iter_mut().flatten() {
        h.client_config.ca_bundle = None;
    }
    configs
        .replace(&name, &Default::default(), &vwc)
        .await
        .unwrap();
    let (_, third_ca) = in_step(None).await;
    assert_eq!(third_ca, second_ca, "the same CA, re-applied");
    let err = wait_refused(&env).await;
    assert!(
        err.contains("deletionPolicy=Delete must not be used"),
        "{err}"
    );
    configs.delete(&name, &Default::default()).await.unwrap();
}
