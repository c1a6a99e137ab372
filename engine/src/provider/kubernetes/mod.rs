//! The Kubernetes provider (`spec.provider.kubernetes`): Secrets of a namespace of this
//! cluster or another one, as ESO reads them (`providers/v1/kubernetes/`).
//!
//! - `get` returns the remote Secret's data as a map of its bytes ([`read`]); the pipeline
//!   looks `property` up as a data key (a literal key first, then `key.path` inside its
//!   JSON), takes the map as it is for `dataFrom.extract`, and writes ESO's JSON document of
//!   it for a `data[]` entry without a property. A missing remote Secret is [`ProviderError::NoSecret`] for `data[]`
//!   too (ESO returns the raw API error there, so `deletionPolicy: Delete` never fires for
//!   `data[]`).
//! - `find` lists the remote namespace by labels (`find.tags`) or by name (`find.name.regexp`,
//!   filtered here).
//! - `validate` asks the remote apiserver what the credentials may do
//!   (SelfSubjectRulesReview, then SelfSubjectAccessReview), as ESO.
//! - The connection (client, minted ServiceAccount token) is shared per server and
//!   credentials ([`auth`]); reads go through the fetch layer, which coalesces them.
//!
//! Calls are counted under provider `Kubernetes`: `GetSecret`, `ListSecrets`,
//! `CreateSelfSubjectRulesReview`, `CreateSelfSubjectAccessReview`, `CreateToken`, and the
//! push operations' `CreateSecret`, `UpdateSecret`, `DeleteSecret`.
//! See docs/kubernetes-provider.md.

pub mod auth;
pub mod push;
pub mod read;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use regex::Regex;

use self::auth::Connection;
use super::{
    BuildContext, Calls, Capabilities, Fetched, FindQuery, GetRequest, Provider,
    ProviderBuildError, ProviderError, PushOutcome, PushSecretData, SourceSecret,
};
use crate::api::{KubernetesProvider, StoreKind};
use crate::secret::SecretBytes;

/// The `provider` label of Kubernetes calls (ESO's `ProviderKubernetes`).
pub const PROVIDER: &str = "Kubernetes";

/// A connected Kubernetes store.
pub struct KubernetesStore {
    conn: Arc<Connection>,
    /// `remoteNamespace`.
    namespace: String,
    /// The kind of store (a `remoteNamespace` override on push is a ClusterSecretStore's).
    store_kind: StoreKind,
    calls: Calls,
}

/// Connects a store: reads the Secrets its `auth`/`authRef`/`caProvider` name and shares the
/// connection with every store of the same server and credentials; mints no token and calls
/// nothing remote until a read needs it.
pub async fn connect(
    spec: &KubernetesProvider,
    ctx: &BuildContext<'_>,
) -> Result<(Arc<dyn Provider>, String), ProviderBuildError> {
    let (store, identity) = connect_store(spec, ctx).await?;
    Ok((Arc::new(store), identity))
}

/// [`connect`], returning the concrete store (push, delete and exists live on it).
pub async fn connect_store(
    spec: &KubernetesProvider,
    ctx: &BuildContext<'_>,
) -> Result<(KubernetesStore, String), ProviderBuildError> {
    let resolved = auth::resolve(spec, ctx).await?;
    let identity = format!(
        "{} (remote namespace {})",
        resolved.identity,
        spec.remote_namespace()
    );
    let calls = Calls::new(ctx.metrics, PROVIDER);
    let conn = auth::connection(resolved, calls.clone());
    Ok((
        KubernetesStore {
            conn,
            namespace: spec.remote_namespace().to_string(),
            store_kind: ctx
                .cluster
                .map(|c| c.store_kind)
                .unwrap_or(StoreKind::SecretStore),
            calls,
        },
        identity,
    ))
}

/// A Kubernetes API error as a message: the apiserver's own (which names the user, verb,
/// resource and namespace of a refusal, and never a Secret's data), else the client's.
pub fn describe(e: &kube::Error) -> String {
    crate::provider::cluster_refs::describe(e)
}

/// A failed call as a provider error; `what` says what was attempted.
fn failure(e: &kube::Error, what: &str) -> ProviderError {
    let msg = format!("{what}: {}", describe(e));
    match e {
        kube::Error::Api(s) if s.code == 401 => ProviderError::AccessDenied(format!(
            "{what}: the remote apiserver refused the credentials (401 Unauthorized)"
        )),
        kube::Error::Api(s) if s.code == 403 => ProviderError::AccessDenied(msg),
        kube::Error::Api(s) if s.code == 429 => ProviderError::Throttled(msg),
        kube::Error::Api(s) if (400..500).contains(&s.code) => ProviderError::InvalidConfig(msg),
        _ => ProviderError::Unavailable(msg),
    }
}

impl KubernetesStore {
    /// The remote namespace reads go to.
    pub fn remote_namespace(&self) -> &str {
        &self.namespace
    }

    /// Runs `op` with the connection's client; a 401 (a ServiceAccount token revoked or
    /// expired early) gets one retry with a fresh token.
    async fn call<T, F, Fut>(&self, op: F) -> Result<Result<T, kube::Error>, ProviderError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let client = self.conn.client().await?;
        match op(client).await {
            Err(kube::Error::Api(s)) if s.code == 401 => {
                self.conn.refused().await;
                let client = self.conn.client().await?;
                Ok(op(client).await)
            }
            other => Ok(other),
        }
    }

    /// The Secrets API of `namespace` on the remote cluster.
    fn secrets(client: Client, namespace: &str) -> Api<Secret> {
        Api::namespaced(client, namespace)
    }

    /// One remote Secret, or `None` when it does not exist.
    pub(crate) async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Secret>, ProviderError> {
        let result = self
            .call(|c| async move { Self::secrets(c, namespace).get_opt(name).await })
            .await?;
        self.calls.record("GetSecret", &result);
        result.map_err(|e| failure(&e, &format!("get secret {namespace}/{name}")))
    }

    async fn list(&self, selector: Option<&str>) -> Result<Vec<Secret>, ProviderError> {
        let ns = self.namespace.as_str();
        let result = self
            .call(|c| async move {
                let mut lp = ListParams::default();
                if let Some(s) = selector.filter(|s| !s.is_empty()) {
                    lp = lp.labels(s);
                }
                Self::secrets(c, ns).list(&lp).await
            })
            .await?;
        self.calls.record("ListSecrets", &result);
        let list = result.map_err(|e| failure(&e, &format!("unable to list secrets in {ns}")))?;
        Ok(list.items)
    }
}

#[async_trait]
impl Provider for KubernetesStore {
    async fn get(&self, req: &GetRequest) -> Result<Fetched, ProviderError> {
        let secret =
            self.read(&self.namespace, &req.key)
                .await?
                .ok_or_else(|| ProviderError::NoSecret {
                    key: req.key.clone(),
                    version: None,
                })?;
        Ok(if req.metadata {
            read::metadata(&secret)
        } else {
            read::data(&secret)
        })
    }

    async fn find(
        &self,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        let secrets = if !query.tags.is_empty() {
            let selector = read::tag_selector(&query.tags).map_err(ProviderError::InvalidConfig)?;
            self.list(Some(&selector)).await?
        } else if let Some(re) = &query.name_regexp {
            let regex = Regex::new(re).map_err(|e| {
                ProviderError::InvalidConfig(format!(
                    "invalid find.name.regexp {:?}: {}",
                    crate::api::abbreviate(re, 100),
                    crate::api::abbreviate(&e.to_string(), 200)
                ))
            })?;
            let mut all = self.list(None).await?;
            all.retain(|s| {
                s.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| regex.is_match(n))
            });
            all
        } else {
            return Err(ProviderError::Unsupported(
                "unexpected find operator: the Kubernetes provider finds by name or by tags".into(),
            ));
        };
        Ok(secrets
            .iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, read::data_document(s))))
            .collect())
    }

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        let ns = self.namespace.as_str();
        let rules = self
            .call(|c| async move {
                let review = SelfSubjectRulesReview {
                    spec: SelfSubjectRulesReviewSpec {
                        namespace: Some(ns.to_string()),
                    },
                    ..Default::default()
                };
                Api::<SelfSubjectRulesReview>::all(c)
                    .create(&PostParams::default(), &review)
                    .await
            })
            .await?;
        self.calls.record("CreateSelfSubjectRulesReview", &rules);
        let rules = rules.map_err(|e| verify_failure(&e))?;
        if rules
            .status
            .as_ref()
            .is_some_and(|s| s.resource_rules.iter().any(allows_get_secrets))
        {
            return Ok(None);
        }
        let access = self
            .call(|c| async move {
                let review = SelfSubjectAccessReview {
                    spec: SelfSubjectAccessReviewSpec {
                        resource_attributes: Some(ResourceAttributes {
                            resource: Some("secrets".into()),
                            namespace: Some(ns.to_string()),
                            verb: Some("get".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                Api::<SelfSubjectAccessReview>::all(c)
                    .create(&PostParams::default(), &review)
                    .await
            })
            .await?;
        self.calls.record("CreateSelfSubjectAccessReview", &access);
        let access = access.map_err(|e| verify_failure(&e))?;
        if access.status.is_some_and(|s| s.allowed) {
            return Ok(None);
        }
        Err(ProviderError::AccessDenied(format!(
            "client is not allowed to get secrets in namespace {ns:?}"
        )))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ReadWrite
    }

    async fn push_secret(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        self.push(secret, data).await
    }

    async fn delete_secret(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        self.delete(data).await
    }

    async fn secret_exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        self.exists(data).await
    }
}

/// ESO's "could not verify if client is valid", with the cause.
fn verify_failure(e: &kube::Error) -> ProviderError {
    match failure(e, "could not verify if client is valid") {
        ProviderError::InvalidConfig(m) => ProviderError::Unavailable(m),
        other => other,
    }
}

/// Whether a rule of a SelfSubjectRulesReview allows `get` on Secrets (ESO's test: resource
/// `secrets` or `*`, verb `get` or `*`, the core group or `*`).
fn allows_get_secrets(rule: &k8s_openapi::api::authorization::v1::ResourceRule) -> bool {
    let has = |v: &Option<Vec<String>>, a: &str, b: &str| {
        v.as_ref()
            .is_some_and(|v| v.iter().any(|x| x == a || x == b))
    };
    let groups_ok = rule
        .api_groups
        .as_ref()
        .is_none_or(|g| g.is_empty() || g.iter().any(|x| x.is_empty() || x == "*"));
    has(&rule.resources, "secrets", "*")
        && rule.verbs.iter().any(|v| v == "get" || v == "*")
        && groups_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authorization::v1::ResourceRule;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> ResourceRule {
        let v = |x: &[&str]| Some(x.iter().map(|s| s.to_string()).collect());
        ResourceRule {
            api_groups: v(groups),
            resources: v(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resource_names: None,
        }
    }

    #[test]
    fn rules_that_allow_reading_secrets_as_eso_reads_them() {
        assert!(allows_get_secrets(&rule(
            &[""],
            &["secrets"],
            &["get", "list"]
        )));
        assert!(allows_get_secrets(&rule(&["*"], &["*"], &["*"])));
        assert!(allows_get_secrets(&rule(&[], &["secrets"], &["get"])));
        assert!(!allows_get_secrets(&rule(&[""], &["secrets"], &["list"])));
        assert!(!allows_get_secrets(&rule(
            &["apps"],
            &["secrets"],
            &["get"]
        )));
        assert!(!allows_get_secrets(&rule(&[""], &["configmaps"], &["get"])));
    }
}
