//! Resolving an ExternalSecret's store references to providers, with ESO's access rules.
//!
//! A namespaced `SecretStore` is looked up only in the ExternalSecret's own namespace, so it
//! can never serve another namespace. A `ClusterSecretStore` is usable from a namespace only
//! when its `spec.conditions` allow it (any entry matching: names, regexes, label selector).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use regex::Regex;

use super::context::Context;
use crate::api::{
    ClusterSecretStore, ClusterSecretStoreCondition, GeneratorRef, SecretStore, SecretStoreRef,
    SecretStoreSpec, StoreKind,
};
use crate::pipeline::{DataSource, Source, SourceError};
use crate::provider::fetch::StoreIdentity;
use crate::provider::{self, BuildContext, FindQuery, GetRequest, Provider};
use crate::secret::{SecretBytes, SecretMap};

/// A resolved store, as the cache shares it.
enum Spec {
    Namespaced(Arc<SecretStore>),
    Cluster(Arc<ClusterSecretStore>),
}

/// A store resolved for one ExternalSecret.
#[derive(Clone)]
pub struct ResolvedStore {
    /// Identity for sharing calls: kind, namespace, name and spec generation.
    pub identity: StoreIdentity,
    /// The provider, metered.
    pub provider: Arc<dyn Provider>,
}

/// Resolves stores for one reconcile and serves the pipeline's fetches through the shared
/// fetch layer. Each store is resolved once per reconcile however many entries use it.
pub struct StoreResolver<'a> {
    pub(super) ctx: &'a Context,
    pub(super) namespace: &'a str,
    default_ref: Option<&'a SecretStoreRef>,
    max_age: Duration,
    /// Held while a store is resolved, so entries fetched concurrently resolve it once (and
    /// then reach the provider together, where they can be batched).
    cache: tokio::sync::Mutex<HashMap<SecretStoreRef, Result<ResolvedStore, SourceError>>>,
    /// See [`StoreResolver::credentials_expire`].
    pub(super) expires: std::sync::Mutex<Option<jiff::Timestamp>>,
    /// See [`StoreResolver::leases`].
    pub(super) leases: std::sync::Mutex<Vec<crate::provider::vault::leases::Record>>,
}

impl<'a> StoreResolver<'a> {
    /// A resolver for an ExternalSecret in `namespace` whose default store is `default_ref`.
    pub fn new(
        ctx: &'a Context,
        namespace: &'a str,
        default_ref: Option<&'a SecretStoreRef>,
        max_age: Duration,
    ) -> Self {
        StoreResolver {
            ctx,
            namespace,
            default_ref,
            max_age,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            expires: std::sync::Mutex::new(None),
            leases: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The Vault leases the generators issued in this reconcile (VaultDynamicSecret).
    pub fn leases(&self) -> Vec<crate::provider::vault::leases::Record> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The earliest expiry of the credentials generated in this reconcile (STSSessionToken),
    /// if any: the Secret must be renewed before then whatever its refresh interval says.
    pub fn credentials_expire(&self) -> Option<jiff::Timestamp> {
        *self
            .expires
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves one store by reference (PushSecret's `secretStoreRefs`), with the same access
    /// rules and provider cache as an ExternalSecret's.
    pub async fn store(&self, store_ref: &SecretStoreRef) -> Result<ResolvedStore, SourceError> {
        self.resolve_uncached(store_ref).await
    }

    async fn resolve(&self, source: Source<'_>) -> Result<ResolvedStore, SourceError> {
        let store_ref = source
            .and_then(|s| s.store_ref.as_ref())
            .or(self.default_ref)
            .ok_or_else(|| {
                SourceError::Store(
                    "spec.secretStoreRef is required when an entry has no sourceRef.storeRef"
                        .into(),
                )
            })?
            .clone();
        let mut cache = self.cache.lock().await;
        if let Some(found) = cache.get(&store_ref) {
            return found.clone();
        }
        let resolved = self.resolve_uncached(&store_ref).await;
        cache.insert(store_ref, resolved.clone());
        resolved
    }

    /// A store from the cache (shared, not copied: a store's spec can be large) or read live.
    async fn resolve_uncached(
        &self,
        store_ref: &SecretStoreRef,
    ) -> Result<ResolvedStore, SourceError> {
        let (spec, identity) = match store_ref.kind() {
            StoreKind::SecretStore => {
                let cached = self
                    .ctx
                    .caches
                    .get()
                    .and_then(|c| c.secret_store(self.namespace, &store_ref.name));
                let api: Api<SecretStore> =
                    Api::namespaced(self.ctx.client.clone(), self.namespace);
                // The watch cache; a miss (a store created a moment ago) is read live.
                let store = match cached {
                    Some(store) => Ok(Some(store)),
                    None => api.get_opt(&store_ref.name).await.map(|s| s.map(Arc::new)),
                };
                let store = store
                    .map_err(|e| {
                        SourceError::Store(format!(
                            "could not get SecretStore {:?}: {e}",
                            store_ref.name
                        ))
                    })?
                    .ok_or_else(|| {
                        SourceError::Store(format!(
                            "SecretStore {:?} not found in namespace {:?}",
                            store_ref.name, self.namespace
                        ))
                    })?;
                let id = format!(
                    "SecretStore/{}/{}/{}",
                    self.namespace,
                    store_ref.name,
                    store.metadata.generation.unwrap_or_default()
                );
                (Spec::Namespaced(store), id)
            }
            StoreKind::ClusterSecretStore => {
                if !self.ctx.settings.switches.cluster_store {
                    return Err(SourceError::Store(format!(
                        "ClusterSecretStore {:?} is not processed by this controller \
                         (--enable-cluster-store-reconciler=false)",
                        store_ref.name
                    )));
                }
                let cached = self
                    .ctx
                    .caches
                    .get()
                    .and_then(|c| c.cluster_store(&store_ref.name));
                let api: Api<ClusterSecretStore> = Api::all(self.ctx.client.clone());
                let store = match cached {
                    Some(store) => Ok(Some(store)),
                    None => api.get_opt(&store_ref.name).await.map(|s| s.map(Arc::new)),
                };
                let store = store
                    .map_err(|e| {
                        SourceError::Store(format!(
                            "could not get ClusterSecretStore {:?}: {e}",
                            store_ref.name
                        ))
                    })?
                    .ok_or_else(|| {
                        SourceError::Store(format!(
                            "ClusterSecretStore {:?} not found",
                            store_ref.name
                        ))
                    })?;
                self.check_cluster_conditions(&store_ref.name, &store.spec.conditions)
                    .await?;
                let id = format!(
                    "ClusterSecretStore/{}/{}",
                    store_ref.name,
                    store.metadata.generation.unwrap_or_default()
                );
                (Spec::Cluster(store), id)
            }
        };
        let spec = match &spec {
            Spec::Namespaced(s) => &s.spec,
            Spec::Cluster(s) => &s.spec.0,
        };
        self.connect(spec, store_ref.kind(), &store_ref.name, identity)
            .await
    }

    async fn connect(
        &self,
        spec: &SecretStoreSpec,
        kind: StoreKind,
        name: &str,
        store_id: String,
    ) -> Result<ResolvedStore, SourceError> {
        let bctx =
            BuildContext::in_cluster(&self.ctx.metrics, &self.ctx.client, kind, self.namespace)
                .for_store(kind, self.namespace, name);
        // A store's references resolve in this namespace (a ClusterSecretStore's, unless
        // they name one), so the same store is a different connection per namespace.
        let key = format!("{store_id} in {}", self.namespace);
        let deadline = self.ctx.settings.provider_timeout;
        let build = async {
            let connect = self
                .ctx
                .providers
                .get_or_try_insert_with(key, || provider::build(spec, &bctx));
            // Connecting may call out too (STS, a TokenRequest): under the same deadline.
            if deadline.is_zero() {
                return Ok(connect.await);
            }
            tokio::time::timeout(deadline, connect).await
        };
        let (provider, auth_id) = build
            .await
            .map_err(|_| {
                SourceError::Provider(provider::ProviderError::Timeout {
                    call: format!("connecting to {store_id}"),
                    after: deadline,
                })
            })?
            .map_err(|e| SourceError::Store(e.to_string()))?;
        let identity = format!("{store_id} as {auth_id}");
        Ok(ResolvedStore {
            identity: StoreIdentity(identity),
            provider,
        })
    }

    async fn check_cluster_conditions(
        &self,
        store: &str,
        conditions: &[ClusterSecretStoreCondition],
    ) -> Result<(), SourceError> {
        if conditions.is_empty() {
            return Ok(());
        }
        let needs_labels = conditions.iter().any(|c| c.namespace_selector.is_some());
        let labels = if needs_labels {
            let api: Api<Namespace> = Api::all(self.ctx.client.clone());
            let ns = api.get(self.namespace).await.map_err(|e| {
                SourceError::Store(format!("could not get namespace {:?}: {e}", self.namespace))
            })?;
            ns.metadata.labels.unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        if namespace_allowed(conditions, self.namespace, &labels) {
            Ok(())
        } else {
            Err(SourceError::Store(format!(
                "using cluster store {store:?} is not allowed from namespace {:?}: denied by spec.condition",
                self.namespace
            )))
        }
    }
}

#[async_trait]
impl DataSource for StoreResolver<'_> {
    async fn generate(&self, generator: &GeneratorRef) -> Result<SecretMap, SourceError> {
        super::generators::generate(self, generator)
            .await
            .map_err(|e| SourceError::Generator(std::sync::Arc::new(e)))
    }

    async fn get(
        &self,
        source: Source<'_>,
        req: &GetRequest,
    ) -> Result<crate::provider::Fetched, SourceError> {
        let store = self.resolve(source).await?;
        Ok(self
            .ctx
            .fetch
            .get(&store.identity, store.provider, req, self.max_age)
            .await?)
    }

    async fn find(
        &self,
        source: Source<'_>,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, SourceError> {
        let store = self.resolve(source).await?;
        let deadline = self.ctx.settings.provider_timeout;
        Ok(provider::with_deadline(deadline, || "find".into(), store.provider.find(query)).await?)
    }
}

/// A store an ExternalSecret reads that is not Ready, by ESO's flood gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// `SecretStore` or `ClusterSecretStore`.
    pub kind: &'static str,
    /// The store's name.
    pub name: String,
    /// Its Ready condition's reason and message.
    pub why: String,
}

/// ESO's flood gate (`--enable-flood-gate`, on by default in ESO): an ExternalSecret is not
/// synced through a store whose `Ready` condition is `False`, so a store esox reports as
/// misconfigured (a `secretRef` into another namespace, an unsupported provider, credentials
/// that failed validation) serves nothing. Checked on the watch caches, before any fetch.
///
/// Unlike ESO, a store not validated yet (no condition) is let through: it is either about to
/// be validated or validated by a controller of an older version, and the fetch itself
/// reports any real problem; ESO makes a brand-new ExternalSecret on a brand-new store fail
/// and back off first.
pub fn flood_gate(
    ctx: &Context,
    namespace: &str,
    spec: &crate::api::ExternalSecretSpec,
) -> Result<(), NotReady> {
    let Some(caches) = ctx.caches.get() else {
        return Ok(());
    };
    let refs = spec
        .data
        .iter()
        .filter_map(|d| d.source_ref.as_ref())
        .chain(spec.data_from.iter().filter_map(|d| d.source_ref.as_ref()))
        .filter_map(|s| s.store_ref.as_ref())
        .chain(spec.secret_store_ref.as_ref());
    for r in refs {
        let status = match r.kind() {
            StoreKind::SecretStore => caches
                .secret_stores
                .get(&kube::runtime::reflector::ObjectRef::new(&r.name).within(namespace))
                .and_then(|s| s.status.clone()),
            StoreKind::ClusterSecretStore => caches
                .cluster_stores
                .as_ref()
                .and_then(|c| c.get(&kube::runtime::reflector::ObjectRef::new(&r.name)))
                .and_then(|s| s.status.clone()),
        };
        let ready = status
            .as_ref()
            .and_then(|s| crate::api::condition::get_condition(&s.conditions, "Ready").cloned());
        if let Some(c) = ready
            && c.status == "False"
        {
            let kind = match r.kind() {
                StoreKind::SecretStore => "SecretStore",
                StoreKind::ClusterSecretStore => "ClusterSecretStore",
            };
            let why = match (c.reason.as_deref(), c.message.as_deref()) {
                (Some(reason), Some(msg)) if !msg.is_empty() => format!("{reason}: {msg}"),
                (Some(reason), _) => reason.to_string(),
                (None, Some(msg)) => msg.to_string(),
                (None, None) => "Ready=False".to_string(),
            };
            return Err(NotReady {
                kind,
                name: r.name.clone(),
                why,
            });
        }
    }
    Ok(())
}

/// ESO's ClusterSecretStore condition check: allowed when any condition matches; a condition
/// matches when every field it sets matches the namespace.
pub fn namespace_allowed(
    conditions: &[ClusterSecretStoreCondition],
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    if conditions.is_empty() {
        return true;
    }
    conditions.iter().any(|c| {
        let names_ok = c.namespaces.is_empty() || c.namespaces.iter().any(|n| n == namespace);
        let regex_ok = c.namespace_regexes.is_empty()
            || c.namespace_regexes
                .iter()
                .any(|r| Regex::new(r).is_ok_and(|re| re.is_match(namespace)));
        let selector_ok = c
            .namespace_selector
            .as_ref()
            .is_none_or(|s| selector_matches(s, labels));
        names_ok && regex_ok && selector_ok
    })
}

/// Whether a label selector matches a label set.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn cluster_store_conditions() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let by_name = ClusterSecretStoreCondition {
            namespaces: vec!["prod".into()],
            ..Default::default()
        };
        assert!(namespace_allowed(
            std::slice::from_ref(&by_name),
            "prod",
            &labels
        ));
        assert!(!namespace_allowed(
            std::slice::from_ref(&by_name),
            "dev",
            &labels
        ));
        let by_regex = ClusterSecretStoreCondition {
            namespace_regexes: vec!["^team-.*".into()],
            ..Default::default()
        };
        assert!(namespace_allowed(
            &[by_name.clone(), by_regex.clone()],
            "team-x",
            &labels
        ));
        let by_selector = ClusterSecretStoreCondition {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "team".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into()]),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(namespace_allowed(
            std::slice::from_ref(&by_selector),
            "anything",
            &labels
        ));
        assert!(!namespace_allowed(
            &[by_selector],
            "anything",
            &BTreeMap::new()
        ));
        assert!(namespace_allowed(&[], "x", &labels));
    }
}
