//! What the broker counts: the `$SYS/broker/...` counters, and the
//! [`Stats`] snapshot an embedding application reads.

use std::sync::atomic::{AtomicU64, Ordering};

use strata_codec::ReasonCode;

/// A CONNACK's failure codes are 0x80 to 0x9F.
const REFUSAL_CODES: usize = 0xA0 - 0x80;

/// Counters behind `$SYS/broker/...`, bumped from every connection task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    clients_total: AtomicU64,
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    /// CONNECTs refused, by the reason code of the refusal.
    refused: [AtomicU64; REFUSAL_CODES],
}

impl Counters {
    /// A CONNECT was refused with `code` (a failure code).
    pub fn connection_refused(&self, code: ReasonCode) {
        if let Some(slot) = (code as usize)
            .checked_sub(0x80)
            .and_then(|i| self.refused.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The refusals so far, by reason code (those with any).
    pub fn refusals(&self) -> Vec<(ReasonCode, u64)> {
        self.refused
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let n = n.load(Ordering::Relaxed);
                let code = ReasonCode::from_u8(0x80 + i as u8)?;
                (n > 0).then_some((code, n))
            })
            .collect()
    }

    /// A CONNECT was accepted.
    pub fn client_accepted(&self) {
        self.clients_total.fetch_add(1, Ordering::Relaxed);
    }

    /// An Application Message came in from a client.
    pub fn message_received(&self) {
        self.messages_received.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` messages were handed to a session for its client.
    pub fn messages_sent(&self, n: u64) {
        self.messages_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn bytes_received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn bytes_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now, with the gauges the caller read elsewhere.
    pub fn snapshot(&self, gauges: Gauges) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            clients_connected: gauges.clients_connected,
            sessions: gauges.sessions,
            subscriptions: gauges.subscriptions,
            retained: gauges.retained,
            clients_total: get(&self.clients_total),
            messages_received: get(&self.messages_received),
            messages_sent: get(&self.messages_sent),
            bytes_received: get(&self.bytes_received),
            bytes_sent: get(&self.bytes_sent),
        }
    }
}

/// The levels read from the registry and the router for a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    pub clients_connected: usize,
    pub sessions: usize,
    pub subscriptions: usize,
    pub retained: usize,
}

/// The broker's counters and levels at one moment
/// ([`Broker::stats`](crate::Broker::stats)). Counters count from the
/// broker's start; each is read on its own, so two of them may be a few
/// messages apart under load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Clients connected now.
    pub clients_connected: usize,
    /// Sessions held, connected or offline.
    pub sessions: usize,
    /// Subscriptions in the router.
    pub subscriptions: usize,
    /// Retained messages.
    pub retained: usize,
    /// CONNECTs accepted.
    pub clients_total: u64,
    /// Application Messages received from clients.
    pub messages_received: u64,
    /// Application Messages handed to sessions for their clients.
    pub messages_sent: u64,
    /// Bytes read from clients.
    pub bytes_received: u64,
    /// Bytes written to clients.
    pub bytes_sent: u64,
}
