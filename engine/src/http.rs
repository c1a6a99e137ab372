//! A minimal HTTP endpoint for `/metrics`, `/healthz` and `/readyz`.
//!
//! Three fixed GET routes do not justify a web framework in the controller image; this reads
//! one request line per connection and answers with `Connection: close`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, info};

/// Serves until the process exits.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, ready: Arc<AtomicBool>) {
    info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving metrics and probes");
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let line = String::from_utf8_lossy(&buf[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, ctype) = match path {
                "/metrics" => (
                    "200 OK",
                    crate::metrics::render(&registry),
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                "/healthz" | "/livez" => ("200 OK", "ok\n".to_string(), "text/plain"),
                "/readyz" if ready.load(Ordering::Relaxed) => {
                    ("200 OK", "ok\n".to_string(), "text/plain")
                }
                "/readyz" => (
                    "503 Service Unavailable",
                    "not ready: caches not synced\n".to_string(),
                    "text/plain",
                ),
                _ => ("404 Not Found", "not found\n".to_string(), "text/plain"),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = stream.write_all(resp.as_bytes()).await {
                debug!(error = %e, "probe client went away");
            }
        });
    }
}
