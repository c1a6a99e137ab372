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
use tracing::{debug, instrument, warn};

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
    if kind == StoreKind::ClusterSecretStore && referent(spec) {
        // ESO's referent authentication: the credentials resolve in each ExternalSecret's
        // namespace, which a store-wide validation does not have (ESO skips it too).
        return (
            true,
            "Valid",
            "store validated (referent authentication: credentials are resolved in each ExternalSecret's namespace)".into(),
        );
    }
    let bctx = provider::BuildContext::in_cluster(&ctx.metrics, &ctx.client, kind, namespace)
        .for_store(kind, namespace, name);
    let deadline = ctx.settings.provider_timeout;
    let built = async { Ok(provider::build(spec, &bctx).await) };
    let built = match provider::with_deadline(deadline, || "connecting".into(), built).await {
        Ok(built) => built,
        Err(e) => {
            return (
                false,
                "ValidationFailed",
                format!("unable to validate store: {e}"),
            );
        }
    };
    match built {
        Err(e) => (false, e.reason(), e.to_string()),
        Ok((p, _)) => {
            match provider::with_deadline(deadline, || "validate".into(), p.validate()).await {
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
            }
        }
    }
}

/// What a store can do (`status.capabilities`), as the provider says
/// (`Provider::capabilities`): every provider esox implements can be pushed to (Fake, AWS
/// Secrets Manager and Parameter Store, Vault, Kubernetes, and `openBao`, which ESO 2.9 keeps
/// read-only); a provider esox does not implement is `ReadOnly`.
pub fn capabilities(spec: &SecretStoreSpec) -> &'static str {
    let p = &spec.provider;
    let known = p.fake.is_some()
        || p.aws.is_some()
        || p.vault.is_some()
        || p.open_bao.is_some()
        || p.kubernetes.is_some();
    if known {
        provider::Capabilities::ReadWrite.as_str()
    } else {
        provider::Capabilities::ReadOnly.as_str()
    }
}

/// Whether a ClusterSecretStore's credentials are "referent" (ESO's `IsReferentSpec`): a
/// Secret or ServiceAccount named without a namespace, so it is looked up in the namespace of
/// each ExternalSecret that uses the store.
fn referent(spec: &SecretStoreSpec) -> bool {
    if let Some(k) = &spec.provider.kubernetes {
        // ESO's kubernetes `isReferentSpec`.
        let Some(auth) = &k.auth else {
            return false;
        };
        let unset = |s: &Option<crate::api::SecretKeySelector>| {
            s.as_ref().is_none_or(|s| s.namespace.is_none())
        };
        return auth
            .cert
            .as_ref()
            .is_some_and(|c| unset(&c.client_cert) || unset(&c.client_key))
            || auth
                .service_account
                .as_ref()
                .is_some_and(|sa| sa.namespace.is_none())
            || auth.token.as_ref().is_some_and(|t| unset(&t.bearer_token));
    }
    if let Some(vault) = &spec.provider.vault {
        return vault_referent(vault);
    }
    if let Some(bao) = &spec.provider.open_bao {
        // ESO's openbao `isReferentSpec`: a credential, or the caProvider, without a namespace.
        let unset = |s: &Option<crate::api::SecretKeySelector>| {
            s.as_ref().is_some_and(|s| s.namespace.is_none())
        };
        let auth = bao.auth.as_ref().is_some_and(|a| {
            unset(&a.token_secret_ref)
                || a.app_role
                    .as_ref()
                    .is_some_and(|r| unset(&r.role_ref) || unset(&r.secret_ref))
                || a.user_pass.as_ref().is_some_and(|u| unset(&u.secret_ref))
        });
        return auth
            || bao
                .ca_provider
                .as_ref()
                .is_some_and(|c| c.namespace.is_none());
    }
    let Some(auth) = spec.provider.aws.as_ref().and_then(|a| a.auth.as_ref()) else {
        return false;
    };
    let jwt = auth
        .jwt
        .as_ref()
        .and_then(|j| j.service_account_ref.as_ref())
        .is_some_and(|sa| sa.namespace.is_none());
    let keys = auth.secret_ref.as_ref().is_some_and(|r| {
        [
            &r.access_key_id_secret_ref,
            &r.secret_access_key_secret_ref,
            &r.session_token_secret_ref,
        ]
        .into_iter()
        .flatten()
        .any(|k| k.namespace.is_none())
    });
    jwt || keys
}

/// How soon a store that failed validation is validated again: ExternalSecrets wait for it
/// (the flood gate), so a provider outage must not keep them waiting for a whole interval.
const RETRY_NOT_READY: Duration = Duration::from_secs(15);

/// When to validate again: soon after a failure, else at the store's interval.
fn requeue(spec: &SecretStoreSpec, ctx: &Context, ready: bool) -> Action {
    if !ready {
        return Action::requeue(RETRY_NOT_READY);
    }
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
    (status, capabilities): (Option<&SecretStoreStatus>, &'static str),
    result: (bool, &'static str, String),
    store_key: String,
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
    new.capabilities = Some(capabilities.to_string());
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
    let was_ready_true = was_ready
        .as_ref()
        .is_some_and(|(status, _)| status == "True");
    if ready && !was_ready_true {
        // ExternalSecrets the flood gate held back (or that failed on this store) go now.
        ctx.store_ready(store_key);
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
    if !ctx.settings.class.serves_store(&store.spec) {
        debug!(
            class = ctx.settings.class.as_str(),
            "a store of another controller class; not validated here"
        );
        return Ok(Action::await_change());
    }
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
    let ready = result.0;
    let key = format!("SecretStore/{ns}/{}", store.name_any());
    report(
        store.as_ref(),
        api,
        &ctx,
        (store.status.as_ref(), capabilities(&store.spec)),
        result,
        key,
    )
    .await?;
    ctx.metrics
        .store_reconcile_duration
        .get_or_create(&ObjectLabels {
            name: store.name_any(),
            namespace: ns,
        })
        .set(start.elapsed().as_nanos() as f64);
    Ok(requeue(&store.spec, &ctx, ready))
}

/// Reconciles a ClusterSecretStore.
#[instrument(skip_all, fields(name = %store.name_any()))]
pub async fn reconcile_cluster_store(
    store: Arc<ClusterSecretStore>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.settings.class.serves_store(&store.spec) {
        debug!(
            class = ctx.settings.class.as_str(),
            "a store of another controller class; not validated here"
        );
        return Ok(Action::await_change());
    }
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
    let ready = result.0;
    let key = format!("ClusterSecretStore/{}", store.name_any());
    report(
        store.as_ref(),
        api,
        &ctx,
        (store.status.as_ref(), capabilities(&store.spec)),
        result,
        key,
    )
    .await?;
    Ok(requeue(&store.spec, &ctx, ready))
}

/// Retries a failed store reconcile after a short delay.
pub fn error_policy<K>(_: Arc<K>, err: &Error, _: Arc<Context>) -> Action {
    warn!(error = %err, reason = err.metric_label(), "store reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

/// ESO's `isReferentSpec` for Vault: any credential reference without a namespace.
fn vault_referent(vault: &crate::api::VaultProvider) -> bool {
    let unset = |s: &Option<crate::api::SecretKeySelector>| {
        s.as_ref().is_some_and(|s| s.namespace.is_none())
    };
    let Some(auth) = &vault.auth else {
        return false;
    };
    unset(&auth.token_secret_ref)
        || auth
            .app_role
            .as_ref()
            .is_some_and(|a| unset(&a.secret_ref) || unset(&a.role_ref))
        || auth.kubernetes.as_ref().is_some_and(|k| {
            unset(&k.secret_ref)
                || k.service_account_ref
                    .as_ref()
                    .is_some_and(|s| s.namespace.is_none())
        })
        || auth.ldap.as_ref().is_some_and(|l| unset(&l.secret_ref))
        || auth
            .user_pass
            .as_ref()
            .is_some_and(|u| unset(&u.secret_ref))
        || auth.jwt.as_ref().is_some_and(|j| {
            unset(&j.secret_ref)
                || j.kubernetes_service_account_token
                    .as_ref()
                    .is_some_and(|k| k.service_account_ref.namespace.is_none())
        })
        || auth
            .cert
            .as_ref()
            .is_some_and(|c| unset(&c.client_cert) || unset(&c.secret_ref))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_report_what_their_provider_can_do() {
        let cases = [
            (r#"{"fake": {"data": []}}"#, "ReadWrite"),
            (
                r#"{"aws": {"service": "SecretsManager", "region": "us-east-1"}}"#,
                "ReadWrite",
            ),
            (
                r#"{"aws": {"service": "ParameterStore", "region": "us-east-1"}}"#,
                "ReadWrite",
            ),
            (r#"{"vault": {"server": "http://v"}}"#, "ReadWrite"),
            (r#"{"openBao": {"server": "http://v"}}"#, "ReadWrite"),
            (r#"{"kubernetes": {"remoteNamespace": "x"}}"#, "ReadWrite"),
            (r#"{"gcpsm": {}}"#, "ReadOnly"),
        ];
        for (provider, want) in cases {
            let spec: SecretStoreSpec =
                serde_json::from_str(&format!(r#"{{"provider": {provider}}}"#)).unwrap();
            assert_eq!(capabilities(&spec), want, "{provider}");
        }
    }
}
