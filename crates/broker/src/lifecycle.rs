//! The broker's life as the connection tasks see it: the shutdown flag and
//! the count of connection tasks still running.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// Kept with no receiver: connections check the flag.
    shutdown: watch::Sender<bool>,
    /// Connection tasks running.
    active: AtomicUsize,
    /// Told when the last connection task ends.
    idle: Notify,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            shutdown: watch::channel(false).0,
            active: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }
}

impl Lifecycle {
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that sees the shutdown flag change.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A connection task was spawned; it calls [`Lifecycle::task_ended`]
    /// when it ends.
    pub fn task_started(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
    }

    pub fn task_ended(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Connection tasks still running.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no connection task runs, or `deadline`; false if the
    /// deadline came first.
    pub async fn idle_by(&self, deadline: tokio::time::Instant) -> bool {
        while self.active() > 0 {
            let idle = self.idle.notified();
            if self.active() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
        true
    }
}
