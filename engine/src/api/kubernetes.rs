//! `spec.provider.kubernetes`: Secrets of a Kubernetes cluster (this one or another) as a
//! secret store, with ESO's field names (`apis/externalsecrets/v1/secretstore_kubernetes_types.go`;
//! v1beta1 has the same shape).
//!
//! ESO's CRD defaults (`server.url: kubernetes.default`, `remoteNamespace: default`) are not
//! schema defaults here: they are applied in code ([`KubernetesProvider::remote_namespace`],
//! [`KubernetesProvider::url`]), so a stored object stays what was applied.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CaProvider, SecretKeySelector, ServiceAccountSelector};

/// Kubernetes provider spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesProvider {
    /// The Kubernetes server: address and CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<KubernetesServer>,
    /// How to authenticate to it: exactly one of `token`, `serviceAccount` and `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<KubernetesAuth>,
    /// A Secret key holding a kubeconfig (instead of `server` and `auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_ref: Option<SecretKeySelector>,
    /// The namespace Secrets are read from (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_namespace: Option<String>,
}

impl KubernetesProvider {
    /// The namespace Secrets are read from: ESO's default is `default`.
    pub fn remote_namespace(&self) -> &str {
        self.remote_namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
    }

    /// The server URL: ESO's CRD default is `kubernetes.default` (empty when the field is
    /// present but empty, which ESO refuses with "no server URL provided").
    pub fn url(&self) -> &str {
        match &self.server {
            Some(s) => s.url.as_deref().unwrap_or("kubernetes.default"),
            None => "kubernetes.default",
        }
    }
}

/// The Kubernetes server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesServer {
    /// The server's address (default `kubernetes.default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A PEM CA bundle (base64 in the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Where the CA bundle is kept: a Secret or ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_provider: Option<CaProvider>,
}

/// Kubernetes authentication: exactly one method.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuth {
    /// A client certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<KubernetesCertAuth>,
    /// A static bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<KubernetesTokenAuth>,
    /// A ServiceAccount whose tokens (TokenRequest API, one hour) authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSelector>,
}

impl KubernetesAuth {
    /// How many methods are set.
    pub fn methods(&self) -> usize {
        [
            self.cert.is_some(),
            self.token.is_some(),
            self.service_account.is_some(),
        ]
        .into_iter()
        .filter(|m| *m)
        .count()
    }
}

/// Client certificate authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesCertAuth {
    /// The PEM client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<SecretKeySelector>,
    /// The PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<SecretKeySelector>,
}

/// Bearer token authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesTokenAuth {
    /// The token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretKeySelector>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esos_e2e_store_decodes_with_esos_defaults_in_code() {
        let p: KubernetesProvider = serde_json::from_value(serde_json::json!({
            "remoteNamespace": "team-a",
            "server": {"caProvider": {"type": "ConfigMap", "name": "kube-root-ca.crt", "key": "ca.crt"}},
            "auth": {"serviceAccount": {"name": "default"}}
        }))
        .unwrap();
        assert_eq!(p.remote_namespace(), "team-a");
        assert_eq!(p.url(), "kubernetes.default");
        assert_eq!(p.auth.as_ref().unwrap().methods(), 1);
        let bare = KubernetesProvider::default();
        assert_eq!(bare.remote_namespace(), "default");
        // Round trip: nothing added.
        let back = serde_json::to_value(&p).unwrap();
        assert!(back.get("authRef").is_none());
        assert!(back["server"].get("url").is_none());
    }
}
