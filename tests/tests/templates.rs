//! `spec.target.template` end to end on the real apiserver: every rendering and every
//! PKCS#12 extraction runs in the built-in Wasm plugins.

use esox_tests::{TestEnv, secret_strings};

const STORE: &str = r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: store}
spec:
  provider:
    fake:
      data:
      - key: db
        value: '{"username":"app","password":"s3cr3t","host":"db.example.com","port":"5432"}'
      - key: team
        value: payments
"#;

#[tokio::test]
async fn minijinja_templates_with_metadata_type_and_template_from() {
    let env = TestEnv::new("tpl-jinja").await;
    env.apply(STORE).await.unwrap();
    env.apply(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: templates}
data:
  app.env: "DB_HOST={{ host }}\nDB_PORT={{ port }}\n"
  extra: "{% for k in ['one', 'two'] %}{{ k }}_user: {{ username }}\n{% endfor %}"
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: rendered, labels: {from-es: "yes"}}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  target:
    name: rendered
    template:
      engineVersion: minijinja
      type: kubernetes.io/basic-auth
      metadata:
        labels:
          team: "{{ team }}"
        annotations:
          rendered-by: esox
      data:
        username: "{{ username }}"
        password: "{{ password }}"
        db-config.properties: |
          DB_USERNAME={{ username }}
          DB_PASSWORD={{ password }}
          CONNECTION_STRING=jdbc:postgresql://{{ host }}:{{ port }}/main_db
      templateFrom:
      - configMap:
          name: templates
          items:
          - key: app.env
          - key: extra
            templateAs: KeysAndValues
      - literal: "owner: {{ team }}-oncall"
        target: Annotations
  dataFrom:
  - extract: {key: db}
  data:
  - secretKey: team
    remoteRef: {key: team}
"#,
    )
    .await
    .unwrap();
    let s = env
        .wait_secret("rendered", "rendered secret", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(d["username"], "app");
    assert_eq!(d["password"], "s3cr3t");
    assert_eq!(
        d["db-config.properties"],
        "DB_USERNAME=app\nDB_PASSWORD=s3cr3t\nCONNECTION_STRING=jdbc:postgresql://db.example.com:5432/main_db\n"
    );
    assert_eq!(d["app.env"], "DB_HOST=db.example.com\nDB_PORT=5432\n");
    assert_eq!(d["one_user"], "app");
    assert_eq!(d["two_user"], "app");
    assert!(
        !d.contains_key("host"),
        "Replace: only template output: {d:?}"
    );
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["team"], "payments");
    assert!(
        !labels.contains_key("from-es"),
        "a template replaces the ES labels"
    );
    let ann = s.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann["rendered-by"], "esox");
    assert_eq!(ann["owner"], "payments-oncall");
    let m = env.metrics();
    assert!(
        m.contains(r#"esox_plugin_calls_total{plugin="minijinja",outcome="ok"}"#),
        "{m}"
    );

    // A label the template no longer sets is removed from the Secret.
    let es_api = env.external_secrets();
    es_api
        .patch(
            "rendered",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Json::<()>(
                serde_json::from_value(serde_json::json!([
                    {"op": "replace", "path": "/spec/target/template/metadata/labels", "value": {"tier": "gold"}}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let s = env
        .wait_secret("rendered", "relabelled secret", |s| {
            let l = s.metadata.labels.clone().unwrap_or_default();
            l.get("tier").is_some_and(|v| v == "gold") && !l.contains_key("team")
        })
        .await;
    assert_eq!(
        s.metadata.labels.unwrap()["reconcile.external-secrets.io/managed"],
        "true"
    );
}

#[tokio::test]
async fn merge_policy_and_no_template_metadata() {
    let env = TestEnv::new("tpl-merge").await;
    env.apply(STORE).await.unwrap();
    env.apply(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: merged}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  target:
    template:
      engineVersion: minijinja
      mergePolicy: Merge
      data:
        dsn: "postgres://{{ username }}@{{ host }}"
  dataFrom:
  - extract: {key: db}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: plain
  labels: {app: billing}
  annotations: {note: copied}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  dataFrom:
  - extract: {key: db}
"#,
    )
    .await
    .unwrap();
    let d = secret_strings(
        &env.wait_secret("merged", "merged", |s| s.data.is_some())
            .await,
    );
    assert_eq!(d["dsn"], "postgres://app@db.example.com");
    assert_eq!(d["password"], "s3cr3t", "Merge keeps the fetched keys");
    // Without a template, ESO copies the ExternalSecret's labels and annotations.
    let s = env
        .wait_secret("plain", "plain", |s| s.data.is_some())
        .await;
    assert_eq!(s.metadata.labels.unwrap()["app"], "billing");
    assert_eq!(s.metadata.annotations.unwrap()["note"], "copied");
}

#[tokio::test]
async fn render_errors_keep_the_last_good_secret() {
    let env = TestEnv::new("tpl-errors").await;
    env.apply(STORE).await.unwrap();
    let es = |tpl: &str| {
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: fragile}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: store, kind: SecretStore}}\n  target:\n    template:\n      engineVersion: minijinja\n      data:\n        out: \"{tpl}\"\n  dataFrom:\n  - extract: {{key: db}}\n"
        )
    };
    env.apply(&es("{{ username }}")).await.unwrap();
    env.wait_value("fragile", "out", "app").await;
    env.apply(&es("{{ no_such_key }} {{ password }}"))
        .await
        .unwrap();
    let msg = env
        .wait_ready("fragile", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.starts_with("could not apply template: could not execute template: unable to execute template at key out"),
        "{msg}"
    );
    assert!(msg.contains("undefined"), "{msg}");
    assert!(!msg.contains("s3cr3t"));
    assert_eq!(
        secret_strings(&env.secrets().get("fragile").await.unwrap())["out"],
        "app",
        "the synced Secret is untouched"
    );
    let events = env.events_for("fragile").await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("UpdateFailed: could not apply template")),
        "{events:?}"
    );
}

/// root → intermediate → leaf as a PKCS#12 made by openssl (OpenSSL 3 default: AES-256).
fn make_p12(password: &str) -> (Vec<u8>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sh = |script: &str| esox_tests::run_ok(d, "sh", &["-ec", script]);
    sh("for n in root inter leaf; do openssl ecparam -name prime256v1 -genkey -noout -out $n.key; done
        printf 'basicConstraints=critical,CA:TRUE\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > ca.ext
        printf 'subjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > leaf.ext
        openssl req -x509 -new -key root.key -subj /CN=Root -days 9 -out root.crt
        openssl req -new -key inter.key -subj /CN=Inter -out inter.csr
        openssl x509 -req -in inter.csr -CA root.crt -CAkey root.key -CAcreateserial -days 9 -extfile ca.ext -out inter.crt
        openssl req -new -key leaf.key -subj /CN=leaf -out leaf.csr
        openssl x509 -req -in leaf.csr -CA inter.crt -CAkey inter.key -CAcreateserial -days 9 -extfile leaf.ext -out leaf.crt
        cat root.crt inter.crt > chain.crt
        openssl pkcs8 -topk8 -nocrypt -in leaf.key -out leaf.pk8");
    sh(&format!(
        "openssl pkcs12 -export -inkey leaf.key -in leaf.crt -certfile chain.crt -passout pass:{password} -out ks.p12"
    ));
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let chain = [read("leaf.crt"), read("inter.crt"), read("root.crt")].concat();
    (
        std::fs::read(d.join("ks.p12")).unwrap(),
        read("leaf.pk8"),
        chain,
    )
}

fn normalize(pem: &str) -> String {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn pkcs12_extraction_in_wasm() {
    use base64::Engine as _;
    let env = TestEnv::new("tpl-pkcs12").await;
    let (p12, key, chain) = make_p12("changeit");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&p12);
    env.apply(&format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: store}}\nspec:\n  provider:\n    fake:\n      data:\n      - key: keystore\n        value: {b64}\n      - key: keystore-pass\n        value: changeit\n"
    ))
    .await
    .unwrap();
    let es = |name: &str, plugin_config: &str, template: &str| {
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: store, kind: SecretStore}}\n  target:\n    template:\n      engineVersion: minijinja\n      type: kubernetes.io/tls\n      plugins:\n      - ref: {{kind: Builtin, name: pkcs12}}\n        config: {plugin_config}\n{template}  data:\n  - secretKey: keystore\n    remoteRef: {{key: keystore, decodingStrategy: Base64}}\n  - secretKey: pass\n    remoteRef: {{key: keystore-pass}}\n"
        )
    };
    // The transformer adds tls.key / tls.crt; with no data templates they are the Secret.
    env.apply(&es(
        "via-plugin",
        "{key: keystore, passwordKey: pass, removeInput: true}",
        "",
    ))
    .await
    .unwrap();
    // The template filters do the same from the raw keystore.
    env.apply(&es(
        "via-filters",
        "{key: keystore, passwordKey: pass}",
        "      data:\n        tls.key: \"{{ keystore | pkcs12keyPass(pass) }}\"\n        tls.crt: \"{{ keystore | pkcs12certPass('changeit') }}\"\n        ca.crt: \"{{ keystore | pkcs12certPass(pass) | filterCertChain('root') }}\"\n",
    ))
    .await
    .unwrap();
    for name in ["via-plugin", "via-filters"] {
        let s = env
            .wait_secret(name, "tls secret", |s| s.data.is_some())
            .await;
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        let d = secret_strings(&s);
        assert_eq!(
            normalize(&d["tls.key"]),
            normalize(&key),
            "{name}: PKCS#8 key"
        );
        assert_eq!(
            normalize(&d["tls.crt"]),
            normalize(&chain),
            "{name}: leaf → intermediate → root"
        );
        if name == "via-plugin" {
            assert!(!d.contains_key("keystore"), "removeInput");
        } else {
            assert!(d["ca.crt"].contains("BEGIN CERTIFICATE") && chain.ends_with(&d["ca.crt"]));
        }
    }

    // A wrong password is a clear status; the key material never appears.
    env.apply(&es("wrong-pass", "{key: keystore, password: nope}", ""))
        .await
        .unwrap();
    let msg = env
        .wait_ready("wrong-pass", "False", "SecretSyncedError")
        .await;
    assert_eq!(
        msg,
        "could not apply template: plugin pkcs12: pkcs12: decryption password incorrect (key \"keystore\")"
    );
}

/// ESO manifests as they are written: no engineVersion, Go templates (the seeds'
/// db-config.properties), sprig and ESO functions, templateFrom, metadata, v1beta1 as well,
/// and `dataFrom.rewrite.transform`; all rendered by the Go engine plugin.
#[tokio::test]
async fn eso_go_templates_render_as_eso_renders_them() {
    let env = TestEnv::new("tpl-go").await;
    env.apply(STORE).await.unwrap();
    env.apply(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: go-templates}
data:
  json: '{{ dict "user" .username "port" (.port | atoi) | toJson }}'
  kv: |
    {{- range $k, $v := . }}
    {{- if hasPrefix "p" $k }}
    {{ $k }}_copy: {{ $v | quote }}
    {{- end }}
    {{- end }}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: db-config}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  target:
    name: db-config
    template:
      engineVersion: v2
      metadata:
        labels:
          team: '{{ .team | upper }}'
      data:
        db-config.properties: |
          DB_USERNAME={{ .username }}
          DB_PASSWORD={{ .password }}
          CONNECTION_STRING=jdbc:postgresql://{{ .host }}:{{ .port }}/main_db
        checksum: '{{ .password | sha256sum | trunc 12 }}'
        encoded: '{{ printf "%s:%s" .username .password | b64enc }}'
      templateFrom:
      - configMap:
          name: go-templates
          items:
          - key: json
          - key: kv
            templateAs: KeysAndValues
  dataFrom:
  - extract: {key: db}
  data:
  - secretKey: team
    remoteRef: {key: team}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: renamed}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  target:
    name: renamed
    template:
      data:
        summary: '{{ .DB_USERNAME }}@{{ .DB_HOST }}'
  dataFrom:
  - extract: {key: db}
    rewrite:
    - transform:
        template: 'DB_{{ .value | upper }}'
"#,
    )
    .await
    .unwrap();
    let s = env
        .wait_secret("db-config", "Go-rendered secret", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(
        d["db-config.properties"],
        "DB_USERNAME=app\nDB_PASSWORD=s3cr3t\nCONNECTION_STRING=jdbc:postgresql://db.example.com:5432/main_db\n"
    );
    assert_eq!(d["checksum"], "4e738ca5563c");
    assert_eq!(d["encoded"], "YXBwOnMzY3IzdA==");
    assert_eq!(d["json"], r#"{"port":5432,"user":"app"}"#);
    assert_eq!(d["password_copy"], "s3cr3t");
    assert_eq!(d["port_copy"], "5432");
    assert_eq!(
        s.metadata.labels.clone().unwrap_or_default()["team"],
        "PAYMENTS"
    );

    let r = env
        .wait_secret("renamed", "secret with rewritten keys", |s| {
            s.data.is_some()
        })
        .await;
    let d = secret_strings(&r);
    assert_eq!(d["summary"], "app@db.example.com");

    let m = env.metrics();
    assert!(
        m.contains(r#"esox_plugin_calls_total{plugin="gotemplate",outcome="ok"}"#),
        "{m}"
    );
    assert!(!esox_tests::logs().contains("s3cr3t"));
}

/// ESO v1's `templateFrom[].valuesDecodingStrategy`: the apiserver keeps the field, and the
/// rendered values of ConfigMap, Secret and literal sources are decoded as ESO decodes them
/// (keys never; `template.data` never; omitted means no decoding).
#[tokio::test]
async fn template_from_values_decoding_strategy() {
    let env = TestEnv::new("tpl-decode").await;
    env.apply(STORE).await.unwrap();
    env.apply(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: encoded}
data:
  greeting: SGVsbG8=
  pairs: "service-a: SGVsbG8=\nservice-b: '{{ .team | b64enc }}'\n"
---
apiVersion: v1
kind: Secret
metadata: {name: encoded}
stringData:
  token: '{{ .password | b64enc | b64enc }}'
  url-safe: Pz8_
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: decoded}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  target:
    template:
      data:
        direct: SGVsbG8=
      templateFrom:
      - configMap:
          name: encoded
          items:
          - key: greeting
          - key: pairs
            templateAs: KeysAndValues
        valuesDecodingStrategy: Base64
      - secret:
          name: encoded
          items:
          - key: token
        valuesDecodingStrategy: Base64
      - secret:
          name: encoded
          items:
          - key: url-safe
        valuesDecodingStrategy: Base64URL
      - literal: "literal-b64: V29ybGQ=\nliteral-auto: not base64!"
        valuesDecodingStrategy: Auto
      - literal: "kept: SGVsbG8="
      - literal: "team: cGF5bWVudHM="
        target: Labels
        valuesDecodingStrategy: Base64
  dataFrom:
  - extract: {key: db}
  data:
  - secretKey: team
    remoteRef: {key: team}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: undecodable}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  target:
    template:
      templateFrom:
      - literal: "bad: '{{ .password }}'"
        valuesDecodingStrategy: Base64
  dataFrom:
  - extract: {key: db}
"#,
    )
    .await
    .unwrap();
    let s = env
        .wait_secret("decoded", "decoded secret", |s| s.data.is_some())
        .await;
    let d = secret_strings(&s);
    assert_eq!(d["greeting"], "Hello");
    assert_eq!(d["service-a"], "Hello");
    assert_eq!(d["service-b"], "payments");
    assert_eq!(d["token"], "czNjcjN0", "decoded once: base64 of s3cr3t");
    assert_eq!(d["url-safe"], "???");
    assert_eq!(d["literal-b64"], "World");
    assert_eq!(d["literal-auto"], "not base64!");
    assert_eq!(d["kept"], "SGVsbG8=", "omitted: no decoding");
    assert_eq!(d["direct"], "SGVsbG8=", "template.data is never decoded");
    assert_eq!(
        s.metadata.labels.clone().unwrap_or_default()["team"],
        "payments"
    );

    // The apiserver stored the field (not pruned) and defaulted nothing where it was omitted.
    let es = env.external_secrets().get("decoded").await.unwrap();
    let from = &es.spec.target.template.unwrap().template_from;
    assert_eq!(
        from[0].values_decoding_strategy,
        Some(esox::api::DecodingStrategy::Base64)
    );
    assert_eq!(from[4].values_decoding_strategy, None);

    // A value that does not decode fails the sync with ESO's message, naming the key only.
    let msg = env
        .wait_ready("undecodable", "False", "SecretSyncedError")
        .await;
    assert!(
        msg.contains("failed to decode rendered template value for key bad"),
        "{msg}"
    );
    assert!(!msg.contains("s3cr3t"), "{msg}");
    assert!(
        env.secrets()
            .get_opt("undecodable")
            .await
            .unwrap()
            .is_none()
    );
}
