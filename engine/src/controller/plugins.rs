//! Plugins for the template step and for generators, as the controller runs them: built-ins
//! from the process's [`PluginHost`](crate::plugin::PluginHost), user plugins resolved from
//! `WasmPlugin` / `ClusterWasmPlugin` objects.
//!
//! A user plugin is loaded only after its component's bytes hash to the digest its object
//! declares; a `WasmPlugin` is looked up in the ExternalSecret's own namespace and reads its
//! component from that namespace only, so one tenant cannot run another's plugin.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use sha2::{Digest, Sha256};

use super::context::Context;
use crate::api::plugins::{
    ClusterWasmPlugin, ComponentRef, PluginSpec, PluginWorld, WasmPlugin, declared_digest,
};
use crate::api::{PluginKind, PluginRef};
use crate::plugin::{Kind, Plugin, TemplateOutput, TemplateRequest};
use crate::secret::SecretMap;
use crate::template::{BuiltinRunner, Runner, TemplateEngine, TemplateError};

/// A resolved user plugin and the default configuration its object declares.
pub struct UserPlugin {
    /// The loaded plugin.
    pub plugin: Plugin,
    /// `spec.config`, as JSON text (`{}` when unset).
    pub config: String,
}

/// Resolves and loads a user plugin for an object in `namespace`. Errors are status-ready.
pub async fn user_plugin(
    ctx: &Context,
    namespace: &str,
    kind: PluginKind,
    name: &str,
    world: PluginWorld,
) -> Result<UserPlugin, String> {
    let (label, spec, source_ns) = match kind {
        PluginKind::WasmPlugin => {
            let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), namespace);
            let obj = api
                .get_opt(name)
                .await
                .map_err(|e| format!("could not get WasmPlugin {name:?}: {e}"))?
                .ok_or_else(|| {
                    format!("WasmPlugin {name:?} not found in namespace {namespace:?}")
                })?;
            let spec = obj.spec.plugin;
            for r in spec.source.refs() {
                if r.namespace.as_deref().is_some_and(|n| n != namespace) {
                    return Err(format!(
                        "WasmPlugin {name:?} reads its component from namespace {:?}; a WasmPlugin may only use its own namespace ({namespace:?}): use a ClusterWasmPlugin",
                        r.namespace.as_deref().unwrap_or_default()
                    ));
                }
            }
            (
                format!("WasmPlugin/{namespace}/{name}"),
                spec,
                namespace.to_string(),
            )
        }
        PluginKind::ClusterWasmPlugin => {
            let api: Api<ClusterWasmPlugin> = Api::all(ctx.client.clone());
            let obj = api
                .get_opt(name)
                .await
                .map_err(|e| format!("could not get ClusterWasmPlugin {name:?}: {e}"))?
                .ok_or_else(|| format!("ClusterWasmPlugin {name:?} not found"))?;
            let spec = obj.spec.plugin;
            let ns = spec
                .source
                .refs()
                .find_map(|r| r.namespace.clone())
                .ok_or_else(|| {
                    format!("ClusterWasmPlugin {name:?}: spec.source needs a namespace")
                })?;
            (format!("ClusterWasmPlugin/{name}"), spec, ns)
        }
        PluginKind::Builtin => {
            return Err(format!(
                "{name:?} is a built-in plugin, not a plugin object"
            ));
        }
    };
    if spec.world != world {
        return Err(format!(
            "{label} is a {:?} plugin, used here as a {world:?}",
            spec.world
        ));
    }
    let stored = component_bytes(ctx, &label, &spec, &source_ns).await?;
    let bytes = crate::plugin::unpack_component(stored).map_err(|e| format!("{label}: {e}"))?;
    let want = declared_digest(&spec);
    let got = hex::encode(Sha256::digest(&bytes));
    if got != want {
        return Err(format!(
            "{label}: component digest mismatch: the component has sha256 {got}, the plugin declares {want}; refusing to load it"
        ));
    }
    let kind = match world {
        PluginWorld::Transformer => Kind::Transformer,
        PluginWorld::Generator => Kind::Generator,
    };
    let plugin = ctx
        .plugins
        .user_plugin(&label, kind, &got, bytes)
        .await
        .map_err(|e| e.to_string())?;
    let config = spec
        .config
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "{}".into());
    Ok(UserPlugin { plugin, config })
}

async fn component_bytes(
    ctx: &Context,
    label: &str,
    spec: &PluginSpec,
    ns: &str,
) -> Result<Vec<u8>, String> {
    let missing = |what: &str, r: &ComponentRef| {
        format!("{label}: {what} {ns}/{} has no key {:?}", r.name, r.key)
    };
    let config_map = |r: &ComponentRef| {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        let r = r.clone();
        async move {
            let cm = api
                .get_opt(&r.name)
                .await
                .map_err(|e| format!("{label}: could not get ConfigMap {ns}/{}: {e}", r.name))?
                .ok_or_else(|| format!("{label}: ConfigMap {ns}/{} not found", r.name))?;
            cm.binary_data
                .and_then(|mut d| d.remove(&r.key))
                .map(|b| b.0)
                .ok_or_else(|| missing("ConfigMap binaryData of", &r))
        }
    };
    if let Some(r) = &spec.source.config_map {
        return config_map(r).await;
    }
    if !spec.source.config_maps.is_empty() {
        let mut joined = Vec::new();
        for r in &spec.source.config_maps {
            joined.extend(config_map(r).await?);
        }
        return Ok(joined);
    }
    if let Some(r) = &spec.source.secret {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let s = api
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("{label}: could not get Secret {ns}/{}: {e}", r.name))?
            .ok_or_else(|| format!("{label}: Secret {ns}/{} not found", r.name))?;
        return s
            .data
            .and_then(|mut d| d.remove(&r.key))
            .map(|b| b.0)
            .ok_or_else(|| missing("Secret", r));
    }
    Err(format!("{label}: spec.source names no ConfigMap or Secret"))
}

/// Runs one ExternalSecret's template plugins.
pub struct ControllerRunner<'a> {
    ctx: &'a Context,
    builtins: BuiltinRunner<'a>,
    namespace: &'a str,
}

impl<'a> ControllerRunner<'a> {
    /// A runner for an ExternalSecret in `namespace`.
    pub fn new(ctx: &'a Context, namespace: &'a str) -> Self {
        ControllerRunner {
            ctx,
            builtins: BuiltinRunner {
                host: &ctx.plugins,
                metrics: &ctx.metrics,
                delimiters: &ctx.settings.delimiters,
            },
            namespace,
        }
    }
}

#[async_trait]
impl Runner for ControllerRunner<'_> {
    async fn transform(
        &self,
        plugin: &PluginRef,
        data: SecretMap,
        config: String,
    ) -> Result<SecretMap, TemplateError> {
        if plugin.kind == PluginKind::Builtin {
            return self.builtins.transform(plugin, data, config).await;
        }
        let user = user_plugin(
            self.ctx,
            self.namespace,
            plugin.kind,
            &plugin.name,
            PluginWorld::Transformer,
        )
        .await
        .map_err(TemplateError::Plugin)?;
        self.ctx
            .plugins
            .transform(user.plugin, data, config, &self.ctx.metrics)
            .await
            .map_err(TemplateError::from_transformer)
    }

    async fn render(
        &self,
        engine: TemplateEngine,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
    ) -> Result<Vec<(String, TemplateOutput)>, TemplateError> {
        self.builtins.render(engine, templates, context).await
    }
}
