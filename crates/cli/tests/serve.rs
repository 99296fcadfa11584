//! `strata serve` as a user runs it: the real binary, real signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::BIN;

#[test]
fn bad_config_names_the_key_and_the_fix() {
    let dir = std::env::temp_dir().join(format!("strata-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"[limits]\nreceive_maximum = 0\n")
        .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--admin-listen", "off", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("limits.receive_maximum = 0: use 1 to 65535"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn environment_variables_set_keys() {
    // STRATA_SECTION__KEY, checked as the file's key would be.
    let out = Command::new(BIN)
        .args(["serve", "--admin-listen", "off", "--in-memory"])
        .env("STRATA_LIMITS__MAX_PACKET_SIZE", "10")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("limits.max_packet_size = 10: use at least 64"),
        "{err}"
    );
}

#[test]
fn json_log_lines() {
    let mut child = common::Server(
        Command::new(BIN)
            .args(["serve", "--admin-listen", "off", "--in-memory"])
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let log = common::lines_of(child.stderr.take().unwrap());
    let line = log
        .recv_timeout(Duration::from_secs(10))
        .expect("a log line");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["message"], "listening", "{line}");
    assert!(
        v["listener"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    assert!(v["timestamp"].is_string(), "{line}");
}

#[test]
fn serves_on_the_given_address_and_stops_on_sigterm() {
    // No flags beyond the address: the defaults, durable state in ./data
    // of the working directory.
    let cwd = std::env::temp_dir().join(format!("strata-cwd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).unwrap();
    let (mut child, port) =
        common::serve_in::<&str>(Some(&cwd), "127.0.0.1:0", &[], Duration::from_secs(10));
    assert!(
        cwd.join("data/CURRENT").is_file() && cwd.join("data/LOCK").is_file(),
        "the default data directory ./data"
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // A CONNECT gets a CONNACK: the broker is really there.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c',
    ])
    .unwrap();
    let mut ack = [0u8; 4];
    std::io::Read::read_exact(&mut s, &mut ack).unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);

    // SIGTERM: a clean exit, well within the bound.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&cwd);
}
