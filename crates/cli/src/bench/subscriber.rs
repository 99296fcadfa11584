//! The load generator's subscriber: one task per connection that reads,
//! records and acknowledges with nothing between it and the socket. A run
//! measures the broker, so the generator's own cost per message is kept as
//! low as it goes: a PUBLISH is read in place in the read buffer (no frame,
//! no channel, no task wake per message), the clock is read once per read,
//! and the acknowledgements of one read leave in one write.
//!
//! The handshake (CONNECT, SUBSCRIBE) uses the codec's full packets; the
//! steady state handles PUBLISH at QoS 0, 1 and 2, PUBREL and PINGRESP.

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use strata_codec::{
    Connect, ConnectProperties, MqttStr, Packet, PacketType, Protocol, QoS, ReasonCode, Subscribe,
    SubscribeOptions, Subscription, decode, decode_fixed_header,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Collector;

/// The largest packet accepted from the broker.
const MAX_PACKET: usize = 1 << 20;
/// Room kept free in the read buffer before each read.
const READ_ROOM: usize = 64 * 1024;

/// How a subscriber connects.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    pub addr: String,
    pub client_id: String,
    pub protocol: Protocol,
    pub clean_start: bool,
    /// 5.0 Session Expiry Interval, seconds.
    pub session_expiry: u32,
    pub keep_alive: u16,
    pub filter: String,
    pub qos: QoS,
}

/// A connected, subscribed subscriber.
#[derive(Debug)]
pub(super) struct Subscriber {
    stream: TcpStream,
    protocol: Protocol,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Seconds between PINGREQs; 0: none.
    ping_every: u16,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Subscriber {
    /// Connects, subscribes, and waits for the SUBACK.
    pub async fn connect(s: &Setup) -> io::Result<Subscriber> {
        let stream = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(&s.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut me = Subscriber {
            stream,
            protocol: s.protocol,
            rbuf: BytesMut::with_capacity(READ_ROOM),
            wbuf: BytesMut::new(),
            ping_every: s.keep_alive / 2,
        };
        let client_id = MqttStr::try_from(s.client_id.clone()).map_err(|e| bad(e.to_string()))?;
        let mut properties = ConnectProperties::default();
        if s.protocol.is_v5() && s.session_expiry > 0 {
            properties.session_expiry_interval = Some(s.session_expiry);
        }
        me.send(Packet::Connect(Box::new(Connect {
            protocol: s.protocol,
            clean_start: s.clean_start,
            keep_alive: s.keep_alive,
            properties,
            client_id,
            will: None,
            username: None,
            password: None,
        })))
        .await?;
        match me.next_packet().await? {
            Packet::ConnAck(a) if a.code == ReasonCode::Success => {
                if let Some(k) = a.properties.server_keep_alive {
                    me.ping_every = k / 2;
                }
            }
            Packet::ConnAck(a) => return Err(bad(format!("connection refused: {:?}", a.code))),
            p => return Err(bad(format!("expected CONNACK, got {:?}", p.packet_type()))),
        }
        let filter = MqttStr::try_from(s.filter.clone()).map_err(|e| bad(e.to_string()))?;
        me.send(Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: vec![Subscription {
                filter,
                options: SubscribeOptions {
                    qos: s.qos,
                    ..Default::default()
                },
            }],
        }))
        .await?;
        loop {
            match me.next_packet().await? {
                Packet::SubAck(a) if a.packet_id == 1 => {
                    return match a.codes.first() {
                        Some(c) if !c.is_error() => Ok(me),
                        c => Err(bad(format!("subscription refused: {c:?}"))),
                    };
                }
                // Messages a resumed session had queued may come first:
                // acknowledged, not counted.
                Packet::Publish(p) => match p.qos {
                    QoS::AtLeastOnce => ack(&mut me.wbuf, 0x40, p.packet_id),
                    QoS::ExactlyOnce => ack(&mut me.wbuf, 0x50, p.packet_id),
                    QoS::AtMostOnce => {}
                },
                Packet::PubRel(r) => ack(&mut me.wbuf, 0x70, r.packet_id),
                p => return Err(bad(format!("expected SUBACK, got {:?}", p.packet_type()))),
            }
        }
    }

    async fn send(&mut self, p: Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        p.encode(self.protocol, &mut out)
            .map_err(|e| bad(e.to_string()))?;
        self.stream.write_all(&out).await
    }

    async fn next_packet(&mut self) -> io::Result<Packet> {
        loop {
            if let Some(p) =
                decode(&mut self.rbuf, self.protocol, MAX_PACKET).map_err(|e| bad(e.to_string()))?
            {
                return Ok(p);
            }
            self.fill().await?;
        }
    }

    /// Reads what the socket has; an EOF is an error (the broker left).
    async fn fill(&mut self) -> io::Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_ROOM / 4 {
            self.rbuf.reserve(READ_ROOM);
        }
        if self.stream.read_buf(&mut self.rbuf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the broker closed the connection",
            ));
        }
        Ok(())
    }

    /// Receives until `stop` turns true or changes hands, then disconnects.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        c: &mut Collector,
    ) -> io::Result<()> {
        let period = Duration::from_secs(u64::from(self.ping_every.max(1)));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // Anything the handshake read past the SUBACK.
        c.read_now();
        self.handle_buffered(c)?;
        loop {
            if !self.wbuf.is_empty() {
                self.stream.write_all(&self.wbuf).await?;
                self.wbuf.clear();
            }
            let pinging = self.ping_every > 0;
            let woke = tokio::select! {
                biased;
                r = self.fill() => r.map(|()| Wake::Read)?,
                _ = ping.tick(), if pinging => Wake::Ping,
                _ = stop.changed() => break,
            };
            match woke {
                Wake::Read => {
                    c.read_now();
                    self.handle_buffered(c)?;
                }
                Wake::Ping => self.wbuf.put_slice(&[0xC0, 0]),
            }
        }
        // DISCONNECT, normal (a 5.0 reason code of 0 may be left out).
        self.stream.write_all(&[0xE0, 0]).await?;
        self.stream.shutdown().await
    }

    /// Handles every whole packet in the read buffer.
    fn handle_buffered(&mut self, c: &mut Collector) -> io::Result<()> {
        let v5 = self.protocol.is_v5();
        let mut got = 0;
        while let Some(h) =
            decode_fixed_header(&self.rbuf, MAX_PACKET).map_err(|e| bad(e.to_string()))?
        {
            let len = h.frame_len();
            if self.rbuf.len() < len {
                break;
            }
            match h.packet_type {
                PacketType::Publish => {
                    let body = &self.rbuf[h.header_len..len];
                    let qos = (h.flags >> 1) & 3;
                    let (id, payload) =
                        publish_parts(body, qos, v5).ok_or_else(|| bad("malformed PUBLISH"))?;
                    c.record(payload);
                    got += 1;
                    match qos {
                        1 => ack(&mut self.wbuf, 0x40, id),
                        2 => ack(&mut self.wbuf, 0x50, id),
                        _ => {}
                    }
                    self.rbuf.advance(len);
                }
                PacketType::PingResp => self.rbuf.advance(len),
                _ => match decode(&mut self.rbuf, self.protocol, MAX_PACKET)
                    .map_err(|e| bad(e.to_string()))?
                {
                    // [MQTT-4.3.3-11]: PUBCOMP answers PUBREL.
                    Some(Packet::PubRel(r)) => ack(&mut self.wbuf, 0x70, r.packet_id),
                    Some(Packet::Disconnect(d)) => {
                        return Err(bad(format!("the broker disconnected: {:?}", d.reason)));
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        c.delivered(got);
        Ok(())
    }
}

enum Wake {
    Read,
    Ping,
}

/// PUBACK (0x40), PUBREC (0x50) or PUBCOMP (0x70) with Success, in the short
/// form every version reads.
fn ack(out: &mut BytesMut, first: u8, id: u16) {
    let [hi, lo] = id.to_be_bytes();
    out.put_slice(&[first, 2, hi, lo]);
}

/// The packet id (0 at QoS 0) and payload of a PUBLISH body, read in place.
fn publish_parts(body: &[u8], qos: u8, v5: bool) -> Option<(u16, &[u8])> {
    let topic_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let mut at = 2 + topic_len;
    let mut id = 0;
    if qos > 0 {
        id = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
        at += 2;
    }
    if v5 {
        let (props, n) = var_int(body.get(at..)?)?;
        at += n + props;
    }
    Some((id, body.get(at..)?))
}

/// A Variable Byte Integer and its length in bytes.
fn var_int(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for (i, &byte) in b.iter().take(4).enumerate() {
        v |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strata_codec::{Publish, PublishProperties};

    fn body(p: &Publish, protocol: Protocol) -> (u8, Vec<u8>) {
        let mut out = BytesMut::new();
        Packet::Publish(p.clone())
            .encode(protocol, &mut out)
            .unwrap();
        let h = decode_fixed_header(&out, MAX_PACKET).unwrap().unwrap();
        (h.flags, out[h.header_len..].to_vec())
    }

    #[test]
    fn publish_parts_read_what_the_codec_wrote() {
        for protocol in [Protocol::V3_1_1, Protocol::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let mut properties = PublishProperties::default();
                if protocol.is_v5() {
                    properties.message_expiry_interval = Some(60);
                    properties.content_type = Some(MqttStr::from_static("text/plain"));
                }
                let p = Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: MqttStr::from_static("a/b/c"),
                    packet_id: if qos == QoS::AtMostOnce { 0 } else { 513 },
                    properties: properties.into(),
                    payload: Bytes::from_static(b"the payload"),
                };
                let (flags, b) = body(&p, protocol);
                let (id, payload) = publish_parts(&b, (flags >> 1) & 3, protocol.is_v5()).unwrap();
                assert_eq!(payload, b"the payload", "{protocol:?} {qos:?}");
                assert_eq!(id, p.packet_id, "{protocol:?} {qos:?}");
            }
        }
    }

    #[test]
    fn a_truncated_publish_is_refused() {
        assert_eq!(publish_parts(&[0, 5, b'a'], 0, false), None);
        assert_eq!(publish_parts(&[0, 1, b'a', 0], 1, false), None);
        assert_eq!(
            publish_parts(&[0, 1, b'a', 0x80, 0x80, 0x80, 0x80, 0x01], 0, true),
            None
        );
        assert_eq!(publish_parts(&[0, 1, b'a', 5, 0], 0, true), None);
    }

    #[test]
    fn var_ints_of_every_length() {
        assert_eq!(var_int(&[0]), Some((0, 1)));
        assert_eq!(var_int(&[0x7F]), Some((127, 1)));
        assert_eq!(var_int(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(var_int(&[0xFF, 0xFF, 0xFF, 0x7F]), Some((268_435_455, 4)));
        assert_eq!(var_int(&[0x80]), None);
    }
}
