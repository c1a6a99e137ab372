//! `externalsecret_provider_api_calls_count`: one way to count a provider's calls.
//!
//! A provider with a remote API (AWS Secrets Manager, Parameter Store, the STS generator)
//! counts each API call where it makes it, under the API's own call name (`GetSecretValue`,
//! `BatchGetSecretValue`, `GetSessionToken`, …), as ESO labels them; the STS calls that
//! connect a store and check it (`AssumeRole`, `AssumeRoleWithWebIdentity`,
//! `GetCallerIdentity`, which ESO does not count) are counted under `AWS/STS`. The SDK call's result
//! goes through [`Recorded::recorded`] (`.send().await.recorded(&self.calls, "GetParameter")`)
//! before anything else looks at it.
//!
//! A provider with no remote API (the Fake provider) is wrapped in [`Metered`], which counts
//! its `get`/`find`/`validate` under ESO's generic names. Either way the count sits *inside* the
//! fetch layer, so coalesced requests are counted once — as they are billed.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Capabilities, Fetched, FindQuery, GetRequest, Provider, ProviderError, PushOutcome,
    PushSecretData, SourceSecret,
};
use crate::metrics::{Metrics, ProviderCallLabels};
use crate::secret::SecretBytes;

/// The `status` label of a call that succeeded (ESO's `StatusSuccess`).
pub const SUCCESS: &str = "success";
/// The `status` label of a call that failed (ESO's `StatusError`).
pub const ERROR: &str = "error";

/// Counts one provider's calls: the `provider` label (ESO's name for it, e.g.
/// `AWS/SecretsManager`) and where to count.
#[derive(Clone)]
pub struct Calls {
    metrics: Arc<Metrics>,
    provider: &'static str,
}

impl Calls {
    /// Counts calls of `provider` in `metrics`.
    pub fn new(metrics: &Arc<Metrics>, provider: &'static str) -> Self {
        Calls {
            metrics: metrics.clone(),
            provider,
        }
    }

    /// The same metrics, counting another provider's calls (`AWS/STS` beside a store's own
    /// service).
    pub fn for_provider(&self, provider: &'static str) -> Calls {
        Calls {
            metrics: self.metrics.clone(),
            provider,
        }
    }

    /// Records one call and its outcome.
    pub fn record<T, E>(&self, call: &str, result: &Result<T, E>) {
        self.metrics
            .provider_calls
            .get_or_create(&ProviderCallLabels {
                provider: self.provider.to_string(),
                call: call.to_string(),
                status: if result.is_ok() { SUCCESS } else { ERROR }.to_string(),
            })
            .inc();
    }
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Records a call's outcome inline, where the call is made.
pub trait Recorded: Sized {
    /// Records `self` as one `call` in `calls` and returns it unchanged.
    fn recorded(self, calls: &Calls, call: &str) -> Self;
}

impl<T, E> Recorded for Result<T, E> {
    fn recorded(self, calls: &Calls, call: &str) -> Self {
        calls.record(call, &self);
        self
    }
}

/// Counts the calls of a provider that has no API calls of its own to count (the Fake
/// provider) under ESO's generic names: `GetSecret`, `GetSecretMetadata`, `GetAllSecrets`,
/// `Validate`.
pub struct Metered {
    inner: Arc<dyn Provider>,
    calls: Calls,
}

impl Metered {
    /// Wraps `inner`, counting its calls in `calls`.
    pub fn wrap(inner: Arc<dyn Provider>, calls: Calls) -> Arc<dyn Provider> {
        Arc::new(Metered { inner, calls })
    }
}

#[async_trait]
impl Provider for Metered {
    async fn get(&self, req: &GetRequest) -> Result<Fetched, ProviderError> {
        let call = if req.metadata {
            "GetSecretMetadata"
        } else {
            "GetSecret"
        };
        self.inner.get(req).await.recorded(&self.calls, call)
    }

    async fn find(
        &self,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        self.inner
            .find(query)
            .await
            .recorded(&self.calls, "GetAllSecrets")
    }

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        self.inner
            .validate()
            .await
            .recorded(&self.calls, "Validate")
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn push_secret(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        self.inner
            .push_secret(secret, data)
            .await
            .recorded(&self.calls, "PushSecret")
    }

    async fn delete_secret(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        self.inner
            .delete_secret(data)
            .await
            .recorded(&self.calls, "DeleteSecret")
    }

    async fn secret_exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        self.inner
            .secret_exists(data)
            .await
            .recorded(&self.calls, "SecretExists")
    }
}

/// How many calls `metrics` counted under these labels (for tests).
#[cfg(test)]
pub(crate) fn counted(metrics: &Metrics, provider: &str, call: &str, status: &str) -> u64 {
    metrics
        .provider_calls
        .get_or_create(&ProviderCallLabels {
            provider: provider.to_string(),
            call: call.to_string(),
            status: status.to_string(),
        })
        .get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{FakeProvider as FakeSpec, FakeProviderData, MetadataPolicy};
    use crate::provider::fake::FakeProvider;

    #[test]
    fn calls_are_labelled_as_esos_metric_labels_them() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::new(&mut registry));
        let calls = Calls::new(&metrics, "AWS/SecretsManager");
        let ok: Result<(), ()> = Ok(());
        assert_eq!(ok.recorded(&calls, "GetSecretValue"), Ok(()));
        calls.record("GetSecretValue", &ok);
        calls.record("GetSecretValue", &Err::<(), _>("denied"));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"externalsecret_provider_api_calls_count_total{provider="AWS/SecretsManager",call="GetSecretValue",status="success"} 2"#,
            r#"externalsecret_provider_api_calls_count_total{provider="AWS/SecretsManager",call="GetSecretValue",status="error"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[tokio::test]
    async fn metered_counts_each_call_of_the_provider_it_wraps() {
        let metrics = Arc::new(Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let fake = FakeProvider::new(&FakeSpec {
            data: vec![FakeProviderData {
                key: "k".into(),
                value: "v".into(),
                ..Default::default()
            }],
        });
        let p = Metered::wrap(Arc::new(fake), Calls::new(&metrics, "fake"));
        let get = |key: &str, policy| GetRequest::new(key, None, policy);
        assert!(p.get(&get("k", MetadataPolicy::None)).await.is_ok());
        assert!(p.get(&get("k", MetadataPolicy::None)).await.is_ok());
        assert!(p.get(&get("missing", MetadataPolicy::None)).await.is_err());
        assert!(p.get(&get("k", MetadataPolicy::Fetch)).await.is_err());
        let all = FindQuery {
            path: None,
            name_regexp: Some(".*".into()),
            tags: Default::default(),
        };
        assert!(p.find(&all).await.is_ok());
        assert!(p.validate().await.is_ok());
        let count = |call, status| counted(&metrics, "fake", call, status);
        assert_eq!(count("GetSecret", SUCCESS), 2);
        assert_eq!(count("GetSecret", ERROR), 1);
        assert_eq!(count("GetSecretMetadata", ERROR), 1);
        assert_eq!(count("GetAllSecrets", SUCCESS), 1);
        assert_eq!(count("Validate", SUCCESS), 1);
    }
}
