//! `strata`: the broker and its tools: `strata serve`, `strata pub`,
//! `strata sub`, `strata bench`, `strata ca`, `strata passwd`,
//! `strata admin`, `strata inspect`.

mod admin;
mod bench;
mod ca;
mod passwd;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use strata_broker::config::{CertFiles, parse_listen_url};
use strata_broker::{Broker, BrokerConfig, Listener};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: an MQTT broker and durable log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (embedded defaults: listener 127.0.0.1:1883, durable
    /// state in ./data).
    Serve {
        /// A TOML configuration file; see strata.toml in the repository.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen here instead of the configured MQTT listeners
        /// (repeatable): HOST:PORT or tcp://HOST:PORT, tls://HOST:PORT,
        /// ws://HOST:PORT/PATH, wss://HOST:PORT/PATH.
        #[arg(long, value_name = "URL")]
        listen: Vec<String>,
        /// The certificate chain (PEM) of tls:// and wss:// --listen URLs.
        #[arg(long, value_name = "FILE", requires = "keyfile")]
        certfile: Option<PathBuf>,
        /// The private key (PEM) of --certfile.
        #[arg(long, value_name = "FILE", requires = "certfile")]
        keyfile: Option<PathBuf>,
        /// The admin HTTP listener (health, metrics, API) instead of
        /// [admin] bind: HOST:PORT, or off.
        #[arg(long, value_name = "HOST:PORT|off")]
        admin_listen: Option<String>,
        /// On SIGTERM or SIGINT, how long connections may take to close
        /// (5.0 clients hear DISCONNECT 0x8B) before the process exits.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        drain_timeout: u64,
        /// Keep sessions, offline messages and retained messages in this
        /// directory across restarts (overrides storage.data_dir; the
        /// default is ./data).
        #[arg(long, value_name = "DIR", conflicts_with = "in_memory")]
        data_dir: Option<PathBuf>,
        /// Keep nothing across restarts: no data directory (overrides
        /// storage.data_dir).
        #[arg(long)]
        in_memory: bool,
        /// More log output (-v debug, -vv trace). RUST_LOG overrides.
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        /// Only warnings and errors.
        #[arg(short, long)]
        quiet: bool,
        /// Log lines as text, or as one JSON object per line.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Publish messages (flags as in mosquitto_pub).
    Pub(tools::PubArgs),
    /// Subscribe and print messages (flags as in mosquitto_sub).
    Sub(tools::SubArgs),
    /// Load-test a broker: fan-in, fan-out, pairs, idle connections.
    Bench(bench::BenchArgs),
    /// A certificate authority for TLS listeners and client certificates.
    Ca(ca::CaArgs),
    /// Add, change or delete users of a password file (flags as in
    /// mosquitto_passwd).
    Passwd(passwd::PasswdArgs),
    /// The admin API: API keys, status, metrics.
    Admin(admin::AdminArgs),
    /// Print a data directory's log, record by record (never changes it).
    Inspect {
        /// A data directory (as given to --data-dir) or its log/ directory.
        path: PathBuf,
    },
}

fn init_logging(verbose: u8, quiet: bool, json: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        // One JSON object per line, the event's fields flattened in: what
        // a log collector reads.
        fmt.json().flatten_event(true).init();
    } else {
        // Colours only on a terminal: a log file or pipe gets plain text.
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            certfile,
            keyfile,
            admin_listen,
            drain_timeout,
            data_dir,
            in_memory,
            verbose,
            quiet,
            log_format,
        } => {
            init_logging(verbose, quiet, log_format == LogFormat::Json);
            let cert = certfile
                .zip(keyfile)
                .map(|(certfile, keyfile)| CertFiles { certfile, keyfile });
            let mut listeners = Vec::new();
            for url in &listen {
                match parse_listen_url(url, cert.as_ref()) {
                    Ok(l) => listeners.push(l),
                    Err(e) => {
                        eprintln!("strata: --listen {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let admin = match admin_listen
                .as_deref()
                .map(strata_broker::config::parse_admin_bind)
            {
                None => None,
                Some(Ok(a)) => Some(a),
                Some(Err(e)) => {
                    eprintln!("strata: --admin-listen {e}");
                    return ExitCode::from(2);
                }
            };
            serve(
                config,
                listeners,
                admin,
                Duration::from_secs(drain_timeout),
                data_dir,
                in_memory,
            )
        }
        Command::Pub(args) => tools::run_pub(args),
        Command::Sub(args) => tools::run_sub(args),
        Command::Bench(args) => bench::run_bench(args),
        Command::Ca(args) => ca::run_ca(args),
        Command::Passwd(args) => passwd::run_passwd(args),
        Command::Admin(args) => admin::run_admin(args),
        Command::Inspect { path } => {
            let mut out = std::io::stdout().lock();
            match strata_broker::inspect::inspect(&path, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                // A closed pipe (`| head`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("strata inspect: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(
    config: Option<PathBuf>,
    listen: Vec<Listener>,
    admin: Option<Option<std::net::SocketAddr>>,
    drain: Duration,
    data_dir: Option<PathBuf>,
    in_memory: bool,
) -> ExitCode {
    // STRATA_SECTION__KEY variables override the file's keys (containers).
    let mut cfg = match config.clone() {
        Some(path) => match BrokerConfig::from_file_env(&path, std::env::vars()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("strata: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        // The defaults of a configuration file: durable in ./data.
        None => match BrokerConfig::from_toml_env("", None, std::env::vars()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("strata: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if !listen.is_empty() {
        cfg.listeners = listen;
    }
    if let Some(bind) = admin {
        cfg.admin.bind = bind;
    }
    if data_dir.is_some() || in_memory {
        cfg.storage.data_dir = data_dir;
    }
    let rt = match crate::tools::runtime(true) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let broker = match Broker::start(cfg).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("strata: {e}");
                return ExitCode::FAILURE;
            }
        };
        let signals = Signals::new();
        for name in broker.listening() {
            // Scripts wait for this line to know the port.
            println!("listening on {name}");
        }
        if let Some(a) = broker.admin_addr() {
            println!("admin listening on http://{a}");
        }
        signals.wait(&broker, config.as_deref()).await;
        tracing::info!("shutting down");
        broker.shutdown(drain).await;
        ExitCode::SUCCESS
    })
}

/// SIGINT, SIGTERM and SIGHUP, listened for from before the start-up
/// lines are printed: a SIGHUP sent as soon as a script sees `listening on`
/// reloads instead of killing the process (its default action).
struct Signals {
    #[cfg(unix)]
    term_hup: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term_hup = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(t), Ok(h)) => Some((t, h)),
                _ => None,
            };
            Signals { term_hup }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for SIGINT or SIGTERM; SIGHUP meanwhile reloads what can be
    /// reloaded: certificates and keys, the files of `[auth]`, and the
    /// per-client `[limits]` of the configuration file, read again (a file
    /// that does not parse keeps the limits in force and says why).
    async fn wait(self, broker: &Broker, config: Option<&std::path::Path>) {
        #[cfg(unix)]
        if let Some((mut term, mut hup)) = self.term_hup {
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return,
                    _ = term.recv() => return,
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP: reloading certificates, [auth] files and [limits]");
                        if let Some(path) = config {
                            match BrokerConfig::from_file_env(path, std::env::vars()) {
                                Ok(c) => broker.reload_limits(&c),
                                Err(e) => tracing::warn!(error = %e, "[limits] not reloaded; the old ones stay"),
                            }
                        }
                        // Each outcome is logged.
                        broker.reload();
                    }
                }
            }
        }
        let _ = broker;
        let _ = tokio::signal::ctrl_c().await;
    }
}
