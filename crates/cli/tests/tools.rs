//! `strata pub` and `strata sub` as a shell user runs them, against
//! `strata serve`: real processes, real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, field, lines_of};

const WAIT: Duration = Duration::from_secs(15);

/// A broker process, killed on drop.
struct Server {
    child: common::Server,
    port: u16,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let (child, port) = common::serve("127.0.0.1:0", extra, WAIT);
        Server { child, port }
    }

    fn port(&self) -> String {
        self.port.to_string()
    }
}

/// Runs a command to its end, within the bound.
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    common::run(args, stdin, WAIT)
}

#[test]
fn retained_message_published_then_received_with_its_topic() {
    let s = Server::start();
    for v in ["311", "5"] {
        let topic = format!("cli/{v}/temp");
        let out = run(
            &[
                "pub",
                "-p",
                &s.port(),
                "-V",
                v,
                "-t",
                &topic,
                "-m",
                "21.5",
                "-r",
                "-q",
                "1",
            ],
            None,
        );
        assert!(out.status.success(), "{out:?}");
        let out = run(
            &[
                "sub",
                "-p",
                &s.port(),
                "-V",
                v,
                "-t",
                &format!("cli/{v}/#"),
                "-v",
                "-C",
                "1",
            ],
            None,
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{topic} 21.5\n")
        );
    }
}

#[test]
fn lines_from_stdin_arrive_in_order_at_every_qos() {
    let s = Server::start();
    for qos in ["0", "1", "2"] {
        let base = format!("lines/{qos}");
        // A retained marker tells us the subscriber is in place.
        let marker = run(
            &[
                "pub",
                "-p",
                &s.port(),
                "-t",
                &format!("{base}/ready"),
                "-m",
                "go",
                "-r",
            ],
            None,
        );
        assert!(marker.status.success(), "{marker:?}");
        let mut sub = Command::new(BIN)
            .args([
                "sub",
                "-p",
                &s.port(),
                "-t",
                &format!("{base}/#"),
                "-q",
                qos,
                "-C",
                "4",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(sub.stdout.take().unwrap());
        assert_eq!(lines.recv_timeout(WAIT).unwrap(), "go");
        let out = run(
            &[
                "pub",
                "-p",
                &s.port(),
                "-t",
                &format!("{base}/data"),
                "-q",
                qos,
                "-l",
            ],
            Some("one\ntwo\nthree\n"),
        );
        assert!(out.status.success(), "{out:?}");
        let got: Vec<String> = (0..3).map(|_| lines.recv_timeout(WAIT).unwrap()).collect();
        assert_eq!(got, ["one", "two", "three"], "QoS {qos}");
        // -C 4 reached: sub exits by itself, successfully.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(sub.wait());
        });
        let status = rx.recv_timeout(WAIT).expect("sub exits after -C 4");
        assert!(status.unwrap().success());
    }
}

#[test]
fn message_from_a_file_and_an_empty_message_clear_retained() {
    let s = Server::start();
    let dir = std::env::temp_dir().join(format!("strata-cli-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("payload.bin");
    std::fs::write(&file, b"\x00\x01binary\xff").unwrap();
    let f = file.to_str().unwrap();
    let out = run(&["pub", "-p", &s.port(), "-t", "f/x", "-f", f, "-r"], None);
    assert!(out.status.success(), "{out:?}");
    let out = run(
        &["sub", "-p", &s.port(), "-t", "f/x", "-C", "1", "-N"],
        None,
    );
    assert_eq!(out.stdout, b"\x00\x01binary\xff");
    // An empty retained message deletes the retained one: a new
    // subscriber gets nothing and times out with code 3.
    let out = run(&["pub", "-p", &s.port(), "-t", "f/x", "-n", "-r"], None);
    assert!(out.status.success(), "{out:?}");
    let out = run(
        &["sub", "-p", &s.port(), "-t", "f/x", "-C", "1", "-W", "1"],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_and_connection_errors_have_their_exit_codes() {
    // Bad usage: 2, with clap's explanation.
    let out = run(&["pub", "-t", "x", "-m", "y", "-q", "3"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--qos"));
    let out = run(&["pub", "-t", "x"], None);
    assert_eq!(out.status.code(), Some(2));
    // Nothing listening: 1, naming the address.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    drop(listener);
    let out = run(&["sub", "-h", "127.0.0.1", "-p", &port, "-t", "x"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("127.0.0.1:{port}")));
    // A refused CONNECT: 1. (3.1.1: empty id with a persistent session.)
    let s = Server::start();
    let out = run(
        &[
            "sub",
            "-p",
            &s.port(),
            "-V",
            "311",
            "-i",
            "",
            "-c",
            "-t",
            "x",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
}

/// One bench run of 100 messages per publisher that must deliver
/// `expected` with nothing lost, duplicated or reordered.
#[allow(clippy::too_many_arguments)]
fn bench_once(
    s: &Server,
    pid: &str,
    scenario: &str,
    clients: &str,
    qos: &str,
    version: &str,
    inflight: &str,
    expected: u64,
    extra: &[&str],
) {
    let port = s.port();
    let mut args = vec![
        "bench",
        "-p",
        &port,
        "--scenario",
        scenario,
        "-n",
        clients,
        "-q",
        qos,
        "-V",
        version,
        "--inflight",
        inflight,
        "-c",
        "100",
        "-d",
        "30",
        "--json",
        "--pid",
        pid,
    ];
    args.extend_from_slice(extra);
    let out = run(&args, None);
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(field(&json, "delivered"), expected.to_string(), "{json}");
    assert_eq!(field(&json, "lost"), "0", "{json}");
    assert_eq!(field(&json, "duplicates"), "0", "{json}");
    assert_eq!(field(&json, "out_of_order"), "0", "{json}");
    let p99: f64 = field(&json, "p99_us").parse().unwrap();
    let max: f64 = field(&json, "max_us").parse().unwrap();
    assert!(p99 > 0.0 && p99 <= max, "{json}");
    // Latency ends when the kernel received the message (SO_TIMESTAMPNS),
    // which is before the generator read it: if the stamp were missing or
    // on another clock, the two would be equal or the first zero.
    let p50: f64 = field(&json, "p50_us").parse().unwrap();
    let read_p50: f64 = field(&json, "read_p50_us").parse().unwrap();
    let read_p99: f64 = field(&json, "read_p99_us").parse().unwrap();
    if extra.contains(&"rumqttc") {
        // rumqttc passes no receive time up: latency ends at the read.
        assert!(p50 > 0.0 && p50 == read_p50 && p99 == read_p99, "{json}");
    } else {
        assert!(p50 > 0.0 && p50 < read_p50 && p99 <= read_p99, "{json}");
    }
    // The broker's CPU and RSS were read from /proc.
    assert_ne!(field(&json, "broker_rss"), "null", "{json}");
    assert_ne!(field(&json, "broker_cpu_s"), "null", "{json}");
}

#[test]
fn bench_counts_every_message_with_rumqttc_and_batched_clients() {
    let s = Server::start();
    let pid = s.child.id().to_string();
    // Independent client code: rumqttc's publishers and subscribers, each
    // QoS, a window of one included.
    let rumqttc: &[&str] = &["--client", "rumqttc"];
    for (scenario, clients, qos, inflight, expected) in [
        ("fan-in", "3", "0", "256", 300),
        ("fan-in", "3", "1", "256", 300),
        ("fan-out", "3", "2", "256", 300),
        ("pairs", "2", "1", "1", 200),
    ] {
        bench_once(
            &s, &pid, scenario, clients, qos, "311", inflight, expected, rumqttc,
        );
    }
    // The ceiling's writes: many packets to a write.
    let batched: &[&str] = &["--writes", "batched"];
    bench_once(&s, &pid, "fan-in", "3", "1", "311", "256", 300, batched);
    bench_once(&s, &pid, "fan-out", "2", "2", "5", "256", 200, batched);
    // rumqttc's 5.0 client is another crate: the bench says it has none.
    let out = run(
        &[
            "bench",
            "-p",
            &s.port(),
            "-V",
            "5",
            "--client",
            "rumqttc",
            "-c",
            "1",
        ],
        None,
    );
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3.1.1 only"), "{err}");
}

#[test]
fn bench_counts_every_message_in_each_scenario() {
    let s = Server::start();
    let pid = s.child.id().to_string();
    // The bench's subscribers read PUBLISH packets in place: both
    // protocol versions, every QoS.
    for (scenario, clients, qos, version, expected) in [
        ("fan-in", "3", "1", "311", 300),  // 3 publishers x 100
        ("fan-out", "4", "2", "311", 400), // 100 messages x 4 subscribers
        ("pairs", "2", "0", "311", 200),   // 2 pairs x 100
        ("fan-in", "2", "2", "5", 200),
        ("fan-out", "3", "1", "5", 300),
        ("pairs", "2", "0", "5", 200),
    ] {
        bench_once(
            &s,
            &pid,
            scenario,
            clients,
            qos,
            version,
            "256",
            expected,
            &[],
        );
    }
    // A window of one: each QoS 2 publish waits for its PUBCOMP, and a
    // PUBREL must leave as soon as its PUBREC is read.
    bench_once(&s, &pid, "fan-out", "2", "2", "311", "1", 200, &[]);
    bench_once(&s, &pid, "fan-in", "2", "2", "5", "1", 200, &[]);
    // Paced: 2 publishers at 100 msg/s each (-r is the total) send their
    // 100 messages on a schedule, so publishing takes about a second.
    for qos in ["1", "2"] {
        let out = run(
            &[
                "bench",
                "-p",
                &s.port(),
                "--scenario",
                "pairs",
                "-n",
                "2",
                "-q",
                qos,
                "-r",
                "200",
                "-c",
                "100",
                "-d",
                "30",
                "--json",
            ],
            None,
        );
        assert!(out.status.success(), "{out:?}");
        let json = String::from_utf8(out.stdout).unwrap();
        assert_eq!(field(&json, "delivered"), "200", "{json}");
        assert_eq!(field(&json, "lost"), "0", "{json}");
        let publishing: f64 = field(&json, "publish_seconds").parse().unwrap();
        assert!(publishing >= 0.95, "not paced: {json}");
    }

    let out = run(
        &[
            "bench",
            "-p",
            &s.port(),
            "--scenario",
            "idle",
            "-n",
            "50",
            "--json",
            "--pid",
            &pid,
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    let per: f64 = field(&json, "rss_per_connection").parse().unwrap();
    assert!(per.is_finite(), "{json}");
}

#[test]
fn bench_writes_every_latency_it_reports_on() {
    let s = Server::start();
    let dir = std::env::temp_dir().join(format!("strata-cli-latencies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lat.txt");
    let out = run(
        &[
            "bench",
            "-p",
            &s.port(),
            "--scenario",
            "pairs",
            "-n",
            "3",
            "-q",
            "1",
            "-c",
            "100",
            "-d",
            "30",
            "--json",
            "--latencies",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    let mut ns: Vec<u64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    // One line per delivered message, each a latency the report counted.
    assert_eq!(ns.len().to_string(), field(&json, "delivered"), "{json}");
    assert!(ns.iter().all(|&v| v > 0), "{ns:?}");
    ns.sort_unstable();
    let at =
        |q: f64| ns[((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1] as f64 / 1000.0;
    for (key, q) in [("p50_us", 0.5), ("p99_us", 0.99), ("max_us", 1.0)] {
        let reported: f64 = field(&json, key).parse().unwrap();
        assert!(
            (reported - at(q)).abs() < 0.06,
            "{key}: {reported} against {} in {json}",
            at(q)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A broker that answers CONNECT and SUBSCRIBE and then reads nothing
/// more, holding each connection open.
fn stalling_broker() -> u16 {
    use std::io::Read;
    fn packet(s: &mut std::net::TcpStream) -> Option<(u8, Vec<u8>)> {
        let mut first = [0u8; 1];
        s.read_exact(&mut first).ok()?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).ok()?;
            len |= usize::from(b[0] & 0x7F) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).ok()?;
        Some((first[0] >> 4, body))
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                if packet(&mut s).is_some_and(|(t, _)| t == 1) {
                    s.write_all(&[0x20, 2, 0, 0]).unwrap();
                }
                if let Some((8, body)) = packet(&mut s) {
                    s.write_all(&[0x90, 3, body[0], body[1], 0]).unwrap();
                }
                std::thread::sleep(Duration::from_secs(60));
            });
        }
    });
    port
}

#[test]
fn bench_ends_by_itself_when_the_broker_stops_reading() {
    // The publisher's writes block once the socket buffers fill; the run
    // still ends, with an error that says why, within `run`'s bound.
    let port = stalling_broker().to_string();
    let out = run(
        &[
            "bench",
            "-p",
            &port,
            "--scenario",
            "fan-in",
            "-n",
            "1",
            "-q",
            "0",
            "-d",
            "1",
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped taking messages"), "{err}");
}

#[test]
fn a_flood_is_paced_not_dropped() {
    // Four publishers as fast as they can, QoS 0, into one subscriber whose
    // queue holds 1,000 messages: without flow control it overflows; with
    // it, the publishers wait and nothing is lost.
    let dir = std::env::temp_dir().join(format!("strata-cli-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("small-queues.toml");
    std::fs::write(&config, "[limits]\nmax_queued_messages = 1000\n").unwrap();
    let s = Server::start_with(&["--config", config.to_str().unwrap()]);
    let out = run(
        &[
            "bench",
            "-p",
            &s.port(),
            "--scenario",
            "fan-in",
            "-n",
            "4",
            "-q",
            "0",
            "-c",
            "50000",
            "-d",
            "60",
            "--inflight",
            "1024",
            "--json",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(field(&json, "published"), "200000", "{json}");
    assert_eq!(field(&json, "delivered"), "200000", "{json}");
    assert_eq!(field(&json, "lost"), "0", "{json}");
    std::fs::remove_dir_all(&dir).unwrap();
}
