//! ESO's controller classes: `--controller-class` names this controller's class (ESO's default,
//! `default`); a store's `spec.controller` names the class that serves it, and an empty one is
//! served by every controller (ESO's `ShouldProcessStore`).
//!
//! What a store of another class means, as in ESO:
//! - the store is not validated here (no status, no event);
//! - an ExternalSecret that reads it is left alone (no finalizer, status, event or Secret),
//!   while it is not being deleted;
//! - a PushSecret does not push to it (ESO drops such stores from the list).
//!
//! It lets esox run beside upstream ESO (or a second esox) on one cluster: each controller
//! syncs what reads its own stores, and a store moves from one to the other by its
//! `spec.controller` alone. An ExternalSecret left alone because of a store is reconciled
//! again as soon as that store turns to this controller's class ([`ForeignStores`]).
//!
//! Unlike ESO, a generator's own `spec.controller` is not consulted: esox reads generators
//! only when it generates, and does not watch them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use kube::ResourceExt as _;
use kube::runtime::watcher;

use super::cache::Caches;
use super::context::Context;
use crate::api::{ClusterSecretStore, ExternalSecret, SecretStore, SecretStoreSpec};

/// ESO's default `--controller-class`.
pub const DEFAULT: &str = "default";

/// This controller's class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerClass(Arc<str>);

impl Default for ControllerClass {
    fn default() -> Self {
        ControllerClass(DEFAULT.into())
    }
}

impl ControllerClass {
    /// The class `name` (empty: ESO's default).
    pub fn new(name: &str) -> Self {
        if name.is_empty() {
            Self::default()
        } else {
            ControllerClass(name.into())
        }
    }

    /// Its name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a store whose `spec.controller` is `declared` is this controller's: no class,
    /// or this one.
    pub fn serves(&self, declared: Option<&str>) -> bool {
        match declared {
            None | Some("") => true,
            Some(c) => c == &*self.0,
        }
    }

    /// Whether this controller serves the store `spec`.
    pub fn serves_store(&self, spec: &SecretStoreSpec) -> bool {
        self.serves(spec.controller.as_deref())
    }

    /// The first store `es` reads that belongs to another class, as its bulkhead key
    /// (`SecretStore/<ns>/<name>`, `ClusterSecretStore/<name>`), from the watch caches. A
    /// store not in the cache (not created yet, or the caches still filling) is no reason to
    /// leave `es` alone, as in ESO, where a missing store is skipped by the check.
    pub fn foreign_store(&self, es: &ExternalSecret, caches: &Caches) -> Option<String> {
        let ns = es.namespace().unwrap_or_default();
        super::bulkhead::keys(es).into_iter().find(|key| {
            let declared = if let Some(name) = key
                .strip_prefix("SecretStore/")
                .and_then(|rest| rest.strip_prefix(&format!("{ns}/")))
            {
                caches
                    .secret_store(&ns, name)
                    .and_then(|s| s.spec.controller.clone())
            } else if let Some(name) = key.strip_prefix("ClusterSecretStore/") {
                caches
                    .cluster_store(name)
                    .and_then(|s| s.spec.controller.clone())
            } else {
                // A generator.
                None
            };
            !self.serves(declared.as_deref())
        })
    }
}

/// The stores of another class that ExternalSecrets were left alone for, by bulkhead key. When
/// the store watch sees one of them turn to this controller's class, the ExternalSecrets that
/// read it are reconciled at once (through the same path as a store turning Ready).
#[derive(Debug, Default)]
pub struct ForeignStores(Mutex<HashSet<String>>);

impl ForeignStores {
    /// Remembers that an ExternalSecret was left alone for the store `key`.
    pub fn left_alone_for(&self, key: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key);
    }

    /// The store `key` is seen with a class this controller serves (or is gone): whether
    /// ExternalSecrets were left alone for it, which are then due now.
    pub fn served_now(&self, key: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key)
    }
}

/// A store kind, as the watch hook sees it.
pub trait StoreObject: kube::Resource {
    /// Its bulkhead key (`SecretStore/<ns>/<name>`, `ClusterSecretStore/<name>`).
    fn key(&self) -> String;
    /// Its spec.
    fn store_spec(&self) -> &SecretStoreSpec;
}

impl StoreObject for SecretStore {
    fn key(&self) -> String {
        format!(
            "SecretStore/{}/{}",
            self.namespace().unwrap_or_default(),
            self.name_any()
        )
    }
    fn store_spec(&self) -> &SecretStoreSpec {
        &self.spec
    }
}

impl StoreObject for ClusterSecretStore {
    fn key(&self) -> String {
        format!("ClusterSecretStore/{}", self.name_any())
    }
    fn store_spec(&self) -> &SecretStoreSpec {
        &self.spec
    }
}

/// The store watch's side of [`ForeignStores`], for `.inspect` after the store reflector: a
/// store ExternalSecrets were left alone for, seen with this controller's class (or deleted),
/// wakes them.
pub fn watch_hook<K: StoreObject>(
    ctx: Arc<Context>,
) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) {
    move |event| {
        let (store, gone) = match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => (s, false),
            Ok(watcher::Event::Delete(s)) => (s, true),
            _ => return,
        };
        let key = store.key();
        if (gone || ctx.settings.class.serves_store(store.store_spec()))
            && ctx.foreign_stores.served_now(&key)
        {
            ctx.store_ready(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_without_a_class_is_everyones_as_in_eso() {
        let default = ControllerClass::default();
        let other = ControllerClass::new("esox");
        for class in [&default, &other] {
            assert!(class.serves(None));
            assert!(class.serves(Some("")));
        }
        assert!(default.serves(Some("default")));
        assert!(!default.serves(Some("esox")));
        assert!(other.serves(Some("esox")));
        assert!(!other.serves(Some("default")));
        assert_eq!(
            ControllerClass::new(""),
            default,
            "an empty flag is the default"
        );
    }

    #[test]
    fn foreign_stores_fire_once() {
        let f = ForeignStores::default();
        assert!(!f.served_now("SecretStore/ns/a"));
        f.left_alone_for("SecretStore/ns/a".into());
        f.left_alone_for("SecretStore/ns/a".into());
        assert!(f.served_now("SecretStore/ns/a"));
        assert!(!f.served_now("SecretStore/ns/a"));
    }
}
