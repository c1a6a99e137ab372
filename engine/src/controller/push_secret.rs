//! The PushSecret reconciler: a cluster Secret (or a generator's output) pushed to stores.
//!
//! ESO's behaviour and words (`pkg/controllers/pushsecret/pushsecret_controller.go`, v2.9.0):
//! `deletionPolicy: Delete` puts ESO's finalizer `pushsecret.externalsecrets.io/finalizer` on
//! the PushSecret and deletes, on deletion, every entry of `status.syncedPushSecrets` (the
//! finalizer stays while a delete fails); entries dropped from `data[]` and stores dropped from
//! `secretStoreRefs` are deleted too; a deleted source Secret (by name) cleans the provider up
//! (`SourceDeleted`). `updatePolicy: IfNotExists` asks the provider first. Reasons `Synced`,
//! `Errored`, `SourceDeleted`; messages as ESO's.
//!
//! `spec.template` is rendered by the ExternalSecret template code (Go template or minijinja,
//! in Wasm) before anything is pushed; `data[]` and `dataTo` are planned per store by
//! [`super::push_data`]. The middle is pure ([`super::push_data::plan`], [`stale`],
//! [`refresh_due`], [`conflict`]); IO is at the edges and every failure is reported in one
//! place ([`report`]). Where esox does better:
//!
//! - a push whose remote value already equals the source is not written (the provider
//!   compares first, ESO #5443), and a `Synced` event is sent only when something changed;
//! - bad input is a clear `Errored` condition and Warning event instead of a silent no-op: a
//!   store that cannot be written (capabilities `ReadOnly`), a label selector (Secrets or
//!   stores) that matches nothing, and two PushSecrets pushing one remote key (the one that
//!   pushed it first keeps it; the other pushes nothing there);
//! - with the annotation `esox.dev/push-on-source-change: "true"` the source Secret is
//!   watched (metadata only, by name, one field-selected watch per Secret) and a change
//!   is pushed at once instead of at the next `refreshInterval` (ESO #6069).
//!
//! The source Secret is read live (GET, or a labelled LIST) when a push is due: esox never
//! caches Secret data it does not manage. A PushSecret reconciles on its own changes and on
//! its refresh interval, so that is one read per interval, as ESO.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};
use regex::Regex;
use serde_json::json;
use tracing::{debug, info, instrument, warn};

use super::context::Context;
use super::push_data::{self, StoreInfo};
use super::resolve::{ResolvedStore, StoreResolver, selector_matches};
use crate::api::push_secret::{
    PUSH_SECRET_FINALIZER, PushSecretConversionStrategy, PushSecretData as SpecData,
    PushSecretDeletionPolicy, PushSecretUpdatePolicy, SyncedPushSecretsMap,
};
use crate::api::{Condition, PushSecret, SecretStoreRef, StoreKind, condition::set_condition};
use crate::pipeline::DataSource;
use crate::provider::{self, PushOutcome, PushSecretData, RemoteRef, SourceSecret};
use crate::secret::SecretBytes;

/// The annotation that opts a PushSecret into watching its source Secret.
pub const WATCH_SOURCE_ANNOTATION: &str = "esox.dev/push-on-source-change";

/// ESO's condition reasons and messages.
pub mod message {
    /// Reason: pushed.
    pub const SYNCED: &str = "Synced";
    /// Reason: failed.
    pub const ERRORED: &str = "Errored";
    /// Reason: the source Secret went and the provider was cleaned up.
    pub const SOURCE_DELETED: &str = "SourceDeleted";
    /// Message on success.
    pub const SYNCED_OK: &str = "PushSecret synced successfully";
    /// Appended with `updatePolicy: IfNotExists`.
    pub const UNCHANGED_SUFFIX: &str = ". Existing secrets in providers unchanged.";
    /// The source could not be read.
    pub const NO_SOURCE: &str = "could not get source secret";
    /// The source went; what was pushed was deleted.
    pub const SOURCE_CLEANED: &str = "source secret deleted; provider secrets cleaned up";
}

/// PushSecret reconcile errors that make the reconcile retry (user-facing failures are
/// reported in the status instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
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

impl Error {
    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

// ---------------------------------------------------------------------------------------
// Pure planning
// ---------------------------------------------------------------------------------------

/// ESO's status key of a store: `<Kind>/<name>`.
pub fn store_key(kind: StoreKind, name: &str) -> String {
    format!("{kind}/{name}")
}

/// The store a status key names.
pub fn parse_store_key(key: &str) -> Option<SecretStoreRef> {
    let (kind, name) = key.split_once('/')?;
    let kind = match kind {
        "SecretStore" => StoreKind::SecretStore,
        "ClusterSecretStore" => StoreKind::ClusterSecretStore,
        _ => return None,
    };
    Some(SecretStoreRef {
        name: name.to_string(),
        kind: Some(kind),
    })
}

/// The provider's view of a spec entry.
pub fn to_provider(d: &SpecData) -> PushSecretData {
    PushSecretData {
        secret_key: d.match_.secret_key.clone().filter(|k| !k.is_empty()),
        remote: RemoteRef {
            remote_key: d.match_.remote_ref.remote_key.clone(),
            property: d
                .match_
                .remote_ref
                .property
                .clone()
                .filter(|p| !p.is_empty()),
        },
        metadata: d.metadata.clone().filter(|m| !m.is_null()),
    }
}

/// `_U005b_` → `[` (ESO's `ReverseUnicode` on source key names).
pub fn reverse_unicode(key: &str) -> String {
    static RE: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new("_U([0-9a-fA-F]{4})_").expect("valid regex"));
    RE.replace_all(key, |c: &regex::Captures| {
        u32::from_str_radix(&c[1], 16)
            .ok()
            .and_then(char::from_u32)
            .map(String::from)
            .unwrap_or_else(|| c[0].to_string())
    })
    .into_owned()
}

/// The source as an entry with `strategy` sees it.
pub fn converted(source: &SourceSecret, strategy: PushSecretConversionStrategy) -> SourceSecret {
    match strategy {
        PushSecretConversionStrategy::None => source.clone(),
        PushSecretConversionStrategy::ReverseUnicode => SourceSecret {
            data: source
                .data
                .iter()
                .map(|(k, v)| (reverse_unicode(k), v.clone()))
                .collect(),
            ..source.clone()
        },
    }
}

/// Entries pushed before (`old`) that are no longer pushed (`new`): with `deletionPolicy:
/// Delete` they are deleted from their providers (a removed entry, a removed store).
pub fn stale(old: &SyncedPushSecretsMap, new: &SyncedPushSecretsMap) -> Vec<(String, SpecData)> {
    let mut out = Vec::new();
    for (store, entries) in old {
        for (key, d) in entries {
            if !new.get(store).is_some_and(|n| n.contains_key(key)) {
                out.push((store.clone(), d.clone()));
            }
        }
    }
    out
}

/// ESO's `syncedResourceVersion`: the generation and a hash of labels and annotations.
pub fn resource_version(ps: &PushSecret) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ps.labels().hash(&mut h);
    ps.annotations()
        .iter()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .collect::<Vec<_>>()
        .hash(&mut h);
    format!(
        "{}-{:x}",
        ps.metadata.generation.unwrap_or_default(),
        h.finish()
    )
}

/// ESO's `shouldRefresh`: `None` = push now, `Some(d)` = the next push is due in `d`
/// (`Duration::MAX`: never again, `refreshInterval: 0` after one push).
pub fn refresh_due(ps: &PushSecret, interval: Duration, now: jiff::Timestamp) -> Option<Duration> {
    let status = ps.status.as_ref()?;
    if status.synced_resource_version.as_deref() != Some(resource_version(ps).as_str()) {
        return None;
    }
    let last = status.refresh_time.as_ref()?;
    if interval.is_zero() {
        return Some(Duration::MAX);
    }
    let elapsed = now
        .duration_since(last.0)
        .unsigned_abs()
        .min(Duration::from_secs(u32::MAX.into()));
    if now < last.0 {
        return Some(interval);
    }
    (elapsed < interval).then(|| interval - elapsed)
}

/// Whether another PushSecret already pushes `remote` to `store` (it pushed first: the
/// remote key is its). A namespaced store is only shared within its namespace.
pub fn conflict(
    me: &PushSecret,
    others: &[Arc<PushSecret>],
    store: &str,
    remote: &str,
) -> Option<String> {
    let my_ns = me.namespace().unwrap_or_default();
    others
        .iter()
        .filter(|o| o.uid() != me.uid())
        .filter(|o| {
            store.starts_with("ClusterSecretStore/") || o.namespace().unwrap_or_default() == my_ns
        })
        .find(|o| {
            o.status
                .as_ref()
                .and_then(|s| s.synced_push_secrets.as_ref())
                .and_then(|m| m.get(store))
                .is_some_and(|m| m.contains_key(remote))
        })
        .map(|o| {
            format!(
                "remote key {remote} in {store} is already pushed by PushSecret {}/{}",
                o.namespace().unwrap_or_default(),
                o.name_any()
            )
        })
}

// ---------------------------------------------------------------------------------------
// IO
// ---------------------------------------------------------------------------------------

/// What a PushSecret reconcile reads besides its own object.
pub struct PushContext {
    /// The shared controller context (client, caches, providers, events).
    pub ctx: Arc<Context>,
    /// Every PushSecret (for conflicting pushes).
    pub push_secrets: Store<PushSecret>,
    /// Consecutive failures per PushSecret (backoff), reset on success.
    failures: Mutex<HashMap<ObjectRef<PushSecret>, u32>>,
    /// Source-Secret watches of PushSecrets that opted in.
    pub source_watches: SourceWatches,
}

/// The outcome of one push pass.
struct Outcome {
    ready: bool,
    reason: &'static str,
    message: String,
    synced: SyncedPushSecretsMap,
    written: bool,
    requeue: Option<Duration>,
    /// Every store is another controller class's: nothing was pushed, nothing is reported.
    left_alone: bool,
}

fn secret_to_source(s: &Secret) -> SourceSecret {
    SourceSecret {
        name: s.name_any(),
        namespace: s.namespace().unwrap_or_default(),
        type_: s.type_.clone().unwrap_or_else(|| "Opaque".into()),
        data: s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), SecretBytes::new(v.0.clone())))
            .chain(
                s.string_data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), SecretBytes::from(v.as_str()))),
            )
            .collect(),
        labels: s.labels().clone(),
        annotations: s.annotations().clone(),
    }
}

enum Sources {
    Found(Vec<SourceSecret>),
    /// The named Secret does not exist.
    Missing,
    Failed(String),
}

async fn sources(ps: &PushSecret, resolver: &StoreResolver<'_>, client: &kube::Client) -> Sources {
    let ns = ps.namespace().unwrap_or_default();
    let sel = &ps.spec.selector;
    if let Some(gen_ref) = &sel.generator_ref {
        return match resolver.generate(gen_ref).await {
            Ok(data) => Sources::Found(vec![SourceSecret {
                name: "___generated-secret".into(),
                namespace: ns,
                type_: "Opaque".into(),
                data,
                ..Default::default()
            }]),
            Err(e) => Sources::Failed(format!("{}: {e}", message::NO_SOURCE)),
        };
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let Some(secret) = &sel.secret else {
        return Sources::Failed(format!(
            "{}: spec.selector needs secret or generatorRef",
            message::NO_SOURCE
        ));
    };
    if let Some(name) = secret.name.as_deref().filter(|n| !n.is_empty()) {
        return match api.get_opt(name).await {
            Ok(Some(s)) => Sources::Found(vec![secret_to_source(&s)]),
            Ok(None) => Sources::Missing,
            Err(e) => Sources::Failed(format!("{}: {e}", message::NO_SOURCE)),
        };
    }
    let Some(selector) = &secret.selector else {
        return Sources::Failed(format!(
            "{}: spec.selector.secret needs a name or a selector",
            message::NO_SOURCE
        ));
    };
    let labels = match label_selector_string(selector) {
        Ok(l) => l,
        Err(e) => return Sources::Failed(format!("{}: {e}", message::NO_SOURCE)),
    };
    match api.list(&ListParams::default().labels(&labels)).await {
        Ok(list) if list.items.is_empty() => Sources::Failed(format!(
            "{}: no Secret in namespace {ns} matches spec.selector.secret.selector",
            message::NO_SOURCE
        )),
        Ok(list) => {
            let mut found: Vec<SourceSecret> = list.items.iter().map(secret_to_source).collect();
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Sources::Found(found)
        }
        Err(e) => Sources::Failed(format!("{}: {e}", message::NO_SOURCE)),
    }
}

/// A LabelSelector as a list selector string.
fn label_selector_string(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<String, String> {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        });
    }
    Ok(parts.join(","))
}

/// The stores the PushSecret names (by name or label selector), as `(status key, store)`;
/// a store's labels come from the watch cache (for `dataTo[].storeRef.labelSelector`).
fn store_refs(ps: &PushSecret, ctx: &Context) -> Result<Vec<(String, StoreInfo)>, String> {
    let ns = ps.namespace().unwrap_or_default();
    let caches = ctx.caches.get();
    let namespaced = || {
        caches
            .map(|c| c.secret_stores.state())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .map(|s| (s.name_any(), s.labels().clone()))
            .collect::<Vec<_>>()
    };
    let cluster = || {
        caches
            .and_then(|c| c.cluster_stores.as_ref())
            .map(|c| c.state())
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name_any(), s.labels().clone()))
            .collect::<Vec<_>>()
    };
    let mut out = BTreeMap::new();
    for r in &ps.spec.secret_store_refs {
        let kind = r.kind.unwrap_or_default();
        let known = match kind {
            StoreKind::SecretStore => namespaced(),
            StoreKind::ClusterSecretStore => cluster(),
        };
        if let Some(sel) = &r.label_selector {
            let names: Vec<_> = known
                .into_iter()
                .filter(|(_, labels)| selector_matches(sel, labels))
                .collect();
            if names.is_empty() {
                return Err(format!("no {kind} matches secretStoreRefs[].labelSelector"));
            }
            for (name, labels) in names {
                out.insert(store_key(kind, &name), StoreInfo { kind, name, labels });
            }
        } else {
            let name = r.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err("refStore Name must be provided".into());
            }
            let labels = known
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, l)| l)
                .unwrap_or_default();
            out.insert(store_key(kind, &name), StoreInfo { kind, name, labels });
        }
    }
    Ok(out.into_iter().collect())
}

/// The `spec.controller` of a store a PushSecret names, from the watch cache (`None` for a
/// store not in it: resolving it reports what is wrong).
fn store_class(ctx: &Context, ns: &str, store: &StoreInfo) -> Option<String> {
    let caches = ctx.caches.get()?;
    match store.kind {
        StoreKind::SecretStore => caches
            .secret_store(ns, &store.name)?
            .spec
            .controller
            .clone(),
        StoreKind::ClusterSecretStore => caches.cluster_store(&store.name)?.spec.controller.clone(),
    }
}

/// Whether every store `ps` names is of another controller class: the PushSecret is another
/// controller's, and is left alone (ESO: no store left, no condition, no requeue).
fn all_stores_foreign(ps: &PushSecret, ctx: &Context) -> bool {
    let ns = ps.namespace().unwrap_or_default();
    match store_refs(ps, ctx) {
        Ok(stores) => {
            !stores.is_empty()
                && stores.iter().all(|(_, s)| {
                    !ctx.settings
                        .class
                        .serves(store_class(ctx, &ns, s).as_deref())
                })
        }
        Err(_) => false,
    }
}

/// The template step (ESO's `applyTemplate`, run by esox's template code in Wasm): each
/// source with `spec.template` applied. As in ESO, the rendered keys are added to the
/// source's (replacing those of the same name; `mergePolicy` has no effect), the template's
/// labels and annotations are merged over the source's, and the type becomes the template's.
/// Errors are the ExternalSecret template's, values redacted.
async fn render_templates(
    ps: &PushSecret,
    ctx: &Context,
    sources: Vec<SourceSecret>,
) -> Result<Vec<SourceSecret>, String> {
    let Some(tpl) = &ps.spec.template else {
        return Ok(sources);
    };
    let ns = ps.namespace().unwrap_or_default();
    let from = super::external_secret::template_sources(ctx, &ns, tpl)
        .await
        .map_err(|e| format!("could not apply template: {e}"))?;
    let runner = super::plugins::ControllerRunner::new(ctx, &ns);
    let merged = crate::api::ExternalSecretTemplate {
        merge_policy: crate::api::TemplateMergePolicy::Merge,
        ..tpl.clone()
    };
    let mut out = Vec::with_capacity(sources.len());
    for source in sources {
        let rendered = crate::template::apply(
            Some(&merged),
            &source.labels,
            &source.annotations,
            source.data.clone(),
            &from,
            &runner,
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut labels = source.labels.clone();
        labels.extend(rendered.labels);
        let mut annotations = source.annotations.clone();
        annotations.extend(rendered.annotations);
        out.push(SourceSecret {
            type_: rendered.type_.unwrap_or_default(),
            data: rendered.data,
            labels,
            annotations,
            ..source
        });
    }
    Ok(out)
}

fn resolver<'a>(ctx: &'a Context, ns: &'a str) -> StoreResolver<'a> {
    StoreResolver::new(ctx, ns, None, Duration::ZERO)
}

async fn connect(
    resolver: &StoreResolver<'_>,
    key: &str,
    store: &SecretStoreRef,
) -> Result<ResolvedStore, String> {
    resolver
        .store(store)
        .await
        .map_err(|e| format!("could not get secrets client for store {key}: {e}"))
}

/// Deletes `entries` from their stores; returns those that could not be deleted, and the
/// first error.
async fn delete_entries(
    ctx: &Context,
    ns: &str,
    entries: Vec<(String, SpecData)>,
) -> (SyncedPushSecretsMap, Option<String>) {
    let resolver = resolver(ctx, ns);
    let deadline = ctx.settings.provider_timeout;
    let mut left = SyncedPushSecretsMap::new();
    let mut first = None;
    for (store, d) in entries {
        let p = to_provider(&d);
        let result = match parse_store_key(&store) {
            None => Err(format!("unknown store {store}")),
            Some(r) => match connect(&resolver, &store, &r).await {
                Err(e) => Err(e),
                Ok(s) => provider::with_deadline(
                    deadline,
                    || format!("delete {}", p.remote.status_key()),
                    s.provider.delete_secret(&p),
                )
                .await
                .map_err(|e| e.to_string()),
            },
        };
        match result {
            Ok(()) => {
                info!(store = %store, remote = %p.remote.status_key(), "deleted pushed secret")
            }
            Err(e) => {
                warn!(store = %store, remote = %p.remote.status_key(), error = %e, "could not delete pushed secret");
                first.get_or_insert(e);
                left.entry(store)
                    .or_default()
                    .insert(p.remote.status_key(), d);
            }
        }
    }
    (left, first)
}

/// Pushes every source to every store; ESO's flow, one outcome.
async fn push(ps: &PushSecret, pctx: &PushContext) -> Outcome {
    let ctx = &pctx.ctx;
    let ns = ps.namespace().unwrap_or_default();
    let old: SyncedPushSecretsMap = ps
        .status
        .as_ref()
        .and_then(|s| s.synced_push_secrets.clone())
        .unwrap_or_default();
    let delete_policy = ps.spec.deletion_policy() == PushSecretDeletionPolicy::Delete;
    let resolver = resolver(ctx, &ns);
    let fail = |message: String, synced: SyncedPushSecretsMap| Outcome {
        ready: false,
        reason: message::ERRORED,
        message,
        synced,
        written: false,
        requeue: None,
        left_alone: false,
    };

    // The webhook's rules (ESO's reconcile-time failures, caught before anything is read).
    let invalid = crate::api::validate::push_secret(&ps.spec);
    if !invalid.is_empty() {
        return fail(invalid.join("\n"), old);
    }
    let sources = match sources(ps, &resolver, &ctx.client).await {
        Sources::Found(s) => s,
        Sources::Missing
            if delete_policy && !old.is_empty() && ps.spec.selector.generator_ref.is_none() =>
        {
            let all = stale(&old, &SyncedPushSecretsMap::new());
            let (left, err) = delete_entries(ctx, &ns, all).await;
            return match err {
                None => Outcome {
                    ready: false,
                    reason: message::SOURCE_DELETED,
                    message: message::SOURCE_CLEANED.into(),
                    synced: SyncedPushSecretsMap::new(),
                    written: true,
                    requeue: None,
                    left_alone: false,
                },
                Some(e) => fail(format!("Failed to Delete Secrets from Provider: {e}"), left),
            };
        }
        Sources::Missing => {
            return fail(message::NO_SOURCE.into(), old);
        }
        Sources::Failed(m) => return fail(m, old),
    };
    let stores = match store_refs(ps, ctx) {
        Ok(s) => s,
        Err(e) => return fail(e, old),
    };
    // Stores of another controller class are not pushed to (ESO drops them); what was pushed
    // to them before is kept in the status, never deleted as stale.
    let (stores, foreign): (Vec<_>, Vec<_>) = stores.into_iter().partition(|(_, s)| {
        ctx.settings
            .class
            .serves(store_class(ctx, &ns, s).as_deref())
    });
    if stores.is_empty() && !foreign.is_empty() {
        return Outcome {
            left_alone: true,
            ..fail(String::new(), old)
        };
    }
    let infos: Vec<StoreInfo> = stores.iter().map(|(_, s)| s.clone()).collect();
    if let Err(e) = push_data::check_selectors_match(&ps.spec.data_to, &infos) {
        return fail(e, old);
    }
    let sources = match render_templates(ps, ctx, sources).await {
        Ok(s) => s,
        Err(e) => return fail(e, old),
    };
    // Every (source, store) is planned before anything is pushed: bad input pushes nothing.
    let renamer = crate::template::GoKeyRenamer {
        host: &ctx.plugins,
        metrics: &ctx.metrics,
    };
    let mut plans = Vec::new();
    for source in &sources {
        let mut per_store = Vec::with_capacity(stores.len());
        for (key, store) in &stores {
            match push_data::plan(&ps.spec.data, &ps.spec.data_to, store, source, &renamer).await {
                Ok(entries) => per_store.push((key, store, entries)),
                Err(e) => return fail(format!("set secret failed: {e}"), old),
            }
        }
        plans.push(per_store);
    }
    let others = pctx.push_secrets.state();
    let deadline = ctx.settings.provider_timeout;
    let if_not_exists = ps.spec.update_policy() == PushSecretUpdatePolicy::IfNotExists;
    let mut synced = SyncedPushSecretsMap::new();
    for (key, _) in &foreign {
        if let Some(entries) = old.get(key) {
            synced.insert(key.clone(), entries.clone());
        }
    }
    let mut written = false;
    let mut error: Option<String> = None;

    'sources: for per_store in &plans {
        for (key, info, entries) in per_store {
            let key: &String = key;
            let store_ref = info.store_ref();
            let store = match connect(&resolver, key, &store_ref).await {
                Ok(s) => s,
                Err(e) => {
                    error = Some(format!("set secret failed: {e}"));
                    break 'sources;
                }
            };
            let caps = store.provider.capabilities();
            if !caps.can_push() {
                error = Some(format!(
                    "set secret failed: store {key} cannot be pushed to: its capabilities are {}",
                    caps.as_str()
                ));
                break 'sources;
            }
            for push_data::Entry { data: d, view } in entries {
                let p = to_provider(d);
                let status_key = p.remote.status_key();
                if let Some(c) = conflict(ps, &others, key, &status_key) {
                    error = Some(format!("set secret failed: {c}"));
                    break 'sources;
                }
                if if_not_exists {
                    match provider::with_deadline(
                        deadline,
                        || format!("exists {status_key}"),
                        store.provider.secret_exists(&p),
                    )
                    .await
                    {
                        Ok(true) => {
                            synced
                                .entry(key.clone())
                                .or_default()
                                .insert(status_key, d.clone());
                            continue;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            error = Some(format!(
                                "set secret failed: could not verify if secret exists in store: {e}"
                            ));
                            break 'sources;
                        }
                    }
                }
                match provider::with_deadline(
                    deadline,
                    || format!("push {status_key}"),
                    store.provider.push_secret(view, &p),
                )
                .await
                {
                    Ok(outcome) => {
                        written |= outcome == PushOutcome::Written;
                        debug!(store = %key, remote = %status_key, ?outcome, "pushed");
                        synced
                            .entry(key.clone())
                            .or_default()
                            .insert(status_key, d.clone());
                    }
                    Err(e) => {
                        error = Some(format!(
                            "set secret failed: could not write remote ref {} to target secretstore {}: {e}",
                            p.remote.remote_key, info.name
                        ));
                        break 'sources;
                    }
                }
            }
        }
    }
    if let Some(e) = error {
        // ESO keeps the old entries and adds the new ones.
        let mut merged = old;
        for (store, entries) in synced {
            merged.entry(store).or_default().extend(entries);
        }
        return fail(e, merged);
    }
    if delete_policy {
        let gone = stale(&old, &synced);
        if !gone.is_empty() {
            written = true;
            let (left, err) = delete_entries(ctx, &ns, gone).await;
            for (store, entries) in left {
                synced.entry(store).or_default().extend(entries);
            }
            if let Some(e) = err {
                return fail(
                    format!("Failed to Delete Secrets from Provider: {e}"),
                    synced,
                );
            }
        }
    }
    let mut message = message::SYNCED_OK.to_string();
    if if_not_exists {
        message.push_str(message::UNCHANGED_SUFFIX);
    }
    Outcome {
        ready: true,
        reason: message::SYNCED,
        message,
        synced,
        written,
        requeue: None,
        left_alone: false,
    }
}

fn interval(ps: &PushSecret) -> Duration {
    crate::api::duration::parse(ps.spec.refresh_interval()).unwrap_or(Duration::from_secs(3600))
}

/// Reconciles one PushSecret.
#[instrument(skip_all, fields(namespace = %ps.namespace().unwrap_or_default(), name = %ps.name_any()))]
pub async fn reconcile(ps: Arc<PushSecret>, pctx: Arc<PushContext>) -> Result<Action, Error> {
    let ctx = &pctx.ctx;
    let ns = ps.namespace().unwrap_or_default();
    let key = ObjectRef::from_obj(ps.as_ref());
    // `--shard-mode`: another replica's object (or the membership is changing).
    let _claim = match ctx.claim(KIND, &ns, &ps.name_any()) {
        Ok(claim) => claim,
        Err(refused) => {
            if refused == crate::shard::Refusal::NotOwned {
                forget_local_state(&key, &pctx);
            }
            return Ok(Action::await_change());
        }
    };
    let api: Api<PushSecret> = Api::namespaced(ctx.client.clone(), &ns);
    pctx.source_watches.update(&ps);
    let has_finalizer = ps.finalizers().iter().any(|f| f == PUSH_SECRET_FINALIZER);

    if ps.metadata.deletion_timestamp.is_some() {
        pctx.source_watches.forget(&key);
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        let old = ps
            .status
            .as_ref()
            .and_then(|s| s.synced_push_secrets.clone())
            .unwrap_or_default();
        let (left, err) = delete_entries(ctx, &ns, stale(&old, &SyncedPushSecretsMap::new())).await;
        if let Some(e) = err {
            let outcome = Outcome {
                ready: false,
                reason: message::ERRORED,
                message: format!("Failed to Delete Secrets from Provider: {e}"),
                synced: left,
                written: false,
                requeue: None,
                left_alone: false,
            };
            report(&ps, &api, &pctx, outcome).await?;
            return Ok(Action::requeue(backoff(&pctx, &key)));
        }
        set_finalizer(&api, &ps, false).await?;
        return Ok(Action::await_change());
    }

    // The store caches say which stores are this controller's (and their labels, for
    // `labelSelector`s): nothing is decided before their first lists are in.
    if ctx.caches.get().is_none() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if all_stores_foreign(&ps, ctx) {
        return Ok(left_alone(&ps, ctx));
    }
    let wants_finalizer = ps.spec.deletion_policy() == PushSecretDeletionPolicy::Delete;
    if wants_finalizer != has_finalizer {
        set_finalizer(&api, &ps, wants_finalizer).await?;
    }

    let every = interval(&ps);
    let forced = pctx.source_watches.take_changed(&key);
    if !forced && let Some(wait) = refresh_due(&ps, every, jiff::Timestamp::now()) {
        if wait == Duration::MAX {
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(wait + Duration::from_secs(5)));
    }
    let outcome = push(&ps, &pctx).await;
    if outcome.left_alone {
        return Ok(left_alone(&ps, ctx));
    }
    let ready = outcome.ready;
    let requeue = outcome.requeue;
    report(&ps, &api, &pctx, outcome).await?;
    if !ready {
        return Ok(Action::requeue(backoff(&pctx, &key)));
    }
    pctx.failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&key);
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None if every.is_zero() => Action::await_change(),
        None => Action::requeue(every),
    })
}

/// A PushSecret that pushes only to stores of another controller class: nothing is written;
/// it is looked at again each refresh interval, in case a store turned to this class.
fn left_alone(ps: &PushSecret, ctx: &Context) -> Action {
    debug!(
        class = ctx.settings.class.as_str(),
        "pushes only to stores of another controller class; left alone"
    );
    let every = interval(ps);
    if every.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(every)
    }
}

/// The kind, as sharding names it.
pub const KIND: &str = "PushSecret";

/// Drops what this replica keeps about a PushSecret another replica owns now (or that is
/// gone): its source-Secret watch and its backoff.
fn forget_local_state(key: &ObjectRef<PushSecret>, pctx: &PushContext) {
    pctx.source_watches.forget(key);
    pctx.failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(key);
}

fn backoff(pctx: &PushContext, key: &ObjectRef<PushSecret>) -> Duration {
    let mut f = pctx
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = f.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    super::refresh::backoff(n.saturating_sub(1))
}

async fn set_finalizer(api: &Api<PushSecret>, ps: &PushSecret, on: bool) -> Result<(), Error> {
    let mut finalizers: Vec<String> = ps
        .finalizers()
        .iter()
        .filter(|f| *f != PUSH_SECRET_FINALIZER)
        .cloned()
        .collect();
    if on {
        finalizers.push(PUSH_SECRET_FINALIZER.into());
    }
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": ps.resource_version(),
    }});
    api.patch(
        &ps.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(kube_err(if on {
        "could not add the PushSecret's finalizer"
    } else {
        "could not remove the PushSecret's finalizer"
    }))?;
    Ok(())
}

/// Writes the status (only when it changed) and the event: every outcome is reported here.
async fn report(
    ps: &PushSecret,
    api: &Api<PushSecret>,
    pctx: &PushContext,
    outcome: Outcome,
) -> Result<(), Error> {
    let old = ps.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let before = old.conditions.iter().find(|c| c.type_ == "Ready").cloned();
    let cond = Condition::new(
        "Ready",
        outcome.ready,
        outcome.reason,
        outcome.message.clone(),
    );
    set_condition(&mut new.conditions, cond.clone());
    new.synced_push_secrets = Some(outcome.synced);
    if outcome.ready || outcome.reason == message::SOURCE_DELETED {
        new.refresh_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        new.synced_resource_version = Some(resource_version(ps));
    }
    let changed_condition = before.as_ref().is_none_or(|b| !b.same_as(&cond));
    if new != old {
        // Replace the whole status: a merge patch would keep removed map entries.
        let patch: Patch<serde_json::Value> = Patch::Json(
            serde_json::from_value(json!([
                {"op": "add", "path": "/status", "value": new}
            ]))
            .expect("a valid JSON patch"),
        );
        api.patch_status(&ps.name_any(), &PatchParams::default(), &patch)
            .await
            .map_err(kube_err("could not update the PushSecret's status"))?;
    }
    let (type_, send) = if outcome.ready {
        (EventType::Normal, outcome.written || changed_condition)
    } else if outcome.reason == message::SOURCE_DELETED {
        (EventType::Normal, changed_condition)
    } else {
        (EventType::Warning, true)
    };
    if send {
        pctx.ctx
            .publish(
                &ps.object_ref(&()),
                type_,
                outcome.reason,
                &outcome.message,
                "Push",
            )
            .await;
    }
    if outcome.ready {
        info!(message = %outcome.message, written = outcome.written, "pushed");
    } else {
        warn!(reason = outcome.reason, message = %outcome.message, "push failed");
    }
    Ok(())
}

/// kube's error policy: a Kubernetes API failure retries with per-object backoff.
pub fn error_policy(ps: Arc<PushSecret>, err: &Error, pctx: Arc<PushContext>) -> Action {
    warn!(error = %err, label = err.metric_label(), "PushSecret reconcile failed");
    Action::requeue(backoff(&pctx, &ObjectRef::from_obj(ps.as_ref())))
}

// ---------------------------------------------------------------------------------------
// Source-Secret watches (opt-in)
// ---------------------------------------------------------------------------------------

/// One metadata-only, field-selected watch per source Secret of a PushSecret that opted in
/// (`esox.dev/push-on-source-change: "true"`, a source by name). A change to the Secret
/// (its resourceVersion) reconciles the PushSecrets watching it, and they push at once.
#[derive(Clone)]
pub struct SourceWatches {
    inner: Arc<Mutex<SourceWatchState>>,
    client: kube::Client,
    /// How many Secrets are watched (`esox_pushsecret_source_watches`).
    gauge: prometheus_client::metrics::gauge::Gauge,
    tx: tokio::sync::mpsc::UnboundedSender<ObjectRef<PushSecret>>,
}

#[derive(Default)]
struct SourceWatchState {
    /// (namespace, Secret name) → the watch task and the PushSecrets it serves.
    watches: HashMap<(String, String), (tokio::task::JoinHandle<()>, BTreeSet<String>)>,
    /// PushSecret → the Secret it watches.
    by_push: HashMap<ObjectRef<PushSecret>, (String, String)>,
    /// PushSecret → when it last pushed (its status' `refreshTime`), if it has.
    pushed_at: HashMap<ObjectRef<PushSecret>, jiff::Timestamp>,
    /// (namespace, Secret name) → when its watch last saw it written.
    written: HashMap<(String, String), jiff::Timestamp>,
    /// PushSecrets whose source changed since their last push.
    changed: BTreeSet<(String, String)>,
}

impl Drop for SourceWatchState {
    fn drop(&mut self) {
        for (task, _) in self.watches.values() {
            task.abort();
        }
    }
}

impl SourceWatches {
    fn new(
        client: kube::Client,
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> (
        Self,
        tokio::sync::mpsc::UnboundedReceiver<ObjectRef<PushSecret>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            SourceWatches {
                inner: Arc::default(),
                client,
                gauge,
                tx,
            },
            rx,
        )
    }

    /// Starts or stops the watch `ps` asks for.
    pub fn update(&self, ps: &PushSecret) {
        let key = ObjectRef::from_obj(ps);
        let wanted = ps
            .annotations()
            .get(WATCH_SOURCE_ANNOTATION)
            .is_some_and(|v| v == "true")
            && ps.metadata.deletion_timestamp.is_none();
        let source = ps
            .spec
            .selector
            .secret
            .as_ref()
            .and_then(|s| s.name.clone())
            .filter(|n| !n.is_empty());
        match (wanted, source) {
            (true, Some(name)) => {
                let pushed_at = ps
                    .status
                    .as_ref()
                    .and_then(|s| s.refresh_time.as_ref())
                    .map(|t| t.0);
                self.watch(key, ps.namespace().unwrap_or_default(), name, pushed_at)
            }
            _ => self.forget(&key),
        }
    }

    /// How many Secrets are watched (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().watches.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SourceWatchState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn watch(
        &self,
        ps: ObjectRef<PushSecret>,
        ns: String,
        secret: String,
        pushed_at: Option<jiff::Timestamp>,
    ) {
        let mut st = self.lock();
        let target = (ns.clone(), secret.clone());
        if st.by_push.get(&ps) == Some(&target) {
            match pushed_at {
                Some(at) => st.pushed_at.insert(ps, at),
                None => st.pushed_at.remove(&ps),
            };
            return;
        }
        drop(st);
        self.forget(&ps);
        let mut st = self.lock();
        if let Some(at) = pushed_at {
            st.pushed_at.insert(ps.clone(), at);
        }
        st.by_push.insert(ps.clone(), target.clone());
        if let Some((_, users)) = st.watches.get_mut(&target) {
            users.insert(ps.name.clone());
            // Joining a watch that already had its first sight: the same check as that one.
            if changed_since(st.written.get(&target).copied(), pushed_at) {
                st.changed.insert((ns, ps.name.clone()));
                let _ = self.tx.send(ps);
            }
            return;
        }
        let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(self.client.clone(), &ns);
        let config = watcher::Config::default().fields(&format!("metadata.name={secret}"));
        let inner = self.inner.clone();
        let tx = self.tx.clone();
        let target2 = target.clone();
        let task = tokio::spawn(async move {
            let mut last: Option<String> = None;
            let mut stream = watcher(api, config).default_backoff().boxed();
            while let Some(ev) = stream.next().await {
                let (rv, written) = match ev {
                    Ok(watcher::Event::Apply(s)) | Ok(watcher::Event::InitApply(s)) => {
                        (s.resource_version(), last_written(&s.metadata))
                    }
                    Ok(watcher::Event::Delete(_)) => (Some("deleted".into()), None),
                    _ => continue,
                };
                let first = last.is_none();
                if last == rv {
                    continue;
                }
                last = rv;
                let mut st = inner
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match written {
                    Some(w) => st.written.insert(target2.clone(), w),
                    None => st.written.remove(&target2),
                };
                let users: Vec<String> = st
                    .watches
                    .get(&target2)
                    .map(|(_, u)| u.iter().cloned().collect())
                    .unwrap_or_default();
                // The first sight is the state the PushSecret already pushed, unless the
                // Secret was written after its last push: a change while nobody watched (this
                // replica starting, or taking the PushSecret over from another one).
                let users: Vec<String> = users
                    .into_iter()
                    .filter(|name| {
                        !first || {
                            let ps = ObjectRef::new(name).within(&target2.0);
                            changed_since(written, st.pushed_at.get(&ps).copied())
                        }
                    })
                    .collect();
                for name in users {
                    st.changed.insert((target2.0.clone(), name.clone()));
                    debug!(namespace = %target2.0, secret = %target2.1, push_secret = %name, first, "source Secret changed");
                    let _ = tx.send(ObjectRef::new(&name).within(&target2.0));
                }
            }
        });
        st.watches
            .insert(target, (task, BTreeSet::from([ps.name.clone()])));
        self.gauge.set(st.watches.len() as i64);
    }

    /// Whether the source of `ps` changed since it was last asked (and forgets it).
    pub fn take_changed(&self, ps: &ObjectRef<PushSecret>) -> bool {
        let ns = ps.namespace.clone().unwrap_or_default();
        self.lock().changed.remove(&(ns, ps.name.clone()))
    }

    /// Stops watching for `ps` (the watch ends when no PushSecret needs it): it is deleted, no
    /// longer asks for it, or another replica owns it now (`--shard-mode`).
    pub fn forget(&self, ps: &ObjectRef<PushSecret>) {
        let mut st = self.lock();
        st.pushed_at.remove(ps);
        st.changed
            .remove(&(ps.namespace.clone().unwrap_or_default(), ps.name.clone()));
        let Some(target) = st.by_push.remove(ps) else {
            return;
        };
        let empty = st.watches.get_mut(&target).is_some_and(|(_, users)| {
            users.remove(&ps.name);
            users.is_empty()
        });
        if empty && let Some((task, _)) = st.watches.remove(&target) {
            task.abort();
            st.written.remove(&target);
            self.gauge.set(st.watches.len() as i64);
        }
    }
}

/// When the Secret was last written, by any manager (its latest `managedFields` time).
fn last_written(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<jiff::Timestamp> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
}

/// Whether a source Secret written at `written` changed after a push at `pushed_at`. Both
/// have whole seconds: a write in the second of the push counts as pushed (so that a restart
/// pushes nothing), and an unknown time as unchanged.
fn changed_since(written: Option<jiff::Timestamp>, pushed_at: Option<jiff::Timestamp>) -> bool {
    matches!((written, pushed_at), (Some(w), Some(p)) if w.as_second() > p.as_second())
}

/// Runs the PushSecret controller (cluster-wide, or in `namespace`).
pub async fn run(
    ctx: Arc<Context>,
    health: Arc<crate::http::Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let client = ctx.client.clone();
    let api: Api<PushSecret> = match ctx.settings.namespace.as_deref() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        // A binary upgraded before its CRDs or the chart's RBAC: the other controllers run
        // (and report ready) as before; PushSecrets wait for a restart.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {
            tracing::warn!(
                "PushSecrets are not processed: {} (install the CRDs and upgrade the chart's RBAC)",
                e.message
            );
            shutdown.await;
            return;
        }
        _ => {}
    }
    let (reader, writer) = kube::runtime::reflector::store();
    let (source_watches, source_rx) =
        SourceWatches::new(client.clone(), ctx.metrics.push_source_watches.clone());
    let forget = source_watches.clone();
    let stream = super::watch::watch(health.watch("PushSecret"), reader.clone(), move || {
        watcher(api.clone(), watcher::Config::default().any_semantic())
    })
    .reflect(writer)
    .inspect(move |ev| {
        if let Ok(watcher::Event::Delete(ps)) = ev {
            forget.forget(&ObjectRef::from_obj(ps));
        }
    })
    .applied_objects()
    .predicate_filter(
        predicates::generation
            .combine(predicates::labels)
            .combine(predicates::annotations)
            .combine(|ps: &PushSecret| ps.metadata.deletion_timestamp.as_ref().map(|_| 1)),
        Default::default(),
    );
    let pctx = Arc::new(PushContext {
        ctx: ctx.clone(),
        push_secrets: reader.clone(),
        failures: Mutex::default(),
        source_watches,
    });
    let changed = source_changes(source_rx);
    // `--shard-mode`: what a hand-over gives this replica is reconciled at once (which starts
    // its source watch); what it takes away loses its source watch here.
    let lost_ctx = pctx.clone();
    let gained = match ctx.shard.get() {
        None => futures::stream::pending().boxed(),
        Some(shard) => shard
            .gained_with(KIND, reader.clone(), move |ps: &PushSecret| {
                forget_local_state(&ObjectRef::from_obj(ps), &lost_ctx)
            })
            .boxed(),
    };
    Controller::for_stream(stream, reader)
        .reconcile_on(changed)
        .reconcile_on(gained)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, pctx)
        .for_each(|res| {
            if let Err(e) = res {
                debug!(error = %e, "PushSecret controller");
            }
            futures::future::ready(())
        })
        .await;
}

/// PushSecrets whose source changed (already marked in [`SourceWatches`]).
fn source_changes(
    rx: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<PushSecret>>,
) -> impl Stream<Item = ObjectRef<PushSecret>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PushSecretStatus;
    use crate::api::push_secret::{PushSecretMatch, PushSecretRemoteRef};

    fn entry(key: Option<&str>, remote: &str, property: Option<&str>) -> SpecData {
        SpecData {
            match_: PushSecretMatch {
                secret_key: key.map(str::to_string),
                remote_ref: PushSecretRemoteRef {
                    remote_key: remote.into(),
                    property: property.map(str::to_string),
                },
            },
            ..Default::default()
        }
    }

    #[test]
    fn reverse_unicode_restores_key_characters() {
        assert_eq!(
            reverse_unicode("some-array_U005b_0_U005d_.entity"),
            "some-array[0].entity"
        );
        assert_eq!(reverse_unicode("plain_key"), "plain_key");
        assert_eq!(reverse_unicode("_UD800_"), "_UD800_");
    }

    #[test]
    fn stale_entries_are_those_no_longer_pushed() {
        let mut old = SyncedPushSecretsMap::new();
        old.entry("SecretStore/a".into()).or_default().insert(
            "path/to/key/field1".into(),
            entry(None, "path/to/key", Some("field1")),
        );
        old.entry("SecretStore/a".into()).or_default().insert(
            "path/to/key/field2".into(),
            entry(None, "path/to/key", Some("field2")),
        );
        old.entry("SecretStore/old".into())
            .or_default()
            .insert("k".into(), entry(None, "k", None));
        let mut new = SyncedPushSecretsMap::new();
        new.entry("SecretStore/a".into()).or_default().insert(
            "path/to/key/field1".into(),
            entry(None, "path/to/key", Some("field1")),
        );
        let gone: Vec<_> = stale(&old, &new)
            .into_iter()
            .map(|(s, d)| (s, to_provider(&d).remote.status_key()))
            .collect();
        assert_eq!(
            gone,
            [
                (
                    "SecretStore/a".to_string(),
                    "path/to/key/field2".to_string()
                ),
                ("SecretStore/old".to_string(), "k".to_string())
            ]
        );
    }

    fn ps(ns: &str, name: &str, uid: &str, synced: &[(&str, &str)]) -> Arc<PushSecret> {
        let mut p = PushSecret::new(name, Default::default());
        p.metadata.namespace = Some(ns.into());
        p.metadata.uid = Some(uid.into());
        let mut map = SyncedPushSecretsMap::new();
        for (store, key) in synced {
            map.entry(store.to_string())
                .or_default()
                .insert(key.to_string(), entry(None, key, None));
        }
        p.status = Some(PushSecretStatus {
            synced_push_secrets: Some(map),
            ..Default::default()
        });
        Arc::new(p)
    }

    #[test]
    fn the_first_pusher_of_a_remote_key_keeps_it() {
        let me = ps("a", "me", "1", &[]);
        let others = vec![
            me.clone(),
            ps("a", "first", "2", &[("SecretStore/s", "k")]),
            ps(
                "b",
                "far",
                "3",
                &[("SecretStore/t", "k"), ("ClusterSecretStore/c", "k")],
            ),
        ];
        assert_eq!(
            conflict(&me, &others, "SecretStore/s", "k").as_deref(),
            Some("remote key k in SecretStore/s is already pushed by PushSecret a/first")
        );
        // A SecretStore of the same name in another namespace is another store.
        assert_eq!(conflict(&me, &others, "SecretStore/t", "k"), None);
        assert!(conflict(&me, &others, "ClusterSecretStore/c", "k").is_some());
        assert_eq!(conflict(&me, &others, "SecretStore/s", "other"), None);
    }

    #[test]
    fn refresh_is_due_as_eso_decides() {
        let mut p = PushSecret::new("p", Default::default());
        p.metadata.generation = Some(1);
        let hour = Duration::from_secs(3600);
        let now = jiff::Timestamp::now();
        assert_eq!(refresh_due(&p, hour, now), None, "never pushed");
        p.status = Some(PushSecretStatus {
            refresh_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                now - jiff::SignedDuration::from_secs(600),
            )),
            synced_resource_version: Some(resource_version(&p)),
            ..Default::default()
        });
        assert_eq!(refresh_due(&p, hour, now), Some(Duration::from_secs(3000)));
        assert_eq!(refresh_due(&p, Duration::ZERO, now), Some(Duration::MAX));
        assert_eq!(refresh_due(&p, Duration::from_secs(60), now), None);
        p.metadata.generation = Some(2);
        assert_eq!(refresh_due(&p, hour, now), None, "spec changed");
    }

    #[test]
    fn store_keys_round_trip() {
        let k = store_key(StoreKind::ClusterSecretStore, "aws");
        assert_eq!(k, "ClusterSecretStore/aws");
        let r = parse_store_key(&k).unwrap();
        assert_eq!(
            (r.name.as_str(), r.kind()),
            ("aws", StoreKind::ClusterSecretStore)
        );
        assert!(parse_store_key("Nope/x").is_none());
    }

    #[test]
    fn a_source_first_seen_is_pushed_only_if_written_after_the_last_push() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            ManagedFieldsEntry, ObjectMeta, Time,
        };
        let at = |s: i64| jiff::Timestamp::from_second(1_700_000_000 + s).unwrap();
        let meta = ObjectMeta {
            managed_fields: Some(vec![
                ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    time: Some(Time(at(10))),
                    ..Default::default()
                },
                ManagedFieldsEntry {
                    manager: Some("cert-manager".into()),
                    time: Some(Time(at(20))),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let written = last_written(&meta);
        assert_eq!(written, Some(at(20)));
        let cases = [
            ("written after the push", Some(at(19)), true),
            ("written in the push's second", Some(at(20)), false),
            ("pushed after", Some(at(30)), false),
            ("never pushed (the reconcile pushes anyway)", None, false),
        ];
        for (what, pushed, want) in cases {
            assert_eq!(changed_since(written, pushed), want, "{what}");
        }
        assert!(!changed_since(None, Some(at(0))), "no managed fields");
        assert_eq!(last_written(&ObjectMeta::default()), None);
    }
}
