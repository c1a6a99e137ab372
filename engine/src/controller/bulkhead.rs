//! One bulkhead per store: a slow or hung store fills only its own.
//!
//! A reconcile waits on remote stores outside its turn ([`super::turns`]): the turn is
//! released for the fetch and taken back for the writes, so the `--concurrent` turns are
//! spent on work the apiserver and the CPU do, never on a provider that does not answer. What
//! bounds provider calls instead is this: at most `limit` reconciles of ExternalSecrets that
//! read a given store fetch from it at once (`--store-concurrency`, by default the same as
//! `--concurrent`); the rest wait for that store in arrival order. A store whose every call
//! hangs until its deadline (`--provider-timeout`) holds its own `limit` fetches and nothing
//! else, so ExternalSecrets on every other store keep their refresh rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{ExternalSecret, SecretStoreRef, StoreKind};

/// The bulkheads, keyed by store (see [`keys`]).
#[derive(Debug)]
pub struct Bulkheads {
    limit: usize,
    stores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Held while fetching: one permit per store the ExternalSecret reads.
#[derive(Debug)]
pub struct Entered {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Bulkheads {
    /// Entries kept before idle ones are swept (stores that were deleted, renamed).
    const SWEEP_ABOVE: usize = 1024;

    /// Bulkheads admitting `limit` fetches per store at once (at least one).
    pub fn new(limit: usize) -> Self {
        Bulkheads {
            limit: limit.max(1),
            stores: Mutex::default(),
        }
    }

    /// Waits until every store in `keys` admits one more fetch. Keys are taken in sorted
    /// order (as [`keys`] returns them), so two reconciles reading the same stores never
    /// wait on each other crosswise. Cancel-safe: a waiter dropped gives up its place.
    pub async fn enter(&self, keys: &[String]) -> Entered {
        let mut permits = Vec::with_capacity(keys.len());
        for key in keys {
            let semaphore = self.semaphore(key);
            // The semaphore is never closed.
            if let Ok(permit) = semaphore.acquire_owned().await {
                permits.push(permit);
            }
        }
        Entered { _permits: permits }
    }

    /// Fetches in progress or waiting for `key`'s store (for tests and metrics): how many of
    /// its `limit` permits are out.
    pub fn busy(&self, key: &str) -> usize {
        self.lock()
            .get(key)
            .map_or(0, |s| self.limit - s.available_permits())
    }

    fn semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut stores = self.lock();
        if stores.len() >= Self::SWEEP_ABOVE && !stores.contains_key(key) {
            // Idle: nobody holds or waits for a permit (the map's own reference is the only one).
            stores.retain(|_, s| Arc::strong_count(s) > 1);
        }
        stores
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Semaphore>>> {
        self.stores.lock().expect("bulkhead lock poisoned")
    }
}

/// The stores `es` fetches from, as bulkhead keys, sorted and without repeats: its
/// `secretStoreRef`, every entry's `sourceRef.storeRef`, and every generator it runs (a
/// generator calls out too: STS, a user plugin).
pub fn keys(es: &ExternalSecret) -> Vec<String> {
    let ns = es.namespace().unwrap_or_default();
    let spec = &es.spec;
    let store_key = |r: &SecretStoreRef| match r.kind() {
        StoreKind::SecretStore => format!("SecretStore/{ns}/{}", r.name),
        StoreKind::ClusterSecretStore => format!("ClusterSecretStore/{}", r.name),
    };
    let mut keys: Vec<String> = Vec::new();
    let mut uses_default = spec.data.is_empty() && spec.data_from.is_empty();
    let sources = spec
        .data
        .iter()
        .map(|d| d.source_ref.as_ref())
        .chain(spec.data_from.iter().map(|d| d.source_ref.as_ref()));
    for source in sources {
        match source {
            Some(s) if s.generator_ref.is_some() => {
                if let Some(g) = &s.generator_ref {
                    keys.push(format!("{}/{ns}/{}", g.kind, g.name));
                }
            }
            Some(s) if s.store_ref.is_some() => {
                if let Some(r) = &s.store_ref {
                    keys.push(store_key(r));
                }
            }
            _ => uses_default = true,
        }
    }
    if uses_default && let Some(r) = &spec.secret_store_ref {
        keys.push(store_key(r));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn es(spec: serde_json::Value) -> ExternalSecret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "es", "namespace": "team"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn keys_name_every_store_and_generator_once_in_order() {
        let e = es(serde_json::json!({
            "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
            "data": [
                {"secretKey": "a", "remoteRef": {"key": "a"}},
                {"secretKey": "b", "remoteRef": {"key": "b"}},
                {"secretKey": "c", "remoteRef": {"key": "c"},
                 "sourceRef": {"storeRef": {"name": "shared", "kind": "ClusterSecretStore"}}},
            ],
            "dataFrom": [
                {"sourceRef": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"}}},
            ],
        }));
        assert_eq!(
            keys(&e),
            [
                "ClusterSecretStore/shared",
                "Password/team/pw",
                "SecretStore/team/aws"
            ]
        );
        // Entries that all name their own source leave the default store out.
        let own = es(serde_json::json!({
            "secretStoreRef": {"name": "aws"},
            "dataFrom": [
                {"sourceRef": {"storeRef": {"name": "other"}}},
            ],
        }));
        assert_eq!(keys(&own), ["SecretStore/team/other"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bulkhead_holds_back_its_own_store_only() {
        let b = Arc::new(Bulkheads::new(2));
        let slow = vec!["SecretStore/a/slow".to_string()];
        let held = [b.enter(&slow).await, b.enter(&slow).await];
        assert_eq!(b.busy("SecretStore/a/slow"), 2);
        // A third fetch from the slow store waits...
        let waiting = {
            let b = b.clone();
            let slow = slow.clone();
            tokio::spawn(async move { b.enter(&slow).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        // ...while another store is admitted at once.
        let other = ["SecretStore/a/fast".to_string()];
        tokio::time::timeout(Duration::from_millis(1), b.enter(&other))
            .await
            .expect("another store is not held back");
        drop(held);
        tokio::time::timeout(Duration::from_millis(1), waiting)
            .await
            .expect("a released permit admits the next fetch")
            .unwrap();
    }
}
