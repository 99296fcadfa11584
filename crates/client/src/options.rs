//! Connection options.

use std::time::Duration;

use bytes::Bytes;
use strata_codec::{LastWill, Protocol};

/// How to reconnect after the connection breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// The first wait; it doubles after each failed attempt.
    pub initial: Duration,
    /// The longest wait between attempts.
    pub max: Duration,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

/// What [`crate::Client::connect`] connects with.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT`.
    pub address: String,
    pub client_id: String,
    pub protocol: Protocol,
    /// Keep Alive; zero turns pings off.
    pub keep_alive: Duration,
    /// Clean Session (3.1.1) or Clean Start (5.0) of the first connection;
    /// reconnections always ask to resume.
    pub clean_start: bool,
    /// 5.0 Session Expiry Interval in seconds.
    pub session_expiry: u32,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub will: Option<LastWill>,
    /// Reconnect when the connection breaks; `None` ends the client instead.
    pub reconnect: Option<Reconnect>,
    /// Received messages held for [`crate::Incoming`] before the client
    /// stops reading new ones (acknowledgements are still read while
    /// requests wait for them).
    pub incoming_capacity: usize,
    /// How long to wait for the TCP connection and the CONNACK.
    pub connect_timeout: Duration,
}

impl Options {
    /// MQTT 5.0 to `address` as `client_id`, clean start, keep-alive 30 s,
    /// no reconnect.
    pub fn new(address: impl Into<String>, client_id: impl Into<String>) -> Options {
        Options {
            address: address.into(),
            client_id: client_id.into(),
            protocol: Protocol::V5,
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            session_expiry: 0,
            username: None,
            password: None,
            will: None,
            reconnect: None,
            incoming_capacity: 10_000,
            connect_timeout: Duration::from_secs(10),
        }
    }
}
