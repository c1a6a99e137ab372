//! Hostile ExternalSecrets against the real apiserver: manifests the apiserver accepts but
//! that no controller can honour (overflowing or negative intervals, bad regexps, keys
//! Kubernetes refuses, values that are not what a `property` needs, data larger than a
//! Secret may be, template errors, thousands of entries). Each must end `Ready=False` with a
//! message that says what is wrong and a Warning event, while the controller keeps serving
//! everything else: a healthy ExternalSecret stays synced, a Secret synced before its
//! ExternalSecret turned hostile is kept as it was, and a new ExternalSecret syncs after all
//! of them. `refreshInterval: 9999999999h` also goes through controller restarts (it used to
//! panic the controller at every start).

use std::time::{Duration, Instant};

use esox_tests::{TestEnv, secret_strings, wait_for};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};

/// The remote data every case reads: good JSON, text, a 10 000-level JSON document, a value
/// with a NUL byte, names that are not Secret keys.
fn store() -> Value {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "store"},
        "spec": {"provider": {"fake": {"data": [
            {"key": "db", "value": r#"{"user":"admin","password":"p4ssw0rd-hostile"}"#},
            {"key": "text", "value": "plain text p4ssw0rd-hostile"},
            {"key": "deep", "value": deep},
            {"key": "binary", "value": "a\u{0}b\u{7f}p4ssw0rd-hostile"},
            {"key": "dir/a b", "value": "v1"},
            {"key": "dir/c d", "value": "v2"},
        ]}}}
    })
}

/// A store holding one value larger than a Secret may be (1 MiB): the SecretStore itself is
/// still under the apiserver's object limit.
fn big_store() -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "big"},
        "spec": {"provider": {"fake": {"data": [
            {"key": "big", "value": "x".repeat(1_100_000)},
        ]}}}
    })
}

fn external_secret(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("secretStoreRef").is_none() {
        spec["secretStoreRef"] = json!({"name": "store", "kind": "SecretStore"});
    }
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn user_from_db() -> Value {
    json!([{"secretKey": "user", "remoteRef": {"key": "db", "property": "user"}}])
}

/// (name, spec, what the Ready condition's message must say).
fn cases() -> Vec<(&'static str, Value, String)> {
    let go_max = "longer than 2562047h47m16.854775807s, the longest duration Go (and ESO) accepts";
    let interval = |i: &str| json!({"refreshInterval": i, "data": user_from_db()});
    let one = |remote: Value| json!({"data": [{"secretKey": "v", "remoteRef": remote}]});
    let many_bad_keys: Vec<Value> = (0..2000)
        .map(|i| json!({"secretKey": format!("bad key {i}"), "remoteRef": {"key": "db"}}))
        .collect();
    let template = |t: &str| {
        json!({
            "target": {"template": {"data": {"out": t}}},
            "data": user_from_db(),
        })
    };
    vec![
        (
            "interval-overflow",
            interval("9999999999h"),
            format!("spec.refreshInterval: time: invalid duration \"9999999999h\": {go_max}"),
        ),
        (
            "interval-just-past-go",
            interval("2562048h"),
            go_max.to_string(),
        ),
        (
            "interval-many-digits",
            interval(&format!("{}h", "9".repeat(60))),
            go_max.to_string(),
        ),
        (
            "interval-negative",
            interval("-5m"),
            "time: negative duration \"-5m\" is not allowed".into(),
        ),
        (
            "interval-unknown-unit",
            interval("3d"),
            "time: unknown unit \"d\" in duration \"3d\"".into(),
        ),
        (
            "interval-missing-unit",
            interval("1h30"),
            "time: missing unit in duration \"1h30\"".into(),
        ),
        (
            "interval-100k",
            interval(&format!("{}x", "1".repeat(100_000))),
            "(100001 bytes)".into(),
        ),
        (
            "duplicate-keys",
            json!({"data": [
                {"secretKey": "same", "remoteRef": {"key": "db"}},
                {"secretKey": "same", "remoteRef": {"key": "text"}},
            ]}),
            "duplicate secretKey found: same".into(),
        ),
        (
            "no-data",
            json!({}),
            "either data or dataFrom should be specified".into(),
        ),
        (
            "empty-data-from",
            json!({"dataFrom": [{}]}),
            "either extract, find, or sourceRef must be set to dataFrom".into(),
        ),
        (
            "delete-without-owner",
            json!({"target": {"creationPolicy": "Merge", "deletionPolicy": "Delete"}, "data": user_from_db()}),
            "deletionPolicy=Delete must not be used when the controller doesn't own the secret".into(),
        ),
        (
            "invalid-key",
            json!({"data": [{"secretKey": "bad key", "remoteRef": {"key": "db"}}]}),
            "invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): \"bad key\"".into(),
        ),
        (
            "dot-dot-key",
            json!({"data": [{"secretKey": "..", "remoteRef": {"key": "db"}}]}),
            "\"..\": must not be '..'".into(),
        ),
        (
            "long-key",
            json!({"data": [{"secretKey": "k".repeat(300), "remoteRef": {"key": "db"}}]}),
            "must be no more than 253 characters".into(),
        ),
        (
            "2000-bad-keys",
            json!({"data": many_bad_keys}),
            "; and 1990 more".into(),
        ),
        (
            "find-bad-names",
            json!({"dataFrom": [{"find": {"path": "dir/"}, "rewrite": [{"regexp": {"source": "dir/", "target": ""}}]}]}),
            "\"a b\": a valid config key must consist of alphanumeric characters".into(),
        ),
        (
            "property-not-json",
            one(json!({"key": "text", "property": "user"})),
            "key \"user\" does not exist in secret \"text\": the secret is not valid JSON (expected value at line 1 column 1)".into(),
        ),
        (
            "property-10k-levels",
            one(json!({"key": "deep", "property": "0.0.0"})),
            "the secret is not valid JSON (recursion limit exceeded".into(),
        ),
        (
            "property-binary",
            one(json!({"key": "binary", "property": "a"})),
            "the secret is not valid JSON".into(),
        ),
        (
            "property-missing",
            one(json!({"key": "db", "property": "nope"})),
            "key \"nope\" does not exist in secret \"db\"".into(),
        ),
        (
            "null-byte",
            one(json!({"key": "binary", "nullBytePolicy": "Fail"})),
            "contains a null byte and nullBytePolicy is Fail".into(),
        ),
        (
            "bad-base64",
            one(json!({"key": "text", "decodingStrategy": "Base64"})),
            "failed to decode value with strategy Base64: illegal base64 data at input byte 5".into(),
        ),
        (
            "extract-not-object",
            json!({"dataFrom": [{"extract": {"key": "text"}}]}),
            "unable to unmarshal secret \"text\": not a JSON object".into(),
        ),
        (
            "bad-rewrite-regexp",
            json!({"dataFrom": [{"find": {"path": "dir/"}, "rewrite": [{"regexp": {"source": "(", "target": "x"}}]}]}),
            "invalid rewrite regexp \"(\"".into(),
        ),
        (
            "huge-rewrite-regexp",
            json!({"dataFrom": [{"find": {"path": "dir/"}, "rewrite": [{"regexp": {"source": "(a{1000}){1000}", "target": "x"}}]}]}),
            "exceeds size limit".into(),
        ),
        (
            "bad-find-regexp",
            json!({"dataFrom": [{"find": {"name": {"regexp": "[z-a]"}}}]}),
            "invalid find.name.regexp \"[z-a]\"".into(),
        ),
        (
            "rewrite-merge",
            json!({"dataFrom": [{"extract": {"key": "db"}, "rewrite": [{"merge": {"into": "x"}}]}]}),
            "rewrite.merge is not supported by this version of esox".into(),
        ),
        (
            "too-large",
            json!({"secretStoreRef": {"name": "big", "kind": "SecretStore"}, "data": [{"secretKey": "v", "remoteRef": {"key": "big"}}]}),
            "would hold 1100001 bytes of data, more than the 1048576 bytes Kubernetes allows in a Secret".into(),
        ),
        (
            "template-syntax",
            template("{{ .user "),
            "could not apply template".into(),
        ),
        (
            "template-huge-output",
            template("{{ repeat 3000000 .user }}"),
            "could not apply template".into(),
        ),
        (
            "template-endless-loop",
            template("{{ range until 100000000 }}{{ range until 100000000 }}x{{ end }}{{ end }}"),
            "could not apply template".into(),
        ),
        (
            "template-bad-key",
            json!({"target": {"template": {"data": {"bad key": "{{ .user }}"}}}, "data": user_from_db()}),
            "invalid secret keys".into(),
        ),
        (
            "missing-generator",
            json!({"dataFrom": [{"sourceRef": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "none"}}}]}),
            "not found".into(),
        ),
    ]
}

/// Applies `docs` as one multi-document manifest.
async fn try_apply(env: &TestEnv, docs: Vec<Value>) -> anyhow::Result<()> {
    let text = docs
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    env.apply(&text).await
}

async fn apply(env: &TestEnv, docs: Vec<Value>) {
    try_apply(env, docs).await.unwrap()
}

/// Creates a SecretStore through the API as JSON: YAML (a server-side apply, and so
/// [`TestEnv::apply`]) cannot carry the NUL byte the store's data holds.
async fn apply_store(env: &TestEnv, store: Value) {
    let api: kube::Api<esox::api::SecretStore> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let store: esox::api::SecretStore = serde_json::from_value(store).unwrap();
    api.create(&Default::default(), &store).await.unwrap();
}

async fn warning_event(env: &TestEnv, name: &str) -> String {
    wait_for(
        Duration::from_secs(20),
        &format!("a Warning event for {name}"),
        || async {
            env.events_for(name).await.into_iter().find(|e| {
                e.starts_with("UpdateFailed: ") || e.starts_with("MissingProviderSecret: ")
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn secret(env: &TestEnv, name: &str) -> Secret {
    env.secrets().get(name).await.unwrap()
}

#[tokio::test]
async fn hostile_external_secrets_are_reported_and_the_rest_keeps_working() {
    let start = Instant::now();
    let env = TestEnv::new("hostile").await;
    apply_store(&env, store()).await;
    apply_store(&env, big_store()).await;

    // A healthy ExternalSecret and three that will turn hostile once synced.
    let victims = ["victim-interval", "victim-property", "victim-size"];
    // A large template that is fine must sync like a small one. (20 000 repetitions, 260 KB,
    // exceed the Go engine's 2 s sandbox deadline in a debug build.)
    let big_template = "{{ .user }}-".repeat(2_000);
    let mut healthy = vec![
        external_secret("healthy", json!({"data": user_from_db()})),
        external_secret(
            "big-template",
            json!({"target": {"template": {"data": {"user": big_template}}}, "data": user_from_db()}),
        ),
    ];
    healthy.extend(
        victims
            .iter()
            .map(|v| external_secret(v, json!({"refreshInterval": "1h", "data": user_from_db()}))),
    );
    apply(&env, healthy).await;
    let mut synced = std::collections::BTreeMap::new();
    for name in ["healthy"].iter().chain(&victims) {
        let s = env.wait_value(name, "user", "admin").await;
        synced.insert(name.to_string(), s.metadata.resource_version.unwrap());
    }
    let expected = "admin-".repeat(2_000);
    env.wait_secret("big-template", "the large template rendered", |s| {
        secret_strings(s).get("user") == Some(&expected)
    })
    .await;

    // The victims turn hostile; then every other case arrives.
    apply(&env, vec![
        external_secret(
            "victim-interval",
            json!({"refreshInterval": "9999999999h", "data": user_from_db()}),
        ),
        external_secret(
            "victim-property",
            json!({"data": [{"secretKey": "user", "remoteRef": {"key": "text", "property": "user"}}]}),
        ),
        external_secret(
            "victim-size",
            json!({"secretStoreRef": {"name": "big", "kind": "SecretStore"}, "data": [{"secretKey": "user", "remoteRef": {"key": "big"}}]}),
        ),
    ])
    .await;
    let cases = cases();
    apply(
        &env,
        cases
            .iter()
            .map(|(n, s, _)| external_secret(n, s.clone()))
            .collect(),
    )
    .await;
    let applied = start.elapsed();

    let mut failures = Vec::new();
    let victim_cases = [
        ("victim-interval", "longer than 2562047h47m16.854775807s"),
        ("victim-property", "the secret is not valid JSON"),
        (
            "victim-size",
            "more than the 1048576 bytes Kubernetes allows",
        ),
    ];
    let all = cases
        .iter()
        .map(|(n, _, m)| (*n, m.as_str()))
        .chain(victim_cases);
    for (name, expected) in all {
        let msg = env.wait_ready(name, "False", "SecretSyncedError").await;
        if !msg.contains(expected) {
            failures.push(format!("{name}: expected {expected:?} in {msg:?}"));
        }
        if msg.len() > 4096 {
            failures.push(format!("{name}: a message of {} bytes", msg.len()));
        }
        if msg.contains("p4ssw0rd-hostile") {
            failures.push(format!("{name}: the message repeats a secret value: {msg}"));
        }
        let event = warning_event(&env, name).await;
        if event.contains("p4ssw0rd-hostile") {
            failures.push(format!("{name}: the event repeats a secret value: {event}"));
        }
        if !name.starts_with("victim-") && env.secrets().get_opt(name).await.unwrap().is_some() {
            failures.push(format!("{name}: a Secret was written"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Synced Secrets are kept as they were: not deleted, not overwritten.
    for (name, version) in &synced {
        let s = secret(&env, name).await;
        assert_eq!(secret_strings(&s)["user"], "admin", "{name}");
        assert_eq!(
            s.metadata.resource_version.as_ref(),
            Some(version),
            "{name}"
        );
    }
    // The healthy one is still Ready, and the controller still serves new objects.
    env.wait_ready("healthy", "True", "SecretSynced").await;
    apply(
        &env,
        vec![external_secret("after", json!({"data": user_from_db()}))],
    )
    .await;
    env.wait_value("after", "user", "admin").await;
    let logs = esox_tests::logs();
    assert!(!logs.contains("panicked"), "the controller panicked");
    assert!(
        !logs.contains("p4ssw0rd-hostile"),
        "a log line repeats a secret value"
    );
    eprintln!(
        "{} hostile ExternalSecrets: applied in {applied:?}, all reported in {:?}",
        cases.len() + victims.len(),
        start.elapsed()
    );
}

/// `refreshInterval: 9999999999h`, which the apiserver accepts, through controller
/// restarts: on a new object, and on one that synced before it turned hostile while the
/// controller was down. Each start reports it and goes on serving the rest.
#[tokio::test]
async fn an_overflowing_interval_survives_controller_restarts() {
    let start = Instant::now();
    let env = TestEnv::without_controller("hostile-restart").await;
    let log_path = std::env::temp_dir().join(format!("{}.log", env.ns));
    let log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap()
    };
    apply_store(&env, store()).await;
    apply(
        &env,
        vec![
            external_secret("ok", json!({"data": user_from_db()})),
            external_secret(
                "turns",
                json!({"refreshInterval": "1h", "data": user_from_db()}),
            ),
            external_secret(
                "forever",
                json!({"refreshInterval": "9999999999h", "data": user_from_db()}),
            ),
        ],
    )
    .await;

    let controller = env.spawn_controller_logging(&[], log());
    controller.wait_ready().await;
    env.wait_value("ok", "user", "admin").await;
    let turned = env.wait_value("turns", "user", "admin").await;
    let msg = env
        .wait_ready("forever", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("time: invalid duration \"9999999999h\""),
        "{msg}"
    );
    warning_event(&env, "forever").await;
    drop(controller);

    // While no controller runs, a synced ExternalSecret turns hostile.
    apply(
        &env,
        vec![external_secret(
            "turns",
            json!({"refreshInterval": "9999999999h", "data": user_from_db()}),
        )],
    )
    .await;
    for round in 0..2 {
        let controller = env.spawn_controller_logging(&[], log());
        controller.wait_ready().await;
        let msg = env.wait_ready("turns", "False", "SecretSyncedError").await;
        assert!(
            msg.contains("longer than 2562047h47m16.854775807s"),
            "{msg}"
        );
        let name = format!("after-{round}");
        apply(
            &env,
            vec![external_secret(&name, json!({"data": user_from_db()}))],
        )
        .await;
        env.wait_value(&name, "user", "admin").await;
        // Still alive after a while (the first reconcile of each object has run).
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(controller.get("/healthz").await.starts_with("HTTP/1.1 200"));
        let s = secret(&env, "turns").await;
        assert_eq!(
            s.metadata.resource_version,
            turned.metadata.resource_version
        );
        env.wait_ready("ok", "True", "SecretSynced").await;
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!log.contains("panicked"), "the controller panicked:\n{log}");
    eprintln!("restarts with 9999999999h: {:?}", start.elapsed());
}

/// Free-form fields (a plugin's `config`, `rewrite.merge`, an unknown provider's block)
/// nested deeper than a JSON parser goes by default: the apiserver keeps such objects, and
/// mirrors every level of a map-valued field in `metadata.managedFields`. The controller, the
/// shipped binary started after they exist (so its first LIST holds them), must still serve
/// everyone else and report them.
///
/// On a shared apiserver, a cluster-wide controller built before `esox::managed_fields`
/// (another worktree's test run) cannot list the kind while these objects exist; the test
/// deletes them at its end.
#[tokio::test]
async fn deeply_nested_free_form_fields_do_not_stop_the_controller() {
    let env = TestEnv::without_controller("hostile-deep").await;
    let nested = |levels: usize| {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    };
    // Sent and answered as text: neither YAML (TestEnv::apply) nor a typed answer can hold a
    // document this deep.
    let create_raw = |plural: &'static str, doc: Value| {
        let client = env.client.clone();
        let ns = env.ns.clone();
        async move {
            let req = kube::core::Request::new(format!(
                "/apis/external-secrets.io/v1/namespaces/{ns}/{plural}"
            ))
            .create(&Default::default(), serde_json::to_vec(&doc).unwrap())
            .unwrap();
            client.request_text(req).await
        }
    };
    apply_store(&env, store()).await;
    let mut accepted = Vec::new();
    for levels in [100, 200, 1000] {
        let name = format!("deep-{levels}");
        let es = external_secret(
            &name,
            json!({
                "dataFrom": [{"extract": {"key": "db"}, "rewrite": [{"merge": nested(levels)}]}],
            }),
        );
        match create_raw("externalsecrets", es).await {
            Ok(_) => accepted.push(name),
            Err(e) => eprintln!("{name}: refused by the apiserver: {e:#}"),
        }
    }
    eprintln!("accepted by the apiserver: {accepted:?}");
    // A store whose provider block (a map, unlike `dataFrom`'s list) is deep: its managed
    // fields are deeper than serde_json reads.
    let deep_store = json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "deep-store"},
        "spec": {"provider": {"vault": nested(300)}},
    });
    create_raw("secretstores", deep_store)
        .await
        .expect("the apiserver keeps a 300-level provider block");
    try_apply(
        &env,
        vec![external_secret("before", json!({"data": user_from_db()}))],
    )
    .await
    .unwrap();

    let (log, file) = esox_tests::Log::new("hostile-deep");
    let mut controller = env.spawn_controller_logging(&[], file);
    let stores: Api<esox::api::SecretStore> = Api::namespaced(env.client.clone(), &env.ns);
    // The checks run to the end, whatever fails, so the deep objects are always deleted.
    let secrets = env.secrets();
    let secret_made = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            wait_for(Duration::from_secs(30), &format!("Secret {name}"), || {
                let secrets = secrets.clone();
                async move { secrets.get_opt(name).await.ok().flatten() }
            })
            .await
            .map_err(|e| e.to_string())
        }
    };
    let checked = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let mut failures = Vec::new();
        if let Err(e) = secret_made("before").await {
            failures.push(e);
        }
        for name in &accepted {
            let msg = env.wait_ready(name, "False", "SecretSyncedError").await;
            if !msg.contains("spec.dataFrom[0].rewrite[0].merge is nested more than 32 levels deep")
            {
                failures.push(format!("{name}: {msg}"));
            }
        }
        // A store and an ExternalSecret made after them: the store is validated, the Secret made.
        let mut after_store = store();
        after_store["metadata"]["name"] = json!("after-store");
        apply_store(&env, after_store).await;
        let mut after = external_secret("after", json!({"data": user_from_db()}));
        after["spec"]["secretStoreRef"]["name"] = json!("after-store");
        try_apply(&env, vec![after]).await.unwrap();
        let store_ready = wait_for(
            Duration::from_secs(30),
            "SecretStore after-store Ready",
            || async {
                let status = stores.get_opt("after-store").await.ok()??.status?;
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
        if let Err(e) = store_ready {
            failures.push(format!("{e}"));
        }
        if let Err(e) = secret_made("after").await {
            failures.push(e);
        }
        failures
    }))
    .await;
    controller.kill();
    // Gone before anything else can trip over them.
    for name in &accepted {
        let _ = env
            .external_secrets()
            .delete(name, &Default::default())
            .await;
    }
    let _ = stores.delete("deep-store", &Default::default()).await;
    let failures = checked.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(
        failures.is_empty(),
        "{}\nlog:\n{}",
        failures.join("\n"),
        log.tail()
    );
}
