//! The connection task: one socket at a time, the QoS flows both ways,
//! keep-alive, and reconnection with session resume.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::BytesMut;
use strata_codec::{
    ConnAck, Connect, Disconnect, MqttStr, Packet, Protocol, PubResponse, Publish, QoS, ReasonCode,
    Subscribe, Unsubscribe, decode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::client::{Client, Connected, Error, Incoming, Message, Reply, Request};
use crate::options::Options;
use crate::transport::{Connector, Stream};

/// An outbound QoS 1 or 2 PUBLISH not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    publish: Publish,
    /// PUBREC arrived and PUBREL went out (QoS 2).
    released: bool,
    reply: Option<Reply<()>>,
}

/// A SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement.
#[derive(Debug)]
enum PendingAck {
    Subscribe(Subscribe, Reply<Vec<ReasonCode>>),
    Unsubscribe(Unsubscribe, Reply<Vec<ReasonCode>>),
}

/// Why one connection ended.
#[derive(Debug)]
enum End {
    /// The application asked to disconnect; DISCONNECT was written.
    Disconnected(Reply<()>),
    /// Every `Client` handle is gone.
    ClientGone,
    /// The connection broke or the server ended it.
    Lost(Error),
}

#[derive(Debug)]
struct State {
    protocol: Protocol,
    next_id: u16,
    /// Outbound QoS 1/2 flows by packet id, and their sending order.
    inflight: HashMap<u16, InFlight>,
    order: VecDeque<u16>,
    /// QoS 1/2 publishes waiting for room in the server's Receive Maximum.
    waiting: VecDeque<(Publish, Reply<()>)>,
    window: usize,
    server_max_packet: usize,
    pending: HashMap<u16, PendingAck>,
    /// Inbound QoS 2 ids between PUBREC and PUBREL: a resent PUBLISH with
    /// one of these is not delivered again.
    inbound_qos2: HashSet<u16>,
    incoming: VecDeque<Message>,
    capacity: usize,
    /// Answers for QoS 0 publishes, sent once their bytes are written.
    written: Vec<Reply<()>>,
    rbuf: BytesMut,
    out: BytesMut,
    keep_alive: Duration,
    last_write: Instant,
    ping_sent: Option<Instant>,
}

pub(crate) async fn start(options: Options) -> Result<(Client, Incoming, Connected), Error> {
    // The transport's files are read here, once: a bad one fails the
    // first connection instead of every reconnection.
    let connector = Connector::new(&options)?;
    let mut st = State::new(&options);
    let (stream, ack) = st.establish(&connector, &options, true).await?;
    let connected = Connected {
        session_present: ack.session_present,
        assigned_client_id: ack
            .properties
            .assigned_client_identifier
            .as_ref()
            .map(|s| s.to_string()),
    };
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::channel(options.incoming_capacity.max(1));
    tokio::spawn(run(options, connector, st, stream, req_rx, in_tx));
    Ok((
        Client { requests: req_tx },
        Incoming { rx: in_rx },
        connected,
    ))
}

async fn run(
    options: Options,
    connector: Connector,
    mut st: State,
    mut stream: Stream,
    mut requests: mpsc::UnboundedReceiver<Request>,
    incoming: mpsc::Sender<Message>,
) {
    loop {
        match st.serve(&mut stream, &mut requests, &incoming).await {
            End::Disconnected(reply) => {
                let _ = reply.send(Ok(()));
                st.fail_all();
                return;
            }
            End::ClientGone => {
                st.out.clear();
                st.put(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
                let _ = st.flush(&mut stream).await;
                // TLS close_notify, WebSocket Close, then FIN.
                let _ = stream.shutdown().await;
                return;
            }
            End::Lost(e) => {
                tracing::debug!(error = %e, "connection lost");
                let Some(policy) = options.reconnect.clone() else {
                    st.fail_all();
                    return;
                };
                let mut wait = policy.initial;
                loop {
                    sleep(wait).await;
                    if requests.is_closed() {
                        return;
                    }
                    match st.establish(&connector, &options, false).await {
                        Ok((s, ack)) => {
                            stream = s;
                            st.resume(ack.session_present);
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "reconnect failed");
                            wait = (wait * 2).min(policy.max);
                        }
                    }
                }
            }
        }
    }
}

impl State {
    fn new(o: &Options) -> State {
        State {
            protocol: o.protocol,
            next_id: 0,
            inflight: HashMap::new(),
            order: VecDeque::new(),
            waiting: VecDeque::new(),
            window: usize::from(u16::MAX),
            server_max_packet: strata_codec::MAX_PACKET_SIZE,
            pending: HashMap::new(),
            inbound_qos2: HashSet::new(),
            incoming: VecDeque::new(),
            capacity: o.incoming_capacity.max(1),
            written: Vec::new(),
            rbuf: BytesMut::with_capacity(8 * 1024),
            out: BytesMut::with_capacity(8 * 1024),
            keep_alive: o.keep_alive,
            last_write: Instant::now(),
            ping_sent: None,
        }
    }

    /// Opens a connection and completes CONNECT/CONNACK.
    async fn establish(
        &mut self,
        connector: &Connector,
        o: &Options,
        first: bool,
    ) -> Result<(Stream, ConnAck), Error> {
        let attempt = async {
            let mut stream = connector.connect().await?;
            let mut c = Connect::new(
                o.protocol,
                MqttStr::try_from(o.client_id.as_str()).map_err(|e| Error::Invalid {
                    what: "client id",
                    why: e.to_string(),
                })?,
            );
            // Reconnections resume a session meant to outlive the
            // connection; a clean one is started afresh each time.
            let persistent = if o.protocol.is_v5() {
                o.session_expiry > 0
            } else {
                !o.clean_start
            };
            c.clean_start = if first { o.clean_start } else { !persistent };
            c.keep_alive = o.keep_alive.as_secs().min(u64::from(u16::MAX)) as u16;
            if o.protocol.is_v5() && o.session_expiry > 0 {
                c.properties.session_expiry_interval = Some(o.session_expiry);
            }
            c.username = match &o.username {
                Some(u) => Some(MqttStr::try_from(u.as_str()).map_err(|e| Error::Invalid {
                    what: "user name",
                    why: e.to_string(),
                })?),
                None => None,
            };
            c.password = o.password.clone();
            c.will = o.will.clone();
            self.out.clear();
            self.rbuf.clear();
            self.put(&Packet::Connect(Box::new(c)));
            self.flush(&mut stream)
                .await
                .map_err(|e| connector.refusal(e))?;
            loop {
                if let Some(p) =
                    decode(&mut self.rbuf, self.protocol, strata_codec::MAX_PACKET_SIZE)?
                {
                    let Packet::ConnAck(ack) = p else {
                        return Err(Error::Protocol(
                            "first packet from the server is not CONNACK",
                        ));
                    };
                    if ack.code.is_error() {
                        return Err(Error::Refused(ack.code));
                    }
                    return Ok((stream, *ack));
                }
                let n = stream
                    .read_buf(&mut self.rbuf)
                    .await
                    .map_err(|e| connector.refusal(Error::Io(e)))?;
                if n == 0 {
                    return Err(Error::Closed);
                }
            }
        };
        let (stream, ack) = timeout(o.connect_timeout, attempt)
            .await
            .map_err(|_| Error::ConnectTimeout)??;
        let p = &ack.properties;
        self.window = usize::from(p.receive_maximum.unwrap_or(u16::MAX));
        self.server_max_packet = p
            .maximum_packet_size
            .map_or(strata_codec::MAX_PACKET_SIZE, |m| m as usize);
        if let Some(k) = p.server_keep_alive {
            // [MQTT-3.2.2-21]: the server's value wins.
            self.keep_alive = Duration::from_secs(u64::from(k));
        }
        self.ping_sent = None;
        Ok((stream, ack))
    }

    /// After a reconnect: resend what was unacknowledged, in order
    /// [MQTT-4.4.0-1] [MQTT-4.6.0-1].
    fn resume(&mut self, session_present: bool) {
        if !session_present {
            // The server forgot the session: its QoS 2 ids are gone too.
            self.inbound_qos2.clear();
        }
        let order: Vec<u16> = self.order.iter().copied().collect();
        for id in order {
            let Some(f) = self.inflight.get_mut(&id) else {
                continue;
            };
            let packet = if f.released {
                Packet::PubRel(self.ack(id, ReasonCode::Success))
            } else {
                f.publish.dup = true;
                Packet::Publish(f.publish.clone())
            };
            self.put(&packet);
        }
        let pending: Vec<Packet> = self
            .pending
            .values()
            .map(|p| match p {
                PendingAck::Subscribe(s, _) => Packet::Subscribe(s.clone()),
                PendingAck::Unsubscribe(u, _) => Packet::Unsubscribe(u.clone()),
            })
            .collect();
        for p in pending {
            self.put(&p);
        }
    }

    /// Runs one connection until it ends.
    async fn serve(
        &mut self,
        stream: &mut Stream,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        incoming: &mpsc::Sender<Message>,
    ) -> End {
        // Packets that came in the same read as the CONNACK.
        if let Err(e) = self.on_bytes() {
            return End::Lost(e);
        }
        loop {
            if let Err(e) = self.flush(stream).await {
                return End::Lost(e);
            }
            // Keep reading while requests wait for acknowledgements, even
            // when the application is not taking messages: that is what
            // lets it publish from inside its receive loop.
            let awaiting = !self.inflight.is_empty() || !self.pending.is_empty();
            let may_read = self.incoming.len() < self.capacity || awaiting;
            let ping_at = self.ping_deadline();
            tokio::select! {
                r = stream.read_buf(&mut self.rbuf), if may_read => {
                    match r {
                        Ok(0) => return End::Lost(Error::Closed),
                        Err(e) => return End::Lost(Error::Io(e)),
                        Ok(_) => {
                            if let Err(e) = self.on_bytes() {
                                return End::Lost(e);
                            }
                        }
                    }
                }
                permit = incoming.reserve(), if !self.incoming.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(m) = self.incoming.pop_front() {
                                permit.send(m);
                            }
                        }
                        // Nobody receives: drop what arrives from now on.
                        Err(_) => {
                            self.incoming.clear();
                            self.capacity = usize::MAX;
                        }
                    }
                }
                req = requests.recv() => {
                    match req {
                        None => return End::ClientGone,
                        Some(Request::Disconnect(reply)) => {
                            self.put(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
                            let _ = self.flush(stream).await;
                            let _ = stream.shutdown().await;
                            return End::Disconnected(reply);
                        }
                        Some(r) => self.on_request(r),
                    }
                }
                _ = sleep_until(ping_at.unwrap_or_else(Instant::now)), if ping_at.is_some() => {
                    if self.ping_sent.is_some() {
                        return End::Lost(Error::Protocol("no answer to PINGREQ within the keep-alive"));
                    }
                    self.put(&Packet::PingReq);
                    self.ping_sent = Some(Instant::now());
                }
            }
        }
    }

    fn ping_deadline(&self) -> Option<Instant> {
        if self.keep_alive.is_zero() {
            return None;
        }
        Some(match self.ping_sent {
            Some(at) => at + self.keep_alive,
            None => self.last_write + self.keep_alive,
        })
    }

    fn on_bytes(&mut self) -> Result<(), Error> {
        while let Some(p) = decode(&mut self.rbuf, self.protocol, strata_codec::MAX_PACKET_SIZE)? {
            self.ping_sent = None;
            self.on_packet(p)?;
        }
        Ok(())
    }

    fn ack(&self, packet_id: u16, reason: ReasonCode) -> PubResponse {
        let mut a = PubResponse::new(packet_id);
        if self.protocol.is_v5() {
            a.reason = reason;
        }
        a
    }

    fn on_packet(&mut self, p: Packet) -> Result<(), Error> {
        match p {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubRel(r) => {
                let known = self.inbound_qos2.remove(&r.packet_id);
                let reason = if known {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                let comp = self.ack(r.packet_id, reason);
                self.put(&Packet::PubComp(comp));
            }
            Packet::PubAck(a) => self.complete(a.packet_id, QoS::AtLeastOnce, a.reason),
            Packet::PubRec(a) => self.on_pubrec(a),
            Packet::PubComp(a) => self.complete(a.packet_id, QoS::ExactlyOnce, a.reason),
            Packet::SubAck(a) => {
                if let Some(PendingAck::Subscribe(_, reply)) = self.pending.remove(&a.packet_id) {
                    let _ = reply.send(Ok(a.codes));
                }
            }
            Packet::UnsubAck(a) => {
                if let Some(PendingAck::Unsubscribe(_, reply)) = self.pending.remove(&a.packet_id) {
                    let _ = reply.send(Ok(a.codes));
                }
            }
            Packet::PingResp => {}
            Packet::Disconnect(d) => return Err(Error::Failed(d.reason)),
            _ => {
                return Err(Error::Protocol(
                    "a packet only a client sends, or a second CONNACK",
                ));
            }
        }
        Ok(())
    }

    fn on_publish(&mut self, p: Publish) {
        let deliver = match p.qos {
            QoS::AtMostOnce => true,
            QoS::AtLeastOnce => {
                let ack = self.ack(p.packet_id, ReasonCode::Success);
                self.put(&Packet::PubAck(ack));
                true
            }
            QoS::ExactlyOnce => {
                // Deliver once per id until its PUBREL [MQTT-4.3.3-10].
                let new = self.inbound_qos2.insert(p.packet_id);
                let ack = self.ack(p.packet_id, ReasonCode::Success);
                self.put(&Packet::PubRec(ack));
                new
            }
        };
        if deliver {
            self.incoming.push_back(Message {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                dup: p.dup,
                properties: p.properties,
            });
        }
    }

    fn on_pubrec(&mut self, a: PubResponse) {
        match self.inflight.get_mut(&a.packet_id) {
            Some(f) if f.publish.qos == QoS::ExactlyOnce && !f.released => {
                if a.reason.is_error() {
                    // The flow ends here [MQTT-4.4.0-2].
                    self.complete(a.packet_id, QoS::ExactlyOnce, a.reason);
                    return;
                }
                f.released = true;
                let rel = self.ack(a.packet_id, ReasonCode::Success);
                self.put(&Packet::PubRel(rel));
            }
            Some(f) if f.released => {
                // A resent PUBREC: PUBREL again.
                let rel = self.ack(a.packet_id, ReasonCode::Success);
                self.put(&Packet::PubRel(rel));
            }
            _ => {
                let rel = self.ack(a.packet_id, ReasonCode::PacketIdentifierNotFound);
                self.put(&Packet::PubRel(rel));
            }
        }
    }

    /// Ends the flow of `packet_id` and tells its publisher.
    fn complete(&mut self, packet_id: u16, qos: QoS, reason: ReasonCode) {
        let Some(f) = self.inflight.get(&packet_id) else {
            return;
        };
        if f.publish.qos != qos {
            return;
        }
        if let Some(mut f) = self.inflight.remove(&packet_id) {
            // Acknowledgements mostly come in sending order.
            if self.order.front() == Some(&packet_id) {
                self.order.pop_front();
            } else {
                self.order.retain(|&id| id != packet_id);
            }
            if let Some(reply) = f.reply.take() {
                // A PUBCOMP ends a flow whose PUBREC accepted the message:
                // 0x92 only says the server had already forgotten the id,
                // as it has when a PUBREL resent after a reconnect meets a
                // flow completed before the connection broke.
                let accepted = qos == QoS::ExactlyOnce && f.released;
                let r = if reason.is_error() && !accepted {
                    Err(Error::Failed(reason))
                } else {
                    Ok(())
                };
                let _ = reply.send(r);
            }
        }
        self.pump();
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::Publish(mut p, reply) => {
                // Measured with a placeholder id; the real one comes with a
                // slot in the window.
                p.packet_id = u16::from(p.qos != QoS::AtMostOnce);
                let packet = Packet::Publish(p);
                let refusal = match packet.encoded_len(self.protocol) {
                    Err(e) => Some(e.into()),
                    Ok(n) if n > self.server_max_packet => Some(Error::Invalid {
                        what: "publish",
                        why: format!(
                            "{n} bytes exceed the server's maximum packet size {}",
                            self.server_max_packet
                        ),
                    }),
                    Ok(_) => None,
                };
                if let Some(e) = refusal {
                    let _ = reply.send(Err(e));
                    return;
                }
                match packet {
                    Packet::Publish(p) if p.qos != QoS::AtMostOnce => {
                        self.waiting.push_back((p, reply));
                        self.pump();
                    }
                    packet => {
                        self.put(&packet);
                        self.written.push(reply);
                    }
                }
            }
            Request::Subscribe(filters, id, reply) => {
                let packet_id = self.next_packet_id();
                let mut s = Subscribe {
                    packet_id,
                    properties: Default::default(),
                    filters,
                };
                s.properties.subscription_identifier = id;
                self.put(&Packet::Subscribe(s.clone()));
                self.pending
                    .insert(packet_id, PendingAck::Subscribe(s, reply));
            }
            Request::Unsubscribe(filters, reply) => {
                let packet_id = self.next_packet_id();
                let u = Unsubscribe {
                    packet_id,
                    properties: Default::default(),
                    filters,
                };
                self.put(&Packet::Unsubscribe(u.clone()));
                self.pending
                    .insert(packet_id, PendingAck::Unsubscribe(u, reply));
            }
            Request::Disconnect(_) => unreachable!("handled by serve"),
        }
    }

    /// Sends waiting QoS 1/2 publishes while the window has room.
    fn pump(&mut self) {
        while self.inflight.len() < self.window {
            let Some((mut p, reply)) = self.waiting.pop_front() else {
                return;
            };
            let id = self.next_packet_id();
            p.packet_id = id;
            p.dup = false;
            self.put(&Packet::Publish(p.clone()));
            self.order.push_back(id);
            self.inflight.insert(
                id,
                InFlight {
                    publish: p,
                    released: false,
                    reply: Some(reply),
                },
            );
        }
    }

    /// The next packet id not in use by any flow [MQTT-2.3.1-2].
    fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id;
            if id != 0 && !self.inflight.contains_key(&id) && !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    fn put(&mut self, p: &Packet) {
        if let Err(e) = p.encode(self.protocol, &mut self.out) {
            // Requests are checked before they get here; this is a bug.
            tracing::error!(error = %e, "cannot encode {p:?}");
        }
    }

    async fn flush(&mut self, stream: &mut Stream) -> Result<(), Error> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            // TLS and WebSocket may keep written bytes until flushed; on
            // TCP this returns at once.
            stream.flush().await?;
            self.out.clear();
            self.last_write = Instant::now();
        }
        for reply in self.written.drain(..) {
            let _ = reply.send(Ok(()));
        }
        Ok(())
    }

    /// The client is ending: every open request fails.
    fn fail_all(&mut self) {
        for (_, f) in self.inflight.drain() {
            if let Some(r) = f.reply {
                let _ = r.send(Err(Error::Closed));
            }
        }
        for (_, reply) in self.waiting.drain(..) {
            let _ = reply.send(Err(Error::Closed));
        }
        for (_, p) in self.pending.drain() {
            match p {
                PendingAck::Subscribe(_, r) | PendingAck::Unsubscribe(_, r) => {
                    let _ = r.send(Err(Error::Closed));
                }
            }
        }
    }
}
