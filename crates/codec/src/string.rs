//! [`MqttStr`]: a UTF-8 Encoded String of section 1.5.4 that shares the read
//! buffer instead of copying out of it.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Why bytes are not an MQTT UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Error {
    /// Ill-formed UTF-8, including surrogates and overlong forms
    /// [MQTT-1.5.3-1] / [MQTT-1.5.4-1].
    Invalid,
    /// The string contains U+0000 [MQTT-1.5.3-2] / [MQTT-1.5.4-2].
    Null,
}

impl std::fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Utf8Error::Invalid => "not well-formed UTF-8",
            Utf8Error::Null => "contains U+0000",
        })
    }
}

impl std::error::Error for Utf8Error {}

/// An immutable string that is valid UTF-8 and contains no U+0000, backed by
/// [`Bytes`] so that decoding a topic or client id is a reference-count bump.
///
/// Other control characters and non-characters are kept: the spec lets a
/// receiver close on them but does not require it [MQTT-1.5.3-3], and a
/// U+FEFF is never stripped [MQTT-1.5.4-3].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct MqttStr(Bytes);

/// Hashed as the `str` it is, as `Borrow<str>` requires: a map keyed by
/// `MqttStr` is then searched by `&str` too. (Derived, it hashed as a byte
/// slice, and such a search missed.)
impl std::hash::Hash for MqttStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl MqttStr {
    /// The empty string.
    pub const fn new() -> MqttStr {
        MqttStr(Bytes::new())
    }

    /// Validates `bytes` and wraps them without copying.
    #[inline]
    pub fn from_bytes(bytes: Bytes) -> Result<MqttStr, Utf8Error> {
        scan(&bytes)?;
        Ok(MqttStr(bytes))
    }

    /// Validates `bytes` and wraps them, also saying whether they contain
    /// `+` or `#` (one pass for a topic name).
    #[inline]
    pub(crate) fn from_bytes_scan(bytes: Bytes) -> Result<(MqttStr, bool), Utf8Error> {
        let wildcard = scan(&bytes)?;
        Ok((MqttStr(bytes), wildcard))
    }

    /// Wraps a `'static` string, checked for U+0000.
    pub fn from_static(s: &'static str) -> MqttStr {
        assert!(!s.contains('\0'), "MQTT strings cannot contain U+0000");
        MqttStr(Bytes::from_static(s.as_bytes()))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks that the bytes are UTF-8 (either
        // through `validate` or because they came from a `str`), and `Bytes`
        // is immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// A copy in an allocation of its own, for a string kept long after its
    /// packet: a slice would keep the whole read buffer alive.
    pub fn detach(&self) -> MqttStr {
        MqttStr(Bytes::copy_from_slice(&self.0))
    }

    /// The underlying shared bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The underlying shared bytes, by value.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// Checks the rules every MQTT string obeys: well-formed UTF-8 and no U+0000.
pub fn validate(bytes: &[u8]) -> Result<&str, Utf8Error> {
    scan(bytes)?;
    // SAFETY: `scan` checked that the bytes are UTF-8.
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// Validates `bytes` as an MQTT string in one pass over ASCII input (the
/// common case) and reports whether it holds a wildcard character, which
/// topic names must not.
#[inline]
pub(crate) fn scan(bytes: &[u8]) -> Result<bool, Utf8Error> {
    // Branch-free folds so the compiler vectorizes them.
    let (mut null, mut wildcard, mut high) = (false, false, 0u8);
    for &b in bytes {
        null |= b == 0;
        wildcard |= (b == b'+') | (b == b'#');
        high |= b;
    }
    if high >= 0x80 && std::str::from_utf8(bytes).is_err() {
        return Err(Utf8Error::Invalid);
    }
    if null {
        return Err(Utf8Error::Null);
    }
    Ok(wildcard)
}

impl TryFrom<String> for MqttStr {
    type Error = Utf8Error;
    fn try_from(s: String) -> Result<MqttStr, Utf8Error> {
        if s.contains('\0') {
            return Err(Utf8Error::Null);
        }
        Ok(MqttStr(Bytes::from(s)))
    }
}

impl TryFrom<&str> for MqttStr {
    type Error = Utf8Error;
    fn try_from(s: &str) -> Result<MqttStr, Utf8Error> {
        if s.contains('\0') {
            return Err(Utf8Error::Null);
        }
        Ok(MqttStr(Bytes::copy_from_slice(s.as_bytes())))
    }
}

impl Deref for MqttStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MqttStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MqttStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for MqttStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MqttStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_map_keyed_by_mqtt_str_is_searched_by_str() {
        let mut m = std::collections::HashMap::new();
        m.insert(MqttStr::try_from("sensor-17".to_owned()).unwrap(), 1);
        assert_eq!(m.get("sensor-17"), Some(&1));
        assert_eq!(m.get("sensor-18"), None);
    }

    use super::*;

    #[test]
    fn rejects_ill_formed_utf8() {
        // [MQTT-1.5.3-1] / [MQTT-1.5.4-1]: a UTF-16 surrogate (U+D800) encoded
        // as UTF-8, an overlong '/' and a lone continuation byte.
        for bad in [&[0xED, 0xA0, 0x80][..], &[0xC0, 0xAF], &[0x80]] {
            assert_eq!(
                MqttStr::from_bytes(Bytes::copy_from_slice(bad)),
                Err(Utf8Error::Invalid)
            );
        }
    }

    #[test]
    fn rejects_null() {
        // [MQTT-1.5.3-2] / [MQTT-1.5.4-2]
        assert_eq!(
            MqttStr::from_bytes(Bytes::from_static(b"a\0b")),
            Err(Utf8Error::Null)
        );
        assert_eq!(MqttStr::try_from("a\0"), Err(Utf8Error::Null));
    }

    #[test]
    fn keeps_bom_and_control_characters() {
        // [MQTT-1.5.4-3]: U+FEFF is not stripped.
        let s = MqttStr::from_bytes(Bytes::from_static(b"\xEF\xBB\xBFa\x01")).unwrap();
        assert_eq!(s.as_str(), "\u{FEFF}a\u{1}");
    }
}
