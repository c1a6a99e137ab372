//! The reconcile error vocabulary: one error type that knows its category (the metric label
//! and log field), its Event reason, and its disposition (what the controller does next).
//!
//! The list of categories exists once ([`Error::categories`]); the metric series of a
//! deleted ExternalSecret are dropped by iterating it, so a new category cannot leak series.

use crate::pipeline::PipelineError;
use crate::plugin::{PluginError, PluginFailure};
use crate::template::TemplateError;

use super::generators::GeneratorError;
use super::plugins::UserPluginError;
use super::target::TargetError;

/// Event reasons, as ESO spells them.
pub mod event {
    /// Secret created.
    pub const CREATED: &str = "Created";
    /// Secret updated.
    pub const UPDATED: &str = "Updated";
    /// Secret deleted.
    pub const DELETED: &str = "Deleted";
    /// A sync failed.
    pub const UPDATE_FAILED: &str = "UpdateFailed";
    /// A remote secret does not exist.
    pub const MISSING_PROVIDER_SECRET: &str = "MissingProviderSecret";
}

/// What the controller does after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Report it (`Ready=False`, a Warning event) and retry with per-object backoff.
    Retry,
    /// Report it and wait for the object to change: retrying cannot fix it.
    WaitForChange,
    /// Retry with backoff without reporting: the synced Secret is still good and `Ready`
    /// stays as it is (the provider is pacing us).
    KeepReady,
}

/// Reconcile errors. Each names what failed; none carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ExternalSecret itself is invalid (retrying will not help).
    #[error("invalid ExternalSecret: {0}")]
    InvalidSpec(String),
    /// Fetching or building the data failed.
    #[error("could not get secret data from provider: {0}")]
    Fetch(#[source] PipelineError),
    /// The provider throttled us while the synced Secret is still valid.
    #[error("could not get secret data from provider: {0}")]
    Throttled(#[source] PipelineError),
    /// The template could not be applied (render error, missing template source, plugin
    /// stopped by the sandbox).
    #[error("{0}")]
    Template(#[source] TemplateError),
    /// The target Secret cannot be written as asked.
    #[error("{0}")]
    Target(#[source] TargetError),
    /// The store the ExternalSecret reads is not Ready (ESO's flood gate): nothing is fetched
    /// through a store esox itself reports as unusable.
    #[error("{kind} {name:?} is not ready: {why}")]
    StoreNotReady {
        /// `SecretStore` or `ClusterSecretStore`.
        kind: &'static str,
        /// The store's name.
        name: String,
        /// What its Ready condition says (or that it has none yet).
        why: String,
    },
    /// The reconcile panicked: a bug in esox, caught so that this object is reported and
    /// every other keeps being served. Nothing was written after the panic.
    #[error(
        "internal error while reconciling (a bug in esox: the controller log has the panic); the existing Secret was left as it was"
    )]
    Panicked,
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What we were doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// The categories of [`Error`] itself (plugin, user-plugin and generator failures use their
/// own errors' labels).
const OWN_CATEGORIES: &[&str] = &[
    "invalid_spec",
    "missing_provider_secret",
    "throttled",
    "fetch",
    "template",
    "target",
    "store_not_ready",
    "panic",
    "kube",
    "timeout",
];

impl Error {
    /// The HTTP status of a failed Kubernetes API call (409 for a conflict or an existing
    /// object), if this is one.
    pub fn api_code(&self) -> Option<u16> {
        match self {
            Error::Kube {
                source: kube::Error::Api(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }

    /// Low-cardinality category: the `reason` label of `externalsecret_sync_calls_error` and
    /// the log field. A plugin failure anywhere in the chain is categorised by the plugin's
    /// own label (`timeout`, `out_of_memory`, …), so a sandbox limit and a bad template are
    /// told apart.
    pub fn metric_label(&self) -> &'static str {
        if let Some(label) = self.cause_label() {
            return label;
        }
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Fetch(e) if e.is_no_secret() => "missing_provider_secret",
            Error::Fetch(_) => "fetch",
            Error::Throttled(_) => "throttled",
            Error::Template(_) => "template",
            Error::Target(_) => "target",
            Error::StoreNotReady { .. } => "store_not_ready",
            Error::Panicked => "panic",
            Error::Kube { .. } => "kube",
        }
    }

    /// Every value [`Error::metric_label`] can return, once each.
    pub fn categories() -> impl Iterator<Item = &'static str> {
        let mut all: Vec<&'static str> = OWN_CATEGORIES
            .iter()
            .chain(PluginFailure::CATEGORIES)
            .chain(UserPluginError::CATEGORIES)
            .chain(GeneratorError::CATEGORIES)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all.into_iter()
    }

    /// The Event reason (ESO's).
    pub fn event_reason(&self) -> &'static str {
        match self {
            Error::Fetch(e) if e.is_no_secret() => event::MISSING_PROVIDER_SECRET,
            _ => event::UPDATE_FAILED,
        }
    }

    /// What the controller does next.
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::InvalidSpec(_) => Disposition::WaitForChange,
            Error::Throttled(_) => Disposition::KeepReady,
            _ => Disposition::Retry,
        }
    }

    /// The category of the deepest categorised cause (a plugin failure, a generator error),
    /// if any: the most specific account of what went wrong.
    fn cause_label(&self) -> Option<&'static str> {
        type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
        let mut label = None;
        let mut cause = std::error::Error::source(self);
        while let Some(mut e) = cause {
            // A shared cause is looked at through its `Arc`.
            if let Some(shared) = e.downcast_ref::<Shared>() {
                e = shared.as_ref();
            }
            if let Some(p) = e.downcast_ref::<PluginError>() {
                label = Some(p.metric_label());
            } else if let Some(u) = e.downcast_ref::<UserPluginError>() {
                label = Some(u.metric_label());
            } else if let Some(g) = e.downcast_ref::<GeneratorError>() {
                label = Some(g.metric_label());
            } else if let Some(p) = e.downcast_ref::<crate::provider::ProviderError>()
                && p.is_timeout()
            {
                label = Some("timeout");
            }
            cause = e.source();
        }
        label
    }
}

/// Wraps a Kubernetes API error with what was being done.
pub fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderError;
    use std::time::Duration;

    /// One of each variant (the match makes a new variant fail to compile here until it has
    /// a sample).
    fn samples() -> Vec<Error> {
        let all = vec![
            Error::InvalidSpec("x".into()),
            Error::Fetch(PipelineError::Store("x".into())),
            Error::Fetch(PipelineError::Generator(std::sync::Arc::new(
                GeneratorError::Sts(
                    crate::provider::aws::sts_token::StsTokenError::InvalidRegion("x".into()),
                ),
            ))),
            Error::Fetch(PipelineError::Provider {
                entry: "data[0]".into(),
                source: ProviderError::NoSecret {
                    key: "k".into(),
                    version: None,
                },
            }),
            Error::Throttled(PipelineError::Store("x".into())),
            Error::Template(TemplateError::Invalid("x".into())),
            Error::Template(TemplateError::Sandbox(PluginError::new(
                "p",
                PluginFailure::Timeout {
                    deadline: Duration::from_secs(1),
                },
            ))),
            Error::Target(TargetError::Immutable("s".into())),
            Error::StoreNotReady {
                kind: "SecretStore",
                name: "s".into(),
                why: "x".into(),
            },
            Error::Panicked,
            Error::Fetch(PipelineError::Provider {
                entry: "data[0]".into(),
                source: ProviderError::Timeout {
                    call: "get key \"k\"".into(),
                    after: Duration::from_secs(30),
                },
            }),
            Error::Kube {
                action: "x".into(),
                source: kube::Error::LinesCodecMaxLineLengthExceeded,
            },
        ];
        for e in &all {
            match e {
                Error::InvalidSpec(_)
                | Error::Fetch(_)
                | Error::Throttled(_)
                | Error::Template(_)
                | Error::Target(_)
                | Error::StoreNotReady { .. }
                | Error::Panicked
                | Error::Kube { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_label_is_a_listed_category() {
        let categories: Vec<_> = Error::categories().collect();
        for e in samples() {
            assert!(
                categories.contains(&e.metric_label()),
                "{:?} has label {:?}, missing from Error::categories()",
                e,
                e.metric_label()
            );
        }
        let mut unique = categories.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), categories.len(), "categories are unique");
    }

    #[test]
    fn a_plugin_timeout_is_not_a_template_error() {
        let timeout = Error::Template(TemplateError::Sandbox(PluginError::new(
            "p",
            PluginFailure::Timeout {
                deadline: Duration::from_secs(1),
            },
        )));
        assert_eq!(timeout.metric_label(), "timeout");
        assert_eq!(
            Error::Template(TemplateError::Invalid("x".into())).metric_label(),
            "template"
        );
    }

    #[test]
    fn a_generator_failure_is_categorised_through_the_pipeline() {
        let shared =
            |e: GeneratorError| Error::Fetch(PipelineError::Generator(std::sync::Arc::new(e)));
        let missing = shared(GeneratorError::ClusterGeneratorNotFound("cg".into()));
        assert_eq!(missing.metric_label(), "generator_not_found");
        assert_eq!(
            missing.to_string(),
            "could not get secret data from provider: error using generator: ClusterGenerator \"cg\" not found"
        );
        let oom = shared(GeneratorError::Plugin(PluginError::new(
            "password",
            PluginFailure::OutOfMemory { limit: 1 },
        )));
        assert_eq!(oom.metric_label(), "out_of_memory");
    }

    #[test]
    fn dispositions_and_reasons() {
        let missing = Error::Fetch(PipelineError::Provider {
            entry: "data[0]".into(),
            source: ProviderError::NoSecret {
                key: "k".into(),
                version: None,
            },
        });
        assert_eq!(missing.event_reason(), event::MISSING_PROVIDER_SECRET);
        assert_eq!(missing.disposition(), Disposition::Retry);
        assert_eq!(
            Error::InvalidSpec("x".into()).disposition(),
            Disposition::WaitForChange
        );
        assert_eq!(
            Error::Throttled(PipelineError::Store("x".into())).disposition(),
            Disposition::KeepReady
        );
        assert_eq!(
            Error::Target(TargetError::Immutable("s".into())).event_reason(),
            event::UPDATE_FAILED
        );
    }
}
