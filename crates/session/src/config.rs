//! What a server allows its clients: the limits and capabilities a session
//! enforces and announces in CONNACK.

use std::time::Duration;

use strata_codec::QoS;

/// Server-side limits and capabilities, one per listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The largest packet the server accepts, announced as Maximum Packet
    /// Size in 5.0.
    pub max_packet_size: u32,
    /// How many QoS 1 and 2 PUBLISH packets a client may have unacknowledged
    /// at once (Receive Maximum, 5.0) [MQTT-3.3.4-7].
    pub receive_maximum: u16,
    /// How many outbound QoS 1 and 2 messages are in flight at once when the
    /// client states no Receive Maximum (3.1, 3.1.1).
    pub max_inflight: u16,
    /// The highest Topic Alias a client may use (0 disables aliases).
    pub topic_alias_maximum: u16,
    /// The highest QoS the server accepts in PUBLISH.
    pub maximum_qos: QoS,
    pub retain_available: bool,
    pub wildcard_subscription_available: bool,
    pub subscription_identifiers_available: bool,
    pub shared_subscription_available: bool,
    /// When set, overrides the client's Keep Alive (5.0 Server Keep Alive).
    pub server_keep_alive: Option<u16>,
    /// The longest Session Expiry Interval the server grants, in seconds.
    pub max_session_expiry: u32,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Messages held for a session beyond those in flight.
    pub max_queued_messages: usize,
    /// Bytes of topic and payload held for a session beyond those in flight.
    pub max_queued_bytes: usize,
    /// The prefix of server-assigned client identifiers.
    pub assigned_id_prefix: String,
    /// Whether the broker runs enhanced authentication (section 4.12). When
    /// false, a 5.0 CONNECT with an Authentication Method is refused with
    /// 0x8C [MQTT-4.12.0-1]; when true, it goes up in the Connect event and
    /// the broker leads the AUTH exchange (see [`crate::Session`]).
    pub enhanced_auth: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_packet_size: 1024 * 1024,
            receive_maximum: 1024,
            max_inflight: 64,
            topic_alias_maximum: 64,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscription_available: true,
            subscription_identifiers_available: true,
            shared_subscription_available: true,
            server_keep_alive: None,
            max_session_expiry: u32::MAX,
            connect_timeout: Duration::from_secs(10),
            max_queued_messages: 100_000,
            max_queued_bytes: 64 * 1024 * 1024,
            assigned_id_prefix: "strata-".to_owned(),
            enhanced_auth: false,
        }
    }
}
