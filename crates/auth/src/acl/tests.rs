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

fn acl() -> Acl {
    Acl::parse(FILE).unwrap()
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
    let own = Acl::parse("user e\ntopic users/e/locked\npattern deny users/%u/locked\n").unwrap();
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
    let bridge = Acl::parse("topic write $SYS/broker/connection/#\n").unwrap();
    let b = bridge.for_client(None, "b");
    assert!(b.check("$SYS/broker/connection/b1/state", Access::Write));
    assert!(!b.check("$SYS/broker/connection/b1/other", Access::Write));
    assert!(!a.check("$SYS/broker/connection/b1/state", Access::Write));
    let r = Acl::parse("topic read $SYS/#\n")
        .unwrap()
        .for_client(None, "x");
    assert!(r.check("$SYS/broker/uptime", Access::Read));
    let wide = Acl::parse("topic read #\n").unwrap().for_client(None, "x");
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
    let acl = Acl::parse("topic readwrite a b/c\ntopic read\ttabs/x\ntopic write/x\n").unwrap();
    assert_eq!(acl.rules(), 3);
    let c = acl.for_client(None, "x");
    assert!(c.check("a b/c", Access::Write));
    assert!(c.check("tabs/x", Access::Read));
    assert!(
        c.check("write/x", Access::Write),
        "no access word: readwrite on the whole rest"
    );
}
