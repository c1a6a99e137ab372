//! The controllers: ExternalSecrets, SecretStores and ClusterSecretStores.
//!
//! ExternalSecrets are watched through a predicate on generation, labels and annotations, so
//! our own status writes never trigger a reconcile (and ESO's force-sync annotation does).
//! Managed Secrets are watched metadata-only and by label (`reconcile.external-secrets.io/
//! managed=true`), so esox never caches Secret data or Secrets it does not manage; any change
//! to one — an edit, a deletion, the label being removed — reconciles its ExternalSecret at
//! once, which is what makes drift self-heal without waiting for the refresh interval.

pub mod context;
pub mod error;
pub mod external_secret;
pub mod generators;
pub mod plugins;
pub mod refresh;
pub mod resolve;
pub mod secret_store;
pub mod target;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::{ClusterSecretStore, ExternalSecret, SecretStore};
use context::Context;
use kube::runtime::Predicate;

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A deletion starting (the deletion timestamp being set) is a change the reconciler must
/// see, whether or not the apiserver bumped the generation: it runs the finalizer.
fn being_deleted(es: &ExternalSecret) -> Option<u64> {
    es.metadata.deletion_timestamp.as_ref().map(|_| 1)
}

/// Runs all controllers until a termination signal arrives. `ready` flips to true once the
/// ExternalSecret cache has synced.
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>) {
    let client = ctx.client.clone();
    let ns = ctx.settings.namespace.clone();
    let concurrency = ctx.settings.concurrency;

    let es_api: Api<ExternalSecret> = api(&client, ns.as_deref());
    let (reader, writer) = reflector::store();
    let forget_ctx = ctx.clone();
    let es_stream = watcher(es_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .inspect(move |event| {
            // Deleted ExternalSecrets are never reconciled again: drop their metric series
            // and backoff state here, or both grow for the life of the process.
            if let Ok(watcher::Event::Delete(es)) = event {
                let (name, ns) = (es.name_any(), es.namespace().unwrap_or_default());
                forget_ctx
                    .metrics
                    .forget(&name, &ns, error::Error::categories());
                forget_ctx.record_success(&ObjectRef::from_obj(es));
            }
        })
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::labels)
                .combine(predicates::annotations)
                .combine(being_deleted),
            Default::default(),
        );

    let secret_api: Api<PartialObjectMeta<Secret>> = match ns.as_deref() {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    let secrets = watcher(
        secret_api,
        watcher::Config::default().labels(&format!("{}=true", target::MANAGED_LABEL)),
    )
    .default_backoff()
    .touched_objects();

    // Turns are taken in the order objects become due. kube-runtime's runner, once its
    // concurrency limit is reached, parks due objects in a hash set and takes them back in hash
    // order, not arrival order: a few ExternalSecrets on a 1s refreshInterval keep it saturated
    // and win every turn, and others wait minutes for their first sync (seen at start-up with
    // 141 objects and 20 fast ones). So the runner is left unbounded (it still never runs one
    // object twice at once) and the limit is a FIFO semaphore around the reconciler.
    let turns = Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency.max(1))));
    let lookup = reader.clone();
    let es_controller = Controller::for_stream(es_stream, reader.clone())
        .watches_stream(secrets, move |secret| {
            let ns = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            lookup
                .state()
                .into_iter()
                .filter(|es| {
                    es.namespace().as_deref() == Some(ns.as_str()) && es.target_name() == name
                })
                .map(|es| ObjectRef::from_obj(es.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(
            move |es, ctx| {
                let turns = turns.clone();
                async move {
                    let _turn = turns.acquire_owned().await.expect("never closed");
                    external_secret::reconcile(es, ctx).await
                }
            },
            external_secret::error_policy,
            ctx.clone(),
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    other => warn!(error = %other, "ExternalSecret controller error"),
                }
            }
        });

    let store_controller = Controller::new(
        api::<SecretStore>(&client, ns.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .with_config(ControllerConfig::default().concurrency(concurrency.min(4)))
    .shutdown_on_signal()
    .run(
        secret_store::reconcile_store,
        secret_store::error_policy,
        ctx.clone(),
    )
    .for_each(|_| async {});

    let ready_flag = async move {
        if reader.wait_until_ready().await.is_ok() {
            ready.store(true, Ordering::Relaxed);
            info!("ExternalSecret cache synced; ready");
        }
    };

    if ns.is_none() {
        let css_controller = Controller::new(
            Api::<ClusterSecretStore>::all(client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .with_config(ControllerConfig::default().concurrency(concurrency.min(4)))
        .shutdown_on_signal()
        .run(
            secret_store::reconcile_cluster_store,
            secret_store::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
        tokio::join!(es_controller, store_controller, css_controller, ready_flag);
    } else {
        tokio::join!(es_controller, store_controller, ready_flag);
    }
    info!("controllers stopped");
}
