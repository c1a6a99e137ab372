//! The validating webhook on the real apiserver: a ValidatingWebhookConfiguration (scoped to
//! this test's namespace) points at an esox process on loopback with a certificate the test
//! makes; invalid manifests are refused with ESO's messages, valid ones admitted.

use base64::Engine as _;
use esox_tests::{Options, TestEnv};

fn openssl(dir: &std::path::Path, args: &[&str]) {
    esox_tests::run_ok(dir, "openssl", args);
}

#[tokio::test]
async fn webhook_refuses_invalid_manifests_with_esos_messages() {
    let env = TestEnv::with(
        "webhook",
        Options {
            no_controller: true,
            ..Default::default()
        },
    )
    .await;
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
    let hook = |kind: &str, path: &str, resource: &str| {
        format!(
            "- name: validate.{kind}.{ns}.esox.dev\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 5\n  clientConfig:\n    url: https://127.0.0.1:{port}/validate-external-secrets-io-v1-{path}\n    caBundle: {ca}\n  namespaceSelector:\n    matchLabels: {{kubernetes.io/metadata.name: {ns}}}\n  rules:\n  - apiGroups: [external-secrets.io]\n    apiVersions: ['*']\n    operations: [CREATE, UPDATE]\n    resources: [{resource}]\n",
            ns = env.ns
        )
    };
    let vwc = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: {name}}}\nwebhooks:\n{}{}",
        hook("externalsecret", "externalsecret", "externalsecrets"),
        hook("secretstore", "secretstore", "secretstores")
    );
    env.apply(&vwc).await.unwrap();
    // Wait until the webhook answers (the process starts, the apiserver picks the config up).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let bad_es = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: bad}\nspec:\n  secretStoreRef: {name: store, kind: SecretStore}\n  target: {name: bad, creationPolicy: Merge, deletionPolicy: Delete}\n  data:\n  - {secretKey: a, remoteRef: {key: k}}\n";
    let err = loop {
        match env.apply(bad_es).await {
            Err(e) if format!("{e:#}").contains("denied the request") => break format!("{e:#}"),
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
    };
    assert!(
        err.contains("deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner"),
        "{err}"
    );
    let err = env
        .apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: empty}\nspec:\n  provider: {}\n")
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("store has no provider"), "{err}");
    // Valid manifests are admitted.
    env.apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: store}\nspec:\n  provider:\n    fake:\n      data:\n      - {key: k, value: v}\n---\napiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata: {name: good}\nspec:\n  secretStoreRef: {name: store, kind: SecretStore}\n  data:\n  - {secretKey: a, remoteRef: {key: k}}\n")
        .await
        .unwrap();
    let api: kube::Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = kube::Api::all(env.client.clone());
    api.delete(&name, &Default::default()).await.unwrap();
}
