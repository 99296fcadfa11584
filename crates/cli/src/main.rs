//! `strata`: the broker and its tools: `strata serve`, `strata pub`,
//! `strata sub`, `strata bench`, `strata inspect`.

mod bench;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use strata_broker::{Broker, BrokerConfig};

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
        /// Listen on HOST:PORT instead of the configured listeners (repeatable).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Vec<SocketAddr>,
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
    },
    /// Publish messages (flags as in mosquitto_pub).
    Pub(tools::PubArgs),
    /// Subscribe and print messages (flags as in mosquitto_sub).
    Sub(tools::SubArgs),
    /// Load-test a broker: fan-in, fan-out, pairs, idle connections.
    Bench(bench::BenchArgs),
    /// Print a data directory's log, record by record (never changes it).
    Inspect {
        /// A data directory (as given to --data-dir) or its log/ directory.
        path: PathBuf,
    },
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            in_memory,
            verbose,
            quiet,
        } => {
            init_logging(verbose, quiet);
            serve(config, listen, data_dir, in_memory)
        }
        Command::Pub(args) => tools::run_pub(args),
        Command::Sub(args) => tools::run_sub(args),
        Command::Bench(args) => bench::run_bench(args),
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
    listen: Vec<SocketAddr>,
    data_dir: Option<PathBuf>,
    in_memory: bool,
) -> ExitCode {
    let mut cfg = match config {
        Some(path) => match BrokerConfig::from_file(&path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("strata: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        // The defaults of a configuration file: durable in ./data.
        None => match BrokerConfig::from_toml("") {
            Ok(c) => c,
            Err(e) => {
                eprintln!("strata: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if !listen.is_empty() {
        cfg.listeners = listen;
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
        for addr in broker.local_addrs() {
            // Scripts wait for this line to know the port.
            println!("listening on {addr}");
        }
        wait_for_signal().await;
        tracing::info!("shutting down");
        broker.shutdown(Duration::from_secs(5)).await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
