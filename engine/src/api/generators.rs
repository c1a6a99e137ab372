//! `generators.external-secrets.io`: generators referenced from
//! `dataFrom[].sourceRef.generatorRef`, as in ESO. Each runs as a Wasm plugin.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The generators API group.
pub const GENERATORS_GROUP: &str = "generators.external-secrets.io";

/// ESO's Password generator. The spec is handed to the Password plugin as JSON.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Password",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "Password generates a random password on every refresh of the ExternalSecrets that use it."
)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSpec {
    /// Password length (default 24).
    #[serde(default = "default_length")]
    pub length: usize,
    /// Number of digits (default: a quarter of the length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits: Option<usize>,
    /// Number of symbols (default: a quarter of the length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<usize>,
    /// Symbols to choose from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol_characters: Option<String>,
    /// Exclude upper-case letters.
    #[serde(default)]
    pub no_upper: bool,
    /// Allow repeated characters.
    #[serde(default)]
    pub allow_repeat: bool,
    /// Keys to generate a password for (default `password`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_keys: Vec<String>,
    /// Output encoding: `raw` (default), `base64`, `base64url`, `base32`, `hex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

fn default_length() -> usize {
    24
}

/// ESO's UUID generator: one random UUID under the key `uuid`. It has no settings.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "UUID",
    plural = "uuids",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "UUID generates a random UUID on every refresh of the ExternalSecrets that use it."
)]
pub struct UUIDSpec {}

/// ESO's Fake generator: returns the static `data` of its spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "Fake",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "Fake returns static data, for testing generator pipelines."
)]
pub struct FakeSpec {
    /// The data to return.
    #[serde(default)]
    pub data: std::collections::BTreeMap<String, String>,
    /// Only the controller whose class matches uses this generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
}

/// ESO's ClusterGenerator: a cluster-scoped generator usable from every namespace, its
/// `spec.kind` naming which generator spec in `spec.generator` applies.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterGenerator",
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "ClusterGenerator makes a generator available to ExternalSecrets in every namespace."
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGeneratorSpec {
    /// Which generator: `Password`, `UUID` or `Fake` here (ESO's other kinds are kept and
    /// reported as unsupported).
    pub kind: String,
    /// The generator's spec, under ESO's key for that kind.
    pub generator: GeneratorSpecs,
}

/// The specs a ClusterGenerator can carry (one is set, matching `kind`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct GeneratorSpecs {
    /// For `kind: Password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_spec: Option<PasswordSpec>,
    /// For `kind: UUID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid_spec: Option<UUIDSpec>,
    /// For `kind: Fake`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake_spec: Option<FakeSpec>,
    /// ESO's other generator specs, kept as they are.
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_json::Value>,
}

/// ESO's STSSessionToken generator: short-lived AWS credentials from STS `GetSessionToken`,
/// authenticated as an AWS store would be. It runs in the host (it calls AWS; plugins have no
/// network) and is regenerated on every refresh of the ExternalSecrets that use it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "STSSessionToken",
    plural = "stssessiontokens",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "STSSessionToken generates short-lived AWS credentials with STS GetSessionToken."
)]
#[serde(rename_all = "camelCase")]
pub struct STSSessionTokenSpec {
    /// AWS region.
    #[serde(default)]
    pub region: String,
    /// How to authenticate, as in an AWS SecretStore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::AwsAuth>,
    /// A role to assume first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// GetSessionToken parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_parameters: Option<STSRequestParameters>,
}

/// GetSessionToken parameters (ESO's names).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct STSRequestParameters {
    /// Lifetime in seconds (AWS: 900 to 129600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<i32>,
    /// MFA device serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// MFA code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_code: Option<String>,
}

/// A ClusterGenerator may carry an STSSessionToken spec too.
impl GeneratorSpecs {
    /// The `stsSessionTokenSpec`, if set.
    pub fn sts_session_token(&self) -> Option<STSSessionTokenSpec> {
        self.other
            .get("stsSessionTokenSpec")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// ESO's VaultDynamicSecret generator: one call to Vault (a dynamic secrets engine, a token
/// to create, a certificate to issue) with the auth of a Vault store; its answer's `data`,
/// `auth` or whole body becomes the Secret's data.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "VaultDynamicSecret",
    plural = "vaultdynamicsecrets",
    namespaced,
    category = "external-secrets",
    category = "external-secrets-generators",
    doc = "VaultDynamicSecret generates credentials with one call to Vault on every refresh of the ExternalSecrets that use it."
)]
#[serde(rename_all = "camelCase")]
pub struct VaultDynamicSecretSpec {
    /// Only the controller whose class matches uses this generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// HTTP method: `GET` (default), `LIST`, `DELETE`, or a write (`POST`, `PUT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The body of a write, as JSON.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::free_form::deserialize"
    )]
    #[schemars(schema_with = "super::preserve_unknown_object")]
    pub parameters: Option<serde_json::Value>,
    /// Query parameters of a `GET`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub get_parameters: std::collections::BTreeMap<String, Vec<String>>,
    /// What becomes the Secret's data: `Data` (default: the answer's `data`), `Auth` (its
    /// `auth`: a token), `Raw` (the whole answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// Retry settings (kept; esox retries by requeue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<super::RetrySettings>,
    /// How to reach and authenticate to Vault, as in a Vault SecretStore.
    #[serde(default)]
    pub provider: super::VaultProvider,
    /// The Vault path to call, e.g. `auth/token/create` or `pki/issue/web`.
    #[serde(default)]
    pub path: String,
    /// An empty answer gives empty data instead of an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty_response: bool,
}

impl GeneratorSpecs {
    /// The `vaultDynamicSecretSpec`, if set.
    pub fn vault_dynamic_secret(&self) -> Option<VaultDynamicSecretSpec> {
        self.other
            .get("vaultDynamicSecretSpec")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}
