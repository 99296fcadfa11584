//! kill -9: the real `strata` binary with a data directory, killed and
//! restarted again and again while a publisher sends numbered QoS 1
//! messages to a persistent subscriber that is offline meanwhile. Every acknowledged message must
//! arrive at least once, in the publisher's order, and the retained
//! message must be the last one acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::BIN;
use strata_client::{Client, Options, Protocol, QoS, Reconnect};

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the broker on `port` with `dir`, and waits until it listens.
fn start(port: u16, dir: &Path) -> Child {
    let listen = format!("127.0.0.1:{port}");
    let (child, listening) =
        common::serve(&listen, &[OsStr::new("--data-dir"), dir.as_os_str()], WAIT);
    assert_eq!(listening, port);
    child
}

fn options(port: u16, id: &str) -> Options {
    let mut o = Options::new(format!("127.0.0.1:{port}"), id);
    o.protocol = Protocol::V5;
    o.clean_start = false;
    o.session_expiry = 3600;
    o.reconnect = Some(Reconnect {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    });
    o.connect_timeout = Duration::from_secs(5);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = std::env::temp_dir().join(format!("strata-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut broker = start(port, &dir);

    // The subscriber's session is persistent and offline while the
    // broker is killed: what it gets later can only come from the disk.
    let (sub, _, _) = Client::connect(options(port, "crash-sub")).await.unwrap();
    sub.subscribe(&[("crash/n", QoS::AtLeastOnce)])
        .await
        .unwrap();
    sub.disconnect().await.unwrap();
    let (publisher, _, _) = Client::connect(options(port, "crash-pub")).await.unwrap();

    // Publish with a window of 16 in flight; kill the broker every 150
    // acknowledgements, at whatever point the flows are.
    const N: u32 = 1000;
    let mut acked = HashSet::new();
    let mut window = std::collections::VecDeque::new();
    let mut kills = 0;
    for i in 0..N {
        window.push_back((
            i,
            publisher
                .start_publish("crash/n", QoS::AtLeastOnce, false, i.to_string())
                .unwrap(),
        ));
        if window.len() >= 16 {
            let (n, h) = window.pop_front().unwrap();
            tokio::time::timeout(WAIT, h.done())
                .await
                .expect("acked in time")
                .unwrap();
            acked.insert(n);
            if acked.len() % 150 == 0 {
                broker.kill().unwrap();
                broker.wait().unwrap();
                kills += 1;
                broker = start(port, &dir);
            }
        }
    }
    for (n, h) in window {
        tokio::time::timeout(WAIT, h.done())
            .await
            .expect("acked in time")
            .unwrap();
        acked.insert(n);
    }
    assert!(kills >= 5, "{kills} kills");

    // Retained state: the last acknowledged retained value wins, also
    // across a kill.
    for v in 0..5 {
        publisher
            .publish("crash/state", QoS::AtLeastOnce, true, format!("v{v}"))
            .await
            .unwrap();
    }
    broker.kill().unwrap();
    broker.wait().unwrap();
    broker = start(port, &dir);

    // Every acknowledged message arrives, first copies in order.
    let (_sub, mut inbox, c) = Client::connect(options(port, "crash-sub")).await.unwrap();
    assert!(c.session_present, "the session survived the kills");
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    while seen.len() < acked.len() {
        let m = tokio::time::timeout(WAIT, inbox.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {} acknowledged messages arrived",
                    seen.len(),
                    acked.len()
                )
            })
            .expect("subscriber ends");
        let n: u32 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        if seen.insert(n) {
            order.push(n);
        }
    }
    assert!(acked.iter().all(|n| seen.contains(n)));
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "first deliveries keep the publisher's order");

    let (late, mut late_inbox, _) = Client::connect(options(port, "crash-late")).await.unwrap();
    late.subscribe(&[("crash/state", QoS::AtLeastOnce)])
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, late_inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&m.payload[..], m.retain), (&b"v4"[..], true));

    broker.kill().unwrap();
    broker.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_prints_the_journal_and_never_changes_it() {
    let dir = std::env::temp_dir().join(format!("strata-inspect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut broker = start(port, &dir);
    let (sub, _, _) = Client::connect(options(port, "inspected")).await.unwrap();
    sub.subscribe(&[("inspect/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    sub.disconnect().await.unwrap();
    let (publisher, _, _) = Client::connect(options(port, "inspect-pub")).await.unwrap();
    publisher
        .publish("inspect/a", QoS::AtLeastOnce, false, "hello")
        .await
        .unwrap();
    publisher
        .publish("inspect/cfg", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    broker.kill().unwrap();
    broker.wait().unwrap();

    // A torn tail, as a crash mid-write leaves: inspect refuses to cut it.
    let log = dir.join("log");
    let mut segments: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap().clone();
    let clean = std::fs::read(&last).unwrap();
    let mut torn = clean.clone();
    torn.extend_from_slice(&[0x40, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&last, &torn).unwrap();
    let out = Command::new(BIN).arg("inspect").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never changes the log"), "{err}");
    assert_eq!(
        std::fs::read(&last).unwrap(),
        torn,
        "inspect left the file as it was"
    );

    // Whole again: every kind of entry is printed.
    std::fs::write(&last, &clean).unwrap();
    let out = Command::new(BIN).arg("inspect").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "up client=\"inspected\"",
        "subscribe client=\"inspected\" filter=\"inspect/#\" qos=1",
        "down client=\"inspected\"",
        "message id=",
        "topic=\"inspect/a\" qos=1 retain=false payload=5B \"hello\"",
        "topic=\"inspect/cfg\" qos=1 retain=true payload=4B \"kept\"",
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_drives_the_durable_path_with_persistent_subscribers() {
    let dir = std::env::temp_dir().join(format!("strata-bench-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut broker = start(port, &dir);
    let out = Command::new(BIN)
        .args([
            "bench",
            "-p",
            &port.to_string(),
            "--scenario",
            "fan-in",
            "-n",
            "2",
            "-q",
            "1",
        ])
        .args(["-c", "200", "-d", "60", "--persistent", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(json.contains("\"delivered\":400,"), "{json}");
    assert!(json.contains("\"lost\":0,"), "{json}");
    broker.kill().unwrap();
    broker.wait().unwrap();
    // Every one of them went through the journal.
    let out = Command::new(BIN).arg("inspect").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("message id=").count(), 400, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
