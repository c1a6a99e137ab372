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
//! Cached values are [`Fetched`] (their bytes zeroized on drop) and expire with their window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::{Fetched, GetRequest, Provider, ProviderError};

type SharedGet = Shared<BoxFuture<'static, Result<Fetched, ProviderError>>>;

/// Identifies a store and the identity it authenticates as (the unit calls may be shared in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreIdentity(pub String);

type Key = (StoreIdentity, GetRequest);

/// Coalesces identical provider requests (in flight, and recent ones).
#[derive(Default, Clone)]
pub struct FetchLayer {
    in_flight: Arc<Mutex<HashMap<Key, SharedGet>>>,
    recent: Arc<Mutex<HashMap<Key, (Instant, Fetched)>>>,
    /// Each call's deadline (`Duration::ZERO`: none); see [`super::with_deadline`].
    deadline: Duration,
}

/// Longest time a fetched value is kept for reuse.
const MAX_WINDOW: Duration = Duration::from_secs(300);

/// The caller that started a call: it takes the call out of the in-flight map when the call
/// ends, or when the caller is dropped before that (its reconcile cancelled), so a later
/// request never joins a call nobody will clean up.
struct Leader<'a> {
    layer: &'a FetchLayer,
    key: Option<Key>,
}

impl Leader<'_> {
    fn finish(mut self, result: &Result<Fetched, ProviderError>) {
        let Some(key) = self.key.take() else { return };
        self.layer.lock_in_flight().remove(&key);
        let mut recent = self
            .layer
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.retain(|_, (at, _)| at.elapsed() <= MAX_WINDOW);
        match result {
            Ok(value) => {
                recent.insert(key, (Instant::now(), value.clone()));
            }
            Err(_) => {
                recent.remove(&key);
            }
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.layer.lock_in_flight().remove(&key);
        }
    }
}

impl FetchLayer {
    /// A new, empty fetch layer whose calls have no deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty fetch layer that cancels any call not answered within `deadline`.
    pub fn with_deadline(deadline: Duration) -> Self {
        FetchLayer {
            deadline,
            ..Self::default()
        }
    }

    /// Fetches `req` from `provider`, sharing the call with identical concurrent requests and
    /// accepting a value fetched at most `max_age` ago.
    pub async fn get(
        &self,
        store: &StoreIdentity,
        provider: Arc<dyn Provider>,
        req: &GetRequest,
        max_age: Duration,
    ) -> Result<Fetched, ProviderError> {
        let key = (store.clone(), req.clone());
        if !max_age.is_zero() {
            let recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, value)) = recent.get(&key)
                && at.elapsed() <= max_age
            {
                return Ok(value.clone());
            }
        }
        let (fut, leader) = {
            let mut map = self.lock_in_flight();
            match map.get(&key) {
                Some(f) => (f.clone(), None),
                None => {
                    let r = req.clone();
                    let deadline = self.deadline;
                    // The deadline is inside the shared call, so every caller waiting on it
                    // is released when it passes, and the call itself is dropped.
                    let f: BoxFuture<'static, _> = async move {
                        let describe = || format!("get key {:?}", r.key);
                        super::with_deadline(deadline, describe, provider.get(&r)).await
                    }
                    .boxed();
                    let shared = f.shared();
                    map.insert(key.clone(), shared.clone());
                    (
                        shared,
                        Some(Leader {
                            layer: self,
                            key: Some(key),
                        }),
                    )
                }
            }
        };
        let result = fut.await;
        if let Some(leader) = leader {
            leader.finish(&result);
        }
        result
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<Key, SharedGet>> {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of values kept for reuse (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Number of calls currently in flight (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        self.lock_in_flight().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::FindQuery;
    use crate::secret::SecretBytes;
    use async_trait::async_trait;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Slow(AtomicUsize);

    #[async_trait]
    impl Provider for Slow {
        async fn get(&self, _: &GetRequest) -> Result<Fetched, ProviderError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok(Fetched::json("v"))
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
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().unwrap().whole().expose() == b"v")
        );
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

    struct Hung;

    #[async_trait]
    impl Provider for Hung {
        async fn get(&self, _: &GetRequest) -> Result<Fetched, ProviderError> {
            futures::future::pending().await
        }
        async fn find(
            &self,
            _: &FindQuery,
        ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
            futures::future::pending().await
        }
        async fn validate(&self) -> Result<Option<String>, ProviderError> {
            futures::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_times_out_for_every_caller_waiting_on_it() {
        let layer = FetchLayer::with_deadline(Duration::from_secs(10));
        let store = StoreIdentity("ns/hung".into());
        let req = GetRequest::new("db", None, Default::default());
        let p: Arc<dyn Provider> = Arc::new(Hung);
        let calls = (0..3).map(|_| layer.get(&store, p.clone(), &req, Duration::ZERO));
        for result in futures::future::join_all(calls).await {
            let err = result.expect_err("a hung provider times out");
            assert!(err.is_timeout(), "{err}");
            assert_eq!(
                err.to_string(),
                "get key \"db\": no answer from the provider within 10s"
            );
        }
        assert_eq!(
            layer.in_flight(),
            0,
            "the timed-out call is not left behind"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_caller_leaves_no_call_behind() {
        let layer = FetchLayer::new();
        let store = StoreIdentity("ns/hung".into());
        let req = GetRequest::new("db", None, Default::default());
        let p: Arc<dyn Provider> = Arc::new(Hung);
        // The caller that started the call gives up (its reconcile was cancelled).
        let cut = tokio::time::timeout(
            Duration::from_secs(1),
            layer.get(&store, p.clone(), &req, Duration::ZERO),
        )
        .await;
        assert!(cut.is_err());
        assert_eq!(layer.in_flight(), 0);
        // A later request starts its own call instead of joining an orphaned one.
        let slow = Arc::new(Slow(AtomicUsize::new(0)));
        let got = layer.get(&store, slow.clone(), &req, Duration::ZERO).await;
        assert_eq!(got.unwrap().whole().expose(), b"v");
        assert_eq!(slow.0.load(Ordering::SeqCst), 1);
    }
}
