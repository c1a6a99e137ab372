//! AWS credentials for a store, as ESO resolves them — and cached, unlike ESO.
//!
//! - no `auth`: the SDK default chain (in a pod with IRSA: `AWS_ROLE_ARN` +
//!   `AWS_WEB_IDENTITY_TOKEN_FILE`);
//! - `auth.secretRef`: static keys read from a Secret;
//! - `auth.jwt.serviceAccountRef`: a token for that ServiceAccount from the TokenRequest API
//!   (audience from the `eks.amazonaws.com/audience` annotation, default `sts.amazonaws.com`),
//!   exchanged with `AssumeRoleWithWebIdentity` for the role in `eks.amazonaws.com/role-arn`;
//!
//! then `additionalRoles` are assumed in order and finally `role` (with `externalID`,
//! `sessionTags` and `transitiveTagKeys`). Every layer is a credentials provider behind the
//! SDK's identity cache, so a TokenRequest or an STS call happens only when the previous
//! credentials are about to expire.
//!
//! Namespaces follow ESO: a `SecretStore` reads Secrets and ServiceAccounts only from its own
//! namespace; a `ClusterSecretStore` uses the reference's `namespace`, else the
//! ExternalSecret's.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::{Api, Client};

use super::{STS, sdk_config, sts_client};
use crate::api::{AwsProvider, SecretKeySelector};
use crate::provider::{BuildContext, Calls, ClusterRefs, ProviderBuildError, Recorded};

/// ServiceAccount annotation naming the role to assume with its token (EKS IRSA convention).
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// ServiceAccount annotation naming the token audience.
pub const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
const SESSION_NAME: &str = "esox";

/// Builds the credentials provider for a store; returns it with a string naming the identity
/// (what the provider cache is keyed by besides the store).
pub async fn credentials(
    spec: &AwsProvider,
    ctx: &BuildContext<'_>,
) -> Result<(SharedCredentialsProvider, String), ProviderBuildError> {
    let auth = spec.auth.clone().unwrap_or_default();
    let calls = Calls::new(ctx.metrics, STS);
    let (mut provider, mut identity) = if let Some(secret_ref) = &auth.secret_ref {
        static_keys(secret_ref, cluster(ctx, "secretRef")?).await?
    } else if let Some(jwt) = &auth.jwt {
        let sa = jwt.service_account_ref.as_ref().ok_or_else(|| {
            ProviderBuildError::Invalid(
                "spec.provider.aws.auth.jwt.serviceAccountRef is required".into(),
            )
        })?;
        let refs = cluster(ctx, "jwt")?;
        let ns = refs.namespace_for(sa.namespace.as_deref());
        web_identity(
            refs.client.clone(),
            &ns,
            &sa.name,
            &sa.audiences,
            &spec.region,
            calls.clone(),
        )
        .await?
    } else {
        let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
            .region(aws_config::Region::new(spec.region.clone()))
            .build()
            .await;
        (
            SharedCredentialsProvider::new(chain),
            "default-chain".to_string(),
        )
    };

    let chain: Vec<(&String, bool)> = spec
        .additional_roles
        .iter()
        .map(|r| (r, false))
        .chain(
            spec.role
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| (r, true)),
        )
        .collect();
    for (role, is_final) in chain {
        let conf = sdk_config(&spec.region, Some(provider.clone())).await;
        let assume = AssumeRole {
            sts: sts_client(&conf),
            calls: calls.clone(),
            role: role.clone(),
            external_id: if is_final {
                spec.external_id.clone()
            } else {
                None
            },
            tags: if is_final {
                spec.session_tags
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect()
            } else {
                vec![]
            },
            transitive: if is_final {
                spec.transitive_tag_keys.clone()
            } else {
                vec![]
            },
        };
        provider = SharedCredentialsProvider::new(assume);
        identity.push_str(" -> ");
        identity.push_str(role);
    }
    Ok((provider, identity))
}

/// The cluster an `auth.<field>` reference is read from; an error when building offline.
fn cluster<'a>(ctx: &BuildContext<'a>, field: &str) -> Result<ClusterRefs<'a>, ProviderBuildError> {
    ctx.cluster.ok_or_else(|| {
        ProviderBuildError::Invalid(format!(
            "spec.provider.aws.auth.{field} reads its credentials from the cluster, and there is none: without one, only the default credential chain (no auth) works"
        ))
    })
}

/// One credential from a Secret key (trimmed, UTF-8), and the version read.
async fn read_key(
    refs: ClusterRefs<'_>,
    sel: &SecretKeySelector,
    field: &str,
) -> Result<(String, String), ProviderBuildError> {
    let field = format!("spec.provider.aws.auth.secretRef.{field}");
    let ns = refs.namespace_for(sel.namespace.as_deref());
    let key = sel
        .key
        .as_deref()
        .ok_or_else(|| ProviderBuildError::Invalid(format!("{field}.key is required")))?;
    let read = crate::provider::cluster_refs::secret_key(refs, &ns, &sel.name, key, &field).await?;
    let value = std::str::from_utf8(&read.value).map_err(|_| {
        ProviderBuildError::Invalid(format!(
            "{field}: Secret {ns}/{} key {key:?} is not UTF-8",
            sel.name
        ))
    })?;
    Ok((value.trim().to_string(), read.version))
}

async fn static_keys(
    r: &crate::api::AwsAuthSecretRef,
    refs: ClusterRefs<'_>,
) -> Result<(SharedCredentialsProvider, String), ProviderBuildError> {
    let missing = |f: &str| {
        ProviderBuildError::Invalid(format!("spec.provider.aws.auth.secretRef.{f} is required"))
    };
    let (akid, v1) = read_key(
        refs,
        r.access_key_id_secret_ref
            .as_ref()
            .ok_or_else(|| missing("accessKeyIDSecretRef"))?,
        "accessKeyIDSecretRef",
    )
    .await?;
    let (secret, v2) = read_key(
        refs,
        r.secret_access_key_secret_ref
            .as_ref()
            .ok_or_else(|| missing("secretAccessKeySecretRef"))?,
        "secretAccessKeySecretRef",
    )
    .await?;
    let (token, v3) = match &r.session_token_secret_ref {
        Some(sel) => {
            let (t, v) = read_key(refs, sel, "sessionTokenSecretRef").await?;
            (Some(t), v)
        }
        None => (None, String::new()),
    };
    // The identity names the Secrets' resource versions, so rotated keys get a new client.
    let identity = format!("secret-ref {v1} {v2} {v3}");
    Ok((
        SharedCredentialsProvider::new(Credentials::new(
            akid,
            secret,
            token,
            None,
            "esox-secret-ref",
        )),
        identity,
    ))
}

async fn web_identity(
    client: Client,
    ns: &str,
    name: &str,
    audiences: &[String],
    region: &str,
    calls: Calls,
) -> Result<(SharedCredentialsProvider, String), ProviderBuildError> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = api
        .get_opt(name)
        .await
        .map_err(|e| {
            ProviderBuildError::Invalid(format!("could not get ServiceAccount {ns}/{name}: {e}"))
        })?
        .ok_or_else(|| {
            ProviderBuildError::Invalid(format!("ServiceAccount {ns}/{name} not found"))
        })?;
    let annotations = sa.metadata.annotations.unwrap_or_default();
    let role = annotations
        .get(ROLE_ARN_ANNOTATION)
        .cloned()
        .ok_or_else(|| {
            ProviderBuildError::Invalid(format!(
                "ServiceAccount {ns}/{name} has no {ROLE_ARN_ANNOTATION} annotation"
            ))
        })?;
    let mut auds: Vec<String> = audiences.to_vec();
    if auds.is_empty() {
        auds.push(
            annotations
                .get(AUDIENCE_ANNOTATION)
                .cloned()
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_string()),
        );
    }
    let conf = sdk_config(region, None).await;
    let provider = WebIdentity {
        sts: sts_client(&conf),
        calls,
        api,
        name: name.to_string(),
        audiences: auds,
        role: role.clone(),
    };
    Ok((
        SharedCredentialsProvider::new(provider),
        format!("jwt {ns}/{name} -> {role}"),
    ))
}

/// Credentials from an STS answer, expiring when STS says (so the SDK's identity cache renews
/// them in time).
fn from_sts(
    c: Option<aws_sdk_sts::types::Credentials>,
    call: &str,
    provider: &'static str,
) -> Result<Credentials, CredentialsError> {
    let c = c.ok_or_else(|| {
        CredentialsError::provider_error(format!("{call} returned no credentials"))
    })?;
    let expires = SystemTime::try_from(c.expiration).ok();
    Ok(Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        expires,
        provider,
    ))
}

/// `AssumeRoleWithWebIdentity` with a ServiceAccount token from the TokenRequest API.
#[derive(Debug)]
struct WebIdentity {
    sts: aws_sdk_sts::Client,
    /// Counts `AssumeRoleWithWebIdentity` under `AWS/STS`.
    calls: Calls,
    api: Api<ServiceAccount>,
    name: String,
    audiences: Vec<String>,
    role: String,
}

impl WebIdentity {
    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: self.audiences.clone(),
                expiration_seconds: Some(3600),
                bound_object_ref: None,
            },
            ..Default::default()
        };
        let response: TokenRequest = self
            .api
            .create_subresource("token", &self.name, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "TokenRequest for ServiceAccount {:?} failed: {e}",
                    self.name
                ))
            })?;
        let token = response
            .status
            .map(|s| s.token)
            .ok_or_else(|| CredentialsError::provider_error("TokenRequest returned no token"))?;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role)
            .role_session_name(SESSION_NAME)
            .web_identity_token(token)
            .send()
            .await
            .recorded(&self.calls, "AssumeRoleWithWebIdentity")
            .map_err(|e| {
                CredentialsError::provider_error(super::errors::classify(
                    e,
                    "sts:AssumeRoleWithWebIdentity",
                ))
            })?;
        from_sts(
            out.credentials,
            "AssumeRoleWithWebIdentity",
            "esox-web-identity",
        )
    }
}

impl ProvideCredentials for WebIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.fetch())
    }
}

/// `AssumeRole` with ESO's options, on top of another credentials provider.
#[derive(Debug)]
struct AssumeRole {
    sts: aws_sdk_sts::Client,
    /// Counts `AssumeRole` under `AWS/STS`.
    calls: Calls,
    role: String,
    external_id: Option<String>,
    tags: Vec<(String, String)>,
    transitive: Vec<String>,
}

impl AssumeRole {
    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let mut req = self
            .sts
            .assume_role()
            .role_arn(&self.role)
            .role_session_name(SESSION_NAME)
            .set_external_id(self.external_id.clone());
        for (k, v) in &self.tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| {
                    CredentialsError::invalid_configuration(format!(
                        "invalid session tag {k:?}: {e}"
                    ))
                })?;
            req = req.tags(tag);
        }
        for k in &self.transitive {
            req = req.transitive_tag_keys(k);
        }
        let out = req
            .send()
            .await
            .recorded(&self.calls, "AssumeRole")
            .map_err(|e| {
                CredentialsError::provider_error(super::errors::classify(
                    e,
                    &format!("sts:AssumeRole {}", self.role),
                ))
            })?;
        from_sts(out.credentials, "AssumeRole", "esox-assume-role")
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.fetch())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::provider::calls::{ERROR, counted};

    #[tokio::test]
    async fn a_role_assumption_is_counted_under_aws_sts() {
        let metrics = Arc::new(crate::metrics::Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let assume = AssumeRole {
            sts: aws_sdk_sts::Client::new(&super::super::unreachable_conf().await),
            calls: Calls::new(&metrics, STS),
            role: "arn:aws:iam::1:role/app".into(),
            external_id: None,
            tags: vec![],
            transitive: vec![],
        };
        let err = assume.fetch().await.unwrap_err();
        assert!(
            format!("{err:?}").contains("sts:AssumeRole arn:aws:iam::1:role/app"),
            "{err:?}"
        );
        assert_eq!(counted(&metrics, "AWS/STS", "AssumeRole", ERROR), 1);
    }
}
