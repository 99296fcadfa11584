//! Routing: the topic router (subscriptions, retained messages) and the
//! mailbox of every session it delivers into, behind [`Routes`].
//!
//! Lock order: the router, then the mailbox map (read). The registry lock
//! is never held with either (see `registry.rs`).

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use strata_codec::{MqttStr, QoS, ReasonCode, Subscription, topic};
use strata_journal::{Entry, Unsent, delivery};
use strata_router::{Router, ShareStrategy, SubOptions};
use strata_session::{Delivery, Message};
use tokio::sync::oneshot;

use crate::journal::Journal;
use crate::mailbox::{Mailbox, Push};
use crate::util::{IdMap, lock};

thread_local! {
    /// The matches of one publish, kept for the next one on this thread.
    static MATCHES: std::cell::Cell<Vec<strata_router::Delivery<u64>>> =
        const { std::cell::Cell::new(Vec::new()) };
}

/// What [`Routes::publish_with`] did.
#[derive(Debug)]
pub(crate) struct Published {
    /// Deliveries queued.
    pub delivered: usize,
    /// The completion will be called: the message is being stored.
    pub waiting: bool,
    /// A congested receiver to wait for.
    pub congested: Option<Arc<Mailbox>>,
}

/// The session a SUBSCRIBE or UNSUBSCRIBE is for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscriber<'a> {
    /// Its router key.
    pub key: u64,
    /// Its client id, when the journal keeps its subscriptions (a
    /// persistent session with a data directory).
    pub journaled: Option<&'a MqttStr>,
    /// How many subscriptions it may hold (`limits.max_subscriptions`; 0:
    /// no limit). A SUBSCRIBE past it is refused filter by filter.
    pub max_subscriptions: usize,
}

/// What a SUBSCRIBE did ([`Routes::subscribe`]).
#[derive(Debug)]
pub(crate) struct Subscribed {
    /// The SUBACK's codes, one per filter.
    pub codes: Vec<ReasonCode>,
    /// Retained messages for the new subscriptions, to deliver after the
    /// SUBACK.
    pub retained: Vec<Delivery>,
    /// The journal append the SUBACK waits for.
    pub barrier: Option<oneshot::Receiver<bool>>,
}

#[derive(Debug)]
pub(crate) struct Routes {
    router: Mutex<Router<u64, Arc<Message>>>,
    /// Router key to mailbox, read on every publish.
    mailboxes: RwLock<IdMap<Arc<Mailbox>>>,
}

impl Routes {
    pub fn new(share: ShareStrategy, seed: u64) -> Routes {
        Routes {
            router: Mutex::new(Router::new(share, seed)),
            mailboxes: RwLock::new(IdMap::default()),
        }
    }

    /// The router, for restore and the `$SYS` counts.
    pub fn router(&self) -> MutexGuard<'_, Router<u64, Arc<Message>>> {
        lock(&self.router)
    }

    /// Delivers to `mailbox` what is routed to `key` from now on.
    pub fn add_mailbox(&self, key: u64, mailbox: Arc<Mailbox>) {
        self.mailboxes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, mailbox);
    }

    /// Removes the subscriptions and mailboxes of ended sessions.
    pub fn remove(&self, keys: &[u64]) {
        if keys.is_empty() {
            return;
        }
        {
            let mut router = lock(&self.router);
            for &k in keys {
                router.remove_all(k);
            }
        }
        let mut mailboxes = self.mailboxes.write().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            mailboxes.remove(k);
        }
    }

    /// Tells every connected session the broker is shutting down.
    pub fn shut_all(&self) {
        for mb in self
            .mailboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            mb.shut();
        }
    }

    /// Routes `message` to every matching subscriber's mailbox and, with a
    /// data directory (`journal`), stores the message
    /// when it must survive a restart: retained (when `durable` is set), or
    /// QoS 1/2 with a persistent session among the receivers. Then `done`
    /// runs once the message is durable (`true`) or could not be stored
    /// (`false`), and the second value returned is `true`; otherwise `done`
    /// is dropped and it is `false`. The message is appended before any
    /// subscriber sees it, so every later journal entry about it follows it.
    /// `congested` names a receiving mailbox (not the publisher's own) the
    /// publisher should wait on before reading more (see `mailbox.rs`).
    /// `from` (a persistent publisher's client id and inbound QoS 2 packet
    /// id, or 0) goes into the stored record with the message.
    ///
    /// Lock order: router, then mailboxes (read).
    pub fn publish_with(
        &self,
        journal: &Journal,
        mut message: Message,
        publisher: Option<u64>,
        from: Option<(&MqttStr, u16)>,
        durable: bool,
        done: impl FnOnce(bool) + Send + 'static,
    ) -> Published {
        let mut matches = MATCHES.take();
        let mut router = lock(&self.router);
        router.route(&message.topic, publisher, &mut matches);
        let mailboxes = self.mailboxes.read().unwrap_or_else(|e| e.into_inner());
        // Stored when it must survive a restart: retained, or QoS 1/2 with
        // a persistent session among the receivers.
        let store = durable
            && journal.is_on()
            && (message.retain
                || (message.qos != QoS::AtMostOnce
                    && matches.iter().any(|m| {
                        m.qos != QoS::AtMostOnce
                            && mailboxes.get(&m.key).is_some_and(|mb| mb.is_persistent())
                    })));
        if store && let Some(id) = journal.next_message_id() {
            message.id = id;
        }
        let message = Arc::new(message);
        if message.retain {
            // [MQTT-3.3.1-5]..[MQTT-3.3.1-7] (3.1.1: [MQTT-3.3.1-10]
            // [MQTT-3.3.1-11]): an empty payload clears, anything else
            // replaces. The kept copy has allocations of its own: a slice
            // would hold the publisher's whole read buffer for as long as
            // the message stays retained.
            let keep = (!message.payload.is_empty()).then(|| {
                Arc::new(Message {
                    topic: message.topic.detach(),
                    payload: Bytes::copy_from_slice(&message.payload),
                    ..(*message).clone()
                })
            });
            router.set_retained(&message.topic, keep);
        }
        let waiting = if store {
            // Which member of a share group got the message is the
            // router's choice of the moment, which replay cannot make
            // again: it is stated, in the message's append.
            let chosen = matches
                .iter()
                .filter(|m| m.share_group.is_some() && m.qos != QoS::AtMostOnce)
                .filter_map(|m| {
                    let mb = mailboxes.get(&m.key).filter(|mb| mb.is_persistent())?;
                    Some(Entry::Pending {
                        client: mb.client.clone(),
                        id: message.id,
                        qos: m.qos,
                        retain: m.retain_as_published && message.retain,
                        subscription_ids: m.subscription_ids.clone(),
                        on_subscribe: false,
                    })
                })
                .collect();
            journal.record_message_then(&message, from, chosen, done)
        } else {
            false
        };
        drop(router);
        let mut published = Published {
            delivered: 0,
            waiting,
            congested: None,
        };
        for m in matches.drain(..) {
            let Some(mb) = mailboxes.get(&m.key) else {
                continue;
            };
            let key = m.key;
            match mb.push(delivery(&message, m)) {
                Push::Dropped(d) => {
                    // A stored copy this session will never get: the
                    // journal must say so, or a restart brings it back (a
                    // QoS 0 copy is never kept for one).
                    if message.id != 0 && d.effective_qos() != QoS::AtMostOnce && mb.is_persistent()
                    {
                        let client = mb.client.clone();
                        let copies = vec![strata_journal::Unsent::of(d)];
                        journal.record(|| Entry::Dropped { client, copies });
                    }
                    continue;
                }
                Push::First => mb.wake(),
                Push::Congested if publisher != Some(key) => {
                    published.congested.get_or_insert_with(|| mb.clone());
                }
                Push::Congested | Push::Queued => {}
            }
            published.delivered += 1;
        }
        // A rare huge fan-out does not pin its buffer to the thread.
        if matches.capacity() <= 4096 {
            MATCHES.set(matches);
        }
        published
    }

    /// Adds the subscriptions of one SUBSCRIBE (the filters the session
    /// and the authorizer granted, with their options) and finds the
    /// retained messages they are owed, those `deliver` allows.
    pub fn subscribe(
        &self,
        journal: &Journal,
        Subscriber {
            key,
            journaled,
            max_subscriptions,
        }: Subscriber<'_>,
        subscription_id: Option<u32>,
        filters: &[Subscription],
        granted: Vec<Result<QoS, ReasonCode>>,
        deliver: impl Fn(&str) -> bool,
    ) -> Subscribed {
        let mut codes = Vec::with_capacity(filters.len());
        let mut retained = Vec::new();
        // The subscriptions and the retained messages they are owed, for a
        // persistent session's journal.
        let mut entries = Vec::new();
        let mut router = lock(&self.router);
        for (f, g) in filters.iter().zip(granted) {
            let qos = match g {
                Ok(q) => q,
                Err(code) => {
                    codes.push(code);
                    continue;
                }
            };
            // A session at its limit may replace its subscriptions, not add
            // one (0x97 Quota exceeded; 3.1.1: 0x80).
            if max_subscriptions > 0 {
                let (held, replaces) = router.subscriptions_held(key, &f.filter);
                if held >= max_subscriptions && !replaces {
                    codes.push(ReasonCode::QuotaExceeded);
                    continue;
                }
            }
            let opts = SubOptions {
                qos,
                no_local: f.options.no_local,
                retain_as_published: f.options.retain_as_published,
                retain_handling: f.options.retain_handling,
                subscription_id,
            };
            // [MQTT-3.8.4-3]: an identical filter replaces the old one.
            let existed = router.subscribe(key, &f.filter, opts);
            codes.push(match qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            // Retained messages for the new subscription [MQTT-3.3.1-9]
            // [MQTT-3.3.1-10] [MQTT-3.3.1-11]; none for a shared one.
            use strata_codec::packet::RetainHandling::*;
            let send = match f.options.retain_handling {
                SendAlways => true,
                SendIfNew => !existed,
                DoNotSend => false,
            };
            let parsed = topic::parse_filter(&f.filter);
            if send
                && let Ok(p) = parsed
                && p.share_group.is_none()
            {
                let mut found = Vec::new();
                router.retained_matching(p.filter, &mut found);
                for (topic, message) in found {
                    if !deliver(&topic) {
                        continue;
                    }
                    let d = Delivery {
                        message,
                        qos,
                        retain: true, // [MQTT-3.3.1-8]
                        subscription_ids: subscription_id.into_iter().collect(),
                        on_subscribe: true,
                    };
                    // A copy the session may hold past a restart.
                    if let Some(client) = journaled
                        && d.message.id != 0
                        && d.effective_qos() != QoS::AtMostOnce
                    {
                        entries.push(Unsent::of(d.clone()).pending(client));
                    }
                    retained.push(d);
                }
            }
            // After its retained copies: a torn append keeps a prefix, and
            // copies owed without their subscription (whose SUBACK never
            // went out: the client subscribes again) are better than the
            // reverse.
            if let Some(client) = journaled {
                entries.push(Entry::Subscribe {
                    client: client.clone(),
                    filter: f.filter.clone(),
                    options: opts,
                });
            }
        }
        // Under the router lock: their place among the stored messages is
        // the router's, and the copies' sends and drops (the connection's
        // next append) come after them.
        let barrier = journal.record_waited(&entries);
        drop(router);
        Subscribed {
            codes,
            retained,
            barrier,
        }
    }

    /// Removes the subscriptions of one UNSUBSCRIBE; returns the
    /// UNSUBACK's codes and the journal append it waits for.
    pub fn unsubscribe(
        &self,
        journal: &Journal,
        Subscriber { key, journaled, .. }: Subscriber<'_>,
        filters: &[MqttStr],
    ) -> (Vec<ReasonCode>, Option<oneshot::Receiver<bool>>) {
        let mut entries = Vec::new();
        let mut router = lock(&self.router);
        let codes = filters
            .iter()
            .map(|f| {
                if !router.unsubscribe(key, f) {
                    return ReasonCode::NoSubscriptionExisted;
                }
                if let Some(client) = journaled {
                    entries.push(Entry::Unsubscribe {
                        client: client.clone(),
                        filter: f.clone(),
                    });
                }
                ReasonCode::Success
            })
            .collect();
        // Under the router lock: its place among the stored messages is the
        // router's.
        let barrier = journal.record_waited(&entries);
        drop(router);
        (codes, barrier)
    }
}
