//! What a Vault store's `auth`, `caBundle`/`caProvider` and `tls` name, read from the cluster
//! with ESO's namespace rules: a SecretStore reads only its own namespace; a
//! ClusterSecretStore uses the reference's `namespace`, else the ExternalSecret's.

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::http::TlsMaterial;
use super::token::{JwtSource, Login};
use crate::api::{SecretKeySelector, StoreKind, VaultProvider};
use crate::provider::{BuildContext, ClusterRefs, ProviderBuildError};

/// A store's resolved settings.
pub struct Resolved {
    /// TLS roots and client certificate.
    pub tls: TlsMaterial,
    /// How to log in.
    pub login: Login,
    /// Who logs in, for humans and the provider cache (no secret in it).
    pub identity: String,
    /// A digest of every credential, so rotated credentials get their own token.
    pub fingerprint: String,
}

/// The pod's own ServiceAccount token (Kubernetes auth without a reference).
const POD_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

struct Reader<'a> {
    ctx: &'a BuildContext<'a>,
    digest: Sha256,
    versions: Vec<String>,
}

impl<'a> Reader<'a> {
    fn cluster(&self, field: &str) -> Result<ClusterRefs<'a>, ProviderBuildError> {
        self.ctx.cluster.ok_or_else(|| {
            ProviderBuildError::Invalid(format!(
                "spec.provider.vault.{field} reads from the cluster, and there is none"
            ))
        })
    }

    /// A Secret key's value, as ESO's `resolvers.SecretKeyRef` reads it (untrimmed).
    async fn secret(
        &mut self,
        sel: &SecretKeySelector,
        default_key: Option<&str>,
        field: &str,
    ) -> Result<Zeroizing<String>, ProviderBuildError> {
        let refs = self.cluster(field)?;
        let ns = refs.namespace_for(sel.namespace.as_deref());
        let key = sel
            .key
            .clone()
            .filter(|k| !k.is_empty())
            .or(default_key.map(str::to_string))
            .ok_or_else(|| {
                ProviderBuildError::Invalid(format!("spec.provider.vault.{field}.key is required"))
            })?;
        let read =
            crate::provider::cluster_refs::secret_key(refs, &ns, &sel.name, &key, field).await?;
        let bytes = read.value;
        self.digest.update(&*bytes);
        self.versions.push(read.version);
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            ProviderBuildError::Invalid(format!(
                "Secret {ns}/{} key {key:?} ({field}) is not UTF-8",
                sel.name
            ))
        })?;
        Ok(Zeroizing::new(text))
    }

    /// The CA bundle of `caProvider`.
    async fn ca_provider(
        &mut self,
        p: &crate::api::CaProvider,
    ) -> Result<Vec<u8>, ProviderBuildError> {
        let refs = self.cluster("caProvider")?;
        let ns = match refs.store_kind {
            StoreKind::ClusterSecretStore => p
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    ProviderBuildError::Invalid("missing namespace on caProvider secret".into())
                })?,
            StoreKind::SecretStore => {
                if p.namespace.as_deref().is_some_and(|n| n != refs.namespace) {
                    return Err(ProviderBuildError::Invalid(
                        "namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore".into(),
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
                    namespace: Some(ns),
                };
                // A ClusterSecretStore's explicit namespace, a SecretStore's own.
                let value = self.secret(&sel, None, "caProvider").await?;
                Ok(value.as_bytes().to_vec())
            }
            "ConfigMap" => {
                let read = crate::provider::cluster_refs::config_map_key(
                    refs,
                    &ns,
                    &p.name,
                    &p.key,
                    "caProvider",
                )
                .await?;
                self.versions.push(read.version);
                Ok(read.value)
            }
            other => Err(ProviderBuildError::Invalid(format!(
                "spec.provider.vault.caProvider.type {:?}: expected Secret or ConfigMap",
                crate::api::abbreviate(other, 40)
            ))),
        }
    }

    /// A TokenRequest source for a ServiceAccount.
    fn service_account(
        &mut self,
        sa: &crate::api::ServiceAccountSelector,
        audiences: Vec<String>,
        expiration: i64,
        field: &str,
    ) -> Result<(JwtSource, String), ProviderBuildError> {
        let refs = self.cluster(field)?;
        let ns = refs.namespace_for(sa.namespace.as_deref());
        let api: Api<ServiceAccount> = Api::namespaced(refs.client.clone(), &ns);
        let desc = format!("serviceaccount {ns}/{} audiences {audiences:?}", sa.name);
        self.digest.update(desc.as_bytes());
        Ok((
            JwtSource::TokenRequest {
                api: Box::new(api),
                name: sa.name.clone(),
                audiences,
                expiration,
            },
            desc,
        ))
    }
}

/// A PEM CA bundle from `caBundle`: the field is base64 in the manifest (already decoded by
/// serde as the apiserver stores it, a base64 string), and ESO accepts PEM or base64 of PEM
/// inside.
pub(crate) fn ca_bundle(field: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = if field.contains("-----BEGIN") {
        field.as_bytes().to_vec()
    } else {
        b64.decode(field.trim())
            .unwrap_or_else(|_| field.as_bytes().to_vec())
    };
    if raw.windows(10).any(|w| w == b"-----BEGIN") {
        return raw;
    }
    let compact: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    b64.decode(&compact).unwrap_or(raw)
}

/// Resolves the store's TLS settings and login method.
pub async fn resolve(
    spec: &VaultProvider,
    ctx: &BuildContext<'_>,
) -> Result<Resolved, ProviderBuildError> {
    let mut r = Reader {
        ctx,
        digest: Sha256::new(),
        versions: Vec::new(),
    };
    let mut tls = TlsMaterial::default();
    if let Some(bundle) = spec.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        tls.ca_pem = Some(ca_bundle(bundle));
    } else if let Some(p) = &spec.ca_provider {
        tls.ca_pem = Some(r.ca_provider(p).await?);
    }
    if let Some(ca) = &tls.ca_pem {
        r.digest.update(ca);
    }
    if let Some(t) = &spec.tls {
        match (&t.cert_secret_ref, &t.key_secret_ref) {
            (Some(c), Some(k)) => {
                let cert = r.secret(c, Some("tls.crt"), "tls.certSecretRef").await?;
                let key = r.secret(k, Some("tls.key"), "tls.keySecretRef").await?;
                tls.client = Some((cert.as_bytes().to_vec(), key.as_bytes().to_vec()));
            }
            (None, None) => {}
            _ => {
                return Err(ProviderBuildError::Invalid(
                    "when provided, both ClientTLS.ClientCert and ClientTLS.SecretRef should be provided"
                        .into(),
                ));
            }
        }
    }
    let (login, who) = login(spec, &mut r, &mut tls).await?;
    let mut identity = who;
    if !r.versions.is_empty() {
        identity.push_str(" from ");
        identity.push_str(&r.versions.join(" "));
    }
    Ok(Resolved {
        tls,
        login,
        identity,
        fingerprint: hex::encode(r.digest.finalize()),
    })
}

fn mount(path: &Option<String>, default: &str) -> String {
    path.as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// The login method, in ESO's order (the first one set wins).
async fn login(
    spec: &VaultProvider,
    r: &mut Reader<'_>,
    tls: &mut TlsMaterial,
) -> Result<(Login, String), ProviderBuildError> {
    let Some(auth) = &spec.auth else {
        return Ok((Login::Anonymous, "without a token".into()));
    };
    if let Some(sel) = &auth.token_secret_ref {
        let token = r.secret(sel, None, "auth.tokenSecretRef").await?;
        return Ok((
            Login::Static(std::sync::Arc::new(token)),
            "with a token".into(),
        ));
    }
    if let Some(a) = &auth.app_role {
        let role_id = match (&a.role_id, &a.role_ref) {
            (Some(id), _) if !id.trim().is_empty() => id.trim().to_string(),
            (_, Some(sel)) => r
                .secret(sel, None, "auth.appRole.roleRef")
                .await?
                .trim()
                .to_string(),
            _ => {
                return Err(ProviderBuildError::Invalid(
                    "invalid Auth.AppRole: neither `roleId` nor `roleRef` was supplied".into(),
                ));
            }
        };
        let sel = a.secret_ref.as_ref().ok_or_else(|| {
            ProviderBuildError::Invalid(
                "spec.provider.vault.auth.appRole.secretRef is required".into(),
            )
        })?;
        let secret_id = r.secret(sel, None, "auth.appRole.secretRef").await?;
        let mount = mount(&a.path, "approle");
        let who = format!("appRole {mount} role {role_id}");
        return Ok((
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            },
            who,
        ));
    }
    if let Some(k) = &auth.kubernetes {
        if k.role.trim().is_empty() {
            return Err(ProviderBuildError::Invalid(
                "spec.provider.vault.auth.kubernetes.role is required".into(),
            ));
        }
        let mount = mount(&k.mount_path, "kubernetes");
        let (jwt, from) = if let Some(sa) = &k.service_account_ref {
            r.service_account(
                sa,
                sa.audiences.clone(),
                600,
                "auth.kubernetes.serviceAccountRef",
            )?
        } else if let Some(sel) = &k.secret_ref {
            let t = r
                .secret(sel, Some("token"), "auth.kubernetes.secretRef")
                .await?;
            (JwtSource::Static(t), "a token Secret".to_string())
        } else {
            let t = std::fs::read_to_string(POD_TOKEN).map_err(|e| {
                ProviderBuildError::Invalid(format!(
                    "cannot read Kubernetes service account token from file system: {e}"
                ))
            })?;
            r.digest.update(t.as_bytes());
            (
                JwtSource::Static(Zeroizing::new(t)),
                "the pod's service account".to_string(),
            )
        };
        let who = format!("kubernetes {mount} role {} as {from}", k.role);
        return Ok((
            Login::Jwt {
                mount,
                role: Some(k.role.clone()),
                jwt,
            },
            who,
        ));
    }
    for (field, up, default) in [
        ("ldap", auth.ldap.as_ref(), "ldap"),
        ("userPass", auth.user_pass.as_ref(), "userpass"),
    ] {
        // ESO's order is ldap, then userPass.
        let Some(u) = up else { continue };
        let sel = u.secret_ref.as_ref().ok_or_else(|| {
            ProviderBuildError::Invalid(format!(
                "spec.provider.vault.auth.{field}.secretRef is required"
            ))
        })?;
        let password = r
            .secret(sel, None, &format!("auth.{field}.secretRef"))
            .await?;
        let username = u.username.trim().to_string();
        if username.is_empty() {
            return Err(ProviderBuildError::Invalid(format!(
                "spec.provider.vault.auth.{field}.username is required"
            )));
        }
        let mount = mount(&u.path, default);
        let who = format!("{field} {mount} user {username}");
        return Ok((
            Login::Password {
                mount,
                username,
                password,
            },
            who,
        ));
    }
    if let Some(j) = &auth.jwt {
        let mount = mount(&j.path, "jwt");
        let role = j
            .role
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let (jwt, from) = if let Some(sel) = &j.secret_ref {
            let t = r.secret(sel, None, "auth.jwt.secretRef").await?;
            (JwtSource::Static(t), "a JWT Secret".to_string())
        } else if let Some(k) = &j.kubernetes_service_account_token {
            let mut auds = k.service_account_ref.audiences.clone();
            auds.extend(
                k.audiences
                    .clone()
                    .unwrap_or_else(|| vec!["vault".to_string()]),
            );
            r.service_account(
                &k.service_account_ref,
                auds,
                k.expiration_seconds.unwrap_or(600),
                "auth.jwt.kubernetesServiceAccountToken",
            )?
        } else {
            return Err(ProviderBuildError::Invalid(
                "neither `secretRef` nor `kubernetesServiceAccountToken` was supplied as token source for jwt authentication".into(),
            ));
        };
        let who = format!(
            "jwt {mount} role {} as {from}",
            role.as_deref().unwrap_or("(default)")
        );
        return Ok((Login::Jwt { mount, role, jwt }, who));
    }
    if let Some(c) = &auth.cert {
        let (Some(cert_sel), Some(key_sel)) = (&c.client_cert, &c.secret_ref) else {
            return Err(ProviderBuildError::Invalid(
                "spec.provider.vault.auth.cert needs clientCert and secretRef".into(),
            ));
        };
        let cert = r.secret(cert_sel, None, "auth.cert.clientCert").await?;
        let key = r.secret(key_sel, None, "auth.cert.secretRef").await?;
        tls.client = Some((cert.as_bytes().to_vec(), key.as_bytes().to_vec()));
        let mount = mount(&c.path, "cert");
        let name = c.vault_role.clone().filter(|n| !n.is_empty());
        let who = format!(
            "cert {mount} role {}",
            name.as_deref().unwrap_or("(any matching)")
        );
        return Ok((Login::Cert { mount, name }, who));
    }
    for (field, set, what) in [
        ("iam", auth.iam.is_some(), "AWS IAM"),
        ("gcp", auth.gcp.is_some(), "GCP"),
    ] {
        if set {
            return Err(ProviderBuildError::UnsupportedAuth(format!(
                "spec.provider.vault.auth.{field}: {what} authentication to Vault is not supported by esox yet; use kubernetes, jwt, appRole, userPass, ldap, cert or tokenSecretRef"
            )));
        }
    }
    Err(ProviderBuildError::Invalid(
        "cannot initialize Vault client: no valid auth method specified".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_bundles_are_pem_or_base64_of_pem() {
        use base64::Engine;
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(ca_bundle(pem), pem.as_bytes());
        assert_eq!(ca_bundle(&b64.encode(pem)), pem.as_bytes());
        assert_eq!(ca_bundle(&b64.encode(b64.encode(pem))), pem.as_bytes());
    }
}
