//! `esox render`: an ExternalSecret rendered offline, through the controller's own pipeline
//! (fetch → rewrite → template plugins → Go/minijinja engine), for debugging templates and
//! plugins without a cluster.
//!
//! The input is the manifests a user already has: the ExternalSecret, a store (Fake, or AWS
//! with the default credential chain; or a JSON file of remote values standing in for one), the ConfigMaps and Secrets
//! its `templateFrom` reads, and local files for the `WasmPlugin`s it declares.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::api::{ExternalSecretSpec, PluginRef, PluginSource};
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

/// Renders the ExternalSecret in `inputs` and returns the Secret as YAML.
pub async fn render(
    inputs: Inputs,
    host: Arc<PluginHost>,
    decode: bool,
) -> Result<String, RenderError> {
    let es = inputs
        .docs
        .iter()
        .filter(|d| kind_of(d) == "ExternalSecret")
        .find(|d| inputs.name.as_deref().is_none_or(|n| name_of(d) == n))
        .ok_or_else(|| RenderError::Input("no ExternalSecret in the given files".into()))?;
    let es_name = name_of(es).to_string();
    let spec: ExternalSecretSpec =
        serde_yaml::from_value(es.get("spec").cloned().unwrap_or_default()).map_err(|e| {
            RenderError::Input(format!("ExternalSecret {es_name}: invalid spec: {e}"))
        })?;
    // Counted as the controller counts them, and thrown away: an offline render has no scrape.
    let metrics = Arc::new(Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let provider = provider(&inputs, &spec, &metrics).await?;
    let source = Offline { provider };
    let renamer = GoKeyRenamer {
        host: &host,
        metrics: &metrics,
    };
    let data = crate::pipeline::collect(&spec, &source, &renamer).await?;
    let sources = sources(&inputs.docs);
    let runner = OfflineRunner {
        builtins: BuiltinRunner {
            host: &host,
            metrics: &metrics,
            delimiters: &Delimiters::default(),
        },
        plugins: &inputs.plugins,
    };
    let meta = |field: &str| -> BTreeMap<String, String> {
        es.get("metadata")
            .and_then(|m| m.get(field))
            .and_then(|l| serde_yaml::from_value(l.clone()).ok())
            .unwrap_or_default()
    };
    let target = &spec.target;
    let out = crate::template::apply(
        target.template.as_ref(),
        &meta("labels"),
        &meta("annotations"),
        data,
        &sources,
        &runner,
    )
    .await?;
    let name = target
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or(es_name);
    let mut secret = serde_yaml::Mapping::new();
    secret.insert("apiVersion".into(), "v1".into());
    secret.insert("kind".into(), "Secret".into());
    let mut md = serde_yaml::Mapping::new();
    md.insert("name".into(), name.into());
    if let Some(ns) = es.get("metadata").and_then(|m| m.get("namespace")) {
        md.insert("namespace".into(), ns.clone());
    }
    if !out.labels.is_empty() {
        md.insert(
            "labels".into(),
            serde_yaml::to_value(&out.labels).expect("labels"),
        );
    }
    if !out.annotations.is_empty() {
        md.insert(
            "annotations".into(),
            serde_yaml::to_value(&out.annotations).expect("annotations"),
        );
    }
    secret.insert("metadata".into(), serde_yaml::Value::Mapping(md));
    secret.insert(
        "type".into(),
        out.type_.clone().unwrap_or_else(|| "Opaque".into()).into(),
    );
    let mut data = serde_yaml::Mapping::new();
    for (k, v) in &out.data {
        let text = match (decode, std::str::from_utf8(v.expose())) {
            (true, Ok(s)) => s.to_string(),
            _ => base64::engine::general_purpose::STANDARD.encode(v.expose()),
        };
        data.insert(k.clone().into(), text.into());
    }
    secret.insert(
        if decode { "stringData" } else { "data" }.into(),
        serde_yaml::Value::Mapping(data),
    );
    Ok(serde_yaml::to_string(&secret).expect("a Secret serializes"))
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
    // Never called: the default chain reads no Kubernetes object.
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a valid URL"));
    let client =
        kube::Client::try_from(config).map_err(|e| RenderError::Input(format!("internal: {e}")))?;
    let ctx = crate::provider::BuildContext {
        client: &client,
        store_kind: crate::api::StoreKind::SecretStore,
        namespace: "default",
        metrics,
    };
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
    async fn get(&self, _source: Source<'_>, req: &GetRequest) -> Result<SecretBytes, SourceError> {
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
