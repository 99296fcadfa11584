//! The session state machine driven by arbitrary operation sequences. The
//! first bytes pick the limits, the protocol, enhanced authentication and
//! whether the connection starts connected or in an AUTH exchange (so every
//! handler is reached in every state); the rest is a script of packets (raw
//! bytes through the decoder, or structured ones with fuzzed fields),
//! deliveries, time steps and broker decisions. Every byte the session
//! transmits must decode as a valid packet, and AUTH and success CONNACK
//! carry the CONNECT's Authentication Method or none [MQTT-4.12.0-5]
//! [MQTT-4.12.0-6].
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strata_codec::*;
use strata_session::*;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

const TOPICS: [&str; 4] = ["a", "a/b", "$SYS/x", "long/topic/name/for/aliases"];
const METHOD: &str = "FUZZ-SHA-256";

fn qos(b: u8) -> QoS {
    QoS::from_u8(b % 3).unwrap_or_default()
}

/// What the broker's authenticator sends: data of a size from `decide`
/// (sometimes past the client's Maximum Packet Size), sometimes a Reason
/// String.
fn auth_properties(decide: u8) -> AuthProperties {
    AuthProperties {
        authentication_data: Some(Bytes::from(vec![0u8; usize::from(decide) * 4])),
        reason_string: (decide & 0x20 != 0).then(|| MqttStr::from_static("why")),
        ..Default::default()
    }
}

fn answer_events(s: &mut Session, now: Instant, decide: u8) {
    while let Some(e) = s.poll_event() {
        match e {
            Event::Connect(_) if decide & 8 != 0 && s.auth_method().is_some() => {
                s.auth_continue(now, auth_properties(decide));
            }
            Event::Auth { method, reauth, .. } => {
                assert_eq!(Some(&method), s.auth_method(), "the CONNECT's method");
                assert_eq!(reauth, s.is_connected(), "re-authentication after CONNACK");
                match decide >> 3 & 3 {
                    0 | 3 => s.auth_continue(now, auth_properties(decide)),
                    1 if reauth => s.auth_success(now, auth_properties(decide)),
                    1 => s.accept_authenticated(
                        now,
                        SessionState::new(MqttStr::from_static("fuzz"), 0),
                        decide & 2 != 0,
                        None,
                        auth_properties(decide).authentication_data,
                    ),
                    _ => s.reject(ReasonCode::NotAuthorized),
                }
            }
            Event::Connect(c) => {
                if decide & 1 == 0 {
                    let id = if c.client_id.is_empty() {
                        MqttStr::from_static("assigned")
                    } else {
                        c.client_id.clone()
                    };
                    s.accept(now, SessionState::new(id, 0), decide & 2 != 0, None);
                } else {
                    s.reject(ReasonCode::NotAuthorized);
                }
            }
            Event::Publish { message, packet_id } => {
                if let Some(id) = packet_id {
                    let reason = if decide & 4 == 0 {
                        ReasonCode::Success
                    } else {
                        ReasonCode::NotAuthorized
                    };
                    s.publish_done(id, message.qos, reason);
                }
            }
            Event::Subscribe {
                packet_id, granted, ..
            } => {
                let codes = granted
                    .into_iter()
                    .map(|g| match g {
                        Ok(QoS::AtMostOnce) => ReasonCode::Success,
                        Ok(QoS::AtLeastOnce) => ReasonCode::GrantedQoS1,
                        Ok(QoS::ExactlyOnce) => ReasonCode::GrantedQoS2,
                        Err(c) => c,
                    })
                    .collect();
                s.subscribe_done(packet_id, codes);
            }
            Event::Unsubscribe { packet_id, filters } => {
                s.unsubscribe_done(packet_id, vec![ReasonCode::Success; filters.len()]);
            }
            Event::Closed { .. } => {}
            Event::Dropped { delivery } => {
                assert_ne!(delivery.message.id, 0, "only stored messages");
                assert_ne!(delivery.effective_qos(), QoS::AtMostOnce, "only held copies");
            }
            Event::Sent { packet_id, delivery } => {
                assert_ne!(packet_id, 0);
                assert_ne!(delivery.message.id, 0, "only stored messages");
            }
            Event::Released { id, packet_id } | Event::Completed { id, packet_id } => {
                assert_ne!(id, 0, "only stored messages");
                assert_ne!(packet_id, 0, "a flow has a packet id");
            }
            Event::InboundReleased { packet_id } => assert_ne!(packet_id, 0),
        }
    }
}

fn structured(inp: &mut Input) -> Option<Packet> {
    let kind = inp.byte()? % 10;
    let id = inp.u16()?;
    Some(match kind {
        0 => {
            let q = qos(inp.byte()?);
            let flags = inp.byte()?;
            let mut p = Publish::new(
                MqttStr::from_static(TOPICS[usize::from(flags >> 6)]),
                q,
                Bytes::from_static(b"p"),
            );
            p.packet_id = if q == QoS::AtMostOnce { 0 } else { id.max(1) };
            p.retain = flags & 1 != 0;
            p.dup = flags & 2 != 0 && q != QoS::AtMostOnce;
            if flags & 4 != 0 {
                p.properties.topic_alias = Some(u16::from(flags & 0x38) >> 3);
                if flags & 0x20 != 0 {
                    p.topic = MqttStr::new();
                }
            }
            Packet::Publish(p)
        }
        1 => Packet::PubAck(PubAck::new(id.max(1))),
        2 => Packet::PubRec(PubRec::new(id.max(1))),
        3 => Packet::PubRel(PubRel::new(id.max(1))),
        4 => Packet::PubComp(PubComp::new(id.max(1))),
        5 => Packet::Subscribe(Subscribe {
            packet_id: id.max(1),
            properties: Default::default(),
            filters: vec![Subscription {
                filter: MqttStr::from_static("a/#"),
                options: SubscribeOptions {
                    qos: qos(inp.byte()?),
                    ..Default::default()
                },
            }],
        }),
        6 => Packet::PingReq,
        7 => {
            let mut d = Disconnect::new(if id & 1 == 0 {
                ReasonCode::Success
            } else {
                ReasonCode::DisconnectWithWillMessage
            });
            if id & 2 != 0 {
                d.properties.session_expiry_interval = Some(u32::from(id >> 8));
            }
            Packet::Disconnect(d)
        }
        8 => Packet::Connect(Box::new(Connect::new(
            Protocol::V5,
            MqttStr::from_static("again"),
        ))),
        _ => Packet::Auth(Box::new(Auth {
            reason: [
                ReasonCode::Success,
                ReasonCode::ContinueAuthentication,
                ReasonCode::ReAuthenticate,
            ][usize::from(id % 3)],
            properties: AuthProperties {
                authentication_method: Some(MqttStr::from_static(if id & 4 == 0 {
                    METHOD
                } else {
                    "OTHER"
                })),
                authentication_data: (id & 8 != 0).then(|| Bytes::from_static(b"d")),
                ..Default::default()
            },
        })),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let Some(setup) = inp.byte() else { return };
    let Some(limits) = inp.byte() else { return };
    let config = Arc::new(Config {
        receive_maximum: u16::from(limits & 3) + 1,
        topic_alias_maximum: u16::from(limits >> 2 & 3),
        max_queued_messages: usize::from(limits >> 4 & 3),
        max_inflight: 2,
        enhanced_auth: limits & 0x40 != 0,
        ..Config::default()
    });
    let start = Instant::now();
    let mut now = start;
    let mut s = Session::new(config, now);
    let protocol = match setup % 3 {
        0 => Protocol::V3_1,
        1 => Protocol::V3_1_1,
        _ => Protocol::V5,
    };
    if setup & 4 != 0 {
        let mut c = Connect::new(protocol, MqttStr::from_static("fuzz"));
        c.keep_alive = u16::from(setup >> 4);
        if protocol.is_v5() {
            c.properties.receive_maximum = Some(u16::from(limits & 7) + 1);
            c.properties.topic_alias_maximum = Some(u16::from(setup >> 6));
            c.properties.maximum_packet_size = Some(64 + u32::from(limits));
        }
        if setup & 8 != 0 {
            c.will = Some(LastWill {
                topic: MqttStr::from_static("will"),
                payload: Bytes::new(),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Default::default(),
            });
        }
        // The broker's first answer to a CONNECT naming a method: accept
        // it, refuse it or start an exchange.
        let mut first = 0;
        if protocol.is_v5() && limits & 0x80 != 0 {
            c.properties.authentication_method = Some(MqttStr::from_static(METHOD));
            c.properties.authentication_data = Some(Bytes::from_static(b"first"));
            first = inp.byte().unwrap_or(0);
        }
        s.handle_packet(now, Packet::Connect(Box::new(c)));
        answer_events(&mut s, now, first);
    }
    let mut out = BytesMut::new();
    while let Some(op) = inp.byte() {
        match op % 6 {
            0 => {
                let n = usize::from(inp.byte().unwrap_or(0));
                let mut buf = BytesMut::from(inp.take(n));
                loop {
                    match decode(&mut buf, s.protocol(), s.max_packet_size()) {
                        Ok(Some(p)) => {
                            s.handle_packet(now, p);
                            answer_events(&mut s, now, op);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            s.handle_decode_error(now, &e);
                            break;
                        }
                    }
                }
            }
            1 => {
                now += Duration::from_millis(u64::from(inp.byte().unwrap_or(0)) * 100);
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            2 => {
                let b = inp.byte().unwrap_or(0);
                let mut m = Message {
                    topic: MqttStr::from_static(TOPICS[usize::from(b & 3)]),
                    payload: Bytes::from(vec![0u8; usize::from(b)]),
                    qos: qos(b >> 2),
                    retain: b & 0x10 != 0,
                    properties: Default::default(),
                    received: now,
                    // Stored or not: stored messages raise the durable
                    // store's events.
                    id: u64::from(b & 0x40 != 0) * u64::from(b),
                };
                if b & 0x20 != 0 {
                    m.properties.message_expiry_interval = Some(u32::from(b >> 6));
                }
                s.handle_delivery(
                    now,
                    Delivery {
                        message: Arc::new(m),
                        qos: qos(b >> 4),
                        retain: b & 0x80 != 0,
                        subscription_ids: vec![u32::from(b) + 1],
                        on_subscribe: b & 0x40 != 0,
                    },
                );
            }
            3 => {
                if let Some(p) = structured(&mut inp) {
                    s.handle_packet(now, p);
                }
            }
            4 => s.disconnect(ReasonCode::ServerShuttingDown),
            _ => s.handle_connection_lost(now),
        }
        answer_events(&mut s, now, op >> 3);
        out.clear();
        s.poll_transmit(now, &mut out);
        // Everything sent decodes, in the connection's protocol.
        while !out.is_empty() {
            match decode(&mut out, s.protocol(), MAX_PACKET_SIZE) {
                Ok(Some(Packet::Auth(a))) => {
                    assert!(s.auth_method().is_some(), "AUTH without a method");
                    assert_eq!(a.properties.authentication_method.as_ref(), s.auth_method());
                }
                Ok(Some(Packet::ConnAck(a))) if a.code == ReasonCode::Success => {
                    assert_eq!(a.properties.authentication_method.as_ref(), s.auth_method());
                }
                Ok(Some(_)) => {}
                other => panic!("session sent bytes that do not decode: {other:?}"),
            }
        }
    }
});
