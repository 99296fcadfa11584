//! Enhanced authentication (section 4.12): the AUTH exchange before CONNACK
//! and re-authentication after it. The session keeps the exchange's order,
//! method and reason codes; the broker judges the Authentication Data.

use std::time::Instant;

use strata_codec::{Auth, AuthProperties, MqttStr, Packet, Protocol, ReasonCode};

use crate::session::{Event, Phase, Session};

/// Who owes the next step of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// No exchange is under way.
    Nobody,
    /// A CONNECT or AUTH from the client went up as an event.
    Broker,
    /// The server sent AUTH 0x18.
    Client,
}

/// The CONNECT's Authentication Method and where its exchange stands.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// Kept for the connection's life: copied out of the read buffer.
    pub(crate) method: MqttStr,
    turn: Turn,
}

impl Exchange {
    /// The exchange ended in success.
    pub(crate) fn done(&mut self) {
        self.turn = Turn::Nobody;
    }

    pub(crate) fn is_under_way(&self) -> bool {
        self.turn != Turn::Nobody
    }
}

impl Session {
    /// The CONNECT's Authentication Method, when the broker runs enhanced
    /// authentication for this connection.
    pub fn auth_method(&self) -> Option<&MqttStr> {
        self.auth.as_ref().map(|x| &x.method)
    }

    /// A 5.0 CONNECT named `method` and the broker judges it: the Connect
    /// event is the first step, so the broker has the turn.
    pub(crate) fn start_auth(&mut self, method: &MqttStr) {
        self.auth = Some(Box::new(Exchange {
            method: method.detach(),
            turn: Turn::Broker,
        }));
    }

    /// A packet while the server waits for the client's AUTH before CONNACK.
    pub(crate) fn on_packet_while_authenticating(&mut self, now: Instant, packet: Packet) {
        self.touch(now);
        match packet {
            Packet::Auth(a) => self.on_auth(*a),
            // The client may give up [MQTT-3.1.2-30]; no CONNACK went out,
            // so there is no will to publish.
            Packet::Disconnect(d) => self.close_silently(d.reason),
            other => {
                // [MQTT-3.1.2-30]: only AUTH or DISCONNECT until CONNACK.
                let why = format!(
                    "{} before CONNACK, during authentication",
                    other.packet_type().name()
                );
                self.protocol_error(ReasonCode::ProtocolError, &why)
            }
        }
    }

    /// AUTH from the client. Errors go out as CONNACK before CONNACK and as
    /// DISCONNECT after ([`Session::protocol_error`] knows which).
    pub(crate) fn on_auth(&mut self, a: Auth) {
        let connected = self.phase == Phase::Connected;
        let Some(x) = self.auth.as_deref_mut() else {
            // [MQTT-4.12.0-7]: nothing to authenticate against.
            let why = "AUTH without an Authentication Method in CONNECT";
            return self.protocol_error(ReasonCode::ProtocolError, why);
        };
        let Auth { reason, properties } = a;
        // [MQTT-4.12.0-5] [MQTT-4.12.1-1]
        if properties.authentication_method.as_ref() != Some(&x.method) {
            let why = format!(
                "AUTH with method {:?}, not the CONNECT's {:?}",
                properties.authentication_method.as_deref().unwrap_or(""),
                x.method.as_str()
            );
            return self.protocol_error(ReasonCode::ProtocolError, &why);
        }
        // 0x18 answers the server's 0x18 [MQTT-4.12.0-3]; 0x19 starts a
        // re-authentication, only after CONNACK and when none is under way;
        // 0x00 only a server sends.
        let expected = match x.turn {
            Turn::Client => Some(ReasonCode::ContinueAuthentication),
            Turn::Nobody if connected => Some(ReasonCode::ReAuthenticate),
            Turn::Nobody | Turn::Broker => None,
        };
        if Some(reason) != expected {
            let why = match x.turn {
                Turn::Broker => "AUTH while the server has yet to answer the last one",
                Turn::Client => "AUTH that does not continue the exchange",
                Turn::Nobody => "AUTH that does not start a re-authentication",
            };
            return self.protocol_error(ReasonCode::ProtocolError, why);
        }
        x.turn = Turn::Broker;
        let method = x.method.clone();
        if !connected {
            self.phase = Phase::AwaitDecision;
        }
        self.events.push_back(Event::Auth {
            method,
            data: properties.authentication_data,
            reauth: connected,
        });
    }

    // ---- commands ----

    /// Answers a Connect or Auth event by asking the client for more: AUTH
    /// 0x18 [MQTT-4.12.0-2] with the CONNECT's Authentication Method
    /// [MQTT-4.12.0-5] (whatever `properties` holds there) and the rest of
    /// `properties` (Authentication Data, Reason String, User Properties).
    /// The client's answer comes as [`Event::Auth`]. Ignored unless such an
    /// event awaits an answer. An AUTH too large for the client's Maximum
    /// Packet Size even without Reason String and User Properties ends the
    /// connection: CONNACK 0x80 before CONNACK, DISCONNECT 0x95 after.
    pub fn auth_continue(&mut self, now: Instant, properties: AuthProperties) {
        self.now = now;
        if !self.brokers_turn() {
            return;
        }
        if self.send_auth(ReasonCode::ContinueAuthentication, properties) {
            if let Some(x) = self.auth.as_deref_mut() {
                x.turn = Turn::Client;
            }
            if self.phase == Phase::AwaitDecision {
                self.phase = Phase::AwaitAuth;
            }
        }
    }

    /// Ends a re-authentication in success: AUTH 0x00 with the CONNECT's
    /// Authentication Method [MQTT-4.12.0-5] and the rest of `properties`.
    /// Ignored unless an [`Event::Auth`] with `reauth: true` awaits an
    /// answer (at CONNECT, `accept` ends the exchange).
    pub fn auth_success(&mut self, now: Instant, properties: AuthProperties) {
        self.now = now;
        if self.phase != Phase::Connected || !self.brokers_turn() {
            return;
        }
        if self.send_auth(ReasonCode::Success, properties)
            && let Some(x) = self.auth.as_deref_mut()
        {
            x.done();
        }
    }

    fn brokers_turn(&self) -> bool {
        matches!(self.phase, Phase::AwaitDecision | Phase::Connected)
            && self.auth.as_ref().is_some_and(|x| x.turn == Turn::Broker)
    }

    /// Queues AUTH with `reason`. Only a CONNECT with a method starts an
    /// exchange, so a server without one never sends AUTH [MQTT-4.12.0-6].
    /// Returns false when the AUTH does not fit (the connection is then
    /// closing).
    fn send_auth(&mut self, reason: ReasonCode, mut properties: AuthProperties) -> bool {
        let Some(x) = &self.auth else { return false };
        properties.authentication_method = Some(x.method.clone());
        self.queue_if_fits(Packet::Auth(Box::new(Auth { reason, properties })))
    }

    /// Queues a 5.0 packet the broker filled in (an AUTH, or a CONNACK with
    /// Authentication Data) if it fits the client's Maximum Packet Size once
    /// its Reason String and User Properties have made way [MQTT-3.15.2-2]
    /// [MQTT-3.15.2-3]. The server must not send it larger [MQTT-3.1.2-24],
    /// and the exchange cannot go on without it, so otherwise the connection
    /// ends: CONNACK 0x80 before CONNACK, DISCONNECT 0x95 after. Returns
    /// whether it was queued.
    pub(crate) fn queue_if_fits(&mut self, mut packet: Packet) -> bool {
        self.fit_problem_information(&mut packet);
        let max = self.client_max_packet_size;
        let name = packet.packet_type().name();
        let why = match packet.encoded_len(Protocol::V5) {
            Ok(n) if n <= max as usize => {
                self.queue(packet);
                return true;
            }
            Ok(n) => {
                format!("{name} of {n} bytes exceeds the client's Maximum Packet Size of {max}")
            }
            Err(e) => format!("{name} cannot be encoded: {e}"),
        };
        if self.phase == Phase::Connected {
            self.protocol_error(ReasonCode::PacketTooLarge, &why);
        } else {
            self.send_connack_error(ReasonCode::UnspecifiedError, &why);
        }
        false
    }
}
