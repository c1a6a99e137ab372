//! A minimal HTTP endpoint for `/metrics`, `/healthz` and `/readyz`.
//!
//! Three fixed GET routes do not justify a web framework in the controller image; this reads
//! one request line per connection and answers with `Connection: close`.
//!
//! The probes answer from [`Health`], which costs a lock or two per request:
//!
//! - `/readyz`: the controllers started (or this replica is a standby) and every watch cache
//!   is live: its first list is in and it has not failed lately (see
//!   [`crate::controller::watch::WatchStatus`]). While the apiserver is unreachable it says
//!   503 and which watch fails with what.
//! - `/healthz` (and `/livez`): the reconcile loop makes progress. It fails when reconciles
//!   wait for a turn and none has completed for `--wedged-after` (every turn held by a
//!   reconcile that does not return, e.g. a provider that never answers): the kubelet then
//!   restarts the process. Running reconciles with nothing waiting behind them are not
//!   counted as wedged (nothing is held up yet); the next due refresh queues and makes it so.
//!   A reconcile waiting on its store's bulkhead has given its turn back and is not counted
//!   either: a dead provider is bounded by `--provider-timeout` and holds up only its own
//!   store, which a restart would not fix. Nor is anything wedged while a watch fails (the
//!   apiserver is down).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::controller::watch::WatchStatus;

/// `--wedged-after`'s default: far above one reconcile's worst case (provider calls, plugin
/// calls and API writes each have their own timeouts), well below "nobody noticed for a day".
pub const DEFAULT_WEDGED_AFTER: Duration = Duration::from_secs(180);

/// How many reconciles run and how many wait for a turn.
type WorkProbe = Box<dyn Fn() -> (usize, usize) + Send + Sync>;

/// What the probes report: cache liveness and reconcile progress.
pub struct Health {
    /// Set once the ExternalSecret cache has synced, or by a standby (it is ready to take
    /// over).
    ready: Arc<AtomicBool>,
    watches: Mutex<Vec<Arc<WatchStatus>>>,
    work: OnceLock<WorkProbe>,
    completed: AtomicU64,
    wedged_after: Duration,
    /// The completions count last seen, and since when nothing completed while work waited.
    stall: Mutex<(u64, Instant)>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.ready)
            .field("completed", &self.completed)
            .field("wedged_after", &self.wedged_after)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Health with the given ready flag; `/healthz` fails after `wedged_after` without
    /// progress while work waits.
    pub fn new(ready: Arc<AtomicBool>, wedged_after: Duration) -> Self {
        Health {
            ready,
            watches: Mutex::new(Vec::new()),
            work: OnceLock::new(),
            completed: AtomicU64::new(0),
            wedged_after,
            stall: Mutex::new((0, Instant::now())),
        }
    }

    /// The ready flag (the controllers set it once their caches synced; a standby sets it).
    pub fn ready_flag(&self) -> &Arc<AtomicBool> {
        &self.ready
    }

    /// Registers a watch whose liveness `/readyz` reports.
    pub fn watch(&self, name: &'static str) -> Arc<WatchStatus> {
        let status = WatchStatus::new(name);
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        // A controller run again in this process (tests) replaces its watches.
        watches.retain(|w| w.name() != name);
        watches.push(status.clone());
        status
    }

    /// Sets how to count running and waiting reconciles (once; later calls are ignored).
    pub fn set_work(&self, probe: impl Fn() -> (usize, usize) + Send + Sync + 'static) {
        let _ = self.work.set(Box::new(probe));
    }

    /// Reconciles running and waiting for a turn.
    pub fn work(&self) -> (usize, usize) {
        self.work.get().map_or((0, 0), |probe| probe())
    }

    /// Counts a completed reconcile (success or failure: either is progress).
    pub fn progress(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// `Ok` when ready; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("caches not synced".into());
        }
        let problems: Vec<String> = self
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|w| w.problem())
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("watch caches not live: {}", problems.join("; ")))
        }
    }

    /// `Ok` unless the reconcile loop is wedged; otherwise why. Never while a watch fails:
    /// the apiserver is unreachable, and a restart cannot help (it would only add the
    /// kubelet's restart backoff to the recovery).
    pub fn liveness(&self) -> Result<(), String> {
        let completed = self.completed.load(Ordering::Relaxed);
        let (running, waiting) = self.work();
        let apiserver_down = self
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|w| w.problem().is_some());
        let mut stall = self.stall.lock().unwrap_or_else(|e| e.into_inner());
        if completed != stall.0 || waiting == 0 || apiserver_down {
            *stall = (completed, Instant::now());
            return Ok(());
        }
        let stalled = stall.1.elapsed();
        if stalled < self.wedged_after {
            return Ok(());
        }
        Err(format!(
            "wedged: no reconcile completed for {}s while {waiting} wait for a turn ({running} running)",
            stalled.as_secs()
        ))
    }
}

/// Serves until the process exits.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, health: Arc<Health>) {
    info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving metrics and probes");
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        let health = health.clone();
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
            let probe = |result: Result<(), String>| match result {
                Ok(()) => ("200 OK", "ok\n".to_string(), "text/plain"),
                Err(why) => ("503 Service Unavailable", format!("{why}\n"), "text/plain"),
            };
            let (status, body, ctype) = match path {
                "/metrics" => (
                    "200 OK",
                    crate::metrics::render(&registry),
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                "/healthz" | "/livez" => {
                    let result = health.liveness();
                    if let Err(why) = &result {
                        warn!(%why, "liveness probe failing");
                    }
                    probe(result)
                }
                "/readyz" => probe(
                    health
                        .readiness()
                        .map_err(|why| format!("not ready: {why}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn wedged_only_when_work_waits_without_progress() {
        let health = Health::new(Arc::new(AtomicBool::new(true)), Duration::from_secs(60));
        let waiting = Arc::new(AtomicUsize::new(0));
        let w = waiting.clone();
        health.set_work(move || (4, w.load(Ordering::Relaxed)));
        assert!(health.liveness().is_ok());
        // Idle for a long time, then work queues: not wedged at once.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(health.liveness().is_ok());
        waiting.store(10, Ordering::Relaxed);
        assert!(health.liveness().is_ok());
        tokio::time::sleep(Duration::from_secs(30)).await;
        health.progress();
        assert!(health.liveness().is_ok(), "progress while work waits");
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(health.liveness().is_ok());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let why = health.liveness().unwrap_err();
        assert!(
            why.contains("10 wait") && why.contains("4 running"),
            "{why}"
        );
        // One completion heals it.
        health.progress();
        assert!(health.liveness().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn ready_needs_the_flag_and_live_watches() {
        let ready = Arc::new(AtomicBool::new(false));
        let health = Health::new(ready.clone(), DEFAULT_WEDGED_AFTER);
        assert!(health.readiness().is_err());
        ready.store(true, Ordering::Relaxed);
        assert!(health.readiness().is_ok(), "a standby: no watches");
        let _w = health.watch("ExternalSecrets");
        let why = health.readiness().unwrap_err();
        assert!(why.contains("ExternalSecrets: first list"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn not_wedged_while_the_apiserver_is_down() {
        let health = Health::new(Arc::new(AtomicBool::new(true)), Duration::from_secs(60));
        health.set_work(|| (4, 10));
        let _w = health.watch("ExternalSecrets");
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(health.liveness().is_ok(), "a watch not live: no verdict");
    }
}
