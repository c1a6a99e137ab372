//! Generators (`dataFrom[].sourceRef.generatorRef`): which spec a reference names, and the
//! plugin (or AWS call) that runs it.
//!
//! ESO's generator kinds (`generators.external-secrets.io`: Password, UUID, Fake,
//! STSSessionToken, and ClusterGenerator wrapping any of them) run as built-in Wasm plugins,
//! except STSSessionToken, which is an AWS call; `WasmPlugin`/`ClusterWasmPlugin` objects of
//! the generator world run the user's own.

use kube::Api;

use super::resolve::StoreResolver;
use crate::api::generators::{
    ClusterGenerator, Fake as FakeGenerator, FakeSpec, GENERATORS_GROUP, Password, PasswordSpec,
    STSSessionToken, STSSessionTokenSpec, UUID, VaultDynamicSecret, VaultDynamicSecretSpec,
};
use crate::api::plugins::{PLUGINS_GROUP, PluginWorld};
use crate::api::{GeneratorRef, PluginSource};
use crate::plugin::PluginError;
use crate::plugin::builtin::Builtin;
use crate::secret::SecretMap;

/// Why a generator produced nothing. Messages name the generator, never its output.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The generator object does not exist.
    #[error("error using generator: {kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// Where it was looked up.
        namespace: String,
    },
    /// The ClusterGenerator does not exist.
    #[error("error using generator: ClusterGenerator {0:?} not found")]
    ClusterGeneratorNotFound(String),
    /// Reading the generator object failed.
    #[error("error using generator: could not get {kind} {name:?}: {source}")]
    Get {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A ClusterGenerator lacks the spec its kind needs.
    #[error(
        "error using generator: ClusterGenerator {name:?} has kind {kind} but no spec.generator.{key}"
    )]
    MissingSpec {
        /// The ClusterGenerator.
        name: String,
        /// Its `spec.kind`.
        kind: String,
        /// The missing field.
        key: &'static str,
    },
    /// A generator kind esox does not run (yet).
    #[error("error using generator: {0} is not supported by this version of esox")]
    Unsupported(String),
    /// The generator's plugin failed (sandbox limits, its own error).
    #[error("error using generator: {0}")]
    Plugin(#[source] PluginError),
    /// The user plugin could not be resolved or loaded.
    #[error("error using generator: {0}")]
    UserPlugin(#[source] super::plugins::UserPluginError),
    /// The STSSessionToken call failed.
    #[error("error using generator: {0}")]
    Sts(#[source] crate::provider::aws::sts_token::StsTokenError),
    /// The VaultDynamicSecret call failed.
    #[error("error using generator: {0}")]
    Vault(#[source] crate::provider::ProviderError),
    /// A generator that calls out (STSSessionToken) did not answer within
    /// `--provider-timeout`; the call was cancelled. (Plugin generators run under the plugin
    /// host's own deadline.)
    #[error("error using generator: {kind} {name:?}: no answer within {}", crate::api::duration::format(*.after))]
    Timeout {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The deadline.
        after: std::time::Duration,
    },
}

impl GeneratorError {
    /// Every value [`GeneratorError::metric_label`] can return.
    pub const CATEGORIES: &[&str] = &[
        "generator_not_found",
        "generator_invalid",
        "generator_unsupported",
        "generator_plugin",
        "generator_sts",
        "generator_vault",
        "kube",
        "timeout",
    ];

    /// Low-cardinality category. A plugin failure reports the plugin's own label instead
    /// (the reconcile error finds the deepest categorised cause).
    pub fn metric_label(&self) -> &'static str {
        match self {
            GeneratorError::NotFound { .. } | GeneratorError::ClusterGeneratorNotFound(_) => {
                "generator_not_found"
            }
            GeneratorError::Get { .. } => "kube",
            GeneratorError::MissingSpec { .. } => "generator_invalid",
            GeneratorError::Unsupported(_) => "generator_unsupported",
            GeneratorError::Plugin(_) | GeneratorError::UserPlugin(_) => "generator_plugin",
            GeneratorError::Sts(_) => "generator_sts",
            GeneratorError::Vault(_) => "generator_vault",
            GeneratorError::Timeout { .. } => "timeout",
        }
    }
}

/// A generator's spec, wherever it was declared: as its own object, or inside a
/// ClusterGenerator. One type, so both run through the same code.
enum GeneratorSpec {
    Password(PasswordSpec),
    Uuid,
    Fake(FakeSpec),
    Sts(Box<STSSessionTokenSpec>),
    Vault(Box<VaultDynamicSecretSpec>),
}

/// Runs the generator `generator` names for an ExternalSecret resolved by `resolver`.
pub async fn generate(
    resolver: &StoreResolver<'_>,
    generator: &GeneratorRef,
) -> Result<SecretMap, GeneratorError> {
    let ctx = resolver.ctx;
    let group = generator
        .api_version
        .as_deref()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let spec = match (group, generator.kind.as_str()) {
        (GENERATORS_GROUP, "Password") => {
            GeneratorSpec::Password(object::<Password>(resolver, generator).await?.spec)
        }
        (GENERATORS_GROUP, "Fake") => {
            GeneratorSpec::Fake(object::<FakeGenerator>(resolver, generator).await?.spec)
        }
        (GENERATORS_GROUP, "UUID") => {
            object::<UUID>(resolver, generator).await?;
            GeneratorSpec::Uuid
        }
        (GENERATORS_GROUP, "STSSessionToken") => GeneratorSpec::Sts(Box::new(
            object::<STSSessionToken>(resolver, generator).await?.spec,
        )),
        (GENERATORS_GROUP, "VaultDynamicSecret") => GeneratorSpec::Vault(Box::new(
            object::<VaultDynamicSecret>(resolver, generator)
                .await?
                .spec,
        )),
        (GENERATORS_GROUP, "ClusterGenerator") => {
            cluster_generator(resolver, &generator.name).await?
        }
        (PLUGINS_GROUP, kind @ ("WasmPlugin" | "ClusterWasmPlugin")) => {
            let kind = if kind == "WasmPlugin" {
                PluginSource::WasmPlugin
            } else {
                PluginSource::ClusterWasmPlugin
            };
            let user = super::plugins::user_plugin(
                ctx,
                resolver.namespace,
                kind,
                &generator.name,
                PluginWorld::Generator,
            )
            .await
            .map_err(GeneratorError::UserPlugin)?;
            return run(resolver, Ok(user.plugin), user.config).await;
        }
        _ => {
            return Err(GeneratorError::Unsupported(format!(
                "{} {}/{:?}",
                generator.api_version.as_deref().unwrap_or_default(),
                generator.kind,
                generator.name
            )));
        }
    };
    let plugins = &ctx.plugins;
    let to_json = |v: serde_json::Result<String>| v.expect("a generator spec serializes");
    match spec {
        GeneratorSpec::Password(s) => {
            let config = to_json(serde_json::to_string(&s));
            run(resolver, plugins.builtin(Builtin::Password), config).await
        }
        GeneratorSpec::Fake(s) => {
            let config = to_json(serde_json::to_string(&s));
            run(resolver, plugins.builtin(Builtin::Fake), config).await
        }
        GeneratorSpec::Uuid => run(resolver, plugins.builtin(Builtin::Uuid), "{}".into()).await,
        GeneratorSpec::Vault(s) => {
            let bctx = crate::provider::BuildContext::in_cluster(
                &ctx.metrics,
                &ctx.client,
                crate::api::StoreKind::SecretStore,
                resolver.namespace,
            );
            let call = crate::provider::vault::generate_dynamic(&s, &bctx);
            let generated = crate::provider::with_deadline(
                ctx.settings.provider_timeout,
                || format!("VaultDynamicSecret {:?}", generator.name),
                call,
            )
            .await
            .map_err(GeneratorError::Vault)?;
            let crate::provider::vault::Generated {
                data,
                expires,
                lease,
            } = generated;
            // Its lease is renewed while the Secret keeps the value, and revoked once a new
            // value replaced it (`super::vault_leases`).
            if let Some(lease) = lease {
                resolver
                    .leases
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(crate::provider::vault::leases::Record::issued(
                        format!("{}/{}", generator.kind, generator.name),
                        lease,
                        jiff::Timestamp::now(),
                    ));
            }
            // A leased credential (a token, a database user) is generated again before its
            // lease ends, as STS credentials are.
            if let Some(expires) = expires {
                let mut earliest = resolver
                    .expires
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *earliest = Some(earliest.map_or(expires, |e| e.min(expires)));
            }
            Ok(data)
        }
        GeneratorSpec::Sts(s) => {
            let deadline = ctx.settings.provider_timeout;
            let call = sts_session(resolver, &s);
            if deadline.is_zero() {
                return call.await;
            }
            tokio::time::timeout(deadline, call)
                .await
                .map_err(|_| GeneratorError::Timeout {
                    kind: generator.kind.clone(),
                    name: generator.name.clone(),
                    after: deadline,
                })?
        }
    }
}

/// Runs a generator plugin on its JSON config.
async fn run(
    resolver: &StoreResolver<'_>,
    plugin: Result<crate::plugin::Plugin, PluginError>,
    config: String,
) -> Result<SecretMap, GeneratorError> {
    let ctx = resolver.ctx;
    let plugin = plugin.map_err(GeneratorError::Plugin)?;
    let out = ctx
        .plugins
        .generate(plugin, config, &ctx.metrics)
        .await
        .map_err(GeneratorError::Plugin)?;
    Ok(out.data)
}

/// STS session credentials for an STSSessionToken spec (namespaced or in a
/// ClusterGenerator), authenticated in this ExternalSecret's namespace. Their expiry is
/// recorded on the resolver, so the Secret is renewed in time.
async fn sts_session(
    resolver: &StoreResolver<'_>,
    spec: &STSSessionTokenSpec,
) -> Result<SecretMap, GeneratorError> {
    let ctx = resolver.ctx;
    let (data, expires) = crate::provider::aws::sts_token::generate(
        spec,
        &ctx.client,
        resolver.namespace,
        &ctx.metrics,
    )
    .await
    .map_err(GeneratorError::Sts)?;
    let mut earliest = resolver
        .expires
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *earliest = Some(earliest.map_or(expires, |e| e.min(expires)));
    Ok(data)
}

/// The VaultDynamicSecret spec a lease record's generator (`VaultDynamicSecret/<name>` in
/// the ExternalSecret's namespace, or `ClusterGenerator/<name>`) names today, and the
/// context to call Vault with; `Ok(None)` when it no longer exists or is no longer one.
pub async fn vault_spec(
    resolver: &StoreResolver<'_>,
    generator: &str,
) -> Result<Option<VaultDynamicSecretSpec>, GeneratorError> {
    let Some((kind, name)) = generator.split_once('/') else {
        return Ok(None);
    };
    let reference = GeneratorRef {
        api_version: Some(format!("{GENERATORS_GROUP}/v1alpha1")),
        kind: kind.into(),
        name: name.into(),
    };
    match kind {
        "VaultDynamicSecret" => match object::<VaultDynamicSecret>(resolver, &reference).await {
            Ok(g) => Ok(Some(g.spec)),
            Err(GeneratorError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        "ClusterGenerator" => match cluster_generator(resolver, name).await {
            Ok(GeneratorSpec::Vault(s)) => Ok(Some(*s)),
            Ok(_) | Err(GeneratorError::ClusterGeneratorNotFound(_)) => Ok(None),
            Err(GeneratorError::MissingSpec { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        _ => Ok(None),
    }
}

/// The generator spec a ClusterGenerator carries for its `kind`.
async fn cluster_generator(
    resolver: &StoreResolver<'_>,
    name: &str,
) -> Result<GeneratorSpec, GeneratorError> {
    let api: Api<ClusterGenerator> = Api::all(resolver.ctx.client.clone());
    let cg = api
        .get_opt(name)
        .await
        .map_err(|source| GeneratorError::Get {
            kind: "ClusterGenerator".into(),
            name: name.into(),
            source,
        })?
        .ok_or_else(|| GeneratorError::ClusterGeneratorNotFound(name.into()))?;
    let g = cg.spec.generator;
    let kind = cg.spec.kind;
    let missing = |key: &'static str| GeneratorError::MissingSpec {
        name: name.into(),
        kind: kind.clone(),
        key,
    };
    Ok(match kind.as_str() {
        "Password" => {
            GeneratorSpec::Password(g.password_spec.ok_or_else(|| missing("passwordSpec"))?)
        }
        "UUID" => {
            g.uuid_spec.ok_or_else(|| missing("uuidSpec"))?;
            GeneratorSpec::Uuid
        }
        "Fake" => GeneratorSpec::Fake(g.fake_spec.ok_or_else(|| missing("fakeSpec"))?),
        "STSSessionToken" => GeneratorSpec::Sts(Box::new(
            g.sts_session_token()
                .ok_or_else(|| missing("stsSessionTokenSpec"))?,
        )),
        "VaultDynamicSecret" => GeneratorSpec::Vault(Box::new(
            g.vault_dynamic_secret()
                .ok_or_else(|| missing("vaultDynamicSecretSpec"))?,
        )),
        other => {
            return Err(GeneratorError::Unsupported(format!(
                "ClusterGenerator {name:?}: generator kind {other}"
            )));
        }
    })
}

/// Reads a generator object from the ExternalSecret's namespace.
async fn object<K>(
    resolver: &StoreResolver<'_>,
    generator: &GeneratorRef,
) -> Result<K, GeneratorError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(resolver.ctx.client.clone(), resolver.namespace);
    api.get_opt(&generator.name)
        .await
        .map_err(|source| GeneratorError::Get {
            kind: generator.kind.clone(),
            name: generator.name.clone(),
            source,
        })?
        .ok_or_else(|| GeneratorError::NotFound {
            kind: generator.kind.clone(),
            name: generator.name.clone(),
            namespace: resolver.namespace.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_eso_wording_and_labels_are_listed() {
        let errors = [
            GeneratorError::NotFound {
                kind: "Password".into(),
                name: "pw".into(),
                namespace: "app".into(),
            },
            GeneratorError::ClusterGeneratorNotFound("cg".into()),
            GeneratorError::MissingSpec {
                name: "cg".into(),
                kind: "Password".into(),
                key: "passwordSpec",
            },
            GeneratorError::Unsupported(
                "generators.external-secrets.io/v1alpha1 Vault/\"x\"".into(),
            ),
            GeneratorError::Sts(
                crate::provider::aws::sts_token::StsTokenError::InvalidRegion("moon-1".into()),
            ),
            GeneratorError::Timeout {
                kind: "STSSessionToken".into(),
                name: "sts".into(),
                after: std::time::Duration::from_secs(30),
            },
        ];
        for e in &errors {
            assert!(e.to_string().starts_with("error using generator: "), "{e}");
            assert!(GeneratorError::CATEGORIES.contains(&e.metric_label()));
        }
        assert_eq!(
            errors[0].to_string(),
            "error using generator: Password \"pw\" not found in namespace \"app\""
        );
        assert_eq!(
            errors[2].to_string(),
            "error using generator: ClusterGenerator \"cg\" has kind Password but no spec.generator.passwordSpec"
        );
    }
}
