//! The leases of VaultDynamicSecret values: renewed while the Secret keeps the value, the
//! next value generated before the lease ends, the previous lease revoked only once the
//! Secret holds its successor (and its consumers had time to read it).
//!
//! ESO does none of this (its generator's `Cleanup` is a no-op): a leased credential lives
//! until its TTL, every refresh leaves one more behind.
//!
//! # Where the state lives
//! On the Secret that holds the credential, in the [`ANNOTATION`]: one record per lease, with
//! the generator that issued it, its handle (Vault's `lease_id`, or the accessor of a
//! generated token), its TTL, whether it is renewable, when it ends and, for a replaced one,
//! when it is revoked. A restarted controller reads it from its Secret cache; nothing lives
//! only in memory.
//!
//! A handle is not a credential: it reads nothing and logs in nowhere, and renewing or
//! revoking with it needs a token whose policy allows `sys/leases/renew`/`revoke` (or the
//! token accessor endpoints). It is still a revocation handle, so it is kept where the
//! credential itself is: whoever can read the annotation can read the Secret's data. It is
//! never logged, and never put in a status, an event or an error ([`Record`]'s `Debug`
//! prints the generator and the times only).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// On a Secret holding leased Vault values: their leases (JSON list of [`Record`]).
pub const ANNOTATION: &str = "esox.dev/vault-leases";

/// How long a replaced lease outlives its replacement in the Secret: the time kubelet takes
/// to update mounted Secrets (its sync period, a minute by default) and an application to
/// read the file again. Never more than half the old lease's remaining life.
pub const REVOKE_GRACE: SignedDuration = SignedDuration::from_secs(120);

/// What names a lease to Vault.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handle {
    /// A secret engine's lease (`sys/leases/renew`, `sys/leases/revoke`).
    Lease(String),
    /// A generated token, by its accessor (`auth/token/renew-accessor`,
    /// `auth/token/revoke-accessor`): the token itself is never stored twice.
    Accessor(String),
}

impl Handle {
    /// What kind of handle, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Handle::Lease(_) => "lease",
            Handle::Accessor(_) => "token",
        }
    }
}

/// A lease a generator issued: what the answer said.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// Its handle.
    pub handle: Handle,
    /// Its TTL in seconds (also the increment asked for at renewal).
    pub ttl: u64,
    /// Whether Vault renews it.
    pub renewable: bool,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("kind", &self.handle.kind())
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// The lease in a Vault answer: a generated token's (`auth.accessor` with a
    /// `lease_duration`), else the answer's `lease_id`. `None` when nothing ends.
    pub fn from_answer(body: &serde_json::Value) -> Option<Issued> {
        let secs = |v: &serde_json::Value| v.as_u64().filter(|d| *d > 0);
        if let Some(auth) = body.get("auth").filter(|a| a.is_object())
            && let Some(ttl) = auth.get("lease_duration").and_then(secs)
            && let Some(accessor) = auth.get("accessor").and_then(|a| a.as_str())
            && !accessor.is_empty()
        {
            return Some(Issued {
                handle: Handle::Accessor(accessor.into()),
                ttl,
                renewable: auth.get("renewable").and_then(|r| r.as_bool()) == Some(true),
            });
        }
        let id = body.get("lease_id").and_then(|l| l.as_str())?;
        let ttl = body.get("lease_duration").and_then(secs)?;
        (!id.is_empty()).then(|| Issued {
            handle: Handle::Lease(id.into()),
            ttl,
            renewable: body.get("renewable").and_then(|r| r.as_bool()) == Some(true),
        })
    }
}

/// One lease as the Secret's annotation keeps it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The generator that issued it: `VaultDynamicSecret/<name>` (in the ExternalSecret's
    /// namespace) or `ClusterGenerator/<name>`.
    pub generator: String,
    /// Its handle.
    pub handle: Handle,
    /// Its TTL in seconds when issued: the renewal increment.
    pub ttl: u64,
    /// Whether Vault renews it.
    pub renewable: bool,
    /// When it ends (as last issued or renewed).
    pub expires: Timestamp,
    /// Set once a newer value replaced it in the Secret: when it is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_at: Option<Timestamp>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("generator", &self.generator)
            .field("kind", &self.handle.kind())
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .field("expires", &self.expires)
            .field("revoke_at", &self.revoke_at)
            .finish_non_exhaustive()
    }
}

impl Record {
    /// A lease just issued by `generator` at `now`.
    pub fn issued(generator: String, lease: Issued, now: Timestamp) -> Record {
        Record {
            generator,
            expires: now
                .checked_add(SignedDuration::from_secs(
                    lease.ttl.min(i64::MAX as u64) as i64
                ))
                .unwrap_or(Timestamp::MAX),
            handle: lease.handle,
            ttl: lease.ttl,
            renewable: lease.renewable,
            revoke_at: None,
        }
    }

    /// When the Secret's current value must be renewed (or replaced): a third of the TTL
    /// before it ends, never more than 10 minutes before (as [`renewal_time`] plans a
    /// generated credential's refresh).
    ///
    /// [`renewal_time`]: crate::controller::refresh::renewal_time
    pub fn renew_at(&self) -> Timestamp {
        let ttl = SignedDuration::from_secs(self.ttl.min(i64::MAX as u64) as i64);
        let margin = (ttl / 3).min(SignedDuration::from_mins(10));
        self.expires.checked_sub(margin).unwrap_or(Timestamp::MIN)
    }

    /// When something is next due for this lease: its renewal, or its revocation (a lease
    /// that ends first needs nothing).
    pub fn due_at(&self) -> Timestamp {
        match self.revoke_at {
            Some(at) => at.min(self.expires),
            None => self.renew_at(),
        }
    }
}

/// Reads the annotation. A value esox did not write (edited by hand) is ignored: those
/// leases end on their own.
pub fn decode(annotation: Option<&str>) -> Vec<Record> {
    annotation
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default()
}

/// Writes the annotation (`None`: no lease left, the annotation goes).
pub fn encode(records: &[Record]) -> Option<String> {
    (!records.is_empty()).then(|| serde_json::to_string(records).unwrap_or_default())
}

/// The earliest time anything is due for `records`.
pub fn next_due(records: &[Record]) -> Option<Timestamp> {
    records.iter().map(Record::due_at).min()
}

/// What a maintenance pass does at `now`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Current leases to renew (indices into the records).
    pub renew: Vec<usize>,
    /// Replaced leases to revoke now.
    pub revoke: Vec<usize>,
    /// Replaced leases that ended on their own: dropped without a call.
    pub drop: Vec<usize>,
    /// A current lease can no longer be renewed (not renewable, ended, or renewal would not
    /// reach far enough): the value must be generated again.
    pub regenerate: bool,
}

/// Plans a maintenance pass (pure).
pub fn plan(records: &[Record], now: Timestamp) -> Plan {
    let mut p = Plan::default();
    for (i, r) in records.iter().enumerate() {
        match r.revoke_at {
            Some(_) if r.expires <= now => p.drop.push(i),
            Some(at) if at <= now => p.revoke.push(i),
            Some(_) => {}
            None if r.renew_at() > now => {}
            None if r.renewable && r.expires > now => p.renew.push(i),
            None => p.regenerate = true,
        }
    }
    p
}

/// Applies a renewal Vault granted for `granted` seconds at `now`. `false` when the lease
/// will not live long enough to be worth keeping (its max TTL is near): the value must be
/// generated again, while the lease still runs.
pub fn renewed(record: &mut Record, granted: u64, now: Timestamp) -> bool {
    record.expires = now
        .checked_add(SignedDuration::from_secs(
            granted.min(i64::MAX as u64) as i64
        ))
        .unwrap_or(Timestamp::MAX);
    record.renew_at() > now && granted.saturating_mul(3) >= record.ttl
}

/// The records of the Secret's previous value once a new value (with `issued` leases)
/// replaces it at `now`: the previous current leases are scheduled for revocation after
/// [`REVOKE_GRACE`] (or half their remaining life, if shorter), already replaced ones keep
/// their schedule, ended ones are dropped.
pub fn replace(previous: Vec<Record>, issued: Vec<Record>, now: Timestamp) -> Vec<Record> {
    let mut out = issued;
    for mut r in previous {
        if r.expires <= now {
            continue;
        }
        if r.revoke_at.is_none() {
            let half = r.expires.duration_since(now) / 2;
            r.revoke_at = now.checked_add(REVOKE_GRACE.min(half)).ok();
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn record(ttl: u64, renewable: bool, expires: i64, revoke_at: Option<i64>) -> Record {
        Record {
            generator: "VaultDynamicSecret/token".into(),
            handle: Handle::Accessor("acc-canary".into()),
            ttl,
            renewable,
            expires: t(expires),
            revoke_at: revoke_at.map(t),
        }
    }

    #[test]
    fn leases_in_answers() {
        let token = serde_json::json!({"lease_id": "", "lease_duration": 0,
            "auth": {"client_token": "s.x", "accessor": "a1", "lease_duration": 60, "renewable": true}});
        assert_eq!(
            Issued::from_answer(&token),
            Some(Issued {
                handle: Handle::Accessor("a1".into()),
                ttl: 60,
                renewable: true
            })
        );
        let cert = serde_json::json!({"lease_id": "pki/issue/web/abc", "lease_duration": 600,
            "renewable": false, "auth": null, "data": {}});
        assert_eq!(
            Issued::from_answer(&cert),
            Some(Issued {
                handle: Handle::Lease("pki/issue/web/abc".into()),
                ttl: 600,
                renewable: false
            })
        );
        for none in [
            serde_json::json!({"lease_id": "", "lease_duration": 0, "data": {"k": "v"}}),
            serde_json::json!({"lease_id": "x", "lease_duration": 0}),
            serde_json::json!({"auth": {"accessor": "a", "lease_duration": 0}}),
            serde_json::json!(null),
        ] {
            assert_eq!(Issued::from_answer(&none), None, "{none}");
        }
    }

    #[test]
    fn handles_never_reach_debug_output() {
        let r = record(60, true, 60, None);
        let shown = format!(
            "{r:?} {:?}",
            Issued {
                handle: r.handle.clone(),
                ttl: 1,
                renewable: true
            }
        );
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("VaultDynamicSecret/token"), "{shown}");
    }

    #[test]
    fn the_annotation_round_trips_and_tolerates_edits() {
        let records = vec![record(60, true, 60, None), record(600, false, 30, Some(20))];
        let text = encode(&records).unwrap();
        assert_eq!(decode(Some(&text)), records);
        assert_eq!(decode(Some("not json")), vec![]);
        assert_eq!(decode(None), vec![]);
        assert_eq!(encode(&[]), None);
    }

    #[test]
    fn plans() {
        /// (records, now, renew, revoke, drop, regenerate)
        type Case = (Vec<Record>, i64, Vec<usize>, Vec<usize>, Vec<usize>, bool);
        let cases: Vec<Case> = vec![
            // 60 s renewable token issued at 0: renewed from 40 s on.
            (
                vec![record(60, true, 60, None)],
                39,
                vec![],
                vec![],
                vec![],
                false,
            ),
            (
                vec![record(60, true, 60, None)],
                40,
                vec![0],
                vec![],
                vec![],
                false,
            ),
            // Not renewable: generated again instead.
            (
                vec![record(60, false, 60, None)],
                45,
                vec![],
                vec![],
                vec![],
                true,
            ),
            // Ended (the controller was down): generated again.
            (
                vec![record(60, true, 60, None)],
                61,
                vec![],
                vec![],
                vec![],
                true,
            ),
            // 1 h lease: renewed 10 minutes before it ends, not 20.
            (
                vec![record(3600, true, 3600, None)],
                2999,
                vec![],
                vec![],
                vec![],
                false,
            ),
            (
                vec![record(3600, true, 3600, None)],
                3000,
                vec![0],
                vec![],
                vec![],
                false,
            ),
            // Replaced ones: revoked when due, dropped once ended.
            (
                vec![
                    record(60, true, 120, None),
                    record(60, true, 50, Some(30)),
                    record(60, true, 25, Some(24)),
                    record(60, true, 90, Some(40)),
                ],
                30,
                vec![],
                vec![1],
                vec![2],
                false,
            ),
        ];
        for (i, (records, now, renew, revoke, drop, regenerate)) in cases.into_iter().enumerate() {
            assert_eq!(
                plan(&records, t(now)),
                Plan {
                    renew,
                    revoke,
                    drop,
                    regenerate
                },
                "case {i}"
            );
        }
    }

    #[test]
    fn a_renewal_capped_by_the_max_ttl_asks_for_a_new_value() {
        let mut r = record(60, true, 60, None);
        assert!(renewed(&mut r, 60, t(40)));
        assert_eq!((r.expires, r.renew_at()), (t(100), t(80)));
        // The max TTL leaves 15 s: less than a third of 60 s.
        assert!(!renewed(&mut r, 15, t(80)));
        assert_eq!(r.expires, t(95));
    }

    #[test]
    fn replacing_schedules_revocations() {
        let previous = vec![
            record(3600, true, 3000, None),
            record(60, true, 100, None),
            record(60, true, 50, Some(45)),
            record(60, true, 10, None),
        ];
        let new = record(3600, true, 3620, None);
        let out = replace(previous, vec![new.clone()], t(20));
        assert_eq!(out.len(), 4, "the ended one is dropped: {out:?}");
        assert_eq!(out[0], new);
        assert_eq!(out[1].revoke_at, Some(t(140)), "two minutes");
        assert_eq!(
            out[2].revoke_at,
            Some(t(60)),
            "half of the 80 s it has left"
        );
        assert_eq!(out[3].revoke_at, Some(t(45)), "kept");
        assert_eq!(next_due(&out), Some(t(45)));
    }
}
