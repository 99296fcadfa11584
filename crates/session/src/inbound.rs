//! What the client sends: CONNECT checks, PUBLISH, the acknowledgement flows
//! of section 4.3, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT.

use std::time::{Duration, Instant};

use strata_codec::{
    Connect, Disconnect, Packet, PacketType, Protocol, PubResponse, Publish, QoS, ReasonCode,
    Subscribe, Unsubscribe, topic,
};

use crate::message::Message;
use crate::outbound::Aliases;
use crate::session::{Event, Phase, Session, Will};
use crate::timer::Timer;

impl Session {
    pub(crate) fn on_connect(&mut self, now: Instant, c: Box<Connect>) {
        self.protocol = c.protocol;
        let v5 = c.protocol.is_v5();
        if c.client_id.is_empty() {
            // 3.1 requires an id; 3.1.1 allows an empty one only with Clean
            // Session [MQTT-3.1.3-8]; 5.0 gets an assigned one [MQTT-3.1.3-6].
            let refuse = match c.protocol {
                Protocol::V3_1 => true,
                Protocol::V3_1_1 => !c.clean_start,
                Protocol::V5 => false,
            };
            if refuse {
                return self.send_connack_error(
                    ReasonCode::ClientIdentifierNotValid,
                    "an empty client identifier needs Clean Session 1",
                );
            }
        }
        if v5 {
            // The client's limits apply to the CONNACK already.
            self.client_max_packet_size = c.properties.maximum_packet_size.unwrap_or(u32::MAX);
            self.problem_information = c.properties.request_problem_information.unwrap_or(true);
        }
        if let Some(method) = c.properties.authentication_method.as_ref().filter(|_| v5) {
            if !self.config.enhanced_auth {
                // No broker authenticator to judge it [MQTT-4.12.0-1].
                return self.send_connack_error(
                    ReasonCode::BadAuthenticationMethod,
                    &format!("authentication method {method:?} is not supported"),
                );
            }
            self.start_auth(method);
        }
        if let Some(w) = &c.will {
            if v5 && w.qos > self.config.maximum_qos {
                // [MQTT-3.2.2-12]
                return self.send_connack_error(
                    ReasonCode::QoSNotSupported,
                    &format!(
                        "will QoS exceeds the maximum QoS {}",
                        self.config.maximum_qos as u8
                    ),
                );
            }
            // [MQTT-3.3.2-14] holds for the will's Response Topic too.
            if let Some(t) = &w.properties.response_topic
                && let Err(e) = topic::validate_topic_name(t)
            {
                let why = format!("will Response Topic {t:?}: {e}");
                return self.send_connack_error(ReasonCode::ProtocolError, &why);
            }
            if v5 && w.retain && !self.config.retain_available {
                // [MQTT-3.2.2-13]
                return self.send_connack_error(
                    ReasonCode::RetainNotSupported,
                    "retained wills are not supported",
                );
            }
        }
        let max_expiry = self.config.max_session_expiry;
        self.requested_expiry = if v5 {
            c.properties.session_expiry_interval.unwrap_or(0)
        } else if c.clean_start {
            0
        } else {
            // A 3.x persistent session lasts until the server's limit.
            u32::MAX
        };
        self.session_expiry = self.requested_expiry.min(max_expiry);
        if v5 {
            self.client_receive_maximum = c.properties.receive_maximum.unwrap_or(u16::MAX);
            self.aliases = c
                .properties
                .topic_alias_maximum
                .filter(|&m| m > 0)
                .map(|m| Box::new(Aliases::new(m)));
        }
        // [MQTT-3.2.2-21]: a Server Keep Alive replaces the client's value.
        self.keep_alive = match self.config.server_keep_alive {
            Some(k) if v5 => k,
            _ => c.keep_alive,
        };
        // Kept for the connection's life: copied out of the read buffer.
        self.will = c.will.as_ref().map(|w| Box::new(detach_will(w)));
        self.phase = Phase::AwaitDecision;
        self.touch(now);
        self.events.push_back(Event::Connect(c));
    }

    /// A packet arrived at `now` that the caller holds back to handle later
    /// (a paused publisher's, or while much output waits for the client):
    /// the connection is alive all the same [MQTT-3.1.2-22].
    pub fn packet_arrived(&mut self, now: Instant) {
        if self.phase == Phase::Connected {
            self.touch(now);
        }
    }

    /// Restarts the keep-alive clock on a packet from the client.
    pub(crate) fn touch(&mut self, now: Instant) {
        if self.keep_alive > 0 {
            let grace = Duration::from_millis(u64::from(self.keep_alive) * 1500);
            self.timers.set(Timer::KeepAlive, now + grace);
        }
    }

    pub(crate) fn on_publish(&mut self, now: Instant, mut p: Publish) {
        let v5 = self.protocol.is_v5();
        if v5 {
            if p.qos > self.config.maximum_qos {
                return self.protocol_error(
                    ReasonCode::QoSNotSupported,
                    "PUBLISH QoS exceeds the maximum QoS",
                );
            }
            if p.retain && !self.config.retain_available {
                return self.protocol_error(
                    ReasonCode::RetainNotSupported,
                    "retained messages are not supported",
                );
            }
            // [MQTT-3.3.4-6]: only a server sends Subscription Identifiers.
            if !p.properties.subscription_identifiers.is_empty() {
                let why = "a client PUBLISH carries a Subscription Identifier";
                return self.protocol_error(ReasonCode::ProtocolError, why);
            }
            // [MQTT-3.3.2-14]: a Response Topic is a topic name.
            if let Some(t) = &p.properties.response_topic
                && let Err(e) = topic::validate_topic_name(t)
            {
                let why = format!("Response Topic {t:?}: {e}");
                return self.protocol_error(ReasonCode::ProtocolError, &why);
            }
            // Read first: writing through `properties` would allocate.
            if let Some(alias) = p.properties.topic_alias {
                p.properties.topic_alias = None;
                // [MQTT-3.3.2-8] alias 0; [MQTT-3.3.2-9]/[MQTT-3.3.2-10] over
                // the maximum we announced.
                let max = self.config.topic_alias_maximum;
                if alias == 0 || alias > max {
                    let why = format!("topic alias {alias} is outside 1 to {max}");
                    return self.protocol_error(ReasonCode::TopicAliasInvalid, &why);
                }
                let i = usize::from(alias) - 1;
                let inbound = &mut self
                    .aliases
                    .get_or_insert_with(|| Box::new(Aliases::new(0)))
                    .inbound;
                if p.topic.is_empty() {
                    match inbound.get(i) {
                        Some(Some(t)) => p.topic = t.clone(),
                        // An alias never set: Protocol Error (3.3.4).
                        _ => {
                            let why = format!("topic alias {alias} was never set");
                            return self.protocol_error(ReasonCode::ProtocolError, &why);
                        }
                    }
                } else {
                    if inbound.len() <= i {
                        inbound.resize(i + 1, None);
                    }
                    // Kept for the connection's life: out of the read buffer.
                    inbound[i] = Some(p.topic.detach());
                }
            }
        }
        let packet_id = match p.qos {
            QoS::AtMostOnce => None,
            qos => {
                let id = p.packet_id;
                if qos == QoS::ExactlyOnce {
                    let known = self
                        .state
                        .as_ref()
                        .is_some_and(|s| s.inbound_qos2.contains(&id));
                    if known {
                        // A resent QoS 2 PUBLISH already stored: acknowledge
                        // again, deliver once [MQTT-4.3.3-10] (3.1.1: [MQTT-4.3.3-2]).
                        let ack = self.ack(id, ReasonCode::Success);
                        self.queue(Packet::PubRec(ack));
                        return;
                    }
                    if self.inbound_qos2_pending.contains(&id) {
                        return;
                    }
                    self.inbound_qos2_pending.push(id);
                }
                // [MQTT-3.3.4-7]: no more than Receive Maximum unacknowledged.
                if v5 && self.inbound_unacked >= self.config.receive_maximum {
                    let why = format!(
                        "more than {} unacknowledged QoS 1 and 2 PUBLISH packets",
                        self.config.receive_maximum
                    );
                    return self.protocol_error(ReasonCode::ReceiveMaximumExceeded, &why);
                }
                self.inbound_unacked += 1;
                Some(id)
            }
        };
        self.events.push_back(Event::Publish {
            message: Message {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                properties: p.properties,
                received: now,
                id: 0,
            },
            packet_id,
        });
    }

    pub(crate) fn ack(&self, packet_id: u16, reason: ReasonCode) -> PubResponse {
        let mut ack = PubResponse::new(packet_id);
        if self.protocol.is_v5() {
            ack.reason = reason;
        }
        ack
    }

    pub(crate) fn on_puback(&mut self, a: PubResponse) {
        self.complete_outbound(a.packet_id, QoS::AtLeastOnce, false);
    }

    pub(crate) fn on_pubrec(&mut self, now: Instant, a: PubResponse) {
        let Some(state) = &mut self.state else { return };
        let Some(i) = state.find_outbound(a.packet_id) else {
            if self.protocol.is_v5() {
                let mut rel = self.ack(a.packet_id, ReasonCode::PacketIdentifierNotFound);
                rel.properties.reason_string = crate::problem::reason(&format!(
                    "no QoS 2 message in flight with packet identifier {}",
                    a.packet_id
                ));
                self.queue(Packet::PubRel(rel));
            }
            return;
        };
        if state.outbound[i].qos != QoS::ExactlyOnce {
            let why = format!("PUBREC for the QoS 1 message {}", a.packet_id);
            return self.protocol_error(ReasonCode::ProtocolError, &why);
        }
        if a.reason.is_error() {
            // A failed PUBREC ends the flow; the message is not resent
            // [MQTT-4.3.3-4] and its slot frees up.
            if let Some(o) = state.outbound.remove(i) {
                self.completed(&o.delivery.message, o.packet_id);
            }
            return self.pump(now);
        }
        state.outbound[i].phase = crate::state::OutboundPhase::Released;
        let id = state.outbound[i].delivery.message.id;
        if id != 0 {
            self.events.push_back(Event::Released {
                id,
                packet_id: a.packet_id,
            });
        }
        // [MQTT-4.3.3-4] (3.1.1: [MQTT-4.3.3-1]): answer PUBREC with PUBREL.
        let rel = self.ack(a.packet_id, ReasonCode::Success);
        self.queue(Packet::PubRel(rel));
    }

    pub(crate) fn on_pubrel(&mut self, a: PubResponse) {
        let known = self
            .state
            .as_mut()
            .is_some_and(|s| s.inbound_qos2.remove(&a.packet_id));
        let reason = if known {
            self.inbound_unacked = self.inbound_unacked.saturating_sub(1);
            self.events.push_back(Event::InboundReleased {
                packet_id: a.packet_id,
            });
            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };
        // [MQTT-4.3.3-11] (3.1.1: [MQTT-4.3.3-2]): PUBREL gets PUBCOMP, also
        // when resent after a reconnect.
        let mut comp = self.ack(a.packet_id, reason);
        if !known {
            comp.properties.reason_string = crate::problem::reason(&format!(
                "no QoS 2 message awaits release with packet identifier {}",
                a.packet_id
            ));
        }
        self.queue(Packet::PubComp(comp));
    }

    pub(crate) fn on_pubcomp(&mut self, a: PubResponse) {
        self.complete_outbound(a.packet_id, QoS::ExactlyOnce, true);
    }

    /// Ends the outbound flow of `packet_id` if it is at the expected step.
    fn complete_outbound(&mut self, packet_id: u16, qos: QoS, released: bool) {
        let Some(state) = &mut self.state else { return };
        let Some(i) = state.find_outbound(packet_id) else {
            return;
        };
        let o = &state.outbound[i];
        let at_step =
            o.qos == qos && (o.phase == crate::state::OutboundPhase::Released) == released;
        if !at_step {
            let why = format!("acknowledgement out of step for packet {packet_id}");
            return self.protocol_error(ReasonCode::ProtocolError, &why);
        }
        if let Some(o) = state.outbound.remove(i) {
            self.completed(&o.delivery.message, o.packet_id);
        }
        // The freed slot is filled when the packets go out.
        self.pump_due = true;
    }

    pub(crate) fn on_subscribe(&mut self, s: Subscribe) {
        let c = &self.config;
        if s.properties.subscription_identifier.is_some() && !c.subscription_identifiers_available {
            let why = "subscription identifiers are not supported";
            return self.protocol_error(ReasonCode::SubscriptionIdentifiersNotSupported, why);
        }
        let granted = s
            .filters
            .iter()
            .map(|f| {
                if f.filter.starts_with(topic::SHARE_PREFIX) && !c.shared_subscription_available {
                    Err(ReasonCode::SharedSubscriptionsNotSupported)
                } else if topic::has_wildcard(&f.filter) && !c.wildcard_subscription_available {
                    Err(ReasonCode::WildcardSubscriptionsNotSupported)
                } else {
                    // [MQTT-3.8.4-7]: the server may grant a lower QoS.
                    Ok(f.options.qos.min(c.maximum_qos))
                }
            })
            .collect();
        self.events.push_back(Event::Subscribe {
            packet_id: s.packet_id,
            subscription_id: s.properties.subscription_identifier,
            filters: s.filters,
            granted,
        });
    }

    pub(crate) fn on_unsubscribe(&mut self, u: Unsubscribe) {
        self.events.push_back(Event::Unsubscribe {
            packet_id: u.packet_id,
            filters: u.filters,
        });
    }

    pub(crate) fn on_disconnect(&mut self, d: Disconnect) {
        if let Some(e) = d.properties.session_expiry_interval {
            // Section 3.14.2.2.2: zero in CONNECT cannot become non-zero.
            if self.requested_expiry == 0 && e != 0 {
                let why = "session expiry cannot become non-zero at DISCONNECT";
                return self.protocol_error(ReasonCode::ProtocolError, why);
            }
            self.session_expiry = e.min(self.config.max_session_expiry);
        }
        // [MQTT-3.1.2-10] (3.1.1: [MQTT-3.14.4-3]): a normal DISCONNECT
        // discards the will; 0x04 asks for it to be published.
        if d.reason != ReasonCode::DisconnectWithWillMessage {
            self.will = None;
        }
        self.finish(d.reason);
    }

    /// A protocol violation found after CONNECT: 5.0 sends DISCONNECT with
    /// the reason code [MQTT-4.13.1-1] and `why` as its Reason String (none
    /// when empty); 3.x closes the connection.
    pub(crate) fn protocol_error(&mut self, code: ReasonCode, why: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::AwaitAuth {
            // An AUTH exchange is a 5.0 connection before CONNACK: the
            // refusal goes in CONNACK (section 4.13).
            return self.send_connack_error(code, why);
        }
        if self.protocol.is_v5() && self.phase == Phase::Connected {
            let code = if code.allowed_in(PacketType::Disconnect) {
                code
            } else {
                ReasonCode::ProtocolError
            };
            let mut d = Disconnect::new(code);
            d.properties.reason_string = crate::problem::reason(why);
            self.queue(Packet::Disconnect(d));
        }
        self.finish(code);
    }

    /// Closes without sending anything.
    pub(crate) fn close_silently(&mut self, code: ReasonCode) {
        if self.phase != Phase::Closed {
            self.finish(code);
        }
    }

    /// Refuses a CONNECT: CONNACK with `code` and Session Present 0
    /// [MQTT-3.2.2-6], then close. 3.x has CONNACK return codes for only some
    /// refusals; for the rest it closes without CONNACK [MQTT-3.2.2-6 of
    /// 3.1.1].
    /// `why` becomes the 5.0 Reason String (none when empty).
    pub(crate) fn send_connack_error(&mut self, code: ReasonCode, why: &str) {
        use ReasonCode::*;
        let send = if self.protocol.is_v5() {
            true
        } else {
            matches!(
                code,
                UnsupportedProtocolVersion
                    | ClientIdentifierNotValid
                    | ServerUnavailable
                    | ServerBusy
                    | BadUserNameOrPassword
                    | NotAuthorized
                    | Banned
            )
        };
        if send {
            let code = if code.allowed_in(PacketType::ConnAck) {
                code
            } else {
                UnspecifiedError
            };
            self.queue(Packet::ConnAck(Box::new(strata_codec::ConnAck {
                session_present: false,
                code,
                properties: strata_codec::ConnAckProperties {
                    reason_string: crate::problem::reason(why),
                    ..Default::default()
                },
            })));
        }
        self.will = None;
        self.finish(code);
    }

    /// Moves to Closed and tells the broker, with the will if one is due.
    fn finish(&mut self, reason: ReasonCode) {
        let was_connected = self.phase == Phase::Connected;
        self.phase = Phase::Closed;
        self.timers = Default::default();
        let will = if was_connected {
            self.will.take().map(|w| *w)
        } else {
            None
        };
        let will = will.map(|w| Will {
            delay: Duration::from_secs(u64::from(w.properties.will_delay_interval.unwrap_or(0))),
            message: Message {
                topic: w.topic,
                payload: w.payload,
                qos: w.qos,
                retain: w.retain,
                properties: strata_codec::PublishProperties {
                    payload_format_indicator: w.properties.payload_format_indicator,
                    message_expiry_interval: w.properties.message_expiry_interval,
                    content_type: w.properties.content_type,
                    response_topic: w.properties.response_topic,
                    correlation_data: w.properties.correlation_data,
                    user_properties: w.properties.user_properties,
                    ..Default::default()
                }
                .into(),
                // The broker stamps the time it publishes the will.
                received: self.now,
                id: 0,
            },
        });
        self.events.push_back(Event::Closed {
            reason,
            will,
            session_expiry: self.session_expiry,
        });
    }
}

/// A deep copy of a will, in allocations of its own.
fn detach_will(w: &strata_codec::LastWill) -> strata_codec::LastWill {
    let p = &w.properties;
    strata_codec::LastWill {
        topic: w.topic.detach(),
        payload: bytes::Bytes::copy_from_slice(&w.payload),
        qos: w.qos,
        retain: w.retain,
        properties: strata_codec::WillProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.as_ref().map(strata_codec::MqttStr::detach),
            response_topic: p.response_topic.as_ref().map(strata_codec::MqttStr::detach),
            correlation_data: p
                .correlation_data
                .as_deref()
                .map(bytes::Bytes::copy_from_slice),
            will_delay_interval: p.will_delay_interval,
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| (k.detach(), v.detach()))
                .collect(),
        },
    }
}
