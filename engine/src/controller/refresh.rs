//! When to refresh and when to come back: ESO's refresh rules, spread over a per-object grid.
//!
//! ESO requeues every ExternalSecret exactly `refreshInterval` after its last sync, so
//! objects created together (or all of them, after a controller restart) refresh in the same
//! instant and hammer the provider and the apiserver. We keep ESO's decision rules (refresh
//! when the interval elapsed, when the spec, labels or annotations changed — which is how
//! force-sync works — or when the Secret drifted) and spread the periodic refreshes: each
//! object refreshes on its own grid, `phase + k × refreshInterval`, where the phase is a
//! stable hash of the object. So
//! - a refresh is never later than `refreshInterval` after the last one (the first one after
//!   a sync may come earlier: that is the spreading), which is what the documents promise
//!   ("a manual, unauthorized change will exist for a maximum of 60 seconds");
//! - in the steady state every object refreshes exactly once per interval, at the same
//!   offset, so N objects make N / interval refreshes, evenly spread;
//! - a restart changes nothing: the grid is a function of the object, not of the process.
//!
//! `status.refreshTime` has whole seconds (it is a `metav1.Time`), so the grid is in whole
//! seconds too and every computation starts from the truncated time: the reconcile that
//! refreshes and the ones after it agree on when the next refresh is due.
//!
//! Generated short-lived credentials (STSSessionToken) add a deadline of their own: a Secret
//! holding them is renewed before they expire even when `refreshInterval` is longer than their
//! lifetime (or 0), because an expired credential in a Secret is an outage for whoever mounts
//! it. The deadline is kept on the Secret ([`RENEW_AT_ANNOTATION`]) so that it survives a
//! controller restart. `CreatedOnce` and `OnChange` are the user saying "do not regenerate":
//! they are left alone.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::RngExt as _;

use crate::api::RefreshPolicy;

/// On a Secret holding generated credentials: when esox renews them (RFC 3339).
pub const RENEW_AT_ANNOTATION: &str = "esox.dev/renew-at";

/// What the reconciler knows about the last sync.
#[derive(Debug, Clone)]
pub struct RefreshState<'a> {
    /// `spec.refreshPolicy` (default Periodic).
    pub policy: RefreshPolicy,
    /// Parsed `spec.refreshInterval`.
    pub interval: Duration,
    /// `status.refreshTime`.
    pub last_refresh: Option<Timestamp>,
    /// `status.syncedResourceVersion`.
    pub synced_version: Option<&'a str>,
    /// The version string of the ExternalSecret now (generation + metadata hash).
    pub current_version: &'a str,
    /// When the generated credentials in the Secret must be renewed, if it holds any.
    pub renew_at: Option<Timestamp>,
    /// Where on its refresh grid this object sits: any stable number per object
    /// ([`phase`]).
    pub phase: u64,
}

/// The longest a requeue waits.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A stable phase for an object (FNV-1a of its uid, or of namespace/name before it has one),
/// the same in every process and every release.
pub fn phase(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// When the refresh after one at `last` is due: the object's first grid point after `last`,
/// and never later than `last + interval` (intervals below a second count as one). `None`
/// when the interval is zero (sync once).
pub fn due_at(last: Timestamp, interval: Duration, phase: u64) -> Option<Timestamp> {
    if interval.is_zero() {
        return None;
    }
    // Whole seconds, like status.refreshTime. An interval beyond what a timestamp can hold
    // (the apiserver accepts `9999999999h`) is never due: saturate instead of overflowing.
    let last = Timestamp::from_second(last.as_second()).unwrap_or(last);
    // Below a second (`1ns`, `500ms`) an interval refreshes once a second: refreshTime has
    // whole seconds, so a shorter one would be due before the refresh it follows, and the
    // object would refresh in a loop as fast as the controller can go.
    let interval = interval.max(Duration::from_secs(1));
    let Ok(step) = SignedDuration::try_from(interval) else {
        return Some(Timestamp::MAX);
    };
    let latest = last.checked_add(step).ok();
    let secs = interval.as_secs();
    if secs < 2 {
        // Sub-second and 1 s intervals have no room for a grid.
        return latest.or(Some(Timestamp::MAX));
    }
    // The first grid point at least a second after `last` (a refresh that ran at a grid
    // point is stored a fraction of a second later, truncated: the same grid point).
    let offset = i128::from(phase % secs);
    let from = i128::from(last.as_second()) + 1;
    let gap = (offset - from).rem_euclid(i128::from(secs));
    let point = i64::try_from(from + gap)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok());
    match (point, latest) {
        (Some(p), Some(l)) => Some(p.min(l)),
        (p, l) => p.or(l).or(Some(Timestamp::MAX)),
    }
}

/// Whether the data must be fetched again from the provider (ESO's `shouldRefresh`).
pub fn should_refresh(s: &RefreshState<'_>, now: Timestamp) -> bool {
    let changed = s.synced_version != Some(s.current_version);
    match s.policy {
        RefreshPolicy::CreatedOnce => s.synced_version.is_none() || s.last_refresh.is_none(),
        RefreshPolicy::OnChange => changed,
        RefreshPolicy::Periodic => {
            if changed || s.last_refresh.is_none() || s.renew_at.is_some_and(|t| t <= now) {
                return true;
            }
            let Some(last) = s.last_refresh else {
                return true;
            };
            if s.interval.is_zero() {
                return false;
            }
            // A refresh time in the future (clock skew, a restored backup) is not trusted.
            if last > now {
                return true;
            }
            due_at(last, s.interval, s.phase).is_some_and(|due| due <= now)
        }
    }
}

/// How long until the next periodic refresh is due (on the object's grid); `None` when
/// there is none.
pub fn next_refresh(s: &RefreshState<'_>, now: Timestamp) -> Option<Duration> {
    if s.policy != RefreshPolicy::Periodic {
        return None;
    }
    let until = |t: Timestamp| Duration::try_from(t.duration_since(now)).unwrap_or_default();
    // A requeue is a timer in the runtime: keep it within what a timer can hold. An object
    // whose refresh lies further out is looked at again (from the cache, for free) daily. The
    // renewal deadline is an annotation on the Secret, which anyone who can edit the Secret
    // can set to any time.
    let renewal = s.renew_at.map(until).map(|d| d.min(MAX_WAIT));
    let periodic = due_at(s.last_refresh.unwrap_or(now), s.interval, s.phase).map(until);
    let periodic = periodic.map(|d| d.min(MAX_WAIT));
    match (periodic, renewal) {
        (Some(p), Some(r)) => Some(p.min(r)),
        (p, r) => p.or(r),
    }
}

/// When to renew credentials issued at `issued` that expire at `expires`: a third of their
/// lifetime early, but never more than 10 minutes early (a 15-minute token is renewed after
/// 10 minutes, a 12-hour one after 11 h 50 min). Credentials that arrive already (nearly)
/// expired are renewed after 30 s rather than at once, so a provider with a broken clock does
/// not make the controller spin.
pub fn renewal_time(issued: Timestamp, expires: Timestamp) -> Timestamp {
    let lifetime = expires.duration_since(issued);
    let margin = (lifetime / 3).min(jiff::SignedDuration::from_mins(10));
    let floor = jiff::SignedDuration::from_secs(30);
    if lifetime - margin < floor {
        return issued + floor;
    }
    expires - margin
}

/// Random extra delay for retries: up to 10% of the interval, at most 5 minutes.
pub fn jitter(interval: Duration) -> Duration {
    let max = (interval / 10).min(Duration::from_secs(300));
    if max.is_zero() {
        return Duration::ZERO;
    }
    let ms = rand::rng().random_range(0..=max.as_millis() as u64);
    Duration::from_millis(ms)
}

/// Exponential backoff for an object that failed `failures` times in a row (1s, 2s, 4s, …
/// capped at 5 minutes), with jitter so failing objects do not retry in lockstep.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << failures.min(9));
    let capped = base.min(Duration::from_secs(300));
    capped + jitter(capped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state<'a>(
        policy: RefreshPolicy,
        interval: u64,
        last: Option<Timestamp>,
        synced: Option<&'a str>,
    ) -> RefreshState<'a> {
        RefreshState {
            policy,
            interval: Duration::from_secs(interval),
            last_refresh: last,
            synced_version: synced,
            current_version: "1-abc",
            renew_at: None,
            phase: 0,
        }
    }

    #[test]
    fn periodic() {
        let now = Timestamp::now();
        let recent = now - jiff::SignedDuration::from_secs(10);
        let old = now - jiff::SignedDuration::from_secs(4000);
        assert!(!should_refresh(
            &state(RefreshPolicy::Periodic, 3600, Some(recent), Some("1-abc")),
            now
        ));
        assert!(should_refresh(
            &state(RefreshPolicy::Periodic, 3600, Some(old), Some("1-abc")),
            now
        ));
        assert!(
            should_refresh(
                &state(RefreshPolicy::Periodic, 3600, Some(recent), Some("2-abc")),
                now
            ),
            "spec change"
        );
        assert!(should_refresh(
            &state(RefreshPolicy::Periodic, 3600, None, None),
            now
        ));
        assert!(
            !should_refresh(
                &state(RefreshPolicy::Periodic, 0, Some(old), Some("1-abc")),
                now
            ),
            "0 syncs once"
        );
    }

    #[test]
    fn created_once_and_on_change() {
        let now = Timestamp::now();
        let old = now - jiff::SignedDuration::from_secs(99999);
        assert!(!should_refresh(
            &state(RefreshPolicy::CreatedOnce, 1, Some(old), Some("0-x")),
            now
        ));
        assert!(should_refresh(
            &state(RefreshPolicy::CreatedOnce, 1, None, None),
            now
        ));
        assert!(!should_refresh(
            &state(RefreshPolicy::OnChange, 1, Some(old), Some("1-abc")),
            now
        ));
        assert!(should_refresh(
            &state(RefreshPolicy::OnChange, 1, Some(old), Some("0-abc")),
            now
        ));
    }

    #[test]
    fn generated_credentials_are_renewed_before_they_expire() {
        // On the hour, phase 0: the next grid point is an hour away.
        let now = Timestamp::from_second(3600 * 500_000).unwrap();
        let secs = jiff::SignedDuration::from_secs;
        // A renewal deadline shortens a long refresh interval.
        let mut s = state(RefreshPolicy::Periodic, 3600, Some(now), Some("1-abc"));
        s.renew_at = Some(now + secs(600));
        assert_eq!(next_refresh(&s, now), Some(Duration::from_secs(600)));
        assert!(!should_refresh(&s, now));
        assert!(should_refresh(&s, now + secs(600)), "deadline reached");
        // refreshInterval 0 (sync once) still renews credentials that would expire.
        let mut s = state(RefreshPolicy::Periodic, 0, Some(now), Some("1-abc"));
        s.renew_at = Some(now + secs(20));
        assert_eq!(next_refresh(&s, now), Some(Duration::from_secs(20)));
        // A deadline already past requeues at once.
        s.renew_at = Some(now - secs(5));
        assert_eq!(next_refresh(&s, now), Some(Duration::ZERO));
        // A short interval wins over a later deadline.
        let mut s = state(RefreshPolicy::Periodic, 60, Some(now), Some("1-abc"));
        s.renew_at = Some(now + secs(600));
        assert!(next_refresh(&s, now).unwrap() <= Duration::from_secs(66));
        // The user's "do not regenerate" policies are left alone.
        for policy in [RefreshPolicy::CreatedOnce, RefreshPolicy::OnChange] {
            let mut s = state(policy, 0, Some(now), Some("1-abc"));
            s.renew_at = Some(now - secs(5));
            assert!(!should_refresh(&s, now), "{policy:?}");
            assert_eq!(next_refresh(&s, now), None, "{policy:?}");
        }
    }

    #[test]
    fn renewal_time_leaves_a_margin() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let secs = jiff::SignedDuration::from_secs;
        assert_eq!(renewal_time(t0, t0 + secs(900)), t0 + secs(600));
        assert_eq!(renewal_time(t0, t0 + secs(43_200)), t0 + secs(43_200 - 600));
        assert_eq!(renewal_time(t0, t0 + secs(60)), t0 + secs(40));
        assert_eq!(renewal_time(t0, t0 + secs(15)), t0 + secs(30));
        assert_eq!(renewal_time(t0, t0 - secs(15)), t0 + secs(30));
    }

    #[test]
    fn refreshes_sit_on_a_grid_and_are_never_late() {
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let minute = Duration::from_secs(60);
        // Phase 7 on a 60 s grid: due at :07 of every minute.
        assert_eq!(due_at(t(1_000_020), minute, 7), Some(t(1_000_027)));
        // Refreshed at a grid point (stored a fraction later, truncated): the next one is a
        // full interval later, so the steady state is exactly one refresh per interval.
        let at = Timestamp::from_millisecond(1_000_027_400).unwrap();
        assert_eq!(due_at(at, minute, 7), Some(t(1_000_087)));
        // Never later than last + interval, whatever the phase.
        for phase in [0, 1, 59, 60, 61, u64::MAX] {
            for last in [1_000_000, 1_000_001, 1_000_059] {
                let due = due_at(t(last), minute, phase).unwrap();
                assert!(due > t(last) && due <= t(last + 60), "{phase} {last} {due}");
            }
        }
        // Different objects spread over the interval.
        let phases: std::collections::BTreeSet<_> = (0..100)
            .map(|i| due_at(t(1_000_000), minute, phase(&format!("uid-{i}"))).unwrap())
            .collect();
        assert!(phases.len() > 40, "{}", phases.len());
        // 0 never refreshes; 1 s has no grid.
        assert_eq!(due_at(t(1_000_000), Duration::ZERO, 3), None);
        assert_eq!(
            due_at(t(1_000_000), Duration::from_secs(1), 3),
            Some(t(1_000_001))
        );
    }

    #[test]
    fn huge_intervals_saturate_instead_of_panicking() {
        let now = Timestamp::now();
        // 9999999999h: accepted by the apiserver, beyond any timestamp.
        let huge = Duration::from_secs(9_999_999_999 * 3600);
        let s = state(
            RefreshPolicy::Periodic,
            huge.as_secs(),
            Some(now),
            Some("1-abc"),
        );
        assert!(!should_refresh(&s, now));
        assert_eq!(next_refresh(&s, now), Some(MAX_WAIT));
        let s = state(RefreshPolicy::Periodic, u64::MAX, Some(now), Some("1-abc"));
        assert!(!should_refresh(&s, now));
        assert_eq!(next_refresh(&s, now), Some(MAX_WAIT));
    }

    /// Every interval a Duration holds, against every instant a timestamp holds: no panic,
    /// and a requeue a runtime timer can hold.
    #[test]
    fn extreme_intervals_and_times_never_panic() {
        let intervals = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(999),
            Duration::from_secs(1),
            Duration::from_secs(2),
            crate::api::duration::MAX,
            Duration::from_secs(i64::MAX as u64),
            Duration::from_secs(i64::MAX as u64 + 1),
            Duration::MAX,
        ];
        let times = [
            Timestamp::MIN,
            Timestamp::MIN + SignedDuration::from_secs(1),
            Timestamp::UNIX_EPOCH,
            Timestamp::now(),
            Timestamp::MAX - SignedDuration::from_secs(1),
            Timestamp::MAX,
        ];
        for interval in intervals {
            for &last in &times {
                for &now in &times {
                    for phase in [0, 1, u64::MAX] {
                        for renew_at in
                            [None, Some(last), Some(Timestamp::MIN), Some(Timestamp::MAX)]
                        {
                            for policy in [
                                RefreshPolicy::Periodic,
                                RefreshPolicy::CreatedOnce,
                                RefreshPolicy::OnChange,
                            ] {
                                let s = RefreshState {
                                    policy,
                                    interval,
                                    last_refresh: Some(last),
                                    synced_version: Some("1-abc"),
                                    current_version: "1-abc",
                                    renew_at,
                                    phase,
                                };
                                should_refresh(&s, now);
                                if let Some(d) = next_refresh(&s, now) {
                                    assert!(d <= MAX_WAIT, "{interval:?} {last} {now}: {d:?}");
                                }
                                if let Some(due) = due_at(last, interval, phase) {
                                    assert!(due >= last, "{interval:?} {last} {phase}: {due}");
                                }
                            }
                        }
                    }
                }
            }
            jitter(interval);
        }
        for failures in [0, 1, 9, 10, 31, 32, u32::MAX] {
            assert!(backoff(failures) <= Duration::from_secs(330));
        }
        let t = Timestamp::now();
        for (issued, expires) in [
            (t, Timestamp::MAX),
            (t, Timestamp::MIN),
            (Timestamp::MIN, Timestamp::MAX),
        ] {
            renewal_time(issued, expires);
        }
    }

    /// `refreshInterval: 1ns` (or `500ms`) refreshes once a second, not in a loop.
    #[test]
    fn sub_second_intervals_refresh_once_a_second() {
        let last = Timestamp::from_millisecond(1_000_000_400).unwrap();
        for interval in [Duration::from_nanos(1), Duration::from_millis(500)] {
            let due = due_at(last, interval, 7).unwrap();
            assert_eq!(
                due,
                Timestamp::from_second(1_000_001).unwrap(),
                "{interval:?}"
            );
            let s = RefreshState {
                policy: RefreshPolicy::Periodic,
                interval,
                last_refresh: Some(last),
                synced_version: Some("1-abc"),
                current_version: "1-abc",
                renew_at: None,
                phase: 7,
            };
            assert!(!should_refresh(&s, last));
            assert_eq!(next_refresh(&s, last), Some(Duration::from_millis(600)));
        }
    }

    #[test]
    fn requeue_waits_for_the_grid_point() {
        let now = Timestamp::now();
        let s = state(RefreshPolicy::Periodic, 3600, Some(now), Some("1-abc"));
        let d = next_refresh(&s, now).unwrap();
        assert!(
            d > Duration::ZERO && d <= Duration::from_secs(3600),
            "{d:?}"
        );
        assert!(!should_refresh(
            &s,
            now + SignedDuration::try_from(d).unwrap() - SignedDuration::from_secs(1)
        ));
        assert!(should_refresh(
            &s,
            now + SignedDuration::try_from(d).unwrap()
        ));
        assert!(
            next_refresh(&state(RefreshPolicy::OnChange, 3600, Some(now), None), now).is_none()
        );
        assert!(backoff(0) >= Duration::from_secs(1) && backoff(0) < Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_secs(330));
    }
}
