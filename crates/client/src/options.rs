//! Connection options.

use std::path::PathBuf;
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

/// How MQTT travels to the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP.
    #[default]
    Tcp,
    /// TLS over TCP, offering the ALPN protocol `mqtt`.
    Tls(TlsOptions),
    /// WebSocket (RFC 6455) at `path` (for example `/mqtt`), offering the
    /// subprotocol `mqtt` [MQTT-6.0.0-3]; MQTT travels in binary messages
    /// [MQTT-6.0.0-1].
    Ws { path: String },
    /// WebSocket over TLS. No ALPN protocol is offered: the TLS layer
    /// carries HTTP first, and a server that names only `mqtt` still
    /// accepts a client that names none.
    Wss { path: String, tls: TlsOptions },
}

/// The TLS side of [`Transport::Tls`] and [`Transport::Wss`], as files, as
/// Mosquitto's clients take them (`--cafile`, `--cert`, `--key`,
/// `--insecure`).
///
/// The files are read once, by [`crate::Client::connect`], which fails
/// if one cannot be used; reconnections use what was read then.
///
/// The server is verified against `cafile` only: there are no built-in
/// roots and the system's trust store is not read, so a connection
/// without `cafile` fails with [`crate::Error::Invalid`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM: the CA certificates the server's certificate must chain to.
    pub cafile: Option<PathBuf>,
    /// PEM: this client's certificate chain, leaf first, for servers that
    /// ask for one (mutual TLS). Needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM: the private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Accept a certificate that does not name the server. Everything else
    /// is still checked: the chain to `cafile`, the validity dates, the
    /// key usage, and the handshake signatures; only the match between the
    /// certificate's names and `server_name` (or the host) is skipped.
    /// That lets anyone with a certificate from the same CA pose as the
    /// server: for tests and for servers known by an address their
    /// certificate does not list.
    pub insecure: bool,
    /// The name the certificate must carry, also sent as SNI; default: the
    /// host part of [`Options::address`] (an IP address is matched against
    /// the certificate's IP address names, and sends no SNI).
    pub server_name: Option<String>,
}

/// What [`crate::Client::connect`] connects with.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HOST:PORT` (an IPv6 host in brackets: `[::1]:1883`).
    pub address: String,
    /// TCP (the default), TLS, WebSocket, or WebSocket over TLS.
    pub transport: Transport,
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
    /// How long to wait for the connection (TCP, then the TLS and
    /// WebSocket handshakes the transport has) and the CONNACK.
    pub connect_timeout: Duration,
}

impl Options {
    /// MQTT 5.0 over TCP to `address` as `client_id`, clean start,
    /// keep-alive 30 s, no reconnect.
    pub fn new(address: impl Into<String>, client_id: impl Into<String>) -> Options {
        Options {
            address: address.into(),
            transport: Transport::Tcp,
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
