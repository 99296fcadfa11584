//! `strata ca`: a certificate authority for mutual TLS in three commands:
//! `strata ca init DIR`, `strata ca issue --server NAME[,NAME...]` and
//! `strata ca issue --client NAME` (certificates from `strata-ca`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use strata_ca::{Ca, CaError};

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Make a new CA in DIR: ca.pem (give it to clients and to a
    /// listener's cafile) and ca.key (keep it private).
    Init {
        /// The directory to create it in; existing CA files are never
        /// overwritten.
        dir: PathBuf,
        /// The CA certificate's common name.
        #[arg(long, default_value = "Strata CA")]
        name: String,
        /// How long the CA certificate is valid, in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a server or client certificate signed by the CA: NAME.pem and
    /// NAME.key in the CA's directory (or --out).
    Issue {
        /// The CA's directory (made by `strata ca init`).
        #[arg(long, default_value = "ca", value_name = "DIR")]
        ca: PathBuf,
        /// A server certificate for these DNS names and IP addresses,
        /// comma-separated; the first names the files.
        #[arg(
            long,
            value_name = "NAME[,NAME...]",
            value_delimiter = ',',
            conflicts_with = "client",
            required_unless_present = "client"
        )]
        server: Vec<String>,
        /// A client certificate whose common name is NAME (the username
        /// on a listener with use_identity_as_username).
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
        /// Where to write the two files (default: the CA's directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// How long the certificate is valid, in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

pub fn run_ca(args: CaArgs) -> ExitCode {
    match ca(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata ca: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ca(args: CaArgs) -> Result<(), CaError> {
    match args.command {
        CaCommand::Init { dir, name, days } => {
            Ca::init(&dir, &name, days)?;
            println!("{}", dir.join(strata_ca::CA_CERT_FILE).display());
            println!("{}", dir.join(strata_ca::CA_KEY_FILE).display());
        }
        CaCommand::Issue {
            ca,
            server,
            client,
            out,
            days,
        } => {
            let authority = Ca::load(&ca)?;
            let (issued, stem) = match client {
                Some(name) => (authority.issue_client(&name, days)?, name),
                None => {
                    let stem = server.first().cloned().unwrap_or_default();
                    (authority.issue_server(&server, days)?, stem)
                }
            };
            let files = issued.write(out.as_deref().unwrap_or(&ca), &stem)?;
            println!("{}", files.cert.display());
            println!("{}", files.key.display());
        }
    }
    Ok(())
}
