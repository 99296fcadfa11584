//! Limits per source address (`[limits]`): MQTT connections held, CONNECT
//! attempts per second, and failed logins (each one slows the next refusal
//! down; past `max_failed_logins` in a minute, the address is refused for
//! `failed_login_block_secs`). They apply whatever the authenticator, an
//! application's included.
//!
//! One table, keyed by address, holds only addresses that something is
//! counted for; entries with nothing left to count go when it grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use strata_codec::{Protocol, ReasonCode};

use crate::config::ClientLimits;
use crate::util::lock;

/// Past this many addresses, idle entries are dropped on the next insert.
const TIDY_AT: usize = 16 * 1024;
/// Failed logins are counted over this window.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Each failed login of an address delays its next refusal by this much
/// more, up to `MAX_BACKOFF`.
const BACKOFF_STEP: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct PerAddress {
    /// MQTT connections past CONNECT.
    connections: u32,
    /// CONNECT attempts it may still make now (a token bucket holding a
    /// second's worth).
    tokens: f64,
    refilled: Instant,
    failures: u32,
    failures_since: Instant,
    blocked_until: Option<Instant>,
}

impl PerAddress {
    fn new(now: Instant, rate: u32) -> PerAddress {
        PerAddress {
            connections: 0,
            tokens: f64::from(rate),
            refilled: now,
            failures: 0,
            failures_since: now,
            blocked_until: None,
        }
    }

    /// Nothing to remember: no connection, no block, no recent failure, a
    /// full bucket.
    fn idle(&self, now: Instant, rate: u32) -> bool {
        self.connections == 0
            && self.blocked_until.is_none_or(|t| t <= now)
            && (self.failures == 0 || now.duration_since(self.failures_since) > FAILURE_WINDOW)
            && (rate == 0 || now.duration_since(self.refilled).as_secs_f64() >= 1.0)
    }
}

/// The table and the limits it keeps, and the per-client limits the
/// connections read on every packet (as atomics: a reload changes them
/// under running connections, and reading one costs a load).
#[derive(Debug)]
pub(crate) struct Admission {
    limits: RwLock<ClientLimits>,
    table: Mutex<Table>,
    max_topic_length: AtomicUsize,
    max_topic_levels: AtomicUsize,
    max_subscriptions: AtomicUsize,
    publish_rate: AtomicU32,
    publish_bytes_rate: AtomicU64,
}

#[derive(Debug)]
struct Table {
    entries: HashMap<IpAddr, PerAddress>,
    /// Idle entries are dropped when an insert finds this many.
    tidy_at: usize,
}

/// What an address is counted under: an IPv4 address (an IPv4-mapped IPv6
/// one too), or an IPv6 address's /64, which one host usually holds whole.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// Why a CONNECT is refused before its credentials are looked at.
fn refusal(protocol: Protocol, v5: ReasonCode) -> ReasonCode {
    // 3.1.1 has no code for these: 3 Server unavailable.
    if protocol.is_v5() {
        v5
    } else {
        ReasonCode::ServerUnavailable
    }
}

impl Admission {
    pub fn new(limits: &ClientLimits) -> Admission {
        let a = Admission {
            limits: RwLock::new(limits.clone()),
            table: Mutex::new(Table {
                entries: HashMap::new(),
                tidy_at: TIDY_AT,
            }),
            max_topic_length: AtomicUsize::new(0),
            max_topic_levels: AtomicUsize::new(0),
            max_subscriptions: AtomicUsize::new(0),
            publish_rate: AtomicU32::new(0),
            publish_bytes_rate: AtomicU64::new(0),
        };
        a.set_limits(limits);
        a
    }

    /// New limits, from a reload: they apply from the next check on.
    /// Connections per address are counted from when that limit is set.
    pub fn set_limits(&self, l: &ClientLimits) {
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = l.clone();
        self.max_topic_length.store(l.max_topic_length, Relaxed);
        self.max_topic_levels.store(l.max_topic_levels, Relaxed);
        self.max_subscriptions.store(l.max_subscriptions, Relaxed);
        self.publish_rate.store(l.publish_rate, Relaxed);
        self.publish_bytes_rate.store(l.publish_bytes_rate, Relaxed);
    }

    /// The limits in force.
    pub fn limits(&self) -> ClientLimits {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a topic name or filter (`$share/g/` taken off) is within
    /// `max_topic_length` and `max_topic_levels`.
    pub fn topic_fits(&self, topic: &str) -> bool {
        let levels = self.max_topic_levels.load(Relaxed);
        topic.len() <= self.max_topic_length.load(Relaxed)
            && (levels == 0 || topic.bytes().filter(|&b| b == b'/').count() < levels)
    }

    pub fn max_subscriptions(&self) -> usize {
        self.max_subscriptions.load(Relaxed)
    }

    /// `publish_rate` and `publish_bytes_rate` (0: none).
    pub fn publish_rates(&self) -> (u32, u64) {
        (
            self.publish_rate.load(Relaxed),
            self.publish_bytes_rate.load(Relaxed),
        )
    }

    /// `f` on `ip`'s entry (made if missing); `rate` is the CONNECT rate
    /// in force, which tells idle entries.
    fn with<T>(
        &self,
        ip: IpAddr,
        now: Instant,
        rate: u32,
        f: impl FnOnce(&mut PerAddress) -> T,
    ) -> T {
        let key = key(ip);
        let mut t = lock(&self.table);
        if t.entries.len() >= t.tidy_at && !t.entries.contains_key(&key) {
            t.entries.retain(|_, a| !a.idle(now, rate));
            // The next tidy waits until the table has doubled: a table of
            // busy addresses is not scanned on every CONNECT.
            t.tidy_at = (t.entries.len() * 2).max(TIDY_AT);
        }
        let entry = t
            .entries
            .entry(key)
            .or_insert_with(|| PerAddress::new(now, rate));
        f(entry)
    }

    /// A CONNECT from `ip` arrives: refused (with the code to send) while
    /// the address is blocked for failed logins or past its CONNECT rate.
    pub fn attempt(&self, ip: IpAddr, now: Instant, protocol: Protocol) -> Result<(), ReasonCode> {
        let limits = self.limits();
        let rate = limits.connect_rate_per_address;
        if rate == 0 && limits.max_failed_logins == 0 {
            return Ok(());
        }
        self.with(ip, now, rate, |a| {
            if a.blocked_until.is_some_and(|t| t > now) {
                return Err(refusal(protocol, ReasonCode::Banned));
            }
            if rate > 0 {
                let elapsed = now.duration_since(a.refilled).as_secs_f64();
                a.tokens = (a.tokens + elapsed * f64::from(rate)).min(f64::from(rate));
                a.refilled = now;
                if a.tokens < 1.0 {
                    return Err(refusal(protocol, ReasonCode::ConnectionRateExceeded));
                }
                a.tokens -= 1.0;
            }
            Ok(())
        })
    }

    /// A login from `ip` failed: how long to wait before saying so.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        let limits = self.limits();
        let max = limits.max_failed_logins;
        if max == 0 {
            return Duration::ZERO;
        }
        let block = limits.failed_login_block;
        self.with(ip, now, limits.connect_rate_per_address, |a| {
            if now.duration_since(a.failures_since) > FAILURE_WINDOW {
                a.failures = 0;
                a.failures_since = now;
            }
            a.failures += 1;
            if a.failures >= max {
                a.blocked_until = Some(now + block);
                tracing::warn!(address = %ip, failures = a.failures, ?block, "address blocked for failed logins");
            }
            (BACKOFF_STEP * a.failures).min(MAX_BACKOFF)
        })
    }

    /// A connection from `ip` passed CONNECT: whether the address may hold
    /// one more (the code to refuse it with if not).
    pub fn connect(&self, ip: IpAddr, now: Instant, protocol: Protocol) -> Result<(), ReasonCode> {
        let limits = self.limits();
        let max = limits.max_connections_per_address;
        if max == 0 {
            return Ok(());
        }
        self.with(ip, now, limits.connect_rate_per_address, |a| {
            if a.connections as usize >= max {
                return Err(refusal(protocol, ReasonCode::QuotaExceeded));
            }
            a.connections += 1;
            Ok(())
        })
    }

    /// A connection that [`Admission::connect`] let in ended. Counted
    /// down whatever the limit is now: one set to 0 and back by reloads
    /// meanwhile must not leave the count stuck.
    pub fn disconnect(&self, ip: IpAddr) {
        let mut t = lock(&self.table);
        if let Some(a) = t.entries.get_mut(&key(ip)) {
            a.connections = a.connections.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClientLimits {
        ClientLimits {
            max_connections_per_address: 2,
            connect_rate_per_address: 3,
            max_failed_logins: 3,
            failed_login_block: Duration::from_secs(60),
            ..ClientLimits::default()
        }
    }

    const V5: Protocol = Protocol::V5;
    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn connections_per_address() {
        let a = Admission::new(&limits());
        let now = Instant::now();
        assert!(a.connect(IP, now, V5).is_ok());
        assert!(a.connect(IP, now, V5).is_ok());
        assert_eq!(a.connect(IP, now, V5), Err(ReasonCode::QuotaExceeded));
        assert_eq!(
            a.connect(IP, now, Protocol::V3_1_1),
            Err(ReasonCode::ServerUnavailable)
        );
        assert!(a.connect(OTHER, now, V5).is_ok());
        a.disconnect(IP);
        assert!(a.connect(IP, now, V5).is_ok());
    }

    #[test]
    fn connect_rate_refills_over_time() {
        let a = Admission::new(&limits());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(a.attempt(IP, t0, V5).is_ok());
        }
        assert_eq!(
            a.attempt(IP, t0, V5),
            Err(ReasonCode::ConnectionRateExceeded)
        );
        assert!(a.attempt(OTHER, t0, V5).is_ok());
        // A third of a second later: one more.
        let later = t0 + Duration::from_millis(340);
        assert!(a.attempt(IP, later, V5).is_ok());
        assert!(a.attempt(IP, later, V5).is_err());
    }

    #[test]
    fn failed_logins_back_off_then_block() {
        let a = Admission::new(&ClientLimits {
            connect_rate_per_address: 0,
            ..limits()
        });
        let t0 = Instant::now();
        assert_eq!(a.failed(IP, t0), BACKOFF_STEP);
        assert_eq!(a.failed(IP, t0), BACKOFF_STEP * 2);
        assert!(a.attempt(IP, t0, V5).is_ok());
        a.failed(IP, t0);
        assert_eq!(a.attempt(IP, t0, V5), Err(ReasonCode::Banned));
        assert!(a.attempt(OTHER, t0, V5).is_ok());
        // The block ends; the count starts over after the window.
        let after = t0 + Duration::from_secs(61);
        assert!(a.attempt(IP, after, V5).is_ok());
        assert_eq!(a.failed(IP, after), BACKOFF_STEP);
    }

    #[test]
    fn an_ipv6_host_is_its_64() {
        let a = Admission::new(&limits());
        let now = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other_in_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(a.connect(one, now, V5).is_ok());
        assert!(a.connect(other_in_64, now, V5).is_ok());
        assert_eq!(a.connect(one, now, V5), Err(ReasonCode::QuotaExceeded));
        assert!(a.connect(other_64, now, V5).is_ok());
        // An IPv4 client seen on an IPv6 socket is its IPv4 address.
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(a.connect(v4, now, V5).is_ok());
        assert!(a.connect(mapped, now, V5).is_ok());
        assert!(a.connect(v4, now, V5).is_err());
    }

    #[test]
    fn a_count_survives_a_limit_switched_off_and_on() {
        let a = Admission::new(&limits());
        let now = Instant::now();
        assert!(a.connect(IP, now, V5).is_ok());
        assert!(a.connect(IP, now, V5).is_ok());
        a.set_limits(&ClientLimits::default());
        a.disconnect(IP);
        a.disconnect(IP);
        a.set_limits(&limits());
        assert!(a.connect(IP, now, V5).is_ok());
        assert!(a.connect(IP, now, V5).is_ok());
    }

    #[test]
    fn nothing_is_kept_without_limits() {
        let a = Admission::new(&ClientLimits::default());
        let now = Instant::now();
        for _ in 0..100 {
            assert!(a.attempt(IP, now, V5).is_ok());
            assert!(a.connect(IP, now, V5).is_ok());
            assert_eq!(a.failed(IP, now), Duration::ZERO);
        }
        assert!(lock(&a.table).entries.is_empty());
    }
}
