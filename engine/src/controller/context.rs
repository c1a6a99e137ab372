//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::events::{Event, EventType, Recorder, Reporter};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::reflector::ObjectRef;

use crate::api::ExternalSecret;
use crate::metrics::Metrics;
use crate::provider::fetch::FetchLayer;

/// Who esox says it is in Events: ESO's controller name, so dashboards and `kubectl get
/// events --field-selector` written for ESO keep working.
pub const EVENT_CONTROLLER: &str = "external-secrets";

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
    /// How long one provider call (a fetch, a search, connecting to a store, a generator,
    /// a store validation) may take before it is cancelled and reported; zero: no limit.
    pub provider_timeout: Duration,
    /// How many reconciles may fetch from one store at once (0: as many as `concurrency`);
    /// see [`super::bulkhead`].
    pub store_concurrency: u16,
    /// Which controllers run (ESO's `--enable-*-reconciler` flags and flood gate).
    pub switches: super::switches::Switches,
    /// ESO's `--controller-class`: which stores are this controller's (see [`super::class`]).
    pub class: super::class::ControllerClass,
}

impl Settings {
    /// `--provider-timeout`'s default: longer than a throttled store's own retries (the AWS
    /// SDK's backoff under throttling ran past 30 s in `tests/tests/aws_access.rs`, and a
    /// throttled store must keep its synced Secrets Ready), short enough that a store that
    /// does not answer at all is reported and lets go of its bulkhead within a few refreshes.
    pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(120);
}

/// Shared state passed to every reconcile.
pub struct Context {
    /// Kubernetes client (rate-limited, see [`crate::ratelimit`]).
    pub client: Client,
    /// Publishes Events. One for the process: kube's recorder turns repeats of one Event
    /// into a series (one object with a count) only across the calls it has seen, so a
    /// recorder per reconcile would write a new Event on every retry.
    pub recorder: Recorder,
    /// Metrics, registered once at start.
    pub metrics: Arc<Metrics>,
    /// Coalesces identical provider calls across ExternalSecrets.
    pub fetch: FetchLayer,
    /// Consecutive failures per object, for exponential backoff (kube-runtime has none: kube
    /// issue 1916). Reset on success.
    pub failures: Mutex<HashMap<ObjectRef<ExternalSecret>, u32>>,
    /// Connected providers per store and identity, so credentials (and their STS calls and
    /// TokenRequests) are reused until they expire instead of renewed on every sync.
    pub providers: ProviderCache,
    /// The Wasm plugin host (one engine per process).
    pub plugins: Arc<crate::plugin::PluginHost>,
    /// Command-line settings.
    pub settings: Settings,
    /// The watch caches reconciles read (set by [`super::run`]).
    pub caches: super::cache::CacheSlot,
    /// Managed Secret versions whose data esox knows.
    pub known_targets: super::cache::KnownTargets,
    /// Status writes the ExternalSecret cache may not show yet.
    pub written_status: super::cache::WrittenStatus,
    /// Who reconciles next, `concurrency` at a time (see [`super::turns`]).
    pub turns: Arc<super::turns::Turns>,
    /// Fetches per store (see [`super::bulkhead`]).
    pub bulkheads: super::bulkhead::Bulkheads,
    /// Stores that just became Ready, by bulkhead key ([`super::bulkhead::keys`]): the
    /// ExternalSecrets reading them are reconciled at once (see [`super::run`]).
    pub stores_ready: tokio::sync::broadcast::Sender<String>,
    /// Stores of another controller class that ExternalSecrets were left alone for.
    pub foreign_stores: super::class::ForeignStores,
    /// Rollout restarts: what is known restarted, the Reloader mode (see [`super::rollout`]).
    pub rollout: super::rollout::Rollouts,
    /// `--shard-mode`: which ExternalSecrets and PushSecrets this replica owns (unset: all).
    pub shard: std::sync::OnceLock<Arc<crate::shard::Shard>>,
    /// Whether this replica does the leader-only work (store validation, ClusterExternalSecrets,
    /// ClusterPushSecrets); without sharding, every running controller leads.
    pub leader: crate::leader::Leadership,
}

/// Connected providers keyed by store (kind, namespace, name, generation) and the namespace
/// its references resolve in, so credentials (and their STS calls and TokenRequests) are
/// reused until they expire instead of renewed on every sync.
///
/// The key is known before anything is built: a hit reads no Secret and builds no SDK
/// client. What the key cannot see — the contents of the Secrets a store's `auth` names — is
/// re-read every [`ProviderCache::RECHECK`]: the entry is rebuilt, and kept (with its
/// credential cache) when it still authenticates as the same identity, so rotated static
/// keys are picked up within that time.
#[derive(Default)]
pub struct ProviderCache(Mutex<HashMap<String, CachedProvider>>);

struct CachedProvider {
    provider: Arc<dyn crate::provider::Provider>,
    identity: String,
    checked: Instant,
}

impl ProviderCache {
    /// Entries kept before the cache is flushed (stale generations accumulate otherwise).
    const MAX: usize = 4096;
    /// How long an entry is used before its credentials' sources are read again.
    pub const RECHECK: Duration = Duration::from_secs(60);

    /// The provider cached under `key` with the identity it authenticates as, or what
    /// `build` makes (which is then cached).
    pub async fn get_or_try_insert_with<F, Fut, E>(
        &self,
        key: String,
        build: F,
    ) -> Result<(Arc<dyn crate::provider::Provider>, String), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(Arc<dyn crate::provider::Provider>, String), E>>,
    {
        if let Some(hit) = self.lock().get(&key)
            && hit.checked.elapsed() < Self::RECHECK
        {
            return Ok((hit.provider.clone(), hit.identity.clone()));
        }
        let (fresh, identity) = build().await?;
        let mut map = self.lock();
        if map.len() >= Self::MAX && !map.contains_key(&key) {
            map.clear();
        }
        let entry = map.entry(key).or_insert_with(|| CachedProvider {
            provider: fresh.clone(),
            identity: identity.clone(),
            checked: Instant::now(),
        });
        if entry.identity != identity {
            entry.provider = fresh;
            entry.identity = identity;
        }
        entry.checked = Instant::now();
        Ok((entry.provider.clone(), entry.identity.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedProvider>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Context {
    /// The shared state of one controller process. `client` should be rate-limited (see
    /// [`crate::ratelimit`]); `instance` names this replica in Events (the pod name).
    pub fn new(
        client: Client,
        instance: Option<String>,
        plugins: Arc<crate::plugin::PluginHost>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Arc<Context> {
        let reporter = Reporter {
            controller: EVENT_CONTROLLER.into(),
            instance,
        };
        let turns = super::turns::Turns::new(usize::from(settings.concurrency.max(1)));
        let per_store = match settings.store_concurrency {
            0 => settings.concurrency,
            n => n,
        };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            fetch: FetchLayer::with_deadline(settings.provider_timeout),
            turns,
            bulkheads: super::bulkhead::Bulkheads::new(usize::from(per_store)),
            stores_ready: tokio::sync::broadcast::channel(256).0,
            foreign_stores: Default::default(),
            failures: Mutex::default(),
            providers: ProviderCache::default(),
            plugins,
            settings,
            caches: Default::default(),
            known_targets: Default::default(),
            written_status: Default::default(),
            rollout: Default::default(),
            shard: Default::default(),
            leader: Default::default(),
        })
    }

    /// Publishes an Event about `object` (failures are logged, never fatal). The note is cut
    /// to the 1 kB Kubernetes allows, on a character boundary.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, MAX_NOTE).to_string()),
            action: action.into(),
            secondary: None,
        };
        // The recorder aggregates repeats per object, comparing the whole reference: without
        // the resource version (which every status write changes), or no repeat would match.
        let object = ObjectReference {
            resource_version: None,
            ..object.clone()
        };
        if let Err(e) = self.recorder.publish(&ev, &object).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Claims `namespace/name` of `kind` for a reconcile, or says why another replica has it
    /// (`--shard-mode`; a `NotReady` refusal is asked again by the next hand-over). Without
    /// sharding, always a claim.
    pub fn claim(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<crate::shard::Claim, crate::shard::Refusal> {
        match self.shard.get() {
            None => Ok(crate::shard::Claim::unsharded()),
            Some(shard) => shard.claim(kind, namespace, name),
        }
    }

    /// Says that the store with bulkhead key `key` became Ready.
    pub fn store_ready(&self, key: String) {
        // No receiver: the ExternalSecret controller is not running (a test, a store-only run).
        let _ = self.stores_ready.send(key);
    }

    /// Records a failure for `key` and returns how many there have been in a row.
    pub fn record_failure(&self, key: &ObjectRef<ExternalSecret>) -> u32 {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = f.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets failures for `key` after a success.
    pub fn record_success(&self, key: &ObjectRef<ExternalSecret>) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// The most an Event note may hold, in bytes.
const MAX_NOTE: usize = 1024;

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait::async_trait]
    impl crate::provider::Provider for Nothing {
        async fn get(
            &self,
            _: &crate::provider::GetRequest,
        ) -> Result<crate::provider::Fetched, crate::provider::ProviderError> {
            Err(crate::provider::ProviderError::Unsupported("test".into()))
        }
        async fn find(
            &self,
            _: &crate::provider::FindQuery,
        ) -> Result<
            std::collections::BTreeMap<String, crate::secret::SecretBytes>,
            crate::provider::ProviderError,
        > {
            Err(crate::provider::ProviderError::Unsupported("test".into()))
        }
        async fn validate(&self) -> Result<Option<String>, crate::provider::ProviderError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_cache_hit_builds_nothing_and_a_recheck_keeps_the_same_identity() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let cache = ProviderCache::default();
        let builds = AtomicU32::new(0);
        let build = |identity: &'static str| {
            builds.fetch_add(1, Ordering::SeqCst);
            let p: Arc<dyn crate::provider::Provider> = Arc::new(Nothing);
            async move { Ok::<_, ()>((p, identity.to_string())) }
        };
        let (first, id) = cache
            .get_or_try_insert_with("store".into(), || build("a"))
            .await
            .unwrap();
        assert_eq!(id, "a");
        for _ in 0..5 {
            let (again, _) = cache
                .get_or_try_insert_with("store".into(), || build("a"))
                .await
                .unwrap();
            assert!(Arc::ptr_eq(&first, &again));
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1, "hits build nothing");

        // Past the recheck: rebuilt; the same identity keeps the first provider (and its
        // credential cache), another identity replaces it.
        cache.lock().get_mut("store").unwrap().checked -= ProviderCache::RECHECK;
        let (kept, _) = cache
            .get_or_try_insert_with("store".into(), || build("a"))
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &kept));
        cache.lock().get_mut("store").unwrap().checked -= ProviderCache::RECHECK;
        let (rotated, id) = cache
            .get_or_try_insert_with("store".into(), || build("b"))
            .await
            .unwrap();
        assert_eq!(id, "b");
        assert!(!Arc::ptr_eq(&first, &rotated));
        assert_eq!(builds.load(Ordering::SeqCst), 3);

        // A failed build is not cached.
        let failed = cache
            .get_or_try_insert_with("other".into(), || async {
                Err::<(Arc<dyn crate::provider::Provider>, String), _>("no")
            })
            .await;
        assert!(failed.is_err());
        assert!(cache.lock().get("other").is_none());
    }

    #[test]
    fn notes_are_cut_to_1kb_on_a_character_boundary() {
        assert_eq!(truncate("short", MAX_NOTE), "short");
        let ascii = "a".repeat(2000);
        assert_eq!(truncate(&ascii, MAX_NOTE).len(), 1024);
        // 3-byte characters: 1024 is not a boundary, 1023 is.
        let wide = "€".repeat(1000);
        let cut = truncate(&wide, MAX_NOTE);
        assert_eq!(cut.len(), 1023);
        assert!(cut.chars().all(|c| c == '€'));
    }
}
