//! One error enum for the CA, naming the file, name or value at fault and
//! what to do about it, so the CLI can print it as it is.

use std::io;
use std::path::PathBuf;

/// What went wrong, where, and how to proceed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file or directory operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done: "read", "create", "write", "sync", ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// `Ca::init` found a CA file already in place.
    #[error(
        "{} already exists and Strata will not overwrite a CA; to make a new CA, pick another \
         directory or remove ca.pem and ca.key from this one (certificates the old CA signed \
         will then no longer verify)",
        path.display()
    )]
    CaExists {
        /// The file that is already there.
        path: PathBuf,
    },

    /// `Issued::write` found a certificate or key file already in place.
    #[error(
        "{} already exists and Strata will not overwrite it; remove it, or write to another \
         directory or under another name",
        path.display()
    )]
    FileExists {
        /// The file that is already there.
        path: PathBuf,
    },

    /// `Ca::load` did not find one of the CA's files.
    #[error(
        "{} does not exist; point at the directory `strata ca init` wrote, or run \
         `strata ca init DIR` first",
        path.display()
    )]
    Missing {
        /// The file that is not there.
        path: PathBuf,
    },

    /// A PEM file did not hold what it should.
    #[error("{}: {reason}; expected the PEM file written by `strata ca init`", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The certificate's DER is malformed.
    #[error(
        "{}: malformed certificate: {reason}; restore ca.pem from a backup or make a new CA",
        path.display()
    )]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Where parsing stopped.
        reason: &'static str,
    },

    /// The private key could not be read.
    #[error(
        "{}: not a usable private key ({source}); expected an unencrypted PKCS#8 key \
         (\"BEGIN PRIVATE KEY\") such as `strata ca init` writes",
        path.display()
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },

    /// The key file does not hold the certificate's private key: anything
    /// signed with it would not chain to the certificate.
    #[error(
        "{} does not hold the private key of the certificate in {}; put back the key that \
         belongs to this certificate, or make a new CA in another directory",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// The CA certificate's subject cannot be re-encoded byte for byte, so
    /// certificates issued under it would name an issuer that does not match.
    #[error(
        "{}: cannot sign as this CA: {reason}; Strata signs only with CAs whose subject it can \
         reproduce exactly, such as those `strata ca init` makes",
        path.display()
    )]
    Subject {
        /// The certificate file.
        path: PathBuf,
        /// Why the subject cannot be reproduced.
        reason: String,
    },

    /// A name for a certificate is not usable.
    #[error("invalid certificate name {name:?}: {reason}")]
    Name {
        /// The name as given.
        name: String,
        /// What is wrong and what would do.
        reason: &'static str,
    },

    /// A server certificate was asked for with no names.
    #[error(
        "a server certificate needs at least one DNS name or IP address, e.g. localhost or \
         127.0.0.1"
    )]
    NoNames,

    /// A file name stem for `Issued::write` is not a plain name.
    #[error(
        "invalid file name stem {stem:?}: give a plain name such as \"server\", without path \
         separators"
    )]
    Stem {
        /// The stem as given.
        stem: String,
    },

    /// A serial number given as text did not parse.
    #[error(
        "invalid serial number {input:?}: expected 1 to 40 hex digits, optionally separated \
         by ':', as printed when the certificate was issued"
    )]
    Serial {
        /// The text as given.
        input: String,
    },

    /// A validity period is out of range.
    #[error("invalid validity: {0}")]
    Validity(String),

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,

    /// rcgen refused to generate a key or sign (not expected with the
    /// parameters this crate builds).
    #[error("could not generate a key or sign: {0}")]
    Sign(#[source] rcgen::Error),
}

impl CaError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> CaError {
        CaError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
