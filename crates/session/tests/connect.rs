//! CONNECT / CONNACK, keep-alive, timeouts, wills and closing, on a virtual
//! clock.
#![allow(clippy::unwrap_used)]

mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::*;
use strata_codec::*;
use strata_session::*;

#[test]
fn v5_connack_announces_limits() {
    let mut h = Harness::new(Config {
        maximum_qos: QoS::AtLeastOnce,
        retain_available: false,
        ..Config::default()
    });
    let ack = h.connect(connect(Protocol::V5, "c1"));
    assert_eq!(ack.code, ReasonCode::Success);
    assert!(!ack.session_present);
    let p = &ack.properties;
    assert_eq!(p.receive_maximum, Some(1024));
    assert_eq!(p.maximum_packet_size, Some(1024 * 1024));
    assert_eq!(p.topic_alias_maximum, Some(64));
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce)); // [MQTT-3.2.2-9]
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.assigned_client_identifier, None);
    assert!(h.session.is_connected());
}

#[test]
fn v5_empty_client_id_is_assigned() {
    // [MQTT-3.1.3-6] [MQTT-3.2.2-16]
    let mut h = Harness::new(Config::default());
    let ack = h.connect(connect(Protocol::V5, ""));
    assert_eq!(
        ack.properties.assigned_client_identifier.as_deref(),
        Some("assigned-1")
    );
}

#[test]
fn v311_empty_client_id_needs_clean_session() {
    // [MQTT-3.1.3-8]: return code 0x02, then close.
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V3_1_1, "");
    c.clean_start = false;
    h.send(Packet::Connect(Box::new(c)));
    let out = h.received();
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(a.code, ReasonCode::ClientIdentifierNotValid);
    assert!(!a.session_present); // [MQTT-3.2.2-4]
    assert!(h.session.is_closed());
}

#[test]
fn first_packet_must_be_connect() {
    // [MQTT-3.1.0-1]: close, send nothing.
    let mut h = Harness::new(Config::default());
    h.protocol = Protocol::V3_1_1;
    h.send(Packet::PingReq);
    assert!(h.session.is_closed());
    assert!(h.received().is_empty());
}

#[test]
fn second_connect_is_a_protocol_error() {
    // [MQTT-3.1.0-2]
    let mut h = Harness::new(Config::default());
    h.connect(connect(Protocol::V5, "c"));
    h.send(Packet::Connect(Box::new(connect(Protocol::V5, "c"))));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
    assert!(h.session.is_closed());

    let mut h = Harness::new(Config::default());
    h.connect(connect(Protocol::V3_1_1, "c"));
    h.send(Packet::Connect(Box::new(connect(Protocol::V3_1_1, "c"))));
    assert!(h.received().is_empty(), "3.1.1 closes without a packet");
    assert!(h.session.is_closed());
}

#[test]
fn connect_timeout_closes_silently() {
    let mut h = Harness::new(Config::default());
    h.advance(Duration::from_secs(9));
    assert!(!h.session.is_closed());
    h.advance(Duration::from_secs(1));
    assert!(h.session.is_closed());
    assert!(h.received().is_empty());
}

#[test]
fn keep_alive_allows_one_and_a_half_periods() {
    // [MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-24])
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "k");
    c.keep_alive = 10;
    h.connect(c);
    h.advance(Duration::from_millis(14_999));
    assert!(!h.session.is_closed());
    h.send(Packet::PingReq);
    assert_eq!(h.received(), vec![Packet::PingResp]);
    h.advance(Duration::from_millis(14_999));
    assert!(!h.session.is_closed());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::KeepAliveTimeout)
    );
    assert!(h.session.is_closed());
}

#[test]
fn server_keep_alive_replaces_the_clients() {
    // [MQTT-3.2.2-21] [MQTT-3.2.2-22]
    let mut h = Harness::new(Config {
        server_keep_alive: Some(5),
        ..Config::default()
    });
    let mut c = connect(Protocol::V5, "k");
    c.keep_alive = 100;
    let ack = h.connect(c);
    assert_eq!(ack.properties.server_keep_alive, Some(5));
    h.advance(Duration::from_millis(7_500));
    assert!(h.session.is_closed());
}

#[test]
fn keep_alive_zero_never_times_out() {
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V3_1_1, "k");
    c.keep_alive = 0;
    h.connect(c);
    assert_eq!(h.session.poll_timeout(), None);
}

fn with_will(p: Protocol, delay: Option<u32>) -> Connect {
    let mut c = connect(p, "w");
    c.will = Some(LastWill {
        topic: MqttStr::from_static("wills/w"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties {
            will_delay_interval: delay,
            ..Default::default()
        },
    });
    c.keep_alive = 1;
    c
}

fn closed_will(events: Vec<Event>) -> Option<Will> {
    events.into_iter().find_map(|e| match e {
        Event::Closed { will, .. } => Some(will),
        _ => None,
    })?
}

#[test]
fn will_is_published_when_the_connection_fails() {
    // [MQTT-3.1.2-8]
    let mut h = Harness::new(Config::default());
    h.connect(with_will(Protocol::V5, Some(30)));
    h.advance(Duration::from_secs(2));
    let will = closed_will(h.take_events()).expect("will");
    assert_eq!(will.message.topic, "wills/w");
    assert!(will.message.retain); // [MQTT-3.1.2-15]
    assert_eq!(will.message.qos, QoS::AtLeastOnce);
    assert_eq!(will.delay, Duration::from_secs(30));
}

#[test]
fn normal_disconnect_discards_the_will() {
    // [MQTT-3.1.2-10] (3.1.1: [MQTT-3.14.4-3])
    for p in [Protocol::V3_1_1, Protocol::V5] {
        let mut h = Harness::new(Config::default());
        h.connect(with_will(p, None));
        h.send(Packet::Disconnect(Disconnect::default()));
        assert!(h.session.is_closed());
        assert_eq!(closed_will(h.take_events()), None, "{p:?}");
    }
}

#[test]
fn disconnect_with_will_message_publishes_it() {
    let mut h = Harness::new(Config::default());
    h.connect(with_will(Protocol::V5, None));
    h.send(Packet::Disconnect(Disconnect::new(
        ReasonCode::DisconnectWithWillMessage,
    )));
    assert!(closed_will(h.take_events()).is_some());
}

#[test]
fn disconnect_cannot_turn_zero_expiry_into_nonzero() {
    // Section 3.14.2.2.2 (the client-side rule; it has no statement ID)
    let mut h = Harness::new(Config::default());
    h.connect(connect(Protocol::V5, "e"));
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(60);
    h.send(Packet::Disconnect(d));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
}

#[test]
fn disconnect_updates_session_expiry() {
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "e");
    c.properties.session_expiry_interval = Some(10);
    h.connect(c);
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(0);
    h.send(Packet::Disconnect(d));
    let closed = h.take_events().into_iter().find_map(|e| match e {
        Event::Closed { session_expiry, .. } => Some(session_expiry),
        _ => None,
    });
    assert_eq!(closed, Some(0));
}

#[test]
fn malformed_v5_connect_gets_connack_with_reason() {
    // A v5 CONNECT whose property block repeats Session Expiry Interval:
    // Protocol Error in CONNACK, then close.
    let mut h = Harness::new(Config::default());
    h.protocol = Protocol::V5;
    let mut bytes = vec![0x10, 0];
    let body: Vec<u8> = [
        &[0, 4][..],
        b"MQTT",
        &[
            5, 0x02, 0, 60, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 1, b'c',
        ],
    ]
    .concat();
    bytes[1] = body.len() as u8;
    bytes.extend(body);
    h.send_raw(&bytes);
    let out = h.received();
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(a.code, ReasonCode::ProtocolError);
    assert!(h.session.is_closed());
}

#[test]
fn unsupported_level_gets_return_code_1() {
    // [MQTT-3.1.2-2]
    let mut h = Harness::new(Config::default());
    h.protocol = Protocol::V3_1_1;
    let body: Vec<u8> = [&[0, 4][..], b"MQTT", &[6, 0x02, 0, 60, 0, 1, b'c']].concat();
    let mut bytes = vec![0x10, body.len() as u8];
    bytes.extend(body);
    h.send_raw(&bytes);
    // Read it back as 3.1.1: return code 1.
    let out = h.received();
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(a.code, ReasonCode::UnsupportedProtocolVersion);
    assert!(h.session.is_closed());
}

/// Sends `c` and checks the refusal: one CONNACK with `code`, Session
/// Present 0, then closed, with no Connect event for the broker and nothing
/// the client sends afterwards handled [MQTT-3.1.4-6]. Returns the CONNACK.
#[track_caller]
fn refused(config: Config, c: Connect, code: ReasonCode) -> ConnAck {
    let mut h = Harness::new(config);
    h.send(Packet::Connect(Box::new(c)));
    let out = h.received();
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((a.code, a.session_present), (code, false));
    assert!(h.session.is_closed(), "still open after CONNACK {code:?}");
    let events = h.take_events();
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Event::Closed { will: None, .. })),
        "{events:?}"
    );
    // Anything more from the client is ignored: no event, no reply.
    h.send(publish("t", QoS::AtLeastOnce, 1));
    h.send(Packet::PingReq);
    assert!(h.take_events().is_empty());
    assert!(h.received().is_empty());
    (**a).clone()
}

#[test]
fn unknown_authentication_method_is_refused() {
    // [MQTT-4.12.0-1]: CONNACK 0x8C, then close.
    let mut c = connect(Protocol::V5, "a");
    c.properties.authentication_method = Some(MqttStr::from_static("SCRAM-SHA-1"));
    let a = refused(Config::default(), c, ReasonCode::BadAuthenticationMethod);
    let why = a.properties.reason_string.expect("reason string");
    assert!(why.contains("SCRAM-SHA-1"), "{why}");
    // [MQTT-4.12.0-6] the other way round: a CONNECT without a method gets
    // no method back.
    let mut h = Harness::new(Config::default());
    let ack = h.connect(connect(Protocol::V5, "b"));
    assert_eq!(ack.properties.authentication_method, None);
    assert_eq!(ack.properties.authentication_data, None);
}

#[test]
fn will_qos_above_maximum_is_refused() {
    // [MQTT-3.2.2-12]: CONNACK 0x9B, then close.
    let config = Config {
        maximum_qos: QoS::AtMostOnce,
        ..Config::default()
    };
    refused(
        config,
        with_will(Protocol::V5, None),
        ReasonCode::QoSNotSupported,
    );
}

#[test]
fn will_retain_without_retain_support_is_refused() {
    // [MQTT-3.2.2-13]: CONNACK 0x9A, then close.
    let config = Config {
        retain_available: false,
        ..Config::default()
    };
    refused(
        config,
        with_will(Protocol::V5, None),
        ReasonCode::RetainNotSupported,
    );
}

#[test]
fn will_response_topic_must_be_a_topic_name() {
    // [MQTT-3.3.2-14]: no wildcards in a Response Topic, the will's included.
    for bad in ["replies/+", "replies/#", ""] {
        let mut c = with_will(Protocol::V5, None);
        let w = c.will.as_mut().unwrap();
        w.properties.response_topic = Some(MqttStr::try_from(bad).unwrap());
        refused(Config::default(), c, ReasonCode::ProtocolError);
    }
}

#[test]
fn refused_connack_reason_string_gives_way_to_the_size_limit() {
    // [MQTT-3.2.2-19]: the Reason String goes when the CONNACK would exceed
    // the client's Maximum Packet Size; the refusal itself still arrives.
    for (limit, explained) in [(u32::MAX, true), (8, false)] {
        let mut c = connect(Protocol::V5, "a");
        c.properties.authentication_method = Some(MqttStr::from_static("GS2-KRB5"));
        c.properties.maximum_packet_size = Some(limit);
        let a = refused(Config::default(), c, ReasonCode::BadAuthenticationMethod);
        assert_eq!(a.properties.reason_string.is_some(), explained);
    }
}

#[test]
fn server_disconnect_sends_reason_and_publishes_will() {
    let mut h = Harness::new(Config::default());
    h.connect(with_will(Protocol::V5, None));
    h.session.disconnect(ReasonCode::SessionTakenOver);
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::SessionTakenOver)
    );
    assert!(h.session.is_closed());
    let ev = h.session.poll_event();
    assert!(
        matches!(ev, Some(Event::Closed { will: Some(_), .. })),
        "{ev:?}"
    );
}

#[test]
fn response_information_is_never_sent() {
    // [MQTT-3.1.2-28]: Strata has no Response Information to offer, so
    // none goes back whatever the client asks; with 0 it must not.
    for asked in [None, Some(false), Some(true)] {
        let mut h = Harness::new(Config::default());
        let mut c = connect(Protocol::V5, "r");
        c.properties.request_response_information = asked;
        let ack = h.connect(c);
        assert_eq!(ack.properties.response_information, None, "{asked:?}");
    }
}

#[test]
fn server_disconnect_never_carries_session_expiry() {
    // [MQTT-3.14.2-2]: whatever ends the connection from the server side.
    type End = fn(&mut Harness);
    let ends: [(&str, End); 3] = [
        ("shutdown", |h| {
            h.session.disconnect(ReasonCode::ServerShuttingDown)
        }),
        ("keep alive", |h| h.advance(Duration::from_secs(120))),
        ("protocol error", |h| h.send(Packet::PingResp)),
    ];
    for (what, end) in ends {
        let mut h = Harness::new(Config::default());
        let mut c = connect(Protocol::V5, "e");
        c.keep_alive = 10;
        c.properties.session_expiry_interval = Some(300);
        h.connect(c);
        end(&mut h);
        let out = h.received();
        let [Packet::Disconnect(d)] = out.as_slice() else {
            panic!("{what}: {out:?}")
        };
        assert_eq!(d.properties.session_expiry_interval, None, "{what}");
        assert!(h.session.is_closed(), "{what}");
    }
}

#[test]
fn client_ids_of_any_length_and_alphabet_are_accepted() {
    // [MQTT-3.1.3-5]: 1 to 23 bytes of 0-9a-zA-Z must be accepted; Strata
    // takes any valid UTF-8 string up to the 65535-byte limit, in every
    // version, so no ClientID is refused in 5.0 ([MQTT-3.1.3-8] never
    // arises).
    let ids = [
        "a".to_string(),
        "0123456789abcdefghijKLM".to_string(), // 23 bytes
        "x".repeat(24),
        "é/+#$ 😀".repeat(100),
        "z".repeat(65_535),
    ];
    for p in [Protocol::V3_1_1, Protocol::V5] {
        for id in &ids {
            let mut h = Harness::new(Config::default());
            let mut c = Connect::new(p, MqttStr::try_from(id.as_str()).unwrap());
            c.clean_start = true;
            h.send(Packet::Connect(Box::new(c)));
            let ev = h.take_events();
            assert!(
                matches!(ev.as_slice(), [Event::Connect(c)] if c.client_id == id.as_str()),
                "{p:?} id of {} bytes: {ev:?}",
                id.len()
            );
            assert!(h.received().is_empty(), "no refusal for {} bytes", id.len());
        }
    }
}

#[test]
fn auth_without_a_method_in_connect_is_a_protocol_error() {
    // Section 4.12: AUTH after a CONNECT that named no Authentication Method
    // is a Protocol Error; there is nothing to re-authenticate against.
    let mut h = Harness::new(Config::default());
    h.connect(connect(Protocol::V5, "a"));
    h.send(Packet::Auth(Box::new(Auth {
        reason: ReasonCode::ReAuthenticate,
        properties: AuthProperties {
            authentication_method: Some(MqttStr::from_static("SCRAM-SHA-256")),
            ..Default::default()
        },
    })));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
    assert!(h.session.is_closed());
}
