//! The broker's handle on its journal: every append of a [`strata_journal`]
//! entry goes through [`Journal`], which does nothing when the broker keeps
//! its state in memory.

use strata_codec::MqttStr;
use strata_journal::Entry;
use strata_session::Message;
use strata_store::NewRecord;
use tokio::sync::oneshot;

use crate::durable::{Durable, now_ms};

#[derive(Debug)]
pub(crate) struct Journal {
    durable: Option<Durable>,
}

impl Journal {
    pub fn new(durable: Option<Durable>) -> Journal {
        Journal { durable }
    }

    /// Whether the broker has a data directory.
    pub fn is_on(&self) -> bool {
        self.durable.is_some()
    }

    /// The data directory, for compaction.
    pub fn durable(&self) -> Option<&Durable> {
        self.durable.as_ref()
    }

    /// A fresh id for a message about to be stored.
    pub fn next_message_id(&self) -> Option<u64> {
        self.durable.as_ref().map(Durable::next_id)
    }

    /// Appends `entry` (made only with a journal); nothing waits for it.
    pub fn record(&self, entry: impl FnOnce() -> Entry) {
        if let Some(d) = &self.durable {
            d.append_then(vec![strata_journal::encode(&entry(), now_ms())], |_| {});
        }
    }

    /// Appends `entries` as one batch, if there is a journal and they are
    /// not empty; the receiver says when they are durable (`true`) or
    /// failed.
    pub fn record_waited(&self, entries: &[Entry]) -> Option<oneshot::Receiver<bool>> {
        if entries.is_empty() || !self.is_on() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.record_then(entries, move |ok| {
            let _ = tx.send(ok);
        })
        .then_some(rx)
    }

    /// Appends `entries` as one batch; `done` as for
    /// [`Journal::append_then`]. False (and `done` dropped) without a
    /// journal.
    pub fn record_then(&self, entries: &[Entry], done: impl FnOnce(bool) + Send + 'static) -> bool {
        if !self.is_on() {
            return false;
        }
        let now = now_ms();
        let records = entries
            .iter()
            .map(|e| strata_journal::encode(e, now))
            .collect();
        self.append_then(records, done)
    }

    /// Appends the stored message `m` (from a persistent session: its
    /// client id and inbound QoS 2 packet id, see `Entry::Published`) and,
    /// before it, the entries `then` about it, in one append: a torn
    /// append keeps a prefix, and a message must not survive without what
    /// is stated about it. `done` as for [`Journal::append_then`].
    pub fn record_message_then(
        &self,
        m: &Message,
        from: Option<(&MqttStr, u16)>,
        then: Vec<Entry>,
        done: impl FnOnce(bool) + Send + 'static,
    ) -> bool {
        if !self.is_on() {
            return false;
        }
        let now = now_ms();
        let mut records = Vec::with_capacity(1 + then.len());
        records.extend(then.iter().map(|e| strata_journal::encode(e, now)));
        records.push(strata_journal::encode_message(m, now, from));
        self.append_then(records, done)
    }

    /// Appends encoded `records` as one batch: every append goes through
    /// here. `done(true)` once they are durable under the fsync policy,
    /// `done(false)` if the append failed or was refused; it runs on the
    /// log's writer thread and must not block. False (and `done` dropped)
    /// without a journal.
    pub fn append_then(
        &self,
        records: Vec<NewRecord>,
        done: impl FnOnce(bool) + Send + 'static,
    ) -> bool {
        match &self.durable {
            Some(d) => {
                d.append_then(records, done);
                true
            }
            None => false,
        }
    }
}
