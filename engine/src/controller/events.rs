//! Publishes Kubernetes Events (`events.k8s.io/v1`), one recorder for the process.
//!
//! A repeat of an Event (same object, type, reason, action, note and related object) within
//! [`SERIES_WINDOW`] is not a new object: the first one's `series` counts it (one PATCH), as
//! client-go's recorder and kube's `Recorder` do.
//!
//! Why not kube's `Recorder`: it remembers every Event it published in a map of whole Event
//! objects (about 2 KiB each, held inline in the table) and drops the old ones only when
//! publishing, by scanning the whole map each time. A cold sync of 5000 ExternalSecrets
//! publishes 5000 Events: 12 MB that stays (nothing is published once everything is synced,
//! so nothing expires), and 25 million comparisons on the way. Here a remembered Event is a
//! hash and the name to patch (about 80 bytes), expired entries are swept at most every
//! [`SWEEP_EVERY`], and the table shrinks when it empties.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType, Reporter};

/// How long a published Event takes repeats into its series (kube's and client-go's six
/// minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How often expired entries are swept (on a publish; nothing runs in between).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// An Event esox published, for counting its repeats.
#[derive(Debug)]
struct Published {
    /// Its name (in the regarding object's namespace).
    name: String,
    /// Occurrences so far (the first included).
    count: i32,
    /// When it last occurred.
    last: Instant,
}

#[derive(Debug)]
struct Memory {
    published: HashMap<u64, Published>,
    swept: Instant,
}

/// Publishes Events and aggregates their repeats (see the module docs).
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    keys: RandomState,
    memory: Mutex<Memory>,
}

impl Recorder {
    /// A recorder publishing as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            keys: RandomState::new(),
            memory: Mutex::new(Memory {
                published: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// Publishes `ev` about `regarding` (its `resourceVersion` should be unset, or every status
    /// write makes a new object): a new Event, or one more in the series of the same Event
    /// published within [`SERIES_WINDOW`].
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = self.key(ev, regarding);
        let now = Instant::now();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let repeat = {
            let mut memory = self.lock();
            memory.sweep(now);
            memory.published.get_mut(&key).and_then(|p| {
                (now.duration_since(p.last) < SERIES_WINDOW).then(|| {
                    p.count += 1;
                    p.last = now;
                    (p.name.clone(), p.count)
                })
            })
        };
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({
                "series": EventSeries {
                    count,
                    last_observed_time: MicroTime(jiff::Timestamp::now()),
                }
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone (the apiserver's Event TTL, or deleted): a new one below.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(ev, regarding);
        let name = event.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &event).await?;
        self.lock().published.insert(
            key,
            Published {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// What makes two Events the same: client-go's key (the note included: a different
    /// message is a different Event, not a repeat shown with the first one's text).
    fn key(&self, ev: &Event, regarding: &ObjectReference) -> u64 {
        let mut h = self.keys.build_hasher();
        matches!(ev.type_, EventType::Warning).hash(&mut h);
        ev.reason.hash(&mut h);
        ev.action.hash(&mut h);
        ev.note.hash(&mut h);
        reference_key(regarding).hash(&mut h);
        ev.secondary.as_ref().map(reference_key).hash(&mut h);
        h.finish()
    }

    fn event(&self, ev: &Event, regarding: &ObjectReference) -> K8sEvent {
        let now = jiff::Timestamp::now();
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Memory {
    /// Forgets Events past their series window, at most every [`SWEEP_EVERY`]; gives the
    /// table's room back once most of it is empty.
    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept) < SWEEP_EVERY {
            return;
        }
        self.swept = now;
        self.published
            .retain(|_, p| now.duration_since(p.last) < SERIES_WINDOW);
        if self.published.capacity() > 64 && self.published.capacity() > 4 * self.published.len() {
            self.published.shrink_to_fit();
        }
    }
}

/// The parts of an object reference that name the object (its resource version and field
/// path left out).
fn reference_key(r: &ObjectReference) -> [&Option<String>; 5] {
    [&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_with(ages: &[u64], now: Instant) -> Memory {
        let mut published = HashMap::new();
        for (i, age) in ages.iter().enumerate() {
            published.insert(
                i as u64,
                Published {
                    name: format!("e{i}"),
                    count: 1,
                    last: now - Duration::from_secs(*age),
                },
            );
        }
        Memory {
            published,
            swept: now - SWEEP_EVERY,
        }
    }

    #[test]
    fn old_events_are_forgotten_and_the_table_shrinks() {
        let now = Instant::now() + Duration::from_secs(3600);
        let mut ages = vec![SERIES_WINDOW.as_secs() + 1; 1000];
        ages.extend([1, 2, 3]);
        let mut m = memory_with(&ages, now);
        let before = m.published.capacity();
        m.sweep(now);
        assert_eq!(m.published.len(), 3);
        assert!(m.published.capacity() < before / 4, "room given back");
        // Not again within SWEEP_EVERY, whatever expired meanwhile.
        let later = now + SERIES_WINDOW;
        m.sweep(later - SWEEP_EVERY + Duration::from_secs(1));
        assert_eq!(m.published.len(), 3);
        m.sweep(later + SWEEP_EVERY);
        assert!(m.published.is_empty());
    }

    #[tokio::test]
    async fn a_repeat_is_the_same_object_reason_and_note_at_any_resource_version() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let recorder = Recorder::new(
            Client::try_from(config).unwrap(),
            Reporter {
                controller: "esox".into(),
                instance: None,
            },
        );
        let ev = |reason: &str, note: &str| Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Sync".into(),
            secondary: None,
        };
        let r = |name: &str, rv: &str| ObjectReference {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        };
        let k = |e: &Event, r: &ObjectReference| recorder.key(e, r);
        let base = k(&ev("Created", "secret created"), &r("es", "1"));
        assert_eq!(base, k(&ev("Created", "secret created"), &r("es", "2")));
        assert_ne!(base, k(&ev("Created", "secret created"), &r("other", "1")));
        assert_ne!(base, k(&ev("Updated", "secret created"), &r("es", "1")));
        assert_ne!(base, k(&ev("Created", "another note"), &r("es", "1")));
    }
}
