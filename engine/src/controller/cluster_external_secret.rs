//! The ClusterExternalSecret reconciler: one ExternalSecret in every selected namespace.
//!
//! [`reconcile`] reads only watch caches (the ClusterExternalSecret itself, the namespaces'
//! metadata, the ExternalSecrets the ExternalSecret controller already reflects), asks the
//! pure [`plan`] what to delete and write, writes only what differs, and patches the status
//! only when it changed. ESO's behaviour and words (`pkg/controllers/clusterexternalsecret/`),
//! without its two bugs:
//!
//! - a namespace relabelled out of the selectors loses its ExternalSecret at once: a
//!   namespace event enqueues every ClusterExternalSecret that selects the namespace *or*
//!   provisioned it *or* owns an ExternalSecret in it, not only those its new labels match
//!   (ESO waits for `refreshTime`);
//! - no finalizer is put on namespaces (ESO's `externalsecrets.external-secrets.io/ces-<name>`
//!   is left behind and blocks `kubectl delete namespace`, ESO #6677). The
//!   ClusterExternalSecret keeps ESO's own finalizer, so deleting it deletes its
//!   ExternalSecrets even without a garbage collector.
//!
//! The ExternalSecrets carry ESO's controller owner reference to the ClusterExternalSecret;
//! one of that name not controlled by it is never overwritten (`failedNamespaces` says
//! `external secret already exists in namespace`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::{debug, info, instrument, warn};

use super::context::Context;
use super::target::FIELD_MANAGER;
use crate::api::cluster_external_secret::{
    CLUSTER_EXTERNAL_SECRET_KIND, ClusterExternalSecretNamespaceFailure,
    ClusterExternalSecretStatusCondition, FORCE_SYNC_ANNOTATION,
};
use crate::api::{ClusterExternalSecret, ClusterExternalSecretStatus, ExternalSecret, GROUP};

/// ESO's finalizer on the ClusterExternalSecret: its ExternalSecrets are deleted before it
/// goes (the only cleanup there is when no garbage collector runs).
pub const FINALIZER: &str = "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";

/// ESO's requeue when `refreshTime` is not set (`cmd/controller/root.go`).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// How soon a reconcile that hit a conflict (a write racing the caches) runs again.
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// ESO's status and failure texts.
pub mod message {
    /// `Ready=False` message.
    pub const NAMESPACES_FAILED: &str = "one or more namespaces failed";
    /// An ExternalSecret of that name exists and is not controlled by this
    /// ClusterExternalSecret.
    pub const ALREADY_EXISTS: &str = "external secret already exists in namespace";
    /// The namespace of a selector error.
    pub const UNKNOWN_NAMESPACE: &str = "unknown";
}

/// ClusterExternalSecret reconcile errors (status problems are reported in the status; these
/// are the ones that make the reconcile retry).
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
    /// The caches this reconcile reads are not synced yet.
    #[error("namespace and ExternalSecret caches not synced yet")]
    NotSynced,
}

impl Error {
    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::NotSynced => "not_synced",
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// What a namespace looks like to the planner.
#[derive(Debug, Clone)]
pub struct NamespaceInfo {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// It is being deleted.
    pub terminating: bool,
}

impl NamespaceInfo {
    fn from_meta(ns: &PartialObjectMeta<Namespace>) -> NamespaceInfo {
        NamespaceInfo {
            name: ns.name_any(),
            labels: ns.labels().clone(),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// One ExternalSecret write.
#[derive(Debug, Clone)]
pub enum Write {
    /// None exists: create it (a create never overwrites one the cache did not show yet).
    Create(Box<ExternalSecret>),
    /// Ours, and it differs: replace it (ESO replaces labels, annotations and spec).
    Replace(Box<ExternalSecret>),
}

/// What to do for one ClusterExternalSecret.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// The name of its ExternalSecrets.
    pub es_name: String,
    /// Owned ExternalSecrets no longer wanted, as (namespace, name).
    pub delete: Vec<(String, String)>,
    /// Writes, by namespace.
    pub write: Vec<(String, Write)>,
    /// Namespaces holding an up-to-date ExternalSecret already (or one being deleted, which
    /// is recreated when it is gone).
    pub provisioned: BTreeSet<String>,
    /// Namespaces that failed, and why.
    pub failed: BTreeMap<String, String>,
    /// The selectors are invalid: nothing is deleted or written (as ESO).
    pub selector_error: Option<String>,
}

/// Whether `es` is controlled by the ClusterExternalSecret `ces_name` (ESO's
/// `isExternalSecretOwnedBy`: the controller reference's group, kind and name).
pub fn owned_by(es: &ExternalSecret, ces_name: &str) -> bool {
    controller_owner(es).is_some_and(|o| o == ces_name)
}

/// The name of the ClusterExternalSecret controlling `es`, if one does.
pub fn controller_owner(es: &ExternalSecret) -> Option<&str> {
    es.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .filter(|o| {
            o.kind == CLUSTER_EXTERNAL_SECRET_KIND
                && o.api_version.split_once('/').map(|(g, _)| g) == Some(GROUP)
        })
        .map(|o| o.name.as_str())
}

/// Checks a selector as `metav1.LabelSelectorAsSelector` does, in its words.
fn check_selector(selector: &LabelSelector) -> Result<(), String> {
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "values: Invalid value: []string{{}}: for 'in', 'notin' operators, values set can't be empty (key {:?})",
                    e.key
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "values: Invalid value: {values:?}: values set must be empty for exists and does not exist (key {:?})",
                    e.key
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(format!(
                    "{:?} is not a valid label selector operator",
                    crate::api::abbreviate(other, 64)
                ));
            }
        }
    }
    Ok(())
}

/// The names of the namespaces `ces` selects (ESO's `GetTargetNamespaces`: any selector, or
/// the name listed), terminating ones included; or why the selectors are invalid.
pub fn selected(
    ces: &ClusterExternalSecret,
    namespaces: &[NamespaceInfo],
) -> Result<BTreeSet<String>, String> {
    let selectors: Vec<&LabelSelector> = ces
        .spec
        .namespace_selector
        .iter()
        .chain(ces.spec.namespace_selectors.iter())
        .collect();
    for s in &selectors {
        check_selector(s)?;
    }
    Ok(namespaces
        .iter()
        .filter(|ns| {
            ces.spec.namespaces.contains(&ns.name)
                || selectors
                    .iter()
                    .any(|s| super::resolve::selector_matches(s, &ns.labels))
        })
        .map(|ns| ns.name.clone())
        .collect())
}

/// The controller owner reference ESO's `SetControllerReference` writes.
fn owner_reference(ces: &ClusterExternalSecret) -> OwnerReference {
    OwnerReference {
        api_version: format!("{GROUP}/v1"),
        kind: CLUSTER_EXTERNAL_SECRET_KIND.into(),
        name: ces.name_any(),
        uid: ces.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The labels and annotations ESO gives the ExternalSecret: `externalSecretMetadata`, and
/// the ClusterExternalSecret's force-sync annotation mirrored (or removed).
fn desired_metadata(
    ces: &ClusterExternalSecret,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let meta = ces
        .spec
        .external_secret_metadata
        .clone()
        .unwrap_or_default();
    let mut annotations = meta.annotations;
    match ces.annotations().get(FORCE_SYNC_ANNOTATION) {
        Some(v) => {
            annotations.insert(FORCE_SYNC_ANNOTATION.into(), v.clone());
        }
        None => {
            annotations.remove(FORCE_SYNC_ANNOTATION);
        }
    }
    (meta.labels, annotations)
}

/// `existing` with what `ces` wants: labels, annotations and spec replaced, the controller
/// reference set to `ces` (other owner references, finalizers and the resourceVersion kept).
fn updated(ces: &ClusterExternalSecret, existing: &ExternalSecret) -> ExternalSecret {
    let (labels, annotations) = desired_metadata(ces);
    let mut es = existing.clone();
    es.metadata.labels = Some(labels);
    es.metadata.annotations = Some(annotations);
    let mut owners: Vec<OwnerReference> = existing
        .owner_references()
        .iter()
        .filter(|o| o.controller != Some(true))
        .cloned()
        .collect();
    owners.push(owner_reference(ces));
    es.metadata.owner_references = Some(owners);
    es.metadata.managed_fields = None;
    es.spec = ces.spec.external_secret_spec.clone();
    es.status = None;
    es
}

/// Whether `existing` already says what `ces` wants.
fn up_to_date(ces: &ClusterExternalSecret, existing: &ExternalSecret) -> bool {
    let (labels, annotations) = desired_metadata(ces);
    let ours = owner_reference(ces);
    existing.labels() == &labels
        && existing.annotations() == &annotations
        && existing.spec == ces.spec.external_secret_spec
        && existing
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == ours.uid && o.name == ours.name)
}

/// Decides what to do, from the caches alone. `namespaces` is every namespace;
/// `external_secrets` holds at least every ExternalSecret `ces` controls and every one named
/// as its ExternalSecrets are (others are ignored).
pub fn plan(
    ces: &ClusterExternalSecret,
    namespaces: &[NamespaceInfo],
    external_secrets: &[Arc<ExternalSecret>],
) -> Plan {
    let ces_name = ces.name_any();
    let es_name = ces.external_secret_name();
    let mut plan = Plan {
        es_name: es_name.clone(),
        ..Default::default()
    };
    let selected = match selected(ces, namespaces) {
        Ok(s) => s,
        Err(e) => {
            plan.failed
                .insert(message::UNKNOWN_NAMESPACE.into(), e.clone());
            plan.selector_error = Some(e);
            return plan;
        }
    };
    // A terminating namespace is not provisioned (ESO skips it); its ExternalSecret goes
    // with it.
    let terminating: BTreeSet<&str> = namespaces
        .iter()
        .filter(|n| n.terminating)
        .map(|n| n.name.as_str())
        .collect();
    let wanted: BTreeSet<&str> = selected
        .iter()
        .map(String::as_str)
        .filter(|n| !terminating.contains(n))
        .collect();
    let mut by_ns: BTreeMap<&str, &ExternalSecret> = BTreeMap::new();
    for es in external_secrets {
        let ns = es.metadata.namespace.as_deref().unwrap_or_default();
        let name = es.metadata.name.as_deref().unwrap_or_default();
        if name == es_name {
            by_ns.insert(ns, es);
        }
        // Ours, but in a namespace no longer selected, or under an old name.
        if owned_by(es, &ces_name)
            && (name != es_name || !wanted.contains(ns))
            && es.metadata.deletion_timestamp.is_none()
            && !terminating.contains(ns)
        {
            plan.delete.push((ns.to_string(), name.to_string()));
        }
    }
    for ns in wanted {
        match by_ns.get(ns) {
            None => {
                let (labels, annotations) = desired_metadata(ces);
                let es = ExternalSecret {
                    metadata: ObjectMeta {
                        name: Some(es_name.clone()),
                        namespace: Some(ns.to_string()),
                        labels: Some(labels),
                        annotations: Some(annotations),
                        owner_references: Some(vec![owner_reference(ces)]),
                        ..Default::default()
                    },
                    spec: ces.spec.external_secret_spec.clone(),
                    status: None,
                };
                plan.write
                    .push((ns.to_string(), Write::Create(Box::new(es))));
            }
            Some(es) if !owned_by(es, &ces_name) => {
                plan.failed
                    .insert(ns.to_string(), message::ALREADY_EXISTS.into());
            }
            Some(es) if es.metadata.deletion_timestamp.is_some() || up_to_date(ces, es) => {
                plan.provisioned.insert(ns.to_string());
            }
            Some(es) => {
                plan.write
                    .push((ns.to_string(), Write::Replace(Box::new(updated(ces, es)))));
            }
        }
    }
    plan
}

/// The status after a reconcile: ESO's fields, sorted, with its one condition.
pub fn status(
    old: Option<&ClusterExternalSecretStatus>,
    es_name: &str,
    provisioned: &BTreeSet<String>,
    failed: &BTreeMap<String, String>,
    selector_error: bool,
) -> ClusterExternalSecretStatus {
    let old = old.cloned().unwrap_or_default();
    let condition = if failed.is_empty() {
        ClusterExternalSecretStatusCondition {
            type_: "Ready".into(),
            status: "True".into(),
            message: None,
        }
    } else {
        ClusterExternalSecretStatusCondition {
            type_: "Ready".into(),
            status: "False".into(),
            message: Some(message::NAMESPACES_FAILED.into()),
        }
    };
    let mut conditions: Vec<_> = old
        .conditions
        .into_iter()
        .filter(|c| c.type_ != "Ready")
        .collect();
    conditions.push(condition);
    ClusterExternalSecretStatus {
        external_secret_name: Some(es_name.to_string()),
        failed_namespaces: failed
            .iter()
            .map(|(ns, reason)| ClusterExternalSecretNamespaceFailure {
                namespace: ns.clone(),
                reason: Some(reason.clone()),
            })
            .collect(),
        // A selector error leaves what was provisioned as it was (ESO returns early).
        provisioned_namespaces: if selector_error {
            old.provisioned_namespaces
        } else {
            provisioned.iter().cloned().collect()
        },
        conditions,
    }
}

/// The ClusterExternalSecrets a namespace event concerns: those selecting it now, those
/// whose status lists it, and those controlling an ExternalSecret in it (so a namespace
/// relabelled out is cleaned up at once, where ESO looks at the new labels only).
pub fn affected_by_namespace(
    ns: &NamespaceInfo,
    all: &[Arc<ClusterExternalSecret>],
    external_secrets: &Store<ExternalSecret>,
) -> Vec<ObjectRef<ClusterExternalSecret>> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let single = std::slice::from_ref(ns);
    for ces in all {
        let listed = ces.status.as_ref().is_some_and(|s| {
            s.provisioned_namespaces.contains(&ns.name)
                || s.failed_namespaces.iter().any(|f| f.namespace == ns.name)
        });
        let selects = selected(ces, single).is_ok_and(|s| !s.is_empty());
        if listed || selects {
            out.insert(ces.name_any());
        }
    }
    for es in external_secrets.state() {
        if es.metadata.namespace.as_deref() == Some(ns.name.as_str())
            && let Some(owner) = controller_owner(&es)
        {
            out.insert(owner.to_string());
        }
    }
    out.into_iter().map(|n| ObjectRef::new(&n)).collect()
}

/// An ExternalSecret event a ClusterExternalSecret may care about: one it controls changed
/// or went (it is put back), or one of another owner went (a namespace that failed because
/// of it can now be provisioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsChange {
    /// The ClusterExternalSecret controlling it, if one does.
    pub owner: Option<String>,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl EsChange {
    /// The change an ExternalSecret watch event is, if any matters.
    pub fn of(event: &Result<watcher::Event<ExternalSecret>, watcher::Error>) -> Option<EsChange> {
        let (es, deleted) = match event {
            Ok(watcher::Event::Apply(es)) => (es, false),
            Ok(watcher::Event::Delete(es)) => (es, true),
            _ => return None,
        };
        let owner = controller_owner(es).map(str::to_string);
        (owner.is_some() || deleted).then(|| EsChange {
            owner,
            namespace: es.namespace().unwrap_or_default(),
            name: es.name_any(),
        })
    }

    /// The ClusterExternalSecrets to reconcile for it.
    fn targets(&self, all: &Store<ClusterExternalSecret>) -> Vec<ObjectRef<ClusterExternalSecret>> {
        if let Some(owner) = &self.owner {
            return vec![ObjectRef::new(owner)];
        }
        all.state()
            .iter()
            .filter(|ces| {
                ces.external_secret_name() == self.name
                    && ces.status.as_ref().is_some_and(|s| {
                        s.failed_namespaces
                            .iter()
                            .any(|f| f.namespace == self.namespace)
                    })
            })
            .map(|ces| ObjectRef::from_obj(ces.as_ref()))
            .collect()
    }
}

/// What a ClusterExternalSecret reconcile reads besides its own object.
pub struct CesContext {
    /// The shared controller context (client, settings).
    pub ctx: Arc<Context>,
    /// Namespaces' metadata.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Every ExternalSecret (the ExternalSecret controller's reflector).
    pub external_secrets: Store<ExternalSecret>,
}

impl CesContext {
    fn synced(&self) -> bool {
        self.namespaces.is_ready_now() && self.external_secrets.is_ready_now()
    }
}

trait ReadyNow {
    fn is_ready_now(&self) -> bool;
}

impl<K> ReadyNow for Store<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn is_ready_now(&self) -> bool {
        use futures::FutureExt;
        self.wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    }
}

/// The message of an API error (what ESO's `err.Error()` shows), else the error.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Reconciles one ClusterExternalSecret.
#[instrument(skip_all, fields(name = %ces.name_any()))]
pub async fn reconcile(
    ces: Arc<ClusterExternalSecret>,
    cctx: Arc<CesContext>,
) -> Result<Action, Error> {
    if !cctx.synced() {
        return Err(Error::NotSynced);
    }
    let start = Instant::now();
    let client = &cctx.ctx.client;
    let api: Api<ClusterExternalSecret> = Api::all(client.clone());
    let name = ces.name_any();
    if ces.metadata.deletion_timestamp.is_some() {
        cleanup(&ces, &cctx).await?;
        forget_metrics(&cctx.ctx.metrics, &name);
        return Ok(Action::await_change());
    }
    if !ces.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = ces.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": ces.resource_version(),
        }});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(
                "could not add the ClusterExternalSecret's finalizer",
            ))?;
    }

    let namespaces: Vec<NamespaceInfo> = cctx
        .namespaces
        .state()
        .iter()
        .map(|n| NamespaceInfo::from_meta(n))
        .collect();
    let es_name = ces.external_secret_name();
    let relevant: Vec<Arc<ExternalSecret>> = cctx
        .external_secrets
        .state()
        .into_iter()
        .filter(|es| es.metadata.name.as_deref() == Some(es_name.as_str()) || owned_by(es, &name))
        .collect();
    let mut plan = plan(&ces, &namespaces, &relevant);
    let mut conflict = false;

    for (ns, es) in &plan.delete {
        match delete_external_secret(client, ns, es, &relevant).await {
            Ok(()) => {
                info!(namespace = %ns, external_secret = %es, "deleted ExternalSecret no longer selected")
            }
            Err(e) => {
                warn!(namespace = %ns, error = %e, "could not delete ExternalSecret");
                conflict |= is_conflict(&e);
                plan.failed.insert(
                    ns.clone(),
                    format!(
                        "external secret in non matching namespace could not be deleted: {}",
                        api_message(&e)
                    ),
                );
            }
        }
    }
    for (ns, write) in std::mem::take(&mut plan.write) {
        let es_api: Api<ExternalSecret> = Api::namespaced(client.clone(), &ns);
        let post = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let result = match &write {
            Write::Create(es) => es_api.create(&post, es).await.map(|_| "created"),
            Write::Replace(es) => es_api.replace(&es_name, &post, es).await.map(|_| "updated"),
        };
        match result {
            Ok(what) => {
                info!(namespace = %ns, external_secret = %es_name, "ExternalSecret {what}");
                plan.provisioned.insert(ns);
            }
            Err(e) => {
                warn!(namespace = %ns, error = %e, "could not create or update ExternalSecret");
                conflict |= is_conflict(&e);
                plan.failed.insert(
                    ns,
                    format!(
                        "could not create or update ExternalSecret: {}",
                        api_message(&e)
                    ),
                );
            }
        }
    }

    let new = status(
        ces.status.as_ref(),
        &plan.es_name,
        &plan.provisioned,
        &plan.failed,
        plan.selector_error.is_some(),
    );
    if ces.status.as_ref() != Some(&new) {
        // Every field explicitly (null when empty), so a merge patch clears what emptied.
        let patch = json!({"status": {
            "externalSecretName": new.external_secret_name,
            "failedNamespaces": (!new.failed_namespaces.is_empty()).then_some(&new.failed_namespaces),
            "provisionedNamespaces": (!new.provisioned_namespaces.is_empty()).then_some(&new.provisioned_namespaces),
            "conditions": new.conditions,
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(
                "could not update the ClusterExternalSecret's status",
            ))?;
    }
    crate::metrics::Metrics::set_condition(
        &cctx.ctx.metrics.ces_condition,
        &name,
        "",
        "Ready",
        new.failed_namespaces.is_empty(),
    );
    cctx.ctx
        .metrics
        .ces_reconcile_duration
        .get_or_create(&crate::metrics::ObjectLabels {
            name: name.clone(),
            namespace: String::new(),
        })
        .set(start.elapsed().as_nanos() as f64);
    debug!(elapsed = ?start.elapsed(), provisioned = new.provisioned_namespaces.len(), failed = new.failed_namespaces.len(), "reconciled");
    if conflict {
        return Ok(Action::requeue(CONFLICT_RETRY));
    }
    Ok(requeue(&ces))
}

/// Drops a deleted ClusterExternalSecret's metric series.
fn forget_metrics(metrics: &crate::metrics::Metrics, name: &str) {
    metrics
        .ces_reconcile_duration
        .remove(&crate::metrics::ObjectLabels {
            name: name.to_string(),
            namespace: String::new(),
        });
    for status in ["True", "False"] {
        metrics
            .ces_condition
            .remove(&crate::metrics::ConditionLabels {
                name: name.to_string(),
                namespace: String::new(),
                condition: "Ready".into(),
                status: status.into(),
            });
    }
}

/// `refreshTime` (ESO's default 1h; `0` waits for a change).
fn requeue(ces: &ClusterExternalSecret) -> Action {
    let every = match ces.spec.refresh_time.as_deref() {
        None => DEFAULT_REFRESH,
        Some(s) => match crate::api::duration::parse(s) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "invalid refreshTime; using 1h");
                DEFAULT_REFRESH
            }
        },
    };
    if every.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(every)
    }
}

/// Deletes the ExternalSecret `name` in `ns` if it is the one in `seen` (the cache), by UID.
async fn delete_external_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    seen: &[Arc<ExternalSecret>],
) -> Result<(), kube::Error> {
    let uid = seen
        .iter()
        .find(|es| {
            es.metadata.namespace.as_deref() == Some(ns)
                && es.metadata.name.as_deref() == Some(name)
        })
        .and_then(|es| es.uid());
    let api: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The ClusterExternalSecret is being deleted: delete every ExternalSecret it controls, then
/// let it go.
async fn cleanup(ces: &ClusterExternalSecret, cctx: &CesContext) -> Result<(), Error> {
    let name = ces.name_any();
    let owned: Vec<Arc<ExternalSecret>> = cctx
        .external_secrets
        .state()
        .into_iter()
        .filter(|es| owned_by(es, &name) && es.metadata.deletion_timestamp.is_none())
        .collect();
    for es in &owned {
        let ns = es.namespace().unwrap_or_default();
        delete_external_secret(&cctx.ctx.client, &ns, &es.name_any(), &owned)
            .await
            .map_err(kube_err(format!(
                "could not delete ExternalSecret {:?} in namespace {ns:?}",
                es.name_any()
            )))?;
        info!(namespace = %ns, external_secret = %es.name_any(), "deleted ExternalSecret with its ClusterExternalSecret");
    }
    if ces.finalizers().iter().any(|f| f == FINALIZER) {
        let rest: Vec<&String> = ces
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": ces.resource_version(),
        }});
        let api: Api<ClusterExternalSecret> = Api::all(cctx.ctx.client.clone());
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(kube_err(
                    "could not remove the ClusterExternalSecret's finalizer",
                )(e));
            }
        }
    }
    Ok(())
}

/// Retries a failed reconcile after a short delay.
pub fn error_policy(_: Arc<ClusterExternalSecret>, err: &Error, _: Arc<CesContext>) -> Action {
    match err {
        Error::NotSynced => Action::requeue(Duration::from_millis(500)),
        _ => {
            warn!(error = %err, reason = err.metric_label(), "ClusterExternalSecret reconcile failed");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

/// A stable hash of what makes a namespace event matter: its labels and whether it is
/// terminating.
fn namespace_key(ns: &PartialObjectMeta<Namespace>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ns.labels().hash(&mut h);
    ns.metadata.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

/// Why the ClusterExternalSecret controller cannot run, if it cannot: its CRD is not
/// installed, or the RBAC does not let esox list ClusterExternalSecrets or namespaces (an
/// older chart's). One small list each at start; other errors (an apiserver still starting)
/// are left to the watches' retries.
async fn unavailable(client: &kube::Client) -> Option<String> {
    let one = kube::api::ListParams::default().limit(1);
    let ces: Api<ClusterExternalSecret> = Api::all(client.clone());
    match ces.list_metadata(&one).await {
        Err(kube::Error::Api(e)) if e.code == 404 => {
            return Some(
                "the ClusterExternalSecret CRD is not installed (install the CRDs: `esox crds | kubectl apply --server-side -f -`)".into(),
            );
        }
        Err(kube::Error::Api(e)) if e.code == 403 => {
            return Some(format!(
                "no permission to list clusterexternalsecrets ({}); upgrade the chart's RBAC",
                e.message
            ));
        }
        _ => {}
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.list_metadata(&one).await {
        Err(kube::Error::Api(e)) if e.code == 403 => Some(format!(
            "no permission to list namespaces ({}); upgrade the chart's RBAC",
            e.message
        )),
        _ => None,
    }
}

/// Runs the ClusterExternalSecret controller (cluster-wide mode only) until `shutdown`.
/// `external_secrets` is the ExternalSecret controller's reflector; `es_changes` are its
/// events that may concern a ClusterExternalSecret ([`EsChange`]): an edited or deleted
/// child is put back at once.
pub async fn run(
    ctx: Arc<Context>,
    health: Arc<crate::http::Health>,
    external_secrets: Store<ExternalSecret>,
    es_changes: impl Stream<Item = EsChange> + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    if let Some(why) = unavailable(&client).await {
        // A binary upgraded before its CRDs or the chart's RBAC: the other controllers run
        // (and report ready) as before; ClusterExternalSecrets wait for a restart.
        warn!("ClusterExternalSecrets are not processed: {why}");
        shutdown.await;
        return;
    }
    let (ns_reader, ns_writer) = kube::runtime::reflector::store();
    let ns_api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let ces_reader_slot: Arc<std::sync::OnceLock<Store<ClusterExternalSecret>>> = Arc::default();
    let slot = ces_reader_slot.clone();
    let es_for_ns = external_secrets.clone();
    let mut seen: std::collections::HashMap<String, u64> = Default::default();
    let namespace_changes =
        super::watch::watch(health.watch("Namespace"), ns_reader.clone(), move || {
            watcher(ns_api.clone(), watcher::Config::default().any_semantic())
        })
        .reflect(ns_writer)
        .filter_map(move |event| {
            // Only label changes, a deletion starting, and namespaces appearing or going.
            // The first list says nothing new (every ClusterExternalSecret is reconciled when
            // its own watch starts); a relist after an outage does, for what changed meanwhile.
            let changed: Vec<NamespaceInfo> = match event {
                Ok(watcher::Event::Apply(ns)) => {
                    let key = namespace_key(&ns);
                    if seen.insert(ns.name_any(), key) == Some(key) {
                        Vec::new()
                    } else {
                        vec![NamespaceInfo::from_meta(&ns)]
                    }
                }
                Ok(watcher::Event::InitApply(ns)) => {
                    let key = namespace_key(&ns);
                    match seen.insert(ns.name_any(), key) {
                        Some(old) if old != key => vec![NamespaceInfo::from_meta(&ns)],
                        _ => Vec::new(),
                    }
                }
                Ok(watcher::Event::Delete(ns)) => {
                    seen.remove(&ns.name_any());
                    vec![NamespaceInfo::from_meta(&ns)]
                }
                _ => Vec::new(),
            };
            let refs: Vec<ObjectRef<ClusterExternalSecret>> = match slot.get() {
                Some(ces) => {
                    let all = ces.state();
                    changed
                        .iter()
                        .flat_map(|ns| affected_by_namespace(ns, &all, &es_for_ns))
                        .collect()
                }
                None => Vec::new(),
            };
            futures::future::ready(Some(futures::stream::iter(refs)))
        })
        .flatten();

    let (ces_reader, ces_writer) = kube::runtime::reflector::store();
    let _ = ces_reader_slot.set(ces_reader.clone());
    let ces_api: Api<ClusterExternalSecret> = Api::all(client.clone());
    let ces_stream = super::watch::watch(
        health.watch("ClusterExternalSecret"),
        ces_reader.clone(),
        move || watcher(ces_api.clone(), watcher::Config::default().any_semantic()),
    )
    .reflect(ces_writer)
    .applied_objects()
    .predicate_filter(super::worth_a_reconcile(), Default::default());
    let all_ces = ces_reader.clone();
    let owned = es_changes.flat_map(move |change| futures::stream::iter(change.targets(&all_ces)));
    let cctx = Arc::new(CesContext {
        ctx: ctx.clone(),
        namespaces: ns_reader,
        external_secrets,
    });
    Controller::for_stream(ces_stream, ces_reader)
        .with_config(ControllerConfig::default().concurrency(4))
        .reconcile_on(namespace_changes)
        .reconcile_on(owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, cctx)
        .for_each(|res| {
            if let Err(e) = res {
                debug!(error = %e, "ClusterExternalSecret controller");
            }
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn ces(spec: serde_json::Value) -> ClusterExternalSecret {
        let mut ces: ClusterExternalSecret = serde_json::from_value(json!({
            "metadata": {"name": "shared", "uid": "ces-uid"},
            "spec": spec,
        }))
        .unwrap();
        ces.metadata.annotations = None;
        ces
    }

    fn base_spec() -> serde_json::Value {
        json!({
            "externalSecretSpec": {
                "secretStoreRef": {"name": "fake", "kind": "ClusterSecretStore"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "r"}}],
            },
            "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
            "namespaces": ["by-name"],
        })
    }

    fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceInfo {
        NamespaceInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("kubernetes.io/metadata.name".to_string(), name.to_string())])
                .collect(),
            terminating: false,
        }
    }

    fn created(plan: &Plan) -> Vec<&str> {
        plan.write
            .iter()
            .filter(|(_, w)| matches!(w, Write::Create(_)))
            .map(|(ns, _)| ns.as_str())
            .collect()
    }

    /// What the first plan creates, as the apiserver then holds it.
    fn as_stored(plan: &Plan) -> Vec<Arc<ExternalSecret>> {
        plan.write
            .iter()
            .map(|(_, w)| match w {
                Write::Create(es) | Write::Replace(es) => {
                    let mut es = (**es).clone();
                    es.metadata.uid = Some(format!("es-{}", es.namespace().unwrap()));
                    es.metadata.resource_version = Some("1".into());
                    Arc::new(es)
                }
            })
            .collect()
    }

    #[test]
    fn selects_by_label_and_by_name_and_skips_the_rest() {
        let c = ces(base_spec());
        let all = [
            ns("a1", &[("team", "a")]),
            ns("b1", &[("team", "b")]),
            ns("by-name", &[]),
            ns("other", &[]),
        ];
        let plan = plan(&c, &all, &[]);
        assert_eq!(created(&plan), ["a1", "by-name"]);
        assert!(plan.delete.is_empty() && plan.failed.is_empty());
        let Write::Create(es) = &plan.write[0].1 else {
            unreachable!()
        };
        assert_eq!(es.name_any(), "shared");
        let owner = &es.owner_references()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            (
                "external-secrets.io/v1",
                "ClusterExternalSecret",
                "shared",
                "ces-uid",
                Some(true),
                Some(true)
            )
        );
        assert_eq!(es.spec, c.spec.external_secret_spec);
    }

    #[test]
    fn an_up_to_date_external_secret_is_not_written_and_a_changed_one_is_replaced() {
        let c = ces(base_spec());
        let all = [ns("a1", &[("team", "a")])];
        let first = plan(&c, &all, &[]);
        let stored = as_stored(&first);
        let again = plan(&c, &all, &stored);
        assert!(again.write.is_empty(), "{again:?}");
        assert_eq!(again.provisioned, BTreeSet::from(["a1".to_string()]));

        // Someone edits the child: it is put back, keeping its finalizers and version.
        let mut edited = (*stored[0]).clone();
        edited.spec.refresh_interval = Some("5s".into());
        edited.metadata.finalizers = Some(vec!["x".into()]);
        let fixed = plan(&c, &all, &[Arc::new(edited)]);
        let Write::Replace(es) = &fixed.write[0].1 else {
            panic!("{fixed:?}")
        };
        assert_eq!(es.spec, c.spec.external_secret_spec);
        assert_eq!(es.finalizers(), ["x"]);
        assert_eq!(es.resource_version().as_deref(), Some("1"));

        // Metadata and force-sync go through.
        let mut meta = base_spec();
        meta["externalSecretMetadata"] = json!({"labels": {"l": "v"}, "annotations": {"a": "b"}});
        let mut c2 = ces(meta);
        c2.metadata.annotations =
            Some([(FORCE_SYNC_ANNOTATION.to_string(), "1".to_string())].into());
        let p = plan(&c2, &all, &stored);
        let Write::Replace(es) = &p.write[0].1 else {
            panic!("{p:?}")
        };
        assert_eq!(es.labels().get("l").map(String::as_str), Some("v"));
        assert_eq!(es.annotations().get("a").map(String::as_str), Some("b"));
        assert_eq!(
            es.annotations()
                .get(FORCE_SYNC_ANNOTATION)
                .map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn a_namespace_relabelled_out_loses_its_external_secret() {
        let c = ces(base_spec());
        let before = [ns("a1", &[("team", "a")]), ns("a2", &[("team", "a")])];
        let stored = as_stored(&plan(&c, &before, &[]));
        let after = [ns("a1", &[("team", "a")]), ns("a2", &[("team", "gone")])];
        let p = plan(&c, &after, &stored);
        assert_eq!(p.delete, [("a2".to_string(), "shared".to_string())]);
        assert!(p.write.is_empty());
        assert_eq!(p.provisioned, BTreeSet::from(["a1".to_string()]));
    }

    #[test]
    fn an_unowned_external_secret_is_never_overwritten() {
        let c = ces(base_spec());
        let all = [ns("a1", &[("team", "a")])];
        let mut theirs: ExternalSecret = serde_json::from_value(json!({
            "metadata": {"name": "shared", "namespace": "a1", "uid": "theirs"},
            "spec": {},
        }))
        .unwrap();
        let p = plan(&c, &all, &[Arc::new(theirs.clone())]);
        assert!(p.write.is_empty() && p.delete.is_empty());
        assert_eq!(
            p.failed,
            BTreeMap::from([("a1".to_string(), message::ALREADY_EXISTS.to_string())])
        );
        let s = status(None, &p.es_name, &p.provisioned, &p.failed, false);
        assert_eq!(s.conditions[0].status, "False");
        assert_eq!(
            s.conditions[0].message.as_deref(),
            Some(message::NAMESPACES_FAILED)
        );
        assert_eq!(s.failed_namespaces[0].namespace, "a1");
        assert_eq!(
            s.failed_namespaces[0].reason.as_deref(),
            Some(message::ALREADY_EXISTS)
        );
        // Owned by another ClusterExternalSecret: not ours either.
        theirs.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "external-secrets.io/v1".into(),
            kind: "ClusterExternalSecret".into(),
            name: "other".into(),
            uid: "x".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        let p = plan(&c, &all, &[Arc::new(theirs)]);
        assert_eq!(p.failed.len(), 1);
    }

    #[test]
    fn renaming_deletes_the_old_external_secrets_and_creates_new_ones() {
        let c = ces(base_spec());
        let all = [ns("a1", &[("team", "a")])];
        let stored = as_stored(&plan(&c, &all, &[]));
        let mut spec = base_spec();
        spec["externalSecretName"] = json!("renamed");
        let c2 = ces(spec);
        let p = plan(&c2, &all, &stored);
        assert_eq!(p.delete, [("a1".to_string(), "shared".to_string())]);
        assert_eq!(created(&p), ["a1"]);
        assert_eq!(p.es_name, "renamed");
    }

    #[test]
    fn terminating_namespaces_are_not_provisioned() {
        let c = ces(base_spec());
        let mut t = ns("a1", &[("team", "a")]);
        t.terminating = true;
        let p = plan(&c, &[t], &[]);
        assert!(p.write.is_empty() && p.provisioned.is_empty() && p.failed.is_empty());
    }

    #[test]
    fn invalid_selectors_fail_as_unknown_and_change_nothing() {
        let mut spec = base_spec();
        spec["namespaceSelectors"] =
            json!([{"matchExpressions": [{"key": "team", "operator": "Near", "values": ["a"]}]}]);
        let c = ces(spec);
        let p = plan(&c, &[ns("a1", &[("team", "a")])], &[]);
        assert!(p.write.is_empty() && p.delete.is_empty());
        assert_eq!(p.failed.keys().collect::<Vec<_>>(), ["unknown"]);
        assert!(p.failed["unknown"].contains("is not a valid label selector operator"));
        let old = ClusterExternalSecretStatus {
            provisioned_namespaces: vec!["kept".into()],
            ..Default::default()
        };
        let s = status(Some(&old), &p.es_name, &p.provisioned, &p.failed, true);
        assert_eq!(s.provisioned_namespaces, ["kept"]);
        let expr = |operator: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            match_labels: None,
        };
        assert!(check_selector(&expr("In", &[])).is_err());
        assert!(check_selector(&expr("NotIn", &[])).is_err());
        assert!(check_selector(&expr("Exists", &["x"])).is_err());
        assert!(check_selector(&expr("In", &["x"])).is_ok());
        assert!(check_selector(&expr("DoesNotExist", &[])).is_ok());
    }

    #[test]
    fn match_expressions_and_the_deprecated_selector_are_ored() {
        let c = ces(json!({
            "externalSecretSpec": {},
            "namespaceSelector": {"matchLabels": {"legacy": "yes"}},
            "namespaceSelectors": [{"matchExpressions": [{"key": "env", "operator": "In", "values": ["foo", "bar"]}]}],
        }));
        let all = [
            ns("foo", &[("env", "foo")]),
            ns("bar", &[("env", "bar")]),
            ns("baz", &[("env", "baz")]),
            ns("old", &[("legacy", "yes")]),
        ];
        let got = selected(&c, &all).unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["bar", "foo", "old"]);
        // Nothing selected: Ready, no ExternalSecret.
        let none = ces(json!({"externalSecretSpec": {}}));
        let p = plan(&none, &all, &[]);
        assert!(p.write.is_empty());
        let s = status(None, &p.es_name, &p.provisioned, &p.failed, false);
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.conditions[0].message, None);
    }

    #[test]
    fn status_is_sorted_and_says_the_name() {
        let provisioned = BTreeSet::from(["b".to_string(), "a".to_string()]);
        let failed = BTreeMap::from([
            ("z".to_string(), "r1".to_string()),
            ("c".to_string(), "r2".to_string()),
        ]);
        let s = status(None, "n", &provisioned, &failed, false);
        assert_eq!(s.external_secret_name.as_deref(), Some("n"));
        assert_eq!(s.provisioned_namespaces, ["a", "b"]);
        let order: Vec<_> = s
            .failed_namespaces
            .iter()
            .map(|f| f.namespace.as_str())
            .collect();
        assert_eq!(order, ["c", "z"]);
        assert_eq!(s.conditions.len(), 1);
    }

    /// ESO's bug (b): a namespace relabelled out enqueued nothing. Here the ClusterExternalSecrets
    /// that select it now, list it in their status, or control an ExternalSecret in it are all
    /// enqueued; an unrelated namespace enqueues none.
    #[test]
    fn a_namespace_event_enqueues_old_and_new_selections() {
        let selecting = Arc::new(ces(base_spec()));
        let mut listed = ces(json!({"externalSecretSpec": {}}));
        listed.metadata.name = Some("listed".into());
        listed.status = Some(ClusterExternalSecretStatus {
            provisioned_namespaces: vec!["relabelled".into()],
            ..Default::default()
        });
        let mut owner = ces(json!({"externalSecretSpec": {}}));
        owner.metadata.name = Some("owner".into());
        let all = vec![selecting, Arc::new(listed), Arc::new(owner.clone())];

        let (store, mut writer) = kube::runtime::reflector::store::<ExternalSecret>();
        // `owner` selects nothing any more, but still controls an ExternalSecret there.
        let mut child = ExternalSecret::new("owner", Default::default());
        child.metadata.namespace = Some("orphaned".into());
        child.metadata.owner_references = Some(vec![owner_reference(&owner)]);
        writer.apply_watcher_event(&watcher::Event::Apply(child));

        let names = |n: &NamespaceInfo| -> Vec<String> {
            affected_by_namespace(n, &all, &store)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(names(&ns("a1", &[("team", "a")])), ["shared"]);
        assert_eq!(names(&ns("relabelled", &[("team", "gone")])), ["listed"]);
        assert_eq!(names(&ns("orphaned", &[])), ["owner"]);
        assert!(names(&ns("unrelated", &[])).is_empty());
    }

    #[test]
    fn refresh_time_sets_the_requeue() {
        let mut spec = base_spec();
        spec["refreshTime"] = json!("90s");
        assert_eq!(
            requeue(&ces(spec)),
            Action::requeue(Duration::from_secs(90))
        );
        assert_eq!(requeue(&ces(base_spec())), Action::requeue(DEFAULT_REFRESH));
        let mut spec = base_spec();
        spec["refreshTime"] = json!("0");
        assert_eq!(requeue(&ces(spec)), Action::await_change());
    }
}
