//! A trie of topic levels, used twice: the subscription index stores topic
//! filters in it and walks it with a topic name ([`LevelTrie::match_topic`]);
//! the retained index stores topic names in it and walks it with a topic
//! filter ([`LevelTrie::match_filter`]).
//!
//! Nodes live in one arena and refer to each other by index, and every walk
//! uses an explicit stack. A topic of 65,535 bytes of `/` has 65,536 levels
//! [MQTT-4.7.3-3]; a recursive walk, or the recursive `Drop` of boxed nodes,
//! that deep would overflow a thread's stack, so one SUBSCRIBE plus one
//! PUBLISH could crash the broker.
//!
//! Freed nodes go on a free list and are reused; the arena itself never
//! shrinks (its size is the high-water mark of distinct levels).

use std::collections::HashMap;

/// Index of a node in the arena. Stable while the node holds a value:
/// a node is freed only once it has no value and no children.
pub(crate) type NodeId = usize;

const ROOT: NodeId = 0;

#[derive(Debug)]
struct Node<V> {
    /// Children by literal level. The wildcard levels have fields of their
    /// own so a topic walk never looks at a child it cannot match.
    children: HashMap<Box<str>, NodeId>,
    plus: Option<NodeId>,
    hash: Option<NodeId>,
    value: Option<V>,
}

impl<V> Node<V> {
    fn new() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: None,
            value: None,
        }
    }

    fn is_unused(&self) -> bool {
        self.value.is_none()
            && self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
    }

    /// Every child with its level, wildcards included.
    fn each_child(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.children
            .iter()
            .map(|(level, &id)| (&**level, id))
            .chain(self.plus.map(|id| ("+", id)))
            .chain(self.hash.map(|id| ("#", id)))
    }
}

/// Splits the level that starts at byte `pos` off `path`. Returns the level
/// and where the next one starts; a start past the end means no level is left
/// (so `a/` has two levels, the second empty).
fn level_at(path: &str, pos: usize) -> (&str, usize) {
    let rest = &path[pos..];
    match rest.find('/') {
        Some(i) => (&rest[..i], pos + i + 1),
        None => (rest, path.len() + 1),
    }
}

#[derive(Debug)]
pub(crate) struct LevelTrie<V> {
    nodes: Vec<Node<V>>,
    free: Vec<NodeId>,
}

impl<V> LevelTrie<V> {
    pub(crate) fn new() -> Self {
        LevelTrie {
            nodes: vec![Node::new()],
            free: Vec::new(),
        }
    }

    fn child(&self, node: NodeId, level: &str) -> Option<NodeId> {
        let n = &self.nodes[node];
        match level {
            "+" => n.plus,
            "#" => n.hash,
            _ => n.children.get(level).copied(),
        }
    }

    fn alloc(&mut self) -> NodeId {
        match self.free.pop() {
            Some(id) => id,
            None => {
                self.nodes.push(Node::new());
                self.nodes.len() - 1
            }
        }
    }

    /// The node for `path`, created with its missing ancestors.
    pub(crate) fn node_for(&mut self, path: &str) -> NodeId {
        let mut node = ROOT;
        for level in path.split('/') {
            node = match self.child(node, level) {
                Some(c) => c,
                None => {
                    let c = self.alloc();
                    let n = &mut self.nodes[node];
                    match level {
                        "+" => n.plus = Some(c),
                        "#" => n.hash = Some(c),
                        _ => {
                            n.children.insert(level.into(), c);
                        }
                    }
                    c
                }
            };
        }
        node
    }

    /// The node for `path`, if it exists.
    pub(crate) fn find(&self, path: &str) -> Option<NodeId> {
        path.split('/')
            .try_fold(ROOT, |node, level| self.child(node, level))
    }

    pub(crate) fn value(&self, id: NodeId) -> Option<&V> {
        self.nodes.get(id)?.value.as_ref()
    }

    pub(crate) fn value_mut(&mut self, id: NodeId) -> Option<&mut V> {
        self.nodes.get_mut(id)?.value.as_mut()
    }

    /// The value slot of a node, to fill or replace.
    pub(crate) fn slot(&mut self, id: NodeId) -> &mut Option<V> {
        &mut self.nodes[id].value
    }

    /// Takes the value at `path` and frees the nodes left without a value or
    /// a child, so the trie holds only what is subscribed (or retained).
    pub(crate) fn remove(&mut self, path: &str) -> Option<V> {
        let mut trail = Vec::new();
        let mut node = ROOT;
        for level in path.split('/') {
            let c = self.child(node, level)?;
            trail.push((node, level));
            node = c;
        }
        let value = self.nodes[node].value.take();
        while let Some((parent, level)) = trail.pop() {
            if !self.nodes[node].is_unused() {
                break;
            }
            let p = &mut self.nodes[parent];
            match level {
                "+" => p.plus = None,
                "#" => p.hash = None,
                _ => {
                    p.children.remove(level);
                }
            }
            self.nodes[node] = Node::new();
            self.free.push(node);
            node = parent;
        }
        value
    }

    /// Calls `visit` for every value whose filter (the path it is stored
    /// under) matches the topic name `topic`. Each such node is visited once:
    /// a filter's levels line up with the topic's in exactly one way.
    pub(crate) fn match_topic(&self, topic: &str, mut visit: impl FnMut(NodeId, &V)) {
        // [MQTT-4.7.2-1]: a filter whose first level is a wildcard does not
        // match a topic starting with '$', so the root's wildcard children
        // are not followed for such a topic.
        let dollar = topic.starts_with('$');
        let mut stack = vec![(ROOT, 0)];
        while let Some((id, pos)) = stack.pop() {
            let node = &self.nodes[id];
            let wildcards = !(dollar && id == ROOT);
            if wildcards
                && let Some(h) = node.hash
                && let Some(v) = &self.nodes[h].value
            {
                // '#' matches the rest, however many levels, including none:
                // `sport/#` matches `sport` (section 4.7.1.2).
                visit(h, v);
            }
            if pos > topic.len() {
                if let Some(v) = &node.value {
                    visit(id, v);
                }
                continue;
            }
            let (level, next) = level_at(topic, pos);
            // The level is compared byte for byte, never normalized
            // [MQTT-4.7.3-4]; an empty level is a level like any other.
            if let Some(&c) = node.children.get(level) {
                stack.push((c, next));
            }
            if wildcards && let Some(p) = node.plus {
                stack.push((p, next));
            }
        }
    }

    /// Calls `visit` for every value whose path (a topic name) matches the
    /// topic filter `filter`, in no particular order.
    pub(crate) fn match_filter(&self, filter: &str, mut visit: impl FnMut(&V)) {
        let mut stack = vec![(ROOT, 0)];
        while let Some((id, pos)) = stack.pop() {
            let node = &self.nodes[id];
            if pos > filter.len() {
                if let Some(v) = &node.value {
                    visit(v);
                }
                continue;
            }
            // [MQTT-4.7.2-1]: a wildcard in the first level does not match a
            // first level starting with '$'.
            let eligible = |level: &str| !(id == ROOT && level.starts_with('$'));
            let (level, next) = level_at(filter, pos);
            match level {
                "#" => {
                    if let Some(v) = &node.value {
                        visit(v);
                    }
                    for (l, c) in node.each_child() {
                        if eligible(l) {
                            self.visit_subtree(c, &mut visit);
                        }
                    }
                }
                "+" => {
                    for (l, c) in node.each_child() {
                        if eligible(l) {
                            stack.push((c, next));
                        }
                    }
                }
                _ => {
                    if let Some(&c) = node.children.get(level) {
                        stack.push((c, next));
                    }
                }
            }
        }
    }

    fn visit_subtree(&self, top: NodeId, visit: &mut impl FnMut(&V)) {
        let mut stack = vec![top];
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id];
            if let Some(v) = &node.value {
                visit(v);
            }
            stack.extend(node.each_child().map(|(_, c)| c));
        }
    }

    /// Nodes in use, root included (for tests of pruning).
    #[cfg(test)]
    fn live_nodes(&self) -> usize {
        self.nodes.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&str]) -> LevelTrie<String> {
        let mut t = LevelTrie::new();
        for p in paths {
            let id = t.node_for(p);
            *t.slot(id) = Some((*p).to_owned());
        }
        t
    }

    fn filters_matching(t: &LevelTrie<String>, topic: &str) -> Vec<String> {
        let mut v = Vec::new();
        t.match_topic(topic, |_, f| v.push(f.clone()));
        v.sort();
        v
    }

    fn topics_matching(t: &LevelTrie<String>, filter: &str) -> Vec<String> {
        let mut v = Vec::new();
        t.match_filter(filter, |s| v.push(s.clone()));
        v.sort();
        v
    }

    #[test]
    fn level_split() {
        assert_eq!(level_at("a/b", 0), ("a", 2));
        assert_eq!(level_at("a/b", 2), ("b", 4));
        assert_eq!(level_at("a/", 2), ("", 3));
        assert_eq!(level_at("/", 0), ("", 1));
    }

    #[test]
    fn wildcards_are_dedicated_children() {
        let t = trie(&["a/+", "a/#", "a/b"]);
        let root = &t.nodes[ROOT];
        let a = root.children["a"];
        assert!(t.nodes[a].plus.is_some());
        assert!(t.nodes[a].hash.is_some());
        assert_eq!(t.nodes[a].children.len(), 1);
        assert_eq!(filters_matching(&t, "a/b"), ["a/#", "a/+", "a/b"]);
        assert_eq!(filters_matching(&t, "a"), ["a/#"]);
    }

    #[test]
    fn remove_prunes_only_unused_nodes() {
        let mut t = trie(&["a/b/c", "a/b"]);
        assert_eq!(t.live_nodes(), 4);
        assert_eq!(t.remove("a/b/c").as_deref(), Some("a/b/c"));
        assert_eq!(t.live_nodes(), 3);
        assert_eq!(t.remove("a/b/c"), None);
        assert_eq!(t.remove("a/b").as_deref(), Some("a/b"));
        assert_eq!(t.live_nodes(), 1);
        // Freed nodes are reused.
        let before = t.nodes.len();
        let t2 = t.node_for("x/y/z");
        assert!(t2 < before);
        assert_eq!(t.nodes.len(), before);
    }

    #[test]
    fn remove_of_a_missing_path_changes_nothing() {
        let mut t = trie(&["a/b"]);
        assert_eq!(t.remove("a/c"), None);
        assert_eq!(t.remove("a"), None);
        assert_eq!(t.live_nodes(), 3);
        assert_eq!(
            t.find("a/b").and_then(|id| t.value(id)).map(String::as_str),
            Some("a/b")
        );
    }

    #[test]
    fn filter_walk_with_dollar_rule() {
        let t = trie(&["$SYS/x", "a", "a/b", "a/b/c", "/", "$x"]);
        assert_eq!(topics_matching(&t, "#"), ["/", "a", "a/b", "a/b/c"]);
        assert_eq!(topics_matching(&t, "+"), ["a"]);
        assert_eq!(topics_matching(&t, "+/+"), ["/", "a/b"]);
        assert_eq!(topics_matching(&t, "a/#"), ["a", "a/b", "a/b/c"]);
        assert_eq!(topics_matching(&t, "$SYS/#"), ["$SYS/x"]);
        assert_eq!(topics_matching(&t, "$SYS/+"), ["$SYS/x"]);
        assert_eq!(topics_matching(&t, "$x"), ["$x"]);
    }

    #[test]
    fn very_deep_paths_do_not_overflow_the_stack() {
        let depth = 40_000;
        let filter = vec!["+"; depth].join("/");
        let topic = "/".repeat(depth - 1);
        let mut t = trie(&[&filter, "#"]);
        assert_eq!(filters_matching(&t, &topic).len(), 2);
        let id = t.node_for(&topic);
        *t.slot(id) = Some(topic.clone());
        assert_eq!(topics_matching(&t, &filter).len(), 2);
        assert!(t.remove(&filter).is_some());
        drop(t);
    }
}
