//! From remote data to Secret data, without Kubernetes.
//!
//! The steps run in ESO's order: every `dataFrom` entry (fetch or find → rewrite, or key
//! conversion when there is no rewrite → decode), then every `data` entry (fetch → property →
//! decode), later keys overriding earlier ones so `data` wins over `dataFrom`; finally every
//! key is validated. Everything here takes plain values, a [`DataSource`] and a
//! [`KeyRenamer`] (for `rewrite.transform`), so it is unit-tested without a cluster and reused
//! by offline tools.

pub mod decode;
#[doc(hidden)]
pub mod harness;
pub mod hash;
pub mod keys;
pub mod property;
pub mod rewrite;

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::api::{
    DeletionPolicy, ExternalSecretSpec, GeneratorRef, NullBytePolicy, StoreSourceRef,
};
use crate::provider::{Fetched, FindQuery, GetRequest, ProviderError};
use crate::secret::{SecretBytes, SecretMap};

pub use keys::{InvalidKeys, KeyProblem};
pub use rewrite::{KeyRenamer, NoKeyRenamer, RenameError};

/// Where an entry's data comes from: its own `sourceRef`, else the ExternalSecret's store.
pub type Source<'a> = Option<&'a StoreSourceRef>;

/// Fetches remote data for the pipeline (the controller resolves stores and providers).
#[async_trait]
pub trait DataSource: Send + Sync {
    /// Fetches one remote secret.
    async fn get(&self, source: Source<'_>, req: &GetRequest) -> Result<Fetched, SourceError>;
    /// Finds remote secrets.
    async fn find(
        &self,
        source: Source<'_>,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, SourceError>;

    /// Runs a generator (`dataFrom[].sourceRef.generatorRef`) and returns its data.
    async fn generate(&self, generator: &GeneratorRef) -> Result<SecretMap, SourceError> {
        Err(SourceError::Store(format!(
            "generator {} {:?} is not available here",
            generator.kind, generator.name
        )))
    }
}

/// A data source failure: either the store could not be used, or its provider failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The store is missing, not allowed, not ready or not supported.
    #[error("{0}")]
    Store(String),
    /// The provider call failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A generator failed (the controller's typed error, kept as the source so its category
    /// reaches the metrics).
    #[error("{0}")]
    Generator(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

/// Why Secret data could not be built. Messages name keys and paths, never values.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A store could not be used.
    #[error("{0}")]
    Store(String),
    /// A generator failed.
    #[error("{0}")]
    Generator(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// A provider call failed.
    #[error("error processing spec.{entry}, err: {source}")]
    Provider {
        /// Which entry, e.g. `data[0]`.
        entry: String,
        /// The provider error.
        source: ProviderError,
    },
    /// A property was not found.
    #[error("error processing spec.{entry}, err: {reason}")]
    MissingProperty {
        /// Which entry.
        entry: String,
        /// The provider's message, naming the property and the remote key.
        reason: String,
    },
    /// A `property` was asked of a secret that is not JSON at all (binary, plain text, a
    /// document nested deeper than esox parses). `reason` is the parser's, which names a
    /// position, never the content.
    #[error(
        "error processing spec.{entry}, err: key {property:?} does not exist in secret {key:?}: the secret is not valid JSON ({reason})"
    )]
    NotJson {
        /// Which entry.
        entry: String,
        /// The remote key.
        key: String,
        /// The property.
        property: String,
        /// The parser's message (a position, no content).
        reason: String,
    },
    /// A value that must be a JSON object is not one.
    #[error("error processing spec.{entry}, err: {reason}")]
    NotJsonObject {
        /// Which entry.
        entry: String,
        /// Why, naming the remote key (the provider's words).
        reason: String,
    },
    /// Decoding failed.
    #[error("error processing spec.{entry}, err: {source}")]
    Decode {
        /// Which entry.
        entry: String,
        /// The decoding error.
        source: decode::DecodeError,
    },
    /// A rewrite failed.
    #[error("error processing spec.{entry}, err: {source}")]
    Rewrite {
        /// Which entry.
        entry: String,
        /// The rewrite error.
        source: rewrite::RewriteError,
    },
    /// A value contains a NUL byte and `nullBytePolicy` is `Fail`.
    #[error(
        "error processing spec.{entry}, err: secret value for key {key:?} contains a null byte and nullBytePolicy is Fail"
    )]
    NullByte {
        /// Which entry.
        entry: String,
        /// The Secret key.
        key: String,
    },
    /// An entry names neither `extract` nor `find` (or a generator, not yet supported).
    #[error("error processing spec.{entry}, err: {reason}")]
    InvalidEntry {
        /// Which entry.
        entry: String,
        /// Why.
        reason: String,
    },
    /// Some keys are not valid Secret keys.
    #[error(transparent)]
    InvalidKeys(InvalidKeys),
}

impl PipelineError {
    /// Whether the error is (only) a missing remote secret.
    pub fn is_no_secret(&self) -> bool {
        matches!(self, PipelineError::Provider { source, .. } if source.is_no_secret())
    }

    /// Whether the provider asked us to slow down.
    pub fn is_throttled(&self) -> bool {
        matches!(
            self,
            PipelineError::Provider {
                source: ProviderError::Throttled(_),
                ..
            }
        )
    }

    fn from_source(entry: String, err: SourceError) -> Self {
        match err {
            SourceError::Store(msg) => PipelineError::Store(msg),
            SourceError::Generator(e) => PipelineError::Generator(e),
            SourceError::Provider(source) => PipelineError::Provider { entry, source },
        }
    }
}

/// Builds Secret data for an ExternalSecret from its data source; `renamer` runs the
/// `rewrite.transform` templates.
///
/// Under `deletionPolicy: Delete` or `Merge`, a remote secret that does not exist is skipped
/// (so the deletion policy can act on the empty result); under `Retain` it is an error.
pub async fn collect(
    spec: &ExternalSecretSpec,
    source: &dyn DataSource,
    renamer: &dyn KeyRenamer,
) -> Result<SecretMap, PipelineError> {
    let memo = Memo {
        inner: source,
        seen: Default::default(),
    };
    // Issue every single-secret fetch at once: providers batch requests that arrive together
    // (AWS: one BatchGetSecretValue for up to 20 keys). The entries below then read the
    // memoized results in ESO's order, so precedence and error reporting are unchanged.
    let extracts = spec.data_from.iter().filter_map(|e| {
        let x = e.extract.as_ref()?;
        Some((
            e.source_ref.as_ref(),
            GetRequest::new(&x.key, x.version.as_deref(), x.metadata_policy),
        ))
    });
    let singles = spec.data.iter().map(|d| {
        let r = &d.remote_ref;
        (
            d.source_ref.as_ref(),
            GetRequest::new(&r.key, r.version.as_deref(), r.metadata_policy),
        )
    });
    let all: Vec<_> = extracts
        .chain(singles)
        .filter(|(s, _)| s.is_none_or(|s| s.generator_ref.is_none()))
        .collect();
    futures::future::join_all(all.iter().map(|(src, req)| memo.get(*src, req))).await;
    let source: &dyn DataSource = &memo;
    let skip_missing = spec.target.deletion_policy != DeletionPolicy::Retain;
    let mut out = SecretMap::new();

    for (i, entry) in spec.data_from.iter().enumerate() {
        let name = format!("dataFrom[{i}]");
        let src = entry.source_ref.as_ref();
        let generator = src.and_then(|s| s.generator_ref.as_ref());
        let (map, conversion, decoding) = if let Some(generator) = generator {
            let map = source
                .generate(generator)
                .await
                .map_err(|e| PipelineError::from_source(name.clone(), e))?;
            (map, Default::default(), Default::default())
        } else if let Some(extract) = &entry.extract {
            let req = GetRequest::new(
                &extract.key,
                extract.version.as_deref(),
                extract.metadata_policy,
            );
            let raw = match source.get(src, &req).await {
                Ok(v) => v,
                Err(SourceError::Provider(e)) if skip_missing && e.is_no_secret() => continue,
                Err(e) => return Err(PipelineError::from_source(name, e)),
            };
            let property = extract.property.as_deref().filter(|p| !p.is_empty());
            let map = match property::extract_map(&raw, &extract.key, property) {
                Ok(map) => map,
                Err(property::PropertyError::NoSecret(_)) if skip_missing => continue,
                Err(e) => {
                    return Err(property_error(
                        &name,
                        &extract.key,
                        property.unwrap_or_default(),
                        e,
                    ));
                }
            };
            (map, extract.conversion_strategy, extract.decoding_strategy)
        } else if let Some(find) = &entry.find {
            // Checked here, once, with a short message: a provider would compile it too, and
            // repeat all of a megabyte-long pattern in its error.
            if let Some(re) = find.name.as_ref().and_then(|n| n.regexp.as_deref())
                && let Err(e) = regex::Regex::new(re)
            {
                return Err(PipelineError::InvalidEntry {
                    entry: name,
                    reason: format!(
                        "invalid find.name.regexp {:?}: {}",
                        shown(re),
                        crate::api::abbreviate(&e.to_string(), 512)
                    ),
                });
            }
            let query = FindQuery {
                path: find.path.clone().filter(|p| !p.is_empty()),
                name_regexp: find.name.as_ref().and_then(|n| n.regexp.clone()),
                tags: find.tags.clone(),
            };
            let found = match source.find(src, &query).await {
                Ok(v) => v,
                Err(SourceError::Provider(e)) if skip_missing && e.is_no_secret() => continue,
                Err(e) => return Err(PipelineError::from_source(name, e)),
            };
            (found, find.conversion_strategy, find.decoding_strategy)
        } else {
            return Err(PipelineError::InvalidEntry {
                entry: name,
                reason: "dataFrom entry must set extract, find or sourceRef.generatorRef".into(),
            });
        };
        let map = if entry.rewrite.is_empty() {
            map.into_iter()
                .map(|(k, v)| (keys::convert(conversion, &k), v))
                .collect()
        } else {
            rewrite::apply(&entry.rewrite, map, renamer)
                .await
                .map_err(|source| PipelineError::Rewrite {
                    entry: name.clone(),
                    source,
                })?
        };
        for (k, v) in map {
            let decoded =
                decode::decode(decoding, v.expose()).map_err(|source| PipelineError::Decode {
                    entry: name.clone(),
                    source,
                })?;
            out.insert(k, SecretBytes::new(decoded));
        }
    }

    for (i, entry) in spec.data.iter().enumerate() {
        let name = format!("data[{i}]");
        let src = entry.source_ref.as_ref();
        if src.is_some_and(|s| s.generator_ref.is_some()) {
            return Err(PipelineError::InvalidEntry {
                entry: name,
                reason: "generators are not supported in data[]; use dataFrom".to_string(),
            });
        }
        let r = &entry.remote_ref;
        let req = GetRequest::new(&r.key, r.version.as_deref(), r.metadata_policy);
        let raw = match source.get(src, &req).await {
            Ok(v) => v,
            Err(SourceError::Provider(e)) if skip_missing && e.is_no_secret() => continue,
            Err(e) => return Err(PipelineError::from_source(name, e)),
        };
        let value = match r.property.as_deref().filter(|p| !p.is_empty()) {
            None => raw.whole().expose().to_vec(),
            Some(prop) => match property::lookup(&raw, &r.key, prop) {
                Ok(value) => value,
                Err(property::PropertyError::NoSecret(_)) if skip_missing => continue,
                Err(e) => return Err(property_error(&name, &r.key, prop, e)),
            },
        };
        let decoded = decode::decode(r.decoding_strategy, &value).map_err(|source| {
            PipelineError::Decode {
                entry: name.clone(),
                source,
            }
        })?;
        if r.null_byte_policy == NullBytePolicy::Fail && decoded.contains(&0) {
            return Err(PipelineError::NullByte {
                entry: name,
                key: shown(&entry.secret_key),
            });
        }
        out.insert(entry.secret_key.clone(), SecretBytes::new(decoded));
    }

    keys::validate(out.keys()).map_err(PipelineError::InvalidKeys)?;
    Ok(out)
}

/// Remembers each remote secret fetched during one `collect`, so entries that read different
/// properties of the same secret (the seeds' template example reads one secret four times)
/// cost one provider call.
struct Memo<'a> {
    inner: &'a dyn DataSource,
    seen: std::sync::Mutex<BTreeMap<(String, GetRequest), Result<Fetched, SourceError>>>,
}

#[async_trait]
impl DataSource for Memo<'_> {
    async fn get(&self, source: Source<'_>, req: &GetRequest) -> Result<Fetched, SourceError> {
        let key = (format!("{source:?}"), req.clone());
        // A poisoned lock (a panic elsewhere while it was held) still holds a usable map:
        // results are inserted whole.
        let seen = || self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = seen().get(&key) {
            return hit.clone();
        }
        let result = self.inner.get(source, req).await;
        seen().insert(key, result.clone());
        result
    }

    async fn find(
        &self,
        source: Source<'_>,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, SourceError> {
        self.inner.find(source, query).await
    }

    async fn generate(&self, generator: &GeneratorRef) -> Result<SecretMap, SourceError> {
        self.inner.generate(generator).await
    }
}

/// A key, property or path from a manifest or a provider as an error message repeats it.
fn shown(text: &str) -> String {
    crate::api::abbreviate(text, 256)
}

/// A property lookup's failure as the pipeline reports it for `entry`.
fn property_error(
    entry: &str,
    key: &str,
    property: &str,
    e: property::PropertyError,
) -> PipelineError {
    let entry = entry.to_string();
    match e {
        property::PropertyError::Missing(reason) => {
            PipelineError::MissingProperty { entry, reason }
        }
        property::PropertyError::NotObject(reason) => {
            PipelineError::NotJsonObject { entry, reason }
        }
        property::PropertyError::NoSecret(inner) => property_error(&entry, key, property, *inner),
        property::PropertyError::NotJson(reason) => PipelineError::NotJson {
            entry,
            key: shown(key),
            property: shown(property),
            reason,
        },
    }
}

#[cfg(test)]
mod tests;
