//! `strata bench`: a load generator for any MQTT broker.
//!
//! Scenarios: fan-in (N publishers, one wildcard subscriber), fan-out (one
//! publisher, N subscribers), pairs (N publisher/subscriber pairs on their
//! own topics), idle (N connections that do nothing: broker memory per
//! connection), subscriptions (N connections with one QoS 1 subscription
//! each, then one publisher cycling over their topics), connect (whole
//! connections at a fixed rate: the broker's CPU per handshake).
//!
//! Every payload starts with a 20-byte header: publisher index (u32),
//! sequence number (u64) and the send time (u64 ns since the bench
//! started), all big-endian, padded to `--size`. Subscribers measure
//! latency from it, and count lost, duplicate and out-of-order messages
//! per publisher. Given `--pid`, the broker's CPU time (from
//! /proc/PID/stat) and RSS (/proc/PID/status) are read before and after.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use strata_client::{Options, Protocol, QoS};
use tokio::sync::Mutex;

use crate::tools::Version;

/// How the generator's clients write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Writes {
    /// One packet per `write`, as device clients send (paho, rumqttc,
    /// mqtt.js): what a broker meets in the field.
    PerPacket,
    /// Up to 64 KiB of packets per `write`: the broker's ceiling, past
    /// what real clients send.
    Batched,
}

/// Whose client code runs the publishers and subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// Strata's own lean clients: the generator costs little per message,
    /// and latency is taken at the subscriber's socket.
    Raw,
    /// The rumqttc crate (3.1.1): independent client code, as an
    /// application runs it; it costs more per message than `raw`.
    Rumqttc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    FanIn,
    FanOut,
    Pairs,
    Idle,
    Subscriptions,
    /// Connections opened and closed at --rate per second for --duration:
    /// the TCP (and TLS) handshake, CONNECT, CONNACK, DISCONNECT; the
    /// broker's CPU per connection.
    Connect,
}

/// What the clients' connections run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Tcp,
    /// TLS, trusting --cafile, verifying the broker as --tls-name.
    Tls,
    /// WebSocket at --ws-path.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

/// `strata bench`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(short, long, default_value_t = 1883)]
    port: u16,
    /// MQTT version: 311 or 5.
    #[arg(
        short = 'V',
        long = "protocol-version",
        value_enum,
        default_value = "311"
    )]
    version: Version,
    /// What to run.
    #[arg(long, value_enum, default_value = "fan-in")]
    scenario: Scenario,
    /// Publishers (fan-in), subscribers (fan-out), pairs, or connections
    /// (idle, subscriptions).
    #[arg(short = 'n', long, default_value_t = 10)]
    clients: usize,
    /// Quality of service of publishes and subscriptions.
    #[arg(short, long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Payload bytes (at least 20, the header).
    #[arg(short, long, default_value_t = 64)]
    size: usize,
    /// Total publish rate in msg/s over all publishers; 0 is unlimited.
    #[arg(short, long, default_value_t = 0)]
    rate: u64,
    /// Messages per publisher; 0 is bounded by --duration only.
    #[arg(short = 'c', long, default_value_t = 0)]
    count: u64,
    /// Seconds of publishing.
    #[arg(short, long, default_value_t = 10)]
    duration: u64,
    /// New connections per second; 0 opens them as fast as possible.
    #[arg(long, default_value_t = 0)]
    ramp: u64,
    /// Unacknowledged publishes per publisher at most.
    #[arg(long, default_value_t = 256)]
    inflight: usize,
    /// How publishers and subscribers write (raw clients).
    #[arg(long, value_enum, default_value = "per-packet")]
    writes: Writes,
    /// Whose client code publishes and subscribes.
    #[arg(long, value_enum, default_value = "raw")]
    client: ClientKind,
    /// What the connections run over (raw and strata clients; rumqttc
    /// speaks TCP only).
    #[arg(long, value_enum, default_value = "tcp")]
    transport: TransportArg,
    /// The CA certificates (PEM) a TLS transport trusts.
    #[arg(long, value_name = "FILE")]
    cafile: Option<std::path::PathBuf>,
    /// The name a TLS transport verifies the broker's certificate
    /// against (default: --host).
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
    /// The HTTP path of a WebSocket transport.
    #[arg(long, value_name = "PATH", default_value = "/mqtt")]
    ws_path: String,
    /// Made from --transport, once.
    #[arg(skip)]
    dial: Option<wire::Dial>,
    /// Subscribers keep persistent sessions (3.1.1 Clean Session 0; 5.0 a
    /// Session Expiry Interval of an hour), so a broker with persistence
    /// stores their QoS 1/2 messages: the durable path.
    #[arg(long)]
    persistent: bool,
    /// PID of the broker, for its CPU and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write every message's latency to the subscriber's socket to
    /// this file, in ns, one per line: percentiles over many runs can then
    /// be taken over all their messages.
    #[arg(long, value_name = "FILE")]
    latencies: Option<std::path::PathBuf>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

const HEADER: usize = 20;
/// Sequence numbers past this are not tracked (a bitset of 64 MiB).
const MAX_SEQ: u64 = 1 << 29;
/// The largest payload a run sends.
const MAX_SIZE: usize = 256 * 1024;
/// How long a client may stay stuck past its end before the run fails.
const STALL: Duration = Duration::from_secs(5);
/// Keep Alive of every bench connection, seconds.
const KEEP_ALIVE_S: u16 = 600;

mod conns;
mod raw;
mod rumq;
mod wire;

fn qos_of(v: u8) -> QoS {
    match v {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The broker's CPU seconds and RSS bytes, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    cpu_s: f64,
    /// Of `cpu_s`, the time in the kernel (system calls, and the network
    /// stack's work charged to the broker).
    sys_s: f64,
    rss: u64,
}

fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let pid = pid?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), in ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ProcSample {
        cpu_s: (utime + stime) as f64 / 100.0,
        sys_s: stime as f64 / 100.0,
        rss: rss_kb * 1024,
    })
}

/// What one subscriber saw of one publisher.
#[derive(Debug, Default)]
struct Track {
    seen: Vec<u64>, // bitset of sequence numbers
    unique: u64,
    duplicates: u64,
    out_of_order: u64,
    highest: Option<u64>,
}

impl Track {
    fn record(&mut self, seq: u64) {
        // A sequence number no run reaches (a stray or corrupt payload)
        // would size the bitset by itself.
        if seq >= MAX_SEQ {
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        match self.highest {
            Some(h) if seq < h => self.out_of_order += 1,
            _ => self.highest = Some(seq),
        }
    }
}

/// What one subscriber collects, as it reads.
#[derive(Debug)]
struct Collector {
    shared: Arc<Shared>,
    /// One per publisher.
    tracks: Vec<Track>,
    /// Publish to arrival in the subscriber's socket.
    latencies_ns: Vec<u64>,
    /// Publish to the generator reading it.
    read_latencies_ns: Vec<u64>,
    /// When the current read returned, since `shared.start`.
    now_ns: u64,
    /// When the kernel received the current read's bytes, on the same
    /// scale (the read's time if the socket does not stamp arrivals).
    arrived_ns: u64,
}

impl Collector {
    /// Every message of one read arrived at `arrived` (the kernel's
    /// receive time, ns since the epoch) or, without it, when the read
    /// returned. The kernel's stamp is on the wall clock: how long before
    /// this moment it was is read on the wall clock too, and taken off
    /// the run's own clock, so that neither a step of the wall clock
    /// before the read nor the moment the run began can skew it.
    fn read_at(&mut self, arrived: Option<u64>) {
        self.now_ns = self.shared.start.elapsed().as_nanos() as u64;
        self.arrived_ns = match arrived {
            Some(t) => {
                let wall_now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                self.now_ns.saturating_sub(wall_now.saturating_sub(t))
            }
            None => self.now_ns,
        };
    }

    /// A message's payload: publisher index, sequence number, send time.
    fn record(&mut self, p: &[u8]) {
        if p.len() < HEADER {
            return;
        }
        let idx = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        let seq = u64::from_be_bytes(p[4..12].try_into().unwrap_or_default());
        let sent = u64::from_be_bytes(p[12..20].try_into().unwrap_or_default());
        if let Some(t) = self.tracks.get_mut(idx) {
            t.record(seq);
        }
        self.latencies_ns.push(self.arrived_ns.saturating_sub(sent));
        self.read_latencies_ns
            .push(self.now_ns.saturating_sub(sent));
    }

    fn delivered(&self, n: u64) {
        if n > 0 {
            self.shared.delivered.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Everything the subscribers collect.
#[derive(Debug, Default)]
struct Collected {
    latencies_ns: Vec<u64>,
    read_latencies_ns: Vec<u64>,
    /// [subscriber][publisher]
    tracks: Vec<Vec<Track>>,
}

#[derive(Debug)]
struct Shared {
    start: Instant,
    delivered: AtomicU64,
    published: Vec<AtomicU64>,
    collected: Mutex<Collected>,
}

pub fn run_bench(args: BenchArgs) -> ExitCode {
    let rt = match crate::tools::runtime(true) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How a bench client connects; `persistent`: a session that outlives the
/// connection (3.1.1 Clean Session 0; 5.0 a Session Expiry of an hour).
fn setup(a: &BenchArgs, client_id: String, persistent: bool) -> raw::Setup {
    raw::Setup {
        addr: format!("{}:{}", a.host, a.port),
        client_id,
        protocol: match a.version {
            Version::V311 => strata_codec::Protocol::V3_1_1,
            Version::V5 => strata_codec::Protocol::V5,
        },
        clean_start: !persistent,
        session_expiry: if persistent { 3600 } else { 0 },
        keep_alive: KEEP_ALIVE_S,
        per_packet: a.writes == Writes::PerPacket,
        dial: a.dial.clone().unwrap_or(wire::Dial::Tcp),
    }
}

fn codec_qos(q: QoS) -> strata_codec::QoS {
    match q {
        QoS::AtMostOnce => strata_codec::QoS::AtMostOnce,
        QoS::AtLeastOnce => strata_codec::QoS::AtLeastOnce,
        QoS::ExactlyOnce => strata_codec::QoS::ExactlyOnce,
    }
}

fn options(a: &BenchArgs, id: String) -> Options {
    let mut o = Options::new(format!("{}:{}", a.host, a.port), id);
    o.protocol = match a.version {
        Version::V311 => Protocol::V3_1_1,
        Version::V5 => Protocol::V5,
    };
    o.keep_alive = Duration::from_secs(u64::from(KEEP_ALIVE_S));
    o.connect_timeout = Duration::from_secs(30);
    let tls = || strata_client::TlsOptions {
        cafile: a.cafile.clone(),
        server_name: a.tls_name.clone(),
        ..Default::default()
    };
    o.transport = match a.transport {
        TransportArg::Tcp => strata_client::Transport::Tcp,
        TransportArg::Tls => strata_client::Transport::Tls(tls()),
        TransportArg::Ws => strata_client::Transport::Ws {
            path: a.ws_path.clone(),
        },
        TransportArg::Wss => strata_client::Transport::Wss {
            path: a.ws_path.clone(),
            tls: tls(),
        },
    };
    o
}

async fn ramp_pause(a: &BenchArgs) {
    if a.ramp > 0 {
        tokio::time::sleep(Duration::from_secs_f64(1.0 / a.ramp as f64)).await;
    }
}

async fn bench(mut a: BenchArgs) -> Result<(), String> {
    if a.transport != TransportArg::Tcp {
        if a.client == ClientKind::Rumqttc {
            return Err("--client rumqttc speaks TCP only: leave --transport out".into());
        }
        let connector = strata_client::Connector::new(&options(&a, String::new()))
            .map_err(|e| e.to_string())?;
        a.dial = Some(wire::Dial::Client(Arc::new(connector)));
    }
    if a.size < HEADER {
        return Err(format!("--size must be at least {HEADER} (the header)"));
    }
    if a.size > MAX_SIZE {
        return Err(format!("--size must be at most {MAX_SIZE}"));
    }
    let tag = format!("{:x}", std::process::id());
    let qos = qos_of(a.qos);
    let n = a.clients.max(1);
    match a.scenario {
        Scenario::Idle | Scenario::Subscriptions => {
            return conns::connections(&a, &tag, qos, n).await;
        }
        Scenario::Connect => return conns::connect_rate(&a, &tag).await,
        _ => {}
    }
    // Who publishes where, and who listens.
    let (publishers, subscribers): (Vec<String>, Vec<String>) = match a.scenario {
        Scenario::FanIn => (
            (0..n).map(|i| format!("bench/{tag}/in/{i}")).collect(),
            vec![format!("bench/{tag}/in/+")],
        ),
        Scenario::FanOut => (
            vec![format!("bench/{tag}/out")],
            (0..n).map(|_| format!("bench/{tag}/out")).collect(),
        ),
        _ => (
            (0..n).map(|i| format!("bench/{tag}/pair/{i}")).collect(),
            (0..n).map(|i| format!("bench/{tag}/pair/{i}")).collect(),
        ),
    };
    let shared = Arc::new(Shared {
        start: Instant::now(),
        delivered: AtomicU64::new(0),
        published: (0..publishers.len()).map(|_| AtomicU64::new(0)).collect(),
        collected: Mutex::new(Collected::default()),
    });
    // Subscribers first, so nothing published is missed.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sub_tasks = Vec::new();
    for (i, filter) in subscribers.iter().enumerate() {
        let sub = Sub::connect(
            a.client,
            &setup(&a, format!("b-{tag}-s{i}"), a.persistent),
            filter,
            codec_qos(qos),
        )
        .await
        .map_err(|e| format!("subscriber {i}: {e}"))?;
        let mut collector = Collector {
            shared: shared.clone(),
            tracks: (0..publishers.len()).map(|_| Track::default()).collect(),
            latencies_ns: Vec::new(),
            read_latencies_ns: Vec::new(),
            now_ns: 0,
            arrived_ns: 0,
        };
        let stop = stop_rx.clone();
        sub_tasks.push(tokio::spawn(async move {
            let r = sub.run(stop, &mut collector).await;
            let mut c = collector.shared.collected.lock().await;
            c.latencies_ns.extend(collector.latencies_ns);
            c.read_latencies_ns.extend(collector.read_latencies_ns);
            c.tracks.push(collector.tracks);
            drop(c);
            r.map_err(|e| format!("subscriber {i}: {e}"))
        }));
        ramp_pause(&a).await;
    }
    let mut pub_clients = Vec::new();
    for i in 0..publishers.len() {
        let p = Pub::connect(
            a.client,
            &setup(&a, format!("b-{tag}-p{i}"), false),
            a.inflight,
        )
        .await
        .map_err(|e| format!("publisher {i}: {e}"))?;
        pub_clients.push(p);
        ramp_pause(&a).await;
    }
    let before = sample(a.pid);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(a.duration);
    let per_pub_rate = (a.rate > 0).then(|| a.rate as f64 / publishers.len() as f64);
    // As long as the run itself, between 2 and 30 seconds.
    let ack_wait = Duration::from_secs(a.duration.clamp(2, 30));
    let mut pub_tasks = Vec::new();
    let n_publishers = publishers.len();
    for (i, (p, topic)) in pub_clients.into_iter().zip(publishers).enumerate() {
        let shared = shared.clone();
        let plan = raw::Plan {
            index: i as u32,
            topic,
            qos: codec_qos(qos),
            size: a.size,
            count: a.count,
            deadline,
            rate: per_pub_rate,
            t0,
            // 100 publishers at 100 msg/s each make 10k msg/s spread evenly,
            // not a burst of 100 every 10 ms.
            phase: i as f64 / n_publishers as f64,
            epoch: shared.start,
            inflight: a.inflight.max(1),
            ack_wait,
        };
        pub_tasks.push(tokio::spawn(async move {
            // A broker that stops reading would block a write for good:
            // the run ends by itself all the same.
            let give_up = plan.deadline + plan.ack_wait + STALL;
            match tokio::time::timeout_at(give_up.into(), p.run(&plan, &shared.published[i])).await
            {
                Ok(r) => r.map_err(|e| format!("publisher {i}: {e}")),
                Err(_) => Err(format!(
                    "publisher {i}: the broker stopped taking messages (still writing {:.0} s after the end)",
                    (plan.ack_wait + STALL).as_secs_f64()
                )),
            }
        }));
    }
    // Progress, once a second, until the publishers are done.
    let progress = {
        let shared = shared.clone();
        let json = a.json;
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let d = shared.delivered.load(Ordering::Relaxed);
                let p: u64 = shared
                    .published
                    .iter()
                    .map(|x| x.load(Ordering::Relaxed))
                    .sum();
                if !json {
                    eprintln!(
                        "{:>5.1}s published {p} delivered {d} ({} msg/s)",
                        shared.start.elapsed().as_secs_f64(),
                        d - last
                    );
                }
                last = d;
            }
        })
    };
    for t in pub_tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let publish_end = Instant::now();
    // Drain: wait until everything expected arrived, or nothing more comes
    // for two seconds.
    let expected_per_sub: u64 = shared
        .published
        .iter()
        .map(|x| x.load(Ordering::Relaxed))
        .sum();
    let expected = match a.scenario {
        Scenario::FanIn => expected_per_sub,
        Scenario::FanOut => expected_per_sub * n as u64,
        _ => expected_per_sub,
    };
    let mut last = shared.delivered.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    let drain_end = loop {
        let d = shared.delivered.load(Ordering::Relaxed);
        if d >= expected {
            break Instant::now();
        }
        if d != last {
            last = d;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_secs(2) {
            break quiet_since;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let after = sample(a.pid);
    let _ = stop_tx.send(true);
    progress.abort();
    let give_up = tokio::time::Instant::now() + STALL;
    for (i, t) in sub_tasks.into_iter().enumerate() {
        tokio::time::timeout_at(give_up, t)
            .await
            .map_err(|_| format!("subscriber {i}: did not stop (the broker stopped reading)"))?
            .map_err(|e| e.to_string())??;
    }
    let mut c = shared.collected.lock().await;
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let elapsed = drain_end.duration_since(t0).as_secs_f64().max(1e-9);
    if let Some(path) = &a.latencies {
        write_latencies(path, &c.latencies_ns)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let lat = percentiles(std::mem::take(&mut c.latencies_ns));
    let read_lat = percentiles(std::mem::take(&mut c.read_latencies_ns));
    let published: Vec<u64> = shared
        .published
        .iter()
        .map(|x| x.load(Ordering::Relaxed))
        .collect();
    let (mut lost, mut dup, mut ooo) = (0u64, 0u64, 0u64);
    for sub in &c.tracks {
        for (p, t) in sub.iter().enumerate() {
            let relevant = match a.scenario {
                Scenario::Pairs => t.unique > 0 || t.duplicates > 0,
                _ => true,
            };
            if relevant {
                lost += published[p].saturating_sub(t.unique);
            }
            dup += t.duplicates;
            ooo += t.out_of_order;
        }
    }
    if a.scenario == Scenario::Pairs {
        // Each pair's subscriber hears one publisher; count what no one got.
        let heard: u64 = c.tracks.iter().flatten().map(|t| t.unique).sum();
        lost = published.iter().sum::<u64>().saturating_sub(heard);
    }
    let cpu = match (before, after) {
        (Some(b), Some(af)) => Some(af.cpu_s - b.cpu_s),
        _ => None,
    };
    let sys = match (before, after) {
        (Some(b), Some(af)) => Some(af.sys_s - b.sys_s),
        _ => None,
    };
    let report = Report {
        scenario: format!("{:?}", a.scenario),
        clients: n,
        qos: a.qos,
        size: a.size,
        published: published.iter().sum(),
        delivered,
        seconds: elapsed,
        publish_seconds: publish_end.duration_since(t0).as_secs_f64(),
        msg_per_s: delivered as f64 / elapsed,
        p50_us: lat[0],
        p99_us: lat[1],
        p999_us: lat[2],
        max_us: lat[3],
        read_p50_us: read_lat[0],
        read_p99_us: read_lat[1],
        lost,
        duplicates: dup,
        out_of_order: ooo,
        broker_cpu_s: cpu,
        broker_sys_s: sys,
        msg_per_cpu_s: cpu.map(|c| delivered as f64 / c.max(1e-9)),
        broker_rss: after.map(|s| s.rss),
        rss_per_connection: None,
    };
    report.print(a.json);
    Ok(())
}

/// A subscriber of either kind.
#[derive(Debug)]
enum Sub {
    Raw(raw::Subscriber),
    Rumqttc(Box<rumq::Subscriber>),
}

impl Sub {
    async fn connect(
        kind: ClientKind,
        s: &raw::Setup,
        filter: &str,
        qos: strata_codec::QoS,
    ) -> std::io::Result<Sub> {
        Ok(match kind {
            ClientKind::Raw => Sub::Raw(raw::Subscriber::connect(s, filter, qos).await?),
            ClientKind::Rumqttc => {
                Sub::Rumqttc(Box::new(rumq::Subscriber::connect(s, filter, qos).await?))
            }
        })
    }

    async fn run(
        self,
        stop: tokio::sync::watch::Receiver<bool>,
        c: &mut Collector,
    ) -> std::io::Result<()> {
        match self {
            Sub::Raw(s) => s.run(stop, c).await,
            Sub::Rumqttc(s) => s.run(stop, c).await,
        }
    }
}

/// A publisher of either kind.
#[derive(Debug)]
enum Pub {
    Raw(raw::Publisher),
    Rumqttc(Box<rumq::Publisher>),
}

impl Pub {
    async fn connect(kind: ClientKind, s: &raw::Setup, inflight: usize) -> std::io::Result<Pub> {
        Ok(match kind {
            ClientKind::Raw => Pub::Raw(raw::Publisher::connect(s).await?),
            ClientKind::Rumqttc => {
                Pub::Rumqttc(Box::new(rumq::Publisher::connect(s, inflight).await?))
            }
        })
    }

    async fn run(self, plan: &raw::Plan, published: &AtomicU64) -> std::io::Result<()> {
        match self {
            Pub::Raw(p) => p.run(plan, published).await,
            Pub::Rumqttc(p) => p.run(plan, published).await,
        }
    }
}

/// `ns`, one number per line.
fn write_latencies(path: &std::path::Path, ns: &[u64]) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for v in ns {
        writeln!(w, "{v}")?;
    }
    w.flush()
}

/// p50, p99, p99.9 and the maximum of `ns`, in µs (zeros if empty).
fn percentiles(mut ns: Vec<u64>) -> [f64; 4] {
    ns.sort_unstable();
    let pct = |q: f64| -> f64 {
        if ns.is_empty() {
            return 0.0;
        }
        let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
        ns[i] as f64 / 1000.0
    };
    [pct(0.50), pct(0.99), pct(0.999), pct(1.0)]
}

#[derive(Debug, Default)]
struct Report {
    scenario: String,
    clients: usize,
    qos: u8,
    size: usize,
    published: u64,
    delivered: u64,
    seconds: f64,
    publish_seconds: f64,
    msg_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    /// To the generator's read of the message rather than its arrival.
    read_p50_us: f64,
    read_p99_us: f64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    broker_cpu_s: Option<f64>,
    /// Of `broker_cpu_s`, in the kernel.
    broker_sys_s: Option<f64>,
    msg_per_cpu_s: Option<f64>,
    broker_rss: Option<u64>,
    rss_per_connection: Option<f64>,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("null".to_string(), |v| v.to_string())
}

impl Report {
    fn print(&self, json: bool) {
        if json {
            println!(
                "{{\"scenario\":\"{}\",\"clients\":{},\"qos\":{},\"size\":{},\"published\":{},\"delivered\":{},\"seconds\":{:.3},\"publish_seconds\":{:.3},\"msg_per_s\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1},\"read_p50_us\":{:.1},\"read_p99_us\":{:.1},\"lost\":{},\"duplicates\":{},\"out_of_order\":{},\"broker_cpu_s\":{},\"broker_sys_s\":{},\"msg_per_cpu_s\":{},\"broker_rss\":{},\"rss_per_connection\":{}}}",
                self.scenario,
                self.clients,
                self.qos,
                self.size,
                self.published,
                self.delivered,
                self.seconds,
                self.publish_seconds,
                self.msg_per_s,
                self.p50_us,
                self.p99_us,
                self.p999_us,
                self.max_us,
                self.read_p50_us,
                self.read_p99_us,
                self.lost,
                self.duplicates,
                self.out_of_order,
                opt(self.broker_cpu_s.map(|v| format!("{v:.3}"))),
                opt(self.broker_sys_s.map(|v| format!("{v:.3}"))),
                opt(self.msg_per_cpu_s.map(|v| format!("{v:.1}"))),
                opt(self.broker_rss),
                opt(self.rss_per_connection.map(|v| format!("{v:.1}"))),
            );
            return;
        }
        if self.scenario == "Connect" {
            println!(
                "Connect: {} connections in {:.2}s ({:.0}/s), {} failed",
                self.delivered, self.seconds, self.msg_per_s, self.lost
            );
            println!(
                "  connect to CONNACK us: p50 {:.0} p99 {:.0} max {:.0}",
                self.p50_us, self.p99_us, self.max_us
            );
            if let Some(cpu) = self.broker_cpu_s {
                println!(
                    "  broker cpu {cpu:.2}s: {:.0} us per connection",
                    cpu * 1e6 / (self.delivered.max(1) as f64)
                );
            }
            return;
        }
        println!(
            "{} clients={} qos={} size={}",
            self.scenario, self.clients, self.qos, self.size
        );
        if self.published > 0 || self.delivered > 0 {
            println!(
                "  published {} delivered {} in {:.2}s: {:.0} msg/s",
                self.published, self.delivered, self.seconds, self.msg_per_s
            );
            println!(
                "  latency us (publish to the subscriber's socket): p50 {:.0} p99 {:.0} p99.9 {:.0} max {:.0}",
                self.p50_us, self.p99_us, self.p999_us, self.max_us
            );
            println!(
                "  latency us (publish to the generator's read): p50 {:.0} p99 {:.0}",
                self.read_p50_us, self.read_p99_us
            );
            println!(
                "  lost {} duplicates {} out of order {}",
                self.lost, self.duplicates, self.out_of_order
            );
        }
        if let Some(c) = self.broker_cpu_s {
            println!(
                "  broker cpu {:.2}s ({:.2}s in the kernel): {:.0} msg per cpu-second",
                c,
                self.broker_sys_s.unwrap_or(0.0),
                self.msg_per_cpu_s.unwrap_or(0.0)
            );
        }
        if let Some(r) = self.broker_rss {
            println!("  broker rss {:.1} MiB", r as f64 / 1048576.0);
        }
        if let Some(r) = self.rss_per_connection {
            println!("  broker rss per connection {r:.0} bytes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Track;

    #[test]
    fn track_tells_duplicates_from_reordering() {
        let mut t = Track::default();
        for seq in [0, 1, 3, 2, 3, 200, 1] {
            t.record(seq);
        }
        assert_eq!(t.unique, 5); // 0 1 2 3 200
        assert_eq!(t.duplicates, 2); // the second 3 and the second 1
        assert_eq!(t.out_of_order, 1); // 2 after 3
        assert_eq!(t.highest, Some(200));
        // A stray sequence number far past any run is not tracked (it
        // would size the bitset).
        t.record(u64::MAX / 2);
        assert_eq!(t.unique, 5);
        assert!(t.seen.len() <= 4);
    }
}
