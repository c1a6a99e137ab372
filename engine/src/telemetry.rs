//! Logging: one subscriber set-up for the shipped binary and the tests, with a filter that
//! keeps secret values and dependency noise out of the log whatever `RUST_LOG` says.
//!
//! Two rules, both applied to the user's `RUST_LOG` before it becomes an [`EnvFilter`]:
//!
//! - **A bare level is esox's level.** `RUST_LOG=trace` (or `debug`) turns on esox's own
//!   spans and events (every target under `esox…`) and leaves dependencies at `info`: a
//!   controller at trace that also traced cranelift compiling the built-in plugins wrote over
//!   8 GB in five minutes and synced nothing. A dependency is traced only when it is named
//!   (`RUST_LOG=trace,kube_runtime=debug`).
//! - **Wire-logging targets are capped, even when named.** Our own code never logs values
//!   (they travel as [`crate::secret::SecretBytes`]), but HTTP and SDK crates log wire traffic
//!   at `debug`/`trace`: the AWS SDK's orchestrator can print response bodies (a
//!   `GetSecretValue` answer is the secret) and HTTP clients print headers (credentials).
//!   [`CAPPED_TARGETS`] are clamped to their cap whatever level is asked for.

use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Targets that may log wire data (secret values, credentials), and the most verbose level
/// they may ever use. Naming one in `RUST_LOG` cannot raise it past this.
pub const CAPPED_TARGETS: &[(&str, LevelFilter)] = &[
    ("aws_smithy_runtime", LevelFilter::INFO),
    ("aws_smithy_runtime_api", LevelFilter::INFO),
    ("aws_smithy_http_client", LevelFilter::INFO),
    ("aws_smithy_types", LevelFilter::INFO),
    ("aws_sigv4", LevelFilter::INFO),
    ("aws_config", LevelFilter::INFO),
    ("aws_runtime", LevelFilter::INFO),
    ("hyper", LevelFilter::INFO),
    ("hyper_util", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("rustls", LevelFilter::INFO),
    ("tower", LevelFilter::INFO),
    ("tower_http", LevelFilter::INFO),
    ("kube_client", LevelFilter::DEBUG),
    // On a response it cannot decode, the client logs the whole body at `warn`: a Secret's
    // data, a store's static values. The watcher reports the same error without the body.
    ("kube_client::client", LevelFilter::ERROR),
];

/// Targets that are esox's own: a bare level in `RUST_LOG` applies to these. Target
/// directives match by prefix, so `esox` covers `esox::…`, `esox_wasm::…` and the tests.
pub const OWN_TARGET: &str = "esox";

/// The most verbose level a dependency gets from a bare level (`RUST_LOG=trace`).
pub const DEPENDENCY_LEVEL: LevelFilter = LevelFilter::INFO;

/// The filter used when `RUST_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info,kube=warn";

/// Log line format of the binary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (ANSI colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the process's subscriber: `RUST_LOG` (or `fallback` when it is unset or empty,
/// e.g. ESO's `--loglevel`) through [`filter`], written to stderr. Call once, first thing in
/// `main`.
pub fn init(format: LogFormat, fallback: Option<&str>) {
    use std::io::IsTerminal as _;
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| fallback.map(str::to_string))
        .unwrap_or_default();
    // At trace, each esox span (a reconcile, a plugin call) also logs when it closes, with
    // how long it was busy and idle: where the time of a slow sync went.
    let spans = if own_level(&spec) == LevelFilter::TRACE {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    let builder = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter(&spec))
        .with_span_events(spans)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Builds the log filter from `spec` (a `RUST_LOG`-style string): bare levels apply to
/// esox's own targets (dependencies get at most [`DEPENDENCY_LEVEL`] from them), and every
/// [`CAPPED_TARGETS`] entry is clamped to its cap. A directive that does not parse is
/// dropped (the rest still apply); an empty spec means [`DEFAULT_FILTER`].
pub fn filter(spec: &str) -> EnvFilter {
    directives(spec)
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(EnvFilter::default(), EnvFilter::add_directive)
}

/// The level `spec` gives esox's own targets (its last bare level).
pub fn own_level(spec: &str) -> LevelFilter {
    match parse(spec) {
        (None, named) if named.is_empty() => parse(DEFAULT_FILTER).0,
        (global, _) => global,
    }
    .unwrap_or(LevelFilter::ERROR)
}

/// The directives [`filter`] installs, as strings (separate so they can be tested).
fn directives(spec: &str) -> Vec<String> {
    let (global, named) = match parse(spec) {
        (None, named) if named.is_empty() => parse(DEFAULT_FILTER),
        parsed => parsed,
    };
    // As in EnvFilter, what no directive names is at `error` unless a bare level says
    // otherwise.
    let global = global.unwrap_or(LevelFilter::ERROR);
    let dependencies = global.min(DEPENDENCY_LEVEL);
    let mut out = vec![
        level_name(dependencies),
        format!("{OWN_TARGET}={}", level_name(global)),
    ];
    // The caps are always there: a directive naming a prefix of a capped target (`aws=trace`)
    // matches it too, and the more specific cap wins. A named directive for the very same
    // target comes later and replaces its cap, so it is clamped first.
    for (target, max) in CAPPED_TARGETS {
        out.push(format!("{target}={}", level_name(dependencies.min(*max))));
    }
    out.extend(named.into_iter().map(|(t, l)| {
        let l = match cap(&t) {
            Some(max) => l.min(max),
            None => l,
        };
        format!("{t}={}", level_name(l))
    }));
    out
}

/// Splits a `RUST_LOG` spec into its last bare level and its named directives, dropping what
/// does not parse. Span and field filters (`target[span{field=x}]=level`) are kept only for
/// esox's own targets: one with another or no target applies its level to every target
/// inside the span, wire-logging ones included.
fn parse(spec: &str) -> (Option<LevelFilter>, Vec<(String, LevelFilter)>) {
    let mut global = None;
    let mut named = Vec::new();
    for raw in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if let Ok(level) = LevelFilter::from_str(raw) {
            // The last bare level wins, as in EnvFilter.
            global = Some(level);
            continue;
        }
        let (target, level) = match raw.rsplit_once('=') {
            Some((t, l)) => match LevelFilter::from_str(l) {
                Ok(level) => (t, level),
                Err(_) => continue,
            },
            // `RUST_LOG=hyper` means everything from hyper.
            None => (raw, LevelFilter::TRACE),
        };
        if target.is_empty()
            || (target.contains(['[', '{']) && !target.starts_with(OWN_TARGET))
            || target
                .parse::<tracing_subscriber::filter::Directive>()
                .is_err()
        {
            continue;
        }
        named.push((target.to_string(), level));
    }
    (global, named)
}

fn level_name(l: LevelFilter) -> String {
    l.to_string().to_lowercase()
}

/// The cap of `target` if it is, or is inside, a capped target.
fn cap(target: &str) -> Option<LevelFilter> {
    CAPPED_TARGETS
        .iter()
        .filter(|(t, _)| target == *t || target.starts_with(&format!("{t}::")))
        .map(|(_, l)| *l)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::SubscriberExt;

    /// Whether an event at `level` from `target` passes the filter built from `spec`.
    fn enabled(spec: &str, target: &'static str, level: Level) -> bool {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        struct Seen(Arc<AtomicBool>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_event(
                &self,
                _: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let seen = Arc::new(AtomicBool::new(false));
        let subscriber = tracing_subscriber::registry()
            .with(filter(spec))
            .with(Seen(seen.clone()));
        with_default(subscriber, || {
            // `tracing` macros need a literal target; dispatch on the few used here.
            macro_rules! ev {
                ($t:literal) => {
                    match level {
                        Level::TRACE => tracing::trace!(target: $t, "x"),
                        Level::DEBUG => tracing::debug!(target: $t, "x"),
                        Level::INFO => tracing::info!(target: $t, "x"),
                        Level::WARN => tracing::warn!(target: $t, "x"),
                        Level::ERROR => tracing::error!(target: $t, "x"),
                    }
                };
            }
            match target {
                "esox::controller" => ev!("esox::controller"),
                "esox_wasm::host" => ev!("esox_wasm::host"),
                "cranelift_codegen::isa" => ev!("cranelift_codegen::isa"),
                "wasmtime::runtime" => ev!("wasmtime::runtime"),
                "aws_smithy_runtime::client" => ev!("aws_smithy_runtime::client"),
                "hyper::proto" => ev!("hyper::proto"),
                "kube_client::client" => ev!("kube_client::client"),
                "kube_client::config" => ev!("kube_client::config"),
                "kube_runtime::controller" => ev!("kube_runtime::controller"),
                other => panic!("add {other} to the test's targets"),
            }
        });
        seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn a_bare_trace_traces_esox_and_nothing_else() {
        assert!(enabled("trace", "esox::controller", Level::TRACE));
        assert!(enabled("trace", "esox_wasm::host", Level::TRACE));
        for dep in [
            "cranelift_codegen::isa",
            "wasmtime::runtime",
            "aws_smithy_runtime::client",
            "hyper::proto",
            "kube_client::config",
            "kube_runtime::controller",
        ] {
            assert!(!enabled("trace", dep, Level::DEBUG), "{dep} at debug");
            assert!(enabled("trace", dep, Level::INFO), "{dep} at info");
        }
        // The client's own module logs undecodable bodies at warn: errors only.
        assert!(!enabled("trace", "kube_client::client", Level::WARN));
        assert!(enabled("trace", "kube_client::client", Level::ERROR));
    }

    #[test]
    fn a_dependency_is_traced_only_when_named() {
        assert!(enabled(
            "trace,wasmtime=trace",
            "wasmtime::runtime",
            Level::TRACE
        ));
        assert!(enabled(
            "info,kube_runtime=debug",
            "kube_runtime::controller",
            Level::DEBUG
        ));
        assert!(!enabled(
            "info,kube_runtime=debug",
            "esox::controller",
            Level::DEBUG
        ));
    }

    #[test]
    fn wire_logging_targets_stay_capped_even_when_named() {
        for spec in [
            "trace",
            "trace,aws_smithy_runtime=trace",
            "aws_smithy_runtime::client=trace",
            "hyper=trace,esox=trace",
            "hyper",
        ] {
            assert!(
                !enabled(spec, "aws_smithy_runtime::client", Level::DEBUG),
                "{spec}"
            );
            assert!(!enabled(spec, "hyper::proto", Level::DEBUG), "{spec}");
        }
        assert!(!enabled(
            "kube_client=trace",
            "kube_client::config",
            Level::TRACE
        ));
        assert!(enabled(
            "kube_client=trace",
            "kube_client::config",
            Level::DEBUG
        ));
        for spec in ["kube_client=trace", "kube_client::client=trace", "trace"] {
            assert!(
                !enabled(spec, "kube_client::client", Level::WARN),
                "{spec}: response bodies"
            );
        }
    }

    #[test]
    fn quieter_levels_apply_to_everything() {
        assert!(!enabled("warn", "esox::controller", Level::INFO));
        assert!(enabled("warn", "esox::controller", Level::WARN));
        assert!(!enabled("warn", "kube_runtime::controller", Level::INFO));
        assert!(!enabled("off", "esox::controller", Level::ERROR));
    }

    #[test]
    fn unset_means_info_with_quiet_kube() {
        assert!(enabled("", "esox::controller", Level::INFO));
        assert!(!enabled("", "esox::controller", Level::DEBUG));
        assert!(!enabled("", "kube_runtime::controller", Level::INFO));
        assert!(enabled("", "kube_runtime::controller", Level::WARN));
    }

    #[test]
    fn malformed_directives_are_dropped_not_fatal() {
        assert!(enabled("esox=loud,trace", "esox::controller", Level::TRACE));
        // Nothing usable at all: the default filter.
        assert!(enabled("=,,", "esox::controller", Level::INFO));
        assert!(!enabled("=,,", "esox::controller", Level::DEBUG));
    }

    #[test]
    fn span_filters_cannot_reach_other_targets() {
        assert!(!enabled(
            "[reconcile]=trace",
            "aws_smithy_runtime::client",
            Level::DEBUG
        ));
        assert!(!enabled("hyper[x]=trace", "hyper::proto", Level::DEBUG));
    }
}
