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
//! Overflow policy: past the count or byte limit a new delivery is dropped
//! and counted (the oldest are kept, so the subscriber sees a gap at the end
//! rather than out-of-order messages). While no connection is attached, QoS
//! 0 deliveries are dropped: 3.1.1 [MQTT-3.1.2-5] and 5.0 (section 4.1)
//! require only QoS 1 and 2 to be kept.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_codec::{MqttStr, QoS};
use strata_session::Delivery;
use tokio::sync::Notify;

#[derive(Debug)]
pub struct Mailbox {
    /// The session's client id (for the journal).
    pub client: MqttStr,
    inner: Mutex<Inner>,
    notify: Notify,
    max_messages: usize,
    max_bytes: usize,
    pub dropped: AtomicU64,
    /// The session outlives its connection (and, with a data directory,
    /// its QoS 1 and 2 messages are stored).
    persistent: AtomicBool,
    /// Congestion starts at this many queued deliveries.
    high: usize,
    /// Notified when a drain made room.
    space: Notify,
    /// Milliseconds after `EPOCH` of the last drain.
    last_drain: AtomicU64,
}

/// What [`Mailbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued; the task must be woken (the queue was empty).
    First,
    Queued,
    /// Queued, and the publisher should wait for [`Mailbox::space`].
    Congested,
    /// Dropped by the overflow policy.
    Dropped,
}

/// A subscriber that drained within this long counts as keeping up.
const ACTIVE: Duration = Duration::from_secs(1);

fn epoch_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Delivery>,
    bytes: usize,
    online: bool,
}

impl Mailbox {
    pub fn new(client: MqttStr, max_messages: usize, max_bytes: usize) -> Mailbox {
        Mailbox {
            client,
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_messages,
            max_bytes,
            dropped: AtomicU64::new(0),
            persistent: AtomicBool::new(false),
            // Half the limit at most: publishers not yet paused can still
            // add their next message without an overflow.
            high: (max_messages / 2).clamp(1, 1024),
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
        let keep = (inner.online || d.effective_qos() != QoS::AtMostOnce)
            && inner.queue.len() < self.max_messages
            && inner.bytes + size <= self.max_bytes;
        if !keep {
            drop(inner);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Push::Dropped;
        }
        inner.bytes += size;
        inner.queue.push_back(d);
        if inner.queue.len() == 1 {
            // Only the first delivery since the last drain needs a wake.
            Push::First
        } else if inner.online && inner.queue.len() >= self.high && self.keeping_up() {
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
                if !inner.online || inner.queue.len() < self.high / 2 || !self.keeping_up() {
                    return;
                }
            }
            let _ = tokio::time::timeout(ACTIVE, notified).await;
        }
    }

    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Waits until a push (or a wake) happened since the last drain.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Moves everything queued into `out`.
    pub fn drain_into(&self, out: &mut Vec<Delivery>) {
        let mut inner = self.lock();
        inner.bytes = 0;
        let was = inner.queue.len();
        out.extend(inner.queue.drain(..));
        drop(inner);
        self.last_drain.store(epoch_ms(), Ordering::Relaxed);
        if was >= self.high / 2 {
            self.space.notify_waiters();
        }
    }

    pub fn set_online(&self, online: bool) {
        self.lock().online = online;
        if !online {
            self.space.notify_waiters();
        } else {
            self.last_drain.store(epoch_ms(), Ordering::Relaxed);
        }
    }

    pub fn set_persistent(&self, persistent: bool) {
        self.persistent.store(persistent, Ordering::Relaxed);
    }

    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Relaxed)
    }
}
