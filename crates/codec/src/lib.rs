//! `strata-codec`: the MQTT wire format for protocol levels 3 (3.1), 4 (3.1.1)
//! and 5 (5.0), with no I/O and no runtime.
//!
//! One set of packet types serves every version; where the versions differ the
//! difference is a field (a v5-only property set is simply empty on v3/v4).
//!
//! Modules:
//! - [`packet`]: the [`Packet`] enum, one struct per control packet, and the
//!   top-level [`decode`] / [`Packet::encode`] entry points.
//! - [`property`]: MQTT 5 properties, typed per packet, with the placement and
//!   repetition rules of section 2.2.2.2.
//! - [`reason`]: every MQTT 5 reason code, and which packet may carry which.
//! - [`topic`]: topic name and topic filter syntax, `$share/{group}/{filter}`.
//! - [`string`]: [`MqttStr`], a zero-copy, validated UTF-8 string.
//! - [`error`]: [`DecodeError`] / [`EncodeError`] and the one mapping from a
//!   decode error to the reason code a server sends.
//! - `wire` (private): the primitive data types of section 1.5.
//!
//! Decoding is check-then-build: [`decode`] returns `Ok(None)` until a whole
//! packet is buffered, checks the declared size against the caller's maximum
//! before anything is buffered past the fixed header, and returns packets whose
//! topics and payloads are slices of the read buffer (no copy).
//! Encoding writes into a buffer the caller owns and reuses.

pub mod error;
pub mod packet;
pub mod property;
pub mod reason;
pub mod string;
pub mod topic;
mod wire;

pub use error::{DecodeError, EncodeError, ErrorKind};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, FixedHeader, LastWill, Packet, PacketType, PubAck, PubComp,
    PubRec, PubRel, PubResponse, Publish, PublishHeader, RetainHandling, SubAck, Subscribe,
    SubscribeOptions, Subscription, UnsubAck, Unsubscribe, decode, decode_fixed_header,
    encode_publish,
};
pub use property::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, PublishProps, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
pub use reason::ReasonCode;
pub use string::MqttStr;

/// The largest value a Variable Byte Integer can carry (section 1.5.5), and so
/// the largest Remaining Length of any packet.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The largest packet the wire format allows: one type byte, four length
/// bytes, and the largest remaining length.
pub const MAX_PACKET_SIZE: usize = 1 + 4 + MAX_REMAINING_LENGTH;

/// The protocol level carried in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5,
}

impl Protocol {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V3_1 => 3,
            Protocol::V3_1_1 => 4,
            Protocol::V5 => 5,
        }
    }

    /// The protocol name CONNECT must carry for this level.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V3_1 => "MQIsdp",
            Protocol::V3_1_1 | Protocol::V5 => "MQTT",
        }
    }

    /// The protocol for a level byte, if Strata speaks it.
    pub fn from_level(level: u8) -> Option<Protocol> {
        match level {
            3 => Some(Protocol::V3_1),
            4 => Some(Protocol::V3_1_1),
            5 => Some(Protocol::V5),
            _ => None,
        }
    }

    /// True for MQTT 5.0, where properties and reason codes exist.
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }
}

/// Quality of service of a PUBLISH or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for its two-bit value; 3 is not a QoS [MQTT-3.3.1-4].
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

#[cfg(test)]
mod size_guard {
    /// Decoding and routing move `Packet` and `Publish` by value; keeping
    /// them small was worth a third of decode time (see the bench note in
    /// docs/ARCHITECTURE.md). This fails if a change makes them grow.
    #[test]
    fn hot_types_stay_small() {
        assert!(std::mem::size_of::<crate::Publish>() <= 80);
        assert!(std::mem::size_of::<crate::Packet>() <= 112);
    }
}
