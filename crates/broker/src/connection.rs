//! One task per connection: it owns the client's [`Session`], reads and
//! decodes every complete packet in the buffer per wake, drains the mailbox,
//! fires timers, and writes everything the session produced with one
//! syscall per wake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_codec::{Connect, MqttStr, QoS, ReasonCode, decode, topic};
use strata_router::SubOptions;
use strata_session::{Delivery, Event, Session, SessionState, Will};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::broker::{Shared, lock};
use crate::journal::{Entry, Sent};
use crate::mailbox::Mailbox;
use crate::registry::{Entry as RegistryEntry, Fallout};

/// How long a takeover waits for the old connection to hand back its
/// session before going ahead without it.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// Bytes asked of the socket per read: from this, doubling while reads
/// fill the buffer, up to `READ_MAX`.
const READ_MIN: usize = 512;
const READ_MAX: usize = 64 * 1024;
/// Messages waiting for the in-flight window past which the task stops
/// taking its mailbox.
const QUEUE_HIGH: usize = 4096;
/// Reads up to this size are copied into an exact-size buffer.
const SMALL_READ: usize = 2048;

/// What the task knows once CONNECT was accepted.
struct Attached {
    client_id: MqttStr,
    key: u64,
    mailbox: Arc<Mailbox>,
    /// The session outlives the connection; with a data directory its
    /// changes go to the journal.
    persistent: bool,
}

/// The answer to an inbound QoS 1/2 PUBLISH, held until the message is
/// durable and every earlier answer went out: PUBACKs and PUBRECs leave in
/// the order the PUBLISH packets came [MQTT-4.6.0-2] [MQTT-4.6.0-3].
struct PendingAck {
    seq: u64,
    packet_id: u16,
    qos: QoS,
    reason: ReasonCode,
    /// Waiting for a journal append.
    waiting: bool,
}

/// What one round of a persistent session's work puts in the journal, as
/// one append at the end of the round.
#[derive(Default)]
struct RoundLog {
    sent: Vec<Sent>,
    released: Vec<u64>,
    delivered: Vec<u64>,
    inbound_done: Vec<u16>,
}

impl RoundLog {
    /// Whether the round's bytes wait until its append is durable: it sent
    /// a QoS 2 PUBLISH, a PUBREL or a PUBCOMP that a restart must know
    /// about.
    fn gates(&self) -> bool {
        !self.released.is_empty()
            || !self.inbound_done.is_empty()
            || self.sent.iter().any(|s| s.qos == QoS::ExactlyOnce)
    }
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    session: Session,
    attached: Option<Attached>,
    /// Fires when another connection takes the session over.
    kick: Option<oneshot::Receiver<oneshot::Sender<()>>>,
    /// Answered once the session is back in the registry after a takeover.
    takeover_done: Option<oneshot::Sender<()>>,
    /// Boxed: set once, at the end; every connection task carries the field.
    closed: Option<Box<(u32, Option<Will>)>>,
    deliveries: Vec<Delivery>,
    acks: std::collections::VecDeque<PendingAck>,
    next_seq: u64,
    /// Completions of journal appends: (sequence, stored).
    durable_tx: Option<mpsc::UnboundedSender<(u64, bool)>>,
    durable_rx: Option<mpsc::UnboundedReceiver<(u64, bool)>>,
    /// A subscriber's mailbox this publisher waits on before reading more.
    paused: Option<Arc<Mailbox>>,
    /// This round's journal entries (a persistent session with a data
    /// directory only); boxed, as most connections never have any.
    round: Option<Box<RoundLog>>,
}

pub(crate) async fn run(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    // Small packets must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    // One stream, not split halves: readiness is polled in place (no
    // readiness future, no shared allocation), which keeps an idle
    // connection small.
    let mut stream = stream;
    let mut conn = Conn {
        session: Session::new(shared.session_config.clone(), Instant::now()),
        id: shared.next_id(),
        shared,
        attached: None,
        kick: None,
        takeover_done: None,
        closed: None,
        deliveries: Vec::new(),
        acks: Default::default(),
        next_seq: 0,
        durable_tx: None,
        durable_rx: None,
        paused: None,
        round: None,
    };
    let mut shutdown = conn.shared.shutdown.subscribe();
    // Both buffers are allocated when there is something to read or write
    // and released when empty again, so an idle connection holds none
    // (memory per idle connection is a benchmark row).
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut read_size = READ_MIN;
    tracing::debug!(%peer, "connection");
    loop {
        let deadline = conn
            .session
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        let mailbox = conn.attached.as_ref().map(|a| a.mailbox.clone());
        let mut kick = conn.kick.take();
        let mut durable_rx = conn.durable_rx.take();
        let paused = conn.paused.clone();
        // Past this many messages waiting for the in-flight window, the
        // mailbox is left to fill, which slows the publishers down.
        let take_mail = conn.session.queued_len() < QUEUE_HIGH;
        tokio::select! {
            r = std::future::poll_fn(|cx| stream.poll_read_ready(cx)), if paused.is_none() => {
                if rbuf.capacity() - rbuf.len() < read_size / 2 {
                    rbuf.reserve(read_size);
                }
                let room = rbuf.capacity() - rbuf.len();
                match r.and_then(|()| stream.try_read_buf(&mut rbuf)) {
                    Ok(0) => conn.session.handle_connection_lost(Instant::now()),
                    Ok(n) => {
                        conn.shared.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                        // Adapt the read size: double while reads fill the
                        // buffer, halve when they use little of it.
                        if n == room {
                            read_size = (read_size * 2).min(READ_MAX);
                        } else if n < read_size / 4 {
                            read_size = (read_size / 2).max(READ_MIN);
                        }
                        if rbuf.len() <= SMALL_READ && rbuf.capacity() > 2 * rbuf.len() {
                            // Decoded packets are slices of this buffer, and
                            // a queued message or a client id would keep all
                            // of it alive: a small read gets a buffer of its
                            // exact size instead.
                            rbuf = BytesMut::from(&rbuf[..]);
                        }
                        conn.read_packets(&mut rbuf).await;
                        if rbuf.is_empty() {
                            // Decoded payloads keep their part alive; the
                            // rest goes back to the allocator.
                            rbuf = BytesMut::new();
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => conn.session.handle_connection_lost(Instant::now()),
                }
            }
            _ = async { match &mailbox { Some(m) => m.wait().await, None => std::future::pending().await } }, if take_mail => {
                conn.drain_mailbox();
            }
            // Boxed: a rare wait, whose future every idle task would carry.
            _ = async { match &paused { Some(m) => Box::pin(m.space()).await, None => std::future::pending().await } } => {
                conn.paused = None;
                // What was read but not handled when the pause began.
                conn.read_packets(&mut rbuf).await;
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                conn.session.handle_timeout(Instant::now());
            }
            done = async { match kick.as_mut() { Some(k) => k.await.ok(), None => std::future::pending().await } } => {
                // Another connection with this client id took over
                // [MQTT-3.1.4-3]: 0x8E in 5.0, then close.
                kick = None;
                conn.takeover_done = done;
                conn.session.disconnect(ReasonCode::SessionTakenOver);
            }
            Some((seq, stored)) = async { match durable_rx.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                conn.on_stored(seq, stored);
                // A group commit completes many appends at once: answer
                // them all with one write, not one write each.
                if let Some(rx) = durable_rx.as_mut() {
                    while let Ok((seq, stored)) = rx.try_recv() {
                        conn.on_stored(seq, stored);
                    }
                }
            }
            _ = shutdown.changed() => conn.session.disconnect(ReasonCode::ServerShuttingDown),
        }
        if conn.kick.is_none() {
            conn.kick = kick;
        }
        if conn.durable_rx.is_none() {
            conn.durable_rx = durable_rx;
        }
        conn.process_events().await;
        if let Some(durable) = conn.record_round()
            && !durable.await.unwrap_or(false)
        {
            // What this round would write promises what the broker could
            // not store: close without writing it; the client resends on
            // its next connection [MQTT-4.8.0-2].
            conn.session.handle_connection_lost(Instant::now());
            conn.process_events().await;
            break;
        }
        if conn.flush(&mut stream, &mut wbuf).await.is_err() {
            conn.session.handle_connection_lost(Instant::now());
            conn.process_events().await;
        }
        if conn.session.is_closed() {
            break;
        }
    }
    let _ = stream.shutdown().await;
    conn.finish();
}

impl Conn {
    /// Decodes and handles every complete packet in the buffer.
    async fn read_packets(&mut self, rbuf: &mut BytesMut) {
        // One clock reading per batch: a packet's time is when it was read.
        let now = Instant::now();
        loop {
            let max = self.session.max_packet_size();
            match decode(rbuf, self.session.protocol(), max) {
                Ok(Some(packet)) => {
                    self.session.handle_packet(now, packet);
                    // Events (CONNECT above all) are answered before the
                    // next packet is handled.
                    self.process_events().await;
                    if self.session.is_closed() || self.paused.is_some() {
                        // Paused: the rest waits in the buffer for room.
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "decode error");
                    self.session.handle_decode_error(Instant::now(), &e);
                    return;
                }
            }
        }
    }

    fn drain_mailbox(&mut self) {
        let Some(a) = &self.attached else { return };
        a.mailbox.drain_into(&mut self.deliveries);
        let now = Instant::now();
        let n = self.deliveries.len() as u64;
        for d in self.deliveries.drain(..) {
            self.session.handle_delivery(now, d);
        }
        self.shared
            .stats
            .messages_sent
            .fetch_add(n, Ordering::Relaxed);
    }

    async fn flush(&mut self, wr: &mut TcpStream, wbuf: &mut BytesMut) -> std::io::Result<()> {
        self.session.poll_transmit(Instant::now(), wbuf);
        if wbuf.is_empty() {
            return Ok(());
        }
        let n = wbuf.len();
        let r = wr.write_all(wbuf).await;
        *wbuf = BytesMut::new();
        self.shared
            .stats
            .bytes_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        r
    }

    async fn process_events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                // Boxed: it runs once per connection, and its future would
                // otherwise make every idle connection task that much larger.
                Event::Connect(c) => Box::pin(self.on_connect(c)).await,
                Event::Publish { message, packet_id } => {
                    self.shared
                        .stats
                        .messages_received
                        .fetch_add(1, Ordering::Relaxed);
                    let qos = message.qos;
                    let key = self.attached.as_ref().map(|a| a.key);
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let tx = self.durable_sender();
                    // An inbound QoS 2 id of a journaled session must be
                    // durable before PUBREC: after a restart, the client's
                    // resend of this PUBLISH is then still a duplicate
                    // [MQTT-4.3.3-10]. It goes in the message's own record
                    // when the message is stored, else in a record of its
                    // own; either way one record, written whole or not at
                    // all.
                    let inbound_id = match (packet_id, qos) {
                        (Some(id), QoS::ExactlyOnce) => id,
                        _ => 0,
                    };
                    let tx2 = tx.clone();
                    let from = self.journaled().map(|a| (&a.client_id, inbound_id));
                    let published = self
                        .shared
                        .publish_with(message, key, from, true, move |ok| {
                            if let Some(tx) = tx {
                                let _ = tx.send((seq, ok));
                            }
                        });
                    let n = published.delivered;
                    let mut waiting = published.waiting;
                    if published.congested.is_some() {
                        self.paused = published.congested;
                    }
                    if !waiting
                        && inbound_id != 0
                        && let (Some(a), Some(d), Some(tx)) =
                            (self.journaled(), &self.shared.durable, tx2)
                    {
                        let entry = Entry::Inbound {
                            client: a.client_id.clone(),
                            packet_ids: vec![inbound_id],
                        };
                        d.record_then(&[entry], move |ok| {
                            let _ = tx.send((seq, ok));
                        });
                        waiting = true;
                    }
                    if let Some(packet_id) = packet_id {
                        let reason = if n == 0 {
                            ReasonCode::NoMatchingSubscribers
                        } else {
                            ReasonCode::Success
                        };
                        self.acks.push_back(PendingAck {
                            seq,
                            packet_id,
                            qos,
                            reason,
                            waiting,
                        });
                        self.release_acks();
                    }
                }
                Event::Subscribe {
                    packet_id,
                    subscription_id,
                    filters,
                    granted,
                } => self.on_subscribe(packet_id, subscription_id, filters, granted),
                Event::Unsubscribe { packet_id, filters } => {
                    let Some(a) = &self.attached else { continue };
                    let codes: Vec<ReasonCode> = {
                        let mut router = lock(&self.shared.router);
                        filters
                            .iter()
                            .map(|f| {
                                if router.unsubscribe(a.key, f) {
                                    ReasonCode::Success
                                } else {
                                    ReasonCode::NoSubscriptionExisted
                                }
                            })
                            .collect()
                    };
                    if a.persistent {
                        for (f, c) in filters.iter().zip(&codes) {
                            if *c == ReasonCode::Success {
                                let (client, filter) = (a.client_id.clone(), f.clone());
                                self.shared.record(|| Entry::Unsubscribe { client, filter });
                            }
                        }
                    }
                    self.session.unsubscribe_done(packet_id, codes);
                }
                Event::Closed {
                    reason,
                    will,
                    session_expiry,
                } => {
                    tracing::debug!(?reason, "session closed");
                    self.closed = Some(Box::new((session_expiry, will)));
                }
                Event::Delivered { id } => {
                    if let Some(r) = self.round() {
                        r.delivered.push(id);
                    }
                }
                Event::Sent {
                    packet_id,
                    delivery,
                } => {
                    if let Some(r) = self.round() {
                        r.sent.push(Sent::of(packet_id, &delivery));
                    }
                }
                Event::Released { id } => {
                    if let Some(r) = self.round() {
                        r.released.push(id);
                    }
                }
                Event::InboundReleased { packet_id } => {
                    if let Some(r) = self.round() {
                        r.inbound_done.push(packet_id);
                    }
                }
            }
        }
    }

    /// The session when its changes go to a journal: persistent, with a
    /// data directory.
    fn journaled(&self) -> Option<&Attached> {
        self.shared.durable.as_ref()?;
        self.attached.as_ref().filter(|a| a.persistent)
    }

    /// This round's journal entries, if the session is journaled.
    fn round(&mut self) -> Option<&mut RoundLog> {
        self.journaled()?;
        Some(self.round.get_or_insert_with(Default::default))
    }

    /// Appends this round's entries as one batch (sends, releases,
    /// deliveries, inbound releases: the order they can happen in). When
    /// the round's bytes must wait for it, the receiver says when the
    /// append is durable (`true`) or failed. The round's vectors are
    /// cleared and kept for the next round.
    fn record_round(&mut self) -> Option<oneshot::Receiver<bool>> {
        let r = self.round.as_deref_mut()?;
        let (Some(a), Some(d)) = (&self.attached, &self.shared.durable) else {
            return None;
        };
        let gate = r.gates();
        let mut records = Vec::new();
        crate::journal::encode_round(
            &a.client_id,
            &r.sent,
            &r.released,
            &r.delivered,
            &r.inbound_done,
            crate::durable::now_ms(),
            &mut records,
        );
        r.sent.clear();
        r.released.clear();
        r.delivered.clear();
        r.inbound_done.clear();
        if records.is_empty() {
            return None;
        }
        if !gate {
            d.append_then(records, |_| {});
            return None;
        }
        let (tx, rx) = oneshot::channel();
        d.append_then(records, move |ok| {
            let _ = tx.send(ok);
        });
        Some(rx)
    }

    /// The sender journal completions come back on (made on first use).
    fn durable_sender(&mut self) -> Option<mpsc::UnboundedSender<(u64, bool)>> {
        self.shared.durable.as_ref()?;
        if self.durable_tx.is_none() {
            let (tx, rx) = mpsc::unbounded_channel();
            self.durable_tx = Some(tx);
            self.durable_rx = Some(rx);
        }
        self.durable_tx.clone()
    }

    /// A journal append finished.
    fn on_stored(&mut self, seq: u64, stored: bool) {
        if !stored {
            // A transient failure: acknowledging would promise what the
            // broker cannot keep. Close; the client resends on its next
            // connection [MQTT-4.8.0-2].
            self.acks.clear();
            self.session.disconnect(ReasonCode::UnspecifiedError);
            return;
        }
        if let Some(a) = self.acks.iter_mut().find(|a| a.seq == seq) {
            a.waiting = false;
        }
        self.release_acks();
    }

    /// Sends the answers that are ready, in order.
    fn release_acks(&mut self) {
        while self.acks.front().is_some_and(|a| !a.waiting) {
            if let Some(a) = self.acks.pop_front() {
                self.session.publish_done(a.packet_id, a.qos, a.reason);
            }
        }
    }

    fn on_subscribe(
        &mut self,
        packet_id: u16,
        subscription_id: Option<u32>,
        filters: Vec<strata_codec::Subscription>,
        granted: Vec<Result<QoS, ReasonCode>>,
    ) {
        let Some(a) = &self.attached else { return };
        let mut codes = Vec::with_capacity(filters.len());
        let mut retained = Vec::new();
        {
            let mut router = lock(&self.shared.router);
            for (f, g) in filters.iter().zip(granted) {
                let qos = match g {
                    Ok(q) => q,
                    Err(code) => {
                        codes.push(code);
                        continue;
                    }
                };
                let opts = SubOptions {
                    qos,
                    no_local: f.options.no_local,
                    retain_as_published: f.options.retain_as_published,
                    retain_handling: f.options.retain_handling,
                    subscription_id,
                };
                // [MQTT-3.8.4-3]: an identical filter replaces the old one.
                let existed = router.subscribe(a.key, &f.filter, opts);
                if a.persistent {
                    let (client, filter) = (a.client_id.clone(), f.filter.clone());
                    self.shared.record(|| Entry::Subscribe {
                        client,
                        filter,
                        options: opts,
                    });
                }
                codes.push(match qos {
                    QoS::AtMostOnce => ReasonCode::Success,
                    QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                    QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
                });
                // Retained messages for the new subscription [MQTT-3.3.1-9]
                // [MQTT-3.3.1-10] [MQTT-3.3.1-11]; none for a shared one.
                use strata_codec::packet::RetainHandling::*;
                let send = match f.options.retain_handling {
                    SendAlways => true,
                    SendIfNew => !existed,
                    DoNotSend => false,
                };
                let parsed = topic::parse_filter(&f.filter);
                if send
                    && let Ok(p) = parsed
                    && p.share_group.is_none()
                {
                    let mut found = Vec::new();
                    router.retained_matching(p.filter, &mut found);
                    for (_, message) in found {
                        retained.push(Delivery {
                            message,
                            qos,
                            retain: true, // [MQTT-3.3.1-8]
                            subscription_ids: subscription_id.into_iter().collect(),
                        });
                    }
                }
            }
        }
        self.session.subscribe_done(packet_id, codes);
        let now = Instant::now();
        for d in retained {
            self.session.handle_delivery(now, d);
        }
    }

    /// Takeover, resume or a new session, then CONNACK.
    async fn on_connect(&mut self, c: Box<Connect>) {
        let shared = self.shared.clone();
        let _serial = shared.connect_lock.lock().await;
        let assigned = c.client_id.is_empty();
        let client_id = if assigned {
            // Unique: the connection id never repeats in this process.
            MqttStr::try_from(format!(
                "{}{:x}-{:x}",
                shared.config.session.assigned_id_prefix,
                shared.started.elapsed().as_nanos() as u64,
                self.id
            ))
            .unwrap_or_default()
        } else {
            // Kept as long as the session: out of the read buffer.
            c.client_id.detach()
        };

        // Take the session back from a connection that still holds it.
        let kick = {
            let mut reg = lock(&shared.registry);
            let kick = reg
                .by_client
                .get_mut(&client_id)
                .and_then(|e| e.conn.take());
            if kick.is_some() {
                // The old connection no longer counts; its release sees no
                // owner and only parks the state.
                reg.connected = reg.connected.saturating_sub(1);
            }
            kick
        };
        if let Some((_, kick)) = kick {
            let (tx, rx) = oneshot::channel();
            if kick.send(tx).is_ok() {
                let _ = tokio::time::timeout(TAKEOVER_WAIT, rx).await;
            }
        }

        let mut fallout = Fallout::default();
        let (kick_tx, kick_rx) = oneshot::channel();
        let persistent = self.session.session_expiry() > 0;
        let (state, key, mailbox, present, was_persistent) = {
            let mut reg = lock(&shared.registry);
            let resumable = !c.clean_start
                && reg
                    .by_client
                    .get(&client_id)
                    .is_some_and(|e| e.offline.is_some());
            if !resumable {
                // [MQTT-3.1.2-4]: Clean Start discards any existing session.
                reg.end(&client_id, &mut fallout);
            }
            reg.connected += 1;
            let entry = reg.by_client.entry(client_id.clone()).or_insert_with(|| {
                let key = shared.next_id();
                RegistryEntry {
                    key,
                    mailbox: Arc::new(Mailbox::new(
                        client_id.clone(),
                        shared.config.session.max_queued_messages,
                        shared.config.session.max_queued_bytes,
                    )),
                    conn: None,
                    offline: None,
                    expires_at: None,
                    pending_will: None,
                }
            });
            let state = entry.offline.take();
            // [MQTT-3.1.3-9]: a session resumed within the Will Delay
            // Interval cancels the pending will.
            entry.pending_will = None;
            entry.expires_at = None;
            entry.conn = Some((self.id, kick_tx));
            entry.mailbox.set_online(true);
            let was_persistent = entry.mailbox.is_persistent();
            entry.mailbox.set_persistent(persistent);
            let present = state.is_some();
            (
                state,
                entry.key,
                entry.mailbox.clone(),
                present,
                was_persistent,
            )
        };
        shared.settle(fallout);
        let (client, expiry) = (client_id.clone(), self.session.session_expiry());
        if persistent && !present {
            // A new persistent session: earlier state of this id is gone
            // (an End for it was written by settle, if it was persistent).
            shared.record(|| Entry::Up { client, expiry });
        } else if present && was_persistent {
            // Connected again: until the next Down, a crash must not count
            // the session as offline. Expiry 0 here ends it in the journal.
            shared.record(|| Entry::Resume { client, expiry });
        }
        shared
            .mailboxes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, mailbox.clone());
        shared.stats.clients_total.fetch_add(1, Ordering::Relaxed);

        let state = state.map_or_else(|| SessionState::new(client_id.clone(), 0), |s| *s);
        self.session.accept(
            Instant::now(),
            state,
            present,
            assigned.then(|| client_id.clone()),
        );
        self.attached = Some(Attached {
            client_id,
            key,
            mailbox,
            persistent,
        });
        self.kick = Some(kick_rx);
        // Messages that arrived while offline.
        self.drain_mailbox();
    }

    /// Hands the session back to the registry (or ends it) and publishes the
    /// will if one is due.
    fn finish(mut self) {
        // Nothing more is written: no need to wait for it.
        let _ = self.record_round();
        let Some(a) = self.attached.take() else {
            return;
        };
        let (expiry, will) = self.closed.take().map_or((0, None), |c| *c);
        // A delayed will of a session kept offline waits in the registry;
        // the journal keeps it too. Due at the Will Delay Interval or the
        // session's end, whichever is first [MQTT-3.1.3-9].
        let delayed = will
            .as_ref()
            .filter(|w| !w.delay.is_zero() && a.persistent && self.shared.durable.is_some())
            .map(|w| {
                let delay = match expiry {
                    u32::MAX => w.delay,
                    e => w.delay.min(Duration::from_secs(u64::from(e))),
                };
                let due_ms = crate::durable::now_ms()
                    .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                (due_ms, w.message.clone())
            });
        let state = self.session.take_state();
        let mut fallout = Fallout::default();
        // The journal hears of it under the registry lock: a CONNECT that
        // resumes the session right after must find its `Down` (and will)
        // already written before its `Resume`.
        let mut reg = lock(&self.shared.registry);
        let kept = reg.release(
            Instant::now(),
            &a.client_id,
            self.id,
            state,
            expiry,
            will,
            &mut fallout,
        );
        if kept && a.persistent {
            let client = a.client_id.clone();
            self.shared.record(|| Entry::Down {
                client,
                expiry,
                at_ms: crate::durable::now_ms(),
            });
            if let Some((due_ms, message)) = delayed {
                let client = a.client_id.clone();
                self.shared.record(|| Entry::Will {
                    client,
                    due_ms,
                    message,
                });
            }
        }
        drop(reg);
        self.shared.settle(fallout);
        if let Some(done) = self.takeover_done.take() {
            let _ = done.send(());
        }
    }
}
