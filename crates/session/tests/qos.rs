//! QoS 0/1/2 both ways, packet ids, the in-flight window, resends on
//! resume, topic aliases, size limits and expiry, on a virtual clock.
#![allow(clippy::unwrap_used)]

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::*;
use strata_codec::*;
use strata_session::*;

fn connected(p: Protocol) -> Harness {
    let mut h = Harness::new(Config::default());
    h.connect(connect(p, "q"));
    h
}

/// A 5.0 session whose client allows `receive_maximum` messages in flight.
fn windowed(receive_maximum: u16) -> Harness {
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "w");
    c.properties.receive_maximum = Some(receive_maximum);
    h.connect(c);
    h
}

/// The packet ids of PUBLISH packets, which is all `packets` may hold.
fn publish_ids(packets: &[Packet]) -> Vec<u16> {
    packets
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => p.packet_id,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn publish_event(events: &[Event]) -> (Message, Option<u16>) {
    match events {
        [Event::Publish { message, packet_id }] => (message.clone(), *packet_id),
        other => panic!("expected one Publish event, got {other:?}"),
    }
}

#[test]
fn inbound_qos1_is_acknowledged_after_the_broker_is_done() {
    let mut h = connected(Protocol::V3_1_1);
    h.send(publish("a/b", QoS::AtLeastOnce, 7));
    let (m, id) = publish_event(&h.take_events());
    assert_eq!((m.topic.as_str(), id), ("a/b", Some(7)));
    assert!(h.received().is_empty(), "no PUBACK before publish_done");
    h.session
        .publish_done(7, QoS::AtLeastOnce, ReasonCode::Success);
    assert_eq!(h.received(), vec![Packet::PubAck(PubAck::new(7))]);
}

#[test]
fn inbound_qos2_is_delivered_once() {
    // [MQTT-4.3.3-10] [MQTT-4.3.3-11]
    let mut h = connected(Protocol::V5);
    h.send(publish("a", QoS::ExactlyOnce, 9));
    assert_eq!(h.take_events().len(), 1);
    h.session
        .publish_done(9, QoS::ExactlyOnce, ReasonCode::Success);
    assert_eq!(h.received(), vec![Packet::PubRec(PubRec::new(9))]);
    // The client resends the PUBLISH (DUP): PUBREC again, no second event.
    h.send(publish("a", QoS::ExactlyOnce, 9));
    assert!(h.take_events().is_empty());
    assert_eq!(h.received(), vec![Packet::PubRec(PubRec::new(9))]);
    h.send(Packet::PubRel(PubRel::new(9)));
    assert_eq!(h.received(), vec![Packet::PubComp(PubComp::new(9))]);
    // The release is an event, for a durable store to note before PUBCOMP.
    assert_eq!(
        h.take_events(),
        vec![Event::InboundReleased { packet_id: 9 }]
    );
    // A PUBREL for an id not held releases nothing.
    h.send(Packet::PubRel(PubRel::new(9)));
    assert!(h.take_events().is_empty());
    h.received();
    // After PUBCOMP the id is free: a new PUBLISH with it is a new message.
    h.send(publish("a", QoS::ExactlyOnce, 9));
    assert_eq!(h.take_events().len(), 1);
}

#[test]
fn unknown_pubrel_gets_pubcomp_not_found() {
    let mut h = connected(Protocol::V5);
    h.send(Packet::PubRel(PubRel::new(3)));
    let got = h.received();
    let [Packet::PubComp(comp)] = got.as_slice() else {
        panic!("expected one PUBCOMP, got {got:?}")
    };
    assert_eq!(
        (comp.packet_id, comp.reason),
        (3, ReasonCode::PacketIdentifierNotFound)
    );
    // The client asked for problem information (the default): say why.
    let why = comp
        .properties
        .reason_string
        .as_ref()
        .expect("a reason string");
    assert!(why.contains("packet identifier 3"), "{why}");
}

#[test]
fn without_problem_information_acks_carry_no_reason_string() {
    // [MQTT-3.1.2-29]: Request Problem Information 0 keeps Reason Strings
    // off everything but PUBLISH, CONNACK and DISCONNECT.
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "p");
    c.properties.request_problem_information = Some(false);
    h.connect(c);
    h.send(Packet::PubRel(PubRel::new(3)));
    h.send(Packet::PubRec(PubRec::new(4)));
    let got = h.received();
    let mut comp = PubComp::new(3);
    comp.reason = ReasonCode::PacketIdentifierNotFound;
    let mut rel = PubRel::new(4);
    rel.reason = ReasonCode::PacketIdentifierNotFound;
    assert_eq!(got, vec![Packet::PubComp(comp), Packet::PubRel(rel)]);
    // DISCONNECT may still explain itself.
    h.send(publish("a/+", QoS::AtMostOnce, 0));
    let got = h.received();
    let [Packet::Disconnect(d)] = got.as_slice() else {
        panic!("expected DISCONNECT, got {got:?}")
    };
    assert_eq!(d.reason, ReasonCode::TopicNameInvalid);
    assert!(d.properties.reason_string.is_some(), "{d:?}");
}

#[test]
fn reason_strings_give_way_to_the_clients_maximum_packet_size() {
    // [MQTT-3.14.2-3]: the DISCONNECT for a malformed packet explains itself
    // when it fits, and goes without the explanation when it would not.
    for (limit, explained) in [(u32::MAX, true), (16, false)] {
        let mut h = Harness::new(Config::default());
        let mut c = connect(Protocol::V5, "m");
        c.properties.maximum_packet_size = Some(limit);
        h.connect(c);
        h.send(publish("a/#", QoS::AtMostOnce, 0));
        let mut out = bytes::BytesMut::new();
        let n = h.session.poll_transmit(h.now, &mut out);
        assert!(n <= limit as usize, "{n} bytes sent, limit {limit}");
        let Some(Packet::Disconnect(d)) = decode(&mut out, Protocol::V5, MAX_PACKET_SIZE).unwrap()
        else {
            panic!("expected DISCONNECT")
        };
        assert_eq!(d.reason, ReasonCode::TopicNameInvalid);
        assert_eq!(d.properties.reason_string.is_some(), explained, "{d:?}");
    }
}

#[test]
fn receive_maximum_is_enforced() {
    // [MQTT-3.3.4-7]: more unacknowledged QoS>0 PUBLISH than announced.
    let mut h = Harness::new(Config {
        receive_maximum: 2,
        ..Config::default()
    });
    h.connect(connect(Protocol::V5, "r"));
    h.send(publish("a", QoS::AtLeastOnce, 1));
    h.send(publish("a", QoS::AtLeastOnce, 2));
    assert!(h.received().is_empty());
    h.send(publish("a", QoS::AtLeastOnce, 3));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ReceiveMaximumExceeded)
    );
}

#[test]
fn acknowledged_publishes_free_the_receive_window() {
    let mut h = Harness::new(Config {
        receive_maximum: 1,
        ..Config::default()
    });
    h.connect(connect(Protocol::V5, "r"));
    for id in 1..=5 {
        h.send(publish("a", QoS::AtLeastOnce, id));
        h.session
            .publish_done(id, QoS::AtLeastOnce, ReasonCode::Success);
    }
    assert_eq!(h.received().len(), 5);
    assert!(!h.session.is_closed());
}

#[test]
fn inbound_topic_alias_sets_and_resolves() {
    let mut h = connected(Protocol::V5);
    let mut p = Publish::new(
        MqttStr::from_static("long/topic"),
        QoS::AtMostOnce,
        Default::default(),
    );
    p.properties.topic_alias = Some(3);
    h.send(Packet::Publish(p.clone()));
    p.topic = MqttStr::new();
    h.send(Packet::Publish(p));
    let ev = h.take_events();
    assert_eq!(ev.len(), 2);
    for e in ev {
        let Event::Publish { message, .. } = e else {
            panic!()
        };
        assert_eq!(message.topic, "long/topic");
        assert_eq!(message.properties.topic_alias, None);
    }
}

#[test]
fn bad_inbound_topic_aliases() {
    // 0 and above the maximum: 0x94 [MQTT-3.3.2-8] [MQTT-3.3.2-9].
    for alias in [0u16, 65] {
        let mut h = connected(Protocol::V5);
        let mut p = Publish::new(
            MqttStr::from_static("t"),
            QoS::AtMostOnce,
            Default::default(),
        );
        p.properties.topic_alias = Some(alias);
        h.send(Packet::Publish(p));
        assert_eq!(
            disconnect_reason(&h.received()),
            Some(ReasonCode::TopicAliasInvalid),
            "alias {alias}"
        );
    }
    // An alias never set, with an empty topic: Protocol Error.
    let mut h = connected(Protocol::V5);
    let mut p = Publish::new(MqttStr::new(), QoS::AtMostOnce, Default::default());
    p.properties.topic_alias = Some(5);
    h.send(Packet::Publish(p));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
}

#[test]
fn subscription_identifier_from_client_is_a_protocol_error() {
    // [MQTT-3.3.4-6]
    let mut h = connected(Protocol::V5);
    let mut p = Publish::new(
        MqttStr::from_static("t"),
        QoS::AtMostOnce,
        Default::default(),
    );
    p.properties.subscription_identifiers = vec![4];
    h.send(Packet::Publish(p));
    assert_eq!(
        disconnect_reason(&h.received()),
        Some(ReasonCode::ProtocolError)
    );
}

#[test]
fn response_topic_must_be_a_topic_name() {
    // [MQTT-3.3.2-14]: a wildcard (or empty) Response Topic is refused; a
    // valid one travels on with the Correlation Data, untouched.
    let with_response = |t: &str| {
        let mut p = Publish::new(
            MqttStr::from_static("req"),
            QoS::AtMostOnce,
            Default::default(),
        );
        p.properties.response_topic = Some(MqttStr::try_from(t).unwrap());
        p.properties.correlation_data = Some(bytes::Bytes::from_static(b"\x00\x01"));
        Packet::Publish(p)
    };
    let mut h = connected(Protocol::V5);
    h.send(with_response("replies/client-7"));
    let (m, _) = publish_event(&h.take_events());
    assert_eq!(
        m.properties.response_topic.as_deref(),
        Some("replies/client-7")
    );
    assert_eq!(
        m.properties.correlation_data.as_deref(),
        Some(&b"\x00\x01"[..])
    );
    for bad in ["replies/+", "replies/#", ""] {
        let mut h = connected(Protocol::V5);
        h.send(with_response(bad));
        assert!(
            h.take_events()
                .iter()
                .all(|e| !matches!(e, Event::Publish { .. }))
        );
        assert_eq!(
            disconnect_reason(&h.received()),
            Some(ReasonCode::ProtocolError)
        );
        assert!(h.session.is_closed());
    }
}

#[test]
fn outbound_qos_is_the_lower_of_message_and_subscription() {
    // 3.1.1 [MQTT-3.8.4-6] (5.0: [MQTT-3.8.4-8])
    let mut h = connected(Protocol::V3_1_1);
    h.deliver("t", QoS::ExactlyOnce, QoS::AtLeastOnce);
    h.deliver("t", QoS::AtMostOnce, QoS::ExactlyOnce);
    let out = h.received();
    let qos: Vec<QoS> = out
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => p.qos,
            _ => panic!(),
        })
        .collect();
    assert_eq!(qos, vec![QoS::AtLeastOnce, QoS::AtMostOnce]);
}

#[test]
fn outbound_qos1_flow_and_window() {
    // Client Receive Maximum 2: the third message waits for an ack
    // [MQTT-3.3.4-9], then goes out in order [MQTT-4.6.0-6].
    let mut h = windowed(2);
    for _ in 0..3 {
        h.deliver("t", QoS::AtLeastOnce, QoS::AtLeastOnce);
    }
    assert_eq!(publish_ids(&h.received()), vec![1, 2]);
    h.send(Packet::PubAck(PubAck::new(1)));
    let out = h.received();
    let [Packet::Publish(p)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(p.packet_id, 3);
    assert!(!p.dup);
    assert_eq!(h.session.state().unwrap().inflight().count(), 2);
}

#[test]
fn acknowledgements_refill_the_window_in_order_when_packets_go_out() {
    // Freed slots are filled once per batch of acknowledgements (when the
    // packets go out), and a delivery that comes in between waits behind
    // the queued ones [MQTT-4.6.0-6].
    let mut h = windowed(2);
    for _ in 0..3 {
        h.deliver("t", QoS::AtLeastOnce, QoS::AtLeastOnce);
    }
    assert_eq!(h.received().len(), 2);
    h.send(Packet::PubAck(PubAck::new(1)));
    h.send(Packet::PubAck(PubAck::new(2)));
    h.deliver("t", QoS::AtLeastOnce, QoS::AtLeastOnce);
    assert_eq!(publish_ids(&h.received()), vec![3, 4]);
    assert_eq!(h.session.state().unwrap().inflight().count(), 2);
}

#[test]
fn outbound_qos2_flow() {
    let mut h = connected(Protocol::V5);
    h.deliver("t", QoS::ExactlyOnce, QoS::ExactlyOnce);
    let out = h.received();
    let [Packet::Publish(p)] = out.as_slice() else {
        panic!()
    };
    let id = p.packet_id;
    h.send(Packet::PubRec(PubRec::new(id)));
    assert_eq!(h.received(), vec![Packet::PubRel(PubRel::new(id))]);
    h.send(Packet::PubComp(PubComp::new(id)));
    assert_eq!(h.session.state().unwrap().inflight().count(), 0);
}

#[test]
fn resumed_session_resends_inflight_with_dup_in_order() {
    // [MQTT-4.4.0-1] [MQTT-3.3.1-1]
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "r");
    c.properties.session_expiry_interval = Some(60);
    h.connect(c.clone());
    h.deliver("a", QoS::AtLeastOnce, QoS::AtLeastOnce);
    h.deliver("b", QoS::ExactlyOnce, QoS::ExactlyOnce);
    h.deliver("c", QoS::ExactlyOnce, QoS::ExactlyOnce);
    h.received();
    h.send(Packet::PubRec(PubRec::new(2)));
    h.received();
    h.session.disconnect(ReasonCode::UnspecifiedError);
    let mut h2 = h.resume(c);
    let out = h2.received();
    assert!(matches!(&out[0], Packet::ConnAck(a) if a.session_present));
    let rest: Vec<String> = out[1..]
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => format!("PUBLISH {} {} dup={}", p.topic, p.packet_id, p.dup),
            Packet::PubRel(r) => format!("PUBREL {}", r.packet_id),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        rest,
        vec!["PUBLISH a 1 dup=true", "PUBREL 2", "PUBLISH c 3 dup=true"]
    );
}

#[test]
fn inflight_messages_outlive_their_expiry_and_error_acks_end_them() {
    // [MQTT-4.3.3-7] no expiry once sent; [MQTT-4.3.3-13] the QoS 2
    // handshake finishes after expiry; [MQTT-4.4.0-2] an error PUBACK or
    // PUBREC ends the flow for good; [MQTT-4.4.0-1] nothing is resent while
    // the connection lasts.
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "x");
    c.keep_alive = 0;
    c.properties.session_expiry_interval = Some(600);
    h.connect(c.clone());
    let expiring = |now, topic, qos| {
        let mut m = message(now, topic, qos);
        m.properties.message_expiry_interval = Some(1);
        delivery_of(m)
    };
    let now = h.now;
    h.session
        .handle_delivery(now, expiring(now, "e1", QoS::AtLeastOnce)); // id 1
    h.session
        .handle_delivery(now, expiring(now, "e2", QoS::ExactlyOnce)); // id 2
    h.deliver("f3", QoS::AtLeastOnce, QoS::AtLeastOnce); // id 3
    h.deliver("f4", QoS::ExactlyOnce, QoS::ExactlyOnce); // id 4
    assert_eq!(h.received().len(), 4);
    let mut failed = PubAck::new(3);
    failed.reason = ReasonCode::UnspecifiedError;
    h.send(Packet::PubAck(failed));
    let mut failed = PubRec::new(4);
    failed.reason = ReasonCode::QuotaExceeded;
    h.send(Packet::PubRec(failed));
    h.send(Packet::PubRec(PubRec::new(2)));
    assert_eq!(h.received(), vec![Packet::PubRel(PubRel::new(2))]);
    // Well past every expiry, on the same connection: silence.
    h.advance(Duration::from_secs(30));
    assert_eq!(h.received(), vec![]);

    h.session.handle_connection_lost(h.now);
    let mut h2 = h.resume(c);
    let out = h2.received();
    let [Packet::ConnAck(_), Packet::Publish(p), Packet::PubRel(rel)] = out.as_slice() else {
        panic!("expected CONNACK, the expired QoS 1 PUBLISH and PUBREL 2: {out:?}")
    };
    assert_eq!((p.topic.as_str(), p.packet_id, p.dup), ("e1", 1, true));
    assert_eq!(p.properties.message_expiry_interval, Some(1));
    assert_eq!(rel.packet_id, 2);
    // The expired QoS 2 message completes.
    h2.send(Packet::PubComp(PubComp::new(2)));
    h2.send(Packet::PubAck(PubAck::new(1)));
    assert_eq!(h2.received(), vec![]);
    assert_eq!(h2.session.state().unwrap().inflight().count(), 0);
    assert!(!h2.session.is_closed());
}

#[test]
fn outbound_topic_aliases() {
    // [MQTT-3.1.2-26] [MQTT-3.1.2-27]
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "a");
    c.properties.topic_alias_maximum = Some(1);
    h.connect(c);
    h.deliver("x/y", QoS::AtMostOnce, QoS::AtMostOnce);
    h.deliver("x/y", QoS::AtMostOnce, QoS::AtMostOnce);
    h.deliver("other", QoS::AtMostOnce, QoS::AtMostOnce);
    let out: Vec<(String, Option<u16>)> = h
        .received()
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.topic.to_string(), p.properties.topic_alias),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        out,
        vec![
            ("x/y".into(), Some(1)),
            ("".into(), Some(1)),
            ("other".into(), None)
        ]
    );

    // No Topic Alias Maximum from the client: no aliases at all.
    let mut h = connected(Protocol::V5);
    h.deliver("x/y", QoS::AtMostOnce, QoS::AtMostOnce);
    let out = h.received();
    let [Packet::Publish(p)] = out.as_slice() else {
        panic!()
    };
    assert_eq!(p.properties.topic_alias, None);
}

#[test]
fn oversize_outbound_is_dropped_as_if_sent() {
    // [MQTT-3.1.2-24] [MQTT-3.1.2-25]
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "s");
    c.properties.maximum_packet_size = Some(20);
    h.connect(c);
    let mut d = delivery(h.now, "t", QoS::AtLeastOnce, QoS::AtLeastOnce);
    Arc::make_mut(&mut d.message).payload = bytes::Bytes::from(vec![0u8; 64]);
    h.session.handle_delivery(h.now, d);
    h.deliver("t", QoS::AtLeastOnce, QoS::AtLeastOnce);
    let out = h.received();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(h.session.state().unwrap().inflight().count(), 1);
}

#[test]
fn message_expiry_counts_down_and_drops() {
    // [MQTT-3.3.2-5] [MQTT-3.3.2-6]
    let mut h = connected(Protocol::V5);
    let mut d = delivery(h.now, "t", QoS::AtMostOnce, QoS::AtMostOnce);
    Arc::make_mut(&mut d.message)
        .properties
        .message_expiry_interval = Some(10);
    h.advance(Duration::from_secs(4));
    h.session.handle_delivery(h.now, d.clone());
    let out = h.received();
    let [Packet::Publish(p)] = out.as_slice() else {
        panic!()
    };
    assert_eq!(p.properties.message_expiry_interval, Some(6));
    h.advance(Duration::from_secs(6));
    assert_eq!(h.session.handle_delivery(h.now, d), QueueOutcome::Dropped);
    assert!(h.received().is_empty());
}

#[test]
fn subscription_identifiers_go_out_with_the_message() {
    // [MQTT-3.3.4-3]
    let mut h = connected(Protocol::V5);
    let mut d = delivery(h.now, "t", QoS::AtMostOnce, QoS::AtMostOnce);
    d.subscription_ids = vec![2, 9];
    h.session.handle_delivery(h.now, d);
    let out = h.received();
    let [Packet::Publish(p)] = out.as_slice() else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers, vec![2, 9]);
}

#[test]
fn queue_limits_drop_newest() {
    let mut h = Harness::new(Config {
        max_queued_messages: 2,
        ..Config::default()
    });
    let mut c = connect(Protocol::V5, "l");
    c.properties.receive_maximum = Some(1);
    h.connect(c);
    let outcomes: Vec<QueueOutcome> = (0..4)
        .map(|_| h.deliver("t", QoS::AtLeastOnce, QoS::AtLeastOnce))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            QueueOutcome::Queued,
            QueueOutcome::Queued,
            QueueOutcome::Queued,
            QueueOutcome::Dropped
        ]
    );
    assert_eq!(h.session.state().unwrap().dropped, 1);
}

#[test]
fn subscribe_grants_at_most_the_server_maximum() {
    let mut h = Harness::new(Config {
        maximum_qos: QoS::AtLeastOnce,
        shared_subscription_available: false,
        ..Config::default()
    });
    h.connect(connect(Protocol::V5, "s"));
    let sub = |f: &'static str| Subscription {
        filter: MqttStr::from_static(f),
        options: SubscribeOptions {
            qos: QoS::ExactlyOnce,
            ..Default::default()
        },
    };
    h.send(Packet::Subscribe(Subscribe {
        packet_id: 4,
        properties: Default::default(),
        filters: vec![sub("a/#"), sub("$share/g/b")],
    }));
    let ev = h.take_events();
    let [Event::Subscribe { granted, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        granted,
        &vec![
            Ok(QoS::AtLeastOnce),
            Err(ReasonCode::SharedSubscriptionsNotSupported)
        ]
    );
    h.session.subscribe_done(
        4,
        vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::SharedSubscriptionsNotSupported,
        ],
    );
    let out = h.received();
    assert!(matches!(&out[..], [Packet::SubAck(a)] if a.packet_id == 4 && a.codes.len() == 2));
}

#[test]
fn unsuback_has_no_codes_before_v5() {
    let mut h = connected(Protocol::V3_1_1);
    h.send(Packet::Unsubscribe(Unsubscribe {
        packet_id: 2,
        properties: Default::default(),
        filters: vec![MqttStr::from_static("a")],
    }));
    assert_eq!(h.take_events().len(), 1);
    h.session.unsubscribe_done(2, vec![ReasonCode::Success]);
    let out = h.received();
    assert!(matches!(&out[..], [Packet::UnsubAck(a)] if a.codes.is_empty()));
}

#[test]
fn wildcard_filters_are_refused_when_wildcards_are_off() {
    // [MQTT-3.8.3-2] (3.1.1: the SUBACK failure code 0x80): a server
    // without wildcard subscriptions refuses those filters, one by one.
    for (p, refused) in [
        (Protocol::V3_1_1, ReasonCode::UnspecifiedError),
        (Protocol::V5, ReasonCode::WildcardSubscriptionsNotSupported),
    ] {
        let mut h = Harness::new(Config {
            wildcard_subscription_available: false,
            ..Config::default()
        });
        h.connect(connect(p, "w"));
        let sub = |f: &'static str| Subscription {
            filter: MqttStr::from_static(f),
            options: SubscribeOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        };
        h.send(Packet::Subscribe(Subscribe {
            packet_id: 9,
            properties: Default::default(),
            filters: vec![sub("a/+"), sub("a/b"), sub("#")],
        }));
        let ev = h.take_events();
        let [Event::Subscribe { granted, .. }] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        let wildcard = Err(ReasonCode::WildcardSubscriptionsNotSupported);
        assert_eq!(granted, &vec![wildcard, Ok(QoS::AtLeastOnce), wildcard]);
        // What the broker answers, as the client reads it: the failure in
        // the place of each wildcard filter [MQTT-3.9.3-1].
        let codes = vec![
            ReasonCode::WildcardSubscriptionsNotSupported,
            ReasonCode::GrantedQoS1,
            ReasonCode::WildcardSubscriptionsNotSupported,
        ];
        h.session.subscribe_done(9, codes);
        let out = h.received();
        let [Packet::SubAck(a)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(
            a.codes,
            vec![refused, ReasonCode::GrantedQoS1, refused],
            "{p:?}"
        );
    }
}

#[test]
fn after_an_error_pubrec_the_same_id_is_a_new_message() {
    // [MQTT-4.3.3-9]: a PUBREC of 0x80 or more ends the flow; the id is
    // free, and a PUBLISH reusing it is a new message, not a duplicate.
    let mut h = connected(Protocol::V5);
    h.send(publish("q", QoS::ExactlyOnce, 9));
    assert_eq!(h.take_events().len(), 1);
    h.session
        .publish_done(9, QoS::ExactlyOnce, ReasonCode::QuotaExceeded);
    let mut rec = PubRec::new(9);
    rec.reason = ReasonCode::QuotaExceeded;
    assert_eq!(h.received(), vec![Packet::PubRec(rec)]);
    h.send(publish("q", QoS::ExactlyOnce, 9));
    let (m, id) = publish_event(&h.take_events());
    assert_eq!((m.topic.as_str(), id), ("q", Some(9)));
    // And the window slot of the failed one was given back.
    h.session
        .publish_done(9, QoS::ExactlyOnce, ReasonCode::Success);
    assert_eq!(h.received(), vec![Packet::PubRec(PubRec::new(9))]);
    h.send(Packet::PubRel(PubRel::new(9)));
    assert_eq!(h.received(), vec![Packet::PubComp(PubComp::new(9))]);
}

#[test]
fn stored_messages_report_when_the_session_is_done_with_them() {
    // Event::Completed for each stored message's flow, once, when it
    // completes or fails, named by its packet id; Event::Dropped for a
    // stored QoS 1/2 copy dropped before it went out, with its terms;
    // nothing for unstored messages or QoS 0 copies (never held).
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "d");
    c.keep_alive = 0;
    c.properties.maximum_packet_size = Some(200);
    h.connect(c);
    let stored = |now, topic, qos, id, payload: usize| {
        let mut m = message(now, topic, qos);
        m.id = id;
        m.payload = bytes::Bytes::from(vec![b'x'; payload]);
        delivery_of(m)
    };
    let now = h.now;
    h.session
        .handle_delivery(now, stored(now, "q1", QoS::AtLeastOnce, 1, 1)); // packet 1
    h.session
        .handle_delivery(now, stored(now, "q2", QoS::ExactlyOnce, 2, 1)); // packet 2
    h.session
        .handle_delivery(now, stored(now, "q0", QoS::AtMostOnce, 3, 1)); // sent: done
    let big = stored(now, "big", QoS::AtLeastOnce, 4, 500);
    h.session.handle_delivery(now, big.clone()); // too big
    h.session
        .handle_delivery(now, stored(now, "unstored", QoS::AtLeastOnce, 0, 1)); // packet 3
    let done = |h: &mut Harness| -> Vec<Event> {
        h.take_events()
            .into_iter()
            .filter(|e| matches!(e, Event::Dropped { .. } | Event::Completed { .. }))
            .collect()
    };
    while let Some(e) = h.session.poll_event() {
        h.events.push(e);
    }
    assert_eq!(done(&mut h), vec![Event::Dropped { delivery: big }]);
    h.received();
    h.send(Packet::PubAck(PubAck::new(3))); // the unstored one: no event
    assert_eq!(done(&mut h), vec![]);
    h.send(Packet::PubRec(PubRec::new(2)));
    assert_eq!(done(&mut h), vec![], "not before PUBCOMP");
    h.send(Packet::PubComp(PubComp::new(2)));
    let mut failed = PubAck::new(1);
    failed.reason = ReasonCode::UnspecifiedError;
    h.send(Packet::PubAck(failed));
    let completed = |id, packet_id| Event::Completed { id, packet_id };
    assert_eq!(done(&mut h), vec![completed(2, 2), completed(1, 1)]);
}

#[test]
fn packet_ids_wrap_around_messages_still_in_flight() {
    // [MQTT-2.2.1-4]: an id is not reused while its message is in flight,
    // also after 65,535 sends wrap the counter around.
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "w");
    c.keep_alive = 0;
    c.properties.receive_maximum = Some(10);
    h.connect(c);
    let next = |h: &mut Harness| -> u16 {
        h.deliver("t", QoS::AtLeastOnce, QoS::AtLeastOnce);
        match h.received().as_slice() {
            [Packet::Publish(p)] => p.packet_id,
            other => panic!("{other:?}"),
        }
    };
    // Ids 1 and 2 stay unacknowledged; everything after is acknowledged.
    assert_eq!(next(&mut h), 1);
    assert_eq!(next(&mut h), 2);
    for expected in 3..=65535u16 {
        let id = next(&mut h);
        assert_eq!(id, expected);
        h.send(Packet::PubAck(PubAck::new(id)));
    }
    // Wrapped: 1 and 2 are still in flight, so 3 comes next.
    assert_eq!(next(&mut h), 3);
    h.send(Packet::PubAck(PubAck::new(2)));
    h.send(Packet::PubAck(PubAck::new(3)));
    assert_eq!(next(&mut h), 4);
}

#[test]
fn a_send_that_an_acknowledgement_makes_room_for_is_an_event_before_it_goes_out() {
    // The window is refilled lazily, once per batch of acknowledgements,
    // but before the events are taken: a durable store records the send
    // ahead of the PUBLISH leaving, so a restart resends under its id.
    let mut h = windowed(1);
    let now = h.now;
    let mut ds = Vec::new();
    for id in [41, 42] {
        let mut m = message(now, "s", QoS::AtLeastOnce);
        m.id = id;
        let d = delivery_of(m);
        h.session.handle_delivery(now, d.clone());
        ds.push(d);
    }
    h.send(Packet::PubAck(PubAck::new(99))); // unknown: ignored; drains events
    assert_eq!(
        h.take_events(),
        vec![Event::Sent {
            packet_id: 1,
            delivery: ds[0].clone()
        }]
    );
    assert_eq!(h.received().len(), 1);
    h.send(Packet::PubAck(PubAck::new(1)));
    assert_eq!(
        h.take_events(),
        vec![
            Event::Completed {
                id: 41,
                packet_id: 1
            },
            Event::Sent {
                packet_id: 2,
                delivery: ds[1].clone()
            }
        ]
    );
    let out = h.received();
    let [Packet::Publish(p)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(p.packet_id, 2);
}

#[test]
fn stored_sends_and_releases_are_events_for_the_durable_store() {
    // A durable store records a stored message's packet id when it is first
    // sent and its PUBREL phase when PUBREC comes, so that a restart can
    // resend under the same id [MQTT-4.4.0-1]; unstored messages and resends
    // report nothing.
    let mut h = connected(Protocol::V5);
    let now = h.now;
    let mut m = message(now, "s", QoS::ExactlyOnce);
    m.id = 41;
    let mut d = delivery_of(m);
    d.subscription_ids = vec![5];
    h.session.handle_delivery(now, d.clone());
    h.deliver("unstored", QoS::ExactlyOnce, QoS::ExactlyOnce);
    while let Some(e) = h.session.poll_event() {
        h.events.push(e);
    }
    let events = h.take_events();
    assert_eq!(
        events,
        vec![Event::Sent {
            packet_id: 1,
            delivery: d
        }]
    );
    h.received();
    h.send(Packet::PubRec(PubRec::new(1)));
    assert_eq!(
        h.take_events(),
        vec![Event::Released {
            id: 41,
            packet_id: 1
        }]
    );
    assert_eq!(h.received(), vec![Packet::PubRel(PubRel::new(1))]);
    h.send(Packet::PubRec(PubRec::new(2)));
    assert!(h.take_events().is_empty(), "the unstored one");
    // A resend on resume is not a new send.
    let mut h = h.resume(connect(Protocol::V5, "c"));
    assert!(
        !h.take_events()
            .iter()
            .any(|e| matches!(e, Event::Sent { .. }))
    );
    assert_eq!(h.received().len(), 2 + 1, "CONNACK and two PUBRELs");
}

#[test]
fn a_restored_session_resends_its_flows_under_the_stored_ids() {
    // What a durable store kept of a session: a QoS 2 PUBLISH awaiting
    // PUBREC (id 7), one awaiting PUBCOMP (id 9), a QoS 1 PUBLISH (id 12),
    // and inbound id 3 awaiting PUBREL. On resume: the PUBLISH packets again
    // with DUP and their ids, the PUBREL, in the order first sent
    // [MQTT-4.4.0-1] [MQTT-4.6.0-1]; the inbound id is still a duplicate
    // [MQTT-4.3.3-10]; new ids follow the newest restored one.
    let now = std::time::Instant::now();
    let mut state = SessionState::new(MqttStr::from_static("r"), 3600);
    let flow = |topic, qos, packet_id, phase| Outbound {
        packet_id,
        delivery: delivery(now, topic, qos, qos),
        qos,
        phase,
    };
    assert!(state.restore_outbound(flow("a", QoS::ExactlyOnce, 7, OutboundPhase::Published)));
    assert!(state.restore_outbound(flow("b", QoS::ExactlyOnce, 9, OutboundPhase::Released)));
    assert!(state.restore_outbound(flow("c", QoS::AtLeastOnce, 12, OutboundPhase::Published)));
    assert!(
        !state.restore_outbound(flow("d", QoS::AtLeastOnce, 9, OutboundPhase::Published)),
        "an id in flight already is refused"
    );
    state.restore_inbound_qos2(3);
    let mut h = Harness::new(Config::default());
    let mut c = connect(Protocol::V5, "r");
    c.clean_start = false;
    h.send(Packet::Connect(Box::new(c)));
    h.take_events();
    h.session.accept(h.now, state, true, None);
    let got = h.received();
    let summary: Vec<(u8, u16, bool)> = got[1..]
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.qos as u8, p.packet_id, p.dup),
            Packet::PubRel(r) => (6, r.packet_id, false),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(summary, vec![(2, 7, true), (6, 9, false), (1, 12, true)]);
    h.send(publish("in", QoS::ExactlyOnce, 3));
    assert!(h.take_events().is_empty(), "a duplicate is not routed");
    assert_eq!(h.received(), vec![Packet::PubRec(PubRec::new(3))]);
    h.send(Packet::PubRel(PubRel::new(3)));
    assert_eq!(h.received(), vec![Packet::PubComp(PubComp::new(3))]);
    h.deliver("new", QoS::AtLeastOnce, QoS::AtLeastOnce);
    match h.received().as_slice() {
        [Packet::Publish(p)] => assert_eq!(p.packet_id, 13),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_qos2_publish_taken_before_the_connection_broke_stays_a_duplicate() {
    // [MQTT-4.3.3-10]: the broker took the message (Publish event) but the
    // connection ended before PUBREC. The client resends it on the resumed
    // session: PUBREC, and no second delivery.
    let mut h = connected(Protocol::V5);
    h.send(publish("a", QoS::ExactlyOnce, 4));
    assert_eq!(h.take_events().len(), 1);
    h.session.handle_connection_lost(h.now);
    h.take_events();
    let mut h = h.resume(connect(Protocol::V5, "c"));
    h.received();
    h.send(publish("a", QoS::ExactlyOnce, 4));
    assert!(h.take_events().is_empty(), "routed once only");
    assert_eq!(h.received(), vec![Packet::PubRec(PubRec::new(4))]);
    h.send(Packet::PubRel(PubRel::new(4)));
    assert_eq!(h.received(), vec![Packet::PubComp(PubComp::new(4))]);
}
