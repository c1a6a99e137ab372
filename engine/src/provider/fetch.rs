//! The shared fetch layer: one provider call for many identical requests.
//!
//! Hundreds of ExternalSecrets often point at the same few remote keys (the seeds' template
//! example alone reads `prod/db/credentials` four times). Every `get` goes through here, keyed
//! by the store's identity and the full [`GetRequest`]; a request that arrives while an
//! identical one is in flight waits for that call instead of making its own. The map only
//! holds in-flight calls, so no secret value outlives the requests that asked for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::{GetRequest, Provider, ProviderError};
use crate::secret::SecretBytes;

type SharedGet = Shared<BoxFuture<'static, Result<SecretBytes, ProviderError>>>;

/// Identifies a store and the identity it authenticates as (the unit calls may be shared in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreIdentity(pub String);

/// Coalesces identical in-flight provider requests.
#[derive(Default, Clone)]
pub struct FetchLayer {
    in_flight: Arc<Mutex<HashMap<(StoreIdentity, GetRequest), SharedGet>>>,
}

impl FetchLayer {
    /// A new, empty fetch layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fetches `req` from `provider`, sharing the call with identical concurrent requests.
    pub async fn get(
        &self,
        store: &StoreIdentity,
        provider: Arc<dyn Provider>,
        req: &GetRequest,
    ) -> Result<SecretBytes, ProviderError> {
        let key = (store.clone(), req.clone());
        let (fut, leader) = {
            let mut map = self.in_flight.lock().expect("fetch layer lock poisoned");
            match map.get(&key) {
                Some(f) => (f.clone(), false),
                None => {
                    let r = req.clone();
                    let f: BoxFuture<'static, _> = async move { provider.get(&r).await }.boxed();
                    let shared = f.shared();
                    map.insert(key.clone(), shared.clone());
                    (shared, true)
                }
            }
        };
        let result = fut.await;
        if leader {
            self.in_flight
                .lock()
                .expect("fetch layer lock poisoned")
                .remove(&key);
        }
        result
    }

    /// Number of calls currently in flight (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .lock()
            .expect("fetch layer lock poisoned")
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::FindQuery;
    use async_trait::async_trait;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Slow(AtomicUsize);

    #[async_trait]
    impl Provider for Slow {
        async fn get(&self, _: &GetRequest) -> Result<SecretBytes, ProviderError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok("v".into())
        }
        async fn find(
            &self,
            _: &FindQuery,
        ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
            Ok(BTreeMap::new())
        }
        async fn validate(&self) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_call() {
        let p = Arc::new(Slow(AtomicUsize::new(0)));
        let layer = FetchLayer::new();
        let store = StoreIdentity("ns/store".into());
        let req = GetRequest::new("k", None, Default::default());
        let calls = (0..10).map(|_| layer.get(&store, p.clone(), &req));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| r.as_ref().unwrap().expose() == b"v"));
        assert_eq!(p.0.load(Ordering::SeqCst), 1);
        assert_eq!(layer.in_flight(), 0);
    }
}
