//! Prometheus metrics under ESO's names, so existing dashboards and alerts keep working.
//!
//! One [`Registry`] is built at start and passed down in the controller context (never a
//! global), as in kube-rs/controller-rs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels identifying one object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Object name.
    pub name: String,
    /// Object namespace (empty for cluster-scoped objects).
    pub namespace: String,
}

/// Labels of a status-condition gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// Object name.
    pub name: String,
    /// Object namespace.
    pub namespace: String,
    /// Condition type.
    pub condition: String,
    /// Condition status (`True`/`False`).
    pub status: String,
}

/// Labels of a provider API call counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderCallLabels {
    /// Provider, e.g. `fake`, `AWS/SecretsManager`.
    pub provider: String,
    /// Operation, e.g. `GetSecret`.
    pub call: String,
    /// `success` or `error`.
    pub status: String,
}

/// Labels of an error counter that also say why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Object name.
    pub name: String,
    /// Object namespace.
    pub namespace: String,
    /// Short error category (the same word as the Event reason).
    pub reason: String,
}

/// Labels of a plugin call counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    /// Plugin name.
    pub plugin: String,
    /// `ok`, or the error category (`timeout`, `trap`, `out_of_memory`, …).
    pub outcome: String,
}

/// Labels of a plugin duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// Plugin name.
    pub plugin: String,
}

/// Labels of a per-kind gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `ExternalSecret` or `PushSecret`.
    pub kind: String,
}

/// Labels of the shard hand-over counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandoverLabels {
    /// `ExternalSecret` or `PushSecret`.
    pub kind: String,
    /// `gained` (taken over from another replica) or `lost` (handed to one).
    pub direction: String,
}

/// All metrics esox exports.
pub struct Metrics {
    /// `externalsecret_sync_calls_total`.
    pub sync_calls: Family<ObjectLabels, Counter>,
    /// `externalsecret_sync_calls_error`.
    pub sync_errors: Family<ErrorLabels, Counter>,
    /// `externalsecret_status_condition`.
    pub status_condition: Family<ConditionLabels, Gauge>,
    /// `externalsecret_reconcile_duration`: the last reconcile's duration in nanoseconds, a
    /// gauge per object as ESO's (a histogram per object cost about 500 bytes each).
    pub reconcile_duration: Family<ObjectLabels, DurationGauge>,
    /// `externalsecret_provider_api_calls_count`.
    pub provider_calls: Family<ProviderCallLabels, Counter>,
    /// `secretstore_status_condition` / `clustersecretstore_status_condition`.
    pub store_condition: Family<ConditionLabels, Gauge>,
    /// `clustersecretstore_status_condition`.
    pub cluster_store_condition: Family<ConditionLabels, Gauge>,
    /// `secretstore_reconcile_duration` (nanoseconds, as ESO).
    pub store_reconcile_duration: Family<ObjectLabels, DurationGauge>,
    /// `clusterexternalsecret_status_condition`.
    pub ces_condition: Family<ConditionLabels, Gauge>,
    /// `clusterexternalsecret_reconcile_duration` (nanoseconds, as ESO).
    pub ces_reconcile_duration: Family<ObjectLabels, DurationGauge>,
    /// `esox_plugin_calls_total{plugin,outcome}`: invocations, traps, timeouts, ….
    pub plugin_calls: Family<PluginCallLabels, Counter>,
    /// `esox_plugin_call_duration_seconds{plugin}`.
    pub plugin_duration: Family<PluginLabels, Histogram>,
    /// `esox_rollout_restart_total{result}`: workload restarts by result.
    pub rollout_restarts: Family<crate::controller::rollout::RestartLabels, Counter>,
    /// `esox_shard_owned_objects{kind}`: objects this replica owns (`--shard-mode`).
    pub shard_owned: Family<KindLabels, Gauge>,
    /// `esox_shard_members`: the membership this replica sees (`--shard-mode`).
    pub shard_members: Gauge,
    /// `esox_shard_handovers_total{kind,direction}`: objects gained from or lost to another
    /// replica (`--shard-mode`).
    pub shard_handovers: Family<HandoverLabels, Counter>,
    /// `esox_pushsecret_source_watches`: source Secrets this replica watches for PushSecrets
    /// that push on a source change (with `--shard-mode`, only for the PushSecrets it owns).
    pub push_source_watches: Gauge,
}

/// A reconcile's duration as ESO reports it: a gauge holding the last one, in nanoseconds
/// (ESO sets `float64(time.Since(start))`, a Go duration).
pub type DurationGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics {
            sync_calls: Family::default(),
            sync_errors: Family::default(),
            status_condition: Family::default(),
            reconcile_duration: Family::default(),
            provider_calls: Family::default(),
            store_condition: Family::default(),
            cluster_store_condition: Family::default(),
            store_reconcile_duration: Family::default(),
            ces_condition: Family::default(),
            ces_reconcile_duration: Family::default(),
            plugin_calls: Family::default(),
            plugin_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            rollout_restarts: Family::default(),
            shard_owned: Family::default(),
            shard_members: Gauge::default(),
            shard_handovers: Family::default(),
            push_source_watches: Gauge::default(),
        };
        // prometheus-client appends `_total` to counters itself.
        registry.register(
            "externalsecret_sync_calls",
            "Total number of ExternalSecret reconciles",
            m.sync_calls.clone(),
        );
        registry.register(
            "externalsecret_sync_calls_error",
            "Total number of ExternalSecret reconcile errors",
            m.sync_errors.clone(),
        );
        registry.register(
            "externalsecret_status_condition",
            "The status condition of an ExternalSecret",
            m.status_condition.clone(),
        );
        registry.register(
            "externalsecret_reconcile_duration",
            "The duration of the last ExternalSecret reconcile, in nanoseconds (as ESO)",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "externalsecret_provider_api_calls_count",
            "Number of provider API calls",
            m.provider_calls.clone(),
        );
        registry.register(
            "secretstore_status_condition",
            "The status condition of a SecretStore",
            m.store_condition.clone(),
        );
        registry.register(
            "clustersecretstore_status_condition",
            "The status condition of a ClusterSecretStore",
            m.cluster_store_condition.clone(),
        );
        registry.register(
            "secretstore_reconcile_duration",
            "The duration of the last SecretStore reconcile, in nanoseconds (as ESO)",
            m.store_reconcile_duration.clone(),
        );
        registry.register(
            "clusterexternalsecret_status_condition",
            "The status condition of a ClusterExternalSecret",
            m.ces_condition.clone(),
        );
        registry.register(
            "clusterexternalsecret_reconcile_duration",
            "The duration of the last ClusterExternalSecret reconcile, in nanoseconds (as ESO)",
            m.ces_reconcile_duration.clone(),
        );
        registry.register(
            "esox_plugin_calls",
            "Wasm plugin calls by outcome",
            m.plugin_calls.clone(),
        );
        registry.register(
            "esox_plugin_call_duration_seconds",
            "Wasm plugin call duration, instantiation included",
            m.plugin_duration.clone(),
        );
        registry.register(
            "esox_rollout_restart",
            "Workload rollout restarts after a Secret's data changed, by result",
            m.rollout_restarts.clone(),
        );
        registry.register(
            "esox_shard_owned_objects",
            "Objects this replica owns in --shard-mode, by kind",
            m.shard_owned.clone(),
        );
        registry.register(
            "esox_shard_members",
            "Members of the shard membership this replica sees",
            m.shard_members.clone(),
        );
        registry.register(
            "esox_shard_handovers",
            "Objects this replica took over from (gained) or handed to (lost) another replica",
            m.shard_handovers.clone(),
        );
        registry.register(
            "esox_pushsecret_source_watches",
            "Source Secrets watched for PushSecrets that push on a source change",
            m.push_source_watches.clone(),
        );
        m
    }

    /// Sets a condition gauge: the given status to 1 and its opposite to 0, as ESO does.
    pub fn set_condition(
        family: &Family<ConditionLabels, Gauge>,
        name: &str,
        namespace: &str,
        condition: &str,
        status: bool,
    ) {
        for (s, v) in [("True", status), ("False", !status)] {
            family
                .get_or_create(&ConditionLabels {
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                    condition: condition.to_string(),
                    status: s.to_string(),
                })
                .set(i64::from(v));
        }
    }

    /// Forgets an object's series (on deletion), so the exporter does not grow forever.
    /// `reasons` are every `reason` label its sync errors can have (the reconcile error's
    /// categories).
    pub fn forget<'a>(&self, name: &str, namespace: &str, reasons: impl Iterator<Item = &'a str>) {
        let labels = ObjectLabels {
            name: name.to_string(),
            namespace: namespace.to_string(),
        };
        self.sync_calls.remove(&labels);
        self.reconcile_duration.remove(&labels);
        for s in ["True", "False"] {
            self.status_condition.remove(&ConditionLabels {
                name: name.to_string(),
                namespace: namespace.to_string(),
                condition: "Ready".to_string(),
                status: s.to_string(),
            });
        }
        for reason in reasons {
            self.sync_errors.remove(&ErrorLabels {
                name: name.to_string(),
                namespace: namespace.to_string(),
                reason: reason.to_string(),
            });
        }
    }
}

/// Renders the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}
