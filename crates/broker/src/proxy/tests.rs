//! The PROXY parser's tests.
use super::*;

/// An MQTT 3.1.1 CONNECT, as a client sends it right after the header.
const CONNECT: &[u8] = &[
    0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
];

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

fn inet(source: &str, destination: &str) -> ProxyHeader {
    ProxyHeader {
        source: addr(source),
        destination: addr(destination),
    }
}

/// A v2 header: signature, the two bytes given, the length, `block`.
fn v2(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(version_command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

/// Feeds `header` one byte at a time, then followed by a CONNECT:
/// `Ok(None)` until it is whole, then exactly its length consumed.
fn fed(header: &[u8]) -> ProxyHeader {
    for end in 0..header.len() {
        assert_eq!(parse(&header[..end]), Ok(None), "prefix of {end} bytes");
    }
    let (parsed, consumed) = parse(header).unwrap().unwrap();
    assert_eq!(consumed, header.len());
    let mut stream = header.to_vec();
    stream.extend_from_slice(CONNECT);
    assert_eq!(parse(&stream), Ok(Some((parsed, header.len()))));
    parsed
}

/// The length of the shortest prefix of `bytes` that is refused, and
/// why; checks that every longer prefix is refused too.
fn refused(bytes: &[u8]) -> (usize, ProxyError) {
    let at = (0..=bytes.len())
        .find(|&end| parse(&bytes[..end]).is_err())
        .unwrap_or_else(|| panic!("{:?} accepted", String::from_utf8_lossy(bytes)));
    for end in at..=bytes.len() {
        assert!(parse(&bytes[..end]).is_err(), "prefix of {end} bytes");
    }
    (at, parse(&bytes[..at]).unwrap_err())
}

#[test]
fn v1_tcp4() {
    let header = fed(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1883\r\n");
    assert_eq!(header, inet("192.168.0.1:56324", "192.168.0.11:1883"));
    let header = fed(b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
    assert_eq!(header, inet("0.0.0.0:0", "255.255.255.255:65535"));
}

#[test]
fn v1_tcp6() {
    let header = fed(b"PROXY TCP6 2001:db8::1 ::1 40000 8883\r\n");
    assert_eq!(header, inet("[2001:db8::1]:40000", "[::1]:8883"));
    // The longest TCP6 line the spec lists: 104 bytes.
    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY TCP6 {full} {full} 65535 65535\r\n");
    assert_eq!(line.len(), 104);
    let header = fed(line.as_bytes());
    let all = format!("[{full}]:65535");
    assert_eq!(header, inet(&all, &all));
    let header = fed(b"PROXY TCP6 ::ffff:10.0.0.1 FE80::A 1 2\r\n");
    assert_eq!(header, inet("[::ffff:10.0.0.1]:1", "[fe80::a]:2"));
}

#[test]
fn v1_unknown() {
    assert_eq!(fed(b"PROXY UNKNOWN\r\n"), ProxyHeader::default());
    let header = fed(b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n");
    assert_eq!(header, ProxyHeader::default());
    // Anything before the CRLF is ignored, even what TCP4 would refuse.
    let header = fed(b"PROXY UNKNOWN  whatever\rit\nsays \x00\xff\r\n");
    assert_eq!(header, ProxyHeader::default());
    // The spec's worst case, 107 bytes, is still accepted.
    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY UNKNOWN {full} {full} 65535 65535\r\n");
    assert_eq!(line.len(), V1_MAX_LEN);
    assert_eq!(fed(line.as_bytes()), ProxyHeader::default());
}

#[test]
fn v1_unknown_must_be_a_whole_word() {
    let (at, err) = refused(b"PROXY UNKNOWNX\r\n");
    assert_eq!((at, err), (14, ProxyError::V1Protocol("UNKNOWNX".into())));
    assert_eq!(refused(b"PROXY UNKNOWN\rX\r\n").0, 15);
}

#[test]
fn v1_without_crlf_within_107_bytes() {
    let line = format!("PROXY UNKNOWN {}\r\n", "x".repeat(200));
    assert_eq!(refused(line.as_bytes()), (107, ProxyError::V1TooLong));
    // One byte too long: the CR is the 107th byte, the LF the 108th.
    let line = format!("PROXY UNKNOWN {}\r\n", "x".repeat(92));
    assert_eq!(line.len(), 108);
    assert_eq!(refused(line.as_bytes()), (107, ProxyError::V1TooLong));
    // A TCP6 line made long by dotted-quad tails.
    let long = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    let line = format!("PROXY TCP6 {long} {long} 65535 65535\r\n");
    assert_eq!(refused(line.as_bytes()).1, ProxyError::V1TooLong);
}

#[test]
fn v1_bad_addresses() {
    let v4 = |text| bad_address("TCP4", text);
    for (line, at, err) in [
        ("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 20, v4("1.2.3.256")),
        ("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", 13, v4("01")),
        ("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 17, v4("1.2.3")),
        ("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 19, v4("1.2.3.4.")),
        ("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", 14, v4("1..")),
        ("PROXY TCP4 1.2.3.4 5.6.7.x 1 2\r\n", 26, v4("5.6.7.x")),
        ("PROXY TCP4 1.2.3.4 localhost 1 2\r\n", 20, v4("l")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", 27, v1_short()),
    ] {
        assert_eq!(refused(line.as_bytes()), (at, err), "{line:?}");
    }
    let v6 = |text| bad_address("TCP6", text);
    for (line, at, err) in [
        ("PROXY TCP6 1::2::3 ::1 1 2\r\n", 19, v6("1::2::3")),
        ("PROXY TCP6 12345:: ::1 1 2\r\n", 19, v6("12345::")),
        ("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 19, v6("fe80::1%")),
        ("PROXY TCP6 ::1 [::1] 1 2\r\n", 16, v6("[")),
    ] {
        assert_eq!(refused(line.as_bytes()), (at, err), "{line:?}");
    }
}

fn bad_address(protocol: &'static str, text: &str) -> ProxyError {
    let text = text.into();
    ProxyError::V1Address { protocol, text }
}

fn v1_short() -> ProxyError {
    ProxyError::V1Syntax("fewer than 5 fields after PROXY")
}

#[test]
fn v1_family_mismatch() {
    let (_, err) = refused(b"PROXY TCP4 ::1 ::1 1 2\r\n");
    assert_eq!(err, bad_address("TCP4", ":"));
    let (_, err) = refused(b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
    assert_eq!(err, bad_address("TCP6", "1.2.3.4"));
}

#[test]
fn v1_bad_ports() {
    for (line, at, port) in [
        ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 32, "65536"),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n", 32, "99999"),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", 28, "+"),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", 28, "-"),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", 29, "08"),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 000001\r\n", 31, "00"),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", 31, "2x"),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31, "2\n"),
    ] {
        let err = ProxyError::V1Port(port.into());
        assert_eq!(refused(line.as_bytes()), (at, err), "{line:?}");
    }
}

#[test]
fn v1_syntax() {
    let spaces = ProxyError::V1Syntax("fields must be separated by exactly one space");
    let extra = ProxyError::V1Syntax("more than 5 fields after PROXY");
    let trailing = ProxyError::V1Syntax("a space before the CRLF");
    let not = ProxyError::NotProxy;
    for (line, at, err) in [
        ("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 7, spaces.clone()),
        ("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 20, spaces),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 31, extra.clone()),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 31, extra),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 29, v1_short()),
        ("PROXY TCP4\r\n", 11, v1_short()),
        ("PROXY \r\n", 7, trailing),
        ("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 10, v1_proto("TCP5")),
        ("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 7, v1_proto("t")),
        ("PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", 6, not.clone()),
        ("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 1, not),
    ] {
        assert_eq!(refused(line.as_bytes()), (at, err), "{line:?}");
    }
}

fn v1_proto(text: &str) -> ProxyError {
    ProxyError::V1Protocol(text.into())
}

#[test]
fn other_protocols_are_refused_at_once() {
    let mut connect = CONNECT.to_vec();
    connect.extend_from_slice(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    assert_eq!(refused(&connect), (1, ProxyError::NotProxy));
    assert_eq!(refused(b"GET / HTTP/1.1\r\n"), (1, ProxyError::NotProxy));
    assert_eq!(refused(b"PRI * HTTP/2.0\r\n"), (3, ProxyError::NotProxy));
    // A TLS ClientHello on a PROXY listener.
    assert_eq!(refused(&[0x16, 0x03, 0x01]), (1, ProxyError::NotProxy));
    assert_eq!(parse(b""), Ok(None));
}

#[test]
fn v2_tcp4() {
    let block = [10, 0, 0, 1, 10, 0, 0, 2, 0xc3, 0x50, 0x07, 0x5b];
    let header = fed(&v2(0x21, 0x11, &block));
    assert_eq!(header, inet("10.0.0.1:50000", "10.0.0.2:1883"));
}

#[test]
fn v2_tcp6() {
    let mut block = Vec::new();
    block.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    block.extend_from_slice(&[0xff, 0xff, 0x22, 0xb3]);
    let header = fed(&v2(0x21, 0x21, &block));
    assert_eq!(header, inet("[2001:db8::7]:65535", "[::1]:8883"));
}

#[test]
fn v2_with_tlvs() {
    let mut block = vec![192, 0, 2, 1, 198, 51, 100, 2, 0x30, 0x39, 0x07, 0x5b];
    // PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP of 3 bytes, and
    // PP2_TYPE_SSL with a PP2_SUBTYPE_SSL_VERSION.
    block.extend_from_slice(b"\x02\x00\x0bexample.com");
    block.extend_from_slice(b"\x04\x00\x03\x00\x00\x00");
    block.extend_from_slice(b"\x20\x00\x0c\x01\x00\x00\x00\x00\x21\x00\x04TLS3");
    let bytes = v2(0x21, 0x11, &block);
    assert_eq!(bytes.len(), 16 + 12 + 14 + 6 + 15);
    let header = fed(&bytes);
    assert_eq!(header, inet("192.0.2.1:12345", "198.51.100.2:1883"));
}

#[test]
fn v2_local() {
    // The usual health check: LOCAL, UNSPEC, no addresses.
    assert_eq!(fed(&v2(0x20, 0x00, &[])), ProxyHeader::default());
    // Addresses and family are ignored, but skipped.
    let block = [10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
    assert_eq!(fed(&v2(0x20, 0x11, &block)), ProxyHeader::default());
    assert_eq!(fed(&v2(0x20, 0xff, &[1, 2, 3])), ProxyHeader::default());
}

#[test]
fn v2_without_ip_endpoints() {
    assert_eq!(fed(&v2(0x21, 0x00, &[])), ProxyHeader::default());
    // UNSPEC with something in the block anyway.
    assert_eq!(fed(&v2(0x21, 0x00, &[7; 9])), ProxyHeader::default());
    // An UNSPEC transport over AF_INET: its addresses are ignored.
    assert_eq!(fed(&v2(0x21, 0x10, &[])), ProxyHeader::default());
    // AF_UNIX, stream and datagram: two 108-byte paths.
    let mut paths = vec![0u8; 216];
    paths[..10].copy_from_slice(b"/run/proxy");
    assert_eq!(fed(&v2(0x21, 0x31, &paths)), ProxyHeader::default());
    assert_eq!(fed(&v2(0x21, 0x32, &paths)), ProxyHeader::default());
}

#[test]
fn v2_datagram_addresses() {
    let block = [10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0, 54];
    let header = fed(&v2(0x21, 0x12, &block));
    assert_eq!(header, inet("10.0.0.1:53", "10.0.0.2:54"));
}

#[test]
fn v2_bad_signature() {
    for at in 0..12 {
        let mut bytes = v2(0x21, 0x00, &[]);
        bytes[at] ^= 0x40;
        let (refused_at, err) = refused(&bytes);
        assert_eq!(err, ProxyError::NotProxy);
        assert_eq!(refused_at, at + 1, "byte {at} changed");
    }
}

#[test]
fn v2_bad_version_command_family() {
    let block = [0u8; 12];
    // Refused at the byte in question, the 13th or the 14th.
    for (version_command, family, at, err) in [
        (0x11, 0x11, 13, ProxyError::V2Version(1)),
        (0x31, 0x11, 13, ProxyError::V2Version(3)),
        (0x01, 0x11, 13, ProxyError::V2Version(0)),
        (0x22, 0x11, 13, ProxyError::V2Command(2)),
        (0x2f, 0x11, 13, ProxyError::V2Command(15)),
        (0x21, 0x41, 14, ProxyError::V2Family(0x41)),
        (0x21, 0x13, 14, ProxyError::V2Family(0x13)),
        (0x21, 0x03, 14, ProxyError::V2Family(0x03)),
        (0x21, 0xf0, 14, ProxyError::V2Family(0xf0)),
    ] {
        let bytes = v2(version_command, family, &block);
        assert_eq!(refused(&bytes), (at, err), "{version_command:x} {family:x}");
    }
}

#[test]
fn v2_length_shorter_than_the_addresses() {
    for (family, len, name) in [
        (0x11, 8, "AF_INET"),
        (0x12, 11, "AF_INET"),
        (0x21, 12, "AF_INET6"),
        (0x21, 35, "AF_INET6"),
        (0x31, 215, "AF_UNIX"),
    ] {
        let bytes = v2(0x21, family, &vec![0; len]);
        let err = ProxyError::V2ShortAddresses { family: name, len };
        // Refused as soon as the length is read, before the block.
        assert_eq!(refused(&bytes), (16, err), "{family:x} {len}");
    }
}

#[test]
fn v2_length_over_the_limit_is_refused_before_the_block() {
    let mut bytes = v2(0x21, 0x11, &[]);
    bytes[14..16].copy_from_slice(&40000u16.to_be_bytes());
    assert_eq!(refused(&bytes), (16, ProxyError::V2TooLong(40000)));
    assert_eq!(
        ProxyError::V2TooLong(40000).to_string(),
        "v2 length 40000 over the limit of 1024"
    );
    // The limit itself is accepted, with TLVs filling the rest.
    let mut block = vec![0u8; V2_MAX_LEN];
    block[..12].copy_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2, 0, 1, 0, 2]);
    let bytes = v2(0x21, 0x11, &block);
    assert_eq!(bytes.len(), MAX_HEADER_LEN);
    assert_eq!(fed(&bytes), inet("1.1.1.1:1", "2.2.2.2:2"));
    // One byte more is refused, LOCAL too.
    let block = vec![0u8; V2_MAX_LEN + 1];
    let err = ProxyError::V2TooLong(V2_MAX_LEN + 1);
    assert_eq!(refused(&v2(0x21, 0x11, &block)), (16, err.clone()));
    assert_eq!(refused(&v2(0x20, 0x00, &block)), (16, err));
}

#[test]
fn errors_read_as_log_lines() {
    assert_eq!(ProxyError::NotProxy.to_string(), "not a PROXY header");
    assert_eq!(
        ProxyError::V1TooLong.to_string(),
        "v1 header longer than 107 bytes"
    );
    let (_, err) = refused(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n");
    assert_eq!(err.to_string(), "v1 bad port \"2\\n\"");
    let (_, err) = refused(b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n");
    assert_eq!(err.to_string(), "v1 bad address \"1.2.3.4\" for TCP6");
    let err = ProxyError::V2ShortAddresses {
        family: "AF_INET",
        len: 8,
    };
    assert_eq!(
        err.to_string(),
        "v2 length 8 too short for AF_INET addresses"
    );
}

/// xorshift64: enough randomness for these loops, the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// What must hold of `parse` on any input: no panic, a consumed count
/// within the input, no waiting past [`MAX_HEADER_LEN`], and once it
/// has refused a prefix or found a header in it, the same for every
/// longer one.
fn check_any(bytes: &[u8]) {
    let mut settled = Ok(None);
    for end in 0..=bytes.len() {
        let result = parse(&bytes[..end]);
        match (&settled, &result) {
            (Ok(None), Ok(None)) => assert!(end < MAX_HEADER_LEN, "waits at {end}"),
            (Ok(None), _) => settled = result,
            (Ok(Some(_)), _) => assert_eq!(settled, result, "{bytes:?} at {end}"),
            (Err(_), _) => assert!(result.is_err(), "{bytes:?} at {end}"),
        }
        if let Ok(Some((_, consumed))) = settled {
            assert!(consumed <= end);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        // Half the inputs start like a header so the loop gets past
        // the first byte.
        let mut bytes = match rng.below(4) {
            0 => V1_PREFIX.to_vec(),
            1 => V2_SIGNATURE.to_vec(),
            _ => Vec::new(),
        };
        for _ in 0..rng.below(40) {
            bytes.push(rng.byte());
        }
        check_any(&bytes);
    }
}

#[test]
fn mutated_headers_never_panic() {
    let valid: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1883\r\n".to_vec(),
        b"PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 40000 8883\r\n".to_vec(),
        b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
        v2(
            0x21,
            0x11,
            &[10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 4, 0, 1, 0],
        ),
        v2(0x21, 0x21, &[1; 40]),
        v2(0x20, 0x00, &[]),
    ];
    let alphabet = b"PROXY TCP46UNKNOW0123456789abcdef.:\r\n \x00\x21\x11\xff";
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..5_000 {
        let mut bytes = valid[rng.below(valid.len())].clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = rng.byte(),
                1 => bytes[at] = alphabet[rng.below(alphabet.len())],
                2 => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        bytes.extend_from_slice(CONNECT);
        check_any(&bytes);
    }
}
