//! The template step against the real built-in plugins (minijinja, pkcs12), no cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::*;
use crate::api::{
    DecodingStrategy, ExternalSecretTemplateMetadata, TemplateFrom, TemplateRef, TemplateRefItem,
};
use crate::secret::SecretBytes;

fn host() -> &'static Arc<PluginHost> {
    static HOST: OnceLock<Arc<PluginHost>> = OnceLock::new();
    HOST.get_or_init(|| PluginHost::new(Default::default()).unwrap())
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics::new(&mut prometheus_client::registry::Registry::default()))
}

fn data(pairs: &[(&str, &str)]) -> SecretMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), SecretBytes::new(v.as_bytes().to_vec())))
        .collect()
}

fn text(out: &Output, key: &str) -> String {
    String::from_utf8(out.data[key].expose().to_vec()).unwrap()
}

async fn run(
    tpl: &ExternalSecretTemplate,
    input: SecretMap,
    sources: &Sources,
) -> Result<Output, TemplateError> {
    let runner = BuiltinRunner {
        host: host(),
        metrics: metrics(),
        delimiters: &Default::default(),
    };
    apply(
        Some(tpl),
        &BTreeMap::new(),
        &BTreeMap::new(),
        input,
        sources,
        &runner,
    )
    .await
}

fn jinja() -> ExternalSecretTemplate {
    ExternalSecretTemplate {
        engine_version: Some("minijinja".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn data_templates_replace_the_fetched_data() {
    let mut tpl = jinja();
    tpl.type_ = Some("kubernetes.io/basic-auth".into());
    tpl.data
        .insert("username".into(), "{{ user | upper }}".into());
    let out = run(
        &tpl,
        data(&[("user", "app"), ("other", "x")]),
        &Sources::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.data.keys().collect::<Vec<_>>(), ["username"]);
    assert_eq!(text(&out, "username"), "APP");
    assert_eq!(out.type_.as_deref(), Some("kubernetes.io/basic-auth"));
}

#[tokio::test]
async fn merge_policy_keeps_fetched_keys_and_templates_win() {
    let mut tpl = jinja();
    tpl.merge_policy = TemplateMergePolicy::Merge;
    tpl.data
        .insert("user".into(), "{{ user }}-templated".into());
    let out = run(
        &tpl,
        data(&[("user", "app"), ("other", "x")]),
        &Sources::default(),
    )
    .await
    .unwrap();
    assert_eq!(text(&out, "user"), "app-templated");
    assert_eq!(text(&out, "other"), "x");
}

#[tokio::test]
async fn precedence_template_from_then_data_then_metadata() {
    let mut tpl = jinja();
    tpl.template_from = vec![
        TemplateFrom {
            config_map: Some(TemplateRef {
                name: "tpl".into(),
                items: vec![
                    TemplateRefItem {
                        key: "conf".into(),
                        template_as: Some(TemplateScope::Values),
                    },
                    TemplateRefItem {
                        key: "many".into(),
                        template_as: Some(TemplateScope::KeysAndValues),
                    },
                ],
            }),
            target: Some(TemplateTarget::Data),
            ..Default::default()
        },
        TemplateFrom {
            literal: Some("team: {{ team }}".into()),
            target: Some(TemplateTarget::Labels),
            ..Default::default()
        },
    ];
    tpl.data.insert("conf".into(), "explicit wins".into());
    tpl.metadata = Some(ExternalSecretTemplateMetadata {
        annotations: [("owner".to_string(), "{{ team }}-owners".to_string())].into(),
        ..Default::default()
    });
    let mut sources = Sources::default();
    sources.config_maps.insert(
        "tpl".into(),
        [
            ("conf".to_string(), "from configmap".to_string()),
            ("many".to_string(), "a: '{{ team }}'\nb: two".to_string()),
        ]
        .into(),
    );
    let out = run(&tpl, data(&[("team", "payments")]), &sources)
        .await
        .unwrap();
    assert_eq!(text(&out, "conf"), "explicit wins");
    assert_eq!(text(&out, "a"), "payments");
    assert_eq!(text(&out, "b"), "two");
    assert_eq!(out.labels["team"], "payments");
    assert_eq!(out.annotations["owner"], "payments-owners");
}

#[tokio::test]
async fn errors_are_specific_and_leak_nothing() {
    let mut tpl = jinja();
    tpl.data.insert("x".into(), "{{ missing }}".into());
    let err = run(&tpl, data(&[("pw", "hunter2")]), &Sources::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("could not apply template: could not execute template: unable to execute template at key x"), "{err}");
    assert!(!err.contains("hunter2"));

    let mut tpl = jinja();
    tpl.template_from = vec![TemplateFrom {
        config_map: Some(TemplateRef {
            name: "tpl".into(),
            items: vec![TemplateRefItem {
                key: "nope".into(),
                template_as: None,
            }],
        }),
        ..Default::default()
    }];
    let mut sources = Sources::default();
    sources.config_maps.insert("tpl".into(), BTreeMap::new());
    let err = run(&tpl, data(&[]), &sources)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "could not apply template: error fetching templateFrom data: error in configmap tpl: missing key nope"
    );

    let mut tpl = jinja();
    tpl.engine_version = Some("v9".into());
    tpl.data.insert("x".into(), "y".into());
    let err = run(&tpl, data(&[]), &Sources::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsupported template engine version: v9"),
        "{err}"
    );

    let mut tpl = jinja();
    tpl.type_ = Some("bootstrap.kubernetes.io/token".into());
    assert!(run(&tpl, data(&[]), &Sources::default()).await.is_err());
}

#[tokio::test]
async fn unknown_builtin_transformer_is_named() {
    let mut tpl = jinja();
    tpl.plugins = vec![crate::api::TemplatePlugin {
        plugin_ref: PluginRef {
            kind: PluginSource::Builtin,
            name: "nope".into(),
        },
        config: None,
    }];
    let err = run(&tpl, data(&[]), &Sources::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no built-in transformer plugin \"nope\"") && err.contains("pkcs12"),
        "{err}"
    );
}

/// ESO manifests say nothing (or `v2`): the Go engine renders them, inside Wasm.
#[tokio::test]
async fn eso_manifests_render_with_the_go_engine() {
    let mut tpl = ExternalSecretTemplate::default();
    tpl.data.insert(
        "db-config.properties".into(),
        "DB_USERNAME={{ .db_user }}\nDB_PASSWORD={{ .db_pass }}\nCONNECTION_STRING=jdbc:postgresql://{{ .db_host }}:{{ .db_port }}/main_db\n".into(),
    );
    tpl.metadata = Some(ExternalSecretTemplateMetadata {
        labels: BTreeMap::from([("user".into(), "{{ .db_user | upper }}".into())]),
        ..Default::default()
    });
    let input = data(&[
        ("db_user", "app"),
        ("db_pass", "s3cr3t"),
        ("db_host", "db.example.com"),
        ("db_port", "5432"),
    ]);
    let out = run(&tpl, input.clone(), &Sources::default()).await.unwrap();
    assert_eq!(
        text(&out, "db-config.properties"),
        "DB_USERNAME=app\nDB_PASSWORD=s3cr3t\nCONNECTION_STRING=jdbc:postgresql://db.example.com:5432/main_db\n"
    );
    assert_eq!(out.labels["user"], "APP");

    tpl.engine_version = Some("v2".into());
    let out = run(&tpl, input, &Sources::default()).await.unwrap();
    assert_eq!(text(&out, "db-config.properties").lines().count(), 3);
}

#[tokio::test]
async fn go_engine_errors_name_the_key_and_field_not_values() {
    let mut tpl = ExternalSecretTemplate::default();
    tpl.data.insert("out".into(), "x={{ .nope }}".into());
    let err = run(&tpl, data(&[("pw", "hunter2")]), &Sources::default())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "could not apply template: could not execute template: unable to execute template at key out: template: out:1:5: executing \"out\" at <.nope>: map has no entry for key \"nope\""
    );
    tpl.data.insert("out".into(), "{{ .pw | genCA 1 }}".into());
    let err = run(&tpl, data(&[("pw", "hunter2")]), &Sources::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("genCA is not supported by esox"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn go_engine_takes_the_delimiter_flags() {
    let mut tpl = ExternalSecretTemplate::default();
    tpl.data.insert("out".into(), "[[ .a ]] {{ .a }}".into());
    let runner = BuiltinRunner {
        host: host(),
        metrics: metrics(),
        delimiters: &Delimiters {
            left: "[[".into(),
            right: "]]".into(),
        },
    };
    let out = apply(
        Some(&tpl),
        &BTreeMap::new(),
        &BTreeMap::new(),
        data(&[("a", "v")]),
        &Sources::default(),
        &runner,
    )
    .await
    .unwrap();
    assert_eq!(text(&out, "out"), "v {{ .a }}");
}

fn literal(text: &str, decoding: Option<DecodingStrategy>) -> TemplateFrom {
    TemplateFrom {
        literal: Some(text.into()),
        values_decoding_strategy: decoding,
        ..Default::default()
    }
}

fn items(name: &str, keys: &[(&str, TemplateScope)]) -> TemplateRef {
    TemplateRef {
        name: name.into(),
        items: keys
            .iter()
            .map(|(k, scope)| TemplateRefItem {
                key: k.to_string(),
                template_as: Some(*scope),
            })
            .collect(),
    }
}

/// ESO's `TestExecuteDecodesRenderedTemplateValues` and e2e case: a literal (KeysAndValues)
/// decodes each rendered value, never a key.
#[tokio::test]
async fn values_decoding_strategy_decodes_literal_values_not_keys() {
    let tpl = ExternalSecretTemplate {
        template_from: vec![
            literal(
                "service-a: SGVsbG8=\nservice-b: V29ybGQ=\n",
                Some(DecodingStrategy::Base64),
            ),
            literal("SGVsbG8=: V29ybGQ=\n", Some(DecodingStrategy::Base64)),
            literal("raw: SGVsbG8=\n", Some(DecodingStrategy::None)),
            literal("omitted: SGVsbG8=\n", None),
            literal("url: Pz8_\n", Some(DecodingStrategy::Base64Url)),
            literal(
                "auto-b64: SGVsbG8=\nauto-plain: happy street\n",
                Some(DecodingStrategy::Auto),
            ),
        ],
        ..Default::default()
    };
    let out = run(&tpl, data(&[]), &Sources::default()).await.unwrap();
    assert_eq!(text(&out, "service-a"), "Hello");
    assert_eq!(text(&out, "service-b"), "World");
    assert_eq!(text(&out, "SGVsbG8="), "World", "keys are not decoded");
    assert_eq!(text(&out, "raw"), "SGVsbG8=");
    assert_eq!(text(&out, "omitted"), "SGVsbG8=", "omitted means None");
    assert_eq!(text(&out, "url"), "???");
    assert_eq!(text(&out, "auto-b64"), "Hello");
    assert_eq!(text(&out, "auto-plain"), "happy street");
}

/// ConfigMap and Secret sources, in both scopes, decode with their entry's strategy; the
/// fetched data rendered into them is decoded too (the strategy applies to the rendered value).
#[tokio::test]
async fn values_decoding_strategy_applies_to_config_maps_and_secrets() {
    let tpl = ExternalSecretTemplate {
        template_from: vec![
            TemplateFrom {
                config_map: Some(items(
                    "cm",
                    &[
                        ("greeting", TemplateScope::Values),
                        ("many", TemplateScope::KeysAndValues),
                    ],
                )),
                values_decoding_strategy: Some(DecodingStrategy::Base64),
                ..Default::default()
            },
            TemplateFrom {
                secret: Some(items("sec", &[("fetched", TemplateScope::Values)])),
                values_decoding_strategy: Some(DecodingStrategy::Base64),
                ..Default::default()
            },
            TemplateFrom {
                config_map: Some(items("plain", &[("kept", TemplateScope::Values)])),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut sources = Sources::default();
    sources.config_maps.insert(
        "cm".into(),
        [
            ("greeting".to_string(), "SGVsbG8=".to_string()),
            (
                "many".to_string(),
                "first: V29ybGQ=\nsecond: '{{ .encoded }}'\n".to_string(),
            ),
        ]
        .into(),
    );
    sources
        .secrets
        .insert("sec".into(), data(&[("fetched", "{{ .encoded }}")]));
    sources.config_maps.insert(
        "plain".into(),
        [("kept".to_string(), "SGVsbG8=".to_string())].into(),
    );
    let out = run(&tpl, data(&[("encoded", "czNjcjN0")]), &sources)
        .await
        .unwrap();
    assert_eq!(text(&out, "greeting"), "Hello");
    assert_eq!(text(&out, "first"), "World");
    assert_eq!(text(&out, "second"), "s3cr3t");
    assert_eq!(text(&out, "fetched"), "s3cr3t");
    assert_eq!(text(&out, "kept"), "SGVsbG8=", "no strategy, no decoding");
}

/// `template.data` and the metadata templates are never decoded (ESO's `MergeMap` passes
/// `None`), whatever the `templateFrom` entries say; labels and annotations targets are.
#[tokio::test]
async fn values_decoding_strategy_spares_template_data_and_reaches_metadata_targets() {
    let mut tpl = ExternalSecretTemplate {
        template_from: vec![TemplateFrom {
            literal: Some("team: cGF5bWVudHM=".into()),
            target: Some(TemplateTarget::Labels),
            values_decoding_strategy: Some(DecodingStrategy::Base64),
            ..Default::default()
        }],
        ..Default::default()
    };
    tpl.data.insert("direct".into(), "SGVsbG8=".into());
    tpl.metadata = Some(ExternalSecretTemplateMetadata {
        annotations: [("note".to_string(), "SGVsbG8=".to_string())].into(),
        ..Default::default()
    });
    let out = run(&tpl, data(&[]), &Sources::default()).await.unwrap();
    assert_eq!(out.labels["team"], "payments");
    assert_eq!(text(&out, "direct"), "SGVsbG8=");
    assert_eq!(out.annotations["note"], "SGVsbG8=");
}

/// A value that does not decode fails the template with ESO's wording, naming the key and
/// never the value (nor its offending byte).
#[tokio::test]
async fn values_decoding_errors_name_the_key_not_the_value() {
    let tpl = ExternalSecretTemplate {
        template_from: vec![literal(
            "service-a: '{{ .pw }}'\n",
            Some(DecodingStrategy::Base64),
        )],
        ..Default::default()
    };
    let err = run(&tpl, data(&[("pw", "hun!er2")]), &Sources::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TemplateError::Decode { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(
        msg,
        "could not apply template: error fetching templateFrom data: failed to decode rendered template value for key service-a: failed to decode value with strategy Base64: illegal base64 data at input byte 3"
    );
    assert!(!msg.contains("hun"), "{msg}");
}

/// A runner whose transformer and engine put every value they are given into their error,
/// as a careless plugin (or a template passing data to `fail`) would.
struct Echo {
    /// Fail in the transformer (else in the engine).
    in_transform: bool,
    /// What the transformer outputs (when it succeeds).
    transformed: SecretMap,
}

impl Echo {
    fn leak(map: &SecretMap) -> String {
        use base64::Engine as _;
        map.values()
            .map(|v| {
                let s = String::from_utf8_lossy(v.expose()).into_owned();
                let b = base64::engine::general_purpose::STANDARD.encode(v.expose());
                format!("raw {s} quoted {s:?} b64 {b}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[async_trait]
impl Runner for Echo {
    async fn transform(
        &self,
        _: &PluginRef,
        data: SecretMap,
        _: String,
    ) -> Result<SecretMap, TemplateError> {
        if self.in_transform {
            return Err(TemplateError::from_transformer(PluginError::new(
                "echo",
                PluginFailure::Trap {
                    reason: format!("panicked: {}", Echo::leak(&data)),
                },
            )));
        }
        Ok(self.transformed.clone())
    }

    async fn render(
        &self,
        _: TemplateEngine,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
    ) -> Result<Vec<(String, TemplateOutput)>, TemplateError> {
        Ok(templates
            .into_iter()
            .map(|t| {
                let e = PluginError::new(
                    "echo",
                    PluginFailure::Failed {
                        message: format!(
                            "error calling fail: {} (template {:?})",
                            Echo::leak(&context),
                            t.text
                        ),
                        key: Some(t.name.clone()),
                    },
                );
                (t.name, Err(e))
            })
            .collect())
    }
}

fn echo_template(with_plugin: bool) -> ExternalSecretTemplate {
    let mut tpl = ExternalSecretTemplate::default();
    tpl.data.insert("out".into(), "{{ fail .pw }}".into());
    if with_plugin {
        tpl.plugins = vec![crate::api::TemplatePlugin {
            plugin_ref: PluginRef {
                kind: PluginSource::Builtin,
                name: "echo".into(),
            },
            config: None,
        }];
    }
    tpl
}

async fn echo_error(
    tpl: &ExternalSecretTemplate,
    runner: &Echo,
    input: SecretMap,
    sources: &Sources,
) -> String {
    apply(
        Some(tpl),
        &BTreeMap::new(),
        &BTreeMap::new(),
        input,
        sources,
        runner,
    )
    .await
    .unwrap_err()
    .to_string()
}

fn assert_clean(err: &str, values: &[&str]) {
    use base64::Engine as _;
    for v in values {
        let b = base64::engine::general_purpose::STANDARD.encode(v);
        assert!(!err.contains(v), "{v:?} in {err}");
        assert!(!err.contains(&b), "base64 of {v:?} in {err}");
    }
}

#[tokio::test]
async fn a_leaking_engine_error_is_redacted_before_it_leaves_the_step() {
    let runner = Echo {
        in_transform: false,
        transformed: SecretMap::new(),
    };
    let input = data(&[("pw", "canary-engine-\"q\"\n-value"), ("port", "80")]);
    let err = echo_error(&echo_template(false), &runner, input, &Sources::default()).await;
    assert!(
        err.starts_with(
            "could not apply template: could not execute template: error calling fail: "
        ),
        "{err}"
    );
    assert!(err.contains("raw <redacted> quoted"), "{err}");
    assert_clean(
        &err,
        &[
            "canary-engine-\"q\"\n-value",
            "canary-engine-\\\"q\\\"\\n-value",
        ],
    );
    // Values too short to redact safely stay (the message would otherwise lose every digit).
    assert!(err.contains("raw 80"), "{err}");
}

#[tokio::test]
async fn transformer_errors_and_transformed_values_are_redacted() {
    // The transformer itself leaks its input.
    let runner = Echo {
        in_transform: true,
        transformed: SecretMap::new(),
    };
    let input = data(&[("p12", "canary-transformer-input")]);
    let err = echo_error(&echo_template(true), &runner, input, &Sources::default()).await;
    assert!(
        err.contains("plugin echo crashed: panicked: raw <redacted>"),
        "{err}"
    );
    assert_clean(&err, &["canary-transformer-input"]);

    // The engine leaks what the transformer made of the input (a value the fetch never had).
    let runner = Echo {
        in_transform: false,
        transformed: data(&[("tls.key", "canary-derived-by-the-transformer")]),
    };
    let input = data(&[("p12", "canary-transformer-input")]);
    let err = echo_error(&echo_template(true), &runner, input, &Sources::default()).await;
    assert_clean(&err, &["canary-derived-by-the-transformer"]);
}

#[tokio::test]
async fn template_from_secret_texts_are_redacted_too() {
    let runner = Echo {
        in_transform: false,
        transformed: SecretMap::new(),
    };
    let mut sources = Sources::default();
    sources.secrets.insert(
        "tpl".into(),
        data(&[("t", "canary-template-text-in-a-secret")]),
    );
    let tpl = ExternalSecretTemplate {
        template_from: vec![TemplateFrom {
            secret: Some(TemplateRef {
                name: "tpl".into(),
                items: vec![TemplateRefItem {
                    key: "t".into(),
                    template_as: None,
                }],
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = echo_error(&tpl, &runner, data(&[]), &sources).await;
    assert!(err.contains("(template \"<redacted>\")"), "{err}");
    assert_clean(&err, &["canary-template-text-in-a-secret"]);
}

/// The real engines, end to end through the step: a failing function over a secret value
/// names the function, never the value.
#[tokio::test]
async fn real_engine_function_errors_over_secret_values_carry_no_value() {
    let canary = "canary-real-engine-7f3a";
    let cases: &[(Option<&str>, &str, &str)] = &[
        (None, "{{ fail .v }}", "fail"),
        (None, "{{ .v | mustToDate \"2006-01-02\" }}", "mustToDate"),
        (None, "{{ semverCompare .v \"1.2.3\" }}", "semverCompare"),
        (None, "{{ now | mustDateModify .v }}", "mustDateModify"),
        (None, "{{ .v | mustFromJson }}", "mustFromJson"),
        (
            None,
            "{{ mustRegexMatch (printf \"%s(\" .v) \"x\" }}",
            "mustRegexMatch",
        ),
        (Some("minijinja"), "{{ v | fromJson }}", "fromJson"),
        (Some("minijinja"), "{{ v | b64dec }}", "b64dec"),
        (Some("minijinja"), "{{ v | int }}", "int"),
    ];
    for (engine, text, function) in cases {
        let mut tpl = ExternalSecretTemplate {
            engine_version: engine.map(str::to_string),
            ..Default::default()
        };
        tpl.data.insert("out".into(), text.to_string());
        let err = run(&tpl, data(&[("v", canary)]), &Sources::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(function), "{function}: {err}");
        assert_clean(&err, &[canary]);
    }
}
