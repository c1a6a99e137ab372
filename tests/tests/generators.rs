//! Generators: ESO's Password generator, run by the Wasm plugin runtime, referenced from
//! `dataFrom[].sourceRef.generatorRef` as ESO manifests do.

use std::time::Duration;

use esox_tests::manifests::{PASSWORD_GENERATOR, generated_secret};
use esox_tests::{TestEnv, secret_strings, wait_for};

/// An ExternalSecret `name` of the `db-password` generator, regenerated every second.
fn es(name: &str) -> String {
    generated_secret(name, "Password", "db-password", "1s")
}

/// [`es`] under `refreshPolicy: CreatedOnce`.
fn created_once(name: &str) -> String {
    es(name).replacen("spec:\n", "spec:\n  refreshPolicy: CreatedOnce\n", 1)
}

fn password_of(env: &TestEnv, s: &k8s_openapi::api::core::v1::Secret) -> String {
    let _ = env;
    secret_strings(s)["password"].clone()
}

#[tokio::test]
async fn password_generator_rotates_on_refresh_and_holds_under_created_once() {
    let env = TestEnv::new("gen-password").await;
    env.apply(PASSWORD_GENERATOR).await.unwrap();
    env.apply(&es("rotating")).await.unwrap();
    env.apply(&created_once("fixed")).await.unwrap();

    let first = env
        .wait_secret("rotating", "generated", |s| s.data.is_some())
        .await;
    let p1 = password_of(&env, &first);
    assert_eq!(p1.chars().count(), 20);
    assert_eq!(p1.chars().filter(|c| c.is_ascii_digit()).count(), 4);
    assert!(!p1.chars().any(|c| c.is_ascii_uppercase()), "noUpper");
    let mut seen = std::collections::HashSet::new();
    assert!(p1.chars().all(|c| seen.insert(c)), "no repeats");

    // Rotation on refreshInterval.
    let rotated = wait_for(Duration::from_secs(20), "a rotated password", || async {
        let s = env.secrets().get("rotating").await.ok()?;
        let p = secret_strings(&s)["password"].clone();
        (p != p1).then_some(p)
    })
    .await
    .unwrap();
    assert_eq!(rotated.chars().count(), 20);

    // CreatedOnce keeps the first value.
    let fixed = password_of(
        &env,
        &env.wait_secret("fixed", "generated once", |s| s.data.is_some())
            .await,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        password_of(&env, &env.secrets().get("fixed").await.unwrap()),
        fixed,
        "CreatedOnce does not rotate"
    );
    // Every generation is a plugin call, counted with its outcome.
    let m = env.metrics();
    assert!(
        m.contains(r#"esox_plugin_calls_total{plugin="password",outcome="ok"}"#),
        "{m}"
    );
    assert!(
        m.contains("esox_plugin_call_duration_seconds_count{plugin=\"password\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn a_missing_generator_is_reported() {
    let env = TestEnv::new("gen-missing").await;
    env.apply(&es("orphan")).await.unwrap();
    let msg = env.wait_ready("orphan", "False", "SecretSyncedError").await;
    assert!(
        msg.contains("error using generator: Password \"db-password\" not found"),
        "{msg}"
    );
}

#[tokio::test]
async fn uuid_generator_from_an_eso_manifest() {
    let env = TestEnv::new("gen-uuid").await;
    env.apply(r#"
apiVersion: generators.external-secrets.io/v1alpha1
kind: UUID
metadata: {name: instance-id}
spec: {}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: ids}
spec:
  refreshInterval: "0"
  target: {name: ids}
  dataFrom:
  - sourceRef:
      generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: UUID, name: instance-id}
    rewrite:
    - regexp: {source: '^uuid$', target: INSTANCE_ID}
"#).await.unwrap();
    let s = env.wait_secret("ids", "uuid", |s| s.data.is_some()).await;
    let id = secret_strings(&s)["INSTANCE_ID"].clone();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "version 4: {id}");
    assert!(
        id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        "{id}"
    );
}

#[tokio::test]
async fn fake_generator_returns_its_data() {
    let env = TestEnv::new("gen-fake").await;
    env.apply(
        r#"
apiVersion: generators.external-secrets.io/v1alpha1
kind: Fake
metadata: {name: static}
spec:
  data: {username: app, region: eu-west-1}
"#,
    )
    .await
    .unwrap();
    env.apply(&generated_secret("from-fake", "Fake", "static", "1h"))
        .await
        .unwrap();
    let s = env
        .wait_secret("from-fake", "fake data", |s| s.data.is_some())
        .await;
    assert_eq!(
        secret_strings(&s),
        [
            ("region".to_string(), "eu-west-1".to_string()),
            ("username".to_string(), "app".to_string())
        ]
        .into()
    );
}

/// ESO's ClusterGenerator: one cluster-scoped generator used from any namespace, with the
/// spec under ESO's key for its kind.
#[tokio::test]
async fn cluster_generator_serves_every_namespace() {
    let env = TestEnv::new("gen-cluster").await;
    let name = format!("{}-pw", env.ns);
    env.apply(&format!(
        r#"
apiVersion: generators.external-secrets.io/v1alpha1
kind: ClusterGenerator
metadata: {{name: {name}}}
spec:
  kind: Password
  generator:
    passwordSpec:
      length: 32
      digits: 5
      symbols: 0
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: ClusterGenerator
metadata: {{name: {name}-ssh}}
spec:
  kind: SSHKey
  generator:
    sshKeySpec: {{keyType: ed25519}}
"#
    ))
    .await
    .unwrap();
    let es = |es_name: &str, gen_name: &str| {
        generated_secret(es_name, "ClusterGenerator", gen_name, "1h")
    };
    env.apply(&es("from-cluster", &name)).await.unwrap();
    let s = env
        .wait_secret("from-cluster", "secret from the ClusterGenerator", |s| {
            s.data.is_some()
        })
        .await;
    let p = secret_strings(&s)["password"].clone();
    assert_eq!(p.chars().count(), 32);
    assert_eq!(p.chars().filter(|c| c.is_ascii_digit()).count(), 5);
    env.apply(&es("unsupported", &format!("{name}-ssh")))
        .await
        .unwrap();
    let msg = env
        .wait_ready("unsupported", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("generator kind SSHKey is not supported"),
        "{msg}"
    );
    env.apply(&es("missing", "no-such-cluster-generator"))
        .await
        .unwrap();
    let msg = env
        .wait_ready("missing", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("ClusterGenerator \"no-such-cluster-generator\" not found"),
        "{msg}"
    );
    let api: kube::Api<esox::api::generators::ClusterGenerator> =
        kube::Api::all(env.client.clone());
    for n in [name.clone(), format!("{name}-ssh")] {
        let _ = api.delete(&n, &Default::default()).await;
    }
}

/// ESO's STSSessionToken generator against moto's STS: short-lived credentials under ESO's
/// keys, authenticated like an AWS store (static keys here), also through a ClusterGenerator.
#[tokio::test]
async fn sts_session_token_generates_short_lived_credentials() {
    let env = TestEnv::new("gen-sts").await;
    let cluster = format!("{}-sts", env.ns);
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: aws-creds}}
stringData: {{access-key: AKIDESOXTEST, secret-key: esox-test-secret}}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: STSSessionToken
metadata: {{name: session}}
spec:
  region: us-east-1
  requestParameters: {{sessionDuration: 900}}
  auth:
    secretRef:
      accessKeyIDSecretRef: {{name: aws-creds, key: access-key}}
      secretAccessKeySecretRef: {{name: aws-creds, key: secret-key}}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: ClusterGenerator
metadata: {{name: {cluster}}}
spec:
  kind: STSSessionToken
  generator:
    stsSessionTokenSpec:
      region: us-east-1
      auth:
        secretRef:
          accessKeyIDSecretRef: {{name: aws-creds, key: access-key, namespace: {ns}}}
          secretAccessKeySecretRef: {{name: aws-creds, key: secret-key, namespace: {ns}}}
"#,
        ns = env.ns
    ))
    .await
    .unwrap();
    let es = |name: &str, kind: &str, gen_name: &str| generated_secret(name, kind, gen_name, "1h");
    env.apply(&es("aws-session", "STSSessionToken", "session"))
        .await
        .unwrap();
    env.apply(&es("aws-session-cluster", "ClusterGenerator", &cluster))
        .await
        .unwrap();
    for name in ["aws-session", "aws-session-cluster"] {
        let s = env
            .wait_secret(name, "session credentials", |s| s.data.is_some())
            .await;
        let d = secret_strings(&s);
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "access_key_id",
                "expiration",
                "secret_access_key",
                "session_token"
            ],
            "{name}"
        );
        assert!(!d["access_key_id"].is_empty() && !d["session_token"].is_empty());
        let exp: i64 = d["expiration"].parse().expect("expiration is Unix seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(exp > now, "{name}: expires in the future");
    }
    assert!(
        !esox_tests::logs().contains(
            &secret_strings(
                &env.wait_secret("aws-session", "", |s| s.data.is_some())
                    .await
            )["secret_access_key"]
        )
    );
    let api: kube::Api<esox::api::generators::ClusterGenerator> =
        kube::Api::all(env.client.clone());
    let _ = api.delete(&cluster, &Default::default()).await;
}

/// `refreshPolicy: CreatedOnce` keeps the generated value for the life of the ExternalSecret,
/// also across controller restarts (ESO #6640, #4756): a new controller process, and a
/// force-sync, leave the password alone.
#[tokio::test]
async fn created_once_survives_a_controller_restart() {
    let env = TestEnv::without_controller("gen-restart").await;
    env.apply(PASSWORD_GENERATOR).await.unwrap();
    env.apply(&created_once("kept")).await.unwrap();
    let first = env.spawn_controller(&[]);
    let s = env
        .wait_secret("kept", "generated once", |s| s.data.is_some())
        .await;
    let p1 = password_of(&env, &s);
    // The status is written after the Secret: a controller killed between the two has not
    // recorded the sync, and the next one rightly generates again (ESO too).
    env.wait_ready("kept", "True", "SecretSynced").await;
    drop(first);
    let second = env.spawn_controller(&[]);
    env.apply(&created_once("kept").replacen(
        "metadata:\n  name: kept\n",
        "metadata:\n  name: kept\n  annotations:\n    force-sync: after-restart\n",
        1,
    ))
    .await
    .unwrap();
    // Give the new controller time to reconcile (refreshInterval is 1s), then check.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = env
        .wait_secret("kept", "still the first password", |s| s.data.is_some())
        .await;
    assert_eq!(
        password_of(&env, &s),
        p1,
        "CreatedOnce kept the value across the restart"
    );
    // The new controller did reconcile it (so the value was kept, not merely left unseen).
    let reconciled = second
        .metrics()
        .await
        .lines()
        .any(|l| l.starts_with("externalsecret_sync_calls_total{") && !l.ends_with(" 0"));
    assert!(
        reconciled,
        "the restarted controller reconciled the ExternalSecret"
    );
}

/// STSSessionToken credentials are renewed before they expire even when `refreshInterval` is
/// longer than their lifetime, and a restarted controller still knows when (the deadline is on
/// the Secret). moto issues credentials for any `sessionDuration`, so 45 s keeps this short;
/// esox renews a third of the lifetime early, i.e. 15 s before expiry.
#[tokio::test]
async fn sts_credentials_are_renewed_before_they_expire() {
    let env = TestEnv::without_controller("gen-sts-renew").await;
    env.apply(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: aws-creds}
stringData: {access-key: AKIDESOXTEST, secret-key: esox-test-secret}
---
apiVersion: generators.external-secrets.io/v1alpha1
kind: STSSessionToken
metadata: {name: session}
spec:
  region: us-east-1
  requestParameters: {sessionDuration: 45}
  auth:
    secretRef:
      accessKeyIDSecretRef: {name: aws-creds, key: access-key}
      secretAccessKeySecretRef: {name: aws-creds, key: secret-key}
"#,
    )
    .await
    .unwrap();
    env.apply(&generated_secret(
        "session",
        "STSSessionToken",
        "session",
        "1h",
    ))
    .await
    .unwrap();
    let first = env.spawn_controller(&[]);
    let s = env
        .wait_secret("session", "session credentials", |s| s.data.is_some())
        .await;
    let expires: i64 = secret_strings(&s)["expiration"].parse().unwrap();
    let renew_at: jiff::Timestamp = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("esox.dev/renew-at"))
        .expect("the Secret says when it is renewed")
        .parse()
        .unwrap();
    assert!(
        (renew_at.as_second() - (expires - 15)).abs() <= 1,
        "renewed 15 s before expiry: renew-at {renew_at}, expires {expires}"
    );
    drop(first);
    let _second = env.spawn_controller(&[]);
    let api = env.secrets();
    let renewed = wait_for(Duration::from_secs(60), "renewed credentials", || {
        let api = api.clone();
        async move {
            let s = api.get_opt("session").await.ok().flatten()?;
            let e: i64 = secret_strings(&s).get("expiration")?.parse().ok()?;
            (e != expires).then_some((e, jiff::Timestamp::now()))
        }
    })
    .await
    .unwrap();
    let (new_expires, seen) = renewed;
    assert!(
        seen.as_second() < expires,
        "renewed at {seen}, before the old credentials expired ({expires})"
    );
    assert!(new_expires > expires, "new credentials outlive the old");
}
