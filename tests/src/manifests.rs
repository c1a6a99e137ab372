//! Manifests the integration tests share, as YAML a user would write (and [`TestEnv::apply`]
//! applies as written).
//!
//! Each returns one or more documents joined by `---`, ending in a newline, so a test can put
//! several side by side with `format!("{a}---\n{b}")`. Values that may hold YAML's special
//! characters (the Fake store's values, keys moto accepts) are written as JSON strings, which
//! YAML reads unchanged.
//!
//! [`TestEnv::apply`]: crate::TestEnv::apply

/// The seeds' database credentials (`production/db/credentials`), as a provider serves them.
pub const SEED_CREDS: &str = r#"{"username":"admin","password":"superSecretPassword123","host":"rds-prod-01.aws.com","port":"5432"}"#;

/// A YAML double-quoted scalar holding `s` exactly.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// A SecretStore `name` (`v1beta1`, as the seeds write it) served by the Fake provider, holding
/// `entries` as (key, value).
pub fn fake_store(name: &str, entries: &[(&str, &str)]) -> String {
    fake_store_at("v1beta1", name, entries)
}

/// [`fake_store`] at `external-secrets.io/v1`, the version the tests other than the seeds'
/// write.
pub fn fake_store_v1(name: &str, entries: &[(&str, &str)]) -> String {
    fake_store_at("v1", name, entries)
}

/// A ClusterSecretStore `name` (`v1`) served by the Fake provider, holding `entries`.
pub fn fake_cluster_store(name: &str, entries: &[(&str, &str)]) -> String {
    fake_store_of("v1", "ClusterSecretStore", name, entries)
}

fn fake_store_at(version: &str, name: &str, entries: &[(&str, &str)]) -> String {
    fake_store_of(version, "SecretStore", name, entries)
}

fn fake_store_of(version: &str, kind: &str, name: &str, entries: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        r#"apiVersion: external-secrets.io/{version}
kind: {kind}
metadata:
  name: {name}
spec:
  provider:
    fake:
"#
    );
    if entries.is_empty() {
        yaml.push_str("      data: []\n");
    } else {
        yaml.push_str("      data:\n");
        for (key, value) in entries {
            yaml.push_str(&format!(
                "      - key: {}\n        value: {}\n",
                quoted(key),
                quoted(value)
            ));
        }
    }
    yaml
}

/// An ExternalSecret `name` (`v1`) that reads each (secretKey, remote key) of `data` from the
/// SecretStore `store` every `refresh_interval` (a duration such as `1s`, `1h`, or `0`).
/// Its Secret has the ExternalSecret's name.
pub fn external_secret(
    name: &str,
    store: &str,
    refresh_interval: &str,
    data: &[(&str, &str)],
) -> String {
    external_secret_with(name, store, refresh_interval, data, EsOptions::default())
}

/// What [`external_secret_with`] sets beyond [`external_secret`]; the default sets nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct EsOptions<'a> {
    /// `secretStoreRef.kind` (`SecretStore`, `ClusterSecretStore`).
    pub store_kind: Option<&'a str>,
    /// `target.name`: the Secret's name, when not the ExternalSecret's.
    pub target: Option<&'a str>,
    /// `metadata.annotations` (`force-sync` to make a change that forces a refresh).
    pub annotations: &'a [(&'a str, &'a str)],
}

/// [`external_secret`] with the store's kind, the target's name or annotations set.
pub fn external_secret_with(
    name: &str,
    store: &str,
    refresh_interval: &str,
    data: &[(&str, &str)],
    options: EsOptions<'_>,
) -> String {
    let mut yaml = format!(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: {name}
"#
    );
    if !options.annotations.is_empty() {
        yaml.push_str("  annotations:\n");
        for (key, value) in options.annotations {
            yaml.push_str(&format!("    {key}: {}\n", quoted(value)));
        }
    }
    yaml.push_str(&format!(
        r#"spec:
  refreshInterval: "{refresh_interval}"
  secretStoreRef:
    name: {store}
"#
    ));
    if let Some(kind) = options.store_kind {
        yaml.push_str(&format!("    kind: {kind}\n"));
    }
    if let Some(target) = options.target {
        yaml.push_str(&format!("  target:\n    name: {target}\n"));
    }
    yaml.push_str("  data:\n");
    for (secret_key, key) in data {
        yaml.push_str(&format!(
            "  - secretKey: {secret_key}\n    remoteRef:\n      key: {}\n",
            quoted(key)
        ));
    }
    yaml
}

/// An AWS SecretStore `name` (`v1`) for `service` (`SecretsManager` or `ParameterStore`) in
/// us-east-1, authenticated by static keys `key` (`id:secret`) from the Secret `<name>-creds`,
/// which comes first.
pub fn aws_static_store(name: &str, service: &str, key: &str) -> String {
    let (id, secret) = key.split_once(':').expect("key is id:secret");
    let (id, secret) = (quoted(id), quoted(secret));
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: {name}-creds
stringData:
  id: {id}
  secret: {secret}
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: {name}
spec:
  provider:
    aws:
      service: {service}
      region: us-east-1
      auth:
        secretRef:
          accessKeyIDSecretRef:
            name: {name}-creds
            key: id
          secretAccessKeySecretRef:
            name: {name}-creds
            key: secret
"#
    )
}

/// The seeds' IRSA ClusterSecretStore (`v1beta1`, as written there) named `name`: Secrets
/// Manager in us-east-1 with `jwt` auth through the ServiceAccount `external-secrets-sa` of
/// `service_account_namespace`.
pub fn irsa_cluster_store(name: &str, service_account_namespace: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1beta1
kind: ClusterSecretStore
metadata:
  name: {name}
spec:
  provider:
    aws:
      service: SecretsManager
      region: us-east-1
      auth:
        jwt:
          serviceAccountRef:
            name: external-secrets-sa
            namespace: {service_account_namespace}
"#
    )
}

/// The seeds' ExternalSecret `db-credentials-es`, as written there (comments included): it
/// extracts `production/db/credentials` from the store `store` of kind `kind` into the Secret
/// `db-credentials-native`.
pub fn seed_db_credentials(store: &str, kind: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: db-credentials-es
spec:
  refreshInterval: "1h" # The critical rotation interval
  secretStoreRef:
    name: {store}
    kind: {kind}
  target:
    name: db-credentials-native # Name of the standard K8s Secret it will create
    creationPolicy: Owner
  dataFrom:
  - extract:
      key: production/db/credentials
"#
    )
}

/// The seeds' ExternalSecret `api-key-sync`, as written there: the `api_token_value`
/// property of `/production/api-key` from the store `store` of kind `kind`, as `API_TOKEN` in
/// the Secret `api-credentials`.
pub fn seed_api_key(store: &str, kind: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: api-key-sync
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: {store}
    kind: {kind}
  target:
    name: api-credentials
    creationPolicy: Owner
  data:
  - secretKey: API_TOKEN
    remoteRef:
      key: /production/api-key
      property: api_token_value
"#
    )
}

/// ESO's Password generator `db-password`: 20 characters, 4 digits, 2 symbols, no upper case,
/// no repeated character.
pub const PASSWORD_GENERATOR: &str = r#"apiVersion: generators.external-secrets.io/v1alpha1
kind: Password
metadata:
  name: db-password
spec:
  length: 20
  digits: 4
  symbols: 2
  noUpper: true
  allowRepeat: false
"#;

/// An ExternalSecret `name` (`v1`) whose Secret `name` is all the data of the generator
/// `generator` of `kind` (`Password`, `ClusterGenerator`, …), regenerated every
/// `refresh_interval`.
pub fn generated_secret(name: &str, kind: &str, generator: &str, refresh_interval: &str) -> String {
    format!(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: {name}
spec:
  refreshInterval: "{refresh_interval}"
  target:
    name: {name}
  dataFrom:
  - sourceRef:
      generatorRef:
        apiVersion: generators.external-secrets.io/v1alpha1
        kind: {kind}
        name: {generator}
"#
    )
}

#[cfg(test)]
mod tests {
    //! Each fixture reads as the same objects as the test-local builders and one-line YAML
    //! it replaced, so the tests using it check what they checked before.
    use super::*;
    use serde_json::{Value, json};

    fn docs(yaml: &str) -> Vec<Value> {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(yaml)
            .map(|doc| Value::deserialize(doc).unwrap())
            .collect()
    }

    #[test]
    fn fake_store_is_sync_rs_builder() {
        let entries = [
            ("production/db/credentials", SEED_CREDS),
            ("dir/a b", "it's: #not a comment"),
        ];
        let before = json!({
            "apiVersion": "external-secrets.io/v1beta1",
            "kind": "SecretStore",
            "metadata": {"name": "store"},
            "spec": {"provider": {"fake": {"data": entries
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect::<Vec<_>>()}}},
        });
        assert_eq!(docs(&fake_store("store", &entries)), [before]);
        assert_eq!(
            docs(&fake_store("store", &[]))[0]["spec"]["provider"]["fake"]["data"],
            json!([])
        );
    }

    #[test]
    fn external_secret_is_the_one_line_yaml() {
        // As sync.rs wrote them: `1s` plain, `"0"` quoted.
        for (interval, written) in [("1s", "1s"), ("0", "\"0\"")] {
            let before = format!(
                "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es}}\nspec:\n  refreshInterval: {written}\n  secretStoreRef: {{name: store}}\n  data:\n  - {{secretKey: value, remoteRef: {{key: \"ns/a\"}}}}\n"
            );
            assert_eq!(
                docs(&external_secret(
                    "es",
                    "store",
                    interval,
                    &[("value", "ns/a")]
                )),
                docs(&before)
            );
        }
    }

    #[test]
    fn fake_store_v1_is_the_tests_inline_store() {
        // As leader.rs, plugins.rs, sync.rs and webhook.rs wrote it.
        let before = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: store}\nspec:\n  provider:\n    fake:\n      data:\n      - {key: k, value: one}\n";
        assert_eq!(docs(&fake_store_v1("store", &[("k", "one")])), docs(before));
        assert_eq!(
            docs(&fake_store_v1("store", &[]))[0]["spec"]["provider"]["fake"]["data"],
            json!([])
        );
    }

    #[test]
    fn external_secret_with_options_is_the_tests_inline_external_secret() {
        // As leader.rs wrote it (twice: without and with the force-sync annotation).
        let before = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, annotations: {force-sync: '2'}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {name: store, kind: SecretStore}\n  target: {name: out}\n  data:\n  - secretKey: k\n    remoteRef: {key: k}\n";
        let options = EsOptions {
            store_kind: Some("SecretStore"),
            target: Some("out"),
            annotations: &[("force-sync", "2")],
        };
        let plain = before.replace("{name: es, annotations: {force-sync: '2'}}", "{name: es}");
        let unannotated = EsOptions {
            annotations: &[],
            ..options
        };
        for (options, before) in [(options, before), (unannotated, plain.as_str())] {
            let es = external_secret_with("es", "store", "1h", &[("k", "k")], options);
            assert_eq!(docs(&es), docs(before));
        }
        // Default options: external_secret's manifest.
        assert_eq!(
            external_secret_with("es", "store", "1s", &[("k", "k")], EsOptions::default()),
            external_secret("es", "store", "1s", &[("k", "k")])
        );
    }

    #[test]
    fn aws_static_store_is_aws_access_rs_builder() {
        let before = "apiVersion: v1\nkind: Secret\nmetadata: {name: aws-creds}\nstringData: {id: 'AKID', secret: 's'}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: aws}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: us-east-1\n      auth: {secretRef: {accessKeyIDSecretRef: {name: aws-creds, key: id}, secretAccessKeySecretRef: {name: aws-creds, key: secret}}}\n";
        assert_eq!(
            docs(&aws_static_store("aws", "SecretsManager", "AKID:s")),
            docs(before)
        );
    }

    #[test]
    fn generated_secret_is_the_one_line_yaml() {
        let before = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: s}\nspec:\n  refreshInterval: 1h\n  target: {name: s}\n  dataFrom:\n  - sourceRef:\n      generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: STSSessionToken, name: session}\n";
        assert_eq!(
            docs(&generated_secret("s", "STSSessionToken", "session", "1h")),
            docs(before)
        );
    }

    #[test]
    fn irsa_cluster_store_and_the_seed_external_secret_read_as_the_seeds() {
        let css = &docs(&irsa_cluster_store("css", "ns"))[0];
        assert_eq!(css["kind"], "ClusterSecretStore");
        assert_eq!(
            css["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"],
            json!({"name": "external-secrets-sa", "namespace": "ns"})
        );
        let es = &docs(&seed_db_credentials("css", "ClusterSecretStore"))[0];
        assert_eq!(
            es["spec"]["secretStoreRef"],
            json!({"name": "css", "kind": "ClusterSecretStore"})
        );
        assert_eq!(es["spec"]["target"]["name"], "db-credentials-native");
    }
}
