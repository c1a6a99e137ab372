//! PushSecret to AWS Parameter Store against moto: what a user checks in SSM afterwards. The
//! value byte for byte, its type and tags (ESO's `managed-by`), ESO's whole-Secret encodings,
//! properties merged into one parameter, a parameter esox does not manage left alone with
//! ESO's status and event, `updatePolicy: IfNotExists`, `deletionPolicy: Delete`, and no
//! `PutParameter` when nothing changed (the parameter's version and esox's call count).

use std::time::Duration;

use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging};
use base64::Engine as _;
use esox_tests::manifests::aws_static_store;
use esox_tests::push::{source, wait_gone, wait_push};
use esox_tests::{TestEnv, aws_config, wait_for};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const KEY: &str = "AKIDESOXTEST:esox-test-secret";

async fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&aws_config().await)
}

/// A parameter as a user sees it: decrypted value, type, version and tags.
#[derive(Debug)]
struct Param {
    value: String,
    type_: Option<ParameterType>,
    version: i64,
    tags: Vec<(String, String)>,
}

async fn param(name: &str) -> Option<Param> {
    let ssm = ssm().await;
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .ok()?;
    let p = out.parameter()?;
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<(String, String)> = tags
        .tag_list()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    Some(Param {
        value: p.value().unwrap_or_default().to_string(),
        type_: p.r#type().cloned(),
        version: p.version(),
        tags,
    })
}

/// esox's count of a Parameter Store call (`externalsecret_provider_api_calls_count`).
fn calls(env: &TestEnv, call: &str) -> f64 {
    env.metrics()
        .lines()
        .filter(|l| {
            l.contains("provider=\"AWS/ParameterStore\"")
                && l.contains(&format!("call=\"{call}\""))
                && l.contains("status=\"success\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn managed_by() -> (String, String) {
    ("managed-by".into(), "external-secrets".into())
}

#[tokio::test]
async fn parameter_store_push_as_eso() {
    let env = TestEnv::new("pps").await;
    let ns = env.ns.clone();
    let canary = format!("pps-canary-{ns}");
    env.apply(&aws_static_store("ssm", "ParameterStore", KEY))
        .await
        .unwrap();
    source(&env, "src", &[("user", "admin"), ("password", &canary)]).await;
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push
  annotations: {{esox.dev/push-on-source-change: "true"}}
spec:
  refreshInterval: 1h
  deletionPolicy: Delete
  secretStoreRefs: [{{name: ssm}}]
  selector: {{secret: {{name: src}}}}
  data:
  - match: {{secretKey: password, remoteRef: {{remoteKey: /{ns}/db/password}}}}
    metadata:
      apiVersion: kubernetes.external-secrets.io/v1alpha1
      kind: PushSecretMetadata
      spec:
        secretType: SecureString
        description: the database password
        tags: {{team: payments}}
  - match: {{remoteRef: {{remoteKey: /{ns}/whole}}}}
  - match: {{remoteRef: {{remoteKey: /{ns}/whole-decoded}}}}
    metadata:
      apiVersion: kubernetes.external-secrets.io/v1alpha1
      kind: PushSecretMetadata
      spec: {{encodeAsDecoded: true}}
  - match: {{secretKey: user, remoteRef: {{remoteKey: /{ns}/app, property: user}}}}
"#
    ))
    .await
    .unwrap();
    assert_eq!(
        wait_push(&env, "push", "True", "Synced").await,
        "PushSecret synced successfully"
    );
    let password = param(&format!("/{ns}/db/password")).await.expect("pushed");
    assert_eq!(password.value, canary);
    assert_eq!(password.type_, Some(ParameterType::SecureString));
    assert_eq!(
        password.tags,
        [managed_by(), ("team".into(), "payments".into())]
    );
    // ESO's encodings of a whole Secret: base64 values, or strings with encodeAsDecoded.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let whole = param(&format!("/{ns}/whole")).await.unwrap();
    assert_eq!(
        whole.value,
        format!(
            r#"{{"password":"{}","user":"{}"}}"#,
            b64(&canary),
            b64("admin")
        )
    );
    assert_eq!(whole.type_, Some(ParameterType::String));
    assert_eq!(whole.tags, [managed_by()]);
    assert_eq!(
        param(&format!("/{ns}/whole-decoded")).await.unwrap().value,
        format!(r#"{{"password":"{canary}","user":"admin"}}"#)
    );
    // `property` is ignored, as ESO ignores it on Parameter Store: the raw value is the
    // whole parameter.
    let app = param(&format!("/{ns}/app")).await.unwrap();
    assert_eq!(app.value, "admin");

    // Nothing changed: no PutParameter, no new version.
    let versions = [password.version, whole.version, app.version];
    let (gets, puts) = (calls(&env, "GetParameter"), calls(&env, "PutParameter"));
    let api: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    api.patch(
        "push",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"repush": "1"}}})),
    )
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), "esox reading again", || async {
        (calls(&env, "GetParameter") >= gets + 4.0).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls(&env, "PutParameter"), puts, "no PutParameter");
    for (name, before) in ["db/password", "whole", "app"].iter().zip(versions) {
        assert_eq!(
            param(&format!("/{ns}/{name}")).await.unwrap().version,
            before,
            "{name}: no new version"
        );
    }

    // The source changes: the values follow.
    source(&env, "src", &[("user", "admin"), ("password", "rotated")]).await;
    wait_for(Duration::from_secs(30), "rotated password", || async {
        (param(&format!("/{ns}/db/password")).await?.value == "rotated").then_some(())
    })
    .await
    .unwrap();
    assert_eq!(param(&format!("/{ns}/app")).await.unwrap().value, "admin");

    // A parameter esox does not manage: refused with ESO's message and event, and kept.
    let ssm = ssm().await;
    ssm.put_parameter()
        .name(format!("/{ns}/unowned"))
        .value("theirs")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: takeover}}
spec:
  deletionPolicy: Delete
  secretStoreRefs: [{{name: ssm}}]
  selector: {{secret: {{name: src}}}}
  data:
  - match: {{secretKey: user, remoteRef: {{remoteKey: /{ns}/unowned}}}}
"#
    ))
    .await
    .unwrap();
    assert_eq!(
        wait_push(&env, "takeover", "False", "Errored").await,
        format!(
            "set secret failed: could not write remote ref /{ns}/unowned to target secretstore ssm: secret not managed by external-secrets"
        )
    );
    let events = env.events_for("takeover").await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Errored: set secret failed")),
        "{events:?}"
    );
    wait_gone(&env, "takeover").await;
    let unowned = param(&format!("/{ns}/unowned")).await.unwrap();
    assert_eq!((unowned.value.as_str(), unowned.version), ("theirs", 1));

    // IfNotExists: an existing parameter is left as it is; a missing one is created.
    ssm.put_parameter()
        .name(format!("/{ns}/preset"))
        .value("keep")
        .r#type(ParameterType::String)
        .tags(
            aws_sdk_ssm::types::Tag::builder()
                .key("managed-by")
                .value("external-secrets")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    env.apply(&format!(
        r#"
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata: {{name: ine}}
spec:
  updatePolicy: IfNotExists
  secretStoreRefs: [{{name: ssm}}]
  selector: {{secret: {{name: src}}}}
  data:
  - match: {{secretKey: user, remoteRef: {{remoteKey: /{ns}/preset}}}}
  - match: {{secretKey: user, remoteRef: {{remoteKey: /{ns}/fresh}}}}
"#
    ))
    .await
    .unwrap();
    assert_eq!(
        wait_push(&env, "ine", "True", "Synced").await,
        "PushSecret synced successfully. Existing secrets in providers unchanged."
    );
    assert_eq!(param(&format!("/{ns}/preset")).await.unwrap().value, "keep");
    assert_eq!(param(&format!("/{ns}/fresh")).await.unwrap().value, "admin");

    // deletionPolicy Delete: the PushSecret's parameters go with it; others stay.
    wait_gone(&env, "push").await;
    for name in ["db/password", "whole", "whole-decoded", "app"] {
        assert!(
            param(&format!("/{ns}/{name}")).await.is_none(),
            "{name} deleted"
        );
    }
    assert!(param(&format!("/{ns}/unowned")).await.is_some());
    assert!(param(&format!("/{ns}/preset")).await.is_some());

    esox_tests::assert_no_secret_value(&env, &[], &canary).await;
    let list = api.list(&Default::default()).await.unwrap();
    let statuses =
        serde_json::to_string(&list.items.iter().map(|p| &p.status).collect::<Vec<_>>()).unwrap();
    assert!(!statuses.contains(&canary));
}
