//! Enhanced authentication (section 4.12): the AUTH exchange at CONNECT,
//! re-authentication, and their errors, on a virtual clock.
#![allow(clippy::unwrap_used)]

mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::*;
use strata_codec::*;
use strata_session::*;

const METHOD: &str = "SCRAM-SHA-256";

fn enhanced() -> Harness {
    Harness::new(Config {
        enhanced_auth: true,
        ..Config::default()
    })
}

/// A 5.0 CONNECT naming `METHOD`, with `client-first` as its data.
fn connect_with_method() -> Connect {
    let mut c = connect(Protocol::V5, "a");
    c.properties.authentication_method = Some(MqttStr::from_static(METHOD));
    c.properties.authentication_data = Some(Bytes::from_static(b"client-first"));
    c
}

fn auth(reason: ReasonCode, method: &'static str, data: &'static [u8]) -> Packet {
    Packet::Auth(Box::new(Auth {
        reason,
        properties: AuthProperties {
            authentication_method: Some(MqttStr::from_static(method)),
            authentication_data: Some(Bytes::from_static(data)),
            ..Default::default()
        },
    }))
}

/// Authentication Data for the server's AUTH or CONNACK.
fn data(d: &'static [u8]) -> AuthProperties {
    AuthProperties {
        authentication_data: Some(Bytes::from_static(d)),
        ..Default::default()
    }
}

/// The one AUTH in `packets`.
#[track_caller]
fn one_auth(packets: Vec<Packet>) -> Auth {
    match packets.as_slice() {
        [Packet::Auth(a)] => (**a).clone(),
        other => panic!("expected one AUTH, got {other:?}"),
    }
}

/// The one CONNACK in `packets`.
#[track_caller]
fn one_connack(packets: Vec<Packet>) -> ConnAck {
    match packets.as_slice() {
        [Packet::ConnAck(a)] => (**a).clone(),
        other => panic!("expected one CONNACK, got {other:?}"),
    }
}

/// The one Auth event in `events`, as (data, reauth).
#[track_caller]
fn one_auth_event(events: Vec<Event>) -> (Option<Bytes>, bool) {
    match events.as_slice() {
        [
            Event::Auth {
                method,
                data,
                reauth,
            },
        ] => {
            assert_eq!(method, METHOD);
            (data.clone(), *reauth)
        }
        other => panic!("expected one Auth event, got {other:?}"),
    }
}

/// The reason and will of the Closed event, once a command or packet
/// closed the session (a command's events are still in the session).
fn closed(h: &mut Harness) -> Option<(ReasonCode, Option<Will>)> {
    let mut events = h.take_events();
    events.extend(std::iter::from_fn(|| h.session.poll_event()));
    events.into_iter().find_map(|e| match e {
        Event::Closed { reason, will, .. } => Some((reason, will)),
        _ => None,
    })
}

/// A CONNECT with `METHOD` answered with AUTH 0x18: the server now waits
/// for the client's AUTH.
fn challenged(mut h: Harness, c: Connect) -> Harness {
    h.send(Packet::Connect(Box::new(c)));
    let ev = h.take_events();
    let [Event::Connect(c)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    // The broker sees the method and the data of the CONNECT.
    assert_eq!(c.properties.authentication_method.as_deref(), Some(METHOD));
    assert_eq!(
        c.properties.authentication_data.as_deref(),
        Some(&b"client-first"[..])
    );
    h.session.auth_continue(h.now, data(b"server-first"));
    let a = one_auth(h.received());
    assert_eq!(a.reason, ReasonCode::ContinueAuthentication);
    assert!(!h.session.is_connected());
    h
}

/// Connected after a CONNECT with `METHOD`, accepted at once.
fn authenticated(c: Connect) -> Harness {
    let mut h = enhanced();
    let ack = h.connect(c);
    assert_eq!(
        ack.properties.authentication_method.as_deref(),
        Some(METHOD)
    );
    h
}

#[test]
fn challenge_response_at_connect_ends_in_connack_with_method_and_data() {
    // [MQTT-4.12.0-2] [MQTT-4.12.0-3] [MQTT-4.12.0-5]: two rounds of AUTH
    // 0x18 each way, then a success CONNACK with the method and the server's
    // final data.
    let mut h = enhanced();
    h.send(Packet::Connect(Box::new(connect_with_method())));
    let ev = h.take_events();
    assert!(matches!(ev.as_slice(), [Event::Connect(_)]), "{ev:?}");
    assert_eq!(h.session.auth_method().map(|m| m.as_str()), Some(METHOD));
    for (server, client) in [
        (&b"server-first"[..], &b"client-final"[..]),
        (b"server-more", b"client-more"),
    ] {
        h.session.auth_continue(
            h.now,
            AuthProperties {
                authentication_data: Some(Bytes::copy_from_slice(server)),
                ..Default::default()
            },
        );
        let a = one_auth(h.received());
        assert_eq!(a.reason, ReasonCode::ContinueAuthentication);
        assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
        assert_eq!(a.properties.authentication_data.as_deref(), Some(server));
        assert!(!h.session.is_connected());
        h.advance(Duration::from_secs(1));
        h.send(Packet::Auth(Box::new(Auth {
            reason: ReasonCode::ContinueAuthentication,
            properties: AuthProperties {
                authentication_method: Some(MqttStr::from_static(METHOD)),
                authentication_data: Some(Bytes::copy_from_slice(client)),
                ..Default::default()
            },
        })));
        let (got, reauth) = one_auth_event(h.take_events());
        assert_eq!((got.as_deref(), reauth), (Some(client), false));
        assert!(h.received().is_empty(), "nothing before the broker answers");
    }
    h.session.accept_authenticated(
        h.now,
        SessionState::new(MqttStr::from_static("a"), 0),
        false,
        None,
        Some(Bytes::from_static(b"server-final")),
    );
    let ack = one_connack(h.received());
    assert_eq!(ack.code, ReasonCode::Success);
    assert_eq!(
        ack.properties.authentication_method.as_deref(),
        Some(METHOD)
    );
    assert_eq!(
        ack.properties.authentication_data.as_deref(),
        Some(&b"server-final"[..])
    );
    assert!(h.session.is_connected());
    // The connect timer stopped with CONNACK: only keep-alive is left.
    h.advance(Duration::from_secs(60));
    assert!(!h.session.is_closed());
}

#[test]
fn one_step_method_is_accepted_at_once_with_the_method_in_connack() {
    // [MQTT-4.12.0-5]: plain `accept` repeats the method too.
    let h = authenticated(connect_with_method());
    assert!(h.session.is_connected());
}

#[test]
fn rejection_sends_connack_with_the_code_and_closes() {
    // [MQTT-4.12.0-4]: refused in the middle of the exchange.
    let mut h = challenged(enhanced(), connect_with_method());
    h.send(auth(ReasonCode::ContinueAuthentication, METHOD, b"wrong"));
    one_auth_event(h.take_events());
    h.session.reject(ReasonCode::NotAuthorized);
    let ack = one_connack(h.received());
    assert_eq!(
        (ack.code, ack.session_present),
        (ReasonCode::NotAuthorized, false)
    );
    assert_eq!(ack.properties.authentication_method, None);
    assert!(h.session.is_closed());
    assert_eq!(closed(&mut h), Some((ReasonCode::NotAuthorized, None)));
    // [MQTT-4.12.0-1]: a method the broker does not know, refused at once.
    let mut h = enhanced();
    h.send(Packet::Connect(Box::new(connect_with_method())));
    h.take_events();
    h.session.reject(ReasonCode::BadAuthenticationMethod);
    let ack = one_connack(h.received());
    assert_eq!(ack.code, ReasonCode::BadAuthenticationMethod);
    assert!(h.session.is_closed());
}

#[test]
fn auth_with_another_method_is_a_protocol_error() {
    // [MQTT-4.12.0-5] before CONNACK: CONNACK 0x82, then close.
    let mut h = challenged(enhanced(), connect_with_method());
    h.send(auth(ReasonCode::ContinueAuthentication, "PLAIN", b"x"));
    assert!(
        h.take_events()
            .iter()
            .all(|e| !matches!(e, Event::Auth { .. }))
    );
    let ack = one_connack(h.received());
    assert_eq!(ack.code, ReasonCode::ProtocolError);
    let why = ack.properties.reason_string.expect("a reason string");
    assert!(why.contains("PLAIN") && why.contains(METHOD), "{why}");
    assert!(h.session.is_closed());
    // [MQTT-4.12.1-1] after CONNACK: DISCONNECT 0x82, then close.
    let mut h = authenticated(connect_with_method());
    h.send(auth(ReasonCode::ReAuthenticate, "PLAIN", b"x"));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
    assert!(h.session.is_closed());
}

#[test]
fn auth_when_no_exchange_is_under_way_is_a_protocol_error() {
    // After CONNACK: 0x18 the server did not ask for, 0x00 only a server
    // sends. Each: DISCONNECT 0x82, then close.
    for reason in [ReasonCode::ContinueAuthentication, ReasonCode::Success] {
        let mut h = authenticated(connect_with_method());
        h.send(auth(reason, METHOD, b"x"));
        assert!(
            h.take_events()
                .iter()
                .all(|e| !matches!(e, Event::Auth { .. }))
        );
        assert_eq!(
            disconnect_reason(&h.received()),
            Some(ReasonCode::ProtocolError),
            "{reason:?}"
        );
        assert!(h.session.is_closed());
    }
    // Before CONNACK: 0x19 while the CONNECT is still being authenticated.
    let mut h = challenged(enhanced(), connect_with_method());
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"x"));
    assert_eq!(one_connack(h.received()).code, ReasonCode::ProtocolError);
    assert!(h.session.is_closed());
}

#[test]
fn auth_with_a_reason_code_not_for_auth_is_malformed() {
    // [MQTT-3.15.2-1]: 0x04 is no Authenticate Reason Code; the codec
    // rejects it, and the reaction depends on CONNACK having gone out.
    let bad = [0xF0, 0x01, 0x04];
    let mut h = challenged(enhanced(), connect_with_method());
    h.send_raw(&bad);
    assert_eq!(one_connack(h.received()).code, ReasonCode::MalformedPacket);
    assert!(h.session.is_closed());

    let mut h = authenticated(connect_with_method());
    h.send_raw(&bad);
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::MalformedPacket)
    );
    assert!(h.session.is_closed());
}

#[test]
fn only_auth_or_disconnect_before_connack() {
    // [MQTT-3.1.2-30]: a PUBLISH during the exchange is a Protocol Error,
    // answered in CONNACK, and never reaches the broker.
    let mut h = challenged(enhanced(), connect_with_method());
    h.send(publish("t", QoS::AtLeastOnce, 1));
    let ev = h.take_events();
    assert!(
        ev.iter().all(|e| !matches!(e, Event::Publish { .. })),
        "{ev:?}"
    );
    let ack = one_connack(h.received());
    assert_eq!(ack.code, ReasonCode::ProtocolError);
    assert!(h.session.is_closed());
    // DISCONNECT is allowed: the client gives up; nothing is sent back and
    // no will goes out, as the connection was never accepted.
    let mut c = connect_with_method();
    c.will = Some(LastWill {
        topic: MqttStr::from_static("wills/a"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let mut h = challenged(enhanced(), c);
    h.send(Packet::Disconnect(Disconnect::default()));
    assert!(h.session.is_closed());
    assert!(h.received().is_empty());
    assert_eq!(closed(&mut h), Some((ReasonCode::Success, None)));
}

#[test]
fn a_client_that_never_answers_is_closed_by_the_connect_timeout() {
    // The connect timeout (10 s by default) counts from the connection,
    // not from the last step: one prompt round does not buy more time.
    let mut h = enhanced();
    h.advance(Duration::from_secs(2));
    let mut h = challenged(h, connect_with_method());
    h.advance(Duration::from_secs(2));
    h.send(auth(ReasonCode::ContinueAuthentication, METHOD, b"c"));
    one_auth_event(h.take_events());
    h.session.auth_continue(h.now, data(b"s"));
    one_auth(h.received());
    h.advance(Duration::from_millis(5_999));
    assert!(!h.session.is_closed());
    h.advance(Duration::from_millis(1));
    assert!(h.session.is_closed());
    assert!(h.received().is_empty(), "closed without a word");
    assert_eq!(closed(&mut h), Some((ReasonCode::MaximumConnectTime, None)));
}

#[test]
fn reauthentication_succeeds_with_auth_success() {
    // [MQTT-4.12.1-1]: AUTH 0x19 with the CONNECT's method; the server
    // asks once more (0x18), then ends it with AUTH 0x00 and the method
    // [MQTT-4.12.0-5].
    let mut h = authenticated(connect_with_method());
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"again-first"));
    let (d, reauth) = one_auth_event(h.take_events());
    assert_eq!((d.as_deref(), reauth), (Some(&b"again-first"[..]), true));
    h.session.auth_continue(h.now, data(b"challenge"));
    let a = one_auth(h.received());
    assert_eq!(a.reason, ReasonCode::ContinueAuthentication);
    assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
    h.send(auth(
        ReasonCode::ContinueAuthentication,
        METHOD,
        b"response",
    ));
    let (d, reauth) = one_auth_event(h.take_events());
    assert_eq!((d.as_deref(), reauth), (Some(&b"response"[..]), true));
    h.session.auth_success(h.now, data(b"verified"));
    let a = one_auth(h.received());
    assert_eq!(a.reason, ReasonCode::Success);
    assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
    assert_eq!(
        a.properties.authentication_data.as_deref(),
        Some(&b"verified"[..])
    );
    assert!(h.session.is_connected());
    // Over: a second answer is ignored, and a new re-authentication may start.
    h.session.auth_success(h.now, data(b"again"));
    assert!(h.received().is_empty());
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"next"));
    assert!(one_auth_event(h.take_events()).1);
}

#[test]
fn failed_reauthentication_disconnects_with_the_code() {
    // [MQTT-4.12.1-2]: DISCONNECT with the broker's code, then close; the
    // will goes out as for any close the client did not ask for.
    let mut c = connect_with_method();
    c.will = Some(LastWill {
        topic: MqttStr::from_static("wills/a"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let mut h = authenticated(c);
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"stale"));
    one_auth_event(h.take_events());
    h.session.reject(ReasonCode::NotAuthorized);
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::NotAuthorized)
    );
    assert!(h.session.is_closed());
    let (reason, will) = closed(&mut h).expect("a Closed event");
    assert_eq!(reason, ReasonCode::NotAuthorized);
    assert_eq!(will.expect("the will").message.topic, "wills/a");
}

#[test]
fn reject_outside_a_reauthentication_is_ignored() {
    // Without a re-authentication under way there is nothing to refuse.
    let mut h = authenticated(connect_with_method());
    h.session.reject(ReasonCode::NotAuthorized);
    assert!(h.received().is_empty());
    assert!(h.session.is_connected());
}

#[test]
fn packets_flow_during_reauthentication() {
    let mut h = authenticated(connect_with_method());
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"r"));
    one_auth_event(h.take_events());
    // The broker has not answered yet: the client's PUBLISH goes up and is
    // acknowledged, deliveries go out, PINGREQ is answered.
    h.send(publish("t", QoS::AtLeastOnce, 5));
    let ev = h.take_events();
    assert!(
        matches!(
            ev.as_slice(),
            [Event::Publish {
                packet_id: Some(5),
                ..
            }]
        ),
        "{ev:?}"
    );
    h.session
        .publish_done(5, QoS::AtLeastOnce, ReasonCode::Success);
    let queued = h.deliver("d", QoS::AtLeastOnce, QoS::AtLeastOnce);
    assert_eq!(queued, QueueOutcome::Queued);
    h.send(Packet::PingReq);
    let out = h.received();
    assert!(matches!(
        out.as_slice(),
        [Packet::PubAck(a), Packet::Publish(p), Packet::PingResp]
            if a.packet_id == 5 && p.topic == "d"
    ));
    h.session.auth_success(h.now, AuthProperties::default());
    assert_eq!(one_auth(h.received()).reason, ReasonCode::Success);
}

#[test]
fn second_reauthenticate_while_one_is_under_way_is_a_protocol_error() {
    let mut h = authenticated(connect_with_method());
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"r"));
    one_auth_event(h.take_events());
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"r"));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
    assert!(h.session.is_closed());
}

#[test]
fn without_enhanced_auth_a_method_is_refused_with_0x8c() {
    // [MQTT-4.12.0-1]: the switch off keeps today's refusal, with no event.
    let mut h = Harness::new(Config::default());
    h.send(Packet::Connect(Box::new(connect_with_method())));
    assert_eq!(
        one_connack(h.received()).code,
        ReasonCode::BadAuthenticationMethod
    );
    assert!(h.session.is_closed());
    assert_eq!(
        closed(&mut h),
        Some((ReasonCode::BadAuthenticationMethod, None))
    );
}

#[test]
fn without_a_method_in_connect_the_server_never_sends_auth() {
    // [MQTT-4.12.0-6]: enhanced_auth on, but the CONNECT named no method:
    // `auth_continue` does nothing, CONNACK has no method even when data
    // is offered, and AUTH from the client is a Protocol Error
    // [MQTT-4.12.0-7].
    let mut h = enhanced();
    h.send(Packet::Connect(Box::new(connect(Protocol::V5, "n"))));
    h.take_events();
    h.session.auth_continue(h.now, data(b"x"));
    assert!(h.received().is_empty());
    h.session.accept_authenticated(
        h.now,
        SessionState::new(MqttStr::from_static("n"), 0),
        false,
        None,
        Some(Bytes::from_static(b"x")),
    );
    let ack = one_connack(h.received());
    assert_eq!(ack.properties.authentication_method, None);
    assert_eq!(ack.properties.authentication_data, None);
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"x"));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
}

#[test]
fn v311_connect_is_untouched_by_enhanced_auth() {
    let mut h = enhanced();
    let ack = h.connect(connect(Protocol::V3_1_1, "old"));
    assert_eq!(ack.code, ReasonCode::Success);
    assert_eq!(h.session.auth_method(), None);
}

/// A CONNECT with `METHOD` from a client that reads packets of at most
/// `limit` bytes.
fn limited(limit: u32) -> Connect {
    let mut c = connect_with_method();
    c.properties.maximum_packet_size = Some(limit);
    c
}

/// The AUTH 0x18 the server sends with `data` plus a Reason String and a
/// User Property.
fn diagnosed(data: &'static [u8]) -> AuthProperties {
    AuthProperties {
        authentication_data: Some(Bytes::from_static(data)),
        reason_string: Some(MqttStr::from_static("a reason of some length")),
        user_properties: vec![(MqttStr::from_static("k"), MqttStr::from_static("v"))],
        ..Default::default()
    }
}

#[test]
fn auth_diagnostics_give_way_to_the_clients_maximum_packet_size() {
    // [MQTT-3.15.2-2] [MQTT-3.15.2-3]: with room, the Reason String and
    // User Property go; without, they are left out and the AUTH still goes.
    for (limit, kept) in [(200, true), (40, false)] {
        let mut h = enhanced();
        h.send(Packet::Connect(Box::new(limited(limit))));
        h.take_events();
        h.session.auth_continue(h.now, diagnosed(b"s"));
        let out = h.received();
        let mut buf = bytes::BytesMut::new();
        out[0].encode(Protocol::V5, &mut buf).unwrap();
        assert!(buf.len() <= limit as usize, "{} > {limit}", buf.len());
        let a = one_auth(out);
        assert_eq!(a.properties.reason_string.is_some(), kept, "{limit}");
        assert_eq!(!a.properties.user_properties.is_empty(), kept, "{limit}");
        assert_eq!(a.properties.authentication_data.as_deref(), Some(&b"s"[..]));
    }
}

#[test]
fn auth_too_large_even_without_diagnostics_ends_the_connection() {
    // [MQTT-3.1.2-24]: it cannot go, and the exchange cannot go on without
    // it. Before CONNACK: CONNACK 0x80, then close.
    let big: &'static [u8] = &[7; 100];
    let mut h = enhanced();
    h.send(Packet::Connect(Box::new(limited(64))));
    h.take_events();
    h.session.auth_continue(h.now, data(big));
    assert_eq!(one_connack(h.received()).code, ReasonCode::UnspecifiedError);
    assert!(h.session.is_closed());
    // So is a success CONNACK the data would make too large; the session
    // state is kept for the broker.
    let mut h = enhanced();
    h.send(Packet::Connect(Box::new(limited(64))));
    h.take_events();
    let state = SessionState::new(MqttStr::from_static("a"), 0);
    h.session
        .accept_authenticated(h.now, state, false, None, Some(Bytes::from_static(big)));
    assert_eq!(one_connack(h.received()).code, ReasonCode::UnspecifiedError);
    assert!(h.session.is_closed());
    assert!(h.session.take_state().is_some());
    // After CONNACK: DISCONNECT 0x95, then close.
    let mut h = authenticated(limited(64));
    h.send(auth(ReasonCode::ReAuthenticate, METHOD, b"r"));
    one_auth_event(h.take_events());
    h.session.auth_success(h.now, data(big));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::PacketTooLarge)
    );
    assert!(h.session.is_closed());
}
