//! Retained messages: set, replace, clear [MQTT-3.3.1-5] [MQTT-3.3.1-6], and
//! matching a subscription's filter with the wildcard and `$` rules.

use strata_router::{Router, ShareStrategy};

type R = Router<u64, u32>;

fn router(retained: &[(&str, u32)]) -> R {
    let mut r = Router::new(ShareStrategy::RoundRobin, 0);
    for &(t, m) in retained {
        r.set_retained(t, Some(m));
    }
    r
}

fn matching(r: &R, filter: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    r.retained_matching(filter, &mut out);
    out.sort();
    out
}

fn topics(r: &R, filter: &str) -> Vec<String> {
    matching(r, filter).into_iter().map(|(t, _)| t).collect()
}

#[test]
fn set_replace_clear() {
    let mut r = router(&[("a/b", 1)]);
    assert_eq!(r.retained_count(), 1);
    // [MQTT-3.3.1-5]: one retained message per topic, the latest.
    r.set_retained("a/b", Some(2));
    assert_eq!(r.retained_count(), 1);
    assert_eq!(matching(&r, "a/b"), [("a/b".to_owned(), 2)]);
    r.set_retained("a/b/c", Some(3));
    // [MQTT-3.3.1-6]: cleared, and no longer sent to new subscribers.
    r.set_retained("a/b", None);
    assert_eq!(r.retained_count(), 1);
    assert_eq!(topics(&r, "a/#"), ["a/b/c"]);
    r.set_retained("a/b", None);
    r.set_retained("nothing/here", None);
    assert_eq!(r.retained_count(), 1);
    r.set_retained("a/b/c", None);
    assert_eq!(r.retained_count(), 0);
    assert!(topics(&r, "#").is_empty());
}

#[test]
fn wildcard_matching() {
    let r = router(&[
        ("sport", 1),
        ("sport/", 2),
        ("sport/tennis", 3),
        ("sport/tennis/player1", 4),
        ("sport/tennis/player1/ranking", 5),
        ("sport/golf/player1", 6),
        ("/finance", 7),
        ("a//b", 8),
    ]);
    assert_eq!(
        topics(&r, "sport/#"),
        [
            "sport",
            "sport/",
            "sport/golf/player1",
            "sport/tennis",
            "sport/tennis/player1",
            "sport/tennis/player1/ranking"
        ]
    );
    assert_eq!(topics(&r, "sport/+"), ["sport/", "sport/tennis"]);
    assert_eq!(
        topics(&r, "sport/+/player1"),
        ["sport/golf/player1", "sport/tennis/player1"]
    );
    assert_eq!(topics(&r, "+"), ["sport"]);
    assert_eq!(topics(&r, "+/+"), ["/finance", "sport/", "sport/tennis"]);
    assert_eq!(topics(&r, "/+"), ["/finance"]);
    assert_eq!(topics(&r, "a/+/b"), ["a//b"]);
    assert_eq!(topics(&r, "sport/tennis/player1"), ["sport/tennis/player1"]);
    assert!(topics(&r, "sport/tennis/player2").is_empty());
    assert!(topics(&r, "Sport").is_empty());
    assert_eq!(topics(&r, "#").len(), 8);
}

#[test]
fn dollar_topics_4_7_2() {
    // [MQTT-4.7.2-1]
    let r = router(&[
        ("$SYS/broker/uptime", 1),
        ("$SYS", 2),
        ("$other", 3),
        ("x/$y", 4),
    ]);
    assert_eq!(topics(&r, "#"), ["x/$y"]);
    assert_eq!(topics(&r, "+"), Vec::<String>::new());
    assert_eq!(topics(&r, "+/+"), ["x/$y"]);
    assert_eq!(topics(&r, "+/broker/uptime"), Vec::<String>::new());
    assert_eq!(topics(&r, "$SYS/#"), ["$SYS", "$SYS/broker/uptime"]);
    assert_eq!(topics(&r, "$SYS/+/uptime"), ["$SYS/broker/uptime"]);
    assert_eq!(topics(&r, "$other"), ["$other"]);
}
