//! Watches that come back within seconds of the apiserver.
//!
//! kube-runtime's `watcher` recovers by itself, but the way it was wired lost minutes and
//! events after an apiserver restart (measured: 85 s to sync a new ExternalSecret after a
//! 34 s outage, and a Secret deleted after recovery never restored):
//!
//! - `default_backoff()` doubles from 0.8 s to 30 s and only resets on a successful event,
//!   and the `Controller` wraps all its trigger streams in a second such backoff that pauses
//!   *every* trigger (the healthy ones too) after any error. After an outage of half a minute
//!   both sleep up to 30 s, in turn, after the apiserver is back.
//! - The first watch after a restart asks for a resource version older than the new
//!   apiserver's watch cache: `410 Expired`. That is an error like any other to the backoff,
//!   so the relist it calls for waited one more full backoff.
//! - The relist replaces the reflector's store wholesale and says nothing about objects that
//!   vanished meanwhile: a managed Secret deleted while the watch was down (or backing off)
//!   never produced an event, so its ExternalSecret was never reconciled and the Secret never
//!   came back (client-go's informers emit `DeletedFinalStateUnknown` for this; kube-runtime
//!   does not).
//!
//! [`watch`] fixes these at the source: one short backoff per watch (250 ms doubling to 4 s,
//! jittered, reset by any event, and started over when an unreachable apiserver answers
//! again, if only with a 503 while it starts), `410 Expired` relisting at once, a relist emitting a
//! `Delete` for every cached object it no longer lists, and errors logged here and not passed
//! on (so the `Controller`'s own backoff never pauses its triggers). Each watch reports into a
//! [`WatchStatus`] that `/readyz` reads.
//!
//! Measured with `tests/tests/faults.rs` (apiserver killed for 37 s and for 152 s): the
//! deleted Secret is back 0.05-0.1 s and a new ExternalSecret synced 0.9-3.8 s after the
//! apiserver's `/readyz` answers again. The rest of those 3.8 s is the restarted apiserver:
//! for a few seconds it answers requests for custom resources with `503` and `Retry-After`,
//! which kube-client's own retry layer waits out before the watch sees anything.

use std::collections::{HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The first retry's delay after a watch error.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest delay between retries: the apiserver is asked again at least this often while
/// it is down, so a watch is back at most this long (plus a request) after it answers.
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// A watch whose last error is older than this (with no event since) is taken as live again:
/// while the apiserver is down, errors come at least every [`MAX_BACKOFF`] plus a request.
pub const QUIET: Duration = Duration::from_secs(10);

/// One watch's health, for readiness.
#[derive(Debug)]
pub struct WatchStatus {
    name: &'static str,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Its first list is in.
    synced: bool,
    /// Failing since, last error at, and the last error (no event since).
    failing: Option<(Instant, Instant, String)>,
}

impl WatchStatus {
    /// A watch not synced yet.
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(WatchStatus {
            name,
            state: Mutex::new(State::default()),
        })
    }

    /// What it watches.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `None` when live: its first list is in, and it has not failed lately (an event came
    /// after its last error, or [`QUIET`] passed without one). Otherwise why not.
    pub fn problem(&self) -> Option<String> {
        let state = self.lock();
        if !state.synced {
            return Some(format!("{}: first list not in yet", self.name));
        }
        match &state.failing {
            Some((since, last, error)) if last.elapsed() < QUIET => Some(format!(
                "{}: failing for {}s: {error}",
                self.name,
                since.elapsed().as_secs()
            )),
            _ => None,
        }
    }

    /// Records an event; returns how long the watch had been failing, if it was.
    fn event<K>(&self, event: &Event<K>) -> Option<Duration> {
        let mut state = self.lock();
        if matches!(event, Event::InitDone) {
            state.synced = true;
        }
        state.failing.take().map(|(since, ..)| since.elapsed())
    }

    /// Records an error; returns true when it starts a failure (the first since an event).
    fn error(&self, error: &watcher::Error) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        let first = state.failing.is_none();
        let since = state.failing.as_ref().map_or(now, |(since, ..)| *since);
        state.failing = Some((since, now, error.to_string()));
        first
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Exponential backoff with jitter, reset by any event: [`MIN_BACKOFF`] doubling to
/// [`MAX_BACKOFF`]. Also a kube-runtime backoff for watches that need no reflector
/// (`watcher(…).backoff(Backoff::new())`), so they too come back within seconds.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// A backoff at its first step.
    pub fn new() -> Self {
        Backoff { next: MIN_BACKOFF }
    }

    fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }

    /// The next delay: the current step with up to a quarter off (so that watches failing
    /// together do not retry in lockstep), then the step doubles up to [`MAX_BACKOFF`].
    fn step(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(MAX_BACKOFF);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        step - step / 4 * (nanos % 1000) / 1000
    }
}

impl Iterator for Backoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(self.step())
    }
}

impl kube::runtime::utils::Backoff for Backoff {
    fn reset(&mut self) {
        Backoff::reset(self);
    }
}

/// The apiserver answered (with an error status), as opposed to not being reached at all.
fn answered(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => true,
        watcher::Error::WatchStartFailed(e)
        | watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchFailed(e) => matches!(e, kube::Error::Api(_)),
    }
}

/// A `410 Gone`: the resource version we asked for is older than the apiserver keeps (after
/// an apiserver restart, always). Only a new list helps, and waiting does not.
fn expired(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// The watch stream of `make()`'s watcher, as described in the module: errors are retried
/// here with a short backoff (and never passed on), `410 Expired` relists at once, and a
/// relist emits a `Delete` for each object of `store` (the reflector fed by this stream) it
/// no longer lists. `make` is called again (a fresh watcher, which lists first) when the
/// apiserver answers `410` where kube-runtime's watcher would retry the same resource
/// version for ever (a watch start).
pub fn watch<K, S, F>(
    status: Arc<WatchStatus>,
    store: Store<K>,
    mut make: F,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    F: FnMut() -> S + Send + 'static,
{
    struct Run<K, F>
    where
        K: Resource + 'static,
        K::DynamicType: Eq + Hash,
    {
        inner: futures::stream::BoxStream<'static, Result<Event<K>, watcher::Error>>,
        make: F,
        backoff: Backoff,
        status: Arc<WatchStatus>,
        store: Store<K>,
        /// The objects listed so far while a relist is under way.
        listed: Option<HashSet<ObjectRef<K>>>,
        /// Events to emit before reading on (the Deletes a relist found).
        pending: VecDeque<Event<K>>,
        /// The last error was the apiserver not being reached.
        unreachable: bool,
    }
    let inner = make().boxed();
    let run = Run {
        inner,
        make,
        backoff: Backoff::new(),
        status,
        store,
        listed: None,
        pending: VecDeque::new(),
        unreachable: false,
    };
    futures::stream::unfold(run, |mut run| async move {
        loop {
            if let Some(event) = run.pending.pop_front() {
                return Some((Ok(event), run));
            }
            let name = run.status.name();
            match run.inner.next().await? {
                Ok(event) => {
                    run.backoff.reset();
                    run.unreachable = false;
                    if let Some(down) = run.status.event(&event) {
                        info!(watch = name, after = ?down, "watch recovered");
                    }
                    match &event {
                        Event::Init => run.listed = Some(HashSet::new()),
                        Event::InitApply(obj) => {
                            if let Some(listed) = run.listed.as_mut() {
                                listed.insert(ObjectRef::from_obj(obj));
                            }
                        }
                        Event::InitDone => {
                            // Before the reflector swaps the list in: what it holds now and
                            // the list lacks was deleted while we were not watching.
                            if let Some(listed) = run.listed.take() {
                                let gone: VecDeque<_> = run
                                    .store
                                    .state()
                                    .into_iter()
                                    .filter(|obj| !listed.contains(&ObjectRef::from_obj(&**obj)))
                                    .map(|obj| Event::Delete((*obj).clone()))
                                    .collect();
                                if !gone.is_empty() {
                                    info!(
                                        watch = name,
                                        deleted = gone.len(),
                                        "relisted: objects deleted while the watch was down"
                                    );
                                }
                                run.pending = gone;
                            }
                        }
                        Event::Apply(_) | Event::Delete(_) => {}
                    }
                    return Some((Ok(event), run));
                }
                Err(error) if expired(&error) => {
                    // kube's watcher relists after a 410 in the stream; after one at a watch
                    // start it would retry the same version: start over with a new watcher.
                    if !matches!(error, watcher::Error::WatchError(_)) {
                        run.inner = (run.make)().boxed();
                    }
                    run.listed = None;
                    info!(watch = name, error = %error, "resource version expired; relisting");
                }
                Err(error) => {
                    // The apiserver answers again (still starting: a 503, a 429): it will
                    // serve soon, so the retries start over from the shortest delay.
                    let answered = answered(&error);
                    if answered && run.unreachable {
                        run.backoff.reset();
                    }
                    run.unreachable = !answered;
                    let delay = run.backoff.step();
                    if run.status.error(&error) {
                        warn!(watch = name, error = %error, retry_in = ?delay, "watch failed; retrying");
                    } else {
                        debug!(watch = name, error = %error, retry_in = ?delay, "watch still failing");
                    }
                    // A list cut short by the error is not a relist we can compare with.
                    run.listed = None;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::reflector;

    fn cm(name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c
    }

    fn gone() -> watcher::Error {
        watcher::Error::WatchError(Box::new(
            kube::core::Status::failure("too old resource version", "Expired").with_code(410),
        ))
    }

    fn unavailable() -> watcher::Error {
        watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(
            kube::core::Status::failure("connection refused", "ServiceUnavailable").with_code(503),
        )))
    }

    fn names(events: &[Event<ConfigMap>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Init => "Init".into(),
                Event::InitApply(o) => {
                    format!("InitApply({})", o.metadata.name.as_deref().unwrap())
                }
                Event::InitDone => "InitDone".into(),
                Event::Apply(o) => format!("Apply({})", o.metadata.name.as_deref().unwrap()),
                Event::Delete(o) => format!("Delete({})", o.metadata.name.as_deref().unwrap()),
            })
            .collect()
    }

    /// Drives `watch` over a scripted watcher, through a reflector, and collects its events.
    async fn run(
        script: Vec<Result<Event<ConfigMap>, watcher::Error>>,
    ) -> (Vec<Event<ConfigMap>>, Arc<WatchStatus>, Store<ConfigMap>) {
        let n = script.iter().filter(|e| e.is_ok()).count();
        let (reader, writer) = reflector::store();
        let status = WatchStatus::new("configmaps");
        let mut script = Some(script);
        let stream = watch(status.clone(), reader.clone(), move || {
            futures::stream::iter(script.take().unwrap_or_default())
                .chain(futures::stream::pending())
        })
        .reflect(writer);
        let events: Vec<_> = stream
            .take(n)
            .map(|e| e.expect("errors are not passed on"))
            .collect()
            .await;
        (events, status, reader)
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_deletes_what_it_no_longer_lists() {
        let (events, status, store) = run(vec![
            Ok(Event::Init),
            Ok(Event::InitApply(cm("a"))),
            Ok(Event::InitApply(cm("b"))),
            Ok(Event::InitDone),
            Err(unavailable()),
            Err(gone()),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("a"))),
            Ok(Event::InitApply(cm("c"))),
            Ok(Event::InitDone),
        ])
        .await;
        assert_eq!(
            names(&events)[4..],
            ["Init", "InitApply(a)", "InitApply(c)", "InitDone"]
        );
        let mut left: Vec<_> = store
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["a", "c"]);
        assert!(status.problem().is_none(), "{:?}", status.problem());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deletes_follow_the_relist() {
        let (reader, writer) = reflector::store();
        let status = WatchStatus::new("configmaps");
        let script = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(cm("a"))),
            Ok(Event::InitApply(cm("b"))),
            Ok(Event::InitDone),
            Err(gone()),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("a"))),
            Ok(Event::InitDone),
        ];
        let mut script = Some(script);
        let events: Vec<_> = watch(status.clone(), reader.clone(), move || {
            futures::stream::iter(script.take().unwrap_or_default())
                .chain(futures::stream::pending())
        })
        .reflect(writer)
        .take(8)
        .map(|e| e.unwrap())
        .collect()
        .await;
        assert_eq!(
            names(&events),
            [
                "Init",
                "InitApply(a)",
                "InitApply(b)",
                "InitDone",
                "Init",
                "InitApply(a)",
                "InitDone",
                "Delete(b)"
            ]
        );
        assert_eq!(reader.state().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_briefly_and_expiry_not_at_all() {
        let mut script: Vec<Result<Event<ConfigMap>, watcher::Error>> =
            vec![Ok(Event::Init), Ok(Event::InitDone)];
        // Twenty failures in a row (a long outage): the delay stops growing at MAX_BACKOFF.
        script.extend((0..20).map(|_| Err(unavailable())));
        script.push(Err(gone()));
        script.push(Ok(Event::Init));
        script.push(Ok(Event::InitDone));
        let (reader, writer) = reflector::store();
        let status = WatchStatus::new("configmaps");
        let mut script = Some(script);
        let mut stream = Box::pin(
            watch(status.clone(), reader, move || {
                futures::stream::iter(script.take().unwrap_or_default())
                    .chain(futures::stream::pending())
            })
            .reflect(writer),
        );
        for _ in 0..2 {
            stream.next().await.unwrap().unwrap();
        }
        let failing_from = Instant::now();
        assert!(status.problem().is_none());
        // The next event is the relist's Init: it comes after the backoffs, and the 410
        // costs nothing.
        let init = stream.next().await.unwrap().unwrap();
        assert!(matches!(init, Event::Init));
        let waited = failing_from.elapsed();
        let most = MAX_BACKOFF * 20;
        assert!(waited <= most, "{waited:?}");
        assert!(waited >= MAX_BACKOFF * 12, "{waited:?}");
        assert!(status.problem().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_watch_is_not_live_until_it_recovers() {
        let (reader, writer) = reflector::store::<ConfigMap>();
        let status = WatchStatus::new("configmaps");
        assert!(status.problem().unwrap().contains("first list"));
        let script = vec![Ok(Event::Init), Ok(Event::InitDone), Err(unavailable())];
        let mut script = Some(script);
        let mut stream = Box::pin(
            watch(status.clone(), reader, move || {
                futures::stream::iter(script.take().unwrap_or_default())
                    .chain(futures::stream::pending())
            })
            .reflect(writer),
        );
        for _ in 0..2 {
            stream.next().await.unwrap().unwrap();
        }
        assert!(status.problem().is_none());
        // Drive it into the error (it then waits on the pending script).
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
        let problem = status.problem().expect("failing");
        assert!(problem.contains("connection refused"), "{problem}");
        tokio::time::sleep(QUIET).await;
        assert!(
            status.problem().is_none(),
            "quiet for {QUIET:?}: taken as live"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_apiserver_answering_again_is_retried_at_once() {
        let refused = || {
            watcher::Error::WatchStartFailed(kube::Error::Service(
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into(),
            ))
        };
        let starting = || {
            watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(
                kube::core::Status::failure("starting", "ServiceUnavailable").with_code(503),
            )))
        };
        let mut script: Vec<Result<Event<ConfigMap>, watcher::Error>> =
            vec![Ok(Event::Init), Ok(Event::InitDone)];
        script.extend((0..10).map(|_| Err(refused())));
        script.push(Err(starting()));
        script.push(Err(gone()));
        script.push(Ok(Event::Init));
        let (reader, writer) = reflector::store();
        // When each scripted item is pulled: the gaps are the delays before each retry.
        let pulled = Arc::new(Mutex::new(Vec::new()));
        let times = pulled.clone();
        let mut script = Some(script);
        let mut stream = Box::pin(
            watch(WatchStatus::new("configmaps"), reader, move || {
                let times = times.clone();
                futures::stream::iter(script.take().unwrap_or_default())
                    .then(move |item| {
                        times.lock().unwrap().push(Instant::now());
                        futures::future::ready(item)
                    })
                    .chain(futures::stream::pending())
            })
            .reflect(writer),
        );
        for _ in 0..3 {
            stream.next().await.unwrap().unwrap();
        }
        let pulled = pulled.lock().unwrap();
        // Items: 0-1 the list, 2-11 refused, 12 the 503, 13 the 410, 14 the relist.
        let after_refused = pulled[12] - pulled[11];
        let after_503 = pulled[13] - pulled[12];
        let after_410 = pulled[14] - pulled[13];
        assert!(after_refused >= MAX_BACKOFF * 3 / 4, "{after_refused:?}");
        assert!(after_503 <= MIN_BACKOFF, "{after_503:?}");
        assert!(after_410.is_zero(), "{after_410:?}");
    }

    #[test]
    fn the_backoff_is_short_and_capped() {
        let mut b = Backoff::new();
        let delays: Vec<_> = (0..10).map(|_| b.step()).collect();
        assert!(delays[0] <= MIN_BACKOFF && delays[0] >= MIN_BACKOFF * 3 / 4);
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF));
        assert!(delays[9] >= MAX_BACKOFF * 3 / 4);
        b.reset();
        assert!(b.step() <= MIN_BACKOFF);
    }
}
