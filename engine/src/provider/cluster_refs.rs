//! Reading what a store names in the cluster: one key of a Secret or a ConfigMap, with the
//! version read (so a provider's connection cache can tell rotated credentials apart) and
//! errors that say which field named what. The namespace is the caller's: it applies
//! [`super::ClusterRefs::namespace_for`] or ESO's `caProvider` rules first.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use zeroize::Zeroizing;

use super::{ClusterRefs, ProviderBuildError};

/// One value read from the cluster, and `namespace/name@resourceVersion` of its object.
pub(crate) struct Read<T> {
    pub value: T,
    pub version: String,
}

/// A kube error as a user reads it: the apiserver's message when it gave one.
pub(crate) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// Key `key` of Secret `name` in `ns`, for the store field `field`.
pub(crate) async fn secret_key(
    refs: ClusterRefs<'_>,
    ns: &str,
    name: &str,
    key: &str,
    field: &str,
) -> Result<Read<Zeroizing<Vec<u8>>>, ProviderBuildError> {
    let api: Api<Secret> = Api::namespaced(refs.client.clone(), ns);
    let secret = get(&api, "secret", ns, name, field).await?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| Zeroizing::new(b.0.clone()))
        .ok_or_else(|| {
            ProviderBuildError::Invalid(format!(
                "{field}: cannot find secret data for key: {key:?} (Secret {ns}/{name})"
            ))
        })?;
    Ok(Read {
        value,
        version: version(ns, name, &secret.metadata),
    })
}

/// Key `key` of ConfigMap `name` in `ns` (a `caProvider`'s bundle), for the store field `field`.
pub(crate) async fn config_map_key(
    refs: ClusterRefs<'_>,
    ns: &str,
    name: &str,
    key: &str,
    field: &str,
) -> Result<Read<Vec<u8>>, ProviderBuildError> {
    let api: Api<ConfigMap> = Api::namespaced(refs.client.clone(), ns);
    let cm = get(&api, "configmap", ns, name, field).await?;
    let value = cm
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.as_bytes().to_vec())
        .ok_or_else(|| {
            ProviderBuildError::Invalid(format!(
                "failed to get caProvider configmap {ns}/{name} -> {key}: no such key"
            ))
        })?;
    Ok(Read {
        value,
        version: format!("configmap {}", version(ns, name, &cm.metadata)),
    })
}

async fn get<K>(
    api: &Api<K>,
    kind: &str,
    ns: &str,
    name: &str,
    field: &str,
) -> Result<K, ProviderBuildError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let cannot = |why: &str| {
        ProviderBuildError::Invalid(format!(
            "{field}: cannot get Kubernetes {kind} {name:?} from namespace {ns:?}: {why}"
        ))
    };
    api.get_opt(name)
        .await
        .map_err(|e| cannot(&describe(&e)))?
        .ok_or_else(|| cannot("not found"))
}

fn version(ns: &str, name: &str, meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{ns}/{name}@{}",
        meta.resource_version.as_deref().unwrap_or_default()
    )
}
