//! The bounded queue between the router and one session's connection task.
//!
//! Publishers push shared `Arc<Message>` deliveries and wake the task once
//! per batch; they never wait on a subscriber. The queue outlives
//! connections: an offline persistent session keeps collecting its QoS 1 and
//! 2 messages here until it reconnects or expires.
//!
//! Overflow policy: past the count or byte limit a new delivery is dropped
//! and counted (the oldest are kept, so the subscriber sees a gap at the end
//! rather than out-of-order messages). While no connection is attached, QoS
//! 0 deliveries are dropped: 3.1.1 [MQTT-3.1.2-5] and 5.0 (section 4.1)
//! require only QoS 1 and 2 to be kept.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use strata_codec::QoS;
use strata_session::Delivery;
use tokio::sync::Notify;

#[derive(Debug)]
pub struct Mailbox {
    inner: Mutex<Inner>,
    notify: Notify,
    max_messages: usize,
    max_bytes: usize,
    pub dropped: AtomicU64,
    /// The session outlives its connection (and, with a data directory,
    /// its QoS 1 and 2 messages are stored).
    persistent: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Delivery>,
    bytes: usize,
    online: bool,
}

impl Mailbox {
    pub fn new(max_messages: usize, max_bytes: usize) -> Mailbox {
        Mailbox {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_messages,
            max_bytes,
            dropped: AtomicU64::new(0),
            persistent: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves a queue that is still
        // consistent (every method restores its invariants before any call
        // that could panic), so a poisoned lock is taken over.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a delivery; returns false if the overflow policy dropped it.
    /// The caller wakes the task with [`Mailbox::wake`] once per batch.
    pub fn push(&self, d: Delivery) -> bool {
        let mut inner = self.lock();
        let size = d.message.size();
        let keep = (inner.online || d.effective_qos() != QoS::AtMostOnce)
            && inner.queue.len() < self.max_messages
            && inner.bytes + size <= self.max_bytes;
        if !keep {
            drop(inner);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        inner.bytes += size;
        inner.queue.push_back(d);
        true
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
        out.extend(inner.queue.drain(..));
    }

    pub fn set_online(&self, online: bool) {
        self.lock().online = online;
    }

    pub fn set_persistent(&self, persistent: bool) {
        self.persistent.store(persistent, Ordering::Relaxed);
    }

    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Relaxed)
    }
}
