//! Writing: what the socket does not take waits in the connection
//! (`More::unsent`) and goes first once it is writable, and a closing
//! connection gives the client a bounded time to take the last of it.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{Conn, UNSENT_HOLD};
use crate::shared::Shared;
use crate::transport::Transport;

/// How long a closing connection waits for the client to take the last of
/// its output (a DISCONNECT with a reason code, say) before closing anyway;
/// at shutdown it tries once.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

impl Conn {
    /// Hands the session back (`finish`: a takeover does not wait for a
    /// client that is slow to read), then writes what the socket did not
    /// take yet: the client has `CLOSE_LINGER` to take it, or one try at
    /// shutdown (whose grace period is the broker's).
    pub(super) async fn finish_then_write<T: Transport>(mut self, stream: &mut T) {
        let shared = self.shared.clone();
        let unsent = self
            .more
            .as_mut()
            .map(|m| std::mem::take(&mut m.unsent))
            .unwrap_or_default();
        self.finish();
        write_last(&shared, stream, unsent).await;
    }

    /// Writes what the socket did not take before, then everything the
    /// session has to send: with one syscall when the socket takes it all;
    /// the rest is kept in `More::unsent` for the socket's next room.
    pub(super) fn flush<T: Transport>(&mut self, wr: &mut T, now: Instant) -> std::io::Result<()> {
        // What the socket did not take before goes first.
        let mut wbuf = self
            .more
            .as_mut()
            .map(|m| std::mem::take(&mut m.unsent))
            .unwrap_or_default();
        self.session.poll_transmit(now, &mut wbuf);
        let mut written = 0;
        let mut full = false;
        let r = loop {
            if written == wbuf.len() {
                break Ok(());
            }
            match wr.try_write(&wbuf[written..]) {
                Ok(0) => {
                    full = true;
                    break Err(std::io::ErrorKind::WriteZero.into());
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // The rest waits for the socket (`poll_wakes`): the task
                    // is not held up by a client that does not read.
                    full = true;
                    break Ok(());
                }
                Err(e) => {
                    // Kept, so that the loss still knows input was held
                    // back for it (`end_held`).
                    full = true;
                    break Err(e);
                }
            }
        };
        if full {
            bytes::Buf::advance(&mut wbuf, written);
            let m = self.more();
            // What the client read makes room for what it sends.
            m.read_while_unsent = m.read_while_unsent.saturating_sub(written);
            if wbuf.len() < UNSENT_HOLD {
                m.read_while_unsent = 0;
            }
            m.unsent = wbuf;
        } else if let Some(m) = self.more.as_mut() {
            m.read_while_unsent = 0;
        }
        self.shared.counters().bytes_sent(written as u64);
        r
    }

    /// Bytes of output the socket has not taken yet.
    pub(super) fn unsent(&self) -> usize {
        self.more.as_ref().map_or(0, |m| m.unsent.len())
    }
}

async fn write_last<T: Transport>(shared: &Shared, stream: &mut T, unsent: BytesMut) {
    let wait = if shared.life().is_shutting_down() {
        Duration::ZERO
    } else {
        CLOSE_LINGER
    };
    let mut written = 0;
    let _ = tokio::time::timeout(wait, async {
        while written < unsent.len() {
            let ready = std::future::poll_fn(|cx| stream.poll_write_ready(cx)).await;
            match ready.and_then(|()| stream.try_write(&unsent[written..])) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            }
        }
    })
    .await;
    shared.counters().bytes_sent(written as u64);
}
