//! Leader election on a `coordination.k8s.io` Lease, as controller-runtime (and so ESO) does:
//! one replica holds the Lease and runs the controllers; the others wait. The holder renews
//! the Lease every `retry` period; a standby takes it over once it has not been renewed for
//! `lease_duration`. Every write is a compare-and-swap on the Lease's resourceVersion, so two
//! replicas can never both believe they acquired it.
//!
//! A leader that fails to renew within `renew_deadline` stops (the process exits and is
//! restarted as a standby), well before a standby may take over, so there are never two
//! writers.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

/// Leader-election settings (controller-runtime's defaults).
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The Lease's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Who we are (pod name and a random suffix).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry: Duration,
}

impl LeaseSettings {
    /// controller-runtime's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        LeaseSettings {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// Why the Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API call failed (RBAC, network).
    #[error("leader election: {0}")]
    Api(#[from] kube::Error),
}

/// The Lease, held or waited for.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    /// An elector for the Lease the settings name.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    /// One attempt: true when we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let s = &self.settings;
        let secs = s.lease_duration.as_secs() as i32;
        let existing = match self.api.get_opt(&s.name).await? {
            Some(l) => l,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(s.name.clone()),
                        namespace: Some(s.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(s.identity.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(now()),
                        renew_time: Some(now()),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e.into()),
                };
            }
        };
        let spec = existing.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == s.identity;
        let expired = match &spec.renew_time {
            None => true,
            Some(t) => {
                let held =
                    Duration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).max(0) as u64);
                let age = k8s_openapi::jiff::Timestamp::now().duration_since(t.0);
                age.as_secs_f64() > held.as_secs_f64()
            }
        };
        if !mine && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let mut lease = existing;
        let mut next = spec;
        if !mine {
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0) + 1);
            next.acquire_time = Some(now());
            next.holder_identity = Some(s.identity.clone());
        }
        next.renew_time = Some(now());
        next.lease_duration_seconds = Some(secs);
        lease.spec = Some(next);
        // replace() sends the resourceVersion we read: a concurrent writer makes this fail.
        match self
            .api
            .replace(&s.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until we hold the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.settings.name, identity = %self.settings.identity, "became leader");
                    return;
                }
                Ok(false) => {
                    tracing::debug!(lease = %self.settings.name, "another replica leads; waiting")
                }
                Err(e) => tracing::warn!(error = %e, "could not read or write the leader Lease"),
            }
            tokio::time::sleep(self.settings.retry).await;
        }
    }

    /// Renews the Lease until it cannot within the renew deadline; returns when leadership
    /// is lost (the caller must stop writing at once).
    pub async fn hold(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.settings.name, "leadership taken by another replica");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "could not renew the leader Lease"),
            }
            if last_renewal.elapsed() > self.settings.renew_deadline {
                tracing::error!(lease = %self.settings.name, "could not renew the leader Lease within the renew deadline");
                return;
            }
        }
    }

    /// Gives the Lease up (on a clean shutdown), so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(&self.settings.identity)
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            let _ = self
                .api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

/// Whether this replica does the leader-only work. Without `--shard-mode` the whole controller
/// runs only while it leads (or there is no election), so it always does; in shard mode every
/// replica reconciles its share and only the leader validates stores and runs the
/// ClusterExternalSecret and ClusterPushSecret controllers.
pub struct Leadership(tokio::sync::watch::Sender<bool>);

impl Default for Leadership {
    fn default() -> Self {
        Leadership(tokio::sync::watch::channel(true).0)
    }
}

impl Leadership {
    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Says whether this replica leads.
    pub fn set(&self, leading: bool) {
        self.0.send_replace(leading);
    }

    /// Waits until this replica leads.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Yields once when this replica becomes the leader (at once if it leads already).
    pub fn became(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        futures::stream::once(async move {
            let _ = rx.wait_for(|l| *l).await;
        })
    }
}
