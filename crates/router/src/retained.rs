//! The retained messages, one per topic name, in a trie by topic level so a
//! subscription's filter finds them without scanning every retained topic:
//! `a/+/c` visits only the children of `a` and their `c` children.

use crate::trie::LevelTrie;

#[derive(Debug)]
pub(crate) struct RetainedIndex<M> {
    /// The topic is kept next to the message to hand it back on a match.
    trie: LevelTrie<(Box<str>, M)>,
    count: usize,
}

impl<M: Clone> RetainedIndex<M> {
    pub(crate) fn new() -> Self {
        RetainedIndex {
            trie: LevelTrie::new(),
            count: 0,
        }
    }

    /// Replaces the retained message of `topic` [MQTT-3.3.1-5], or removes it
    /// with `None` [MQTT-3.3.1-6].
    pub(crate) fn set(&mut self, topic: &str, msg: Option<M>) {
        match msg {
            Some(msg) => {
                let id = self.trie.node_for(topic);
                let slot = self.trie.slot(id);
                if slot.is_none() {
                    self.count += 1;
                }
                *slot = Some((topic.into(), msg));
            }
            None => {
                if self.trie.remove(topic).is_some() {
                    self.count -= 1;
                }
            }
        }
    }

    /// Appends every retained (topic, message) whose topic matches `filter`.
    pub(crate) fn matching(&self, filter: &str, out: &mut Vec<(String, M)>) {
        self.trie.match_filter(filter, |(topic, msg)| {
            out.push((topic.to_string(), msg.clone()))
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }
}
