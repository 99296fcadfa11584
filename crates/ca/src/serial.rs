//! Certificate serial numbers: random when issued, printed and parsed as hex
//! so an operator can name a certificate to revoke.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};

use crate::CaError;

/// Bytes in a serial number this crate issues.
const ISSUED_LEN: usize = 16;

/// RFC 5280 §4.1.2.2: serial numbers are at most 20 octets.
const MAX_LEN: usize = 20;

/// A certificate serial number: a positive integer of at most 20 bytes,
/// held big-endian without leading zero bytes.
///
/// Serials this crate issues are 16 bytes with 126 random bits from the
/// operating system (the top bit is clear so the integer is positive, the
/// next is set so it never has a leading zero byte and always prints as 32
/// hex digits). Two certificates from one CA share a serial with
/// probability about n²/2¹²⁷, so no counter or registry is kept.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh random serial number.
    pub fn random() -> Result<Serial, CaError> {
        let mut bytes = [0u8; ISSUED_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CaError::Random)?;
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Ok(Serial(bytes.to_vec()))
    }

    /// The serial's big-endian bytes, without leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    /// Lowercase hex without separators, e.g. `5f3a…`; [`FromStr`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = CaError;

    /// Reads hex digits, either case, optionally separated by `:` (as
    /// OpenSSL prints serials). Leading zeros are dropped; zero itself and
    /// values longer than 20 bytes are refused.
    fn from_str(input: &str) -> Result<Serial, CaError> {
        let invalid = || CaError::Serial {
            input: input.to_owned(),
        };
        let digits: Vec<u8> = input
            .bytes()
            .filter(|&b| b != b':')
            .map(|b| {
                char::from(b)
                    .to_digit(16)
                    .and_then(|d| u8::try_from(d).ok())
            })
            .collect::<Option<_>>()
            .ok_or_else(invalid)?;
        // An odd count means the first byte has one digit.
        let mut bytes = Vec::with_capacity(digits.len() / 2 + 1);
        let (head, tail) = digits.split_at(digits.len() % 2);
        bytes.extend(head.iter().copied());
        bytes.extend(tail.chunks_exact(2).map(|pair| (pair[0] << 4) | pair[1]));
        let first = bytes.iter().position(|&b| b != 0).ok_or_else(invalid)?;
        bytes.drain(..first);
        if bytes.len() > MAX_LEN {
            return Err(invalid());
        }
        Ok(Serial(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_full_length_and_distinct() {
        let a = Serial::random().expect("random");
        let b = Serial::random().expect("random");
        assert_ne!(a, b);
        for s in [&a, &b] {
            assert_eq!(s.as_bytes().len(), ISSUED_LEN);
            assert_eq!(s.as_bytes()[0] & 0xc0, 0x40);
            assert_eq!(s.to_string().len(), 2 * ISSUED_LEN);
        }
    }

    #[test]
    fn display_and_parse_round_trip() {
        let s = Serial::random().expect("random");
        assert_eq!(s.to_string().parse::<Serial>().expect("parses"), s);
    }

    #[test]
    fn parses_openssl_style_and_odd_lengths() {
        let s: Serial = "0A:Bc:01".parse().expect("parses");
        assert_eq!(s.as_bytes(), [0x0a, 0xbc, 0x01]);
        let s: Serial = "00abc".parse().expect("parses");
        assert_eq!(s.as_bytes(), [0x0a, 0xbc]);
        assert_eq!(s.to_string(), "0abc");
    }

    #[test]
    fn refuses_bad_serials_naming_the_input() {
        for bad in ["", "0", "00:00", "xyz", "12 34", &"1".repeat(41)] {
            let err = bad.parse::<Serial>().expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid serial number {bad:?}: expected 1 to 40 hex digits, optionally \
                     separated by ':', as printed when the certificate was issued"
                )
            );
        }
    }
}
