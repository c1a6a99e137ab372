//! How a Kubernetes store reaches its cluster: the server, its CA and the credentials, read
//! from the cluster the controller runs in with ESO's namespace rules (a SecretStore reads
//! only its own namespace; a ClusterSecretStore the reference's `namespace`, else the
//! ExternalSecret's), and the connection shared by every store with the same credentials.
//!
//! - `auth.token`: a bearer token from a Secret key.
//! - `auth.serviceAccount`: a token from the TokenRequest API (one hour, the given
//!   audiences, as ESO), minted when the connection is first used and again before it
//!   expires or after the server refuses it, never per read.
//! - `auth.cert`: a client certificate and key from Secret keys.
//! - `authRef`: a kubeconfig in a Secret key. Unlike ESO (client-go's
//!   `RESTConfigFromKubeConfig`), a kubeconfig that would run a command (`exec`), use an
//!   auth-provider plugin, read a file of the controller's (`tokenFile`,
//!   `client-certificate`, `client-key`, `certificate-authority`) or turn TLS verification off
//!   is refused: anyone who may write a SecretStore would otherwise run code as the
//!   controller or read its own ServiceAccount token.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::api::{CaProvider, KubernetesProvider, SecretKeySelector, StoreKind};
use crate::provider::{BuildContext, Calls, ClusterRefs, ProviderBuildError, ProviderError};

/// ESO's TokenRequest lifetime for `auth.serviceAccount`.
pub const TOKEN_SECONDS: i64 = 3600;
/// A minted token is replaced after this long (well before its hour is up).
const REMINT: Duration = Duration::from_secs(45 * 60);

/// Where a connection's bearer token comes from, when it is not fixed in the configuration.
pub enum TokenSource {
    /// The configuration carries everything (a static token, a certificate, a kubeconfig).
    Fixed,
    /// A ServiceAccount's tokens from the TokenRequest API of the controller's cluster.
    ServiceAccount {
        /// The ServiceAccounts of the namespace.
        api: Box<Api<ServiceAccount>>,
        /// The ServiceAccount.
        name: String,
        /// Audiences (empty: the apiserver's).
        audiences: Vec<String>,
    },
}

/// A store's resolved connection settings.
pub struct Resolved {
    /// The client configuration (without a minted token).
    pub config: kube::Config,
    /// Where a minted token comes from.
    pub token: TokenSource,
    /// Who connects where, for humans and the provider cache (no secret in it; the versions
    /// of the Secrets read, so rotated credentials change it).
    pub identity: String,
    /// A digest of every credential, so rotated credentials get their own connection.
    pub fingerprint: String,
}

/// One client per server and credentials, shared by every store (and the store reconciler's
/// validations) that resolve to them.
pub struct Connection {
    base: kube::Config,
    token: TokenSource,
    calls: Calls,
    current: tokio::sync::Mutex<Option<(Client, Instant)>>,
}

static CONNECTIONS: LazyLock<Mutex<HashMap<String, Arc<Connection>>>> =
    LazyLock::new(Default::default);
/// Connections kept before the registry is flushed (rotated credentials leave old entries).
const MAX_CONNECTIONS: usize = 1024;

/// The connection for `resolved`, shared with every other store that resolved the same.
pub fn connection(resolved: Resolved, calls: Calls) -> Arc<Connection> {
    let key = format!("{}|{}", resolved.identity, resolved.fingerprint);
    let mut map = CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = map.get(&key) {
        return hit.clone();
    }
    if map.len() >= MAX_CONNECTIONS {
        map.clear();
    }
    let conn = Arc::new(Connection {
        base: resolved.config,
        token: resolved.token,
        calls,
        current: tokio::sync::Mutex::new(None),
    });
    map.insert(key, conn.clone());
    conn
}

impl Connection {
    /// A client: the current one, or a new one (with a freshly minted token for
    /// `serviceAccount` auth).
    pub async fn client(&self) -> Result<Client, ProviderError> {
        let mut current = self.current.lock().await;
        if let Some((client, made)) = current.as_ref()
            && (matches!(self.token, TokenSource::Fixed) || made.elapsed() < REMINT)
        {
            return Ok(client.clone());
        }
        let mut config = self.base.clone();
        if let TokenSource::ServiceAccount {
            api,
            name,
            audiences,
        } = &self.token
        {
            let token = mint(api, name, audiences, &self.calls).await?;
            config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
        }
        let client = Client::try_from(config).map_err(|e| {
            ProviderError::InvalidConfig(format!("error configuring clientset: {e}"))
        })?;
        *current = Some((client.clone(), Instant::now()));
        Ok(client)
    }

    /// Drops the current client after the server refused its credentials, so the next call
    /// mints a new token (a ServiceAccount token revoked or expired early).
    pub async fn refused(&self) {
        if matches!(self.token, TokenSource::ServiceAccount { .. }) {
            *self.current.lock().await = None;
        }
    }
}

/// A token for the ServiceAccount, from the TokenRequest API.
async fn mint(
    api: &Api<ServiceAccount>,
    name: &str,
    audiences: &[String],
    calls: &Calls,
) -> Result<Zeroizing<String>, ProviderError> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.to_vec(),
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let result: Result<TokenRequest, kube::Error> = api
        .create_subresource("token", name, &PostParams::default(), &request)
        .await;
    calls.record("CreateToken", &result);
    let answer = result.map_err(|e| {
        let namespace = api.namespace().unwrap_or_default();
        let msg = format!(
            "could not fetch Auth.ServiceAccount: cannot create service account token for {namespace}/{name}: {}",
            super::describe(&e)
        );
        match &e {
            kube::Error::Api(s) if s.code == 403 || s.code == 401 => {
                ProviderError::AccessDenied(msg)
            }
            _ => ProviderError::Unavailable(msg),
        }
    })?;
    answer
        .status
        .map(|s| Zeroizing::new(s.token))
        .ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "could not fetch Auth.ServiceAccount: cannot create service account token for {name}: no token in the answer"
            ))
        })
}

struct Reader<'a> {
    refs: Option<ClusterRefs<'a>>,
    digest: Sha256,
    versions: Vec<String>,
}

impl<'a> Reader<'a> {
    fn cluster(&self, field: &str) -> Result<ClusterRefs<'a>, ProviderBuildError> {
        self.refs.ok_or_else(|| {
            ProviderBuildError::Invalid(format!(
                "spec.provider.kubernetes.{field} reads from the cluster, and there is none"
            ))
        })
    }

    /// A Secret key's bytes, as ESO's `resolvers.SecretKeyRef` reads it.
    async fn secret(
        &mut self,
        sel: &SecretKeySelector,
        field: &str,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderBuildError> {
        let refs = self.cluster(field)?;
        let ns = refs.namespace_for(sel.namespace.as_deref());
        let key = sel.key.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
            ProviderBuildError::Invalid(format!("spec.provider.kubernetes.{field}.key is required"))
        })?;
        let read =
            crate::provider::cluster_refs::secret_key(refs, &ns, &sel.name, &key, field).await?;
        let bytes = read.value;
        self.digest.update(&*bytes);
        self.versions.push(read.version);
        Ok(bytes)
    }

    /// The CA bundle `caProvider` names (ESO's `FetchCACertFromSource`).
    async fn ca_provider(&mut self, p: &CaProvider) -> Result<Vec<u8>, ProviderBuildError> {
        let refs = self.cluster("server.caProvider")?;
        let ns = match refs.store_kind {
            StoreKind::ClusterSecretStore => p
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    ProviderBuildError::Invalid(
                        "CAProvider.namespace must not be empty with ClusterSecretStore".into(),
                    )
                })?,
            StoreKind::SecretStore => {
                if p.namespace.is_some() {
                    return Err(ProviderBuildError::Invalid(
                        "CAProvider.namespace must be empty with SecretStore".into(),
                    ));
                }
                refs.namespace.to_string()
            }
        };
        match p.type_.as_str() {
            "Secret" => {
                let sel = SecretKeySelector {
                    name: p.name.clone(),
                    key: Some(p.key.clone()),
                    namespace: Some(ns.clone()),
                };
                // Read as a ClusterSecretStore would, so the namespace chosen above is used.
                let mut inner = Reader {
                    refs: Some(ClusterRefs {
                        store_kind: StoreKind::ClusterSecretStore,
                        ..refs
                    }),
                    digest: Sha256::new(),
                    versions: Vec::new(),
                };
                let value = inner.secret(&sel, "server.caProvider").await?;
                self.versions.append(&mut inner.versions);
                Ok(value.to_vec())
            }
            "ConfigMap" => {
                let read = crate::provider::cluster_refs::config_map_key(
                    refs,
                    &ns,
                    &p.name,
                    &p.key,
                    "server.caProvider",
                )
                .await?;
                self.versions.push(read.version);
                Ok(read.value)
            }
            other => Err(ProviderBuildError::Invalid(format!(
                "spec.provider.kubernetes.server.caProvider.type {:?}: expected Secret or ConfigMap",
                crate::api::abbreviate(other, 40)
            ))),
        }
    }
}

/// The DER certificates of a PEM bundle; an error when it holds none.
pub fn pem_certificates(pem: &[u8], field: &str) -> Result<Vec<Vec<u8>>, ProviderBuildError> {
    let ders: Vec<Vec<u8>> = x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect();
    if ders.is_empty() {
        return Err(ProviderBuildError::Invalid(format!(
            "{field} holds no PEM certificate"
        )));
    }
    Ok(ders)
}

/// The server URL as client-go reads a bare host (`kubernetes.default` → `https://…`).
pub fn server_uri(url: &str) -> Result<http::Uri, ProviderBuildError> {
    if url.is_empty() {
        return Err(ProviderBuildError::Invalid("no server URL provided".into()));
    }
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    full.parse::<http::Uri>().map_err(|e| {
        ProviderBuildError::Invalid(format!(
            "invalid server.url {:?}: {e}",
            crate::api::abbreviate(url, 100)
        ))
    })
}

/// Resolves a store's connection settings, reading the Secrets (and ConfigMap) it names.
pub async fn resolve(
    spec: &KubernetesProvider,
    ctx: &BuildContext<'_>,
) -> Result<Resolved, ProviderBuildError> {
    let mut r = Reader {
        refs: ctx.cluster,
        digest: Sha256::new(),
        versions: Vec::new(),
    };
    if let Some(auth_ref) = &spec.auth_ref {
        if spec.auth.is_some() {
            return Err(ProviderBuildError::Invalid(
                "authRef and inline auth cannot both be set".into(),
            ));
        }
        let bytes = r.secret(auth_ref, "authRef").await?;
        let config = from_kubeconfig(&bytes).await?;
        let identity = format!(
            "kubeconfig from {} at {}",
            r.versions.join(" "),
            config.cluster_url
        );
        return Ok(Resolved {
            config,
            token: TokenSource::Fixed,
            identity,
            fingerprint: hex::encode(r.digest.finalize()),
        });
    }
    let url = spec.url();
    let mut config = kube::Config::new(server_uri(url)?);
    config.default_namespace = spec.remote_namespace().to_string();
    let server = spec.server.clone().unwrap_or_default();
    if let Some(bundle) = server.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        let pem = crate::provider::vault::ca_bundle(bundle);
        config.root_cert = Some(pem_certificates(&pem, "server.caBundle")?);
    } else if let Some(p) = &server.ca_provider {
        let pem = r.ca_provider(p).await?;
        config.root_cert = Some(pem_certificates(&pem, "server.caProvider")?);
    }
    if let Some(roots) = &config.root_cert {
        for der in roots {
            r.digest.update(der);
        }
    }
    let Some(auth) = &spec.auth else {
        return Err(ProviderBuildError::Invalid("no auth provider given".into()));
    };
    if auth.methods() > 1 {
        return Err(ProviderBuildError::Invalid(
            "multiple auth methods provided: set exactly one of Token, ServiceAccount, or Cert"
                .into(),
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let (token, who) = if let Some(t) = &auth.token {
        let sel = t.bearer_token.as_ref().ok_or_else(|| {
            ProviderBuildError::Invalid("BearerToken.Name cannot be empty".into())
        })?;
        let token = r.secret(sel, "auth.token.bearerToken").await.map_err(|e| {
            ProviderBuildError::Invalid(format!("could not fetch Auth.Token.BearerToken: {e}"))
        })?;
        let text = String::from_utf8(token.to_vec()).map_err(|_| {
            ProviderBuildError::Invalid(
                "could not fetch Auth.Token.BearerToken: the token is not UTF-8".into(),
            )
        })?;
        config.auth_info.token = Some(secrecy::SecretString::from(text.trim().to_string()));
        (TokenSource::Fixed, "with a token".to_string())
    } else if let Some(sa) = &auth.service_account {
        let refs = r.cluster("auth.serviceAccount")?;
        let ns = refs.namespace_for(sa.namespace.as_deref());
        let desc = format!(
            "as serviceaccount {ns}/{} (audiences {:?})",
            sa.name, sa.audiences
        );
        r.digest.update(desc.as_bytes());
        (
            TokenSource::ServiceAccount {
                api: Box::new(Api::namespaced(refs.client.clone(), &ns)),
                name: sa.name.clone(),
                audiences: sa.audiences.clone(),
            },
            desc,
        )
    } else if let Some(c) = &auth.cert {
        let missing = |what: &str| {
            ProviderBuildError::Invalid(format!(
                "could not fetch client key and cert: {what} is not set"
            ))
        };
        let cert_sel = c
            .client_cert
            .as_ref()
            .ok_or_else(|| missing("ClientCert"))?;
        let key_sel = c.client_key.as_ref().ok_or_else(|| missing("ClientKey"))?;
        let cert = r
            .secret(cert_sel, "auth.cert.clientCert")
            .await
            .map_err(|e| {
                ProviderBuildError::Invalid(format!("could not fetch client key and cert: {e}"))
            })?;
        let key = r
            .secret(key_sel, "auth.cert.clientKey")
            .await
            .map_err(|e| {
                ProviderBuildError::Invalid(format!("could not fetch client key and cert: {e}"))
            })?;
        pem_certificates(&cert, "auth.cert.clientCert")?;
        config.auth_info.client_certificate_data = Some(b64.encode(&*cert));
        config.auth_info.client_key_data = Some(secrecy::SecretString::from(b64.encode(&*key)));
        (TokenSource::Fixed, "with a client certificate".to_string())
    } else {
        return Err(ProviderBuildError::Invalid("no auth provider given".into()));
    };
    let mut identity = format!("{} {who}", config.cluster_url);
    if !r.versions.is_empty() {
        identity.push_str(" from ");
        identity.push_str(&r.versions.join(" "));
    }
    Ok(Resolved {
        config,
        token,
        identity,
        fingerprint: hex::encode(r.digest.finalize()),
    })
}

/// A client configuration from a kubeconfig held in a Secret: its current context (else its
/// only one), with everything inline. What would run a command, read a file of the
/// controller's or skip TLS verification is refused (see the module docs).
pub async fn from_kubeconfig(bytes: &[u8]) -> Result<kube::Config, ProviderBuildError> {
    let invalid = |why: String| ProviderBuildError::Invalid(format!("authRef: {why}"));
    let text =
        std::str::from_utf8(bytes).map_err(|_| invalid("the kubeconfig is not UTF-8".into()))?;
    // serde_yaml's messages can quote the document: keep only where it failed.
    let kc = Kubeconfig::from_yaml(text).map_err(|e| {
        let at = match &e {
            kube::config::KubeconfigError::Parse(_) => "it is not a valid kubeconfig",
            _ => "it could not be read",
        };
        invalid(format!("failed to load the kubeconfig: {at}"))
    })?;
    for cluster in kc.clusters.iter().filter_map(|c| c.cluster.as_ref()) {
        if cluster.insecure_skip_tls_verify == Some(true) {
            return Err(invalid(
                "insecure-skip-tls-verify is not allowed: the TLS client is never insecure".into(),
            ));
        }
        if cluster.certificate_authority.is_some() {
            return Err(invalid(
                "certificate-authority (a file path) is not allowed; use certificate-authority-data".into(),
            ));
        }
    }
    for user in kc.auth_infos.iter().filter_map(|u| u.auth_info.as_ref()) {
        let refused = [
            (user.exec.is_some(), "exec"),
            (user.auth_provider.is_some(), "auth-provider"),
            (user.token_file.is_some(), "tokenFile"),
            (
                user.client_certificate.is_some(),
                "client-certificate (a file path)",
            ),
            (user.client_key.is_some(), "client-key (a file path)"),
        ];
        if let Some((_, what)) = refused.iter().find(|(set, _)| *set) {
            return Err(invalid(format!(
                "{what} is not allowed in a kubeconfig from a Secret; use inline credentials (token, client-certificate-data, client-key-data)"
            )));
        }
    }
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| invalid(format!("failed to load the kubeconfig: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_hosts_become_https_and_empty_urls_are_refused() {
        assert_eq!(
            server_uri("kubernetes.default").unwrap().to_string(),
            "https://kubernetes.default/"
        );
        assert_eq!(
            server_uri("https://10.0.0.1:6443").unwrap().to_string(),
            "https://10.0.0.1:6443/"
        );
        assert_eq!(
            server_uri("").unwrap_err().to_string(),
            "no server URL provided"
        );
    }

    #[test]
    fn a_bundle_without_a_certificate_is_refused() {
        let err = pem_certificates(b"not a pem", "server.caBundle").unwrap_err();
        assert_eq!(err.to_string(), "server.caBundle holds no PEM certificate");
    }

    fn kubeconfig(user: &str, cluster: &str) -> String {
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
{cluster}
users:
- name: u
  user:
{user}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
"#
        )
    }

    #[tokio::test]
    async fn kubeconfigs_that_run_commands_or_read_files_are_refused() {
        let ok = kubeconfig("    token: abc", "");
        let config = from_kubeconfig(ok.as_bytes()).await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        for (user, cluster, what) in [
            (
                "    exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}",
                "",
                "exec",
            ),
            (
                "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
                "",
                "tokenFile",
            ),
            (
                "    client-certificate: /etc/x.crt\n    client-key: /etc/x.key",
                "",
                "client-certificate",
            ),
            (
                "    token: abc",
                "    insecure-skip-tls-verify: true",
                "insecure-skip-tls-verify",
            ),
            (
                "    token: abc",
                "    certificate-authority: /etc/ca.crt",
                "certificate-authority",
            ),
        ] {
            let err = from_kubeconfig(kubeconfig(user, cluster).as_bytes())
                .await
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("authRef: {what}")), "{err}");
        }
        let err = from_kubeconfig(b"{{{ not yaml")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "authRef: failed to load the kubeconfig: it is not a valid kubeconfig"
        );
    }
}
