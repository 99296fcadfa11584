//! Property tests: random sequences of subscribe / unsubscribe / remove_all /
//! route / retained operations, run against routers with the default match
//! cache, a two-entry cache (constant eviction) and no cache, and against a
//! naive model that checks every filter against the topic level by level.
//! The three routers must agree exactly (so the cache never goes stale and
//! never changes a share-group choice), and each must agree with the model.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strata_router::{Delivery, QoS, Router, ShareStrategy, SubOptions};

/// The matching rules of section 4.7, written as plainly as possible.
fn naive_matches(filter: &str, topic: &str) -> bool {
    // [MQTT-4.7.2-1]
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    for (i, level) in f.iter().enumerate() {
        if *level == "#" {
            return true;
        }
        match t.get(i) {
            None => return false,
            Some(tl) if *level != "+" && level != tl => return false,
            Some(_) => {}
        }
    }
    f.len() == t.len()
}

/// A full filter split into (share group, filter).
fn split_share(filter: &str) -> (Option<&str>, &str) {
    match filter.strip_prefix("$share/") {
        Some(rest) => {
            let (g, f) = rest.split_once('/').unwrap();
            (Some(g), f)
        }
        None => (None, filter),
    }
}

#[derive(Debug, Default)]
struct Model {
    subs: BTreeMap<(u64, String), SubOptions>,
    retained: BTreeMap<String, u32>,
}

impl Model {
    /// Non-shared deliveries, sorted by key.
    fn direct(&self, topic: &str, publisher: Option<u64>) -> Vec<Delivery<u64>> {
        let mut by_key: BTreeMap<u64, Delivery<u64>> = BTreeMap::new();
        for ((key, filter), o) in &self.subs {
            let (group, f) = split_share(filter);
            if group.is_some() || !naive_matches(f, topic) {
                continue;
            }
            if o.no_local && publisher == Some(*key) {
                continue;
            }
            let d = by_key.entry(*key).or_insert(Delivery {
                key: *key,
                qos: QoS::AtMostOnce,
                subscription_ids: Vec::new(),
                retain_as_published: false,
                share_group: None,
            });
            d.qos = d.qos.max(o.qos);
            d.subscription_ids.extend(o.subscription_id);
            d.retain_as_published |= o.retain_as_published;
        }
        by_key
            .into_values()
            .map(|mut d| {
                d.subscription_ids.sort_unstable();
                d.subscription_ids.dedup();
                d
            })
            .collect()
    }

    /// Checks the shared deliveries: one per (group, filter) with a matching
    /// filter, each to a member of such a group with that member's options.
    fn check_shared(&self, topic: &str, shared: &[Delivery<u64>]) -> Result<(), TestCaseError> {
        let mut expected: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (_, filter) in self.subs.keys() {
            if let (Some(g), f) = split_share(filter)
                && naive_matches(f, topic)
            {
                expected.entry(g).or_default().insert(f);
            }
        }
        let mut got: BTreeMap<&str, usize> = BTreeMap::new();
        for d in shared {
            let g = d.share_group.as_deref().unwrap();
            *got.entry(g).or_default() += 1;
            let member = self.subs.iter().any(|((k, filter), o)| {
                let (group, f) = split_share(filter);
                *k == d.key
                    && group == Some(g)
                    && naive_matches(f, topic)
                    && o.qos == d.qos
                    && o.subscription_id.into_iter().collect::<Vec<_>>() == d.subscription_ids
                    && o.retain_as_published == d.retain_as_published
            });
            prop_assert!(member, "{d:?} is no matching member of {g}");
        }
        let want: BTreeMap<&str, usize> = expected.iter().map(|(g, fs)| (*g, fs.len())).collect();
        prop_assert_eq!(got, want);
        Ok(())
    }

    fn retained_matching(&self, filter: &str) -> Vec<(String, u32)> {
        self.retained
            .iter()
            .filter(|(t, _)| naive_matches(filter, t))
            .map(|(t, m)| (t.clone(), *m))
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe(u64, String, SubOptions),
    Unsubscribe(u64, String),
    RemoveAll(u64),
    Route(String, Option<u64>),
    SetRetained(String, Option<u32>),
    RetainedMatching(String),
}

fn levels(choices: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(choices), 1..=max).prop_map(|l| l.join("/"))
}

fn topic() -> impl Strategy<Value = String> {
    levels(&["a", "b", "", "$SYS", "$x"], 4)
        .prop_map(|t| if t.is_empty() { "a".to_owned() } else { t })
}

fn plain_filter() -> impl Strategy<Value = String> {
    (levels(&["a", "b", "", "+", "$SYS"], 3), any::<bool>()).prop_map(|(f, hash)| {
        match (f.is_empty(), hash) {
            (true, false) => "#".to_owned(),
            (_, true) => format!("{f}/#"),
            (false, false) => f,
        }
    })
}

fn filter() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["", "", "$share/g/", "$share/h/"][..]),
        plain_filter(),
    )
        .prop_map(|(share, f)| format!("{share}{f}"))
}

fn options(shared: bool) -> impl Strategy<Value = SubOptions> {
    (
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1u32..4),
    )
        .prop_map(move |(q, no_local, rap, id)| SubOptions {
            qos: QoS::from_u8(q).unwrap(),
            // [MQTT-3.8.3-4]: the codec refuses No Local on a shared subscription.
            no_local: no_local && !shared,
            retain_as_published: rap,
            subscription_id: id,
            ..SubOptions::default()
        })
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u64..5;
    prop_oneof![
        4 => (key.clone(), filter())
            .prop_flat_map(|(k, f)| {
                let shared = f.starts_with("$share/");
                (Just(k), Just(f), options(shared))
            })
            .prop_map(|(k, f, o)| Op::Subscribe(k, f, o)),
        2 => (key.clone(), filter()).prop_map(|(k, f)| Op::Unsubscribe(k, f)),
        1 => key.clone().prop_map(Op::RemoveAll),
        6 => (topic(), prop::option::of(key)).prop_map(|(t, p)| Op::Route(t, p)),
        1 => (topic(), prop::option::of(0u32..3)).prop_map(|(t, m)| Op::SetRetained(t, m)),
        1 => plain_filter().prop_map(Op::RetainedMatching),
    ]
}

fn strategy() -> impl Strategy<Value = ShareStrategy> {
    prop::sample::select(
        &[
            ShareStrategy::RoundRobin,
            ShareStrategy::Random,
            ShareStrategy::Sticky,
        ][..],
    )
}

fn run(ops: Vec<Op>, share: ShareStrategy, seed: u64) -> Result<(), TestCaseError> {
    let mut routers: Vec<Router<u64, u32>> = [4096, 2, 0]
        .into_iter()
        .map(|cap| Router::with_cache_capacity(share, seed, cap))
        .collect();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Subscribe(k, f, o) => {
                let existed = model.subs.insert((k, f.clone()), o).is_some();
                for r in &mut routers {
                    prop_assert_eq!(r.subscribe(k, &f, o), existed);
                }
            }
            Op::Unsubscribe(k, f) => {
                let existed = model.subs.remove(&(k, f.clone())).is_some();
                for r in &mut routers {
                    prop_assert_eq!(r.unsubscribe(k, &f), existed);
                }
            }
            Op::RemoveAll(k) => {
                model.subs.retain(|(key, _), _| *key != k);
                for r in &mut routers {
                    r.remove_all(k);
                }
            }
            Op::Route(t, p) => {
                let outs: Vec<Vec<Delivery<u64>>> = routers
                    .iter_mut()
                    .map(|r| {
                        let mut out = Vec::new();
                        r.route(&t, p, &mut out);
                        out
                    })
                    .collect();
                prop_assert_eq!(&outs[0], &outs[1], "cache of 2 differs on {}", t);
                prop_assert_eq!(&outs[0], &outs[2], "no cache differs on {}", t);
                let (shared, mut direct): (Vec<_>, Vec<_>) = outs[0]
                    .iter()
                    .cloned()
                    .partition(|d| d.share_group.is_some());
                direct.sort_by_key(|d| d.key);
                prop_assert_eq!(direct, model.direct(&t, p), "topic {}", t);
                model.check_shared(&t, &shared)?;
            }
            Op::SetRetained(t, m) => {
                match m {
                    Some(m) => model.retained.insert(t.clone(), m),
                    None => model.retained.remove(&t),
                };
                for r in &mut routers {
                    r.set_retained(&t, m);
                }
            }
            Op::RetainedMatching(f) => {
                let want = model.retained_matching(&f);
                for r in &routers {
                    let mut got = Vec::new();
                    r.retained_matching(&f, &mut got);
                    got.sort();
                    prop_assert_eq!(&got, &want, "filter {}", f);
                }
            }
        }
        for r in &routers {
            prop_assert_eq!(r.subscription_count(), model.subs.len());
            prop_assert_eq!(r.retained_count(), model.retained.len());
        }
    }
    for k in 0..5 {
        let want: Vec<(String, SubOptions)> = model
            .subs
            .iter()
            .filter(|((key, _), _)| *key == k)
            .map(|((_, f), o)| (f.clone(), *o))
            .collect();
        for r in &routers {
            prop_assert_eq!(r.subscriptions_of(k), want.clone());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn routers_agree_with_the_model(
        ops in prop::collection::vec(op(), 1..120),
        share in strategy(),
        seed in any::<u64>(),
    ) {
        run(ops, share, seed)?;
    }

    #[test]
    fn naive_matcher_agrees_with_a_lone_subscription(f in plain_filter(), t in topic()) {
        let mut r = Router::<u64, ()>::new(ShareStrategy::RoundRobin, 0);
        r.subscribe(1, &f, SubOptions::default());
        let mut out = Vec::new();
        r.route(&t, None, &mut out);
        prop_assert_eq!(out.len() == 1, naive_matches(&f, &t));
    }
}

#[test]
fn naive_matcher_follows_the_spec_examples() {
    assert!(naive_matches("sport/#", "sport"));
    assert!(naive_matches("sport/+", "sport/"));
    assert!(!naive_matches("sport/+", "sport"));
    assert!(!naive_matches("+", "/finance"));
    assert!(!naive_matches("#", "$SYS/x"));
    assert!(naive_matches("$SYS/#", "$SYS"));
}
