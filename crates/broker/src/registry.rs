//! Who is connected, which sessions wait offline, and the mailboxes the
//! router delivers into.
//!
//! Lock order: the registry lock and the router lock are never held at the
//! same time; callers collect what must happen under one, release it, then
//! take the other. Neither is held across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_codec::MqttStr;
use strata_session::{Message, SessionState, Will};

use crate::mailbox::Mailbox;

/// Who holds a session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    None,
    /// This connection runs it.
    Conn(u64),
    /// A takeover asked this connection to leave and waits for it to hand
    /// the state back; it no longer counts as connected.
    Leaving(u64),
}

/// One client id's session.
#[derive(Debug)]
pub struct Entry {
    /// The router key of this session's subscriptions.
    pub key: u64,
    pub mailbox: Arc<Mailbox>,
    /// The connection that owns the session now, if any (a takeover asks
    /// it to leave through the mailbox).
    pub conn: Owner,
    /// The state while no connection owns it.
    /// Boxed, like the will below: an entry exists for every connected
    /// client, and most of the time neither is there.
    pub offline: Option<Box<SessionState>>,
    /// When an offline session ends (Session Expiry Interval).
    pub expires_at: Option<Instant>,
    /// A delayed Will Message and when it is due [MQTT-3.1.3-9].
    pub pending_will: Option<Box<(Instant, Message)>>,
}

/// What ending or expiring sessions leaves for the caller to do outside the
/// registry lock.
#[derive(Debug, Default)]
pub struct Fallout {
    /// Router keys whose subscriptions must go.
    pub removed_keys: Vec<u64>,
    /// Wills to publish now.
    pub wills: Vec<Message>,
    /// Persistent sessions that ended (for the durable log).
    pub ended: Vec<MqttStr>,
    /// Persistent sessions whose delayed will is published with `wills`
    /// while the session goes on (for the durable log).
    pub wills_gone: Vec<MqttStr>,
}

#[derive(Debug, Default)]
pub struct Registry {
    pub by_client: HashMap<MqttStr, Entry>,
    pub connected: usize,
}

impl Registry {
    /// Ends the session of `client_id` entirely.
    pub fn end(&mut self, client_id: &MqttStr, fallout: &mut Fallout) -> Option<Entry> {
        let mut e = self.by_client.remove(client_id)?;
        fallout.removed_keys.push(e.key);
        if e.mailbox.is_persistent() {
            fallout.ended.push(client_id.clone());
        }
        // [MQTT-3.1.2-8]: the will goes out when the session ends, delay or not.
        if let Some(pending) = e.pending_will.take() {
            let (_, will) = *pending;
            fallout.wills.push(will);
        }
        Some(e)
    }

    /// A connection is over: keep its state offline until it expires, or
    /// end the session. `conn_id` guards against a connection that was
    /// already replaced by a takeover. Returns whether the session was kept
    /// offline by this call.
    #[allow(clippy::too_many_arguments)]
    pub fn release(
        &mut self,
        now: Instant,
        client_id: &MqttStr,
        conn_id: u64,
        state: Option<SessionState>,
        session_expiry: u32,
        will: Option<Will>,
        fallout: &mut Fallout,
    ) -> bool {
        let Some(e) = self.by_client.get_mut(client_id) else {
            return false;
        };
        match e.conn {
            Owner::Conn(id) if id == conn_id => {
                self.connected = self.connected.saturating_sub(1);
            }
            Owner::Leaving(id) if id == conn_id => {}
            // Not its session any more: a takeover stopped waiting for this
            // connection, and its state must not replace the newer one.
            _ => return false,
        }
        e.conn = Owner::None;
        e.mailbox.detach();
        if session_expiry == 0 {
            if let Some(w) = will {
                fallout.wills.push(w.message);
            }
            self.end(client_id, fallout);
            return false;
        }
        let expiry = (session_expiry != u32::MAX)
            .then(|| now + Duration::from_secs(u64::from(session_expiry)));
        e.offline = state.map(Box::new);
        e.expires_at = expiry;
        if let Some(w) = will {
            if w.delay.is_zero() {
                fallout.wills.push(w.message);
            } else {
                // [MQTT-3.1.3-9]: at the Will Delay Interval or the end of
                // the session, whichever comes first.
                let due = now + w.delay;
                let due = expiry.map_or(due, |x| x.min(due));
                e.pending_will = Some(Box::new((due, w.message)));
            }
        }
        true
    }

    /// Ends expired sessions and takes wills that are due.
    pub fn sweep(&mut self, now: Instant, fallout: &mut Fallout) {
        let expired: Vec<MqttStr> = self
            .by_client
            .iter()
            .filter(|(_, e)| e.conn == Owner::None && e.expires_at.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for id in expired {
            self.end(&id, fallout);
        }
        for (client, e) in &mut self.by_client {
            if e.pending_will.as_ref().is_some_and(|p| p.0 <= now)
                && let Some(pending) = e.pending_will.take()
            {
                let (_, w) = *pending;
                fallout.wills.push(w);
                if e.mailbox.is_persistent() {
                    fallout.wills_gone.push(client.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strata_codec::QoS;

    fn entry(key: u64) -> Entry {
        Entry {
            key,
            mailbox: Arc::new(Mailbox::new(MqttStr::from_static("c"), 10, 1000, false)),
            conn: Owner::Conn(7),
            offline: None,
            expires_at: None,
            pending_will: None,
        }
    }

    fn will(now: Instant, delay: u64) -> Will {
        Will {
            message: Message {
                topic: MqttStr::from_static("w"),
                payload: Bytes::new(),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Default::default(),
                received: now,
                id: 0,
            },
            delay: Duration::from_secs(delay),
        }
    }

    #[test]
    fn delayed_will_waits_for_its_interval() {
        // The Will Delay Interval (5.0 section 3.1.3.2.2): the will waits for it.
        let now = crate::clock::now();
        let id = MqttStr::from_static("c");
        let mut reg = Registry::default();
        reg.by_client.insert(id.clone(), entry(1));
        reg.connected = 1;
        let mut f = Fallout::default();
        reg.release(now, &id, 7, None, 60, Some(will(now, 5)), &mut f);
        assert!(f.wills.is_empty() && f.removed_keys.is_empty());
        assert_eq!(reg.connected, 0);
        reg.sweep(now + Duration::from_secs(4), &mut f);
        assert!(f.wills.is_empty());
        reg.sweep(now + Duration::from_secs(5), &mut f);
        assert_eq!(f.wills.len(), 1);
        // The session itself lives on until its expiry.
        assert!(reg.by_client.contains_key(&id));
        reg.sweep(now + Duration::from_secs(60), &mut f);
        assert!(!reg.by_client.contains_key(&id));
        assert_eq!(f.removed_keys, vec![1]);
    }

    #[test]
    fn session_end_sends_the_will_before_its_delay() {
        // [MQTT-3.1.2-8]: the will goes when the session ends, if sooner.
        let now = crate::clock::now();
        let id = MqttStr::from_static("c");
        let mut reg = Registry::default();
        reg.by_client.insert(id.clone(), entry(1));
        let mut f = Fallout::default();
        reg.release(now, &id, 7, None, 2, Some(will(now, 30)), &mut f);
        reg.sweep(now + Duration::from_secs(2), &mut f);
        assert_eq!(f.wills.len(), 1);
        assert_eq!(f.removed_keys, vec![1]);
    }

    #[test]
    fn expiry_zero_ends_the_session_and_sends_the_will_now() {
        let now = crate::clock::now();
        let id = MqttStr::from_static("c");
        let mut reg = Registry::default();
        reg.by_client.insert(id.clone(), entry(3));
        let mut f = Fallout::default();
        reg.release(now, &id, 7, None, 0, Some(will(now, 30)), &mut f);
        assert_eq!(f.wills.len(), 1);
        assert_eq!(f.removed_keys, vec![3]);
        assert!(reg.by_client.is_empty());
    }

    #[test]
    fn a_replaced_connection_does_not_release() {
        let now = crate::clock::now();
        let id = MqttStr::from_static("c");
        let mut reg = Registry::default();
        reg.by_client.insert(id.clone(), entry(1));
        let mut f = Fallout::default();
        // Connection 8 is not the owner (7 is).
        reg.release(now, &id, 8, None, 0, Some(will(now, 0)), &mut f);
        assert!(f.wills.is_empty());
        assert!(reg.by_client.contains_key(&id));
    }
}
