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
use std::sync::{Mutex, OnceLock};

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
}

impl Caches {
    /// A SecretStore from the cache.
    pub fn secret_store(&self, namespace: &str, name: &str) -> Option<SecretStore> {
        self.secret_stores
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| (*s).clone())
    }

    /// A ClusterSecretStore from the cache.
    pub fn cluster_store(&self, name: &str) -> Option<ClusterSecretStore> {
        self.cluster_stores
            .as_ref()?
            .get(&ObjectRef::new(name))
            .map(|s| (*s).clone())
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
                    },
                );
            }
            _ => {
                map.remove(&key);
            }
        }
    }

    /// The Secret as a plan can use it, from its cached metadata, when esox knows that
    /// version: `type` and `immutable` filled in, no data.
    pub fn view(&self, meta: &PartialObjectMeta<Secret>) -> Option<Secret> {
        let key = (meta.namespace().unwrap_or_default(), meta.name_any());
        let map = self.lock();
        let known = map.get(&key)?;
        (meta.metadata.resource_version.as_deref() == Some(known.resource_version.as_str())).then(
            || Secret {
                metadata: meta.metadata.clone(),
                type_: known.type_.clone(),
                immutable: known.immutable,
                ..Default::default()
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

/// A status esox wrote that the ExternalSecret cache may not show yet.
#[derive(Debug, Clone)]
struct Written {
    /// The versions the cache may still hold from before the write.
    before: Vec<String>,
    /// The version the write made.
    after: String,
    status: ExternalSecretStatus,
}

/// Statuses esox wrote, until the watch delivers them.
#[derive(Debug, Default)]
pub struct WrittenStatus(Mutex<HashMap<ObjectRef<ExternalSecret>, Written>>);

impl WrittenStatus {
    /// Remembers that the object was at one of `before` and esox's status write made
    /// `written` (the apiserver's answer).
    pub fn record(&self, before: Vec<String>, written: &ExternalSecret) {
        let (Some(after), Some(status)) = (written.resource_version(), written.status.clone())
        else {
            return;
        };
        self.lock().insert(
            ObjectRef::from_obj(written),
            Written {
                before,
                after,
                status,
            },
        );
    }

    /// `es` as the apiserver has it after esox's last write: the cached object itself when
    /// the cache has caught up (or moved past, by someone else's change), else the cached
    /// object with the status esox wrote.
    pub fn overlay(&self, es: &ExternalSecret) -> Option<ExternalSecret> {
        let key = ObjectRef::from_obj(es);
        let mut map = self.lock();
        let written = map.get(&key)?;
        let rv = es.resource_version().unwrap_or_default();
        if !written.before.contains(&rv) {
            // Caught up (rv == after) or newer than our write: the cache is the truth now.
            map.remove(&key);
            return None;
        }
        let mut fresh = es.clone();
        fresh.status = Some(written.status.clone());
        fresh.metadata.resource_version = Some(written.after.clone());
        Some(fresh)
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
        memo.record(vec!["1".into(), "2".into()], &es("3", Some("1-x")));
        for stale in ["1", "2"] {
            let seen = memo.overlay(&es(stale, None)).expect("stale cache");
            assert_eq!(seen.resource_version().as_deref(), Some("3"));
            assert_eq!(
                seen.status.unwrap().synced_resource_version.as_deref(),
                Some("1-x")
            );
        }
        assert!(memo.overlay(&es("3", Some("1-x"))).is_none(), "caught up");
        assert!(
            memo.overlay(&es("1", None)).is_none(),
            "forgotten once caught up"
        );
        memo.record(vec!["4".into()], &es("5", Some("2-x")));
        assert!(
            memo.overlay(&es("6", None)).is_none(),
            "a newer change wins"
        );
    }
}
