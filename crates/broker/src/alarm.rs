//! One timer for every connection task: keep-alive and CONNECT deadlines
//! are alarms in one ordered map, and one task wakes each connection when
//! its alarm is due.
//!
//! A tokio `Sleep` in every connection task would cost 112 bytes of task
//! state per connection, and more in practice (the task's memory comes in
//! whole 128-byte lines); an alarm is one map entry, and only while set.
//!
//! A task sets an alarm only when it has none that rings at or before its
//! deadline. A deadline that moves later (a keep-alive deadline does with
//! every packet) costs nothing: the earlier alarm rings, the task finds its
//! deadline not yet due and sets one at the new deadline. So an idle
//! connection sets about one alarm per keep-alive period.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::task::Waker;
use std::time::Instant;

use tokio::sync::Notify;

use crate::util::lock;

#[derive(Debug, Default)]
pub(crate) struct Alarms {
    /// (due, connection id) to the task to wake.
    set: Mutex<BTreeMap<(Instant, u64), Waker>>,
    /// Told when an alarm earlier than every other was set.
    sooner: Notify,
}

impl Alarms {
    /// Wakes `waker` at `at`; `id` (the connection's) tells alarms due at
    /// the same instant apart.
    pub fn set(&self, at: Instant, id: u64, waker: &Waker) {
        let mut set = lock(&self.set);
        let first = set.first_key_value().is_none_or(|(k, _)| at < k.0);
        set.insert((at, id), waker.clone());
        drop(set);
        if first {
            self.sooner.notify_one();
        }
    }

    pub fn cancel(&self, at: Instant, id: u64) {
        lock(&self.set).remove(&(at, id));
    }

    /// Wakes the tasks whose alarms are due by `now` and forgets them;
    /// returns when the next one is due.
    fn ring(&self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        let next = {
            let mut set = lock(&self.set);
            while let Some(e) = set.first_entry() {
                if e.key().0 > now {
                    break;
                }
                due.push(e.remove());
            }
            set.first_key_value().map(|(k, _)| k.0)
        };
        for w in due {
            w.wake();
        }
        next
    }

    /// Rings alarms as they fall due, for the broker's life.
    pub async fn run(&self) {
        loop {
            // Made before looking: an alarm set from here on is not missed
            // (`notify_one` keeps a permit for a waiter yet to come).
            let sooner = self.sooner.notified();
            match self.ring(crate::clock::now()) {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = sooner => {}
                    }
                }
                None => sooner.await,
            }
        }
    }
}

/// A connection task's alarm: at most one set at a time. A task whose
/// session has no deadline leaves a set alarm alone: it rings once for
/// nothing, which is cheaper than a cancel per change.
#[derive(Debug, Default)]
pub(crate) struct Alarm {
    set_at: Option<Instant>,
}

impl Alarm {
    /// Whether `deadline` (the session's next) has come by `now`; if not,
    /// makes sure an alarm wakes the task by then.
    pub fn due(
        &mut self,
        alarms: &Alarms,
        id: u64,
        deadline: Instant,
        now: Instant,
        waker: &Waker,
    ) -> bool {
        if deadline <= now {
            return true;
        }
        // An alarm in the past has rung (or is about to: a wake for
        // nothing); it no longer counts.
        if self.set_at.is_some_and(|at| at <= now) {
            self.set_at = None;
        }
        if self.set_at.is_none_or(|at| at > deadline) {
            if let Some(at) = self.set_at {
                alarms.cancel(at, id);
            }
            alarms.set(deadline, id, waker);
            self.set_at = Some(deadline);
        }
        false
    }

    /// Cancels the alarm, if one is set.
    pub fn clear(&mut self, alarms: &Alarms, id: u64) {
        if let Some(at) = self.set_at.take() {
            alarms.cancel(at, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::counting_waker as waker;
    use std::time::Duration;

    #[test]
    fn an_alarm_rings_once_when_due() {
        let alarms = Alarms::default();
        let (count, w) = waker();
        let t0 = crate::clock::now();
        alarms.set(t0 + Duration::from_secs(10), 1, &w);
        assert_eq!(alarms.ring(t0), Some(t0 + Duration::from_secs(10)));
        assert_eq!(count.count(), 0);
        assert_eq!(alarms.ring(t0 + Duration::from_secs(10)), None);
        assert_eq!(count.count(), 1);
        alarms.ring(t0 + Duration::from_secs(20));
        assert_eq!(count.count(), 1);
    }

    #[test]
    fn a_later_deadline_keeps_the_earlier_alarm_and_an_earlier_one_replaces_it() {
        let alarms = Alarms::default();
        let (_, w) = waker();
        let mut alarm = Alarm::default();
        let now = crate::clock::now();
        let t = now + Duration::from_secs(60);
        assert!(!alarm.due(&alarms, 7, t, now, &w));
        assert!(!alarm.due(&alarms, 7, t + Duration::from_secs(5), now, &w));
        assert_eq!(lock(&alarms.set).len(), 1);
        assert_eq!(alarms.ring(now), Some(t));
        assert!(!alarm.due(&alarms, 7, t - Duration::from_secs(5), now, &w));
        let set = lock(&alarms.set);
        assert_eq!(set.len(), 1);
        assert!(set.contains_key(&(t - Duration::from_secs(5), 7)));
    }

    #[test]
    fn a_task_whose_alarm_rang_sets_one_for_its_moved_deadline() {
        let alarms = Alarms::default();
        let (count, w) = waker();
        let mut alarm = Alarm::default();
        let t0 = crate::clock::now();
        let first = t0 + Duration::from_secs(1);
        assert!(!alarm.due(&alarms, 7, first, t0, &w));
        // The keep-alive deadline moved on meanwhile; the alarm rings.
        let moved = first + Duration::from_secs(60);
        let later = first + Duration::from_millis(1);
        alarms.ring(later);
        assert_eq!(count.count(), 1);
        assert!(!alarm.due(&alarms, 7, moved, later, &w));
        assert!(lock(&alarms.set).contains_key(&(moved, 7)));
        // A deadline that has come is due at once.
        assert!(alarm.due(&alarms, 7, moved, moved, &w));
        alarm.clear(&alarms, 7);
        assert!(lock(&alarms.set).is_empty());
    }
}
