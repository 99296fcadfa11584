//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server's
//! side, for MQTT 5 enhanced authentication: the client's first message
//! comes in CONNECT's Authentication Data (or a re-authenticating AUTH),
//! the server's first in AUTH 0x18, the client's final in AUTH 0x18, and
//! the server's final in the CONNACK (or AUTH 0x00).
//!
//! Credentials live in a file of their own (`scram_file`), one line per
//! user and mechanism: `USER:MECHANISM:ITERATIONS:SALT:STOREDKEY:SERVERKEY`
//! (base64), as `strata passwd --scram` writes them; the password itself
//! is never stored. No channel binding (a `p=` header is refused); user
//! names and passwords are taken as UTF-8 bytes, without SASLprep.

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2};

use crate::FileError;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    /// The MQTT Authentication Method (the SASL name).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        match self {
            Mechanism::Sha256 => 32,
            Mechanism::Sha512 => 64,
        }
    }
}

/// Iterations `strata passwd --scram` writes (RFC 7677's minimum).
pub const ITERATIONS: u32 = 4096;

/// One user's stored SCRAM keys for one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub iterations: NonZeroU32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn hmac_of(m: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(m.hmac(), key), data)
        .as_ref()
        .to_vec()
}

impl Credentials {
    /// The keys for `password` with `salt`.
    pub fn derive(
        m: Mechanism,
        password: &[u8],
        salt: &[u8],
        iterations: NonZeroU32,
    ) -> Credentials {
        let mut salted = vec![0u8; m.len()];
        pbkdf2::derive(m.pbkdf2(), iterations, salt, password, &mut salted);
        let client_key = hmac_of(m, &salted, b"Client Key");
        let stored_key = digest::digest(m.digest(), &client_key).as_ref().to_vec();
        let server_key = hmac_of(m, &salted, b"Server Key");
        Credentials {
            iterations,
            salt: salt.to_vec(),
            stored_key,
            server_key,
        }
    }

    /// New keys for `password` with a fresh random salt.
    pub fn new(m: Mechanism, password: &[u8]) -> Credentials {
        let salt = crate::password::salt::<16>();
        let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
        Credentials::derive(m, password, &salt, iterations)
    }
}

/// A SCRAM credentials file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScramFile {
    /// In file order, for writing back.
    entries: Vec<(String, Mechanism, Credentials)>,
}

impl ScramFile {
    pub fn parse(text: &str) -> Result<ScramFile, FileError> {
        let mut file = ScramFile::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| FileError {
                line: n + 1,
                reason,
            };
            // The user name may hold ':' only if nothing else does: split
            // from the right.
            let parts: Vec<&str> = line.rsplitn(6, ':').collect();
            let [server, stored, salt, iterations, mech, user] = parts[..] else {
                return Err(err(
                    "expected USER:MECHANISM:ITERATIONS:SALT:STOREDKEY:SERVERKEY (strata passwd --scram writes it)".to_owned(),
                ));
            };
            if user.is_empty() {
                return Err(err("the user name is empty".to_owned()));
            }
            let m = Mechanism::from_name(mech)
                .ok_or_else(|| err(format!("{mech:?}: use SCRAM-SHA-256 or SCRAM-SHA-512")))?;
            let iterations = iterations
                .parse::<NonZeroU32>()
                .map_err(|_| err(format!("{iterations:?} is not a positive iteration count")))?;
            let b64 = |what: &str, v: &str| {
                STANDARD
                    .decode(v)
                    .map_err(|_| err(format!("the {what} is not base64")))
            };
            let salt = b64("salt", salt)?;
            let (stored_key, server_key) = (b64("stored key", stored)?, b64("server key", server)?);
            if stored_key.len() != m.len() || server_key.len() != m.len() {
                return Err(err(format!("{mech} keys have {} bytes", m.len())));
            }
            if file.get(user, m).is_some() {
                return Err(err(format!("user {user} has {mech} twice")));
            }
            file.entries.push((
                user.to_owned(),
                m,
                Credentials {
                    iterations,
                    salt,
                    stored_key,
                    server_key,
                },
            ));
        }
        Ok(file)
    }

    pub fn get(&self, user: &str, m: Mechanism) -> Option<&Credentials> {
        self.entries
            .iter()
            .find(|(u, mech, _)| u == user && *mech == m)
            .map(|(_, _, c)| c)
    }

    /// Sets `user`'s keys for `m`.
    pub fn set(&mut self, user: &str, m: Mechanism, c: Credentials) {
        match self
            .entries
            .iter_mut()
            .find(|(u, mech, _)| u == user && *mech == m)
        {
            Some(e) => e.2 = c,
            None => self.entries.push((user.to_owned(), m, c)),
        }
    }

    /// Removes every entry of `user`; whether there was one.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(u, _, _)| u != user);
        self.entries.len() != before
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (user, m, c) in &self.entries {
            out.push_str(&format!(
                "{user}:{}:{}:{}:{}:{}\n",
                m.name(),
                c.iterations,
                STANDARD.encode(&c.salt),
                STANDARD.encode(&c.stored_key),
                STANDARD.encode(&c.server_key)
            ));
        }
        out
    }
}

/// A fresh server nonce: 18 random bytes in base64 (printable, no ',').
pub fn server_nonce() -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(crate::password::salt::<18>())
}

/// A random secret for [`Exchange::start`]'s made-up salts.
pub fn new_secret() -> [u8; 32] {
    crate::password::salt::<32>()
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("the nonce is not the one of this exchange")]
    Nonce,
    #[error("wrong proof (unknown user or wrong password)")]
    Proof,
}

/// The server's side of one exchange, between its first message and the
/// client's final one.
#[derive(Clone)]
pub struct Exchange {
    mech: Mechanism,
    username: String,
    /// `None` for an unknown user: the exchange runs to the end on made-up
    /// keys, and fails there, as a wrong password does.
    keys: Option<Credentials>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("mech", &self.mech)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `=2C` and `=3D` in a SCRAM user name, decoded.
fn saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("a bad '=' escape in the user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn attr(part: Option<&str>, key: char) -> Result<&str, ScramError> {
    part.and_then(|p| p.strip_prefix(key)?.strip_prefix('='))
        .ok_or(ScramError::Malformed(
            "an attribute is missing or out of order",
        ))
}

impl Exchange {
    /// The client's first message: returns the exchange and the server's
    /// first message. `lookup` finds a user's keys; `secret` makes the
    /// salt and iteration count shown for an unknown user (the same every
    /// time for one name, so no two answers tell a made-up user apart);
    /// `server_nonce` is fresh randomness, in printable characters.
    pub fn start(
        mech: Mechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<Credentials>,
        secret: &[u8],
        server_nonce: &str,
    ) -> Result<(Exchange, Vec<u8>), ScramError> {
        let text =
            std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        // gs2-header: "n,," or "y,," (no channel binding), or "p=..,".
        let (cb, rest) = text
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        match cb {
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("a GS2 header is n, y or p=")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(ScramError::Malformed("a bad authorization identity"));
        }
        let mut parts = bare.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(ScramError::Malformed("extensions (m=) are not supported"));
        }
        let username = saslname(attr(first, 'n')?)?;
        let client_nonce = attr(parts.next(), 'r')?;
        if client_nonce.is_empty() || client_nonce.contains(',') {
            return Err(ScramError::Malformed("an empty client nonce"));
        }
        let keys = lookup(&username);
        let (salt, iterations) = match &keys {
            Some(c) => (c.salt.clone(), c.iterations.get()),
            None => {
                let fake = hmac_of(mech, secret, username.as_bytes());
                (fake[..16].to_vec(), ITERATIONS)
            }
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(&salt));
        let x = Exchange {
            mech,
            username,
            keys,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((x, server_first.into_bytes()))
    }

    /// The user name the client gave.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The client's final message: the user's name and the server's final
    /// message (`v=...`) when the proof is right.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut parts = without_proof.split(',');
        let binding = attr(parts.next(), 'c')?;
        // "biws" is base64 of "n,,"; "eSws" of "y,,".
        if binding != "biws" && binding != "eSws" {
            return Err(ScramError::ChannelBinding);
        }
        if attr(parts.next(), 'r')? != self.nonce {
            return Err(ScramError::Nonce);
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| ScramError::Malformed("the proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let Some(keys) = &self.keys else {
            return Err(ScramError::Proof);
        };
        let m = self.mech;
        if proof.len() != m.len() {
            return Err(ScramError::Proof);
        }
        let signature = hmac_of(m, &keys.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let stored = digest::digest(m.digest(), &client_key);
        // Constant time: ring's HMAC verify compares the tags that way.
        let check = hmac::Key::new(m.hmac(), b"strata scram compare");
        let want = hmac::sign(&check, &keys.stored_key);
        if hmac::verify(&check, stored.as_ref(), want.as_ref()).is_err() {
            return Err(ScramError::Proof);
        }
        let server_signature = hmac_of(m, &keys.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests;
