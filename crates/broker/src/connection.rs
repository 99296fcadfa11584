//! One task per connection: it owns the client's [`Session`]. Per wake it
//! handles everything that is ready (see [`Conn::poll_wakes`]): it reads
//! and decodes every complete packet in the buffer, drains the mailbox,
//! fires the session's timers, and writes everything the session produced
//! with one syscall; what the socket does not take waits for it, and the
//! task goes on meanwhile ([`Conn::flush`], in `output`). A paused
//! publisher, and a client with much output unsent, hold back what they
//! cannot handle yet ([`Conn::next_packet`], in `hold`). How the session is
//! taken from and handed back to the registry is in `attach`; a journaled
//! session's round of entries in `round`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_codec::{Connect, MqttStr, Packet, QoS, ReasonCode};
use strata_session::{Delivery, Session, Will};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::alarm::Alarm;
use crate::auth::Identity;
use crate::mailbox::{Later, Mailbox, Signal};
use crate::shared::Shared;
use crate::transport::Transport;
use round::RoundLog;

mod attach;
mod auth;
mod events;
mod hold;
mod output;
mod rate;
mod round;

/// How long a takeover waits for the old connection to hand back its
/// session before going ahead without it.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// Bytes asked of the socket per read: from this, doubling while reads
/// fill the buffer, up to `READ_MAX`.
const READ_MIN: usize = 512;
const READ_MAX: usize = 64 * 1024;
/// Messages waiting for the in-flight window past which the task stops
/// taking its mailbox (whose own congestion then holds publishers back).
const QUEUE_HIGH: usize = 256;
/// Reads up to this size are copied into an exact-size buffer.
const SMALL_READ: usize = 2048;
/// A paused publisher that the server waits on for acknowledgements reads
/// on (for them and PINGREQ) while it holds less than this much unhandled
/// input on the wire, and fewer than `PAUSED_HELD_MAX` packets (a tiny
/// PUBLISH is far larger decoded: this bounds the memory, about 0.5 MB).
const PAUSED_READ_MAX: usize = 64 * 1024;
const PAUSED_HELD_MAX: usize = 4096;
/// While this much output waits for the client to read it, the connection
/// holds back what the client sends, as a pause does (their answers would
/// only add to it), but for acknowledgements and PINGREQ, which keep it
/// alive. It reads on while the client has sent less than `PAUSED_READ_MAX`
/// bytes more than the socket took of the output, and less than that and
/// `PAUSED_HELD_MAX` packets are held; then TCP pushes back on the client.
/// (Either bound can be passed by one read, as a pause's can.)
const UNSENT_HOLD: usize = 64 * 1024;
/// A round whose QoS 1/2 publishes handed at most this many messages to
/// subscribers lets their tasks write them before its answers go out (see
/// [`deliveries_first`]); a busier round writes at once.
const FEW_ROUTED: u32 = 4;
/// Mail wakes that take their mail at once after a deferral that gained
/// nothing (see `Conn::later_skip`).
const LATER_SKIP: u8 = 16;

/// What the task knows once CONNECT was accepted.
struct Attached {
    key: u64,
    mailbox: Arc<Mailbox>,
    /// The session outlives the connection; with a data directory its
    /// changes go to the journal.
    persistent: bool,
    /// Who the client authenticated as: what the authorizer is asked about.
    identity: Arc<Identity>,
}

impl Attached {
    /// The session's client id (its mailbox keeps it).
    fn client_id(&self) -> &MqttStr {
        &self.mailbox.client
    }
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

/// What only some connections need (a publisher's answers in the making,
/// a journaled session's round, a pause, output the socket did not take,
/// the end), boxed and made on
/// first use: every connection task carries a `Conn`, and most of a large
/// fleet's connections are idle subscribers.
#[derive(Default)]
struct More {
    pending: std::collections::VecDeque<PendingAck>,
    next_seq: u64,
    /// Completions of journal appends: (sequence, stored).
    durable_tx: Option<mpsc::UnboundedSender<(u64, bool)>>,
    durable_rx: Option<mpsc::UnboundedReceiver<(u64, bool)>>,
    /// Set while this publisher waits for room in a congested subscriber's
    /// mailbox before reading more; ready once there is room.
    paused: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Packets read while input is held back (a pause, output unsent) and
    /// held until that ends, in order,
    /// with their size on the wire; acknowledgements and PINGREQ are not
    /// held (see `skips_ahead`).
    held: std::collections::VecDeque<(Packet, usize)>,
    /// The wire size of the packets in `held`.
    held_bytes: usize,
    /// The client closed its side while packets were held: the connection
    /// counts as lost once they are handled.
    eof: bool,
    /// This round's journal entries (a persistent session with a data
    /// directory only).
    round: RoundLog,
    /// Session expiry and will, once the session closed.
    closed: Option<(u32, Option<Will>)>,
    /// Answered once the session is back in the registry after a takeover.
    takeover_done: Option<oneshot::Sender<()>>,
    /// Messages this round's QoS 1/2 publishes handed to subscribers'
    /// mailboxes.
    routed: u32,
    /// An enhanced-authentication exchange waiting for the client's next
    /// AUTH.
    auth: Option<Box<auth::Exchange>>,
    /// The client's inbound publish rate, with `limits.publish_rate` or
    /// `publish_bytes_rate` set.
    rate: Option<rate::PublishRate>,
    /// Output the socket did not take yet (the client reads slower than
    /// the server writes, or not at all): it goes first once the socket is
    /// writable. Meanwhile the task goes on with everything else (reading,
    /// held back past `UNSENT_HOLD`; the keep-alive, a takeover, shutdown)
    /// but takes no mail.
    unsent: BytesMut,
    /// Bytes of packets read while `unsent` held input back, less what the
    /// socket took of the output meanwhile.
    read_while_unsent: usize,
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    session: Session,
    attached: Option<Attached>,
    /// Swapped with the mailbox's queue on every drain.
    deliveries: std::collections::VecDeque<Delivery>,
    more: Option<Box<More>>,
    /// Wakes the task at the session's next deadline.
    alarm: Alarm,
    /// Mail came while nothing else woke the task, and the task let the
    /// runtime run every other ready task before taking it (see
    /// `poll_wakes`): how many deliveries were queued then (0: none
    /// deferred). It is taken on the next poll.
    deferred: u8,
    /// Mail wakes to come that take their mail at once: a deferral that
    /// found no more mail than it began with (one publisher to many
    /// subscribers, say) is not tried again for `LATER_SKIP` wakes.
    later_skip: u8,
    /// The listener the client came in on (its index in the
    /// configuration), or [`IN_PROCESS`].
    listener: u16,
}

/// The listener of a connection served in process ([`crate::Handle`]).
pub(crate) const IN_PROCESS: u16 = u16::MAX;

/// What the session's events ask the task to await before it handles
/// more: the authenticator, and for a CONNECT the registry.
/// Boxed, as a CONNECT is: it is kept across the await in every task.
enum Awaited {
    Connect(Box<Connect>),
    Auth(Box<AuthStep>),
}

/// The client's AUTH, as the session passed it up.
struct AuthStep {
    method: MqttStr,
    data: Option<Bytes>,
    reauth: bool,
}

/// Everything that was ready when the task woke: one round handles all of
/// it and then writes once.
#[derive(Default)]
struct Wakes {
    /// When the task woke: the one clock reading of the round.
    now: Option<Instant>,
    readable: Option<std::io::Result<()>>,
    /// The socket takes more of the output it did not take before.
    writable: Option<std::io::Result<()>>,
    signal: Option<Signal>,
    stored: Option<(u64, bool)>,
    /// What held input back is over: held packets are handled.
    room: bool,
    timeout: bool,
}

impl Wakes {
    fn any(&self) -> bool {
        self.readable.is_some()
            || self.writable.is_some()
            || self.signal.is_some()
            || self.stored.is_some()
            || self.room
            || self.timeout
    }
}

/// Has the runtime poll this task again once every task ready now has run
/// and the I/O driver was looked at (tokio's `yield_now`, from inside a
/// poll).
fn defer(cx: &mut Context<'_>) {
    let yielded = std::pin::pin!(tokio::task::yield_now());
    // The first poll hands the waker to the runtime's deferred list and
    // is pending; the future is done with then.
    let _ = yielded.poll(cx);
}

/// Serves one connection until it closes. Every wait of the task is polled
/// in place, on state kept anyway (the socket, the mailbox, the broker's
/// alarms), so an idle connection costs its session and little more.
///
/// Not an `async fn`: its arguments would be stored twice in the task (as
/// arguments and as locals); the block uses its captures in place.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run<T: Transport>(
    shared: Arc<Shared>,
    mut stream: T,
    permit: OwnedSemaphorePermit,
    accepted: Instant,
    listener: u16,
) -> impl Future<Output = ()> + Send {
    // Made before the block, so that `accepted` is not kept in the task.
    let mut conn = Conn {
        // The CONNECT timeout counts from the accept, TLS and WebSocket
        // handshakes included.
        session: Session::new(shared.session_config().clone(), accepted),
        id: shared.next_id(),
        shared: shared.clone(),
        attached: None,
        deliveries: Default::default(),
        more: None,
        alarm: Alarm::default(),
        deferred: 0,
        later_skip: 0,
        listener,
    };
    async move {
        let stream = &mut stream;
        // The read buffer is allocated when there is something to read and
        // released when empty again (so is each round's write buffer, once the
        // socket took it all), so an idle connection holds none (memory per
        // idle connection is a benchmark row).
        let mut rbuf = BytesMut::new();
        let mut read_size = READ_MIN;
        loop {
            // The round's own state is made in a block, so that only what the
            // awaits below need lives on across them (memory per connection).
            let (now, mail, room, timeout, data) = {
                let Wakes {
                    now,
                    readable,
                    writable,
                    signal,
                    stored,
                    room,
                    timeout,
                } = if conn.attached.is_some() {
                    std::future::poll_fn(|cx| conn.poll_wakes(cx, stream, rbuf.len())).await
                } else {
                    // Before CONNECT: boxed, so that its wait futures are not
                    // part of every task.
                    let deadline = conn.session.poll_timeout();
                    Box::pin(wait_unattached(&conn.shared, stream, deadline)).await
                };
                let now = now.unwrap_or_else(crate::clock::now);
                // The mail is taken after the socket is read (its
                // acknowledgements free the in-flight window first); a takeover
                // or shutdown ends the connection, and is noted at once.
                let mail = match signal {
                    // (Later mail is not passed up: see `poll_wakes`.)
                    Some(Signal::Mail | Signal::MailLater(_)) => true,
                    Some(Signal::Kicked(done, reason)) => {
                        // Another connection with this client id took over
                        // [MQTT-3.1.4-3] (0x8E), or an operator kicked it
                        // (0x98): that code in 5.0, then close.
                        conn.more().takeover_done = done;
                        conn.end_held(now, stream, &mut rbuf);
                        conn.session.disconnect(reason);
                        false
                    }
                    Some(Signal::Shutdown) => {
                        conn.end_held(now, stream, &mut rbuf);
                        conn.session.disconnect(ReasonCode::ServerShuttingDown);
                        false
                    }
                    None => false,
                };
                if let Some((seq, stored)) = stored {
                    let mut ok = conn.on_stored(seq, stored);
                    // A group commit completes many appends at once: answer
                    // them all with one write, not one write each.
                    while let Some(Ok((seq, stored))) = conn
                        .more
                        .as_mut()
                        .and_then(|a| a.durable_rx.as_mut())
                        .map(|rx| rx.try_recv())
                    {
                        ok &= conn.on_stored(seq, stored);
                    }
                    if !ok {
                        // Acknowledging would promise what the broker cannot
                        // keep: close; the client resends on its next
                        // connection [MQTT-4.8.0-2]. A DISCONNECT held back
                        // behind the failed publish, or still unread, ends
                        // the connection normally (`end_held`).
                        conn.end_held(now, stream, &mut rbuf);
                        conn.session.disconnect(ReasonCode::UnspecifiedError);
                    }
                }
                if let Some(Err(_)) = writable {
                    conn.lose(stream, &mut rbuf);
                }
                if room && let Some(m) = conn.more.as_mut() {
                    // The pause is over (see `poll_wakes`); until here, an
                    // ending connection still looked in the socket for a
                    // DISCONNECT (`end_held`).
                    m.paused = None;
                }
                let data = match readable {
                    Some(r) => conn.read_socket(r, stream, &mut rbuf, &mut read_size),
                    None => false,
                };
                (now, mail, room, timeout, data)
            };
            if data {
                // Packets up to a CONNECT, then the CONNECT, whose future is
                // boxed: it runs once per connection, and would otherwise
                // make every idle connection task that much larger.
                while let Some(c) = conn.handle_packets(&mut rbuf, now) {
                    Box::pin(conn.connect(c, stream.origin())).await;
                    if conn.session.is_closed() {
                        break;
                    }
                }
            }
            if rbuf.is_empty() {
                // Decoded payloads keep their part alive; the rest (or a buffer
                // reserved for a read that found nothing) goes back to the
                // allocator.
                rbuf = BytesMut::new();
            }
            if mail {
                conn.drain_mailbox(now);
            }
            if room {
                // What was held back and is not handled yet.
                while let Some(c) = conn.handle_packets(&mut rbuf, now) {
                    Box::pin(conn.connect(c, stream.origin())).await;
                    if conn.session.is_closed() {
                        break;
                    }
                }
                if !conn.holding() && conn.more.as_ref().is_some_and(|m| m.eof) {
                    conn.session.handle_connection_lost(crate::clock::now());
                }
                if rbuf.is_empty() {
                    rbuf = BytesMut::new();
                }
            }
            if timeout {
                // A client that sent DISCONNECT ended its connection
                // normally, though the packet is held back (or unread) when
                // its keep-alive runs out; the packets of this round may
                // have put it off.
                if conn.session.poll_timeout().is_some_and(|d| d <= now) {
                    conn.end_held(now, stream, &mut rbuf);
                }
                conn.session.handle_timeout(now);
            }
            if let Some(w) = conn.process_events() {
                // Boxed, as the CONNECTs of the packets above are.
                Box::pin(conn.connect(w, stream.origin())).await;
            }
            if let Some(m) = conn.more.as_mut()
                && (1..=FEW_ROUTED).contains(&std::mem::take(&mut m.routed))
            {
                deliveries_first().await;
            }
            let stored = match conn.record_round() {
                Some(durable) => durable.await.unwrap_or(false),
                None => true,
            };
            if !stored {
                // What this round would write promises what the broker could
                // not store: close without writing it; the client resends on
                // its next connection [MQTT-4.8.0-2].
                conn.lose(stream, &mut rbuf);
                if let Some(w) = conn.process_events() {
                    Box::pin(conn.connect(w, stream.origin())).await;
                }
                break;
            }
            if conn.flush(stream, now).is_err() {
                conn.lose(stream, &mut rbuf);
                if let Some(w) = conn.process_events() {
                    Box::pin(conn.connect(w, stream.origin())).await;
                }
            }
            if conn.session.is_closed() {
                break;
            }
        }
        conn.alarm.clear(conn.shared.alarms(), conn.id);
        let listener = conn.listener;
        if conn.unsent() > 0 {
            // Boxed: a rare wait, kept out of every connection's task.
            Box::pin(conn.finish_then_write(stream)).await;
        } else {
            conn.finish();
        }
        let _ = std::future::poll_fn(|cx| stream.poll_shutdown(cx)).await;
        shared.listener_left(listener);
        drop(permit);
        shared.life().task_ended();
    }
}

/// Lets the tasks that this round's messages woke write them before this
/// task writes its own answers (PUBACK, PUBREC): the subscriber's copy is
/// what the message's latency is measured to, and writing to a socket on
/// loopback costs as much as the receiver's wake-up. tokio polls a task
/// woken by the running one next, and puts a task that wakes itself behind
/// every ready task, without polling the I/O driver in between
/// (`tokio::task::yield_now` would poll it first: a syscall, and new input
/// ahead of the deliveries). On one worker (the broker pinned to a core)
/// the order holds; with idle workers, one is woken for the requeued task
/// and may run it while the subscriber still writes, so there the order is
/// likely, not certain (nothing depends on it but latency).
fn deliveries_first() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// The wait of a connection whose CONNECT was not accepted yet: the socket,
/// the CONNECT timeout and broker shutdown.
async fn wait_unattached<T: Transport>(
    shared: &Shared,
    stream: &mut T,
    deadline: Option<Instant>,
) -> Wakes {
    let mut wakes = Wakes::default();
    let mut shutdown = shared.life().watch();
    if *shutdown.borrow_and_update() {
        wakes.signal = Some(Signal::Shutdown);
        return wakes;
    }
    tokio::select! {
        r = std::future::poll_fn(|cx| stream.poll_read_ready(cx)) => wakes.readable = Some(r),
        _ = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        } => wakes.timeout = true,
        _ = shutdown.changed() => wakes.signal = Some(Signal::Shutdown),
    }
    wakes
}

impl Conn {
    /// Reads what the socket has, after it reported `ready`; returns
    /// whether bytes came to be handled. The end of the stream or an error
    /// loses the connection (after the held packets, for an end).
    fn read_socket<T: Transport>(
        &mut self,
        ready: std::io::Result<()>,
        stream: &mut T,
        rbuf: &mut BytesMut,
        read_size: &mut usize,
    ) -> bool {
        if rbuf.capacity() - rbuf.len() < *read_size / 2 {
            rbuf.reserve(*read_size);
        }
        let room = rbuf.capacity() - rbuf.len();
        match ready.and_then(|()| stream.read_some(rbuf, room)) {
            // What the client sent before it closed (a DISCONNECT among
            // it) is handled first.
            Ok(0) if self.holding() => self.more().eof = true,
            Ok(0) => self.session.handle_connection_lost(crate::clock::now()),
            Ok(n) => {
                self.shared.counters().bytes_received(n as u64);
                // Adapt the read size: double while reads fill the buffer,
                // halve when they use little of it.
                if n == room {
                    *read_size = (*read_size * 2).min(READ_MAX);
                } else if n < *read_size / 4 {
                    *read_size = (*read_size / 2).max(READ_MIN);
                }
                if rbuf.len() <= SMALL_READ && rbuf.capacity() > 2 * rbuf.len() {
                    // Decoded packets are slices of this buffer, and a
                    // queued message or a client id would keep all of it
                    // alive: a small read gets a buffer of its exact size
                    // instead.
                    *rbuf = BytesMut::from(&rbuf[..]);
                }
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.lose(stream, rbuf),
        }
        false
    }

    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Default::default)
    }

    /// What is ready for an attached connection: its mailbox's signals,
    /// journal completions, room for a paused publisher (or for packets
    /// held back to be handled), the socket's input (within the bounds of
    /// holding back) and room for its unsent output, and the session's
    /// deadline (its alarm). All of it is polled on every wake, so that a
    /// busy mailbox cannot starve the socket, or the other way round.
    fn poll_wakes<T: Transport>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut T,
        unread: usize,
    ) -> Poll<Wakes> {
        let mut wakes = Wakes::default();
        if let Some(rx) = self.more.as_mut().and_then(|a| a.durable_rx.as_mut())
            && let Poll::Ready(Some(done)) = rx.poll_recv(cx)
        {
            wakes.stored = Some(done);
        }
        let mut read = true;
        if let Some(m) = self.more.as_mut()
            && let Some(room) = m.paused.as_mut()
        {
            // Over once ready: the round clears it before it handles
            // anything (a pause the round starts is another one). Until
            // then, this wake reads as a paused one: held packets are
            // handled before more is read.
            wakes.room = room.as_mut().poll(cx).is_ready();
            // Paused, it reads on only while the server waits for its
            // acknowledgements (it subscribes too): they free its own
            // window, and publishers paused on each other's mailboxes would
            // otherwise stall until the keeping-up rule lets them go. Up to
            // a bound; past that, or for a client that only publishes, TCP
            // pushes back on the client at no cost (reading on would wake
            // the task for every packet it cannot handle yet).
            read = self.session.awaits_acks()
                && m.held_bytes + unread < PAUSED_READ_MAX
                && m.held.len() < PAUSED_HELD_MAX;
        }
        if self.more.as_ref().is_some_and(|m| m.eof) {
            // Nothing more to read.
            read = false;
        }
        if let Some(m) = self.more.as_ref()
            && !m.unsent.is_empty()
        {
            if m.unsent.len() >= UNSENT_HOLD {
                // Reads on for the client's acknowledgements and PINGREQ
                // (a client that reads slowly is still alive), within
                // bounds: what it sent beyond what it read of the output
                // (the answers wait in `unsent` too), and what is held.
                read &= m.read_while_unsent + unread < PAUSED_READ_MAX
                    && m.held_bytes + unread < PAUSED_READ_MAX
                    && m.held.len() < PAUSED_HELD_MAX;
            }
            if let Poll::Ready(r) = stream.poll_write_ready(cx) {
                wakes.writable = Some(r);
            }
        } else if stream.wants_write()
            && let Poll::Ready(r) = stream.poll_write_ready(cx)
        {
            // What the transport took is on its way now (or failed).
            wakes.writable = Some(r);
        }
        if self.holding() && !self.holds_back() {
            // Held packets wait for nothing any more.
            wakes.room = true;
        }
        if read && let Poll::Ready(r) = stream.poll_read_ready(cx) {
            wakes.readable = Some(r);
        }
        if let Some(deadline) = self.session.poll_timeout() {
            let now = crate::clock::now();
            wakes.now = Some(now);
            if self
                .alarm
                .due(self.shared.alarms(), self.id, deadline, now, cx.waker())
            {
                wakes.timeout = true;
            }
        }
        if let Some(a) = &self.attached {
            // Past this many messages waiting for the in-flight window, the
            // mailbox is left to fill, which slows the publishers down.
            // Nor while the socket has not taken the last output: the
            // messages would only wait in memory.
            let take_mail = self.session.queued_len() < QUEUE_HIGH && self.unsent() == 0;
            // Mail alone: the publisher that rang is likely one of several
            // ready in this pass of the runtime. Taking it after all of
            // them (and after the runtime's next look at the sockets) sends
            // what they all routed here in one write rather than one write
            // per publisher: under load, a delivery costs a fraction of a
            // send. Idle, the wait is one pass of the runtime. QoS 1/2 mail
            // waits so only while the client owes acknowledgements (it is
            // busy): an idle subscriber's copy leaves before the
            // publisher's answer (`deliveries_first`).
            let later = if self.deferred > 0 || self.later_skip > 0 || wakes.any() {
                Later::Never
            } else if self.session.awaits_acks() {
                Later::Always
            } else {
                Later::IfQos0
            };
            match a.mailbox.poll_signal(cx, self.id, take_mail, later) {
                Poll::Ready(Signal::MailLater(queued)) => {
                    self.deferred = queued.max(1);
                    defer(cx);
                    return Poll::Pending;
                }
                Poll::Ready(s) => wakes.signal = Some(s),
                Poll::Pending => {}
            }
        }
        if wakes.any() {
            wakes.now.get_or_insert_with(crate::clock::now);
            Poll::Ready(wakes)
        } else {
            Poll::Pending
        }
    }

    /// The listener's index in the configuration; `None` in process.
    fn listener(&self) -> Option<usize> {
        (self.listener != IN_PROCESS).then_some(usize::from(self.listener))
    }

    /// A CONNECT or AUTH through the authenticator, and a CONNECT through
    /// the registry (a takeover waits for the old connection), then the
    /// events after it.
    async fn connect(&mut self, w: Awaited, origin: crate::transport::Origin) {
        let mut next = Some(w);
        while let Some(w) = next {
            match w {
                Awaited::Connect(c) => self.on_connect(c, &origin).await,
                Awaited::Auth(a) => self.on_auth(a.method, a.data, a.reauth).await,
            }
            next = self.process_events();
        }
    }

    /// Decodes and handles every complete packet in the buffer, after the
    /// packets held back, once nothing holds input back. While something
    /// does (see `holds_back`), it handles acknowledgements and PINGREQ
    /// and holds the rest back, in order.
    /// `now` is when the task woke: a packet's time is when it was read.
    /// Stops at the end of the buffer, the session's close, or a CONNECT,
    /// or an AUTH, which it returns to be awaited (`connect`).
    fn handle_packets(&mut self, rbuf: &mut BytesMut, now: Instant) -> Option<Awaited> {
        loop {
            let packet = self.next_packet(rbuf, now)?;
            self.session.handle_packet(now, packet);
            // Events (CONNECT above all) are answered before the next
            // packet is handled. Most acknowledgements make none.
            if self.session.has_events()
                && let Some(c) = self.process_events()
            {
                return Some(c);
            }
            if self.session.is_closed() {
                return None;
            }
        }
    }

    fn drain_mailbox(&mut self, now: Instant) {
        let Some(a) = &self.attached else { return };
        if !self.session.is_connected() {
            // Closed in this round (DISCONNECT, a lost connection, a failed
            // append): the mail stays for the session's next connection.
            return;
        }
        a.mailbox.drain_into(&mut self.deliveries);
        let deferred = usize::from(std::mem::take(&mut self.deferred));
        if deferred > 0 {
            // Worth it if more came meanwhile.
            self.later_skip = if self.deliveries.len() > deferred {
                0
            } else {
                LATER_SKIP
            };
        } else {
            self.later_skip = self.later_skip.saturating_sub(1);
        }
        if self.shared.authorizer().checks_deliveries() {
            self.authorize_deliveries();
        }
        let n = self.deliveries.len() as u64;
        for d in self.deliveries.drain(..) {
            self.session.handle_delivery(now, d);
        }
        self.shared.counters().messages_sent(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn output_size<A, B, C, D, E, F>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn an_idle_connection_task_stays_small() {
        // The task is the largest part of what an idle connection costs
        // (a benchmark row, with a bar of 2 KB in all). tokio keeps it in a
        // cell of whole 128-byte lines, with 112 bytes of its own (header,
        // scheduler, id, stage tag, trailer): six lines, 768 bytes, leave
        // the connection at about 1.8 KB; a seventh costs 128 bytes more
        // for every connection.
        let size = output_size(run::<tokio::net::TcpStream>);
        println!("connection task future: {size} bytes");
        assert!(
            size + 112 <= 768,
            "the connection task grew to {size} bytes: its tokio cell no longer fits 768"
        );
        // Over TLS or WebSocket the stream's own state is on the heap.
        let size = output_size(run::<crate::transport::BoxedStream>);
        println!("connection task future over a stream: {size} bytes");
        assert!(
            size + 112 <= 768,
            "the connection task over a stream grew to {size} bytes"
        );
    }
}
