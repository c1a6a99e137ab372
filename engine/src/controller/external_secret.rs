//! The ExternalSecret reconciler: sync, then report.
//!
//! [`reconcile`] is two calls. [`sync`] does the work with IO only at its edges: it decides
//! whether a refresh is due ([`super::refresh`], ESO's rules), fetches and builds the data
//! (the Kubernetes-free [`crate::pipeline`] and the Wasm [`crate::template`] step), asks
//! [`target::plan`] what to do to the Secret (pure, unit-tested per creation and deletion
//! policy), and [`execute`]s that plan. [`report`] then writes the status and the Events, in
//! one place, for success and failure alike; what it does with a failure is the error's
//! [`Disposition`]. A failure at any step leaves the existing Secret untouched
//! (keep-last-good).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, instrument, trace, warn};

use super::bulkhead;
use super::context::Context;
use super::refresh::{self, RefreshState};
use super::resolve::StoreResolver;
use super::rollout;
use super::target::{self, FIELD_MANAGER, FINALIZER, SecretPlan};
use super::turns::{Priority, Seat};
use crate::api::condition::{get_condition, set_condition};
use crate::api::duration;
use crate::api::{
    Condition, CreationPolicy, DeletionPolicy, ExternalSecret, ExternalSecretStatus,
    LocalObjectReference, RefreshPolicy,
};
use crate::metrics::{ErrorLabels, Metrics, ObjectLabels};
use crate::pipeline::{self, hash};
use crate::provider::vault::leases;
use crate::secret::SecretBytes;
use crate::template;

pub use super::error::{Disposition, Error, event, kube_err};
pub use super::target::{CREATED_BY_LABEL, DATA_HASH_ANNOTATION, MANAGED_LABEL};

/// Condition reasons, as ESO spells them.
pub mod reason {
    /// Data synced.
    pub const SYNCED: &str = "SecretSynced";
    /// Sync failed.
    pub const SYNC_ERROR: &str = "SecretSyncedError";
    /// Secret deleted by the deletion policy.
    pub const DELETED: &str = "SecretDeleted";
    /// `Merge` target does not exist.
    pub const MISSING: &str = "SecretMissing";
}

/// The `syncedResourceVersion` of an ExternalSecret, exactly as ESO computes it: the
/// generation and ESO's `ObjectHash` of its labels and annotations (so editing either — ESO's
/// force-sync annotation — triggers a refresh). Matching ESO's format means a cluster moving
/// from ESO does not refresh every ExternalSecret on esox's first pass.
pub fn resource_version(es: &ExternalSecret) -> String {
    let meta = format!(
        "{{annotations:{} labels:{}}}",
        hash::go_string_map(es.annotations()),
        hash::go_string_map(es.labels())
    );
    format!(
        "{}-{}",
        es.metadata.generation.unwrap_or_default(),
        hash::data_hash_text(&meta)
    )
}

/// Reconciles one ExternalSecret: takes a turn at the context's gate (new work first, see
/// [`super::turns`]), syncs, reports. A panic in the sync is caught and reported on this
/// object like any failure, so one bad object cannot take the process (and every tenant's
/// secrets) down with it.
#[instrument(skip_all, fields(namespace = %es.namespace().unwrap_or_default(), name = %es.name_any()))]
pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (name, namespace) = (es.name_any(), es.namespace().unwrap_or_default());
    // `--shard-mode`: another replica's object waits for no turn.
    if let Err(refused) = ctx.claim(KIND, &namespace, &name) {
        return Ok(not_owned(&es, &ctx, refused));
    }
    // `--enable-cluster-store-reconciler=false`: one that reads a ClusterSecretStore is another
    // controller's (its deletion still runs, and removes esox's finalizer if it has one).
    if es.meta().deletion_timestamp.is_none() && ctx.settings.switches.leaves_alone(&es) {
        debug!("reads a ClusterSecretStore, which this controller does not process; left alone");
        return Ok(Action::await_change());
    }
    // `--controller-class`: one that reads a store of another class is that controller's.
    if es.meta().deletion_timestamp.is_none()
        && let Some(caches) = ctx.caches.get()
        && let Some(store) = ctx.settings.class.foreign_store(&es, caches)
    {
        // Remembered before looking again: a store the watch turns to this class in between
        // is seen either here or by the watch (see `class::ForeignStores`).
        ctx.foreign_stores.left_alone_for(store);
        if let Some(store) = ctx.settings.class.foreign_store(&es, caches) {
            debug!(
                store,
                class = ctx.settings.class.as_str(),
                "reads a store of another controller class; left alone"
            );
            return Ok(Action::await_change());
        }
    }
    let priority = priority(&es, &ctx);
    trace!(?priority, waiting = ?ctx.turns.waiting(), "queued for a turn");
    let mut seat = Seat::new(ctx.turns.clone(), priority);
    seat.take().await;
    // Held to the end: this replica hands the object over only once no reconcile of it runs.
    let claim = match ctx.claim(KIND, &namespace, &name) {
        Ok(claim) => claim,
        Err(refused) => return Ok(not_owned(&es, &ctx, refused)),
    };
    // Every object due is a spawned task waiting above for its turn (a cold sync: all of
    // them at once), so what runs with the turn is boxed: a waiting task stays a few hundred
    // bytes instead of the whole sync's state (kilobytes, times every ExternalSecret).
    Box::pin(with_turn(es, ctx, seat, claim)).await
}

/// The rest of [`reconcile`], once it holds a turn and the claim.
async fn with_turn(
    es: Arc<ExternalSecret>,
    ctx: Arc<Context>,
    mut seat: Seat,
    _claim: crate::shard::Claim,
) -> Result<Action, Error> {
    let start = Instant::now();
    let labels = ObjectLabels {
        name: es.name_any(),
        namespace: es.namespace().unwrap_or_default(),
    };
    ctx.metrics.sync_calls.get_or_create(&labels).inc();
    debug!("reconciling");
    let mut es = es;
    let synced = match AssertUnwindSafe(sync(&mut es, &ctx, &mut seat))
        .catch_unwind()
        .await
    {
        Ok(synced) => synced,
        Err(_) => {
            // The panic hook has logged where; what is reported names no data.
            tracing::error!("reconcile panicked; reporting it on the ExternalSecret");
            Err(Error::Panicked)
        }
    };
    seat.take().await;
    let action = report(&es, &ctx, synced).await;
    if es.meta().deletion_timestamp.is_some() {
        // Its last reconcile: the watch's Delete event may already have dropped its series,
        // and this one must not bring them back.
        ctx.metrics
            .forget(&labels.name, &labels.namespace, Error::categories());
        return action;
    }
    ctx.metrics
        .reconcile_duration
        .get_or_create(&labels)
        .set(start.elapsed().as_nanos() as f64);
    action
}

/// The kind, as sharding names it.
pub const KIND: &str = "ExternalSecret";

/// Another replica owns `es`, or the membership is changing (`--shard-mode`): nothing is
/// written; what this replica kept about another's object goes (the owner reports it), and
/// the hand-over that gives it to this replica reconciles it.
fn not_owned(es: &ExternalSecret, ctx: &Context, refused: crate::shard::Refusal) -> Action {
    trace!(?refused, "not reconciled here now");
    if refused == crate::shard::Refusal::NotOwned {
        forget_local_state(es, ctx);
    }
    Action::await_change()
}

/// Drops what this replica keeps about `es` (metric series, backoff, status memo).
pub fn forget_local_state(es: &ExternalSecret, ctx: &Context) {
    ctx.metrics.forget(
        &es.name_any(),
        &es.namespace().unwrap_or_default(),
        Error::categories(),
    );
    let key = ObjectRef::from_obj(es);
    ctx.record_success(&key);
    ctx.written_status.forget(&key);
}

/// Backs off per object after a failure (status and events were written by [`report`]) and
/// counts it in `externalsecret_sync_calls_error`.
pub fn error_policy(es: Arc<ExternalSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&ObjectRef::from_obj(es.as_ref()));
    count_error(&es, &ctx, err);
    let delay = refresh::backoff(failures.saturating_sub(1));
    warn!(error = %err, reason = err.metric_label(), failures, retry_in = ?delay, "sync failed");
    Action::requeue(delay)
}

fn count_error(es: &ExternalSecret, ctx: &Context, err: &Error) {
    ctx.metrics
        .sync_errors
        .get_or_create(&ErrorLabels {
            name: es.name_any(),
            namespace: es.namespace().unwrap_or_default(),
            reason: err.metric_label().to_string(),
        })
        .inc();
}

/// What a sync did, for [`report`].
#[derive(Debug)]
enum Synced {
    /// No refresh was due and the Secret is valid: come back at `0`.
    Idle(Action),
    /// The ExternalSecret is being deleted; its cleanup ran.
    Finalized,
    /// A refresh ran.
    Refreshed {
        /// What happened to the Secret.
        outcome: Outcome,
        /// When it ran (the new `status.refreshTime`).
        at: jiff::Timestamp,
        /// When to come back.
        requeue: Action,
        /// The parsed refresh interval.
        interval: Duration,
        /// How long after it was due this periodic refresh ran, when that is enough to say
        /// so (see [`lateness`]).
        late: Option<Duration>,
    },
}

/// What executing a [`SecretPlan`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    Retained,
    Deleted,
    Missing,
    NotManaged,
}

/// Fetch, build, plan and apply. `es` is replaced by what the apiserver has when esox knows
/// better than the cache (its own last status write, an added finalizer), so [`report`]
/// writes against that.
///
/// The request budget (docs/architecture.md): the ExternalSecret, its store and its Secret
/// come from the watch caches; a Secret is read only when the cache cannot vouch for its data
/// (a version esox did not write, `Merge` targets) or a write conflicts; writes happen only
/// for a change.
async fn sync(
    es: &mut Arc<ExternalSecret>,
    ctx: &Context,
    seat: &mut Seat,
) -> Result<Synced, Error> {
    // The object as the cache has it now, not as it was when this reconcile was queued: it
    // may have waited for its turn while the watch delivered esox's own last write, which
    // also dropped the memo that `overlay` serves older versions from. Planning from the
    // queued copy then refreshed a just-synced object a second time.
    if let Some(latest) = ctx
        .caches
        .get()
        .and_then(|c| c.external_secret(&ObjectRef::from_obj(es.as_ref())))
    {
        *es = latest;
    }
    let ns = es.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    if es.meta().deletion_timestamp.is_some() {
        finalize(es, ctx, &secrets).await?;
        return Ok(Synced::Finalized);
    }
    if let Some(fresh) = ctx.written_status.overlay(es) {
        *es = Arc::new(fresh);
    }
    let interval = validated_interval(es)?;
    if !es.finalizers().iter().any(|f| f == FINALIZER) {
        let added = add_finalizer(es, ctx).await?;
        ctx.written_status.record(es.resource_version(), &added);
        *es = Arc::new(added);
    }

    let target = es.target_name();
    let mut existing = target_secret(es, ctx, &secrets).await?;
    let now = jiff::Timestamp::now();
    // Leased Vault values: renewed while the Secret keeps them, replaced ones revoked.
    let mut previous_leases = existing
        .current()
        .map(|c| {
            leases::decode(
                c.secret
                    .annotations()
                    .get(leases::ANNOTATION)
                    .map(String::as_str),
            )
        })
        .unwrap_or_default();
    if leases::next_due(&previous_leases).is_some_and(|t| t <= now)
        && !due_regardless_of_leases(es, interval, existing.current(), now)
        && let Some(current) = existing.current()
    {
        let resolver =
            StoreResolver::new(ctx, &ns, es.spec.secret_store_ref.as_ref(), Duration::ZERO);
        let kept = super::vault_leases::maintain(&resolver, previous_leases, now).await;
        let periodic = es.spec.refresh_policy.unwrap_or_default() == RefreshPolicy::Periodic;
        if !(kept.regenerate && periodic) {
            if kept.changed {
                patch_leases(ctx, &secrets, current.secret, &kept.records).await?;
            }
            // The next pass, or the next refresh; never sooner than 5 s (a lease that can
            // neither be renewed nor replaced, under `CreatedOnce`, must not spin).
            let version = resource_version(es);
            let mut state = refresh_state(es, interval, existing.current(), &version);
            state.renew_at = leases::next_due(&kept.records)
                .map(|t| t.max(now + jiff::SignedDuration::from_secs(5)));
            return Ok(Synced::Idle(next(&state, now)));
        }
        previous_leases = kept.records;
    }
    if let Some(next) = idle(es, interval, existing.current(), now) {
        trace!(?next, "no refresh due and the Secret is valid");
        // A restart the last write could not make (the controller stopped in between) is
        // made now; once the targets are known up to date, this reads nothing.
        let version = restarts_apply(es, ctx)
            .then(|| existing.current())
            .flatten()
            .and_then(|c| rollout::SecretVersion::of(&target, c.secret.annotations()));
        if let Some(version) = version
            && let Some(wait) = rollout::step(es, ctx, &version).await
        {
            return Ok(Synced::Idle(sooner(next, wait)));
        }
        return Ok(Synced::Idle(
            next.map_or_else(Action::await_change, Action::requeue),
        ));
    }

    // Values other ExternalSecrets reading the same thing fetched a moment ago (they share this
    // one's grid second, see `phase`) are as fresh as this refresh promises; a change of
    // spec, labels or annotations (force-sync) wants fresh data.
    let status = es.status.as_ref();
    let changed = status
        .and_then(|s| s.synced_resource_version.as_deref())
        .is_some_and(|v| v != resource_version(es));
    let late = if changed {
        None
    } else {
        lateness(es, interval, now)
    };
    let max_age = if changed {
        Duration::ZERO
    } else {
        (interval / 10).min(Duration::from_secs(5))
    };
    if ctx.settings.switches.flood_gate {
        super::resolve::flood_gate(ctx, &ns, &es.spec).map_err(|n| Error::StoreNotReady {
            kind: n.kind,
            name: n.name,
            why: n.why,
        })?;
    }
    let resolver = StoreResolver::new(ctx, &ns, es.spec.secret_store_ref.as_ref(), max_age);
    let policy = es.spec.target.creation_policy;
    let renamer = crate::template::GoKeyRenamer {
        host: &ctx.plugins,
        metrics: &ctx.metrics,
    };
    // The turn is given back while the stores answer: a slow store holds its own bulkhead,
    // never the workers every other store's ExternalSecrets need.
    seat.give_back();
    let fetched = {
        let _entered = ctx.bulkheads.enter(&bulkhead::keys(es)).await;
        pipeline::collect(&es.spec, &resolver, &renamer).await
    };
    seat.take().await;
    let data = fetched.map_err(|e| {
        // Throttling is the provider pacing us, not a broken sync: a Secret that is in
        // sync stays Ready while the per-object backoff slows us down.
        if e.is_throttled() && target::secret_is_valid(existing.current(), policy) {
            Error::Throttled(e)
        } else {
            Error::Fetch(e)
        }
    })?;

    let mut renew_at = None;
    let mut output = if data.is_empty() && es.spec.target.deletion_policy != DeletionPolicy::Merge {
        None
    } else {
        let mut output = render(es, ctx, &ns, data).await?;
        // Generated credentials that expire are renewed before they do; the deadline rides
        // on the Secret so a restarted controller still knows it. Leases of the values this
        // Secret held are revoked after it holds the new ones.
        let records = leases::replace(std::mem::take(&mut previous_leases), resolver.leases(), now);
        if let Some(text) = leases::encode(&records) {
            output.annotations.insert(leases::ANNOTATION.into(), text);
        }
        renew_at = earliest(
            resolver
                .credentials_expire()
                .map(|expires| refresh::renewal_time(now, expires)),
            leases::next_due(&records),
        );
        if let Some(at) = renew_at {
            output
                .annotations
                .insert(refresh::RENEW_AT_ANNOTATION.into(), at.to_string());
        }
        Some(output)
    };
    // Rollout restarts need to know when the data last changed: stamped in the same write.
    let restarts = restarts_apply(es, ctx);
    let mut version = None;
    if restarts && let Some(output) = output.as_mut() {
        let data = output
            .data
            .iter()
            .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.expose().to_vec())))
            .collect();
        let existing = existing.current().map(|c| c.secret);
        rollout::stamp(existing, &data, &mut output.annotations, now);
        version = Some(rollout::SecretVersion {
            name: target.clone(),
            hash: target::data_hash(&data).chars().take(16).collect(),
            changed_at: output
                .annotations
                .get(rollout::CHANGED_AT_ANNOTATION)
                .and_then(|t| t.parse().ok()),
        });
    }
    let plan = target::plan(es, existing.current(), output.as_ref());
    trace!(plan = plan.action(), secret = %target, "planned");
    let outcome = match execute(plan, &secrets, ctx).await {
        // The cache was behind: the Secret exists after all (created by someone else, or
        // not labelled as managed), or changed since. Read it and plan again, once.
        Err(e) if e.api_code() == Some(409) && existing.cached => {
            debug!(secret = %target, "the cached Secret was stale; reading it");
            existing = read_target(ctx, &secrets, &target).await?;
            let plan = target::plan(es, existing.current(), output.as_ref());
            execute(plan, &secrets, ctx).await?
        }
        other => other?,
    };
    if matches!(
        outcome,
        Outcome::Created | Outcome::Updated | Outcome::Deleted
    ) {
        info!(secret = %target, outcome = ?outcome, "secret applied");
    }
    let state = RefreshState {
        policy: es.spec.refresh_policy.unwrap_or_default(),
        interval,
        last_refresh: Some(now),
        synced_version: None,
        current_version: "",
        renew_at,
        phase: phase(es),
    };
    // The restart step, after a successful write (or none needed): it reports on its own
    // and never fails the sync.
    let mut requeue = next(&state, now);
    if let Some(version) = version
        && matches!(
            outcome,
            Outcome::Created | Outcome::Updated | Outcome::Unchanged
        )
        && let Some(wait) = rollout::step(es, ctx, &version).await
    {
        requeue = sooner(refresh::next_refresh(&state, now), wait);
    }
    Ok(Synced::Refreshed {
        outcome,
        at: now,
        requeue,
        interval,
        late,
    })
}

/// How late a periodic refresh is, if late enough to tell the user: more than half an
/// interval (and 5 s) past the time it was due. A controller with more work than its
/// `--concurrent`, its request budget or the apiserver allow serves refreshes oldest first
/// (see [`super::turns`]), so every object is refreshed, later; the status says by how much
/// rather than claiming a freshness it did not have.
fn lateness(es: &ExternalSecret, interval: Duration, now: jiff::Timestamp) -> Option<Duration> {
    if interval.is_zero() || es.spec.refresh_policy.unwrap_or_default() != RefreshPolicy::Periodic {
        return None;
    }
    let last = es.status.as_ref()?.refresh_time.as_ref()?.0;
    let since = Duration::try_from(now.duration_since(last)).ok()?;
    let overdue = since.checked_sub(interval)?;
    (overdue > (interval / 2).max(Duration::from_secs(5))).then_some(overdue)
}

/// The target Secret as a plan needs it.
struct Target {
    secret: Option<Secret>,
    /// It came from the metadata cache (see [`target::Current::cached`]).
    cached: bool,
}

impl Target {
    fn current(&self) -> Option<target::Current<'_>> {
        self.secret.as_ref().map(|secret| target::Current {
            secret,
            cached: self.cached,
        })
    }
}

/// The target from the metadata cache where that is enough (`Owner` and `Orphan`, at a
/// version esox knows), else read.
async fn target_secret(
    es: &ExternalSecret,
    ctx: &Context,
    secrets: &Api<Secret>,
) -> Result<Target, Error> {
    let name = es.target_name();
    let from_cache = matches!(
        es.spec.target.creation_policy,
        CreationPolicy::Owner | CreationPolicy::Orphan
    );
    if from_cache && let Some(caches) = ctx.caches.get() {
        match caches.target(&es.namespace().unwrap_or_default(), &name) {
            // Not there, or not labelled as managed: a create will tell (409) if it exists.
            None => {
                return Ok(Target {
                    secret: None,
                    cached: true,
                });
            }
            Some(meta) => {
                if let Some(view) = ctx.known_targets.view(&meta) {
                    return Ok(Target {
                        secret: Some(view),
                        cached: true,
                    });
                }
            }
        }
    }
    read_target(ctx, secrets, &name).await
}

/// The target read in full (and remembered, if its data matches its hash).
async fn read_target(ctx: &Context, secrets: &Api<Secret>, name: &str) -> Result<Target, Error> {
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(kube_err(format!("could not get Secret {name:?}")))?;
    if let Some(s) = &secret {
        ctx.known_targets.observe(s);
    }
    Ok(Target {
        secret,
        cached: false,
    })
}

/// Where `es` sits on its refresh grid: a hash of what it reads (its store and its data
/// entries), so ExternalSecrets that read the same thing refresh in the same second and share
/// one provider call ([`crate::provider::fetch`]), while different ones spread over the
/// interval.
fn phase(es: &ExternalSecret) -> u64 {
    let spec = &es.spec;
    let store = spec.secret_store_ref.as_ref().map(|r| {
        // A SecretStore is one per namespace; a ClusterSecretStore is the same everywhere.
        let ns = match r.kind() {
            crate::api::StoreKind::SecretStore => es.namespace().unwrap_or_default(),
            crate::api::StoreKind::ClusterSecretStore => String::new(),
        };
        format!("{ns}/{:?}/{}", r.kind(), r.name)
    });
    let reads = serde_json::to_string(&(&spec.data, &spec.data_from)).unwrap_or_default();
    refresh::phase(&format!("{}|{reads}", store.unwrap_or_default()))
}

/// How `es` queues for a turn, from what the caches say: anything a user is waiting for
/// (never synced, a spec or metadata change such as force-sync, a deletion, a missing or
/// changed target) goes ahead of periodic refreshes.
pub fn priority(es: &ExternalSecret, ctx: &Context) -> Priority {
    if es.meta().deletion_timestamp.is_some() {
        return Priority::Urgent;
    }
    let overlay = ctx.written_status.overlay(es);
    let es = overlay.as_ref().unwrap_or(es);
    let synced = es
        .status
        .as_ref()
        .and_then(|s| s.synced_resource_version.as_deref());
    if synced != Some(resource_version(es).as_str()) {
        return Priority::Urgent;
    }
    if es.spec.target.creation_policy == CreationPolicy::Owner
        && let Some(caches) = ctx.caches.get()
    {
        let known = caches
            .target(&es.namespace().unwrap_or_default(), &es.target_name())
            .and_then(|meta| ctx.known_targets.view(&meta));
        if known.is_none() {
            return Priority::Urgent;
        }
    }
    Priority::Periodic
}

/// The parsed `refreshInterval`, after ESO's admission rules (the webhook's words, joined as
/// Go's `errors.Join` joins them): what retrying cannot fix.
fn validated_interval(es: &ExternalSecret) -> Result<Duration, Error> {
    let invalid = crate::api::validate::external_secret(&es.spec);
    if !invalid.is_empty() {
        return Err(Error::InvalidSpec(invalid.join("\n")));
    }
    match es.spec.refresh_interval.as_deref() {
        None | Some("") => Ok(Duration::ZERO),
        Some(s) => {
            duration::parse(s).map_err(|e| Error::InvalidSpec(format!("spec.refreshInterval: {e}")))
        }
    }
}

/// What the refresh rules know about `es` and its Secret.
fn refresh_state<'a>(
    es: &'a ExternalSecret,
    interval: Duration,
    existing: Option<target::Current<'_>>,
    current_version: &'a str,
) -> RefreshState<'a> {
    let status = es.status.as_ref();
    RefreshState {
        policy: es.spec.refresh_policy.unwrap_or_default(),
        interval,
        last_refresh: status.and_then(|s| s.refresh_time.as_ref()).map(|t| t.0),
        synced_version: status.and_then(|s| s.synced_resource_version.as_deref()),
        current_version,
        renew_at: existing
            .and_then(|c| c.secret.annotations().get(refresh::RENEW_AT_ANNOTATION))
            .and_then(|t| t.parse().ok()),
        phase: phase(es),
    }
}

/// Whether a refresh is due for a reason other than a renewal deadline (the interval, a
/// change, an invalid Secret): then leases are not renewed, the value is generated again.
fn due_regardless_of_leases(
    es: &ExternalSecret,
    interval: Duration,
    existing: Option<target::Current<'_>>,
    now: jiff::Timestamp,
) -> bool {
    let version = resource_version(es);
    let mut state = refresh_state(es, interval, existing, &version);
    state.renew_at = None;
    refresh::should_refresh(&state, now)
        || !target::secret_is_valid(existing, es.spec.target.creation_policy)
}

fn earliest(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Writes a maintenance pass's lease records and the renewal deadline they imply onto the
/// Secret (a merge patch of two annotations, guarded by its resourceVersion: a Secret
/// changed meanwhile is looked at again by the next reconcile).
async fn patch_leases(
    ctx: &Context,
    secrets: &Api<Secret>,
    secret: &Secret,
    records: &[leases::Record],
) -> Result<(), Error> {
    let name = secret.name_any();
    let patch = json!({
        "metadata": {
            "resourceVersion": secret.resource_version(),
            "annotations": {
                leases::ANNOTATION: leases::encode(records),
                refresh::RENEW_AT_ANNOTATION: leases::next_due(records).map(|t| t.to_string()),
            }
        }
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let written = secrets
        .patch(&name, &params, &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!(
            "could not update the leases on Secret {name:?}"
        )))?;
    ctx.known_targets.observe(&written);
    Ok(())
}

/// ESO's skip rule: `Some(when to come back, if ever)` when nothing is due and the Secret is
/// valid, `None` when a refresh is due.
#[allow(clippy::option_option)]
fn idle(
    es: &ExternalSecret,
    interval: Duration,
    existing: Option<target::Current<'_>>,
    now: jiff::Timestamp,
) -> Option<Option<Duration>> {
    let version = resource_version(es);
    let state = refresh_state(es, interval, existing, &version);
    let due = refresh::should_refresh(&state, now)
        || !target::secret_is_valid(existing, es.spec.target.creation_policy)
        || last_pass_failed(es);
    (!due).then(|| refresh::next_refresh(&state, now))
}

/// Whether the status reports a failed pass (`SecretSyncedError`): the retry syncs again
/// instead of skipping. A failure on a pass that had nothing due (a write conflicting with a
/// cache that had not yet seen esox's own previous write) would otherwise stay on the status
/// until the next refresh, with the Secret in sync.
fn last_pass_failed(es: &ExternalSecret) -> bool {
    es.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason.as_deref() == Some(reason::SYNC_ERROR))
    })
}

/// Whether the rollout-restart step runs for `es` (see [`rollout`]): it names targets or the
/// Reloader mode is on, and esox owns the whole Secret's data (`Owner`, `Orphan`).
fn restarts_apply(es: &ExternalSecret, ctx: &Context) -> bool {
    matches!(
        es.spec.target.creation_policy,
        CreationPolicy::Owner | CreationPolicy::Orphan
    ) && rollout::wanted(es, ctx)
}

/// Come back at the sooner of the refresh (if any) and `wait`.
fn sooner(refresh: Option<Duration>, wait: Duration) -> Action {
    Action::requeue(refresh.map_or(wait, |r| r.min(wait)))
}

fn next(state: &RefreshState<'_>, now: jiff::Timestamp) -> Action {
    match refresh::next_refresh(state, now) {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    }
}

/// Adds ESO's cleanup finalizer (a merge patch guarded by the resource version, so another
/// writer's finalizers are never lost) and returns the live object.
async fn add_finalizer(es: &ExternalSecret, ctx: &Context) -> Result<ExternalSecret, Error> {
    let mut finalizers = es.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    patch_finalizers(es, ctx, finalizers)
        .await
        .map_err(kube_err("could not add the ExternalSecret's finalizer"))
}

/// ESO's deletion: the target Secret goes first when `deletionPolicy: Delete` and this
/// ExternalSecret controls it, then the finalizer.
async fn finalize(es: &ExternalSecret, ctx: &Context, secrets: &Api<Secret>) -> Result<(), Error> {
    if !es.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    if es.spec.target.deletion_policy == DeletionPolicy::Delete {
        let name = es.target_name();
        let existing = secrets
            .get_opt(&name)
            .await
            .map_err(kube_err(format!("could not get Secret {name:?}")))?;
        if let Some(name) = target::cleanup(es, existing.as_ref()) {
            execute(SecretPlan::Delete(name.clone()), secrets, ctx).await?;
            info!(secret = %name, "secret deleted with its ExternalSecret (deletionPolicy=Delete)");
        }
    }
    let rest = es
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match patch_finalizers(es, ctx, rest).await {
        Ok(_) => Ok(()),
        // Gone already: someone else removed the last finalizer.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(kube_err("could not remove the ExternalSecret's finalizer")(
            e,
        )),
    }
}

async fn patch_finalizers(
    es: &ExternalSecret,
    ctx: &Context,
    finalizers: Vec<String>,
) -> Result<ExternalSecret, kube::Error> {
    let api: Api<ExternalSecret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": es.resource_version(),
        }
    });
    api.patch(
        &es.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

/// Carries out a plan: the one place Secrets are written. What the apiserver answers is
/// remembered ([`super::cache::KnownTargets`]), so the next plan needs no read.
async fn execute(plan: SecretPlan, secrets: &Api<Secret>, ctx: &Context) -> Result<Outcome, Error> {
    let post = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    Ok(match plan {
        SecretPlan::Create(secret) => {
            let name = secret.name_any();
            let written = secrets
                .create(&post, &secret)
                .await
                .map_err(kube_err(format!("could not create Secret {name:?}")))?;
            ctx.known_targets.observe(&written);
            Outcome::Created
        }
        SecretPlan::Replace(secret) => {
            let name = secret.name_any();
            let written = secrets
                .replace(&name, &post, &secret)
                .await
                .map_err(kube_err(format!("could not update Secret {name:?}")))?;
            ctx.known_targets.observe(&written);
            Outcome::Updated
        }
        SecretPlan::Apply { patch, exists } => {
            let name = patch["metadata"]["name"].as_str().unwrap_or_default();
            let written = secrets
                .patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(kube_err(format!("could not apply Secret {name:?}")))?;
            ctx.known_targets.observe(&written);
            if exists {
                Outcome::Updated
            } else {
                Outcome::Created
            }
        }
        SecretPlan::Delete(name) => {
            ctx.known_targets
                .forget(secrets.namespace().unwrap_or_default(), &name);
            match secrets.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(kube_err(format!("could not delete Secret {name:?}"))(e)),
            }
            Outcome::Deleted
        }
        SecretPlan::AlreadyDeleted => Outcome::Deleted,
        SecretPlan::Retain => Outcome::Retained,
        SecretPlan::Unchanged => Outcome::Unchanged,
        SecretPlan::NotManaged => Outcome::NotManaged,
        SecretPlan::Missing => Outcome::Missing,
        SecretPlan::Refuse(e) => return Err(Error::Target(e)),
    })
}

/// Status and Events for a sync, success or failure: the one place they are written.
async fn report(
    es: &ExternalSecret,
    ctx: &Context,
    synced: Result<Synced, Error>,
) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(es);
    let (outcome, at, requeue, interval, late) = match synced {
        Ok(Synced::Idle(action)) => {
            ctx.record_success(&key);
            return Ok(action);
        }
        Ok(Synced::Finalized) => return Ok(Action::await_change()),
        Ok(Synced::Refreshed {
            outcome,
            at,
            requeue,
            interval,
            late,
        }) => (outcome, at, requeue, interval, late),
        Err(err) => return report_failure(es, ctx, err).await,
    };
    let (ready, cond_reason, message) = match outcome {
        Outcome::Created | Outcome::Updated | Outcome::Unchanged | Outcome::NotManaged => {
            (true, reason::SYNCED, "secret synced")
        }
        Outcome::Retained => (
            true,
            reason::SYNCED,
            "secret retained due to DeletionPolicy=Retain",
        ),
        Outcome::Deleted => (
            true,
            reason::DELETED,
            "secret deleted due to DeletionPolicy=Delete",
        ),
        Outcome::Missing => (
            false,
            reason::MISSING,
            "secret will not be created due to CreationPolicy=Merge",
        ),
    };
    let event = match outcome {
        Outcome::Created => Some((EventType::Normal, event::CREATED, "secret created")),
        Outcome::Updated => Some((EventType::Normal, event::UPDATED, "secret updated")),
        Outcome::Deleted => Some((EventType::Normal, event::DELETED, message)),
        Outcome::Missing => Some((EventType::Warning, event::UPDATE_FAILED, message)),
        _ => None,
    };
    if let Some((type_, reason, note)) = event {
        ctx.publish(&es.object_ref(&()), type_, reason, note, "Sync")
            .await;
    }
    let message = match late {
        Some(late) if ready => {
            let late = Duration::from_secs(late.as_secs());
            warn!(late = ?late, "refresh ran late: more work than the controller's limits allow");
            format!(
                "{message} (this refresh ran {} after it was due: the controller is behind, see --concurrent and --kube-api-qps)",
                duration::format(late)
            )
        }
        _ => message.to_string(),
    };
    let old = es.status.clone().unwrap_or_default();
    let mut new = old.clone();
    set_condition(
        &mut new.conditions,
        Condition::new("Ready", ready, cond_reason, message),
    );
    new.refresh_time = Some(Time(at));
    new.synced_resource_version = Some(resource_version(es));
    new.binding = Some(LocalObjectReference {
        name: es.target_name(),
    });
    write_status(es, ctx, &old, new).await?;
    if outcome == Outcome::Missing {
        // A Merge target nobody has created yet is not watched (it has no managed label), so
        // poll for it: quickly at first, backing off to the refresh interval (5 min at most).
        let n = ctx.record_failure(&key);
        let cap = if interval.is_zero() {
            Duration::from_secs(300)
        } else {
            interval.min(Duration::from_secs(300))
        };
        return Ok(Action::requeue(
            refresh::backoff(n.saturating_sub(1)).min(cap),
        ));
    }
    ctx.record_success(&key);
    Ok(requeue)
}

/// A failed sync, by its disposition: the existing Secret is never touched.
async fn report_failure(es: &ExternalSecret, ctx: &Context, err: Error) -> Result<Action, Error> {
    let disposition = err.disposition();
    if disposition == Disposition::KeepReady {
        warn!(error = %err, "provider throttled; keeping the synced Secret and backing off");
        return Err(err);
    }
    let message = err.to_string();
    ctx.publish(
        &es.object_ref(&()),
        EventType::Warning,
        err.event_reason(),
        &message,
        "Sync",
    )
    .await;
    let old = es.status.clone().unwrap_or_default();
    let mut new = old.clone();
    set_condition(
        &mut new.conditions,
        Condition::new("Ready", false, reason::SYNC_ERROR, message),
    );
    if let Err(e) = write_status(es, ctx, &old, new).await {
        warn!(error = %e, "could not record failure in status");
    }
    match disposition {
        Disposition::WaitForChange => {
            count_error(es, ctx, &err);
            warn!(error = %err, reason = err.metric_label(), "invalid ExternalSecret; waiting for a change");
            Ok(Action::await_change())
        }
        Disposition::Retry | Disposition::KeepReady => Err(err),
    }
}

/// The template step: reads the `templateFrom` objects and runs the plugins (every
/// transformation happens in Wasm), or ESO's no-template behaviour.
async fn render(
    es: &ExternalSecret,
    ctx: &Context,
    ns: &str,
    data: crate::secret::SecretMap,
) -> Result<template::Output, Error> {
    let tpl = es.spec.target.template.as_ref();
    let sources = match tpl {
        Some(t) => template_sources(ctx, ns, t).await?,
        None => template::Sources::default(),
    };
    let runner = super::plugins::ControllerRunner::new(ctx, ns);
    template::apply(tpl, es.labels(), es.annotations(), data, &sources, &runner)
        .await
        .map_err(Error::Template)
}

/// Reads the ConfigMaps and Secrets `templateFrom` names (in the ExternalSecret's namespace).
pub(crate) async fn template_sources(
    ctx: &Context,
    ns: &str,
    tpl: &crate::api::ExternalSecretTemplate,
) -> Result<template::Sources, Error> {
    let mut sources = template::Sources::default();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for from in &tpl.template_from {
        if let Some(r) = &from.config_map
            && !sources.config_maps.contains_key(&r.name)
            && let Some(cm) = config_maps
                .get_opt(&r.name)
                .await
                .map_err(kube_err(format!("could not get ConfigMap {:?}", r.name)))?
        {
            sources
                .config_maps
                .insert(r.name.clone(), cm.data.unwrap_or_default());
        }
        if let Some(r) = &from.secret
            && !sources.secrets.contains_key(&r.name)
            && let Some(sec) = secrets
                .get_opt(&r.name)
                .await
                .map_err(kube_err(format!("could not get Secret {:?}", r.name)))?
        {
            let data = sec
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, SecretBytes::new(v.0)))
                .collect();
            sources.secrets.insert(r.name.clone(), data);
        }
    }
    Ok(sources)
}

async fn write_status(
    es: &ExternalSecret,
    ctx: &Context,
    old: &ExternalSecretStatus,
    new: ExternalSecretStatus,
) -> Result<(), Error> {
    let ready = get_condition(&new.conditions, "Ready").is_some_and(|c| c.status == "True");
    Metrics::set_condition(
        &ctx.metrics.status_condition,
        &es.name_any(),
        &es.namespace().unwrap_or_default(),
        "Ready",
        ready,
    );
    if *old == new {
        return Ok(());
    }
    let api: Api<ExternalSecret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let written = api
        .patch_status(
            &es.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": new })),
        )
        .await
        .map_err(kube_err("could not update ExternalSecret status"))?;
    // Status writes do not trigger reconciles, so the cache may show the old status to the
    // next one for a moment: remember this one until it catches up.
    ctx.written_status.record(es.resource_version(), &written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(refresh: Option<&str>, policy: &str) -> ExternalSecret {
        let mut es: ExternalSecret = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "es", "namespace": "ns"},
            "spec": {"refreshPolicy": policy, "secretStoreRef": {"name": "s"}},
        }))
        .unwrap();
        es.status = Some(ExternalSecretStatus {
            refresh_time: refresh.map(|t| Time(t.parse().unwrap())),
            ..Default::default()
        });
        es
    }

    #[test]
    fn a_failed_pass_is_synced_again() {
        let mut e = es(Some("2026-12-06T09:59:30Z"), "Periodic");
        assert!(!last_pass_failed(&e), "no condition");
        let status = e.status.as_mut().unwrap();
        set_condition(
            &mut status.conditions,
            Condition::new("Ready", true, reason::SYNCED, "secret synced"),
        );
        assert!(!last_pass_failed(&e), "synced");
        let status = e.status.as_mut().unwrap();
        set_condition(
            &mut status.conditions,
            Condition::new("Ready", false, reason::SYNC_ERROR, "conflict"),
        );
        assert!(last_pass_failed(&e), "failed");
        let status = e.status.as_mut().unwrap();
        set_condition(
            &mut status.conditions,
            Condition::new("Ready", false, reason::MISSING, "merge target"),
        );
        assert!(!last_pass_failed(&e), "a state, not a failure");
    }

    #[test]
    fn a_refresh_is_late_past_half_an_interval_and_five_seconds() {
        let now: jiff::Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let minute = Duration::from_secs(60);
        let at = |t| lateness(&es(Some(t), "Periodic"), minute, now);
        // Late by up to half an interval: not said.
        assert_eq!(at("2026-12-06T09:59:30Z"), None);
        assert_eq!(at("2026-12-06T09:58:30Z"), None);
        assert_eq!(at("2026-12-06T09:58:10Z"), Some(Duration::from_secs(50)));
        // Due at 09:58:00, two minutes ago: late by 120 s.
        assert_eq!(at("2026-12-06T09:57:00Z"), Some(Duration::from_secs(120)));
        // Short intervals: 5 s of slack at least.
        let second = Duration::from_secs(1);
        let short = |t| lateness(&es(Some(t), "Periodic"), second, now);
        assert_eq!(short("2026-12-06T09:59:55Z"), None);
        assert_eq!(short("2026-12-06T09:59:50Z"), Some(Duration::from_secs(9)));
        // Never synced, never periodic, or no interval: nothing to be late for.
        assert_eq!(lateness(&es(None, "Periodic"), minute, now), None);
        let old = Some("2026-12-06T08:00:00Z");
        assert_eq!(lateness(&es(old, "OnChange"), minute, now), None);
        assert_eq!(lateness(&es(old, "Periodic"), Duration::ZERO, now), None);
    }
}
