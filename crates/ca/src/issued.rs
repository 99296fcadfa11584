//! [`Issued`]: a certificate and its new private key, and how to save them.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::files::{self, NewFile};
use crate::{CaError, Serial};

/// A certificate the CA signed, with the private key made for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate alone, PEM, without the CA certificate after it:
    /// peers already hold `ca.pem` as their trust anchor, and a one-level CA
    /// has no intermediate to send. Append `ca.pem` if some peer wants the
    /// whole chain.
    pub cert_pem: String,
    /// The certificate's private key, PKCS#8 PEM (ECDSA P-256).
    pub key_pem: String,
    /// The certificate's serial number, to revoke it with [`crate::Ca::crl`].
    pub serial: Serial,
}

/// Where [`Issued::write`] put the two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFiles {
    /// `STEM.pem`: the certificate.
    pub cert: PathBuf,
    /// `STEM.key`: the private key, mode 0600 on unix.
    pub key: PathBuf,
}

impl Issued {
    /// Writes `STEM.pem` and `STEM.key` into `dir`, creating `dir` if
    /// needed. The key is mode 0600 on unix from the moment it exists; both
    /// are fsynced. Refuses, writing nothing, if either file is already
    /// there, and refuses a stem that is empty or holds a path separator.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<IssuedFiles, CaError> {
        let plain = !stem.is_empty() && stem != "." && stem != ".." && !stem.contains(['/', '\\']);
        if !plain {
            return Err(CaError::Stem {
                stem: stem.to_owned(),
            });
        }
        let written = IssuedFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        files::create_all(
            dir,
            &[
                NewFile {
                    path: written.key.clone(),
                    contents: self.key_pem.as_bytes(),
                    secret: true,
                },
                NewFile {
                    path: written.cert.clone(),
                    contents: self.cert_pem.as_bytes(),
                    secret: false,
                },
            ],
            |path| CaError::FileExists { path },
        )?;
        Ok(written)
    }
}

impl fmt::Debug for Issued {
    /// Shows the serial; never the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}
