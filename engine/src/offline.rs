//! `esox render`: an ExternalSecret rendered offline, through the controller's own pipeline
//! (fetch → rewrite → template plugins → Go/minijinja engine), for debugging templates and
//! plugins without a cluster. It prints the Secret the controller would create, shaped by the
//! controller's own [`target::desired_secret`] (labels, annotations, data hash, owner
//! reference), and connects providers without a Kubernetes client
//! ([`crate::provider::BuildContext::offline`]).
//!
//! The input is the manifests a user already has: the ExternalSecret, a store (Fake, or AWS
//! with the default credential chain; or a JSON file of remote values standing in for one), the ConfigMaps and Secrets
//! its `templateFrom` reads, and local files for the `WasmPlugin`s it declares.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::api::{ExternalSecret, ExternalSecretSpec, PluginRef, PluginSource};
use crate::controller::target;
use crate::metrics::Metrics;
use crate::pipeline::{DataSource, Source, SourceError};
use crate::plugin::{PluginHost, TemplateRequest, World};
use crate::provider::Provider;
use crate::provider::{FindQuery, GetRequest};
use crate::secret::{SecretBytes, SecretMap};
use crate::template::{
    BuiltinRunner, Delimiters, GoKeyRenamer, Runner, Sources, TemplateEngine, TemplateError,
};

/// Why a render failed (messages name manifests, keys and plugins, never values).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The manifests do not hold what a render needs.
    #[error("{0}")]
    Input(String),
    /// Fetching or building the data failed.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// The template step failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The documents of a multi-document YAML stream (`kubectl apply -f` input), empty ones
/// (`---` at the end, comments only) skipped.
pub fn documents<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, serde_yaml::Error> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)?;
        if !v.is_null() {
            docs.push(serde_yaml::from_value(v)?);
        }
    }
    Ok(docs)
}

/// What a render reads.
pub struct Inputs {
    /// Every document of the given manifest files.
    pub docs: Vec<serde_yaml::Value>,
    /// Remote values standing in for a store (`--data`), if any.
    pub data: Option<BTreeMap<String, String>>,
    /// Local components for `WasmPlugin`/`ClusterWasmPlugin` names.
    pub plugins: BTreeMap<String, PathBuf>,
    /// Which ExternalSecret, when the files hold several.
    pub name: Option<String>,
}

fn kind_of(d: &serde_yaml::Value) -> &str {
    d.get("kind").and_then(|k| k.as_str()).unwrap_or_default()
}

fn name_of(d: &serde_yaml::Value) -> &str {
    d.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
}

/// Renders the ExternalSecret in `inputs` and returns the Secret as YAML: the Secret the
/// controller would create ([`target::desired_secret`]: its labels, annotations, data hash and,
/// when the manifest has a uid, owner reference), with the values in `stringData` as text when
/// `decode` is set.
pub async fn render(
    inputs: Inputs,
    host: Arc<PluginHost>,
    decode: bool,
) -> Result<String, RenderError> {
    let doc = inputs
        .docs
        .iter()
        .filter(|d| kind_of(d) == "ExternalSecret")
        .find(|d| inputs.name.as_deref().is_none_or(|n| name_of(d) == n))
        .ok_or_else(|| RenderError::Input("no ExternalSecret in the given files".into()))?;
    let es = external_secret(doc)?;
    // Counted as the controller counts them, and thrown away: an offline render has no scrape.
    let metrics = Arc::new(Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let provider = provider(&inputs, &es.spec, &metrics).await?;
    let source = Offline { provider };
    let renamer = GoKeyRenamer {
        host: &host,
        metrics: &metrics,
    };
    let data = crate::pipeline::collect(&es.spec, &source, &renamer).await?;
    let sources = sources(&inputs.docs);
    let runner = OfflineRunner {
        builtins: BuiltinRunner {
            host: &host,
            metrics: &metrics,
            delimiters: &Delimiters::default(),
        },
        plugins: &inputs.plugins,
    };
    let out = crate::template::apply(
        es.spec.target.template.as_ref(),
        es.labels(),
        es.annotations(),
        data,
        &sources,
        &runner,
    )
    .await?;
    Ok(secret_yaml(&es, &out, decode))
}

/// The ExternalSecret document, typed as the controller reads it.
fn external_secret(doc: &serde_yaml::Value) -> Result<ExternalSecret, RenderError> {
    let name = name_of(doc);
    let invalid = |field: &str, e: serde_yaml::Error| {
        RenderError::Input(format!("ExternalSecret {name}: invalid {field}: {e}"))
    };
    let spec: ExternalSecretSpec =
        serde_yaml::from_value(doc.get("spec").cloned().unwrap_or_default())
            .map_err(|e| invalid("spec", e))?;
    let metadata: ObjectMeta = match doc.get("metadata") {
        Some(m) => serde_yaml::from_value(m.clone()).map_err(|e| invalid("metadata", e))?,
        None => ObjectMeta::default(),
    };
    Ok(ExternalSecret {
        metadata,
        spec,
        status: None,
    })
}

/// The Secret `out` becomes, as the controller would create it, in YAML.
fn secret_yaml(es: &ExternalSecret, out: &crate::template::Output, decode: bool) -> String {
    let data = out
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
        .collect();
    let mut secret = target::desired_secret(es, None, data, out);
    // Without a uid there is nothing to own the Secret by: no empty list (the apiserver keeps
    // none either).
    if secret
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        secret.metadata.owner_references = None;
    }
    if decode {
        secret.string_data = secret.data.take().map(|data| {
            data.into_iter()
                .map(|(k, v)| {
                    let text = String::from_utf8(v.0).unwrap_or_else(|e| {
                        base64::engine::general_purpose::STANDARD.encode(e.as_bytes())
                    });
                    (k, text)
                })
                .collect()
        });
    }
    serde_yaml::to_string(&secret).expect("a Secret serializes")
}

/// The store: a `--data` file, or the Fake store the ExternalSecret names.
async fn provider(
    inputs: &Inputs,
    spec: &ExternalSecretSpec,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Provider>, RenderError> {
    use crate::api::{FakeProvider as FakeSpec, FakeProviderData};
    if let Some(values) = &inputs.data {
        let fake = FakeSpec {
            data: values
                .iter()
                .map(|(k, v)| FakeProviderData {
                    key: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                })
                .collect(),
        };
        return Ok(Arc::new(crate::provider::fake::FakeProvider::new(&fake)));
    }
    let wanted = spec.secret_store_ref.as_ref().map(|r| r.name.as_str());
    let store = inputs
        .docs
        .iter()
        .filter(|d| matches!(kind_of(d), "SecretStore" | "ClusterSecretStore"))
        .find(|d| wanted.is_none_or(|w| name_of(d) == w))
        .ok_or_else(|| {
            RenderError::Input(format!(
                "no store {} in the given files (or pass --data FILE.json with the remote values)",
                wanted.unwrap_or("(unnamed)")
            ))
        })?;
    let provider_spec = store.get("spec").and_then(|s| s.get("provider"));
    if let Some(aws) = provider_spec.and_then(|p| p.get("aws")) {
        return aws_provider(name_of(store), aws, metrics).await;
    }
    let fake = provider_spec.and_then(|p| p.get("fake")).ok_or_else(|| {
        RenderError::Input(format!(
            "store {} is neither a Fake nor an AWS store; offline renders read a Fake store, an AWS store or --data FILE.json",
            name_of(store)
        ))
    })?;
    let fake: FakeSpec = serde_yaml::from_value(fake.clone()).map_err(|e| {
        RenderError::Input(format!(
            "store {}: invalid fake provider: {e}",
            name_of(store)
        ))
    })?;
    Ok(Arc::new(crate::provider::fake::FakeProvider::new(&fake)))
}

/// An AWS store, offline: credentials from the SDK's default chain (AWS_* variables, profile,
/// instance role), since `auth.secretRef` and `auth.jwt` need the cluster.
async fn aws_provider(
    name: &str,
    aws: &serde_yaml::Value,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Provider>, RenderError> {
    let spec: crate::api::AwsProvider = serde_yaml::from_value(aws.clone())
        .map_err(|e| RenderError::Input(format!("store {name}: invalid aws provider: {e}")))?;
    if spec.auth.is_some() {
        return Err(RenderError::Input(format!(
            "store {name}: spec.provider.aws.auth needs the cluster (a Secret or a ServiceAccount token); offline renders use the AWS default credential chain: remove auth, or pass --data FILE.json"
        )));
    }
    let ctx = crate::provider::BuildContext::offline(metrics);
    let (provider, _) = crate::provider::aws::connect(&spec, &ctx)
        .await
        .map_err(|e| RenderError::Input(format!("store {name}: {e}")))?;
    Ok(provider)
}

/// ConfigMaps and Secrets among the documents, for `templateFrom`.
fn sources(docs: &[serde_yaml::Value]) -> Sources {
    let mut s = Sources::default();
    for d in docs {
        let map = |field: &str| -> BTreeMap<String, String> {
            d.get(field)
                .and_then(|m| serde_yaml::from_value(m.clone()).ok())
                .unwrap_or_default()
        };
        match kind_of(d) {
            "ConfigMap" => {
                s.config_maps.insert(name_of(d).to_string(), map("data"));
            }
            "Secret" => {
                let mut data: SecretMap = map("data")
                    .into_iter()
                    .filter_map(|(k, v)| {
                        base64::engine::general_purpose::STANDARD
                            .decode(v)
                            .ok()
                            .map(|b| (k, SecretBytes::new(b)))
                    })
                    .collect();
                for (k, v) in map("stringData") {
                    data.insert(k, SecretBytes::new(v.into_bytes()));
                }
                s.secrets.insert(name_of(d).to_string(), data);
            }
            _ => {}
        }
    }
    s
}

struct Offline {
    provider: Arc<dyn Provider>,
}

#[async_trait]
impl DataSource for Offline {
    async fn get(
        &self,
        _source: Source<'_>,
        req: &GetRequest,
    ) -> Result<crate::provider::Fetched, SourceError> {
        Ok(self.provider.get(req).await?)
    }

    async fn find(
        &self,
        _source: Source<'_>,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, SourceError> {
        Ok(self.provider.find(query).await?)
    }
}

/// Built-ins as the controller runs them; user plugins from local files.
struct OfflineRunner<'a> {
    builtins: BuiltinRunner<'a>,
    plugins: &'a BTreeMap<String, PathBuf>,
}

#[async_trait]
impl Runner for OfflineRunner<'_> {
    async fn transform(
        &self,
        plugin: &PluginRef,
        data: SecretMap,
        config: String,
    ) -> Result<SecretMap, TemplateError> {
        if plugin.kind == PluginSource::Builtin {
            return self.builtins.transform(plugin, data, config).await;
        }
        let path = self.plugins.get(&plugin.name).ok_or_else(|| {
            TemplateError::Plugin(format!(
                "{:?} {:?} is not available offline: pass --plugin {}=FILE.wasm",
                plugin.kind, plugin.name, plugin.name
            ))
        })?;
        let bytes = std::fs::read(path).map_err(|e| {
            TemplateError::Plugin(format!("plugin {}: {}: {e}", plugin.name, path.display()))
        })?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let host = self.builtins.host;
        let p = host
            .user_plugin(&plugin.name, World::Transformer, &sha, bytes)
            .await
            .map_err(TemplateError::from_plugin)?;
        host.transform(p, data, config, self.builtins.metrics)
            .await
            .map_err(TemplateError::from_transformer)
    }

    async fn render(
        &self,
        engine: TemplateEngine,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
    ) -> Result<Vec<(String, crate::plugin::TemplateOutput)>, TemplateError> {
        self.builtins.render(engine, templates, context).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use k8s_openapi::api::core::v1::Secret;

    use super::*;

    fn host() -> Arc<PluginHost> {
        static HOST: OnceLock<Arc<PluginHost>> = OnceLock::new();
        HOST.get_or_init(|| PluginHost::new(Default::default()).unwrap())
            .clone()
    }

    const STORE: &str = "apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: store}
spec:
  provider:
    fake:
      data: [{key: db, value: s3cr3t}]
";

    fn inputs(yaml: &str) -> Inputs {
        Inputs {
            docs: documents(&format!("{STORE}---\n{yaml}")).unwrap(),
            data: None,
            plugins: Default::default(),
            name: None,
        }
    }

    async fn render_secret(yaml: &str, decode: bool) -> Secret {
        let out = render(inputs(yaml), host(), decode).await.unwrap();
        serde_yaml::from_str(&out).unwrap()
    }

    const APP: &str = "apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: app
  namespace: team
  labels: {tier: db}
  annotations: {note: kept}
spec:
  secretStoreRef: {name: store}
  target: {name: app-secret}
  data:
  - secretKey: password
    remoteRef: {key: db}
";

    #[tokio::test]
    async fn the_secret_is_the_one_the_controller_would_create() {
        let secret = render_secret(APP, false).await;
        let es = external_secret(&documents::<serde_yaml::Value>(APP).unwrap()[0]).unwrap();
        let data: BTreeMap<String, ByteString> =
            [("password".to_string(), ByteString(b"s3cr3t".to_vec()))].into();
        let output = crate::template::Output {
            data: [("password".to_string(), SecretBytes::from("s3cr3t"))].into(),
            labels: es.labels().clone(),
            annotations: es.annotations().clone(),
            ..Default::default()
        };
        let mut expected = target::desired_secret(&es, None, data.clone(), &output);
        expected.metadata.owner_references = None;
        assert_eq!(secret, expected);
        // What that means, spelled out.
        assert_eq!(secret.metadata.name.as_deref(), Some("app-secret"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("team"));
        let labels = secret.labels();
        assert_eq!(labels["tier"], "db");
        assert_eq!(labels[target::MANAGED_LABEL], "true");
        assert!(labels.contains_key(target::CREATED_BY_LABEL), "{labels:?}");
        let annotations = secret.annotations();
        assert_eq!(annotations["note"], "kept");
        assert_eq!(
            annotations[target::DATA_HASH_ANNOTATION],
            target::data_hash(&data)
        );
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.data, Some(data));
        assert_eq!(secret.string_data, None);
        // No uid in the manifest: nothing to own the Secret by.
        assert_eq!(secret.metadata.owner_references, None);
    }

    #[tokio::test]
    async fn decode_moves_the_values_to_string_data() {
        let secret = render_secret(APP, true).await;
        assert_eq!(secret.data, None);
        assert_eq!(
            secret.string_data,
            Some([("password".to_string(), "s3cr3t".to_string())].into())
        );
        // The data hash is the controller's: of the data, not of how it is printed.
        let data = [("password".to_string(), ByteString(b"s3cr3t".to_vec()))].into();
        assert_eq!(
            secret.annotations()[target::DATA_HASH_ANNOTATION],
            target::data_hash(&data)
        );
    }

    #[tokio::test]
    async fn an_external_secret_with_a_uid_owns_its_secret() {
        let yaml = APP.replace("  name: app\n", "  name: app\n  uid: 0e1d-uid\n");
        let secret = render_secret(&yaml, false).await;
        let owners = secret.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].uid, "0e1d-uid");
        assert_eq!(owners[0].kind, "ExternalSecret");
        assert_eq!(owners[0].controller, Some(true));
    }

    #[tokio::test]
    async fn the_template_sets_the_type_and_metadata() {
        let yaml = APP.replace(
            "  target: {name: app-secret}\n",
            "  target:
    name: app-secret
    template:
      type: kubernetes.io/basic-auth
      metadata:
        labels: {from: template}
      data:
        password: '{{ .password | upper }}'
",
        );
        let secret = render_secret(&yaml, true).await;
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(secret.labels()["from"], "template");
        assert_eq!(secret.labels()[target::MANAGED_LABEL], "true");
        assert_eq!(
            secret.string_data,
            Some([("password".to_string(), "S3CR3T".to_string())].into())
        );
    }

    /// The controller's path for the same manifest, written out: the pipeline, the template
    /// step with the ExternalSecret's labels and annotations, then `target::plan` on a
    /// missing target. Render must print exactly the Secret that plan creates.
    #[tokio::test]
    async fn template_labels_and_annotations_are_the_controllers() {
        let yaml = APP
            .replace("  name: app\n", "  name: app\n  uid: 0e1d-uid\n")
            .replace(
                "  target: {name: app-secret}\n",
                "  target:
    name: app-secret
    template:
      metadata:
        labels: {from: template, tier: web}
        annotations: {owner: '{{ .password | len }}', note: from-template}
      data:
        password: '{{ .password | upper }}'
",
            );
        let secret = render_secret(&yaml, false).await;

        let es = external_secret(&documents::<serde_yaml::Value>(&yaml).unwrap()[0]).unwrap();
        let metrics = Metrics::new(&mut prometheus_client::registry::Registry::default());
        let data: SecretMap = [("password".to_string(), SecretBytes::from("s3cr3t"))].into();
        let runner = BuiltinRunner {
            host: &host(),
            metrics: &metrics,
            delimiters: &Delimiters::default(),
        };
        let output = crate::template::apply(
            es.spec.target.template.as_ref(),
            es.labels(),
            es.annotations(),
            data,
            &Sources::default(),
            &runner,
        )
        .await
        .unwrap();
        let target::SecretPlan::Create(expected) = target::plan(&es, None, Some(&output)) else {
            panic!("a missing Owner target is created");
        };
        assert_eq!(secret, *expected);
        // The template's metadata, merged over the ExternalSecret's as the controller does.
        let (labels, annotations) = (secret.labels(), secret.annotations());
        assert_eq!(labels["from"], "template");
        assert_eq!(labels["tier"], "web", "the template's label wins");
        assert_eq!(labels[target::MANAGED_LABEL], "true");
        assert!(labels.contains_key(target::CREATED_BY_LABEL), "{labels:?}");
        assert_eq!(annotations["owner"], "6", "annotations are templated");
        assert_eq!(annotations["note"], "from-template");
        assert!(annotations.contains_key(target::DATA_HASH_ANNOTATION));
        assert_eq!(secret.metadata.owner_references.as_ref().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn invalid_metadata_is_reported() {
        let yaml = APP.replace("labels: {tier: db}", "labels: [tier]");
        let err = render(inputs(&yaml), host(), false).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ExternalSecret app: invalid metadata:"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_aws_store_connects_without_a_client() {
        let store = documents::<serde_yaml::Value>(
            "kind: SecretStore
metadata: {name: aws}
spec:
  provider:
    aws: {service: SecretsManager, region: us-east-1}
",
        )
        .unwrap();
        let spec: ExternalSecretSpec =
            serde_yaml::from_str("secretStoreRef: {name: aws}\n").unwrap();
        let inputs = Inputs {
            docs: store,
            data: None,
            plugins: Default::default(),
            name: None,
        };
        let metrics = Arc::new(Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        assert!(provider(&inputs, &spec, &metrics).await.is_ok());
    }
}
