//! `strata-ca`: a small certificate authority for Strata. It makes a CA,
//! issues server and client certificates signed by it, and makes CRLs, for
//! the `strata ca` command and for tests of TLS and mutual TLS.
//!
//! Modules:
//! - `ca`: [`Ca`]: make ([`Ca::new`]), save ([`Ca::init`]) and load
//!   ([`Ca::load`]) a CA; issue certificates and CRLs with it.
//! - `issued`: [`Issued`], a certificate with its private key, and
//!   [`Issued::write`].
//! - `serial`: [`Serial`], random serial numbers, printed and parsed as hex.
//! - `validity`: [`Validity`], when a certificate is valid; takes `now` as a
//!   parameter, with `*_now` conveniences that read the clock.
//! - `der` (private): the small DER reader [`Ca::load`] uses to rebuild the
//!   issuer from `ca.pem`.
//! - `files` (private): create-only file writes, 0600 keys, fsync.
//! - `error`: [`CaError`], naming the file or value at fault and the fix.
//!
//! Signing is rcgen's, with the ring backend; keys are ECDSA P-256 with
//! SHA-256. Nothing here ever overwrites a file.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let ca = strata_ca::Ca::init(Path::new("ca"), "Strata test CA", 3650)?;
//! let server = ca.issue_server(&["localhost".to_owned(), "127.0.0.1".to_owned()], 825)?;
//! server.write(Path::new("ca"), "server")?;
//! let client = ca.issue_client("sensor-17", 825)?;
//! client.write(Path::new("ca"), "sensor-17")?;
//! std::fs::write("ca/crl.pem", ca.crl([&client.serial], 30)?)?;
//! # Ok(())
//! # }
//! ```

mod ca;
mod der;
mod error;
mod files;
mod issued;
mod serial;
mod validity;

pub use ca::{CA_CERT_FILE, CA_KEY_FILE, Ca};
pub use error::CaError;
pub use issued::{Issued, IssuedFiles};
pub use serial::Serial;
pub use validity::{BACKDATE, Validity};
