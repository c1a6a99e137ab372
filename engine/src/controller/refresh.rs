//! When to refresh and when to come back: ESO's refresh rules, plus jitter.
//!
//! ESO requeues every ExternalSecret exactly `refreshInterval` after its last sync, so after a
//! controller restart every object refreshes in the same instant and hammers the provider. We
//! keep ESO's decision rules (refresh when the interval elapsed, when the spec, labels or
//! annotations changed — which is how force-sync works — or when the Secret drifted) and add
//! up to 10% of positive jitter (capped at 5 minutes) to every periodic requeue.
//!
//! Generated short-lived credentials (STSSessionToken) add a deadline of their own: a Secret
//! holding them is renewed before they expire even when `refreshInterval` is longer than their
//! lifetime (or 0), because an expired credential in a Secret is an outage for whoever mounts
//! it. The deadline is kept on the Secret ([`RENEW_AT_ANNOTATION`]) so that it survives a
//! controller restart. `CreatedOnce` and `OnChange` are the user saying "do not regenerate":
//! they are left alone.

use std::time::Duration;

use jiff::Timestamp;
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
            if s.interval.is_zero() {
                return false;
            }
            let last = s.last_refresh.expect("checked above");
            // A refresh time in the future (clock skew, a restored backup) is not trusted.
            if last > now {
                return true;
            }
            let due = last
                + jiff::SignedDuration::try_from(s.interval).unwrap_or(jiff::SignedDuration::MAX);
            due <= now
        }
    }
}

/// How long until the next periodic refresh, with jitter; `None` when there is none.
pub fn next_refresh(s: &RefreshState<'_>, now: Timestamp) -> Option<Duration> {
    if s.policy != RefreshPolicy::Periodic {
        return None;
    }
    // No jitter here: the renewal margin already leaves room, and renewing late is an outage.
    let renewal = s
        .renew_at
        .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or_default());
    let periodic = (!s.interval.is_zero()).then(|| {
        let elapsed = s
            .last_refresh
            .map(|t| now.duration_since(t).unsigned_abs())
            .unwrap_or_default();
        s.interval.saturating_sub(elapsed) + jitter(s.interval)
    });
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

/// Random extra delay: up to 10% of the interval, at most 5 minutes.
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
        let now = Timestamp::now();
        let secs = jiff::SignedDuration::from_secs;
        // A renewal deadline shortens a long refresh interval, and has no jitter.
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
    fn requeue_has_bounded_positive_jitter() {
        let now = Timestamp::now();
        let s = state(RefreshPolicy::Periodic, 3600, Some(now), Some("1-abc"));
        for _ in 0..100 {
            let d = next_refresh(&s, now).unwrap();
            assert!(
                d >= Duration::from_secs(3600) && d <= Duration::from_secs(3600 + 300),
                "{d:?}"
            );
        }
        assert!(
            next_refresh(&state(RefreshPolicy::OnChange, 3600, Some(now), None), now).is_none()
        );
        assert!(backoff(0) >= Duration::from_secs(1) && backoff(0) < Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_secs(330));
    }
}
