//! `strata-auth`: the files that say who may connect to Strata and what
//! they may touch, read and decided without I/O (the broker reads the
//! files, hashes off its connection tasks, and reloads on SIGHUP).
//!
//! Modules:
//! - `password`: [`PasswordFile`] and [`Hash`]: Mosquitto's password files
//!   (`$6$`, `$7$`, `$argon2id$`), read and written.
//! - `acl`: [`Acl`]: Mosquitto's ACL files; [`Acl::for_client`] resolves
//!   one client's rules into a [`ClientAcl`] that decides each publish,
//!   subscription and delivery.
//! - `ban`: [`Bans`]: client ids, user names and address ranges refused.
//! - `der`: [`der::Der`], a cursor over DER elements (certificates, keys).
//! - `jwt`: [`Verifier`]: JSON Web Tokens in the password field (HMAC,
//!   RSA and EC signatures on ring; keys from a secret, a PEM public key
//!   or a JWKS file) and the claims they carry, an ACL among them.
//! - `scram`: SCRAM-SHA-256/512 exchanges (the server's side) and
//!   [`ScramFile`], the credentials they are checked against.
//! - `api_key`: [`ApiKeys`], the admin API's keys, kept as SHA-256.
//! - `topic`: filters against topics and against each other.
//!
//! Every parse error is a [`FileError`] naming the line.

pub mod acl;
pub mod api_key;
pub mod ban;
pub mod der;
pub mod jwt;
pub mod password;
pub mod scram;
pub mod topic;

pub use acl::{Access, Acl, ClientAcl};
pub use api_key::ApiKeys;
pub use ban::{Banned, Bans};
pub use jwt::{Claims, JwtError, JwtSettings, TokenAcl, Verifier};
pub use password::{Hash, HashKind, PasswordFile};
pub use scram::{Mechanism, ScramFile};

/// A line of a file that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct FileError {
    pub line: usize,
    pub reason: String,
}
