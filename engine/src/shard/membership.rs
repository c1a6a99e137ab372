//! The membership: one `coordination.k8s.io` Lease per replica, named
//! `esox-shard-<identity>` and labelled `shard.esox.io/group=<group>` in the controller's
//! namespace. Each replica renews its own Lease (holder = itself) every retry period and
//! writes into it the membership it acknowledges (`shard.esox.io/members`, with a
//! `shard.esox.io/generation` counter) and what it owns (`shard.esox.io/owned`). The
//! members are the Leases that exist: a replica that stops cleanly deletes its own; a Lease
//! not renewed for its duration is deleted by the first other member that notices, with its
//! resourceVersion as a precondition (a renewal that got in first wins, and a replica whose
//! Lease was deleted stops at its next renewal).
//!
//! The loop is IO around [`plan`], which is pure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

use super::{Shard, Snapshot};

/// The label that makes a Lease a member of a group (its value: the group).
pub const GROUP_LABEL: &str = "shard.esox.io/group";
/// The membership a member acknowledges: its members' identities, comma-separated.
pub const MEMBERS_ANNOTATION: &str = "shard.esox.io/members";
/// How many memberships the member has acknowledged (one more at each publication).
pub const GENERATION_ANNOTATION: &str = "shard.esox.io/generation";
/// What the member owns over the membership it acknowledged, e.g. `ExternalSecret=334`.
pub const OWNED_ANNOTATION: &str = "shard.esox.io/owned";

/// Membership settings.
#[derive(Debug, Clone)]
pub struct ShardSettings {
    /// The namespace of the Leases (the controller's).
    pub namespace: String,
    /// The group: replicas with the same group share the objects.
    pub group: String,
    /// This replica's identity (the Leases' holder).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long this replica keeps trying to renew before it stops (below `lease_duration`).
    pub renew_deadline: Duration,
    /// How often the Lease is renewed.
    pub retry: Duration,
}

/// Why this replica left the membership against its will (it must stop writing at once).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The first write of its Lease failed (RBAC, the namespace).
    #[error("could not create this replica's shard Lease {name}: {source}")]
    Create {
        /// The Lease.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Another member deleted its Lease: it was not renewed within its duration.
    #[error("this replica's shard Lease {0} was removed by another member (not renewed in time)")]
    Removed(String),
    /// It could not renew its Lease for its whole duration while reconciles were running.
    #[error(
        "could not renew this replica's shard Lease {0} for its duration while reconciles were running"
    )]
    RenewDeadline(String),
    /// The watch of the members' Leases ended.
    #[error("the watch of the shard Leases ended")]
    WatchEnded,
}

/// The Lease name of a replica: `esox-shard-` and its identity as a DNS name.
pub fn lease_name(identity: &str) -> String {
    let mut name: String = identity
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    name.truncate(200);
    let name = name.trim_matches(|c| c == '-' || c == '.');
    format!("esox-shard-{name}")
}

/// One member as its Lease says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The Lease's name.
    pub lease: String,
    /// Its holder.
    pub identity: String,
    /// The membership it acknowledged.
    pub members: Vec<String>,
    /// Its publication counter.
    pub generation: u64,
    /// The Lease's resourceVersion.
    pub version: String,
    /// Its lease duration.
    pub duration: Duration,
}

impl Member {
    /// Reads a member Lease (`None` for one without a holder: released).
    pub fn of(lease: &Lease) -> Option<Member> {
        let spec = lease.spec.as_ref()?;
        let identity = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
        let ann = lease.annotations();
        Some(Member {
            lease: lease.name_any(),
            identity,
            members: ann
                .get(MEMBERS_ANNOTATION)
                .map(|m| parse_members(m))
                .unwrap_or_default(),
            generation: ann
                .get(GENERATION_ANNOTATION)
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
            version: lease.resource_version().unwrap_or_default(),
            duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64),
        })
    }
}

fn parse_members(s: &str) -> Vec<String> {
    let mut m: Vec<String> = s
        .split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    m.sort();
    m.dedup();
    m
}

/// What this replica has published (or is publishing) as its acknowledged membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// The publication counter.
    pub generation: u64,
    /// The membership.
    pub members: Vec<String>,
}

/// The snapshot reconciles check, from what the cache shows: ready once the cache shows this
/// replica's Lease with its latest publication (so the others' claims read from the cache
/// are at least as recent as its own), while `alive` (renewed within the deadline).
pub fn plan(
    me: &str,
    cached: &[Member],
    published: &Published,
    synced: bool,
    alive: bool,
) -> Snapshot {
    let mut view: Vec<String> = cached.iter().map(|m| m.identity.clone()).collect();
    view.push(me.to_string());
    view.sort();
    view.dedup();
    let confirmed = cached.iter().any(|m| {
        m.identity == me && m.generation == published.generation && m.members == published.members
    });
    Snapshot {
        me: me.into(),
        ready: synced && alive && confirmed && !published.members.is_empty(),
        acked: published.members.clone(),
        view,
        claims: cached
            .iter()
            .filter(|m| m.identity != me)
            .map(|m| (m.identity.clone(), m.members.clone()))
            .collect(),
    }
}

/// Members whose Lease has not changed for longer than its duration, as this replica has
/// watched it (its own clock, never the writer's `renewTime`: clocks differ between nodes).
pub fn expired<'a>(
    me: &str,
    cached: &'a [Member],
    seen: &HashMap<String, (String, Instant)>,
    now: Instant,
) -> Vec<&'a Member> {
    cached
        .iter()
        .filter(|m| m.identity != me)
        .filter(|m| {
            seen.get(&m.lease)
                .is_some_and(|(v, at)| *v == m.version && now.duration_since(*at) > m.duration)
        })
        .collect()
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Runs the membership until `stop` resolves, then deletes this replica's Lease (the caller
/// has stopped every reconcile by then). An error means this replica must stop writing now.
pub async fn run(
    client: Client,
    settings: ShardSettings,
    shard: Arc<Shard>,
    health: Arc<crate::http::Health>,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ShardError> {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let name = lease_name(&settings.identity);
    let me = settings.identity.clone();
    let mut own = create_own(&api, &settings, &name).await?;
    let mut last_renewed = Instant::now();
    tracing::info!(lease = %name, group = %settings.group, "joined the shard membership");

    let (reader, writer): (Store<Lease>, _) = reflector::store();
    let config = watcher::Config::default().labels(&format!("{GROUP_LABEL}={}", settings.group));
    let watch_api = api.clone();
    let mut events = Box::pin(
        crate::controller::watch::watch(health.watch("shard Lease"), reader.clone(), move || {
            watcher(watch_api.clone(), config.clone())
        })
        .reflect(writer),
    );
    let mut stop = Box::pin(stop);
    let mut seen: HashMap<String, (String, Instant)> = HashMap::new();
    let mut published = Published::default();
    let mut synced = false;
    let mut next_tick = Instant::now();
    let mut must_write = false;
    let mut waiting = false;
    let mut overdue = false;
    loop {
        let mut tick = false;
        tokio::select! {
            biased;
            _ = &mut stop => break,
            ev = events.next() => match ev {
                None => return Err(ShardError::WatchEnded),
                Some(Ok(watcher::Event::InitDone)) => synced = true,
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(next_tick) => tick = true,
            _ = shard.released(), if waiting => {}
        }
        let now = Instant::now();
        let cached: Vec<Member> = reader
            .state()
            .iter()
            .filter_map(|l| Member::of(l))
            .collect();
        for m in &cached {
            let fresh = seen.get(&m.lease).is_none_or(|(v, _)| *v != m.version);
            if fresh {
                seen.insert(m.lease.clone(), (m.version.clone(), now));
            }
        }
        seen.retain(|lease, _| cached.iter().any(|m| &m.lease == lease));
        // Not renewed within the deadline (the apiserver unreachable, this process paused):
        // nothing new starts, and the renewal is tried at once. Only a renewal that finds the
        // Lease deleted means another member may have taken over (it must delete the Lease
        // first); a reconcile still running once the Lease could have expired is cut short
        // by exiting.
        let since = now.duration_since(last_renewed);
        let alive = since <= settings.renew_deadline;
        if !alive && !overdue {
            tracing::warn!(?since, lease = %name, "shard Lease not renewed within the renew deadline; starting nothing until it is");
            tick = true;
        }
        overdue = !alive;
        if since > settings.lease_duration && shard.claimed() > 0 {
            shard.publish_snapshot(Snapshot {
                me: me.clone(),
                ..Default::default()
            });
            return Err(ShardError::RenewDeadline(name));
        }
        if !alive {
            let mut stopped = (*shard.snapshot()).clone();
            stopped.ready = false;
            shard.publish_snapshot(stopped);
        }
        let view = plan(&me, &cached, &published, synced, alive).view;
        if synced
            && view != published.members
            && shard.fence(&view)
            && shard.begin_publication(&view)
        {
            published = Published {
                generation: published.generation + 1,
                members: view.clone(),
            };
            must_write = true;
            tracing::info!(
                members = view.len(),
                generation = published.generation,
                "acknowledging a new shard membership"
            );
        }
        waiting = synced && view != published.members;
        if waiting {
            tracing::debug!(
                claimed = shard.claimed(),
                "waiting for reconciles of keys that move"
            );
        }
        if tick || must_write {
            next_tick = now + settings.retry;
            let counts = shard.count_owned_all();
            let sent = Instant::now();
            match renew(&api, &mut own, &published, &counts).await {
                Ok(()) => {
                    last_renewed = sent;
                    must_write = false;
                    if let Some(m) = &shard.metrics {
                        for (kind, n) in &counts {
                            m.shard_owned
                                .get_or_create(&crate::metrics::KindLabels {
                                    kind: (*kind).into(),
                                })
                                .set(*n as i64);
                        }
                        m.shard_members.set(view.len() as i64);
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return Err(ShardError::Removed(name)),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Someone else edited our Lease (a user's label): read it and write again.
                    match api.get_opt(&name).await {
                        Ok(Some(l)) if Member::of(&l).is_some_and(|m| m.identity == me) => {
                            own = l;
                            must_write = true;
                        }
                        Ok(_) => return Err(ShardError::Removed(name)),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not read this replica's shard Lease")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %name, "could not renew the shard Lease")
                }
            }
            if tick && synced {
                for m in expired(&me, &cached, &seen, now) {
                    let dp = DeleteParams {
                        preconditions: Some(Preconditions {
                            resource_version: Some(m.version.clone()),
                            uid: None,
                        }),
                        ..Default::default()
                    };
                    match api.delete(&m.lease, &dp).await {
                        Ok(_) => {
                            tracing::warn!(member = %m.identity, lease = %m.lease, "a shard member's Lease expired; removed it, its share moves")
                        }
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                        Err(e) => {
                            tracing::warn!(error = %e, lease = %m.lease, "could not remove an expired shard Lease")
                        }
                    }
                }
            }
        }
        let alive = Instant::now().duration_since(last_renewed) <= settings.renew_deadline;
        shard.publish_snapshot(plan(&me, &cached, &published, synced, alive));
    }
    // Every reconcile has stopped: leave, so the others take the share over at once.
    shard.publish_snapshot(Snapshot {
        me: me.clone(),
        ..Default::default()
    });
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: None,
            uid: own.uid(),
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => tracing::info!(lease = %name, "left the shard membership"),
        Err(e) => {
            tracing::warn!(error = %e, lease = %name, "could not delete the shard Lease; it expires by itself")
        }
    }
    Ok(())
}

async fn create_own(
    api: &Api<Lease>,
    settings: &ShardSettings,
    name: &str,
) -> Result<Lease, ShardError> {
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(settings.namespace.clone()),
            labels: Some([(GROUP_LABEL.to_string(), settings.group.clone())].into()),
            annotations: Some(
                [
                    (MEMBERS_ANNOTATION.to_string(), String::new()),
                    (GENERATION_ANNOTATION.to_string(), "0".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(settings.identity.clone()),
            lease_duration_seconds: Some(settings.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(now_micro()),
            renew_time: Some(now_micro()),
            ..Default::default()
        }),
    };
    let created = match api.create(&PostParams::default(), &lease).await {
        // Our identity is unique per process: a Lease of that name is a leftover of ours.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let _ = api.delete(name, &DeleteParams::default()).await;
            api.create(&PostParams::default(), &lease).await
        }
        other => other,
    };
    created.map_err(|source| ShardError::Create {
        name: name.into(),
        source,
    })
}

/// Renews our Lease with what we publish (a compare-and-swap on its resourceVersion).
async fn renew(
    api: &Api<Lease>,
    own: &mut Lease,
    published: &Published,
    owned: &[(&'static str, usize)],
) -> Result<(), kube::Error> {
    let mut next = own.clone();
    let ann = next.metadata.annotations.get_or_insert_default();
    ann.insert(MEMBERS_ANNOTATION.into(), published.members.join(","));
    ann.insert(
        GENERATION_ANNOTATION.into(),
        published.generation.to_string(),
    );
    ann.insert(
        OWNED_ANNOTATION.into(),
        owned
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    if let Some(spec) = next.spec.as_mut() {
        spec.renew_time = Some(now_micro());
    }
    *own = api
        .replace(&own.name_any(), &PostParams::default(), &next)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, members: &[&str], generation: u64) -> Member {
        Member {
            lease: lease_name(id),
            identity: id.into(),
            members: members.iter().map(|s| s.to_string()).collect(),
            generation,
            version: "1".into(),
            duration: Duration::from_secs(15),
        }
    }

    fn published(members: &[&str], generation: u64) -> Published {
        Published {
            generation,
            members: members.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn lease_names_are_dns_names() {
        assert_eq!(
            lease_name("esox-7d9_123_0a0b"),
            "esox-shard-esox-7d9-123-0a0b"
        );
        assert_eq!(lease_name("Pod.X"), "esox-shard-pod.x");
        assert!(lease_name(&"x".repeat(400)).len() <= 253);
    }

    #[test]
    fn ready_only_once_the_cache_shows_the_latest_publication() {
        let cases = [
            (
                "cache shows it",
                vec![member("a", &["a", "b"], 2), member("b", &["a", "b"], 1)],
                published(&["a", "b"], 2),
                true,
            ),
            (
                "cache behind",
                vec![member("a", &["a"], 1), member("b", &["a", "b"], 1)],
                published(&["a", "b"], 2),
                false,
            ),
            (
                "same members, older generation (a b a)",
                vec![member("a", &["a", "b"], 1)],
                published(&["a", "b"], 3),
                false,
            ),
            (
                "nothing published yet",
                vec![member("a", &[], 0)],
                published(&[], 0),
                false,
            ),
        ];
        for (what, cached, p, ready) in cases {
            let s = plan("a", &cached, &p, true, true);
            assert_eq!(s.ready, ready, "{what}");
        }
        let cached = vec![member("a", &["a"], 1)];
        assert!(
            !plan("a", &cached, &published(&["a"], 1), false, true).ready,
            "not synced"
        );
        assert!(
            !plan("a", &cached, &published(&["a"], 1), true, false).ready,
            "not alive"
        );
    }

    #[test]
    fn the_view_is_the_leases_and_me() {
        let s = plan(
            "c",
            &[member("b", &[], 0), member("a", &[], 0)],
            &Published::default(),
            true,
            true,
        );
        assert_eq!(s.view, ["a", "b", "c"]);
        assert_eq!(s.claims.len(), 2);
    }

    #[test]
    fn a_lease_expires_after_its_duration_unchanged_on_our_clock() {
        let now = Instant::now();
        let cached = vec![
            member("a", &[], 0),
            member("b", &[], 0),
            member("c", &[], 0),
        ];
        let mut seen = HashMap::new();
        seen.insert(lease_name("a"), ("1".into(), now - Duration::from_secs(60)));
        seen.insert(lease_name("b"), ("1".into(), now - Duration::from_secs(16)));
        seen.insert(lease_name("c"), ("1".into(), now - Duration::from_secs(5)));
        let gone: Vec<_> = expired("a", &cached, &seen, now)
            .into_iter()
            .map(|m| m.identity.as_str())
            .collect();
        assert_eq!(gone, ["b"], "never itself; c is fresh");
        // A renewal seen (new version) is not expired, whatever the old timestamp.
        seen.insert(lease_name("b"), ("0".into(), now - Duration::from_secs(16)));
        assert!(expired("a", &cached, &seen, now).is_empty());
    }

    #[test]
    fn members_parse_sorted_and_unique() {
        assert_eq!(parse_members("b,a,,b"), ["a", "b"]);
    }
}
