use super::*;

#[test]
fn empty_file_gives_defaults() {
    let c = BrokerConfig::from_toml("").unwrap();
    assert_eq!(
        c.listeners,
        vec![Listener::tcp("127.0.0.1:1883".parse().unwrap())]
    );
    assert_eq!(c.session, strata_session::Config::default());
}

#[test]
fn storage_section() {
    // A file's defaults are durable; the library's (embedding, tests)
    // keep state in memory.
    let c = BrokerConfig::from_toml("").unwrap();
    assert_eq!(
        c.storage,
        StorageConfig {
            data_dir: Some(DEFAULT_DATA_DIR.into()),
            ..StorageConfig::default()
        }
    );
    assert_eq!(StorageConfig::default().data_dir, None);
    let c = BrokerConfig::from_toml(
        "[storage]\ndata_dir = \"/var/lib/strata\"\nfsync = \"interval\"\nfsync_interval_ms = 5\n",
    )
    .unwrap();
    assert_eq!(
        c.storage.data_dir.as_deref(),
        Some(Path::new("/var/lib/strata"))
    );
    assert_eq!(c.storage.fsync, Fsync::Interval(Duration::from_millis(5)));
    let e = BrokerConfig::from_toml("[storage]\nfsync = \"sometimes\"\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "storage.fsync = \"sometimes\": use \"always\", \"interval\" or \"never\""
    );
    let e = BrokerConfig::from_toml("[storage]\ndata_dir = \"\"\n").unwrap_err();
    assert!(e.to_string().starts_with("storage.data_dir"), "{e}");
    // Durable by default; in memory only when asked, and not both.
    let c = BrokerConfig::from_toml("").unwrap();
    assert_eq!(c.storage.data_dir.as_deref(), Some(Path::new("./data")));
    let c = BrokerConfig::from_toml("[storage]\nin_memory = true\n").unwrap();
    assert_eq!(c.storage.data_dir, None);
    let e = BrokerConfig::from_toml("[storage]\nin_memory = true\ndata_dir = \"d\"\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("storage.in_memory = true: remove"),
        "{e}"
    );
}

#[test]
fn errors_name_the_key_and_the_fix() {
    let e = BrokerConfig::from_toml("[limits]\nmaximum_qos = 3\n").unwrap_err();
    assert_eq!(e.to_string(), "limits.maximum_qos = 3: use 0, 1 or 2");
    let e = BrokerConfig::from_toml("[[listener]]\nbind = \"localhost\"\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "listener.bind = \"localhost\": use HOST:PORT with a numeric address, e.g. \"127.0.0.1:1883\" or \"[::1]:1883\""
    );
    let e = BrokerConfig::from_toml("[shared_subscriptions]\nstrategy = \"fair\"\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("shared_subscriptions.strategy = \"fair\"")
    );
    let e = BrokerConfig::from_toml("[storage]\ncompact_after_records = 0\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "storage.compact_after_records = 0: use a positive number of records, e.g. 1000000"
    );
    let c = BrokerConfig::from_toml("[storage]\ncompact_after_records = 5000\n").unwrap();
    assert_eq!(c.storage.compact_after_records, 5000);
}

#[test]
fn unknown_keys_are_refused() {
    let e = BrokerConfig::from_toml("[limits]\nmax_packet = 10\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("unknown field `max_packet`"), "{msg}");
    assert!(msg.contains("max_packet_size"), "{msg}");
}

#[test]
fn reference_file_parses() {
    let text = include_str!("../../../../strata.toml");
    BrokerConfig::from_toml(text).unwrap();
}

#[test]
fn queue_qos0_messages_is_off_unless_set() {
    assert!(!BrokerConfig::from_toml("").unwrap().queue_qos0_messages);
    let c = BrokerConfig::from_toml("[limits]\nqueue_qos0_messages = true\n").unwrap();
    assert!(c.queue_qos0_messages);
}

#[test]
fn auth_files_are_read_from_the_config_directory() {
    let text = "[auth]\nallow_anonymous = true\npassword_file = \"passwd\"\nacl_file = \"/abs/acl\"\nban_file = \"sub/bans\"\n\n[[listener]]\nbind = \"0.0.0.0:1883\"\nallow_anonymous = false\n";
    let c = BrokerConfig::from_toml_in(text, Some(Path::new("/etc/strata"))).unwrap();
    assert_eq!(c.auth.allow_anonymous, Some(true));
    assert_eq!(
        c.auth.password_file.as_deref(),
        Some(Path::new("/etc/strata/passwd"))
    );
    assert_eq!(c.auth.acl_file.as_deref(), Some(Path::new("/abs/acl")));
    assert_eq!(
        c.auth.ban_file.as_deref(),
        Some(Path::new("/etc/strata/sub/bans"))
    );
    assert_eq!(c.listeners[0].allow_anonymous, Some(false));
    assert!(c.auth.authenticates());
    assert!(!BrokerConfig::from_toml("").unwrap().auth.authenticates());
}

#[test]
fn an_empty_auth_path_is_refused() {
    let e = BrokerConfig::from_toml("[auth]\nacl_file = \"\"\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "auth.acl_file = \"\": give the file's path, or remove the key"
    );
    let e = BrokerConfig::from_toml("[auth]\nacl = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("acl_file"), "{e}");
}

#[test]
fn jwt_needs_a_key_and_never_takes_none() {
    let c = BrokerConfig::from_toml_in(
        "[auth.jwt]\nsecret_file = \"jwt.secret\"\nacl_claim = \"acl\"\n",
        Some(Path::new("/etc/strata")),
    )
    .unwrap();
    let j = c.auth.jwt.as_ref().unwrap();
    assert_eq!(
        j.secret_file.as_deref(),
        Some(Path::new("/etc/strata/jwt.secret"))
    );
    assert_eq!(j.username_claim, "sub");
    assert_eq!(j.acl_claim.as_deref(), Some("acl"));
    assert!(c.auth.authenticates());
    let e = BrokerConfig::from_toml("[auth.jwt]\nalgorithms = [\"HS256\"]\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("auth.jwt = a table without keys: set secret_file"),
        "{e}"
    );
    let e = BrokerConfig::from_toml("[auth.jwt]\nsecret_file = \"s\"\nalgorithms = [\"none\"]\n")
        .unwrap_err();
    assert!(e.to_string().contains("never accepted"), "{e}");
}

#[test]
fn client_limits() {
    let c = BrokerConfig::from_toml(
        "[limits]\nmax_connections_per_address = 5\nconnect_rate_per_address = 2\nmax_failed_logins = 4\nfailed_login_block_secs = 9\nmax_subscriptions = 7\nmax_topic_length = 100\nmax_topic_levels = 3\npublish_rate = 10\npublish_bytes_rate = 1000\n\n[[listener]]\nbind = \"127.0.0.1:1\"\nmax_connections = 3\n",
    )
    .unwrap();
    let l = &c.limits;
    assert_eq!(
        (
            l.max_connections_per_address,
            l.connect_rate_per_address,
            l.max_failed_logins
        ),
        (5, 2, 4)
    );
    assert_eq!(l.failed_login_block, Duration::from_secs(9));
    assert_eq!(
        (l.max_subscriptions, l.max_topic_length, l.max_topic_levels),
        (7, 100, 3)
    );
    assert_eq!((l.publish_rate, l.publish_bytes_rate), (10, 1000));
    assert_eq!(c.listeners[0].max_connections, Some(3));
    for (text, key) in [
        (
            "[limits]\nmax_topic_length = 0\n",
            "limits.max_topic_length",
        ),
        (
            "[limits]\nmax_topic_length = 70000\n",
            "limits.max_topic_length",
        ),
        (
            "[limits]\nfailed_login_block_secs = 0\n",
            "limits.failed_login_block_secs",
        ),
        (
            "[[listener]]\nbind = \"127.0.0.1:1\"\nmax_connections = 0\n",
            "listener.max_connections",
        ),
    ] {
        let e = BrokerConfig::from_toml(text).unwrap_err().to_string();
        assert!(e.starts_with(key), "{text}: {e}");
    }
}

#[test]
fn admin_listener() {
    let c = BrokerConfig::from_toml("").unwrap();
    assert_eq!(c.admin.bind, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(
        BrokerConfig::default().admin.bind,
        None,
        "embedded: off unless asked"
    );
    let c = BrokerConfig::from_toml_in(
        "[admin]\nbind = \"off\"\napi_key_file = \"keys\"\n",
        Some(Path::new("/etc/strata")),
    )
    .unwrap();
    assert_eq!(c.admin.bind, None);
    assert_eq!(
        c.admin.api_key_file.as_deref(),
        Some(Path::new("/etc/strata/keys"))
    );
    let e = BrokerConfig::from_toml("[admin]\nbind = \"localhost:8080\"\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("admin.bind = \"localhost:8080\": use HOST:PORT"),
        "{e}"
    );
    assert!(e.to_string().contains("\"off\""), "{e}");
}

#[test]
fn environment_variables_override_keys() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let c = BrokerConfig::from_toml_env(
        "[admin]\nbind = \"127.0.0.1:8080\"\n[limits]\nmax_inflight = 10\n",
        Some(Path::new("/etc/strata")),
        env(&[
            ("STRATA_ADMIN__BIND", "off"),
            ("STRATA_LIMITS__MAX_INFLIGHT", "20"),
            ("STRATA_LIMITS__RETAIN_AVAILABLE", "false"),
            ("STRATA_AUTH__JWT__SECRET_FILE", "jwt.secret"),
            ("STRATA_AUTH__JWT__ALGORITHMS", "[\"HS256\"]"),
            ("PATH", "/usr/bin"),
            ("STRATA_NO_SEPARATOR", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(c.admin.bind, None);
    assert_eq!(c.session.max_inflight, 20);
    assert!(!c.session.retain_available);
    let jwt = c.auth.jwt.unwrap();
    assert_eq!(
        jwt.secret_file.as_deref(),
        Some(Path::new("/etc/strata/jwt.secret"))
    );
    assert_eq!(jwt.algorithms, ["HS256"]);
    // A value is checked as the file's would be.
    let e = BrokerConfig::from_toml_env("", None, env(&[("STRATA_LIMITS__MAX_PACKET_SIZE", "10")]))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("limits.max_packet_size = 10"),
        "{e}"
    );
    let e = BrokerConfig::from_toml_env("", None, env(&[("STRATA_LIMITS__MAX_PACKT", "10")]))
        .unwrap_err();
    assert!(e.to_string().contains("max_packt"), "{e}");
    let e = BrokerConfig::from_toml_env("", None, env(&[("STRATA_LISTENER__BIND", "0.0.0.0:1")]))
        .unwrap_err();
    assert!(e.to_string().contains("--listen"), "{e}");
}
