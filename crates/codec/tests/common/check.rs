//! The decoder's totality check, shared by the property tests and the fuzz
//! target (which includes this file by path).

use bytes::BytesMut;
use strata_codec::{MAX_PACKET_SIZE, Packet, Protocol, decode};

/// The protocol a fuzz input's first byte selects.
pub fn protocol_from_byte(b: u8) -> Protocol {
    match b % 3 {
        0 => Protocol::V3_1,
        1 => Protocol::V3_1_1,
        _ => Protocol::V5,
    }
}

/// Decodes `bytes` to the end: each call either needs more bytes (consuming
/// nothing), fails with an error that maps to a failure reason code, or
/// consumes one packet that encodes and decodes back to itself.
pub fn check_total(p: Protocol, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.len();
        match decode(&mut buf, p, MAX_PACKET_SIZE) {
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                return;
            }
            Err(e) => {
                assert!(e.reason_code().is_error(), "{e} maps to a success code");
                return;
            }
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a packet consumed nothing");
                let packet_p = match &packet {
                    Packet::Connect(c) => c.protocol,
                    _ => p,
                };
                let mut again = BytesMut::new();
                let n = packet
                    .encode(packet_p, &mut again)
                    .expect("a decoded packet encodes");
                assert_eq!(n, again.len());
                assert_eq!(packet.encoded_len(packet_p), Ok(n));
                let back = decode(&mut again, packet_p, MAX_PACKET_SIZE)
                    .expect("a re-encoded packet decodes");
                assert_eq!(
                    back.as_ref(),
                    Some(&packet),
                    "decode-encode-decode changed the packet"
                );
                assert!(again.is_empty());
            }
        }
    }
}
