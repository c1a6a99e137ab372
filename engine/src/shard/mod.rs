//! Sharding (`--shard-mode`): ExternalSecrets and PushSecrets spread over the replicas, each
//! reconciled by the one replica that owns it, coordinated through one `coordination.k8s.io`
//! Lease per replica. The protocol and its "at most one writer" argument are in
//! `docs/sharding.md`.
//!
//! - [`ring`]: who owns a key, and whether a replica may reconcile it now (pure).
//! - [`membership`]: the Lease IO: this replica's Lease, the members' Leases, expiry.
//! - [`Shard`] (here): the state reconciles consult. A reconcile takes a [`Claim`] before it
//!   writes anything and holds it to its end; the membership loop publishes a membership that
//!   takes keys away from this replica only once no claim on those keys is held.

pub mod membership;
pub mod ring;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

pub use ring::{Refusal, Snapshot};

/// The shard state of one replica.
pub struct Shard {
    state: Mutex<State>,
    /// Every new snapshot, for the controllers' "gained" triggers.
    changes: tokio::sync::watch::Sender<Arc<Snapshot>>,
    /// Signalled when a claim ends (the membership loop waits on it to publish).
    released: tokio::sync::Notify,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Counts the objects of one kind this replica owns over a snapshot (one per controller).
    counters: Mutex<Vec<(&'static str, OwnedCounter)>>,
}

type OwnedCounter = Box<dyn Fn(&Snapshot) -> usize + Send + Sync>;

#[derive(Default)]
struct State {
    snapshot: Arc<Snapshot>,
    /// Keys reconciling now, with how many reconciles (one ExternalSecret and one PushSecret
    /// may share a key).
    claimed: HashMap<String, usize>,
    /// Keys refused because the snapshot was not ready, by kind: asked again at the next one.
    deferred: HashSet<(&'static str, String)>,
}

/// A reconcile's hold on its key: while it lives, this replica does not publish a membership
/// that gives the key to another member.
#[must_use = "the claim ends when dropped"]
pub struct Claim {
    shard: Option<Arc<Shard>>,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(shard) = self.shard.take() else {
            return;
        };
        let mut st = shard.lock();
        if let Some(n) = st.claimed.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                st.claimed.remove(&self.key);
            }
        }
        drop(st);
        shard.released.notify_waiters();
    }
}

impl Claim {
    /// The claim of an unsharded controller (it owns everything).
    pub fn unsharded() -> Self {
        Claim {
            shard: None,
            key: String::new(),
        }
    }
}

impl Shard {
    /// A replica's shard state: owns nothing until the membership loop publishes.
    pub fn new(me: &str, metrics: Option<Arc<crate::metrics::Metrics>>) -> Arc<Shard> {
        let snapshot = Arc::new(Snapshot {
            me: me.into(),
            ..Default::default()
        });
        Arc::new(Shard {
            state: Mutex::new(State {
                snapshot: snapshot.clone(),
                ..Default::default()
            }),
            changes: tokio::sync::watch::channel(snapshot).0,
            released: tokio::sync::Notify::new(),
            metrics,
            counters: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// Claims `namespace/name` for a reconcile of a `kind`, or says why not.
    pub fn claim(
        self: &Arc<Self>,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<Claim, Refusal> {
        let key = ring::key(namespace, name);
        let mut st = self.lock();
        match st.snapshot.may_reconcile(&key) {
            Ok(()) => {
                *st.claimed.entry(key.clone()).or_default() += 1;
                Ok(Claim {
                    shard: Some(self.clone()),
                    key,
                })
            }
            Err(Refusal::NotReady) => {
                st.deferred.insert((kind, key));
                Err(Refusal::NotReady)
            }
            Err(r) => Err(r),
        }
    }

    /// Installs a new snapshot (the membership loop's). Returns it.
    fn publish_snapshot(&self, next: Snapshot) -> Arc<Snapshot> {
        let next = Arc::new(next);
        {
            let mut st = self.lock();
            if *st.snapshot == *next {
                return st.snapshot.clone();
            }
            st.snapshot = next.clone();
        }
        self.changes.send_replace(next.clone());
        next
    }

    /// Fences the keys `view` takes from this replica (no new reconcile of them starts) and
    /// says whether none is claimed any more, so that a membership giving them away may be
    /// published. Atomic with [`Shard::claim`].
    fn fence(&self, view: &[String]) -> bool {
        let mut st = self.lock();
        if st.snapshot.view != view {
            let mut next = (*st.snapshot).clone();
            next.view = view.to_vec();
            let next = Arc::new(next);
            st.snapshot = next.clone();
            self.changes.send_replace(next);
        }
        let me = st.snapshot.me.clone();
        st.claimed
            .keys()
            .all(|k| ring::owner(k, view) == Some(me.as_str()))
    }

    /// Marks the snapshot not ready (a publication is on its way): nothing new starts until
    /// the cache shows it. Returns false (and changes nothing) when a claim `view` takes away
    /// was taken meanwhile.
    fn begin_publication(&self, view: &[String]) -> bool {
        let mut st = self.lock();
        let me = st.snapshot.me.clone();
        if !st
            .claimed
            .keys()
            .all(|k| ring::owner(k, view) == Some(me.as_str()))
        {
            return false;
        }
        if st.snapshot.ready {
            let mut next = (*st.snapshot).clone();
            next.ready = false;
            let next = Arc::new(next);
            st.snapshot = next.clone();
            self.changes.send_replace(next);
        }
        true
    }

    /// Keys claimed now (for the loop's log line).
    fn claimed(&self) -> usize {
        self.lock().claimed.len()
    }

    /// Waits until a claim ends.
    async fn released(&self) {
        self.released.notified().await
    }

    /// The objects of `reader` this replica may reconcile now and could not at the previous
    /// snapshot (or was asked for while it was not ready): the controller's trigger for what
    /// a hand-over gives it. Counts hand-overs and the owned objects of `kind` in the metrics.
    pub fn gained<K>(
        self: &Arc<Self>,
        kind: &'static str,
        reader: Store<K>,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.gained_with(kind, reader, |_: &K| {})
    }

    /// [`Shard::gained`], and `lost` is called for each object this replica stops owning.
    pub fn gained_with<K, F>(
        self: &Arc<Self>,
        kind: &'static str,
        reader: Store<K>,
        lost: F,
    ) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
        F: Fn(&K) + Send + Sync + 'static,
    {
        let counted = reader.clone();
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                kind,
                Box::new(move |s: &Snapshot| {
                    counted
                        .state()
                        .iter()
                        .filter(|o| {
                            s.owns(&ring::key(
                                &o.namespace().unwrap_or_default(),
                                &o.name_any(),
                            ))
                        })
                        .count()
                }),
            ));
        let shard = self.clone();
        let rx = self.changes.subscribe();
        // The last ready snapshot: a publication's not-ready moment is no hand-over.
        let last = Arc::new(Snapshot::default());
        futures::stream::unfold(
            (rx, last, shard, lost, reader),
            move |(mut rx, last, shard, lost, reader)| async move {
                loop {
                    rx.changed().await.ok()?;
                    let next = rx.borrow_and_update().clone();
                    if !next.ready {
                        continue;
                    }
                    let deferred: HashSet<String> = {
                        let mut st = shard.lock();
                        let mine: Vec<_> = st
                            .deferred
                            .iter()
                            .filter(|(k, _)| *k == kind)
                            .cloned()
                            .collect();
                        for d in &mine {
                            st.deferred.remove(d);
                        }
                        mine.into_iter().map(|(_, k)| k).collect()
                    };
                    let mut refs = Vec::new();
                    let (mut gained, mut lost_n, mut owned) = (0u64, 0u64, 0u64);
                    for obj in reader.state() {
                        let key = ring::key(&obj.namespace().unwrap_or_default(), &obj.name_any());
                        let (was, is) = (last.owns(&key), next.owns(&key));
                        owned += u64::from(is);
                        gained += u64::from(!was && is && last.ready);
                        if was && !is {
                            lost_n += 1;
                            lost(&obj);
                        }
                        let may = next.may_reconcile(&key).is_ok();
                        if may && (last.may_reconcile(&key).is_err() || deferred.contains(&key)) {
                            refs.push(ObjectRef::from_obj(obj.as_ref()));
                        }
                    }
                    if let Some(m) = &shard.metrics {
                        for (direction, n) in [("gained", gained), ("lost", lost_n)] {
                            m.shard_handovers
                                .get_or_create(&crate::metrics::HandoverLabels {
                                    kind: kind.into(),
                                    direction: direction.into(),
                                })
                                .inc_by(n);
                        }
                    }
                    if gained + lost_n > 0 {
                        tracing::info!(kind, gained, lost = lost_n, owned, "shard hand-over");
                    }
                    return Some((futures::stream::iter(refs), (rx, next, shard, lost, reader)));
                }
            },
        )
        .flatten()
    }

    /// How many objects of each followed kind this replica owns over its published
    /// membership.
    pub fn count_owned_all(&self) -> Vec<(&'static str, usize)> {
        let s = self.snapshot();
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .map(|(kind, count)| (*kind, count(&s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(me: &str, members: &[&str]) -> Snapshot {
        let m: Vec<String> = members.iter().map(|s| s.to_string()).collect();
        Snapshot {
            me: me.into(),
            ready: true,
            acked: m.clone(),
            view: m,
            claims: vec![],
        }
    }

    #[test]
    fn a_claim_blocks_the_publication_that_gives_its_key_away() {
        let shard = Shard::new("a", None);
        shard.publish_snapshot(ready("a", &["a"]));
        let claim = shard
            .claim("ExternalSecret", "ns", "x")
            .expect("a owns all");
        let ab: Vec<String> = vec!["a".into(), "b".into()];
        let moves = ring::owner("ns/x", &ab) == Some("b");
        // Whether ns/x moves to b decides whether a must wait for the claim.
        assert_eq!(shard.fence(&ab), !moves);
        if moves {
            assert!(!shard.begin_publication(&ab));
            // Fenced: no new claim on it.
            assert_eq!(
                shard.claim("ExternalSecret", "ns", "x").err(),
                Some(Refusal::NotOwned)
            );
            drop(claim);
            assert!(shard.fence(&ab));
        } else {
            drop(claim);
        }
        assert!(shard.begin_publication(&ab));
        assert_eq!(
            shard.claim("ExternalSecret", "ns", "y").err(),
            Some(Refusal::NotReady)
        );
        assert!(
            shard
                .lock()
                .deferred
                .contains(&("ExternalSecret", "ns/y".into()))
        );
    }

    #[test]
    fn unsharded_claims_cost_nothing() {
        drop(Claim::unsharded());
    }
}
