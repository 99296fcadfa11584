use super::*;

const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/+/status
topic write $SYS/broker/x

user bob smith
topic bob/#

pattern read devices/%c/in
pattern write devices/%c/out
pattern readwrite users/%u/#
pattern deny users/%u/locked
";

fn parse(text: &str) -> Arc<Acl> {
    Arc::new(Acl::parse(text).unwrap())
}

fn acl() -> Arc<Acl> {
    parse(FILE)
}

#[test]
fn anonymous_clients_get_the_lines_before_the_first_user() {
    let c = acl().for_client(None, "anon-1");
    assert!(c.check("public/news", Access::Read));
    assert!(!c.check("public/news", Access::Write));
    assert!(!c.check("alice/x", Access::Read));
    // Patterns without %u apply to them too.
    assert!(c.check("devices/anon-1/in", Access::Read));
    assert!(!c.check("devices/other/in", Access::Read));
    assert!(
        !c.check("users//x", Access::Read),
        "%u patterns skip anonymous clients"
    );
}

#[test]
fn users_get_their_section_and_the_patterns() {
    let a = acl().for_client(Some("alice"), "a1");
    assert!(a.check("alice/x", Access::Write));
    assert!(a.check("alice/x/y", Access::Read));
    assert!(
        !a.check("public/news", Access::Read),
        "anonymous lines are not alice's"
    );
    assert!(a.check("shared/k/status", Access::Read));
    assert!(!a.check("shared/k/status", Access::Write));
    assert!(a.check("users/alice/x", Access::Write));
    assert!(a.check("devices/a1/out", Access::Write));
    assert!(!a.check("devices/a1/out", Access::Read));
    let b = acl().for_client(Some("bob smith"), "b");
    assert!(
        b.check("bob/1", Access::Write),
        "user names may hold spaces"
    );
    let nobody = acl().for_client(Some("carol"), "c");
    assert!(!nobody.check("alice/x", Access::Read));
    assert!(nobody.check("users/carol/x", Access::Read));
}

#[test]
fn deny_wins_wherever_it_stands() {
    let a = acl().for_client(Some("alice"), "a1");
    assert!(!a.check("alice/secret", Access::Read));
    assert!(!a.check("alice/secret", Access::Write));
    let p = acl().for_client(Some("dave"), "d");
    assert!(
        !p.check("users/dave/locked", Access::Read),
        "pattern deny before pattern allow"
    );
    // A user's own allow is decided before the patterns' deny.
    let own = parse("user e\ntopic users/e/locked\npattern deny users/%u/locked\n");
    assert!(
        own.for_client(Some("e"), "e")
            .check("users/e/locked", Access::Read)
    );
}

#[test]
fn nobody_writes_sys_topics() {
    let a = acl().for_client(Some("alice"), "a1");
    assert!(!a.check("$SYS/broker/x", Access::Write));
    // But for bridge status topics, when the ACL grants them.
    let bridge = parse("topic write $SYS/broker/connection/#\n");
    let b = bridge.for_client(None, "b");
    assert!(b.check("$SYS/broker/connection/b1/state", Access::Write));
    assert!(!b.check("$SYS/broker/connection/b1/other", Access::Write));
    assert!(!a.check("$SYS/broker/connection/b1/state", Access::Write));
    let r = parse("topic read $SYS/#\n").for_client(None, "x");
    assert!(r.check("$SYS/broker/uptime", Access::Read));
    let wide = parse("topic read #\n").for_client(None, "x");
    assert!(
        !wide.check("$SYS/broker/uptime", Access::Read),
        "# does not reach $ topics"
    );
}

#[test]
fn wildcard_names_get_nothing_from_patterns() {
    for (user, id) in [
        (Some("a+"), "c"),
        (Some("a#"), "c"),
        (None, "c/#"),
        (None, "+"),
    ] {
        let c = acl().for_client(user, id);
        assert!(!c.check("devices/c/in", Access::Read), "{user:?} {id}");
        assert!(!c.may_subscribe("devices/#"), "{user:?} {id}");
    }
}

#[test]
fn subscriptions_need_a_readable_line_under_them() {
    let a = acl().for_client(Some("alice"), "a1");
    assert!(a.may_subscribe("alice/#"));
    assert!(
        a.may_subscribe("#"),
        "# could deliver alice/...; deliveries are filtered"
    );
    assert!(a.may_subscribe("+/x/status"));
    assert!(!a.may_subscribe("alice/secret"), "covered by a deny line");
    assert!(!a.may_subscribe("bob/#"));
    assert!(!a.may_subscribe("devices/a1/out"), "write-only");
    assert!(!a.may_subscribe("$SYS/#"));
    let anon = acl().for_client(None, "z");
    assert!(anon.may_subscribe("public/+"));
    assert!(!anon.may_subscribe("private/+"));
}

#[test]
fn substitution_reads_left_to_right() {
    assert_eq!(substitute("a/%u/%c/%%c/%x", "U", "C"), "a/U/C/%C/%x");
    assert_eq!(substitute("%u%c", "", "C"), "C");
}

#[test]
fn bad_lines_name_the_line() {
    let cases = [
        ("user\n", 1, "user name"),
        ("topic read\n", 1, "no topic"),
        ("# c\ntopic a/#/b\n", 2, "#"),
        ("topic a/b+\n", 1, "+"),
        ("pattern\n", 1, "TOPIC"),
        ("\n\nallow a/b\n", 3, "expected"),
    ];
    for (text, line, want) in cases {
        let e = Acl::parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.reason.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn access_words_and_topics_with_spaces() {
    let acl = parse("topic readwrite a b/c\ntopic read\ttabs/x\ntopic write/x\n");
    assert_eq!(acl.rules(), 3);
    let c = acl.for_client(None, "x");
    assert!(c.check("a b/c", Access::Write));
    assert!(c.check("tabs/x", Access::Read));
    assert!(
        c.check("write/x", Access::Write),
        "no access word: readwrite on the whole rest"
    );
}

mod model {
    //! The indexed decision against a plain reading of Mosquitto's: each
    //! list scanned in file order with `deny` lines first.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Line {
        kind: &'static str,
        access: &'static str,
        topic: String,
    }

    fn naive(
        lines: &[Line],
        user: Option<&str>,
        client: &str,
        topic: &str,
        access: Access,
    ) -> bool {
        if access == Access::Write && !sys_writable(topic) {
            return false;
        }
        let mut section: Option<&str> = None;
        let (mut own, mut pats) = (Vec::new(), Vec::new());
        for l in lines {
            match l.kind {
                "user" => section = Some(&l.topic),
                "pattern" => pats.push(l),
                _ if section == user => own.push(l),
                _ => {}
            }
        }
        let scan = |list: Vec<&Line>, fill: bool| -> Option<bool> {
            let mut ordered: Vec<&Line> = list
                .iter()
                .copied()
                .filter(|l| l.access == "deny")
                .collect();
            ordered.extend(list.iter().copied().filter(|l| l.access != "deny"));
            for l in ordered {
                if fill && l.topic.contains("%u") && user.is_none() {
                    continue;
                }
                let t = if fill {
                    substitute(&l.topic, user.unwrap_or(""), client)
                } else {
                    l.topic.clone()
                };
                if matches(&t, topic) {
                    let g = grant(l.access).unwrap();
                    if g == Grant::Deny {
                        return Some(false);
                    }
                    if g.allows(access) {
                        return Some(true);
                    }
                }
            }
            None
        };
        let refused = !pats.is_empty()
            && (user.is_some_and(|u| u.contains(['+', '#'])) || client.contains(['+', '#']));
        scan(own, false)
            .or_else(|| if refused { None } else { scan(pats, true) })
            .unwrap_or(false)
    }

    fn level() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(vec!["a", "b", "+", "#", "%u", "%c", "$SYS"])
    }

    fn line() -> impl Strategy<Value = Line> {
        (
            proptest::sample::select(vec!["topic", "topic", "pattern", "user"]),
            proptest::sample::select(vec!["read", "write", "readwrite", "deny"]),
            proptest::collection::vec(level(), 1..4),
            proptest::sample::select(vec!["u1", "u2"]),
        )
            .prop_filter_map("valid", |(kind, access, levels, name)| {
                if kind == "user" {
                    return Some(Line {
                        kind,
                        access,
                        topic: name.to_owned(),
                    });
                }
                let hash = levels.iter().position(|l| *l == "#");
                if hash.is_some_and(|i| i + 1 != levels.len()) {
                    return None;
                }
                let topic = levels.join("/");
                if kind == "topic" && topic.contains('%') {
                    return None;
                }
                Some(Line {
                    kind,
                    access,
                    topic,
                })
            })
    }

    fn text(lines: &[Line]) -> String {
        lines
            .iter()
            .map(|l| match l.kind {
                "user" => format!("user {}\n", l.topic),
                k => format!("{k} {} {}\n", l.access, l.topic),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn indexed_decisions_are_mosquittos(
            lines in proptest::collection::vec(line(), 0..12),
            user in proptest::sample::select(vec![None, Some("u1"), Some("u2"), Some("a+")]),
            client in proptest::sample::select(vec!["a", "b", "c#"]),
            topic in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "u1", "$SYS"]), 1..4),
        ) {
            let topic = topic.join("/");
            let acl = parse(&text(&lines));
            let c = acl.for_client(user, client);
            for access in [Access::Read, Access::Write] {
                prop_assert_eq!(
                    c.check(&topic, access),
                    naive(&lines, user, client, &topic, access),
                    "{:?} {} {:?}\n{}", user, topic, access, text(&lines)
                );
            }
        }
    }
}
