//! Who subscribes to one topic filter: the value stored at a filter's node in
//! the subscription trie.

use std::collections::BTreeMap;

use crate::SubOptions;
use crate::shared::SharedGroup;

#[derive(Debug)]
pub(crate) struct FilterSubs<K> {
    /// Non-shared subscriptions, one per key [MQTT-3.8.4-3]. A `BTreeMap`
    /// keeps delivery order deterministic and a join O(log n) on a filter
    /// with a million subscribers.
    pub(crate) direct: BTreeMap<K, SubOptions>,
    /// Share groups on this filter, in the order they were created; a filter
    /// rarely has more than a few, so a linear search by name is enough.
    pub(crate) groups: Vec<SharedGroup<K>>,
}

impl<K: Copy + Ord> FilterSubs<K> {
    pub(crate) fn new() -> Self {
        FilterSubs {
            direct: BTreeMap::new(),
            groups: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.groups.is_empty()
    }

    /// Adds the subscription of `key`, or replaces its options.
    pub(crate) fn upsert(&mut self, group: Option<&str>, key: K, opts: SubOptions) {
        match group {
            None => {
                self.direct.insert(key, opts);
            }
            Some(name) => {
                let i = match self.groups.iter().position(|g| &*g.name == name) {
                    Some(i) => i,
                    None => {
                        self.groups.push(SharedGroup::new(name));
                        self.groups.len() - 1
                    }
                };
                self.groups[i].upsert(key, opts);
            }
        }
    }

    /// Removes the subscription of `key`; returns whether it existed.
    pub(crate) fn remove(&mut self, group: Option<&str>, key: K) -> bool {
        match group {
            None => self.direct.remove(&key).is_some(),
            Some(name) => {
                let Some(i) = self.groups.iter().position(|g| &*g.name == name) else {
                    return false;
                };
                let removed = self.groups[i].remove(key);
                if self.groups[i].is_empty() {
                    // A group that empties is gone: its rotation does not
                    // survive to a later group of the same name.
                    self.groups.remove(i);
                }
                removed
            }
        }
    }
}
