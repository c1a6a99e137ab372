//! Plugins for the template step, as the controller runs them: built-ins from the process's
//! [`PluginHost`](crate::plugin::PluginHost), plugin objects resolved in the cluster.

use async_trait::async_trait;

use super::context::Context;
use crate::api::{PluginKind, PluginRef};
use crate::plugin::{TemplateOutput, TemplateRequest};
use crate::secret::SecretMap;
use crate::template::{BuiltinRunner, Engine, Runner, TemplateError};

/// Runs one ExternalSecret's template plugins.
pub struct ControllerRunner<'a> {
    builtins: BuiltinRunner<'a>,
    #[allow(dead_code)]
    namespace: &'a str,
}

impl<'a> ControllerRunner<'a> {
    /// A runner for an ExternalSecret in `namespace`.
    pub fn new(ctx: &'a Context, namespace: &'a str) -> Self {
        ControllerRunner {
            builtins: BuiltinRunner {
                host: &ctx.plugins,
                metrics: &ctx.metrics,
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
        match plugin.kind {
            PluginKind::Builtin => self.builtins.transform(plugin, data, config).await,
            PluginKind::WasmPlugin | PluginKind::ClusterWasmPlugin => {
                Err(TemplateError::Plugin(format!(
                    "{:?} {:?}: user plugins are not supported by this esox build yet",
                    plugin.kind, plugin.name
                )))
            }
        }
    }

    async fn render(
        &self,
        engine: Engine,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
    ) -> Result<Vec<(String, TemplateOutput)>, TemplateError> {
        self.builtins.render(engine, templates, context).await
    }
}
