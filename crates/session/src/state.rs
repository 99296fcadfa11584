//! The part of a session that outlives its network connection (section
//! 4.1): outbound messages in flight, messages queued for delivery, inbound
//! QoS 2 packet identifiers, and the packet identifier counter.
//! Subscriptions live in the router; the broker persists both.

use std::collections::{HashSet, VecDeque};

use strata_codec::{MqttStr, QoS};

use crate::message::Delivery;

/// Where an outbound QoS 1 or 2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundPhase {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREL sent; waiting for PUBCOMP.
    Released,
}

/// An outbound QoS 1 or 2 message that has a packet identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub packet_id: u16,
    pub delivery: Delivery,
    /// The QoS it was sent with.
    pub qos: QoS,
    pub phase: OutboundPhase,
}

/// What the overflow policy did with a delivery that did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOutcome {
    Queued,
    /// The queue was full: the new message was dropped (the oldest are kept,
    /// so a subscriber sees a gap at the end rather than reordering).
    Dropped,
}

/// Session state that persists across connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub client_id: MqttStr,
    /// The Session Expiry Interval in seconds; `u32::MAX` never expires.
    pub expiry_interval: u32,
    /// In flight, in the order they were first sent.
    pub(crate) outbound: VecDeque<Outbound>,
    /// Waiting for a slot in the in-flight window (or for a connection).
    pub(crate) queue: VecDeque<Delivery>,
    pub(crate) queued_bytes: usize,
    /// Inbound QoS 2 packet identifiers whose PUBREC was sent and whose
    /// PUBREL has not arrived [MQTT-4.3.3-10] [MQTT-4.3.3-12].
    pub(crate) inbound_qos2: HashSet<u16>,
    pub(crate) last_packet_id: u16,
    /// Deliveries dropped by the overflow policy since the session began.
    pub dropped: u64,
}

impl SessionState {
    pub fn new(client_id: MqttStr, expiry_interval: u32) -> SessionState {
        SessionState {
            client_id,
            expiry_interval,
            outbound: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            inbound_qos2: HashSet::new(),
            last_packet_id: 0,
            dropped: 0,
        }
    }

    /// Messages in flight.
    pub fn inflight(&self) -> impl Iterator<Item = &Outbound> {
        self.outbound.iter()
    }

    /// Puts back a message that was in flight when a durable store last
    /// saw the session; call in the order they were first sent. It is resent
    /// on resume like any other [MQTT-4.4.0-1]. Returns false, and keeps
    /// nothing, if its packet id is in flight already.
    pub fn restore_outbound(&mut self, o: Outbound) -> bool {
        if o.qos == QoS::AtMostOnce || self.outbound.iter().any(|x| x.packet_id == o.packet_id) {
            return false;
        }
        // Ids are handed out after the newest one in flight.
        self.last_packet_id = o.packet_id;
        self.outbound.push_back(o);
        true
    }

    /// Puts back an inbound QoS 2 packet id whose PUBREC was sent and whose
    /// PUBREL has not come [MQTT-4.3.3-10].
    pub fn restore_inbound_qos2(&mut self, packet_id: u16) {
        self.inbound_qos2.insert(packet_id);
    }

    /// Messages queued behind the in-flight window.
    pub fn queued(&self) -> impl Iterator<Item = &Delivery> {
        self.queue.iter()
    }

    /// Inbound QoS 2 packet identifiers awaiting PUBREL.
    pub fn inbound_qos2(&self) -> impl Iterator<Item = u16> + '_ {
        self.inbound_qos2.iter().copied()
    }

    /// Queues a delivery under the count and byte limits.
    pub(crate) fn enqueue(
        &mut self,
        d: Delivery,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<(), Delivery> {
        let size = d.message.size();
        if self.queue.len() >= max_messages || self.queued_bytes + size > max_bytes {
            self.dropped += 1;
            return Err(d);
        }
        self.queued_bytes += size;
        self.queue.push_back(d);
        Ok(())
    }

    pub(crate) fn dequeue(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.message.size();
        Some(d)
    }

    /// A packet identifier not used by any message in flight
    /// [MQTT-2.2.1-4] (3.1.1: [MQTT-2.3.1-4]). The caller keeps the window
    /// below 65535, so one is always free.
    pub(crate) fn next_packet_id(&mut self) -> u16 {
        let mut first = true;
        loop {
            self.last_packet_id = self.last_packet_id.wrapping_add(1);
            if self.last_packet_id == 0 {
                self.last_packet_id = 1;
            }
            let id = self.last_packet_id;
            // Ids are handed out in sequence and `outbound` keeps that
            // order, so the ids in flight run from the front's to the
            // back's: the next one can only meet the oldest, after
            // wrapping. Once that happened, every candidate is checked in
            // full (a rare path: a message in flight for 65,535 sends).
            let taken = if first {
                self.outbound.front().is_some_and(|o| o.packet_id == id)
            } else {
                self.outbound.iter().any(|o| o.packet_id == id)
            };
            debug_assert_eq!(taken, self.outbound.iter().any(|o| o.packet_id == id));
            if !taken {
                return id;
            }
            first = false;
        }
    }

    /// Acknowledgements mostly come in sending order: the front first.
    pub(crate) fn find_outbound(&self, packet_id: u16) -> Option<usize> {
        if self
            .outbound
            .front()
            .is_some_and(|o| o.packet_id == packet_id)
        {
            return Some(0);
        }
        self.outbound.iter().position(|o| o.packet_id == packet_id)
    }
}
