//! Application messages as the broker routes them, and one delivery of a
//! message to one subscriber.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_codec::{MqttStr, PublishProps, QoS};

/// An Application Message, shared by every subscriber it is delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: MqttStr,
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// The properties passed through to subscribers: payload format, message
    /// expiry interval (as published), content type, response topic,
    /// correlation data, user properties [MQTT-3.3.2-17] [MQTT-3.3.2-18]. Never
    /// a topic alias or subscription identifier: those are per connection.
    pub properties: PublishProps,
    /// When the server received it; the message expiry interval counts from
    /// here.
    pub received: Instant,
    /// Its identifier in the durable log; 0 when it is not stored. Each
    /// QoS 1 or 2 delivery of a stored message reports back
    /// [`crate::Event::Completed`] (its flow ended) or
    /// [`crate::Event::Dropped`] (it never went out) once the session is
    /// done with it.
    pub id: u64,
}

impl Message {
    /// When the message expires, if it has a Message Expiry Interval.
    pub fn expires_at(&self) -> Option<Instant> {
        self.properties
            .message_expiry_interval
            .map(|s| self.received + Duration::from_secs(u64::from(s)))
    }

    /// Whether the message expired by `now` [MQTT-3.3.2-5].
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// The Message Expiry Interval to send at `now`: the published value
    /// less the time the message has waited [MQTT-3.3.2-6].
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let at = self.expires_at()?;
        let left = at.saturating_duration_since(now);
        // Round up so a message is never forwarded with 0 left; an in-flight
        // message resent after its expiry still goes out [MQTT-4.3.3-7], with
        // the least interval there is.
        Some((left.as_secs() as u32 + u32::from(left.subsec_nanos() > 0)).max(1))
    }

    /// Bytes this message holds, for queue byte limits.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

/// One message for one subscriber, with what the matching subscriptions say
/// about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// The maximum QoS the subscriber granted; the message goes out at the
    /// lower of this and its own QoS [MQTT-3.8.4-8].
    pub qos: QoS,
    /// The RETAIN flag to send: 1 for a retained message sent because of a
    /// new subscription [MQTT-3.3.1-8]; otherwise the published flag under
    /// Retain As Published, else 0 [MQTT-3.3.1-12] [MQTT-3.3.1-13].
    pub retain: bool,
    /// The identifiers of the matching subscriptions [MQTT-3.3.4-3].
    pub subscription_ids: Vec<u32>,
    /// A retained message sent because a subscription was made
    /// [MQTT-3.3.1-8], not routed from a publish: a durable store states
    /// such a copy apart from a routed copy on the same terms (it names the
    /// retained message, not a message routed to the session), so its
    /// send and drop are recorded as such.
    pub on_subscribe: bool,
}

impl Delivery {
    /// The QoS the message is sent with.
    pub fn effective_qos(&self) -> QoS {
        self.qos.min(self.message.qos)
    }
}
