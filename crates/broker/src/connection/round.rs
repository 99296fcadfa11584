//! A journaled session's round: the journal entries one round of a
//! connection's work makes, appended as one batch at its end.

use strata_codec::QoS;
use tokio::sync::oneshot;

use super::{Attached, Conn};
use strata_journal::{Flow, Round, Sent, Unsent};

/// What one round of a persistent session's work puts in the journal, as
/// one append at the end of the round.
#[derive(Default)]
pub(super) struct RoundLog {
    pub(super) sent: Vec<Sent>,
    pub(super) released: Vec<Flow>,
    pub(super) completed: Vec<Flow>,
    pub(super) dropped: Vec<Unsent>,
    pub(super) inbound_done: Vec<u16>,
    /// The append of this round's last session or subscription change
    /// (`Up`, `Resume`, or the `End` of a stored session a clean CONNECT
    /// discarded; `Subscribe` with the retained messages it queued
    /// as flagged `Pending`s, or `Unsubscribe`, made at once under the
    /// router lock, so that their place among the stored messages is the
    /// router's): the CONNACK, SUBACK or UNSUBACK waits until it is
    /// durable, so that a crash never loses a session or a change the
    /// client was told of. Appends become durable in order: waiting for a
    /// later one waits for it too.
    pub(super) barrier: Option<oneshot::Receiver<bool>>,
}

impl RoundLog {
    /// Whether the round's bytes wait until its append is durable: it sent
    /// a QoS 2 PUBLISH, a PUBREL or a PUBCOMP that a restart must know
    /// about, or acknowledges a session or subscription change (see
    /// `barrier`).
    fn gates(&self) -> bool {
        !self.released.is_empty()
            || !self.inbound_done.is_empty()
            || self.barrier.is_some()
            || self.sent.iter().any(|s| s.qos == QoS::ExactlyOnce)
    }

    /// The round's entries, borrowed for [`strata_journal::encode_round`].
    fn parts(&self) -> Round<'_> {
        Round {
            sent: &self.sent,
            released: &self.released,
            completed: &self.completed,
            dropped: &self.dropped,
            inbound_done: &self.inbound_done,
        }
    }

    /// Empties the round, keeping its vectors for the next one.
    fn clear(&mut self) {
        self.sent.clear();
        self.released.clear();
        self.completed.clear();
        self.dropped.clear();
        self.inbound_done.clear();
    }
}

impl Conn {
    /// The session when its changes go to a journal: persistent, with a
    /// data directory.
    pub(super) fn journaled(&self) -> Option<&Attached> {
        if !self.shared.journal().is_on() {
            return None;
        }
        self.attached.as_ref().filter(|a| a.persistent)
    }

    /// This round's bytes also wait until `barrier` says its append is
    /// durable (see [`RoundLog::barrier`]): a session that is not journaled
    /// waits too, for the record that discarded or ended a stored one.
    pub(super) fn wait_for(&mut self, barrier: Option<oneshot::Receiver<bool>>) {
        if let Some(rx) = barrier {
            self.more().round.barrier = Some(rx);
        }
    }

    /// This round's journal entries, if the session is journaled.
    pub(super) fn round(&mut self) -> Option<&mut RoundLog> {
        self.journaled()?;
        Some(&mut self.more().round)
    }

    /// Appends this round's entries as one batch (sends, releases,
    /// completions, drops, inbound releases: the order they can happen
    /// in). When the round's bytes
    /// must wait for it, the receiver says when the append is durable
    /// (`true`) or failed; with nothing to append, the receiver is the
    /// round's session or subscription change's (`RoundLog::barrier`), if
    /// any. The
    /// round's vectors are cleared and kept for the next round.
    pub(super) fn record_round(&mut self) -> Option<oneshot::Receiver<bool>> {
        let r = &mut self.more.as_deref_mut()?.round;
        if !self.shared.journal().is_on() {
            return None;
        }
        let (Some(a), d) = (&self.attached, self.shared.journal()) else {
            return None;
        };
        let gate = r.gates();
        let barrier = r.barrier.take();
        let mut records = Vec::new();
        let now_ms = crate::durable::now_ms();
        strata_journal::encode_round(a.client_id(), r.parts(), now_ms, &mut records);
        r.clear();
        if records.is_empty() {
            return barrier;
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
}
