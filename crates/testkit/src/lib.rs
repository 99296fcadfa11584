//! `strata-testkit`: what the conformance tests drive the broker with.
//!
//! - [`raw`]: MQTT packets built byte by byte from the spec's tables. It
//!   deliberately shares no code with `strata-codec`, so a codec bug cannot
//!   hide itself in a test that encodes with the same code it checks.
//! - [`RawClient`]: a TCP client that sends those bytes and reads back whole
//!   packets (first byte and body), with bounded waits.
//! - [`TestBroker`]: a broker in this process on 127.0.0.1 port 0.

pub mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use strata_broker::{Broker, BrokerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A broker on 127.0.0.1, port 0.
#[derive(Debug)]
pub struct TestBroker {
    pub broker: Broker,
    pub addr: SocketAddr,
}

impl TestBroker {
    pub async fn start(mut config: BrokerConfig) -> TestBroker {
        config.listeners = vec![SocketAddr::from(([127, 0, 0, 1], 0)).into()];
        let broker = Broker::start(config).await.expect("broker starts");
        let addr = broker.local_addrs()[0];
        TestBroker { broker, addr }
    }

    /// Defaults without `$SYS` noise.
    pub async fn start_default() -> TestBroker {
        TestBroker::start(BrokerConfig {
            sys_interval: None,
            ..BrokerConfig::default()
        })
        .await
    }

    pub async fn client(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    /// A 3.1.1 connection with Clean Session 0 (a persistent session) and
    /// no keep alive, accepted; returns it and Session Present.
    pub async fn persistent(&self, id: &str) -> (RawClient, bool) {
        let mut c = self.client().await;
        c.send(&raw::connect(4, 0x00, 0, id, &[])).await;
        let ack = c.expect(2).await;
        assert_eq!(ack.body[1], 0, "CONNACK return code");
        (c, ack.body[0] & 1 == 1)
    }
}

/// One packet as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    /// Type and flags.
    pub first: u8,
    pub body: Vec<u8>,
}

impl RawPacket {
    pub fn packet_type(&self) -> u8 {
        self.first >> 4
    }

    /// The packet identifier of an acknowledgement (its first two bytes).
    pub fn ack_id(&self) -> u16 {
        u16::from_be_bytes([self.body[0], self.body[1]])
    }

    /// Packet identifier, payload and DUP of a 3.1.1 QoS 1 or 2 PUBLISH.
    pub fn publish_parts(&self) -> (u16, Vec<u8>, bool) {
        assert_eq!(self.packet_type(), 3, "not a PUBLISH: {self:?}");
        let topic_len = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
        let at = 2 + topic_len;
        let id = u16::from_be_bytes([self.body[at], self.body[at + 1]]);
        (id, self.body[at + 2..].to_vec(), self.first & 0x08 != 0)
    }
}

/// What a read ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Packet(RawPacket),
    /// The server closed the connection.
    Closed,
}

/// A client speaking raw bytes, over TCP unless made [`RawClient::over`]
/// another stream (TLS, WebSocket).
#[derive(Debug)]
pub struct RawClient<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    /// A client over a stream already open.
    pub fn over(stream: S) -> RawClient<S> {
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient::open(addr, None).await
    }

    /// A client whose socket takes in at most about `receive_buffer`
    /// bytes that it has not read: one that stops reading soon fills the
    /// server's side of the connection.
    pub async fn connect_with_receive_buffer(addr: SocketAddr, receive_buffer: u32) -> RawClient {
        RawClient::open(addr, Some(receive_buffer)).await
    }

    async fn open(addr: SocketAddr, receive_buffer: Option<u32>) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).expect("receive buffer");
        }
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    pub async fn send(&mut self, bytes: &[u8]) {
        // The server may already have closed; tests read that next.
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet, or `Closed`; fails the test after [`WAIT`].
    pub async fn read(&mut self) -> Read {
        self.read_within(WAIT).await
    }

    /// The next packet, or `Closed`; fails the test after `wait` (on
    /// tokio's clock: a test on paused time waits longer than [`WAIT`] for
    /// a deadline minutes away without taking that long).
    pub async fn read_within(&mut self, wait: Duration) -> Read {
        tokio::time::timeout(wait, self.read_inner())
            .await
            .expect("the server neither answered nor closed in time")
    }

    async fn read_inner(&mut self) -> Read {
        loop {
            if let Some((first, body, used)) = split_frame(&self.buf) {
                self.buf.drain(..used);
                return Read::Packet(RawPacket { first, body });
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a packet of `packet_type` arrives; panics on close.
    pub async fn expect(&mut self, packet_type: u8) -> RawPacket {
        loop {
            match self.read().await {
                Read::Packet(p) if p.packet_type() == packet_type => return p,
                Read::Packet(_) => continue,
                Read::Closed => panic!("closed while waiting for packet type {packet_type}"),
            }
        }
    }

    /// Reads until the server closes; returns the packets it sent first.
    pub async fn until_closed(&mut self) -> Vec<RawPacket> {
        let mut seen = Vec::new();
        loop {
            match self.read().await {
                Read::Packet(p) => seen.push(p),
                Read::Closed => return seen,
            }
        }
    }
}

/// Splits one whole packet off the front of `buf`: first byte, body, bytes
/// used.
pub fn split_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let first = *buf.first()?;
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        len |= usize::from(b & 0x7F) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let end = i + len;
    (buf.len() >= end).then(|| (first, buf[i..end].to_vec(), end))
}
