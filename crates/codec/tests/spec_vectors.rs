//! Byte-exact vectors for every control packet in every protocol version it
//! exists in, written by hand from the packet layouts of the MQTT 3.1.1 and
//! 5.0 specifications (fixed header, Remaining Length, variable header,
//! properties, payload), not from our encoder's output.
//!
//! Each vector is checked both ways: the bytes decode to the packet built
//! here by hand, and that packet encodes to exactly the bytes. Every vector
//! is also cut at every length (a strict prefix is `Ok(None)` and consumes
//! nothing), sent twice back to back (one decode takes one packet), and held
//! to a Maximum Packet Size one byte too small (refused from the fixed
//! header alone).
//!
//! The spec leaves the order of properties free. The vectors list them in
//! the order our encoder writes them (the declaration order of each property
//! struct, User Properties last), and `v5_properties_decode_in_any_order`
//! shows that decoding does not depend on it. Where the spec allows two
//! encodings of one packet, the other one is a decode-only vector.
//!
//! Malformed inputs are in `spec_errors.rs`.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use strata_codec::packet::RetainHandling;
use strata_codec::*;

const V3: [Protocol; 2] = [Protocol::V3_1, Protocol::V3_1_1];
const ALL: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];

fn s(v: &'static str) -> MqttStr {
    MqttStr::from_static(v)
}

fn bin(v: &'static [u8]) -> Bytes {
    Bytes::from_static(v)
}

fn user(k: &'static str, v: &'static str) -> (MqttStr, MqttStr) {
    (s(k), s(v))
}

/// The packet length the vector itself declares: the first byte, the
/// Remaining Length (section 2.1.4; 3.1.1 section 2.2.3) and what it
/// counts. Read here without the codec, so a miscounted vector fails on its
/// own instead of agreeing with a wrong codec.
fn declared_len(bytes: &[u8]) -> (usize, usize) {
    let mut value = 0;
    for (i, &b) in bytes[1..].iter().enumerate().take(4) {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return (2 + i, 2 + i + value);
        }
    }
    panic!("the vector has no Remaining Length: {bytes:02x?}");
}

/// Decodes `bytes` to `packet` and encodes `packet` to `bytes`.
#[track_caller]
fn vector(p: Protocol, bytes: &[u8], packet: Packet) {
    decodes_to(p, bytes, &packet);
    let mut out = BytesMut::new();
    let n = packet.encode(p, &mut out).unwrap();
    assert!(
        out[..] == *bytes,
        "{p:?}: encoded\n  {:02x?}\nexpected\n  {bytes:02x?}",
        &out[..]
    );
    assert_eq!(n, bytes.len(), "{p:?}: returned length");
    assert_eq!(packet.encoded_len(p).unwrap(), bytes.len(), "{p:?}");
}

/// Decodes `bytes` to `packet`, whole, in prefixes, and twice in a row.
#[track_caller]
fn decodes_to(p: Protocol, bytes: &[u8], packet: &Packet) {
    let (header_len, len) = declared_len(bytes);
    assert_eq!(len, bytes.len(), "the vector's Remaining Length is wrong");
    let mut buf = BytesMut::from(bytes);
    let got = decode(&mut buf, p, MAX_PACKET_SIZE);
    assert_eq!(got, Ok(Some(packet.clone())), "{p:?}: {bytes:02x?}");
    assert!(buf.is_empty(), "{p:?}: {} bytes left over", buf.len());

    // The maximum counts the whole packet, fixed header included.
    let mut buf = BytesMut::from(bytes);
    let got = decode(&mut buf, p, bytes.len());
    assert_eq!(got, Ok(Some(packet.clone())), "{p:?}: at the maximum");
    let mut buf = BytesMut::from(&bytes[..header_len]);
    let err = decode(&mut buf, p, bytes.len() - 1).unwrap_err();
    let too_large = ErrorKind::PacketTooLarge {
        size: bytes.len(),
        max: bytes.len() - 1,
    };
    assert_eq!(err.kind, too_large, "{p:?}: over the maximum");

    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        let got = decode(&mut buf, p, MAX_PACKET_SIZE);
        assert_eq!(got, Ok(None), "{p:?}: prefix of {cut} bytes");
        assert_eq!(buf.len(), cut, "{p:?}: prefix of {cut} bytes consumed");
    }

    let mut buf = BytesMut::from(bytes);
    buf.extend_from_slice(bytes);
    let got = decode(&mut buf, p, MAX_PACKET_SIZE);
    assert_eq!(got, Ok(Some(packet.clone())), "{p:?}: first of two");
    assert!(buf[..] == *bytes, "{p:?}: took more than one packet");
    let got = decode(&mut buf, p, MAX_PACKET_SIZE);
    assert_eq!(got, Ok(Some(packet.clone())), "{p:?}: second of two");
    assert!(buf.is_empty());
}

/// Clean start, keep alive 60 s, nothing else.
fn connect(p: Protocol, client_id: &'static str) -> Connect {
    Connect::new(p, s(client_id))
}

// ---------------------------------------------------------------- CONNECT

#[test]
fn connect_v3_1_mqisdp_with_will_username_password() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 31,                                       // CONNECT, Remaining Length
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp"
        0x03,                                           // protocol version 3
        0xCE,       // user name, password, will QoS 1, will flag, clean session
        0x00, 0x0A,                                     // keep alive 10 s
        0x00, 0x02, b'c', b'1',                         // client identifier
        0x00, 0x01, b'w',                               // will topic
        0x00, 0x03, b'b', b'y', b'e',                   // will message
        0x00, 0x01, b'u',                               // user name
        0x00, 0x02, b'p', b'w',                         // password
    ];
    let packet = Connect {
        keep_alive: 10,
        will: Some(LastWill {
            topic: s("w"),
            payload: bin(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: Some(s("u")),
        password: Some(bin(b"pw")),
        ..connect(Protocol::V3_1, "c1")
    };
    // CONNECT carries its own level: the connection's does not matter.
    for p in ALL {
        vector(p, &bytes, Packet::Connect(Box::new(packet.clone())));
    }
}

#[test]
fn connect_v3_1_1_minimal_with_empty_client_id() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 12,                               // CONNECT, Remaining Length
        0x00, 0x04, b'M', b'Q', b'T', b'T',     // protocol name
        0x04,                                   // protocol level 4
        0x02,                                   // clean session
        0x00, 0x3C,                             // keep alive 60 s
        0x00, 0x00,                             // empty client identifier [MQTT-3.1.3-6]
    ];
    let packet = connect(Protocol::V3_1_1, "");
    vector(Protocol::V3_1_1, &bytes, Packet::Connect(Box::new(packet)));
}

#[test]
fn connect_v3_1_1_will_qos2_retain_username_password() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 34,                               // CONNECT, Remaining Length
        0x00, 0x04, b'M', b'Q', b'T', b'T',     // protocol name
        0x04,                                   // protocol level 4
        0xF4,   // user name, password, will retain, will QoS 2, will flag; no clean session
        0x00, 0x00,                             // keep alive off
        0x00, 0x02, b'i', b'd',                 // client identifier
        0x00, 0x03, b'a', b'/', b'b',           // will topic
        0x00, 0x03, 0x00, 0xFF, 0x7F,           // will message (binary)
        0x00, 0x04, b'u', b's', b'e', b'r',     // user name
        0x00, 0x02, 0x01, 0x02,                 // password (binary)
    ];
    let packet = Connect {
        clean_start: false,
        keep_alive: 0,
        will: Some(LastWill {
            topic: s("a/b"),
            payload: bin(&[0x00, 0xFF, 0x7F]),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some(s("user")),
        password: Some(bin(&[1, 2])),
        ..connect(Protocol::V3_1_1, "id")
    };
    vector(Protocol::V3_1_1, &bytes, Packet::Connect(Box::new(packet)));
}

#[test]
fn connect_v5_with_properties_will_properties_username_password() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 107,                              // CONNECT, Remaining Length
        0x00, 0x04, b'M', b'Q', b'T', b'T',     // protocol name
        0x05,                                   // protocol version 5
        0xCE,       // user name, password, will QoS 1, will flag, clean start
        0x00, 0x1E,                             // keep alive 30 s
        40,                                     // property length
        0x11, 0x00, 0x00, 0x0E, 0x10,           // session expiry interval 3600
        0x21, 0x00, 0x14,                       // receive maximum 20
        0x27, 0x00, 0x00, 0x10, 0x00,           // maximum packet size 4096
        0x22, 0x00, 0x0A,                       // topic alias maximum 10
        0x19, 0x01,                             // request response information
        0x17, 0x00,                             // request problem information off
        0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method
        0x16, 0x00, 0x02, 0xDE, 0xAD,           // authentication data
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x00, 0x03, b'c', b'i', b'd',           // client identifier
        33,                                     // will property length
        0x01, 0x01,                             // payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x3C,           // message expiry interval 60
        0x03, 0x00, 0x03, b't', b'/', b'p',     // content type
        0x08, 0x00, 0x01, b'r',                 // response topic
        0x09, 0x00, 0x01, 0x01,                 // correlation data
        0x18, 0x00, 0x00, 0x00, 0x05,           // will delay interval 5
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
        0x00, 0x03, b'w', b'/', b't',           // will topic
        0x00, 0x04, b'g', b'o', b'n', b'e',     // will payload
        0x00, 0x01, b'u',                       // user name
        0x00, 0x01, b'p',                       // password
    ];
    let packet = Connect {
        keep_alive: 30,
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(20),
            maximum_packet_size: Some(4096),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(bin(&[0xDE, 0xAD])),
            user_properties: vec![user("k", "v")],
        },
        will: Some(LastWill {
            topic: s("w/t"),
            payload: bin(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                content_type: Some(s("t/p")),
                response_topic: Some(s("r")),
                correlation_data: Some(bin(&[0x01])),
                will_delay_interval: Some(5),
                user_properties: vec![user("a", "b")],
            },
        }),
        username: Some(s("u")),
        password: Some(bin(b"p")),
        ..connect(Protocol::V5, "cid")
    };
    vector(Protocol::V5, &bytes, Packet::Connect(Box::new(packet)));
}

#[test]
fn connect_v5_password_without_username() {
    // 5.0 section 3.1.2.9 allows a password without a user name.
    #[rustfmt::skip]
    let bytes = [
        0x10, 19,                               // CONNECT, Remaining Length
        0x00, 0x04, b'M', b'Q', b'T', b'T',     // protocol name
        0x05,                                   // protocol version 5
        0x42,                                   // password, clean start; no user name
        0x00, 0x00,                             // keep alive off
        0x00,                                   // property length
        0x00, 0x01, b'x',                       // client identifier
        0x00, 0x03, 0x01, 0x02, 0x03,           // password
    ];
    let packet = Connect {
        keep_alive: 0,
        password: Some(bin(&[1, 2, 3])),
        ..connect(Protocol::V5, "x")
    };
    vector(Protocol::V5, &bytes, Packet::Connect(Box::new(packet)));
}

// ---------------------------------------------------------------- CONNACK

fn connack(session_present: bool, code: ReasonCode, properties: ConnAckProperties) -> Packet {
    Packet::ConnAck(Box::new(ConnAck {
        session_present,
        code,
        properties,
    }))
}

#[test]
fn connack_v3_return_codes() {
    // 3.1.1 table 3.1, the same values as 3.1.
    let codes = [
        (0x00, ReasonCode::Success),
        (0x01, ReasonCode::UnsupportedProtocolVersion),
        (0x02, ReasonCode::ClientIdentifierNotValid),
        (0x03, ReasonCode::ServerUnavailable),
        (0x04, ReasonCode::BadUserNameOrPassword),
        (0x05, ReasonCode::NotAuthorized),
    ];
    for p in V3 {
        for (raw, code) in codes {
            // CONNACK, Remaining Length 2, acknowledge flags, return code
            let packet = connack(false, code, ConnAckProperties::default());
            vector(p, &[0x20, 2, 0x00, raw], packet);
        }
    }
    // 3.1.1 Session Present (3.1 has no such flag).
    let packet = connack(true, ReasonCode::Success, ConnAckProperties::default());
    vector(Protocol::V3_1_1, &[0x20, 2, 0x01, 0x00], packet);
}

#[test]
fn connack_v5_with_properties() {
    // CONNACK, Remaining Length 3, flags, reason code, property length 0
    let packet = connack(false, ReasonCode::Success, ConnAckProperties::default());
    vector(Protocol::V5, &[0x20, 3, 0x00, 0x00, 0x00], packet);

    #[rustfmt::skip]
    let bytes = [
        0x20, 52,                               // CONNACK, Remaining Length
        0x01,                                   // session present
        0x00,                                   // reason code: success
        49,                                     // property length
        0x11, 0x00, 0x00, 0x00, 0x78,           // session expiry interval 120
        0x12, 0x00, 0x05, b'g', b'e', b'n', b'-', b'1', // assigned client identifier
        0x13, 0x00, 0x1E,                       // server keep alive 30
        0x1F, 0x00, 0x02, b'o', b'k',           // reason string
        0x21, 0x00, 0x0A,                       // receive maximum 10
        0x22, 0x00, 0x05,                       // topic alias maximum 5
        0x24, 0x01,                             // maximum QoS 1
        0x25, 0x00,                             // retain not available
        0x27, 0x00, 0x01, 0x00, 0x00,           // maximum packet size 65536
        0x28, 0x01,                             // wildcard subscriptions available
        0x29, 0x00,                             // subscription identifiers not available
        0x2A, 0x01,                             // shared subscriptions available
        0x26, 0x00, 0x01, b'x', 0x00, 0x01, b'y', // user property x=y
    ];
    let properties = ConnAckProperties {
        session_expiry_interval: Some(120),
        assigned_client_identifier: Some(s("gen-1")),
        server_keep_alive: Some(30),
        reason_string: Some(s("ok")),
        receive_maximum: Some(10),
        topic_alias_maximum: Some(5),
        maximum_qos: Some(QoS::AtLeastOnce),
        retain_available: Some(false),
        maximum_packet_size: Some(65536),
        wildcard_subscription_available: Some(true),
        subscription_identifiers_available: Some(false),
        shared_subscription_available: Some(true),
        user_properties: vec![user("x", "y")],
        ..ConnAckProperties::default()
    };
    let packet = connack(true, ReasonCode::Success, properties);
    vector(Protocol::V5, &bytes, packet);
}

#[test]
fn connack_v5_failure_with_server_reference_and_auth() {
    #[rustfmt::skip]
    let bytes = [
        0x20, 24,                               // CONNACK, Remaining Length
        0x00,                                   // no session present [MQTT-3.2.2-6]
        0x9C,                                   // reason code: use another server
        21,                                     // property length
        0x15, 0x00, 0x01, b'm',                 // authentication method
        0x16, 0x00, 0x01, 0x00,                 // authentication data
        0x1A, 0x00, 0x02, b'r', b'i',           // response information
        0x1C, 0x00, 0x05, b'o', b't', b'h', b'e', b'r', // server reference
    ];
    let properties = ConnAckProperties {
        authentication_method: Some(s("m")),
        authentication_data: Some(bin(&[0x00])),
        response_information: Some(s("ri")),
        server_reference: Some(s("other")),
        ..ConnAckProperties::default()
    };
    let packet = connack(false, ReasonCode::UseAnotherServer, properties);
    vector(Protocol::V5, &bytes, packet);
}

// ---------------------------------------------------------------- PUBLISH

fn publish(topic: &'static str, qos: QoS, packet_id: u16, payload: &'static [u8]) -> Publish {
    Publish {
        packet_id,
        ..Publish::new(s(topic), qos, bin(payload))
    }
}

#[test]
fn publish_v3_qos_dup_retain() {
    #[rustfmt::skip]
    let cases: [(&[u8], Publish); 5] = [
        (&[
            0x30, 7,                            // PUBLISH QoS 0, Remaining Length
            0x00, 0x03, b'a', b'/', b'b',       // topic name
            b'h', b'i',                         // payload
        ], publish("a/b", QoS::AtMostOnce, 0, b"hi")),
        (&[
            0x33, 6,                            // PUBLISH QoS 1, retain
            0x00, 0x01, b't',                   // topic name
            0x00, 0x0A,                         // packet identifier 10
            b'x',                               // payload
        ], Publish { retain: true, ..publish("t", QoS::AtLeastOnce, 10, b"x") }),
        (&[
            0x3A, 5,                            // PUBLISH QoS 1, DUP
            0x00, 0x01, b't',                   // topic name
            0xFF, 0xFF,                         // packet identifier 65535
        ], Publish { dup: true, ..publish("t", QoS::AtLeastOnce, 0xFFFF, b"") }),
        (&[
            0x34, 6,                            // PUBLISH QoS 2
            0x00, 0x01, b't',                   // topic name
            0x00, 0x01,                         // packet identifier 1
            0x00,                               // payload
        ], publish("t", QoS::ExactlyOnce, 1, &[0])),
        (&[
            0x3D, 5,                            // PUBLISH QoS 2, DUP, retain
            0x00, 0x01, b't',                   // topic name
            0x12, 0x34,                         // packet identifier
        ], Publish { dup: true, retain: true, ..publish("t", QoS::ExactlyOnce, 0x1234, b"") }),
    ];
    for p in V3 {
        for (bytes, packet) in &cases {
            vector(p, bytes, Packet::Publish(packet.clone()));
        }
    }
}

#[test]
fn publish_with_two_byte_remaining_length() {
    static PAYLOAD: [u8; 200] = [0xAB; 200];
    for p in ALL {
        // PUBLISH QoS 0, Remaining Length 203 = 0xCB 0x01 (section 1.5.5)
        let mut bytes = vec![0x30, 0xCB, 0x01];
        bytes.extend_from_slice(&[0x00, 0x01, b't']); // topic name
        if p == Protocol::V5 {
            bytes[1] += 1; // one more byte: property length 0
            bytes.push(0x00);
        }
        bytes.extend_from_slice(&PAYLOAD);
        let packet = publish("t", QoS::AtMostOnce, 0, &PAYLOAD);
        vector(p, &bytes, Packet::Publish(packet));
    }
}

#[test]
fn publish_v5_without_properties() {
    #[rustfmt::skip]
    let cases: [(&[u8], Publish); 2] = [
        (&[
            0x30, 5,                            // PUBLISH QoS 0
            0x00, 0x01, b't',                   // topic name
            0x00,                               // property length
            b'p',                               // payload
        ], publish("t", QoS::AtMostOnce, 0, b"p")),
        (&[
            0x3D, 6,                            // PUBLISH QoS 2, DUP, retain
            0x00, 0x01, b't',                   // topic name
            0x00, 0x09,                         // packet identifier 9
            0x00,                               // property length
        ], Publish { dup: true, retain: true, ..publish("t", QoS::ExactlyOnce, 9, b"") }),
    ];
    for (bytes, packet) in cases {
        vector(Protocol::V5, bytes, Packet::Publish(packet));
    }
}

#[test]
fn publish_v5_with_all_properties_and_subscription_identifiers() {
    #[rustfmt::skip]
    let bytes = [
        0x32, 63,                               // PUBLISH QoS 1, Remaining Length
        0x00, 0x03, b's', b'/', b'1',           // topic name
        0x00, 0x07,                             // packet identifier 7
        53,                                     // property length
        0x01, 0x01,                             // payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x01, 0x2C,           // message expiry interval 300
        0x03, 0x00, 0x04, b'j', b's', b'o', b'n', // content type
        0x08, 0x00, 0x04, b'r', b'e', b's', b'p', // response topic
        0x09, 0x00, 0x02, 0xCA, 0xFE,           // correlation data
        0x23, 0x00, 0x03,                       // topic alias 3
        0x0B, 0x01,                             // subscription identifier 1
        0x0B, 0x80, 0x01,                       // subscription identifier 128
        0x0B, 0xFF, 0xFF, 0xFF, 0x7F,           // subscription identifier 268,435,455
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'1', // user property a=1
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'2', // user property a=2, same name
        b'{', b'}',                             // payload
    ];
    let packet = Publish {
        properties: PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(300),
            content_type: Some(s("json")),
            response_topic: Some(s("resp")),
            correlation_data: Some(bin(&[0xCA, 0xFE])),
            topic_alias: Some(3),
            subscription_identifiers: vec![1, 128, 268_435_455],
            // In order [MQTT-3.3.2-18].
            user_properties: vec![user("a", "1"), user("a", "2")],
        }
        .into(),
        ..publish("s/1", QoS::AtLeastOnce, 7, b"{}")
    };
    vector(Protocol::V5, &bytes, Packet::Publish(packet));
}

#[test]
fn publish_v5_empty_topic_with_topic_alias() {
    // 5.0 section 3.3.2.3.4: a zero-length Topic Name with a Topic Alias.
    #[rustfmt::skip]
    let bytes = [
        0x30, 7,                                // PUBLISH QoS 0
        0x00, 0x00,                             // topic name: empty
        0x03,                                   // property length
        0x23, 0x00, 0x05,                       // topic alias 5
        b'z',                                   // payload
    ];
    let mut packet = publish("", QoS::AtMostOnce, 0, b"z");
    packet.properties.topic_alias = Some(5);
    vector(Protocol::V5, &bytes, Packet::Publish(packet));
}

#[test]
fn v5_properties_decode_in_any_order() {
    #[rustfmt::skip]
    let bytes = [
        0x30, 18,                               // PUBLISH QoS 0
        0x00, 0x01, b't',                       // topic name
        14,                                     // property length
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property first
        0x23, 0x00, 0x02,                       // topic alias 2
        0x0B, 0x05,                             // subscription identifier 5
        0x01, 0x00,                             // payload format indicator last
    ];
    let mut packet = publish("t", QoS::AtMostOnce, 0, b"");
    packet.properties = PublishProperties {
        payload_format_indicator: Some(0),
        topic_alias: Some(2),
        subscription_identifiers: vec![5],
        user_properties: vec![user("k", "v")],
        ..PublishProperties::default()
    }
    .into();
    decodes_to(Protocol::V5, &bytes, &Packet::Publish(packet));
}

// ------------------------------------------ PUBACK, PUBREC, PUBREL, PUBCOMP

fn reason_string(v: &'static str) -> AckProperties {
    AckProperties {
        reason_string: Some(s(v)),
        ..AckProperties::default()
    }
}

fn ack(packet_id: u16, reason: ReasonCode, properties: AckProperties) -> PubResponse {
    PubResponse {
        packet_id,
        reason,
        properties,
    }
}

#[test]
fn pub_responses_v3() {
    // Fixed header (PUBREL flags 0b0010), Remaining Length 2, packet identifier.
    for p in V3 {
        let id = PubResponse::new;
        vector(p, &[0x40, 2, 0x00, 0x01], Packet::PubAck(id(1)));
        vector(p, &[0x50, 2, 0x00, 0x02], Packet::PubRec(id(2)));
        vector(p, &[0x62, 2, 0x00, 0x03], Packet::PubRel(id(3)));
        vector(p, &[0x70, 2, 0xAB, 0xCD], Packet::PubComp(id(0xABCD)));
    }
}

#[test]
fn pub_responses_v5_two_byte_form() {
    // Remaining Length 2: reason code 0x00 and no properties (3.4.2.1).
    let id = PubResponse::new(0x1234);
    let p = Protocol::V5;
    vector(p, &[0x40, 2, 0x12, 0x34], Packet::PubAck(id.clone()));
    vector(p, &[0x50, 2, 0x12, 0x34], Packet::PubRec(id.clone()));
    vector(p, &[0x62, 2, 0x12, 0x34], Packet::PubRel(id.clone()));
    vector(p, &[0x70, 2, 0x12, 0x34], Packet::PubComp(id));
}

#[test]
fn pub_responses_v5_reason_code_only() {
    // Remaining Length 3: packet identifier and reason code; no Property
    // Length when the Remaining Length is under 4 (3.4.2.2.1).
    let p = Protocol::V5;
    let none = AckProperties::default;
    use ReasonCode::*;
    let puback = ack(5, NoMatchingSubscribers, none());
    vector(p, &[0x40, 3, 0x00, 0x05, 0x10], Packet::PubAck(puback));
    let pubrec = ack(6, QuotaExceeded, none());
    vector(p, &[0x50, 3, 0x00, 0x06, 0x97], Packet::PubRec(pubrec));
    let pubrel = ack(7, PacketIdentifierNotFound, none());
    vector(p, &[0x62, 3, 0x00, 0x07, 0x92], Packet::PubRel(pubrel));
    let pubcomp = ack(8, PacketIdentifierNotFound, none());
    vector(p, &[0x70, 3, 0x00, 0x08, 0x92], Packet::PubComp(pubcomp));
}

#[test]
fn pub_responses_v5_with_properties() {
    let p = Protocol::V5;
    #[rustfmt::skip]
    let bytes = [
        0x40, 17,                               // PUBACK, Remaining Length
        0x00, 0x09,                             // packet identifier
        0x87,                                   // reason code: not authorized
        13,                                     // property length
        0x1F, 0x00, 0x03, b'b', b'a', b'd',     // reason string
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
    ];
    let props = AckProperties {
        reason_string: Some(s("bad")),
        user_properties: vec![user("k", "v")],
    };
    let puback = ack(9, ReasonCode::NotAuthorized, props);
    vector(p, &bytes, Packet::PubAck(puback));

    #[rustfmt::skip]
    let bytes = [
        0x50, 9,                                // PUBREC, Remaining Length
        0x00, 0x0A,                             // packet identifier
        0x80,                                   // reason code: unspecified error
        5,                                      // property length
        0x1F, 0x00, 0x02, b'n', b'o',           // reason string
    ];
    let pubrec = ack(10, ReasonCode::UnspecifiedError, reason_string("no"));
    vector(p, &bytes, Packet::PubRec(pubrec));

    #[rustfmt::skip]
    let bytes = [
        0x62, 11,                               // PUBREL, Remaining Length
        0x00, 0x0B,                             // packet identifier
        0x00,                                   // reason code: success
        7,                                      // property length
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
    ];
    let props = AckProperties {
        user_properties: vec![user("k", "v")],
        ..AckProperties::default()
    };
    let pubrel = ack(11, ReasonCode::Success, props);
    vector(p, &bytes, Packet::PubRel(pubrel));

    #[rustfmt::skip]
    let bytes = [
        0x70, 11,                               // PUBCOMP, Remaining Length
        0x00, 0x0C,                             // packet identifier
        0x92,                                   // reason code: packet identifier not found
        7,                                      // property length
        0x1F, 0x00, 0x04, b'g', b'o', b'n', b'e', // reason string
    ];
    let props = reason_string("gone");
    let pubcomp = ack(12, ReasonCode::PacketIdentifierNotFound, props);
    vector(p, &bytes, Packet::PubComp(pubcomp));
}

#[test]
fn pub_responses_v5_longer_forms_of_the_same_packet() {
    // Valid but not the shortest: the encoder writes the forms above.
    let p = Protocol::V5;
    // Reason code 0x00 spelled out (Remaining Length 3).
    let puback = Packet::PubAck(PubResponse::new(1));
    decodes_to(p, &[0x40, 3, 0x00, 0x01, 0x00], &puback);
    // Property Length 0 spelled out (Remaining Length 4).
    let none = AckProperties::default();
    let pubrec = Packet::PubRec(ack(1, ReasonCode::NoMatchingSubscribers, none));
    decodes_to(p, &[0x50, 4, 0x00, 0x01, 0x10, 0x00], &pubrec);
}

// ------------------------------------------------------------- SUBSCRIBE

fn sub(filter: &'static str, options: SubscribeOptions) -> Subscription {
    Subscription {
        filter: s(filter),
        options,
    }
}

fn options(qos: QoS, no_local: bool, rap: bool, rh: RetainHandling) -> SubscribeOptions {
    SubscribeOptions {
        qos,
        no_local,
        retain_as_published: rap,
        retain_handling: rh,
    }
}

fn qos_only(qos: QoS) -> SubscribeOptions {
    options(qos, false, false, RetainHandling::SendAlways)
}

#[test]
fn subscribe_v3() {
    #[rustfmt::skip]
    let bytes = [
        0x82, 20,                               // SUBSCRIBE (flags 0b0010)
        0x00, 0x0A,                             // packet identifier 10
        0x00, 0x03, b'a', b'/', b'b',           // topic filter
        0x00,                                   // requested QoS 0
        0x00, 0x01, b'#',                       // topic filter
        0x01,                                   // requested QoS 1
        0x00, 0x05, b'+', b'/', b'x', b'/', b'#', // topic filter
        0x02,                                   // requested QoS 2
    ];
    let packet = Subscribe {
        packet_id: 10,
        properties: SubscribeProperties::default(),
        filters: vec![
            sub("a/b", qos_only(QoS::AtMostOnce)),
            sub("#", qos_only(QoS::AtLeastOnce)),
            sub("+/x/#", qos_only(QoS::ExactlyOnce)),
        ],
    };
    for p in V3 {
        vector(p, &bytes, Packet::Subscribe(packet.clone()));
    }
}

#[test]
fn subscribe_v5_options_and_subscription_identifier() {
    use QoS::{AtLeastOnce, ExactlyOnce};
    use RetainHandling::{DoNotSend, SendIfNew};
    #[rustfmt::skip]
    let bytes = [
        0x82, 36,                               // SUBSCRIBE (flags 0b0010)
        0x00, 0x0B,                             // packet identifier 11
        10,                                     // property length
        0x0B, 0x96, 0x01,                       // subscription identifier 150
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
        0x00, 0x03, b'a', b'/', b'+',           // topic filter
        0x2D,       // retain handling 2, retain as published, no local, QoS 1
        0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b't', // shared
        0x12,                                   // retain handling 1, QoS 2
        0x00, 0x01, b'#',                       // topic filter
        0x00,                                   // all options 0
    ];
    let packet = Subscribe {
        packet_id: 11,
        properties: SubscribeProperties {
            subscription_identifier: Some(150),
            user_properties: vec![user("k", "v")],
        },
        filters: vec![
            sub("a/+", options(AtLeastOnce, true, true, DoNotSend)),
            sub("$share/g/t", options(ExactlyOnce, false, false, SendIfNew)),
            sub("#", SubscribeOptions::default()),
        ],
    };
    vector(Protocol::V5, &bytes, Packet::Subscribe(packet));
}

// ---------------------------------------------------------------- SUBACK

#[test]
fn suback_v3() {
    use ReasonCode::*;
    // 3.1.1: granted QoS 0, 1, 2 and failure 0x80 (section 3.9.3).
    let bytes = [0x90, 6, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80];
    let packet = SubAck {
        packet_id: 10,
        properties: AckProperties::default(),
        codes: vec![Success, GrantedQoS1, GrantedQoS2, UnspecifiedError],
    };
    vector(Protocol::V3_1_1, &bytes, Packet::SubAck(packet));
    // 3.1 has granted QoS values only.
    let bytes = [0x90, 5, 0x00, 0x0A, 0x02, 0x01, 0x00];
    let packet = SubAck {
        packet_id: 10,
        properties: AckProperties::default(),
        codes: vec![GrantedQoS2, GrantedQoS1, Success],
    };
    vector(Protocol::V3_1, &bytes, Packet::SubAck(packet));
}

#[test]
fn suback_v5_reason_codes() {
    use ReasonCode::*;
    #[rustfmt::skip]
    let bytes = [
        0x90, 19,                               // SUBACK, Remaining Length
        0x00, 0x0B,                             // packet identifier
        4,                                      // property length
        0x1F, 0x00, 0x01, b'r',                 // reason string
        0x00, 0x01, 0x02, 0x80, 0x83, 0x87,     // reason codes (table 3.9.3)
        0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
    ];
    #[rustfmt::skip]
    let codes = vec![
        Success, GrantedQoS1, GrantedQoS2, UnspecifiedError, ImplementationSpecificError,
        NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse, QuotaExceeded,
        SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
        WildcardSubscriptionsNotSupported,
    ];
    let packet = SubAck {
        packet_id: 11,
        properties: reason_string("r"),
        codes,
    };
    vector(Protocol::V5, &bytes, Packet::SubAck(packet));

    // Packet identifier 1, property length 0, granted QoS 1.
    let packet = SubAck {
        packet_id: 1,
        properties: AckProperties::default(),
        codes: vec![GrantedQoS1],
    };
    vector(
        Protocol::V5,
        &[0x90, 4, 0x00, 0x01, 0x00, 0x01],
        Packet::SubAck(packet),
    );
}

// ------------------------------------------------------ UNSUBSCRIBE, UNSUBACK

#[test]
fn unsubscribe_v3_and_v5() {
    #[rustfmt::skip]
    let bytes = [
        0xA2, 12,                               // UNSUBSCRIBE (flags 0b0010)
        0x00, 0x0C,                             // packet identifier 12
        0x00, 0x03, b'a', b'/', b'b',           // topic filter
        0x00, 0x03, b'+', b'/', b'#',           // topic filter
    ];
    let packet = Unsubscribe {
        packet_id: 12,
        properties: UnsubscribeProperties::default(),
        filters: vec![s("a/b"), s("+/#")],
    };
    for p in V3 {
        vector(p, &bytes, Packet::Unsubscribe(packet.clone()));
    }

    #[rustfmt::skip]
    let bytes = [
        0xA2, 27,                               // UNSUBSCRIBE (flags 0b0010)
        0x00, 0x0D,                             // packet identifier 13
        7,                                      // property length
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
        0x00, 0x03, b'a', b'/', b'b',           // topic filter
        0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b't', // shared
    ];
    let packet = Unsubscribe {
        packet_id: 13,
        properties: UnsubscribeProperties {
            user_properties: vec![user("k", "v")],
        },
        filters: vec![s("a/b"), s("$share/g/t")],
    };
    vector(Protocol::V5, &bytes, Packet::Unsubscribe(packet));
}

#[test]
fn unsuback_v3_and_v5() {
    use ReasonCode::*;
    // 3.x: packet identifier only.
    let packet = UnsubAck {
        packet_id: 12,
        properties: AckProperties::default(),
        codes: Vec::new(),
    };
    for p in V3 {
        vector(p, &[0xB0, 2, 0x00, 0x0C], Packet::UnsubAck(packet.clone()));
    }

    #[rustfmt::skip]
    let bytes = [
        0xB0, 15,                               // UNSUBACK, Remaining Length
        0x00, 0x0D,                             // packet identifier
        5,                                      // property length
        0x1F, 0x00, 0x02, b'n', b'o',           // reason string
        0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91, // reason codes (table 3.11.3)
    ];
    #[rustfmt::skip]
    let codes = vec![
        Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError,
        NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse,
    ];
    let packet = UnsubAck {
        packet_id: 13,
        properties: reason_string("no"),
        codes,
    };
    vector(Protocol::V5, &bytes, Packet::UnsubAck(packet));

    // Packet identifier 14, property length 0, two reason codes.
    let packet = UnsubAck {
        packet_id: 14,
        properties: AckProperties::default(),
        codes: vec![Success, NoSubscriptionExisted],
    };
    let bytes = [0xB0, 5, 0x00, 0x0E, 0x00, 0x00, 0x11];
    vector(Protocol::V5, &bytes, Packet::UnsubAck(packet));
}

// ------------------------------------------------------ PINGREQ, PINGRESP

#[test]
fn pingreq_and_pingresp() {
    for p in ALL {
        vector(p, &[0xC0, 0x00], Packet::PingReq);
        vector(p, &[0xD0, 0x00], Packet::PingResp);
    }
}

// ------------------------------------------------------------ DISCONNECT

#[test]
fn disconnect_v3() {
    for p in V3 {
        vector(p, &[0xE0, 0x00], Packet::Disconnect(Disconnect::default()));
    }
}

#[test]
fn disconnect_v5_zero_length_and_reason_only() {
    let p = Protocol::V5;
    // Remaining Length 0: normal disconnection, no properties (3.14.2.1).
    vector(p, &[0xE0, 0x00], Packet::Disconnect(Disconnect::default()));
    // Reason code and an explicit Property Length of 0.
    let with_will = Disconnect::new(ReasonCode::DisconnectWithWillMessage);
    let packet = Packet::Disconnect(with_will);
    vector(p, &[0xE0, 2, 0x04, 0x00], packet.clone());
    // Remaining Length 1: "If the Remaining Length is less than 2, a value
    // of 0 is used" for the Property Length (3.14.2.2.1).
    decodes_to(p, &[0xE0, 1, 0x04], &packet);
    let taken_over = Disconnect::new(ReasonCode::SessionTakenOver);
    decodes_to(p, &[0xE0, 1, 0x8E], &Packet::Disconnect(taken_over));
}

#[test]
fn disconnect_v5_with_properties() {
    let p = Protocol::V5;
    #[rustfmt::skip]
    let bytes = [
        0xE0, 7,                                // DISCONNECT, Remaining Length
        0x00,                                   // normal disconnection
        5,                                      // property length
        0x11, 0x00, 0x00, 0x00, 0x3C,           // session expiry interval 60
    ];
    let packet = Disconnect {
        reason: ReasonCode::Success,
        properties: DisconnectProperties {
            session_expiry_interval: Some(60),
            ..DisconnectProperties::default()
        },
    };
    vector(p, &bytes, Packet::Disconnect(packet));

    #[rustfmt::skip]
    let bytes = [
        0xE0, 23,                               // DISCONNECT, Remaining Length
        0x9D,                                   // reason code: server moved
        21,                                     // property length
        0x1C, 0x00, 0x05, b'o', b't', b'h', b'e', b'r', // server reference
        0x1F, 0x00, 0x03, b'b', b'y', b'e',     // reason string
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
    ];
    let packet = Disconnect {
        reason: ReasonCode::ServerMoved,
        properties: DisconnectProperties {
            session_expiry_interval: None,
            server_reference: Some(s("other")),
            reason_string: Some(s("bye")),
            user_properties: vec![user("k", "v")],
        },
    };
    vector(p, &bytes, Packet::Disconnect(packet));
}

// ------------------------------------------------------------------ AUTH

#[test]
fn auth_v5() {
    let p = Protocol::V5;
    // Remaining Length 0: success, no properties (3.15.2.1).
    vector(p, &[0xF0, 0x00], Packet::Auth(Box::default()));

    #[rustfmt::skip]
    let bytes = [
        0xF0, 16,                               // AUTH, Remaining Length
        0x18,                                   // continue authentication
        14,                                     // property length
        0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method
        0x16, 0x00, 0x03, 0x01, 0x02, 0x03,     // authentication data
    ];
    let packet = Auth {
        reason: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(bin(&[1, 2, 3])),
            ..AuthProperties::default()
        },
    };
    vector(p, &bytes, Packet::Auth(Box::new(packet)));

    #[rustfmt::skip]
    let bytes = [
        0xF0, 18,                               // AUTH, Remaining Length
        0x19,                                   // re-authenticate
        16,                                     // property length
        0x15, 0x00, 0x01, b'm',                 // authentication method
        0x1F, 0x00, 0x02, b'r', b's',           // reason string
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
    ];
    let packet = Auth {
        reason: ReasonCode::ReAuthenticate,
        properties: AuthProperties {
            authentication_method: Some(s("m")),
            authentication_data: None,
            reason_string: Some(s("rs")),
            user_properties: vec![user("k", "v")],
        },
    };
    vector(p, &bytes, Packet::Auth(Box::new(packet)));

    // Success with a method: reason code, property length 4, method "m".
    let bytes = [0xF0, 6, 0x00, 4, 0x15, 0x00, 0x01, b'm'];
    let packet = Auth {
        reason: ReasonCode::Success,
        properties: AuthProperties {
            authentication_method: Some(s("m")),
            ..AuthProperties::default()
        },
    };
    vector(p, &bytes, Packet::Auth(Box::new(packet)));
}
