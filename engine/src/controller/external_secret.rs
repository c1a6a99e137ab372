//! The ExternalSecret reconciler: fetch → build data → apply the Secret → report.
//!
//! Steps, each named in the code: decide whether a refresh is due (ESO's rules: interval,
//! spec/metadata change, Secret drift); fetch and build the data (the Kubernetes-free
//! [`crate::pipeline`]); apply it under the creation and deletion policies; then write status
//! only when it changed. A failure at any step leaves the existing Secret untouched
//! (keep-last-good), sets `Ready=False` with a specific message, emits a Warning event, and
//! retries with per-object exponential backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, instrument, warn};

use super::context::Context;
use super::refresh::{self, RefreshState};
use super::stores::StoreResolver;
use crate::api::condition::{get_condition, set_condition};
use crate::api::duration;
use crate::api::{
    Condition, CreationPolicy, DeletionPolicy, ExternalSecret, ExternalSecretStatus,
    LocalObjectReference,
};
use crate::metrics::{ErrorLabels, Metrics, ObjectLabels};
use crate::pipeline::{self, hash};
use crate::secret::{SecretBytes, SecretMap};
use crate::template;

/// Label ESO puts on every Secret it manages (and that esox watches).
pub const MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";
/// Label naming (as a hash) the ExternalSecret that created a Secret under `Owner`.
pub const CREATED_BY_LABEL: &str = "reconcile.external-secrets.io/created-by";
/// Annotation holding the hash of the Secret data esox wrote.
pub const DATA_HASH_ANNOTATION: &str = "reconcile.external-secrets.io/data-hash";
/// Field manager for Secret writes; the same as ESO's so GitOps ignore rules keep working.
pub const FIELD_MANAGER: &str = "external-secrets";

/// Condition reasons, as ESO spells them.
pub mod reason {
    /// Data synced.
    pub const SYNCED: &str = "SecretSynced";
    /// Sync failed.
    pub const SYNC_ERROR: &str = "SecretSyncedError";
    /// Secret deleted by the deletion policy.
    pub const DELETED: &str = "SecretDeleted";
    /// `Merge` target does not exist.
    pub const MISSING: &str = "SecretMissing";
}

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

/// Reconcile errors. Each variant is a metric label and names what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ExternalSecret itself is invalid (retrying will not help).
    #[error("invalid ExternalSecret: {0}")]
    InvalidSpec(String),
    /// Fetching or building the data failed.
    #[error("could not get secret data from provider: {0}")]
    Fetch(#[source] pipeline::PipelineError),
    /// The template could not be applied (render error, missing template source, plugin
    /// stopped by the sandbox).
    #[error("{0}")]
    Template(#[source] crate::template::TemplateError),
    /// The target Secret cannot be written as asked.
    #[error("{0}")]
    Target(String),
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
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Fetch(e) if e.is_no_secret() => "missing_provider_secret",
            Error::Fetch(_) => "fetch",
            Error::Template(_) => "template",
            Error::Target(_) => "target",
            Error::Kube { .. } => "kube",
        }
    }

    fn event_reason(&self) -> &'static str {
        match self {
            Error::Fetch(e) if e.is_no_secret() => event::MISSING_PROVIDER_SECRET,
            _ => event::UPDATE_FAILED,
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// The `syncedResourceVersion` of an ExternalSecret, exactly as ESO computes it: the
/// generation and ESO's `ObjectHash` of its labels and annotations (so editing either — ESO's
/// force-sync annotation — triggers a refresh). Matching ESO's format means a cluster moving
/// from ESO does not refresh every ExternalSecret on esox's first pass.
pub fn resource_version(es: &ExternalSecret) -> String {
    let meta = format!(
        "{{annotations:{} labels:{}}}",
        hash::go_string_map(es.annotations()),
        hash::go_string_map(es.labels())
    );
    format!(
        "{}-{}",
        es.metadata.generation.unwrap_or_default(),
        hash::data_hash_text(&meta)
    )
}

/// Reconciles one ExternalSecret.
#[instrument(skip_all, fields(namespace = %es.namespace().unwrap_or_default(), name = %es.name_any()))]
pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let labels = ObjectLabels {
        name: es.name_any(),
        namespace: es.namespace().unwrap_or_default(),
    };
    ctx.metrics.sync_calls.get_or_create(&labels).inc();
    debug!("reconciling");
    let result = sync(&es, &ctx, false).await;
    ctx.metrics
        .reconcile_duration
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    result
}

/// Backs off per object after a failure. Status and events were written by the reconcile.
pub fn error_policy(es: Arc<ExternalSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&object_key(&es));
    ctx.metrics
        .sync_errors
        .get_or_create(&ErrorLabels {
            name: es.name_any(),
            namespace: es.namespace().unwrap_or_default(),
            reason: err.metric_label().to_string(),
        })
        .inc();
    let delay = refresh::backoff(failures.saturating_sub(1));
    warn!(error = %err, reason = err.metric_label(), failures, retry_in = ?delay, "sync failed");
    Action::requeue(delay)
}

fn object_key(es: &ExternalSecret) -> String {
    format!("{}/{}", es.namespace().unwrap_or_default(), es.name_any())
}

async fn sync(es: &ExternalSecret, ctx: &Context, live: bool) -> Result<Action, Error> {
    let ns = es.namespace().unwrap_or_default();
    let target = es.target_name();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());

    // Step 1: validate what cannot be fixed by retrying: ESO's admission rules first (the
    // webhook's words, joined as Go's errors.Join joins them), then the refresh interval.
    let invalid = crate::api::validate::external_secret(&es.spec);
    if !invalid.is_empty() {
        return fail_permanently(es, ctx, &recorder, Error::InvalidSpec(invalid.join("\n"))).await;
    }
    let interval = match es.spec.refresh_interval.as_deref() {
        None | Some("") => Duration::ZERO,
        Some(s) => match duration::parse(s) {
            Ok(d) => d,
            Err(e) => {
                return fail_permanently(
                    es,
                    ctx,
                    &recorder,
                    Error::InvalidSpec(format!("spec.refreshInterval: {e}")),
                )
                .await;
            }
        },
    };
    // Step 2: is a refresh due?
    let status = es.status.clone().unwrap_or_default();
    let current_version = resource_version(es);
    let existing = secrets
        .get_opt(&target)
        .await
        .map_err(kube_err(format!("could not get Secret {target:?}")))?;
    let mut state = RefreshState {
        policy: es.spec.refresh_policy.unwrap_or_default(),
        interval,
        last_refresh: status.refresh_time.as_ref().map(|t| t.0),
        synced_version: status.synced_resource_version.as_deref(),
        current_version: &current_version,
        renew_at: existing
            .as_ref()
            .and_then(|s| s.annotations().get(refresh::RENEW_AT_ANNOTATION))
            .and_then(|t| t.parse().ok()),
    };
    let now = jiff::Timestamp::now();
    let policy = es.spec.target.creation_policy;
    if !refresh::should_refresh(&state, now) && secret_is_valid(existing.as_ref(), policy) {
        ctx.record_success(&object_key(es));
        return Ok(requeue(&state, now));
    }
    if !live {
        // Our status writes are filtered out of the watch, so the cached copy can predate the
        // last sync (a Secret event right after it would otherwise sync twice). Confirm
        // against the live object before paying for a provider call.
        let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .get_opt(&es.name_any())
            .await
            .map_err(kube_err("could not get ExternalSecret"))?
        {
            None => return Ok(Action::await_change()),
            Some(fresh) if fresh.resource_version() != es.resource_version() => {
                return Box::pin(sync(&fresh, ctx, true)).await;
            }
            Some(_) => {}
        }
    }

    // Step 3: fetch and build the data.
    // Values other ExternalSecrets fetched within this one's jitter window are as fresh as its
    // own refresh timing promises; a change of spec, labels or annotations (force-sync) wants
    // fresh data.
    let changed = state
        .synced_version
        .is_some_and(|v| v != state.current_version);
    let max_age = if changed {
        Duration::ZERO
    } else {
        (interval / 10).min(Duration::from_secs(300))
    };
    let resolver = StoreResolver::new(ctx, &ns, es.spec.secret_store_ref.as_ref(), max_age);
    let renamer = crate::template::GoKeyRenamer {
        host: &ctx.plugins,
        metrics: &ctx.metrics,
    };
    let data = match pipeline::collect(&es.spec, &resolver, &renamer).await {
        Ok(d) => d,
        // Throttling is the provider pacing us, not a broken sync: a Secret that is in sync
        // stays Ready (no status flap, no event) while the per-object backoff slows us down.
        Err(e) if e.is_throttled() && secret_is_valid(existing.as_ref(), policy) => {
            warn!(error = %e, "provider throttled; keeping the synced Secret and backing off");
            return Err(Error::Fetch(e));
        }
        Err(e) => return Err(fail(es, ctx, &recorder, Error::Fetch(e)).await),
    };

    // Step 4: apply under the deletion and creation policies.
    let outcome = if data.is_empty() && es.spec.target.deletion_policy != DeletionPolicy::Merge {
        match es.spec.target.deletion_policy {
            DeletionPolicy::Delete => delete_target(es, &secrets, existing.as_ref()).await,
            _ => Ok(Outcome::Retained),
        }
    } else {
        match render(es, ctx, &ns, data).await {
            Ok(mut output) => {
                // Generated credentials that expire are renewed before they do; the deadline
                // rides on the Secret so a restarted controller still knows it.
                state.renew_at = resolver
                    .credentials_expire()
                    .map(|expires| refresh::renewal_time(now, expires));
                if let Some(t) = state.renew_at {
                    output
                        .annotations
                        .insert(refresh::RENEW_AT_ANNOTATION.into(), t.to_string());
                }
                apply(es, &secrets, existing.as_ref(), output).await
            }
            Err(e) => Err(e),
        }
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Err(fail(es, ctx, &recorder, e).await),
    };

    // Step 5: report.
    let (ready, cond_reason, message) = match outcome {
        Outcome::Created => (true, reason::SYNCED, "secret synced"),
        Outcome::Updated | Outcome::Unchanged | Outcome::NotManaged => {
            (true, reason::SYNCED, "secret synced")
        }
        Outcome::Retained => (
            true,
            reason::SYNCED,
            "secret retained due to DeletionPolicy=Retain",
        ),
        Outcome::Deleted => (
            true,
            reason::DELETED,
            "secret deleted due to DeletionPolicy=Delete",
        ),
        Outcome::Missing => (
            false,
            reason::MISSING,
            "secret will not be created due to CreationPolicy=Merge",
        ),
    };
    match outcome {
        Outcome::Created => {
            publish(
                &recorder,
                es,
                EventType::Normal,
                event::CREATED,
                "secret created",
            )
            .await
        }
        Outcome::Updated => {
            publish(
                &recorder,
                es,
                EventType::Normal,
                event::UPDATED,
                "secret updated",
            )
            .await
        }
        Outcome::Deleted => {
            publish(
                &recorder,
                es,
                EventType::Normal,
                event::DELETED,
                "secret deleted due to DeletionPolicy=Delete",
            )
            .await
        }
        Outcome::Missing => {
            publish(
                &recorder,
                es,
                EventType::Warning,
                event::UPDATE_FAILED,
                message,
            )
            .await
        }
        _ => {}
    }
    if matches!(
        outcome,
        Outcome::Created | Outcome::Updated | Outcome::Deleted
    ) {
        info!(secret = %target, outcome = ?outcome, "secret applied");
    }
    let mut new_status = status.clone();
    set_condition(
        &mut new_status.conditions,
        Condition::new("Ready", ready, cond_reason, message),
    );
    new_status.refresh_time = Some(Time(now));
    new_status.synced_resource_version = Some(current_version.clone());
    new_status.binding = Some(LocalObjectReference { name: target });
    write_status(es, ctx, &status, new_status).await?;
    if outcome == Outcome::Missing {
        // A Merge target nobody has created yet is not watched (it has no managed label), so
        // poll for it: quickly at first, backing off to the refresh interval (5 min at most).
        let n = ctx.record_failure(&object_key(es));
        let cap = if interval.is_zero() {
            Duration::from_secs(300)
        } else {
            interval.min(Duration::from_secs(300))
        };
        return Ok(Action::requeue(
            refresh::backoff(n.saturating_sub(1)).min(cap),
        ));
    }
    ctx.record_success(&object_key(es));
    Ok(requeue(&state, now))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    Retained,
    Deleted,
    Missing,
    NotManaged,
}

fn requeue(state: &RefreshState<'_>, now: jiff::Timestamp) -> Action {
    match refresh::next_refresh(state, now) {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    }
}

/// ESO's `isSecretValid`: the Secret exists, carries our marker, and its data still hashes to
/// what we wrote. Anything else is drift and triggers an immediate refresh.
fn secret_is_valid(secret: Option<&Secret>, policy: CreationPolicy) -> bool {
    if policy == CreationPolicy::None {
        return true;
    }
    let Some(secret) = secret else { return false };
    let managed = secret
        .labels()
        .get(MANAGED_LABEL)
        .is_some_and(|v| v == "true");
    let hash = secret.annotations().get(DATA_HASH_ANNOTATION);
    managed && hash.is_some_and(|h| *h == secret_hash(secret))
}

fn secret_hash(secret: &Secret) -> String {
    let data = secret.data.clone().unwrap_or_default();
    hash::data_hash(data.iter().map(|(k, v)| (k, v.0.as_slice())))
}

/// Label or annotation keys (`section` is `f:labels` or `f:annotations`) owned by esox's
/// field manager, whether written by update or apply.
fn managed_meta_keys(secret: &Secret, section: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for entry in secret.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(FIELD_MANAGER) {
            continue;
        }
        let Some(fields) = entry.fields_v1.as_ref() else {
            continue;
        };
        if let Some(map) = fields
            .0
            .get("f:metadata")
            .and_then(|m| m.get(section))
            .and_then(|d| d.as_object())
        {
            keys.extend(
                map.keys()
                    .filter_map(|k| k.strip_prefix("f:"))
                    .map(str::to_string),
            );
        }
    }
    keys
}

/// Data keys esox last applied to a Secret (its server-side-apply field set).
fn applied_data_keys(secret: &Secret) -> Vec<String> {
    let mut keys = Vec::new();
    for entry in secret.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(FIELD_MANAGER)
            || entry.operation.as_deref() != Some("Apply")
        {
            continue;
        }
        let Some(fields) = entry.fields_v1.as_ref() else {
            continue;
        };
        if let Some(data) = fields.0.get("f:data").and_then(|d| d.as_object()) {
            keys.extend(
                data.keys()
                    .filter_map(|k| k.strip_prefix("f:"))
                    .map(str::to_string),
            );
        }
    }
    keys
}

fn owned_by_other(es: &ExternalSecret, secret: &Secret) -> Option<String> {
    secret
        .owner_references()
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "ExternalSecret"
                && o.uid != es.uid().unwrap_or_default()
        })
        .map(|o| o.name.clone())
}

async fn delete_target(
    es: &ExternalSecret,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
) -> Result<Outcome, Error> {
    if es.spec.target.creation_policy != CreationPolicy::Owner {
        return Err(Error::Target(format!(
            "could not delete secret: unable to delete secret {}: creationPolicy={:?} is not Owner",
            es.target_name(),
            es.spec.target.creation_policy
        )));
    }
    let Some(secret) = existing else {
        return Ok(Outcome::Deleted);
    };
    if let Some(other) = owned_by_other(es, secret) {
        return Err(Error::Target(format!(
            "target secret {:?} is owned by another ExternalSecret {other:?}; not deleting it",
            secret.name_any()
        )));
    }
    match secrets
        .delete(&secret.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(Outcome::Deleted),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Outcome::Deleted),
        Err(e) => Err(kube_err(format!(
            "could not delete Secret {:?}",
            secret.name_any()
        ))(e)),
    }
}

/// The template step: reads the `templateFrom` objects and runs the plugins (every
/// transformation happens in Wasm), or ESO's no-template behaviour.
async fn render(
    es: &ExternalSecret,
    ctx: &Context,
    ns: &str,
    data: SecretMap,
) -> Result<template::Output, Error> {
    let tpl = es.spec.target.template.as_ref();
    let sources = match tpl {
        Some(t) => template_sources(ctx, ns, t).await?,
        None => template::Sources::default(),
    };
    let runner = super::plugins::ControllerRunner::new(ctx, ns);
    template::apply(tpl, es.labels(), es.annotations(), data, &sources, &runner)
        .await
        .map_err(Error::Template)
}

/// Reads the ConfigMaps and Secrets `templateFrom` names (in the ExternalSecret's namespace).
async fn template_sources(
    ctx: &Context,
    ns: &str,
    tpl: &crate::api::ExternalSecretTemplate,
) -> Result<template::Sources, Error> {
    let mut sources = template::Sources::default();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for from in &tpl.template_from {
        if let Some(r) = &from.config_map
            && !sources.config_maps.contains_key(&r.name)
            && let Some(cm) = config_maps
                .get_opt(&r.name)
                .await
                .map_err(kube_err(format!("could not get ConfigMap {:?}", r.name)))?
        {
            sources
                .config_maps
                .insert(r.name.clone(), cm.data.unwrap_or_default());
        }
        if let Some(r) = &from.secret
            && !sources.secrets.contains_key(&r.name)
            && let Some(sec) = secrets
                .get_opt(&r.name)
                .await
                .map_err(kube_err(format!("could not get Secret {:?}", r.name)))?
        {
            let data = sec
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, SecretBytes::new(v.0)))
                .collect();
            sources.secrets.insert(r.name.clone(), data);
        }
    }
    Ok(sources)
}

async fn apply(
    es: &ExternalSecret,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    output: template::Output,
) -> Result<Outcome, Error> {
    let target = es.target_name();
    let policy = es.spec.target.creation_policy;
    let data: BTreeMap<String, ByteString> = output
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
        .collect();
    match policy {
        CreationPolicy::None => Ok(Outcome::NotManaged),
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge => {
            if existing.is_none() && policy == CreationPolicy::Merge {
                return Ok(Outcome::Missing);
            }
            if existing.is_some_and(|s| s.immutable == Some(true)) {
                return Err(Error::Target(format!(
                    "target secret {target:?} is immutable; esox cannot merge into it"
                )));
            }
            // Server-side apply removes the keys we applied before and apply no longer (that
            // is deletionPolicy Merge on an empty result) and keeps everyone else's. Predict
            // that result: the hash covers the whole Secret as it will be, as ESO's does.
            let mut merged = existing.and_then(|s| s.data.clone()).unwrap_or_default();
            if let Some(s) = existing {
                for key in applied_data_keys(s) {
                    if !data.contains_key(&key) {
                        merged.remove(&key);
                    }
                }
            }
            merged.extend(data.clone());
            let hash_value = hash::data_hash(merged.iter().map(|(k, v)| (k, v.0.as_slice())));
            let renew_at = refresh::RENEW_AT_ANNOTATION;
            if existing.is_some_and(|s| {
                secret_is_valid(Some(s), policy)
                    && s.data.as_ref() == Some(&merged)
                    && s.annotations().get(renew_at) == output.annotations.get(renew_at)
            }) {
                return Ok(Outcome::Unchanged);
            }
            let mut labels = output.labels.clone();
            labels.insert(MANAGED_LABEL.into(), "true".into());
            let mut annotations = output.annotations.clone();
            annotations.insert(DATA_HASH_ANNOTATION.into(), hash_value);
            let mut patch = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": target,
                    "labels": labels,
                    "annotations": annotations,
                },
                "data": data,
            });
            if !output.finalizers.is_empty() {
                patch["metadata"]["finalizers"] = json!(output.finalizers);
            }
            if existing.is_none() {
                if let Some(t) = &output.type_ {
                    patch["type"] = json!(t);
                }
                if es.spec.target.immutable {
                    patch["immutable"] = json!(true);
                }
            }
            secrets
                .patch(
                    &target,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(kube_err(format!("could not apply Secret {target:?}")))?;
            Ok(if existing.is_some() {
                Outcome::Updated
            } else {
                Outcome::Created
            })
        }
        CreationPolicy::Owner | CreationPolicy::Orphan => {
            if let Some(s) = existing
                && let Some(other) = owned_by_other(es, s)
            {
                return Err(Error::Target(format!(
                    "target is owned by another ExternalSecret: secret {target:?} is owned by ExternalSecret {other:?}"
                )));
            }
            let desired = desired_secret(es, existing, data, &output);
            match existing {
                None => {
                    secrets
                        .create(
                            &PostParams {
                                field_manager: Some(FIELD_MANAGER.into()),
                                ..Default::default()
                            },
                            &desired,
                        )
                        .await
                        .map_err(kube_err(format!("could not create Secret {target:?}")))?;
                    Ok(Outcome::Created)
                }
                Some(current) => {
                    if same_secret(current, &desired) {
                        return Ok(Outcome::Unchanged);
                    }
                    if current.immutable == Some(true) {
                        return Err(Error::Target(format!(
                            "target secret {target:?} is immutable; esox will not overwrite it"
                        )));
                    }
                    secrets
                        .replace(
                            &target,
                            &PostParams {
                                field_manager: Some(FIELD_MANAGER.into()),
                                ..Default::default()
                            },
                            &desired,
                        )
                        .await
                        .map_err(kube_err(format!("could not update Secret {target:?}")))?;
                    Ok(Outcome::Updated)
                }
            }
        }
    }
}

/// The Secret as `Owner`/`Orphan` want it: exactly the fetched data, existing labels and
/// annotations kept, our markers set, and an owner reference under `Owner` (adopting an
/// unowned Secret, as ESO does).
fn desired_secret(
    es: &ExternalSecret,
    existing: Option<&Secret>,
    data: BTreeMap<String, ByteString>,
    output: &template::Output,
) -> Secret {
    let mut meta = existing
        .map(|s| s.metadata.clone())
        .unwrap_or_else(|| ObjectMeta {
            name: Some(es.target_name()),
            namespace: es.namespace(),
            ..Default::default()
        });
    // Labels and annotations esox set last time and no longer sets go away (ESO tracks
    // them the same way, through the field manager's managed fields).
    if let Some(s) = existing {
        let labels = meta.labels.get_or_insert_default();
        for key in managed_meta_keys(s, "f:labels") {
            labels.remove(&key);
        }
        let annotations = meta.annotations.get_or_insert_default();
        for key in managed_meta_keys(s, "f:annotations") {
            annotations.remove(&key);
        }
    }
    meta.managed_fields = None;
    let labels = meta.labels.get_or_insert_default();
    labels.extend(output.labels.clone());
    labels.insert(MANAGED_LABEL.into(), "true".into());
    let finalizers = meta.finalizers.get_or_insert_default();
    for f in &output.finalizers {
        if !finalizers.contains(f) {
            finalizers.push(f.clone());
        }
    }
    if finalizers.is_empty() {
        meta.finalizers = None;
    }
    let annotations = meta.annotations.get_or_insert_default();
    annotations.extend(output.annotations.clone());
    annotations.insert(
        DATA_HASH_ANNOTATION.into(),
        hash::data_hash(data.iter().map(|(k, v)| (k, v.0.as_slice()))),
    );
    if es.spec.target.creation_policy == CreationPolicy::Owner {
        let created_by = hash::data_hash_text(&format!(
            "{}/{}",
            es.namespace().unwrap_or_default(),
            es.name_any()
        ));
        meta.labels
            .get_or_insert_default()
            .insert(CREATED_BY_LABEL.into(), created_by);
        let owner: Option<OwnerReference> = es.controller_owner_ref(&());
        let refs = meta.owner_references.get_or_insert_default();
        if let Some(owner) = owner
            && !refs.iter().any(|r| r.uid == owner.uid)
        {
            refs.push(owner);
        }
    }
    let type_ = output
        .type_
        .clone()
        .or_else(|| existing.and_then(|s| s.type_.clone()))
        .or_else(|| Some("Opaque".to_string()));
    Secret {
        metadata: meta,
        data: Some(data),
        type_,
        immutable: if es.spec.target.immutable {
            Some(true)
        } else {
            existing.and_then(|s| s.immutable)
        },
        ..Default::default()
    }
}

fn same_secret(current: &Secret, desired: &Secret) -> bool {
    current.data.clone().unwrap_or_default() == desired.data.clone().unwrap_or_default()
        && current.string_data.is_none()
        && current.metadata.labels == desired.metadata.labels
        && current.metadata.annotations == desired.metadata.annotations
        && current.metadata.owner_references == desired.metadata.owner_references
        && current.metadata.finalizers == desired.metadata.finalizers
        && current.type_ == desired.type_
        && current.immutable == desired.immutable
}

async fn write_status(
    es: &ExternalSecret,
    ctx: &Context,
    old: &ExternalSecretStatus,
    new: ExternalSecretStatus,
) -> Result<(), Error> {
    let ready = get_condition(&new.conditions, "Ready").is_some_and(|c| c.status == "True");
    Metrics::set_condition(
        &ctx.metrics.status_condition,
        &es.name_any(),
        &es.namespace().unwrap_or_default(),
        "Ready",
        ready,
    );
    if *old == new {
        return Ok(());
    }
    let api: Api<ExternalSecret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    api.patch_status(
        &es.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": new })),
    )
    .await
    .map_err(kube_err("could not update ExternalSecret status"))?;
    Ok(())
}

/// Marks the ExternalSecret failed (status + Warning event); the caller returns the error so
/// the controller backs off and retries. The existing Secret is not touched.
async fn fail(es: &ExternalSecret, ctx: &Context, recorder: &Recorder, err: Error) -> Error {
    let message = err.to_string();
    publish(
        recorder,
        es,
        EventType::Warning,
        err.event_reason(),
        &message,
    )
    .await;
    let old = es.status.clone().unwrap_or_default();
    let mut new = old.clone();
    set_condition(
        &mut new.conditions,
        Condition::new("Ready", false, reason::SYNC_ERROR, message),
    );
    if let Err(e) = write_status(es, ctx, &old, new).await {
        warn!(error = %e, "could not record failure in status");
    }
    err
}

/// Like [`fail`], for errors retrying cannot fix: waits for the user to change the object.
async fn fail_permanently(
    es: &ExternalSecret,
    ctx: &Context,
    recorder: &Recorder,
    err: Error,
) -> Result<Action, Error> {
    let err = fail(es, ctx, recorder, err).await;
    ctx.metrics
        .sync_errors
        .get_or_create(&ErrorLabels {
            name: es.name_any(),
            namespace: es.namespace().unwrap_or_default(),
            reason: err.metric_label().into(),
        })
        .inc();
    warn!(error = %err, "invalid ExternalSecret; waiting for a change");
    Ok(Action::await_change())
}

async fn publish(
    recorder: &Recorder,
    es: &ExternalSecret,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &es.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}
