//! `spec.target.template`: from fetched data to the Secret's data, labels, annotations and
//! type, with ESO's precedence — and every transformation inside Wasm.
//!
//! The order is ESO's `ApplyTemplate`, plus esox's plugin pipeline in front:
//!
//! 1. the template's transformer `plugins`, in order, over the fetched data;
//! 2. the (transformed) data itself when `mergePolicy: Merge` or when there are no data
//!    templates at all;
//! 3. `templateFrom` entries in order (ConfigMap items, Secret items, literals), each into
//!    `Data`, `Labels` or `Annotations`, their rendered values decoded with the entry's
//!    `valuesDecodingStrategy` (keys never are);
//! 4. `template.data` (so explicit data templates win over `templateFrom`);
//! 5. `metadata.labels` and `metadata.annotations`, rendered as templates too.
//!
//! All templates of one ExternalSecret go to the engine in a single call (one fresh
//! instance), and are applied in the order above; the first failing template fails the
//! whole template, leaving the Secret as it was. Nothing here talks to Kubernetes: the
//! controller resolves `templateFrom` objects into [`Sources`] and plugins through a
//! [`Runner`], so this is unit-tested against the real plugins without a cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{
    DecodingStrategy, ExternalSecretTemplate, PluginRef, PluginSource, TemplateMergePolicy,
    TemplateScope, TemplateTarget,
};
use crate::metrics::Metrics;
use crate::pipeline::decode::{self, DecodeError};
use crate::pipeline::{KeyRenamer, RenameError};
use crate::plugin::builtin::Builtin;
use crate::plugin::{
    Plugin, PluginError, PluginFailure, PluginHost, TemplateOutput, TemplateRequest, World,
};
use crate::secret::{SecretBytes, SecretMap};

mod redact;
pub use redact::{REDACTED, Redactor};

/// The template engines an ExternalSecret can select with `engineVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateEngine {
    /// ESO's Go `text/template` with sprig (`v2`, the default).
    GoTemplate,
    /// minijinja (`minijinja`).
    Minijinja,
}

impl TemplateEngine {
    /// The engine `engineVersion` selects.
    pub fn for_version(version: Option<&str>) -> Result<TemplateEngine, TemplateError> {
        match version.unwrap_or("v2") {
            "" | "v2" => Ok(TemplateEngine::GoTemplate),
            "minijinja" => Ok(TemplateEngine::Minijinja),
            other => Err(TemplateError::Invalid(format!(
                "unsupported template engine version: {other} (supported: v2, minijinja)"
            ))),
        }
    }
}

/// The objects `templateFrom` names, already read by the caller.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// ConfigMap name → its `data`.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secret name → its `data`.
    pub secrets: BTreeMap<String, SecretMap>,
}

/// What the template produced.
#[derive(Debug, Default)]
pub struct Output {
    /// The Secret's data.
    pub data: SecretMap,
    /// Labels to set.
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    pub annotations: BTreeMap<String, String>,
    /// The Secret type, when the template sets one.
    pub type_: Option<String>,
    /// Finalizers to add.
    pub finalizers: Vec<String>,
}

/// Runs plugins for the template step (the controller's plugin host, or a test's).
#[async_trait]
pub trait Runner: Send + Sync {
    /// Runs one transformer of the pipeline.
    async fn transform(
        &self,
        plugin: &PluginRef,
        data: SecretMap,
        config: String,
    ) -> Result<SecretMap, TemplateError>;
    /// Renders templates with `engine`.
    async fn render(
        &self,
        engine: TemplateEngine,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
    ) -> Result<Vec<(String, TemplateOutput)>, TemplateError>;
}

/// Why the template step failed. Messages follow ESO's where ESO has one, and never contain
/// values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    /// The template itself is not allowed or not understood.
    #[error("could not apply template: {0}")]
    Invalid(String),
    /// A `templateFrom` object or key is missing.
    #[error("could not apply template: error fetching templateFrom data: {0}")]
    Source(String),
    /// A plugin could not be found or loaded.
    #[error("could not apply template: {0}")]
    Plugin(String),
    /// A template did not render.
    #[error("could not apply template: could not execute template: {0}")]
    Render(String),
    /// A `templateFrom` entry's rendered value did not decode with its
    /// `valuesDecodingStrategy` (ESO's wording; the key is named, the value never).
    #[error(
        "could not apply template: error fetching templateFrom data: failed to decode rendered template value for key {key}: {source}"
    )]
    Decode {
        /// The rendered key whose value did not decode.
        key: String,
        /// Why.
        source: DecodeError,
    },
    /// The sandbox stopped a plugin (timeout, memory, trap, output size).
    #[error("could not apply template: {0}")]
    Sandbox(#[source] PluginError),
}

impl TemplateError {
    /// From a transformer's error: its message names the plugin (it is not a template).
    pub fn from_transformer(e: PluginError) -> TemplateError {
        match e.kind {
            PluginFailure::Failed { .. } | PluginFailure::Load { .. } => {
                TemplateError::Plugin(e.to_string())
            }
            _ => TemplateError::Sandbox(e),
        }
    }

    /// The same error with every value `r` knows replaced in its text (keys and plugin names
    /// stay, unless they contain a value).
    pub fn redacted(self, r: &Redactor) -> TemplateError {
        if r.is_empty() {
            return self;
        }
        match self {
            TemplateError::Invalid(m) => TemplateError::Invalid(r.redact(&m)),
            TemplateError::Source(m) => TemplateError::Source(r.redact(&m)),
            TemplateError::Plugin(m) => TemplateError::Plugin(r.redact(&m)),
            TemplateError::Render(m) => TemplateError::Render(r.redact(&m)),
            TemplateError::Decode { key, source } => TemplateError::Decode {
                key: r.redact(&key),
                source,
            },
            TemplateError::Sandbox(e) => TemplateError::Sandbox(e.map_text(|t| r.redact(t))),
        }
    }

    /// From a template engine's error: the engine's own message for its errors, the
    /// sandbox's verdict otherwise.
    pub fn from_plugin(e: PluginError) -> TemplateError {
        match e.kind {
            PluginFailure::Failed { message, .. } => TemplateError::Render(message),
            PluginFailure::Load { .. } => TemplateError::Plugin(e.to_string()),
            _ => TemplateError::Sandbox(e),
        }
    }
}

/// ESO's `validatePrivilegedTemplate`: templates must not mint long-lived tokens.
fn validate(tpl: &ExternalSecretTemplate) -> Result<(), TemplateError> {
    match tpl.type_.as_deref() {
        Some("kubernetes.io/service-account-token") => {
            let annotated = tpl.metadata.as_ref().is_some_and(|m| {
                m.annotations
                    .contains_key("kubernetes.io/service-account.name")
            });
            if annotated {
                return Err(TemplateError::Invalid(
                    "template.type=\"kubernetes.io/service-account-token\" with annotation \"kubernetes.io/service-account.name\" is not allowed".into(),
                ));
            }
            if tpl
                .template_from
                .iter()
                .any(|t| t.target == Some(TemplateTarget::Annotations))
            {
                return Err(TemplateError::Invalid(
                    "template.type=\"kubernetes.io/service-account-token\" with templateFrom target=\"Annotations\" is not allowed".into(),
                ));
            }
        }
        Some("bootstrap.kubernetes.io/token") => {
            return Err(TemplateError::Invalid(
                "template.type=\"bootstrap.kubernetes.io/token\" is not allowed".into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// What can be said about `tpl` without rendering it (the webhook's check): its engine
/// exists and its type is one a template may make.
pub fn check(tpl: &ExternalSecretTemplate) -> Result<(), TemplateError> {
    validate(tpl)?;
    TemplateEngine::for_version(tpl.engine_version.as_deref())?;
    Ok(())
}

/// Does this template render anything (as opposed to only setting `type`/`mergePolicy`)?
pub fn renders(tpl: &ExternalSecretTemplate) -> bool {
    !tpl.data.is_empty()
        || !tpl.template_from.is_empty()
        || tpl
            .metadata
            .as_ref()
            .is_some_and(|m| !m.labels.is_empty() || !m.annotations.is_empty())
}

/// One rendered template's destination, and how its values are decoded on the way.
struct Slot {
    target: TemplateTarget,
    decoding: DecodingStrategy,
}

/// Applies `tpl` (or ESO's no-template behaviour when `None`: the data as is, with the
/// ExternalSecret's own labels and annotations).
///
/// This is where a template's or a plugin's error leaves the template step (to become the
/// ExternalSecret's condition, an event and a log line), so every value the step saw — the
/// fetched data, each transformer's output, the `templateFrom` Secrets — is redacted from it
/// here ([`Redactor`]), whatever the engine or plugin put in its message.
pub async fn apply(
    tpl: Option<&ExternalSecretTemplate>,
    es_labels: &BTreeMap<String, String>,
    es_annotations: &BTreeMap<String, String>,
    data: SecretMap,
    sources: &Sources,
    runner: &dyn Runner,
) -> Result<Output, TemplateError> {
    let Some(tpl) = tpl else {
        return Ok(Output {
            data,
            labels: es_labels.clone(),
            annotations: es_annotations.clone(),
            ..Default::default()
        });
    };
    // The values a message could carry, kept until the step is over (zeroized on drop).
    let mut seen = vec![data.clone()];
    match apply_template(tpl, data, sources, runner, &mut seen).await {
        Ok(out) => Ok(out),
        Err(e) => {
            let mut r = Redactor::new();
            for m in &seen {
                r.add_map(m);
            }
            for m in sources.secrets.values() {
                r.add_map(m);
            }
            Err(e.redacted(&r))
        }
    }
}

/// [`apply`] with a template; `seen` collects each transformer's output.
async fn apply_template(
    tpl: &ExternalSecretTemplate,
    data: SecretMap,
    sources: &Sources,
    runner: &dyn Runner,
    seen: &mut Vec<SecretMap>,
) -> Result<Output, TemplateError> {
    validate(tpl)?;
    let mut data = data;
    for p in &tpl.plugins {
        let config = p
            .config
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "{}".into());
        data = runner.transform(&p.plugin_ref, data, config).await?;
        seen.push(data.clone());
    }

    let mut out = Output {
        type_: tpl.type_.clone().filter(|t| !t.is_empty()),
        finalizers: tpl
            .metadata
            .as_ref()
            .map(|m| m.finalizers.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    if let Some(m) = &tpl.metadata {
        // ESO sets the template's metadata first; rendering below replaces these values.
        out.labels.extend(m.labels.clone());
        out.annotations.extend(m.annotations.clone());
    }
    let no_data_templates = tpl.data.is_empty() && tpl.template_from.is_empty();
    if tpl.merge_policy == TemplateMergePolicy::Merge || no_data_templates {
        out.data = data.clone();
    }
    if !renders(tpl) {
        return Ok(out);
    }

    let (requests, slots) = requests(tpl, sources)?;
    let engine = TemplateEngine::for_version(tpl.engine_version.as_deref())?;
    let results = runner.render(engine, requests, data).await?;
    for ((_, result), slot) in results.into_iter().zip(slots) {
        let entries = result.map_err(TemplateError::from_plugin)?;
        for (key, value) in entries {
            let value = decode_value(slot.decoding, &key, value)?;
            match slot.target {
                TemplateTarget::Data => {
                    out.data.insert(key, value);
                }
                TemplateTarget::Labels | TemplateTarget::Annotations => {
                    let text = String::from_utf8(value.expose().to_vec()).map_err(|_| {
                        TemplateError::Render(format!(
                            "the rendered value for {:?} key {key:?} is not UTF-8 text",
                            slot.target
                        ))
                    })?;
                    let map = if slot.target == TemplateTarget::Labels {
                        &mut out.labels
                    } else {
                        &mut out.annotations
                    };
                    map.insert(key, text);
                }
            }
        }
    }
    Ok(out)
}

/// Every template of `tpl`, in application order, with where its output goes.
fn requests(
    tpl: &ExternalSecretTemplate,
    sources: &Sources,
) -> Result<(Vec<TemplateRequest>, Vec<Slot>), TemplateError> {
    let mut reqs = Vec::new();
    let mut slots = Vec::new();
    let mut push = |name: &str, text: String, kv: bool, slot: Slot| {
        reqs.push(TemplateRequest {
            name: name.to_string(),
            text,
            keys_and_values: kv,
        });
        slots.push(slot);
    };
    // `template.data` and the metadata templates are never decoded (ESO's `MergeMap`).
    let plain = |target| Slot {
        target,
        decoding: DecodingStrategy::None,
    };
    for from in &tpl.template_from {
        let target = from.target.unwrap_or_default();
        let slot = || Slot {
            target,
            decoding: from.values_decoding(),
        };
        if let Some(cm) = &from.config_map {
            let obj = sources.config_maps.get(&cm.name).ok_or_else(|| {
                TemplateError::Source(format!("configmap {:?} not found", cm.name))
            })?;
            for item in &cm.items {
                let text = obj.get(&item.key).ok_or_else(|| {
                    TemplateError::Source(format!(
                        "error in configmap {}: missing key {}",
                        cm.name, item.key
                    ))
                })?;
                let kv = item.template_as == Some(TemplateScope::KeysAndValues);
                push(&item.key, text.clone(), kv, slot());
            }
        }
        if let Some(sec) = &from.secret {
            let obj = sources
                .secrets
                .get(&sec.name)
                .ok_or_else(|| TemplateError::Source(format!("secret {:?} not found", sec.name)))?;
            for item in &sec.items {
                let value = obj.get(&item.key).ok_or_else(|| {
                    TemplateError::Source(format!(
                        "error in secret {}: missing key {}",
                        sec.name, item.key
                    ))
                })?;
                let text = String::from_utf8(value.expose().to_vec()).map_err(|_| {
                    TemplateError::Source(format!(
                        "error in secret {}: key {} is not UTF-8 template text",
                        sec.name, item.key
                    ))
                })?;
                let kv = item.template_as == Some(TemplateScope::KeysAndValues);
                push(&item.key, text, kv, slot());
            }
        }
        if let Some(literal) = &from.literal {
            push("literal", literal.clone(), true, slot());
        }
    }
    for (key, text) in &tpl.data {
        push(key, text.clone(), false, plain(TemplateTarget::Data));
    }
    if let Some(m) = &tpl.metadata {
        for (key, text) in &m.labels {
            push(key, text.clone(), false, plain(TemplateTarget::Labels));
        }
        for (key, text) in &m.annotations {
            push(key, text.clone(), false, plain(TemplateTarget::Annotations));
        }
    }
    Ok((reqs, slots))
}

/// ESO's `valuesDecodingStrategy`: decodes one rendered value (never its key).
fn decode_value(
    strategy: DecodingStrategy,
    key: &str,
    value: SecretBytes,
) -> Result<SecretBytes, TemplateError> {
    if strategy == DecodingStrategy::None {
        return Ok(value);
    }
    decode::decode(strategy, value.expose())
        .map(SecretBytes::new)
        .map_err(|source| TemplateError::Decode {
            key: key.to_string(),
            source,
        })
}

/// ESO's `dataFrom[].rewrite[].transform`: renames keys with a Go template over
/// `{"value": key}`, in the Go engine plugin (one fresh instance for all keys of a rewrite).
/// This is the [`KeyRenamer`] the controller and `esox render` hand to
/// [`crate::pipeline::collect`].
pub struct GoKeyRenamer<'a> {
    /// The host running the Go engine.
    pub host: &'a Arc<PluginHost>,
    /// Where plugin calls are counted.
    pub metrics: &'a Metrics,
}

#[async_trait]
impl KeyRenamer for GoKeyRenamer<'_> {
    async fn rename_keys(
        &self,
        template: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, RenameError> {
        let engine = self
            .host
            .builtin(Builtin::GoTemplate)
            .map_err(RenameError::Engine)?;
        let requests = keys
            .into_iter()
            .map(|name| TemplateRequest {
                name,
                text: template.to_string(),
                keys_and_values: false,
            })
            .collect();
        let options = r#"{"keyTransform": true}"#.to_string();
        let rendered = self
            .host
            .render(engine, requests, Default::default(), options, self.metrics)
            .await
            .map_err(RenameError::Engine)?;
        rendered
            .into_iter()
            .map(|(_, out)| match out {
                Ok(entries) => Ok(entries
                    .into_iter()
                    .next()
                    .map(|(_, v)| String::from_utf8_lossy(v.expose()).into_owned())
                    .unwrap_or_default()),
                Err(e) => Err(RenameError::Render(e)),
            })
            .collect()
    }
}

/// Runs built-in plugins on a [`PluginHost`]: the engines and the built-in transformers.
/// Plugin objects (`WasmPlugin`, `ClusterWasmPlugin`) need a cluster and are resolved by the
/// controller's runner, which delegates the rest here.
pub struct BuiltinRunner<'a> {
    /// The host.
    pub host: &'a Arc<PluginHost>,
    /// Where plugin calls are counted.
    pub metrics: &'a Metrics,
    /// The Go engine's delimiters (ESO's `--template-left-delimiter`/`--template-right-delimiter`).
    pub delimiters: &'a Delimiters,
}

/// Go template delimiters; ESO makes them a controller flag, and so do we.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delimiters {
    /// Opens an action (`{{`).
    pub left: String,
    /// Closes an action (`}}`).
    pub right: String,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            left: "{{".into(),
            right: "}}".into(),
        }
    }
}

impl BuiltinRunner<'_> {
    /// The plugin for an engine.
    pub fn engine_plugin(&self, engine: TemplateEngine) -> Result<Plugin, TemplateError> {
        let builtin = match engine {
            TemplateEngine::Minijinja => Builtin::Minijinja,
            TemplateEngine::GoTemplate => Builtin::GoTemplate,
        };
        self.host
            .builtin(builtin)
            .map_err(TemplateError::from_plugin)
    }

    /// A built-in transformer by reference.
    pub fn transformer(&self, plugin: &PluginRef) -> Result<Plugin, TemplateError> {
        if plugin.kind != PluginSource::Builtin {
            return Err(TemplateError::Plugin(format!(
                "{:?} plugins are not available here",
                plugin.kind
            )));
        }
        let b = Builtin::by_name(&plugin.name)
            .filter(|b| b.world() == World::Transformer)
            .ok_or_else(|| {
                let names: Vec<_> = Builtin::ALL
                    .iter()
                    .filter(|b| b.world() == World::Transformer)
                    .map(|b| b.name())
                    .collect();
                TemplateError::Plugin(format!(
                    "there is no built-in transformer plugin {:?} (built-in transformers: {})",
                    plugin.name,
                    names.join(", ")
                ))
            })?;
        self.host.builtin(b).map_err(TemplateError::from_plugin)
    }
}

#[async_trait]
impl Runner for BuiltinRunner<'_> {
    async fn transform(
        &self,
        plugin: &PluginRef,
        data: SecretMap,
        config: String,
    ) -> Result<SecretMap, TemplateError> {
        let p = self.transformer(plugin)?;
        self.host
            .transform(p, data, config, self.metrics)
            .await
            .map_err(TemplateError::from_transformer)
    }

    async fn render(
        &self,
        engine: TemplateEngine,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
    ) -> Result<Vec<(String, TemplateOutput)>, TemplateError> {
        let p = self.engine_plugin(engine)?;
        let options = match engine {
            TemplateEngine::GoTemplate => serde_json::json!({
                "leftDelim": self.delimiters.left,
                "rightDelim": self.delimiters.right,
            })
            .to_string(),
            TemplateEngine::Minijinja => "{}".into(),
        };
        self.host
            .render(p, templates, context, options, self.metrics)
            .await
            .map_err(TemplateError::from_plugin)
    }
}

#[cfg(test)]
mod tests;
