//! Rollout restarts: workloads pick up a rotated Secret.
//!
//! An ExternalSecret names the workloads of its namespace to restart when its Secret's data
//! changes, in an annotation (so the manifest stays valid on upstream ESO, and a
//! ClusterExternalSecret's `externalSecretMetadata` carries it):
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     restart.esox.io/targets: deployment/api,statefulset/db,daemonset/agent,rollout/web
//!     restart.esox.io/min-interval: 10m     # optional: at most one restart per target per 10 min
//! ```
//!
//! With `--reloader-compat`, workloads annotated for Stakater Reloader
//! (`secret.reloader.stakater.com/reload: "<secret>,…"`, `reloader.stakater.com/auto: "true"`,
//! `secret.reloader.stakater.com/auto: "true"`) are restarted too, when an esox-managed Secret
//! they name (or, for `auto`, use) changes. Found through a metadata-only watch of Deployments,
//! StatefulSets and DaemonSets ([`ReloaderWatch`]). Do not run it beside Reloader.
//!
//! **When.** Only when the Secret's data really changed: esox stamps the Secret with
//! [`CHANGED_AT_ANNOTATION`] in the same write that changes its data from a previous value
//! (never on the first sync, a no-op refresh or a metadata-only change). A workload is
//! restarted by a pod-template annotation carrying the data hash ([`template_key`]), so a
//! workload restarted for this data is never restarted for it again (a retry, a second
//! replica, a controller restart), and one never restarted by esox is restarted when it was
//! created before the change. A controller killed between the Secret write and the patch
//! therefore makes exactly one rollout after it restarts.
//!
//! **How.** [`decide`] is pure (table-tested below); [`step`] reads each target (a GET, only
//! until the targets are known to be up to date for this data: no read per reconcile), and
//! patches it. Results are Events on the ExternalSecret (VSO's reasons
//! `RolloutRestartTriggered` / `RolloutRestartFailed`) and `esox_rollout_restart_total{result}`;
//! a failed restart never changes the ExternalSecret's `Ready`, and is retried on the next
//! data change only (VSO's semantics), except a debounced one, which is made when its interval
//! has passed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{PodSpec, Secret};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::context::Context;
use super::target::DATA_HASH_ANNOTATION;
use crate::api::ExternalSecret;
use crate::api::duration;

/// On an ExternalSecret: the workloads to restart, `kind/name[,kind/name…]`.
pub const TARGETS_ANNOTATION: &str = "restart.esox.io/targets";
/// On an ExternalSecret: the least time between two restarts of one target (a Go duration).
pub const MIN_INTERVAL_ANNOTATION: &str = "restart.esox.io/min-interval";
/// On a managed Secret: when its data last changed from a previous value (RFC 3339). Absent
/// until the first change after the first sync.
pub const CHANGED_AT_ANNOTATION: &str = "restart.esox.io/data-changed-at";
/// On a restarted workload (its own metadata, not the pod template): when esox last
/// restarted it, for `min-interval`.
pub const RESTARTED_AT_ANNOTATION: &str = "restart.esox.io/restarted-at";
/// Field manager of the restart patches.
const FIELD_MANAGER: &str = "esox-rollout";
/// Reloader's annotations (workload side).
const RELOADER_RELOAD: &str = "secret.reloader.stakater.com/reload";
const RELOADER_AUTO: &str = "reloader.stakater.com/auto";
const RELOADER_SECRET_AUTO: &str = "secret.reloader.stakater.com/auto";

/// Event reasons (VSO's).
pub mod reason {
    /// A target was restarted.
    pub const TRIGGERED: &str = "RolloutRestartTriggered";
    /// A target could not be restarted (missing, paused, forbidden, invalid).
    pub const FAILED: &str = "RolloutRestartFailed";
}

/// A kind of workload esox restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `argoproj.io/v1alpha1` Rollout.
    ArgoRollout,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" | "deployment.apps" => Kind::Deployment,
            "statefulset" | "statefulsets" | "sts" | "statefulset.apps" => Kind::StatefulSet,
            "daemonset" | "daemonsets" | "ds" | "daemonset.apps" => Kind::DaemonSet,
            "rollout" | "rollouts" | "argo.rollout" | "rollout.argoproj.io" => Kind::ArgoRollout,
            _ => return None,
        })
    }

    fn api_version(self) -> &'static str {
        match self {
            Kind::ArgoRollout => "argoproj.io/v1alpha1",
            _ => "apps/v1",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::ArgoRollout => "Rollout",
        }
    }
}

/// One workload to restart, in the ExternalSecret's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// The targets an annotation value names, and the entries that are not targets (reported).
pub fn parse_targets(value: &str) -> (Vec<Target>, Vec<String>) {
    let (mut targets, mut invalid) = (Vec::new(), Vec::new());
    for entry in value.split([',', '\n', ' ']).map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        match entry.split_once('/') {
            Some((kind, name)) if !name.is_empty() && !name.contains('/') => {
                match Kind::parse(kind) {
                    Some(kind) => targets.push(Target {
                        kind,
                        name: name.to_string(),
                    }),
                    None => invalid.push(entry.to_string()),
                }
            }
            _ => invalid.push(entry.to_string()),
        }
    }
    targets.sort();
    targets.dedup();
    (targets, invalid)
}

/// The pod-template annotation that records which data of Secret `secret` a workload's pods
/// were restarted for: `secret.restart.esox.io/<secret>` (a name longer than an annotation
/// name allows is shortened and suffixed with a hash of it).
pub fn template_key(secret: &str) -> String {
    const MAX: usize = 63;
    if secret.len() <= MAX {
        return format!("secret.restart.esox.io/{secret}");
    }
    let digest = crate::pipeline::hash::data_hash_text(secret);
    let keep = &secret[..MAX - 9];
    format!(
        "secret.restart.esox.io/{}-{}",
        keep.trim_end_matches(['.', '-']),
        &digest[..8]
    )
}

/// What a restart decision knows about the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    /// The Secret's name.
    pub name: String,
    /// The first 16 hex digits of its data hash: what the pod-template annotation carries.
    pub hash: String,
    /// When its data last changed from a previous value; `None` before any change.
    pub changed_at: Option<jiff::Timestamp>,
}

impl SecretVersion {
    /// Read from a managed Secret's annotations (`None` without a data hash).
    pub fn of(name: &str, annotations: &BTreeMap<String, String>) -> Option<SecretVersion> {
        let hash = annotations.get(DATA_HASH_ANNOTATION)?;
        Some(SecretVersion {
            name: name.to_string(),
            hash: hash.chars().take(16).collect(),
            changed_at: annotations
                .get(CHANGED_AT_ANNOTATION)
                .and_then(|t| t.parse().ok()),
        })
    }
}

/// A target as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// It does not exist.
    Missing,
    /// It exists.
    Found {
        /// Its `metadata.creationTimestamp`.
        created: Option<jiff::Timestamp>,
        /// A paused Deployment (`spec.paused`) or Rollout.
        paused: bool,
        /// Its [`template_key`] annotation: the data its pods were restarted for.
        restarted_for: Option<String>,
        /// Its [`RESTARTED_AT_ANNOTATION`].
        restarted_at: Option<jiff::Timestamp>,
    },
}

/// What to do with one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: its pods run this data already (restarted for it, created after the change,
    /// or the data never changed since the first sync).
    UpToDate,
    /// Restart it.
    Restart,
    /// Restart it, but not before this long (`min-interval`).
    Wait(Duration),
    /// It is paused: a Warning, no patch.
    Paused,
    /// It does not exist: a Warning.
    Missing,
}

/// Whether `target` (as `observed`) is to be restarted for the Secret at `secret`: the pure
/// core of this module.
pub fn decide(
    secret: &SecretVersion,
    observed: &Observed,
    min_interval: Duration,
    now: jiff::Timestamp,
) -> Decision {
    let Some(changed_at) = secret.changed_at else {
        // First sync, or no change since: nothing to pick up.
        return Decision::UpToDate;
    };
    let Observed::Found {
        created,
        paused,
        restarted_for,
        restarted_at,
    } = observed
    else {
        return Decision::Missing;
    };
    match restarted_for {
        Some(h) if *h == secret.hash => return Decision::UpToDate,
        // Restarted by esox for other data: stale.
        Some(_) => {}
        // Never restarted by esox: stale if it started before the change.
        None if created.is_some_and(|c| c >= changed_at) => return Decision::UpToDate,
        None => {}
    }
    if *paused {
        return Decision::Paused;
    }
    if let Some(last) = restarted_at
        && !min_interval.is_zero()
    {
        let since = Duration::try_from(now.duration_since(*last)).unwrap_or(Duration::ZERO);
        if since < min_interval {
            return Decision::Wait(min_interval - since);
        }
    }
    Decision::Restart
}

/// Rollout state shared by reconciles (in [`Context`]).
#[derive(Default)]
pub struct Rollouts {
    /// Per ExternalSecret (namespace, name): the Secret data hash its targets are known to be
    /// up to date for, so an idle reconcile reads no workload.
    settled: Mutex<HashMap<(String, String), String>>,
    /// `--reloader-compat`: set before [`super::run`] starts the workload watches.
    pub reloader_compat: std::sync::atomic::AtomicBool,
    /// The Reloader-compatible mode's workload caches (set by [`watch_workloads`]).
    pub reloader: OnceLock<ReloaderWatch>,
}

impl Rollouts {
    fn settled(&self, key: &(String, String), hash: &str) -> bool {
        self.lock().get(key).is_some_and(|h| h == hash)
    }

    fn settle(&self, key: (String, String), hash: String) {
        let mut map = self.lock();
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(key, hash);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.settled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The metadata of the workloads Reloader's annotations may name (`--reloader-compat`).
pub struct ReloaderWatch {
    /// Deployments.
    pub deployments: Store<PartialObjectMeta<Deployment>>,
    /// StatefulSets.
    pub stateful_sets: Store<PartialObjectMeta<StatefulSet>>,
    /// DaemonSets.
    pub daemon_sets: Store<PartialObjectMeta<DaemonSet>>,
}

/// Runs the Reloader-compatible mode's metadata-only watches of Deployments, StatefulSets and
/// DaemonSets (in the controller's namespace, or all) until `shutdown`, and publishes their
/// caches in `ctx.rollout.reloader`; nothing without `--reloader-compat`. These watches only
/// answer "which workloads carry Reloader's annotations"; they trigger no reconcile.
pub async fn watch_workloads(
    ctx: std::sync::Arc<Context>,
    health: std::sync::Arc<crate::http::Health>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    if !ctx
        .rollout
        .reloader_compat
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    fn meta_api<K>(ctx: &Context) -> Api<PartialObjectMeta<K>>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match ctx.settings.namespace.as_deref() {
            Some(n) => Api::namespaced(ctx.client.clone(), n),
            None => Api::all(ctx.client.clone()),
        }
    }
    let (deployments, dw) = reflector::store();
    let (stateful_sets, sw) = reflector::store();
    let (daemon_sets, aw) = reflector::store();
    let (d_api, s_api, a_api) = (
        meta_api::<Deployment>(&ctx),
        meta_api::<StatefulSet>(&ctx),
        meta_api::<DaemonSet>(&ctx),
    );
    let d = super::watch::watch(health.watch("Deployment"), deployments.clone(), move || {
        watcher(d_api.clone(), watcher::Config::default().any_semantic())
    })
    .reflect(dw)
    .for_each(|_| async {});
    let st = super::watch::watch(
        health.watch("StatefulSet"),
        stateful_sets.clone(),
        move || watcher(s_api.clone(), watcher::Config::default().any_semantic()),
    )
    .reflect(sw)
    .for_each(|_| async {});
    let ds = super::watch::watch(health.watch("DaemonSet"), daemon_sets.clone(), move || {
        watcher(a_api.clone(), watcher::Config::default().any_semantic())
    })
    .reflect(aw)
    .for_each(|_| async {});
    let _ = ctx.rollout.reloader.set(ReloaderWatch {
        deployments,
        stateful_sets,
        daemon_sets,
    });
    tokio::select! {
        _ = futures::future::join3(d, st, ds) => {}
        _ = shutdown => {}
    }
}

/// A workload's Reloader annotations, for Secret `secret`: `Some(true)` when it names the
/// Secret (`secret.reloader.stakater.com/reload`), `Some(false)` when it asks for any Secret it
/// uses (`auto`; the pod spec decides), `None` when Reloader would not restart it for it.
pub fn reloader_interest(annotations: &BTreeMap<String, String>, secret: &str) -> Option<bool> {
    if annotations
        .get(RELOADER_RELOAD)
        .is_some_and(|v| v.split(',').map(str::trim).any(|s| s == secret))
    {
        return Some(true);
    }
    let auto = |k: &str| annotations.get(k).is_some_and(|v| v == "true");
    (auto(RELOADER_AUTO) || auto(RELOADER_SECRET_AUTO)).then_some(false)
}

/// Whether a pod spec uses Secret `name` (env, envFrom, volumes, projected volumes).
pub fn pod_uses_secret(spec: &PodSpec, name: &str) -> bool {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for e in c.env.iter().flatten() {
            if e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_some_and(|r| r.name == name)
            {
                return true;
            }
        }
        for e in c.env_from.iter().flatten() {
            if e.secret_ref.as_ref().is_some_and(|r| r.name == name) {
                return true;
            }
        }
    }
    spec.volumes.iter().flatten().any(|v| {
        v.secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some(name))
            || v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.secret.as_ref().is_some_and(|r| r.name == name))
            })
    })
}

/// Whether rollout restarts concern `es` at all (it names targets, or the Reloader mode is on).
pub fn wanted(es: &ExternalSecret, ctx: &Context) -> bool {
    es.annotations().contains_key(TARGETS_ANNOTATION) || ctx.rollout.reloader.get().is_some()
}

/// Stamps [`CHANGED_AT_ANNOTATION`] on the Secret about to be written, when its data changes
/// from a previous value (and carries the last stamp over otherwise, so a write that changes
/// no data keeps it). `data` is the Secret's data as it will be written.
pub fn stamp(
    existing: Option<&Secret>,
    data: &BTreeMap<String, ByteString>,
    annotations: &mut BTreeMap<String, String>,
    now: jiff::Timestamp,
) {
    let Some(existing) = existing else { return };
    let old = existing.annotations().get(DATA_HASH_ANNOTATION);
    let new = super::target::data_hash(data);
    if old.is_some_and(|old| *old != new) {
        annotations.insert(CHANGED_AT_ANNOTATION.into(), now.to_string());
    } else if let Some(at) = existing.annotations().get(CHANGED_AT_ANNOTATION) {
        annotations.insert(CHANGED_AT_ANNOTATION.into(), at.clone());
    }
}

/// Labels of `esox_rollout_restart_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RestartLabels {
    /// `triggered`, `failed` (missing, forbidden, …) or `paused`.
    pub result: String,
}

/// The restart step, after a successful sync of `es` whose Secret is at `secret`: restarts
/// what is stale, reports on the ExternalSecret, never fails the sync. Returns how soon to come
/// back for a debounced target.
pub async fn step(es: &ExternalSecret, ctx: &Context, secret: &SecretVersion) -> Option<Duration> {
    let ns = es.namespace().unwrap_or_default();
    let key = (ns.clone(), es.name_any());
    if ctx.rollout.settled(&key, &secret.hash) {
        return None;
    }
    let (mut targets, invalid) = es
        .annotations()
        .get(TARGETS_ANNOTATION)
        .map(|v| parse_targets(v))
        .unwrap_or_default();
    let min_interval = match es.annotations().get(MIN_INTERVAL_ANNOTATION) {
        None => Duration::ZERO,
        Some(v) => match duration::parse(v) {
            Ok(d) => d,
            Err(e) => {
                let note = format!(
                    "rollout restart: annotation {MIN_INTERVAL_ANNOTATION}: {e}; restarting without a minimum interval"
                );
                report(
                    es,
                    ctx,
                    None,
                    EventType::Warning,
                    reason::FAILED,
                    &note,
                    None,
                )
                .await;
                Duration::ZERO
            }
        },
    };
    if secret.changed_at.is_none() {
        // First sync or no change yet: nothing is restarted, nothing needs reading.
        ctx.rollout.settle(key, secret.hash.clone());
        return None;
    }
    if !invalid.is_empty() {
        let note = format!(
            "rollout restart failed for targets {invalid:?}: not kind/name with kind deployment, statefulset, daemonset or rollout"
        );
        report(
            es,
            ctx,
            None,
            EventType::Warning,
            reason::FAILED,
            &note,
            None,
        )
        .await;
        for _ in &invalid {
            count(ctx, "failed");
        }
    }
    if let Some(watch) = ctx.rollout.reloader.get() {
        for t in reloader_targets(watch, ctx, &ns, &secret.name).await {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    let now = jiff::Timestamp::now();
    let mut again: Option<Duration> = None;
    for target in &targets {
        let observed = match observe(ctx, &ns, target, &secret.name).await {
            Ok(o) => o,
            Err(e) => {
                report(
                    es,
                    ctx,
                    Some(target),
                    EventType::Warning,
                    reason::FAILED,
                    &format!("rollout restart failed for {target}: {e}"),
                    Some("failed"),
                )
                .await;
                continue;
            }
        };
        match decide(secret, &observed, min_interval, now) {
            Decision::UpToDate => {}
            Decision::Missing => {
                report(
                    es,
                    ctx,
                    Some(target),
                    EventType::Warning,
                    reason::FAILED,
                    &format!("rollout restart failed for {target}: not found in namespace {ns}"),
                    Some("failed"),
                )
                .await
            }
            Decision::Paused => {
                report(
                    es,
                    ctx,
                    Some(target),
                    EventType::Warning,
                    reason::FAILED,
                    &format!("rollout restart skipped for {target}: it is paused"),
                    Some("paused"),
                )
                .await
            }
            Decision::Wait(d) => {
                debug!(%target, wait = ?d, "rollout restart debounced (min-interval)");
                again = Some(again.map_or(d, |a| a.min(d)));
            }
            Decision::Restart => match restart(ctx, &ns, target, secret, now).await {
                Ok(()) => {
                    info!(%target, secret = %secret.name, "rollout restart triggered");
                    report(
                        es,
                        ctx,
                        Some(target),
                        EventType::Normal,
                        reason::TRIGGERED,
                        &format!("rollout restart triggered for {target}"),
                        Some("triggered"),
                    )
                    .await
                }
                Err(e) => {
                    report(
                        es,
                        ctx,
                        Some(target),
                        EventType::Warning,
                        reason::FAILED,
                        &format!("rollout restart failed for {target}: {e}"),
                        Some("failed"),
                    )
                    .await
                }
            },
        }
    }
    if again.is_none() {
        // Failures are not retried before the next change (VSO's semantics): the Event says.
        ctx.rollout.settle(key, secret.hash.clone());
    }
    again
}

/// An Event on the ExternalSecret, `related` to the workload it is about (so the recorder
/// keeps one series per target, not one per reason), and the restart counted under `result`.
async fn report(
    es: &ExternalSecret,
    ctx: &Context,
    related: Option<&Target>,
    type_: EventType,
    reason: &str,
    note: &str,
    result: Option<&str>,
) {
    if type_ == EventType::Warning {
        warn!(note, "rollout restart");
    }
    if let Some(result) = result {
        count(ctx, result);
    }
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "RolloutRestart".into(),
        secondary: related.map(|t| ObjectReference {
            api_version: Some(t.kind.api_version().into()),
            kind: Some(t.kind.as_str().into()),
            name: Some(t.name.clone()),
            namespace: es.namespace(),
            ..Default::default()
        }),
    };
    // Without the resource version (every status write changes it), so repeats aggregate.
    let object = ObjectReference {
        resource_version: None,
        ..es.object_ref(&())
    };
    if let Err(e) = ctx.recorder.publish(&ev, &object).await {
        warn!(error = %e, reason, "could not publish event");
    }
}

fn count(ctx: &Context, result: &str) {
    ctx.metrics
        .rollout_restarts
        .get_or_create(&RestartLabels {
            result: result.into(),
        })
        .inc();
}

/// The workloads of namespace `ns` whose Reloader annotations ask for Secret `secret`.
async fn reloader_targets(
    watch: &ReloaderWatch,
    ctx: &Context,
    ns: &str,
    secret: &str,
) -> Vec<Target> {
    let mut out = Vec::new();
    let mut candidates = Vec::new();
    for (kind, metas) in [
        (Kind::Deployment, metas(&watch.deployments, ns)),
        (Kind::StatefulSet, metas(&watch.stateful_sets, ns)),
        (Kind::DaemonSet, metas(&watch.daemon_sets, ns)),
    ] {
        for (name, annotations) in metas {
            match reloader_interest(&annotations, secret) {
                Some(true) => out.push(Target { kind, name }),
                Some(false) => candidates.push(Target { kind, name }),
                None => {}
            }
        }
    }
    // `auto`: only if its pods use the Secret (read once per data change).
    for t in candidates {
        let uses = match pod_spec(ctx, ns, &t).await {
            Ok(Some(spec)) => pod_uses_secret(&spec, secret),
            Ok(None) => false,
            Err(e) => {
                warn!(target = %t, error = %e, "could not read a Reloader-annotated workload");
                false
            }
        };
        if uses {
            out.push(t);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn metas<K>(
    store: &Store<PartialObjectMeta<K>>,
    ns: &str,
) -> Vec<(String, BTreeMap<String, String>)>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter(|m| m.namespace().as_deref() == Some(ns))
        .map(|m| (m.name_any(), m.annotations().clone()))
        .collect()
}

async fn pod_spec(ctx: &Context, ns: &str, t: &Target) -> Result<Option<PodSpec>, kube::Error> {
    let c = ctx.client.clone();
    Ok(match t.kind {
        Kind::Deployment => Api::<Deployment>::namespaced(c, ns)
            .get_opt(&t.name)
            .await?
            .and_then(|d| d.spec?.template.spec),
        Kind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns)
            .get_opt(&t.name)
            .await?
            .and_then(|d| d.spec?.template.spec),
        Kind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns)
            .get_opt(&t.name)
            .await?
            .and_then(|d| d.spec?.template.spec),
        Kind::ArgoRollout => None,
    })
}

fn argo_rollouts() -> ApiResource {
    ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        plural: "rollouts".into(),
    }
}

/// Reads one target: what [`decide`] needs.
async fn observe(
    ctx: &Context,
    ns: &str,
    target: &Target,
    secret: &str,
) -> Result<Observed, RolloutError> {
    let key = template_key(secret);
    let c = ctx.client.clone();
    let parse = |t: Option<&String>| t.and_then(|t| t.parse().ok());
    let found = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                 template: Option<&BTreeMap<String, String>>,
                 paused: bool| Observed::Found {
        created: meta.creation_timestamp.as_ref().map(|t| t.0),
        paused,
        restarted_for: template.and_then(|a| a.get(&key)).cloned(),
        restarted_at: parse(
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(RESTARTED_AT_ANNOTATION)),
        ),
    };
    let get = |e: kube::Error| RolloutError::Get {
        target: target.to_string(),
        source: e,
    };
    Ok(match target.kind {
        Kind::Deployment => match Api::<Deployment>::namespaced(c, ns)
            .get_opt(&target.name)
            .await
            .map_err(get)?
        {
            None => Observed::Missing,
            Some(d) => {
                let spec = d.spec.as_ref();
                found(
                    &d.metadata,
                    spec.and_then(|s| s.template.metadata.as_ref()?.annotations.as_ref()),
                    spec.and_then(|s| s.paused).unwrap_or(false),
                )
            }
        },
        Kind::StatefulSet => match Api::<StatefulSet>::namespaced(c, ns)
            .get_opt(&target.name)
            .await
            .map_err(get)?
        {
            None => Observed::Missing,
            Some(d) => found(
                &d.metadata,
                d.spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref()?.annotations.as_ref()),
                false,
            ),
        },
        Kind::DaemonSet => match Api::<DaemonSet>::namespaced(c, ns)
            .get_opt(&target.name)
            .await
            .map_err(get)?
        {
            None => Observed::Missing,
            Some(d) => found(
                &d.metadata,
                d.spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref()?.annotations.as_ref()),
                false,
            ),
        },
        Kind::ArgoRollout => {
            let api: Api<DynamicObject> = Api::namespaced_with(c, ns, &argo_rollouts());
            match api.get_opt(&target.name).await {
                // No Rollout CRD in the cluster: the same as a missing target.
                Err(kube::Error::Api(e)) if e.code == 404 => Observed::Missing,
                Err(e) => return Err(get(e)),
                Ok(None) => Observed::Missing,
                // A Rollout keeps the mark in its own metadata (its restart is `spec.restartAt`).
                Ok(Some(r)) => found(
                    &r.metadata,
                    r.metadata.annotations.as_ref(),
                    r.data["spec"]["paused"].as_bool().unwrap_or(false),
                ),
            }
        }
    })
}

/// Restarts one target: a strategic-merge patch of its pod-template annotation (apps/v1), or
/// `spec.restartAt` (Argo Rollout, whose mark is on its own metadata).
async fn restart(
    ctx: &Context,
    ns: &str,
    target: &Target,
    secret: &SecretVersion,
    now: jiff::Timestamp,
) -> Result<(), RolloutError> {
    let key = template_key(&secret.name);
    let at = now.to_string();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let c = ctx.client.clone();
    let apps = json!({
        "metadata": {"annotations": {RESTARTED_AT_ANNOTATION: at}},
        "spec": {"template": {"metadata": {"annotations": {key.as_str(): secret.hash}}}},
    });
    let result = match target.kind {
        Kind::Deployment => Api::<Deployment>::namespaced(c, ns)
            .patch(&target.name, &params, &Patch::Strategic(&apps))
            .await
            .map(drop),
        Kind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns)
            .patch(&target.name, &params, &Patch::Strategic(&apps))
            .await
            .map(drop),
        Kind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns)
            .patch(&target.name, &params, &Patch::Strategic(&apps))
            .await
            .map(drop),
        Kind::ArgoRollout => {
            let api: Api<DynamicObject> = Api::namespaced_with(c, ns, &argo_rollouts());
            let patch = json!({
                "metadata": {"annotations": {RESTARTED_AT_ANNOTATION: at, key.as_str(): secret.hash}},
                "spec": {"restartAt": at},
            });
            api.patch(&target.name, &params, &Patch::Merge(&patch))
                .await
                .map(drop)
        }
    };
    result.map_err(|e| RolloutError::Patch {
        target: target.to_string(),
        source: e,
    })
}

/// Why a target could not be read or restarted.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Reading it failed (RBAC, the apiserver).
    #[error("could not get {target}: {source}")]
    Get {
        /// `Kind/name`.
        target: String,
        /// The apiserver's answer.
        source: kube::Error,
    },
    /// Patching it failed.
    #[error("could not patch {target}: {source}")]
    Patch {
        /// `Kind/name`.
        target: String,
        /// The apiserver's answer.
        source: kube::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn targets_parse_kubectl_and_vso_spellings() {
        let (t, bad) = parse_targets(
            "deployment/api, Deployment/api,statefulset/db,sts/db2,daemonset/agent,argo.Rollout/web,rollout/web2,deploy/x",
        );
        let shown: Vec<_> = t.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "Deployment/api",
                "Deployment/x",
                "StatefulSet/db",
                "StatefulSet/db2",
                "DaemonSet/agent",
                "Rollout/web",
                "Rollout/web2"
            ]
        );
        assert!(bad.is_empty());
        let (t, bad) = parse_targets("pod/x,api,deployment/,deployment/a/b,,");
        assert!(t.is_empty());
        assert_eq!(bad, ["pod/x", "api", "deployment/", "deployment/a/b"]);
    }

    #[test]
    fn template_keys_are_valid_annotation_names() {
        assert_eq!(
            template_key("db-credentials-native"),
            "secret.restart.esox.io/db-credentials-native"
        );
        let long = "a".repeat(200);
        let k = template_key(&long);
        let name = k.split_once('/').unwrap().1;
        assert!(name.len() <= 63, "{name}");
        assert_ne!(template_key(&"a".repeat(201)), k);
    }

    #[test]
    fn decisions() {
        let changed = ts("2026-12-06T10:00:00Z");
        let now = ts("2026-12-06T10:05:00Z");
        let secret = |changed_at: Option<jiff::Timestamp>| SecretVersion {
            name: "db".into(),
            hash: "aaaa".into(),
            changed_at,
        };
        let found = |created: &str, paused: bool, restarted_for: Option<&str>, at: Option<&str>| {
            Observed::Found {
                created: Some(ts(created)),
                paused,
                restarted_for: restarted_for.map(str::to_string),
                restarted_at: at.map(ts),
            }
        };
        let minute = Duration::from_secs(60);
        let ten = Duration::from_secs(600);
        let before = "2026-12-06T09:00:00Z";
        let after = "2026-12-06T10:01:00Z";
        #[rustfmt::skip]
        let table: Vec<(&str, SecretVersion, Observed, Duration, Decision)> = vec![
            ("first sync: never", secret(None), found(before, false, None, None), ZERO, Decision::UpToDate),
            ("first sync, missing target: nothing to say", secret(None), Observed::Missing, ZERO, Decision::UpToDate),
            ("changed, started before, never restarted", secret(Some(changed)), found(before, false, None, None), ZERO, Decision::Restart),
            ("changed, created after the change", secret(Some(changed)), found(after, false, None, None), ZERO, Decision::UpToDate),
            ("restarted for this data (a retry, a replica, a restart)", secret(Some(changed)), found(before, false, Some("aaaa"), None), ZERO, Decision::UpToDate),
            ("restarted for older data", secret(Some(changed)), found(after, false, Some("bbbb"), None), ZERO, Decision::Restart),
            ("paused", secret(Some(changed)), found(before, true, None, None), ZERO, Decision::Paused),
            ("paused but up to date", secret(Some(changed)), found(before, true, Some("aaaa"), None), ZERO, Decision::UpToDate),
            ("missing", secret(Some(changed)), Observed::Missing, ZERO, Decision::Missing),
            ("debounced: restarted 2 min ago, 10 min interval", secret(Some(changed)), found(before, false, Some("bbbb"), Some("2026-12-06T10:03:00Z")), ten, Decision::Wait(Duration::from_secs(480))),
            ("interval passed", secret(Some(changed)), found(before, false, Some("bbbb"), Some("2026-12-06T10:03:00Z")), minute, Decision::Restart),
            ("no interval", secret(Some(changed)), found(before, false, Some("bbbb"), Some("2026-12-06T10:04:59Z")), ZERO, Decision::Restart),
        ];
        for (case, s, o, interval, want) in table {
            assert_eq!(decide(&s, &o, interval, now), want, "{case}");
        }
    }
    const ZERO: Duration = Duration::ZERO;

    #[test]
    fn stamps_only_a_change_from_a_previous_value() {
        let now = ts("2026-12-06T10:00:00Z");
        let data = |v: &str| BTreeMap::from([("k".to_string(), ByteString(v.into()))]);
        let secret = |hash: Option<String>, at: Option<&str>| {
            let mut s = Secret::default();
            let a = s.metadata.annotations.get_or_insert_default();
            if let Some(h) = hash {
                a.insert(DATA_HASH_ANNOTATION.into(), h);
            }
            if let Some(at) = at {
                a.insert(CHANGED_AT_ANNOTATION.into(), at.into());
            }
            s
        };
        let stamped = |existing: Option<&Secret>, d: &BTreeMap<String, ByteString>| {
            let mut a = BTreeMap::new();
            stamp(existing, d, &mut a, now);
            a.get(CHANGED_AT_ANNOTATION).cloned()
        };
        let old_hash = super::super::target::data_hash(&data("old"));
        // Created: no stamp.
        assert_eq!(stamped(None, &data("v")), None);
        // Changed: now.
        let s = secret(Some(old_hash.clone()), None);
        assert_eq!(stamped(Some(&s), &data("new")), Some(now.to_string()));
        // Unchanged: none, or the last one kept.
        assert_eq!(stamped(Some(&s), &data("old")), None);
        let s = secret(Some(old_hash), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            stamped(Some(&s), &data("old")),
            Some("2026-01-01T00:00:00Z".into())
        );
        // A Secret without esox's hash (adopted): no previous value known, no stamp.
        assert_eq!(stamped(Some(&secret(None, None)), &data("x")), None);
    }

    #[test]
    fn reloader_annotations() {
        let a = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let named = a(&[(RELOADER_RELOAD, "other, db-credentials-native")]);
        assert_eq!(
            reloader_interest(&named, "db-credentials-native"),
            Some(true)
        );
        assert_eq!(reloader_interest(&named, "db"), None);
        assert_eq!(
            reloader_interest(&a(&[(RELOADER_AUTO, "true")]), "x"),
            Some(false)
        );
        assert_eq!(
            reloader_interest(&a(&[(RELOADER_SECRET_AUTO, "true")]), "x"),
            Some(false)
        );
        assert_eq!(
            reloader_interest(&a(&[(RELOADER_AUTO, "false")]), "x"),
            None
        );
        assert_eq!(reloader_interest(&a(&[]), "x"), None);
    }

    #[test]
    fn pod_spec_uses() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "c",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "p"}}}],
                "envFrom": [{"secretRef": {"name": "envfrom-secret"}}]}],
            "volumes": [
                {"name": "v", "secret": {"secretName": "vol-secret"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}]}}
            ]
        }))
        .unwrap();
        for s in ["env-secret", "envfrom-secret", "vol-secret", "proj-secret"] {
            assert!(pod_uses_secret(&spec, s), "{s}");
        }
        assert!(!pod_uses_secret(&spec, "other"));
    }
}
