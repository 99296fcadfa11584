//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's
//! `proxy-protocol.txt` specifies it: the header a load balancer writes at
//! the start of a connection to say which client it relays. [`parse`] is a
//! pure parser over the bytes read so far; the listener owns the socket,
//! the buffer and the timeout.
//!
//! Every call reads the buffer from its start again. A header is at most
//! [`MAX_HEADER_LEN`] bytes and nearly always arrives in one read, so
//! rescanning costs less than keeping state between calls would.
//!
//! A prefix that no continuation could turn into a valid header is refused
//! at once: "It is recommended to abort the connection as soon as possible
//! so that the sender gets a chance to notice the anomaly" (section 2.1).
//! A client that speaks MQTT straight to a PROXY listener is thus refused
//! at its first byte (0x10 is neither `P` nor `\r`), not after a timeout.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a PROXY header says of the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProxyHeader {
    /// The client the proxy relays. `None` when the header names no IP
    /// endpoints (v1 `UNKNOWN`, v2 `LOCAL`, `AF_UNIX` or `UNSPEC`): the
    /// caller then uses the socket's own peer address, as the spec asks.
    pub source: Option<SocketAddr>,
    /// The address the client connected to, on the proxy; `None` when
    /// `source` is.
    pub destination: Option<SocketAddr>,
}

/// Why bytes cannot be the start of a PROXY header. `Display` gives a short
/// reason for a log line, with the offending text where there is some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProxyError {
    /// The bytes start neither with `PROXY ` nor with the v2 signature.
    NotProxy,
    /// No CRLF within the first 107 bytes of a v1 header.
    V1TooLong,
    /// A v1 line that is not `PROXY <protocol> <src> <dst> <sport> <dport>`:
    /// which rule it breaks.
    V1Syntax(&'static str),
    /// A v1 protocol other than `TCP4`, `TCP6` and `UNKNOWN`.
    V1Protocol(String),
    /// A v1 address that is not one of the protocol's family.
    V1Address {
        protocol: &'static str,
        text: String,
    },
    /// A v1 port that is not a decimal 0-65535 without leading zeros.
    V1Port(String),
    /// A v2 version other than 2.
    V2Version(u8),
    /// A v2 command other than `LOCAL` (0) and `PROXY` (1).
    V2Command(u8),
    /// A v2 family and transport byte with an unassigned half.
    V2Family(u8),
    /// A v2 length over [`V2_MAX_LEN`].
    V2TooLong(usize),
    /// A v2 length too short for the addresses of its family.
    V2ShortAddresses { family: &'static str, len: usize },
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotProxy => f.write_str("not a PROXY header"),
            Self::V1TooLong => write!(f, "v1 header longer than {V1_MAX_LEN} bytes"),
            Self::V1Syntax(rule) => write!(f, "v1 header: {rule}"),
            Self::V1Protocol(text) => {
                write!(f, "v1 protocol {text:?} is not TCP4, TCP6 or UNKNOWN")
            }
            Self::V1Address { protocol, text } => {
                write!(f, "v1 bad address {text:?} for {protocol}")
            }
            Self::V1Port(text) => write!(f, "v1 bad port {text:?}"),
            Self::V2Version(v) => write!(f, "v2 signature with version {v}, not 2"),
            Self::V2Command(c) => write!(f, "v2 command {c} is neither LOCAL nor PROXY"),
            Self::V2Family(b) => write!(f, "v2 family and transport 0x{b:02x} unknown"),
            Self::V2TooLong(len) => {
                write!(f, "v2 length {len} over the limit of {V2_MAX_LEN}")
            }
            Self::V2ShortAddresses { family, len } => {
                write!(f, "v2 length {len} too short for {family} addresses")
            }
        }
    }
}

impl std::error::Error for ProxyError {}

/// The longest header [`parse`] waits for: with this many bytes or more
/// it returns `Ok(Some(..))` or `Err`, never `Ok(None)`, so a listener may
/// size its buffer by it.
pub(crate) const MAX_HEADER_LEN: usize = V2_FIXED_LEN + V2_MAX_LEN;

/// Parses a PROXY header at the start of `buf`. `Ok(None)` when `buf` is a
/// valid beginning and more bytes are needed (the caller reads more and
/// calls again with all of them); `Ok(Some((header, consumed)))` once the
/// header is complete, the bytes after `consumed` being the client's own;
/// `Err` as soon as `buf` cannot be the start of a valid header.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// What every v1 header starts with.
const V1_PREFIX: &[u8] = b"PROXY ";

/// The longest v1 header, CRLF included: `PROXY UNKNOWN` with two
/// 39-character IPv6 addresses and two 5-digit ports. "If the CRLF sequence
/// is not found in the first 107 characters, the receiver should declare
/// the line invalid" (section 2.1).
const V1_MAX_LEN: usize = 107;

/// The longest IPv6 address as text: 39 characters in eight groups of four
/// hex digits, or 45 with the last 32 bits in dotted decimal, which
/// `Ipv6Addr` reads too.
const IPV6_MAX_TEXT: usize = 45;

/// The v2 signature (section 2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The v2 signature, version and command, family and transport, length.
const V2_FIXED_LEN: usize = 16;

/// The longest v2 address block and TLVs accepted. The spec allows 65,535,
/// but the caller must buffer the whole header before the client has
/// proved anything, so a lying length must not make it hold 64 KiB per
/// connection. 1,024 bytes holds the largest address block (`AF_UNIX`,
/// 216) with every TLV HAProxy sends: an SNI authority (up to 255), a
/// unique id (up to 128), the SSL group with version, client CN, cipher and
/// algorithms, ALPN, CRC32C, network namespace, and the AWS and Azure ones.
const V2_MAX_LEN: usize = 1024;

/// The IP family of a v1 header or a v2 PROXY command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inet {
    V4,
    V6,
}

impl Inet {
    /// The v1 protocol name.
    fn name(self) -> &'static str {
        match self {
            Self::V4 => "TCP4",
            Self::V6 => "TCP6",
        }
    }
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let seen = buf.len().min(V1_PREFIX.len());
    if buf.get(..seen) != V1_PREFIX.get(..seen) {
        return Err(ProxyError::NotProxy);
    }
    let Some(line) = buf.get(V1_PREFIX.len()..) else {
        return Ok(None);
    };
    let window = line.get(..V1_MAX_LEN - V1_PREFIX.len()).unwrap_or(line);
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let consumed = V1_PREFIX.len() + end + 2;
            let line = window.get(..end).unwrap_or_default();
            Ok(v1_line(line, true)?.map(|header| (header, consumed)))
        }
        None if buf.len() >= V1_MAX_LEN => Err(ProxyError::V1TooLong),
        None => v1_line(window, false).map(|_| None),
    }
}

/// Checks a v1 line after `PROXY `: all of it up to the CRLF when
/// `complete`, and then returns the header; else the part received so far,
/// which must still be able to become valid, and then returns `None`.
fn v1_line(line: &[u8], complete: bool) -> Result<Option<ProxyHeader>, ProxyError> {
    if let Some(rest) = line.strip_prefix(b"UNKNOWN") {
        // "the receiver must ignore anything presented before the CRLF"
        // (section 2.1), once UNKNOWN is a whole word.
        return match rest.first() {
            None | Some(b' ') => Ok(complete.then(ProxyHeader::default)),
            Some(b'\r') if !complete && rest.len() == 1 => Ok(None),
            Some(_) => Err(ProxyError::V1Protocol(first_field(line))),
        };
    }
    if !complete && let Some(body) = line.strip_suffix(b"\r") {
        // Only the LF is missing, so the rest must be a whole line already.
        return v1_inet(body, true).map(|_| None);
    }
    v1_inet(line, complete)
}

/// Checks a `TCP4` or `TCP6` line after `PROXY `, as [`v1_line`] does.
fn v1_inet(line: &[u8], complete: bool) -> Result<Option<ProxyHeader>, ProxyError> {
    let count = line.split(|&b| b == b' ').count();
    if count > 5 {
        return Err(ProxyError::V1Syntax("more than 5 fields after PROXY"));
    }
    let mut inet = Inet::V4;
    let (mut src, mut dst, mut sport, mut dport) = (None, None, None, None);
    for (i, field) in line.split(|&b| b == b' ').enumerate() {
        // Every field but the last is followed by a space, so is whole.
        let whole = complete || i + 1 < count;
        if whole && field.is_empty() {
            return Err(ProxyError::V1Syntax(if i + 1 == count {
                "a space before the CRLF"
            } else {
                "fields must be separated by exactly one space"
            }));
        }
        match i {
            0 => match v1_protocol(field, whole)? {
                Some(family) => inet = family,
                None => return Ok(None),
            },
            1 => src = v1_address(field, inet, whole)?,
            2 => dst = v1_address(field, inet, whole)?,
            3 => sport = v1_port(field, whole)?,
            _ => dport = v1_port(field, whole)?,
        }
    }
    if !complete {
        return Ok(None);
    }
    match (src, dst, sport, dport) {
        (Some(src), Some(dst), Some(sport), Some(dport)) => Ok(Some(ProxyHeader {
            source: Some(SocketAddr::new(src, sport)),
            destination: Some(SocketAddr::new(dst, dport)),
        })),
        _ => Err(ProxyError::V1Syntax("fewer than 5 fields after PROXY")),
    }
}

/// The family a v1 protocol names once `whole`; before, `None` while the
/// field may still become a protocol name.
fn v1_protocol(field: &[u8], whole: bool) -> Result<Option<Inet>, ProxyError> {
    let bad = || ProxyError::V1Protocol(text(field));
    if whole {
        return match field {
            b"TCP4" => Ok(Some(Inet::V4)),
            b"TCP6" => Ok(Some(Inet::V6)),
            _ => Err(bad()),
        };
    }
    let names: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
    if names.iter().any(|name| name.starts_with(field)) {
        Ok(None)
    } else {
        Err(bad())
    }
}

/// A v1 address of family `inet` once `whole`; before, `None` while the
/// field may still become one.
fn v1_address(field: &[u8], inet: Inet, whole: bool) -> Result<Option<IpAddr>, ProxyError> {
    let bad = || ProxyError::V1Address {
        protocol: inet.name(),
        text: text(field),
    };
    match inet {
        Inet::V4 => {
            // "exactly 4 integers in the range [0..255] [...] separated by
            // exactly one dot", without leading zeros (section 2.1).
            let parts = field.split(|&b| b == b'.').count();
            if parts > 4 || (whole && parts < 4) {
                return Err(bad());
            }
            let mut octets = [0u8; 4];
            let split = field.split(|&b| b == b'.');
            for (i, (octet, digits)) in octets.iter_mut().zip(split).enumerate() {
                let value = decimal(digits, whole || i + 1 < parts, 255);
                *octet = value.and_then(|v| u8::try_from(v).ok()).ok_or_else(bad)?;
            }
            Ok(whole.then(|| IpAddr::V4(Ipv4Addr::from(octets))))
        }
        Inet::V6 => {
            let charset = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
            if field.len() > IPV6_MAX_TEXT || !field.iter().all(charset) {
                return Err(bad());
            }
            if !whole {
                return Ok(None);
            }
            let addr = std::str::from_utf8(field).ok();
            let addr = addr.and_then(|s| s.parse::<Ipv6Addr>().ok());
            addr.map(|a| Some(IpAddr::V6(a))).ok_or_else(bad)
        }
    }
}

/// A v1 port once `whole`; before, `None` while the field may still become
/// one.
fn v1_port(field: &[u8], whole: bool) -> Result<Option<u16>, ProxyError> {
    let port = decimal(field, whole, u32::from(u16::MAX)).and_then(|v| u16::try_from(v).ok());
    match port {
        Some(port) => Ok(whole.then_some(port)),
        None => Err(ProxyError::V1Port(text(field))),
    }
}

/// A decimal number of at most `max` (at most 5 digits) without leading
/// zeros, "in order to avoid any possible confusion with octal numbers"
/// (section 2.1); when not `whole`, the value of the digits received so
/// far, if more digits could still make such a number. `None` if not.
fn decimal(digits: &[u8], whole: bool, max: u32) -> Option<u32> {
    let leading_zero = digits.len() > 1 && digits.first() == Some(&b'0');
    if (whole && digits.is_empty()) || leading_zero || digits.len() > 5 {
        return None;
    }
    let mut value = 0u32;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(d - b'0');
    }
    (value <= max).then_some(value)
}

/// The first space-separated field of a v1 line, for an error.
fn first_field(line: &[u8]) -> String {
    text(line.split(|&b| b == b' ').next().unwrap_or_default())
}

/// Header bytes as text for an error: `Display` prints it escaped.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let seen = buf.len().min(V2_SIGNATURE.len());
    if buf.get(..seen) != V2_SIGNATURE.get(..seen) {
        return Err(ProxyError::NotProxy);
    }
    let Some(&version_command) = buf.get(12) else {
        return Ok(None);
    };
    // "it must always be sent as \x2 and the receiver must only accept
    // this value" (section 2.2).
    if version_command >> 4 != 2 {
        return Err(ProxyError::V2Version(version_command >> 4));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        command => return Err(ProxyError::V2Command(command)),
    };
    let Some(&family) = buf.get(13) else {
        return Ok(None);
    };
    // LOCAL: "the receiver must accept this connection as valid and must
    // use the real connection endpoints and discard the protocol block
    // including the family which is ignored" (section 2.2).
    let family = if local {
        Family::Unspec
    } else {
        Family::read(family)?
    };
    let Some(&[high, low]) = buf.get(14..16) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([high, low]));
    if len > V2_MAX_LEN {
        return Err(ProxyError::V2TooLong(len));
    }
    if len < family.addresses_len() {
        return Err(ProxyError::V2ShortAddresses {
            family: family.name(),
            len,
        });
    }
    // TLVs after the addresses are skipped: nothing here reads them, and
    // the spec lets a receiver ignore those it does not understand.
    let consumed = V2_FIXED_LEN + len;
    let Some(block) = buf.get(V2_FIXED_LEN..consumed) else {
        return Ok(None);
    };
    let header = family
        .addresses(block)
        .ok_or(ProxyError::V2ShortAddresses {
            family: family.name(),
            len,
        })?;
    Ok(Some((header, consumed)))
}

/// The address family of a v2 PROXY command, as far as reading its
/// addresses goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// No addresses to use: `AF_UNSPEC`, or an `UNSPEC` transport, of
    /// which "The receiver should ignore address information".
    Unspec,
    Inet(Inet),
    /// `AF_UNIX`: paths, not IP endpoints, so the caller is given none.
    Unix,
}

impl Family {
    /// Reads the family and transport byte. Both halves must be assigned
    /// ("other values [...] must be rejected as invalid by receivers").
    fn read(byte: u8) -> Result<Self, ProxyError> {
        let family = match byte >> 4 {
            0 => Self::Unspec,
            1 => Self::Inet(Inet::V4),
            2 => Self::Inet(Inet::V6),
            3 => Self::Unix,
            _ => return Err(ProxyError::V2Family(byte)),
        };
        match byte & 0x0f {
            0 => Ok(Self::Unspec),
            1 | 2 => Ok(family),
            _ => Err(ProxyError::V2Family(byte)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Unspec => "AF_UNSPEC",
            Self::Inet(Inet::V4) => "AF_INET",
            Self::Inet(Inet::V6) => "AF_INET6",
            Self::Unix => "AF_UNIX",
        }
    }

    /// The length of the family's address block (section 2.2).
    fn addresses_len(self) -> usize {
        match self {
            Self::Unspec => 0,
            Self::Inet(Inet::V4) => 2 * 4 + 2 * 2,
            Self::Inet(Inet::V6) => 2 * 16 + 2 * 2,
            Self::Unix => 2 * 108,
        }
    }

    /// The endpoints in an address block at least `addresses_len` long.
    fn addresses(self, block: &[u8]) -> Option<ProxyHeader> {
        let (src, dst, ports) = match self {
            Self::Unspec | Self::Unix => return Some(ProxyHeader::default()),
            Self::Inet(Inet::V4) => (
                IpAddr::from(bytes::<4>(block, 0)?),
                IpAddr::from(bytes::<4>(block, 4)?),
                8,
            ),
            Self::Inet(Inet::V6) => (
                IpAddr::from(bytes::<16>(block, 0)?),
                IpAddr::from(bytes::<16>(block, 16)?),
                32,
            ),
        };
        let sport = u16::from_be_bytes(bytes(block, ports)?);
        let dport = u16::from_be_bytes(bytes(block, ports + 2)?);
        Some(ProxyHeader {
            source: Some(SocketAddr::new(src, sport)),
            destination: Some(SocketAddr::new(dst, dport)),
        })
    }
}

/// The `N` bytes of `block` at `at`, if it has them.
fn bytes<const N: usize>(block: &[u8], at: usize) -> Option<[u8; N]> {
    block.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests;
