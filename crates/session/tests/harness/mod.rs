//! A virtual-clock driver for one `Session`: packets in, decoded packets
//! and events out. No sockets.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_codec::*;
use strata_session::*;

pub struct Harness {
    pub session: Session,
    pub now: Instant,
    pub protocol: Protocol,
    pub events: Vec<Event>,
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        let now = Instant::now();
        Harness {
            session: Session::new(Arc::new(config), now),
            now,
            protocol: Protocol::V5,
            events: Vec::new(),
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        while let Some(at) = self.session.poll_timeout() {
            if at > self.now {
                break;
            }
            self.session.handle_timeout(self.now);
        }
        self.drain_events();
    }

    pub fn send(&mut self, p: Packet) {
        if let Packet::Connect(c) = &p {
            self.protocol = c.protocol;
        }
        // Through the real codec, as the broker does.
        let mut buf = BytesMut::new();
        p.encode(self.protocol, &mut buf).unwrap();
        match decode(&mut buf, self.protocol, self.session.max_packet_size()) {
            Ok(Some(p)) => self.session.handle_packet(self.now, p),
            Ok(None) => panic!("incomplete"),
            Err(e) => self.session.handle_decode_error(self.now, &e),
        }
        self.drain_events();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        match decode(&mut buf, self.protocol, self.session.max_packet_size()) {
            Ok(Some(p)) => self.session.handle_packet(self.now, p),
            Ok(None) => panic!("incomplete"),
            Err(e) => self.session.handle_decode_error(self.now, &e),
        }
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Everything the session wants to send, decoded.
    pub fn received(&mut self) -> Vec<Packet> {
        let mut out = BytesMut::new();
        self.session.poll_transmit(self.now, &mut out);
        let mut packets = Vec::new();
        while let Some(p) = decode(&mut out, self.protocol, MAX_PACKET_SIZE).unwrap() {
            packets.push(p);
        }
        assert!(out.is_empty());
        packets
    }

    /// CONNECT, accept as a new session, and check the CONNACK.
    pub fn connect(&mut self, c: Connect) -> ConnAck {
        self.send(Packet::Connect(Box::new(c)));
        let ev = self.take_events();
        let Some(Event::Connect(c)) = ev.first() else {
            panic!("no Connect event: {ev:?}")
        };
        let id = if c.client_id.is_empty() {
            MqttStr::from_static("assigned-1")
        } else {
            c.client_id.clone()
        };
        let assigned = c.client_id.is_empty().then(|| id.clone());
        self.session
            .accept(self.now, SessionState::new(id, 0), false, assigned);
        match self.received().as_slice() {
            [Packet::ConnAck(a)] => (**a).clone(),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// The session as a new connection resumes it: the old one's state
    /// handed to a fresh `Session` accepting `c` (made Clean Start 0) with
    /// Session Present.
    pub fn resume(&mut self, mut c: Connect) -> Harness {
        let state = self.session.take_state().expect("a session state");
        let mut h = Harness::new(Config::default());
        h.now = self.now;
        c.clean_start = false;
        h.send(Packet::Connect(Box::new(c)));
        h.take_events();
        h.session.accept(h.now, state, true, None);
        h
    }

    pub fn deliver(&mut self, topic: &'static str, qos: QoS, sub_qos: QoS) -> QueueOutcome {
        let d = delivery(self.now, topic, qos, sub_qos);
        self.session.handle_delivery(self.now, d)
    }
}

pub fn connect(p: Protocol, id: &'static str) -> Connect {
    Connect::new(p, MqttStr::from_static(id))
}

pub fn message(now: Instant, topic: &'static str, qos: QoS) -> Message {
    Message {
        topic: MqttStr::from_static(topic),
        payload: Bytes::from_static(b"payload"),
        qos,
        retain: false,
        properties: Default::default(),
        received: now,
        id: 0,
    }
}

pub fn delivery(now: Instant, topic: &'static str, qos: QoS, sub_qos: QoS) -> Delivery {
    Delivery {
        message: Arc::new(message(now, topic, qos)),
        qos: sub_qos,
        retain: false,
        subscription_ids: Vec::new(),
        on_subscribe: false,
    }
}

/// A delivery of `m` at its own QoS.
pub fn delivery_of(m: Message) -> Delivery {
    Delivery {
        qos: m.qos,
        message: Arc::new(m),
        retain: false,
        subscription_ids: Vec::new(),
        on_subscribe: false,
    }
}

pub fn publish(topic: &'static str, qos: QoS, id: u16) -> Packet {
    Packet::Publish(Publish {
        packet_id: id,
        ..Publish::new(MqttStr::from_static(topic), qos, Bytes::from_static(b"x"))
    })
}

pub fn disconnect_reason(packets: &[Packet]) -> Option<ReasonCode> {
    packets.iter().find_map(|p| match p {
        Packet::Disconnect(d) => Some(d.reason),
        _ => None,
    })
}
