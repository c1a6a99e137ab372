//! A small typed client for the Vault HTTP API over the workspace's hyper + rustls stack.
//!
//! Every call names itself (`GET secret/data/app`) in its errors, which carry Vault's own
//! error strings (they name paths and reasons, never values) and never a token.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::provider::ProviderError;

/// How long a TCP connect may take before the call fails (the whole call is bounded by
/// `--provider-timeout` as well).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest Vault error string repeated in a message.
const MAX_ERROR: usize = 300;

/// The answer to one call: its status and its JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: serde_json::Value,
}

impl Reply {
    /// Vault's `errors` array, joined.
    pub fn errors(&self) -> String {
        let joined = self
            .body
            .get("errors")
            .and_then(|e| e.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        crate::api::abbreviate(&joined, MAX_ERROR)
    }
}

/// A connection pool to one Vault server, with the store's TLS settings and headers.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Arc<str>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    retry: Retry,
    /// With `readYourWrites`: the last `X-Vault-Index` (replication state) Vault sent, sent
    /// back on every call, as Vault's Go client does (`ReadYourWrites`).
    index: Option<Arc<std::sync::Mutex<Option<HeaderValue>>>>,
}

/// The store's `retrySettings`, as Vault's Go client applies them (`MaxRetries`,
/// `MinRetryWait` = `MaxRetryWait` = `retryInterval`): a call that fails to connect or gets
/// a 5xx (but 501) or a 412 (a standby behind the index it was given) is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries after the first.
    pub max: u32,
    /// Wait between tries.
    pub wait: Duration,
}

impl Default for Retry {
    /// No retry (esox retries by requeue); ESO's client waits 1 s when it does.
    fn default() -> Self {
        Retry {
            max: 0,
            wait: Duration::from_secs(1),
        }
    }
}

/// The TLS material of a store.
#[derive(Default)]
pub struct TlsMaterial {
    /// PEM CA bundle; `None` means the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM), for cert auth or mTLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Http {
    /// A client for `server` (`http://` or `https://`).
    pub fn new(
        server: &str,
        tls: &TlsMaterial,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, String> {
        let server = server.trim_end_matches('/');
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(format!(
                "invalid Vault server address {:?}: expected http:// or https://",
                crate::api::abbreviate(server, 200)
            ));
        }
        let config = tls_config(tls)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Http {
            client,
            base: Arc::from(server),
            headers: Arc::new(headers),
            retry: Retry::default(),
            index: None,
        })
    }

    /// Retries as `retry` says.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Replays the replication state Vault last sent (`X-Vault-Index`) on every call.
    pub fn with_read_your_writes(mut self) -> Self {
        self.index = Some(Arc::default());
        self
    }

    /// One call: `method` on `/v1/<path>` (plus `query`), with `token` and `namespace` if
    /// given, tried again per [`Retry`]. A transport failure is
    /// [`ProviderError::Unavailable`]; any HTTP status is a [`Reply`] for the caller to judge.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
        namespace: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ProviderError> {
        let mut tries = 0;
        loop {
            let reply = self
                .call_once(method, path, query, token, namespace, body)
                .await;
            let again = match &reply {
                Err(ProviderError::Unavailable(_)) => true,
                Ok(r) => r.status == 412 || (r.status >= 500 && r.status != 501),
                Err(_) => false,
            };
            if !again || tries >= self.retry.max {
                return reply;
            }
            tries += 1;
            tracing::debug!(call = %describe(method, path), tries, "vault call failed; trying again");
            tokio::time::sleep(self.retry.wait).await;
        }
    }

    /// One try of [`Http::call`].
    async fn call_once(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
        namespace: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ProviderError> {
        let what = || describe(method, path);
        let mut uri = format!("{}/v1/{}", self.base, encode_path(path));
        for (i, (k, v)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(&encode_component(k));
            uri.push('=');
            uri.push_str(&encode_component(v));
        }
        let http_method = hyper::Method::from_bytes(method.as_bytes())
            .map_err(|e| ProviderError::InvalidConfig(format!("{}: {e}", what())))?;
        let token = match token {
            Some(t) => {
                let mut value = HeaderValue::from_str(t).map_err(|_| {
                    ProviderError::InvalidConfig(format!(
                        "{}: the Vault token is not a valid header value",
                        what()
                    ))
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let payload = body.map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()));
        // A standby answers 307 with the active node's address, as Vault's own client follows.
        let mut redirects = 0;
        let resp = loop {
            let mut req = hyper::Request::builder()
                .method(http_method.clone())
                .uri(&uri);
            for (k, v) in self.headers.iter() {
                req = req.header(k, v);
            }
            if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
                req = req.header("X-Vault-Namespace", ns);
            }
            if let Some(t) = &token {
                req = req.header("X-Vault-Token", t.clone());
            }
            if let Some(index) = self.index.as_ref().and_then(|i| {
                i.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            }) {
                req = req.header("X-Vault-Index", index);
            }
            if payload.is_some() {
                req = req.header("Content-Type", "application/json");
            }
            let req = req
                .body(Full::new(payload.clone().unwrap_or_default()))
                .map_err(|e| ProviderError::InvalidConfig(format!("{}: {e}", what())))?;
            let resp =
                self.client.request(req).await.map_err(|e| {
                    ProviderError::Unavailable(format!("{}: {}", what(), chain(&e)))
                })?;
            let location = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            match (resp.status().as_u16(), location) {
                (307 | 308, Some(to)) if redirects < 3 => {
                    redirects += 1;
                    uri = if to.starts_with('/') {
                        let origin_end = self.base.find("://").map_or(0, |i| i + 3);
                        let host_end = self.base[origin_end..]
                            .find('/')
                            .map_or(self.base.len(), |i| origin_end + i);
                        format!("{}{to}", &self.base[..host_end])
                    } else {
                        to
                    };
                }
                _ => break resp,
            }
        };
        if let (Some(index), Some(sent)) = (&self.index, resp.headers().get("x-vault-index")) {
            *index
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sent.clone());
        }
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("{}: {}", what(), chain(&e))))?
            .to_bytes();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                ProviderError::Unavailable(format!(
                    "{}: HTTP {status}: the answer is not JSON (is this a Vault server?)",
                    what()
                ))
            })?
        };
        Ok(Reply { status, body })
    }
}

/// `GET secret/data/app`: how a call is named in messages.
pub fn describe(method: &str, path: &str) -> String {
    format!("{method} {path}")
}

/// An error and its causes, joined (hyper's top-level message alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn tls_config(tls: &TlsMaterial) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &tls.ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem).flatten() {
                roots
                    .add(cert)
                    .map_err(|_| "cannot set Vault CA certificate: failed to parse certificates from CertPool".to_string())?;
            }
            if roots.is_empty() {
                return Err(
                    "cannot set Vault CA certificate: failed to parse certificates from CertPool"
                        .into(),
                );
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use hyper_rustls::ConfigBuilderExt;
            builder
                .with_native_roots()
                .map_err(|e| format!("cannot load the system's CA certificates: {e}"))?
        }
    };
    match &tls.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|_| "the client certificate is not PEM".to_string())?;
            if chain.is_empty() {
                return Err("the client certificate holds no PEM certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|_| "the client private key is not a PEM private key".to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and key do not make a pair: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_are_percent_encoded_per_segment() {
        assert_eq!(encode_path("secret/data/a b/c"), "secret/data/a%20b/c");
        assert_eq!(encode_component("1&x=2"), "1%26x%3D2");
    }

    #[test]
    fn a_server_address_needs_a_scheme() {
        let err = Http::new("vault:8200", &TlsMaterial::default(), vec![])
            .err()
            .unwrap();
        assert!(err.contains("expected http:// or https://"), "{err}");
    }

    #[test]
    fn a_ca_bundle_that_holds_no_certificate_is_refused_in_esos_words() {
        let tls = TlsMaterial {
            ca_pem: Some(b"not a certificate".to_vec()),
            client: None,
        };
        let err = Http::new("https://vault:8200", &tls, vec![]).err().unwrap();
        assert_eq!(
            err,
            "cannot set Vault CA certificate: failed to parse certificates from CertPool"
        );
    }

    #[tokio::test]
    async fn a_standby_redirect_is_followed_with_the_token() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                    let reply = if req.starts_with("get /v1/secret/data/x") {
                        "HTTP/1.1 307 Temporary Redirect\r\nLocation: /v1/active/data/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                    } else if req.starts_with("get /v1/active/data/x")
                        && req.contains("x-vault-token: t")
                    {
                        let body = r#"{"data":{"data":{"k":"v"}}}"#;
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    };
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        let http = Http::new(&format!("http://{addr}"), &TlsMaterial::default(), vec![]).unwrap();
        let reply = http
            .call("GET", "secret/data/x", &[], Some("t"), None, None)
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["data"]["data"]["k"], "v");
    }
}
