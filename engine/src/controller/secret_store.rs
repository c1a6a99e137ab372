//! The SecretStore and ClusterSecretStore reconciler: validate, report `Ready`, requeue.
//!
//! A store is `Ready=True/Valid` when esox can build its provider and the provider's own
//! validation (credentials, a cheap call) succeeds. Providers ESO has but esox does not are
//! accepted by the schema and reported here as `UnsupportedProvider`, naming the provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{instrument, warn};

use super::context::Context;
use crate::api::condition::set_condition;
use crate::api::{
    ClusterSecretStore, Condition, SecretStore, SecretStoreSpec, SecretStoreStatus, StoreKind,
};
use crate::metrics::{Metrics, ObjectLabels};
use crate::provider;

/// Store reconcile errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing status failed.
    #[error("could not update store status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Status(_) => "status",
        }
    }
}

/// Validates a spec; returns (ready, reason, message). ESO's admission rules come first, in
/// ESO's words, so a store its webhook would have refused says so even without the webhook.
async fn validate(
    name: &str,
    spec: &SecretStoreSpec,
    ctx: &Context,
    kind: StoreKind,
    namespace: &str,
) -> (bool, &'static str, String) {
    let scope = match kind {
        StoreKind::SecretStore => crate::api::validate::StoreScope::Namespaced(namespace),
        StoreKind::ClusterSecretStore => crate::api::validate::StoreScope::Cluster,
    };
    if let Some(msg) = crate::api::validate::store(name, scope, spec) {
        return (false, "InvalidProviderConfig", msg);
    }
    let bctx = provider::BuildContext::in_cluster(&ctx.metrics, &ctx.client, kind, namespace);
    match provider::build(spec, &bctx).await {
        Err(e) => (false, e.reason(), e.to_string()),
        Ok((p, _)) => match p.validate().await {
            Ok(identity) => (
                true,
                "Valid",
                match identity {
                    Some(id) => format!("store validated (authenticated as {id})"),
                    None => "store validated".to_string(),
                },
            ),
            Err(e) => (
                false,
                "ValidationFailed",
                format!("unable to validate store: {e}"),
            ),
        },
    }
}

fn requeue(spec: &SecretStoreSpec, ctx: &Context) -> Action {
    let secs = spec.refresh_interval.filter(|s| *s > 0).map(|s| s as u64);
    Action::requeue(
        secs.map(Duration::from_secs)
            .unwrap_or(ctx.settings.store_requeue),
    )
}

async fn report<K>(
    obj: &K,
    api: Api<K>,
    ctx: &Context,
    status: Option<&SecretStoreStatus>,
    result: (bool, &'static str, String),
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let (ready, reason, message) = result;
    let old = status.cloned().unwrap_or_default();
    let mut new = old.clone();
    set_condition(
        &mut new.conditions,
        Condition::new("Ready", ready, reason, message.clone()),
    );
    new.capabilities = Some("ReadOnly".to_string());
    let was_ready = old
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()));
    if new != old {
        api.patch_status(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": new })),
        )
        .await
        .map_err(Error::Status)?;
    }
    if was_ready
        != Some((
            (if ready { "True" } else { "False" }).to_string(),
            Some(reason.to_string()),
        ))
    {
        let type_ = if ready {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.publish(&obj.object_ref(&()), type_, reason, &message, "Validate")
            .await;
    }
    Ok(())
}

/// Reconciles a SecretStore.
#[instrument(skip_all, fields(namespace = %store.namespace().unwrap_or_default(), name = %store.name_any()))]
pub async fn reconcile_store(store: Arc<SecretStore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let ns = store.namespace().unwrap_or_default();
    let result = validate(
        &store.name_any(),
        &store.spec,
        &ctx,
        StoreKind::SecretStore,
        &ns,
    )
    .await;
    Metrics::set_condition(
        &ctx.metrics.store_condition,
        &store.name_any(),
        &ns,
        "Ready",
        result.0,
    );
    let api: Api<SecretStore> = Api::namespaced(ctx.client.clone(), &ns);
    report(store.as_ref(), api, &ctx, store.status.as_ref(), result).await?;
    ctx.metrics
        .store_reconcile_duration
        .get_or_create(&ObjectLabels {
            name: store.name_any(),
            namespace: ns,
        })
        .observe(start.elapsed().as_secs_f64());
    Ok(requeue(&store.spec, &ctx))
}

/// Reconciles a ClusterSecretStore.
#[instrument(skip_all, fields(name = %store.name_any()))]
pub async fn reconcile_cluster_store(
    store: Arc<ClusterSecretStore>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    // References without a namespace resolve in the ExternalSecret's namespace, which a
    // cluster-wide validation does not have; they resolve in `default` here.
    let result = validate(
        &store.name_any(),
        &store.spec,
        &ctx,
        StoreKind::ClusterSecretStore,
        "default",
    )
    .await;
    Metrics::set_condition(
        &ctx.metrics.cluster_store_condition,
        &store.name_any(),
        "",
        "Ready",
        result.0,
    );
    let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
    report(store.as_ref(), api, &ctx, store.status.as_ref(), result).await?;
    Ok(requeue(&store.spec, &ctx))
}

/// Retries a failed store reconcile after a short delay.
pub fn error_policy<K>(_: Arc<K>, err: &Error, _: Arc<Context>) -> Action {
    warn!(error = %err, reason = err.metric_label(), "store reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
