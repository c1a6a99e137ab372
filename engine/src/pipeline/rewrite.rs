//! `dataFrom[].rewrite`: rename the keys a `dataFrom` entry produced, in order.
//!
//! `regexp` rewrites replace every match in each key (Go's `ReplaceAllString`; `$1`, `${name}`
//! references work the same in Rust's `regex`). `transform` rewrites are Go templates over
//! `{"value": key}`; they run in the Go template engine plugin, through the [`KeyRenamer`]
//! the caller hands to [`super::collect`] (the pipeline renders no templates itself).

use async_trait::async_trait;
use regex::Regex;

use crate::api::ExternalSecretRewrite;
use crate::plugin::PluginError;
use crate::secret::SecretMap;

/// Renames keys with a `rewrite.transform` template (the template engine's job; see
/// `template::GoKeyRenamer`).
#[async_trait]
pub trait KeyRenamer: Send + Sync {
    /// Renders `template` once per key, with the key as `.value`; returns the new names in
    /// order.
    async fn rename_keys(
        &self,
        template: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, RenameError>;
}

/// For callers without a template engine: every `rewrite.transform` fails with
/// [`RenameError::Unavailable`].
pub struct NoKeyRenamer;

#[async_trait]
impl KeyRenamer for NoKeyRenamer {
    async fn rename_keys(&self, _: &str, _: Vec<String>) -> Result<Vec<String>, RenameError> {
        Err(RenameError::Unavailable)
    }
}

/// Why a `rewrite.transform` could not rename keys. Messages name templates and keys, never
/// values (the template sees only key names).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenameError {
    /// No template engine is available to this caller.
    #[error("rewrite.transform needs the template engine, which is not available here")]
    Unavailable,
    /// The engine plugin could not be loaded, or the sandbox stopped it.
    #[error(transparent)]
    Engine(PluginError),
    /// The template failed for a key (the engine's message).
    #[error(transparent)]
    Render(PluginError),
}

impl RenameError {
    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RenameError::Unavailable => "engine_unavailable",
            RenameError::Engine(_) => "engine",
            RenameError::Render(_) => "render",
        }
    }
}

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
    #[error(transparent)]
    Transform(RenameError),
    /// A rewrite names no operation.
    #[error("rewrite entry has neither regexp nor transform")]
    Empty,
    /// The template engine answered with a different number of names than it was given
    /// keys (keys would be lost or invented).
    #[error("rewrite.transform returned {got} keys for {expected}")]
    TransformCount {
        /// Keys given.
        expected: usize,
        /// Names returned.
        got: usize,
    },
}

/// Applies the rewrites in order to the keys of `data` (keys that end up equal collapse into
/// one, the last in key order winning, as ESO's map does).
pub async fn apply(
    rewrites: &[ExternalSecretRewrite],
    data: SecretMap,
    renamer: &dyn KeyRenamer,
) -> Result<SecretMap, RewriteError> {
    let (keys, values): (Vec<String>, Vec<_>) = data.into_iter().unzip();
    let renamed = rename(rewrites, keys, renamer).await?;
    Ok(renamed.into_iter().zip(values).collect())
}

/// Applies the rewrites in order to each of `keys`, returning the new names in the same
/// order (nothing collapses: the caller sees which key became which name). PushSecret's
/// `dataTo` uses this to map each source key to its remote key.
pub async fn rename(
    rewrites: &[ExternalSecretRewrite],
    keys: Vec<String>,
    renamer: &dyn KeyRenamer,
) -> Result<Vec<String>, RewriteError> {
    let mut keys = keys;
    for rewrite in rewrites {
        if let Some(re) = &rewrite.regexp {
            // The regex crate's message repeats the pattern, which a manifest can make a
            // megabyte long: both are shortened.
            let regex = Regex::new(&re.source).map_err(|e| RewriteError::InvalidRegexp {
                pattern: crate::api::abbreviate(&re.source, 256),
                reason: crate::api::abbreviate(&e.to_string(), 512),
            })?;
            keys = keys
                .into_iter()
                .map(|k| regex.replace_all(&k, re.target.as_str()).into_owned())
                .collect();
        } else if let Some(t) = &rewrite.transform {
            let expected = keys.len();
            let renamed = renamer
                .rename_keys(&t.template, keys)
                .await
                .map_err(RewriteError::Transform)?;
            if renamed.len() != expected {
                return Err(RewriteError::TransformCount {
                    expected,
                    got: renamed.len(),
                });
            }
            keys = renamed;
        } else if rewrite.merge.is_some() {
            return Err(RewriteError::Unsupported("merge"));
        } else {
            return Err(RewriteError::Empty);
        }
    }
    Ok(keys)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{RewriteRegexp, RewriteTransform};

    /// Renames keys the way a transform `{{ .value | upper }}` would (the real one runs in
    /// Wasm); PushSecret's `dataTo` tests use it too.
    pub(crate) struct Upper;

    #[async_trait]
    impl KeyRenamer for Upper {
        async fn rename_keys(
            &self,
            template: &str,
            keys: Vec<String>,
        ) -> Result<Vec<String>, RenameError> {
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

    fn upper() -> ExternalSecretRewrite {
        ExternalSecretRewrite {
            transform: Some(RewriteTransform {
                template: "{{ .value | upper }}".into(),
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
        let out = apply(
            &[rw("^dev/app/", ""), upper(), rw("(.*)", "APP_$1")],
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

    #[tokio::test]
    async fn huge_bad_regexps_make_short_messages() {
        for pattern in [
            format!("({}", "a".repeat(1 << 20)),
            // Compiles past the regex crate's size limit: an error, not a stall.
            "(a{1000}){1000}".to_string(),
        ] {
            let err = apply(&[rw(&pattern, "")], SecretMap::new(), &Upper)
                .await
                .unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("invalid rewrite regexp"), "{msg}");
            assert!(msg.len() < 1200, "{}", msg.len());
        }
    }

    /// A renamer that loses keys.
    struct Lossy;

    #[async_trait]
    impl KeyRenamer for Lossy {
        async fn rename_keys(&self, _: &str, _: Vec<String>) -> Result<Vec<String>, RenameError> {
            Ok(vec!["one".into()])
        }
    }

    #[tokio::test]
    async fn a_transform_must_name_every_key() {
        let data: SecretMap = [("a".to_string(), "1".into()), ("b".to_string(), "2".into())].into();
        let err = apply(&[upper()], data, &Lossy).await.unwrap_err();
        assert_eq!(err.to_string(), "rewrite.transform returned 1 keys for 2");
    }

    #[tokio::test]
    async fn transform_without_an_engine_is_a_typed_error() {
        let data: SecretMap = [("k".to_string(), "v".into())].into();
        let err = apply(&[upper()], data, &NoKeyRenamer).await.unwrap_err();
        assert!(
            matches!(err, RewriteError::Transform(RenameError::Unavailable)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "rewrite.transform needs the template engine, which is not available here"
        );
    }

    #[test]
    fn rename_error_labels_are_distinct_and_message_free() {
        let failed = PluginError::new(
            "gotemplate",
            crate::plugin::PluginFailure::Failed {
                message: "boom".into(),
                key: None,
            },
        );
        let labels = [
            RenameError::Unavailable.metric_label(),
            RenameError::Engine(failed.clone()).metric_label(),
            RenameError::Render(failed.clone()).metric_label(),
        ];
        assert_eq!(labels, ["engine_unavailable", "engine", "render"]);
        assert!(
            labels
                .iter()
                .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        // The engine's own message is kept as it was.
        assert_eq!(
            RenameError::Render(failed.clone()).to_string(),
            failed.to_string()
        );
    }
}
