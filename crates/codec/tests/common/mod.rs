//! Proptest strategies for valid packets of each protocol version, shared by
//! the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use strata_codec::packet::RetainHandling;
use strata_codec::property::*;
use strata_codec::*;

pub fn text() -> impl Strategy<Value = MqttStr> {
    "[^\u{0}]{0,12}".prop_map(|s| MqttStr::try_from(s).unwrap())
}

pub fn topic_name() -> impl Strategy<Value = MqttStr> {
    "[a-zA-Z0-9$/ é]{1,24}".prop_map(|s| MqttStr::try_from(s).unwrap())
}

pub fn topic_filter() -> impl Strategy<Value = MqttStr> {
    let level = prop_oneof![
        3 => "[a-z0-9$]{0,6}",
        1 => Just("+".to_string()),
    ];
    (vec(level, 1..5), any::<bool>(), of("[a-z]{1,5}")).prop_map(|(levels, hash, share)| {
        let mut f = levels.join("/");
        if hash {
            f.push_str("/#");
        }
        if f.is_empty() {
            f.push('e');
        }
        if let Some(g) = share {
            f = format!("$share/{g}/{f}");
        }
        MqttStr::try_from(f).unwrap()
    })
}

pub fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

pub fn payload() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..200).prop_map(Bytes::from)
}

pub fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn user_props() -> impl Strategy<Value = Vec<(MqttStr, MqttStr)>> {
    vec((text(), text()), 0..3)
}

fn flag() -> impl Strategy<Value = Option<bool>> {
    of(any::<bool>())
}

fn nz16() -> impl Strategy<Value = Option<u16>> {
    of(1..=u16::MAX)
}

fn nz32() -> impl Strategy<Value = Option<u32>> {
    of(1..=u32::MAX)
}

pub fn connect_props() -> impl Strategy<Value = ConnectProperties> {
    (
        of(any::<u32>()),
        nz16(),
        nz32(),
        of(any::<u16>()),
        flag(),
        flag(),
        of(text()),
        of(bin()),
        user_props(),
    )
        .prop_map(
            |(se, rm, mps, tam, rri, rpi, am, ad, up)| ConnectProperties {
                session_expiry_interval: se,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                authentication_data: if am.is_some() { ad } else { None },
                authentication_method: am,
                user_properties: up,
            },
        )
}

pub fn will_props() -> impl Strategy<Value = WillProperties> {
    (
        of(0u8..=1),
        of(any::<u32>()),
        of(text()),
        of(topic_name()),
        of(bin()),
        of(any::<u32>()),
        user_props(),
    )
        .prop_map(|(pfi, mei, ct, rt, cd, wdi, up)| WillProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            will_delay_interval: wdi,
            user_properties: up,
        })
}

pub fn connack_props() -> impl Strategy<Value = ConnAckProperties> {
    (
        (
            of(any::<u32>()),
            of(text()),
            of(any::<u16>()),
            of(text()),
            of(bin()),
            of(text()),
            of(text()),
            of(text()),
        ),
        (
            nz16(),
            of(any::<u16>()),
            of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
            flag(),
            nz32(),
            flag(),
            flag(),
            flag(),
            user_props(),
        ),
    )
        .prop_map(
            |((se, aci, ska, am, ad, ri, sr, rs), (rm, tam, mq, ra, mps, wsa, sia, ssa, up))| {
                ConnAckProperties {
                    session_expiry_interval: se,
                    assigned_client_identifier: aci,
                    server_keep_alive: ska,
                    authentication_method: am,
                    authentication_data: ad,
                    response_information: ri,
                    server_reference: sr,
                    reason_string: rs,
                    receive_maximum: rm,
                    topic_alias_maximum: tam,
                    maximum_qos: mq,
                    retain_available: ra,
                    maximum_packet_size: mps,
                    wildcard_subscription_available: wsa,
                    subscription_identifiers_available: sia,
                    shared_subscription_available: ssa,
                    user_properties: up,
                }
            },
        )
}

pub fn publish_props() -> impl Strategy<Value = PublishProperties> {
    (
        of(0u8..=1),
        of(any::<u32>()),
        of(text()),
        of(topic_name()),
        of(bin()),
        nz16(),
        vec(1u32..=268_435_455, 0..3),
        user_props(),
    )
        .prop_map(|(pfi, mei, ct, rt, cd, ta, si, up)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            topic_alias: ta,
            subscription_identifiers: si,
            user_properties: up,
        })
}

pub fn ack_props() -> impl Strategy<Value = AckProperties> {
    (of(text()), user_props()).prop_map(|(rs, up)| AckProperties {
        reason_string: rs,
        user_properties: up,
    })
}

/// Reason codes the table of `t` allows.
pub fn reason_in(t: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|c| c.allowed_in(t))
        .collect();
    proptest::sample::select(codes)
}

fn v5(p: Protocol) -> bool {
    p == Protocol::V5
}

pub fn connect(p: Protocol) -> impl Strategy<Value = Packet> {
    let will = (topic_name(), payload(), qos(), any::<bool>(), will_props()).prop_map(
        move |(topic, payload, qos, retain, props)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties: if v5(p) { props } else { Default::default() },
        },
    );
    (
        any::<bool>(),
        any::<u16>(),
        connect_props(),
        text(),
        of(will),
        of(text()),
        of(bin()),
    )
        .prop_map(move |(clean, ka, props, id, will, user, pass)| {
            // Before 5.0 a password needs a user name [MQTT-3.1.2-22].
            let pass = if v5(p) || user.is_some() { pass } else { None };
            Packet::Connect(Box::new(Connect {
                protocol: p,
                clean_start: clean,
                keep_alive: ka,
                properties: if v5(p) { props } else { Default::default() },
                client_id: id,
                will,
                username: user,
                password: pass,
            }))
        })
}

pub fn connack(p: Protocol) -> impl Strategy<Value = Packet> {
    let v3_codes = proptest::sample::select(vec![
        ReasonCode::Success,
        ReasonCode::UnsupportedProtocolVersion,
        ReasonCode::ClientIdentifierNotValid,
        ReasonCode::ServerUnavailable,
        ReasonCode::BadUserNameOrPassword,
        ReasonCode::NotAuthorized,
    ]);
    (
        any::<bool>(),
        reason_in(PacketType::ConnAck),
        v3_codes,
        connack_props(),
    )
        .prop_map(move |(sp, c5, c3, props)| {
            let code = if v5(p) { c5 } else { c3 };
            Packet::ConnAck(Box::new(ConnAck {
                // [MQTT-3.2.2-6]: only a successful CONNACK has a session.
                session_present: sp && code == ReasonCode::Success,
                code,
                properties: if v5(p) { props } else { Default::default() },
            }))
        })
}

pub fn publish(p: Protocol) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        1..=u16::MAX,
        publish_props(),
        payload(),
    )
        .prop_map(
            move |(dup, qos, retain, topic, drop_topic, id, mut props, payload)| {
                let qos0 = qos == QoS::AtMostOnce;
                let mut topic = topic;
                if v5(p) && drop_topic && props.topic_alias.is_some() {
                    topic = MqttStr::new();
                }
                if !v5(p) {
                    props = Default::default();
                }
                Packet::Publish(Publish {
                    dup: dup && !qos0,
                    qos,
                    retain,
                    topic,
                    packet_id: if qos0 { 0 } else { id },
                    properties: props.into(),
                    payload,
                })
            },
        )
}

pub fn pub_response(p: Protocol) -> impl Strategy<Value = Packet> {
    (
        0..4usize,
        1..=u16::MAX,
        reason_in(PacketType::PubAck),
        reason_in(PacketType::PubRel),
        ack_props(),
    )
        .prop_map(move |(kind, id, r_ack, r_rel, props)| {
            let mut a = PubAck::new(id);
            if v5(p) {
                a.reason = if kind % 2 == 0 { r_ack } else { r_rel };
                a.properties = props;
            }
            match kind {
                0 => Packet::PubAck(a),
                1 => Packet::PubRel(a),
                2 => Packet::PubRec(a),
                _ => Packet::PubComp(a),
            }
        })
}

pub fn subscribe(p: Protocol) -> impl Strategy<Value = Packet> {
    let sub = (topic_filter(), qos(), any::<bool>(), any::<bool>(), 0..3u8).prop_map(
        move |(filter, qos, nl, rap, rh)| {
            let shared = filter.starts_with("$share/");
            let options = if v5(p) {
                SubscribeOptions {
                    qos,
                    no_local: nl && !shared,
                    retain_as_published: rap,
                    retain_handling: match rh {
                        0 => RetainHandling::SendAlways,
                        1 => RetainHandling::SendIfNew,
                        _ => RetainHandling::DoNotSend,
                    },
                }
            } else {
                SubscribeOptions {
                    qos,
                    ..Default::default()
                }
            };
            Subscription { filter, options }
        },
    );
    (
        1..=u16::MAX,
        of(1u32..=268_435_455),
        user_props(),
        vec(sub, 1..5),
    )
        .prop_map(move |(id, si, up, filters)| {
            let properties = if v5(p) {
                SubscribeProperties {
                    subscription_identifier: si,
                    user_properties: up,
                }
            } else {
                Default::default()
            };
            Packet::Subscribe(Subscribe {
                packet_id: id,
                properties,
                filters,
            })
        })
}

pub fn suback(p: Protocol) -> impl Strategy<Value = Packet> {
    let v3 = proptest::sample::select(vec![
        ReasonCode::Success,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::UnspecifiedError,
    ]);
    (
        1..=u16::MAX,
        ack_props(),
        vec(reason_in(PacketType::SubAck), 1..5),
        vec(v3, 1..5),
    )
        .prop_map(move |(id, props, c5, c3)| {
            Packet::SubAck(SubAck {
                packet_id: id,
                properties: if v5(p) { props } else { Default::default() },
                codes: if v5(p) { c5 } else { c3 },
            })
        })
}

pub fn unsubscribe(p: Protocol) -> impl Strategy<Value = Packet> {
    (1..=u16::MAX, user_props(), vec(topic_filter(), 1..5)).prop_map(move |(id, up, filters)| {
        Packet::Unsubscribe(Unsubscribe {
            packet_id: id,
            properties: UnsubscribeProperties {
                user_properties: if v5(p) { up } else { Vec::new() },
            },
            filters,
        })
    })
}

pub fn unsuback(p: Protocol) -> impl Strategy<Value = Packet> {
    (
        1..=u16::MAX,
        ack_props(),
        vec(reason_in(PacketType::UnsubAck), 1..5),
    )
        .prop_map(move |(id, props, codes)| {
            Packet::UnsubAck(if v5(p) {
                UnsubAck {
                    packet_id: id,
                    properties: props,
                    codes,
                }
            } else {
                UnsubAck {
                    packet_id: id,
                    properties: Default::default(),
                    codes: Vec::new(),
                }
            })
        })
}

pub fn disconnect(p: Protocol) -> impl Strategy<Value = Packet> {
    (
        reason_in(PacketType::Disconnect),
        of(any::<u32>()),
        of(text()),
        of(text()),
        user_props(),
    )
        .prop_map(move |(reason, se, sr, rs, up)| {
            Packet::Disconnect(if v5(p) {
                Disconnect {
                    reason,
                    properties: DisconnectProperties {
                        session_expiry_interval: se,
                        server_reference: sr,
                        reason_string: rs,
                        user_properties: up,
                    },
                }
            } else {
                Disconnect::default()
            })
        })
}

pub fn auth() -> impl Strategy<Value = Packet> {
    (
        reason_in(PacketType::Auth),
        of(text()),
        of(bin()),
        of(text()),
        user_props(),
    )
        .prop_map(|(reason, am, ad, rs, up)| {
            Packet::Auth(Box::new(Auth {
                reason,
                properties: AuthProperties {
                    authentication_method: am,
                    authentication_data: ad,
                    reason_string: rs,
                    user_properties: up,
                },
            }))
        })
}

/// Any valid packet of protocol `p`.
pub fn packet(p: Protocol) -> BoxedStrategy<Packet> {
    let mut options: Vec<BoxedStrategy<Packet>> = vec![
        connect(p).boxed(),
        connack(p).boxed(),
        publish(p).boxed(),
        publish(p).boxed(),
        pub_response(p).boxed(),
        subscribe(p).boxed(),
        suback(p).boxed(),
        unsubscribe(p).boxed(),
        unsuback(p).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(p).boxed(),
    ];
    if v5(p) {
        options.push(auth().boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

pub fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::V3_1),
        Just(Protocol::V3_1_1),
        Just(Protocol::V5)
    ]
}

/// A protocol and a valid packet of it.
pub fn any_packet() -> impl Strategy<Value = (Protocol, Packet)> {
    protocol().prop_flat_map(|p| packet(p).prop_map(move |pk| (p, pk)))
}

/// Encodes `packet` for `p` into fresh bytes.
pub fn encode(p: Protocol, packet: &Packet) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::new();
    let n = packet.encode(p, &mut out).unwrap();
    assert_eq!(n, out.len());
    out
}
