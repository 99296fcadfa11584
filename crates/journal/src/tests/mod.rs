//! The journal on a real log over `SimStorage`: the bytes (`format`),
//! replay against what live routing does (`replay`), and compaction
//! (`compaction`), and all of it against a model of what must survive
//! (`model`). Here: the builders and helpers they share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_codec::{MqttStr, PublishProperties, PublishProps, QoS, RetainHandling};
use strata_router::{ShareStrategy, SubOptions};
use strata_session::{Message, OutboundPhase};
use strata_store::{Log, LogConfig, NewRecord, ReadLimits, Record, SimStorage};

use super::decode::rebase_expiry;
use super::replay::{compact_at, replay_in_chunks};
use super::*;
use QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};

/// The wall clock of the tests, in ms since the Unix epoch.
const T0: i64 = 1_700_000_000_000;

mod compaction;
mod format;
mod model;
mod replay;

fn s(v: &str) -> MqttStr {
    MqttStr::try_from(v).unwrap()
}

/// Small segments, so a few dozen entries span several.
fn new_log() -> Log {
    let config = LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    Log::open(Arc::new(SimStorage::new()), "/journal", config)
        .unwrap()
        .0
}

fn write(log: &Log, entries: &[(i64, Entry)]) {
    log.append(entries.iter().map(|(t, e)| encode(e, *t)).collect())
        .unwrap();
}

fn as_record(r: NewRecord, offset: u64) -> Record {
    Record {
        offset,
        timestamp: r.timestamp,
        topic: r.topic,
        properties: r.properties,
        payload: r.payload,
    }
}

fn message(id: u64, topic: &str, payload: &str, qos: QoS, retain: bool) -> Message {
    Message {
        topic: s(topic),
        payload: Bytes::from(payload.to_owned()),
        qos,
        retain,
        properties: PublishProps::new(),
        received: Instant::now(),
        id,
    }
}

fn msg(id: u64, topic: &str, qos: QoS) -> Entry {
    Entry::Message(message(id, topic, &format!("payload {id}"), qos, false))
}

fn retained(id: u64, topic: &str, payload: &str, qos: QoS) -> Entry {
    Entry::Message(message(id, topic, payload, qos, true))
}

fn expiring(id: u64, topic: &str, secs: u32) -> Entry {
    let mut m = message(id, topic, "expiring", Q1, false);
    m.properties.message_expiry_interval = Some(secs);
    Entry::Message(m)
}

fn opts(qos: QoS) -> SubOptions {
    SubOptions {
        qos,
        ..SubOptions::default()
    }
}

fn up(client: &str, expiry: u32) -> Entry {
    Entry::Up {
        client: s(client),
        expiry,
    }
}

fn down(client: &str, expiry: u32, at_ms: i64) -> Entry {
    Entry::Down {
        client: s(client),
        expiry,
        at_ms,
    }
}

fn sub(client: &str, filter: &str, options: SubOptions) -> Entry {
    Entry::Subscribe {
        client: s(client),
        filter: s(filter),
        options,
    }
}

fn unsub(client: &str, filter: &str) -> Entry {
    Entry::Unsubscribe {
        client: s(client),
        filter: s(filter),
    }
}

fn at(entries: Vec<Entry>) -> Vec<(i64, Entry)> {
    entries.into_iter().map(|e| (T0, e)).collect()
}

fn replay_at(log: &Log, now: Instant, now_ms: i64) -> Recovered {
    replay(log, ShareStrategy::RoundRobin, now, now_ms).unwrap()
}

fn session<'a>(r: &'a Recovered, client: &str) -> &'a RecoveredSession {
    r.sessions
        .iter()
        .find(|x| x.client_id == client)
        .unwrap_or_else(|| panic!("no session {client:?} in {r:#?}"))
}

fn ids(s: &RecoveredSession) -> Vec<u64> {
    s.pending.iter().map(|d| d.message.id).collect()
}

/// Compacting `r` and replaying the result gives the same sessions.
fn assert_compaction_keeps(r: &Recovered, now: Instant, now_ms: i64) {
    let compacted = new_log();
    compact_at(r, &compacted, now, now_ms).unwrap();
    assert_eq!(replay_at(&compacted, now, now_ms).sessions, r.sessions);
}

fn clients(r: &Recovered) -> Vec<&str> {
    r.sessions.iter().map(|s| s.client_id.as_str()).collect()
}

fn will(client: &str, due_ms: i64) -> Entry {
    Entry::Will {
        client: s(client),
        due_ms,
        message: message(0, &format!("wills/{client}"), "bye", Q1, false),
    }
}

fn sent(client: &str, sends: &[(u64, u16, QoS)]) -> Entry {
    Entry::Sent {
        client: s(client),
        sends: sends
            .iter()
            .map(|&(id, packet_id, qos)| Sent {
                id,
                packet_id,
                qos,
                retain: false,
                subscription_ids: vec![],
                on_subscribe: false,
            })
            .collect(),
    }
}

/// (message id, packet id) pairs as flows.
fn flows_of(pairs: &[(u64, u16)]) -> Vec<Flow> {
    pairs
        .iter()
        .map(|&(id, packet_id)| Flow { id, packet_id })
        .collect()
}

fn released(client: &str, flows: &[(u64, u16)]) -> Entry {
    Entry::Released {
        client: s(client),
        flows: flows_of(flows),
    }
}

fn dropped(client: &str, id: u64, qos: QoS, retain: bool, subscription_ids: &[u32]) -> Entry {
    Entry::Dropped {
        client: s(client),
        copies: vec![Unsent {
            id,
            qos,
            retain,
            subscription_ids: subscription_ids.to_vec(),
            on_subscribe: false,
        }],
    }
}

fn completed(client: &str, flows: &[(u64, u16)]) -> Entry {
    Entry::Completed {
        client: s(client),
        flows: flows_of(flows),
    }
}

fn inbound(client: &str, packet_ids: &[u16]) -> Entry {
    Entry::Inbound {
        client: s(client),
        packet_ids: packet_ids.to_vec(),
    }
}

/// (packet id, message id, released) of each flow in flight, in order.
fn flows(s: &RecoveredSession) -> Vec<(u16, u64, bool)> {
    s.inflight
        .iter()
        .map(|o| {
            let released = o.phase == OutboundPhase::Released;
            (o.packet_id, o.delivery.message.id, released)
        })
        .collect()
}

/// QoS 1, Retain As Published, with a subscription identifier.
fn rap(subscription_id: u32) -> SubOptions {
    SubOptions {
        qos: Q1,
        retain_as_published: true,
        subscription_id: Some(subscription_id),
        ..SubOptions::default()
    }
}

/// A QoS 1 send of message `id` with RETAIN, on subscribing or routed.
fn retained_send(
    client: &str,
    id: u64,
    packet_id: u16,
    subscription_ids: &[u32],
    on_subscribe: bool,
) -> Entry {
    Entry::Sent {
        client: s(client),
        sends: vec![Sent {
            id,
            packet_id,
            qos: Q1,
            retain: true,
            subscription_ids: subscription_ids.to_vec(),
            on_subscribe,
        }],
    }
}

/// A copy of retained message `id` queued on subscribing, granted `qos`,
/// without a subscription identifier.
fn on_subscribe_copy(id: u64, qos: QoS) -> Unsent {
    Unsent {
        id,
        qos,
        retain: true,
        subscription_ids: vec![],
        on_subscribe: true,
    }
}

fn pending(client: &str, id: u64) -> Entry {
    Entry::Pending {
        client: s(client),
        id,
        qos: Q1,
        retain: false,
        subscription_ids: vec![],
        on_subscribe: false,
    }
}

/// Everything at once: overlapping and shared subscriptions, options
/// changed and filters dropped after messages were queued, retained
/// messages queued then replaced or cleared, drops and acknowledgements,
/// ended and expired sessions, expiring messages, the highest id dropped.
fn busy_log() -> Log {
    let log = new_log();
    let a_opts = SubOptions {
        qos: Q1,
        retain_as_published: true,
        subscription_id: Some(1),
        ..SubOptions::default()
    };
    let mut rich = message(1, "s/1/x", "one", Q2, true);
    rich.properties.message_expiry_interval = Some(3600);
    rich.properties.user_properties = vec![(s("k"), s("v")), (s("a"), s("b"))];
    rich.properties.correlation_data = Some(Bytes::from_static(b"corr"));
    let mut short = message(10, "s/5", "short", Q1, false);
    short.properties.message_expiry_interval = Some(20);
    let t = |dt: i64, e: Entry| (T0 + dt, e);
    write(
        &log,
        &[
            t(0, up("a", 600)),
            t(0, up("b", u32::MAX)),
            t(0, up("c", 120)),
            t(0, up("gone", 5)),
            t(0, up("ended", 50)),
            t(0, sub("a", "s/#", a_opts)),
            t(0, sub("a", "s/+/x", opts(Q2))),
            t(0, sub("b", "$share/g/s/#", opts(Q2))),
            t(0, sub("c", "$share/g/s/#", opts(Q1))),
            t(0, sub("c", "r/#", opts(Q1))),
            t(0, sub("gone", "s/#", opts(Q1))),
            t(0, sub("ended", "#", opts(Q1))),
            t(1000, Entry::Message(rich)),
            t(1000, pending("b", 1)),
            t(1000, msg(2, "s/2", Q1)),
            t(1000, pending("c", 2)),
            t(2000, retained(3, "r/keep", "kept", Q1)),
            t(2000, retained(4, "r/gone", "old", Q1)),
            t(2000, retained(5, "r/new", "v1", Q1)),
            t(3000, unsub("a", "s/+/x")),
            t(3000, sub("a", "s/#", opts(Q0))),
            t(3000, retained(6, "r/new", "v2", Q0)),
            t(3000, retained(7, "r/gone", "", Q0)),
            t(4000, msg(8, "s/3", Q1)),
            t(4000, pending("b", 8)),
            // a's copy (s/# as first subscribed) dropped before it went out.
            t(4000, dropped("a", 2, Q1, false, &[1])),
            t(4000, msg(9, "s/4", Q2)),
            t(4000, pending("c", 9)),
            // a sent 1 and got PUBREC; b got retained 3 on subscribing
            // and has an inbound QoS 2 id.
            // On the terms of a's copy (Retain As Published, its
            // subscription id): a retained message sent on subscribing
            // would have other terms.
            t(
                4100,
                Entry::Sent {
                    client: s("a"),
                    sends: vec![Sent {
                        id: 1,
                        packet_id: 3,
                        qos: Q2,
                        retain: true,
                        subscription_ids: vec![1],
                        on_subscribe: false,
                    }],
                },
            ),
            t(4100, released("a", &[(1, 3)])),
            t(4100, on_subscribe_copy(3, Q1).pending(&s("b"))),
            t(4100, sub("b", "r/keep", opts(Q1))),
            t(4100, retained_send("b", 3, 9, &[], true)),
            t(4100, inbound("b", &[4, 9])),
            t(
                4100,
                Entry::InboundDone {
                    client: s("b"),
                    packet_ids: vec![9],
                },
            ),
            t(4500, Entry::End { client: s("ended") }),
            t(5000, down("a", 600, T0 + 5000)),
            t(5000, down("c", 120, T0 + 5000)),
            t(5000, down("gone", 5, T0 + 5000)),
            t(6000, Entry::Message(short)),
            t(6000, pending("b", 10)),
            t(6000, msg(11, "s/6", Q1)),
            t(6000, pending("c", 11)),
            // The group picked c: b holds no copy of 11, and its drop
            // takes none.
            t(6000, dropped("b", 11, Q2, false, &[])),
            t(6000, dropped("c", 11, Q1, false, &[])),
        ],
    );
    log
}
