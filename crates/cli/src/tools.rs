//! `strata pub` and `strata sub`: the everyday client commands, with the
//! flags a Mosquitto user expects.
//!
//! Exit codes: 0 done; 1 could not connect, refused, or a request failed;
//! 2 bad usage; 3 `sub -W` timed out before `-C` messages arrived.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgAction, Args, ValueEnum};
use strata_client::{Client, Error, Options, Protocol, QoS};

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
    #[arg(short = 'h', long, default_value = "localhost")]
    host: String,
    /// Broker port.
    #[arg(short, long, default_value_t = 1883)]
    port: u16,
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
    fn options(&self, role: &str) -> Options {
        let id = self
            .id
            .clone()
            .unwrap_or_else(|| format!("strata-{role}-{}", std::process::id()));
        let mut o = Options::new(format!("{}:{}", self.host, self.port), id);
        o.protocol = match self.version {
            Version::V311 => Protocol::V3_1_1,
            Version::V5 => Protocol::V5,
        };
        o.keep_alive = Duration::from_secs(u64::from(self.keepalive));
        o.username = self.username.clone();
        o.password = self.pw.clone().map(Bytes::from);
        o
    }
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
    /// Topic to publish to.
    #[arg(short, long)]
    topic: String,
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
    /// Topic filter to subscribe to (repeatable).
    #[arg(short, long, required = true)]
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

pub fn run_pub(args: PubArgs) -> ExitCode {
    let rt = match runtime(false) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(publish(args))
}

async fn publish(args: PubArgs) -> ExitCode {
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
        eprintln!("strata: say what to publish: -m, -f, -l, -s or -n");
        return ExitCode::from(2);
    };
    let (client, _inbox, _) = match Client::connect(args.connect.options("pub")).await {
        Ok(c) => c,
        Err(e) => return fail("connect", e),
    };
    match single {
        Some(payload) => {
            if let Err(e) = client.publish(&args.topic, qos, args.retain, payload).await {
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
                match client.start_publish(&args.topic, qos, args.retain, line) {
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
    let mut options = args.connect.options("sub");
    if args.persistent {
        options.clean_start = false;
        options.session_expiry = 86_400;
    }
    let (client, mut inbox, _) = match Client::connect(options).await {
        Ok(c) => c,
        Err(e) => return fail("connect", e),
    };
    let qos = qos(args.qos);
    let filters: Vec<(&str, QoS)> = args.topic.iter().map(|t| (t.as_str(), qos)).collect();
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
