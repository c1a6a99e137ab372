//! Who reconciles next: new work ahead of periodic refreshes, first come first served within
//! each class, and no class starved.
//!
//! `--concurrent` bounds how many ExternalSecrets are reconciled at once. kube-runtime's own
//! limit takes parked objects back in hash order, so the runner is left unbounded and the
//! limit is this gate around the reconciler (see [`super::run`]). A turn goes to the oldest
//! waiting [`Priority::Urgent`] reconcile (an object never synced, a spec change or
//! force-sync, a drifted or deleted Secret, a deletion) before any [`Priority::Periodic`] one,
//! so a new ExternalSecret is served in the time one reconcile takes even while thousands of
//! refreshes are queued (ESO #4180, #5045). Periodic refreshes still get every
//! [`Turns::PERIODIC_SHARE`]th turn while both classes wait, so a stream of changes cannot
//! hold refreshes back for ever.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// How a reconcile queues for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A reconcile that already began, gave its turn back while a store answered, and now
    /// finishes: ahead of everything, or a cold sync of N objects would start all N (each
    /// holding what it fetched) before it finished the first.
    Resume,
    /// Something changed: a user is waiting for the result.
    Urgent,
    /// A refresh because the interval elapsed.
    Periodic,
}

/// The gate: at most `n` turns out at once.
#[derive(Debug)]
pub struct Turns {
    state: Mutex<State>,
    size: usize,
}

#[derive(Debug)]
struct State {
    free: usize,
    resume: VecDeque<oneshot::Sender<Turn>>,
    urgent: VecDeque<oneshot::Sender<Turn>>,
    periodic: VecDeque<oneshot::Sender<Turn>>,
    /// Urgent turns handed out in a row while periodic ones waited.
    urgent_streak: u32,
}

/// A turn: reconcile while holding it. Dropping it hands it to the next waiter.
#[derive(Debug)]
pub struct Turn {
    gate: Option<Arc<Turns>>,
}

impl Turns {
    /// While both classes wait, one turn in this many goes to a periodic refresh.
    pub const PERIODIC_SHARE: u32 = 8;

    /// A gate with `n` turns (at least one).
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Turns {
            state: Mutex::new(State {
                free: n.max(1),
                resume: VecDeque::new(),
                urgent: VecDeque::new(),
                periodic: VecDeque::new(),
                urgent_streak: 0,
            }),
            size: n.max(1),
        })
    }

    /// Waits for a turn. Cancel-safe: a waiter dropped before its turn comes gives up its
    /// place, and a turn handed to a waiter that is gone passes on.
    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> Turn {
        let rx = {
            let mut state = self.lock();
            if state.free > 0
                && state.resume.is_empty()
                && state.urgent.is_empty()
                && state.periodic.is_empty()
            {
                state.free -= 1;
                return Turn {
                    gate: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            match priority {
                Priority::Resume => state.resume.push_back(tx),
                Priority::Urgent => state.urgent.push_back(tx),
                Priority::Periodic => state.periodic.push_back(tx),
            }
            rx
        };
        // The sender is only dropped by `release`, after it failed to send: never while we
        // still wait, because the gate outlives its waiters.
        rx.await.expect("the gate hands every queued waiter a turn")
    }

    /// How many reconciles wait, urgent (resuming ones included) and periodic (for tests and
    /// metrics).
    pub fn waiting(&self) -> (usize, usize) {
        let state = self.lock();
        (
            state.resume.len() + state.urgent.len(),
            state.periodic.len(),
        )
    }

    /// How many turns are out: reconciles running (for liveness and the shutdown log).
    pub fn in_use(&self) -> usize {
        self.size - self.lock().free
    }

    fn release(self: &Arc<Self>) {
        let mut turn = Turn {
            gate: Some(self.clone()),
        };
        loop {
            let next = {
                let mut state = self.lock();
                let periodic_due = !state.periodic.is_empty()
                    && (state.urgent.is_empty() || state.urgent_streak >= Self::PERIODIC_SHARE);
                // Finishing what began comes first (bounded: each began once).
                let next = if !state.resume.is_empty() {
                    state.resume.pop_front()
                } else if periodic_due {
                    state.urgent_streak = 0;
                    state.periodic.pop_front()
                } else {
                    if !state.periodic.is_empty() {
                        state.urgent_streak += 1;
                    }
                    state.urgent.pop_front()
                };
                match next {
                    Some(tx) => tx,
                    None => {
                        state.free += 1;
                        turn.gate = None;
                        return;
                    }
                }
            };
            match next.send(turn) {
                Ok(()) => return,
                // That waiter gave up: try the next one.
                Err(back) => turn = back,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A reconcile's place at the gate: it takes a turn, gives it back while it waits on
/// something that is not the apiserver's or the CPU's work (a remote store, see
/// [`super::bulkhead`]), and takes one again, ahead of new periodic work, to finish.
#[derive(Debug)]
pub struct Seat {
    gate: Arc<Turns>,
    priority: Priority,
    turn: Option<Turn>,
}

impl Seat {
    /// A seat at `gate`, not yet holding a turn.
    pub fn new(gate: Arc<Turns>, priority: Priority) -> Self {
        Seat {
            gate,
            priority,
            turn: None,
        }
    }

    /// Holds a turn (waits for one unless already held).
    pub async fn take(&mut self) {
        if self.turn.is_none() {
            self.turn = Some(self.gate.acquire(self.priority).await);
        }
    }

    /// Gives the turn back until [`Seat::take`]; a reconcile that already started is finished
    /// first ([`Priority::Resume`]), so what it fetched does not wait behind work not yet
    /// begun.
    pub fn give_back(&mut self) {
        self.turn = None;
        self.priority = Priority::Resume;
    }

    /// Whether a turn is held.
    pub fn holds(&self) -> bool {
        self.turn.is_some()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Queues one waiter per entry of `order` behind a full gate of one, then lets them run
    /// and returns the order in which they got their turn.
    async fn served(order: &[(&'static str, Priority)]) -> Vec<&'static str> {
        let gate = Turns::new(1);
        let first = gate.acquire(Priority::Urgent).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, p) in order.iter().copied() {
            let (gate, log) = (gate.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = gate.acquire(p).await;
                log.lock().unwrap().push(name);
            }));
            settle().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn urgent_work_goes_first_and_each_class_is_fifo() {
        use Priority::*;
        let order = served(&[
            ("p1", Periodic),
            ("p2", Periodic),
            ("u1", Urgent),
            ("p3", Periodic),
            ("u2", Urgent),
        ])
        .await;
        assert_eq!(order, ["u1", "u2", "p1", "p2", "p3"]);
    }

    #[tokio::test]
    async fn a_reconcile_that_began_finishes_before_new_work_begins() {
        use Priority::*;
        let order = served(&[
            ("u1", Urgent),
            ("p1", Periodic),
            ("r1", Resume),
            ("u2", Urgent),
            ("r2", Resume),
        ])
        .await;
        assert_eq!(order, ["r1", "r2", "u1", "u2", "p1"]);
    }

    #[tokio::test]
    async fn periodic_refreshes_are_not_starved() {
        use Priority::*;
        let mut queue = vec![("p", Periodic)];
        queue.extend(std::iter::repeat_n(("u", Urgent), 20));
        let order = served(&queue).await;
        let at = order.iter().position(|n| *n == "p").unwrap();
        assert_eq!(at, Turns::PERIODIC_SHARE as usize, "{order:?}");
    }

    #[tokio::test]
    async fn at_most_n_at_once_and_a_cancelled_waiter_passes_its_turn_on() {
        let gate = Turns::new(2);
        let a = gate.acquire(Priority::Periodic).await;
        let _b = gate.acquire(Priority::Periodic).await;
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.acquire(Priority::Urgent).await })
        };
        let next = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.acquire(Priority::Urgent).await })
        };
        settle().await;
        assert_eq!(gate.waiting(), (2, 0));
        waiting.abort();
        let _ = waiting.await;
        drop(a);
        let turn = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the turn reached the live waiter")
            .unwrap();
        assert_eq!(gate.waiting(), (0, 0));
        drop(turn);
        // Both turns back: two acquire at once without waiting.
        let _c = gate.acquire(Priority::Periodic).await;
        drop(_b);
        let _d = gate.acquire(Priority::Periodic).await;
    }

    #[tokio::test]
    async fn a_seat_gives_its_turn_back_while_it_waits_elsewhere() {
        let gate = Turns::new(1);
        let mut seat = Seat::new(gate.clone(), Priority::Periodic);
        seat.take().await;
        assert!(seat.holds());
        seat.give_back();
        // The turn is free for someone else meanwhile.
        let other = tokio::time::timeout(Duration::from_secs(1), gate.acquire(Priority::Periodic))
            .await
            .expect("the turn was given back");
        let retake = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut seat = Seat::new(gate, Priority::Periodic);
                seat.take().await;
                seat.give_back();
                seat.take().await;
                seat.holds()
            })
        };
        drop(other);
        assert!(retake.await.unwrap());
    }
}
