//! The STSSessionToken generator's AWS call: `GetSessionToken` as the configured identity,
//! returning ESO's keys (`access_key_id`, `secret_access_key`, `session_token`,
//! `expiration` as Unix seconds).
//!
//! The expiry is also returned on its own, so the controller can renew the credentials before
//! they expire rather than on the ExternalSecret's refresh interval alone.

use crate::api::generators::STSSessionTokenSpec;
use crate::api::{AwsProvider, StoreKind};
use crate::provider::{BuildContext, ProviderBuildError, ProviderError};
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
    let out = super::sts_client(&conf)
        .get_session_token()
        .set_duration_seconds(params.session_duration)
        .set_serial_number(params.serial_number)
        .set_token_code(params.token_code)
        .send()
        .await
        .map_err(|e| StsTokenError::Call(super::errors::classify(e, "sts:GetSessionToken")))?;
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
