//! Malformed and rule-breaking inputs the codec must refuse, written by hand
//! from the MQTT 3.1.1 and 5.0 specifications, each named after the
//! statement it breaks. Every case asserts the exact [`ErrorKind`] and the
//! reason code a server would send for it (section 4.13 of 5.0).
//!
//! The tests at the end pin the places where these vectors found the codec
//! departing from the spec; each names the clause it holds the codec to.
//!
//! The valid vectors are in `spec_vectors.rs`.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use strata_codec::topic::TopicError;
use strata_codec::*;

use Protocol::{V3_1, V3_1_1, V5};
use ReasonCode::{MalformedPacket, ProtocolError};

const ALL: [Protocol; 3] = [V3_1, V3_1_1, V5];
const V3: [Protocol; 2] = [V3_1, V3_1_1];

/// Decodes `bytes` and returns the error it must produce.
#[track_caller]
fn error(p: Protocol, bytes: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, p, MAX_PACKET_SIZE) {
        Err(e) => e,
        Ok(got) => panic!("{p:?}: {bytes:02x?} decoded to {got:?}"),
    }
}

/// Asserts that `bytes` is refused with `kind` and `code`.
#[track_caller]
fn rejects(p: Protocol, bytes: &[u8], kind: ErrorKind, code: ReasonCode) {
    let e = error(p, bytes);
    assert_eq!(e.kind, kind, "{p:?}: {bytes:02x?}");
    assert_eq!(e.reason_code(), code, "{p:?}: {bytes:02x?}: {e}");
}

/// A packet with a one-byte Remaining Length.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(body.len()).unwrap();
    assert!(len < 128);
    [&[first, len][..], body].concat()
}

/// A string or binary field: two-byte length, then the bytes.
fn field(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    [&len.to_be_bytes()[..], data].concat()
}

/// A SUBSCRIBE with packet identifier 1 and one filter (section 3.8).
fn subscribe(p: Protocol, filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if p == V5 {
        body.push(0x00); // property length
    }
    body.extend(field(filter));
    body.push(options);
    frame(0x82, &body)
}

/// A PUBLISH QoS 0 with the topic name given raw (section 3.3).
fn publish(p: Protocol, topic: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    if p == V5 {
        body.push(0x00); // property length
    }
    frame(0x30, &body)
}

/// A CONNECT: protocol name, level, connect flags, keep alive 60, and
/// `rest` (properties for 5.0, then the payload) (section 3.1).
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = field(name);
    body.extend_from_slice(&[level, flags, 0x00, 0x3C]);
    body.extend_from_slice(rest);
    frame(0x10, &body)
}

/// The CONNECT of protocol `p` with the given flags and payload.
fn connect_for(p: Protocol, flags: u8, payload: &[u8]) -> Vec<u8> {
    match p {
        V3_1 => connect(b"MQIsdp", 3, flags, payload),
        V3_1_1 => connect(b"MQTT", 4, flags, payload),
        V5 => connect(b"MQTT", 5, flags, &[&[0x00], payload].concat()),
    }
}

// ---------------------------------------------------------- fixed header

#[test]
fn packet_type_0_is_reserved() {
    // 3.1.1 section 2.2.1 and 5.0 section 2.1.2: type 0 is forbidden. It
    // is refused from the first byte.
    for p in ALL {
        for bytes in [&[0x00, 0x00][..], &[0x00]] {
            let e = error(p, bytes);
            assert_eq!(e.kind, ErrorKind::ReservedPacketType(0));
            assert_eq!(e.reason_code(), MalformedPacket);
            assert_eq!(e.packet, None);
        }
    }
}

#[test]
fn auth_is_reserved_type_15_before_v5() {
    // 3.1.1 section 2.2.1: 15 is reserved.
    for p in V3 {
        let kind = ErrorKind::ReservedPacketType(15);
        rejects(p, &[0xF0, 0x00], kind.clone(), MalformedPacket);
        let auth = [0xF0, 2, 0x18, 0x00];
        rejects(p, &auth, kind, MalformedPacket);
    }
}

#[test]
fn reserved_fixed_header_flags_mqtt_2_2_2_1() {
    // 3.1.1 [MQTT-2.2.2-1] [MQTT-2.2.2-2], 5.0 [MQTT-2.1.3-1]; PUBREL
    // [MQTT-3.6.1-1], SUBSCRIBE [MQTT-3.8.1-1], UNSUBSCRIBE [MQTT-3.10.1-1],
    // DISCONNECT [MQTT-3.14.1-1]. Each is refused from its first two bytes,
    // before the body arrives.
    let mut cases: Vec<(Protocol, Vec<u8>, u8)> = Vec::new();
    for p in [V3_1_1, V5] {
        let sub = if p == V5 {
            vec![0x00, 0x01, 0x00, 0x00, 0x01, b'#', 0x00]
        } else {
            vec![0x00, 0x01, 0x00, 0x01, b'#', 0x00]
        };
        let unsub = &sub[..sub.len() - 1];
        let connect = connect_for(p, 0x02, &field(b"c"));
        for (first, body, flags) in [
            (0x11, &connect[2..], 0x1),           // CONNECT
            (0x28, &[0x00, 0x00][..], 0x8),       // CONNACK
            (0x41, &[0x00, 0x01][..], 0x1),       // PUBACK
            (0x54, &[0x00, 0x01][..], 0x4),       // PUBREC
            (0x60, &[0x00, 0x01][..], 0x0),       // PUBREL without QoS 1
            (0x6A, &[0x00, 0x01][..], 0xA),       // PUBREL with DUP
            (0x63, &[0x00, 0x01][..], 0x3),       // PUBREL QoS 3
            (0x71, &[0x00, 0x01][..], 0x1),       // PUBCOMP
            (0x80, &sub[..], 0x0),                // SUBSCRIBE without QoS 1
            (0x8A, &sub[..], 0xA),                // SUBSCRIBE with DUP
            (0x91, &[0x00, 0x01, 0x00][..], 0x1), // SUBACK
            (0xA0, unsub, 0x0),                   // UNSUBSCRIBE without QoS 1
            (0xA3, unsub, 0x3),                   // UNSUBSCRIBE QoS 3
            (0xB2, &[0x00, 0x01][..], 0x2),       // UNSUBACK
            (0xC1, &[][..], 0x1),                 // PINGREQ
            (0xD8, &[][..], 0x8),                 // PINGRESP
            (0xE1, &[][..], 0x1),                 // DISCONNECT [MQTT-3.14.1-1]
        ] {
            cases.push((p, frame(first, body), flags));
        }
    }
    cases.push((V5, vec![0xF1, 0x00], 0x1)); // AUTH
    // 3.1 fixed the QoS of PUBREL, SUBSCRIBE and UNSUBSCRIBE at 1 as well.
    cases.push((V3_1, vec![0x60, 2, 0x00, 0x01], 0x0));
    cases.push((V3_1, vec![0x84, 6, 0x00, 0x01, 0x00, 0x01, b'#', 0x00], 0x4));
    for (p, bytes, flags) in cases {
        let kind = ErrorKind::InvalidFlags { flags };
        rejects(p, &bytes, kind.clone(), MalformedPacket);
        rejects(p, &bytes[..2], kind, MalformedPacket);
    }
}

#[test]
fn v3_1_pubrel_and_subscribe_may_carry_dup() {
    // The limit of the rule above: 3.1 sent PUBREL, SUBSCRIBE and
    // UNSUBSCRIBE at QoS 1 with DUP set on a resend, so DUP is accepted there.
    let decoded = |bytes: &[u8]| decode(&mut BytesMut::from(bytes), V3_1, MAX_PACKET_SIZE);
    let pubrel = Packet::PubRel(PubResponse::new(1));
    assert_eq!(decoded(&[0x6A, 2, 0x00, 0x01]), Ok(Some(pubrel)));
    #[rustfmt::skip]
    let bytes = [
        0x8A, 6,                                // SUBSCRIBE, DUP, QoS 1
        0x00, 0x01,                             // packet identifier
        0x00, 0x01, b'#',                       // topic filter
        0x01,                                   // requested QoS 1
    ];
    let subscribe = Subscribe {
        packet_id: 1,
        properties: SubscribeProperties::default(),
        filters: vec![Subscription {
            filter: MqttStr::from_static("#"),
            options: SubscribeOptions {
                qos: QoS::AtLeastOnce,
                ..SubscribeOptions::default()
            },
        }],
    };
    assert_eq!(decoded(&bytes), Ok(Some(Packet::Subscribe(subscribe))));
    let unsubscribe = Unsubscribe {
        packet_id: 1,
        properties: UnsubscribeProperties::default(),
        filters: vec![MqttStr::from_static("#")],
    };
    let bytes = [0xAA, 5, 0x00, 0x01, 0x00, 0x01, b'#'];
    assert_eq!(decoded(&bytes), Ok(Some(Packet::Unsubscribe(unsubscribe))));
}

#[test]
fn remaining_length_not_minimal_mqtt_1_5_5_1() {
    // 0 in two bytes, 5 in two and three bytes: refused from the header.
    for p in ALL {
        for bytes in [
            &[0xC0, 0x80, 0x00][..],
            &[0x30, 0x85, 0x00],
            &[0x30, 0x85, 0x80, 0x00],
        ] {
            let kind = ErrorKind::VarIntNotMinimal {
                field: "remaining length",
            };
            rejects(p, bytes, kind, MalformedPacket);
        }
    }
}

#[test]
fn remaining_length_of_five_bytes() {
    // Section 1.5.5: at most four bytes. The fourth byte's continuation bit
    // is enough; the fifth is not waited for.
    for p in ALL {
        for bytes in [
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..],
            &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
            &[0x30, 0x80, 0x80, 0x80, 0x80],
        ] {
            let kind = ErrorKind::VarIntTooLong {
                field: "remaining length",
            };
            rejects(p, bytes, kind, MalformedPacket);
        }
    }
}

#[test]
fn packet_over_the_maximum_is_refused_from_the_fixed_header() {
    // 5.0 sections 3.1.2.11.4 and 4.13: 0x95 Packet too large. Only the
    // fixed header is offered: the check does not wait for the body.
    for p in ALL {
        let mut buf = BytesMut::from(&[0x30, 10][..]);
        let e = decode(&mut buf, p, 11).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PacketTooLarge { size: 12, max: 11 });
        assert_eq!(e.reason_code(), ReasonCode::PacketTooLarge);
        // At the maximum: wait for the body.
        let mut buf = BytesMut::from(&[0x30, 10][..]);
        assert_eq!(decode(&mut buf, p, 12), Ok(None));
        assert_eq!(buf.len(), 2);
        // The largest Remaining Length the format allows.
        let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
        let e = decode(&mut buf, p, 1 << 20).unwrap_err();
        let kind = ErrorKind::PacketTooLarge {
            size: 268_435_460,
            max: 1 << 20,
        };
        assert_eq!(e.kind, kind);
    }
}

#[test]
fn remaining_length_shorter_than_the_fields() {
    use ErrorKind::Truncated;
    let cases: [(Protocol, &[u8], &str); 6] = [
        (V3_1_1, &[0x40, 1, 0x00], "packet identifier"),
        (V3_1_1, &[0x30, 3, 0x00, 0x05, b'a'], "topic name"),
        (
            V3_1_1,
            &[0x32, 4, 0x00, 0x01, b'a', 0x00],
            "packet identifier",
        ),
        (
            V3_1_1,
            &[0x82, 5, 0x00, 0x01, 0x00, 0x01, b'#'],
            "subscription options",
        ),
        (V5, &[0x40, 5, 0x00, 0x01, 0x00, 0x05, 0x1F], "properties"),
        (V5, &[0x30, 4, 0x00, 0x01, b't', 0x80], "property length"),
    ];
    for (p, bytes, field) in cases {
        rejects(p, bytes, Truncated { field }, MalformedPacket);
    }
    // CONNECT that ends after the keep alive.
    for p in ALL {
        let bytes = connect_for(p, 0x02, &[]);
        let kind = Truncated {
            field: "client identifier",
        };
        rejects(p, &bytes, kind, MalformedPacket);
    }
    // The packet ends where the Remaining Length says, even mid-field: the
    // next byte is not read into it.
    let mut buf = BytesMut::from(&[0x40, 1, 0x00, 0x01][..]);
    let e = decode(&mut buf, V3_1_1, MAX_PACKET_SIZE).unwrap_err();
    assert_eq!(
        e.kind,
        Truncated {
            field: "packet identifier"
        }
    );
    assert_eq!(&buf[..], &[0x01]);
}

#[test]
fn remaining_length_longer_than_the_fields() {
    let trailing = ErrorKind::TrailingBytes { count: 1 };
    let cases: [(Protocol, &[u8]); 6] = [
        (V3_1_1, &[0x40, 3, 0x00, 0x01, 0x00]), // PUBACK is 2 bytes before 5.0
        (V3_1_1, &[0x20, 3, 0x00, 0x00, 0x00]), // CONNACK is 2 bytes before 5.0
        (V3_1_1, &[0xB0, 3, 0x00, 0x01, 0x00]), // UNSUBACK is 2 bytes before 5.0
        (V5, &[0xF0, 3, 0x18, 0x00, 0xFF]),     // a byte after the properties
        (V5, &[0x40, 5, 0x00, 0x01, 0x10, 0x00, 0xFF]),
        (V5, &[0x20, 4, 0x00, 0x00, 0x00, 0x00]),
    ];
    for (p, bytes) in cases {
        rejects(p, bytes, trailing.clone(), MalformedPacket);
    }
    for p in ALL {
        // PINGREQ and PINGRESP have no body (sections 3.12, 3.13).
        rejects(p, &[0xC0, 1, 0x00], trailing.clone(), MalformedPacket);
        rejects(p, &[0xD0, 1, 0x00], trailing.clone(), MalformedPacket);
    }
    // CONNECT: see `connect_with_bytes_after_the_last_field_*` at the end.
}

#[test]
fn disconnect_with_a_body_before_v5_mqtt_3_14_1_1() {
    // 3.1.1 section 3.14: no variable header, no payload.
    for p in V3 {
        let kind = ErrorKind::TrailingBytes { count: 1 };
        rejects(p, &[0xE0, 1, 0x00], kind, MalformedPacket);
        let kind = ErrorKind::TrailingBytes { count: 2 };
        rejects(p, &[0xE0, 2, 0x8E, 0x00], kind, MalformedPacket);
    }
}

// --------------------------------------------------------------- PUBLISH

#[test]
fn publish_qos_3_mqtt_3_3_1_4() {
    for p in ALL {
        for first in [0x36, 0x3F] {
            let mut bytes = vec![first, 5, 0x00, 0x01, b't', 0x00, 0x01];
            if p == V5 {
                bytes[1] += 1;
                bytes.push(0x00);
            }
            let kind = ErrorKind::InvalidQoS {
                field: "PUBLISH fixed header",
            };
            rejects(p, &bytes, kind, MalformedPacket);
        }
    }
}

#[test]
fn publish_dup_on_qos_0_mqtt_3_3_1_2() {
    for p in ALL {
        let mut bytes = publish(p, b"t");
        bytes[0] = 0x38;
        rejects(p, &bytes, ErrorKind::DupOnQoS0, MalformedPacket);
    }
}

#[test]
fn packet_identifier_zero_mqtt_2_3_1_1() {
    // 3.1.1 [MQTT-2.3.1-1]; 5.0 [MQTT-2.2.1-3] [MQTT-2.2.1-4]. PUBACK to
    // UNSUBACK echo the identifier of a packet that could not have 0.
    for p in ALL {
        let props: &[u8] = if p == V5 { &[0x00] } else { &[] };
        let mut cases = vec![
            frame(0x32, &[&[0x00, 0x01, b't', 0x00, 0x00][..], props].concat()),
            frame(0x34, &[&[0x00, 0x01, b't', 0x00, 0x00][..], props].concat()),
            frame(
                0x82,
                &[&[0x00, 0x00][..], props, &[0x00, 0x01, b'#', 0x00]].concat(),
            ),
            frame(
                0xA2,
                &[&[0x00, 0x00][..], props, &[0x00, 0x01, b'#']].concat(),
            ),
            frame(0x90, &[&[0x00, 0x00][..], props, &[0x00]].concat()),
            frame(0xB0, &[&[0x00, 0x00][..], props].concat()),
        ];
        for first in [0x40, 0x50, 0x62, 0x70] {
            cases.push(vec![first, 2, 0x00, 0x00]);
        }
        for bytes in cases {
            rejects(p, &bytes, ErrorKind::ZeroPacketId, ProtocolError);
        }
    }
}

#[test]
fn wildcard_in_topic_name_mqtt_3_3_2_2() {
    // 5.0 [MQTT-3.3.2-2] [MQTT-4.7.0-1]; 3.1.1 [MQTT-4.7.1-1].
    for p in ALL {
        for topic in ["a/+", "a/#", "+", "#", "a+b"] {
            let kind = ErrorKind::TopicName {
                topic: topic.to_owned(),
                reason: TopicError::WildcardInName,
            };
            let code = ReasonCode::TopicNameInvalid;
            rejects(p, &publish(p, topic.as_bytes()), kind, code);
        }
    }
}

#[test]
fn empty_topic_name_mqtt_4_7_3_1() {
    for p in V3 {
        let kind = ErrorKind::TopicName {
            topic: String::new(),
            reason: TopicError::Empty,
        };
        rejects(p, &publish(p, b""), kind, ReasonCode::TopicNameInvalid);
    }
    // 5.0 section 3.3.2.3.4: a zero-length Topic Name without a Topic Alias
    // is a Protocol Error.
    let kind = ErrorKind::EmptyTopicWithoutAlias;
    rejects(V5, &publish(V5, b""), kind, ProtocolError);
}

#[test]
fn ill_formed_utf8_in_topic_mqtt_1_5_4_1() {
    // 5.0 [MQTT-1.5.4-1] [MQTT-3.3.2-1]; 3.1.1 [MQTT-1.5.3-1]: a UTF-16
    // surrogate, an overlong '/', a lone continuation byte, a cut sequence.
    for p in ALL {
        for topic in [
            &[0xED, 0xA0, 0x80][..],
            &[0xC0, 0xAF],
            &[0x80],
            &[b'a', 0xE2, 0x82],
        ] {
            let kind = ErrorKind::InvalidUtf8 {
                field: "topic name",
            };
            rejects(p, &publish(p, topic), kind, MalformedPacket);
        }
    }
}

#[test]
fn null_character_mqtt_1_5_4_2() {
    // 5.0 [MQTT-1.5.4-2] [MQTT-4.7.3-2]; 3.1.1 [MQTT-1.5.3-2].
    for p in ALL {
        let kind = |field| ErrorKind::NullCharacter { field };
        let bytes = publish(p, b"a\0b");
        rejects(p, &bytes, kind("topic name"), MalformedPacket);
        let bytes = subscribe(p, b"a/\0", 0x00);
        rejects(p, &bytes, kind("topic filter"), MalformedPacket);
        let bytes = connect_for(p, 0x02, &field(b"c\0"));
        rejects(p, &bytes, kind("client identifier"), MalformedPacket);
    }
    // A User Property value [MQTT-1.5.7-1].
    let bytes = frame(0x40, &[0x00, 0x01, 0x00, 7, 0x26, 0, 1, b'k', 0, 1, 0]);
    let kind = ErrorKind::NullCharacter {
        field: "user property value",
    };
    rejects(V5, &bytes, kind, MalformedPacket);
}

// -------------------------------------------------- SUBSCRIBE, UNSUBSCRIBE

#[test]
fn invalid_topic_filters_mqtt_4_7_1_1() {
    // 3.1.1 [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]; 5.0
    // [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1] [MQTT-4.8.2-1] [MQTT-4.8.2-2].
    let mut cases = vec![
        ("a/b#", TopicError::MultiLevelWildcardPlacement),
        ("#/a", TopicError::MultiLevelWildcardPlacement),
        ("a/#/b", TopicError::MultiLevelWildcardPlacement),
        ("a+", TopicError::SingleLevelWildcardPlacement),
        ("a/+b/c", TopicError::SingleLevelWildcardPlacement),
        ("", TopicError::Empty),
    ];
    for p in ALL {
        if p == V5 {
            cases.push(("$share//a", TopicError::ShareName));
            cases.push(("$share/g+/a", TopicError::ShareName));
            cases.push(("$share/g", TopicError::SharedFilterMissing));
            cases.push(("$share/g/", TopicError::SharedFilterMissing));
        }
        for &(filter, reason) in &cases {
            let kind = ErrorKind::TopicFilter {
                filter: filter.to_owned(),
                reason,
            };
            let code = ReasonCode::TopicFilterInvalid;
            rejects(
                p,
                &subscribe(p, filter.as_bytes(), 0x00),
                kind.clone(),
                code,
            );
            let props: &[u8] = if p == V5 { &[0x00] } else { &[] };
            let body = [&[0x00, 0x01][..], props, &field(filter.as_bytes())].concat();
            rejects(p, &frame(0xA2, &body), kind, code);
        }
    }
}

#[test]
fn subscribe_and_unsubscribe_without_filters_mqtt_3_8_3_2() {
    // 5.0 [MQTT-3.8.3-2] [MQTT-3.10.3-2]; 3.1.1 [MQTT-3.8.3-3]
    // [MQTT-3.10.3-2]. The 5.0 reason code is checked at the end, in
    // `v5_subscribe_without_filters_is_a_protocol_error_*`.
    for p in ALL {
        let props: &[u8] = if p == V5 { &[0x00] } else { &[] };
        let body = [&[0x00, 0x01][..], props].concat();
        let e = error(p, &frame(0x82, &body));
        let kind = ErrorKind::NoTopicFilters {
            packet: "SUBSCRIBE",
        };
        assert_eq!(e.kind, kind, "{p:?}");
        let e = error(p, &frame(0xA2, &body));
        let kind = ErrorKind::NoTopicFilters {
            packet: "UNSUBSCRIBE",
        };
        assert_eq!(e.kind, kind, "{p:?}");
    }
}

#[test]
fn reserved_subscription_option_bits_mqtt_3_8_3_5() {
    // 5.0 [MQTT-3.8.3-5]: bits 6 and 7. 3.1.1 [MQTT-3-8.3-4]: bits 2 to 7,
    // so No Local and the others of 5.0 are reserved there.
    let cases = [
        (V5, 0x40),
        (V5, 0x80),
        (V5, 0xC1),
        (V3_1_1, 0x04),
        (V3_1_1, 0x08),
        (V3_1_1, 0x10),
        (V3_1_1, 0x80),
        (V3_1, 0x04),
    ];
    for (p, options) in cases {
        let kind = ErrorKind::ReservedSubscriptionOptions(options);
        rejects(p, &subscribe(p, b"a", options), kind, MalformedPacket);
    }
    // "$share/..." with No Local in 3.1.1 is a reserved bit, not [MQTT-3.8.3-4].
    let kind = ErrorKind::ReservedSubscriptionOptions(0x04);
    let bytes = subscribe(V3_1_1, b"$share/g/t", 0x04);
    rejects(V3_1_1, &bytes, kind, MalformedPacket);
}

#[test]
fn subscription_qos_3_before_v5_mqtt_3_8_3_4() {
    // 3.1.1 [MQTT-3-8.3-4]: malformed if QoS is not 0, 1 or 2. (5.0 makes
    // it a Protocol Error: see `v5_subscription_qos_3_*` at the end.)
    for p in V3 {
        let kind = ErrorKind::InvalidQoS {
            field: "subscription options",
        };
        rejects(p, &subscribe(p, b"a", 0x03), kind, MalformedPacket);
    }
}

#[test]
fn retain_handling_3() {
    // 5.0 section 3.8.3.1: "It is a Protocol Error to send a Retain
    // Handling value of 3."
    let kind = ErrorKind::InvalidRetainHandling;
    rejects(V5, &subscribe(V5, b"a", 0x30), kind, ProtocolError);
}

#[test]
fn no_local_on_shared_subscription_mqtt_3_8_3_4() {
    let kind = ErrorKind::NoLocalOnSharedSubscription;
    rejects(V5, &subscribe(V5, b"$share/g/t", 0x04), kind, ProtocolError);
}

// --------------------------------------------------------------- CONNECT

#[test]
fn connect_reserved_flag_mqtt_3_1_2_3() {
    for p in ALL {
        let e = error(p, &connect_for(p, 0x03, &field(b"c")));
        assert_eq!(e.kind, ErrorKind::ReservedConnectFlag);
        assert_eq!(e.reason_code(), MalformedPacket);
        assert_eq!(e.packet, Some(PacketType::Connect));
        // The level was read: a server can answer in the client's version.
        assert_eq!(e.protocol, Some(p));
    }
}

#[test]
fn will_qos_or_retain_without_will_flag_mqtt_3_1_2_11() {
    // 3.1.1 [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15];
    // 5.0 [MQTT-3.1.2-11] [MQTT-3.1.2-13].
    for p in ALL {
        for flags in [0x0A, 0x12, 0x22, 0x2A] {
            let bytes = connect_for(p, flags, &field(b"c"));
            rejects(p, &bytes, ErrorKind::WillFlagsWithoutWill, MalformedPacket);
        }
    }
}

#[test]
fn will_qos_3_mqtt_3_1_2_14() {
    // 3.1.1 [MQTT-3.1.2-14]; 5.0 section 3.1.2.6: "A value of 3 (0x03) is a
    // Malformed Packet."
    for p in ALL {
        let will_props: &[u8] = if p == V5 { &[0x00] } else { &[] };
        let payload = [&field(b"c")[..], will_props, &field(b"w"), &field(b"")].concat();
        let bytes = connect_for(p, 0x1E, &payload);
        let kind = ErrorKind::InvalidQoS { field: "will QoS" };
        rejects(p, &bytes, kind, MalformedPacket);
    }
}

#[test]
fn will_topic_with_wildcard() {
    // [MQTT-3.1.3-11] / 3.1.1 [MQTT-3.1.3-10]: the Will Topic is a Topic Name.
    for p in ALL {
        let will_props: &[u8] = if p == V5 { &[0x00] } else { &[] };
        let payload = [&field(b"c")[..], will_props, &field(b"a/#"), &field(b"x")].concat();
        let kind = ErrorKind::TopicName {
            topic: "a/#".to_owned(),
            reason: TopicError::WildcardInName,
        };
        let code = ReasonCode::TopicNameInvalid;
        rejects(p, &connect_for(p, 0x06, &payload), kind, code);
    }
}

#[test]
fn password_without_username_v3_1_1_mqtt_3_1_2_22() {
    let payload = [field(b"c"), field(b"p")].concat();
    let bytes = connect_for(V3_1_1, 0x42, &payload);
    let kind = ErrorKind::PasswordWithoutUsername;
    rejects(V3_1_1, &bytes, kind, MalformedPacket);
}

#[test]
fn wrong_protocol_name_or_level_mqtt_3_1_2_1() {
    // 3.1.1 [MQTT-3.1.2-1] [MQTT-3.1.2-2]; 5.0 [MQTT-3.1.2-1]
    // [MQTT-3.1.2-2]. 3.1.1 answers with return code 0x01.
    use ErrorKind::*;
    let cases: [(&[u8], u8, ErrorKind); 7] = [
        (b"MQTX", 4, InvalidProtocolName("MQTX".to_owned())),
        (b"mqtt", 4, InvalidProtocolName("mqtt".to_owned())),
        (b"MQTT", 6, UnsupportedProtocolLevel(6)),
        (b"MQTT", 0, UnsupportedProtocolLevel(0)),
        (b"MQIsdp", 2, UnsupportedProtocolLevel(2)),
        (
            b"MQTT",
            3,
            ProtocolNameMismatch {
                name: "MQTT",
                level: 3,
            },
        ),
        (
            b"MQIsdp",
            4,
            ProtocolNameMismatch {
                name: "MQIsdp",
                level: 4,
            },
        ),
    ];
    for (name, level, kind) in cases {
        let bytes = connect(name, level, 0x02, &field(b"c"));
        for p in ALL {
            let e = error(p, &bytes);
            assert_eq!(e.kind, kind);
            assert_eq!(e.reason_code(), ReasonCode::UnsupportedProtocolVersion);
            assert_eq!(e.reason_code().to_v3_connect_return_code(), 0x01);
            assert_eq!(e.protocol, None);
        }
    }
}

// ------------------------------------------------------------ properties

#[test]
fn duplicate_property_is_a_protocol_error() {
    // 5.0 section 2.2.2.2 and each property: "It is a Protocol Error to
    // include ... more than once."
    #[rustfmt::skip]
    let cases: [(Vec<u8>, u8); 6] = [
        // PUBLISH, Topic Alias twice.
        (frame(0x30, &[0, 1, b't', 6, 0x23, 0, 1, 0x23, 0, 2]), 0x23),
        // SUBSCRIBE, Subscription Identifier twice.
        (frame(0x82, &[0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'#', 0]), 0x0B),
        // PUBACK, Reason String twice.
        (frame(0x40, &[0, 1, 0, 8, 0x1F, 0, 1, b'a', 0x1F, 0, 1, b'b']), 0x1F),
        // CONNECT, Session Expiry Interval twice.
        (connect(b"MQTT", 5, 0x02, &[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 1, b'c']), 0x11),
        // CONNECT, Will Delay Interval twice in the Will Properties.
        (connect(b"MQTT", 5, 0x06, &[0, 0, 1, b'c',
            10, 0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1, 0, 1, b'w', 0, 0]), 0x18),
        // DISCONNECT, Reason String twice.
        (frame(0xE0, &[0x80, 8, 0x1F, 0, 1, b'a', 0x1F, 0, 1, b'a']), 0x1F),
    ];
    for (bytes, id) in cases {
        let kind = ErrorKind::DuplicateProperty { id };
        rejects(V5, &bytes, kind, ProtocolError);
    }
}

#[test]
fn property_not_allowed_in_packet_is_malformed() {
    // 5.0 section 2.2.2.2: "A Control Packet which contains an Identifier
    // which is not valid for its packet type ... is a Malformed Packet."
    #[rustfmt::skip]
    let cases: [(Vec<u8>, ErrorKind); 7] = [
        // Topic Alias in PUBACK.
        (frame(0x40, &[0, 1, 0, 3, 0x23, 0, 1]), ErrorKind::PropertyNotAllowed { id: 0x23 }),
        // Message Expiry Interval in SUBSCRIBE.
        (frame(0x82, &[0, 1, 5, 0x02, 0, 0, 0, 1, 0, 1, b'#', 0]),
            ErrorKind::PropertyNotAllowed { id: 0x02 }),
        // Subscription Identifier in UNSUBSCRIBE.
        (frame(0xA2, &[0, 1, 2, 0x0B, 1, 0, 1, b'#']), ErrorKind::PropertyNotAllowed { id: 0x0B }),
        // Session Expiry Interval in PUBLISH.
        (frame(0x30, &[0, 1, b't', 5, 0x11, 0, 0, 0, 1]),
            ErrorKind::PropertyNotAllowed { id: 0x11 }),
        // Will Delay Interval among the CONNECT properties.
        (connect(b"MQTT", 5, 0x02, &[5, 0x18, 0, 0, 0, 1, 0, 1, b'c']),
            ErrorKind::PropertyNotAllowed { id: 0x18 }),
        // Receive Maximum in DISCONNECT.
        (frame(0xE0, &[0x00, 3, 0x21, 0, 1]), ErrorKind::PropertyNotAllowed { id: 0x21 }),
        // 0x05 is no property at all.
        (frame(0x40, &[0, 1, 0, 2, 0x05, 0]), ErrorKind::UnknownProperty { id: 0x05 }),
    ];
    for (bytes, kind) in cases {
        rejects(V5, &bytes, kind, MalformedPacket);
    }
}

#[test]
fn property_values_out_of_range_are_protocol_errors() {
    // 5.0 sections 3.1.2.11.3 (Receive Maximum 0), 3.1.2.11.4 (Maximum
    // Packet Size 0), 3.1.2.11.7 (Request Problem Information 2),
    // 3.2.2.3.4 (Maximum QoS 2), 3.3.2.3.8 and 3.8.2.1.2 (Subscription
    // Identifier 0).
    let bad = |id, value| ErrorKind::InvalidPropertyValue { id, value };
    #[rustfmt::skip]
    let cases: [(Vec<u8>, ErrorKind); 6] = [
        (connect(b"MQTT", 5, 0x02, &[3, 0x21, 0, 0, 0, 1, b'c']), bad(0x21, 0)),
        (connect(b"MQTT", 5, 0x02, &[5, 0x27, 0, 0, 0, 0, 0, 1, b'c']), bad(0x27, 0)),
        (connect(b"MQTT", 5, 0x02, &[2, 0x17, 2, 0, 1, b'c']), bad(0x17, 2)),
        (frame(0x20, &[0, 0, 2, 0x24, 2]), bad(0x24, 2)),
        (frame(0x30, &[0, 1, b't', 2, 0x0B, 0]), bad(0x0B, 0)),
        (frame(0x82, &[0, 1, 2, 0x0B, 0, 0, 1, b'#', 0]), bad(0x0B, 0)),
    ];
    for (bytes, kind) in cases {
        rejects(V5, &bytes, kind, ProtocolError);
    }
}

#[test]
fn property_variable_byte_integers_mqtt_1_5_5_1() {
    let not_minimal = |field| ErrorKind::VarIntNotMinimal { field };
    // Property Length 0 in two bytes.
    let bytes = frame(0x40, &[0, 1, 0x00, 0x80, 0x00]);
    rejects(V5, &bytes, not_minimal("property length"), MalformedPacket);
    // Subscription Identifier 1 in two bytes.
    let bytes = frame(0x30, &[0, 1, b't', 3, 0x0B, 0x81, 0x00]);
    let kind = not_minimal("subscription identifier");
    rejects(V5, &bytes, kind, MalformedPacket);
    // Property Length in five bytes.
    let bytes = frame(0x40, &[0, 1, 0x00, 0x80, 0x80, 0x80, 0x80, 0x01]);
    let kind = ErrorKind::VarIntTooLong {
        field: "property length",
    };
    rejects(V5, &bytes, kind, MalformedPacket);
}

// ---------------------------------------------------------- reason codes

#[test]
fn reason_codes_not_allowed_in_the_packet() {
    // 5.0 [MQTT-3.2.2-8] [MQTT-3.4.2-1] [MQTT-3.9.3-2] [MQTT-3.15.2-1] and
    // the tables of sections 3.5.2.1 to 3.14.2.1.
    let cases: [(u8, &[u8], u8); 9] = [
        (0x20, &[0x00, 0x8E, 0x00], 0x8E), // CONNACK: session taken over
        (0x40, &[0, 1, 0x92], 0x92),       // PUBACK: packet id not found
        (0x50, &[0, 1, 0x04], 0x04),       // PUBREC: with will message
        (0x62, &[0, 1, 0x10], 0x10),       // PUBREL: no matching subscribers
        (0x70, &[0, 1, 0x80], 0x80),       // PUBCOMP: unspecified error
        (0x90, &[0, 1, 0, 0x11], 0x11),    // SUBACK: no subscription existed
        (0xB0, &[0, 1, 0, 0x01], 0x01),    // UNSUBACK: granted QoS 1
        (0xE0, &[0x84], 0x84),             // DISCONNECT: unsupported version
        (0xF0, &[0x01], 0x01),             // AUTH: granted QoS 1
    ];
    for (first, body, value) in cases {
        let kind = ErrorKind::InvalidReasonCode { value };
        rejects(V5, &frame(first, body), kind, MalformedPacket);
    }
    // 3.1.1 table 3.1: return codes 6 to 255 are reserved.
    let kind = ErrorKind::InvalidReturnCode { value: 6 };
    rejects(V3_1_1, &[0x20, 2, 0x00, 0x06], kind, MalformedPacket);
    // 3.1.1 [MQTT-3.9.3-2]: SUBACK return codes other than 0, 1, 2, 0x80.
    let kind = ErrorKind::InvalidSubAckCode { value: 0x03 };
    rejects(V3_1_1, &[0x90, 3, 0x00, 0x01, 0x03], kind, MalformedPacket);
}

#[test]
fn connack_reserved_acknowledge_flags_mqtt_3_2_2_1() {
    // 5.0 [MQTT-3.2.2-1]; 3.1.1 section 3.2.2.1: bits 7-1 are reserved.
    for (p, bytes) in [
        (V3_1_1, &[0x20, 2, 0x02, 0x00][..]),
        (V3_1_1, &[0x20, 2, 0x81, 0x00]),
        (V5, &[0x20, 3, 0x02, 0x00, 0x00]),
    ] {
        let kind = ErrorKind::ReservedConnAckFlags(bytes[2]);
        rejects(p, bytes, kind, MalformedPacket);
    }
}

// ------------------------------- departures these vectors found in the codec

#[test]
fn v5_subscribe_without_filters_is_a_protocol_error_mqtt_3_8_3_2() {
    // 5.0 section 3.8.3: "A SUBSCRIBE packet with no Payload is a Protocol
    // Error." Section 3.10.3: "An UNSUBSCRIBE packet with no Payload is a
    // Protocol Error."
    let kind = ErrorKind::NoTopicFilters {
        packet: "SUBSCRIBE",
    };
    rejects(V5, &[0x82, 3, 0x00, 0x01, 0x00], kind, ProtocolError);
    let kind = ErrorKind::NoTopicFilters {
        packet: "UNSUBSCRIBE",
    };
    rejects(V5, &[0xA2, 3, 0x00, 0x01, 0x00], kind, ProtocolError);
}

#[test]
fn v5_subscription_qos_3_is_a_protocol_error() {
    // 5.0 section 3.8.3.1: "It is a Protocol Error if the Maximum QoS field
    // has the value 3."
    let kind = ErrorKind::SubscriptionQoS3;
    rejects(V5, &subscribe(V5, b"a", 0x03), kind, ProtocolError);
}

#[test]
fn v5_connect_authentication_data_without_method_is_a_protocol_error() {
    // 5.0 section 3.1.2.11.10: "It is a Protocol Error to include
    // Authentication Data if there is no Authentication Method."
    let bytes = connect(b"MQTT", 5, 0x02, &[4, 0x16, 0, 1, 0xAA, 0, 1, b'c']);
    let kind = ErrorKind::AuthenticationDataWithoutMethod;
    rejects(V5, &bytes, kind, ProtocolError);
}

#[test]
fn connect_with_bytes_after_the_last_field_is_malformed_mqtt_3_1_4_1() {
    // [MQTT-3.1.4-1] (3.1.1 and 5.0): the CONNECT must match the format of
    // section 3.1, whose Remaining Length counts exactly the variable header
    // and the payload fields the flags announce; with the User Name and
    // Password flags 0 nothing may follow the last field (5.0
    // [MQTT-3.1.2-16] [MQTT-3.1.2-18]; 3.1.1 [MQTT-3.1.2-18] [MQTT-3.1.2-20]).
    for p in ALL {
        let bytes = connect_for(p, 0x02, &[0x00, 0x01, b'c', 0xFF]);
        let e = error(p, &bytes);
        assert_eq!(e.kind, ErrorKind::TrailingBytes { count: 1 }, "{p:?}");
        assert_eq!(e.reason_code(), MalformedPacket);
        assert_eq!(e.protocol, Some(p));
    }
}
