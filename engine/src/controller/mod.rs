//! The controllers: ExternalSecrets, SecretStores and ClusterSecretStores (and a watch of the
//! plugin objects that keeps the plugin host's compiled components in step with them).
//!
//! ExternalSecrets are watched through a predicate on generation, labels and annotations, so
//! our own status writes never trigger a reconcile (and ESO's force-sync annotation does).
//! Managed Secrets are watched metadata-only and by label (`reconcile.external-secrets.io/
//! managed=true`), so esox never caches Secret data or Secrets it does not manage; any change
//! to one — an edit, a deletion, the label being removed — reconciles its ExternalSecret at
//! once, which is what makes drift self-heal without waiting for the refresh interval.
//!
//! Every watch goes through [`watch::watch`]: a short backoff, an immediate relist on
//! `410 Expired`, and a relist that reports what was deleted meanwhile, so the caches and
//! self-heal come back within seconds of an apiserver or etcd restart.

pub mod bulkhead;
pub mod cache;
pub mod class;
pub mod cluster_external_secret;
pub mod cluster_push_secret;
pub mod context;
pub mod error;
pub mod events;
pub mod external_secret;
pub mod generators;
pub mod plugins;
pub mod push_data;
pub mod push_secret;
pub mod refresh;
pub mod resolve;
pub mod rollout;
pub mod secret_store;
pub mod switches;
pub mod target;
pub mod turns;
pub mod vault_leases;
pub mod watch;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::plugins::{ClusterWasmPlugin, WasmPlugin};
use crate::api::{ClusterSecretStore, ExternalSecret, SecretStore};
use crate::http::Health;
use context::Context;
use kube::runtime::Predicate;

/// How long the ExternalSecret watch waits for the store and Secret caches' first lists.
const CACHES_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What makes an event on one of esox's own kinds worth a reconcile: a new generation (the
/// spec), labels, annotations (force-sync, ESO's annotations) or the start of its deletion,
/// which runs the finalizer whether or not the apiserver bumped the generation. Status-only
/// updates (most often esox's own) are not.
pub(crate) fn worth_a_reconcile<K: kube::Resource>() -> impl Predicate<K> {
    fn being_deleted<K: kube::Resource>(obj: &K) -> Option<u64> {
        obj.meta().deletion_timestamp.as_ref().map(|_| 1)
    }
    predicates::generation
        .combine(predicates::labels)
        .combine(predicates::annotations)
        .combine(being_deleted::<K>)
}

/// Passes a store's events on only while this replica leads (`--shard-mode`: store
/// validation is leader-only work; the cache is filled on every replica all the same).
fn leading<T>(ctx: &Arc<Context>) -> impl FnMut(&T) -> futures::future::Ready<bool> + use<T> {
    let ctx = ctx.clone();
    move |_| futures::future::ready(ctx.leader.is_leader())
}

/// Once, when this replica becomes the leader in `--shard-mode` (then every store is
/// validated); never without sharding (the controller leads from its start).
fn became_leader(ctx: &Arc<Context>) -> futures::stream::BoxStream<'static, ()> {
    match ctx.shard.get() {
        Some(_) => ctx.leader.became().boxed(),
        None => futures::stream::pending().boxed(),
    }
}

/// Runs `controller` once this replica leads (at once without sharding), or nothing if
/// `shutdown` comes first.
async fn when_leader(
    ctx: &Arc<Context>,
    shutdown: impl Future<Output = ()>,
    controller: impl Future<Output = ()>,
) {
    tokio::select! {
        _ = ctx.leader.wait() => {}
        _ = shutdown => return,
    }
    controller.await
}

/// Runs `controller` if its switch is on (a controller future is lazy: one switched off never
/// starts its watches).
async fn optional(on: bool, controller: impl Future<Output = ()>) {
    if on {
        controller.await
    }
}

/// Counts a finished reconcile as progress (for `/healthz`) and logs the controller's own
/// errors.
fn reconciled<T, E, Q>(health: &Health, res: Result<T, kube::runtime::controller::Error<E, Q>>)
where
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    match res {
        Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => health.progress(),
        // A managed Secret seen before its ExternalSecret (the start, a deletion racing): the
        // ExternalSecret's own event reconciles it.
        Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
            tracing::debug!(%obj, "a Secret's ExternalSecret is not in the cache")
        }
        Err(other) => warn!(error = %other, "ExternalSecret controller error"),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c().map(|_| ());
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the controllers");
                ctrl_c.await
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await
}

/// Runs all controllers until a termination signal arrives. `ready` flips to true once the
/// ExternalSecret cache has synced.
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>) {
    let health = Arc::new(Health::new(ready, crate::http::DEFAULT_WEDGED_AFTER));
    run_until(ctx, health, shutdown_signal()).await
}

/// Runs all controllers until `shutdown` resolves, then lets the reconciles in flight finish
/// (the caller bounds how long: see `--shutdown-grace`). Readiness and progress go to
/// `health`: its ready flag flips to true once the ExternalSecret cache has synced.
pub async fn run_until(
    ctx: Arc<Context>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.boxed().shared();
    let ready = health.ready_flag().clone();
    let client = ctx.client.clone();
    let ns = ctx.settings.namespace.clone();
    let concurrency = ctx.settings.concurrency;
    let switches = ctx.settings.switches;
    // Cluster-scoped kinds are watched cluster-wide only, and each only when its switch is on.
    let cluster_stores = ns.is_none() && switches.cluster_store;

    // The stores and the managed Secrets' metadata are reflected once and shared: their own
    // controllers run from these streams, and every ExternalSecret reconcile reads them
    // instead of the apiserver (see `cache`).
    let (store_reader, store_writer) = reflector::store();
    let store_api = api::<SecretStore>(&client, ns.as_deref());
    let store_stream = watch::watch(
        health.watch("SecretStore"),
        store_reader.clone(),
        move || watcher(store_api.clone(), watcher::Config::default().any_semantic()),
    )
    .reflect(store_writer)
    .inspect(class::watch_hook::<SecretStore>(ctx.clone()))
    .applied_objects()
    .filter(leading(&ctx));
    let (cluster_store_reader, cluster_store_writer) = reflector::store();
    let (target_reader, target_writer) = reflector::store();
    let (reader, writer) = reflector::store();
    let caches = cache::Caches {
        secret_stores: store_reader.clone(),
        cluster_stores: cluster_stores.then(|| cluster_store_reader.clone()),
        targets: target_reader.clone(),
        external_secrets: reader.clone(),
    };
    // The caches are published to reconciles once their first lists are in. The
    // ExternalSecret watch starts then (below), so a cold start plans from the caches instead
    // of a live GET per object; if they take longer than CACHES_WAIT, it starts anyway and
    // reconciles read live until the caches are in.
    let caches_ctx = ctx.clone();
    let (caches_tx, caches_rx) = tokio::sync::watch::channel(false);
    let caches_ready = async move {
        let _ = caches.secret_stores.wait_until_ready().await;
        let _ = caches.targets.wait_until_ready().await;
        if let Some(cluster_stores) = &caches.cluster_stores {
            let _ = cluster_stores.wait_until_ready().await;
        }
        if caches_ctx.caches.set(caches).is_err() {
            warn!("controllers already ran with this context; reusing its caches");
        }
        caches_tx.send_replace(true);
    };
    let caches_gate = async move {
        let mut rx = caches_rx;
        if tokio::time::timeout(CACHES_WAIT, rx.wait_for(|ready| *ready))
            .await
            .is_err()
        {
            warn!(
                wait = ?CACHES_WAIT,
                "store and Secret caches not synced yet; reconciling with live reads until they are"
            );
        }
    };

    let es_api: Api<ExternalSecret> = api(&client, ns.as_deref());
    let forget_ctx = ctx.clone();
    let ces_leader = ctx.clone();
    // ClusterExternalSecrets (cluster-wide only) are told when an ExternalSecret they control
    // changes or goes, so an edited or deleted child is put back at once.
    let (ces_tx, ces_rx) = tokio::sync::mpsc::unbounded_channel();
    let ces_tx = (ns.is_none() && switches.cluster_external_secret).then_some(ces_tx);
    let es_stream = watch::watch(health.watch("ExternalSecret"), reader.clone(), move || {
        watcher(es_api.clone(), watcher::Config::default().any_semantic())
    })
    .reflect(writer)
    .inspect(move |event| {
        // Deleted ExternalSecrets are never reconciled again: drop their metric series,
        // backoff state and status memo here, or they grow for the life of the process.
        if let Ok(watcher::Event::Apply(es) | watcher::Event::InitApply(es)) = event {
            forget_ctx.written_status.observed(es);
        }
        if let Ok(watcher::Event::Delete(es)) = event {
            let (name, ns) = (es.name_any(), es.namespace().unwrap_or_default());
            forget_ctx
                .metrics
                .forget(&name, &ns, error::Error::categories());
            let key = ObjectRef::from_obj(es);
            forget_ctx.record_success(&key);
            forget_ctx.written_status.forget(&key);
        }
        if let Some(tx) = &ces_tx
            && ces_leader.leader.is_leader()
            && let Some(change) = cluster_external_secret::EsChange::of(event)
        {
            let _ = tx.send(change);
        }
    })
    .applied_objects()
    .predicate_filter(worth_a_reconcile(), Default::default());
    let es_stream = futures::stream::once(async move {
        caches_gate.await;
        es_stream
    })
    .flatten();

    let secret_api: Api<PartialObjectMeta<Secret>> = match ns.as_deref() {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    let known_ctx = ctx.clone();
    let secret_config =
        watcher::Config::default().labels(&format!("{}=true", target::MANAGED_LABEL));
    let secrets = watch::watch(
        health.watch("managed Secret"),
        target_reader.clone(),
        move || watcher(secret_api.clone(), secret_config.clone()),
    )
    .modify(cache::strip_managed_fields)
    .reflect(target_writer)
    .inspect(move |event| {
        if let Ok(watcher::Event::Delete(s)) = event {
            known_ctx
                .known_targets
                .forget(&s.namespace().unwrap_or_default(), &s.name_any());
        }
    })
    .touched_objects();

    // Turns are taken by priority, then in the order objects become due (see `turns`):
    // kube-runtime's runner, once its concurrency limit is reached, parks due objects in a
    // hash set and takes them back in hash order, so it is left unbounded (it still never
    // runs one object twice at once) and the limit is the context's gate, which the
    // reconciler takes, gives back while it waits on a store and takes again.
    let probe_turns = ctx.turns.clone();
    health.set_work(move || {
        let (urgent, periodic) = probe_turns.waiting();
        (probe_turns.in_use(), urgent + periodic)
    });
    let lookup = reader.clone();
    let ces_reader = reader.clone();
    let progress_health = health.clone();
    // A store that becomes Ready releases the ExternalSecrets that read it (held back by the
    // flood gate, or backing off after its failures) at once.
    let readers = reader.clone();
    let ready_keys = futures::stream::unfold(ctx.stores_ready.subscribe(), |mut rx| async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(key) => return Some((key, rx)),
                // Missed some: their ExternalSecrets retry on their own backoff.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stores_ready = ready_keys.flat_map(move |key| {
        let refs: Vec<_> = readers
            .state()
            .into_iter()
            .filter(|es| bulkhead::keys(es).contains(&key))
            .map(|es| ObjectRef::from_obj(es.as_ref()))
            .collect();
        futures::stream::iter(refs)
    });
    // `--shard-mode`: what a hand-over gives this replica is reconciled at once; what it
    // takes away stops reporting here (its new owner reports it).
    let lost_ctx = ctx.clone();
    let gained = match ctx.shard.get() {
        None => futures::stream::pending().boxed(),
        Some(shard) => shard
            .gained_with(
                external_secret::KIND,
                reader.clone(),
                move |es: &ExternalSecret| {
                    external_secret::forget_local_state(es, &lost_ctx);
                },
            )
            .boxed(),
    };
    let es_controller = Controller::for_stream(es_stream, reader.clone())
        .reconcile_on(stores_ready)
        .reconcile_on(gained)
        .watches_stream(secrets, move |secret| {
            let ns = secret.namespace().unwrap_or_default();
            // A Secret an ExternalSecret controls names it; others (Orphan targets) are
            // matched by target name.
            if let Some(owner) = secret
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == "ExternalSecret")
            {
                return vec![ObjectRef::new(&owner.name).within(&ns)];
            }
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
        .graceful_shutdown_on(shutdown.clone())
        .run(
            external_secret::reconcile,
            external_secret::error_policy,
            ctx.clone(),
        )
        .for_each(move |res| {
            reconciled(&progress_health, res);
            futures::future::ready(())
        });

    // `--enable-secret-store-reconciler=false`: the watch still fills the cache that
    // ExternalSecrets and PushSecrets read; nothing validates the stores.
    let store_controller = if switches.secret_store {
        Controller::for_stream(store_stream, store_reader)
            .with_config(ControllerConfig::default().concurrency(concurrency.min(4)))
            .reconcile_all_on(became_leader(&ctx))
            .graceful_shutdown_on(shutdown.clone())
            .run(
                secret_store::reconcile_store,
                secret_store::error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {})
            .boxed()
    } else {
        store_stream
            .take_until(shutdown.clone())
            .for_each(|_| async {})
            .boxed()
    };

    let ready_flag = async move {
        if reader.wait_until_ready().await.is_ok() {
            ready.store(true, Ordering::Relaxed);
            info!("ExternalSecret cache synced; ready");
        }
    };
    // Waiting for the first lists ends with the controllers (an apiserver that never
    // answered must not hold a shutdown up).
    let stopped = shutdown.clone();
    let startup = async move {
        tokio::select! {
            _ = futures::future::join(ready_flag, caches_ready) => {}
            _ = stopped => {}
        }
    };

    let push_controller = optional(
        switches.push_secret,
        push_secret::run(ctx.clone(), health.clone(), shutdown.clone()),
    );

    // Compiled user plugins whose objects are deleted or repinned are dropped from the host.
    let plugins = plugins::forget_stale_plugins(
        api::<WasmPlugin>(&client, ns.as_deref()),
        ctx.plugins.clone(),
        shutdown.clone(),
    );

    // `--reloader-compat`'s workload caches (nothing otherwise).
    let workloads = rollout::watch_workloads(ctx.clone(), health.clone(), shutdown.clone());

    if ns.is_none() {
        let cluster_plugins = plugins::forget_stale_plugins(
            Api::<ClusterWasmPlugin>::all(client.clone()),
            ctx.plugins.clone(),
            shutdown.clone(),
        );
        // Built only when switched on: a watch registered with `health` counts for /readyz.
        let css_controller = if cluster_stores {
            let css_api = Api::<ClusterSecretStore>::all(client.clone());
            let cluster_store_stream = watch::watch(
                health.watch("ClusterSecretStore"),
                cluster_store_reader.clone(),
                move || watcher(css_api.clone(), watcher::Config::default().any_semantic()),
            )
            .reflect(cluster_store_writer)
            .inspect(class::watch_hook::<ClusterSecretStore>(ctx.clone()))
            .applied_objects()
            .filter(leading(&ctx));
            Controller::for_stream(cluster_store_stream, cluster_store_reader)
                .with_config(ControllerConfig::default().concurrency(concurrency.min(4)))
                .reconcile_all_on(became_leader(&ctx))
                .graceful_shutdown_on(shutdown.clone())
                .run(
                    secret_store::reconcile_cluster_store,
                    secret_store::error_policy,
                    ctx.clone(),
                )
                .for_each(|_| async {})
                .boxed()
        } else {
            futures::future::ready(()).boxed()
        };
        let owned_changes = futures::stream::unfold(ces_rx, |mut rx| async move {
            rx.recv().await.map(|name| (name, rx))
        });
        let cps_controller = optional(
            switches.cluster_push_secret,
            when_leader(
                &ctx,
                shutdown.clone(),
                cluster_push_secret::run(ctx.clone(), shutdown.clone()),
            ),
        );
        let ces_controller = optional(
            switches.cluster_external_secret,
            when_leader(
                &ctx,
                shutdown.clone(),
                cluster_external_secret::run(
                    ctx.clone(),
                    health.clone(),
                    ces_reader,
                    owned_changes,
                    shutdown.clone(),
                ),
            ),
        );
        tokio::join!(
            es_controller,
            store_controller,
            css_controller,
            ces_controller,
            push_controller,
            cps_controller,
            startup,
            plugins,
            cluster_plugins,
            workloads
        );
    } else {
        tokio::join!(
            es_controller,
            store_controller,
            push_controller,
            startup,
            plugins,
            workloads
        );
    }
    info!("controllers stopped");
}
