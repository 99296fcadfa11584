//! The broker's clock. Every deadline the broker keeps (keep-alive, CONNECT
//! timeout, session expiry, will delay, message expiry) is read from
//! tokio's clock, so a test on paused time (`start_paused`) moves them all
//! without waiting; outside such a test it is the monotonic clock.

use std::time::Instant;

/// Now, on tokio's clock.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
