//! Holding back what a client sends: while its publisher waits for room
//! in a congested mailbox (a pause), or while much output waits for the
//! client to read it, acknowledgements and PINGREQ are handled at once and
//! the rest is held, in order, until that ends; and how a DISCONNECT among
//! what is held still counts when the connection ends first.

use std::time::Instant;

use bytes::BytesMut;
use strata_codec::{Packet, decode};

use super::{Conn, PAUSED_READ_MAX, UNSENT_HOLD};
use crate::transport::Transport;

/// Packets handled at once while a connection holds input back (a paused
/// publisher, or much output unsent), ahead of the packets it holds back:
/// they answer the server's own flows or keep the connection alive,
/// and no packet before them changes what they mean. Not PUBREL: a PUBLISH
/// held before it could be the resend of its packet id [MQTT-4.3.3-10].
fn skips_ahead(p: &Packet) -> bool {
    matches!(
        p,
        Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) | Packet::PingReq
    )
}

impl Conn {
    /// Whether held packets wait to be handled.
    pub(super) fn holding(&self) -> bool {
        self.more.as_ref().is_some_and(|m| !m.held.is_empty())
    }

    /// Whether this publisher waits for room in a subscriber's mailbox.
    pub(super) fn paused(&self) -> bool {
        self.more.as_ref().is_some_and(|m| m.paused.is_some())
    }

    /// Whether what the client sends is held back (but acknowledgements
    /// and PINGREQ): paused, or with much output unsent.
    pub(super) fn holds_back(&self) -> bool {
        self.paused() || self.unsent() >= UNSENT_HOLD
    }

    /// The connection is lost (a failed write, a failed journal append):
    /// after a DISCONNECT held back, if any (see `end_held`).
    pub(super) fn lose<T: Transport>(&mut self, stream: &mut T, rbuf: &mut BytesMut) {
        let now = crate::clock::now();
        self.end_held(now, stream, rbuf);
        self.session.handle_connection_lost(now);
    }

    /// The connection ends (a takeover, shutdown, a loss, a failed journal
    /// append, the keep-alive) while input is held back (a pause, output
    /// unsent): held packets go unhandled (the client resends what it
    /// needs acknowledged), but a DISCONNECT among them still counts. The
    /// client ended its connection normally, so its will is not published
    /// [MQTT-3.14.4-3], and what the DISCONNECT says of the will and the
    /// session expiry stands. A client that only publishes is not read
    /// while paused (nor one past the bound of reading while its output
    /// is unsent), so its DISCONNECT may still be on the wire: what the
    /// socket has now, within the bound of a paused read, is looked
    /// through for one.
    pub(super) fn end_held<T: Transport>(
        &mut self,
        now: Instant,
        stream: &mut T,
        rbuf: &mut BytesMut,
    ) {
        if self.session.is_closed()
            || (!self.holds_back() && !self.holding())
            || self.held_disconnect(now)
        {
            return;
        }
        let is_disconnect = |p: &Packet| matches!(p, Packet::Disconnect(_));
        let room = PAUSED_READ_MAX.saturating_sub(rbuf.len());
        rbuf.reserve(room);
        let _ = stream.read_some(rbuf, room);
        let (protocol, max) = (self.session.protocol(), self.session.max_packet_size());
        // Complete packets only; a malformed one ends the search.
        while let Ok(Some(p)) = decode(rbuf, protocol, max) {
            if is_disconnect(&p) {
                self.session.handle_packet(now, p);
                return;
            }
        }
    }

    /// Handles a DISCONNECT among the held packets, if there is one (the
    /// packets before it go unhandled, see `end_held`).
    pub(super) fn held_disconnect(&mut self, now: Instant) -> bool {
        let Some(m) = self.more.as_mut() else {
            return false;
        };
        let Some(i) = m
            .held
            .iter()
            .position(|(p, _)| matches!(p, Packet::Disconnect(_)))
        else {
            return false;
        };
        if let Some((p, cost)) = m.held.remove(i) {
            m.held_bytes -= cost;
            self.session.handle_packet(now, p);
        }
        true
    }

    /// The next packet to handle: a held one once the pause is over, else
    /// the next in the buffer; while paused (or with much output unsent),
    /// what does not skip ahead is held back.
    pub(super) fn next_packet(&mut self, rbuf: &mut BytesMut, now: Instant) -> Option<Packet> {
        let paused = self.holds_back();
        if !paused
            && let Some(m) = self.more.as_mut()
            && let Some((p, cost)) = m.held.pop_front()
        {
            m.held_bytes -= cost;
            if m.held.is_empty() {
                // Its capacity goes back to the allocator.
                m.held = Default::default();
            }
            return Some(p);
        }
        loop {
            let max = self.session.max_packet_size();
            let before = rbuf.len();
            let packet = match decode(rbuf, self.session.protocol(), max) {
                Ok(Some(packet)) => packet,
                Ok(None) => return None,
                // Paused or not: a malformed packet closes the connection
                // [MQTT-4.8.0-1]; what is held goes with it.
                Err(e) => {
                    tracing::debug!(error = %e, "decode error");
                    self.session.handle_decode_error(crate::clock::now(), &e);
                    return None;
                }
            };
            let cost = before - rbuf.len();
            if self.unsent() >= UNSENT_HOLD {
                self.more().read_while_unsent += cost;
            }
            if !paused || skips_ahead(&packet) {
                return Some(packet);
            }
            // Held, but the client is alive.
            self.session.packet_arrived(now);
            let m = self.more();
            m.held_bytes += cost;
            m.held.push_back((packet, cost));
        }
    }
}
