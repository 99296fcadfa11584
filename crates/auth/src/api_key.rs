//! API keys for the admin HTTP API: random keys handed out once
//! (`strata admin key create`), kept in a file only as their SHA-256 (a key
//! has 256 random bits: a fast hash loses nothing to guessing), one per
//! line, `sha256:HEX` and an optional comment after a space; blank lines
//! and `#` lines are skipped.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;

use crate::FileError;

/// What every key starts with, so a leaked one is recognisable.
pub const PREFIX: &str = "strata_";

/// A parsed key file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    hashes: Vec<[u8; 32]>,
}

fn sha256(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    pub fn parse(text: &str) -> Result<ApiKeys, FileError> {
        let mut keys = ApiKeys::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let hash = line.split_whitespace().next().unwrap_or("");
            let h = hash
                .strip_prefix("sha256:")
                .and_then(unhex)
                .ok_or_else(|| FileError {
                    line: n + 1,
                    reason:
                        "expected sha256:HEX (64 hex digits), as `strata admin key create` writes"
                            .to_owned(),
                })?;
            keys.hashes.push(h);
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `key` is one of them. Every stored hash is compared, each in
    /// constant time.
    pub fn verify(&self, key: &str) -> bool {
        let h = sha256(key);
        let mut found = 0u8;
        for stored in &self.hashes {
            let diff = stored.iter().zip(&h).fold(0u8, |d, (a, b)| d | (a ^ b));
            found |= u8::from(diff == 0);
        }
        std::hint::black_box(found) == 1
    }
}

/// A new key and the line its file keeps (`sha256:HEX COMMENT`).
pub fn new_key(comment: &str) -> (String, String) {
    let key = format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(crate::password::salt::<32>())
    );
    let mut line = format!("sha256:{}", hex(&sha256(&key)));
    if !comment.is_empty() {
        line.push(' ');
        line.push_str(comment);
    }
    (key, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_verifies_and_others_do_not() {
        let (key, line) = new_key("ops laptop");
        assert!(key.starts_with(PREFIX) && key.len() > 40);
        let (other, other_line) = new_key("");
        let keys = ApiKeys::parse(&format!("# keys\n{line}\n\n{other_line}\n")).unwrap();
        assert!(keys.verify(&key));
        assert!(keys.verify(&other));
        assert!(!keys.verify("strata_nope"));
        assert!(!keys.verify(""));
        // The file holds no key.
        assert!(!line.contains(&key[PREFIX.len()..]));
    }

    #[test]
    fn bad_lines_name_the_line() {
        for text in [
            "sha256:abc\n",
            "\nmd5:00\n",
            "sha256:zz00000000000000000000000000000000000000000000000000000000000000\n",
        ] {
            let e = ApiKeys::parse(text).unwrap_err();
            assert!(e.reason.contains("sha256:HEX"), "{e}");
        }
        assert_eq!(ApiKeys::parse("\nmd5:00\n").unwrap_err().line, 2);
    }
}
