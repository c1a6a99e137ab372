//! The Fake provider (`spec.provider.fake`): static data declared in the store, as in ESO.
//!
//! Used for demos and tests, and as the reference for provider semantics: a key answers only
//! to the version it declares (no version answers to none), a missing key is ESO's
//! `NoSecretErr`, and `find` matches names by regular expression and path prefix.
//!
//! PushSecret: a push stores the value in memory, shared by every Fake provider built for the
//! same store object (kind, namespace and name) in this process, so an ExternalSecret on the
//! same store reads back what was pushed and two stores with equal specs do not share it (ESO
//! keeps it per store name in the provider; esox adds the kind and namespace, so SecretStores
//! of one name in two namespaces stay apart). A key declared in the store's `data` was not
//! pushed: overwriting it is refused as not managed. A `property` push merges into a JSON
//! object; an unchanged value is not rewritten.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use regex::Regex;

use super::push::merge_property;
use super::{
    Capabilities, Fetched, FindQuery, GetRequest, Provider, ProviderError, PushOutcome,
    PushSecretData, SourceSecret,
};
use crate::api::FakeProvider as FakeSpec;
use crate::secret::SecretBytes;

type Pushed = Arc<Mutex<BTreeMap<String, SecretBytes>>>;

/// Pushed values per store object (`SecretStore/<ns>/<name>`, `ClusterSecretStore/<name>`),
/// shared by every provider built for it (a changed spec keeps what was pushed, as in ESO).
static PUSHED: LazyLock<Mutex<HashMap<String, Pushed>>> = LazyLock::new(Default::default);

/// Serves a store's declared data and what was pushed to it.
pub struct FakeProvider {
    entries: Vec<(String, Option<String>, SecretBytes)>,
    pushed: Pushed,
}

impl FakeProvider {
    /// Builds the provider for the store object `store` (see [`crate::provider::BuildContext::for_store`]):
    /// what is pushed is shared with every provider built for that store.
    pub fn for_store(spec: &FakeSpec, store: &str) -> Self {
        let pushed = PUSHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(store.to_string())
            .or_default()
            .clone();
        FakeProvider {
            pushed,
            ..Self::new(spec)
        }
    }

    /// Builds the provider from the store spec alone: what is pushed stays in this provider.
    pub fn new(spec: &FakeSpec) -> Self {
        let entries = spec
            .data
            .iter()
            .map(|d| {
                let value = if d.value_map.is_empty() {
                    SecretBytes::from(d.value.clone())
                } else {
                    SecretBytes::new(serde_json::to_vec(&d.value_map).unwrap_or_default())
                };
                (
                    d.key.clone(),
                    d.version.clone().filter(|v| !v.is_empty()),
                    value,
                )
            })
            .collect();
        FakeProvider {
            entries,
            pushed: Pushed::default(),
        }
    }

    fn pushed(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SecretBytes>> {
        self.pushed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn declared(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| k == key)
    }
}

#[async_trait]
impl Provider for FakeProvider {
    async fn get(&self, req: &GetRequest) -> Result<Fetched, ProviderError> {
        if req.metadata {
            return Err(ProviderError::Unsupported(
                "metadataPolicy Fetch is not supported by the fake provider".to_string(),
            ));
        }
        if req.version.is_none()
            && let Some(v) = self.pushed().get(&req.key)
        {
            return Ok(Fetched::fake(v.clone()));
        }
        self.entries
            .iter()
            .find(|(k, v, _)| *k == req.key && *v == req.version)
            .map(|(_, _, value)| Fetched::fake(value.clone()))
            .ok_or_else(|| ProviderError::NoSecret {
                key: req.key.clone(),
                version: req.version.clone(),
            })
    }

    async fn find(
        &self,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        if !query.tags.is_empty() {
            return Err(ProviderError::Unsupported(
                "find by tags is not supported by the fake provider".to_string(),
            ));
        }
        let regex = match &query.name_regexp {
            Some(re) => Some(Regex::new(re).map_err(|e| {
                ProviderError::InvalidConfig(format!("invalid find.name.regexp {re:?}: {e}"))
            })?),
            None => None,
        };
        let pushed = self.pushed().clone();
        Ok(self
            .entries
            .iter()
            .filter(|(_, version, _)| version.is_none())
            .map(|(k, _, v)| (k, v))
            .chain(pushed.iter())
            .filter(|(k, _)| query.path.as_deref().is_none_or(|p| k.starts_with(p)))
            .filter(|(k, _)| regex.as_ref().is_none_or(|r| r.is_match(k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ReadWrite
    }

    async fn push_secret(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        let value = data.value(secret)?;
        let key = data.remote_key();
        if self.declared(key) {
            return Err(ProviderError::NotManaged {
                key: key.to_string(),
            });
        }
        let mut pushed = self.pushed();
        let new = match data.property() {
            Some(p) => match merge_property(pushed.get(key).map(|v| v.expose()), p, &value)? {
                Some(doc) => doc,
                None => return Ok(PushOutcome::Unchanged),
            },
            None if pushed.get(key) == Some(&value) => return Ok(PushOutcome::Unchanged),
            None => value,
        };
        pushed.insert(key.to_string(), new);
        Ok(PushOutcome::Written)
    }

    async fn delete_secret(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        let key = data.remote_key();
        let mut pushed = self.pushed();
        let Some(property) = data.property() else {
            pushed.remove(key);
            return Ok(());
        };
        let Some(current) = pushed.get(key) else {
            return Ok(());
        };
        let Ok(mut doc) =
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(current.expose())
        else {
            return Ok(());
        };
        doc.remove(property);
        if doc.is_empty() {
            pushed.remove(key);
        } else {
            let bytes = SecretBytes::new(serde_json::to_vec(&doc).unwrap_or_default());
            pushed.insert(key.to_string(), bytes);
        }
        Ok(())
    }

    async fn secret_exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        let key = data.remote_key();
        let pushed = self.pushed();
        let value = match pushed.get(key) {
            Some(v) => v.clone(),
            None => match self
                .entries
                .iter()
                .find(|(k, v, _)| k == key && v.is_none())
            {
                Some((_, _, v)) => v.clone(),
                None => return Ok(false),
            },
        };
        Ok(match data.property() {
            None => true,
            Some(p) => {
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(value.expose())
                    .is_ok_and(|m| m.contains_key(p))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FakeProviderData;

    fn provider() -> FakeProvider {
        FakeProvider::new(&FakeSpec {
            data: vec![
                FakeProviderData {
                    key: "/a".into(),
                    value: "v0".into(),
                    ..Default::default()
                },
                FakeProviderData {
                    key: "/a".into(),
                    value: "v1".into(),
                    version: Some("1".into()),
                    ..Default::default()
                },
                FakeProviderData {
                    key: "/b/x".into(),
                    value: "bx".into(),
                    ..Default::default()
                },
            ],
        })
    }

    #[tokio::test]
    async fn versions_and_missing_keys() {
        let p = provider();
        let get = |k: &str, v: Option<&str>| GetRequest::new(k, v, Default::default());
        assert_eq!(
            p.get(&get("/a", None)).await.unwrap().whole().expose(),
            b"v0"
        );
        assert_eq!(
            p.get(&get("/a", Some("1"))).await.unwrap().whole().expose(),
            b"v1"
        );
        assert!(
            p.get(&get("/a", Some("2")))
                .await
                .unwrap_err()
                .is_no_secret()
        );
        assert!(p.get(&get("/zzz", None)).await.unwrap_err().is_no_secret());
    }

    #[tokio::test]
    async fn push_reads_back_and_refuses_declared_keys() {
        use crate::provider::RemoteRef;
        let spec = FakeSpec {
            data: vec![FakeProviderData {
                key: "declared".into(),
                value: "d".into(),
                ..Default::default()
            }],
        };
        let store = "SecretStore/ns-push-test/fake";
        let p = FakeProvider::for_store(&spec, store);
        let secret = SourceSecret {
            data: [("k".to_string(), SecretBytes::from("v"))].into(),
            ..Default::default()
        };
        let entry = |remote: &str, property: Option<&str>| PushSecretData {
            secret_key: Some("k".into()),
            remote: RemoteRef {
                remote_key: remote.into(),
                property: property.map(str::to_string),
            },
            metadata: None,
        };
        assert!(!p.secret_exists(&entry("r", None)).await.unwrap());
        assert_eq!(
            p.push_secret(&secret, &entry("r", None)).await.unwrap(),
            PushOutcome::Written
        );
        assert_eq!(
            p.push_secret(&secret, &entry("r", None)).await.unwrap(),
            PushOutcome::Unchanged
        );
        // Another provider built for the same store object sees the push, even from a
        // changed spec; another store with an equal spec (another name, namespace or kind)
        // does not.
        let again = FakeProvider::for_store(&FakeSpec::default(), store);
        let get = GetRequest::new("r", None, Default::default());
        assert_eq!(again.get(&get).await.unwrap().whole().expose(), b"v");
        assert!(again.secret_exists(&entry("r", None)).await.unwrap());
        for other in [
            "SecretStore/ns-push-test/other",
            "SecretStore/ns-push-other/fake",
            "ClusterSecretStore/fake",
        ] {
            let p = FakeProvider::for_store(&spec, other);
            assert!(p.get(&get).await.unwrap_err().is_no_secret(), "{other}");
            assert!(
                !p.secret_exists(&entry("r", None)).await.unwrap(),
                "{other}"
            );
        }
        assert!(
            FakeProvider::new(&spec).get(&get).await.is_err(),
            "a provider built without a store shares nothing"
        );
        assert!(matches!(
            p.push_secret(&secret, &entry("declared", None)).await,
            Err(ProviderError::NotManaged { .. })
        ));
        p.push_secret(&secret, &entry("j", Some("a")))
            .await
            .unwrap();
        p.push_secret(&secret, &entry("j", Some("b")))
            .await
            .unwrap();
        let j = GetRequest::new("j", None, Default::default());
        assert_eq!(
            p.get(&j).await.unwrap().whole().expose(),
            br#"{"a":"v","b":"v"}"#
        );
        p.delete_secret(&entry("j", Some("a"))).await.unwrap();
        assert!(!p.secret_exists(&entry("j", Some("a"))).await.unwrap());
        assert!(p.secret_exists(&entry("j", Some("b"))).await.unwrap());
        p.delete_secret(&entry("r", None)).await.unwrap();
        p.delete_secret(&entry("r", None)).await.unwrap();
        assert!(p.get(&get).await.unwrap_err().is_no_secret());
    }

    #[tokio::test]
    async fn find_by_name_and_path() {
        let p = provider();
        let q = FindQuery {
            path: Some("/b".into()),
            name_regexp: None,
            tags: Default::default(),
        };
        assert_eq!(
            p.find(&q).await.unwrap().keys().collect::<Vec<_>>(),
            ["/b/x"]
        );
        let q = FindQuery {
            path: None,
            name_regexp: Some("^/a$".into()),
            tags: Default::default(),
        };
        assert_eq!(p.find(&q).await.unwrap().len(), 1);
    }
}
