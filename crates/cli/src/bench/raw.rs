//! The load generator's clients: one task per connection that writes,
//! reads and acknowledges with nothing between it and the socket. A run
//! measures the broker, so the generator's own cost per message is kept as
//! low as it goes: a publisher encodes a batch of PUBLISH packets and writes
//! them at once, a subscriber reads each PUBLISH in place in its read buffer
//! (no frame, no channel, no task wake per message), the clock is read once
//! per batch, and the acknowledgements of one read leave in one write.
//!
//! The handshake (CONNECT, SUBSCRIBE) uses the codec's full packets; the
//! steady state handles PUBLISH at QoS 0, 1 and 2 and their
//! acknowledgements, and PINGRESP.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use std::os::fd::AsRawFd;
use strata_codec::{
    Connect, ConnectProperties, MqttStr, Packet, PacketType, Protocol, QoS, ReasonCode, Subscribe,
    SubscribeOptions, Subscription, decode, decode_fixed_header,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::wire::{Dial, Wire};
use super::{Collector, HEADER};

/// The largest packet accepted from the broker.
const MAX_PACKET: usize = 1 << 20;
/// Room kept free in a subscriber's read buffer before each read.
const READ_ROOM: usize = 64 * 1024;
/// A publisher's: it reads only acknowledgements, and a run may have
/// thousands of publishers.
const ACK_ROOM: usize = 4 * 1024;

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
    /// Every packet in a `write` of its own, as device clients send.
    pub per_packet: bool,
    /// TCP, or TLS over it.
    pub dial: Dial,
}

/// A connection past its CONNACK.
#[derive(Debug)]
struct Link {
    stream: Wire,
    protocol: Protocol,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Seconds between PINGREQs; 0: none.
    ping_every: u16,
    /// The broker's 5.0 Receive Maximum: QoS 1 and 2 publishes in flight
    /// at most [MQTT-3.3.4-7].
    receive_maximum: u16,
    /// Each packet written by itself (see [`Setup::per_packet`]).
    per_packet: bool,
    /// Room kept free in `rbuf` before each read.
    room: usize,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Link {
    /// Connects and waits for a successful CONNACK.
    async fn connect(s: &Setup, room: usize) -> io::Result<Link> {
        let stream = tokio::time::timeout(Duration::from_secs(30), s.dial.open(&s.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let mut me = Link {
            stream,
            protocol: s.protocol,
            rbuf: BytesMut::with_capacity(room),
            wbuf: BytesMut::new(),
            ping_every: s.keep_alive / 2,
            receive_maximum: u16::MAX,
            per_packet: false,
            room,
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
                // [MQTT-3.2.2-21]: the server's Keep Alive replaces ours.
                if let Some(k) = a.properties.server_keep_alive {
                    me.ping_every = if k == 0 { 0 } else { (k / 2).max(1) };
                }
                if let Some(m) = a.properties.receive_maximum {
                    me.receive_maximum = m;
                }
            }
            Packet::ConnAck(a) => return Err(bad(format!("connection refused: {:?}", a.code))),
            p => return Err(bad(format!("expected CONNACK, got {:?}", p.packet_type()))),
        }
        me.per_packet = s.per_packet;
        Ok(me)
    }

    async fn send(&mut self, p: Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        p.encode(self.protocol, &mut out)
            .map_err(|e| bad(e.to_string()))?;
        self.stream.write_all(&out).await?;
        // TLS and WebSocket send what a write took on flush (TCP: no-op).
        self.stream.flush().await
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

    /// Room in the read buffer for the next read.
    fn make_room(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < self.room / 4 {
            self.rbuf.reserve(self.room);
        }
    }

    /// Reads what the socket has; an EOF is an error (the broker left).
    async fn fill(&mut self) -> io::Result<()> {
        self.make_room();
        if self.stream.read_buf(&mut self.rbuf).await? == 0 {
            return Err(closed());
        }
        Ok(())
    }

    /// Reads what the socket has, like [`Link::fill`], and returns when
    /// the kernel received the newest of it (ns since the epoch), if the
    /// socket stamps arrivals (see [`stamp_arrivals`]).
    async fn fill_stamped(&mut self) -> io::Result<Option<u64>> {
        if self.stream.tcp().is_none() {
            // TLS, WebSocket: no kernel stamp of the message itself.
            self.fill().await?;
            return Ok(None);
        }
        self.make_room();
        loop {
            let Some(stream) = self.stream.tcp() else {
                return Ok(None);
            };
            stream.readable().await?;
            let rbuf = &mut self.rbuf;
            match stream.try_io(Interest::READABLE, || recv_stamped(stream, rbuf)) {
                Ok((0, _)) => return Err(closed()),
                Ok((_, stamp)) => return Ok(stamp),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes what is queued: at once, or one `write` per packet.
    async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if self.per_packet {
            let mut at = 0;
            while at < self.wbuf.len() {
                // Only whole packets are queued: each starts with its type
                // byte and Remaining Length.
                let (len, n) = var_int(&self.wbuf[at + 1..])
                    .ok_or_else(|| bad("a queued packet has no length"))?;
                let end = (at + 1 + n + len).min(self.wbuf.len());
                self.stream.write_all(&self.wbuf[at..end]).await?;
                self.stream.flush().await?;
                at = end;
            }
        } else {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await?;
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Sends DISCONNECT (normal; a 5.0 reason code of 0 may be left out)
    /// and closes.
    async fn disconnect(mut self) -> io::Result<()> {
        self.wbuf.put_slice(&[0xE0, 0]);
        self.flush().await?;
        // The broker may close first, once it has the DISCONNECT: then a
        // TLS close_notify or WebSocket Close meets a closed socket.
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}

/// One connection: the transport's handshake, CONNECT, CONNACK,
/// DISCONNECT, closed.
pub(super) async fn connect_once(s: &Setup) -> io::Result<()> {
    Link::connect(s, ACK_ROOM).await?.disconnect().await
}

/// A connected, subscribed subscriber.
#[derive(Debug)]
pub(super) struct Subscriber {
    link: Link,
}

impl Subscriber {
    /// Connects, subscribes to `filter`, and waits for the SUBACK.
    pub async fn connect(s: &Setup, filter: &str, qos: QoS) -> io::Result<Subscriber> {
        let mut link = Link::connect(s, READ_ROOM).await?;
        let filter = MqttStr::try_from(filter.to_string()).map_err(|e| bad(e.to_string()))?;
        link.send(Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: vec![Subscription {
                filter,
                options: SubscribeOptions {
                    qos,
                    ..Default::default()
                },
            }],
        }))
        .await?;
        loop {
            match link.next_packet().await? {
                Packet::SubAck(a) if a.packet_id == 1 => {
                    return match a.codes.first() {
                        Some(c) if !c.is_error() => {
                            if let Some(tcp) = link.stream.tcp() {
                                stamp_arrivals(tcp);
                            }
                            Ok(Subscriber { link })
                        }
                        c => Err(bad(format!("subscription refused: {c:?}"))),
                    };
                }
                // Messages a resumed session had queued may come first:
                // acknowledged, not counted.
                Packet::Publish(p) => answer_publish(&mut link.wbuf, p.qos as u8, p.packet_id),
                Packet::PubRel(r) => ack(&mut link.wbuf, PUBCOMP, r.packet_id),
                p => return Err(bad(format!("expected SUBACK, got {:?}", p.packet_type()))),
            }
        }
    }

    /// Receives until `stop` turns true or changes hands, then disconnects.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        c: &mut Collector,
    ) -> io::Result<()> {
        let period = Duration::from_secs(u64::from(self.link.ping_every.max(1)));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // Anything the handshake read past the SUBACK.
        c.read_at(None);
        self.handle_buffered(c)?;
        loop {
            self.link.flush().await?;
            let pinging = self.link.ping_every > 0;
            let woke = tokio::select! {
                biased;
                r = self.link.fill_stamped() => r.map(Wake::Read)?,
                _ = ping.tick(), if pinging => Wake::Ping,
                _ = stop.changed() => break,
            };
            match woke {
                Wake::Read(arrived) => {
                    c.read_at(arrived);
                    self.handle_buffered(c)?;
                }
                Wake::Ping => self.link.wbuf.put_slice(&[0xC0, 0]),
            }
        }
        self.link.disconnect().await
    }

    /// Handles every whole packet in the read buffer.
    fn handle_buffered(&mut self, c: &mut Collector) -> io::Result<()> {
        let Link {
            rbuf,
            wbuf,
            protocol,
            ..
        } = &mut self.link;
        let v5 = protocol.is_v5();
        let mut got = 0;
        while let Some(h) = decode_fixed_header(rbuf, MAX_PACKET).map_err(|e| bad(e.to_string()))? {
            let len = h.frame_len();
            if rbuf.len() < len {
                break;
            }
            match h.packet_type {
                PacketType::Publish => {
                    let body = &rbuf[h.header_len..len];
                    let qos = (h.flags >> 1) & 3;
                    let (id, payload) = publish_parts(body, qos, v5)
                        .filter(|&(id, _)| qos < 3 && (qos == 0 || id != 0))
                        .ok_or_else(|| bad("malformed PUBLISH"))?;
                    c.record(payload);
                    got += 1;
                    answer_publish(wbuf, qos, id);
                    rbuf.advance(len);
                }
                PacketType::PingResp => rbuf.advance(len),
                _ => match decode(rbuf, *protocol, MAX_PACKET).map_err(|e| bad(e.to_string()))? {
                    // [MQTT-4.3.3-11]: PUBCOMP answers PUBREL.
                    Some(Packet::PubRel(r)) => ack(wbuf, PUBCOMP, r.packet_id),
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
    /// With the kernel's receive time of what was read, if stamped.
    Read(Option<u64>),
    Ping,
}

/// What a publisher sends.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Written into each payload: which publisher sent it.
    pub index: u32,
    pub topic: String,
    pub qos: QoS,
    /// Payload bytes, at least [`HEADER`].
    pub size: usize,
    /// Messages to send; 0: until `deadline`.
    pub count: u64,
    pub deadline: Instant,
    /// Messages per second, on a schedule from `t0`; `None`: as fast as the
    /// window allows.
    pub rate: Option<f64>,
    pub t0: Instant,
    /// Where in each period of the schedule this publisher sends, as a
    /// fraction of the period: publishers spread over it rather than all
    /// sending at the same instant.
    pub phase: f64,
    /// Send times are written as nanoseconds since this.
    pub epoch: Instant,
    /// Unacknowledged QoS 1 and 2 messages at most.
    pub inflight: usize,
    /// How long after `deadline` the last acknowledgements may take.
    pub ack_wait: Duration,
}

/// One write carries up to this much.
const WRITE_BATCH: usize = 64 * 1024;

/// A connected publisher.
#[derive(Debug)]
pub(super) struct Publisher {
    link: Link,
    /// Packet ids in flight: a bitset over all 65,536.
    used: Vec<u64>,
    last_id: u16,
    in_flight: usize,
}

impl Publisher {
    pub async fn connect(s: &Setup) -> io::Result<Publisher> {
        Ok(Publisher {
            link: Link::connect(s, ACK_ROOM).await?,
            used: vec![0; 65536 / 64],
            last_id: 0,
            in_flight: 0,
        })
    }

    fn next_id(&mut self) -> u16 {
        loop {
            self.last_id = self.last_id % u16::MAX + 1;
            let (word, bit) = (usize::from(self.last_id / 64), self.last_id % 64);
            if self.used[word] & (1 << bit) == 0 {
                self.used[word] |= 1 << bit;
                self.in_flight += 1;
                return self.last_id;
            }
        }
    }

    fn release(&mut self, id: u16) {
        let (word, bit) = (usize::from(id / 64), id % 64);
        if self.used[word] & (1 << bit) != 0 {
            self.used[word] &= !(1 << bit);
            self.in_flight -= 1;
        }
    }

    /// Publishes by `plan`, counting what was sent in `published`, waits for
    /// the last acknowledgement, and disconnects.
    pub async fn run(mut self, plan: &Plan, published: &AtomicU64) -> io::Result<()> {
        let window = if plan.qos == QoS::AtMostOnce {
            usize::MAX
        } else {
            let most = usize::from(self.link.receive_maximum.min(u16::MAX - 1));
            plan.inflight.clamp(1, most)
        };
        let mut seq = 0u64;
        // Set when the last wait was for the schedule's timer.
        let mut timer_woke = false;
        loop {
            let now = Instant::now();
            let done = (plan.count > 0 && seq >= plan.count) || now >= plan.deadline;
            let mut next_due = None;
            while !done
                && self.in_flight < window
                && self.link.wbuf.len() < WRITE_BATCH
                && (plan.count == 0 || seq < plan.count)
            {
                let due = plan
                    .rate
                    .map(|r| plan.t0 + Duration::from_secs_f64((seq as f64 + plan.phase) / r));
                // A message held back by the broker (a full window) is
                // stamped with the time it was due, so a slow broker shows
                // as latency rather than as a slower schedule. One that
                // waited for its time is stamped as it leaves: the timer
                // wakes up to a millisecond late, and that delay is the
                // generator's, not the broker's.
                let sent_at = match due {
                    Some(d) if d > now => {
                        next_due = Some(d);
                        break;
                    }
                    Some(d) if !timer_woke => d,
                    _ => now,
                };
                self.put_publish(plan, seq, sent_at);
                seq += 1;
            }
            timer_woke = false;
            self.link.flush().await?;
            published.store(seq, Ordering::Relaxed);
            if done {
                break;
            }
            // Acknowledgements that already came, without waiting; the
            // PUBRELs they call for leave at once (the broker may wait on
            // them for everything else).
            self.read_acks_now()?;
            self.link.flush().await?;
            if self.in_flight >= window {
                self.wait(None).await?;
            } else if let Some(due) = next_due {
                timer_woke = !self.wait(Some(due.min(plan.deadline))).await?;
            } else {
                // Unpaced and room in the window: the other tasks get their
                // turn before the next batch.
                tokio::task::yield_now().await;
            }
        }
        let give_up = Instant::now() + plan.ack_wait;
        while self.in_flight > 0 {
            if Instant::now() >= give_up {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} publishes never acknowledged", self.in_flight),
                ));
            }
            self.wait(Some(give_up)).await?;
        }
        self.link.disconnect().await
    }

    /// Encodes one PUBLISH: the payload starts with the publisher's index,
    /// the sequence number and the send time.
    fn put_publish(&mut self, plan: &Plan, seq: u64, sent_at: Instant) {
        let id = match plan.qos {
            QoS::AtMostOnce => None,
            _ => Some(self.next_id()),
        };
        let v5 = self.link.protocol.is_v5();
        let w = &mut self.link.wbuf;
        let remaining =
            2 + plan.topic.len() + 2 * usize::from(id.is_some()) + usize::from(v5) + plan.size;
        w.put_u8(0x30 | ((plan.qos as u8) << 1));
        put_var_int(w, remaining);
        w.put_u16(plan.topic.len() as u16);
        w.put_slice(plan.topic.as_bytes());
        if let Some(id) = id {
            w.put_u16(id);
        }
        if v5 {
            w.put_u8(0); // no properties
        }
        w.put_u32(plan.index);
        w.put_u64(seq);
        w.put_u64(sent_at.saturating_duration_since(plan.epoch).as_nanos() as u64);
        w.put_bytes(b'x', plan.size.saturating_sub(HEADER));
    }

    /// Handles the acknowledgements the socket has now.
    fn read_acks_now(&mut self) -> io::Result<()> {
        loop {
            let l = &mut self.link;
            l.make_room();
            match l.stream.try_read_buf(&mut l.rbuf) {
                Ok(0) => return Err(closed()),
                Ok(_) => self.handle_acks()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for acknowledgements, or until `until`; true if some came.
    async fn wait(&mut self, until: Option<Instant>) -> io::Result<bool> {
        // Only the read is bounded by the time: it is safe to drop midway,
        // a write of PUBRELs is not.
        let link = &mut self.link;
        let timed = until.is_some();
        let read = async move {
            if timed {
                // Acknowledgements are not measured, deliveries are: a
                // subscriber woken in the same wake reads first (tokio
                // would otherwise run the task woken last first, and which
                // that is depends on the order a broker writes in). Only
                // in a timed wait (a paced schedule, the last
                // acknowledgements): unpaced with a full window, it would
                // cost a poll of the I/O driver per wake where throughput
                // is measured.
                link.stream.readable().await?;
                tokio::task::yield_now().await;
            }
            link.fill().await
        };
        match until {
            None => read.await?,
            Some(t) => match tokio::time::timeout_at(t.into(), read).await {
                Ok(r) => r?,
                Err(_) => return Ok(false),
            },
        }
        self.handle_acks()?;
        self.link.flush().await?;
        Ok(true)
    }

    fn handle_acks(&mut self) -> io::Result<()> {
        while let Some(p) = decode(&mut self.link.rbuf, self.link.protocol, MAX_PACKET)
            .map_err(|e| bad(e.to_string()))?
        {
            match p {
                Packet::PubAck(a) | Packet::PubComp(a) => {
                    refused(a.reason)?;
                    self.release(a.packet_id);
                }
                Packet::PubRec(a) => {
                    if let Err(e) = refused(a.reason) {
                        self.release(a.packet_id);
                        return Err(e);
                    }
                    // [MQTT-4.3.3-3]: PUBREL answers PUBREC.
                    ack(&mut self.link.wbuf, PUBREL, a.packet_id);
                }
                Packet::Disconnect(d) => {
                    return Err(bad(format!("the broker disconnected: {:?}", d.reason)));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Asks the kernel to stamp what `stream` receives (`SO_TIMESTAMPNS`): a
/// message's latency then ends when it reached the subscriber's socket,
/// not when the generator's thread, which shares one core with every
/// other client, got round to reading it. Where the kernel refuses, the
/// read's own time is used.
fn stamp_arrivals(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, and an int option of its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of_val(&on) as libc::socklen_t,
        );
    }
}

/// One `recvmsg` into `buf`'s spare room: the bytes read, and the kernel's
/// receive time of the newest of them (ns since the epoch) if it stamped
/// them. For TCP that is the last segment read, so a message that came in
/// an earlier segment of the same read is counted late, never early.
fn recv_stamped(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, Option<u64>)> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // u64s: aligned for a cmsghdr; room for a timestamp and more.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data, valid all-zero.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every buffer msg points to lives across the call.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first n bytes of the spare room.
    unsafe { buf.set_len(buf.len() + n) };
    let mut stamp = None;
    // SAFETY: msg was filled in by recvmsg; its control messages are
    // walked with the kernel's macros and read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = u64::try_from(t.tv_sec)
                    .ok()
                    .map(|s| s * 1_000_000_000 + t.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok((n, stamp))
}

/// A publish the broker refused (5.0 reason codes of 0x80 and up).
fn refused(reason: ReasonCode) -> io::Result<()> {
    if reason.is_error() {
        return Err(bad(format!("the broker refused a publish: {reason:?}")));
    }
    Ok(())
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the broker closed the connection",
    )
}

fn put_var_int(w: &mut BytesMut, mut v: usize) {
    loop {
        let byte = (v % 128) as u8;
        v /= 128;
        if v == 0 {
            w.put_u8(byte);
            return;
        }
        w.put_u8(byte | 0x80);
    }
}

/// First bytes (type and flags) of the acknowledgements the clients send.
const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;
const PUBREL: u8 = 0x62;
const PUBCOMP: u8 = 0x70;

/// An acknowledgement with Success, in the short form every version reads.
fn ack(out: &mut BytesMut, first: u8, id: u16) {
    let [hi, lo] = id.to_be_bytes();
    out.put_slice(&[first, 2, hi, lo]);
}

/// What a subscriber answers a PUBLISH of `qos` with: PUBACK at 1, PUBREC
/// at 2, nothing at 0.
fn answer_publish(out: &mut BytesMut, qos: u8, id: u16) {
    match qos {
        1 => ack(out, PUBACK, id),
        2 => ack(out, PUBREC, id),
        _ => {}
    }
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

    /// A publisher on a connected socket, past any handshake.
    async fn publisher(
        addr: std::net::SocketAddr,
        protocol: Protocol,
        per_packet: bool,
    ) -> Publisher {
        Publisher {
            link: Link {
                stream: Wire::Tcp(TcpStream::connect(addr).await.unwrap()),
                protocol,
                rbuf: BytesMut::new(),
                wbuf: BytesMut::new(),
                ping_every: 0,
                receive_maximum: u16::MAX,
                per_packet,
                room: ACK_ROOM,
            },
            used: vec![0; 65536 / 64],
            last_id: 0,
            in_flight: 0,
        }
    }

    /// An unpaced plan starting at `epoch`.
    fn plan(index: u32, topic: &str, qos: QoS, size: usize, epoch: Instant) -> Plan {
        Plan {
            index,
            topic: topic.into(),
            qos,
            size,
            count: 0,
            deadline: epoch,
            rate: None,
            t0: epoch,
            phase: 0.0,
            epoch,
            inflight: 10,
            ack_wait: Duration::from_secs(1),
        }
    }

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

    #[tokio::test]
    async fn the_publisher_writes_what_the_codec_reads() {
        // A connected socket for the Link to own; nothing is written to it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for protocol in [Protocol::V3_1_1, Protocol::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let mut p = publisher(addr, protocol, false).await;
                let epoch = Instant::now();
                let plan = plan(7, "bench/t", qos, 200, epoch);
                p.put_publish(&plan, 41, epoch + Duration::from_micros(5));
                p.put_publish(&plan, 42, epoch);
                let mut buf = std::mem::take(&mut p.link.wbuf);
                for seq in [41u64, 42] {
                    let Some(Packet::Publish(got)) =
                        decode(&mut buf, protocol, MAX_PACKET).unwrap()
                    else {
                        panic!("not a PUBLISH");
                    };
                    assert_eq!(got.qos, qos);
                    assert_eq!(got.topic.as_str(), "bench/t");
                    let id = (qos != QoS::AtMostOnce).then_some((seq - 40) as u16);
                    assert_eq!(got.packet_id, id.unwrap_or(0), "{protocol:?} {qos:?}");
                    let b = &got.payload;
                    assert_eq!(b.len(), 200);
                    assert_eq!(b[..4], 7u32.to_be_bytes());
                    assert_eq!(b[4..12], seq.to_be_bytes());
                    let stamp = if seq == 41 { 5000u64 } else { 0 };
                    assert_eq!(b[12..20], stamp.to_be_bytes());
                    assert!(b[20..].iter().all(|&x| x == b'x'));
                }
                assert!(buf.is_empty());
                assert_eq!(p.in_flight, if qos == QoS::AtMostOnce { 0 } else { 2 });
            }
        }
    }

    #[tokio::test]
    async fn per_packet_writes_send_the_queued_bytes_unchanged() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut p = publisher(addr, Protocol::V5, true).await;
        let (mut server, _) = listener.accept().await.unwrap();
        let epoch = Instant::now();
        // Remaining Lengths of one and of two bytes, and an acknowledgement.
        for size in [20, 300, 64] {
            p.put_publish(&plan(1, "t", QoS::AtLeastOnce, size, epoch), 0, epoch);
        }
        ack(&mut p.link.wbuf, PUBREL, 9);
        let queued = p.link.wbuf.clone();
        p.link.flush().await.unwrap();
        assert!(p.link.wbuf.is_empty());
        let mut got = vec![0; queued.len()];
        tokio::time::timeout(Duration::from_secs(10), server.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, queued[..]);
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
