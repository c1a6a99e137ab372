//! `spec.provider.vault` (HashiCorp Vault, and OpenBao through the same API): ESO's fields, v1
//! and v1beta1 alike (v1beta1 lacks `checkAndSet`, `auth.gcp` and the cert `path`/`vaultRole`,
//! which are optional here).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret_store::{SecretKeySelector, ServiceAccountSelector};

/// Vault provider spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultProvider {
    /// Vault address, e.g. `https://vault.example.com:8200`.
    #[serde(default)]
    pub server: String,
    /// The KV mount (`secret`); for v2, `data/` is inserted after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// KV engine version, `v1` or `v2` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Vault namespace (`X-Vault-Namespace` on every call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM bundle of the CAs that sign the server's certificate (or its base64); wins over
    /// `caProvider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Where the CA bundle is: a Secret or ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,
    /// Client certificate for the transport (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<VaultClientTls>,
    /// Replays `X-Vault-Index` (performance standbys).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_your_writes: bool,
    /// Sends `X-Vault-Inconsistent: forward-active-node` (with `readYourWrites`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_inconsistent: bool,
    /// Headers added to every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// PushSecret check-and-set (v1 only; kept verbatim).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub check_and_set: Option<serde_json::Value>,
    /// How to authenticate; absent means no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<VaultAuth>,
}

/// Where a CA bundle is kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaProvider {
    /// `Secret` or `ConfigMap`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Key holding the PEM bundle.
    #[serde(default)]
    pub key: String,
    /// Namespace: required for a ClusterSecretStore; a SecretStore's own if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Transport client certificate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultClientTls {
    /// Secret with the certificate (key `tls.crt` unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretKeySelector>,
    /// Secret with the private key (key `tls.key` unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeySelector>,
}

/// Vault authentication: the first method set wins, in ESO's order.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultAuth {
    /// Namespace used for the login only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A static token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,
    /// Kubernetes (a ServiceAccount token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,
    /// LDAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<VaultUserPassAuth>,
    /// Username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pass: Option<VaultUserPassAuth>,
    /// JWT/OIDC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<VaultJwtAuth>,
    /// TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<VaultCertAuth>,
    /// AWS IAM (not supported by esox yet; kept verbatim).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub iam: Option<serde_json::Value>,
    /// GCP (not supported by esox yet; kept verbatim).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub gcp: Option<serde_json::Value>,
}

/// AppRole authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultAppRole {
    /// Mount path (default `approle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The role ID, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// The role ID, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<SecretKeySelector>,
    /// The secret ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// Kubernetes authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Mount path (default `kubernetes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// The Vault role.
    #[serde(default)]
    pub role: String,
    /// The ServiceAccount whose token (TokenRequest API) logs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// A Secret holding the token (key `token` unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// Username/password authentication (`userPass`, `ldap`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultUserPassAuth {
    /// Mount path (default `userpass` / `ldap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Username.
    #[serde(default)]
    pub username: String,
    /// The password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// JWT authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultJwtAuth {
    /// Mount path (default `jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The Vault role (empty: the mount's default role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A Secret holding the JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
    /// A ServiceAccount token from the TokenRequest API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_service_account_token: Option<VaultKubernetesServiceAccountToken>,
}

/// A ServiceAccount token for JWT authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesServiceAccountToken {
    /// The ServiceAccount.
    pub service_account_ref: ServiceAccountSelector,
    /// Deprecated audiences (default `["vault"]`), added to the ServiceAccountRef's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// Deprecated token lifetime in seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i64>,
}

/// Certificate authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultCertAuth {
    /// Mount path (default `cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The certificate role to log in as (`name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_role: Option<String>,
    /// The client certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<SecretKeySelector>,
    /// The client private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

/// `spec.provider.openBao` (ESO ≥ 2.x): OpenBao's own, read-only block; its KV mount defaults
/// to `kv` and its auth is one of a token, AppRole or username/password.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoProvider {
    /// OpenBao address, e.g. `https://openbao.example.com:8200`.
    #[serde(default)]
    pub server: String,
    /// The KV mount (default `kv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// KV engine version, `v1` or `v2` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// OpenBao namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM bundle of the CAs that sign the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Where the CA bundle is: a Secret or ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,
    /// How to authenticate: exactly one of `tokenSecretRef`, `appRole`, `userPass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<OpenBaoAuth>,
}

/// OpenBao authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoAuth {
    /// Namespace used for the login only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A static token from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<VaultAppRole>,
    /// Username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pass: Option<VaultUserPassAuth>,
}
