//! The validating admission webhook: ESO's rules for ExternalSecrets (see
//! [`crate::api::validate`]) and the store rules esox enforces, answered over TLS on ESO's
//! paths (`/validate-external-secrets-io-v1-externalsecret`, …) so ESO's
//! ValidatingWebhookConfiguration works unchanged.
//!
//! It is optional and fast (no API calls: every rule reads only the object under review), so
//! `failurePolicy: Fail` does not make the controller a single point of failure for long.

pub mod certs;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::api::validate::StoreScope;
use crate::api::{ExternalSecretSpec, SecretStoreSpec};

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The certificate or key could not be read.
    #[error("webhook TLS: {0}")]
    Tls(String),
    /// The port could not be bound.
    #[error("webhook listen: {0}")]
    Listen(#[from] std::io::Error),
    /// A certificate could not be made or read.
    #[error("webhook certificate: {0}")]
    Certificate(String),
    /// The certificate Secret or the ValidatingWebhookConfiguration could not be read or written.
    #[error("webhook certificate: {0}")]
    Kube(String),
}

/// Every rule `object` (of `kind`) breaks; empty when admitted.
pub fn violations(kind: &str, object: &Value) -> Vec<String> {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    match kind {
        "ExternalSecret" => match serde_json::from_value::<ExternalSecretSpec>(spec) {
            Ok(s) => crate::api::validate::external_secret(&s),
            Err(e) => vec![format!("invalid ExternalSecret spec: {e}")],
        },
        "SecretStore" | "ClusterSecretStore" => {
            match serde_json::from_value::<SecretStoreSpec>(spec) {
                Ok(s) => {
                    let meta = &object["metadata"];
                    let name = meta["name"].as_str().unwrap_or_default();
                    let scope = if kind == "SecretStore" {
                        StoreScope::Namespaced(meta["namespace"].as_str().unwrap_or_default())
                    } else {
                        StoreScope::Cluster
                    };
                    crate::api::validate::store(name, scope, &s)
                        .into_iter()
                        .collect()
                }
                Err(e) => vec![format!("invalid {kind} spec: {e}")],
            }
        }
        _ => Vec::new(),
    }
}

/// Answers one AdmissionReview (admission.k8s.io/v1).
pub fn review(body: &[u8]) -> Value {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let request = &req["request"];
    let uid = request["uid"].clone();
    let kind = request["kind"]["kind"].as_str().unwrap_or_default();
    // Deletes carry no object: nothing to validate.
    let errs = match request.get("object") {
        Some(o) if !o.is_null() => violations(kind, o),
        _ => Vec::new(),
    };
    let response = if errs.is_empty() {
        json!({"uid": uid, "allowed": true})
    } else {
        // controller-runtime's Denied: 403 Forbidden with the joined messages.
        json!({
            "uid": uid,
            "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": errs.join("\n")}
        })
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Loads `tls.crt` and `tls.key` from `dir`.
pub fn tls_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .map_err(|e| WebhookError::Tls(format!("{}: {e}", dir.join("tls.crt").display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| WebhookError::Tls(format!("{}: {e}", dir.join("tls.crt").display())))?;
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key"))
        .map_err(|e| WebhookError::Tls(format!("{}: {e}", dir.join("tls.key").display())))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WebhookError::Tls(e.to_string()))?;
    Ok(http1(config))
}

/// A TLS configuration serving whatever `resolver` holds (see [`certs::provision`]).
pub fn tls_config_from(resolver: Arc<certs::Resolver>) -> Arc<rustls::ServerConfig> {
    http1(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(resolver),
    )
}

fn http1(mut config: rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Serves the webhook on `listener` until the process ends.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor.accept(tcp).await {
                Ok(stream) => {
                    if let Err(e) = connection(stream).await {
                        tracing::debug!(error = %e, "webhook connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "webhook TLS handshake failed"),
            }
        });
    }
}

/// HTTP/1.1 requests on one connection (the apiserver keeps it alive).
async fn connection<S>(stream: S) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        // An AdmissionReview holds one object: Kubernetes objects are at most ~1.5 MiB.
        if length > 3 << 20 {
            return Ok(());
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        let (status, payload) = if path.starts_with("/validate-") {
            ("200 OK", review(&body).to_string())
        } else if path == "/healthz" {
            ("200 OK", "ok".to_string())
        } else {
            ("404 Not Found", "not found".to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
        reader.get_mut().flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_with_eso_messages_and_admits_valid_objects() {
        let bad = json!({"request": {"uid": "u1", "kind": {"kind": "ExternalSecret"}, "object": {"spec": {}}}});
        let out = review(bad.to_string().as_bytes());
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(
            out["response"]["status"]["message"],
            "either data or dataFrom should be specified"
        );
        let good = json!({"request": {"uid": "u2", "kind": {"kind": "SecretStore"}, "object": {"spec": {"provider": {"fake": {"data": []}}}}}});
        assert_eq!(
            review(good.to_string().as_bytes())["response"]["allowed"],
            true
        );
        let none = json!({"request": {"uid": "u3", "kind": {"kind": "ClusterSecretStore"}, "object": {"spec": {"provider": {}}}}});
        assert_eq!(
            review(none.to_string().as_bytes())["response"]["status"]["message"],
            "store error for : secret stores must only have exactly one backend specified, found 0"
        );
    }
}
