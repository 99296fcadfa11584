//! Property tests: encode then decode is the identity for every valid packet
//! of every version; every strict prefix needs more bytes; arbitrary and
//! mutated input never panics and never consumes a partial packet.
#![allow(clippy::unwrap_used)]

#[path = "common/check.rs"]
mod check;
mod common;

use check::check_total;

use bytes::BytesMut;
use proptest::prelude::*;
use strata_codec::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity((p, packet) in common::any_packet()) {
        let mut buf = common::encode(p, &packet);
        let len = buf.len();
        prop_assert_eq!(packet.encoded_len(p).unwrap(), len);
        let decoded = decode(&mut buf, p, MAX_PACKET_SIZE).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn strict_prefixes_need_more_bytes((p, packet) in common::any_packet()) {
        let full = common::encode(p, &packet);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            prop_assert_eq!(decode(&mut buf, p, MAX_PACKET_SIZE), Ok(None), "cut at {}", cut);
            prop_assert_eq!(buf.len(), cut, "a partial packet was consumed");
        }
    }

    #[test]
    fn back_to_back_packets_decode_in_order(
        (p, a, b) in common::protocol().prop_flat_map(|p| (Just(p), common::packet(p), common::packet(p))),
    ) {
        let mut buf = common::encode(p, &a);
        buf.extend_from_slice(&common::encode(p, &b));
        prop_assert_eq!(decode(&mut buf, p, MAX_PACKET_SIZE).unwrap(), Some(a));
        prop_assert_eq!(decode(&mut buf, p, MAX_PACKET_SIZE).unwrap(), Some(b));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_packet_over_the_maximum_is_refused_from_its_header((p, packet) in common::any_packet()) {
        let full = common::encode(p, &packet);
        let max = full.len() - 1;
        // Only the fixed header is offered: the size check must not wait
        // for the body.
        let header = strata_codec::decode_fixed_header(&full, usize::MAX).unwrap().unwrap();
        let mut buf = BytesMut::from(&full[..header.header_len]);
        let err = decode(&mut buf, p, max).unwrap_err();
        prop_assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
    }

    #[test]
    fn arbitrary_bytes_never_panic(p in common::protocol(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_total(p, &bytes);
    }

    #[test]
    fn mutated_packets_never_panic(
        (p, packet) in common::any_packet(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = common::encode(p, &packet).to_vec();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        check_total(p, &bytes);
    }
}

/// Inputs the fuzzer found (or seeded) are replayed on every test run.
#[test]
fn fuzz_regressions_replay() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/regressions/decode");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        if let Some((&first, rest)) = data.split_first() {
            check_total(check::protocol_from_byte(first), rest);
            n += 1;
        }
    }
    assert!(n > 0, "no regression inputs in {dir}");
}

/// Topic and payload of a decoded PUBLISH point into the read buffer.
#[test]
fn publish_fields_share_the_read_buffer() {
    let packet = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        packet_id: 7,
        ..Publish::new(
            MqttStr::from_static("a/b"),
            QoS::AtLeastOnce,
            bytes::Bytes::from_static(&[9; 64]),
        )
    });
    let mut buf = common::encode(Protocol::V3_1_1, &packet);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Some(Packet::Publish(p)) = decode(&mut buf, Protocol::V3_1_1, MAX_PACKET_SIZE).unwrap()
    else {
        panic!("not a PUBLISH")
    };
    assert!(range.contains(&(p.payload.as_ptr() as usize)));
    assert!(range.contains(&(p.topic.as_ptr() as usize)));
    assert_eq!(p.payload.len(), 64);
}

/// Short acknowledgements (read in place) and other packets decode in
/// order from one buffer, each taking exactly its own bytes; a zero packet
/// identifier is still refused [MQTT-2.2.1-3].
#[test]
fn short_acknowledgements_decode_in_place_and_in_order() {
    for p in [Protocol::V3_1_1, Protocol::V5] {
        let packets = [
            Packet::PubAck(PubResponse::new(1)),
            Packet::PingReq,
            Packet::PubRec(PubResponse::new(2)),
            Packet::Publish(Publish::new(
                MqttStr::from_static("t"),
                QoS::AtMostOnce,
                bytes::Bytes::from_static(b"x"),
            )),
            Packet::PubRel(PubResponse::new(3)),
            Packet::PubComp(PubResponse::new(65535)),
        ];
        let mut buf = BytesMut::new();
        for packet in &packets {
            buf.extend_from_slice(&common::encode(p, packet));
        }
        for packet in &packets {
            assert_eq!(
                decode(&mut buf, p, MAX_PACKET_SIZE).unwrap().as_ref(),
                Some(packet)
            );
        }
        assert!(buf.is_empty());
        let mut zero = BytesMut::from(&[0x40, 0x02, 0x00, 0x00][..]);
        assert!(decode(&mut zero, p, MAX_PACKET_SIZE).is_err(), "{p:?}");
        // The short form is known by its first byte, flags included: a
        // PUBREL without its 0b0010 flags [MQTT-3.6.1-1] and a PUBACK with
        // flags are malformed [MQTT-2.2.2-2].
        for bad in [[0x60, 0x02, 0x00, 0x01], [0x41, 0x02, 0x00, 0x01]] {
            let mut b = BytesMut::from(&bad[..]);
            assert!(decode(&mut b, p, MAX_PACKET_SIZE).is_err(), "{p:?} {bad:?}");
        }
        // Not whole yet: nothing is taken.
        let mut part = BytesMut::from(&[0x40, 0x02, 0x00][..]);
        assert_eq!(decode(&mut part, p, MAX_PACKET_SIZE).unwrap(), None);
        assert_eq!(part.len(), 3);
    }
}
