//! [`Session`]: one network connection's protocol state machine.
//!
//! Methods fall in four groups, in the vocabulary of `quinn-proto`:
//! - `handle_*`: input. Packets from the client ([`Session::handle_packet`]),
//!   bytes that failed to decode ([`Session::handle_decode_error`]), messages
//!   routed to this client ([`Session::handle_delivery`]), and the passing of
//!   time ([`Session::handle_timeout`]).
//! - commands: the broker's answers to events ([`Session::accept`],
//!   [`Session::accept_authenticated`], [`Session::reject`],
//!   [`Session::auth_continue`], [`Session::auth_success`],
//!   [`Session::publish_done`], [`Session::subscribe_done`],
//!   [`Session::unsubscribe_done`]) and its own decisions
//!   ([`Session::disconnect`]).
//! - `poll_*`: output. [`Session::poll_event`] for what the broker must do,
//!   [`Session::poll_transmit`] for bytes to write, [`Session::poll_timeout`]
//!   for when to call `handle_timeout` next.
//! - getters.
//!
//! Call order: after any input or command, drain `poll_event` and act on
//! each event (the Connect event, and an Auth event before CONNACK, must be
//! answered before more packets are handled), then `poll_transmit` and write the
//! bytes, then re-arm the timer from `poll_timeout`. Once [`Session::is_closed`]
//! is true, write what `poll_transmit` gives and close the connection.
//!
//! Enhanced authentication (section 4.12, with [`Config::enhanced_auth`] and
//! a 5.0 CONNECT that names an Authentication Method):
//! - At CONNECT: the Connect event carries the method and data. Answer with
//!   `accept` / `accept_authenticated` (CONNACK with the method), `reject`
//!   (CONNACK with the code, then close) or `auth_continue` (AUTH 0x18). After
//!   `auth_continue`, keep handing in packets: the client's AUTH 0x18 comes
//!   back as [`Event::Auth`] with `reauth: false`, which needs the same three
//!   answers, again before more packets are handled. The client may send only
//!   AUTH or DISCONNECT until CONNACK [MQTT-3.1.2-30]; anything else is a
//!   Protocol Error (CONNACK 0x82, close). The connect timeout runs until
//!   CONNACK, whatever the exchange's length.
//! - After CONNACK: AUTH 0x19 from the client is [`Event::Auth`] with
//!   `reauth: true`. Answer it, at any later time, with `auth_continue`,
//!   `auth_success` (AUTH 0x00) or `reject` (DISCONNECT with the code, then
//!   close); other packets are handled as usual meanwhile.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_codec::{
    AckProperties, ConnAck, ConnAckProperties, Connect, DecodeError, LastWill, MqttStr, Packet,
    PacketType, Protocol, QoS, ReasonCode, SubAck, Subscription, UnsubAck,
};

use crate::auth::Exchange;
use crate::config::Config;
use crate::message::{Delivery, Message};
use crate::outbound::Aliases;
use crate::state::SessionState;
use crate::timer::{Timer, Timers};

/// What the broker must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A CONNECT passed the protocol checks. Answer with [`Session::accept`]
    /// or [`Session::reject`], or, when it names an Authentication Method
    /// under [`Config::enhanced_auth`], [`Session::auth_continue`]. An empty
    /// client id from a 5.0 client needs an assigned one.
    Connect(Box<Connect>),
    /// An Application Message to route. When `packet_id` is set (QoS 1 or
    /// 2), call [`Session::publish_done`] once it is routed (and, with a
    /// durable store, stored): the acknowledgement waits for that.
    Publish {
        message: Message,
        packet_id: Option<u16>,
    },
    /// Subscriptions to add. `granted` holds, per filter, the QoS to grant or
    /// the failure code the session already determined. Answer with
    /// [`Session::subscribe_done`].
    Subscribe {
        packet_id: u16,
        subscription_id: Option<u32>,
        filters: Vec<Subscription>,
        granted: Vec<Result<QoS, ReasonCode>>,
    },
    /// Subscriptions to remove. Answer with [`Session::unsubscribe_done`].
    Unsubscribe {
        packet_id: u16,
        filters: Vec<MqttStr>,
    },
    /// The connection is over. `will` is set when the Will Message must be
    /// published (now, or after `delay`, unless the session resumes first)
    /// [MQTT-3.1.2-8]. `session_expiry` is the interval in force at the end.
    Closed {
        reason: ReasonCode,
        will: Option<Will>,
        session_expiry: u32,
    },
    /// An AUTH from the client that the broker must judge (section 4.12):
    /// `method` is the CONNECT's Authentication Method, which the client
    /// repeated [MQTT-4.12.0-5]. With `reauth: false` the CONNECT is still
    /// pending: answer with [`Session::auth_continue`], [`Session::accept`]
    /// (or [`Session::accept_authenticated`]) or [`Session::reject`] before
    /// handing in more packets. With `reauth: true` the client asked to
    /// re-authenticate [MQTT-4.12.1-1]: answer with `auth_continue`,
    /// [`Session::auth_success`] or `reject` (DISCONNECT, e.g. 0x87)
    /// [MQTT-4.12.1-2]; packets keep flowing in the meantime.
    Auth {
        method: MqttStr,
        data: Option<Bytes>,
        reauth: bool,
    },
    /// The session dropped this copy of a stored message before it went
    /// out under a packet id (it expired, overflowed the queue, or was too
    /// large for the client): the durable log may forget that copy, which
    /// the delivery's terms name. Only for messages with a non-zero
    /// [`Message::id`] and copies of QoS 1 or 2 (a QoS 0 copy is sent at
    /// once and never held); a copy sent on subscribing is reported too
    /// ([`Delivery::on_subscribe`] tells them apart).
    Dropped { delivery: Delivery },
    /// The flow of the stored message `id` under `packet_id` ended: it was
    /// acknowledged, or failed with an error reason code. Named by both
    /// ids because a session can hold two copies of one message, from a
    /// shared and a non-shared subscription (section 4.8.2).
    Completed { id: u64, packet_id: u16 },
    /// The stored message of `delivery` (a non-zero [`Message::id`]) went
    /// out for the first time, with QoS 1 or 2, under `packet_id`. With a
    /// durable store, a QoS 2 send is made durable before the PUBLISH is
    /// written, so that a restart resends it under the same packet id
    /// [MQTT-4.4.0-1] and the client's duplicate check holds
    /// [MQTT-4.3.3-10].
    Sent { packet_id: u16, delivery: Delivery },
    /// PUBREC came for the stored QoS 2 message `id` sent under
    /// `packet_id`, and PUBREL is queued.
    /// With a durable store this is made durable before the PUBREL is
    /// written: after a restart the server must resend PUBREL, not the
    /// PUBLISH the client has already completed [MQTT-4.3.3-5].
    Released { id: u64, packet_id: u16 },
    /// PUBREL released inbound QoS 2 packet id `packet_id`, and PUBCOMP is
    /// queued. With a durable store this is made durable before the PUBCOMP
    /// is written: a restart that still held the id would take the
    /// client's next message under it for a duplicate.
    InboundReleased { packet_id: u16 },
}

/// A Will Message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub message: Message,
    /// The Will Delay Interval [MQTT-3.1.3-9].
    pub delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    AwaitConnect,
    /// The broker owes an answer to a Connect event, or to an Auth event
    /// before CONNACK.
    AwaitDecision,
    /// The server sent AUTH 0x18 before CONNACK; the client owes an AUTH.
    AwaitAuth,
    Connected,
    Closed,
}

/// One connection's protocol state. See the module docs for the call order.
#[derive(Debug)]
pub struct Session {
    pub(crate) config: Arc<Config>,
    pub(crate) phase: Phase,
    pub(crate) protocol: Protocol,
    pub(crate) keep_alive: u16,
    pub(crate) timers: Timers,
    /// The client's limits (5.0 CONNECT properties).
    pub(crate) client_receive_maximum: u16,
    pub(crate) client_max_packet_size: u32,
    /// Whether the client allows Reason Strings and User Properties on
    /// packets other than PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29].
    pub(crate) problem_information: bool,
    /// Acknowledgements freed slots in the in-flight window that the next
    /// [`Session::poll_event`] or [`Session::poll_transmit`] fills: one pass
    /// for a read's worth of PUBACKs rather than one each.
    pub(crate) pump_due: bool,
    /// Topic Aliases both ways; boxed and made on first use, as most
    /// connections use none.
    pub(crate) aliases: Option<Box<Aliases>>,
    /// Inbound QoS 1 and 2 PUBLISH packets not yet completed, for Receive
    /// Maximum [MQTT-3.3.4-7].
    pub(crate) inbound_unacked: u16,
    /// Inbound QoS 2 packet ids given to the broker and not yet `publish_done`.
    pub(crate) inbound_qos2_pending: Vec<u16>,
    /// Boxed: most connections have none, and every connection task holds
    /// a `Session`.
    pub(crate) will: Option<Box<LastWill>>,
    /// The enhanced authentication of a CONNECT that named a method; boxed
    /// and made only then, as most connections have none.
    pub(crate) auth: Option<Box<Exchange>>,
    /// Session Expiry Interval in force (5.0; 3.x: 0 or `u32::MAX`).
    pub(crate) session_expiry: u32,
    /// The Session Expiry Interval the client asked for in CONNECT.
    pub(crate) requested_expiry: u32,
    pub(crate) state: Option<SessionState>,
    /// Packets to send, encoded as they are queued (a delivery's PUBLISH
    /// goes straight from the message into these bytes).
    pub(crate) out: BytesMut,
    pub(crate) events: VecDeque<Event>,
    /// The latest time any input carried.
    pub(crate) now: Instant,
}

impl Session {
    /// A new connection at `now`, waiting for CONNECT.
    pub fn new(config: Arc<Config>, now: Instant) -> Session {
        let mut timers = Timers::default();
        timers.set(Timer::Connect, now + config.connect_timeout);
        Session {
            config,
            phase: Phase::AwaitConnect,
            protocol: Protocol::V3_1_1,
            keep_alive: 0,
            timers,
            client_receive_maximum: u16::MAX,
            client_max_packet_size: u32::MAX,
            problem_information: true,
            pump_due: false,
            aliases: None,
            inbound_unacked: 0,
            inbound_qos2_pending: Vec::new(),
            will: None,
            auth: None,
            session_expiry: 0,
            requested_expiry: 0,
            state: None,
            out: BytesMut::new(),
            events: VecDeque::new(),
            now,
        }
    }

    // ---- getters ----

    /// The protocol version, once CONNECT arrived.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The largest packet this connection accepts, for the decoder.
    pub fn max_packet_size(&self) -> usize {
        self.config.max_packet_size as usize
    }

    /// The client id, once accepted.
    pub fn client_id(&self) -> Option<&MqttStr> {
        self.state.as_ref().map(|s| &s.client_id)
    }

    /// True once the connection must close: write what `poll_transmit`
    /// gives, then close it.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// True between `accept` and close.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The persistent session state.
    pub fn state(&self) -> Option<&SessionState> {
        self.state.as_ref()
    }

    /// Takes the persistent state out when the connection is over, to keep
    /// it for the client's next connection.
    pub fn take_state(&mut self) -> Option<SessionState> {
        let mut state = self.state.take()?;
        // A QoS 2 PUBLISH handed to the broker whose PUBREC had not gone out
        // when the connection ended was routed already: a resend of it is
        // a duplicate [MQTT-4.3.3-10].
        state
            .inbound_qos2
            .extend(self.inbound_qos2_pending.drain(..));
        Some(state)
    }

    // ---- input ----

    /// A packet from the client.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        self.now = now;
        if self.phase != Phase::Connected {
            return self.handle_packet_before_connack(now, packet);
        }
        self.touch(now);
        match packet {
            // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
            Packet::Connect(_) => self.protocol_error(ReasonCode::ProtocolError, "second CONNECT"),
            Packet::Publish(p) => self.on_publish(now, p),
            Packet::PubAck(a) => self.on_puback(a),
            Packet::PubRec(a) => self.on_pubrec(now, a),
            Packet::PubRel(a) => self.on_pubrel(a),
            Packet::PubComp(a) => self.on_pubcomp(a),
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => self.queue(Packet::PingResp),
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Auth(a) => self.on_auth(*a),
            // Packets only a server sends.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                let why = "a packet only a server sends";
                self.protocol_error(ReasonCode::ProtocolError, why)
            }
        }
    }

    /// A packet while no CONNACK has gone out, or after the close.
    fn handle_packet_before_connack(&mut self, now: Instant, packet: Packet) {
        match self.phase {
            Phase::AwaitConnect => match packet {
                Packet::Connect(c) => self.on_connect(now, c),
                // [MQTT-3.1.0-1]: the first packet must be CONNECT.
                _ => self.close_silently(ReasonCode::ProtocolError),
            },
            Phase::AwaitDecision => {
                // The broker answers Connect and Auth before handing in more
                // packets.
                debug_assert!(
                    false,
                    "packet before the Connect or Auth event was answered"
                );
                self.protocol_error(ReasonCode::ProtocolError, "")
            }
            Phase::AwaitAuth => self.on_packet_while_authenticating(now, packet),
            Phase::Connected | Phase::Closed => {}
        }
    }

    /// Bytes from the client that did not decode: the spec's reaction, in
    /// one place (section 4.13). In 5.0 a CONNACK (for a bad CONNECT) or a
    /// DISCONNECT carries the reason code; 3.1.1 answers an unsupported
    /// protocol level with return code 1 [MQTT-3.1.2-2] and otherwise closes
    /// [MQTT-4.8.0-1].
    pub fn handle_decode_error(&mut self, now: Instant, err: &DecodeError) {
        self.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        let code = err.reason_code();
        let why = err.to_string();
        if self.phase == Phase::AwaitConnect {
            let is_connect = err.packet == Some(PacketType::Connect);
            match err.protocol {
                Some(Protocol::V5) if is_connect => {
                    self.protocol = Protocol::V5;
                    self.send_connack_error(code, &why);
                }
                _ if is_connect && code == ReasonCode::UnsupportedProtocolVersion => {
                    // An unknown level: answer in the 3.1.1 format, which
                    // every version reads [MQTT-3.1.2-2].
                    self.protocol = Protocol::V3_1_1;
                    self.send_connack_error(code, "");
                }
                _ => self.close_silently(code),
            }
            return;
        }
        self.protocol_error(code, &why);
    }

    /// The network connection broke (end of stream, I/O error): close
    /// without sending anything; the will is due [MQTT-3.1.2-8].
    pub fn handle_connection_lost(&mut self, now: Instant) {
        self.now = now;
        self.close_silently(ReasonCode::UnspecifiedError);
    }

    /// Time passed: fire the timers due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(t) = self.timers.expired(now) {
            match t {
                // No CONNECT in time: close without a word.
                Timer::Connect => self.close_silently(ReasonCode::MaximumConnectTime),
                // [MQTT-3.1.2-22] (3.1.1: [MQTT-3.1.2-24]): as if the network
                // failed, so no CONNACK in the midst of an AUTH exchange.
                Timer::KeepAlive if self.phase != Phase::Connected => {
                    self.close_silently(ReasonCode::KeepAliveTimeout)
                }
                Timer::KeepAlive => self.protocol_error(ReasonCode::KeepAliveTimeout, ""),
                // 5.0: DISCONNECT 0x87; 3.1.1: close.
                Timer::Credentials => self.disconnect(ReasonCode::NotAuthorized),
            }
        }
    }

    // ---- commands ----

    /// QoS 1/2 deliveries waiting for room in the in-flight window.
    pub fn queued_len(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.queue.len())
    }

    /// Whether QoS 1 or 2 messages sent to the client wait for its
    /// acknowledgement.
    pub fn awaits_acks(&self) -> bool {
        self.state.as_ref().is_some_and(|s| !s.outbound.is_empty())
    }

    /// The granted Session Expiry Interval (5.0; 3.x: 0 for a clean
    /// session, `u32::MAX` for a persistent one), known from the CONNECT on.
    pub fn session_expiry(&self) -> u32 {
        self.session_expiry
    }

    /// Reports a copy of a stored message dropped before it went out under
    /// a packet id (a QoS 0 copy is never held: nothing to report).
    pub(crate) fn done_with(&mut self, d: Delivery) {
        if d.message.id != 0 && d.effective_qos() != QoS::AtMostOnce {
            self.events.push_back(Event::Dropped { delivery: d });
        }
    }

    /// Reports the end of a stored message's flow under `packet_id`.
    pub(crate) fn completed(&mut self, m: &Message, packet_id: u16) {
        if m.id != 0 {
            self.events.push_back(Event::Completed {
                id: m.id,
                packet_id,
            });
        }
    }

    /// Accepts the pending CONNECT. `state` is the resumed session (with
    /// `session_present`) or a new one; `assigned_id` is set when the server
    /// assigned the client id (5.0 Assigned Client Identifier). After
    /// enhanced authentication the CONNACK carries the CONNECT's
    /// Authentication Method [MQTT-4.12.0-5]; ignored while an AUTH from the
    /// client is awaited.
    pub fn accept(
        &mut self,
        now: Instant,
        state: SessionState,
        session_present: bool,
        assigned_id: Option<MqttStr>,
    ) {
        self.accept_authenticated(now, state, session_present, assigned_id, None);
    }

    /// [`Session::accept`], with Authentication Data for the CONNACK, which
    /// goes only where the CONNECT named a method [MQTT-4.12.0-6]. A CONNACK
    /// that the data makes larger than the client's Maximum Packet Size
    /// [MQTT-3.1.2-24] cannot go: the connection is refused with 0x80
    /// instead, and `state` is kept for [`Session::take_state`].
    pub fn accept_authenticated(
        &mut self,
        now: Instant,
        mut state: SessionState,
        session_present: bool,
        assigned_id: Option<MqttStr>,
        auth_data: Option<Bytes>,
    ) {
        if self.phase != Phase::AwaitDecision {
            return;
        }
        self.now = now;
        state.expiry_interval = self.session_expiry;
        let mut props = ConnAckProperties::default();
        if let Some(x) = self.auth.as_deref_mut() {
            x.done();
            props.authentication_method = Some(x.method.clone());
            props.authentication_data = auth_data;
        }
        if self.protocol.is_v5() {
            let c = &self.config;
            props.assigned_client_identifier = assigned_id;
            props.receive_maximum = Some(c.receive_maximum);
            props.maximum_packet_size = Some(c.max_packet_size);
            if c.topic_alias_maximum > 0 {
                props.topic_alias_maximum = Some(c.topic_alias_maximum);
            }
            if c.maximum_qos != QoS::ExactlyOnce {
                props.maximum_qos = Some(c.maximum_qos.min(QoS::AtLeastOnce));
            }
            if !c.retain_available {
                props.retain_available = Some(false);
            }
            if !c.wildcard_subscription_available {
                props.wildcard_subscription_available = Some(false);
            }
            if !c.subscription_identifiers_available {
                props.subscription_identifiers_available = Some(false);
            }
            if !c.shared_subscription_available {
                props.shared_subscription_available = Some(false);
            }
            if let Some(k) = c.server_keep_alive {
                props.server_keep_alive = Some(k);
            }
            if self.session_expiry != self.requested_expiry {
                props.session_expiry_interval = Some(self.session_expiry);
            }
        }
        // [MQTT-3.2.2-2]/[MQTT-3.2.2-3]: Session Present only with a resumed
        // session.
        let connack = Packet::ConnAck(Box::new(ConnAck {
            session_present,
            code: ReasonCode::Success,
            properties: props,
        }));
        // Kept on a refusal too, for `take_state`: a resumed session's
        // messages must not be lost with the connection.
        self.state = Some(state);
        if self.auth.is_none() {
            self.queue(connack);
        } else if !self.queue_if_fits(connack) {
            return;
        }
        self.phase = Phase::Connected;
        self.timers.clear(Timer::Connect);
        self.touch(now);
        self.resend_inflight(now);
        self.pump(now);
    }

    /// Refuses the pending CONNECT with `code` (CONNACK, then close)
    /// [MQTT-3.2.2-7] (3.1.1: [MQTT-3.2.2-5]), also in the midst of an AUTH
    /// exchange [MQTT-4.12.0-4]. During a re-authentication it fails it:
    /// DISCONNECT with `code`, then close, as [`Session::disconnect`]
    /// [MQTT-4.12.1-2]. Otherwise ignored.
    pub fn reject(&mut self, code: ReasonCode) {
        match self.phase {
            Phase::AwaitConnect | Phase::AwaitDecision | Phase::AwaitAuth => {
                self.send_connack_error(code, "")
            }
            Phase::Connected if self.auth.as_ref().is_some_and(|x| x.is_under_way()) => {
                self.protocol_error(code, "")
            }
            Phase::Connected | Phase::Closed => {}
        }
    }

    /// The broker routed (and stored) the inbound PUBLISH `packet_id`:
    /// acknowledge it with `reason` (5.0; 0x10 No matching subscribers, or a
    /// failure such as 0x87 Not authorized).
    pub fn publish_done(&mut self, packet_id: u16, qos: QoS, reason: ReasonCode) {
        if self.phase != Phase::Connected {
            return;
        }
        let ack = self.ack(packet_id, reason);
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.inbound_unacked = self.inbound_unacked.saturating_sub(1);
                self.queue(Packet::PubAck(ack));
            }
            QoS::ExactlyOnce => {
                self.inbound_qos2_pending.retain(|&id| id != packet_id);
                if reason.is_error() {
                    // A failed PUBREC ends the flow [MQTT-4.3.3-9]: no PUBREL
                    // will come for it.
                    self.inbound_unacked = self.inbound_unacked.saturating_sub(1);
                } else if let Some(s) = &mut self.state {
                    s.inbound_qos2.insert(packet_id);
                }
                self.queue(Packet::PubRec(ack));
            }
        }
    }

    /// The broker applied a SUBSCRIBE: send SUBACK with one code per filter.
    pub fn subscribe_done(&mut self, packet_id: u16, codes: Vec<ReasonCode>) {
        if self.phase != Phase::Connected {
            return;
        }
        self.queue(Packet::SubAck(SubAck {
            packet_id,
            properties: AckProperties::default(),
            codes,
        }));
    }

    /// The broker applied an UNSUBSCRIBE: send UNSUBACK.
    pub fn unsubscribe_done(&mut self, packet_id: u16, codes: Vec<ReasonCode>) {
        if self.phase != Phase::Connected {
            return;
        }
        let codes = if self.protocol.is_v5() {
            codes
        } else {
            Vec::new()
        };
        self.queue(Packet::UnsubAck(UnsubAck {
            packet_id,
            properties: AckProperties::default(),
            codes,
        }));
    }

    /// The server ends the connection: DISCONNECT with `reason` in 5.0
    /// (0x8B shutting down, 0x8E session taken over, ...), then close. The
    /// Will Message is published, as for any close the client did not ask for.
    /// The client's credentials are good until `at` (a token's expiry):
    /// then the connection ends as [`Session::disconnect`] with 0x87 Not
    /// authorized. `None` lifts the limit (a re-authentication without
    /// one).
    pub fn credentials_expire(&mut self, at: Option<Instant>) {
        match at {
            Some(at) => self.timers.set(Timer::Credentials, at),
            None => self.timers.clear(Timer::Credentials),
        }
    }

    pub fn disconnect(&mut self, reason: ReasonCode) {
        if self.phase == Phase::Connected {
            self.protocol_error(reason, "");
        } else if self.phase != Phase::Closed {
            self.close_silently(reason);
        }
    }

    // ---- output ----

    /// Fills the in-flight window, if acknowledgements left it to refill.
    fn refill_window(&mut self, now: Instant) {
        if std::mem::take(&mut self.pump_due) {
            self.pump(now);
        }
    }

    /// Whether events are queued now. A refill of the in-flight window
    /// that acknowledgements left pending may add more when
    /// [`Session::poll_event`] is called, so a broker that journals sends
    /// must drain `poll_event` before [`Session::poll_transmit`], whatever
    /// this says.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event for the broker. Slots that acknowledgements freed in
    /// the in-flight window are filled first, so the events include every
    /// send the packets to transmit will carry (a durable store records
    /// them before they go out).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.refill_window(self.now);
        let e = self.events.pop_front();
        if e.is_none() {
            release_if_small(&mut self.events);
        }
        e
    }

    /// Encodes every pending packet into `out`; returns how many bytes were
    /// added. Packets larger than the client's Maximum Packet Size were
    /// already dropped [MQTT-3.1.2-25].
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        self.refill_window(now);
        let n = self.out.len();
        if out.is_empty() {
            // The caller takes the buffer itself: an idle session then holds
            // none.
            std::mem::swap(out, &mut self.out);
        } else {
            out.extend_from_slice(&self.out);
            self.out.clear();
        }
        n
    }

    /// Encodes a packet for sending.
    pub(crate) fn queue(&mut self, mut packet: Packet) {
        if self.protocol.is_v5() {
            self.fit_problem_information(&mut packet);
        }
        // Encoding fails only for packets the session built wrongly; a
        // debug build says so, a release build drops the packet.
        let r = packet.encode(self.protocol, &mut self.out);
        debug_assert!(r.is_ok(), "{r:?} for {packet:?}");
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

/// Frees an empty queue's buffer when it is small: an idle connection then
/// holds none, while a busy one keeps the capacity it grew to.
fn release_if_small<T>(q: &mut VecDeque<T>) {
    if q.is_empty() && q.capacity() > 0 && q.capacity() <= 8 {
        *q = VecDeque::new();
    }
}
