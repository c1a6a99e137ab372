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
        let url = env.get("ESOX_BAO_URL").cloned().expect(
            "ESOX_BAO_URL in the stack's env file: restart the stack (scripts/stack.sh down && up)",
        );
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

    /// A call in bao namespace `ns`, which must succeed.
    async fn ok_in(&self, ns: &str, method: &str, path: &str, body: Value) -> Value {
        let reply = self
            .http
            .call(method, path, &[], Some(&self.token), Some(ns), Some(&body))
            .await
            .unwrap_or_else(|e| panic!("{method} {ns}/{path}: {e}"));
        assert!(
            (200..300).contains(&reply.status),
            "{method} {ns}/{path}: HTTP {} {}",
            reply.status,
            reply.body
        );
        reply.body
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
        self.ok(
            "POST",
            &format!("{mount}/data/{key}"),
            json!({ "data": data }),
        )
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
async fn kubernetes_role(
    bao: &Bao,
    role: &str,
    sa: &str,
    namespace: &str,
    policy: &str,
    ttl: &str,
) {
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

/// ServiceAccount `sa` in the test's namespace, a policy `policy` reading the namespace's
/// prefix, and Kubernetes-auth role `role` binding the two with tokens of `ttl`.
async fn kubernetes_reader(
    env: &TestEnv,
    bao: &Bao,
    role: &str,
    sa: &str,
    policy: &str,
    ttl: &str,
) {
    service_account(env, sa).await;
    read_policy(bao, policy, &env.ns).await;
    kubernetes_role(bao, role, sa, &env.ns, policy, ttl).await;
}

/// The seeds' `vault-backend` SecretStore as written (Kubernetes auth at `kubernetes`, role
/// `my-role`, ServiceAccount `my-app-sa`), only its server pointed at bao and its namespace
/// the test's; and an ExternalSecret reading through it, as the seeds' does from AWS.
#[tokio::test]
async fn seeds_vault_backend_store_with_kubernetes_auth() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-seed").await;
    let bao = Bao::new();
    let policy = format!("seed-{}", env.ns);
    kubernetes_reader(&env, &bao, "my-role", "my-app-sa", &policy, "1h").await;
    bao.put(
        "secret",
        &format!("{}/production/api-key", env.ns),
        json!({"api_token_value": "tok-vault"}),
    )
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
    env.wait_value("api-credentials", "API_TOKEN", "tok-vault")
        .await;
    env.wait_ready("api-key-sync", "True", "SecretSynced").await;
    let (_, _, message) = env.wait_store("vault-backend", |s, _, _| s == "True").await;
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
    let (_, reason, message) = env.wait_store("wrong-role", |s, _, _| s == "False").await;
    assert_eq!(reason, "ValidationFailed");
    assert!(
        message.contains("login refused: PUT auth/kubernetes/login: HTTP 400")
            && message.contains("no-such-role"),
        "{message}"
    );
    let message = env
        .wait_ready("not-allowed", "False", "SecretSyncedError")
        .await;
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
    bao.put("secret", &format!("{ns}/nested"), nested.clone())
        .await;
    bao.put("secret", &format!("{ns}/json"), json!({"b": "<&>", "a": 1}))
        .await;
    bao.put("secret", &format!("{ns}/ver"), json!({"v": "one"}))
        .await;
    bao.put("secret", &format!("{ns}/ver"), json!({"v": "two"}))
        .await;
    for (key, env_tag) in [
        ("find/one", "dev"),
        ("find/two", "prod"),
        ("find/sub/three", "dev"),
    ] {
        bao.put("secret", &format!("{ns}/{key}"), json!({"name": key}))
            .await;
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
    bao.ok(
        "POST",
        &format!("{v1}/app/db"),
        json!({"user": "u1", "n": {"x": "y"}}),
    )
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

    let s = env
        .wait_secret("data", "data synced", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(
        d["whole"],
        r#"{"foo":{"nested":{"bar":"mysecret","baz":"bang"}}}"#
    );
    assert_eq!(d["nested"], r#"{"bar":"mysecret","baz":"bang"}"#);
    assert_eq!(d["bar"], "mysecret");
    // Go's encoding/json: keys sorted, `<&>` escaped.
    assert_eq!(d["escaped"], r#"{"a":1,"b":"\u003c\u0026\u003e"}"#);
    assert_eq!(d["prefixed"], "<&>");
    assert_eq!(d["number"], "1");
    assert_eq!((d["latest"].as_str(), d["first"].as_str()), ("two", "one"));
    assert_eq!(d["env"], "dev");
    assert_eq!(d["meta-version"], "2");

    let s = env
        .wait_secret("extract", "extract synced", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(d["foo"], r#"{"nested":{"bar":"mysecret","baz":"bang"}}"#);
    assert_eq!((d["bar"].as_str(), d["baz"].as_str()), ("mysecret", "bang"));

    let keys = |s: &k8s_openapi::api::core::v1::Secret| -> BTreeSet<String> {
        secret_strings(s).into_keys().collect()
    };
    let u = ns.clone();
    let s = env
        .wait_secret("find-name", "find by name", |s| s.data.is_some())
        .await;
    assert_eq!(
        keys(&s),
        BTreeSet::from([format!("{u}_find_one"), format!("{u}_find_sub_three")])
    );
    assert_eq!(
        secret_strings(&s)[&format!("{u}_find_one")],
        r#"{"name":"find/one"}"#
    );
    let s = env
        .wait_secret("find-tags", "find by tags", |s| s.data.is_some())
        .await;
    assert_eq!(
        keys(&s),
        BTreeSet::from([format!("{u}_find_one"), format!("{u}_find_sub_three")])
    );
    let s = env
        .wait_secret("find-path", "find by path", |s| s.data.is_some())
        .await;
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
    let message = env
        .wait_ready("kv1-tags", "False", "SecretSyncedError")
        .await;
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
    let message = env
        .wait_ready("missing", "False", "SecretSyncedError")
        .await;
    assert!(message.contains("Secret does not exist"), "{message}");
}

/// Successful answers to `path` for the tokens of namespace `ns`'s ServiceAccounts, waited
/// for a moment (bao writes its audit log as it answers).
async fn answered_now(path: &str, ns: &str) -> usize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    answered(path, ns)
}

/// Revokes, with the root token, every token bao gave ServiceAccounts of `ns` (what an
/// operator revoking esox's token does).
async fn revoke_tokens_of(bao: &Bao, ns: &str) -> usize {
    let (_, list) = bao.call("LIST", "auth/token/accessors", None).await;
    let mut revoked = 0;
    for accessor in list["data"]["keys"].as_array().cloned().unwrap_or_default() {
        let (status, info) = bao
            .call(
                "POST",
                "auth/token/lookup-accessor",
                Some(json!({ "accessor": accessor })),
            )
            .await;
        if status == 200 && info["data"]["meta"]["service_account_namespace"] == ns {
            bao.ok(
                "POST",
                "auth/token/revoke-accessor",
                json!({ "accessor": accessor }),
            )
            .await;
            revoked += 1;
        }
    }
    revoked
}

fn kubernetes_store(name: &str, url: &str, role: &str, sa: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: {name}
spec:
  refreshInterval: 2
  provider:
    vault:
      server: "{url}"
      path: secret
      auth:
        kubernetes:
          role: {role}
          serviceAccountRef:
            name: {sa}
"#
    )
}

fn reading_es(name: &str, store: &str, key: &str, property: &str, refresh: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: {name}
spec:
  refreshInterval: {refresh}
  secretStoreRef: {{name: {store}}}
  data:
  - secretKey: value
    remoteRef: {{key: {key}, property: {property}}}
"#
    )
}

/// Better than ESO: N ExternalSecrets refreshing every 2 s through one Kubernetes-auth store,
/// over many refresh cycles and several renewals of a 15 s token, cost exactly one login
/// (counted in bao's audit log); a token revoked from outside is replaced by one new login and
/// the syncs recover without a restart.
#[tokio::test]
async fn one_login_for_many_syncs_and_recovery_from_revocation() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-tokens").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let role = format!("count-{ns}");
    kubernetes_reader(&env, &bao, &role, "reader", &role, "15s").await;
    bao.put("secret", &format!("{ns}/shared"), json!({"v": "before"}))
        .await;
    const N: usize = 6;
    let mut manifests = kubernetes_store("store", &bao.url, &format!("count-{ns}"), "reader");
    for i in 0..N {
        manifests.push_str("---\n");
        manifests.push_str(&reading_es(
            &format!("es-{i}"),
            "store",
            &format!("{ns}/shared"),
            "v",
            "2s",
        ));
    }
    env.apply(&manifests).await.unwrap();
    for i in 0..N {
        env.wait_value(&format!("es-{i}"), "value", "before").await;
    }
    // Many refresh cycles: 2 s each, and the 15 s token renewed at 10 s, three times.
    tokio::time::sleep(Duration::from_secs(36)).await;
    let logins = answered_now("auth/kubernetes/login", &ns).await;
    let renewals = answered_now("auth/token/renew-self", &ns).await;
    let reads = audit()
        .iter()
        .filter(|e| {
            e["type"] == "response" && e["request"]["path"] == format!("secret/data/{ns}/shared")
        })
        .count();
    eprintln!(
        "[vault] {N} ExternalSecrets, 36 s at refreshInterval 2s: {logins} login(s), {renewals} renewal(s), {reads} reads"
    );
    assert_eq!(
        logins, 1,
        "one login for every sync of every ExternalSecret"
    );
    assert!(
        renewals >= 2,
        "the 15 s token was renewed ({renewals} renewals)"
    );
    for i in 0..N {
        env.wait_ready(&format!("es-{i}"), "True", "SecretSynced")
            .await;
    }

    // Revoked from outside: the next read is refused, lookup-self too, esox logs in again.
    assert!(
        revoke_tokens_of(&bao, &ns).await >= 1,
        "esox's token found and revoked"
    );
    bao.put("secret", &format!("{ns}/shared"), json!({"v": "after"}))
        .await;
    for i in 0..N {
        env.wait_value(&format!("es-{i}"), "value", "after").await;
    }
    let logins = answered_now("auth/kubernetes/login", &ns).await;
    assert_eq!(logins, 2, "exactly one new login after the revocation");
    let (status, _, _) = env.wait_store("store", |s, _, _| s == "True").await;
    assert_eq!(status, "True");
}

fn stack_sh(args: &[&str]) {
    let status = std::process::Command::new("bash")
        .arg(esox_tests::repo_root().join("scripts/stack.sh"))
        .args(args)
        .status()
        .expect("run scripts/stack.sh");
    assert!(status.success(), "scripts/stack.sh {args:?} failed");
}

/// Starts bao again when dropped while `.0` is set: an outage test that fails must not leave
/// bao stopped for the tests after it.
struct StartBaoOnDrop(bool);

impl Drop for StartBaoOnDrop {
    fn drop(&mut self) {
        if self.0 {
            let _ = std::process::Command::new("bash")
                .arg(esox_tests::repo_root().join("scripts/stack.sh"))
                .args(["start-service", "bao"])
                .status();
        }
    }
}

/// bao stopped after a sync: the Secret is left as it was, the ExternalSecret and the store
/// go Ready=False naming the call that failed; bao back (empty: dev mode keeps nothing, so
/// the role and the secret are written again, as an operator restoring it would): esox
/// logs in again and both are Ready, without a restart.
#[tokio::test]
async fn outage_keeps_the_secret_and_recovers() {
    let _bao = BAO.write().await;
    let env = TestEnv::new("vault-outage").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    service_account(&env, "reader").await;
    let setup = |value: &'static str| {
        let (bao, ns) = (&bao, &ns);
        async move {
            read_policy(bao, &format!("outage-{ns}"), ns).await;
            kubernetes_role(
                bao,
                &format!("outage-{ns}"),
                "reader",
                ns,
                &format!("outage-{ns}"),
                "1h",
            )
            .await;
            bao.put("secret", &format!("{ns}/db"), json!({"password": value}))
                .await;
        }
    };
    setup("first").await;
    env.apply(&format!(
        "{}---\n{}",
        kubernetes_store("store", &bao.url, &format!("outage-{ns}"), "reader"),
        reading_es("db", "store", &format!("{ns}/db"), "password", "2s")
    ))
    .await
    .unwrap();
    env.wait_value("db", "value", "first").await;
    env.wait_store("store", |s, _, _| s == "True").await;

    stack_sh(&["stop-service", "bao"]);
    let mut bao_back = StartBaoOnDrop(true);
    let message = env.wait_ready("db", "False", "SecretSyncedError").await;
    // The ExternalSecret's own read, or the store's check when that came first: either names
    // the call that failed.
    assert!(
        (message.contains(&format!("GET secret/data/{ns}/db"))
            || message.contains("GET auth/token/lookup-self"))
            && message.contains("refused"),
        "{message}"
    );
    let (_, _, message) = env.wait_store("store", |s, _, _| s == "False").await;
    assert!(
        message.contains("GET auth/token/lookup-self") && message.contains("refused"),
        "{message}"
    );
    assert_eq!(
        secret_strings(&env.secrets().get("db").await.unwrap())["value"],
        "first",
        "the Secret is left as it was"
    );

    stack_sh(&["start-service", "bao"]);
    bao_back.0 = false;
    setup("second").await;
    let found = wait_for(
        Duration::from_secs(60),
        "the ExternalSecret back with the new value",
        || async {
            let s = env.secrets().get("db").await.ok()?;
            (secret_strings(&s)["value"] == "second").then_some(())
        },
    )
    .await;
    if let Err(e) = found {
        panic!("{e}\n{}", env.external_secret_states().await);
    }
    env.wait_ready("db", "True", "SecretSynced").await;
    env.wait_store("store", |s, _, _| s == "True").await;
}

const CANARY: &str = "CANARY-vault-5e1d";

/// A client certificate (self-signed) and its key, PEM, made with openssl.
fn client_certificate() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=esox-cert-auth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req");
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

/// Every auth method bao can test — appRole, userPass, jwt (a ServiceAccount token checked
/// against the apiserver's signing key), cert (over TLS, the CA from `caBundle`) — and
/// `caProvider`; a TLS store without the CA fails naming why. No credential, token or value
/// reaches the logs, events or statuses.
#[tokio::test]
async fn auth_methods_and_tls() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-auth").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let policy = format!("auth-{ns}");
    read_policy(&bao, &policy, &ns).await;
    bao.put(
        "secret",
        &format!("{ns}/app"),
        json!({"v": format!("{CANARY}-value")}),
    )
    .await;
    let tls_url = stack_env().unwrap()["ESOX_BAO_TLS_URL"].clone();
    let ca = stack_file("pki/ca.crt");
    let b64 = base64::engine::general_purpose::STANDARD;

    // appRole
    bao.enable_auth(&format!("approle-{ns}"), "approle").await;
    bao.ok(
        "POST",
        &format!("auth/approle-{ns}/role/esox"),
        json!({"token_policies": [policy]}),
    )
    .await;
    let role_id = bao
        .ok(
            "GET",
            &format!("auth/approle-{ns}/role/esox/role-id"),
            json!({}),
        )
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = bao
        .ok(
            "POST",
            &format!("auth/approle-{ns}/role/esox/secret-id"),
            json!({}),
        )
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    // userPass
    bao.enable_auth(&format!("userpass-{ns}"), "userpass").await;
    bao.ok(
        "POST",
        &format!("auth/userpass-{ns}/users/esox"),
        json!({"password": format!("{CANARY}-password"), "token_policies": [policy]}),
    )
    .await;
    // jwt: the apiserver's ServiceAccount tokens, checked with its public key.
    bao.enable_auth(&format!("jwt-{ns}"), "jwt").await;
    bao.ok(
        "POST",
        &format!("auth/jwt-{ns}/config"),
        json!({
            "jwt_validation_pubkeys": [stack_file("pki/sa.pub")],
            "bound_issuer": "https://kubernetes.default.svc.cluster.local",
        }),
    )
    .await;
    bao.ok(
        "POST",
        &format!("auth/jwt-{ns}/role/esox"),
        json!({
            "role_type": "jwt",
            "bound_audiences": ["vault"],
            "user_claim": "sub",
            "token_policies": [policy],
        }),
    )
    .await;
    service_account(&env, "jwt-sa").await;
    // cert
    let (cert, key) = client_certificate();
    bao.enable_auth(&format!("cert-{ns}"), "cert").await;
    bao.ok(
        "POST",
        &format!("auth/cert-{ns}/certs/esox"),
        json!({"certificate": cert, "token_policies": [policy]}),
    )
    .await;

    let auth_store = |name: &str, server: &str, tls: &str, auth: &str| {
        format!(
            r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: {name}
spec:
  provider:
    vault:
      server: "{server}"
      path: secret
{tls}      auth:
{auth}
"#
        )
    };
    let ca_bundle = format!("      caBundle: {}\n", b64.encode(&ca));
    let mut manifests = format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  secret-id: "{secret_id}"
  password: "{CANARY}-password"
  token: "{token}"
---
apiVersion: v1
kind: Secret
metadata:
  name: client-cert
data:
  tls.crt: {cert_b64}
  tls.key: {key_b64}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: bao-ca
data:
  ca.crt: {ca_json}
"#,
        token = bao.token,
        cert_b64 = b64.encode(&cert),
        key_b64 = b64.encode(&key),
        ca_json = serde_json::to_string(&ca).unwrap(),
    );
    let stores = [
        (
            "approle",
            bao.url.clone(),
            String::new(),
            format!(
                "        appRole:\n          path: approle-{ns}\n          roleId: {role_id}\n          secretRef: {{name: creds, key: secret-id}}"
            ),
        ),
        (
            "userpass",
            bao.url.clone(),
            String::new(),
            format!(
                "        userPass:\n          path: userpass-{ns}\n          username: esox\n          secretRef: {{name: creds, key: password}}"
            ),
        ),
        (
            "jwt",
            bao.url.clone(),
            String::new(),
            format!(
                "        jwt:\n          path: jwt-{ns}\n          role: esox\n          kubernetesServiceAccountToken:\n            serviceAccountRef: {{name: jwt-sa}}"
            ),
        ),
        (
            "cert",
            tls_url.clone(),
            ca_bundle.clone(),
            format!(
                "        cert:\n          path: cert-{ns}\n          clientCert: {{name: client-cert, key: tls.crt}}\n          secretRef: {{name: client-cert, key: tls.key}}"
            ),
        ),
        (
            "ca-provider",
            tls_url.clone(),
            "      caProvider: {type: ConfigMap, name: bao-ca, key: ca.crt}\n".to_string(),
            "        tokenSecretRef: {name: creds, key: token}".to_string(),
        ),
    ];
    for (name, server, tls, auth) in &stores {
        manifests.push_str("---\n");
        manifests.push_str(&auth_store(name, server, tls, auth));
        manifests.push_str("---\n");
        manifests.push_str(&reading_es(name, name, &format!("{ns}/app"), "v", "1h"));
    }
    manifests.push_str("---\n");
    manifests.push_str(&auth_store(
        "no-ca",
        &tls_url,
        "",
        "        tokenSecretRef: {name: creds, key: token}",
    ));
    env.apply(&manifests).await.unwrap();

    for (name, ..) in &stores {
        env.wait_value(name, "value", &format!("{CANARY}-value"))
            .await;
        let (_, _, message) = env.wait_store(name, |s, _, _| s == "True").await;
        eprintln!("[vault] store {name}: {message}");
    }
    let (_, reason, message) = env.wait_store("no-ca", |s, _, _| s == "False").await;
    assert_eq!(reason, "ValidationFailed");
    assert!(
        message.contains("GET auth/token/lookup-self") && message.contains("UnknownIssuer"),
        "{message}"
    );

    // Nothing secret anywhere: values, the password, the secret ID, any bao token.
    let token_shape = regex_lite_tokens(&esox_tests::logs());
    assert!(
        token_shape.is_empty(),
        "bao tokens in the logs: {}",
        token_shape.len()
    );
    for needle in [CANARY, secret_id.as_str()] {
        assert!(
            !esox_tests::logs().contains(needle),
            "a credential or value reached the logs"
        );
        for (name, ..) in &stores {
            let events = env.events_for(name).await;
            assert!(!events.iter().any(|e| e.contains(needle)), "{events:?}");
            let es = env.external_secrets().get(name).await.unwrap();
            assert!(!serde_json::to_string(&es.status).unwrap().contains(needle));
        }
    }
}

/// bao service tokens (`s.` and 24 characters) in `text`.
fn regex_lite_tokens(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (i, w) in bytes.windows(2).enumerate() {
        if w == b"s." && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let rest = &bytes[i + 2..];
            let n = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            if n >= 20 {
                found.push(String::from_utf8_lossy(&bytes[i..i + 2 + n]).into_owned());
            }
        }
    }
    found
}

/// `spec.provider.openBao` (ESO's read-only OpenBao block): its own mount, userPass auth,
/// literal paths, one-level find by name, ESO's errors for tags, a missing secret, and a
/// mount of the wrong type or version.
#[tokio::test]
async fn openbao_block() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-openbao").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let (v2, v1) = (format!("bao-{ns}"), format!("baov1-{ns}"));
    bao.ok(
        "POST",
        &format!("sys/mounts/{v2}"),
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    bao.ok(
        "POST",
        &format!("sys/mounts/{v1}"),
        json!({"type": "kv", "options": {"version": "1"}}),
    )
    .await;
    for (key, value) in [
        ("team/a", json!({"x": "1"})),
        ("team/b", json!({"x": "2"})),
        ("team/sub/c", json!({"x": "3"})),
        ("top", json!({"n": {"m": "v"}})),
    ] {
        bao.put(&v2, key, value).await;
    }
    let policy = format!("openbao-{ns}");
    bao.policy(
        &policy,
        &format!(
            r#"path "{v2}/*" {{ capabilities = ["read", "list"] }}
path "sys/mounts/{v2}" {{ capabilities = ["read"] }}"#
        ),
    )
    .await;
    bao.enable_auth(&format!("up-{ns}"), "userpass").await;
    bao.ok(
        "POST",
        &format!("auth/up-{ns}/users/reader"),
        json!({"password": format!("{CANARY}-pw"), "token_policies": [policy]}),
    )
    .await;
    let store = |name: &str, path: &str, version: &str, auth: &str| {
        format!(
            r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: {name}
spec:
  provider:
    openBao:
      server: "{url}"
      path: {path}
      version: {version}
      auth:
{auth}
"#,
            url = bao.url
        )
    };
    let userpass = format!(
        "        userPass: {{path: up-{ns}, username: reader, secretRef: {{name: creds, key: password}}}}"
    );
    let token = "        tokenSecretRef: {name: creds, key: token}";
    env.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: "{CANARY}-pw"
  token: "{root}"
---
{bao_store}---
{wrong_version}---
{not_kv}---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: read
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: bao}}
  data:
  - secretKey: nested
    remoteRef: {{key: top, property: n}}
  dataFrom:
  - find:
      path: team
      name: {{regexp: ".*"}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: tags
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: bao}}
  dataFrom:
  - find: {{tags: {{env: dev}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: missing
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: bao}}
  data:
  - secretKey: x
    remoteRef: {{key: nope}}
"#,
        root = bao.token,
        bao_store = store("bao", &v2, "v2", &userpass),
        wrong_version = store("wrong-version", &v1, "v2", token),
        not_kv = store("not-kv", "sys", "v2", token),
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("read", "read through openBao", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(d["nested"], r#"{"m":"v"}"#);
    assert_eq!(
        (d["a"].as_str(), d["b"].as_str()),
        (r#"{"x":"1"}"#, r#"{"x":"2"}"#)
    );
    assert_eq!(d.len(), 3, "one level, folders skipped: {:?}", d.keys());
    env.wait_store("bao", |s, _, _| s == "True").await;
    let message = env.wait_ready("tags", "False", "SecretSyncedError").await;
    assert!(
        message.contains("tag based search is not implemented"),
        "{message}"
    );
    let message = env
        .wait_ready("missing", "False", "SecretSyncedError")
        .await;
    assert!(
        message.contains(&format!("secret not found: at {v2}/data/nope")),
        "{message}"
    );
    let (_, _, message) = env
        .wait_store("wrong-version", |s, _, _| s == "False")
        .await;
    assert!(
        message.contains("expected kv engine version 2 found version 1"),
        "{message}"
    );
    let (_, _, message) = env.wait_store("not-kv", |s, _, _| s == "False").await;
    assert!(
        message.contains(r#"expected mount type "kv" found "system""#),
        "{message}"
    );
    assert!(
        !esox_tests::logs().contains(CANARY),
        "a credential reached the logs"
    );
}

/// The VaultDynamicSecret generator on bao, authenticated as a Kubernetes-auth store would
/// be: a Vault token (`auth/token/create`, resultType Auth: the documents' "Vault tokens"), a
/// certificate from the PKI engine (a write, resultType Data), and a ClusterGenerator
/// carrying one (a read).
#[tokio::test]
async fn vault_dynamic_secret_generator() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-vds").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let pki = format!("pki-{ns}");
    bao.ok(
        "POST",
        &format!("sys/mounts/{pki}"),
        json!({"type": "pki", "config": {"max_lease_ttl": "24h"}}),
    )
    .await;
    bao.ok(
        "POST",
        &format!("{pki}/root/generate/internal"),
        json!({"common_name": "esox test CA", "ttl": "24h"}),
    )
    .await;
    bao.ok(
        "POST",
        &format!("{pki}/roles/web"),
        json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "1h"}),
    )
    .await;
    let policy = format!("vds-{ns}");
    bao.policy(
        &policy,
        &format!(
            r#"path "auth/token/create" {{ capabilities = ["update"] }}
path "{pki}/issue/web" {{ capabilities = ["update"] }}
path "secret/data/{ns}/*" {{ capabilities = ["read"] }}"#
        ),
    )
    .await;
    service_account(&env, "generator").await;
    kubernetes_role(&bao, &format!("vds-{ns}"), "generator", &ns, &policy, "1h").await;
    bao.put("secret", &format!("{ns}/static"), json!({"k": "v"}))
        .await;
    let provider = format!(
        r#"  provider:
    server: "{url}"
    auth:
      kubernetes:
        role: vds-{ns}
        serviceAccountRef: {{name: generator}}"#,
        url = bao.url
    );
    let es = |name: &str, kind: &str, generator: &str| {
        format!(
            r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: {name}
spec:
  refreshInterval: 1h
  dataFrom:
  - sourceRef:
      generatorRef:
        apiVersion: generators.external-secrets.io/v1alpha1
        kind: {kind}
        name: {generator}
"#
        )
    };
    env.apply(&format!(
        r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata:
  name: token
spec:
  method: POST
  path: auth/token/create
  parameters: {{policies: [default], ttl: 1h}}
  resultType: Auth
{provider}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata:
  name: certificate
spec:
  method: POST
  path: {pki}/issue/web
  parameters: {{common_name: app.example.com, ttl: 10m}}
{provider}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: ClusterGenerator
metadata:
  name: vds-{ns}
spec:
  kind: VaultDynamicSecret
  generator:
    vaultDynamicSecretSpec:
      path: secret/data/{ns}/static
{provider_nested}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata:
  name: raw
spec:
  path: secret/data/{ns}/static
  resultType: Raw
{provider}
---
{token_es}---
{cert_es}---
{raw_es}---
{cluster_es}"#,
        provider_nested = provider
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        token_es = es("token", "VaultDynamicSecret", "token"),
        cert_es = es("certificate", "VaultDynamicSecret", "certificate"),
        cluster_es = es("cluster", "ClusterGenerator", &format!("vds-{ns}")),
        raw_es = es("raw", "VaultDynamicSecret", "raw"),
    ))
    .await
    .unwrap();

    let s = env
        .wait_secret("token", "a Vault token generated", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert!(d["client_token"].starts_with("s."), "a bao token");
    assert_eq!(d["lease_duration"], "3600");
    assert_eq!(d["policies"], r#"["default"]"#);
    let (status, looked_up) = bao
        .call(
            "POST",
            "auth/token/lookup",
            Some(json!({"token": d["client_token"]})),
        )
        .await;
    assert_eq!(status, 200, "the generated token is valid: {looked_up}");
    // Its 1 h lease: generated again before it ends, whatever refreshInterval says.
    assert!(
        s.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("esox.dev/renew-at")),
        "renew-at annotation on the token's Secret"
    );

    let s = env
        .wait_secret("certificate", "a certificate issued", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert!(
        d["certificate"].starts_with("-----BEGIN CERTIFICATE-----"),
        "a PEM certificate"
    );
    assert!(d["private_key"].contains("PRIVATE KEY"), "its key");
    assert!(d.contains_key("serial_number") && d.contains_key("issuing_ca"));

    // Raw: the Go client's Secret, field by field.
    let s = env
        .wait_secret("raw", "a raw answer", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(
        d.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "auth",
            "data",
            "lease_duration",
            "lease_id",
            "renewable",
            "request_id",
            "warnings",
            "wrap_info"
        ])
    );
    assert!(
        d["data"].starts_with(r#"{"data":{"k":"v"}"#),
        "{}",
        d["data"]
    );
    assert_eq!((d["renewable"].as_str(), d["auth"].as_str()), ("false", ""));

    let s = env
        .wait_secret("cluster", "a ClusterGenerator's read", |s| s.data.is_some())
        .await;
    assert_eq!(secret_strings(&s)["data"], r#"{"k":"v"}"#);
    assert!(
        !esox_tests::logs().contains("PRIVATE KEY"),
        "a generated key reached the logs"
    );
}

/// ESO's ldap auth (`auth/<path>/login/<username>` with the password from `secretRef`)
/// against a real LDAP server: Debian's slapd started by `scripts/stack.sh`, bao's ldap auth
/// plugin (built from OpenBao's module: bao 2.7.2 ships none) registered in its catalog. A
/// wrong password is refused by slapd, and the store says so.
#[tokio::test]
async fn ldap_auth_against_slapd() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-ldap").await;
    let stack = stack_env().unwrap();
    let Some(ldap_url) = stack.get("ESOX_LDAP_URL").cloned() else {
        panic!(
            "ESOX_LDAP_URL is not in the stack's env file: the stack was started with \
             ESOX_STACK_LDAP=0 or before slapd was part of it (scripts/stack.sh down && up)"
        );
    };
    let bao = Bao::new();
    let ns = env.ns.clone();
    let mount = format!("ldap-{ns}");
    bao.enable_auth(&mount, "ldap").await;
    bao.ok(
        "POST",
        &format!("auth/{mount}/config"),
        json!({"url": ldap_url, "userdn": stack["ESOX_LDAP_USERS_DN"], "userattr": "uid"}),
    )
    .await;
    let policy = format!("ldap-{ns}");
    read_policy(&bao, &policy, &ns).await;
    bao.ok(
        "POST",
        &format!("auth/{mount}/users/{}", stack["ESOX_LDAP_USER"]),
        json!({"policies": [policy]}),
    )
    .await;
    bao.put("secret", &format!("{ns}/app"), json!({"v": "from-ldap"}))
        .await;
    let logins_before = answered_at(&format!("auth/{mount}/login/esox")).len();
    let store = |name: &str, secret: &str| {
        format!(
            r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: {name}
spec:
  provider:
    vault:
      server: "{url}"
      path: secret
      auth:
        ldap:
          path: {mount}
          username: {user}
          secretRef: {{name: {secret}, key: password}}
"#,
            url = bao.url,
            user = stack["ESOX_LDAP_USER"],
        )
    };
    env.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: ldap
stringData:
  password: "{password}"
---
apiVersion: v1
kind: Secret
metadata:
  name: wrong
stringData:
  password: not-the-password
---
{good}---
{bad}---
{es}"#,
        password = stack["ESOX_LDAP_USER_PASSWORD"],
        good = store("ldap", "ldap"),
        bad = store("ldap-wrong", "wrong"),
        es = reading_es("via-ldap", "ldap", &format!("{ns}/app"), "v", "1h"),
    ))
    .await
    .unwrap();
    env.wait_value("via-ldap", "value", "from-ldap").await;
    let (_, _, message) = env.wait_store("ldap", |s, _, _| s == "True").await;
    assert!(
        message.contains("ldap"),
        "who the store authenticated as: {message}"
    );
    let (_, reason, message) = env.wait_store("ldap-wrong", |s, _, _| s == "False").await;
    assert_eq!(reason, "ValidationFailed", "{message}");
    assert!(
        message.contains(&format!("auth/{mount}/login/esox"))
            && message.contains("failed to bind as user"),
        "the refused login, named: {message}"
    );
    assert_eq!(
        answered_at(&format!("auth/{mount}/login/esox")).len() - logins_before,
        1,
        "one successful ldap login for the store and its ExternalSecret"
    );
    assert!(
        !esox_tests::logs().contains(stack["ESOX_LDAP_USER_PASSWORD"].as_str()),
        "the LDAP password reached the logs"
    );
}

/// Responses to `path` in the audit log (successful ones), with their times.
fn answered_at(path: &str) -> Vec<jiff::Timestamp> {
    audit()
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == path
                && e["error"].as_str().unwrap_or_default().is_empty()
        })
        .filter_map(|e| e["time"].as_str().and_then(|t| t.parse().ok()))
        .collect()
}

/// VaultDynamicSecret leases: a 15 s token (orphan, from a token role with a 40 s max TTL) is
/// renewed while the Secret keeps it, replaced before its max TTL ends, and revoked only once
/// the Secret holds its successor; a 12 s PKI certificate (not renewable) is issued again
/// before it ends and the old one revoked after. At every look, the token in the Secret is
/// valid: a consumer never holds a revoked credential.
#[tokio::test]
async fn vault_dynamic_secret_leases() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-leases").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let role = format!("leases-{ns}");
    bao.ok(
        "POST",
        &format!("auth/token/roles/{role}"),
        json!({"orphan": true, "renewable": true, "token_explicit_max_ttl": "40s",
               "allowed_policies": ["default"]}),
    )
    .await;
    let pki = format!("pki-{ns}");
    bao.ok("POST", &format!("sys/mounts/{pki}"), json!({"type": "pki"}))
        .await;
    bao.ok(
        "POST",
        &format!("{pki}/root/generate/internal"),
        json!({"common_name": "esox lease CA", "ttl": "24h"}),
    )
    .await;
    bao.ok(
        "POST",
        &format!("{pki}/roles/web"),
        json!({"allowed_domains": "example.com", "allow_subdomains": true,
               "generate_lease": true, "max_ttl": "1h"}),
    )
    .await;
    let policy = format!("leases-{ns}");
    bao.policy(
        &policy,
        &format!(
            r#"path "auth/token/create/{role}" {{ capabilities = ["update"] }}
path "auth/token/renew-accessor" {{ capabilities = ["update"] }}
path "auth/token/revoke-accessor" {{ capabilities = ["update"] }}
path "{pki}/issue/web" {{ capabilities = ["update"] }}
path "sys/leases/renew" {{ capabilities = ["update"] }}
path "sys/leases/revoke" {{ capabilities = ["update"] }}"#
        ),
    )
    .await;
    service_account(&env, "leases").await;
    kubernetes_role(&bao, &format!("leases-{ns}"), "leases", &ns, &policy, "1h").await;
    let renewals_before = answered_at("auth/token/renew-accessor").len();
    let revocations_before = answered_at("auth/token/revoke-accessor").len();
    let lease_revocations_before = answered_at("sys/leases/revoke").len();
    env.apply(&format!(
        r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata:
  name: token
spec:
  method: POST
  path: auth/token/create/{role}
  parameters: {{ttl: 15s}}
  resultType: Auth
  provider:
    server: "{url}"
    auth:
      kubernetes:
        role: leases-{ns}
        serviceAccountRef: {{name: leases}}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata:
  name: certificate
spec:
  method: POST
  path: {pki}/issue/web
  parameters: {{common_name: app.example.com, ttl: 12s}}
  provider:
    server: "{url}"
    auth:
      kubernetes:
        role: leases-{ns}
        serviceAccountRef: {{name: leases}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: token
spec:
  refreshInterval: 1h
  dataFrom:
  - sourceRef:
      generatorRef:
        apiVersion: generators.external-secrets.io/v1alpha1
        kind: VaultDynamicSecret
        name: token
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: certificate
spec:
  refreshInterval: 1h
  dataFrom:
  - sourceRef:
      generatorRef:
        apiVersion: generators.external-secrets.io/v1alpha1
        kind: VaultDynamicSecret
        name: certificate
"#,
        url = bao.url
    ))
    .await
    .unwrap();

    let s = env
        .wait_secret("token", "a Vault token generated", |s| s.data.is_some())
        .await;
    let first = secret_strings(&s);
    let annotation = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("esox.dev/vault-leases").cloned())
        .expect("the lease annotation");
    assert!(
        annotation.contains(&first["accessor"]) && !annotation.contains(&first["client_token"]),
        "the annotation holds the accessor, never the token: {annotation}"
    );
    let cert = env
        .wait_secret("certificate", "a certificate issued", |s| s.data.is_some())
        .await;
    let first_serial = secret_strings(&cert)["serial_number"].clone();
    let cert_leases: Value =
        serde_json::from_str(&cert.metadata.annotations.as_ref().unwrap()["esox.dev/vault-leases"])
            .unwrap();
    let first_lease = cert_leases[0]["handle"]["lease"]
        .as_str()
        .expect("the certificate's lease id")
        .to_string();

    // Watch the Secrets for 45 s: the token's max TTL is 40 s.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(env.client.clone(), &ns);
    let start = std::time::Instant::now();
    let mut tokens = vec![first["client_token"].clone()];
    let mut serials = vec![first_serial.clone()];
    let mut changed_at = None;
    let mut cert_changed_at = None;
    let mut renewed_same_token = false;
    while start.elapsed() < Duration::from_secs(46) {
        let s = secrets.get("token").await.unwrap();
        let d = secret_strings(&s);
        let token = d["client_token"].clone();
        let (status, looked_up) = bao
            .call("POST", "auth/token/lookup", Some(json!({"token": token})))
            .await;
        assert_eq!(
            status,
            200,
            "the token in the Secret was revoked or expired at {:?}: {looked_up}",
            start.elapsed()
        );
        if *tokens.last().unwrap() != token {
            changed_at.get_or_insert_with(jiff::Timestamp::now);
            tokens.push(token);
        } else if tokens.len() == 1 && start.elapsed() > Duration::from_secs(17) {
            // Issued with 15 s: still the same token past that, so it was renewed.
            renewed_same_token = true;
        }
        let c = secret_strings(&secrets.get("certificate").await.unwrap());
        if *serials.last().unwrap() != c["serial_number"] {
            cert_changed_at.get_or_insert_with(jiff::Timestamp::now);
            serials.push(c["serial_number"].clone());
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(
        renewed_same_token,
        "the first token was kept (renewed) past its 15 s TTL"
    );
    assert_eq!(
        tokens.len(),
        2,
        "one replacement before the 40 s max TTL, none after: {} tokens",
        tokens.len()
    );
    let renewals = answered_at("auth/token/renew-accessor").len() - renewals_before;
    assert!(
        (3..=6).contains(&renewals),
        "renewals of the first token before its max TTL: {renewals}"
    );
    let revoked = &answered_at("auth/token/revoke-accessor")[revocations_before..];
    assert_eq!(revoked.len(), 1, "the replaced token revoked once");
    let changed_at = changed_at.unwrap();
    assert!(
        revoked[0] > changed_at,
        "revoked at {} while the Secret held the new token from {changed_at} on",
        revoked[0]
    );
    let (status, _) = bao
        .call(
            "POST",
            "auth/token/lookup",
            Some(json!({"token": tokens[0]})),
        )
        .await;
    assert_ne!(status, 200, "the first token is revoked");

    // The certificate: issued again 8 s into its 12 s (5 or 6 times in 46 s), each replaced
    // one revoked after its successor was in the Secret.
    assert!(
        (4..=8).contains(&serials.len()),
        "certificates seen in 46 s: {}",
        serials.len()
    );
    let cert_revocations = answered_at("sys/leases/revoke").len() - lease_revocations_before;
    assert!(
        cert_revocations >= serials.len() - 2,
        "{cert_revocations} revocations for {} certificates",
        serials.len()
    );
    // The first certificate's lease itself was revoked (found in the audit log by its HMAC),
    // after the Secret held the second certificate. (bao's PKI puts a certificate revoked in
    // its last seconds on no CRL, so the lease is what is checked.)
    let hashed = bao
        .ok("POST", "sys/audit-hash/esox", json!({"input": first_lease}))
        .await["hash"]
        .clone();
    let revoked_at: Vec<jiff::Timestamp> = audit()
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "sys/leases/revoke"
                && e["request"]["data"]["lease_id"] == hashed
                && e["error"].as_str().unwrap_or_default().is_empty()
        })
        .filter_map(|e| e["time"].as_str().and_then(|t| t.parse().ok()))
        .collect();
    assert_eq!(
        revoked_at.len(),
        1,
        "the first certificate's lease revoked once"
    );
    let second_cert_at = cert_changed_at.expect("a second certificate");
    assert!(
        revoked_at[0] > second_cert_at,
        "the first certificate's lease was revoked at {} while the Secret held the second \
         from {second_cert_at} on",
        revoked_at[0]
    );
    let logs = esox_tests::logs();
    assert!(
        logs.contains("renewed a Vault lease"),
        "renewals are logged"
    );
    for t in &tokens {
        assert!(
            !logs.contains(t.as_str()),
            "a generated token reached the logs"
        );
    }
    assert!(
        !logs.contains(&first["accessor"]) && !logs.contains(&first_lease),
        "a lease handle reached the logs"
    );
}

/// `retrySettings` are honoured by the Vault client: with bao sealed for a few seconds, an
/// ExternalSecret of a store with `maxRetries: 8, retryInterval: 1s` keeps syncing (its
/// reads wait for the unseal) while one of a store without them fails and recovers by
/// requeue. The patient store also has `readYourWrites` and `forwardInconsistent`: bao sends
/// no `X-Vault-Index` (no replication), so none is invented, and it answers as before. A bad
/// `retryInterval` is reported on the store.
#[tokio::test]
async fn retry_settings_and_read_your_writes() {
    let _bao = BAO.write().await;
    let env = TestEnv::new("vault-retry").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let role = format!("retry-{ns}");
    kubernetes_reader(&env, &bao, &role, "reader", &role, "1h").await;
    // The impatient store logs in as another ServiceAccount: its own token and fetches.
    let role2 = format!("retry2-{ns}");
    service_account(&env, "reader2").await;
    kubernetes_role(&bao, &role2, "reader2", &ns, &role, "1h").await;
    bao.put("secret", &format!("{ns}/k"), json!({"v": "kept"}))
        .await;
    let patient = kubernetes_store("patient", &bao.url, &role, "reader").replace(
        "  provider:\n",
        "  retrySettings: {maxRetries: 8, retryInterval: 1s}\n  provider:\n",
    );
    let patient = patient.replace(
        "      path: secret\n",
        "      path: secret\n      readYourWrites: true\n      forwardInconsistent: true\n",
    );
    let bad = kubernetes_store("bad-interval", &bao.url, &role, "reader").replace(
        "  provider:\n",
        "  retrySettings: {maxRetries: 1, retryInterval: soon}\n  provider:\n",
    );
    env.apply(&format!(
        "{patient}---\n{impatient}---\n{bad}---\n{es1}---\n{es2}",
        impatient = kubernetes_store("impatient", &bao.url, &role2, "reader2"),
        es1 = reading_es("patient", "patient", &format!("{ns}/k"), "v", "1s"),
        es2 = reading_es("impatient", "impatient", &format!("{ns}/k"), "v", "1s"),
    ))
    .await
    .unwrap();
    env.wait_value("patient", "value", "kept").await;
    env.wait_value("impatient", "value", "kept").await;
    let (_, _, message) = env.wait_store("bad-interval", |s, _, _| s == "False").await;
    assert!(
        message.contains("spec.retrySettings.retryInterval"),
        "{message}"
    );

    let key = stack_file("bao.log")
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Unseal Key: "))
        .expect("the dev server's unseal key in its log")
        .trim()
        .to_string();
    bao.ok("PUT", "sys/seal", json!({})).await;
    env.wait_ready("impatient", "False", "SecretSyncedError")
        .await;
    // Sealed for 3 s more; the patient one's reads are retried meanwhile.
    let api = env.external_secrets();
    let ready = |es: &esox::api::ExternalSecret| {
        es.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
            .unwrap_or_default()
    };
    let sealed_until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < sealed_until {
        let es = api.get("patient").await.unwrap();
        assert_eq!(
            ready(&es),
            "True",
            "the patient store's sync failed while sealed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unsealed = bao
        .call("PUT", "sys/unseal", Some(json!({ "key": key })))
        .await;
    assert_eq!(unsealed.0, 200, "unsealed again: {}", unsealed.1);
    env.wait_ready("impatient", "True", "SecretSynced").await;
    for _ in 0..10 {
        let es = api.get("patient").await.unwrap();
        assert_eq!(
            ready(&es),
            "True",
            "the patient store's sync failed after the unseal"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        env.events_for("patient")
            .await
            .iter()
            .all(|e| !e.starts_with("UpdateFailed")),
        "no failed sync on the patient store"
    );
}

/// The shipped binary at `RUST_LOG=trace`: Kubernetes and userPass logins, reads, a
/// generated Vault token, refreshes every second. Its log holds no secret value, no
/// password, no bao token (the generated one included).
#[tokio::test]
async fn the_binary_at_trace_logs_no_value_and_no_token() {
    let _bao = BAO.read().await;
    let env = TestEnv::without_controller("vault-hygiene").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let policy = format!("hyg-{ns}");
    bao.policy(
        &policy,
        &format!(
            r#"path "secret/data/{ns}/*" {{ capabilities = ["read"] }}
path "auth/token/create" {{ capabilities = ["update"] }}"#
        ),
    )
    .await;
    service_account(&env, "reader").await;
    kubernetes_role(&bao, &format!("hyg-{ns}"), "reader", &ns, &policy, "1h").await;
    bao.enable_auth(&format!("hyg-up-{ns}"), "userpass").await;
    bao.ok(
        "POST",
        &format!("auth/hyg-up-{ns}/users/esox"),
        json!({"password": format!("{CANARY}-password"), "token_policies": [policy]}),
    )
    .await;
    bao.put(
        "secret",
        &format!("{ns}/db"),
        json!({"password": format!("{CANARY}-value")}),
    )
    .await;
    env.apply(&format!(
        r#"{k8s}---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: "{CANARY}-password"}}
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: userpass}}
spec:
  provider:
    vault:
      server: "{url}"
      path: secret
      auth:
        userPass: {{path: hyg-up-{ns}, username: esox, secretRef: {{name: creds, key: password}}}}
---
{es_k8s}---
{es_up}---
apiVersion: generators.external-secrets.io/v1alpha1
kind: VaultDynamicSecret
metadata: {{name: token}}
spec:
  method: POST
  path: auth/token/create
  parameters: {{policies: [default], ttl: 1h}}
  resultType: Auth
  provider:
    server: "{url}"
    auth:
      kubernetes: {{role: hyg-{ns}, serviceAccountRef: {{name: reader}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: token}}
spec:
  refreshInterval: 1h
  dataFrom:
  - sourceRef:
      generatorRef: {{apiVersion: generators.external-secrets.io/v1alpha1, kind: VaultDynamicSecret, name: token}}
"#,
        url = bao.url,
        k8s = kubernetes_store("k8s", &bao.url, &format!("hyg-{ns}"), "reader"),
        es_k8s = reading_es("via-k8s", "k8s", &format!("{ns}/db"), "password", "1s"),
        es_up = reading_es("via-userpass", "userpass", &format!("{ns}/db"), "password", "1s"),
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("esox.log");
    let controller = env.spawn_controller_logging(
        &[("RUST_LOG", "trace")],
        std::fs::File::create(&log_path).unwrap(),
    );
    let value = format!("{CANARY}-value");
    for name in ["via-k8s", "via-userpass"] {
        env.wait_value(name, "value", &value).await;
    }
    let token = env
        .wait_secret("token", "a generated token", |s| s.data.is_some())
        .await;
    let token = secret_strings(&token)["client_token"].clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(controller);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.len() > 10_000, "a trace log ({} bytes)", log.len());
    assert!(
        !log.contains(CANARY),
        "a value or the password reached the log"
    );
    assert!(!log.contains(&token), "the generated token reached the log");
    let tokens = regex_lite_tokens(&log);
    assert!(
        tokens.is_empty(),
        "{} bao token(s) in the log",
        tokens.len()
    );
}

/// bao namespaces (OpenBao has them; Vault OSS does not): a store in namespace
/// `org/team` logging in there, and one logging in at `org` (`auth.namespace`) with a policy
/// of `org` that grants the child's paths.
#[tokio::test]
async fn namespaces() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-ns").await;
    let bao = Bao::new();
    let org = format!("org-{}", env.ns);
    let team = format!("{org}/team");
    bao.ok("POST", &format!("sys/namespaces/{org}"), json!({}))
        .await;
    bao.ok_in(&org, "POST", "sys/namespaces/team", json!({}))
        .await;
    bao.ok_in(
        &team,
        "POST",
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    bao.ok_in(
        &team,
        "POST",
        "kv/data/app",
        json!({"data": {"v": "in-team"}}),
    )
    .await;
    // Login in the team namespace.
    bao.ok_in(
        &team,
        "PUT",
        "sys/policies/acl/read",
        json!({"policy": r#"path "kv/data/*" { capabilities = ["read"] }"#}),
    )
    .await;
    bao.ok_in(
        &team,
        "POST",
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await;
    bao.ok_in(
        &team,
        "POST",
        "auth/userpass/users/esox",
        json!({"password": "team-pw", "token_policies": ["read"]}),
    )
    .await;
    // Login in the parent, whose policy grants the child's paths.
    bao.ok_in(
        &org,
        "PUT",
        "sys/policies/acl/read-team",
        json!({"policy": r#"path "team/kv/data/*" { capabilities = ["read"] }"#}),
    )
    .await;
    bao.ok_in(
        &org,
        "POST",
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await;
    bao.ok_in(
        &org,
        "POST",
        "auth/userpass/users/esox",
        json!({"password": "org-pw", "token_policies": ["read-team"]}),
    )
    .await;
    let store = |name: &str, auth_ns: &str, key: &str| {
        format!(
            r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: {name}}}
spec:
  provider:
    vault:
      server: "{url}"
      path: kv
      namespace: {team}
      auth:
{auth_ns}        userPass: {{username: esox, secretRef: {{name: creds, key: {key}}}}}
"#,
            url = bao.url
        )
    };
    env.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{team: team-pw, org: org-pw}}
---
{in_team}---
{in_org}---
{es_team}---
{es_org}"#,
        in_team = store("in-team", "", "team"),
        in_org = store("in-org", &format!("        namespace: {org}\n"), "org"),
        es_team = reading_es("in-team", "in-team", "app", "v", "1h"),
        es_org = reading_es("in-org", "in-org", "app", "v", "1h"),
    ))
    .await
    .unwrap();
    env.wait_value("in-team", "value", "in-team").await;
    env.wait_value("in-org", "value", "in-team").await;
    let (_, _, message) = env.wait_store("in-org", |s, _, _| s == "True").await;
    assert!(
        message.contains("read-team"),
        "logged in at the parent: {message}"
    );
}

/// A token that expires for good (a 6 s TTL, at most 12 s with renewals): esox logs in again
/// before it does, and no sync fails for it.
#[tokio::test]
async fn expiring_tokens_are_replaced_before_they_expire() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-expiry").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    service_account(&env, "reader").await;
    read_policy(&bao, &format!("exp-{ns}"), &ns).await;
    bao.ok(
        "POST",
        &format!("auth/kubernetes/role/exp-{ns}"),
        json!({
            "bound_service_account_names": ["reader"],
            "bound_service_account_namespaces": [ns],
            "token_policies": [format!("exp-{ns}")],
            "token_ttl": "6s",
            "token_max_ttl": "12s",
        }),
    )
    .await;
    bao.put("secret", &format!("{ns}/k"), json!({"v": "1"}))
        .await;
    env.apply(&format!(
        "{}---\n{}",
        kubernetes_store("store", &bao.url, &format!("exp-{ns}"), "reader"),
        reading_es("es", "store", &format!("{ns}/k"), "v", "1s")
    ))
    .await
    .unwrap();
    env.wait_value("es", "value", "1").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let logins = answered_now("auth/kubernetes/login", &ns).await;
    eprintln!("[vault] 30 s with a 6 s token (12 s max): {logins} logins");
    assert!(
        (3..=6).contains(&logins),
        "a new login per 12 s of max TTL, not per sync: {logins}"
    );
    let events = env.events_for("es").await;
    assert!(
        !events.iter().any(|e| e.starts_with("UpdateFailed")),
        "no sync failed: {events:?}"
    );
    env.wait_ready("es", "True", "SecretSynced").await;
}

/// A ClusterSecretStore with referent Kubernetes auth (a `serviceAccountRef` without a
/// namespace): the ServiceAccount is each ExternalSecret's namespace's, the store is not
/// validated on its own (as in ESO), and each namespace logs in as itself.
#[tokio::test]
async fn referent_cluster_store() {
    // Exclusive: a cluster-wide controller reconciles every namespace.
    let _bao = BAO.write().await;
    let _guard = esox_tests::cluster_lock().await;
    let env = TestEnv::with(
        "vault-css",
        esox_tests::Options {
            cluster_wide: true,
            ..Default::default()
        },
    )
    .await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let role = format!("css-{ns}");
    kubernetes_reader(&env, &bao, &role, "reader", &role, "1h").await;
    bao.put("secret", &format!("{ns}/k"), json!({"v": "from-css"}))
        .await;
    let css = format!("vault-{ns}");
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata:
  name: {css}
spec:
  provider:
    vault:
      server: "{url}"
      path: secret
      auth:
        kubernetes:
          role: css-{ns}
          serviceAccountRef: {{name: reader}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: es
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: {css}, kind: ClusterSecretStore}}
  data:
  - secretKey: value
    remoteRef: {{key: {ns}/k, property: v}}
"#,
        url = bao.url
    ))
    .await
    .unwrap();
    env.wait_value("es", "value", "from-css").await;
    let api: Api<esox::api::ClusterSecretStore> = Api::all(env.client.clone());
    let message = wait_for(
        Duration::from_secs(30),
        "the ClusterSecretStore's status",
        || async {
            let c = api
                .get(&css)
                .await
                .ok()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            (c.status == "True").then(|| c.message.unwrap_or_default())
        },
    )
    .await
    .unwrap();
    assert!(message.contains("referent"), "{message}");
    assert_eq!(answered_now("auth/kubernetes/login", &ns).await, 1);
    let _ = api.delete(&css, &Default::default()).await;
}

/// bao sealed: the sync fails naming the call and "Vault is sealed", the Secret is kept;
/// unsealed: the same token works again (sealing keeps tokens), no new login.
#[tokio::test]
async fn sealed_server() {
    let _bao = BAO.write().await;
    let env = TestEnv::new("vault-sealed").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let role = format!("seal-{ns}");
    kubernetes_reader(&env, &bao, &role, "reader", &role, "1h").await;
    bao.put("secret", &format!("{ns}/k"), json!({"v": "kept"}))
        .await;
    env.apply(&format!(
        "{}---\n{}",
        kubernetes_store("store", &bao.url, &format!("seal-{ns}"), "reader"),
        reading_es("es", "store", &format!("{ns}/k"), "v", "1s")
    ))
    .await
    .unwrap();
    env.wait_value("es", "value", "kept").await;
    let key = stack_file("bao.log")
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Unseal Key: "))
        .expect("the dev server's unseal key in its log")
        .trim()
        .to_string();
    bao.ok("PUT", "sys/seal", json!({})).await;
    let message = env.wait_ready("es", "False", "SecretSyncedError").await;
    let unsealed = bao
        .call("PUT", "sys/unseal", Some(json!({ "key": key })))
        .await;
    assert_eq!(unsealed.0, 200, "unsealed again: {}", unsealed.1);
    assert!(
        message.contains(&format!(
            "GET secret/data/{ns}/k: HTTP 503: Vault is sealed"
        )),
        "{message}"
    );
    assert_eq!(
        secret_strings(&env.secrets().get("es").await.unwrap())["value"],
        "kept"
    );
    env.wait_ready("es", "True", "SecretSynced").await;
    assert_eq!(
        answered_now("auth/kubernetes/login", &ns).await,
        1,
        "the token outlived the seal"
    );
}

/// The mTLS listener (a client certificate required): a store with `tls` (client certificate
/// and key from a Secret, ESO's default keys) reads; one without gets ESO's e2e result,
/// `Ready=False` with "unable to validate store".
#[tokio::test]
async fn client_tls() {
    let _bao = BAO.read().await;
    let env = TestEnv::new("vault-mtls").await;
    let bao = Bao::new();
    let ns = env.ns.clone();
    let stack = stack_env().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    bao.put("secret", &format!("{ns}/k"), json!({"v": "over-mtls"}))
        .await;
    let store = |name: &str, tls: &str| {
        format!(
            r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: {name}}}
spec:
  provider:
    vault:
      server: "{url}"
      path: secret
      caBundle: {ca}
{tls}      auth:
        tokenSecretRef: {{name: creds, key: token}}
"#,
            url = stack["ESOX_BAO_MTLS_URL"],
            ca = b64.encode(stack_file("pki/ca.crt")),
        )
    };
    env.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{token: "{token}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: client-tls}}
data:
  tls.crt: {cert}
  tls.key: {key}
---
{with_tls}---
{without}---
{es}"#,
        token = bao.token,
        cert = b64.encode(std::fs::read(&stack["ESOX_BAO_CLIENT_CERT"]).unwrap()),
        key = b64.encode(std::fs::read(&stack["ESOX_BAO_CLIENT_KEY"]).unwrap()),
        with_tls = store(
            "mtls",
            "      tls:\n        certSecretRef: {name: client-tls}\n        keySecretRef: {name: client-tls}\n"
        ),
        without = store("no-client-cert", ""),
        es = reading_es("mtls", "mtls", &format!("{ns}/k"), "v", "1h"),
    ))
    .await
    .unwrap();
    env.wait_value("mtls", "value", "over-mtls").await;
    env.wait_store("mtls", |s, _, _| s == "True").await;
    let (_, _, message) = env
        .wait_store("no-client-cert", |s, _, _| s == "False")
        .await;
    assert!(
        message.starts_with("unable to validate store")
            && message.contains("GET auth/token/lookup-self"),
        "{message}"
    );
}
