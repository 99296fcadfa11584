//! Routing rules of sections 3.3.4, 3.8 and 4.7, one test per rule, with the
//! spec's own examples.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use strata_router::{Delivery, QoS, RetainHandling, Router, ShareStrategy, SubOptions};

type R = Router<u64, ()>;

fn router() -> R {
    Router::new(ShareStrategy::RoundRobin, 0)
}

fn qos(q: QoS) -> SubOptions {
    SubOptions {
        qos: q,
        ..SubOptions::default()
    }
}

fn with_id(q: QoS, id: u32) -> SubOptions {
    SubOptions {
        qos: q,
        subscription_id: Some(id),
        ..SubOptions::default()
    }
}

fn route(r: &mut R, topic: &str, publisher: Option<u64>) -> Vec<Delivery<u64>> {
    let mut out = Vec::new();
    r.route(topic, publisher, &mut out);
    out
}

/// Sorted keys receiving `topic`.
fn receivers(r: &mut R, topic: &str) -> Vec<u64> {
    let mut keys: Vec<u64> = route(r, topic, None).iter().map(|d| d.key).collect();
    keys.sort_unstable();
    keys
}

/// Whether a lone subscription to `filter` receives `topic`.
fn matches(filter: &str, topic: &str) -> bool {
    let mut r = router();
    r.subscribe(1, filter, SubOptions::default());
    receivers(&mut r, topic) == [1]
}

#[test]
fn multi_level_wildcard_examples_4_7_1_2() {
    for t in [
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player1/score/wimbledon",
    ] {
        assert!(matches("sport/tennis/player1/#", t), "{t}");
    }
    // '#' includes the parent level.
    assert!(matches("sport/#", "sport"));
    assert!(matches("sport/#", "sport/"));
    assert!(!matches("sport/#", "sports"));
    for t in ["sport", "a/b/c", "/", "/finance", "a//b"] {
        assert!(matches("#", t), "{t}");
    }
    assert!(matches("+/tennis/#", "sport/tennis"));
    assert!(matches("+/tennis/#", "sport/tennis/player1/ranking"));
    assert!(!matches("+/tennis/#", "sport/golf"));
}

#[test]
fn single_level_wildcard_examples_4_7_1_3() {
    assert!(matches("sport/tennis/+", "sport/tennis/player1"));
    assert!(matches("sport/tennis/+", "sport/tennis/player2"));
    assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
    assert!(!matches("sport/+", "sport"));
    assert!(matches("sport/+", "sport/"));
    assert!(matches("sport/+/player1", "sport/tennis/player1"));
    assert!(matches("+", "sport"));
    assert!(!matches("+", "sport/"));
    assert!(matches("+/+", "/finance"));
    assert!(matches("/+", "/finance"));
    assert!(!matches("+", "/finance"));
}

#[test]
fn empty_levels_are_levels() {
    assert!(matches("a//b", "a//b"));
    assert!(!matches("a//b", "a/b"));
    assert!(matches("a/+/b", "a//b"));
    assert!(matches("+/+/+", "//"));
    assert!(!matches("+/+", "//"));
    assert!(matches("/", "/"));
    assert!(!matches("/", "a"));
}

#[test]
fn no_normalization_4_7_3() {
    // [MQTT-4.7.3-4]: byte for byte, case sensitive, spaces and a leading
    // '/' significant.
    assert!(!matches("ACCOUNTS", "Accounts"));
    assert!(matches("Accounts payable", "Accounts payable"));
    assert!(!matches("finance", "/finance"));
    assert!(!matches("/finance", "finance"));
    assert!(!matches("caf\u{e9}", "cafe\u{301}"));
}

#[test]
fn dollar_topics_4_7_2() {
    // [MQTT-4.7.2-1]
    assert!(!matches("#", "$SYS/broker/uptime"));
    assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(!matches("+", "$SYS"));
    assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS"));
    assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    assert!(matches("$SYS", "$SYS"));
    // Only the first level counts.
    assert!(matches("a/#", "a/$b"));
    assert!(matches("+/+", "a/$b"));
    // Shared filters follow the same rule.
    let mut r = router();
    r.subscribe(1, "$share/g/#", SubOptions::default());
    r.subscribe(2, "$share/g/$SYS/+", SubOptions::default());
    assert_eq!(receivers(&mut r, "$SYS/x"), [2]);
    assert_eq!(receivers(&mut r, "x"), [1]);
}

#[test]
fn overlapping_subscriptions_give_one_delivery_3_3_4() {
    let mut r = router();
    r.subscribe(1, "a/+", with_id(QoS::AtMostOnce, 7));
    r.subscribe(1, "a/#", with_id(QoS::ExactlyOnce, 3));
    r.subscribe(1, "a/b", qos(QoS::AtLeastOnce));
    // The same identifier on two filters is sent once.
    r.subscribe(1, "#", with_id(QoS::AtMostOnce, 7));
    r.subscribe(2, "a/b", with_id(QoS::AtLeastOnce, 1));
    let out = route(&mut r, "a/b", None);
    assert_eq!(out.len(), 2);
    let one = out.iter().find(|d| d.key == 1).unwrap();
    // [MQTT-3.3.4-2]: the maximum QoS; [MQTT-3.3.4-3]/[MQTT-3.3.4-4]: every identifier.
    assert_eq!(one.qos, QoS::ExactlyOnce);
    assert_eq!(one.subscription_ids, [3, 7]);
    assert_eq!(one.share_group, None);
    let two = out.iter().find(|d| d.key == 2).unwrap();
    assert_eq!(
        (two.qos, &two.subscription_ids[..]),
        (QoS::AtLeastOnce, &[1][..])
    );
    // Only the matching subscriptions count.
    let out = route(&mut r, "a/c/d", None);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].subscription_ids, [3, 7]);
    assert_eq!(out[0].qos, QoS::ExactlyOnce);
}

#[test]
fn retain_as_published_is_any_of_the_matches() {
    let mut r = router();
    r.subscribe(1, "a/+", SubOptions::default());
    let rap = SubOptions {
        retain_as_published: true,
        ..SubOptions::default()
    };
    r.subscribe(1, "a/b", rap);
    let out = route(&mut r, "a/b", None);
    assert!(out[0].retain_as_published);
    assert!(!route(&mut r, "a/c", None)[0].retain_as_published);
}

#[test]
fn no_local_skips_only_the_publisher_3_8_3() {
    // [MQTT-3.8.3-3]
    let nl = SubOptions {
        no_local: true,
        ..SubOptions::default()
    };
    let mut r = router();
    r.subscribe(1, "t", nl);
    r.subscribe(2, "t", nl);
    r.subscribe(3, "t", SubOptions::default());
    let keys = |out: Vec<Delivery<u64>>| out.iter().map(|d| d.key).collect::<Vec<_>>();
    assert_eq!(keys(route(&mut r, "t", Some(1))), [2, 3]);
    assert_eq!(keys(route(&mut r, "t", Some(3))), [1, 2, 3]);
    assert_eq!(keys(route(&mut r, "t", None)), [1, 2, 3]);
    // A no_local subscription overlapping a plain one: the plain one still
    // delivers, without the no_local one's identifier.
    r.subscribe(1, "#", with_id(QoS::AtLeastOnce, 9));
    r.subscribe(
        1,
        "t",
        SubOptions {
            no_local: true,
            subscription_id: Some(4),
            ..SubOptions::default()
        },
    );
    let out = route(&mut r, "t", Some(1));
    let one = out.iter().find(|d| d.key == 1).unwrap();
    assert_eq!(one.subscription_ids, [9]);
}

#[test]
fn subscribe_again_replaces_3_8_4() {
    // [MQTT-3.8.4-3], and the answer retain handling 1 needs [MQTT-3.3.1-10].
    let mut r = router();
    assert!(!r.subscribe(1, "a/+", qos(QoS::AtMostOnce)));
    let new = SubOptions {
        qos: QoS::ExactlyOnce,
        retain_handling: RetainHandling::SendIfNew,
        subscription_id: Some(5),
        ..SubOptions::default()
    };
    assert!(r.subscribe(1, "a/+", new));
    assert_eq!(r.subscription_count(), 1);
    assert_eq!(r.subscriptions_of(1), [("a/+".to_owned(), new)]);
    let out = route(&mut r, "a/x", None);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].qos, &out[0].subscription_ids[..]),
        (QoS::ExactlyOnce, &[5][..])
    );
    // Another key, or another filter string for the same topics, is new.
    assert!(!r.subscribe(2, "a/+", new));
    assert!(!r.subscribe(1, "$share/g/a/+", new));
    assert!(r.subscribe(1, "$share/g/a/+", qos(QoS::AtLeastOnce)));
    assert_eq!(r.subscription_count(), 3);
}

#[test]
fn unsubscribe() {
    let mut r = router();
    r.subscribe(1, "a/b", SubOptions::default());
    r.subscribe(1, "a/#", SubOptions::default());
    r.subscribe(2, "a/b", SubOptions::default());
    assert!(r.unsubscribe(1, "a/b"));
    assert!(!r.unsubscribe(1, "a/b"));
    assert!(!r.unsubscribe(3, "a/b"));
    assert!(!r.unsubscribe(1, "a/+"));
    assert_eq!(receivers(&mut r, "a/b"), [1, 2]);
    assert!(r.unsubscribe(1, "a/#"));
    assert_eq!(receivers(&mut r, "a/b"), [2]);
    assert!(r.unsubscribe(2, "a/b"));
    assert_eq!(receivers(&mut r, "a/b"), Vec::<u64>::new());
    assert_eq!(r.subscription_count(), 0);
    assert!(r.subscriptions_of(1).is_empty());
}

#[test]
fn remove_all() {
    let mut r = router();
    for f in ["a", "a/#", "$share/g/a", "+"] {
        r.subscribe(1, f, SubOptions::default());
    }
    r.subscribe(2, "a", SubOptions::default());
    assert_eq!(r.subscription_count(), 5);
    assert_eq!(
        r.subscriptions_of(1)
            .into_iter()
            .map(|(f, _)| f)
            .collect::<Vec<_>>(),
        ["$share/g/a", "+", "a", "a/#"]
    );
    r.remove_all(1);
    r.remove_all(7);
    assert_eq!(r.subscription_count(), 1);
    assert!(r.subscriptions_of(1).is_empty());
    assert_eq!(receivers(&mut r, "a"), [2]);
    // Subscribing again starts afresh.
    assert!(!r.subscribe(1, "a", SubOptions::default()));
}

/// Counts per key of `n` messages on `topic`, all shared deliveries.
fn shared_counts(r: &mut R, topic: &str, n: usize) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let out = route(r, topic, None);
        assert_eq!(out.len(), 1, "one member per group [4.8.2]");
        assert_eq!(out[0].share_group.as_deref(), Some("g"));
        *counts.entry(out[0].key).or_default() += 1;
    }
    counts
}

#[test]
fn round_robin_distributes_evenly_4_8_2() {
    let mut r = router();
    for k in [4, 1, 3, 2] {
        r.subscribe(k, "$share/g/sensors/+", SubOptions::default());
    }
    let order: Vec<u64> = (0..8)
        .map(|i| route(&mut r, &format!("sensors/{i}"), None)[0].key)
        .collect();
    assert_eq!(order, [1, 2, 3, 4, 1, 2, 3, 4]);
    let counts = shared_counts(&mut r, "sensors/x", 400);
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [100; 4]);
}

#[test]
fn shared_delivery_uses_the_members_options_4_8_2_3() {
    // [MQTT-4.8.2-3]
    let mut r = router();
    r.subscribe(1, "$share/g/t", with_id(QoS::AtLeastOnce, 11));
    let out = route(&mut r, "t", None);
    assert_eq!(out[0].qos, QoS::AtLeastOnce);
    assert_eq!(out[0].subscription_ids, [11]);
}

#[test]
fn groups_and_filters_are_separate_groups() {
    let mut r = router();
    r.subscribe(1, "$share/g/t", SubOptions::default());
    r.subscribe(2, "$share/g/t", SubOptions::default());
    r.subscribe(3, "$share/h/t", SubOptions::default());
    r.subscribe(4, "$share/g/+", SubOptions::default());
    let out = route(&mut r, "t", None);
    assert_eq!(out.len(), 3);
    let mut groups: Vec<(String, u64)> = out
        .iter()
        .map(|d| (d.share_group.as_deref().unwrap().to_owned(), d.key))
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("g".to_owned(), 1),
            ("g".to_owned(), 4),
            ("h".to_owned(), 3)
        ]
    );
}

#[test]
fn sticky_keeps_one_member_until_it_leaves() {
    let mut r = Router::<u64, ()>::new(ShareStrategy::Sticky, 42);
    for k in 1..=5 {
        r.subscribe(k, "$share/g/t", SubOptions::default());
    }
    let counts = shared_counts(&mut r, "t", 50);
    assert_eq!(counts.len(), 1);
    let first = *counts.keys().next().unwrap();
    // A member joining or another leaving does not move it.
    r.subscribe(9, "$share/g/t", SubOptions::default());
    let other = if first == 1 { 2 } else { 1 };
    r.unsubscribe(other, "$share/g/t");
    assert_eq!(
        shared_counts(&mut r, "t", 20)
            .into_keys()
            .collect::<Vec<_>>(),
        [first]
    );
    r.unsubscribe(first, "$share/g/t");
    let counts = shared_counts(&mut r, "t", 20);
    assert_eq!(counts.len(), 1);
    assert!(!counts.contains_key(&first));
}

#[test]
fn random_is_seeded_and_deterministic() {
    let run = |seed: u64| {
        let mut r = Router::<u64, ()>::new(ShareStrategy::Random, seed);
        for k in 1..=4 {
            r.subscribe(k, "$share/g/t", SubOptions::default());
        }
        (0..400)
            .map(|_| route(&mut r, "t", None)[0].key)
            .collect::<Vec<_>>()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
    for k in 1..=4 {
        let n = a.iter().filter(|&&x| x == k).count();
        assert!((50..150).contains(&n), "member {k} got {n} of 400");
    }
}

#[test]
fn shared_and_non_shared_to_the_same_key_deliver_twice() {
    let mut r = router();
    r.subscribe(1, "$share/g/a/b", with_id(QoS::AtLeastOnce, 1));
    r.subscribe(1, "a/+", with_id(QoS::AtMostOnce, 2));
    r.subscribe(1, "a/#", with_id(QoS::ExactlyOnce, 3));
    let mut out = route(&mut r, "a/b", None);
    out.sort_by_key(|d| d.share_group.is_some());
    assert_eq!(out.len(), 2);
    assert_eq!(
        (
            out[0].qos,
            &out[0].subscription_ids[..],
            out[0].share_group.as_deref()
        ),
        (QoS::ExactlyOnce, &[2, 3][..], None)
    );
    assert_eq!(
        (
            out[1].qos,
            &out[1].subscription_ids[..],
            out[1].share_group.as_deref()
        ),
        (QoS::AtLeastOnce, &[1][..], Some("g"))
    );
}

#[test]
fn skipped_members_are_passed_over() {
    let mut r = router();
    for k in 1..=3 {
        r.subscribe(k, "$share/g/t", SubOptions::default());
    }
    r.subscribe(2, "t", SubOptions::default());
    let mut out = Vec::new();
    for _ in 0..4 {
        r.route_with_skip("t", None, |k| k == 2, &mut out);
    }
    let shared: Vec<u64> = out
        .iter()
        .filter(|d| d.share_group.is_some())
        .map(|d| d.key)
        .collect();
    assert_eq!(shared, [1, 3, 1, 3]);
    // skip does not touch non-shared subscriptions.
    assert_eq!(out.iter().filter(|d| d.share_group.is_none()).count(), 4);
    // All skipped: still delivered, to the next in turn.
    out.clear();
    r.route_with_skip("t", None, |_| true, &mut out);
    assert_eq!(out.iter().filter(|d| d.share_group.is_some()).count(), 1);
}

#[test]
fn route_appends_to_the_callers_buffer() {
    let mut r = router();
    r.subscribe(1, "a", SubOptions::default());
    r.subscribe(1, "+", SubOptions::default());
    let mut out = vec![Delivery {
        key: 99,
        qos: QoS::AtMostOnce,
        subscription_ids: vec![],
        retain_as_published: false,
        share_group: None,
    }];
    r.route("a", None, &mut out);
    assert_eq!(out.iter().map(|d| d.key).collect::<Vec<_>>(), [99, 1]);
}

#[test]
fn cache_sees_every_change() {
    let mut r = router();
    assert!(receivers(&mut r, "a/b").is_empty());
    r.subscribe(1, "a/+", SubOptions::default());
    assert_eq!(receivers(&mut r, "a/b"), [1]);
    r.subscribe(2, "a/+", SubOptions::default());
    assert_eq!(receivers(&mut r, "a/b"), [1, 2]);
    r.subscribe(3, "#", SubOptions::default());
    assert_eq!(receivers(&mut r, "a/b"), [1, 2, 3]);
    let g = r.generation();
    r.subscribe(3, "#", qos(QoS::ExactlyOnce));
    assert_eq!(r.generation(), g, "an option change keeps cached matches");
    let out = route(&mut r, "a/b", None);
    assert_eq!(
        out.iter().find(|d| d.key == 3).unwrap().qos,
        QoS::ExactlyOnce
    );
    r.remove_all(1);
    r.unsubscribe(3, "#");
    assert_eq!(receivers(&mut r, "a/b"), [2]);
    assert_ne!(r.generation(), g);
}
