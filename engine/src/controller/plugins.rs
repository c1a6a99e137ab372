//! Plugins for the template step and for generators, as the controller runs them: built-ins
//! from the process's [`PluginHost`](crate::plugin::PluginHost), user plugins resolved from
//! `WasmPlugin` / `ClusterWasmPlugin` objects.
//!
//! A user plugin is loaded only after its component's bytes hash to the digest its object
//! declares; a `WasmPlugin` is looked up in the ExternalSecret's own namespace and reads its
//! component from that namespace only, so one tenant cannot run another's plugin.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use sha2::{Digest, Sha256};
use tracing::debug;

use super::context::Context;
use super::watch::WatchStatus;
use crate::api::plugins::{
    ClusterWasmPlugin, ComponentRef, PluginSpec, PluginWorld, WasmPlugin, declared_digest,
};
use crate::api::{PluginRef, PluginSource};
use crate::plugin::{
    Plugin, PluginError, PluginHost, TemplateOutput, TemplateRequest, UnpackError, unpack_component,
};
use crate::secret::SecretMap;
use crate::template::{BuiltinRunner, Runner, TemplateEngine, TemplateError};

/// A resolved user plugin and the default configuration its object declares.
pub struct UserPlugin {
    /// The loaded plugin.
    pub plugin: Plugin,
    /// `spec.config`, as JSON text (`{}` when unset).
    pub config: String,
}

/// Why a user plugin could not be resolved or loaded. Messages are status-ready: they name
/// objects, keys and digests, never data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserPluginError {
    /// The plugin object could not be read from the apiserver.
    #[error("could not get {kind} {name:?}: {reason}")]
    Get {
        /// `WasmPlugin` or `ClusterWasmPlugin`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The apiserver's error.
        reason: String,
    },
    /// There is no such plugin object.
    #[error("{kind} {name:?} not found{}", namespace.as_ref().map(|n| format!(" in namespace {n:?}")).unwrap_or_default())]
    NotFound {
        /// `WasmPlugin` or `ClusterWasmPlugin`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// Where it was looked for (a `WasmPlugin`'s namespace).
        namespace: Option<String>,
    },
    /// A `WasmPlugin` names a component in another namespace.
    #[error(
        "WasmPlugin {name:?} reads its component from namespace {source_namespace:?}; a WasmPlugin may only use its own namespace ({namespace:?}): use a ClusterWasmPlugin"
    )]
    WrongNamespace {
        /// The object's name.
        name: String,
        /// Its (and the ExternalSecret's) namespace.
        namespace: String,
        /// The namespace its source names.
        source_namespace: String,
    },
    /// A `ClusterWasmPlugin`'s source names no namespace.
    #[error("ClusterWasmPlugin {name:?}: spec.source needs a namespace")]
    MissingNamespace {
        /// The object's name.
        name: String,
    },
    /// A built-in was referenced as a plugin object.
    #[error("{name:?} is a built-in plugin, not a plugin object")]
    Builtin {
        /// The plugin's name.
        name: String,
    },
    /// The object declares another world than the use needs.
    #[error("{plugin} is a {declared:?} plugin, used here as a {wanted:?}")]
    WrongWorld {
        /// `Kind/namespace/name` of the object.
        plugin: String,
        /// Its `spec.world`.
        declared: PluginWorld,
        /// The world this use needs.
        wanted: PluginWorld,
    },
    /// The object holding the component could not be read from the apiserver.
    #[error("{plugin}: could not get {object}: {reason}")]
    SourceGet {
        /// `Kind/namespace/name` of the plugin object.
        plugin: String,
        /// `ConfigMap ns/name` or `Secret ns/name`.
        object: String,
        /// The apiserver's error.
        reason: String,
    },
    /// The object holding the component does not exist.
    #[error("{plugin}: {object} not found")]
    SourceNotFound {
        /// `Kind/namespace/name` of the plugin object.
        plugin: String,
        /// `ConfigMap ns/name` or `Secret ns/name`.
        object: String,
    },
    /// The object holding the component has no such key.
    #[error("{plugin}: {object} has no key {key:?}")]
    SourceKey {
        /// `Kind/namespace/name` of the plugin object.
        plugin: String,
        /// Which field of which object (`ConfigMap binaryData of ns/name`, `Secret ns/name`).
        object: String,
        /// The key.
        key: String,
    },
    /// The source names no object.
    #[error("{plugin}: spec.source names no ConfigMap or Secret")]
    NoSource {
        /// `Kind/namespace/name` of the plugin object.
        plugin: String,
    },
    /// The stored bytes do not unpack to a component.
    #[error("{plugin}: {source}")]
    Unpack {
        /// `Kind/namespace/name` of the plugin object.
        plugin: String,
        /// Why.
        source: UnpackError,
    },
    /// The component is not the one the object pins.
    #[error(
        "{plugin}: component digest mismatch: the component has sha256 {got}, the plugin declares {want}; refusing to load it"
    )]
    DigestMismatch {
        /// `Kind/namespace/name` of the plugin object.
        plugin: String,
        /// The component's sha256.
        got: String,
        /// The declared sha256.
        want: String,
    },
    /// The component did not compile or link (not a component, or for another world).
    #[error(transparent)]
    Load(PluginError),
}

impl UserPluginError {
    /// Every label [`metric_label`](Self::metric_label) returns.
    pub const CATEGORIES: &'static [&'static str] = &[
        "kube",
        "not_found",
        "wrong_namespace",
        "missing_namespace",
        "builtin",
        "wrong_world",
        "component_not_found",
        "unpack",
        "digest_mismatch",
        "load",
    ];

    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            UserPluginError::Get { .. } | UserPluginError::SourceGet { .. } => "kube",
            UserPluginError::NotFound { .. } => "not_found",
            UserPluginError::WrongNamespace { .. } => "wrong_namespace",
            UserPluginError::MissingNamespace { .. } => "missing_namespace",
            UserPluginError::Builtin { .. } => "builtin",
            UserPluginError::WrongWorld { .. } => "wrong_world",
            UserPluginError::SourceNotFound { .. }
            | UserPluginError::SourceKey { .. }
            | UserPluginError::NoSource { .. } => "component_not_found",
            UserPluginError::Unpack { .. } => "unpack",
            UserPluginError::DigestMismatch { .. } => "digest_mismatch",
            UserPluginError::Load(_) => "load",
        }
    }
}

/// Resolves and loads a user plugin for an object in `namespace`. Errors are status-ready.
pub async fn user_plugin(
    ctx: &Context,
    namespace: &str,
    source: PluginSource,
    name: &str,
    world: PluginWorld,
) -> Result<UserPlugin, UserPluginError> {
    let get = |kind| {
        move |e: kube::Error| UserPluginError::Get {
            kind,
            name: name.to_string(),
            reason: e.to_string(),
        }
    };
    let (label, spec, source_ns) = match source {
        PluginSource::WasmPlugin => {
            let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), namespace);
            let obj = api
                .get_opt(name)
                .await
                .map_err(get("WasmPlugin"))?
                .ok_or_else(|| UserPluginError::NotFound {
                    kind: "WasmPlugin",
                    name: name.to_string(),
                    namespace: Some(namespace.to_string()),
                })?;
            let spec = obj.spec.plugin.clone();
            for r in spec.source.refs() {
                if let Some(other) = r.namespace.as_deref().filter(|n| *n != namespace) {
                    return Err(UserPluginError::WrongNamespace {
                        name: name.to_string(),
                        namespace: namespace.to_string(),
                        source_namespace: other.to_string(),
                    });
                }
            }
            (obj.host_name(), spec, namespace.to_string())
        }
        PluginSource::ClusterWasmPlugin => {
            let api: Api<ClusterWasmPlugin> = Api::all(ctx.client.clone());
            let obj = api
                .get_opt(name)
                .await
                .map_err(get("ClusterWasmPlugin"))?
                .ok_or_else(|| UserPluginError::NotFound {
                    kind: "ClusterWasmPlugin",
                    name: name.to_string(),
                    namespace: None,
                })?;
            let spec = obj.spec.plugin.clone();
            let ns = spec
                .source
                .refs()
                .find_map(|r| r.namespace.clone())
                .ok_or_else(|| UserPluginError::MissingNamespace {
                    name: name.to_string(),
                })?;
            (obj.host_name(), spec, ns)
        }
        PluginSource::Builtin => {
            return Err(UserPluginError::Builtin {
                name: name.to_string(),
            });
        }
    };
    if spec.world != world {
        return Err(UserPluginError::WrongWorld {
            plugin: label,
            declared: spec.world,
            wanted: world,
        });
    }
    let stored = component_bytes(ctx, &label, &spec, &source_ns).await?;
    let bytes = unpack_component(stored).map_err(|source| UserPluginError::Unpack {
        plugin: label.clone(),
        source,
    })?;
    let want = declared_digest(&spec);
    let got = hex::encode(Sha256::digest(&bytes));
    if got != want {
        return Err(UserPluginError::DigestMismatch {
            plugin: label,
            got,
            want,
        });
    }
    let plugin = ctx
        .plugins
        .user_plugin(&label, world.into(), &got, bytes)
        .await
        .map_err(UserPluginError::Load)?;
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
) -> Result<Vec<u8>, UserPluginError> {
    let get = |object: String| {
        move |e: kube::Error| UserPluginError::SourceGet {
            plugin: label.to_string(),
            object,
            reason: e.to_string(),
        }
    };
    let not_found = |object: String| UserPluginError::SourceNotFound {
        plugin: label.to_string(),
        object,
    };
    let missing = |what: &str, r: &ComponentRef| UserPluginError::SourceKey {
        plugin: label.to_string(),
        object: format!("{what} {ns}/{}", r.name),
        key: r.key.clone(),
    };
    let config_map = |r: &ComponentRef| {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        let r = r.clone();
        async move {
            let object = format!("ConfigMap {ns}/{}", r.name);
            let cm = api
                .get_opt(&r.name)
                .await
                .map_err(get(object.clone()))?
                .ok_or_else(|| not_found(object))?;
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
        let object = format!("Secret {ns}/{}", r.name);
        let s = api
            .get_opt(&r.name)
            .await
            .map_err(get(object.clone()))?
            .ok_or_else(|| not_found(object))?;
        return s
            .data
            .and_then(|mut d| d.remove(&r.key))
            .map(|b| b.0)
            .ok_or_else(|| missing("Secret", r));
    }
    Err(UserPluginError::NoSource {
        plugin: label.to_string(),
    })
}

/// A plugin object, as the host knows it.
pub trait PluginObject:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind, for logs and the watch's name.
    const KIND: &'static str;

    /// The name the host compiles it under: `WasmPlugin/<namespace>/<name>` or
    /// `ClusterWasmPlugin/<name>` (also the plugin's name in errors and metrics).
    fn host_name(&self) -> String;

    /// Its settings.
    fn plugin(&self) -> &PluginSpec;
}

impl PluginObject for WasmPlugin {
    const KIND: &'static str = "WasmPlugin";

    fn host_name(&self) -> String {
        format!(
            "WasmPlugin/{}/{}",
            self.namespace().unwrap_or_default(),
            self.name_any()
        )
    }

    fn plugin(&self) -> &PluginSpec {
        &self.spec.plugin
    }
}

impl PluginObject for ClusterWasmPlugin {
    const KIND: &'static str = "ClusterWasmPlugin";

    fn host_name(&self) -> String {
        format!("ClusterWasmPlugin/{}", self.name_any())
    }

    fn plugin(&self) -> &PluginSpec {
        &self.spec.plugin
    }
}

/// Whether a plugin object going from `old` to `new` (`None`: deleted) leaves the component
/// the host compiled for it unreachable: it is deleted, or pins another digest or world. An
/// object seen for the first time (`old` is `None`: the first list after a start) has nothing
/// compiled under older settings; what a use compiled before the list came in is replaced by
/// the host on the next use if its digest is stale.
pub fn leaves_compiled_stale(old: Option<&PluginSpec>, new: Option<&PluginSpec>) -> bool {
    match (old, new) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(old), Some(new)) => {
            old.world != new.world || declared_digest(old) != declared_digest(new)
        }
    }
}

/// Watches the plugin objects of `api` and drops from `host` the compiled component of each
/// one deleted or pinned to another component ([`leaves_compiled_stale`]), until `shutdown`.
/// Without it a deleted plugin's component stays in memory until
/// [`MAX_USER_PLUGINS`](crate::plugin::MAX_USER_PLUGINS) newer ones push it out.
///
/// The watch only frees memory, so it does not count towards readiness: RBAC without
/// list/watch on the plugin kinds (an older chart) costs a warning, not a ready controller.
pub async fn forget_stale_plugins<K: PluginObject>(
    api: Api<K>,
    host: Arc<PluginHost>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    let before = reader.clone();
    let events = super::watch::watch(WatchStatus::new(K::KIND), reader, move || {
        watcher(api.clone(), watcher::Config::default().any_semantic())
    })
    // Before the reflector applies the event, its store still holds the object as it was.
    .inspect(move |event| {
        let (obj, gone) = match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => (obj, false),
            Ok(watcher::Event::Delete(obj)) => (obj, true),
            _ => return,
        };
        let old = before.get(&ObjectRef::from_obj(obj));
        let new = (!gone).then(|| obj.plugin());
        if leaves_compiled_stale(old.as_deref().map(K::plugin), new) {
            let name = obj.host_name();
            if !host.user_plugin_digests(&name).is_empty() {
                debug!(plugin = %name, deleted = gone, "dropping the plugin's compiled component");
            }
            host.forget_user_plugin(&name);
        }
    })
    .reflect(writer);
    events
        .take_until(shutdown)
        .for_each(|_| futures::future::ready(()))
        .await;
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
        if plugin.kind == PluginSource::Builtin {
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
        .map_err(|e| TemplateError::Plugin(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::PluginFailure;

    /// One of each variant; the `match` has no wildcard, so a new variant must be added here.
    fn one_of_each() -> Vec<UserPluginError> {
        let p = || "WasmPlugin/team-a/flatten".to_string();
        let all = vec![
            UserPluginError::Get {
                kind: "WasmPlugin",
                name: "flatten".into(),
                reason: "connection refused".into(),
            },
            UserPluginError::NotFound {
                kind: "WasmPlugin",
                name: "flatten".into(),
                namespace: Some("team-a".into()),
            },
            UserPluginError::WrongNamespace {
                name: "flatten".into(),
                namespace: "team-a".into(),
                source_namespace: "team-b".into(),
            },
            UserPluginError::MissingNamespace {
                name: "flatten".into(),
            },
            UserPluginError::Builtin {
                name: "pkcs12".into(),
            },
            UserPluginError::WrongWorld {
                plugin: p(),
                declared: PluginWorld::Generator,
                wanted: PluginWorld::Transformer,
            },
            UserPluginError::SourceGet {
                plugin: p(),
                object: "ConfigMap team-a/flatten".into(),
                reason: "forbidden".into(),
            },
            UserPluginError::SourceNotFound {
                plugin: p(),
                object: "ConfigMap team-a/flatten".into(),
            },
            UserPluginError::SourceKey {
                plugin: p(),
                object: "Secret team-a/flatten".into(),
                key: "plugin.wasm".into(),
            },
            UserPluginError::NoSource { plugin: p() },
            UserPluginError::Unpack {
                plugin: p(),
                source: UnpackError::TooLarge,
            },
            UserPluginError::DigestMismatch {
                plugin: p(),
                got: "ab".into(),
                want: "cd".into(),
            },
            UserPluginError::Load(PluginError::new(
                p(),
                PluginFailure::Load {
                    reason: "not a component".into(),
                },
            )),
        ];
        for e in &all {
            match e {
                UserPluginError::Get { .. }
                | UserPluginError::NotFound { .. }
                | UserPluginError::WrongNamespace { .. }
                | UserPluginError::MissingNamespace { .. }
                | UserPluginError::Builtin { .. }
                | UserPluginError::WrongWorld { .. }
                | UserPluginError::SourceGet { .. }
                | UserPluginError::SourceNotFound { .. }
                | UserPluginError::SourceKey { .. }
                | UserPluginError::NoSource { .. }
                | UserPluginError::Unpack { .. }
                | UserPluginError::DigestMismatch { .. }
                | UserPluginError::Load(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_user_plugin_error_has_a_listed_category() {
        let mut used: Vec<&str> = one_of_each().iter().map(|e| e.metric_label()).collect();
        for l in &used {
            assert!(UserPluginError::CATEGORIES.contains(l), "{l} is not listed");
        }
        used.sort();
        used.dedup();
        assert_eq!(used.len(), UserPluginError::CATEGORIES.len());
        // The distinction this type exists for.
        let mismatch = &one_of_each()[11];
        assert_eq!(mismatch.metric_label(), "digest_mismatch");
        assert_ne!(
            mismatch.metric_label(),
            PluginFailure::Timeout {
                deadline: Default::default()
            }
            .metric_label()
        );
    }

    fn spec(world: PluginWorld, sha256: &str) -> PluginSpec {
        PluginSpec {
            world,
            sha256: sha256.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_compiled_component_is_stale_once_its_object_is_gone_or_repinned() {
        use PluginWorld::{Generator, Transformer};
        let ab = spec(Transformer, "ab");
        let cases = [
            (
                "first seen (a start's list)",
                None,
                Some(spec(Transformer, "ab")),
                false,
            ),
            (
                "unchanged",
                Some(ab.clone()),
                Some(spec(Transformer, "ab")),
                false,
            ),
            // declared_digest normalises: the same component, so the same compilation.
            (
                "the same digest spelt otherwise",
                Some(ab.clone()),
                Some(spec(Transformer, " sha256:AB ")),
                false,
            ),
            (
                "another digest",
                Some(ab.clone()),
                Some(spec(Transformer, "cd")),
                true,
            ),
            (
                "another world",
                Some(ab.clone()),
                Some(spec(Generator, "ab")),
                true,
            ),
            ("deleted", Some(ab.clone()), None, true),
            ("deleted, never seen (a relist)", None, None, true),
        ];
        for (case, old, new, stale) in cases {
            assert_eq!(
                leaves_compiled_stale(old.as_ref(), new.as_ref()),
                stale,
                "{case}"
            );
        }
        // Config is the object's, not the component's: no recompilation for it.
        let mut configured = ab.clone();
        configured.config = Some(serde_json::json!({"k": "v"}));
        assert!(!leaves_compiled_stale(Some(&ab), Some(&configured)));
    }

    #[test]
    fn plugin_objects_are_named_as_the_host_compiles_them() {
        let mut namespaced = WasmPlugin::new("flatten", Default::default());
        namespaced.metadata.namespace = Some("team-a".into());
        assert_eq!(namespaced.host_name(), "WasmPlugin/team-a/flatten");
        let cluster = ClusterWasmPlugin::new("approved", Default::default());
        assert_eq!(cluster.host_name(), "ClusterWasmPlugin/approved");
    }

    #[test]
    fn user_plugin_errors_read_as_before() {
        let text: Vec<String> = one_of_each().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            [
                r#"could not get WasmPlugin "flatten": connection refused"#,
                r#"WasmPlugin "flatten" not found in namespace "team-a""#,
                r#"WasmPlugin "flatten" reads its component from namespace "team-b"; a WasmPlugin may only use its own namespace ("team-a"): use a ClusterWasmPlugin"#,
                r#"ClusterWasmPlugin "flatten": spec.source needs a namespace"#,
                r#""pkcs12" is a built-in plugin, not a plugin object"#,
                "WasmPlugin/team-a/flatten is a Generator plugin, used here as a Transformer",
                "WasmPlugin/team-a/flatten: could not get ConfigMap team-a/flatten: forbidden",
                "WasmPlugin/team-a/flatten: ConfigMap team-a/flatten not found",
                r#"WasmPlugin/team-a/flatten: Secret team-a/flatten has no key "plugin.wasm""#,
                "WasmPlugin/team-a/flatten: spec.source names no ConfigMap or Secret",
                "WasmPlugin/team-a/flatten: the stored component decompresses to more than 64 MiB",
                "WasmPlugin/team-a/flatten: component digest mismatch: the component has sha256 ab, the plugin declares cd; refusing to load it",
                "plugin WasmPlugin/team-a/flatten could not be loaded: not a component",
            ]
        );
        let cluster = UserPluginError::NotFound {
            kind: "ClusterWasmPlugin",
            name: "x".into(),
            namespace: None,
        };
        assert_eq!(cluster.to_string(), r#"ClusterWasmPlugin "x" not found"#);
    }
}
