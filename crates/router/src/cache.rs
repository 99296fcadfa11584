//! The match cache: topic name -> the trie nodes whose filters match it.
//!
//! What is cached is the set of matching *filters* (trie nodes), not the
//! subscribers: route() reads each node's current subscribers and runs the
//! share-group choice on every publish, so round robin keeps rotating and a
//! change of options or a new subscriber to an existing filter needs no
//! invalidation at all.
//!
//! Invalidation: the router bumps a generation counter whenever a filter
//! gains its first subscription or loses its last one (the only changes that
//! alter which nodes match a topic, and the only times a node id can be freed
//! and reused). Each entry records the generation it was computed at; a stale
//! entry is recomputed in place on its next lookup. A counter instead of
//! patching entries on subscribe (as nats-server does) keeps this obviously
//! correct, and lets a caller keep per-thread caches keyed on the same number.
//!
//! Bounds: at most `capacity` entries and `max_bytes` of topic and node ids.
//! Inserting past either bound clears the whole cache first: no
//! recency bookkeeping on the hot path, and the cost of a clear is paid for by
//! the insertions that filled it.

use std::collections::HashMap;

use crate::trie::NodeId;

/// Entries kept by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Bytes of topics and node ids kept at most: a client publishing to 4,096
/// distinct 64 KiB topics must not pin 256 MiB.
const MAX_BYTES: usize = 4 << 20;

#[derive(Debug)]
struct Entry {
    generation: u64,
    nodes: Vec<NodeId>,
}

impl Entry {
    fn cost(topic: &str, nodes: &[NodeId]) -> usize {
        topic.len() + std::mem::size_of_val(nodes)
    }
}

#[derive(Debug)]
pub(crate) struct MatchCache {
    map: HashMap<Box<str>, Entry>,
    capacity: usize,
    bytes: usize,
    /// Where results go when the cache is disabled (capacity 0) or a result
    /// alone exceeds the byte bound.
    uncached: Vec<NodeId>,
}

impl MatchCache {
    pub(crate) fn new(capacity: usize) -> Self {
        MatchCache {
            map: HashMap::new(),
            capacity,
            bytes: 0,
            uncached: Vec::new(),
        }
    }

    /// The nodes matching `topic` at `generation`, from the cache or from
    /// `compute` (which appends them to the vector it is given).
    pub(crate) fn get_or_compute(
        &mut self,
        topic: &str,
        generation: u64,
        mut compute: impl FnMut(&mut Vec<NodeId>),
    ) -> &[NodeId] {
        // Two lookups on a hit: returning the first lookup's borrow from one
        // branch and inserting in the other is rejected by today's borrow
        // checker, and `entry()` would allocate a key on every hit.
        let fresh = match self.map.get_mut(topic) {
            Some(entry) if entry.generation == generation => true,
            Some(entry) => {
                // Stale: recompute in place, reusing the allocation.
                let before = Entry::cost(topic, &entry.nodes);
                entry.nodes.clear();
                compute(&mut entry.nodes);
                entry.generation = generation;
                self.bytes = self.bytes - before + Entry::cost(topic, &entry.nodes);
                true
            }
            None => false,
        };
        if !fresh {
            let mut nodes = std::mem::take(&mut self.uncached);
            nodes.clear();
            compute(&mut nodes);
            let cost = Entry::cost(topic, &nodes);
            if self.capacity == 0 || cost > MAX_BYTES {
                self.uncached = nodes;
                return &self.uncached;
            }
            if self.map.len() >= self.capacity || self.bytes + cost > MAX_BYTES {
                self.map.clear();
                self.bytes = 0;
            }
            self.bytes += cost;
            self.map.insert(topic.into(), Entry { generation, nodes });
        }
        self.map.get(topic).map_or(&[], |e| &e.nodes)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_stale_and_miss() {
        let mut c = MatchCache::new(4);
        let mut calls = 0;
        let mut lookup = |c: &mut MatchCache, topic: &str, generation: u64| {
            c.get_or_compute(topic, generation, |v| {
                calls += 1;
                v.push(topic.len());
            })
            .to_vec()
        };
        assert_eq!(lookup(&mut c, "ab", 0), [2]);
        assert_eq!(lookup(&mut c, "ab", 0), [2]);
        assert_eq!(lookup(&mut c, "ab", 1), [2]);
        assert_eq!(lookup(&mut c, "abc", 1), [3]);
        assert_eq!(calls, 3);
        assert_eq!(c.len(), 2);
        assert_eq!(c.bytes, 2 + 3 + 2 * size_of::<NodeId>());
    }

    #[test]
    fn overflow_clears_everything() {
        let mut c = MatchCache::new(3);
        for t in ["a", "b", "c"] {
            c.get_or_compute(t, 0, |v| v.push(1));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get_or_compute("d", 0, |v| v.push(9)), [9]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn disabled_cache_still_answers() {
        let mut c = MatchCache::new(0);
        assert_eq!(c.get_or_compute("a", 0, |v| v.push(5)), [5]);
        assert_eq!(c.get_or_compute("a", 0, |v| v.push(6)), [6]);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn results_over_the_byte_bound_are_not_kept() {
        let mut c = MatchCache::new(8);
        let big = "x".repeat(MAX_BYTES + 1);
        assert_eq!(c.get_or_compute(&big, 0, |v| v.push(1)), [1]);
        assert_eq!(c.len(), 0);
        assert_eq!(c.bytes, 0);
    }
}
