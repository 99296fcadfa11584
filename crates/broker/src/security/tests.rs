use super::*;

fn listener(addr: &str, proxy: bool) -> Listener {
    let mut l = Listener::tcp(addr.parse().unwrap());
    l.proxy_protocol = proxy;
    l
}

fn anonymous(config: &AuthConfig, listeners: &[Listener]) -> Vec<bool> {
    let s = Security::load(config, listeners).unwrap();
    let mut v: Vec<bool> = (0..listeners.len()).map(|i| s.anonymous(Some(i))).collect();
    v.push(s.anonymous(None));
    v
}

#[test]
fn anonymous_only_where_the_network_cannot_reach_by_default() {
    let ls = [
        listener("127.0.0.1:1883", false),
        listener("[::1]:1883", false),
        listener("0.0.0.0:1883", false),
        listener("127.0.0.1:1884", true),
    ];
    // The last is in process.
    assert_eq!(
        anonymous(&AuthConfig::default(), &ls),
        [true, true, false, false, true]
    );
}

#[test]
fn a_password_file_closes_every_listener_to_anonymous_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "").unwrap();
    let config = AuthConfig {
        password_file: Some(pw),
        ..AuthConfig::default()
    };
    let ls = [
        listener("127.0.0.1:1883", false),
        listener("0.0.0.0:1883", false),
    ];
    assert_eq!(anonymous(&config, &ls), [false, false, false]);
}

#[test]
fn allow_anonymous_keys_override_the_default() {
    let mut open = listener("0.0.0.0:1883", false);
    open.allow_anonymous = Some(true);
    let mut closed = listener("127.0.0.1:1883", false);
    closed.allow_anonymous = Some(false);
    let ls = [open, closed, listener("0.0.0.0:1884", false)];
    assert_eq!(
        anonymous(&AuthConfig::default(), &ls),
        [true, false, false, true]
    );
    let global = AuthConfig {
        allow_anonymous: Some(true),
        ..AuthConfig::default()
    };
    assert_eq!(anonymous(&global, &ls), [true, false, true, true]);
}

#[test]
fn shared_subscriptions_are_decided_on_their_filter() {
    assert_eq!(unshared("$share/g/a/#"), "a/#");
    assert_eq!(unshared("$share/g/"), "");
    assert_eq!(unshared("a/b"), "a/b");
    assert_eq!(unshared("$share/g"), "$share/g");
}

#[test]
fn a_bad_file_names_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "user a\ntopic a/#/b\n").unwrap();
    let config = AuthConfig {
        acl_file: Some(acl),
        ..AuthConfig::default()
    };
    let e = Security::load(&config, &[]).unwrap_err();
    assert!(e.starts_with("auth.acl_file = "), "{e}");
    assert!(e.contains("acl\": line 2: # must be"), "{e}");
    let missing = AuthConfig {
        ban_file: Some(dir.path().join("nope")),
        ..AuthConfig::default()
    };
    let e = Security::load(&missing, &[]).unwrap_err();
    assert!(
        e.starts_with("auth.ban_file = ") && e.contains("nope"),
        "{e}"
    );
}
