//! Shared subscriptions (section 4.8.2): the members of one share group on
//! one filter, and how one of them is chosen for each message.
//!
//! A group is identified by its ShareName *and* its filter: `$share/g/a` and
//! `$share/g/b` are two groups, each with its own rotation, as in 4.8.2
//! ("a Shared Subscription's Topic Filter" is the whole `$share/g/f`).

use std::sync::Arc;

use crate::SubOptions;

/// How a share group picks the member that receives a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ShareStrategy {
    /// Members in turn, in the order of their keys.
    #[default]
    RoundRobin,
    /// A uniformly chosen member, from a generator seeded at construction so
    /// a run can be replayed.
    Random,
    /// One member (chosen at random) gets everything until it leaves the
    /// group or is passed over (see [`crate::Router::route_with_skip`]).
    Sticky,
}

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
/// generators"): enough to spread load, not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so seeds 0, 1, 2 ... start far apart; the
        // generator's state must never be 0, its only fixed point.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n > 0`). The modulo bias is below n / 2^64,
    /// nothing next to a group's size.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One share group on one filter.
#[derive(Debug)]
pub(crate) struct SharedGroup<K> {
    pub(crate) name: Arc<str>,
    /// Sorted by key: the round-robin order, stable whatever the order in
    /// which members joined.
    members: Vec<(K, SubOptions)>,
    /// Round robin: the position of the next member to try.
    cursor: usize,
    /// Sticky: the member receiving the group's messages.
    sticky: Option<K>,
}

impl<K: Copy + Ord> SharedGroup<K> {
    pub(crate) fn new(name: &str) -> Self {
        SharedGroup {
            name: name.into(),
            members: Vec::new(),
            cursor: 0,
            sticky: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds a member or replaces its options.
    pub(crate) fn upsert(&mut self, key: K, opts: SubOptions) {
        match self.members.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.members[i].1 = opts,
            Err(i) => {
                // Keep the cursor on the member it pointed at, so a join does
                // not make the rotation skip or repeat anyone.
                if i < self.cursor {
                    self.cursor += 1;
                }
                self.members.insert(i, (key, opts));
            }
        }
    }

    /// Removes a member; returns whether it was one.
    pub(crate) fn remove(&mut self, key: K) -> bool {
        let Ok(i) = self.members.binary_search_by(|(k, _)| k.cmp(&key)) else {
            return false;
        };
        self.members.remove(i);
        if i < self.cursor {
            self.cursor -= 1;
        }
        if self.sticky == Some(key) {
            self.sticky = None;
        }
        true
    }

    /// Chooses the member that gets the next message, returned with its
    /// options: the caller delivers at that member's granted QoS
    /// [MQTT-4.8.2-3].
    /// Members for which `skip` is true are passed over; if every member is
    /// skipped, the member the strategy would have chosen anyway is returned,
    /// so a message is never dropped for want of a member.
    pub(crate) fn pick(
        &mut self,
        strategy: ShareStrategy,
        rng: &mut Rng,
        skip: &mut impl FnMut(K) -> bool,
    ) -> Option<(K, SubOptions)> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let i = match strategy {
            ShareStrategy::RoundRobin => {
                let start = self.cursor % n;
                let i = self.first_unskipped(start, skip).unwrap_or(start);
                self.cursor = (i + 1) % n;
                i
            }
            ShareStrategy::Random => {
                // Scanning forward from a random start slightly favours a
                // member that follows skipped ones; uniform when none is.
                let start = rng.below(n);
                self.first_unskipped(start, skip).unwrap_or(start)
            }
            ShareStrategy::Sticky => {
                let current = self
                    .sticky
                    .and_then(|s| self.members.binary_search_by(|(k, _)| k.cmp(&s)).ok());
                match current {
                    Some(i) if !skip(self.members[i].0) => i,
                    _ => {
                        let start = rng.below(n);
                        let i = match self.first_unskipped(start, skip) {
                            Some(i) => i,
                            None => current.unwrap_or(start),
                        };
                        self.sticky = Some(self.members[i].0);
                        i
                    }
                }
            }
        };
        Some(self.members[i])
    }

    fn first_unskipped(&self, start: usize, skip: &mut impl FnMut(K) -> bool) -> Option<usize> {
        let n = self.members.len();
        (0..n)
            .map(|o| (start + o) % n)
            .find(|&i| !skip(self.members[i].0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(keys: &[u64]) -> SharedGroup<u64> {
        let mut g = SharedGroup::new("g");
        for &k in keys {
            g.upsert(k, SubOptions::default());
        }
        g
    }

    fn picks(g: &mut SharedGroup<u64>, s: ShareStrategy, rng: &mut Rng, n: usize) -> Vec<u64> {
        (0..n)
            .filter_map(|_| g.pick(s, rng, &mut |_| false).map(|(k, _)| k))
            .collect()
    }

    #[test]
    fn rng_is_deterministic_and_never_stuck() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(7);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(0).0, 0);
        assert_ne!(Rng::new(0).0, Rng::new(1).0);
    }

    #[test]
    fn round_robin_survives_joins_and_leaves() {
        let mut rng = Rng::new(0);
        let mut g = group(&[30, 10, 20]);
        assert_eq!(
            picks(&mut g, ShareStrategy::RoundRobin, &mut rng, 2),
            [10, 20]
        );
        // 5 joins before the cursor: 30 is still next.
        g.upsert(5, SubOptions::default());
        assert_eq!(picks(&mut g, ShareStrategy::RoundRobin, &mut rng, 1), [30]);
        // 10 leaves from before the cursor: the rotation continues at 5.
        assert!(g.remove(10));
        assert!(!g.remove(10));
        assert_eq!(
            picks(&mut g, ShareStrategy::RoundRobin, &mut rng, 4),
            [5, 20, 30, 5]
        );
    }

    #[test]
    fn skipped_members_are_passed_over_unless_all_are() {
        let mut rng = Rng::new(0);
        let mut g = group(&[1, 2, 3]);
        let mut skip_two = |k| k == 2;
        let got: Vec<u64> = (0..4)
            .filter_map(|_| g.pick(ShareStrategy::RoundRobin, &mut rng, &mut skip_two))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, [1, 3, 1, 3]);
        let all = g.pick(ShareStrategy::RoundRobin, &mut rng, &mut |_| true);
        // The cursor was on 1 after [.., 3].
        assert_eq!(all.map(|(k, _)| k), Some(1));
    }

    #[test]
    fn sticky_moves_only_when_its_member_leaves_or_is_skipped() {
        let mut rng = Rng::new(3);
        let mut g = group(&[1, 2, 3]);
        let first = picks(&mut g, ShareStrategy::Sticky, &mut rng, 5);
        assert!(first.iter().all(|&k| k == first[0]));
        let chosen = first[0];
        let other = g
            .pick(ShareStrategy::Sticky, &mut rng, &mut |k| k == chosen)
            .map(|(k, _)| k)
            .unwrap();
        assert_ne!(other, chosen);
        // The replacement is now the sticky member.
        assert_eq!(
            picks(&mut g, ShareStrategy::Sticky, &mut rng, 3),
            [other; 3]
        );
        assert!(g.remove(other));
        let next = picks(&mut g, ShareStrategy::Sticky, &mut rng, 3);
        assert!(next.iter().all(|&k| k == next[0] && k != other));
    }

    #[test]
    fn empty_group_picks_nobody() {
        let mut g = group(&[]);
        assert!(g.is_empty());
        assert_eq!(
            g.pick(ShareStrategy::Random, &mut Rng::new(1), &mut |_| false),
            None
        );
    }
}
