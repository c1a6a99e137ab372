use super::*;
use crate::api::{
    DecodingStrategy, ExternalSecretData, ExternalSecretDataFromRemoteRef,
    ExternalSecretDataRemoteRef, ExternalSecretFind, ExternalSecretRewrite,
    FakeProvider as FakeSpec, FakeProviderData, FindName, RewriteRegexp,
};
use crate::provider::Provider;
use crate::provider::fake::FakeProvider;

struct Fake(FakeProvider);

#[async_trait]
impl DataSource for Fake {
    async fn get(
        &self,
        _: Source<'_>,
        req: &GetRequest,
    ) -> Result<crate::provider::Fetched, SourceError> {
        Ok(self.0.get(req).await?)
    }
    async fn find(
        &self,
        _: Source<'_>,
        q: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, SourceError> {
        Ok(self.0.find(q).await?)
    }
}

fn store(entries: &[(&str, &str)]) -> Fake {
    Fake(FakeProvider::new(&FakeSpec {
        data: entries
            .iter()
            .map(|(k, v)| FakeProviderData {
                key: k.to_string(),
                value: v.to_string(),
                ..Default::default()
            })
            .collect(),
    }))
}

fn data(key: &str, remote: &str, property: Option<&str>) -> ExternalSecretData {
    ExternalSecretData {
        secret_key: key.into(),
        remote_ref: ExternalSecretDataRemoteRef {
            key: remote.into(),
            property: property.map(Into::into),
            ..Default::default()
        },
        source_ref: None,
    }
}

fn strings(m: &SecretMap) -> Vec<(String, String)> {
    m.iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

const CREDS: &str = r#"{"username":"admin","password":"superSecretPassword123","host":"rds-prod-01.aws.com","port":"5432"}"#;

#[tokio::test]
async fn seed_properties_and_extract() {
    let src = store(&[
        ("prod/db/credentials", CREDS),
        ("/production/api-key", r#"{"api_token_value":"tok"}"#),
    ]);
    let spec = ExternalSecretSpec {
        data: vec![
            data("db_user", "prod/db/credentials", Some("username")),
            data("API_TOKEN", "/production/api-key", Some("api_token_value")),
        ],
        ..Default::default()
    };
    let out = collect(&spec, &src, &NoKeyRenamer).await.unwrap();
    assert_eq!(
        strings(&out),
        [
            ("API_TOKEN".into(), "tok".into()),
            ("db_user".into(), "admin".into())
        ]
    );

    let spec = ExternalSecretSpec {
        data_from: vec![ExternalSecretDataFromRemoteRef {
            extract: Some(ExternalSecretDataRemoteRef {
                key: "prod/db/credentials".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = collect(&spec, &src, &NoKeyRenamer).await.unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out["port"].as_str(), Some("5432"));
}

#[tokio::test]
async fn data_overrides_data_from_and_find_converts_keys() {
    let src = store(&[
        ("dev/app/backend-api", "b"),
        ("dev/app/worker", "w"),
        ("prod/app/worker", "p"),
    ]);
    let spec = ExternalSecretSpec {
        data_from: vec![ExternalSecretDataFromRemoteRef {
            find: Some(ExternalSecretFind {
                name: Some(FindName {
                    regexp: Some("^dev/app/.*".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        data: vec![data("dev_app_worker", "prod/app/worker", None)],
        ..Default::default()
    };
    let out = collect(&spec, &src, &NoKeyRenamer).await.unwrap();
    assert_eq!(
        strings(&out),
        [
            ("dev_app_backend-api".into(), "b".into()),
            ("dev_app_worker".into(), "p".into())
        ]
    );
}

#[tokio::test]
async fn rewrite_replaces_conversion_and_invalid_keys_fail() {
    let src = store(&[("dev/app/worker", "w")]);
    let mut entry = ExternalSecretDataFromRemoteRef {
        find: Some(ExternalSecretFind {
            path: Some("dev/".into()),
            ..Default::default()
        }),
        rewrite: vec![ExternalSecretRewrite {
            regexp: Some(RewriteRegexp {
                source: "dev/app/(.*)".into(),
                target: "$1".into(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let spec = ExternalSecretSpec {
        data_from: vec![entry.clone()],
        ..Default::default()
    };
    assert_eq!(
        strings(&collect(&spec, &src, &NoKeyRenamer).await.unwrap()),
        [("worker".into(), "w".into())]
    );

    entry.rewrite[0].regexp.as_mut().unwrap().target = "x/$1".into();
    let spec = ExternalSecretSpec {
        data_from: vec![entry],
        ..Default::default()
    };
    let err = collect(&spec, &src, &NoKeyRenamer).await.unwrap_err();
    assert!(matches!(err, PipelineError::InvalidKeys(_)), "{err}");
}

#[tokio::test]
async fn missing_property_and_missing_secret_errors() {
    let src = store(&[("k", r#"{"a":"1"}"#)]);
    let spec = ExternalSecretSpec {
        data: vec![data("x", "k", Some("nope"))],
        ..Default::default()
    };
    let err = collect(&spec, &src, &NoKeyRenamer)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"key "nope" does not exist in secret "k""#),
        "{err}"
    );
    assert!(!err.contains("\"1\""));

    let spec = ExternalSecretSpec {
        data: vec![data("x", "gone", None)],
        ..Default::default()
    };
    let err = collect(&spec, &src, &NoKeyRenamer).await.unwrap_err();
    assert!(err.is_no_secret());

    // Under deletionPolicy Delete a missing secret yields an empty result, not an error.
    let mut spec = spec;
    spec.target.deletion_policy = DeletionPolicy::Delete;
    assert!(
        collect(&spec, &src, &NoKeyRenamer)
            .await
            .unwrap()
            .is_empty()
    );
    // The Fake provider's missing property is ESO's NoSecretErr: under Delete the entry is
    // skipped, the others are kept.
    let spec = ExternalSecretSpec {
        data: vec![data("x", "k", Some("nope")), data("y", "k", Some("a"))],
        target: crate::api::ExternalSecretTarget {
            deletion_policy: DeletionPolicy::Delete,
            ..Default::default()
        },
        ..Default::default()
    };
    let got = collect(&spec, &src, &NoKeyRenamer).await.unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), ["y"]);
}

#[tokio::test]
async fn decoding_strategies_apply_per_entry() {
    let src = store(&[("b64", "aGVsbG8="), ("json", r#"{"x":"d29ybGQ="}"#)]);
    let mut d = data("plain", "b64", None);
    d.remote_ref.decoding_strategy = DecodingStrategy::Base64;
    let spec = ExternalSecretSpec {
        data: vec![d],
        data_from: vec![ExternalSecretDataFromRemoteRef {
            extract: Some(ExternalSecretDataRemoteRef {
                key: "json".into(),
                decoding_strategy: DecodingStrategy::Auto,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = collect(&spec, &src, &NoKeyRenamer).await.unwrap();
    assert_eq!(
        strings(&out),
        [
            ("plain".into(), "hello".into()),
            ("x".into(), "world".into())
        ]
    );
}

/// Renames keys by prefixing them, and records the templates it was asked to run.
#[derive(Default)]
struct Prefixer(std::sync::Mutex<Vec<String>>);

#[async_trait]
impl KeyRenamer for Prefixer {
    async fn rename_keys(
        &self,
        template: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, RenameError> {
        self.0.lock().unwrap().push(template.to_string());
        Ok(keys.into_iter().map(|k| format!("app_{k}")).collect())
    }
}

/// `rewrite.transform` goes to the renamer `collect` is given, not to the data source.
#[tokio::test]
async fn transform_rewrites_use_the_renamer_passed_in() {
    let src = store(&[("db", r#"{"user":"u","pass":"p"}"#)]);
    let spec = ExternalSecretSpec {
        data_from: vec![ExternalSecretDataFromRemoteRef {
            extract: Some(ExternalSecretDataRemoteRef {
                key: "db".into(),
                ..Default::default()
            }),
            rewrite: vec![ExternalSecretRewrite {
                transform: Some(crate::api::RewriteTransform {
                    template: "app_{{ .value }}".into(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let renamer = Prefixer::default();
    let out = collect(&spec, &src, &renamer).await.unwrap();
    assert_eq!(
        strings(&out),
        [
            ("app_pass".into(), "p".into()),
            ("app_user".into(), "u".into())
        ]
    );
    assert_eq!(*renamer.0.lock().unwrap(), ["app_{{ .value }}"]);

    let err = collect(&spec, &src, &NoKeyRenamer).await.unwrap_err();
    assert!(
        matches!(
            err,
            PipelineError::Rewrite {
                source: rewrite::RewriteError::Transform(RenameError::Unavailable),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "error processing spec.dataFrom[0], err: rewrite.transform needs the template engine, which is not available here"
    );
}

/// Invalid keys come back typed: each key with its problem.
#[tokio::test]
async fn invalid_keys_are_typed() {
    let src = store(&[("dev/app", "v")]);
    let spec = ExternalSecretSpec {
        data_from: vec![ExternalSecretDataFromRemoteRef {
            find: Some(ExternalSecretFind::default()),
            rewrite: vec![ExternalSecretRewrite {
                regexp: Some(RewriteRegexp {
                    source: "^dev/".into(),
                    target: "dev /".into(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let PipelineError::InvalidKeys(err) = collect(&spec, &src, &NoKeyRenamer).await.unwrap_err()
    else {
        panic!("expected InvalidKeys");
    };
    assert_eq!(
        err.keys,
        [("dev /app".to_string(), KeyProblem::InvalidCharacters)]
    );
}

/// A `property` of a secret that is not JSON (plain text, binary, nested deeper than esox
/// parses) says so, and never repeats the value.
#[tokio::test]
async fn property_of_a_secret_that_is_not_json() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
    let binary = String::from_utf8_lossy(&[0xff, 0x00, 0xfe, b'{']).into_owned();
    let src = store(&[
        ("text", "hunter2 is not json"),
        ("deep", &deep),
        ("deep-object", &deep_object),
        ("binary", &binary),
    ]);
    for (remote, reason) in [
        ("text", "expected value at line 1 column 1"),
        ("deep", "recursion limit exceeded at line 1 column"),
        ("deep-object", "recursion limit exceeded"),
        ("binary", "expected value at line 1 column 1"),
    ] {
        let spec = ExternalSecretSpec {
            data: vec![data("x", remote, Some("a"))],
            ..Default::default()
        };
        let err = collect(&spec, &src, &NoKeyRenamer).await.unwrap_err();
        assert!(matches!(err, PipelineError::NotJson { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "error processing spec.data[0], err: key \"a\" does not exist in secret \"{remote}\": the secret is not valid JSON ("
            )),
            "{msg}"
        );
        assert!(msg.contains(reason), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
    // Without a property a binary value is data like any other.
    let spec = ExternalSecretSpec {
        data: vec![data("x", "binary", None)],
        ..Default::default()
    };
    let out = collect(&spec, &src, &NoKeyRenamer).await.unwrap();
    assert_eq!(out["x"].expose(), binary.as_bytes());
    // A property path as long as a manifest allows, against a deep document: no stack
    // overflow, just not found.
    let nested = format!("{}1{}", r#"{"a":"#.repeat(100), "}".repeat(100));
    let src = store(&[("nested", &nested)]);
    let path = vec!["a"; 500_000].join(".");
    let spec = ExternalSecretSpec {
        data: vec![data("x", "nested", Some(&path))],
        ..Default::default()
    };
    let msg = collect(&spec, &src, &NoKeyRenamer)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("does not exist"), "{}", &msg[..200]);
    assert!(msg.len() < 1000, "{}", msg.len());
}

/// 2000 entries, and a find returning 2000 bad names: a result, or a short message.
#[tokio::test]
async fn thousands_of_entries() {
    let entries: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("dir/k{i}"), format!("v{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let src = store(&pairs);
    let names: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
    let spec = ExternalSecretSpec {
        data: entries
            .iter()
            .zip(&names)
            .map(|((remote, _), name)| data(name, remote, None))
            .collect(),
        ..Default::default()
    };
    let out = collect(&spec, &src, &NoKeyRenamer).await.unwrap();
    assert_eq!(out.len(), 2000);
    assert_eq!(out["k1999"].expose(), b"v1999");

    let spec = ExternalSecretSpec {
        data_from: vec![ExternalSecretDataFromRemoteRef {
            find: Some(ExternalSecretFind::default()),
            rewrite: vec![ExternalSecretRewrite {
                regexp: Some(RewriteRegexp {
                    source: "/".into(),
                    target: " ".into(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let PipelineError::InvalidKeys(err) = collect(&spec, &src, &NoKeyRenamer).await.unwrap_err()
    else {
        panic!("expected InvalidKeys");
    };
    assert_eq!(err.keys.len(), 2000);
    assert!(err.to_string().len() < 3000);
}
