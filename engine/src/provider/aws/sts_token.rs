//! The STSSessionToken generator's AWS call: `GetSessionToken` as the configured identity,
//! returning ESO's keys (`access_key_id`, `secret_access_key`, `session_token`,
//! `expiration` as Unix seconds).
//!
//! The expiry is also returned on its own, so the controller can renew the credentials before
//! they expire rather than on the ExternalSecret's refresh interval alone.

use aws_sdk_sts::operation::get_session_token::GetSessionTokenOutput;

use crate::api::generators::{STSRequestParameters, STSSessionTokenSpec};
use crate::api::{AwsProvider, StoreKind};
use crate::provider::{BuildContext, Calls, ProviderBuildError, ProviderError, Recorded};
use crate::secret::{SecretBytes, SecretMap};

/// Why no session credentials were generated. Messages name the region and the call, never
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum StsTokenError {
    /// `spec.region` is not a region name.
    #[error("invalid AWS region {0:?}: expected a region name such as us-east-1")]
    InvalidRegion(String),
    /// The identity to call STS as could not be resolved.
    #[error("{0}")]
    Auth(#[source] ProviderBuildError),
    /// `GetSessionToken` failed.
    #[error("{0}")]
    Call(#[source] ProviderError),
    /// STS answered without credentials, or with an expiration that is no time.
    #[error("sts:GetSessionToken returned {0}")]
    BadAnswer(String),
}

/// Generates session credentials for `spec`, resolving references in `namespace`; returns
/// them with their expiration time.
pub async fn generate(
    spec: &STSSessionTokenSpec,
    client: &kube::Client,
    namespace: &str,
    metrics: &std::sync::Arc<crate::metrics::Metrics>,
) -> Result<(SecretMap, jiff::Timestamp), StsTokenError> {
    if !super::valid_region(&spec.region) {
        return Err(StsTokenError::InvalidRegion(spec.region.clone()));
    }
    // Authenticate exactly as an AWS SecretStore in this namespace would.
    let store = AwsProvider {
        region: spec.region.clone(),
        role: spec.role.clone(),
        auth: spec.auth.clone(),
        ..Default::default()
    };
    let ctx = BuildContext::in_cluster(metrics, client, StoreKind::SecretStore, namespace);
    let (creds, _) = super::auth::credentials(&store, &ctx)
        .await
        .map_err(StsTokenError::Auth)?;
    let conf = super::sdk_config(&spec.region, Some(creds)).await;
    let params = spec.request_parameters.clone().unwrap_or_default();
    let calls = Calls::new(metrics, super::STS);
    let out = session_token(&super::sts_client(&conf), params, &calls).await?;
    let c = out
        .credentials
        .ok_or_else(|| StsTokenError::BadAnswer("no credentials".into()))?;
    let mut data = SecretMap::new();
    data.insert(
        "access_key_id".into(),
        SecretBytes::new(c.access_key_id.into_bytes()),
    );
    data.insert(
        "secret_access_key".into(),
        SecretBytes::new(c.secret_access_key.into_bytes()),
    );
    data.insert(
        "session_token".into(),
        SecretBytes::new(c.session_token.into_bytes()),
    );
    data.insert(
        "expiration".into(),
        SecretBytes::new(c.expiration.secs().to_string().into_bytes()),
    );
    let expires = jiff::Timestamp::from_second(c.expiration.secs())
        .map_err(|e| StsTokenError::BadAnswer(format!("an invalid expiration: {e}")))?;
    Ok((data, expires))
}

/// `GetSessionToken`, counted in `calls`.
async fn session_token(
    sts: &aws_sdk_sts::Client,
    params: STSRequestParameters,
    calls: &Calls,
) -> Result<GetSessionTokenOutput, StsTokenError> {
    sts.get_session_token()
        .set_duration_seconds(params.session_duration)
        .set_serial_number(params.serial_number)
        .set_token_code(params.token_code)
        .send()
        .await
        .recorded(calls, "GetSessionToken")
        .map_err(|e| StsTokenError::Call(super::errors::classify(e, "sts:GetSessionToken")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::provider::aws::{STS, unreachable_conf};
    use crate::provider::calls::{ERROR, counted};

    #[tokio::test]
    async fn get_session_token_is_counted() {
        let metrics = Arc::new(Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let sts = aws_sdk_sts::Client::new(&unreachable_conf().await);
        let err = session_token(&sts, Default::default(), &Calls::new(&metrics, STS))
            .await
            .unwrap_err();
        assert!(matches!(err, StsTokenError::Call(_)), "{err:?}");
        assert_eq!(counted(&metrics, "AWS/STS", "GetSessionToken", ERROR), 1);
    }
}
