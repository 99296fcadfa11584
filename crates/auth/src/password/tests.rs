use super::*;

/// Written by Debian's mosquitto_passwd 2.0.11 (`-c -b`, its default
/// sha512-pbkdf2, then `-H sha512`).
const MOSQUITTO: &str = "\
alice:$7$101$K78jdF5gFwU0MEYx$zpHDE3ikw7ZlwjvaZfak0tr5f+egByiwM5DRz0d9erj0DNOO/l+HAQMTbFeiiYTK9WYKpI0CPbqfzza4C6CHaA==
bob:$7$101$e6FkebWpZZ14xD3T$tC87bVgbnV2V3wsFuQRgOchkMpBgtvr077QNCSnJIemgphPxsSFFy9Hd3c8uJlH8vU7oi2hcYhygEH7jHQUMxA==
carol:$6$8FHBauyhPM0N1jiA$Kc5QXlFsjOnO+ijDyzbibXNu+Bk2EKYKmATvur5myPZqqBAtSChkJMLtPzjUJRbFo5k4zgJz0qR/dctHyDLrzg==
";

#[test]
fn reads_what_mosquitto_passwd_writes() {
    let f = PasswordFile::parse(MOSQUITTO).unwrap();
    assert_eq!(f.len(), 3);
    assert!(f.verify("alice", b"correct horse"));
    assert!(!f.verify("alice", b"correct horse "));
    assert!(f.verify("bob", b"s3cret:with:colons"));
    assert!(f.verify("carol", b"p@ss"));
    assert!(!f.verify("carol", b"p@sS"));
    assert!(!f.verify("dave", b"p@ss"));
    assert!(matches!(f.get("carol"), Some(Hash::Sha512 { .. })));
}

#[test]
fn writes_lines_it_reads_back_unchanged() {
    let f = PasswordFile::parse(MOSQUITTO).unwrap();
    assert_eq!(f.to_text(), MOSQUITTO);
}

#[test]
fn argon2id_and_pbkdf2_round_trip() {
    for kind in [HashKind::Argon2id, HashKind::Sha512Pbkdf2] {
        let h = Hash::new(kind, b"hunter2");
        let again = Hash::parse(&h.to_string()).unwrap();
        assert_eq!(again, h);
        assert!(again.verify(b"hunter2"), "{kind:?}");
        assert!(!again.verify(b"hunter3"), "{kind:?}");
        assert_eq!(again.kind(), Some(kind));
    }
    let a = Hash::new(HashKind::Argon2id, b"x").to_string();
    assert!(a.starts_with("$argon2id$v=19$"), "{a}");
    let p = Hash::new(HashKind::Sha512Pbkdf2, b"x").to_string();
    assert!(p.starts_with("$7$10000$"), "{p}");
}

#[test]
fn salts_differ() {
    let a = Hash::new(HashKind::Sha512Pbkdf2, b"same");
    let b = Hash::new(HashKind::Sha512Pbkdf2, b"same");
    assert_ne!(a, b);
}

#[test]
fn bad_lines_name_the_line() {
    let cases = [
        ("alice\n", 1, "USER:HASH"),
        ("# c\n\nalice:secret\n", 3, "plain-text"),
        (":$6$AAAA$AAAA\n", 1, "empty"),
        ("a:$7$0$AAAA$AAAA\n", 1, "iteration"),
        ("a:$7$x$AAAA$AAAA\n", 1, "iteration"),
        ("a:$6$!!$AAAA\n", 1, "base64"),
        ("a:$6$AAAA$AAAA\n", 1, "64 bytes"),
        ("a:$argon2id$garbage\n", 1, "argon2id"),
        ("a:$7$101$AAAA\n", 1, "$7$ITERATIONS"),
    ];
    for (text, line, want) in cases {
        let e = PasswordFile::parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.reason.contains(want), "{text:?}: {e}");
    }
    let twice = format!(
        "{MOSQUITTO}alice:{}\n",
        Hash::new(HashKind::Sha512Pbkdf2, b"x")
    );
    let e = PasswordFile::parse(&twice).unwrap_err();
    assert_eq!(e.line, 4);
    assert!(e.reason.contains("twice"), "{e}");
}

#[test]
fn comments_blank_lines_and_crlf() {
    let text = MOSQUITTO.replace('\n', "\r\n");
    let f = PasswordFile::parse(&format!("# users\n\n{text}")).unwrap();
    assert!(f.verify("carol", b"p@ss"));
}

#[test]
fn set_remove_and_plain_text() {
    let mut f = PasswordFile::parse(MOSQUITTO).unwrap();
    assert!(f.remove("bob"));
    assert!(!f.remove("bob"));
    assert!(f.verify("carol", b"p@ss"), "indices follow a removal");
    f.set("alice", Hash::new(HashKind::Sha512Pbkdf2, b"new"));
    assert!(f.verify("alice", b"new"));
    assert!(!f.verify("alice", b"correct horse"));
    let plain =
        PasswordFile::from_plain_text("u1:pw one\nu2:pw:two\n", HashKind::Sha512Pbkdf2).unwrap();
    assert!(plain.verify("u1", b"pw one"));
    assert!(plain.verify("u2", b"pw:two"));
    let e = PasswordFile::from_plain_text(MOSQUITTO, HashKind::Argon2id).unwrap_err();
    assert!(e.reason.contains("already"), "{e}");
}

#[test]
fn debug_hides_hashes() {
    let f = PasswordFile::parse(MOSQUITTO).unwrap();
    let shown = format!("{f:?}");
    assert!(!shown.contains("K78jdF5g"), "{shown}");
}
