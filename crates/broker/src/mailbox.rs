//! The bounded queue between the router and one session's connection task.
//!
//! Publishers push shared `Arc<Message>` deliveries and wake the task once
//! per batch; they never wait on a subscriber. The queue outlives
//! connections: an offline persistent session keeps collecting its QoS 1 and
//! 2 messages here until it reconnects or expires.
//!
//! Flow control: while the subscriber is connected and keeping up (it
//! drained its mailbox within the last second), a mailbox holding `high`
//! deliveries or more reports congestion to the publisher, whose connection
//! then stops reading until the mailbox is down to half that. A publisher
//! thus goes at the pace of its slowest active subscriber instead of
//! overrunning it; a subscriber that stopped draining does not hold
//! publishers back.
//!
//! Signals: the mailbox is also how the connection task that owns the
//! session is woken, without a wait future of its own in the task (memory
//! per idle connection is a benchmark row): a push rings it, a takeover
//! kicks it, and broker shutdown tells it to close. One waker slot serves
//! them all; the owner polls [`Mailbox::poll_signal`].
//!
//! Overflow policy: past the count or byte limit a new delivery is dropped
//! and counted (the oldest are kept, so the subscriber sees a gap at the end
//! rather than out-of-order messages). While no connection is attached, QoS
//! 0 deliveries are dropped: 3.1.1 [MQTT-3.1.2-5] and 5.0 (section 4.1)
//! require only QoS 1 and 2 to be kept.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use strata_codec::{MqttStr, QoS, ReasonCode};
use strata_session::Delivery;
use tokio::sync::{Notify, oneshot};

#[derive(Debug)]
pub struct Mailbox {
    /// The session's client id (for the journal).
    pub client: MqttStr,
    inner: Mutex<Inner>,
    max_messages: u32,
    /// Congestion starts at this many queued deliveries.
    high: u32,
    max_bytes: usize,
    pub dropped: AtomicU64,
    /// The session outlives its connection (and, with a data directory,
    /// its QoS 1 and 2 messages are stored).
    persistent: AtomicBool,
    /// QoS 0 deliveries are queued while the owner is offline too.
    queue_qos0: bool,
    /// Notified when a drain made room.
    space: Notify,
    /// Milliseconds after `EPOCH` of the last drain.
    last_drain: AtomicU64,
}

/// What [`Mailbox::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// Queued, the first since the owner last took its mail: the task must
    /// be woken ([`Mailbox::wake`]).
    First,
    Queued,
    /// Queued, and the publisher should wait for [`Mailbox::space`].
    Congested,
    /// Dropped by the overflow policy: the delivery, handed back.
    Dropped(Delivery),
}

/// Deliveries queued in a mailbox past which a subscriber that keeps up
/// holds its publishers back.
pub const CONGESTED_AT: usize = 256;

/// Whether the owner may take its mail later (see
/// [`Mailbox::poll_signal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Later {
    Never,
    /// Only if it is all QoS 0: a QoS 1 or 2 publisher lets the
    /// subscriber's copy leave before its own acknowledgement
    /// (`deliveries_first` in the connection), which a subscriber that
    /// waits would undo. What that order is for (latency) matters while
    /// the subscriber is idle.
    IfQos0,
    /// Whatever it is: the subscriber is busy (it has not acknowledged
    /// all it was sent), and a write saved counts for more than the order.
    Always,
}

/// Mail that the owner may take later: fewer deliveries than this.
const LATER_BELOW: usize = 16;

/// A subscriber that drained within this long counts as keeping up.
const ACTIVE: Duration = Duration::from_secs(1);

fn epoch_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What woke the connection task that owns the session.
#[derive(Debug)]
pub enum Signal {
    /// Deliveries were queued since the last drain.
    Mail,
    /// Deliveries were queued, this many, and the owner asked to take them
    /// later (see [`Mailbox::poll_signal`]).
    MailLater(u8),
    /// Another connection took the session over [MQTT-3.1.4-3] (0x8E), or
    /// an operator kicked the client (0x98): the connection ends with this
    /// reason; the sender, if any, is answered once the session is back in
    /// the registry.
    Kicked(Option<oneshot::Sender<()>>, ReasonCode),
    /// The broker is shutting down.
    Shutdown,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Delivery>,
    bytes: usize,
    online: bool,
    /// Pushed (or rung) since the owner last took [`Signal::Mail`].
    rung: bool,
    shutdown: bool,
    /// The connection that owns the session (0: none yet).
    owner: u64,
    /// A takeover's request to `owner`-to-be-replaced: its connection id
    /// and the sender it answers. Boxed: rare.
    kick: Option<Box<(u64, oneshot::Sender<()>, ReasonCode)>>,
    /// The owner's task, woken by a push, kick or shutdown.
    waker: Option<Waker>,
}

impl Mailbox {
    /// `queue_qos0`: QoS 0 deliveries are queued while the owner is offline
    /// too (otherwise they are dropped then).
    pub fn new(
        client: MqttStr,
        max_messages: usize,
        max_bytes: usize,
        queue_qos0: bool,
    ) -> Mailbox {
        Mailbox {
            client,
            queue_qos0,
            inner: Mutex::new(Inner::default()),
            max_messages: u32::try_from(max_messages).unwrap_or(u32::MAX),
            // Half the limit at most: publishers not yet paused can still
            // add their next message without an overflow. 256 at most: a
            // deeper queue behind a subscriber that keeps up buys no
            // throughput, only latency and cache misses (fan-out QoS 1
            // p50 250 ms -> 20 ms at the same msg/s; fan-in QoS 1 +28%).
            high: (max_messages / 2).clamp(1, CONGESTED_AT) as u32,
            max_bytes,
            dropped: AtomicU64::new(0),
            persistent: AtomicBool::new(false),
            space: Notify::new(),
            last_drain: AtomicU64::new(epoch_ms()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves a queue that is still
        // consistent (every method restores its invariants before any call
        // that could panic), so a poisoned lock is taken over.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a delivery, or drops it by the overflow policy. The caller
    /// wakes the task with [`Mailbox::wake`] once per batch.
    pub fn push(&self, d: Delivery) -> Push {
        let mut inner = self.lock();
        let size = d.message.size();
        let keep = (inner.online || self.queue_qos0 || d.effective_qos() != QoS::AtMostOnce)
            && inner.queue.len() < self.max_messages as usize
            && inner.bytes + size <= self.max_bytes;
        if !keep {
            drop(inner);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Push::Dropped(d);
        }
        inner.bytes += size;
        inner.queue.push_back(d);
        if !inner.rung {
            inner.rung = true;
            // Only the first delivery since the last drain needs a wake.
            Push::First
        } else if inner.online && inner.queue.len() >= self.high as usize && self.keeping_up() {
            Push::Congested
        } else {
            Push::Queued
        }
    }

    fn keeping_up(&self) -> bool {
        epoch_ms().saturating_sub(self.last_drain.load(Ordering::Relaxed))
            < ACTIVE.as_millis() as u64
    }

    /// Returns once the mailbox is below half its congestion mark, its
    /// subscriber went offline, or it stopped keeping up (checked at least
    /// every `ACTIVE`).
    pub async fn space(&self) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.lock();
                if !inner.online || inner.queue.len() < self.high as usize / 2 || !self.keeping_up()
                {
                    return;
                }
            }
            let _ = tokio::time::timeout(ACTIVE, notified).await;
        }
    }

    /// Wakes the owner's task: called once per batch of pushes, after the
    /// first of them returned [`Push::First`].
    pub fn wake(&self) {
        let waker = self.lock().waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// What the owner's task `conn` must do next, or `Pending` with its
    /// waker kept for a push, kick or shutdown. Mail is taken only when
    /// `take_mail` (the task stops taking it while its session's own queue
    /// is full); the other signals always come through.
    ///
    /// As `later` allows, a little mail (fewer than `LATER_BELOW`
    /// deliveries) is reported as [`Signal::MailLater`] and left pending:
    /// pushes until the owner takes it do not wake the task again, which
    /// has arranged to be polled once more. More than that is worth a write
    /// now: a batch that waited would only fill the mailbox towards
    /// congestion.
    pub fn poll_signal(
        &self,
        cx: &mut Context<'_>,
        conn: u64,
        take_mail: bool,
        later: Later,
    ) -> Poll<Signal> {
        let mut inner = self.lock();
        if inner.shutdown {
            return Poll::Ready(Signal::Shutdown);
        }
        if inner.kick.as_ref().is_some_and(|k| k.0 == conn)
            && let Some(k) = inner.kick.take()
        {
            let (_, done, reason) = *k;
            return Poll::Ready(Signal::Kicked(Some(done), reason));
        }
        if inner.owner != conn {
            // Replaced by a connection that stopped waiting for this one.
            return Poll::Ready(Signal::Kicked(None, ReasonCode::SessionTakenOver));
        }
        if take_mail && inner.rung {
            // The length first: a long queue is never walked.
            let wait = inner.queue.len() < LATER_BELOW
                && match later {
                    Later::Never => false,
                    Later::IfQos0 => inner.queue.iter().all(|d| d.message.qos == QoS::AtMostOnce),
                    Later::Always => true,
                };
            if wait {
                // Below LATER_BELOW (16): fits.
                return Poll::Ready(Signal::MailLater(inner.queue.len() as u8));
            }
            inner.rung = false;
            return Poll::Ready(Signal::Mail);
        }
        if !inner
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The session now belongs to connection `conn`: only its task takes
    /// signals.
    pub fn attach(&self, conn: u64) {
        let mut inner = self.lock();
        inner.owner = conn;
        inner.online = true;
        // Whatever is queued is news to the new owner.
        inner.rung = !inner.queue.is_empty();
        inner.waker = None;
        drop(inner);
        self.last_drain.store(epoch_ms(), Ordering::Relaxed);
    }

    /// Asks connection `conn` to give the session up; it answers on
    /// `done` once the state is back in the registry. Called under the
    /// registry lock, where the owner also takes an unanswered kick back
    /// at its end ([`Mailbox::take_kick`]).
    pub fn kick(&self, conn: u64, done: oneshot::Sender<()>) {
        self.kick_for(conn, done, ReasonCode::SessionTakenOver);
    }

    /// [`Mailbox::kick`] for another reason (0x98 Administrative action:
    /// an operator's kick), which the connection's DISCONNECT carries.
    pub fn kick_for(&self, conn: u64, done: oneshot::Sender<()>, reason: ReasonCode) {
        self.lock().kick = Some(Box::new((conn, done, reason)));
        self.wake();
    }

    /// The answer a takeover waits for from connection `conn`, if it asked
    /// and the task did not see it.
    pub fn take_kick(&self, conn: u64) -> Option<oneshot::Sender<()>> {
        let mut inner = self.lock();
        if inner.kick.as_ref().is_some_and(|k| k.0 == conn) {
            inner.kick.take().map(|k| k.1)
        } else {
            None
        }
    }

    /// Tells the owner, if any, that the broker is shutting down.
    pub fn shut(&self) {
        self.lock().shutdown = true;
        self.wake();
    }

    /// Moves everything queued into `out`: an empty `out` trades places
    /// with the queue, which copies nothing and leaves the mailbox the
    /// capacity `out` had.
    pub fn drain_into(&self, out: &mut VecDeque<Delivery>) {
        let mut inner = self.lock();
        inner.bytes = 0;
        // Everything pushed so far is taken: no news for the owner.
        inner.rung = false;
        let was = inner.queue.len();
        if out.is_empty() {
            std::mem::swap(out, &mut inner.queue);
        } else {
            out.extend(inner.queue.drain(..));
        }
        drop(inner);
        self.last_drain.store(epoch_ms(), Ordering::Relaxed);
        if was >= self.high as usize / 2 {
            self.space.notify_waiters();
        }
    }

    /// The owner went away: QoS 0 is no longer queued, and paused
    /// publishers go on.
    pub fn detach(&self) {
        let mut inner = self.lock();
        inner.online = false;
        inner.owner = 0;
        inner.waker = None;
        drop(inner);
        self.space.notify_waiters();
    }

    pub fn set_persistent(&self, persistent: bool) {
        self.persistent.store(persistent, Ordering::Relaxed);
    }

    /// Deliveries waiting in it, and their bytes.
    pub fn queued(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.queue.len(), inner.bytes)
    }

    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::counting_waker as waker;
    use bytes::Bytes;
    use std::sync::Arc;
    use strata_session::Message;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: MqttStr::from_static("t"),
                payload: Bytes::from_static(b"x"),
                qos,
                retain: false,
                properties: Default::default(),
                received: Instant::now(),
                id: 0,
            }),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            on_subscribe: false,
        }
    }

    fn poll(m: &Mailbox, w: &Waker, conn: u64, take_mail: bool) -> Poll<Signal> {
        m.poll_signal(&mut Context::from_waker(w), conn, take_mail, Later::Never)
    }

    #[test]
    fn a_push_wakes_the_owner_once_per_batch_and_is_taken_as_mail() {
        let m = Mailbox::new(MqttStr::from_static("c"), 100, 1 << 20, false);
        m.attach(7);
        let (count, w) = waker();
        assert!(poll(&m, &w, 7, true).is_pending());
        assert_eq!(m.push(delivery(QoS::AtLeastOnce)), Push::First);
        assert_eq!(m.push(delivery(QoS::AtLeastOnce)), Push::Queued);
        m.wake();
        assert_eq!(count.count(), 1);
        assert!(matches!(poll(&m, &w, 7, true), Poll::Ready(Signal::Mail)));
        // Taken once: nothing new until the next push.
        assert!(poll(&m, &w, 7, true).is_pending());
        let mut out = VecDeque::new();
        m.drain_into(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn mail_taken_later_is_left_rung_so_pushes_meanwhile_do_not_wake() {
        let m = Mailbox::new(MqttStr::from_static("c"), 100, 1 << 20, false);
        m.attach(7);
        let (count, w) = waker();
        assert!(poll(&m, &w, 7, true).is_pending());
        assert_eq!(m.push(delivery(QoS::AtMostOnce)), Push::First);
        m.wake();
        assert_eq!(count.count(), 1);
        let later = m.poll_signal(&mut Context::from_waker(&w), 7, true, Later::IfQos0);
        assert!(matches!(later, Poll::Ready(Signal::MailLater(_))));
        // The owner arranged its own next poll: more mail is no news.
        assert_eq!(m.push(delivery(QoS::AtMostOnce)), Push::Queued);
        assert!(matches!(poll(&m, &w, 7, true), Poll::Ready(Signal::Mail)));
        let mut out = VecDeque::new();
        m.drain_into(&mut out);
        assert_eq!(out.len(), 2);
        assert!(poll(&m, &w, 7, true).is_pending());
        // QoS 1 mail is taken at once from an idle subscriber: its
        // publisher waits for the copy to leave before it acknowledges.
        m.push(delivery(QoS::AtLeastOnce));
        let now = m.poll_signal(&mut Context::from_waker(&w), 7, true, Later::IfQos0);
        assert!(matches!(now, Poll::Ready(Signal::Mail)));
        // A busy one may take it later, but not a mailbox of 16 or more.
        m.push(delivery(QoS::AtLeastOnce));
        let later = m.poll_signal(&mut Context::from_waker(&w), 7, true, Later::Always);
        assert!(matches!(later, Poll::Ready(Signal::MailLater(_))));
        for _ in 0..LATER_BELOW {
            m.push(delivery(QoS::AtMostOnce));
        }
        let now = m.poll_signal(&mut Context::from_waker(&w), 7, true, Later::Always);
        assert!(matches!(now, Poll::Ready(Signal::Mail)));
    }

    #[test]
    fn mail_waits_while_the_owner_does_not_take_it() {
        let m = Mailbox::new(MqttStr::from_static("c"), 100, 1 << 20, false);
        m.attach(7);
        let (_, w) = waker();
        m.push(delivery(QoS::AtLeastOnce));
        assert!(poll(&m, &w, 7, false).is_pending());
        assert!(matches!(poll(&m, &w, 7, true), Poll::Ready(Signal::Mail)));
    }

    #[test]
    fn a_kick_reaches_only_the_connection_it_names() {
        let m = Mailbox::new(MqttStr::from_static("c"), 100, 1 << 20, false);
        m.attach(7);
        let (count, w) = waker();
        assert!(poll(&m, &w, 7, true).is_pending());
        let (tx, mut rx) = oneshot::channel();
        m.kick(7, tx);
        assert_eq!(count.count(), 1, "the owner is woken");
        match poll(&m, &w, 7, true) {
            Poll::Ready(Signal::Kicked(Some(done), _)) => done.send(()).unwrap(),
            other => panic!("expected a kick with its answer, got {other:?}"),
        }
        assert!(rx.try_recv().is_ok());
        // A kick the task never saw is taken back at its end.
        let (tx, _rx) = oneshot::channel();
        m.kick(7, tx);
        assert!(m.take_kick(8).is_none());
        assert!(m.take_kick(7).is_some());
    }

    #[test]
    fn a_connection_that_lost_the_session_is_told_to_leave() {
        // The takeover stopped waiting for the old connection and the new
        // one attached: the old one must not take the new one's mail.
        let m = Mailbox::new(MqttStr::from_static("c"), 100, 1 << 20, false);
        m.attach(7);
        m.attach(9);
        m.push(delivery(QoS::AtLeastOnce));
        let (_, w) = waker();
        assert!(matches!(
            poll(&m, &w, 7, true),
            Poll::Ready(Signal::Kicked(None, _))
        ));
        assert!(matches!(poll(&m, &w, 9, true), Poll::Ready(Signal::Mail)));
    }

    #[test]
    fn shutdown_wakes_the_owner_and_comes_before_mail() {
        let m = Mailbox::new(MqttStr::from_static("c"), 100, 1 << 20, false);
        m.attach(7);
        let (count, w) = waker();
        assert!(poll(&m, &w, 7, true).is_pending());
        m.push(delivery(QoS::AtLeastOnce));
        m.shut();
        assert_eq!(count.count(), 1);
        assert!(matches!(
            poll(&m, &w, 7, true),
            Poll::Ready(Signal::Shutdown)
        ));
    }

    #[test]
    fn queued_mail_is_news_to_a_new_owner() {
        let m = Mailbox::new(MqttStr::from_static("c"), 100, 1 << 20, false);
        m.push(delivery(QoS::AtLeastOnce));
        m.attach(3);
        let (_, w) = waker();
        assert!(matches!(poll(&m, &w, 3, true), Poll::Ready(Signal::Mail)));
        m.detach();
        // Offline: QoS 0 is not kept [MQTT-3.1.2-5].
        assert!(matches!(
            m.push(delivery(QoS::AtMostOnce)),
            Push::Dropped(_)
        ));
    }

    #[test]
    fn qos0_is_queued_offline_only_when_asked() {
        // Mosquitto's queue_qos0_messages: off, an offline session gets no
        // QoS 0; on, it does, within the same limits.
        let off = Mailbox::new(MqttStr::from_static("c"), 2, 1 << 20, false);
        assert!(matches!(
            off.push(delivery(QoS::AtMostOnce)),
            Push::Dropped(_)
        ));
        assert_eq!(off.push(delivery(QoS::AtLeastOnce)), Push::First);
        let on = Mailbox::new(MqttStr::from_static("c"), 2, 1 << 20, true);
        assert_eq!(on.push(delivery(QoS::AtMostOnce)), Push::First);
        assert_eq!(on.push(delivery(QoS::AtMostOnce)), Push::Queued);
        assert!(
            matches!(on.push(delivery(QoS::AtMostOnce)), Push::Dropped(_)),
            "past max_queued_messages"
        );
    }
}
