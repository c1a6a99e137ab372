//! `dataFrom[].rewrite`: rename the keys a `dataFrom` entry produced, in order.
//!
//! `regexp` rewrites replace every match in each key (Go's `ReplaceAllString`; `$1`, `${name}`
//! references work the same in Rust's `regex`). `transform` rewrites are Go templates and run
//! in the template engine plugin; until it is available they fail with a clear message rather
//! than being ignored.

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
    /// A rewrite names no operation.
    #[error("rewrite entry has neither regexp nor transform")]
    Empty,
}

/// Applies the rewrites in order to the keys of `data`.
pub fn apply(
    rewrites: &[ExternalSecretRewrite],
    data: SecretMap,
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
        } else if rewrite.transform.is_some() {
            return Err(RewriteError::Unsupported("transform"));
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
    use crate::api::RewriteRegexp;

    fn rw(source: &str, target: &str) -> ExternalSecretRewrite {
        ExternalSecretRewrite {
            regexp: Some(RewriteRegexp {
                source: source.into(),
                target: target.into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn regexp_rewrites_apply_in_order() {
        let data: SecretMap = [
            ("dev/app/db".to_string(), "1".into()),
            ("dev/app/api".to_string(), "2".into()),
        ]
        .into();
        let out = apply(&[rw("^dev/app/", ""), rw("(.*)", "APP_$1")], data).unwrap();
        let keys: Vec<_> = out.keys().cloned().collect();
        assert_eq!(keys, ["APP_api", "APP_db"]);
    }

    #[test]
    fn bad_regexp_is_reported() {
        let err = apply(&[rw("(", "")], SecretMap::new()).unwrap_err();
        assert!(err.to_string().contains("invalid rewrite regexp"));
    }
}
