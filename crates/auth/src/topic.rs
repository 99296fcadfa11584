//! Topic filters against topic names and against each other, by levels, as
//! MQTT matches them [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.2-1]: `#`
//! matches the parent level and any below, `+` one level, and a wildcard
//! in the first level does not match a topic that starts with `$`.

/// Whether `topic` (a topic name, no wildcards) matches `filter`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && !filter.starts_with('$') {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic name matches both filters.
pub fn intersects(a: &str, b: &str) -> bool {
    if a.starts_with('$') != b.starts_with('$') {
        // A `$` topic is matched only by a filter whose first level
        // spells it out: a wildcard, or any other literal, cannot.
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic that matches `specific` also matches `general`.
pub fn covers(general: &str, specific: &str) -> bool {
    if specific.starts_with('$') != general.starts_with('$') {
        return false;
    }
    let mut g = general.split('/');
    let mut s = specific.split('/');
    loop {
        match (g.next(), s.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(p), Some(q)) if p == q && p != "+" && p != "#" => {}
            (Some("+"), Some("+")) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filters_match_topics_by_levels() {
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/c"));
        assert!(matches("a/+", "a/b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("a/+", "a/"));
        assert!(matches("a/#", "a"), "[MQTT-4.7.1-2] # matches the parent");
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(matches("+/+", "/a"));
        assert!(!matches("+", "/a"));
        assert!(!matches("a", "a/b"));
        assert!(!matches("a/b", "a"));
    }

    #[test]
    fn wildcards_do_not_reach_dollar_topics() {
        // [MQTT-4.7.2-1]
        assert!(!matches("#", "$SYS/broker"));
        assert!(!matches("+/broker", "$SYS/broker"));
        assert!(matches("$SYS/#", "$SYS/broker"));
        assert!(!intersects("#", "$SYS/#"));
        assert!(!intersects("+/x", "$SYS/x"));
        assert!(intersects("$SYS/+", "$SYS/#"));
        assert!(!covers("#", "$SYS/x"));
        assert!(covers("$SYS/#", "$SYS/+/x"));
    }

    #[test]
    fn intersections() {
        assert!(intersects("a/+", "+/b"));
        assert!(intersects("a/#", "a"));
        assert!(intersects("a/b/c", "#"));
        assert!(!intersects("a/+", "b/#"));
        assert!(!intersects("a/+", "a/b/c"));
        assert!(intersects("a/+/c", "a/b/+"));
    }

    #[test]
    fn coverage() {
        assert!(covers("#", "a/b/#"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/+", "a/b"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/b/#", "a/#"), "a itself is not under a/b");
    }

    fn level() -> impl Strategy<Value = String> {
        proptest::sample::select(vec!["a", "b", "", "+", "#", "$s"]).prop_map(String::from)
    }

    fn filter() -> impl Strategy<Value = String> {
        proptest::collection::vec(level(), 1..4).prop_filter_map("valid filter", |levels| {
            let hash = levels.iter().position(|l| l == "#");
            if hash.is_some_and(|i| i + 1 != levels.len()) {
                return None;
            }
            if levels[1..].iter().any(|l| l == "$s") {
                return None;
            }
            Some(levels.join("/"))
        })
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(vec!["a", "b", "", "$s"]), 1..5)
            .prop_filter_map("valid topic", |levels: Vec<&str>| {
                (!levels[1..].contains(&"$s")).then(|| levels.join("/"))
            })
    }

    proptest! {
        /// A topic matching both filters means they intersect; coverage
        /// means every matching topic matches the general one.
        #[test]
        fn intersect_and_cover_agree_with_matching(a in filter(), b in filter(), t in topic()) {
            if matches(&a, &t) && matches(&b, &t) {
                prop_assert!(intersects(&a, &b), "{a} and {b} both match {t}");
            }
            if covers(&a, &b) && matches(&b, &t) {
                prop_assert!(matches(&a, &t), "{a} covers {b} but not {t}");
            }
        }
    }
}
