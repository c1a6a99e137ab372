//! The Kubernetes provider (`spec.provider.kubernetes`) against real apiservers: the suite's
//! (a store in the test's namespace reading Secrets of another namespace, by token and by
//! ServiceAccount) and a second, separate one started for this file (`PrivateStack`) as the
//! "remote cluster" (client certificate and kubeconfig `authRef`). Push, delete and exists
//! are called directly on the provider (`Provider::push_secret`, `delete_secret`,
//! `secret_exists`), and once through a PushSecret, as a user drives them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use esox::api::StoreKind;
use esox::provider::BuildContext;
use esox::provider::kubernetes::push::MANAGED_LABEL;
use esox::provider::{Provider, PushOutcome, PushSecretData, RemoteRef, SourceSecret};
use esox_tests::{PrivateStack, TestEnv, secret_strings, stack_env};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

/// A value that must never reach a log line, an Event or a status.
const CANARY: &str = "kprov-canary-5d1e8b27";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The suite stack's CA (PEM).
fn local_ca() -> String {
    let env = stack_env().unwrap();
    std::fs::read_to_string(format!("{}/pki/ca.crt", env["ESOX_STACK_DIR"])).unwrap()
}

fn local_url() -> String {
    stack_env().unwrap()["ESOX_APISERVER_URL"].clone()
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.into());
    api.create(&PostParams::default(), &ns).await.unwrap();
}

async fn put_secret(
    client: &Client,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
    labels: &[(&str, &str)],
) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    api.create(&PostParams::default(), &s).await.unwrap();
}

async fn service_account(client: &Client, ns: &str, name: &str) {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.into());
    api.create(&PostParams::default(), &sa).await.unwrap();
}

/// A Role on Secrets of `ns` with `verbs`, bound to `subject`.
async fn grant(client: &Client, ns: &str, name: &str, verbs: &[&str], subject: Subject) {
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let role = Role {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["secrets".into()]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }]),
    };
    roles.create(&PostParams::default(), &role).await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let binding = RoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![subject]),
    };
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

fn sa_subject(ns: &str, name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
        api_group: None,
    }
}

/// A token for a ServiceAccount (TokenRequest, one hour).
async fn token_for(client: &Client, ns: &str, name: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let req = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer: k8s_openapi::api::authentication::v1::TokenRequest = api
        .create_subresource("token", name, &PostParams::default(), &req)
        .await
        .unwrap();
    answer.status.unwrap().token
}

/// TokenRequests answered for ServiceAccount `ns/name` (the stack audits them).
fn token_requests(ns: &str, name: &str) -> usize {
    let env = stack_env().unwrap();
    let text = std::fs::read_to_string(&env["ESOX_AUDIT_LOG"]).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["objectRef"]["resource"] == "serviceaccounts"
                && e["objectRef"]["subresource"] == "token"
                && e["objectRef"]["namespace"] == ns
                && e["objectRef"]["name"] == name
                && e["responseStatus"]["code"] == 201
        })
        .count()
}

/// The value of a metric sample (0 when absent).
fn sample(metrics: &str, line_start: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// SecretStore `remote` in the test's namespace reading namespace `remote` of the suite's
/// apiserver with the token of ServiceAccount `reader`, allowed to get and list there.
async fn token_store(env: &TestEnv, remote: &str) {
    service_account(&env.client, &env.ns, "reader").await;
    grant(
        &env.client,
        remote,
        "reader",
        &["get", "list"],
        sa_subject(&env.ns, "reader"),
    )
    .await;
    let token = token_for(&env.client, &env.ns, "reader").await;
    put_secret(
        &env.client,
        &env.ns,
        "remote-token",
        &[("token", &token)],
        &[],
    )
    .await;
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: remote}}
spec:
  provider:
    kubernetes:
      remoteNamespace: {remote}
      server: {{url: {url}, caBundle: {ca}}}
      auth: {{token: {{bearerToken: {{name: remote-token, key: token}}}}}}
"#,
        url = local_url(),
        ca = b64(local_ca().as_bytes()),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn token_auth_reads_another_namespace_in_every_form() {
    let env = TestEnv::new("kprov-token").await;
    let remote = format!("{}-remote", env.ns);
    namespace(&env.client, &remote).await;
    put_secret(
        &env.client,
        &remote,
        "db",
        &[
            ("username", "admin"),
            ("password", CANARY),
            ("config", r#"{"db":{"host":"db.example","port":5432}}"#),
            ("file.png", "png-bytes"),
        ],
        &[("team", &env.ns)],
    )
    .await;
    put_secret(
        &env.client,
        &remote,
        "other",
        &[("k", "v")],
        &[("team", &env.ns)],
    )
    .await;
    put_secret(&env.client, &remote, "unrelated", &[("x", "y")], &[]).await;
    token_store(&env, &remote).await;
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: every-form}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: remote, kind: SecretStore}}
  target: {{name: every-form}}
  dataFrom:
  - extract: {{key: other}}
  - find: {{name: {{regexp: "^d.$"}}}}
  - find: {{tags: {{team: {ns}}}}}
  data:
  - {{secretKey: password, remoteRef: {{key: db, property: password}}}}
  - {{secretKey: host, remoteRef: {{key: db, property: config.db.host}}}}
  - {{secretKey: port, remoteRef: {{key: db, property: config.db.port}}}}
  - {{secretKey: png, remoteRef: {{key: db, property: file.png}}}}
  - {{secretKey: whole, remoteRef: {{key: db}}}}
  - {{secretKey: team, remoteRef: {{key: db, metadataPolicy: Fetch, property: labels.team}}}}
"#,
        ns = env.ns,
    ))
    .await
    .unwrap();
    let (_, reason, message) = env.wait_store("remote", |s, _, _| s == "True").await;
    assert_eq!(reason, "Valid", "{message}");
    let secret = env.wait_value("every-form", "host", "db.example").await;
    let data = secret_strings(&secret);
    assert_eq!(data["password"], CANARY);
    assert_eq!(data["port"], "5432");
    assert_eq!(data["png"], "png-bytes");
    assert_eq!(data["team"], env.ns);
    let whole = format!(
        r#"{{"config":"{{\"db\":{{\"host\":\"db.example\",\"port\":5432}}}}","file.png":"png-bytes","password":"{CANARY}","username":"admin"}}"#
    );
    assert_eq!(data["whole"], whole);
    // extract: the keys of `other`; find by name (`db`) and by tags (`db`, `other`): each
    // Secret's data as JSON under its name; `unrelated` matches neither.
    assert_eq!(data["k"], "v");
    assert_eq!(data["db"], whole);
    assert_eq!(data["other"], r#"{"k":"v"}"#);
    assert!(!data.contains_key("unrelated"), "{data:?}");
    // The five data[] entries reading `db` and the extract cost one read each of the data,
    // the metadata and `other`; each find one list.
    let metrics = env.metrics();
    let gets = sample(
        &metrics,
        r#"externalsecret_provider_api_calls_count_total{provider="Kubernetes",call="GetSecret",status="success"}"#,
    );
    let lists = sample(
        &metrics,
        r#"externalsecret_provider_api_calls_count_total{provider="Kubernetes",call="ListSecrets",status="success"}"#,
    );
    assert!((3.0..=3.0).contains(&gets), "GetSecret {gets}\n{metrics}");
    assert!(
        (2.0..=2.0).contains(&lists),
        "ListSecrets {lists}\n{metrics}"
    );
    // No secret value anywhere a user or an operator looks.
    let log = std::env::temp_dir().join(format!("kprov-token-{}.log", std::process::id()));
    std::fs::write(&log, esox_tests::logs()).unwrap();
    esox_tests::assert_no_secret_value(&env, &[&log], CANARY).await;
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn service_account_auth_and_a_deleted_remote_secret_removes_its_key() {
    let env = TestEnv::new("kprov-sa").await;
    let remote = format!("{}-remote", env.ns);
    namespace(&env.client, &remote).await;
    put_secret(&env.client, &remote, "gone", &[("a", "1")], &[]).await;
    put_secret(&env.client, &remote, "stays", &[("b", "2")], &[]).await;
    service_account(&env.client, &env.ns, "sa-reader").await;
    grant(
        &env.client,
        &remote,
        "sa-reader",
        &["get", "list"],
        sa_subject(&env.ns, "sa-reader"),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("remote-ca".into());
    cm.data = Some(BTreeMap::from([("ca.crt".to_string(), local_ca())]));
    cms.create(&PostParams::default(), &cm).await.unwrap();
    // v1beta1, as ESO still serves it.
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {{name: by-sa}}
spec:
  provider:
    kubernetes:
      remoteNamespace: {remote}
      server:
        url: {url}
        caProvider: {{type: ConfigMap, name: remote-ca, key: ca.crt}}
      auth:
        serviceAccount: {{name: sa-reader}}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {{name: two-keys}}
spec:
  refreshInterval: 2s
  secretStoreRef: {{name: by-sa, kind: SecretStore}}
  target: {{name: two-keys, deletionPolicy: Delete}}
  data:
  - {{secretKey: a, remoteRef: {{key: gone, property: a}}}}
  - {{secretKey: b, remoteRef: {{key: stays, property: b}}}}
"#,
        url = local_url(),
    ))
    .await
    .unwrap();
    env.wait_store("by-sa", |s, _, _| s == "True").await;
    let secret = env.wait_value("two-keys", "a", "1").await;
    assert_eq!(secret_strings(&secret)["b"], "2");
    let remote_secrets: Api<Secret> = Api::namespaced(env.client.clone(), &remote);
    remote_secrets
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    // A missing remote Secret is ESO's NoSecretErr here, so deletionPolicy: Delete drops its
    // key (ESO reports a raw API error for data[] and keeps the stale key).
    let secret = env
        .wait_secret("two-keys", "key a removed", |s| {
            let d = secret_strings(s);
            !d.contains_key("a") && d.get("b").map(String::as_str) == Some("2")
        })
        .await;
    assert_eq!(secret_strings(&secret).len(), 1);
    // Several refreshes later (every 2 s), the store validation and the ExternalSecret still
    // share the one token minted for the ServiceAccount.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(token_requests(&env.ns, "sa-reader"), 1);
}

/// A DER certificate made by openssl, as a keystore or a cert-manager Secret holds it.
fn der_certificate() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.der"));
    esox_tests::run_ok(
        dir.path(),
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=kprov-binary",
            "-days",
            "1",
            "-outform",
            "DER",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    std::fs::read(cert).unwrap()
}

#[tokio::test]
async fn binary_values_arrive_byte_for_byte() {
    let env = TestEnv::new("kprov-binary").await;
    let remote = format!("{}-remote", env.ns);
    namespace(&env.client, &remote).await;
    // Random bytes that are not UTF-8 (0xff, a NUL, a truncated sequence) and a DER
    // certificate: ESO's GetSecret with a property and GetSecretMap return them verbatim.
    let mut random = vec![0xff, 0x00, 0xfe, 0xe2, 0x82, 0x80, 0xc3, b'A'];
    random.extend((0..256).map(|_| rand::random::<u8>()));
    let der = der_certificate();
    assert!(
        std::str::from_utf8(&der).is_err(),
        "a DER certificate is binary"
    );
    let api: Api<Secret> = Api::namespaced(env.client.clone(), &remote);
    let mut s = Secret::default();
    s.metadata.name = Some("binary".into());
    s.data = Some(BTreeMap::from([
        ("random.bin".to_string(), ByteString(random.clone())),
        ("tls.der".to_string(), ByteString(der.clone())),
    ]));
    api.create(&PostParams::default(), &s).await.unwrap();
    token_store(&env, &remote).await;
    env.apply(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: by-property}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: remote, kind: SecretStore}
  target: {name: by-property}
  data:
  - {secretKey: random, remoteRef: {key: binary, property: random.bin}}
  - {secretKey: cert, remoteRef: {key: binary, property: tls.der}}
  - {secretKey: whole, remoteRef: {key: binary}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: by-extract}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: remote, kind: SecretStore}
  target: {name: by-extract}
  dataFrom:
  - extract: {key: binary}
"#,
    )
    .await
    .unwrap();
    let bytes = |s: &Secret, k: &str| s.data.as_ref().and_then(|d| d.get(k)).map(|v| v.0.clone());
    let by_property = env
        .wait_secret("by-property", "the Secret synced", |s| {
            bytes(s, "cert").is_some()
        })
        .await;
    assert!(
        bytes(&by_property, "random") == Some(random.clone()),
        "random bytes changed"
    );
    assert!(
        bytes(&by_property, "cert") == Some(der.clone()),
        "the certificate changed"
    );
    // Without a property ESO returns the Secret's data as JSON, each value Go's string(v):
    // a byte that is not UTF-8 is written as the escape \ufffd.
    let whole = String::from_utf8(bytes(&by_property, "whole").unwrap()).unwrap();
    assert!(
        whole.starts_with(r#"{"random.bin":"\ufffd\u0000\ufffd₀\ufffdA"#),
        "{}",
        whole.chars().take(40).collect::<String>()
    );
    let doc: BTreeMap<String, String> = serde_json::from_str(&whole).unwrap();
    assert_eq!(doc.keys().collect::<Vec<_>>(), ["random.bin", "tls.der"]);
    let by_extract = env
        .wait_secret("by-extract", "the Secret synced", |s| {
            bytes(s, "tls.der").is_some()
        })
        .await;
    assert!(
        bytes(&by_extract, "random.bin") == Some(random),
        "random bytes changed"
    );
    assert!(
        bytes(&by_extract, "tls.der") == Some(der),
        "the certificate changed"
    );
    assert_eq!(by_extract.data.as_ref().unwrap().len(), 2);
}

#[tokio::test]
async fn a_store_without_rights_says_who_may_not_read_where() {
    let env = TestEnv::new("kprov-denied").await;
    let remote = format!("{}-remote", env.ns);
    namespace(&env.client, &remote).await;
    service_account(&env.client, &env.ns, "nobody").await;
    // May list but not get: ESO's validation asks for get.
    grant(
        &env.client,
        &remote,
        "list-only",
        &["list"],
        sa_subject(&env.ns, "nobody"),
    )
    .await;
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: denied}}
spec:
  provider:
    kubernetes:
      remoteNamespace: {remote}
      server: {{url: {url}, caBundle: {ca}}}
      auth:
        serviceAccount: {{name: nobody}}
"#,
        url = local_url(),
        ca = b64(local_ca().as_bytes()),
    ))
    .await
    .unwrap();
    let (_, reason, message) = env
        .wait_store("denied", |s, _, m| s == "False" && !m.is_empty())
        .await;
    assert_eq!(reason, "ValidationFailed");
    assert_eq!(
        message,
        format!(
            "unable to validate store: access denied: client is not allowed to get secrets in namespace {remote:?}"
        )
    );
    // A read says which user may not do what, where: the apiserver's own words.
    let metrics = Arc::new(esox::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let spec: esox::api::KubernetesProvider = serde_json::from_value(serde_json::json!({
        "remoteNamespace": remote,
        "server": {"url": local_url(), "caBundle": b64(local_ca().as_bytes())},
        "auth": {"serviceAccount": {"name": "nobody"}}
    }))
    .unwrap();
    let ctx = BuildContext::in_cluster(&metrics, &env.client, StoreKind::SecretStore, &env.ns);
    let (store, _) = esox::provider::kubernetes::connect_store(&spec, &ctx)
        .await
        .unwrap();
    let err = esox::provider::Provider::get(
        &store,
        &esox::provider::GetRequest::new("db", None, Default::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "access denied: get secret {remote}/db: secrets \"db\" is forbidden: User \"system:serviceaccount:{ns}:nobody\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{remote}\"",
            ns = env.ns
        )
    );
}

/// A client certificate for `user` signed by the stack in `dir`'s CA: (cert PEM, key PEM).
fn client_certificate(dir: &std::path::Path, user: &str) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.pem");
    let csr = tmp.path().join("r.csr");
    let crt = tmp.path().join("c.pem");
    let ext = tmp.path().join("ext");
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let subject = format!("/CN={user}/O=esox-remote");
    run(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        &subject,
        "-out",
        csr.to_str().unwrap(),
    ]);
    let serial = format!("{}", rand::random::<u32>());
    run(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        dir.join("pki/ca.crt").to_str().unwrap(),
        "-CAkey",
        dir.join("pki/ca.key").to_str().unwrap(),
        "-set_serial",
        &serial,
        "-days",
        "1",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    (
        std::fs::read_to_string(crt).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

#[tokio::test]
async fn a_second_cluster_by_client_certificate_and_by_kubeconfig() {
    let env = TestEnv::new("kprov-remote").await;
    let dir = std::env::temp_dir().join(format!("esox-kprov-remote-{}", std::process::id()));
    let stack = PrivateStack::up(&dir);
    let remote_client = stack.client().await;
    namespace(&remote_client, "payments").await;
    put_secret(
        &remote_client,
        "payments",
        "api",
        &[("key", "from-the-other-cluster")],
        &[],
    )
    .await;
    grant(
        &remote_client,
        "payments",
        "esox-remote",
        &["get", "list"],
        Subject {
            kind: "User".into(),
            name: "esox-remote".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        },
    )
    .await;
    let (cert, key) = client_certificate(&dir, "esox-remote");
    let remote_ca = std::fs::read_to_string(dir.join("pki/ca.crt")).unwrap();
    let remote_url = stack.env["ESOX_APISERVER_URL"].clone();
    put_secret(
        &env.client,
        &env.ns,
        "remote-cert",
        &[("tls.crt", &cert), ("tls.key", &key)],
        &[],
    )
    .await;
    let kubeconfig = format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: remote
  cluster:
    server: {remote_url}
    certificate-authority-data: {ca}
users:
- name: esox-remote
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: remote
  context: {{cluster: remote, user: esox-remote, namespace: payments}}
current-context: remote
"#,
        ca = b64(remote_ca.as_bytes()),
        cert = b64(cert.as_bytes()),
        key = b64(key.as_bytes()),
    );
    put_secret(
        &env.client,
        &env.ns,
        "remote-kubeconfig",
        &[("config", &kubeconfig)],
        &[],
    )
    .await;
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: by-cert}}
spec:
  provider:
    kubernetes:
      remoteNamespace: payments
      server: {{url: {remote_url}, caBundle: {ca}}}
      auth:
        cert:
          clientCert: {{name: remote-cert, key: tls.crt}}
          clientKey: {{name: remote-cert, key: tls.key}}
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: by-kubeconfig}}
spec:
  provider:
    kubernetes:
      remoteNamespace: payments
      authRef: {{name: remote-kubeconfig, key: config}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: via-cert}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: by-cert, kind: SecretStore}}
  data:
  - {{secretKey: key, remoteRef: {{key: api, property: key}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: via-kubeconfig}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: by-kubeconfig, kind: SecretStore}}
  dataFrom:
  - extract: {{key: api}}
"#,
        ca = b64(remote_ca.as_bytes()),
    ))
    .await
    .unwrap();
    env.wait_store("by-cert", |s, _, _| s == "True").await;
    env.wait_store("by-kubeconfig", |s, _, _| s == "True").await;
    env.wait_value("via-cert", "key", "from-the-other-cluster")
        .await;
    env.wait_value("via-kubeconfig", "key", "from-the-other-cluster")
        .await;
    // The local apiserver has no namespace "payments": the reads went to the other cluster.
    let local: Api<Namespace> = Api::all(env.client.clone());
    assert!(local.get_opt("payments").await.unwrap().is_none());
    stack.run(&["down"]);
}

#[tokio::test]
async fn push_delete_and_exists_mark_what_they_manage_and_honour_remote_namespace() {
    let env = TestEnv::without_controller("kprov-push").await;
    let first = format!("{}-a", env.ns);
    let second = format!("{}-b", env.ns);
    namespace(&env.client, &first).await;
    namespace(&env.client, &second).await;
    service_account(&env.client, &env.ns, "pusher").await;
    for ns in [&first, &second] {
        grant(
            &env.client,
            ns,
            "pusher",
            &["get", "list", "create", "update", "delete"],
            sa_subject(&env.ns, "pusher"),
        )
        .await;
    }
    put_secret(&env.client, &first, "foreign", &[("k", "theirs")], &[]).await;
    let metrics = Arc::new(esox::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let spec: esox::api::KubernetesProvider = serde_json::from_value(serde_json::json!({
        "remoteNamespace": first,
        "server": {"url": local_url(), "caBundle": b64(local_ca().as_bytes())},
        "auth": {"serviceAccount": {"name": "pusher", "namespace": env.ns}}
    }))
    .unwrap();
    let ctx = BuildContext::in_cluster(
        &metrics,
        &env.client,
        StoreKind::ClusterSecretStore,
        &env.ns,
    );
    let (store, _) = esox::provider::kubernetes::connect_store(&spec, &ctx)
        .await
        .unwrap();
    let source = SourceSecret {
        type_: "Opaque".into(),
        data: [
            ("tls.crt".to_string(), "CERT".into()),
            ("tls.key".to_string(), CANARY.into()),
        ]
        .into(),
        ..Default::default()
    };
    let entry = |remote_key: &str, property: Option<&str>, ns: Option<&str>| PushSecretData {
        secret_key: None,
        remote: RemoteRef {
            remote_key: remote_key.into(),
            property: property.map(str::to_string),
        },
        metadata: ns.map(|ns| {
            serde_json::json!({
                "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
                "kind": "PushSecretMetadata",
                "spec": {"remoteNamespace": ns}
            })
        }),
    };
    let in_first: Api<Secret> = Api::namespaced(env.client.clone(), &first);
    let in_second: Api<Secret> = Api::namespaced(env.client.clone(), &second);

    // A new Secret is created, marked, with the source's type and data; pushing it again
    // writes nothing.
    let pushed = store
        .push_secret(&source, &entry("tls", None, None))
        .await
        .unwrap();
    assert_eq!(pushed, PushOutcome::Written);
    let made = in_first.get("tls").await.unwrap();
    assert_eq!(made.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        made.metadata.labels.as_ref().unwrap()[MANAGED_LABEL],
        "external-secrets"
    );
    assert_eq!(secret_strings(&made)["tls.key"], CANARY);
    assert_eq!(
        store
            .push_secret(&source, &entry("tls", None, None))
            .await
            .unwrap(),
        PushOutcome::Unchanged
    );
    assert_eq!(
        in_first.get("tls").await.unwrap().metadata.resource_version,
        made.metadata.resource_version
    );

    // A Secret esox did not make is neither overwritten nor deleted.
    let err = store
        .push_secret(&source, &entry("foreign", None, None))
        .await
        .unwrap_err();
    match &err {
        esox::provider::ProviderError::NotManaged { key } => {
            assert_eq!(key, &format!("{first}/foreign"))
        }
        other => panic!("expected NotManaged, got {other:?}"),
    }
    assert!(!err.to_string().contains(CANARY));
    store
        .delete_secret(&entry("foreign", None, None))
        .await
        .unwrap();
    assert_eq!(
        secret_strings(&in_first.get("foreign").await.unwrap())["k"],
        "theirs"
    );

    // remoteNamespace (a ClusterSecretStore's override) for push, exists and delete alike.
    let elsewhere = entry("tls", Some("cert"), Some(&second));
    store.push_secret(&source, &elsewhere).await.unwrap();
    assert!(store.secret_exists(&elsewhere).await.unwrap());
    assert!(in_second.get_opt("tls").await.unwrap().is_some());
    store.delete_secret(&elsewhere).await.unwrap();
    assert!(!store.secret_exists(&elsewhere).await.unwrap());
    assert!(in_second.get_opt("tls").await.unwrap().is_none());
    // The store's own namespace kept its Secret.
    assert!(
        store
            .secret_exists(&entry("tls", None, None))
            .await
            .unwrap()
    );

    // A property delete removes that key and keeps the others.
    store
        .delete_secret(&entry("tls", Some("tls.crt"), None))
        .await
        .unwrap();
    let kept = in_first.get("tls").await.unwrap();
    assert_eq!(
        secret_strings(&kept).into_keys().collect::<Vec<_>>(),
        ["tls.key"]
    );
    assert!(
        !store
            .secret_exists(&entry("tls", Some("tls.crt"), None))
            .await
            .unwrap()
    );
    store
        .delete_secret(&entry("tls", None, None))
        .await
        .unwrap();
    assert!(in_first.get_opt("tls").await.unwrap().is_none());
    // Deleting what is not there succeeds.
    store
        .delete_secret(&entry("tls", None, None))
        .await
        .unwrap();
    // The remote Secret takes the source's type.
    let tls = SourceSecret {
        type_: "kubernetes.io/tls".into(),
        ..source.clone()
    };
    store
        .push_secret(&tls, &entry("typed", None, None))
        .await
        .unwrap();
    assert_eq!(
        in_first.get("typed").await.unwrap().type_.as_deref(),
        Some("kubernetes.io/tls")
    );
}

/// A PushSecret to a Kubernetes store (another namespace, by ServiceAccount): the remote
/// Secret is the source byte for byte with its type and esox's mark; an unchanged source is not
/// written again; a Secret esox did not make is refused with ESO's status and event and kept;
/// deleting the PushSecret (deletionPolicy Delete) deletes what it pushed, only that.
#[tokio::test]
async fn a_push_secret_to_a_kubernetes_store() {
    let env = TestEnv::new("kprov-ps").await;
    let remote = format!("{}-remote", env.ns);
    namespace(&env.client, &remote).await;
    service_account(&env.client, &env.ns, "pusher").await;
    grant(
        &env.client,
        &remote,
        "pusher",
        &["get", "list", "create", "update", "delete"],
        sa_subject(&env.ns, "pusher"),
    )
    .await;
    put_secret(&env.client, &remote, "foreign", &[("k", "theirs")], &[]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("remote-ca".into());
    cm.data = Some(BTreeMap::from([("ca.crt".to_string(), local_ca())]));
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let crt = b"-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n".to_vec();
    let mut src = Secret::default();
    src.metadata.name = Some("app-tls".into());
    src.type_ = Some("kubernetes.io/tls".into());
    src.data = Some(BTreeMap::from([
        ("tls.crt".to_string(), ByteString(crt.clone())),
        (
            "tls.key".to_string(),
            ByteString(CANARY.as_bytes().to_vec()),
        ),
    ]));
    env.secrets()
        .create(&PostParams::default(), &src)
        .await
        .unwrap();
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: k8s}}
spec:
  provider:
    kubernetes:
      remoteNamespace: {remote}
      server:
        url: {url}
        caProvider: {{type: ConfigMap, name: remote-ca, key: ca.crt}}
      auth:
        serviceAccount: {{name: pusher}}
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: push}}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{{name: k8s}}]
  selector: {{secret: {{name: app-tls}}}}
  data:
  - match: {{remoteRef: {{remoteKey: app-tls}}}}
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: takeover}}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{{name: k8s}}]
  selector: {{secret: {{name: app-tls}}}}
  data:
  - match: {{secretKey: tls.crt, remoteRef: {{remoteKey: foreign, property: k}}}}
"#,
        url = local_url(),
    ))
    .await
    .unwrap();
    let remote_secrets: Api<Secret> = Api::namespaced(env.client.clone(), &remote);
    let pushed = esox_tests::wait_for(Duration::from_secs(60), "pushed Secret", || async {
        remote_secrets.get_opt("app-tls").await.ok().flatten()
    })
    .await
    .unwrap();
    assert_eq!(pushed.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = pushed.data.clone().unwrap();
    assert_eq!(data["tls.crt"].0, crt, "byte for byte");
    assert_eq!(data["tls.key"].0, CANARY.as_bytes());
    assert_eq!(
        pushed.metadata.labels.as_ref().unwrap()[MANAGED_LABEL],
        "external-secrets"
    );
    let pss: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    let condition = |name: &'static str| {
        let pss = pss.clone();
        async move {
            let c = pss
                .get(name)
                .await
                .ok()?
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
    };
    let (status, reason, message) =
        esox_tests::wait_for(Duration::from_secs(60), "takeover refused", || async {
            condition("takeover").await.filter(|c| c.1 == "Errored")
        })
        .await
        .unwrap();
    assert_eq!(
        (status.as_str(), message.as_str()),
        (
            "False",
            "set secret failed: could not write remote ref foreign to target secretstore k8s: secret not managed by external-secrets"
        ),
        "{reason}"
    );
    assert!(
        env.events_for("takeover")
            .await
            .iter()
            .any(|e| e.starts_with("Errored: ")),
    );
    assert_eq!(
        secret_strings(&remote_secrets.get("foreign").await.unwrap())["k"],
        "theirs"
    );
    // Synced, and a re-run with nothing changed leaves the remote Secret as it was.
    esox_tests::wait_for(Duration::from_secs(30), "push synced", || async {
        condition("push").await.filter(|c| c.1 == "Synced")
    })
    .await
    .unwrap();
    let synced_version = |p: esox::api::PushSecret| p.status?.synced_resource_version;
    let before = synced_version(pss.get("push").await.unwrap());
    pss.patch(
        "push",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {"again": "1"}}})),
    )
    .await
    .unwrap();
    // The re-run is done when the status records the new labels' version.
    esox_tests::wait_for(Duration::from_secs(30), "push re-run", || async {
        let now = synced_version(pss.get("push").await.ok()?);
        (now.is_some() && now != before).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        remote_secrets
            .get("app-tls")
            .await
            .unwrap()
            .metadata
            .resource_version,
        pushed.metadata.resource_version,
        "no write of an unchanged Secret"
    );
    // Deleting both PushSecrets: the pushed Secret goes, the foreign one stays.
    for name in ["push", "takeover"] {
        pss.delete(name, &DeleteParams::default()).await.unwrap();
    }
    esox_tests::wait_for(Duration::from_secs(60), "PushSecrets gone", || async {
        pss.list(&Default::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
            .map(|_| ())
    })
    .await
    .unwrap();
    assert!(remote_secrets.get_opt("app-tls").await.unwrap().is_none());
    assert!(remote_secrets.get_opt("foreign").await.unwrap().is_some());
    esox_tests::assert_no_secret_value(&env, &[], CANARY).await;
}
