//! PushSecret to Vault and OpenBao against the real `bao` (dev mode, `scripts/stack.sh`):
//! what a user checks in bao afterwards. The remote data byte for byte, ESO's `managed-by`
//! mark (KV v2 `custom_metadata`, KV v1 inside the data), a secret esox does not manage left
//! alone with ESO's status and event, `updatePolicy: IfNotExists`, `deletionPolicy: Delete`,
//! no write when nothing changed (bao's audit log), check-and-set against a concurrent
//! writer, bao namespaces and the `openBao` store block.
//!
//! Every test makes its own KV mount (named after its namespace), so they share bao safely.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use esox::provider::vault::http::{Http, TlsMaterial};
use esox_tests::push::{ready, source, wait_gone, wait_push};
use esox_tests::{TestEnv, secret_strings, stack_env, wait_for};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// bao's API with the root token.
struct Bao {
    http: Http,
    token: String,
    url: String,
}

impl Bao {
    fn new() -> Bao {
        let env = stack_env().expect("the stack's env file (scripts/stack.sh up)");
        let url = env["ESOX_BAO_URL"].clone();
        Bao {
            http: Http::new(&url, &TlsMaterial::default(), vec![]).unwrap(),
            token: env["ESOX_BAO_TOKEN"].clone(),
            url,
        }
    }

    /// A call (in bao namespace `ns`, if any): status and body.
    async fn call_in(
        &self,
        ns: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let reply = self
            .http
            .call(method, path, &[], Some(&self.token), ns, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (reply.status, reply.body)
    }

    async fn ok_in(&self, ns: Option<&str>, method: &str, path: &str, body: Value) -> Value {
        let (status, reply) = self.call_in(ns, method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status} {reply}"
        );
        reply
    }

    /// A KV mount of `version` at `path`.
    async fn mount(&self, ns: Option<&str>, path: &str, version: &str) {
        self.ok_in(
            ns,
            "POST",
            &format!("sys/mounts/{path}"),
            json!({"type": "kv", "options": {"version": version}}),
        )
        .await;
    }

    /// KV v2 `mount/key`: its `data` object (`data` and `metadata`), `None` when missing.
    async fn read2(&self, ns: Option<&str>, mount: &str, key: &str) -> Option<Value> {
        let (status, body) = self
            .call_in(ns, "GET", &format!("{mount}/data/{key}"), None)
            .await;
        (status == 200).then(|| body["data"].clone())
    }

    /// KV v2 `mount/key`'s metadata, `None` when there is none.
    async fn metadata2(&self, ns: Option<&str>, mount: &str, key: &str) -> Option<Value> {
        let (status, body) = self
            .call_in(ns, "GET", &format!("{mount}/metadata/{key}"), None)
            .await;
        (status == 200).then(|| body["data"].clone())
    }

    /// KV v1 `mount/key`'s data, `None` when missing.
    async fn read1(&self, mount: &str, key: &str) -> Option<Value> {
        let (status, body) = self
            .call_in(None, "GET", &format!("{mount}/{key}"), None)
            .await;
        (status == 200).then(|| body["data"].clone())
    }
}

/// bao's audit log: successful answers to `operation`s on `path` (namespace-relative).
fn audited(path: &str, operations: &[&str]) -> usize {
    let env = stack_env().unwrap();
    let text = std::fs::read_to_string(&env["ESOX_BAO_AUDIT_LOG"]).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"] == path
                && operations.contains(&e["request"]["operation"].as_str().unwrap_or_default())
                && e["error"].as_str().unwrap_or_default().is_empty()
        })
        .count()
}

fn writes(path: &str) -> usize {
    audited(path, &["create", "update"])
}

fn token_secret() -> String {
    let token = stack_env().unwrap()["ESOX_BAO_TOKEN"].clone();
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: bao-token}}
stringData: {{token: {token}}}
"#
    )
}

fn vault_store(name: &str, url: &str, mount: &str, version: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: {name}}}
spec:
  provider:
    vault:
      server: "{url}"
      path: {mount}
      version: {version}
      auth: {{tokenSecretRef: {{name: bao-token, key: token}}}}
"#
    )
}

/// The PushSecrets' statuses, as text (for the canary check).
async fn push_statuses(env: &TestEnv) -> String {
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    let list = api.list(&Default::default()).await.unwrap();
    serde_json::to_string(&list.items.iter().map(|p| &p.status).collect::<Vec<_>>()).unwrap()
}

/// Re-runs a PushSecret now (a label change, which ESO's predicate also lets through) and
/// waits until esox has read `path` again, so the reconcile is known to have happened.
async fn repush(env: &TestEnv, name: &str, path: &str, n: u32) {
    let reads = audited(path, &["read"]);
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"repush": n.to_string()}}})),
    )
    .await
    .unwrap();
    wait_for(
        Duration::from_secs(30),
        &format!("esox reading {path} again"),
        || async { (audited(path, &["read"]) > reads).then_some(()) },
    )
    .await
    .unwrap();
    // The write, if any, follows the read.
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// KV v2 as ESO pushes to it: the whole Secret and properties merged into one secret, the
/// mark, refusal of a secret esox does not manage, no write when nothing changed,
/// IfNotExists, and deletionPolicy Delete removing all of it.
#[tokio::test]
async fn kv2_push_marks_merges_refuses_and_deletes() {
    let env = TestEnv::new("pv-kv2").await;
    let bao = Bao::new();
    let mnt = format!("m-{}", env.ns);
    bao.mount(None, &mnt, "2").await;
    let canary = format!("kv2-canary-{}", env.ns);
    env.apply(&token_secret()).await.unwrap();
    env.apply(&vault_store("vault", &bao.url, &mnt, "v2"))
        .await
        .unwrap();
    source(
        &env,
        "src",
        &[
            ("user", "admin"),
            ("password", &canary),
            ("odd.key", "a\"b\\c<&>"),
        ],
    )
    .await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push
  annotations: {esox.dev/push-on-source-change: "true"}
spec:
  refreshInterval: 1h
  deletionPolicy: Delete
  secretStoreRefs: [{name: vault, kind: SecretStore}]
  selector: {secret: {name: src}}
  data:
  - match: {remoteRef: {remoteKey: whole}}
  - match: {secretKey: password, remoteRef: {remoteKey: app, property: password}}
  - match: {secretKey: user, remoteRef: {remoteKey: app, property: user}}
"#,
    )
    .await
    .unwrap();
    assert_eq!(
        wait_push(&env, "push", "True", "Synced").await,
        "PushSecret synced successfully"
    );
    let whole = bao.read2(None, &mnt, "whole").await.expect("whole pushed");
    assert_eq!(
        whole["data"],
        json!({"user": "admin", "password": canary, "odd.key": "a\"b\\c<&>"})
    );
    assert_eq!(
        whole["metadata"]["custom_metadata"],
        json!({"managed-by": "external-secrets"})
    );
    let app = bao.read2(None, &mnt, "app").await.expect("app pushed");
    assert_eq!(app["data"], json!({"user": "admin", "password": canary}));
    assert_eq!(
        app["metadata"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );

    // Nothing changed: esox reads and writes nothing (ESO #5443).
    let app_path = format!("{mnt}/data/app");
    let (before_app, before_whole) = (writes(&app_path), writes(&format!("{mnt}/data/whole")));
    let meta_writes = writes(&format!("{mnt}/metadata/app"));
    repush(&env, "push", &app_path, 1).await;
    assert_eq!(
        writes(&app_path),
        before_app,
        "no write of an unchanged app"
    );
    assert_eq!(writes(&format!("{mnt}/data/whole")), before_whole);
    assert_eq!(writes(&format!("{mnt}/metadata/app")), meta_writes);
    assert_eq!(
        ready(&env, "push").await.unwrap().1,
        "Synced",
        "still synced"
    );

    // The source changes: the property follows, the other property stays, one write.
    source(
        &env,
        "src",
        &[
            ("user", "admin"),
            ("password", "rotated"),
            ("odd.key", "a\"b\\c<&>"),
        ],
    )
    .await;
    wait_for(
        Duration::from_secs(30),
        "rotated password in bao",
        || async {
            let app = bao.read2(None, &mnt, "app").await?;
            (app["data"] == json!({"user": "admin", "password": "rotated"})).then_some(())
        },
    )
    .await
    .unwrap();
    // Two properties of one secret: two versions, never one clobbering the other.
    let app = bao.read2(None, &mnt, "app").await.unwrap();
    assert!(app["metadata"]["version"].as_u64().unwrap() >= 3);

    // A secret esox does not manage is refused, with ESO's message and event, and kept.
    bao.ok_in(
        None,
        "POST",
        &format!("{mnt}/data/unowned"),
        json!({"data": {"x": "theirs"}}),
    )
    .await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {name: takeover}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{name: vault}]
  selector: {secret: {name: src}}
  data:
  - match: {secretKey: user, remoteRef: {remoteKey: unowned, property: x}}
"#,
    )
    .await
    .unwrap();
    assert_eq!(
        wait_push(&env, "takeover", "False", "Errored").await,
        "set secret failed: could not write remote ref unowned to target secretstore vault: secret not managed by external-secrets"
    );
    let events = env.events_for("takeover").await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Errored: set secret failed")),
        "{events:?}"
    );
    let unowned = bao.read2(None, &mnt, "unowned").await.unwrap();
    assert_eq!(unowned["data"], json!({"x": "theirs"}));
    assert_eq!(unowned["metadata"]["version"], 1);
    // Deleting it (deletionPolicy Delete) leaves the unmanaged secret alone too.
    wait_gone(&env, "takeover").await;
    assert!(bao.read2(None, &mnt, "unowned").await.is_some());

    // IfNotExists: an existing secret is left as it is, a missing one is created.
    bao.ok_in(
        None,
        "PUT",
        &format!("{mnt}/metadata/preset"),
        json!({"custom_metadata": {"managed-by": "external-secrets"}}),
    )
    .await;
    bao.ok_in(
        None,
        "POST",
        &format!("{mnt}/data/preset"),
        json!({"data": {"user": "keep"}}),
    )
    .await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {name: ine}
spec:
  updatePolicy: IfNotExists
  secretStoreRefs: [{name: vault}]
  selector: {secret: {name: src}}
  data:
  - match: {secretKey: user, remoteRef: {remoteKey: preset, property: user}}
  - match: {secretKey: user, remoteRef: {remoteKey: fresh, property: user}}
"#,
    )
    .await
    .unwrap();
    assert_eq!(
        wait_push(&env, "ine", "True", "Synced").await,
        "PushSecret synced successfully. Existing secrets in providers unchanged."
    );
    assert_eq!(
        bao.read2(None, &mnt, "preset").await.unwrap()["data"],
        json!({"user": "keep"})
    );
    assert_eq!(
        bao.read2(None, &mnt, "fresh").await.unwrap()["data"],
        json!({"user": "admin"})
    );

    // deletionPolicy Delete: deleting the PushSecret removes everything it pushed, every
    // version and the metadata.
    wait_gone(&env, "push").await;
    for key in ["whole", "app"] {
        assert!(bao.read2(None, &mnt, key).await.is_none(), "{key} deleted");
        assert!(
            bao.metadata2(None, &mnt, key).await.is_none(),
            "{key}'s metadata deleted"
        );
    }
    assert!(bao.read2(None, &mnt, "preset").await.is_some());

    esox_tests::assert_no_secret_value(&env, &[], &canary).await;
    assert!(!push_statuses(&env).await.contains(&canary));
}

/// KV v1 as ESO pushes to it: the mark is stored inside the data (`custom_metadata`), an
/// ExternalSecret reads the pushed value back byte for byte, a secret without the mark is
/// refused, and removing an entry from a PushSecret (deletionPolicy Delete) removes only its
/// property.
#[tokio::test]
async fn kv1_push_keeps_the_mark_in_the_data_and_deletes_properties() {
    let env = TestEnv::new("pv-kv1").await;
    let bao = Bao::new();
    let mnt = format!("m1-{}", env.ns);
    bao.mount(None, &mnt, "1").await;
    env.apply(&token_secret()).await.unwrap();
    env.apply(&vault_store("vault", &bao.url, &mnt, "v1"))
        .await
        .unwrap();
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    source(&env, "src", &[("crt", cert), ("key", "k-1")]).await;
    let push = |entries: &str| {
        format!(
            r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: push}}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{{name: vault}}]
  selector: {{secret: {{name: src}}}}
  data:
{entries}
"#
        )
    };
    let both = "  - match: {secretKey: crt, remoteRef: {remoteKey: tls, property: crt}}\n  - match: {secretKey: key, remoteRef: {remoteKey: tls, property: key}}";
    env.apply(&push(both)).await.unwrap();
    wait_push(&env, "push", "True", "Synced").await;
    assert_eq!(
        bao.read1(&mnt, "tls").await.unwrap(),
        json!({"crt": cert, "key": "k-1", "custom_metadata": {"managed-by": "external-secrets"}})
    );

    // Read back through an ExternalSecret: the certificate byte for byte.
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: back}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: vault, kind: SecretStore}
  target: {name: back}
  data:
  - secretKey: crt
    remoteRef: {key: tls, property: crt}
"#,
    )
    .await
    .unwrap();
    let back = env
        .wait_secret("back", "read back", |s| s.data.is_some())
        .await;
    assert_eq!(secret_strings(&back)["crt"], cert);

    // Without the mark: refused.
    bao.ok_in(None, "PUT", &format!("{mnt}/plain"), json!({"a": "theirs"}))
        .await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {name: takeover}
spec:
  secretStoreRefs: [{name: vault}]
  selector: {secret: {name: src}}
  data:
  - match: {secretKey: key, remoteRef: {remoteKey: plain, property: a}}
"#,
    )
    .await
    .unwrap();
    assert_eq!(
        wait_push(&env, "takeover", "False", "Errored").await,
        "set secret failed: could not write remote ref plain to target secretstore vault: secret not managed by external-secrets"
    );
    assert_eq!(
        bao.read1(&mnt, "plain").await.unwrap(),
        json!({"a": "theirs"})
    );

    // One entry dropped: its property goes, the other stays (with the mark).
    env.apply(&push(
        "  - match: {secretKey: crt, remoteRef: {remoteKey: tls, property: crt}}",
    ))
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), "key property removed", || async {
        let tls = bao.read1(&mnt, "tls").await?;
        (tls == json!({"crt": cert, "custom_metadata": {"managed-by": "external-secrets"}}))
            .then_some(())
    })
    .await
    .unwrap();
    wait_gone(&env, "push").await;
    assert!(
        bao.read1(&mnt, "tls").await.is_none(),
        "deleted with its PushSecret"
    );
}

/// A proxy in front of bao that, before forwarding a write to `path`, writes there itself
/// while `races` is above zero: another writer landing between esox's read and its write.
struct RacingProxy {
    url: String,
    races: Arc<AtomicUsize>,
}

impl RacingProxy {
    async fn start(upstream: &str, path: String) -> RacingProxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let races = Arc::new(AtomicUsize::new(0));
        let left = races.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while let Ok((mut client, _)) = listener.accept().await {
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(p + 4);
                    }
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => break None,
                        Ok(k) => req.extend_from_slice(&buf[..k]),
                    }
                };
                let Some(head_end) = head_end else { continue };
                let head = String::from_utf8_lossy(&req[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while req.len() < head_end + length {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&buf[..k]),
                    }
                }
                let line = head.lines().next().unwrap_or_default().to_string();
                let is_write = (line.starts_with("POST ") || line.starts_with("PUT "))
                    && line.contains(&format!(" /v1/{path} "));
                if is_write
                    && left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                        .is_ok()
                {
                    n += 1;
                    let bao = Bao::new();
                    let (mount, key) = path.split_once("/data/").unwrap();
                    let mut data = bao
                        .read2(None, mount, key)
                        .await
                        .map(|d| d["data"].clone())
                        .unwrap_or(json!({}));
                    data["other-writer"] = json!(n.to_string());
                    bao.ok_in(None, "POST", &path, json!({ "data": data }))
                        .await;
                }
                if let Some(end) = req.windows(2).position(|w| w == b"\r\n") {
                    req.splice(end + 2..end + 2, b"Connection: close\r\n".iter().copied());
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = server.write_all(&req).await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        RacingProxy { url, races }
    }
}

/// Check-and-set: a secret another writer changes between esox's read and its write is not
/// clobbered. esox's write fails Vault's check, esox reads again and merges its property
/// into the other writer's data; a writer that always gets in between gets a clear error.
#[tokio::test]
async fn a_concurrent_writer_is_not_clobbered() {
    let env = TestEnv::new("pv-cas").await;
    let bao = Bao::new();
    let mnt = format!("mc-{}", env.ns);
    bao.mount(None, &mnt, "2").await;
    let proxy = RacingProxy::start(&bao.url, format!("{mnt}/data/raced")).await;
    env.apply(&token_secret()).await.unwrap();
    env.apply(&vault_store("vault", &proxy.url, &mnt, "v2"))
        .await
        .unwrap();
    source(&env, "src", &[("a", "first")]).await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push
  annotations: {esox.dev/push-on-source-change: "true"}
spec:
  secretStoreRefs: [{name: vault}]
  selector: {secret: {name: src}}
  data:
  - match: {secretKey: a, remoteRef: {remoteKey: raced, property: a}}
"#,
    )
    .await
    .unwrap();
    wait_push(&env, "push", "True", "Synced").await;
    assert_eq!(
        bao.read2(None, &mnt, "raced").await.unwrap()["data"],
        json!({"a": "first"})
    );

    // Another writer gets in once: esox's write is refused, it reads again and keeps the
    // other writer's key.
    proxy.races.store(1, Ordering::SeqCst);
    source(&env, "src", &[("a", "second")]).await;
    wait_for(Duration::from_secs(30), "both writers' data", || async {
        let d = bao.read2(None, &mnt, "raced").await?["data"].clone();
        (d == json!({"a": "second", "other-writer": "1"})).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(proxy.races.load(Ordering::SeqCst), 0);
    wait_push(&env, "push", "True", "Synced").await;

    // Another writer always gets in: esox gives up with a clear error and clobbers nothing.
    proxy.races.store(1000, Ordering::SeqCst);
    source(&env, "src", &[("a", "third")]).await;
    let message = wait_push(&env, "push", "False", "Errored").await;
    assert!(
        message.starts_with(
            "set secret failed: could not write remote ref raced to target secretstore vault: "
        ) && message.contains("changed by another writer while esox wrote it, twice"),
        "{message}"
    );
    let d = bao.read2(None, &mnt, "raced").await.unwrap()["data"].clone();
    assert_eq!(d["a"], "second", "esox's value never overwrote the other's");
    assert!(d["other-writer"].as_str().unwrap().parse::<u32>().unwrap() >= 3);
    proxy.races.store(0, Ordering::SeqCst);
}

/// The `openBao` store block, in a bao namespace: push, the mark and deletion happen in that
/// namespace's mount, nowhere else.
#[tokio::test]
async fn openbao_block_pushes_in_its_namespace() {
    let env = TestEnv::new("pv-bao").await;
    let bao = Bao::new();
    let team = format!("team-{}", env.ns);
    bao.ok_in(None, "POST", &format!("sys/namespaces/{team}"), json!({}))
        .await;
    bao.mount(Some(&team), "kv", "2").await;
    env.apply(&token_secret()).await.unwrap();
    env.apply(&format!(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: bao}}
spec:
  provider:
    openBao:
      server: "{url}"
      namespace: {team}
      auth: {{tokenSecretRef: {{name: bao-token, key: token}}}}
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: push}}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{{name: bao}}]
  selector: {{secret: {{name: src}}}}
  data:
  - match: {{secretKey: token, remoteRef: {{remoteKey: ci/token, property: value}}}}
"#,
        url = bao.url
    ))
    .await
    .unwrap();
    source(&env, "src", &[("token", "tok-123")]).await;
    wait_push(&env, "push", "True", "Synced").await;
    let pushed = bao.read2(Some(&team), "kv", "ci/token").await.unwrap();
    assert_eq!(pushed["data"], json!({"value": "tok-123"}));
    assert_eq!(
        pushed["metadata"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );
    assert!(
        bao.read2(None, "kv", "ci/token").await.is_none(),
        "nothing outside the namespace"
    );
    let stores: Api<esox::api::SecretStore> = Api::namespaced(env.client.clone(), &env.ns);
    wait_for(Duration::from_secs(30), "store capabilities", || async {
        let caps = stores.get("bao").await.ok()?.status?.capabilities?;
        (caps == "ReadWrite").then_some(())
    })
    .await
    .unwrap();
    wait_gone(&env, "push").await;
    assert!(bao.metadata2(Some(&team), "kv", "ci/token").await.is_none());
}

/// The shipped binary at trace level, pushing to bao (a create, a check-and-set conflict and
/// its re-read, a refusal, a delete): no pushed value reaches its log, an Event or a status.
#[tokio::test]
async fn the_binary_at_trace_logs_no_pushed_value() {
    let env = TestEnv::without_controller("pv-trace").await;
    let bao = Bao::new();
    let mnt = format!("mt-{}", env.ns);
    bao.mount(None, &mnt, "2").await;
    let proxy = RacingProxy::start(&bao.url, format!("{mnt}/data/raced")).await;
    let canary = format!("pv-trace-canary-{}", env.ns);
    bao.ok_in(
        None,
        "POST",
        &format!("{mnt}/data/unowned"),
        json!({"data": {"x": "theirs"}}),
    )
    .await;
    env.apply(&token_secret()).await.unwrap();
    env.apply(&vault_store("vault", &proxy.url, &mnt, "v2"))
        .await
        .unwrap();
    source(&env, "src", &[("a", &format!("{canary}-1"))]).await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push
  annotations: {esox.dev/push-on-source-change: "true"}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{name: vault}]
  selector: {secret: {name: src}}
  data:
  - match: {secretKey: a, remoteRef: {remoteKey: raced, property: a}}
  - match: {remoteRef: {remoteKey: whole}}
---
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {name: takeover}
spec:
  secretStoreRefs: [{name: vault}]
  selector: {secret: {name: src}}
  data:
  - match: {secretKey: a, remoteRef: {remoteKey: unowned, property: x}}
"#,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("esox.log");
    let controller = env.spawn_controller_logging(
        &[("RUST_LOG", "trace")],
        std::fs::File::create(&log_path).unwrap(),
    );
    wait_push(&env, "push", "True", "Synced").await;
    wait_push(&env, "takeover", "False", "Errored").await;
    proxy.races.store(1, Ordering::SeqCst);
    source(&env, "src", &[("a", &format!("{canary}-2"))]).await;
    wait_for(Duration::from_secs(30), "the raced push", || async {
        let d = bao.read2(None, &mnt, "raced").await?["data"].clone();
        (d["a"] == format!("{canary}-2") && d["other-writer"] == "1").then_some(())
    })
    .await
    .unwrap();
    wait_gone(&env, "push").await;
    assert!(bao.read2(None, &mnt, "whole").await.is_none());
    drop(controller);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("check-and-set"),
        "the conflict was logged (without the value)"
    );
    esox_tests::assert_no_secret_value(&env, &[&log_path], &canary).await;
    assert!(!push_statuses(&env).await.contains(&canary));
}
