//! Why a plugin call failed: [`PluginError`] names the plugin once, [`PluginFailure`] says
//! what happened. Messages name the plugin and the limit, never data.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A failed plugin load or call: which plugin, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The plugin's name (as in declarations, errors and metrics).
    pub plugin: Arc<str>,
    /// What happened.
    pub kind: PluginFailure,
}

impl PluginError {
    /// An error of `plugin`.
    pub fn new(plugin: impl Into<Arc<str>>, kind: PluginFailure) -> Self {
        PluginError {
            plugin: plugin.into(),
            kind,
        }
    }

    /// Low-cardinality label for metrics: one of [`PluginFailure::CATEGORIES`].
    pub fn metric_label(&self) -> &'static str {
        self.kind.metric_label()
    }

    /// The same error with `f` applied to every text that came from the plugin or the runtime
    /// (a reason, a message, a key), for callers that must scrub them (the template step
    /// removes secret values). The plugin's name and the limits are kept.
    pub fn map_text(self, f: impl Fn(&str) -> String) -> PluginError {
        PluginError {
            plugin: self.plugin,
            kind: self.kind.map_text(f),
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "plugin NAME: its own message", otherwise "plugin NAME timed out after …".
        let sep = if matches!(self.kind, PluginFailure::Failed { .. }) {
            ": "
        } else {
            " "
        };
        write!(f, "plugin {}{sep}{}", self.plugin, self.kind)
    }
}

impl std::error::Error for PluginError {}

/// What went wrong in a plugin load or call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    /// The component could not be compiled or linked (not a component, or for another world),
    /// or the runtime could not start.
    #[error("could not be loaded: {reason}")]
    Load {
        /// Why.
        reason: String,
    },
    /// The call ran past its deadline.
    #[error("timed out after {deadline:?}")]
    Timeout {
        /// The deadline.
        deadline: Duration,
    },
    /// The plugin asked for more memory than allowed.
    #[error("ran out of memory (limit {limit} bytes)")]
    OutOfMemory {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The guest trapped (panicked, hit `unreachable`, …).
    #[error("crashed: {reason}")]
    Trap {
        /// The trap.
        reason: String,
    },
    /// Every instance slot of the pooling allocator was taken, so no instance could be made.
    /// [`PluginHost`](crate::PluginHost) admits calls only as slots allow, so this is a
    /// sizing problem (`max_instances`), not the plugin's fault.
    #[error("could not start: the instance pool is exhausted ({reason})")]
    PoolExhausted {
        /// wasmtime's account of which limit was reached.
        reason: String,
    },
    /// The host failed around the call (its worker thread panicked or was cancelled): a host
    /// fault, not the plugin's.
    #[error("could not be run: {reason}")]
    Host {
        /// Why.
        reason: String,
    },
    /// The input was larger than allowed.
    #[error("input is {size} bytes, over the {limit}-byte limit")]
    InputTooLarge {
        /// Input size, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The output was larger than allowed.
    #[error("output is {size} bytes, over the {limit}-byte limit")]
    OutputTooLarge {
        /// Output size so far, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The result breaks the contract (duplicate or invalid keys, results out of order).
    #[error("returned a malformed result: {reason}")]
    Malformed {
        /// Why.
        reason: String,
    },
    /// The plugin reported an error itself.
    #[error("{message}{}", key.as_ref().map(|k| format!(" (key {k:?})")).unwrap_or_default())]
    Failed {
        /// Its message.
        message: String,
        /// The key it concerns.
        key: Option<String>,
    },
}

impl PluginFailure {
    /// Every label [`metric_label`](Self::metric_label) returns, for code that must know
    /// them all (forgetting metric series, dashboards). A call that succeeds is counted with
    /// the outcome [`OK_OUTCOME`] instead.
    pub const CATEGORIES: &'static [&'static str] = &[
        "load",
        "timeout",
        "out_of_memory",
        "trap",
        "pool_exhausted",
        "host_error",
        "input_too_large",
        "output_too_large",
        "malformed",
        "plugin_error",
    ];

    /// The same failure with `f` applied to every free text in it (see
    /// [`PluginError::map_text`]).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> PluginFailure {
        match self {
            PluginFailure::Load { reason } => PluginFailure::Load { reason: f(&reason) },
            PluginFailure::Trap { reason } => PluginFailure::Trap { reason: f(&reason) },
            PluginFailure::PoolExhausted { reason } => {
                PluginFailure::PoolExhausted { reason: f(&reason) }
            }
            PluginFailure::Host { reason } => PluginFailure::Host { reason: f(&reason) },
            PluginFailure::Malformed { reason } => PluginFailure::Malformed { reason: f(&reason) },
            PluginFailure::Failed { message, key } => PluginFailure::Failed {
                message: f(&message),
                key: key.map(|k| f(&k)),
            },
            other @ (PluginFailure::Timeout { .. }
            | PluginFailure::OutOfMemory { .. }
            | PluginFailure::InputTooLarge { .. }
            | PluginFailure::OutputTooLarge { .. }) => other,
        }
    }

    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PluginFailure::Load { .. } => "load",
            PluginFailure::Timeout { .. } => "timeout",
            PluginFailure::OutOfMemory { .. } => "out_of_memory",
            PluginFailure::Trap { .. } => "trap",
            PluginFailure::PoolExhausted { .. } => "pool_exhausted",
            PluginFailure::Host { .. } => "host_error",
            PluginFailure::InputTooLarge { .. } => "input_too_large",
            PluginFailure::OutputTooLarge { .. } => "output_too_large",
            PluginFailure::Malformed { .. } => "malformed",
            PluginFailure::Failed { .. } => "plugin_error",
        }
    }
}

/// The outcome label of a call that succeeded (beside [`PluginFailure::CATEGORIES`]).
pub const OK_OUTCOME: &str = "ok";

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant. The `match` has no wildcard, so a new variant does not compile
    /// until it is added here (and then to `CATEGORIES`, or the test below fails).
    fn one_of_each() -> Vec<PluginFailure> {
        let all = vec![
            PluginFailure::Load { reason: "r".into() },
            PluginFailure::Timeout {
                deadline: Duration::from_secs(1),
            },
            PluginFailure::OutOfMemory { limit: 1 },
            PluginFailure::Trap { reason: "r".into() },
            PluginFailure::PoolExhausted { reason: "r".into() },
            PluginFailure::Host { reason: "r".into() },
            PluginFailure::InputTooLarge { size: 2, limit: 1 },
            PluginFailure::OutputTooLarge { size: 2, limit: 1 },
            PluginFailure::Malformed { reason: "r".into() },
            PluginFailure::Failed {
                message: "m".into(),
                key: None,
            },
        ];
        for kind in &all {
            match kind {
                PluginFailure::Load { .. }
                | PluginFailure::Timeout { .. }
                | PluginFailure::OutOfMemory { .. }
                | PluginFailure::Trap { .. }
                | PluginFailure::PoolExhausted { .. }
                | PluginFailure::Host { .. }
                | PluginFailure::InputTooLarge { .. }
                | PluginFailure::OutputTooLarge { .. }
                | PluginFailure::Malformed { .. }
                | PluginFailure::Failed { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_label_is_a_listed_category_and_every_category_is_used() {
        let labels: Vec<&str> = one_of_each().iter().map(|k| k.metric_label()).collect();
        for l in &labels {
            assert!(PluginFailure::CATEGORIES.contains(l), "{l} is not listed");
        }
        let mut listed = PluginFailure::CATEGORIES.to_vec();
        listed.sort();
        listed.dedup();
        assert_eq!(listed.len(), PluginFailure::CATEGORIES.len(), "duplicates");
        assert_eq!(
            listed.len(),
            labels.len(),
            "a listed category no variant uses"
        );
        assert!(!listed.contains(&OK_OUTCOME));
    }

    #[test]
    fn map_text_reaches_every_free_text_and_keeps_the_rest() {
        for kind in one_of_each() {
            let label = kind.metric_label();
            let e = PluginError::new("p", kind).map_text(|t| t.replace(['r', 'm'], "X"));
            assert_eq!(e.metric_label(), label);
            assert_eq!(&*e.plugin, "p");
            let shown = e.to_string();
            assert!(!shown.contains(": r") && !shown.contains(": m"), "{shown}");
        }
        let e = PluginError::new(
            "p",
            PluginFailure::Failed {
                message: "bad s3cret".into(),
                key: Some("s3cret".into()),
            },
        )
        .map_text(|t| t.replace("s3cret", "<redacted>"));
        assert_eq!(
            e.to_string(),
            "plugin p: bad <redacted> (key \"<redacted>\")"
        );
    }

    #[test]
    fn messages_name_the_plugin_once() {
        let e = PluginError::new(
            "p",
            PluginFailure::Timeout {
                deadline: Duration::from_millis(500),
            },
        );
        assert_eq!(e.to_string(), "plugin p timed out after 500ms");
        let e = PluginError::new(
            "p",
            PluginFailure::Failed {
                message: "bad config".into(),
                key: Some("k".into()),
            },
        );
        assert_eq!(e.to_string(), "plugin p: bad config (key \"k\")");
        let e = PluginError::new("p", PluginFailure::Load { reason: "x".into() });
        assert_eq!(e.to_string(), "plugin p could not be loaded: x");
    }
}
