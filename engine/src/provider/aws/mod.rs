//! The AWS provider (`spec.provider.aws`): Secrets Manager and Parameter Store.
//!
//! A connected provider owns SDK clients whose credentials come from the store's `auth`
//! ([`auth`]) and whose identity cache keeps them until they expire: the controller caches the
//! connected provider per store and identity ([`crate::controller::resolve`]), so a sync costs
//! no STS call and no TokenRequest — unlike ESO, which makes both on every reconcile.
//!
//! Endpoints: the SDK honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`; we also
//! honour ESO's `AWS_SECRETSMANAGER_ENDPOINT`, `AWS_SSM_ENDPOINT` and `AWS_STS_ENDPOINT`.

pub mod auth;
pub mod errors;
pub mod parameter_store;
pub mod secrets_manager;
pub mod sts_token;

use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use super::{BuildContext, Calls, Provider, ProviderBuildError, Recorded};
use crate::api::region::valid_region;
use crate::api::{AwsProvider, AwsService};

/// The `provider` label of Secrets Manager calls (ESO's `ProviderAWSSM`).
pub const SECRETS_MANAGER: &str = "AWS/SecretsManager";
/// The `provider` label of Parameter Store calls (ESO's `ProviderAWSPS`).
pub const PARAMETER_STORE: &str = "AWS/ParameterStore";
/// The `provider` label of STS calls: the STSSessionToken generator's, and those that connect
/// and check a store (role chains, IRSA, `GetCallerIdentity`). ESO counts none of them; named
/// after ESO's two above.
pub const STS: &str = "AWS/STS";

/// An ESO-specific endpoint override, if set.
pub(crate) fn endpoint_env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// Base SDK configuration for a store: region, retries with adaptive client-side pacing (so
/// throttling slows this store down instead of failing its syncs), and the credentials.
pub(crate) async fn sdk_config(
    region: &str,
    creds: Option<aws_credential_types::provider::SharedCredentialsProvider>,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::adaptive().with_max_attempts(4));
    if let Some(c) = creds {
        loader = loader.credentials_provider(c);
    }
    loader.load().await
}

/// Connects to AWS for one store (and one identity).
pub async fn connect(
    spec: &AwsProvider,
    ctx: &BuildContext<'_>,
) -> Result<(Arc<dyn Provider>, String), ProviderBuildError> {
    if spec.region.is_empty() {
        return Err(ProviderBuildError::Invalid(
            "spec.provider.aws.region is required".into(),
        ));
    }
    if !valid_region(&spec.region) {
        return Err(ProviderBuildError::Invalid(format!(
            "invalid AWS region {:?}: expected a region name such as us-east-1",
            spec.region
        )));
    }
    let (creds, identity) = auth::credentials(spec, ctx).await?;
    let conf = sdk_config(&spec.region, Some(creds)).await;
    let prefix = spec.prefix.clone().unwrap_or_default();
    let provider: Arc<dyn Provider> = match spec.service {
        AwsService::SecretsManager => {
            let calls = Calls::new(ctx.metrics, SECRETS_MANAGER);
            let deletes = secrets_manager::DeleteOptions::from_spec(spec.secrets_manager.as_ref())
                .map_err(ProviderBuildError::Invalid)?;
            Arc::new(
                secrets_manager::SecretsManager::new(&conf, prefix, calls)
                    .with_delete_options(deletes),
            )
        }
        AwsService::ParameterStore => {
            let calls = Calls::new(ctx.metrics, PARAMETER_STORE);
            Arc::new(parameter_store::ParameterStore::new(&conf, prefix, calls))
        }
    };
    Ok((provider, identity))
}

/// An STS client for `conf`, honouring `AWS_STS_ENDPOINT`.
pub(crate) fn sts_client(conf: &SdkConfig) -> aws_sdk_sts::Client {
    let mut b = aws_sdk_sts::config::Builder::from(conf);
    if let Some(url) = endpoint_env("AWS_STS_ENDPOINT") {
        b = b.endpoint_url(url);
    }
    aws_sdk_sts::Client::from_conf(b.build())
}

/// Checks the credentials with STS `GetCallerIdentity` (needs no permission, costs nothing)
/// and returns the caller's ARN — after a role chain, the assumed role's.
/// The call is counted under [`STS`] in `calls`' metrics.
pub(crate) async fn check_identity(
    sts: &aws_sdk_sts::Client,
    calls: &Calls,
) -> Result<Option<String>, super::ProviderError> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .recorded(&calls.for_provider(STS), "GetCallerIdentity")
        .map_err(|e| errors::classify(e, "sts:GetCallerIdentity"))?;
    Ok(out.arn().map(str::to_string))
}

/// An SDK configuration whose every call fails at once, without retries: its endpoint is
/// port 1 of the loopback, where nothing listens (for tests of what a failed call does).
#[cfg(test)]
pub(crate) async fn unreachable_conf() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDTEST", "test", None, None, "test",
        ))
        .retry_config(RetryConfig::disabled())
        .endpoint_url("http://127.0.0.1:1")
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Connects `spec` without a cluster; the identity, or why not.
    async fn connect_offline(spec: serde_json::Value) -> Result<String, ProviderBuildError> {
        let metrics = Arc::new(crate::metrics::Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let spec: AwsProvider = serde_json::from_value(spec).unwrap();
        connect(&spec, &BuildContext::offline(&metrics))
            .await
            .map(|(_, identity)| identity)
    }

    #[tokio::test]
    async fn the_default_chain_needs_no_cluster() {
        for service in ["SecretsManager", "ParameterStore"] {
            let identity = connect_offline(json!({"service": service, "region": "eu-west-1"}))
                .await
                .unwrap();
            assert_eq!(identity, "default-chain");
        }
        let chained = connect_offline(json!({
            "service": "SecretsManager",
            "region": "eu-west-1",
            "role": "arn:aws:iam::1:role/app",
        }))
        .await
        .unwrap();
        assert_eq!(chained, "default-chain -> arn:aws:iam::1:role/app");
    }

    #[tokio::test]
    async fn credentials_in_the_cluster_need_a_cluster() {
        for (auth, field) in [
            (json!({"secretRef": {}}), "secretRef"),
            (json!({"jwt": {"serviceAccountRef": {"name": "sa"}}}), "jwt"),
        ] {
            let err = connect_offline(json!({
                "service": "SecretsManager",
                "region": "eu-west-1",
                "auth": auth,
            }))
            .await
            .unwrap_err();
            assert!(matches!(err, ProviderBuildError::Invalid(_)), "{err:?}");
            assert!(
                err.to_string().starts_with(&format!(
                    "spec.provider.aws.auth.{field} reads its credentials from the cluster"
                )),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn the_region_is_checked_before_anything_is_built() {
        let missing = connect_offline(json!({"service": "SecretsManager"}))
            .await
            .unwrap_err();
        assert_eq!(missing.to_string(), "spec.provider.aws.region is required");
        let invalid = connect_offline(json!({"service": "SecretsManager", "region": "moon"}))
            .await
            .unwrap_err();
        assert!(
            invalid
                .to_string()
                .starts_with("invalid AWS region \"moon\""),
            "{invalid}"
        );
    }

    #[tokio::test]
    async fn every_api_call_is_counted_under_its_own_name() {
        use crate::api::MetadataPolicy::{Fetch, None as Value};
        use crate::provider::GetRequest;
        use crate::provider::calls::{ERROR, counted};

        let metrics = Arc::new(crate::metrics::Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let conf = unreachable_conf().await;
        let sm = secrets_manager::SecretsManager::new(
            &conf,
            String::new(),
            Calls::new(&metrics, SECRETS_MANAGER),
        );
        let ps = parameter_store::ParameterStore::new(
            &conf,
            String::new(),
            Calls::new(&metrics, PARAMETER_STORE),
        );
        // A versioned get is never batched: one GetSecretValue.
        assert!(
            sm.get(&GetRequest::new("k", Some("v1"), Value))
                .await
                .is_err()
        );
        assert!(sm.get(&GetRequest::new("k", None, Fetch)).await.is_err());
        assert!(ps.get(&GetRequest::new("k", None, Value)).await.is_err());
        assert!(ps.get(&GetRequest::new("k", None, Fetch)).await.is_err());
        // Validation checks the identity with STS, for either service.
        assert!(sm.validate().await.is_err());
        assert!(ps.validate().await.is_err());
        let count = |provider, call| counted(&metrics, provider, call, ERROR);
        assert_eq!(count("AWS/STS", "GetCallerIdentity"), 2);
        assert_eq!(count("AWS/SecretsManager", "GetSecretValue"), 1);
        assert_eq!(count("AWS/SecretsManager", "DescribeSecret"), 1);
        assert_eq!(count("AWS/ParameterStore", "GetParameter"), 1);
        assert_eq!(count("AWS/ParameterStore", "ListTagsForResource"), 1);
    }
}
