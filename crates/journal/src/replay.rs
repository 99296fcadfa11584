//! Replay (the log to [`Recovered`]) and compaction (a [`Recovered`] to a
//! fresh log). See the parent module for the entries and their format.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_codec::{MqttStr, PublishProps, QoS};
use strata_router::{Router, ShareStrategy, SubOptions};
use strata_session::{Delivery, Message, Outbound, OutboundPhase};
use strata_store::{Log, NewRecord, ReadLimits};

use super::{
    Entry, Flow, JournalError, Recovered, RecoveredSession, Sent, decode, encode, encode_message,
};

/// Records read at once by [`replay`].
const REPLAY_CHUNK: ReadLimits = ReadLimits {
    max_records: 4096,
    max_bytes: 8 << 20,
};

/// Reads the whole log and rebuilds the state; see the module docs.
/// Sessions still connected when the log ends count as disconnected at
/// `now_ms`.
pub fn replay(
    log: &Log,
    share: ShareStrategy,
    now: Instant,
    now_ms: i64,
) -> Result<Recovered, JournalError> {
    replay_in_chunks(log, share, now, now_ms, REPLAY_CHUNK)
}

/// The state after the records before offset `end`, while the broker
/// runs: for a compaction of that prefix, after which the records from
/// `end` on still apply. Unlike [`replay`], sessions still connected stay
/// connected (`RecoveredSession::connected`) and no session is dropped for
/// having expired: the live broker journals those ends itself.
pub fn replay_prefix(
    log: &Log,
    share: ShareStrategy,
    end: u64,
    now: Instant,
    now_ms: i64,
) -> Result<Recovered, JournalError> {
    replay_until(log, share, end, true, now, now_ms, REPLAY_CHUNK)
}

pub(super) fn replay_in_chunks(
    log: &Log,
    share: ShareStrategy,
    now: Instant,
    now_ms: i64,
    limits: ReadLimits,
) -> Result<Recovered, JournalError> {
    replay_until(log, share, u64::MAX, false, now, now_ms, limits)
}

fn replay_until(
    log: &Log,
    share: ShareStrategy,
    end: u64,
    prefix: bool,
    now: Instant,
    now_ms: i64,
    limits: ReadLimits,
) -> Result<Recovered, JournalError> {
    let mut state = Replay::new(share);
    let mut records = 0;
    let mut from = log.first_offset();
    'chunks: loop {
        let chunk = log.read(from, limits)?;
        let Some(last) = chunk.last() else { break };
        from = last.offset + 1;
        for record in &chunk {
            if record.offset >= end {
                break 'chunks;
            }
            state.apply(decode(record, now, now_ms)?)?;
            records += 1;
        }
    }
    Ok(state.finish(now, now_ms, records, prefix))
}

/// A `Pending` waiting for its message: client, QoS, RETAIN,
/// subscription ids.
type Pick = (MqttStr, QoS, bool, Vec<u32>);

/// One session during replay.
#[derive(Debug)]
struct Held {
    client: MqttStr,
    expiry: u32,
    /// When it went offline; `None` while connected.
    down_at: Option<i64>,
    subscriptions: Vec<(MqttStr, SubOptions)>,
    /// By message id: usually one copy, two or more when a shared and a
    /// non-shared subscription (or two share groups) both chose this
    /// session (section 4.8.2).
    pending: BTreeMap<u64, Vec<Delivery>>,
    /// In the order first sent.
    inflight: Vec<Outbound>,
    inbound: BTreeSet<u16>,
    /// A pending delayed will: due time (ms since the epoch) and message.
    will: Option<(i64, Message)>,
}

#[derive(Debug)]
struct Replay {
    router: Router<u64, Arc<Message>>,
    /// By router key; a session gets a new key at each `Up`.
    sessions: HashMap<u64, Held>,
    keys: HashMap<MqttStr, u64>,
    next_key: u64,
    retained: BTreeMap<MqttStr, Arc<Message>>,
    /// Every retained message of the log, by id, replaced or not: a
    /// retained message queued for a new subscription is stated by id (a
    /// flagged `Pending`), and the copy may wait in the session's queue
    /// while the topic's retained message is replaced many times.
    retained_by_id: HashMap<u64, Arc<Message>>,
    /// `Pending` entries written before their message (share-group picks),
    /// by message id; left over when a torn append lost the message.
    early: HashMap<u64, Vec<Pick>>,
    /// The latest message, which `Pending` entries refer to.
    latest: Option<Arc<Message>>,
    max_id: u64,
    routed: Vec<strata_router::Delivery<u64>>,
}

impl Replay {
    fn new(share: ShareStrategy) -> Self {
        Replay {
            // The seed only steers Random and Sticky groups, whose live
            // choices replay cannot know anyway.
            router: Router::new(share, 0),
            sessions: HashMap::new(),
            keys: HashMap::new(),
            next_key: 0,
            retained: BTreeMap::new(),
            retained_by_id: HashMap::new(),
            early: HashMap::new(),
            latest: None,
            max_id: 0,
            routed: Vec::new(),
        }
    }

    fn session(&mut self, client: &MqttStr) -> Option<&mut Held> {
        self.sessions.get_mut(self.keys.get(client)?)
    }

    fn end(&mut self, client: &MqttStr) {
        if let Some(key) = self.keys.remove(client) {
            self.sessions.remove(&key);
            self.router.remove_all(key);
        }
    }

    /// Entries about a client without a session (ended, or never
    /// persistent) change nothing: an ended session comes back only with
    /// a new `Up`.
    fn apply(&mut self, entry: Entry) -> Result<(), JournalError> {
        match entry {
            Entry::Message(m) => self.message(m, None),
            Entry::Published {
                message,
                client,
                packet_id,
            } => {
                let publisher = self.keys.get(&client).copied();
                self.message(message, publisher);
                if packet_id != 0
                    && let Some(s) = self.session(&client)
                {
                    s.inbound.insert(packet_id);
                }
            }
            Entry::Up { client, expiry } => {
                self.end(&client);
                if expiry > 0 {
                    let key = self.next_key;
                    self.next_key += 1;
                    self.keys.insert(client.clone(), key);
                    let held = Held {
                        client,
                        expiry,
                        down_at: None,
                        subscriptions: Vec::new(),
                        pending: BTreeMap::new(),
                        inflight: Vec::new(),
                        inbound: BTreeSet::new(),
                        will: None,
                    };
                    self.sessions.insert(key, held);
                }
            }
            Entry::Resume { client, expiry: 0 } | Entry::End { client } => self.end(&client),
            Entry::Resume { client, expiry } => {
                if let Some(s) = self.session(&client) {
                    s.expiry = expiry;
                    s.down_at = None;
                    // [MQTT-3.1.3-9]: resuming cancels a delayed will.
                    s.will = None;
                }
            }
            Entry::Down {
                client,
                expiry,
                at_ms,
            } => {
                if let Some(s) = self.session(&client) {
                    s.expiry = expiry;
                    s.down_at = Some(at_ms);
                }
            }
            Entry::Subscribe {
                client,
                filter,
                options,
            } => {
                let Some(&key) = self.keys.get(&client) else {
                    return Ok(());
                };
                let Some(s) = self.sessions.get_mut(&key) else {
                    return Ok(());
                };
                // [MQTT-3.8.4-3]: the same filter replaces, in place.
                match s.subscriptions.iter_mut().find(|(f, _)| *f == filter) {
                    Some(slot) => slot.1 = options,
                    None => s.subscriptions.push((filter.clone(), options)),
                }
                self.router.subscribe(key, &filter, options);
            }
            Entry::Unsubscribe { client, filter } => {
                let Some(&key) = self.keys.get(&client) else {
                    return Ok(());
                };
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.subscriptions.retain(|(f, _)| *f != filter);
                }
                self.router.unsubscribe(key, &filter);
            }
            Entry::IdMark { ids } => {
                if let Some(&max) = ids.iter().max() {
                    self.max_id = self.max_id.max(max);
                }
            }
            Entry::Dropped { client, copies } => {
                if let Some(s) = self.session(&client) {
                    for c in copies {
                        // The copy on these terms, and no other (a retained
                        // message queued on subscribing is only ever that
                        // copy).
                        take_pending(s, c.id, |d| c.is(d));
                    }
                }
            }
            Entry::Completed { client, flows } => {
                if let Some(s) = self.session(&client) {
                    for f in flows {
                        s.inflight.retain(|o| {
                            (o.delivery.message.id, o.packet_id) != (f.id, f.packet_id)
                        });
                    }
                }
            }
            Entry::Sent { client, sends } => {
                let Some(&key) = self.keys.get(&client) else {
                    return Ok(());
                };
                let Some(s) = self.sessions.get_mut(&key) else {
                    return Ok(());
                };
                for sent in sends {
                    // Pending until now: of two copies, the one on these
                    // terms.
                    let terms = |d: &Delivery| {
                        d.effective_qos() == sent.qos
                            && d.retain == sent.retain
                            && d.subscription_ids == sent.subscription_ids
                    };
                    // A retained message sent on subscribing takes only the
                    // copy queued on subscribing (a routed one on the same
                    // terms stays); any other send takes a routed copy, on
                    // its terms if one is. No copy: nothing was sent.
                    let copy = if sent.on_subscribe {
                        take_pending(s, sent.id, |d| d.on_subscribe && terms(d))
                    } else {
                        take_pending(s, sent.id, |d| !d.on_subscribe && terms(d))
                            .or_else(|| take_pending(s, sent.id, |d| !d.on_subscribe))
                    };
                    let Some(Delivery { message, .. }) = copy else {
                        continue;
                    };
                    // An id in flight twice can only be a stale flow.
                    s.inflight.retain(|o| o.packet_id != sent.packet_id);
                    s.inflight.push(Outbound {
                        packet_id: sent.packet_id,
                        delivery: Delivery {
                            message,
                            qos: sent.qos,
                            retain: sent.retain,
                            subscription_ids: sent.subscription_ids,
                            on_subscribe: sent.on_subscribe,
                        },
                        qos: sent.qos,
                        phase: OutboundPhase::Published,
                    });
                }
            }
            Entry::Released { client, flows } => {
                if let Some(s) = self.session(&client) {
                    for f in flows {
                        if let Some(o) = s.inflight.iter_mut().find(|o| {
                            (o.delivery.message.id, o.packet_id) == (f.id, f.packet_id)
                                && o.phase == OutboundPhase::Published
                        }) {
                            o.phase = OutboundPhase::Released;
                        }
                    }
                }
            }
            Entry::Will {
                client,
                due_ms,
                message,
            } => {
                if let Some(s) = self.session(&client) {
                    s.will = Some((due_ms, message));
                }
            }
            Entry::WillGone { client } => {
                if let Some(s) = self.session(&client) {
                    s.will = None;
                }
            }
            Entry::Inbound { client, packet_ids } => {
                if let Some(s) = self.session(&client) {
                    s.inbound.extend(packet_ids);
                }
            }
            Entry::InboundDone { client, packet_ids } => {
                if let Some(s) = self.session(&client) {
                    for id in packet_ids {
                        s.inbound.remove(&id);
                    }
                }
            }
            Entry::Pending {
                client,
                id,
                qos,
                retain,
                subscription_ids,
                on_subscribe,
            } => {
                let message = if on_subscribe {
                    // A retained message queued for a new subscription: any
                    // retained message of the log, by id (void if none).
                    match self.retained_by_id.get(&id) {
                        Some(m) => m.clone(),
                        None => return Ok(()),
                    }
                } else {
                    match &self.latest {
                        Some(m) if m.id == id => m.clone(),
                        // A share group's pick, stated just before its
                        // message: applied when the message comes (never,
                        // if a torn append lost it).
                        _ => {
                            let d = (client, qos, retain, subscription_ids);
                            self.early.entry(id).or_default().push(d);
                            return Ok(());
                        }
                    }
                };
                if let Some(s) = self.session(&client) {
                    let d = Delivery {
                        message,
                        qos,
                        retain,
                        subscription_ids,
                        on_subscribe,
                    };
                    keep_pending(s, d);
                }
            }
        }
        Ok(())
    }

    /// What `Shared::publish` does with a stored message; `publisher` is
    /// the router key of the publishing session, for No Local.
    fn message(&mut self, m: Message, publisher: Option<u64>) {
        self.max_id = self.max_id.max(m.id);
        let m = Arc::new(m);
        if m.retain {
            // [MQTT-3.3.1-5]..[MQTT-3.3.1-7]: empty clears, else replaces.
            if m.payload.is_empty() {
                self.retained.remove(&m.topic);
            } else {
                self.retained_by_id.insert(m.id, m.clone());
                self.retained.insert(m.topic.clone(), m.clone());
            }
        }
        // [MQTT-3.8.3-3]: No Local, as live routing applied it.
        self.router.route(&m.topic, publisher, &mut self.routed);
        for r in self.routed.drain(..) {
            if r.share_group.is_some() {
                // The live broker's pick follows as a `Pending` entry.
                continue;
            }
            let Some(s) = self.sessions.get_mut(&r.key) else {
                continue;
            };
            keep_pending(s, crate::delivery(&m, r));
        }
        for (client, qos, retain, subscription_ids) in self.early.remove(&m.id).unwrap_or_default()
        {
            if let Some(s) = self.session(&client) {
                let d = Delivery {
                    message: m.clone(),
                    qos,
                    retain,
                    subscription_ids,
                    on_subscribe: false,
                };
                keep_pending(s, d);
            }
        }
        self.latest = Some(m);
    }

    /// `prefix`: see [`replay_prefix`].
    fn finish(self, now: Instant, now_ms: i64, records: u64, prefix: bool) -> Recovered {
        let mut sessions: Vec<RecoveredSession> = self
            .sessions
            .into_values()
            .filter_map(|s| {
                let expires_in = match s.expiry {
                    0 => return None,
                    u32::MAX => None,
                    e => {
                        // Still connected: disconnected now. A down time in
                        // the future (the clock stepped back) counts as now.
                        let since = s.down_at.map_or(now_ms, |at| at.min(now_ms));
                        let left = i128::from(since) + i128::from(e) * 1000 - i128::from(now_ms);
                        // An expired session with a delayed will is kept,
                        // expired, so that the will still goes out when
                        // the broker ends it [MQTT-3.1.2-8].
                        if left <= 0 && !prefix && s.will.is_none() {
                            return None;
                        }
                        let left = left.max(0);
                        Some(Duration::from_millis(
                            u64::try_from(left).unwrap_or(u64::MAX),
                        ))
                    }
                };
                Some(RecoveredSession {
                    connected: prefix && s.down_at.is_none(),
                    client_id: s.client,
                    expiry: s.expiry,
                    expires_in,
                    subscriptions: s.subscriptions,
                    pending: s
                        .pending
                        .into_values()
                        .flatten()
                        .filter(|d| !d.message.is_expired(now))
                        .collect(),
                    // In flight stays in flight, expired or not: the client
                    // may hold it already.
                    inflight: s.inflight,
                    inbound: s.inbound.into_iter().collect(),
                    will: s.will.map(|(due_ms, m)| {
                        let left = u64::try_from(due_ms.saturating_sub(now_ms)).unwrap_or(0);
                        (Duration::from_millis(left), m)
                    }),
                })
            })
            .collect();
        sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Recovered {
            sessions,
            retained: self
                .retained
                .into_values()
                .filter(|m| !m.is_expired(now))
                .collect(),
            next_id: self.max_id.saturating_add(1),
            records,
        }
    }
}

/// Keeps a delivery for an offline session. QoS 0 is not kept: an offline
/// mailbox drops it (section 4.1), and after a restart every session is
/// offline; the live broker stores a message only for QoS 1/2 receivers.
fn keep_pending(s: &mut Held, d: Delivery) {
    if d.effective_qos() != QoS::AtMostOnce {
        s.pending.entry(d.message.id).or_default().push(d);
    }
}

/// Takes the first pending copy of message `id` that `pick`s.
fn take_pending(s: &mut Held, id: u64, pick: impl Fn(&Delivery) -> bool) -> Option<Delivery> {
    let copies = s.pending.get_mut(&id)?;
    let i = copies.iter().position(pick)?;
    let d = copies.remove(i);
    if copies.is_empty() {
        s.pending.remove(&id);
    }
    Some(d)
}

/// Writes `r` as a short sequence of entries such that replaying them gives
/// an equal [`Recovered`] (with `next_id` at least `r.next_id`). Used at
/// start-up to compact the log into a fresh directory. Message receive
/// times are converted with the monotonic clock read now, so pass the wall
/// clock read now as `now_ms`.
pub fn compact_into(r: &Recovered, log: &Log, now_ms: i64) -> Result<(), JournalError> {
    compact_at(r, log, Instant::now(), now_ms)
}

/// The sessions holding one message, and on what terms.
type Holders<'a> = Vec<(&'a MqttStr, &'a Delivery)>;

/// [`compact_into`] at a given pair of clocks.
///
/// Order: every session's `Up`; each pending message once (id order), each
/// followed by a `Pending` per holder; then clears for topics those
/// messages would leave retained; the retained messages (with their
/// `Pending`s); then each session's subscriptions and `Down`. No
/// subscription exists while messages are replayed, so replay routes
/// nothing and takes the deliveries as stated.
pub(super) fn compact_at(
    r: &Recovered,
    log: &Log,
    now: Instant,
    now_ms: i64,
) -> Result<(), JournalError> {
    let mut out = Batch::new(log);
    let received_ms = |m: &Message| {
        let age = now.saturating_duration_since(m.received).as_millis();
        now_ms.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX))
    };
    // Message id -> the message and who holds it.
    let mut held: BTreeMap<u64, (&Arc<Message>, Holders)> = BTreeMap::new();
    for s in &r.sessions {
        out.push(encode(
            &Entry::Up {
                client: s.client_id.clone(),
                expiry: s.expiry,
            },
            now_ms,
        ))?;
        // In-flight messages are written as pending, and `Sent` later
        // takes them into flight in their order (a retained message sent
        // on subscribing as such a copy: its `Pending` has bit 3). They
        // come first: `Sent` takes the first copy on its terms, and a
        // pending copy granted a higher QoS than the message's can have
        // the same effective terms as one in flight.
        let inflight = s.inflight.iter().map(|o| &o.delivery);
        for d in inflight.chain(&s.pending) {
            let entry = held.entry(d.message.id).or_insert((&d.message, Vec::new()));
            entry.1.push((&s.client_id, d));
        }
    }
    let write = |out: &mut Batch, m: &Message, holders: &[(&MqttStr, &Delivery)]| {
        out.push(encode_message(m, received_ms(m), None))?;
        for (client, d) in holders {
            let pending = Entry::Pending {
                client: (*client).clone(),
                id: m.id,
                qos: d.qos,
                retain: d.retain,
                subscription_ids: d.subscription_ids.clone(),
                on_subscribe: d.on_subscribe,
            };
            out.push(encode(&pending, now_ms))?;
        }
        Ok::<_, JournalError>(m.id)
    };
    // The highest id written.
    let mut written = 0;
    let retained_ids: HashSet<u64> = r.retained.iter().map(|m| m.id).collect();
    let retained_topics: HashSet<&str> = r.retained.iter().map(|m| m.topic.as_str()).collect();
    let mut stale = BTreeSet::new();
    for (id, (m, holders)) in &held {
        if retained_ids.contains(id) {
            continue;
        }
        written = written.max(write(&mut out, m, holders)?);
        if m.retain && !m.payload.is_empty() && !retained_topics.contains(m.topic.as_str()) {
            stale.insert(m.topic.clone());
        }
    }
    // A pending message that was retained once must not come back as the
    // retained message of a topic since cleared: clear it again, with ids
    // no earlier message had.
    let fresh = r.next_id.max(written.saturating_add(1));
    for (id, topic) in (fresh..).zip(stale) {
        let clear = Message {
            topic,
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: PublishProps::new(),
            received: now,
            id,
        };
        written = written.max(write(&mut out, &clear, &[])?);
    }
    for m in &r.retained {
        let holders = held.get(&m.id).map_or(&[][..], |(_, h)| &h[..]);
        written = written.max(write(&mut out, m, holders)?);
    }
    for s in &r.sessions {
        for (filter, options) in &s.subscriptions {
            let sub = Entry::Subscribe {
                client: s.client_id.clone(),
                filter: filter.clone(),
                options: *options,
            };
            out.push(encode(&sub, now_ms))?;
        }
        let client = &s.client_id;
        if !s.inflight.is_empty() {
            let sends = s
                .inflight
                .iter()
                .map(|o| Sent::of(o.packet_id, &o.delivery))
                .collect();
            out.push(encode(
                &Entry::Sent {
                    client: client.clone(),
                    sends,
                },
                now_ms,
            ))?;
            let flows: Vec<Flow> = s
                .inflight
                .iter()
                .filter(|o| o.phase == OutboundPhase::Released)
                .map(|o| Flow {
                    id: o.delivery.message.id,
                    packet_id: o.packet_id,
                })
                .collect();
            if !flows.is_empty() {
                let released = Entry::Released {
                    client: client.clone(),
                    flows,
                };
                out.push(encode(&released, now_ms))?;
            }
        }
        if !s.inbound.is_empty() {
            let inbound = Entry::Inbound {
                client: client.clone(),
                packet_ids: s.inbound.clone(),
            };
            out.push(encode(&inbound, now_ms))?;
        }
        if s.connected {
            // No Down: replay leaves it connected, for the records after
            // the compacted prefix.
            continue;
        }
        // Down at the time that leaves `expires_in` from now_ms.
        let at_ms = match s.expires_in {
            None => now_ms,
            Some(left) => {
                // At most about 1.8e22 ms: exact in an i128.
                let at =
                    i128::from(now_ms) + left.as_millis() as i128 - i128::from(s.expiry) * 1000;
                i64::try_from(at).unwrap_or(if at < 0 { i64::MIN } else { i64::MAX })
            }
        };
        let down = Entry::Down {
            client: s.client_id.clone(),
            expiry: s.expiry,
            at_ms,
        };
        out.push(encode(&down, now_ms))?;
        if let Some((left, message)) = &s.will {
            let due_ms = now_ms.saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX));
            let will = Entry::Will {
                client: s.client_id.clone(),
                due_ms,
                message: message.clone(),
            };
            out.push(encode(&will, now_ms))?;
        }
    }
    if r.next_id > written.saturating_add(1) {
        // Keeps ids from being handed out twice: an id mark counts toward
        // next_id.
        let mark = Entry::IdMark {
            ids: vec![r.next_id - 1],
        };
        out.push(encode(&mark, now_ms))?;
    }
    out.flush()
}

/// Appends records in batches, each waited for.
struct Batch<'a> {
    log: &'a Log,
    records: Vec<NewRecord>,
    bytes: u64,
}

impl<'a> Batch<'a> {
    const MAX_RECORDS: usize = 4096;
    const MAX_BYTES: u64 = 4 << 20;

    fn new(log: &'a Log) -> Self {
        Batch {
            log,
            records: Vec::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, r: NewRecord) -> Result<(), JournalError> {
        self.bytes += r.encoded_len();
        self.records.push(r);
        if self.records.len() >= Self::MAX_RECORDS || self.bytes >= Self::MAX_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), JournalError> {
        if !self.records.is_empty() {
            self.log.append(std::mem::take(&mut self.records))?;
            self.bytes = 0;
        }
        Ok(())
    }
}
