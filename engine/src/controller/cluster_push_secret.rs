//! The ClusterPushSecret reconciler: one PushSecret in every namespace the selectors pick
//! (ESO's `pkg/controllers/clusterpushsecret/`, v1alpha1).
//!
//! [`reconcile`] reads only watch caches (namespaces' metadata, PushSecrets), asks the pure
//! [`plan`] what to create, replace and delete, writes only what differs and patches the status
//! only when it changed. As ESO: the PushSecrets carry a controller owner reference; one of that
//! name not controlled by the ClusterPushSecret is never touched (`failedNamespaces`: `push
//! secret already exists in namespace`); a namespace no longer selected loses its PushSecret;
//! `Ready=True`, or `Ready=False` with `one or more namespaces failed`. No finalizer (ESO has
//! none): the PushSecrets go with the ClusterPushSecret through garbage collection, and their
//! own finalizers clean the providers. Unlike ESO, a namespace event reconciles every
//! ClusterPushSecret, so a namespace relabelled out loses its PushSecret at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::context::Context;
use super::resolve::selector_matches;
use crate::api::push_secret::ClusterPushSecretNamespaceFailure;
use crate::api::{ClusterPushSecret, ClusterPushSecretStatus, Condition, PushSecret};

/// ESO's requeue when `refreshTime` is not set.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// ESO's failure texts.
pub mod message {
    /// `Ready=False` message.
    pub const NAMESPACES_FAILED: &str = "one or more namespaces failed";
    /// A PushSecret of that name exists and is not controlled by this ClusterPushSecret.
    pub const ALREADY_EXISTS: &str = "push secret already exists in namespace";
}

/// Errors that make the reconcile retry.
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

/// A namespace as the planner sees it.
#[derive(Debug, Clone)]
pub struct Ns {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Being deleted.
    pub terminating: bool,
}

/// What to do for one ClusterPushSecret.
#[derive(Debug, Default)]
pub struct Plan {
    /// PushSecrets to create (namespace, object).
    pub create: Vec<PushSecret>,
    /// PushSecrets to replace (ours, and they differ).
    pub replace: Vec<PushSecret>,
    /// Owned PushSecrets no longer wanted, as (namespace, name).
    pub delete: Vec<(String, String)>,
    /// Namespaces holding an up-to-date PushSecret.
    pub provisioned: BTreeSet<String>,
    /// Namespaces that failed, and why.
    pub failed: BTreeMap<String, String>,
}

/// Whether `ps` is controlled by the ClusterPushSecret `name`.
pub fn owned_by(ps: &PushSecret, name: &str) -> bool {
    ps.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "ClusterPushSecret" && o.name == name)
}

/// The PushSecret name a ClusterPushSecret stamps.
pub fn push_secret_name(cps: &ClusterPushSecret) -> String {
    cps.spec
        .push_secret_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| cps.name_any())
}

/// The PushSecret wanted in `ns`.
pub fn desired(cps: &ClusterPushSecret, ns: &str) -> PushSecret {
    let mut ps = PushSecret::new(&push_secret_name(cps), cps.spec.push_secret_spec.clone());
    ps.metadata.namespace = Some(ns.to_string());
    let meta = cps.spec.push_secret_metadata.clone().unwrap_or_default();
    ps.metadata.labels = (!meta.labels.is_empty()).then_some(meta.labels);
    ps.metadata.annotations = (!meta.annotations.is_empty()).then_some(meta.annotations);
    ps.metadata.owner_references = Some(vec![OwnerReference {
        api_version: ClusterPushSecret::api_version(&()).into_owned(),
        kind: "ClusterPushSecret".into(),
        name: cps.name_any(),
        uid: cps.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    ps
}

/// Plans one ClusterPushSecret against the namespaces and the PushSecrets that exist.
pub fn plan(cps: &ClusterPushSecret, namespaces: &[Ns], existing: &[Arc<PushSecret>]) -> Plan {
    let mut out = Plan::default();
    let cps_name = cps.name_any();
    let name = push_secret_name(cps);
    let selected: BTreeSet<&str> = namespaces
        .iter()
        .filter(|n| !n.terminating)
        .filter(|n| {
            cps.spec
                .namespace_selectors
                .iter()
                .any(|s| selector_matches(s, &n.labels))
        })
        .map(|n| n.name.as_str())
        .collect();
    for ps in existing {
        let ns = ps.namespace().unwrap_or_default();
        if owned_by(ps, &cps_name) && (!selected.contains(ns.as_str()) || ps.name_any() != name) {
            out.delete.push((ns, ps.name_any()));
        }
    }
    for ns in selected {
        let want = desired(cps, ns);
        let found = existing
            .iter()
            .find(|p| p.namespace().as_deref() == Some(ns) && p.name_any() == name);
        match found {
            None => out.create.push(want),
            Some(p) if !owned_by(p, &cps_name) => {
                out.failed
                    .insert(ns.to_string(), message::ALREADY_EXISTS.to_string());
            }
            Some(p) => {
                let same = p.spec == want.spec
                    && p.metadata.labels.clone().unwrap_or_default()
                        == want.metadata.labels.clone().unwrap_or_default()
                    && p.metadata.annotations.clone().unwrap_or_default()
                        == want.metadata.annotations.clone().unwrap_or_default();
                if same {
                    out.provisioned.insert(ns.to_string());
                } else {
                    let mut want = want;
                    want.metadata.resource_version = p.resource_version();
                    out.replace.push(want);
                }
            }
        }
    }
    out
}

/// What a ClusterPushSecret reconcile reads.
pub struct CpsContext {
    /// The shared controller context.
    pub ctx: Arc<Context>,
    /// Namespaces' metadata.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Every PushSecret.
    pub push_secrets: Store<PushSecret>,
}

/// Reconciles one ClusterPushSecret.
#[instrument(skip_all, fields(name = %cps.name_any()))]
pub async fn reconcile(cps: Arc<ClusterPushSecret>, c: Arc<CpsContext>) -> Result<Action, Error> {
    if cps.metadata.deletion_timestamp.is_some() {
        info!("skipping as it is in deletion");
        return Ok(Action::await_change());
    }
    let client = &c.ctx.client;
    let namespaces: Vec<Ns> = c
        .namespaces
        .state()
        .iter()
        .map(|n| Ns {
            name: n.name_any(),
            labels: n.labels().clone(),
            terminating: n.metadata.deletion_timestamp.is_some(),
        })
        .collect();
    let existing = c.push_secrets.state();
    let mut plan = plan(&cps, &namespaces, &existing);
    let post = PostParams {
        field_manager: Some(super::target::FIELD_MANAGER.into()),
        ..Default::default()
    };
    for (ns, name) in &plan.delete {
        let api: Api<PushSecret> = Api::namespaced(client.clone(), ns);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                info!(namespace = %ns, push_secret = %name, "deleted PushSecret no longer selected")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                warn!(namespace = %ns, error = %e, "could not delete PushSecret");
                plan.failed
                    .insert(ns.clone(), format!("failed to delete push secret: {e}"));
            }
        }
    }
    for ps in plan.create.drain(..).chain(plan.replace.drain(..)) {
        let ns = ps.namespace().unwrap_or_default();
        let api: Api<PushSecret> = Api::namespaced(client.clone(), &ns);
        let result = if ps.metadata.resource_version.is_some() {
            api.replace(&ps.name_any(), &post, &ps).await
        } else {
            api.create(&post, &ps).await
        };
        match result {
            Ok(_) => {
                plan.provisioned.insert(ns);
            }
            Err(e) => {
                warn!(namespace = %ns, error = %e, "could not create or update PushSecret");
                plan.failed
                    .insert(ns, format!("could not create or update PushSecret: {e}"));
            }
        }
    }
    for ns in &plan.failed {
        c.ctx
            .publish(
                &cps.object_ref(&()),
                kube::runtime::events::EventType::Warning,
                "Errored",
                &format!("{}: {}", ns.0, ns.1),
                "Push",
            )
            .await;
    }
    let ok = plan.failed.is_empty();
    let mut conditions = cps
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut cond = Condition::new("Ready", ok, "", "");
    cond.reason = None;
    cond.message = (!ok).then(|| message::NAMESPACES_FAILED.to_string());
    crate::api::condition::set_condition(&mut conditions, cond);
    let new = ClusterPushSecretStatus {
        failed_namespaces: plan
            .failed
            .iter()
            .map(|(ns, why)| ClusterPushSecretNamespaceFailure {
                namespace: ns.clone(),
                reason: Some(why.clone()),
            })
            .collect(),
        provisioned_namespaces: plan.provisioned.iter().cloned().collect(),
        push_secret_name: Some(push_secret_name(&cps)),
        conditions,
    };
    if cps.status.as_ref() != Some(&new) {
        let api: Api<ClusterPushSecret> = Api::all(client.clone());
        let patch = json!({"status": {
            "failedNamespaces": (!new.failed_namespaces.is_empty()).then_some(&new.failed_namespaces),
            "provisionedNamespaces": (!new.provisioned_namespaces.is_empty()).then_some(&new.provisioned_namespaces),
            "pushSecretName": new.push_secret_name,
            "conditions": new.conditions,
        }});
        api.patch_status(
            &cps.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| Error::Kube {
            action: "could not update the ClusterPushSecret's status".into(),
            source,
        })?;
    }
    let every = cps
        .spec
        .refresh_interval
        .as_deref()
        .and_then(|s| crate::api::duration::parse(s).ok())
        .unwrap_or(DEFAULT_REFRESH);
    Ok(if every.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(every)
    })
}

fn error_policy(_: Arc<ClusterPushSecret>, err: &Error, _: Arc<CpsContext>) -> Action {
    warn!(error = %err, "ClusterPushSecret reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the ClusterPushSecret controller (cluster-wide mode only).
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let client = ctx.client.clone();
    let (ns_reader, ns_writer) = kube::runtime::reflector::store();
    let ns_api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let namespaces = watcher(ns_api, watcher::Config::default())
        .default_backoff()
        .reflect(ns_writer)
        .touched_objects();
    let (ps_reader, ps_writer) = kube::runtime::reflector::store();
    let ps_api: Api<PushSecret> = Api::all(client.clone());
    let push_secrets = watcher(ps_api, watcher::Config::default())
        .default_backoff()
        .reflect(ps_writer)
        .touched_objects();
    let cps_api: Api<ClusterPushSecret> = Api::all(client.clone());
    let controller = Controller::new(cps_api, watcher::Config::default());
    let all = controller.store();
    let all2 = all.clone();
    let c = Arc::new(CpsContext {
        ctx,
        namespaces: ns_reader,
        push_secrets: ps_reader,
    });
    controller
        .watches_stream(namespaces, move |_| {
            all.state()
                .iter()
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(push_secrets, move |ps| {
            ps.owner_references()
                .iter()
                .filter(|o| o.kind == "ClusterPushSecret")
                .map(|o| ObjectRef::new(&o.name))
                .chain(
                    // A foreign PushSecret blocking a namespace going away frees it.
                    all2.state()
                        .iter()
                        .filter(|c| push_secret_name(c) == ps.name_any())
                        .map(|c| ObjectRef::from_obj(c.as_ref())),
                )
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, c)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClusterPushSecretSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn cps() -> ClusterPushSecret {
        let mut c = ClusterPushSecret::new(
            "cps",
            ClusterPushSecretSpec {
                namespace_selectors: vec![LabelSelector {
                    match_labels: Some([("push".to_string(), "yes".to_string())].into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        c.metadata.uid = Some("u".into());
        c
    }

    fn ns(name: &str, selected: bool) -> Ns {
        Ns {
            name: name.into(),
            labels: if selected {
                [("push".to_string(), "yes".to_string())].into()
            } else {
                BTreeMap::new()
            },
            terminating: false,
        }
    }

    #[test]
    fn plans_as_eso_without_touching_foreign_push_secrets() {
        let c = cps();
        let mine_elsewhere = Arc::new(desired(&c, "gone"));
        let foreign = {
            let mut p = PushSecret::new("cps", Default::default());
            p.metadata.namespace = Some("b".into());
            Arc::new(p)
        };
        let mut up_to_date = desired(&c, "c");
        up_to_date.metadata.resource_version = Some("1".into());
        let plan = plan(
            &c,
            &[
                ns("a", true),
                ns("b", true),
                ns("c", true),
                ns("gone", false),
            ],
            &[mine_elsewhere, foreign, Arc::new(up_to_date)],
        );
        assert_eq!(
            plan.create
                .iter()
                .map(|p| p.namespace().unwrap())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert!(plan.replace.is_empty());
        assert_eq!(plan.delete, [("gone".to_string(), "cps".to_string())]);
        assert_eq!(plan.failed["b"], message::ALREADY_EXISTS);
        assert!(plan.provisioned.contains("c"));
    }
}
