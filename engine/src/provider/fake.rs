//! The Fake provider (`spec.provider.fake`): static data declared in the store, as in ESO.
//!
//! Used for demos and tests, and as the reference for provider semantics: a key answers only
//! to the version it declares (no version answers to none), a missing key is ESO's
//! `NoSecretErr`, and `find` matches names by regular expression and path prefix.

use std::collections::BTreeMap;

use async_trait::async_trait;
use regex::Regex;

use super::{FindQuery, GetRequest, Provider, ProviderError};
use crate::api::FakeProvider as FakeSpec;
use crate::secret::SecretBytes;

/// Serves a store's declared data.
pub struct FakeProvider {
    entries: Vec<(String, Option<String>, SecretBytes)>,
}

impl FakeProvider {
    /// Builds the provider from the store spec.
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
        FakeProvider { entries }
    }
}

#[async_trait]
impl Provider for FakeProvider {
    async fn get(&self, req: &GetRequest) -> Result<SecretBytes, ProviderError> {
        if req.metadata {
            return Err(ProviderError::Unsupported(
                "metadataPolicy Fetch is not supported by the fake provider".to_string(),
            ));
        }
        self.entries
            .iter()
            .find(|(k, v, _)| *k == req.key && *v == req.version)
            .map(|(_, _, value)| value.clone())
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
        Ok(self
            .entries
            .iter()
            .filter(|(_, version, _)| version.is_none())
            .filter(|(k, _, _)| query.path.as_deref().is_none_or(|p| k.starts_with(p)))
            .filter(|(k, _, _)| regex.as_ref().is_none_or(|r| r.is_match(k)))
            .map(|(k, _, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        Ok(None)
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
        assert_eq!(p.get(&get("/a", None)).await.unwrap().expose(), b"v0");
        assert_eq!(p.get(&get("/a", Some("1"))).await.unwrap().expose(), b"v1");
        assert!(
            p.get(&get("/a", Some("2")))
                .await
                .unwrap_err()
                .is_no_secret()
        );
        assert!(p.get(&get("/zzz", None)).await.unwrap_err().is_no_secret());
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
