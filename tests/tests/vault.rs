//! The Vault provider against a real OpenBao server (`bao` 2.7.2 in dev mode, started by
//! `scripts/stack.sh`) and the real apiserver (TokenRequest, TokenReview for Kubernetes
//! auth).
//!
//! bao's mounts, auth methods and roles are global: every test names its own after its
//! namespace. The outage test restarts bao (dev storage is in memory: everything is gone
//! after), so it takes [`BAO`] for writing and the others for reading.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use esox::provider::vault::http::{Http, TlsMaterial};
use esox_tests::{TestEnv, secret_strings, stack_env, wait_for};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// Tests that need bao as it is hold this for reading; the outage test, which restarts it,
/// for writing.
static BAO: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// bao's API with the root token.
struct Bao {
    http: Http,
    token: String,
    url: String,
}

impl Bao {
    fn new() -> Bao {
        let env = stack_env().expect("the stack's env file (scripts/stack.sh up)");
        let url = env
            .get("ESOX_BAO_URL")
            .cloned()
            .expect("ESOX_BAO_URL in the stack's env file: restart the stack (scripts/stack.sh down && up)");
        Bao {
            http: Http::new(&url, &TlsMaterial::default(), vec![]).unwrap(),
            token: env["ESOX_BAO_TOKEN"].clone(),
            url,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let reply = self
            .http
            .call(method, path, &[], Some(&self.token), None, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (reply.status, reply.body)
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, reply) = self.call(method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status} {reply}"
        );
        reply
    }

    /// A KV v2 secret at `mount/key`.
    async fn put(&self, mount: &str, key: &str, data: Value) {
        self.ok("POST", &format!("{mount}/data/{key}"), json!({ "data": data }))
            .await;
    }

    async fn policy(&self, name: &str, hcl: &str) {
        self.ok(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": hcl }),
        )
        .await;
    }

    async fn enable_auth(&self, path: &str, kind: &str) {
        self.ok("POST", &format!("sys/auth/{path}"), json!({ "type": kind }))
            .await;
    }
}

fn stack_file(name: &str) -> String {
    let env = stack_env().unwrap();
    std::fs::read_to_string(format!("{}/{name}", env["ESOX_STACK_DIR"])).unwrap()
}

/// The audit log's entries (JSON lines).
fn audit() -> Vec<Value> {
    let env = stack_env().unwrap();
    let text = std::fs::read_to_string(&env["ESOX_BAO_AUDIT_LOG"]).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Successful answers to `path` for tokens of ServiceAccounts in `namespace` (logins and
/// renewals carry the token's metadata, in clear in the audit log).
fn answered(path: &str, namespace: &str) -> usize {
    audit()
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == path
                && e["auth"]["metadata"]["service_account_namespace"] == namespace
                && e["error"].as_str().unwrap_or_default().is_empty()
        })
        .count()
}

async fn service_account(env: &TestEnv, name: &str) {
    let api: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.into());
    api.create(&PostParams::default(), &sa).await.unwrap();
}

/// A policy reading (and listing) everything under `secret/<prefix>/`.
async fn read_policy(bao: &Bao, name: &str, prefix: &str) {
    bao.policy(
        name,
        &format!(
            r#"path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}
path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "list"] }}"#
        ),
    )
    .await;
}

/// A Kubernetes-auth role at the stack's `kubernetes` mount for ServiceAccount `sa` of
/// `namespace`.
async fn kubernetes_role(bao: &Bao, role: &str, sa: &str, namespace: &str, policy: &str, ttl: &str) {
    bao.ok(
        "POST",
        &format!("auth/kubernetes/role/{role}"),
        json!({
            "bound_service_account_names": [sa],
            "bound_service_account_namespaces": [namespace],
            "token_policies": [policy],
            "token_ttl": ttl,
        }),
    )
    .await;
}

/// The seeds' `vault-backend` SecretStore as written (Kubernetes auth at `kubernetes`, role
/// `my-role`, ServiceAccount `my-app-sa`), only its server pointed at bao and its namespace
/// the test's; and an ExternalSecret reading through it, as the seeds' does from AWS.
#[tokio::test]
async fn seeds_vault_backend_store_with_kubernetes_auth() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-seed").await;
    let bao = Bao::new();
    service_account(&env, "my-app-sa").await;
    read_policy(&bao, &format!("seed-{}", env.ns), &env.ns).await;
    kubernetes_role(&bao, "my-role", "my-app-sa", &env.ns, &format!("seed-{}", env.ns), "1h").await;
    bao.put("secret", &format!("{}/production/api-key", env.ns), json!({"api_token_value": "tok-vault"}))
        .await;
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: vault-backend
spec:
  provider:
    vault:
      server: "{url}"
      path: "secret"
      version: "v2"
      auth:
        kubernetes:
          mountPath: "kubernetes"
          role: "my-role"
          serviceAccountRef:
            name: "my-app-sa"
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: api-key-sync
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: vault-backend
    kind: SecretStore
  target:
    name: api-credentials
    creationPolicy: Owner
  data:
  - secretKey: API_TOKEN
    remoteRef:
      key: {ns}/production/api-key
      property: api_token_value
"#,
        url = bao.url,
        ns = env.ns
    ))
    .await
    .unwrap();
    env.wait_value("api-credentials", "API_TOKEN", "tok-vault").await;
    env.wait_ready("api-key-sync", "True", "SecretSynced").await;
    let (_, _, message) = env
        .wait_store("vault-backend", |s, _, _| s == "True")
        .await;
    assert!(
        message.contains(&format!("kubernetes-{}-my-app-sa", env.ns)),
        "{message}"
    );

    // A wrong role and a path the policy does not allow: precise messages.
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: wrong-role
spec:
  provider:
    vault:
      server: "{url}"
      path: secret
      auth:
        kubernetes:
          role: no-such-role
          serviceAccountRef:
            name: my-app-sa
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: not-allowed
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: vault-backend
  data:
  - secretKey: x
    remoteRef:
      key: elsewhere/x
"#,
        url = bao.url
    ))
    .await
    .unwrap();
    let (_, reason, message) = env
        .wait_store("wrong-role", |s, _, _| s == "False")
        .await;
    assert_eq!(reason, "ValidationFailed");
    assert!(
        message.contains("login refused: PUT auth/kubernetes/login: HTTP 400")
            && message.contains("no-such-role"),
        "{message}"
    );
    let message = env.wait_ready("not-allowed", "False", "SecretSyncedError").await;
    assert!(
        message.contains("GET secret/data/elsewhere/x: permission denied (HTTP 403)")
            && message.contains("do not allow this"),
        "{message}"
    );
}

/// A store reading with a token from a Secret (the root token here).
fn token_store(name: &str, url: &str, path: &str, version: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: {name}
spec:
  provider:
    vault:
      server: "{url}"
      path: {path}
      version: {version}
      auth:
        tokenSecretRef:
          name: bao-token
          key: token
"#
    )
}

fn token_secret(token: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: bao-token
stringData:
  token: {token}
"#
    )
}

/// ESO's Vault e2e cases (reference §1.11) and the path, version, metadata and find
/// semantics of §1.5–1.7, on KV v2 and v1.
#[tokio::test]
async fn eso_e2e_cases_on_kv_v2_and_v1() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-e2e").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let nested = json!({"foo": {"nested": {"bar": "mysecret", "baz": "bang"}}});
    bao.put("secret", &format!("{ns}/nested"), nested.clone()).await;
    bao.put("secret", &format!("{ns}/json"), json!({"b": "<&>", "a": 1})).await;
    bao.put("secret", &format!("{ns}/ver"), json!({"v": "one"})).await;
    bao.put("secret", &format!("{ns}/ver"), json!({"v": "two"})).await;
    for (key, env_tag) in [("find/one", "dev"), ("find/two", "prod"), ("find/sub/three", "dev")] {
        bao.put("secret", &format!("{ns}/{key}"), json!({"name": key})).await;
        bao.ok(
            "POST",
            &format!("secret/metadata/{ns}/{key}"),
            json!({"custom_metadata": {"env": env_tag}}),
        )
        .await;
    }
    // KV v1 at its own mount.
    let v1 = format!("kv1-{ns}");
    bao.ok(
        "POST",
        &format!("sys/mounts/{v1}"),
        json!({"type": "kv", "options": {"version": "1"}}),
    )
    .await;
    bao.ok("POST", &format!("{v1}/app/db"), json!({"user": "u1", "n": {"x": "y"}}))
        .await;

    env.apply(&format!(
        "{}---\n{}---\n{}",
        token_secret(&bao.token),
        token_store("vault", &bao.url, "secret", "v2"),
        token_store("vault-v1", &bao.url, &v1, "v1"),
    ))
    .await
    .unwrap();
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: data
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: vault}}
  data:
  - secretKey: whole
    remoteRef: {{key: {ns}/nested}}
  - secretKey: nested
    remoteRef: {{key: {ns}/nested, property: foo.nested}}
  - secretKey: bar
    remoteRef: {{key: {ns}/nested, property: foo.nested.bar}}
  - secretKey: escaped
    remoteRef: {{key: {ns}/json}}
  - secretKey: prefixed
    remoteRef: {{key: secret/data/{ns}/json, property: b}}
  - secretKey: number
    remoteRef: {{key: {ns}/json, property: a}}
  - secretKey: latest
    remoteRef: {{key: {ns}/ver, property: v}}
  - secretKey: first
    remoteRef: {{key: {ns}/ver, property: v, version: "1"}}
  - secretKey: env
    remoteRef: {{key: {ns}/find/one, property: env, metadataPolicy: Fetch}}
  - secretKey: meta-version
    remoteRef: {{key: {ns}/ver, property: current_version, metadataPolicy: Fetch}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: extract
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: vault}}
  dataFrom:
  - extract: {{key: {ns}/nested}}
  - extract: {{key: {ns}/nested, property: foo.nested}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: find-name
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: vault}}
  dataFrom:
  - find:
      path: {ns}/find
      name: {{regexp: "one|three"}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: find-tags
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: vault}}
  dataFrom:
  - find:
      path: {ns}
      tags: {{env: dev}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: find-path
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: vault}}
  dataFrom:
  - find: {{path: {ns}/find}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: kv1
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: vault-v1}}
  data:
  - secretKey: user
    remoteRef: {{key: app/db, property: user}}
  - secretKey: mounted
    remoteRef: {{key: {v1}/app/db, property: n.x}}
  dataFrom:
  - extract: {{key: app/db}}
"#
    ))
    .await
    .unwrap();

    let s = env.wait_secret("data", "data synced", |s| s.data.is_some()).await;
    let d = secret_strings(&s);
    assert_eq!(d["whole"], r#"{"foo":{"nested":{"bar":"mysecret","baz":"bang"}}}"#);
    assert_eq!(d["nested"], r#"{"bar":"mysecret","baz":"bang"}"#);
    assert_eq!(d["bar"], "mysecret");
    // Go's encoding/json: keys sorted, `<&>` escaped.
    assert_eq!(d["escaped"], r#"{"a":1,"b":"\u003c\u0026\u003e"}"#);
    assert_eq!(d["prefixed"], "<&>");
    assert_eq!(d["number"], "1");
    assert_eq!((d["latest"].as_str(), d["first"].as_str()), ("two", "one"));
    assert_eq!(d["env"], "dev");
    assert_eq!(d["meta-version"], "2");

    let s = env.wait_secret("extract", "extract synced", |s| s.data.is_some()).await;
    let d = secret_strings(&s);
    assert_eq!(d["foo"], r#"{"nested":{"bar":"mysecret","baz":"bang"}}"#);
    assert_eq!((d["bar"].as_str(), d["baz"].as_str()), ("mysecret", "bang"));

    let keys = |s: &k8s_openapi::api::core::v1::Secret| -> BTreeSet<String> {
        secret_strings(s).into_keys().collect()
    };
    let u = ns.clone();
    let s = env.wait_secret("find-name", "find by name", |s| s.data.is_some()).await;
    assert_eq!(
        keys(&s),
        BTreeSet::from([format!("{u}_find_one"), format!("{u}_find_sub_three")])
    );
    assert_eq!(secret_strings(&s)[&format!("{u}_find_one")], r#"{"name":"find/one"}"#);
    let s = env.wait_secret("find-tags", "find by tags", |s| s.data.is_some()).await;
    assert_eq!(
        keys(&s),
        BTreeSet::from([format!("{u}_find_one"), format!("{u}_find_sub_three")])
    );
    let s = env.wait_secret("find-path", "find by path", |s| s.data.is_some()).await;
    assert_eq!(keys(&s).len(), 3, "{:?}", keys(&s));

    let s = env.wait_secret("kv1", "kv v1", |s| s.data.is_some()).await;
    let d = secret_strings(&s);
    assert_eq!((d["user"].as_str(), d["mounted"].as_str()), ("u1", "y"));
    assert_eq!(d["n"], r#"{"x":"y"}"#);

    // KV v1 has no metadata and no tags: ESO's errors.
    env.apply(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: kv1-tags
spec:
  refreshInterval: 1h
  secretStoreRef: {name: vault-v1}
  dataFrom:
  - find: {tags: {env: dev}}
"#,
    )
    .await
    .unwrap();
    let message = env.wait_ready("kv1-tags", "False", "SecretSyncedError").await;
    assert!(
        message.contains("cannot perform find by tag operations with kv version v1"),
        "{message}"
    );
    // A missing key is ESO's NoSecretErr, named.
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: missing
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: vault}}
  data:
  - secretKey: x
    remoteRef: {{key: {ns}/nothing-here}}
"#
    ))
    .await
    .unwrap();
    let message = env.wait_ready("missing", "False", "SecretSyncedError").await;
    assert!(message.contains("Secret does not exist"), "{message}");
}
