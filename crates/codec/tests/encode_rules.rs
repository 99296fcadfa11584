//! Rules the encoder enforces on what Strata sends: each packet carries only
//! the reason codes its table in the 5.0 specification lists, and no string
//! is longer than its two-byte length prefix can say.
//!
//! The allowed sets below are typed in from the tables of sections 3.2.2.2,
//! 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1,
//! not taken from the codec, so a wrong entry in the codec's own table fails.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use strata_codec::*;

const CONNACK: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_PUBREC: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_PUBCOMP: &[u8] = &[0x00, 0x92];
const SUBACK: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

fn encode(packet: &Packet) -> Result<usize, EncodeError> {
    packet.encode(Protocol::V5, &mut BytesMut::new())
}

/// Every reason code either encodes (listed in `allowed`) or is refused with
/// `ReasonCodeNotAllowed` (not listed).
#[track_caller]
fn only_listed_codes_encode(name: &str, allowed: &[u8], build: impl Fn(ReasonCode) -> Packet) {
    for &code in ReasonCode::ALL {
        let listed = allowed.contains(&code.as_u8());
        match encode(&build(code)) {
            Ok(_) => assert!(listed, "{name} encoded the unlisted code {code:?}"),
            Err(EncodeError::ReasonCodeNotAllowed { code: c, .. }) => {
                assert!(!listed, "{name} refused the listed code {code:?}");
                assert_eq!(c, code);
            }
            Err(e) => panic!("{name} with {code:?}: unexpected {e}"),
        }
    }
    // The table's codes all exist in the enum.
    for &b in allowed {
        assert!(ReasonCode::from_u8(b).is_some(), "{name}: 0x{b:02X}");
    }
}

#[test]
fn connack_sends_only_connect_reason_codes_mqtt_3_2_2_8() {
    only_listed_codes_encode("CONNACK", CONNACK, |code| {
        Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            code,
            properties: Default::default(),
        }))
    });
}

#[test]
fn pub_acks_send_only_their_reason_codes_mqtt_3_4_2_1_to_3_7_2_1() {
    fn ack(code: ReasonCode) -> PubResponse {
        let mut a = PubResponse::new(7);
        a.reason = code;
        a
    }
    // [MQTT-3.4.2-1], [MQTT-3.5.2-1], [MQTT-3.6.2-1], [MQTT-3.7.2-1]
    only_listed_codes_encode("PUBACK", PUBACK_PUBREC, |c| Packet::PubAck(ack(c)));
    only_listed_codes_encode("PUBREC", PUBACK_PUBREC, |c| Packet::PubRec(ack(c)));
    only_listed_codes_encode("PUBREL", PUBREL_PUBCOMP, |c| Packet::PubRel(ack(c)));
    only_listed_codes_encode("PUBCOMP", PUBREL_PUBCOMP, |c| Packet::PubComp(ack(c)));
}

#[test]
fn suback_and_unsuback_send_only_their_reason_codes_mqtt_3_9_3_2_and_3_11_3_2() {
    only_listed_codes_encode("SUBACK", SUBACK, |code| {
        Packet::SubAck(SubAck {
            packet_id: 1,
            properties: Default::default(),
            // The code under test between two valid ones: every code is checked.
            codes: vec![ReasonCode::Success, code, ReasonCode::GrantedQoS1],
        })
    });
    only_listed_codes_encode("UNSUBACK", UNSUBACK, |code| {
        Packet::UnsubAck(UnsubAck {
            packet_id: 1,
            properties: Default::default(),
            codes: vec![ReasonCode::Success, code],
        })
    });
}

#[test]
fn disconnect_and_auth_send_only_their_reason_codes_mqtt_3_14_2_1_and_3_15_2_1() {
    only_listed_codes_encode("DISCONNECT", DISCONNECT, |c| {
        Packet::Disconnect(Disconnect::new(c))
    });
    only_listed_codes_encode("AUTH", AUTH, |reason| {
        Packet::Auth(Box::new(Auth {
            reason,
            properties: Default::default(),
        }))
    });
}

#[test]
fn topic_names_and_filters_fit_in_65535_bytes_mqtt_4_7_3_3() {
    let at_limit = MqttStr::try_from("a".repeat(65_535)).unwrap();
    let over = MqttStr::try_from("a".repeat(65_536)).unwrap();

    // PUBLISH topic name: the longest encodes and decodes back; one more
    // byte is refused before anything is written.
    let publish = Packet::Publish(Publish::new(
        at_limit.clone(),
        QoS::AtMostOnce,
        Bytes::new(),
    ));
    let mut buf = BytesMut::new();
    publish.encode(Protocol::V3_1_1, &mut buf).unwrap();
    let back = decode(&mut buf, Protocol::V3_1_1, MAX_PACKET_SIZE).unwrap();
    assert_eq!(back, Some(publish));
    let mut buf = BytesMut::new();
    let too_long = Packet::Publish(Publish::new(over.clone(), QoS::AtMostOnce, Bytes::new()));
    assert!(matches!(
        too_long.encode(Protocol::V3_1_1, &mut buf),
        Err(EncodeError::TooLong { len: 65_536, .. })
    ));
    assert!(buf.is_empty(), "a refused packet left {} bytes", buf.len());

    // SUBSCRIBE topic filter.
    let subscribe = |filter: MqttStr| {
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: vec![Subscription {
                filter,
                options: SubscribeOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAlways,
                },
            }],
        })
    };
    for p in [Protocol::V3_1_1, Protocol::V5] {
        assert!(encode_in(p, &subscribe(at_limit.clone())).is_ok());
        assert!(matches!(
            encode_in(p, &subscribe(over.clone())),
            Err(EncodeError::TooLong { len: 65_536, .. })
        ));
    }
}

fn encode_in(p: Protocol, packet: &Packet) -> Result<usize, EncodeError> {
    packet.encode(p, &mut BytesMut::new())
}
