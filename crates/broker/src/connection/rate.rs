//! `limits.publish_rate` and `limits.publish_bytes_rate`: a client's
//! inbound PUBLISH packets and bytes per second. Past them the connection
//! pauses its reading until the rate allows the next packet, so TCP slows
//! the client down: no message is refused or lost, in 3.1.1 as in 5.0
//! (whose 0x96 Message rate too high would end the connection instead).
//! A second's worth may come at once.

use std::time::{Duration, Instant};

/// A token bucket for packets and one for bytes.
#[derive(Debug)]
pub(super) struct PublishRate {
    packets: f64,
    bytes: f64,
    at: Instant,
}

impl PublishRate {
    /// `rates`: packets and bytes per second (0: none).
    pub fn new(now: Instant, rates: (u32, u64)) -> PublishRate {
        PublishRate {
            packets: f64::from(rates.0),
            bytes: rates.1 as f64,
            at: now,
        }
    }

    /// Takes one PUBLISH of `bytes`: how long reading must pause before
    /// the next one (zero while within the rates).
    pub fn take(&mut self, now: Instant, bytes: usize, rates: (u32, u64)) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let mut wait = 0f64;
        let rate = f64::from(rates.0);
        if rate > 0.0 {
            self.packets = (self.packets + elapsed * rate).min(rate) - 1.0;
            wait = wait.max(-self.packets / rate);
        }
        let rate = rates.1 as f64;
        if rate > 0.0 {
            self.bytes = (self.bytes + elapsed * rate).min(rate) - bytes as f64;
            wait = wait.max(-self.bytes / rate);
        }
        Duration::from_secs_f64(wait.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seconds_worth_then_the_rate() {
        let limits = (10, 0);
        let t0 = Instant::now();
        let mut r = PublishRate::new(t0, limits);
        for _ in 0..10 {
            assert_eq!(r.take(t0, 100, limits), Duration::ZERO);
        }
        // The eleventh waits a tenth of a second's refill.
        let w = r.take(t0, 100, limits);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        // After the wait, the next is a tenth of a second further.
        let w = r.take(t0 + Duration::from_millis(100), 100, limits);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn bytes_too() {
        let limits = (0, 1000);
        let t0 = Instant::now();
        let mut r = PublishRate::new(t0, limits);
        assert_eq!(r.take(t0, 600, limits), Duration::ZERO);
        let w = r.take(t0, 900, limits);
        assert!((w.as_secs_f64() - 0.5).abs() < 1e-9, "{w:?}");
    }
}
