//! Deliveries to the client: the QoS a message goes out with, packet
//! identifiers, the in-flight window (Receive Maximum), outbound Topic
//! Aliases, the client's Maximum Packet Size, and message expiry.

use std::collections::HashMap;
use std::time::Instant;

use strata_codec::{MqttStr, Packet, PublishHeader, QoS, ReasonCode, encode_publish};

use crate::message::Delivery;
use crate::session::{Event, Phase, Session};
use crate::state::{Outbound, OutboundPhase, QueueOutcome};

/// The outbound Topic Alias table of one connection. Aliases go to the
/// first topics sent, up to the client's Topic Alias Maximum, and are kept
/// for the connection's life [MQTT-3.1.2-26] [MQTT-3.1.2-27].
///
/// The inbound table is here too (index = alias - 1; grown on first use, up
/// to the Topic Alias Maximum the server announced): the session holds both
/// in one box, made only for a connection that uses aliases.
#[derive(Debug, Clone, Default)]
pub(crate) struct Aliases {
    max: u16,
    by_topic: HashMap<MqttStr, u16>,
    pub(crate) inbound: Vec<Option<MqttStr>>,
}

impl Aliases {
    pub(crate) fn new(max: u16) -> Aliases {
        Aliases {
            max,
            by_topic: HashMap::new(),
            inbound: Vec::new(),
        }
    }

    /// The alias for `topic`, and whether it is new (the topic name must go
    /// with it this once).
    fn lookup(&self, topic: &MqttStr) -> Option<(u16, bool)> {
        if self.max == 0 {
            return None;
        }
        if let Some(&a) = self.by_topic.get(topic) {
            return Some((a, false));
        }
        let next = self.by_topic.len() as u16 + 1;
        (next <= self.max).then_some((next, true))
    }
}

impl Session {
    /// A message routed to this client.
    pub fn handle_delivery(&mut self, now: Instant, d: Delivery) -> QueueOutcome {
        self.now = now;
        if d.message.is_expired(now) {
            // [MQTT-3.3.2-5]: an expired message is not forwarded.
            self.done_with(d);
            return QueueOutcome::Dropped;
        }
        let qos = d.effective_qos();
        if self.phase != Phase::Connected {
            return QueueOutcome::Dropped;
        }
        if qos == QoS::AtMostOnce {
            // Never held, so nothing to report: a durable store keeps
            // only QoS 1 and 2 copies.
            self.send_publish(now, &d, qos, 0, false);
            return QueueOutcome::Queued;
        }
        let (max_messages, max_bytes) = (
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        );
        let window = self.window();
        let Some(state) = &mut self.state else {
            return QueueOutcome::Dropped;
        };
        if !state.queue.is_empty() || state.outbound.len() >= window {
            return match state.enqueue(d, max_messages, max_bytes) {
                Ok(()) => QueueOutcome::Queued,
                Err(d) => {
                    self.done_with(d);
                    QueueOutcome::Dropped
                }
            };
        }
        self.send_new(now, d, qos);
        QueueOutcome::Queued
    }

    /// How many QoS 1 and 2 messages may be in flight: the client's Receive
    /// Maximum in 5.0 [MQTT-3.3.4-9], the server's setting before.
    fn window(&self) -> usize {
        let w = if self.protocol.is_v5() {
            self.client_receive_maximum
        } else {
            self.config.max_inflight
        };
        usize::from(w.clamp(1, u16::MAX - 1))
    }

    /// Sends queued messages while the window has room.
    pub(crate) fn pump(&mut self, now: Instant) {
        if self.phase != Phase::Connected {
            return;
        }
        let window = self.window();
        loop {
            let Some(state) = &mut self.state else { return };
            if state.outbound.len() >= window {
                return;
            }
            let Some(d) = state.dequeue() else { return };
            if d.message.is_expired(now) {
                self.done_with(d);
                continue;
            }
            let qos = d.effective_qos();
            self.send_new(now, d, qos);
        }
    }

    /// Gives a QoS 1 or 2 delivery a packet id and sends it.
    fn send_new(&mut self, now: Instant, d: Delivery, qos: QoS) {
        let Some(state) = &mut self.state else { return };
        let packet_id = state.next_packet_id();
        if !self.send_publish(now, &d, qos, packet_id, false) {
            // Too large for the client: dropped as if sent [MQTT-3.1.2-25].
            self.done_with(d);
        } else if let Some(state) = &mut self.state {
            if d.message.id != 0 {
                self.events.push_back(Event::Sent {
                    packet_id,
                    delivery: d.clone(),
                });
            }
            state.outbound.push_back(Outbound {
                packet_id,
                delivery: d,
                qos,
                phase: OutboundPhase::Published,
            });
        }
    }

    /// On a resumed session, resends every unacknowledged PUBLISH with DUP
    /// set and every PUBREL, in their original order [MQTT-4.4.0-1]
    /// [MQTT-4.6.0-1].
    pub(crate) fn resend_inflight(&mut self, now: Instant) {
        let Some(state) = self.state.take() else {
            return;
        };
        for o in &state.outbound {
            match o.phase {
                OutboundPhase::Published => {
                    self.send_publish(now, &o.delivery, o.qos, o.packet_id, true);
                }
                OutboundPhase::Released => {
                    let rel = self.ack(o.packet_id, ReasonCode::Success);
                    self.queue(Packet::PubRel(rel));
                }
            }
        }
        self.state = Some(state);
    }

    /// Builds and queues a PUBLISH; returns false if it was dropped for
    /// exceeding the client's Maximum Packet Size [MQTT-3.1.2-25].
    fn send_publish(
        &mut self,
        now: Instant,
        d: &Delivery,
        qos: QoS,
        packet_id: u16,
        dup: bool,
    ) -> bool {
        let m = &d.message;
        let h = PublishHeader {
            // [MQTT-3.3.1-3]: DUP only for a resend of this very packet.
            dup,
            qos,
            retain: d.retain,
            packet_id,
        };
        let start = self.out.len();
        let mut new_alias = None;
        // 5.0: what this client's copy changes of the message's properties
        // and topic; `None` sends the message as it is (3.x always).
        let changed = if self.protocol.is_v5() {
            // [MQTT-3.3.2-6]: the interval left, not the one published.
            let expiry = m.remaining_expiry(now);
            // A resend after reconnect starts a fresh alias table, so it
            // carries the full topic.
            let alias = if dup {
                None
            } else {
                self.aliases.as_ref().and_then(|a| a.lookup(&m.topic))
            };
            let same = expiry == m.properties.message_expiry_interval
                && d.subscription_ids.is_empty()
                && alias.is_none();
            (!same).then(|| {
                // Shares the message's properties; writes (which allocate a
                // private copy) happen only when something must change.
                let mut props = m.properties.clone();
                if expiry != props.message_expiry_interval {
                    props.message_expiry_interval = expiry;
                }
                if !d.subscription_ids.is_empty() {
                    props.subscription_identifiers = d.subscription_ids.clone();
                }
                let mut topic: &[u8] = m.topic.as_bytes();
                if let Some((alias, is_new)) = alias {
                    props.topic_alias = Some(alias);
                    if is_new {
                        new_alias = Some(alias);
                    } else {
                        topic = b"";
                    }
                }
                (props, topic)
            })
        } else {
            None
        };
        let (props, topic) = match &changed {
            Some((props, topic)) => (props, *topic),
            None => (&m.properties, &m.topic.as_bytes()[..]),
        };
        let written = encode_publish(self.protocol, &mut self.out, h, topic, props, &m.payload);
        if !written.is_ok_and(|n| n <= self.client_max_packet_size as usize) {
            self.out.truncate(start);
            return false;
        }
        if let (Some(a), Some(aliases)) = (new_alias, self.aliases.as_mut()) {
            aliases.by_topic.insert(m.topic.clone(), a);
        }
        true
    }
}
