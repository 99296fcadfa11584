//! kill -9: the real `strata` binary with a data directory, killed and
//! restarted again and again while publishers send numbered messages to
//! persistent subscribers: offline meanwhile (QoS 1, the disk alone must
//! keep them) or online (QoS 1 and 2, so flows are cut in every phase).
//! Every acknowledged QoS 1 message must arrive at least once and every
//! acknowledged QoS 2 message exactly once, in each publisher's order, and
//! the retained message must be the last one acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
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
/// The journal is compacted every few hundred records, so that kills also
/// land in and around compactions.
fn start(port: u16, dir: &Path) -> common::Server {
    let listen = format!("127.0.0.1:{port}");
    let config = dir.with_extension("toml");
    std::fs::write(&config, "[storage]\ncompact_after_records = 300\n").unwrap();
    let (child, listening) = common::serve(
        &listen,
        &[
            OsStr::new("--data-dir"),
            dir.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        WAIT,
    );
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

/// A small xorshift generator: the kill points of a run, reproducible from
/// the seed the test prints.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("STRATA_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("kill points from STRATA_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_exactly_once_and_qos1_at_least_once_across_kill_9_with_everyone_online() {
    // Publishers and a persistent subscriber stay connected (and reconnect)
    // while the broker is killed at random points, so flows in every phase
    // are cut: PUBLISH unacknowledged, PUBREC sent, PUBREL sent, both ways.
    // At the end every acknowledged QoS 2 message arrived exactly once and
    // every acknowledged QoS 1 message at least once, each publisher's
    // first copies in order.
    let dir = std::env::temp_dir().join(format!("strata-crash-online-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut broker = start(port, &dir);
    let mut rng = Rng::seeded();

    let (sub, mut inbox, _) = Client::connect(options(port, "online-sub")).await.unwrap();
    sub.subscribe(&[("online/#", QoS::ExactlyOnce)])
        .await
        .unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u32)>::new()));
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let collector = {
        let (received, notify) = (received.clone(), notify.clone());
        tokio::spawn(async move {
            while let Some(m) = inbox.recv().await {
                let n = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
                received.lock().unwrap().push((m.topic.to_string(), n));
                notify.notify_one();
            }
        })
    };
    let (p2, _, _) = Client::connect(options(port, "online-p2")).await.unwrap();
    let (p1, _, _) = Client::connect(options(port, "online-p1")).await.unwrap();

    const N: u32 = 1200;
    let mut acked2 = HashSet::new();
    let mut acked1 = HashSet::new();
    let mut window = std::collections::VecDeque::new();
    let mut kills = 0;
    let mut next_kill = 40 + rng.below(80);
    let mut acks = 0;
    for i in 0..N {
        let two = p2
            .start_publish("online/two", QoS::ExactlyOnce, false, i.to_string())
            .unwrap();
        let one = p1
            .start_publish("online/one", QoS::AtLeastOnce, false, i.to_string())
            .unwrap();
        window.push_back((i, two, one));
        if window.len() >= 16 {
            let (n, two, one) = window.pop_front().unwrap();
            tokio::time::timeout(WAIT, two.done())
                .await
                .expect("QoS 2 acked in time")
                .unwrap();
            acked2.insert(n);
            tokio::time::timeout(WAIT, one.done())
                .await
                .expect("QoS 1 acked in time")
                .unwrap();
            acked1.insert(n);
            acks += 1;
            if acks == next_kill {
                broker.kill().unwrap();
                broker.wait().unwrap();
                kills += 1;
                broker = start(port, &dir);
                next_kill += 40 + rng.below(80);
            }
        }
    }
    for (n, two, one) in window {
        tokio::time::timeout(WAIT, two.done())
            .await
            .unwrap()
            .unwrap();
        acked2.insert(n);
        tokio::time::timeout(WAIT, one.done())
            .await
            .unwrap()
            .unwrap();
        acked1.insert(n);
    }
    eprintln!("{kills} kills");
    assert!(kills >= 9, "{kills} kills");

    // A last QoS 2 message after everything: once it is in, every resend
    // of an earlier flow has come (resends go first on a connection).
    p2.publish("online/two", QoS::ExactlyOnce, false, N.to_string())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            let done = received
                .lock()
                .unwrap()
                .iter()
                .any(|(t, n)| t == "online/two" && *n == N);
            if done {
                return;
            }
            notify.notified().await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        let got = received.lock().unwrap().len();
        panic!("the last message did not arrive ({got} messages so far)")
    });
    // Everything after the marker that is already in flight for QoS 1.
    let got = received.lock().unwrap().clone();
    let mut count2 = std::collections::HashMap::new();
    let (mut order1, mut order2, mut seen1) = (Vec::new(), Vec::new(), HashSet::new());
    for (topic, n) in &got {
        if topic == "online/two" {
            *count2.entry(*n).or_insert(0) += 1;
            order2.push(*n);
        } else if seen1.insert(*n) {
            order1.push(*n);
        }
    }
    let twice: Vec<_> = count2.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "QoS 2 messages delivered more than once: {twice:?}"
    );
    let missing2: Vec<_> = acked2.iter().filter(|n| !count2.contains_key(n)).collect();
    assert!(
        missing2.is_empty(),
        "acknowledged QoS 2 messages lost: {missing2:?}"
    );
    // QoS 1 first copies may still be coming for the last few: wait.
    tokio::time::timeout(WAIT, async {
        loop {
            let seen: HashSet<u32> = received
                .lock()
                .unwrap()
                .iter()
                .filter(|(t, _)| t == "online/one")
                .map(|(_, n)| *n)
                .collect();
            if acked1.iter().all(|n| seen.contains(n)) {
                return;
            }
            notify.notified().await;
        }
    })
    .await
    .expect("every acknowledged QoS 1 message arrives");
    let mut sorted = order2.clone();
    sorted.sort_unstable();
    assert_eq!(order2, sorted, "QoS 2 messages in the publisher's order");
    let mut sorted = order1.clone();
    sorted.sort_unstable();
    assert_eq!(
        order1, sorted,
        "QoS 1 first copies in the publisher's order"
    );

    // Each start compacts once; a higher generation means compactions ran
    // (and maybe were killed) while the broker did.
    let current = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    eprintln!("log {} after {kills} kills", current.trim());
    collector.abort();
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
    let current = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
    let log = dir.join(current.trim());
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
