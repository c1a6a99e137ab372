//! What a reconcile reads instead of asking the apiserver: the watch caches, and what esox
//! itself wrote since they last caught up.
//!
//! The request budget of a reconcile (docs/architecture.md, "Request budget") rests on three
//! things here:
//! - [`Caches`]: the reflector stores of SecretStores, ClusterSecretStores and the managed
//!   Secrets' metadata, filled by the watches [`super::run`] already makes;
//! - [`KnownTargets`]: for each managed Secret, the resourceVersion at which esox last saw
//!   its data hash to the data-hash annotation (it wrote that version, or read it and
//!   checked). At that version the metadata in the cache says everything a plan needs, so a
//!   refresh that changes nothing reads no Secret; any other version (an edit, a restore) is
//!   read in full once;
//! - [`WrittenStatus`]: the status esox just wrote, until the ExternalSecret watch delivers
//!   it. Status writes are filtered out of the reconcile triggers, and a Secret event right
//!   after a sync would otherwise see the cached object from before it, refresh again and
//!   call the provider twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{ClusterSecretStore, ExternalSecret, ExternalSecretStatus, SecretStore};

/// The reflector stores a reconcile reads (set once, by [`super::run`], before the first
/// reconcile).
pub struct Caches {
    /// SecretStores (in the watched namespace, or all).
    pub secret_stores: Store<SecretStore>,
    /// ClusterSecretStores; `None` in namespaced mode, which does not watch them.
    pub cluster_stores: Option<Store<ClusterSecretStore>>,
    /// The metadata of Secrets labelled as managed.
    pub targets: Store<PartialObjectMeta<Secret>>,
    /// ExternalSecrets: the controller's own reflector.
    pub external_secrets: Store<ExternalSecret>,
}

impl Caches {
    /// A SecretStore from the cache.
    pub fn secret_store(&self, namespace: &str, name: &str) -> Option<Arc<SecretStore>> {
        self.secret_stores
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// A ClusterSecretStore from the cache.
    pub fn cluster_store(&self, name: &str) -> Option<Arc<ClusterSecretStore>> {
        self.cluster_stores.as_ref()?.get(&ObjectRef::new(name))
    }

    /// An ExternalSecret as the cache has it now: a reconcile is handed the object as it was
    /// when it was queued, and may wait a while for its turn (see [`WrittenStatus::observed`]).
    pub fn external_secret(&self, key: &ObjectRef<ExternalSecret>) -> Option<Arc<ExternalSecret>> {
        self.external_secrets.get(key)
    }

    /// A managed Secret's metadata from the cache.
    pub fn target(&self, namespace: &str, name: &str) -> Option<PartialObjectMeta<Secret>> {
        self.targets
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| (*s).clone())
    }
}

/// Where [`Caches`] live in the [`super::context::Context`].
pub type CacheSlot = OnceLock<Caches>;

/// What esox knows about a managed Secret at one resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTarget {
    /// The version esox wrote or read.
    pub resource_version: String,
    /// Its `type`.
    pub type_: Option<String>,
    /// Its `immutable`.
    pub immutable: Option<bool>,
    /// The label and annotation keys esox's field manager owns at that version (from its
    /// `managedFields`, which the metadata cache does not keep: see [`strip_managed_fields`]).
    pub managed: super::target::ManagedMetaKeys,
}

/// Drops `metadata.managedFields` from a managed Secret's cached metadata. They are most of
/// what the cache would hold (the apiserver's field sets are nested JSON maps: about 4 KiB
/// per Secret, 20 MB at 5000), and the one thing a plan needs from them, the label and
/// annotation keys esox owns, is kept in [`KnownTarget::managed`] for the version esox
/// knows; any other version is read in full anyway.
pub fn strip_managed_fields(meta: &mut PartialObjectMeta<Secret>) {
    meta.metadata.managed_fields = None;
}

/// Managed Secrets whose data esox knows to match their data-hash annotation, by namespace and
/// name.
#[derive(Debug, Default)]
pub struct KnownTargets(Mutex<HashMap<(String, String), KnownTarget>>);

impl KnownTargets {
    /// Remembers `secret` (written by esox, or read in full) when its data hashes to its
    /// data-hash annotation, and forgets its name otherwise.
    pub fn observe(&self, secret: &Secret) {
        let key = (secret.namespace().unwrap_or_default(), secret.name_any());
        let valid = secret
            .annotations()
            .get(super::target::DATA_HASH_ANNOTATION)
            .is_some_and(|h| {
                *h == super::target::data_hash(&secret.data.clone().unwrap_or_default())
            });
        let mut map = self.lock();
        match (valid, secret.resource_version()) {
            (true, Some(rv)) => {
                map.insert(
                    key,
                    KnownTarget {
                        resource_version: rv,
                        type_: secret.type_.clone(),
                        immutable: secret.immutable,
                        managed: super::target::ManagedMetaKeys::of(secret),
                    },
                );
            }
            _ => {
                map.remove(&key);
            }
        }
    }

    /// The Secret as a plan can use it, from its cached metadata, when esox knows that
    /// version: `type`, `immutable` and esox's managed fields filled in, no data.
    pub fn view(&self, meta: &PartialObjectMeta<Secret>) -> Option<Secret> {
        let key = (meta.namespace().unwrap_or_default(), meta.name_any());
        let map = self.lock();
        let known = map.get(&key)?;
        (meta.metadata.resource_version.as_deref() == Some(known.resource_version.as_str())).then(
            || {
                let mut metadata = meta.metadata.clone();
                metadata.managed_fields = known.managed.entries();
                Secret {
                    metadata,
                    type_: known.type_.clone(),
                    immutable: known.immutable,
                    ..Default::default()
                }
            },
        )
    }

    /// Forgets a Secret (it was deleted).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), KnownTarget>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A write esox made to an ExternalSecret that the cache may not show yet.
#[derive(Debug, Clone)]
struct Written {
    /// The versions the cache may still hold from before the write (every version since the
    /// one the reconcile started from: a finalizer patch and a status patch are two writes).
    before: Vec<String>,
    /// The version the last write made.
    after: String,
    /// The status at `after`.
    status: Option<ExternalSecretStatus>,
    /// The finalizers at `after` (the cleanup finalizer esox added).
    finalizers: Option<Vec<String>>,
}

/// How many versions before esox's last write [`WrittenStatus`] keeps as stale.
const STALE_VERSIONS: usize = 4;

/// ExternalSecrets esox wrote (an added finalizer, a status), until the watch delivers the
/// write. The ExternalSecret watch is one stream for every object, so in a cold sync it can
/// lag the writes by seconds; a reconcile in that window must plan from what esox wrote, not
/// from the older cached object, or it refreshes again and writes the status a second time.
#[derive(Debug, Default)]
pub struct WrittenStatus(Mutex<HashMap<ObjectRef<ExternalSecret>, Written>>);

impl WrittenStatus {
    /// Remembers that esox's write took the object from `before` (the version the write was
    /// made against) to `written` (the apiserver's answer). When `before` is what esox's
    /// previous write made, the versions from before that one stay stale too; otherwise
    /// `before` came from the cache, which is then past them.
    pub fn record(&self, before: Option<String>, written: &ExternalSecret) {
        let Some(after) = written.resource_version() else {
            return;
        };
        let key = ObjectRef::from_obj(written);
        let mut map = self.lock();
        let mut stale = match map.remove(&key) {
            Some(w) if before.as_ref() == Some(&w.after) => w.before,
            _ => Vec::new(),
        };
        stale.extend(before);
        stale.retain(|v| *v != after);
        // The watch lags by a few writes at most; an entry the watch delivered before the
        // write's answer came back lingers, and must not grow with every refresh.
        let excess = stale.len().saturating_sub(STALE_VERSIONS);
        stale.drain(..excess);
        map.insert(
            key,
            Written {
                before: stale,
                after,
                status: written.status.clone(),
                finalizers: written.metadata.finalizers.clone(),
            },
        );
    }

    /// `es` as the apiserver has it after esox's last write, when `es` is a version from
    /// before it (the cache has not caught up); `None` when `es` is the truth.
    pub fn overlay(&self, es: &ExternalSecret) -> Option<ExternalSecret> {
        let key = ObjectRef::from_obj(es);
        let map = self.lock();
        let written = map.get(&key)?;
        let rv = es.resource_version().unwrap_or_default();
        if !written.before.contains(&rv) {
            return None;
        }
        let mut fresh = es.clone();
        fresh.status = written.status.clone();
        fresh.metadata.finalizers = written.finalizers.clone();
        fresh.metadata.resource_version = Some(written.after.clone());
        Some(fresh)
    }

    /// The watch delivered `es`: once that is a version from after esox's write (the write
    /// itself, or someone's change since), the cache is the truth and the memo goes. Only the
    /// watch may say so, and a reconcile plans from the cache's object once it has its turn
    /// ([`Caches::external_secret`]), never from the older copy it was queued with.
    pub fn observed(&self, es: &ExternalSecret) {
        let key = ObjectRef::from_obj(es);
        let mut map = self.lock();
        if let Some(written) = map.get(&key)
            && !written
                .before
                .contains(&es.resource_version().unwrap_or_default())
        {
            map.remove(&key);
        }
    }

    /// Forgets an ExternalSecret (it was deleted).
    pub fn forget(&self, key: &ObjectRef<ExternalSecret>) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ExternalSecret>, Written>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(rv: &str, value: &[u8], hash_of: &[u8]) -> Secret {
        let hash = super::super::target::data_hash(
            &[("k".to_string(), ByteString(hash_of.to_vec()))].into(),
        );
        Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                annotations: Some(
                    [(super::super::target::DATA_HASH_ANNOTATION.to_string(), hash)].into(),
                ),
                ..Default::default()
            },
            data: Some([("k".to_string(), ByteString(value.to_vec()))].into()),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    fn meta(s: &Secret) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            types: None,
            metadata: s.metadata.clone(),
            _phantom: Default::default(),
        }
    }

    #[test]
    fn a_known_version_is_served_from_the_cache_and_any_other_is_not() {
        let known = KnownTargets::default();
        let written = secret("10", b"v", b"v");
        known.observe(&written);
        let view = known.view(&meta(&written)).expect("the version esox wrote");
        assert!(view.data.is_none());
        assert_eq!(view.type_.as_deref(), Some("Opaque"));
        // Someone edited it: another version, read in full next time.
        assert!(known.view(&meta(&secret("11", b"x", b"v"))).is_none());
        // Read in full and found edited under the annotation: not known any more.
        known.observe(&secret("11", b"x", b"v"));
        assert!(known.view(&meta(&written)).is_none());
        known.observe(&written);
        known.forget("ns", "s");
        assert!(known.view(&meta(&written)).is_none());
    }

    #[test]
    fn the_written_status_stands_in_until_the_cache_catches_up() {
        let es = |rv: &str, synced: Option<&str>| -> ExternalSecret {
            let mut es: ExternalSecret = serde_json::from_value(serde_json::json!({
                "apiVersion": "external-secrets.io/v1",
                "kind": "ExternalSecret",
                "metadata": {"name": "es", "namespace": "ns", "resourceVersion": rv},
                "spec": {"secretStoreRef": {"name": "store"}, "target": {}},
            }))
            .unwrap();
            es.status = synced.map(|v| ExternalSecretStatus {
                synced_resource_version: Some(v.into()),
                ..Default::default()
            });
            es
        };
        let memo = WrittenStatus::default();
        // A finalizer patch (1 → 2), then a status patch (2 → 3).
        memo.record(Some("1".into()), &es("2", None));
        memo.record(Some("2".into()), &es("3", Some("1-x")));
        for stale in ["1", "2"] {
            let seen = memo.overlay(&es(stale, None)).expect("stale cache");
            assert_eq!(seen.resource_version().as_deref(), Some("3"));
            assert_eq!(
                seen.status.unwrap().synced_resource_version.as_deref(),
                Some("1-x")
            );
        }
        assert!(memo.overlay(&es("3", Some("1-x"))).is_none(), "caught up");
        // The watch delivering the finalizer's version is not catching up with the status.
        memo.observed(&es("2", None));
        assert!(memo.overlay(&es("1", None)).is_some(), "still stale");
        memo.observed(&es("3", Some("1-x")));
        assert!(
            memo.overlay(&es("1", None)).is_none(),
            "forgotten once the watch delivered the write"
        );
        // The watch was quicker than the writes' answers: the memo lingers, bounded.
        for v in 3..20 {
            memo.record(Some(v.to_string()), &es(&(v + 1).to_string(), Some("1-y")));
        }
        assert!(memo.overlay(&es("19", None)).is_some());
        assert!(memo.overlay(&es("16", None)).is_some());
        assert!(
            memo.overlay(&es("15", None)).is_none(),
            "at most four stale versions"
        );
        memo.record(Some("4".into()), &es("5", Some("2-x")));
        assert!(
            memo.overlay(&es("6", None)).is_none(),
            "a newer change wins"
        );
        memo.observed(&es("6", None));
        assert!(memo.overlay(&es("4", None)).is_none());
        // The finalizer esox added shows through a cache from before it.
        let mut with_finalizer = es("8", None);
        with_finalizer.metadata.finalizers = Some(vec!["f".into()]);
        memo.record(Some("7".into()), &with_finalizer);
        let seen = memo.overlay(&es("7", None)).expect("stale");
        assert_eq!(seen.metadata.finalizers, Some(vec!["f".to_string()]));
    }
}
