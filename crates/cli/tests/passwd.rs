//! `strata passwd`, the binary itself: Mosquitto's flags, the hashes it
//! writes read back by strata-auth, the file's mode, and mistakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::run;
use strata_auth::{Hash, PasswordFile};

const WAIT: Duration = Duration::from_secs(30);

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("strata-passwd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn file(&self) -> String {
        self.0.join("passwd").display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn passwd(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all = vec!["passwd"];
    all.extend_from_slice(args);
    run(&all, stdin, WAIT)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn load(path: &str) -> PasswordFile {
    PasswordFile::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn create_add_change_and_delete() {
    let d = Dir::new("cycle");
    let f = d.file();
    ok(&passwd(&["-c", "-b", &f, "alice", "one"], None));
    assert!(matches!(load(&f).get("alice"), Some(Hash::Argon2id(_))));
    ok(&passwd(
        &["-H", "sha512-pbkdf2", "-b", &f, "bob", "two"],
        None,
    ));
    // Without -b, the password is the first line of stdin (a pipe).
    ok(&passwd(&[&f, "carol"], Some("three\n")));
    let file = load(&f);
    assert!(file.verify("alice", b"one"));
    assert!(matches!(file.get("bob"), Some(Hash::Pbkdf2 { .. })));
    assert!(file.verify("bob", b"two"));
    assert!(file.verify("carol", b"three"));
    // A new password replaces the old one.
    ok(&passwd(&["-b", &f, "alice", "uno"], None));
    assert!(load(&f).verify("alice", b"uno"));
    assert!(!load(&f).verify("alice", b"one"));
    ok(&passwd(&["-D", &f, "bob"], None));
    let file = load(&f);
    assert!(file.get("bob").is_none());
    assert_eq!(file.len(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[test]
fn upgrade_hashes_a_plain_text_file() {
    let d = Dir::new("upgrade");
    let f = d.file();
    std::fs::write(&f, "# users\nalice:first pw\nbob:with:colon\n").unwrap();
    ok(&passwd(&["-U", "-H", "sha512-pbkdf2", &f], None));
    let file = load(&f);
    assert!(file.verify("alice", b"first pw"));
    assert!(file.verify("bob", b"with:colon"));
    // Twice would hash hashes: refused.
    let again = passwd(&["-U", &f], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has a hash"));
}

#[test]
fn mistakes_say_what_to_do() {
    let d = Dir::new("mistakes");
    let f = d.file();
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["-H", "sha512", "-c", "-b", &f, "a", "b"],
            2,
            "argon2id or sha512-pbkdf2",
        ),
        (&["-b", &f, "a"], 2, "-b needs the password"),
        (&[&f, "a", "pw"], 2, "needs -b"),
        (&["-b", &f, "a", "pw"], 1, "-c creates it"),
        (&["-c", "-b", &f, "a:b", "pw"], 2, "no ':'"),
        (&["-D", &f, "nobody"], 1, "cannot read"),
    ];
    for (args, code, want) in cases {
        let out = passwd(args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    ok(&passwd(&["-c", "-b", &f, "a", "pw"], None));
    let out = passwd(&["-D", &f, "nobody"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("user nobody is not in"));
    assert!(Path::new(&f).exists());
}

#[test]
fn scram_credentials_for_both_mechanisms() {
    use strata_auth::scram::{Mechanism, ScramFile};
    let d = Dir::new("scram");
    let f = d.file();
    ok(&passwd(
        &["--scram", "-c", "-b", &f, "alice", "correct-horse-battery"],
        None,
    ));
    ok(&passwd(&["--scram", &f, "bob"], Some("two\n")));
    let file = ScramFile::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
    for user in ["alice", "bob"] {
        for m in Mechanism::ALL {
            assert!(file.get(user, m).is_some(), "{user} {m:?}");
        }
    }
    // The password itself is nowhere in the file.
    assert!(
        !std::fs::read_to_string(&f)
            .unwrap()
            .contains("correct-horse")
    );
    ok(&passwd(&["--scram", "-D", &f, "alice"], None));
    let file = ScramFile::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert!(file.get("alice", Mechanism::Sha256).is_none());
    assert!(file.get("bob", Mechanism::Sha512).is_some());
}
