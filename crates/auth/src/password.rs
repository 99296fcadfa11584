//! Password files in Mosquitto's format: one `user:hash` line per user, as
//! `mosquitto_passwd` writes them. Read: `$6$` (one SHA-512 of the password
//! and a salt, `-H sha512`), `$7$` (PBKDF2-HMAC-SHA512, Mosquitto 2.0's
//! default) and `$argon2id$` PHC strings (Mosquitto 2.1's). Written:
//! argon2id by default, `$7$` for files Mosquitto 2.0 must read too.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};

use crate::FileError;

/// The hash `strata passwd -H` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// argon2id with the argon2 crate's default cost (19 MiB, 2 passes):
    /// the default.
    Argon2id,
    /// `$7$`: PBKDF2-HMAC-SHA512, which Mosquitto 2.0 reads.
    Sha512Pbkdf2,
}

impl HashKind {
    /// Mosquitto 2.1's names for `-H`.
    pub fn from_name(name: &str) -> Option<HashKind> {
        match name {
            "argon2id" => Some(HashKind::Argon2id),
            "sha512-pbkdf2" => Some(HashKind::Sha512Pbkdf2),
            _ => None,
        }
    }
}

/// PBKDF2 iterations `strata passwd -H sha512-pbkdf2` writes. Mosquitto's
/// own tool writes 101; this costs about 10 ms of one core per CONNECT,
/// which a broker that checks passwords on its event loop (Mosquitto) can
/// still afford.
pub const PBKDF2_ITERATIONS: u32 = 10_000;
const SALT_LEN: usize = 12;
const SHA512_LEN: usize = 64;

/// One user's stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Hash {
    /// `$6$SALT$HASH`: SHA-512 of the password followed by the salt.
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
    /// `$7$ITERATIONS$SALT$HASH`.
    Pbkdf2 {
        iterations: NonZeroU32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// An argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$SALT$HASH`),
    /// checked to parse when read.
    Argon2id(String),
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes stay out of logs.
        f.write_str(match self {
            Hash::Sha512 { .. } => "Hash::Sha512",
            Hash::Pbkdf2 { .. } => "Hash::Pbkdf2",
            Hash::Argon2id(_) => "Hash::Argon2id",
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

pub(crate) fn salt<const N: usize>() -> [u8; N] {
    let mut s = [0u8; N];
    // The system's random source failing is not something to go on from.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut s)
        .expect("the system random number generator failed");
    s
}

/// Equal in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Hash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(kind: HashKind, password: &[u8]) -> Hash {
        match kind {
            HashKind::Argon2id => {
                let raw = salt::<16>();
                #[allow(clippy::expect_used)]
                let salt = SaltString::encode_b64(&raw).expect("16 bytes is a valid salt length");
                #[allow(clippy::expect_used)]
                let phc = argon2::Argon2::default()
                    .hash_password(password, &salt)
                    .expect("argon2 with default parameters takes any password")
                    .to_string();
                Hash::Argon2id(phc)
            }
            HashKind::Sha512Pbkdf2 => {
                let salt = salt::<SALT_LEN>().to_vec();
                let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
                let mut hash = vec![0u8; SHA512_LEN];
                ring::pbkdf2::derive(
                    ring::pbkdf2::PBKDF2_HMAC_SHA512,
                    iterations,
                    &salt,
                    password,
                    &mut hash,
                );
                Hash::Pbkdf2 {
                    iterations,
                    salt,
                    hash,
                }
            }
        }
    }

    /// Reads the part of a password-file line after the `:`.
    pub fn parse(text: &str) -> Result<Hash, String> {
        if text.starts_with("$argon2id$") {
            let h =
                PasswordHash::new(text).map_err(|e| format!("not an argon2id PHC string: {e}"))?;
            if h.salt.is_none() || h.hash.is_none() {
                return Err("not an argon2id PHC string: no salt or hash".to_owned());
            }
            return Ok(Hash::Argon2id(text.to_owned()));
        }
        if let Some(rest) = text.strip_prefix("$6$") {
            let (salt, hash) = rest
                .split_once('$')
                .ok_or("a $6$ hash is $6$SALT$HASH, in base64")?;
            let salt = unb64(salt).ok_or("the $6$ salt is not base64")?;
            let hash = unb64(hash).ok_or("the $6$ hash is not base64")?;
            if hash.len() != SHA512_LEN {
                return Err(format!(
                    "a $6$ hash has {SHA512_LEN} bytes, not {}",
                    hash.len()
                ));
            }
            return Ok(Hash::Sha512 { salt, hash });
        }
        if let Some(rest) = text.strip_prefix("$7$") {
            let mut parts = rest.splitn(3, '$');
            let (Some(iterations), Some(salt), Some(hash)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err("a $7$ hash is $7$ITERATIONS$SALT$HASH".to_owned());
            };
            let iterations = iterations
                .parse::<NonZeroU32>()
                .map_err(|_| format!("{iterations:?} is not a positive iteration count"))?;
            let salt = unb64(salt).ok_or("the $7$ salt is not base64")?;
            let hash = unb64(hash).ok_or("the $7$ hash is not base64")?;
            if hash.is_empty() {
                return Err("the $7$ hash is empty".to_owned());
            }
            return Ok(Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            });
        }
        Err("not a password hash: expected $6$, $7$ or $argon2id$ (a plain-text password? `strata passwd -U FILE` hashes them)".to_owned())
    }

    /// Whether `password` is the one hashed, compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Sha512 { salt, hash } => {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
                ctx.update(password);
                ctx.update(salt);
                same(ctx.finish().as_ref(), hash)
            }
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => ring::pbkdf2::verify(
                ring::pbkdf2::PBKDF2_HMAC_SHA512,
                *iterations,
                salt,
                password,
                hash,
            )
            .is_ok(),
            Hash::Argon2id(phc) => PasswordHash::new(phc).is_ok_and(|h| {
                argon2::Argon2::default()
                    .verify_password(password, &h)
                    .is_ok()
            }),
        }
    }

    /// The kind `strata passwd -U` would write for this hash, if it is one
    /// of them.
    pub fn kind(&self) -> Option<HashKind> {
        match self {
            Hash::Argon2id(_) => Some(HashKind::Argon2id),
            Hash::Pbkdf2 { .. } => Some(HashKind::Sha512Pbkdf2),
            Hash::Sha512 { .. } => None,
        }
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hash::Sha512 { salt, hash } => write!(f, "$6${}${}", b64(salt), b64(hash)),
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => write!(f, "$7${iterations}${}${}", b64(salt), b64(hash)),
            Hash::Argon2id(phc) => f.write_str(phc),
        }
    }
}

/// A password file: users in file order, each with its hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    users: Vec<(String, Hash)>,
    index: HashMap<String, usize>,
}

/// A password checked against no user's hash, so that an unknown user
/// costs what a known one does (no timing tells which names exist).
fn decoy() -> &'static Hash {
    static DECOY: std::sync::OnceLock<Hash> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| Hash::new(HashKind::Argon2id, b"strata decoy password"))
}

impl PasswordFile {
    /// Reads a file's text: `user:hash` lines; blank lines and lines that
    /// start with `#` are skipped.
    pub fn parse(text: &str) -> Result<PasswordFile, FileError> {
        let mut file = PasswordFile::default();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| FileError {
                line: line_no,
                reason,
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| err("expected USER:HASH".to_owned()))?;
            if user.is_empty() {
                return Err(err("the user name is empty".to_owned()));
            }
            let hash =
                Hash::parse(hash.trim_end()).map_err(|e| err(format!("user {user}: {e}")))?;
            if file.index.contains_key(user) {
                return Err(err(format!("user {user} appears twice")));
            }
            file.insert(user.to_owned(), hash);
        }
        Ok(file)
    }

    /// Reads a plain-text `user:password` file (`strata passwd -U`),
    /// hashing each password.
    pub fn from_plain_text(text: &str, kind: HashKind) -> Result<PasswordFile, FileError> {
        let mut file = PasswordFile::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, password) = line.split_once(':').ok_or_else(|| FileError {
                line: n + 1,
                reason: "expected USER:PASSWORD".to_owned(),
            })?;
            if Hash::parse(password).is_ok() {
                return Err(FileError {
                    line: n + 1,
                    reason: format!("user {user} already has a hash: the file is not plain text"),
                });
            }
            file.set(user, Hash::new(kind, password.as_bytes()));
        }
        Ok(file)
    }

    fn insert(&mut self, user: String, hash: Hash) {
        self.index.insert(user.clone(), self.users.len());
        self.users.push((user, hash));
    }

    /// Adds `user`, or replaces its hash.
    pub fn set(&mut self, user: &str, hash: Hash) {
        match self.index.get(user) {
            Some(&i) => self.users[i].1 = hash,
            None => self.insert(user.to_owned(), hash),
        }
    }

    /// Removes `user`; whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        let Some(i) = self.index.remove(user) else {
            return false;
        };
        self.users.remove(i);
        for (_, j) in self.index.iter_mut() {
            if *j > i {
                *j -= 1;
            }
        }
        true
    }

    pub fn get(&self, user: &str) -> Option<&Hash> {
        self.index.get(user).map(|&i| &self.users[i].1)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` exists and `password` is theirs. An unknown user
    /// costs what a known one does: the password is checked against the
    /// file's first hash (its kind and cost), and refused whatever that
    /// says; against an argon2id decoy when the file is empty.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.get(user) {
            Some(h) => h.verify(password),
            None => {
                let decoy: &Hash = match self.users.first() {
                    Some((_, h)) => h,
                    None => decoy(),
                };
                std::hint::black_box(decoy.verify(password));
                false
            }
        }
    }

    /// The file's text, one `user:hash` line per user.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (user, hash) in &self.users {
            out.push_str(user);
            out.push(':');
            out.push_str(&hash.to_string());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests;
