//! `strata pub` and `strata sub` over TLS, mutual TLS, WebSocket and
//! WebSocket over TLS, against `strata serve` with certificates from
//! `strata-ca`: the Mosquitto flags (`--cafile`, `--cert`, `--key`,
//! `--insecure`, `-L URL`), and the usage errors they can make.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, field, lines_of};
use strata_ca::Ca;

const WAIT: Duration = Duration::from_secs(15);

/// A directory of its own for each test, under the target directory.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-transports-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `ca.pem`; `server.pem`/`.key` for localhost and 127.0.0.1;
/// `elsewhere.pem`/`.key` for broker.example only; `alice.pem`/`.key`, a
/// client certificate; and `other-ca.pem`, a CA that signed none of them.
fn pki(dir: &Path) {
    let ca = Ca::new("Strata CLI test CA", 30).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let local = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    ca.issue_server(&local, 30)
        .unwrap()
        .write(dir, "server")
        .unwrap();
    ca.issue_server(&["broker.example".to_owned()], 30)
        .unwrap()
        .write(dir, "elsewhere")
        .unwrap();
    ca.issue_client("alice", 30)
        .unwrap()
        .write(dir, "alice")
        .unwrap();
    let other = Ca::new("Another CA", 30).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.cert_pem()).unwrap();
}

fn arg(dir: &Path, file: &str) -> String {
    dir.join(file).to_str().unwrap().to_owned()
}

/// `strata serve` with `args`, killed on drop; `names` are its
/// `listening on` lines, one per listener, in order.
struct Server {
    _child: common::Server,
    names: Vec<String>,
    /// Its log (stderr), line by line.
    log: mpsc::Receiver<String>,
}

impl Server {
    fn start(args: &[String], listeners: usize) -> Server {
        let mut child = common::Server(
            Command::new(BIN)
                .args(["serve", "-q", "--in-memory", "--admin-listen", "off"])
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(child.stdout.take().unwrap());
        let log = lines_of(child.stderr.take().unwrap());
        let names = (0..listeners)
            .map(|_| {
                let line = lines.recv_timeout(WAIT).expect("the broker listens");
                line.strip_prefix("listening on ")
                    .unwrap_or_else(|| panic!("not a listening line: {line}"))
                    .to_owned()
            })
            .collect();
        Server {
            _child: child,
            names,
            log,
        }
    }

    /// Sends it SIGHUP.
    fn hangup(&self) {
        let pid = self._child.0.id().to_string();
        let sent = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// The port of the listener whose name starts with `scheme` (`tls://`,
    /// `ws://`, ...).
    fn port(&self, scheme: &str) -> String {
        let name = self
            .names
            .iter()
            .find(|n| n.starts_with(scheme))
            .unwrap_or_else(|| panic!("no {scheme} listener in {:?}", self.names));
        let after_host = name.rsplit_once(':').unwrap().1;
        after_host.split('/').next().unwrap().to_owned()
    }
}

/// `strata serve` on these `--listen` URLs, the TLS ones serving
/// DIR/CERT.pem with DIR/CERT.key.
fn serve_tls(dir: &Path, cert: &str, urls: &[&str]) -> Server {
    let mut args = Vec::new();
    for url in urls {
        args.extend(["--listen".to_owned(), (*url).to_owned()]);
    }
    args.extend([
        "--certfile".to_owned(),
        arg(dir, &format!("{cert}.pem")),
        "--keyfile".to_owned(),
        arg(dir, &format!("{cert}.key")),
    ]);
    Server::start(&args, urls.len())
}

/// Runs a command to its end, within the bound.
fn run(args: &[&str]) -> Output {
    common::run(args, None, WAIT)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Publishes a retained message with `pub_args`, then receives it with
/// `sub_args` (`-C 1 -v`): the round trip of one transport.
fn round_trip(pub_args: &[&str], sub_args: &[&str], topic: &str, payload: &str) {
    let mut p = vec!["pub", "-r", "-q", "1", "-m", payload];
    p.extend(pub_args);
    let out = run(&p);
    assert!(out.status.success(), "{p:?}: {out:?}");
    let mut s = vec!["sub", "-C", "1", "-v", "-W", "10"];
    s.extend(sub_args);
    let out = run(&s);
    assert!(out.status.success(), "{s:?}: {out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{topic} {payload}\n"),
        "{s:?}"
    );
}

#[test]
fn pub_and_sub_over_tls_with_cafile() {
    let dir = scratch("tls");
    pki(&dir);
    let s = serve_tls(&dir, "server", &["tls://127.0.0.1:0"]);
    let port = s.port("tls://");
    let ca = arg(&dir, "ca.pem");
    // -h/-p with --cafile: TLS, as with Mosquitto.
    let flags = ["-h", "localhost", "-p", &port, "--cafile", &ca];
    let mut p = flags.to_vec();
    p.extend(["-t", "tls/a", "-V", "311"]);
    let mut q = flags.to_vec();
    q.extend(["-t", "tls/#"]);
    round_trip(&p, &q, "tls/a", "over tls");
    // mqtts:// URLs: the topic in the path, for pub and sub alike.
    let url = format!("mqtts://127.0.0.1:{port}/tls/b");
    round_trip(
        &["-L", &url, "--cafile", &ca],
        &["-L", &url, "--cafile", &ca],
        "tls/b",
        "by url",
    );
    // A CA that did not sign the broker's certificate: refused, exit 1.
    let other = arg(&dir, "other-ca.pem");
    let out = run(&["pub", "-L", &url, "--cafile", &other, "-m", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains(&format!("TLS handshake with 127.0.0.1:{port}"))
            && stderr(&out).contains("UnknownIssuer"),
        "{out:?}"
    );
}

#[test]
fn insecure_accepts_a_broker_certificate_for_another_name() {
    let dir = scratch("insecure");
    pki(&dir);
    let s = serve_tls(&dir, "elsewhere", &["tls://127.0.0.1:0"]);
    let url = format!("mqtts://localhost:{}/t", s.port("tls://"));
    let ca = arg(&dir, "ca.pem");
    let out = run(&["pub", "-L", &url, "--cafile", &ca, "-m", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("not valid for name"), "{out:?}");
    let out = run(&["pub", "-L", &url, "--cafile", &ca, "--insecure", "-m", "x"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn pub_and_sub_over_ws_and_wss() {
    let dir = scratch("ws");
    pki(&dir);
    let s = serve_tls(
        &dir,
        "server",
        &["ws://127.0.0.1:0/mqtt", "wss://127.0.0.1:0/secure"],
    );
    let ws = format!("ws://127.0.0.1:{}/mqtt", s.port("ws://"));
    round_trip(
        &["-L", &ws, "-t", "ws/a"],
        &["-L", &ws, "-t", "ws/+"],
        "ws/a",
        "over ws",
    );
    // No path: /mqtt.
    let bare = format!("ws://127.0.0.1:{}", s.port("ws://"));
    round_trip(
        &["-L", &bare, "-t", "ws/b"],
        &["-L", &bare, "-t", "ws/b"],
        "ws/b",
        "default path",
    );
    let wss = format!("wss://localhost:{}/secure", s.port("wss://"));
    let ca = arg(&dir, "ca.pem");
    round_trip(
        &["-L", &wss, "--cafile", &ca, "-t", "wss/a"],
        &["-L", &wss, "--cafile", &ca, "-t", "wss/a"],
        "wss/a",
        "over wss",
    );
    // A path the listener does not serve: the broker's answer, exit 1.
    let wrong = format!("ws://127.0.0.1:{}/other", s.port("ws://"));
    let out = run(&["pub", "-L", &wrong, "-t", "x", "-m", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("HTTP 404 Not Found: MQTT over WebSocket is served at /mqtt"),
        "{out:?}"
    );
}

#[test]
fn mutual_tls_with_cert_and_key() {
    let dir = scratch("mutual");
    pki(&dir);
    let config = dir.join("strata.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    writeln!(
        f,
        "[[listener]]\nbind = \"127.0.0.1:0\"\ntransport = \"tls\"\ncertfile = {:?}\n\
         keyfile = {:?}\ncafile = {:?}\nrequire_certificate = true",
        arg(&dir, "server.pem"),
        arg(&dir, "server.key"),
        arg(&dir, "ca.pem"),
    )
    .unwrap();
    drop(f);
    let s = Server::start(&["-c".into(), arg(&dir, "strata.toml")], 1);
    let url = format!("mqtts://localhost:{}/m/alice", s.port("tls://"));
    let (ca, cert, key) = (
        arg(&dir, "ca.pem"),
        arg(&dir, "alice.pem"),
        arg(&dir, "alice.key"),
    );
    let with_cert = ["-L", &url, "--cafile", &ca, "--cert", &cert, "--key", &key];
    round_trip(&with_cert, &with_cert, "m/alice", "with a certificate");
    // Without one: the broker's alert, exit 1.
    let out = run(&["pub", "-L", &url, "--cafile", &ca, "-m", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("CertificateRequired"), "{out:?}");
}

#[test]
fn transport_flag_mistakes_are_usage_errors() {
    // Each is refused before connecting (nothing listens on port 9), with
    // exit code 2 and a message that says what to do.
    for (args, says) in [
        (
            &["pub", "-L", "mqtts://127.0.0.1:9/t", "-m", "x"][..],
            "strata: TLS needs --cafile FILE, the CA certificate (PEM) that signed the \
             broker's: the system's trust store is not used\n",
        ),
        (
            &[
                "sub", "-p", "9", "--cert", "c.pem", "--key", "c.key", "-t", "t",
            ][..],
            "strata: TLS needs --cafile FILE",
        ),
        (
            &["pub", "-p", "9", "--insecure", "-t", "t", "-m", "x"][..],
            "strata: --insecure is for TLS: give --cafile (with -h/-p), or use an mqtts:// \
             or wss:// --url\n",
        ),
        (
            &[
                "pub",
                "-L",
                "ws://127.0.0.1:9",
                "--cafile",
                "ca.pem",
                "-t",
                "t",
                "-m",
                "x",
            ][..],
            "strata: --cafile and --cert are for TLS, and this --url is plain: use mqtts:// \
             or wss://\n",
        ),
        (
            &["pub", "-L", "http://127.0.0.1:9/t", "-m", "x"][..],
            "strata: --url \"http://127.0.0.1:9/t\": unknown scheme \"http\": use mqtt, \
             mqtts, ws or wss\n",
        ),
        (
            &["pub", "-L", "mqtt://127.0.0.1:9/t", "-t", "u", "-m", "x"][..],
            "strata: the topic is given twice, with -t and in the --url path: give it once\n",
        ),
        (
            &["pub", "-L", "ws://127.0.0.1:9/mqtt", "-m", "x"][..],
            "strata: say which topic: -t TOPIC, or mqtt://HOST/TOPIC with --url\n",
        ),
        (
            &["sub", "-L", "mqtt://127.0.0.1:9"][..],
            "strata: say which topics: -t FILTER (repeatable), or mqtt://HOST/FILTER with \
             --url\n",
        ),
        // clap's own checks: flags that go together, or exclude each other.
        (
            &["pub", "-p", "9", "--cert", "c.pem", "-t", "t", "-m", "x"][..],
            "--key <FILE>",
        ),
        (
            &["pub", "-L", "mqtt://127.0.0.1:9/t", "-h", "a", "-m", "x"][..],
            "cannot be used with",
        ),
        (
            &["sub", "-L", "mqtt://127.0.0.1:9/t", "-p", "1883"][..],
            "cannot be used with",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bench_counts_every_message_over_tls_ws_and_wss() {
    let dir = scratch("bench");
    pki(&dir);
    let s = serve_tls(
        &dir,
        "server",
        &[
            "tls://127.0.0.1:0",
            "ws://127.0.0.1:0/mqtt",
            "wss://127.0.0.1:0/mqtt",
        ],
    );
    let ca = arg(&dir, "ca.pem");
    for (scheme, transport) in [("tls://", "tls"), ("ws://", "ws"), ("wss://", "wss")] {
        let port = s.port(scheme);
        let common = [
            "bench",
            "-p",
            &port,
            "--transport",
            transport,
            "--cafile",
            &ca,
            "--json",
        ];
        // Fan-in at QoS 1 and fan-out at QoS 0, every message counted.
        for (scenario, qos, expected) in [("fan-in", "1", "150"), ("fan-out", "0", "150")] {
            let mut args = common.to_vec();
            args.extend(["--scenario", scenario, "-n", "3", "-q", qos, "-c", "50"]);
            let out = run(&args);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let json = String::from_utf8(out.stdout).unwrap();
            assert_eq!(field(&json, "delivered"), expected, "{transport}: {json}");
            assert_eq!(field(&json, "lost"), "0", "{transport}: {json}");
            assert_eq!(field(&json, "duplicates"), "0", "{transport}: {json}");
        }
        // Whole connections at a fixed rate: handshakes, CONNECT, CONNACK.
        let mut args = common.to_vec();
        args.extend(["--scenario", "connect", "-r", "20", "-d", "1"]);
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let json = String::from_utf8(out.stdout).unwrap();
        assert_eq!(field(&json, "delivered"), "20", "{transport}: {json}");
        assert_eq!(field(&json, "lost"), "0", "{transport}: {json}");
    }
    // TLS without a CA to trust is refused before connecting.
    let out = run(&["bench", "-p", &s.port("tls://"), "--transport", "tls"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cafile"), "{}", stderr(&out));
}

#[test]
fn sighup_reloads_certificates_and_a_bad_file_keeps_the_old_ones() {
    let dir = scratch("reload");
    let first = Ca::new("First CA", 30).unwrap();
    let second = Ca::new("Second CA", 30).unwrap();
    std::fs::write(dir.join("first.pem"), first.cert_pem()).unwrap();
    std::fs::write(dir.join("second.pem"), second.cert_pem()).unwrap();
    let local = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let old = first.issue_server(&local, 30).unwrap();
    let new = second.issue_server(&local, 30).unwrap();
    std::fs::write(dir.join("server.pem"), &old.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &old.key_pem).unwrap();
    // Relative file names are read from the configuration's directory.
    std::fs::write(
        dir.join("strata.toml"),
        "[[listener]]\nbind = \"127.0.0.1:0\"\ntransport = \"tls\"\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n",
    )
    .unwrap();
    let s = Server::start(&["--config".into(), arg(&dir, "strata.toml")], 1);
    let port = s.port("tls://");
    let publish = |ca: &str| {
        run(&[
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--cafile",
            &arg(&dir, ca),
            "-t",
            "t",
            "-m",
            "m",
        ])
        .status
        .success()
    };
    assert!(publish("first.pem") && !publish("second.pem"));
    // New files, then SIGHUP: new handshakes use them.
    std::fs::write(dir.join("server.pem"), &new.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &new.key_pem).unwrap();
    s.hangup();
    let deadline = std::time::Instant::now() + WAIT;
    while !publish("second.pem") {
        assert!(std::time::Instant::now() < deadline, "not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!publish("first.pem"));
    // A file that cannot be used: the broker says so and keeps what it has.
    std::fs::write(dir.join("server.pem"), "not a certificate").unwrap();
    s.hangup();
    let line = loop {
        let line = s
            .log
            .recv_timeout(WAIT)
            .expect("a log line on the failed reload");
        if line.contains("certificates not reloaded") {
            break line;
        }
    };
    assert!(line.contains("server.pem"), "{line}");
    assert!(publish("second.pem"));
    // Still serving after both signals.
    assert!(publish("second.pem"));
}

/// SIGHUP reads the configuration file again for the per-client
/// `[limits]`; a file that does not parse keeps those in force.
#[test]
fn sighup_reloads_per_client_limits() {
    let dir = std::env::temp_dir().join(format!("strata-cli-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let listener = "[[listener]]\nbind = \"127.0.0.1:0\"\n";
    std::fs::write(dir.join("strata.toml"), listener).unwrap();
    let s = Server::start(&["--config".into(), arg(&dir, "strata.toml")], 1);
    let port = s.names[0].rsplit_once(':').unwrap().1.to_owned();
    let publish = || {
        run(&[
            "pub", "-p", &port, "-V", "5", "-q", "1", "-t", "a/b/c/d", "-m", "m",
        ])
        .status
        .success()
    };
    assert!(publish());
    // A file that does not parse: the log says so; nothing changes.
    std::fs::write(
        dir.join("strata.toml"),
        format!("{listener}[limits]\nmax_topic_levels = \"three\"\n"),
    )
    .unwrap();
    s.hangup();
    let line = loop {
        let line = s
            .log
            .recv_timeout(WAIT)
            .expect("a log line on the failed reload");
        if line.contains("[limits] not reloaded") {
            break line;
        }
    };
    assert!(line.contains("strata.toml"), "{line}");
    assert!(publish());
    std::fs::write(
        dir.join("strata.toml"),
        format!("{listener}[limits]\nmax_topic_levels = 3\n"),
    )
    .unwrap();
    s.hangup();
    let deadline = std::time::Instant::now() + WAIT;
    while publish() {
        assert!(
            std::time::Instant::now() < deadline,
            "[limits] not reloaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Three levels still go: it is the limit, not a broken broker.
    let three = run(&[
        "pub", "-p", &port, "-V", "5", "-q", "1", "-t", "a/b/c", "-m", "m",
    ]);
    assert!(three.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
