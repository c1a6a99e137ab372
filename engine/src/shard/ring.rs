//! Who owns an object, and whether a replica may reconcile it now: pure functions of the
//! membership (no Kubernetes here).
//!
//! Ownership is rendezvous hashing (highest random weight) of `namespace/name` over the
//! members: every member scores the key and the highest score owns it. A member joining takes
//! from each other member only the keys it now scores highest on, a member leaving gives only
//! its own keys away: the share that moves is 1/N of the objects, never a reshuffle.
//!
//! The hash is written out here (FNV-1a, then a 64-bit finaliser) rather than taken from the
//! standard library, whose hasher may change between Rust releases: replicas of two esox
//! versions (a rolling upgrade) must agree on every owner.

/// A stable 64-bit hash of `member` and `key`.
pub fn weight(member: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in member.bytes().chain([0u8]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // splitmix64's finaliser: FNV alone clusters on keys that differ in their last bytes.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member that owns `key` (`namespace/name`), or `None` for no members. Ties (never seen
/// in practice) go to the smaller name, so every replica picks the same one.
pub fn owner<'a>(key: &str, members: &'a [String]) -> Option<&'a str> {
    members
        .iter()
        .map(|m| (weight(m, key), std::cmp::Reverse(m.as_str())))
        .max()
        .map(|(_, std::cmp::Reverse(m))| m)
}

/// The key objects are sharded by.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// What one replica knows about the membership at one moment; see `docs/sharding.md` for the
/// protocol these fields implement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// This replica's identity.
    pub me: String,
    /// The membership this replica has published as acknowledged in its Lease, and its
    /// watch cache already shows that write (so the cache is at least as recent as it).
    /// `false` while a publication is on its way, before the first one, and after the Lease
    /// could not be renewed in time: nothing new starts then.
    pub ready: bool,
    /// The membership this replica published (its claim: the keys it owns over these members).
    pub acked: Vec<String>,
    /// The membership its watch cache shows now (the Leases that exist). Keys this replica
    /// owns over `acked` but not over `view` are being handed over: none starts again.
    pub view: Vec<String>,
    /// Every other member's published membership, as this replica's cache shows it.
    pub claims: Vec<(String, Vec<String>)>,
}

/// Why a replica may not reconcile a key now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The membership is changing under this replica (a publication in flight, the first one
    /// not yet made, the Lease not renewed): ask again at the next snapshot.
    NotReady,
    /// Another member owns it, or still claims it.
    NotOwned,
}

impl Snapshot {
    /// Whether this replica may start reconciling `key` now: it owns the key over the
    /// membership it published and over the one it sees, and no other member's published
    /// membership still gives that member the key.
    pub fn may_reconcile(&self, key: &str) -> Result<(), Refusal> {
        if !self.ready {
            return Err(Refusal::NotReady);
        }
        if !self.owns(key) || owner(key, &self.view) != Some(self.me.as_str()) {
            return Err(Refusal::NotOwned);
        }
        if self
            .claims
            .iter()
            .any(|(member, acked)| owner(key, acked) == Some(member.as_str()))
        {
            return Err(Refusal::NotOwned);
        }
        Ok(())
    }

    /// Whether this replica's published membership gives it `key` (what it reports as owned).
    pub fn owns(&self, key: &str) -> bool {
        owner(key, &self.acked) == Some(self.me.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| key(&format!("ns-{}", i % 10), &format!("es-{i}")))
            .collect()
    }

    #[test]
    fn the_weight_is_stable_across_builds() {
        // Replicas of two versions must agree: these values are part of the protocol.
        assert_eq!(weight("a", "ns/x"), weight("a", "ns/x"));
        assert_ne!(weight("a", "ns/x"), weight("b", "ns/x"));
        assert_eq!(weight("esox-0", "default/db"), 0xe712_ab7e_ef47_aa40);
    }

    #[test]
    fn keys_spread_evenly() {
        let m = members(&["esox-0", "esox-1", "esox-2"]);
        let ks = keys(3000);
        for who in &m {
            let n = ks
                .iter()
                .filter(|k| owner(k, &m) == Some(who.as_str()))
                .count();
            assert!((850..=1150).contains(&n), "{who} owns {n} of 3000");
        }
    }

    #[test]
    fn a_join_or_a_leave_moves_only_its_share() {
        let three = members(&["a", "b", "c"]);
        let four = members(&["a", "b", "c", "d"]);
        let ks = keys(4000);
        for k in &ks {
            let before = owner(k, &three).unwrap();
            let after = owner(k, &four).unwrap();
            // A key changes hands only to the newcomer; leaving is the same table read backwards.
            assert!(before == after || after == "d", "{k}: {before} -> {after}");
        }
        let moved = ks
            .iter()
            .filter(|k| owner(k, &three) != owner(k, &four))
            .count();
        assert!((800..=1200).contains(&moved), "{moved} of 4000 moved");
    }

    #[test]
    fn no_members_no_owner() {
        assert_eq!(owner("ns/x", &[]), None);
    }

    fn snapshot(me: &str, acked: &[&str], view: &[&str], claims: &[(&str, &[&str])]) -> Snapshot {
        Snapshot {
            me: me.into(),
            ready: true,
            acked: members(acked),
            view: members(view),
            claims: claims
                .iter()
                .map(|(m, a)| (m.to_string(), members(a)))
                .collect(),
        }
    }

    /// A key `me` owns over `with` and `other` owns over `without`.
    fn moving_key(me: &str, with: &[&str], other: &str, without: &[&str]) -> String {
        let (with, without) = (members(with), members(without));
        keys(1000)
            .into_iter()
            .find(|k| owner(k, &with) == Some(me) && owner(k, &without) == Some(other))
            .expect("some key moves")
    }

    #[test]
    fn who_may_reconcile() {
        // c joins a and b; k moves from a to c.
        let k = moving_key("c", &["a", "b", "c"], "a", &["a", "b"]);
        let ab: &[&str] = &["a", "b"];
        let abc: &[&str] = &["a", "b", "c"];
        let cases: Vec<(&str, Snapshot, Result<(), Refusal>)> = vec![
            (
                "a before it sees c",
                snapshot("a", ab, ab, &[("b", ab)]),
                Ok(()),
            ),
            (
                "a sees c: it stops before it acknowledges",
                snapshot("a", ab, abc, &[("b", ab), ("c", abc)]),
                Err(Refusal::NotOwned),
            ),
            (
                "c while a still claims k",
                snapshot("c", abc, abc, &[("a", ab), ("b", abc)]),
                Err(Refusal::NotOwned),
            ),
            (
                "c once a acknowledged c",
                snapshot("c", abc, abc, &[("a", abc), ("b", abc)]),
                Ok(()),
            ),
            (
                "c once a's Lease is gone",
                snapshot("c", &["b", "c"], &["b", "c"], &[("b", &["b", "c"])]),
                Ok(()),
            ),
            (
                "c before its own acknowledgement is published",
                snapshot("c", &[], abc, &[("a", abc), ("b", abc)]),
                Err(Refusal::NotOwned),
            ),
        ];
        for (what, s, want) in cases {
            assert_eq!(s.may_reconcile(&k), want, "{what}");
        }
        let mut not_ready = snapshot("a", ab, ab, &[]);
        not_ready.ready = false;
        assert_eq!(not_ready.may_reconcile(&k), Err(Refusal::NotReady));
    }

    #[test]
    fn two_claims_never_overlap_in_one_snapshot_pair() {
        // For every key and any two published memberships that both contain both members,
        // at most one member owns the key over its own published membership while the other
        // sees that claim: the check each makes before starting.
        let views = [
            members(&["a", "b"]),
            members(&["a", "b", "c"]),
            members(&["a", "c"]),
            members(&["b", "c"]),
        ];
        for k in keys(300) {
            for va in &views {
                for vb in &views {
                    let a = snapshot_owned("a", va, vb, "b");
                    let b = snapshot_owned("b", vb, va, "a");
                    assert!(
                        !(a.may_reconcile(&k).is_ok() && b.may_reconcile(&k).is_ok()),
                        "{k}: a over {va:?}, b over {vb:?}"
                    );
                }
            }
        }
    }

    fn snapshot_owned(me: &str, mine: &[String], theirs: &[String], other: &str) -> Snapshot {
        Snapshot {
            me: me.into(),
            ready: true,
            acked: mine.to_vec(),
            view: mine.to_vec(),
            claims: vec![(other.into(), theirs.to_vec())],
        }
    }
}
