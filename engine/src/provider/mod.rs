//! Providers: where remote secrets come from.
//!
//! A provider answers three questions — one secret by key and version, a search by name, path
//! or tags, and "are my credentials and settings usable?" — and nothing more. Property
//! extraction, decoding, rewrites and key handling are the same for every provider, so they
//! live in [`crate::pipeline`], not here. Keeping the provider surface this small is what lets
//! the [`fetch::FetchLayer`] coalesce identical requests from many ExternalSecrets into one
//! call (and, for AWS, batch them): a request is fully described by a [`GetRequest`].

pub mod aws;
mod calls;
pub(crate) mod cluster_refs;
pub mod fake;
pub mod fetch;
pub mod kubernetes;
pub mod push;
pub mod vault;

pub use calls::{Calls, Metered, Recorded};
pub use push::{Capabilities, PushOutcome, PushSecretData, RemoteRef, SourceSecret};

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{MetadataPolicy, SecretStoreSpec, StoreKind};
use crate::secret::SecretBytes;

/// Provider errors. Messages name keys and causes, never values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The remote secret (or that version of it) does not exist.
    #[error("Secret does not exist: key {key:?}{}", version.as_ref().map(|v| format!(", version {v:?}")).unwrap_or_default())]
    NoSecret {
        /// Remote key.
        key: String,
        /// Requested version.
        version: Option<String>,
    },
    /// The provider refused the credentials or the action.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The provider asked us to slow down.
    #[error("throttled by provider: {0}")]
    Throttled(String),
    /// The provider could not be reached or failed.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider answered and refused the request as invalid in the remote secret's
    /// current state (AWS `InvalidRequestException`: a secret marked for deletion, for one).
    /// Retrying the same request will not help until something changes remotely.
    #[error("request rejected by the provider: {0}")]
    Rejected(String),
    /// The request cannot be served by this provider (e.g. find by tags on Fake).
    #[error("{0}")]
    Unsupported(String),
    /// The store's configuration is invalid.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
    /// The provider did not answer within the deadline (`--provider-timeout`); the call was
    /// cancelled.
    #[error("{call}: no answer from the provider within {}", crate::api::duration::format(*.after))]
    Timeout {
        /// What was called (`get key "db"`, `find`, `validate`).
        call: String,
        /// The deadline.
        after: std::time::Duration,
    },
    /// A push would overwrite (or a delete would remove) a remote secret that does not carry
    /// ESO's `managed-by: external-secrets` mark.
    #[error("secret not managed by external-secrets")]
    NotManaged {
        /// Remote key.
        key: String,
    },
    /// What a PushSecret asked cannot be pushed (a missing source key, bad metadata, a
    /// property into a non-JSON secret). Never echoes a value.
    #[error("{0}")]
    InvalidPush(String),
}

impl ProviderError {
    /// Whether this is ESO's `NoSecretErr`, which deletion policies act on.
    pub fn is_no_secret(&self) -> bool {
        matches!(self, ProviderError::NoSecret { .. })
    }

    /// Whether the call was cut off by its deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProviderError::Timeout { .. })
    }
}

/// Runs `call` under `deadline`: a provider that does not answer in time is cancelled (the
/// future is dropped, closing its connection) and reported as [`ProviderError::Timeout`], so
/// a hung store never holds a reconcile, a worker or a store validation for ever.
/// `Duration::ZERO` means no deadline.
pub async fn with_deadline<T>(
    deadline: std::time::Duration,
    call: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    if deadline.is_zero() {
        return fut.await;
    }
    match tokio::time::timeout(deadline, fut).await {
        Ok(result) => result,
        Err(_) => Err(ProviderError::Timeout {
            call: call(),
            after: deadline,
        }),
    }
}

/// One remote secret to fetch. Fully describes the call, so equal requests can share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GetRequest {
    /// Remote key.
    pub key: String,
    /// Version (provider-specific syntax), if any.
    pub version: Option<String>,
    /// Fetch the value (`None`) or the metadata (`Fetch`).
    pub metadata: bool,
}

impl GetRequest {
    /// Builds a request from an ExternalSecret remote reference.
    pub fn new(key: &str, version: Option<&str>, policy: MetadataPolicy) -> Self {
        GetRequest {
            key: key.to_string(),
            version: version.filter(|v| !v.is_empty()).map(str::to_string),
            metadata: policy == MetadataPolicy::Fetch,
        }
    }
}

/// One remote secret as its provider holds it: what [`Provider::get`] returns.
///
/// The shape decides what a `property` means and what `dataFrom.extract` returns, as in ESO:
/// a provider whose secret is one value (a secret string or binary, a Vault KV map sent as
/// JSON) is looked up as a JSON document; a Kubernetes Secret is a map of byte values, read
/// verbatim, and its `property` is a data key ([`crate::pipeline::property`]).
#[derive(Clone)]
pub enum Fetched {
    /// One value; a `property` is a path into it as a JSON document, by the provider's rule.
    Value {
        /// The value, byte for byte.
        bytes: SecretBytes,
        /// How a `property` is looked up in it (it differs per provider in ESO).
        lookup: Lookup,
    },
    /// Named byte values (a Kubernetes Secret's `data`, or its labels and annotations).
    Map {
        /// The values, byte for byte.
        entries: crate::secret::SecretMap,
        /// What the map holds (the property rules of the two differ in ESO).
        of: MapOf,
    },
}

/// How a `property` is looked up in a [`Fetched::Value`], after the ESO provider that reads
/// that kind of secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// AWS Secrets Manager and Parameter Store (`gjson.Get` on the SecretString, the
    /// SecretBinary or the parameter): a top-level key with dots first, then the gjson path;
    /// missing: `key "P" does not exist in secret "K"`, an error.
    Json,
    /// Vault KV (`getSecretValue`): the data map's key first (dots included), then the gjson
    /// path; missing: `cannot find secret data for key: "P"`, an error.
    Vault,
    /// OpenBao (`spec.provider.openBao`): the data map's key only; missing: `cannot find
    /// secret data for key: "P"`.
    OpenBao,
    /// The Fake provider (`gjson.Get` on the value): the gjson path; missing (or a value that
    /// is not JSON) is ESO's `NoSecretErr`, so deletion policies act on it.
    Fake,
}

/// What a [`Fetched::Map`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapOf {
    /// A Kubernetes Secret's `data`.
    SecretData,
    /// A Kubernetes Secret's `labels` and `annotations` (`metadataPolicy: Fetch`), each a
    /// JSON object (`null` when the Secret has none).
    SecretMetadata,
}

impl Fetched {
    /// A value looked up as JSON ([`Lookup::Json`]).
    pub fn json(bytes: impl Into<SecretBytes>) -> Self {
        Fetched::Value {
            bytes: bytes.into(),
            lookup: Lookup::Json,
        }
    }

    /// A Fake provider's value ([`Lookup::Fake`]).
    pub fn fake(bytes: impl Into<SecretBytes>) -> Self {
        Fetched::Value {
            bytes: bytes.into(),
            lookup: Lookup::Fake,
        }
    }

    /// The whole secret as one value (`data[]` without a `property`). A map is ESO's JSON
    /// document of it (`esutils.JSONMarshal`): a Secret's data as `{"key":"value",…}`, keys
    /// sorted, each value Go's `string(v)` (bytes that are not UTF-8 become U+FFFD, as Go's
    /// encoder writes them); metadata as `{"annotations":{…},"labels":{…}}`.
    pub fn whole(&self) -> SecretBytes {
        match self {
            Fetched::Value { bytes, .. } => bytes.clone(),
            Fetched::Map { entries, of } => {
                let mut doc = String::from("{");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        doc.push(',');
                    }
                    go_json_string(k.as_bytes(), &mut doc);
                    doc.push(':');
                    match of {
                        MapOf::SecretData => go_json_string(v.expose(), &mut doc),
                        // Written by the provider as compact JSON (or `null`).
                        MapOf::SecretMetadata => {
                            doc.push_str(std::str::from_utf8(v.expose()).unwrap_or("null"))
                        }
                    }
                }
                doc.push('}');
                SecretBytes::new(doc.into_bytes())
            }
        }
    }
}

/// Go's JSON encoding of `string(bytes)` as ESO's `esutils.JSONMarshal` writes it (HTML
/// not escaped): each byte that is not part of valid UTF-8 becomes the escape `\ufffd`,
/// U+2028 and U+2029 are escaped, control characters as Go escapes them.
fn go_json_string(bytes: &[u8], out: &mut String) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
}

impl From<SecretBytes> for Fetched {
    fn from(bytes: SecretBytes) -> Self {
        Fetched::json(bytes)
    }
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fetched::Value { bytes, lookup } => f
                .debug_struct("Value")
                .field("bytes", bytes)
                .field("lookup", lookup)
                .finish(),
            Fetched::Map { entries, of } => f
                .debug_struct("Map")
                .field("keys", &entries.keys().collect::<Vec<_>>())
                .field("of", of)
                .finish(),
        }
    }
}

/// A search for remote secrets (`dataFrom.find`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FindQuery {
    /// Path prefix.
    pub path: Option<String>,
    /// Regular expression on names.
    pub name_regexp: Option<String>,
    /// Tags that must all match.
    pub tags: BTreeMap<String, String>,
}

/// A connected provider for one store (and one identity).
#[async_trait]
pub trait Provider: Send + Sync {
    /// Fetches one remote secret.
    async fn get(&self, req: &GetRequest) -> Result<Fetched, ProviderError>;
    /// Finds remote secrets; keys are the remote names.
    async fn find(&self, query: &FindQuery)
    -> Result<BTreeMap<String, SecretBytes>, ProviderError>;
    /// Checks that the store is usable; returns the identity it authenticates as, if known.
    async fn validate(&self) -> Result<Option<String>, ProviderError>;

    /// What the store can do (`status.capabilities`); providers that can push say
    /// [`Capabilities::ReadWrite`].
    fn capabilities(&self) -> Capabilities {
        Capabilities::ReadOnly
    }

    /// Pushes one entry of `secret` (ESO's `PushSecret`). See [`push`] for the rules.
    async fn push_secret(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        let _ = (secret, data);
        Err(ProviderError::Unsupported(
            "this provider does not support PushSecret".to_string(),
        ))
    }

    /// Deletes what an earlier push wrote (ESO's `DeleteSecret`): a missing remote secret
    /// and one not managed by external-secrets are both a no-op. `data` is the entry as
    /// recorded in `status.syncedPushSecrets` (its `secret_key` is not used).
    async fn delete_secret(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        let _ = data;
        Err(ProviderError::Unsupported(
            "this provider does not support deleting pushed secrets".to_string(),
        ))
    }

    /// Whether the remote secret (and property, if any) exists (ESO's `SecretExists`, for
    /// `updatePolicy: IfNotExists`).
    async fn secret_exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        let _ = data;
        Err(ProviderError::Unsupported(
            "this provider does not support PushSecret".to_string(),
        ))
    }
}

/// Why no provider could be built for a store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderBuildError {
    /// The store names no provider.
    #[error("store has no provider configured")]
    NoProvider,
    /// The store names more than one provider.
    #[error("store must configure exactly one provider, found: {0}")]
    MultipleProviders(String),
    /// The store's provider exists in ESO but not (yet) in esox.
    #[error("provider {0:?} is not supported by esox")]
    Unsupported(String),
    /// The provider's settings are invalid.
    #[error("{0}")]
    Invalid(String),
    /// The store's authentication method exists in ESO but not (yet) in esox.
    #[error("{0}")]
    UnsupportedAuth(String),
}

impl ProviderBuildError {
    /// Short reason for conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ProviderBuildError::Unsupported(_) => "UnsupportedProvider",
            ProviderBuildError::UnsupportedAuth(_) => "UnsupportedAuth",
            _ => "InvalidProviderConfig",
        }
    }
}

/// What building a provider needs: where it counts its API calls and, for a store whose
/// credentials are cluster objects (a Secret, a ServiceAccount token), the cluster to read them
/// from. Providers that read nothing from Kubernetes (the Fake provider, AWS with the SDK's
/// default credential chain) build without one, so `esox render` needs no client.
pub struct BuildContext<'a> {
    /// Where providers count their API calls.
    pub metrics: &'a Arc<crate::metrics::Metrics>,
    /// Where the store's references to Secrets and ServiceAccounts resolve; `None` offline,
    /// where a store with such references cannot be built.
    pub cluster: Option<ClusterRefs<'a>>,
    /// The store object being built (`SecretStore/<namespace>/<name>` or
    /// `ClusterSecretStore/<name>`), for providers that keep state per store (what was
    /// pushed to a Fake store); `None` when building without one.
    pub store: Option<String>,
}

impl<'a> BuildContext<'a> {
    /// Building without a cluster: stores that reference cluster objects fail to build.
    pub fn offline(metrics: &'a Arc<crate::metrics::Metrics>) -> Self {
        BuildContext {
            metrics,
            cluster: None,
            store: None,
        }
    }

    /// The same context, building the store object `kind` `name` (in `namespace` for a
    /// SecretStore).
    pub fn for_store(mut self, kind: StoreKind, namespace: &str, name: &str) -> Self {
        self.store = Some(match kind {
            StoreKind::SecretStore => format!("SecretStore/{namespace}/{name}"),
            StoreKind::ClusterSecretStore => format!("ClusterSecretStore/{name}"),
        });
        self
    }

    /// Building in the cluster: references resolve as a `store_kind` in `namespace` does.
    pub fn in_cluster(
        metrics: &'a Arc<crate::metrics::Metrics>,
        client: &'a kube::Client,
        store_kind: StoreKind,
        namespace: &'a str,
    ) -> Self {
        BuildContext {
            metrics,
            cluster: Some(ClusterRefs {
                client,
                store_kind,
                namespace,
            }),
            store: None,
        }
    }
}

/// Where a store's references to cluster objects resolve.
#[derive(Clone, Copy)]
pub struct ClusterRefs<'a> {
    /// Kubernetes client (to read Secrets and request ServiceAccount tokens).
    pub client: &'a kube::Client,
    /// Kind of the store being built.
    pub store_kind: StoreKind,
    /// Namespace references resolve in: the store's for a SecretStore, the ExternalSecret's
    /// (unless a reference names one) for a ClusterSecretStore.
    pub namespace: &'a str,
}

impl ClusterRefs<'_> {
    /// The namespace a reference resolves in: one it names itself only from a
    /// ClusterSecretStore (a SecretStore's references stay in its own namespace), as ESO.
    pub fn namespace_for(&self, explicit: Option<&str>) -> String {
        match (self.store_kind, explicit) {
            (StoreKind::ClusterSecretStore, Some(ns)) if !ns.is_empty() => ns.to_string(),
            _ => self.namespace.to_string(),
        }
    }
}

/// Builds the provider for a store spec. Returns it with a string naming the identity it
/// authenticates as, so callers can cache connected providers per store and identity.
pub async fn build(
    spec: &SecretStoreSpec,
    ctx: &BuildContext<'_>,
) -> Result<(Arc<dyn Provider>, String), ProviderBuildError> {
    let names = spec.provider.names();
    match names.len() {
        0 => return Err(ProviderBuildError::NoProvider),
        1 => {}
        _ => return Err(ProviderBuildError::MultipleProviders(names.join(", "))),
    }
    if let Some(fake) = &spec.provider.fake {
        let inner = Arc::new(match &ctx.store {
            Some(store) => fake::FakeProvider::for_store(fake, store),
            None => fake::FakeProvider::new(fake),
        });
        let metered = Metered::wrap(inner, Calls::new(ctx.metrics, "fake"));
        return Ok((metered, "static".to_string()));
    }
    if let Some(aws) = &spec.provider.aws {
        return aws::connect(aws, ctx).await;
    }
    if let Some(v) = &spec.provider.vault {
        return vault::connect(v, spec.retry_settings.as_ref(), ctx).await;
    }
    if let Some(b) = &spec.provider.open_bao {
        return vault::connect_openbao(b, spec.retry_settings.as_ref(), ctx).await;
    }
    if let Some(k) = &spec.provider.kubernetes {
        return kubernetes::connect(k, ctx).await;
    }
    // Kept free-form because they do not decode: say why.
    if let Some(raw) = spec.provider.other.get("vault") {
        let why = serde_json::from_value::<crate::api::VaultProvider>(raw.clone())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(ProviderBuildError::Invalid(format!(
            "spec.provider.vault: {why}"
        )));
    }
    if let Some(raw) = spec.provider.other.get("kubernetes") {
        let why = serde_json::from_value::<crate::api::KubernetesProvider>(raw.clone())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(ProviderBuildError::Invalid(format!(
            "spec.provider.kubernetes: {why}"
        )));
    }
    if let Some(raw) = spec.provider.other.get("openBao") {
        let why = serde_json::from_value::<crate::api::OpenBaoProvider>(raw.clone())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(ProviderBuildError::Invalid(format!(
            "spec.provider.openBao: {why}"
        )));
    }
    Err(ProviderBuildError::Unsupported(names[0].clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metrics() -> Arc<crate::metrics::Metrics> {
        Arc::new(crate::metrics::Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ))
    }

    fn spec(provider: serde_json::Value) -> SecretStoreSpec {
        serde_json::from_value(json!({ "provider": provider })).unwrap()
    }

    async fn build_error(provider: serde_json::Value) -> ProviderBuildError {
        let metrics = metrics();
        build(&spec(provider), &BuildContext::offline(&metrics))
            .await
            .err()
            .expect("the build fails")
    }

    #[tokio::test]
    async fn a_fake_store_builds_without_a_cluster() {
        let metrics = metrics();
        let store = spec(json!({"fake": {"data": [{"key": "k", "value": "v"}]}}));
        let Ok((provider, identity)) = build(&store, &BuildContext::offline(&metrics)).await else {
            panic!("a Fake store builds");
        };
        assert_eq!(identity, "static");
        let got = provider
            .get(&GetRequest::new("k", None, MetadataPolicy::None))
            .await
            .unwrap();
        assert_eq!(got.whole().expose(), b"v");
    }

    #[tokio::test]
    async fn a_store_names_exactly_one_supported_provider() {
        assert!(matches!(
            build_error(json!({})).await,
            ProviderBuildError::NoProvider
        ));
        match build_error(json!({"fake": {}, "gcpsm": {}})).await {
            ProviderBuildError::MultipleProviders(names) => assert_eq!(names, "fake, gcpsm"),
            other => panic!("expected MultipleProviders, got {other:?}"),
        }
        let unsupported = build_error(json!({"gcpsm": {}})).await;
        assert_eq!(unsupported.reason(), "UnsupportedProvider");
        assert_eq!(
            unsupported.to_string(),
            "provider \"gcpsm\" is not supported by esox"
        );
    }

    #[tokio::test]
    async fn vault_stores_say_what_is_wrong_before_any_call() {
        let err = build_error(json!({"vault": {"server": 5}})).await;
        assert!(
            err.to_string()
                .starts_with("spec.provider.vault: invalid type"),
            "{err}"
        );
        let err = build_error(json!({"vault": {"server": "https://v", "auth": {}}})).await;
        assert_eq!(
            err.to_string(),
            "cannot initialize Vault client: no valid auth method specified"
        );
        let err = build_error(
            json!({"vault": {"server": "https://v", "auth": {"iam": {"vaultRole": "r"}}}}),
        )
        .await;
        assert_eq!(err.reason(), "UnsupportedAuth");
        assert!(
            err.to_string().contains("not supported by esox yet"),
            "{err}"
        );
        let err = build_error(json!({"vault": {"server": "https://v", "version": "v3"}})).await;
        assert!(err.to_string().contains("expected v1 or v2"), "{err}");
        let err = build_error(json!({"vault": {"server": "https://v", "auth": {"appRole": {"secretRef": {"name": "s", "key": "k"}}}}})).await;
        assert_eq!(
            err.to_string(),
            "invalid Auth.AppRole: neither `roleId` nor `roleRef` was supplied"
        );
        let metrics = metrics();
        let store = spec(json!({"vault": {"server": "http://127.0.0.1:1", "path": "secret"}}));
        let Ok((_, identity)) = build(&store, &BuildContext::offline(&metrics)).await else {
            panic!("a Vault store without auth builds offline");
        };
        assert_eq!(identity, "vault http://127.0.0.1:1 without a token");
    }
}
