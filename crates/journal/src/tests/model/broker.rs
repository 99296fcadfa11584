//! The model of the journal's tests, which is also their driver: it
//! applies each operation as a broker would, gives the entries the broker
//! would append for it, and keeps what must survive a restart.

use std::collections::{BTreeMap, BTreeSet};

use proptest::sample::Index;

use super::*;

/// A copy queued for a session, on the terms it was routed or stated with.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Copy {
    id: u64,
    /// Granted; the copy goes out at the lower of this and the message's.
    qos: QoS,
    retain: bool,
    subscription_ids: Vec<u32>,
    on_subscribe: bool,
}

#[derive(Debug)]
pub(super) struct Flight {
    packet_id: u16,
    copy: Copy,
    /// PUBREC came (QoS 2): PUBREL is what is resent.
    pub(super) released: bool,
}

#[derive(Debug, Default)]
pub(super) struct Sess {
    expiry: u32,
    /// None while connected.
    pub(super) down_at: Option<i64>,
    subscriptions: Vec<(&'static str, SubOptions)>,
    pub(super) queued: Vec<Copy>,
    pub(super) inflight: Vec<Flight>,
    pub(super) inbound: BTreeSet<u16>,
    /// Due time and payload.
    pub(super) will: Option<(i64, String)>,
}

#[derive(Debug)]
struct Stored {
    topic: &'static str,
    qos: QoS,
    payload: String,
    at_ms: i64,
    expiry: Option<u32>,
}

impl Stored {
    fn expired(&self, now_ms: i64) -> bool {
        self.expiry
            .is_some_and(|e| now_ms - self.at_ms >= i64::from(e) * 1000)
    }
}

/// The model, which is also the driver: each operation gives the entries a
/// broker would append for it.
#[derive(Debug)]
pub(super) struct Model {
    pub(super) sessions: BTreeMap<&'static str, Sess>,
    /// Topic -> message id.
    pub(super) retained: BTreeMap<&'static str, u64>,
    messages: BTreeMap<u64, Stored>,
    next_id: u64,
    /// What the sequence reached, for the test that the generator reaches
    /// the intricate states.
    pub(super) seen: BTreeSet<&'static str>,
}

impl Model {
    pub(super) fn new() -> Self {
        Model {
            sessions: BTreeMap::new(),
            retained: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_id: 1,
            seen: BTreeSet::new(),
        }
    }

    fn qos_of(&self, c: &Copy) -> QoS {
        c.qos.min(self.messages[&c.id].qos)
    }

    /// Queues `copy` unless it would go out at QoS 0: an offline mailbox
    /// drops those (section 4.1), so nothing durable owes them.
    fn queue(&mut self, client: &'static str, copy: Copy) {
        if self.qos_of(&copy) != Q0
            && let Some(s) = self.sessions.get_mut(client)
        {
            if s.queued.iter().any(|c| c.id == copy.id) {
                self.seen.insert("two copies of a message");
            }
            s.queued.push(copy);
        }
    }

    /// The broker's timers up to `t`: due wills go out, and offline
    /// sessions past their expiry end (a will still pending goes first
    /// [MQTT-3.1.2-8]).
    pub(super) fn timers(&mut self, t: i64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut ended = Vec::new();
        for (&client, s) in &mut self.sessions {
            let Some(down_at) = s.down_at else { continue };
            let expired = s.expiry != u32::MAX && down_at + i64::from(s.expiry) * 1000 <= t;
            if s.will.as_ref().is_some_and(|(due, _)| *due <= t || expired) {
                s.will = None;
                self.seen.insert(if expired {
                    "a will at expiry"
                } else {
                    "a will due"
                });
                out.push(Entry::WillGone {
                    client: cid(client),
                });
            }
            if expired {
                self.seen.insert("a session expired");
                ended.push(client);
                out.push(Entry::End {
                    client: cid(client),
                });
            }
        }
        for client in ended {
            self.sessions.remove(client);
        }
        out
    }

    pub(super) fn step(&mut self, t: i64, op: &Op) -> Vec<Entry> {
        let name = |c: &usize| CLIENTS[*c];
        match op {
            Op::Up { c, expiry } => {
                let client = name(c);
                self.sessions.remove(client);
                if *expiry > 0 {
                    let expiry = *expiry;
                    self.sessions.insert(
                        client,
                        Sess {
                            expiry,
                            ..Sess::default()
                        },
                    );
                }
                vec![up(client, *expiry)]
            }
            Op::Resume { c, expiry } => {
                let client = name(c);
                let Some(s) = self.sessions.get_mut(client) else {
                    return vec![];
                };
                if s.down_at.is_none() {
                    return vec![];
                }
                if *expiry == 0 {
                    self.sessions.remove(client);
                } else {
                    (s.expiry, s.down_at, s.will) = (*expiry, None, None);
                    self.seen.insert("a resumed session");
                }
                vec![Entry::Resume {
                    client: cid(client),
                    expiry: *expiry,
                }]
            }
            Op::Down { c, expiry, will } => {
                let client = name(c);
                let Some(s) = self.connected(client) else {
                    return vec![];
                };
                (s.expiry, s.down_at) = (*expiry, Some(t));
                let mut out = vec![down(client, *expiry, t)];
                if let Some(delay) = will {
                    let payload = format!("will at {t}");
                    s.will = Some((t + delay, payload.clone()));
                    self.seen.insert("a will");
                    out.push(Entry::Will {
                        client: cid(client),
                        due_ms: t + delay,
                        message: message(0, &format!("wills/{client}"), &payload, Q1, false),
                    });
                }
                out
            }
            Op::End { c } => match self.sessions.remove(name(c)) {
                Some(_) => vec![Entry::End {
                    client: cid(name(c)),
                }],
                None => vec![],
            },
            Op::Subscribe { c, f, options } => self.subscribe(name(c), FILTERS[*f], *options, t),
            Op::Unsubscribe { c, f } => {
                let client = name(c);
                let Some(s) = self.sessions.get_mut(client) else {
                    return vec![];
                };
                s.subscriptions.retain(|(x, _)| *x != FILTERS[*f]);
                vec![unsub(client, FILTERS[*f])]
            }
            Op::Publish(p) => self.publish(p, t),
            Op::Act { act, who, pick } => self.act(*act, who, pick, t),
            Op::Inbound { c, packet_id } => {
                let client = name(c);
                // Held already: the client's resend, not journaled again.
                match self.connected(client) {
                    Some(s) if !s.inbound.contains(packet_id) => {
                        s.inbound.insert(*packet_id);
                        vec![inbound(client, &[*packet_id])]
                    }
                    _ => vec![],
                }
            }
        }
    }

    fn act(&mut self, act: Act, who: &Index, pick: &Index, t: i64) -> Vec<Entry> {
        let can = |s: &Sess| {
            let connected = s.down_at.is_none();
            match act {
                Act::Send => connected && !s.queued.is_empty(),
                Act::Release => {
                    connected && s.inflight.iter().any(|f| f.copy.qos == Q2 && !f.released)
                }
                Act::Complete => connected && !s.inflight.is_empty(),
                Act::Drop => !s.queued.is_empty(),
                Act::InboundDone => connected && !s.inbound.is_empty(),
                Act::WillGone => s.will.is_some(),
            }
        };
        let clients: Vec<&'static str> = self
            .sessions
            .iter()
            .filter(|(_, s)| can(s))
            .map(|(c, _)| *c)
            .collect();
        if clients.is_empty() {
            return vec![];
        }
        let client = clients[who.index(clients.len())];
        let s = self.sessions.get_mut(client).unwrap();
        let flow = |f: &Flight| (f.copy.id, f.packet_id);
        match act {
            Act::Send => {
                let i = pick.index(s.queued.len());
                self.send(client, i, t)
            }
            Act::Release => {
                let mut qos2: Vec<&mut Flight> = s
                    .inflight
                    .iter_mut()
                    .filter(|f| f.copy.qos == Q2 && !f.released)
                    .collect();
                let i = pick.index(qos2.len());
                qos2[i].released = true;
                self.seen.insert("a released flow");
                vec![released(client, &[flow(qos2[i])])]
            }
            Act::Complete => {
                let f = s.inflight.remove(pick.index(s.inflight.len()));
                vec![completed(client, &[flow(&f)])]
            }
            Act::Drop => {
                let copy = s.queued.remove(pick.index(s.queued.len()));
                vec![drop_entry(client, copy)]
            }
            Act::InboundDone => {
                let id = *s.inbound.iter().nth(pick.index(s.inbound.len())).unwrap();
                s.inbound.remove(&id);
                vec![Entry::InboundDone {
                    client: cid(client),
                    packet_ids: vec![id],
                }]
            }
            Act::WillGone => {
                s.will = None;
                vec![Entry::WillGone {
                    client: cid(client),
                }]
            }
        }
    }

    fn connected(&mut self, client: &str) -> Option<&mut Sess> {
        self.sessions
            .get_mut(client)
            .filter(|s| s.down_at.is_none())
    }

    /// The subscription's entry, after a `Pending` for each retained
    /// message it gets [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11].
    fn subscribe(
        &mut self,
        client: &'static str,
        filter: &'static str,
        mut options: SubOptions,
        t: i64,
    ) -> Vec<Entry> {
        let Some(s) = self.sessions.get_mut(client) else {
            return vec![];
        };
        if filter == SHARED {
            options.no_local = false;
        }
        let new = match s.subscriptions.iter_mut().find(|(f, _)| *f == filter) {
            Some(slot) => {
                slot.1 = options;
                false
            }
            None => {
                s.subscriptions.push((filter, options));
                true
            }
        };
        let sends = match options.retain_handling {
            RetainHandling::SendAlways => true,
            RetainHandling::SendIfNew => new,
            RetainHandling::DoNotSend => false,
        };
        let mut out = Vec::new();
        let retained: Vec<u64> = self
            .retained
            .iter()
            .filter(|&(topic, id)| matches(filter, topic) && !self.messages[id].expired(t))
            .map(|(_, &id)| id)
            .collect();
        for id in retained.into_iter().filter(|_| sends && filter != SHARED) {
            let copy = Copy {
                id,
                qos: options.qos,
                retain: true,
                subscription_ids: options.subscription_id.into_iter().collect(),
                on_subscribe: true,
            };
            if self.qos_of(&copy) != Q0 {
                self.seen.insert("a retained copy on subscribing");
                out.push(copy.pending(client));
                self.queue(client, copy);
            }
        }
        out.push(sub(client, filter, options));
        out
    }

    fn publish(&mut self, p: &Publish, t: i64) -> Vec<Entry> {
        let id = self.next_id;
        self.next_id += 1;
        let topic = TOPICS[p.topic];
        let payload = match p.retain && p.clear {
            true => String::new(),
            false => format!("m{id}"),
        };
        let stored = Stored {
            topic,
            qos: p.qos,
            payload: payload.clone(),
            at_ms: t,
            expiry: p.expiry,
        };
        self.messages.insert(id, stored);
        let mut m = message(id, topic, &payload, p.qos, p.retain);
        m.properties.message_expiry_interval = p.expiry;
        // A client publishes while connected; without a session of its
        // own it is not persistent, and its message is anonymous.
        let publisher = Some(CLIENTS[p.from])
            .filter(|c| self.sessions.get(c).is_some_and(|s| s.down_at.is_none()));
        let mut out = Vec::new();

        // Non-shared: one copy per session, on the merged terms of its
        // matching subscriptions (No Local leaves out the publisher's own).
        let mut copies = Vec::new();
        let mut members = Vec::new();
        for (&client, s) in &self.sessions {
            let mut matched: Option<Copy> = None;
            for (filter, o) in &s.subscriptions {
                if !matches(filter, topic) {
                    continue;
                }
                if o.no_local && publisher == Some(client) {
                    self.seen.insert("No Local");
                    continue;
                }
                if *filter == SHARED {
                    members.push((client, *o));
                    continue;
                }
                let c = matched.get_or_insert(Copy {
                    id,
                    qos: Q0,
                    retain: false,
                    subscription_ids: Vec::new(),
                    on_subscribe: false,
                });
                c.qos = c.qos.max(o.qos);
                c.retain |= o.retain_as_published && p.retain;
                c.subscription_ids.extend(o.subscription_id);
            }
            if let Some(mut c) = matched {
                c.subscription_ids.sort_unstable();
                c.subscription_ids.dedup();
                copies.push((client, c));
            }
        }
        // The share group: the live broker states its pick just before the
        // message, in the same append.
        if !members.is_empty() {
            let (client, o) = members[p.pick.index(members.len())];
            self.seen.insert("a share group's pick");
            let c = Copy {
                id,
                qos: o.qos,
                retain: o.retain_as_published && p.retain,
                subscription_ids: o.subscription_id.into_iter().collect(),
                on_subscribe: false,
            };
            out.push(c.pending(client));
            copies.push((client, c));
        }
        for (client, c) in copies {
            self.queue(client, c);
        }

        if p.retain {
            match payload.is_empty() {
                true => self.retained.remove(topic),
                false => self.retained.insert(topic, id),
            };
        }
        out.push(
            match publisher.and_then(|c| Some((c, self.sessions.get_mut(c)?))) {
                Some((client, s)) => {
                    // An inbound QoS 2 id is held until its PUBREL; a resend
                    // under one held is a duplicate, so it is not stored again.
                    let held = p.qos == Q2 && p.packet_id != 0 && s.inbound.insert(p.packet_id);
                    if held {
                        self.seen.insert("an inbound id with its message");
                    }
                    Entry::Published {
                        message: m,
                        client: cid(client),
                        packet_id: if held { p.packet_id } else { 0 },
                    }
                }
                None => Entry::Message(m),
            },
        );
        out
    }

    /// A first send of the `i`-th queued copy of connected `client`, or its
    /// drop if it expired meanwhile [MQTT-3.3.2-5].
    fn send(&mut self, client: &'static str, i: usize, t: i64) -> Vec<Entry> {
        let queued = &self.sessions[client].queued;
        if self.messages[&queued[i].id].expired(t) {
            self.seen.insert("an expired copy dropped");
            let copy = self.sessions.get_mut(client).unwrap().queued.remove(i);
            return vec![drop_entry(client, copy)];
        }
        // Of copies the log cannot tell apart (see the module docs), the
        // earlier goes, as from a queue.
        let terms = |c: &Copy| (c.id, self.qos_of(c), c.retain, c.on_subscribe);
        let same = |c: &Copy| {
            terms(c) == terms(&queued[i]) && c.subscription_ids == queued[i].subscription_ids
        };
        let i = queued.iter().position(same).unwrap_or(i);
        let qos = self.qos_of(&queued[i]);
        let s = self.sessions.get_mut(client).unwrap();
        let mut copy = s.queued.remove(i);
        copy.qos = qos;
        let packet_id = (1..).find(|p| s.inflight.iter().all(|f| f.packet_id != *p));
        let packet_id = packet_id.unwrap();
        let send = Sent {
            id: copy.id,
            packet_id,
            qos,
            retain: copy.retain,
            subscription_ids: copy.subscription_ids.clone(),
            on_subscribe: copy.on_subscribe,
        };
        s.inflight.push(Flight {
            packet_id,
            copy,
            released: false,
        });
        vec![Entry::Sent {
            client: cid(client),
            sends: vec![send],
        }]
    }

    /// Times from `from` on at which something falls due (a session or
    /// message expiry, a will), and a few in between: replay on the very
    /// millisecond is where an off-by-one would show.
    pub(super) fn deadlines(&self, from: i64) -> Vec<i64> {
        let sessions = self.sessions.values().flat_map(|s| {
            let expiry = s.down_at.filter(|_| s.expiry != u32::MAX);
            let expiry = expiry.map(|at| at + i64::from(s.expiry) * 1000);
            expiry.into_iter().chain(s.will.as_ref().map(|w| w.0))
        });
        let messages = self
            .messages
            .values()
            .filter_map(|m| m.expiry.map(|e| m.at_ms + i64::from(e) * 1000));
        let steps = (0..8).map(|n| from + n * 700);
        let mut times: Vec<i64> = sessions
            .chain(messages)
            .filter(|t| *t >= from)
            .chain(steps)
            .collect();
        times.sort_unstable();
        times.dedup();
        times
    }

    /// What replay at `now_ms` must recover. A session still connected
    /// counts as gone down at `now_ms`; one past its expiry is kept only
    /// for a pending will [MQTT-3.1.2-8]; expired messages are not queued
    /// or retained, but stay in flight.
    pub(super) fn expected(&self, now_ms: i64) -> View {
        let sessions = self
            .sessions
            .iter()
            .filter_map(|(&client, s)| {
                let expires_in = match s.expiry {
                    u32::MAX => None,
                    e => {
                        let left = s.down_at.unwrap_or(now_ms) + i64::from(e) * 1000 - now_ms;
                        if left <= 0 && s.will.is_none() {
                            return None;
                        }
                        Some(Duration::from_millis(left.max(0) as u64))
                    }
                };
                let mut queued: Vec<CopyView> = s
                    .queued
                    .iter()
                    .filter(|c| !self.messages[&c.id].expired(now_ms))
                    .map(|c| {
                        let m = &self.messages[&c.id];
                        (
                            c.id,
                            m.topic.to_owned(),
                            self.qos_of(c),
                            c.retain,
                            c.subscription_ids.clone(),
                            c.on_subscribe,
                        )
                    })
                    .collect();
                queued.sort();
                Some(SessionView {
                    client: client.to_owned(),
                    expiry: s.expiry,
                    expires_in,
                    subscriptions: s.subscriptions.iter().map(|(f, o)| (cid(f), *o)).collect(),
                    queued,
                    inflight: s
                        .inflight
                        .iter()
                        .map(|f| {
                            let c = &f.copy;
                            let terms = (c.qos, c.retain, c.subscription_ids.clone());
                            (f.packet_id, c.id, terms, c.on_subscribe, f.released)
                        })
                        .collect(),
                    inbound: s.inbound.iter().copied().collect(),
                    will: s.will.as_ref().map(|(due, payload)| {
                        let left = Duration::from_millis((due - now_ms).max(0) as u64);
                        (left, format!("wills/{client}"), payload.clone())
                    }),
                })
            })
            .collect();
        let retained = self
            .retained
            .values()
            .map(|id| (id, &self.messages[id]))
            .filter(|(_, m)| !m.expired(now_ms))
            .map(|(&id, m)| (m.topic.to_owned(), id, m.payload.clone()))
            .collect();
        View {
            sessions,
            retained,
            next_id: self.next_id,
        }
    }
}

impl Copy {
    fn pending(&self, client: &str) -> Entry {
        Entry::Pending {
            client: cid(client),
            id: self.id,
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids.clone(),
            on_subscribe: self.on_subscribe,
        }
    }
}

fn drop_entry(client: &str, c: Copy) -> Entry {
    Entry::Dropped {
        client: cid(client),
        copies: vec![Unsent {
            id: c.id,
            qos: c.qos,
            retain: c.retain,
            subscription_ids: c.subscription_ids,
            on_subscribe: c.on_subscribe,
        }],
    }
}
