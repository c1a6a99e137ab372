//! The validating admission webhook: ESO's rules for ExternalSecrets (see
//! [`crate::api::validate`]) and the store rules esox enforces, answered over TLS on ESO's
//! paths (`/validate-external-secrets-io-v1-externalsecret`, …) so ESO's
//! ValidatingWebhookConfiguration works unchanged. PushSecrets and ClusterPushSecrets
//! (`/validate-external-secrets-io-v1alpha1-pushsecret`, `…-clusterpushsecret`; ESO has no
//! webhook for them) are refused for what would fail at every reconcile
//! ([`crate::api::validate::push`]) and for templates that cannot render (an unknown engine,
//! a type a template may not make).
//!
//! It is optional and fast (no API calls: every rule reads only the object under review), so
//! `failurePolicy: Fail` does not make the controller a single point of failure for long.
//!
//! HTTP is hyper's (HTTP/1.1 over the rustls acceptor: the apiserver keeps connections alive and
//! may send chunked bodies), and the review kube's [`AdmissionReview`] types. Bodies are capped
//! at `MAX_BODY`; a client gets `CLIENT_TIMEOUT` for its handshake, headers and body. A body
//! that is not an AdmissionReview is answered 400 with an `InvalidRequest` review; request
//! bodies are never logged (a store's spec may hold Fake provider values).

pub mod certs;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::api::validate::StoreScope;
use crate::api::{
    ClusterPushSecretSpec, ExternalSecretSpec, ExternalSecretTemplate, PushSecretSpec,
    SecretStoreSpec,
};

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
        // ESO has no webhook for these: esox refuses what would fail at every reconcile.
        "PushSecret" => match serde_json::from_value::<PushSecretSpec>(spec) {
            Ok(s) => {
                let mut errs = crate::api::validate::push_secret(&s);
                errs.extend(template_errors(s.template.as_ref(), "spec.template"));
                errs
            }
            Err(e) => vec![format!("invalid PushSecret spec: {e}")],
        },
        "ClusterPushSecret" => match serde_json::from_value::<ClusterPushSecretSpec>(spec) {
            Ok(s) => {
                let mut errs = crate::api::validate::cluster_push_secret(&s);
                errs.extend(template_errors(
                    s.push_secret_spec.template.as_ref(),
                    "spec.pushSecretSpec.template",
                ));
                errs
            }
            Err(e) => vec![format!("invalid ClusterPushSecret spec: {e}")],
        },
        _ => Vec::new(),
    }
}

/// What a template's static check finds (its engine, a type it may not make).
fn template_errors(tpl: Option<&ExternalSecretTemplate>, field: &str) -> Option<String> {
    let e = crate::template::check(tpl?).err()?;
    Some(format!("{field}: {e}"))
}

/// Answers one admission request: allowed, or denied with every rule the object breaks.
pub fn review(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    // Deletes carry no object: nothing to validate.
    let Some(object) = &request.object else {
        return response;
    };
    let errs = match serde_json::to_value(object) {
        Ok(object) => violations(&request.kind.kind, &object),
        Err(e) => vec![format!("invalid {}: {e}", request.kind.kind)],
    };
    if errs.is_empty() {
        return response;
    }
    // controller-runtime's Denied: 403 Forbidden with the joined messages.
    let mut response = response.deny(errs.join("\n"));
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    response
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

/// The largest request body read: a Kubernetes object is at most about 1.5 MiB (etcd's request
/// limit), and the review of an UPDATE carries two (`object` and `oldObject`).
const MAX_BODY: usize = 4 << 20;

/// How long a client may take over its TLS handshake, its request headers, or its body.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the webhook on `listener` until the process ends.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => connection(stream).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "webhook TLS handshake failed"),
                Err(_) => tracing::debug!("webhook TLS handshake timed out"),
            }
        });
    }
}

/// Serves HTTP/1.1 requests on one connection (the apiserver keeps it alive) until the client
/// closes it.
async fn connection<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(|req| async { Ok::<_, Infallible>(answer(req).await) }),
        )
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "webhook connection ended");
    }
}

/// Answers one HTTP request: an AdmissionReview on ESO's `/validate-…` paths, `/healthz`, or
/// 404.
async fn answer<B>(req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path();
    if path == "/healthz" {
        return respond(StatusCode::OK, "text/plain", "ok");
    }
    if !path.starts_with("/validate-") {
        return respond(StatusCode::NOT_FOUND, "text/plain", "not found");
    }
    if req.method() != Method::POST {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "an AdmissionReview is POSTed",
        );
    }
    let body = match tokio::time::timeout(
        CLIENT_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                format!("an AdmissionReview is at most {MAX_BODY} bytes"),
            );
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "webhook request body unreadable");
            return respond(StatusCode::BAD_REQUEST, "text/plain", "unreadable body");
        }
        Err(_) => {
            return respond(
                StatusCode::REQUEST_TIMEOUT,
                "text/plain",
                "request body timed out",
            );
        }
    };
    let (status, review) = match serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let request: Result<AdmissionRequest<_>, _> = r.try_into();
            request.map_err(|e| e.to_string())
        }) {
        Ok(request) => (StatusCode::OK, review(&request).into_review()),
        // Not an AdmissionReview: the apiserver never sends one, so this is a client error.
        Err(e) => (
            StatusCode::BAD_REQUEST,
            AdmissionResponse::invalid(format!("not an AdmissionReview request: {e}"))
                .into_review(),
        ),
    };
    match serde_json::to_vec(&review) {
        Ok(json) => respond(status, "application/json", json),
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("encoding the AdmissionReview: {e}"),
        ),
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ES_PATH: &str = "/validate-external-secrets-io-v1-externalsecret";

    /// An AdmissionReview as the apiserver sends it, for `object` of `kind`.
    fn review_json(uid: &str, kind: &str, object: Option<Value>) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "external-secrets.io", "version": "v1", "kind": kind},
                "resource": {"group": "external-secrets.io", "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
                "name": "x",
                "operation": if object.is_some() { "CREATE" } else { "DELETE" },
                "userInfo": {"username": "admin"},
                "object": object,
            }
        })
    }

    async fn post(path: &str, body: impl Into<Bytes>) -> (StatusCode, Bytes) {
        let req = Request::post(path).body(Full::new(body.into())).unwrap();
        let resp = answer(req).await;
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    async fn post_review(review: &Value) -> Value {
        let (status, body) = post(ES_PATH, review.to_string()).await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn denies_with_eso_messages_and_admits_valid_objects() {
        let out = post_review(&review_json(
            "u1",
            "ExternalSecret",
            Some(json!({"spec": {}})),
        ))
        .await;
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        assert_eq!(out["response"]["status"]["reason"], "Forbidden");
        assert_eq!(
            out["response"]["status"]["message"],
            "either data or dataFrom should be specified"
        );
        let good = review_json(
            "u2",
            "SecretStore",
            Some(
                json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"provider": {"fake": {"data": []}}}}),
            ),
        );
        let out = post_review(&good).await;
        assert_eq!(out["response"]["uid"], "u2");
        assert_eq!(out["response"]["allowed"], true);
        let none = review_json(
            "u3",
            "ClusterSecretStore",
            Some(json!({"spec": {"provider": {}}})),
        );
        assert_eq!(
            post_review(&none).await["response"]["status"]["message"],
            "store error for : secret stores must only have exactly one backend specified, found 0"
        );
        // A delete carries no object: admitted.
        let delete = review_json("u4", "ExternalSecret", None);
        assert_eq!(post_review(&delete).await["response"]["allowed"], true);
    }

    #[tokio::test]
    async fn push_secrets_are_refused_for_what_would_fail_at_every_reconcile() {
        let ps = |spec: Value| {
            review_json(
                "p",
                "PushSecret",
                Some(json!({"metadata": {"name": "p", "namespace": "n"}, "spec": spec})),
            )
        };
        let good = json!({
            "secretStoreRefs": [{"name": "a"}],
            "selector": {"secret": {"name": "src"}},
            "dataTo": [{"storeRef": {"name": "a"}, "match": {"regexp": "^db-"}}],
            "template": {"engineVersion": "minijinja", "data": {"k": "{{ v }}"}}
        });
        assert_eq!(
            post_review(&ps(good.clone())).await["response"]["allowed"],
            true
        );
        let mut bad = good.clone();
        bad["dataTo"][0]["storeRef"]["name"] = json!("b");
        bad["template"]["engineVersion"] = json!("v3");
        let out = post_review(&ps(bad)).await;
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(
            out["response"]["status"]["message"],
            "dataTo[0]: storeRef \"b\" not found in secretStoreRefs\nspec.template: could not apply template: unsupported template engine version: v3 (supported: v2, minijinja)"
        );
        let cps = review_json(
            "c",
            "ClusterPushSecret",
            Some(json!({"metadata": {"name": "c"}, "spec": {
                "refreshTime": "1d",
                "pushSecretSpec": {"secretStoreRefs": [{}], "selector": {"secret": {"name": "s"}}}
            }})),
        );
        assert_eq!(
            post_review(&cps).await["response"]["status"]["message"],
            "spec.refreshTime: time: unknown unit \"d\" in duration \"1d\"\nrefStore Name must be provided"
        );
    }

    #[tokio::test]
    async fn a_malformed_review_is_answered_400() {
        for body in [
            "not json".to_string(),
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).to_string(),
            json!({"request": {"uid": "u1"}}).to_string(),
        ] {
            let (status, body) = post(ES_PATH, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            let out: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(out["response"]["allowed"], false);
            assert_eq!(out["response"]["status"]["reason"], "InvalidRequest");
        }
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_unread() {
        let (status, _) = post(ES_PATH, vec![b' '; MAX_BODY + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn other_paths_and_methods() {
        assert_eq!(post("/healthz", "").await.0, StatusCode::OK);
        assert_eq!(post("/mutate-x", "").await.0, StatusCode::NOT_FOUND);
        let get = Request::get(ES_PATH).body(Full::new(Bytes::new())).unwrap();
        assert_eq!(answer(get).await.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    /// A chunked request, then a second request on the same (kept-alive) connection.
    #[tokio::test]
    async fn chunked_and_kept_alive_requests_over_one_connection() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(connection(server));
        let body = review_json("u1", "ExternalSecret", Some(json!({"spec": {}}))).to_string();
        let (a, b) = body.split_at(body.len() / 2);
        let mut raw = format!(
            "POST {ES_PATH} HTTP/1.1\r\nHost: esox\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        let second = review_json(
            "u2",
            "ExternalSecret",
            Some(json!({"spec": {"data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]}})),
        )
        .to_string();
        raw += &format!(
            "POST {ES_PATH} HTTP/1.1\r\nHost: esox\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{second}",
            second.len()
        );
        client.write_all(raw.as_bytes()).await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        served.await.unwrap();
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        assert!(
            out.contains(r#""uid":"u1","allowed":false"#)
                && out.contains("either data or dataFrom should be specified"),
            "{out}"
        );
        assert!(out.contains(r#""uid":"u2","allowed":true"#), "{out}");
    }
}
