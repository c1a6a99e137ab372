//! A fault-injecting HTTP proxy on loopback, in front of a real server (moto).
//!
//! Each request is routed by its `Authorization` header, so one AWS store (one access key id)
//! can be made slow or dead while another, talking to the same moto, is healthy: a request
//! signed with an access key id starting with a configured prefix is held for a delay before
//! it is forwarded, or never answered at all. Everything else is passed through at once.
//! Every request is forwarded with `Connection: close`, so each one comes on a connection of
//! its own and faults set with [`FaultProxy::set`] apply from the next request on. The proxy
//! stops when its tokio runtime (the test) ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What happens to requests signed by a given access key id prefix.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forwarded after this delay.
    Delay(Duration),
    /// Accepted and read, never answered (the connection stays open).
    BlackHole,
}

/// A running proxy.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    held: Arc<AtomicUsize>,
    faults: Faults,
}

type Faults = Arc<Mutex<Vec<(String, Fault)>>>;

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) applying `faults` by access key id
    /// prefix.
    pub async fn start(upstream: &str, faults: Vec<(String, Fault)>) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(AtomicUsize::new(0));
        let faults: Faults = Arc::new(Mutex::new(faults));
        let counter = held.clone();
        let shared = faults.clone();
        tokio::spawn(async move {
            let faults = shared;
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, faults, counter) =
                    (upstream.clone(), faults.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &faults, &counter).await;
                });
            }
        });
        FaultProxy { url, held, faults }
    }

    /// Replaces the faults (from the next request on).
    pub fn set(&self, faults: Vec<(String, Fault)>) {
        *self.faults.lock().unwrap() = faults;
    }

    /// Requests that met a fault so far (delayed or black-holed).
    pub fn faulted(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    faults: &Mutex<Vec<(String, Fault)>>,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    // The first request's head decides the connection's fate.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let key_id = text
        .split("Credential=")
        .nth(1)
        .map(|rest| rest.split('/').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let fault = faults
        .lock()
        .unwrap()
        .iter()
        .find(|(prefix, _)| key_id.starts_with(prefix.as_str()))
        .map(|(_, f)| f.clone());
    if let Some(fault) = fault {
        counter.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::BlackHole => {
                // Read and drop whatever comes until the client gives up.
                while client.read(&mut buf).await? > 0 {}
                return Ok(());
            }
        }
    }
    // One request per connection, so the client's next request is routed anew.
    if let Some(end) = head.windows(2).position(|w| w == b"\r\n") {
        head.splice(end + 2..end + 2, b"Connection: close\r\n".iter().copied());
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
