//! `dataFrom[].rewrite`: rename the keys a `dataFrom` entry produced, in order.
//!
//! `regexp` rewrites replace every match in each key (Go's `ReplaceAllString`; `$1`, `${name}`
//! references work the same in Rust's `regex`). `transform` rewrites are Go templates over
//! `{"value": key}`; they run in the Go template engine plugin, through the data source.

use regex::Regex;

use crate::api::ExternalSecretRewrite;
use crate::secret::SecretMap;

/// Rewrite failure (names keys and patterns, never values).
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The regular expression does not compile.
    #[error("invalid rewrite regexp {pattern:?}: {reason}")]
    InvalidRegexp {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A rewrite that esox cannot run yet.
    #[error("rewrite.{0} is not supported by this version of esox")]
    Unsupported(&'static str),
    /// A transform template failed (the engine's message names the template, not values).
    #[error("{0}")]
    Transform(String),
    /// A rewrite names no operation.
    #[error("rewrite entry has neither regexp nor transform")]
    Empty,
}

/// Applies the rewrites in order to the keys of `data`.
pub async fn apply(
    rewrites: &[ExternalSecretRewrite],
    data: SecretMap,
    source: &dyn super::DataSource,
) -> Result<SecretMap, RewriteError> {
    let mut data = data;
    for rewrite in rewrites {
        if let Some(re) = &rewrite.regexp {
            let regex = Regex::new(&re.source).map_err(|e| RewriteError::InvalidRegexp {
                pattern: re.source.clone(),
                reason: e.to_string(),
            })?;
            data = data
                .into_iter()
                .map(|(k, v)| (regex.replace_all(&k, re.target.as_str()).into_owned(), v))
                .collect();
        } else if let Some(t) = &rewrite.transform {
            let (keys, values): (Vec<String>, Vec<_>) = data.into_iter().unzip();
            let renamed = source
                .rename_keys(&t.template, keys)
                .await
                .map_err(RewriteError::Transform)?;
            data = renamed.into_iter().zip(values).collect();
        } else if rewrite.merge.is_some() {
            return Err(RewriteError::Unsupported("merge"));
        } else {
            return Err(RewriteError::Empty);
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RewriteRegexp, RewriteTransform};
    use crate::pipeline::{DataSource, FindQuery, GetRequest, Source, SourceError};
    use crate::secret::SecretBytes;

    /// Renames keys the way a transform `{{ .value | upper }}` would; fetches nothing.
    struct Upper;

    #[async_trait::async_trait]
    impl DataSource for Upper {
        async fn get(&self, _: Source<'_>, _: &GetRequest) -> Result<SecretBytes, SourceError> {
            unreachable!("rewrites fetch nothing")
        }
        async fn find(
            &self,
            _: Source<'_>,
            _: &FindQuery,
        ) -> Result<std::collections::BTreeMap<String, SecretBytes>, SourceError> {
            unreachable!("rewrites fetch nothing")
        }
        async fn rename_keys(
            &self,
            template: &str,
            keys: Vec<String>,
        ) -> Result<Vec<String>, String> {
            assert_eq!(template, "{{ .value | upper }}");
            Ok(keys.iter().map(|k| k.to_uppercase()).collect())
        }
    }

    fn rw(source: &str, target: &str) -> ExternalSecretRewrite {
        ExternalSecretRewrite {
            regexp: Some(RewriteRegexp {
                source: source.into(),
                target: target.into(),
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn regexp_rewrites_apply_in_order() {
        let data: SecretMap = [
            ("dev/app/db".to_string(), "1".into()),
            ("dev/app/api".to_string(), "2".into()),
        ]
        .into();
        let transform = ExternalSecretRewrite {
            transform: Some(RewriteTransform {
                template: "{{ .value | upper }}".into(),
            }),
            ..Default::default()
        };
        let out = apply(
            &[rw("^dev/app/", ""), transform, rw("(.*)", "APP_$1")],
            data,
            &Upper,
        )
        .await
        .unwrap();
        let keys: Vec<_> = out.keys().cloned().collect();
        assert_eq!(keys, ["APP_API", "APP_DB"]);
        assert_eq!(out["APP_DB"].expose(), b"1");
    }

    #[tokio::test]
    async fn bad_regexp_is_reported() {
        let err = apply(&[rw("(", "")], SecretMap::new(), &Upper)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid rewrite regexp"));
    }
}
