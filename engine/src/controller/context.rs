//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Reporter;

use crate::metrics::Metrics;
use crate::provider::fetch::FetchLayer;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Only watch this namespace (scoped mode); `None` watches the whole cluster.
    pub namespace: Option<String>,
    /// How often stores are re-validated when they do not say.
    pub store_requeue: Duration,
    /// Maximum number of ExternalSecrets reconciled at once.
    pub concurrency: u16,
    /// Delimiters of the Go template engine.
    pub delimiters: crate::template::Delimiters,
}

/// Shared state passed to every reconcile.
pub struct Context {
    /// Kubernetes client (rate-limited, see [`crate::ratelimit`]).
    pub client: Client,
    /// Who we say we are in Events.
    pub reporter: Reporter,
    /// Metrics, registered once at start.
    pub metrics: Arc<Metrics>,
    /// Coalesces identical provider calls across ExternalSecrets.
    pub fetch: FetchLayer,
    /// Consecutive failures per object, for exponential backoff (kube-runtime has none: kube
    /// issue 1916). Reset on success.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Connected providers per store and identity, so credentials (and their STS calls and
    /// TokenRequests) are reused until they expire instead of renewed on every sync.
    pub providers: ProviderCache,
    /// The Wasm plugin host (one engine per process).
    pub plugins: Arc<crate::plugin::PluginHost>,
    /// Command-line settings.
    pub settings: Settings,
}

/// Connected providers keyed by store identity (kind, namespace, name, generation) and
/// credential identity.
#[derive(Default)]
pub struct ProviderCache(Mutex<HashMap<String, Arc<dyn crate::provider::Provider>>>);

impl ProviderCache {
    /// Entries kept before the cache is flushed (stale generations accumulate otherwise).
    const MAX: usize = 4096;

    /// The cached provider for `key`, or `fresh` (which is then cached).
    pub fn get_or_insert(
        &self,
        key: String,
        fresh: Arc<dyn crate::provider::Provider>,
    ) -> Arc<dyn crate::provider::Provider> {
        let mut map = self.0.lock().expect("provider cache lock poisoned");
        if map.len() >= Self::MAX && !map.contains_key(&key) {
            map.clear();
        }
        map.entry(key).or_insert(fresh).clone()
    }
}

impl Context {
    /// Records a failure for `key` and returns how many there have been in a row.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut f = self.failures.lock().expect("failure map lock poisoned");
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets failures for `key` after a success.
    pub fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .expect("failure map lock poisoned")
            .remove(key);
    }
}
