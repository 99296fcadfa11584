//! Timers are data: a fixed table of deadlines. The runtime arms one real
//! timer from [`Timers::next`] and calls `handle_timeout` when it fires.

use std::time::Instant;

/// The timers of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// CONNACK must have gone out by then: CONNECT, and any AUTH exchange
    /// before CONNACK, must be over, so a client that stops answering an
    /// exchange is closed.
    Connect = 0,
    /// One and a half Keep Alive periods after the last packet from the
    /// client [MQTT-3.1.2-22].
    KeepAlive = 1,
    /// The client's credentials (a token's `exp`) run out: the connection
    /// ends with 0x87 Not authorized.
    Credentials = 2,
}

const ALL: [Timer; 3] = [Timer::Connect, Timer::KeepAlive, Timer::Credentials];

/// The deadline table.
#[derive(Debug, Clone, Default)]
pub struct Timers {
    deadlines: [Option<Instant>; 3],
}

impl Timers {
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.deadlines[t as usize] = Some(at);
    }

    pub fn clear(&mut self, t: Timer) {
        self.deadlines[t as usize] = None;
    }

    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.deadlines[t as usize]
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Takes one timer due by `now`, clearing it.
    pub fn expired(&mut self, now: Instant) -> Option<Timer> {
        let t = ALL
            .into_iter()
            .find(|&t| self.get(t).is_some_and(|at| at <= now))?;
        self.clear(t);
        Some(t)
    }
}
