//! `strata pub` and `strata sub`: the everyday client commands, with the
//! flags a Mosquitto user expects.
//!
//! Exit codes: 0 done; 1 could not connect, refused, or a request failed;
//! 2 bad usage; 3 `sub -W` timed out before `-C` messages arrived.
//!
//! Where and how to connect:
//!
//! - `-h HOST -p PORT`: plain TCP, or TLS when `--cafile` or `--cert` is
//!   given, as with Mosquitto. The port defaults to 1883, or 8883 with TLS.
//! - `-L URL` instead of `-h` and `-p`:
//!   - `mqtt://[USER[:PASSWORD]@]HOST[:PORT][/TOPIC]`: TCP, port 1883;
//!   - `mqtts://...` likewise: TLS, port 8883;
//!   - `ws://[USER[:PASSWORD]@]HOST[:PORT][/PATH]`: WebSocket at PATH,
//!     port 8080;
//!   - `wss://...` likewise: WebSocket over TLS, port 8443.
//!
//!   HOST may be an IPv6 address in brackets. An mqtt(s) URL's path,
//!   without its first `/`, is the topic, taken as written (no
//!   percent-decoding, so `#` and `+` work): `pub` publishes to it (then
//!   `-t` must not be given too), `sub` subscribes to it besides any `-t`.
//!   A ws(s) URL's path is the WebSocket path (`/mqtt` when the URL has
//!   none), and the topics come from `-t`. `-u` and `-P` override the
//!   URL's user and password. TLS is the scheme's choice: `--cafile` or
//!   `--cert` with `mqtt://` or `ws://` is an error.
//! - TLS verifies the broker's certificate against `--cafile` (required:
//!   the system's trust store is not used) and the host name;
//!   `--insecure` skips the host name check only. `--cert` and `--key`
//!   present a client certificate.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgAction, Args, ValueEnum};
use strata_client::{Client, Error, Options, Protocol, QoS, TlsOptions, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Version {
    #[value(name = "311", alias = "mqttv311")]
    V311,
    #[value(name = "5", alias = "mqttv5")]
    V5,
}

/// What every client command connects with.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "localhost", conflicts_with = "url")]
    host: String,
    /// Broker port (default: 1883, or 8883 with TLS).
    #[arg(short, long, conflicts_with = "url")]
    port: Option<u16>,
    /// Connect to URL instead of -h and -p:
    /// mqtt://[USER[:PASSWORD]@]HOST[:PORT][/TOPIC] (port 1883), mqtts://...
    /// (TLS, 8883), ws://[USER[:PASSWORD]@]HOST[:PORT][/PATH] (WebSocket at
    /// PATH, default /mqtt; port 8080), wss://... (8443).
    #[arg(short = 'L', long, value_name = "URL")]
    url: Option<String>,
    /// CA certificates (PEM) to verify the broker's certificate with;
    /// turns on TLS with -h/-p. Required for TLS.
    #[arg(long, value_name = "FILE")]
    cafile: Option<PathBuf>,
    /// Client certificate (PEM), for brokers that ask for one; turns on
    /// TLS with -h/-p.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// TLS: accept a broker certificate that does not name the host (the
    /// chain to --cafile is still checked).
    #[arg(long)]
    insecure: bool,
    /// Client id (default: strata-pub-PID / strata-sub-PID).
    #[arg(short = 'i', long = "id")]
    id: Option<String>,
    /// User name.
    #[arg(short, long)]
    username: Option<String>,
    /// Password.
    #[arg(short = 'P', long)]
    pw: Option<String>,
    /// MQTT version: 311 or 5.
    #[arg(
        short = 'V',
        long = "protocol-version",
        value_enum,
        default_value = "5"
    )]
    version: Version,
    /// Keep Alive in seconds.
    #[arg(short, long = "keepalive", default_value_t = 60)]
    keepalive: u16,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

impl ConnectArgs {
    /// The client's options, and the topic of an mqtt(s) URL; an error is
    /// bad usage, its message says why.
    fn options(&self, role: &str) -> Result<(Options, Option<String>), String> {
        let id = self
            .id
            .clone()
            .unwrap_or_else(|| format!("strata-{role}-{}", std::process::id()));
        let target = match &self.url {
            Some(url) => parse_url(url)?,
            None => Target::from_flags(&self.host, self.port, self.tls_flags()),
        };
        let transport = target.transport(self)?;
        let mut o = Options::new(target.address, id);
        o.transport = transport;
        o.protocol = match self.version {
            Version::V311 => Protocol::V3_1_1,
            Version::V5 => Protocol::V5,
        };
        o.keep_alive = Duration::from_secs(u64::from(self.keepalive));
        o.username = self.username.clone().or(target.username);
        o.password = self.pw.clone().or(target.password).map(Bytes::from);
        Ok((o, target.topic))
    }

    /// Whether a flag that only TLS uses was given.
    fn tls_flags(&self) -> bool {
        self.cafile.is_some() || self.cert.is_some()
    }

    fn tls(&self) -> Result<TlsOptions, String> {
        if self.cafile.is_none() {
            return Err(
                "TLS needs --cafile FILE, the CA certificate (PEM) that signed the \
                        broker's: the system's trust store is not used"
                    .to_owned(),
            );
        }
        Ok(TlsOptions {
            cafile: self.cafile.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            insecure: self.insecure,
            server_name: None,
        })
    }
}

/// How a URL (or -h and -p) says to carry MQTT.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Mqtt,
    Mqtts,
    Ws { path: String },
    Wss { path: String },
}

/// Where to connect, from `-L URL` or from `-h` and `-p`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: Scheme,
    /// `HOST:PORT`, an IPv6 host in brackets.
    address: String,
    topic: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl Target {
    fn from_flags(host: &str, port: Option<u16>, tls: bool) -> Target {
        let (scheme, default_port) = if tls {
            (Scheme::Mqtts, 8883)
        } else {
            (Scheme::Mqtt, 1883)
        };
        let port = port.unwrap_or(default_port);
        // An IPv6 address given bare to -h.
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Target {
            scheme,
            address,
            topic: None,
            username: None,
            password: None,
        }
    }

    fn transport(&self, args: &ConnectArgs) -> Result<Transport, String> {
        let secure = matches!(self.scheme, Scheme::Mqtts | Scheme::Wss { .. });
        if !secure && args.tls_flags() {
            // Only a URL gets here: -h/-p take TLS from these flags.
            return Err(
                "--cafile and --cert are for TLS, and this --url is plain: use mqtts:// or \
                 wss://"
                    .to_owned(),
            );
        }
        if !secure && args.insecure {
            return Err(
                "--insecure is for TLS: give --cafile (with -h/-p), or use an mqtts:// or \
                 wss:// --url"
                    .to_owned(),
            );
        }
        Ok(match &self.scheme {
            Scheme::Mqtt => Transport::Tcp,
            Scheme::Mqtts => Transport::Tls(args.tls()?),
            Scheme::Ws { path } => Transport::Ws { path: path.clone() },
            Scheme::Wss { path } => Transport::Wss {
                path: path.clone(),
                tls: args.tls()?,
            },
        })
    }
}

/// Reads `-L URL` (the forms are in the module's documentation).
fn parse_url(url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("--url {url:?}: {why}");
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        bad("expected SCHEME://HOST[:PORT][/...], the scheme one of mqtt, mqtts, ws, wss")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(user.to_owned()), Some(pass.to_owned())),
            None => (Some(u.to_owned()), None),
        },
        None => (None, None),
    };
    // The port is what follows the host: after `]` for an IPv6 address.
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport
            .find(']')
            .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
        let (host, after) = hostport.split_at(end + 1);
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(bad("expected :PORT after the IPv6 address")),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("no host"));
    }
    let ws_path = || {
        if path.is_empty() {
            "/mqtt".to_owned()
        } else {
            path.to_owned()
        }
    };
    let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" => (Scheme::Mqtt, 1883),
        "mqtts" => (Scheme::Mqtts, 8883),
        "ws" => (Scheme::Ws { path: ws_path() }, 8080),
        "wss" => (Scheme::Wss { path: ws_path() }, 8443),
        other => {
            return Err(bad(&format!(
                "unknown scheme {other:?}: use mqtt, mqtts, ws or wss"
            )));
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad(&format!("port {p:?} is not a number from 1 to 65535"))),
        },
    };
    let topic = match scheme {
        Scheme::Mqtt | Scheme::Mqtts => path
            .strip_prefix('/')
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        Scheme::Ws { .. } | Scheme::Wss { .. } => None,
    };
    Ok(Target {
        scheme,
        address: format!("{host}:{port}"),
        topic,
        username,
        password,
    })
}

fn qos(v: u8) -> QoS {
    match v {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// `strata pub`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct PubArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to publish to (or in the path of an mqtt(s) --url).
    #[arg(short, long, required_unless_present = "url")]
    topic: Option<String>,
    /// The message.
    #[arg(short, long, group = "source")]
    message: Option<String>,
    /// Send the contents of a file as the message.
    #[arg(short, long, group = "source")]
    file: Option<PathBuf>,
    /// Send each line of standard input as a message.
    #[arg(short = 'l', long = "stdin-line", group = "source")]
    lines: bool,
    /// Send all of standard input as one message.
    #[arg(short = 's', long = "stdin-file", group = "source")]
    stdin: bool,
    /// Send an empty message.
    #[arg(short = 'n', long = "null-message", group = "source")]
    null: bool,
    /// Quality of service: 0, 1 or 2.
    #[arg(short, long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Retain the message.
    #[arg(short, long)]
    retain: bool,
}

/// `strata sub`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct SubArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic filter to subscribe to (repeatable; or in the path of an
    /// mqtt(s) --url).
    #[arg(short, long, required_unless_present = "url")]
    topic: Vec<String>,
    /// Maximum quality of service: 0, 1 or 2.
    #[arg(short, long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Print the topic before each message.
    #[arg(short, long)]
    verbose: bool,
    /// Exit after this many messages.
    #[arg(short = 'C', long)]
    count: Option<u64>,
    /// Exit with code 3 after this many seconds if not done.
    #[arg(short = 'W', long)]
    timeout: Option<u64>,
    /// Keep the session when disconnected (Clean Session/Start 0; for 5.0
    /// with a Session Expiry Interval of one day).
    #[arg(short = 'c', long = "disable-clean-session")]
    persistent: bool,
    /// Do not print a newline after each message.
    #[arg(short = 'N')]
    no_newline: bool,
}

/// A tokio runtime: on every core (`multi_thread`), or on this thread.
pub fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().map_err(|e| {
        eprintln!("strata: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn fail(what: &str, e: Error) -> ExitCode {
    eprintln!("strata: {what}: {e}");
    ExitCode::FAILURE
}

fn usage(why: &str) -> ExitCode {
    eprintln!("strata: {why}");
    ExitCode::from(2)
}

pub fn run_pub(args: PubArgs) -> ExitCode {
    let rt = match runtime(false) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(publish(args))
}

async fn publish(args: PubArgs) -> ExitCode {
    let (options, url_topic) = match args.connect.options("pub") {
        Ok(o) => o,
        Err(why) => return usage(&why),
    };
    let topic = match (&args.topic, url_topic) {
        (Some(t), None) => t.clone(),
        (None, Some(t)) => t,
        (Some(_), Some(_)) => {
            return usage("the topic is given twice, with -t and in the --url path: give it once");
        }
        (None, None) => {
            return usage("say which topic: -t TOPIC, or mqtt://HOST/TOPIC with --url");
        }
    };
    let qos = qos(args.qos);
    let single: Option<Bytes> = if let Some(m) = &args.message {
        Some(Bytes::from(m.clone()))
    } else if let Some(f) = &args.file {
        match std::fs::read(f) {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) => {
                eprintln!("strata: cannot read {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        }
    } else if args.stdin {
        let mut b = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut b) {
            eprintln!("strata: cannot read standard input: {e}");
            return ExitCode::FAILURE;
        }
        Some(Bytes::from(b))
    } else if args.null {
        Some(Bytes::new())
    } else if args.lines {
        None
    } else {
        return usage("say what to publish: -m, -f, -l, -s or -n");
    };
    let (client, _inbox, _) = match Client::connect(options).await {
        Ok(c) => c,
        Err(e) => return fail("connect", e),
    };
    match single {
        Some(payload) => {
            if let Err(e) = client.publish(&topic, qos, args.retain, payload).await {
                return fail("publish", e);
            }
        }
        None => {
            // Lines are pipelined; reading stdin happens off the runtime.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(1024);
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    if tx.blocking_send(line).is_err() {
                        return;
                    }
                }
            });
            let mut pending = std::collections::VecDeque::new();
            while let Some(line) = rx.recv().await {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("strata: cannot read standard input: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                match client.start_publish(&topic, qos, args.retain, line) {
                    Ok(h) => pending.push_back(h),
                    Err(e) => return fail("publish", e),
                }
                if pending.len() >= 1024
                    && let Some(h) = pending.pop_front()
                    && let Err(e) = h.done().await
                {
                    return fail("publish", e);
                }
            }
            for h in pending {
                if let Err(e) = h.done().await {
                    return fail("publish", e);
                }
            }
        }
    }
    if let Err(e) = client.disconnect().await {
        return fail("disconnect", e);
    }
    ExitCode::SUCCESS
}

pub fn run_sub(args: SubArgs) -> ExitCode {
    let rt = match runtime(false) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(subscribe(args))
}

async fn subscribe(args: SubArgs) -> ExitCode {
    let (mut options, url_topic) = match args.connect.options("sub") {
        Ok(o) => o,
        Err(why) => return usage(&why),
    };
    let topics: Vec<String> = url_topic.into_iter().chain(args.topic).collect();
    if topics.is_empty() {
        return usage("say which topics: -t FILTER (repeatable), or mqtt://HOST/FILTER with --url");
    }
    if args.persistent {
        options.clean_start = false;
        options.session_expiry = 86_400;
    }
    let (client, mut inbox, _) = match Client::connect(options).await {
        Ok(c) => c,
        Err(e) => return fail("connect", e),
    };
    let qos = qos(args.qos);
    let filters: Vec<(&str, QoS)> = topics.iter().map(|t| (t.as_str(), qos)).collect();
    match client.subscribe(&filters).await {
        Ok(codes) => {
            for (code, (filter, _)) in codes.iter().zip(&filters) {
                if code.is_error() {
                    eprintln!("strata: subscription to {filter} refused: {code:?}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Err(e) => return fail("subscribe", e),
    }
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut seen = 0u64;
    let mut stdout = std::io::stdout().lock();
    let code = loop {
        if args.count.is_some_and(|c| seen >= c) {
            break ExitCode::SUCCESS;
        }
        let next = tokio::select! {
            m = inbox.recv() => m,
            _ = sleep_until_or_never(deadline) => {
                eprintln!("strata: timed out after {} messages", seen);
                break ExitCode::from(3);
            }
            _ = tokio::signal::ctrl_c() => break ExitCode::SUCCESS,
        };
        let Some(m) = next else {
            eprintln!("strata: the connection ended");
            break ExitCode::FAILURE;
        };
        seen += 1;
        let mut line = Vec::with_capacity(m.topic.len() + m.payload.len() + 2);
        if args.verbose {
            line.extend_from_slice(m.topic.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&m.payload);
        if !args.no_newline {
            line.push(b'\n');
        }
        if stdout
            .write_all(&line)
            .and_then(|_| stdout.flush())
            .is_err()
        {
            // The reader went away (a closed pipe): nothing left to do.
            break ExitCode::SUCCESS;
        }
    };
    let _ = client.disconnect().await;
    code
}

async fn sleep_until_or_never(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(scheme: Scheme, address: &str, topic: Option<&str>) -> Target {
        Target {
            scheme,
            address: address.to_owned(),
            topic: topic.map(str::to_owned),
            username: None,
            password: None,
        }
    }

    #[test]
    fn urls_map_to_address_transport_and_topic() {
        let ws = |p: &str| Scheme::Ws { path: p.to_owned() };
        let wss = |p: &str| Scheme::Wss { path: p.to_owned() };
        for (url, want) in [
            ("mqtt://broker", target(Scheme::Mqtt, "broker:1883", None)),
            (
                "mqtt://broker:1884/",
                target(Scheme::Mqtt, "broker:1884", None),
            ),
            (
                "mqtts://broker/a/+/#",
                target(Scheme::Mqtts, "broker:8883", Some("a/+/#")),
            ),
            (
                "MQTTS://[::1]:9883/t",
                target(Scheme::Mqtts, "[::1]:9883", Some("t")),
            ),
            ("ws://broker", target(ws("/mqtt"), "broker:8080", None)),
            ("ws://broker:80/", target(ws("/"), "broker:80", None)),
            (
                "wss://10.0.0.1/mqtt/v1?x=1",
                target(wss("/mqtt/v1?x=1"), "10.0.0.1:8443", None),
            ),
            ("wss://[::1]", target(wss("/mqtt"), "[::1]:8443", None)),
        ] {
            assert_eq!(parse_url(url), Ok(want), "{url}");
        }
        let t = parse_url("mqtt://ann:s3cr:t@broker/t").unwrap();
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("ann"), Some("s3cr:t"))
        );
        let t = parse_url("ws://ann@broker").unwrap();
        assert_eq!((t.username.as_deref(), t.password), (Some("ann"), None));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, why) in [
            (
                "broker:1883",
                "expected SCHEME://HOST[:PORT][/...], the scheme one of mqtt, mqtts, ws, wss",
            ),
            (
                "http://broker",
                "unknown scheme \"http\": use mqtt, mqtts, ws or wss",
            ),
            ("mqtt://:1883/t", "no host"),
            ("mqtt:///t", "no host"),
            (
                "mqtt://broker:x/t",
                "port \"x\" is not a number from 1 to 65535",
            ),
            (
                "mqtt://broker:0",
                "port \"0\" is not a number from 1 to 65535",
            ),
            ("ws://[::1", "an IPv6 address needs its closing ]"),
            ("ws://[::1]x", "expected :PORT after the IPv6 address"),
        ] {
            assert_eq!(
                parse_url(url),
                Err(format!("--url {url:?}: {why}")),
                "{url}"
            );
        }
    }

    #[test]
    fn flags_choose_tls_and_its_port() {
        assert_eq!(
            Target::from_flags("localhost", None, false),
            target(Scheme::Mqtt, "localhost:1883", None)
        );
        assert_eq!(
            Target::from_flags("localhost", None, true),
            target(Scheme::Mqtts, "localhost:8883", None)
        );
        assert_eq!(
            Target::from_flags("::1", Some(1), false),
            target(Scheme::Mqtt, "[::1]:1", None)
        );
    }
}
