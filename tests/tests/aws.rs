//! The AWS provider against moto (Secrets Manager, Parameter Store, STS) and the real
//! apiserver (TokenRequest for IRSA-style `jwt` auth).

use std::time::Duration;

use esox_tests::manifests::{
    SEED_CREDS as CREDS, aws_static_store, irsa_cluster_store, seed_api_key, seed_db_credentials,
};
use esox_tests::{TestEnv, aws_config, put_aws_secret, secret_strings};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// Static keys moto accepts.
const KEY: &str = "AKIDESOXTEST:esox-test-secret";

async fn irsa_service_account(env: &TestEnv, name: &str) {
    let api: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.into());
    sa.metadata.annotations = Some(
        [(
            "eks.amazonaws.com/role-arn".to_string(),
            "arn:aws:iam::123456789012:role/esox-irsa".to_string(),
        )]
        .into(),
    );
    api.create(&PostParams::default(), &sa).await.unwrap();
}

#[tokio::test]
async fn seeds_with_irsa_cluster_store() {
    let env = TestEnv::new("aws-irsa").await;
    put_aws_secret("production/db/credentials", CREDS, &[]).await;
    put_aws_secret(
        "/production/api-key",
        r#"{"api_token_value":"tok-aws"}"#,
        &[],
    )
    .await;
    irsa_service_account(&env, "external-secrets-sa").await;
    let css = format!("aws-secrets-manager-{}", env.ns);
    // The seeds' ClusterSecretStore (name and ServiceAccount namespace made unique for the test).
    env.apply(&format!(
        "{}---\n{}---\n{}",
        irsa_cluster_store(&css, &env.ns),
        seed_db_credentials(&css, "ClusterSecretStore"),
        seed_api_key(&css, "ClusterSecretStore"),
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("db-credentials-native", "synced from AWS", |s| {
            s.data.is_some()
        })
        .await;
    let d = secret_strings(&s);
    assert_eq!(
        (d["username"].as_str(), d["password"].as_str()),
        ("admin", "superSecretPassword123")
    );
    let s = env
        .wait_secret("api-credentials", "api token from AWS", |s| {
            s.data.is_some()
        })
        .await;
    assert_eq!(secret_strings(&s)["API_TOKEN"], "tok-aws");
    env.wait_ready("db-credentials-es", "True", "SecretSynced")
        .await;

    // A ServiceAccount without the role annotation gives a precise error.
    let api: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &env.ns);
    let mut bare = ServiceAccount::default();
    bare.metadata.name = Some("no-role".into());
    api.create(&PostParams::default(), &bare).await.unwrap();
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: norole}
spec:
  provider:
    aws:
      service: SecretsManager
      region: us-east-1
      auth: {jwt: {serviceAccountRef: {name: no-role}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: norole}
spec:
  secretStoreRef: {name: norole}
  data:
  - {secretKey: v, remoteRef: {key: production/db/credentials}}
"#,
    )
    .await
    .unwrap();
    let msg = env.wait_ready("norole", "False", "SecretSyncedError").await;
    assert!(
        msg.contains(&format!(
            "ServiceAccount {}/no-role has no eks.amazonaws.com/role-arn annotation",
            env.ns
        )),
        "{msg}"
    );
}

#[tokio::test]
async fn secrets_manager_find_versions_decoding_and_deletion() {
    let env = TestEnv::new("aws-sm").await;
    let p = env.ns.clone();
    put_aws_secret(
        &format!("{p}/dev/app/backend-api"),
        r#"{"URL":"https://dev"}"#,
        &[("env", "dev"), ("owner", &p)],
    )
    .await;
    put_aws_secret(
        &format!("{p}/dev/app/worker"),
        "dev-worker",
        &[("env", "dev"), ("owner", &p)],
    )
    .await;
    put_aws_secret(
        &format!("{p}/prod/app/worker"),
        "prod-worker",
        &[("env", "prod"), ("owner", &p)],
    )
    .await;
    put_aws_secret(
        &format!("{p}/nested"),
        r#"{"a":{"b":{"c":"deep"}},"b64":"aGVsbG8="}"#,
        &[],
    )
    .await;
    let v1 = put_aws_secret(&format!("{p}/rotating"), "first", &[]).await;
    put_aws_secret(&format!("{p}/rotating"), "second", &[]).await;
    put_aws_secret(&format!("{p}/doomed"), "short-lived", &[]).await;

    env.apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: by-name}}
spec:
  secretStoreRef: {{name: aws}}
  dataFrom:
  - find: {{name: {{regexp: "^{p}/dev/app/.*"}}}}
    rewrite: [{{regexp: {{source: "^{p}/dev/app/(.*)", target: "$1"}}}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: by-tags}}
spec:
  secretStoreRef: {{name: aws}}
  dataFrom:
  - find: {{tags: {{owner: "{p}", env: prod}}}}
    rewrite: [{{regexp: {{source: "^{p}/prod/app/", target: "prod-"}}}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: by-path}}
spec:
  secretStoreRef: {{name: aws}}
  dataFrom:
  - find: {{path: "{p}/dev/"}}
    rewrite: [{{regexp: {{source: "^{p}/dev/app/", target: ""}}}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: by-name-and-path}}
spec:
  secretStoreRef: {{name: aws}}
  dataFrom:
  - find: {{path: "{p}/dev/", name: {{regexp: "worker$"}}}}
    rewrite: [{{regexp: {{source: "^{p}/dev/app/", target: ""}}}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: by-tags-and-path}}
spec:
  secretStoreRef: {{name: aws}}
  dataFrom:
  - find: {{path: "{p}/dev/", tags: {{env: dev}}}}
    rewrite: [{{regexp: {{source: "^{p}/dev/app/", target: ""}}}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: props}}
spec:
  secretStoreRef: {{name: aws}}
  data:
  - {{secretKey: deep, remoteRef: {{key: "{p}/nested", property: a.b.c}}}}
  - {{secretKey: tags, remoteRef: {{key: "{p}/dev/app/worker", metadataPolicy: Fetch}}}}
  - {{secretKey: env-tag, remoteRef: {{key: "{p}/dev/app/worker", metadataPolicy: Fetch, property: env}}}}
  - {{secretKey: decoded, remoteRef: {{key: "{p}/nested", property: b64, decodingStrategy: Base64}}}}
  - {{secretKey: current, remoteRef: {{key: "{p}/rotating"}}}}
  - {{secretKey: previous, remoteRef: {{key: "{p}/rotating", version: AWSPREVIOUS}}}}
  - {{secretKey: by-id, remoteRef: {{key: "{p}/rotating", version: "uuid/{v1}"}}}}
  dataFrom:
  - extract: {{key: "{p}/nested", property: a}}
    rewrite: [{{regexp: {{source: "^(.*)$", target: "nested-$1"}}}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: doomed}}
spec:
  refreshInterval: 1s
  secretStoreRef: {{name: aws}}
  target: {{deletionPolicy: Delete}}
  data:
  - {{secretKey: v, remoteRef: {{key: "{p}/doomed"}}}}
"#
    ))
    .await
    .unwrap();
    let get = |name: &'static str| {
        let env = &env;
        async move { secret_strings(&env.wait_secret(name, name, |s| s.data.is_some()).await) }
    };
    let by_name = get("by-name").await;
    assert_eq!(
        by_name.keys().collect::<Vec<_>>(),
        ["backend-api", "worker"]
    );
    assert_eq!(by_name["worker"], "dev-worker");
    let by_tags = get("by-tags").await;
    assert_eq!(
        by_tags.keys().collect::<Vec<_>>(),
        ["prod-worker"],
        "only secrets with both exact tag pairs match"
    );
    let both = get("by-name-and-path").await;
    assert_eq!(both.keys().collect::<Vec<_>>(), ["worker"]);
    let both = get("by-tags-and-path").await;
    assert_eq!(both.keys().collect::<Vec<_>>(), ["backend-api", "worker"]);
    let by_path = get("by-path").await;
    assert_eq!(
        by_path.keys().collect::<Vec<_>>(),
        ["backend-api", "worker"]
    );
    let props = get("props").await;
    assert_eq!(props["deep"], "deep");
    assert_eq!(
        props["tags"],
        format!(r#"{{"env":"dev","owner":"{p}"}}"#),
        "metadataPolicy Fetch serves the tags as JSON"
    );
    assert_eq!(props["env-tag"], "dev");
    assert_eq!(props["decoded"], "hello");
    assert_eq!(
        (
            props["current"].as_str(),
            props["previous"].as_str(),
            props["by-id"].as_str()
        ),
        ("second", "first", "first")
    );
    assert_eq!(props["nested-b"], r#"{"c":"deep"}"#, "extract with rewrite");

    get("doomed").await;
    let sm = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    sm.delete_secret()
        .secret_id(format!("{p}/doomed"))
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    env.wait_ready("doomed", "True", "SecretDeleted").await;
    assert!(env.secrets().get_opt("doomed").await.unwrap().is_none());

    // A missing remote secret under Retain: a precise message, nothing written.
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: missing}}
spec:
  secretStoreRef: {{name: aws}}
  data:
  - {{secretKey: v, remoteRef: {{key: "{p}/nope"}}}}
"#
    ))
    .await
    .unwrap();
    let msg = env
        .wait_ready("missing", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains(&format!("Secret does not exist: key \"{p}/nope\"")),
        "{msg}"
    );
    // The store validated its credentials with STS.
    env.wait_store("aws", |_, reason, _| reason == "Valid")
        .await;
    let m = env.metrics();
    assert!(
        m.contains(r#"provider="AWS/SecretsManager",call="ListSecrets",status="success""#),
        "{m}"
    );
}

#[tokio::test]
async fn parameter_store_get_and_path() {
    let env = TestEnv::new("aws-ssm").await;
    // Names under /aws are reserved by Parameter Store.
    let p = format!("/esox-test/{}", env.ns);
    let ssm = aws_sdk_ssm::Client::new(&aws_config().await);
    for (name, value) in [
        ("app/db-url", "postgres://db"),
        ("app/api-key", "k-123"),
        ("other/x", "no"),
    ] {
        ssm.put_parameter()
            .name(format!("{p}/{name}"))
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
    env.apply(&aws_static_store("ssm", "ParameterStore", KEY))
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: params}}
spec:
  secretStoreRef: {{name: ssm}}
  data:
  - {{secretKey: DB_URL, remoteRef: {{key: "{p}/app/db-url"}}}}
  dataFrom:
  - find: {{path: "{p}/app"}}
    rewrite: [{{regexp: {{source: "^{p}/app/", target: ""}}}}]
"#
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("params", "parameters", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(d["DB_URL"], "postgres://db");
    assert_eq!(d["api-key"], "k-123");
    assert!(!d.contains_key("x"));

    // Tags (exact pairs) and a version.
    ssm.add_tags_to_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(format!("{p}/other/x"))
        .tags(
            aws_sdk_ssm::types::Tag::builder()
                .key("team")
                .value(&env.ns)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name(format!("{p}/app/api-key"))
        .value("k-456")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: tagged}}
spec:
  secretStoreRef: {{name: ssm}}
  data:
  - {{secretKey: first, remoteRef: {{key: "{p}/app/api-key", version: "1"}}}}
  - {{secretKey: latest, remoteRef: {{key: "{p}/app/api-key"}}}}
  dataFrom:
  - find: {{tags: {{team: "{}"}}}}
    rewrite: [{{regexp: {{source: "^{p}/other/", target: "tagged-"}}}}]
"#,
        env.ns
    ))
    .await
    .unwrap();
    let d = secret_strings(
        &env.wait_secret("tagged", "tags and versions", |s| s.data.is_some())
            .await,
    );
    assert_eq!(
        (
            d["first"].as_str(),
            d["latest"].as_str(),
            d["tagged-x"].as_str()
        ),
        ("k-123", "k-456", "no")
    );
    assert_eq!(
        d.len(),
        3,
        "only the tagged parameter was found: {:?}",
        d.keys()
    );
    let _ = env
        .external_secrets()
        .patch(
            "params",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": "1"}}})),
        )
        .await;
}

/// Reads one counter sample from the Prometheus text output.
fn sample(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn many_external_secrets_on_one_key_share_one_call_per_refresh_cycle() {
    let env = TestEnv::new("aws-shared").await;
    let key = format!("{}/shared", env.ns);
    put_aws_secret(&key, r#"{"token":"shared"}"#, &[]).await;
    env.apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    let mut docs = String::new();
    for i in 0..6 {
        docs.push_str(&format!(
            r#"
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: es-{i}}}
spec:
  refreshInterval: 6s
  secretStoreRef: {{name: aws}}
  dataFrom:
  - extract: {{key: "{key}"}}
"#
        ));
    }
    env.apply(&docs).await.unwrap();
    for i in 0..6 {
        env.wait_secret(&format!("es-{i}"), "synced", |s| s.data.is_some())
            .await;
    }
    let calls = r#"externalsecret_provider_api_calls_count_total{provider="AWS/SecretsManager",call="GetSecretValue""#;
    let syncs = "externalsecret_sync_calls_total{";
    let before = env.metrics();
    tokio::time::sleep(Duration::from_secs(13)).await;
    let after = env.metrics();
    let (d_calls, d_syncs) = (
        sample(&after, calls) - sample(&before, calls),
        sample(&after, syncs) - sample(&before, syncs),
    );
    // Two refresh cycles of six ExternalSecrets: twelve syncs, about two provider calls.
    assert!(
        d_syncs >= 10,
        "ExternalSecrets kept refreshing: {d_syncs} syncs"
    );
    assert!(
        d_calls <= 4,
        "{d_calls} GetSecretValue calls for {d_syncs} syncs of one key"
    );
}

#[tokio::test]
async fn role_chain_with_external_id() {
    let env = TestEnv::new("aws-roles").await;
    let key = format!("{}/chained", env.ns);
    put_aws_secret(&key, "via-role-chain", &[]).await;
    env.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: aws-creds}}
stringData: {{id: AKIDBASE, secret: s}}
---
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {{name: chained}}
spec:
  provider:
    aws:
      service: SecretsManager
      region: us-east-1
      additionalRoles: ['arn:aws:iam::123456789012:role/hop']
      role: arn:aws:iam::123456789012:role/final
      externalID: ext-123
      sessionTags: [{{key: team, value: payments}}]
      transitiveTagKeys: [team]
      auth: {{secretRef: {{accessKeyIDSecretRef: {{name: aws-creds, key: id}}, secretAccessKeySecretRef: {{name: aws-creds, key: secret}}}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: chained}}
spec:
  secretStoreRef: {{name: chained}}
  data:
  - {{secretKey: v, remoteRef: {{key: "{key}"}}}}
"#
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("chained", "synced through the role chain", |s| {
            s.data.is_some()
        })
        .await;
    assert_eq!(secret_strings(&s)["v"], "via-role-chain");
    // STS says who we are after the chain: the final role, assumed by esox. (moto keeps data
    // per account, so the roles live in the account the secret was created in.)
    let (_, _, msg) = env
        .wait_store("chained", |_, reason, _| reason == "Valid")
        .await;
    assert!(msg.contains("assumed-role/final/esox"), "{msg}");
}

#[tokio::test]
async fn single_gets_issued_together_are_batched() {
    let env = TestEnv::new("aws-batch").await;
    let mut data = String::new();
    for i in 0..12 {
        put_aws_secret(&format!("{}/key-{i}", env.ns), &format!("value-{i}"), &[]).await;
        data.push_str(&format!(
            "  - {{secretKey: k{i}, remoteRef: {{key: \"{}/key-{i}\"}}}}\n",
            env.ns
        ));
    }
    env.apply(&aws_static_store("aws", "SecretsManager", KEY))
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: many-keys}}
spec:
  secretStoreRef: {{name: aws}}
  data:
{data}"#
    ))
    .await
    .unwrap();
    let s = env
        .wait_secret("many-keys", "twelve keys", |s| {
            s.data.as_ref().is_some_and(|d| d.len() == 12)
        })
        .await;
    assert_eq!(secret_strings(&s)["k7"], "value-7");
    let m = env.metrics();
    let batch = sample(
        &m,
        r#"externalsecret_provider_api_calls_count_total{provider="AWS/SecretsManager",call="BatchGetSecretValue",status="success"}"#,
    );
    let single = sample(
        &m,
        r#"externalsecret_provider_api_calls_count_total{provider="AWS/SecretsManager",call="GetSecretValue""#,
    );
    assert_eq!(
        (batch, single),
        (1, 0),
        "twelve keys in one BatchGetSecretValue call:\n{m}"
    );
}

#[tokio::test]
async fn store_validation_gives_clear_reasons() {
    let env = TestEnv::new("aws-validate").await;
    env.apply(
        r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: bad-region}
spec:
  provider:
    aws: {service: SecretsManager, region: moon-base}
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: no-creds-secret}
spec:
  provider:
    aws:
      service: SecretsManager
      region: us-east-1
      auth: {secretRef: {accessKeyIDSecretRef: {name: missing, key: id}, secretAccessKeySecretRef: {name: missing, key: secret}}}
"#,
    )
    .await
    .unwrap();
    let (ready, reason, msg) = env.wait_store("bad-region", |_, _, _| true).await;
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InvalidProviderConfig")
    );
    assert_eq!(msg, "region not found: moon-base");
    let (ready, reason, msg) = env.wait_store("no-creds-secret", |_, _, _| true).await;
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InvalidProviderConfig")
    );
    assert!(
        msg.contains(&format!(
            "spec.provider.aws.auth.secretRef.accessKeyIDSecretRef: cannot get Kubernetes \
             secret \"missing\" from namespace {:?}: not found",
            env.ns
        )),
        "{msg}"
    );
}
