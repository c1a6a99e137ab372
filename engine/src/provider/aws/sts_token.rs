//! The STSSessionToken generator's AWS call: `GetSessionToken` as the configured identity,
//! returning ESO's keys (`access_key_id`, `secret_access_key`, `session_token`,
//! `expiration` as Unix seconds).
//!
//! The expiry is also returned on its own, so the controller can renew the credentials before
//! they expire rather than on the ExternalSecret's refresh interval alone.

use crate::api::generators::STSSessionTokenSpec;
use crate::api::{AwsProvider, StoreKind};
use crate::provider::{BuildContext, ProviderBuildError};
use crate::secret::{SecretBytes, SecretMap};

/// Generates session credentials for `spec`, resolving references in `namespace`; returns
/// them with their expiration time.
pub async fn generate(
    spec: &STSSessionTokenSpec,
    client: &kube::Client,
    namespace: &str,
    metrics: &std::sync::Arc<crate::metrics::Metrics>,
) -> Result<(SecretMap, jiff::Timestamp), String> {
    if !super::valid_region(&spec.region) {
        return Err(format!(
            "invalid AWS region {:?}: expected a region name such as us-east-1",
            spec.region
        ));
    }
    // Authenticate exactly as an AWS SecretStore in this namespace would.
    let store = AwsProvider {
        region: spec.region.clone(),
        role: spec.role.clone(),
        auth: spec.auth.clone(),
        ..Default::default()
    };
    let ctx = BuildContext {
        client,
        store_kind: StoreKind::SecretStore,
        namespace,
        metrics,
    };
    let (creds, _) = super::auth::credentials(&store, &ctx)
        .await
        .map_err(|e: ProviderBuildError| e.to_string())?;
    let conf = super::sdk_config(&spec.region, Some(creds)).await;
    let params = spec.request_parameters.clone().unwrap_or_default();
    let out = super::sts_client(&conf)
        .get_session_token()
        .set_duration_seconds(params.session_duration)
        .set_serial_number(params.serial_number)
        .set_token_code(params.token_code)
        .send()
        .await
        .map_err(|e| super::errors::classify(e, "sts:GetSessionToken").to_string())?;
    let c = out
        .credentials
        .ok_or_else(|| "sts:GetSessionToken returned no credentials".to_string())?;
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
        .map_err(|e| format!("sts:GetSessionToken returned an invalid expiration: {e}"))?;
    Ok((data, expires))
}
