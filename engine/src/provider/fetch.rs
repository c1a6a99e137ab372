//! The shared fetch layer: one provider call for many identical requests.
//!
//! Hundreds of ExternalSecrets often point at the same few remote keys (the seeds' template
//! example alone reads `prod/db/credentials` four times). Every `get` goes through here, keyed
//! by the store's identity and the full [`GetRequest`]:
//!
//! - a request that arrives while an identical one is in flight waits for that call;
//! - a request may accept a result fetched at most `max_age` ago. The controller passes a tenth
//!   of the ExternalSecret's refresh interval (at most 5 minutes) — exactly the jitter it adds
//!   to periodic requeues — so N ExternalSecrets on one key cost one call per refresh cycle,
//!   and no value is older than the refresh timing already allows. Force-syncs pass zero.
//!
//! Cached values are [`SecretBytes`] (zeroized on drop) and expire with their window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::{GetRequest, Provider, ProviderError};
use crate::secret::SecretBytes;

type SharedGet = Shared<BoxFuture<'static, Result<SecretBytes, ProviderError>>>;

/// Identifies a store and the identity it authenticates as (the unit calls may be shared in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreIdentity(pub String);

type Key = (StoreIdentity, GetRequest);

/// Coalesces identical provider requests (in flight, and recent ones).
#[derive(Default, Clone)]
pub struct FetchLayer {
    in_flight: Arc<Mutex<HashMap<Key, SharedGet>>>,
    recent: Arc<Mutex<HashMap<Key, (Instant, SecretBytes)>>>,
}

/// Longest time a fetched value is kept for reuse.
const MAX_WINDOW: Duration = Duration::from_secs(300);

impl FetchLayer {
    /// A new, empty fetch layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fetches `req` from `provider`, sharing the call with identical concurrent requests and
    /// accepting a value fetched at most `max_age` ago.
    pub async fn get(
        &self,
        store: &StoreIdentity,
        provider: Arc<dyn Provider>,
        req: &GetRequest,
        max_age: Duration,
    ) -> Result<SecretBytes, ProviderError> {
        let key = (store.clone(), req.clone());
        if !max_age.is_zero() {
            let recent = self.recent.lock().expect("fetch layer lock poisoned");
            if let Some((at, value)) = recent.get(&key)
                && at.elapsed() <= max_age
            {
                return Ok(value.clone());
            }
        }
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
            let mut recent = self.recent.lock().expect("fetch layer lock poisoned");
            recent.retain(|_, (at, _)| at.elapsed() <= MAX_WINDOW);
            match &result {
                Ok(value) => {
                    recent.insert(key, (Instant::now(), value.clone()));
                }
                Err(_) => {
                    recent.remove(&key);
                }
            }
        }
        result
    }

    /// Number of values kept for reuse (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.recent.lock().expect("fetch layer lock poisoned").len()
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
        async fn validate(&self) -> Result<Option<String>, ProviderError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_call() {
        let p = Arc::new(Slow(AtomicUsize::new(0)));
        let layer = FetchLayer::new();
        let store = StoreIdentity("ns/store".into());
        let req = GetRequest::new("k", None, Default::default());
        let calls = (0..10).map(|_| layer.get(&store, p.clone(), &req, Duration::ZERO));
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|r| r.as_ref().unwrap().expose() == b"v"));
        assert_eq!(p.0.load(Ordering::SeqCst), 1);
        assert_eq!(layer.in_flight(), 0);
    }

    #[tokio::test]
    async fn recent_values_are_reused_within_the_window_only() {
        let p = Arc::new(Slow(AtomicUsize::new(0)));
        let layer = FetchLayer::new();
        let store = StoreIdentity("ns/store".into());
        let req = GetRequest::new("k", None, Default::default());
        layer
            .get(&store, p.clone(), &req, Duration::ZERO)
            .await
            .unwrap();
        layer
            .get(&store, p.clone(), &req, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(p.0.load(Ordering::SeqCst), 1, "reused within the window");
        layer
            .get(&store, p.clone(), &req, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(p.0.load(Ordering::SeqCst), 2, "max_age zero always fetches");
        tokio::time::sleep(Duration::from_millis(30)).await;
        layer
            .get(&store, p.clone(), &req, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(
            p.0.load(Ordering::SeqCst),
            3,
            "expired values are fetched again"
        );
        let other = StoreIdentity("ns/other-store".into());
        layer
            .get(&other, p.clone(), &req, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            p.0.load(Ordering::SeqCst),
            4,
            "never shared across stores or identities"
        );
    }
}
