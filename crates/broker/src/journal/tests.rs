//! The journal on a real log over `SimStorage`: the bytes, replay against
//! what live routing does, and compaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_codec::{MqttStr, PublishProperties, PublishProps, QoS, RetainHandling};
use strata_router::{ShareStrategy, SubOptions};
use strata_session::{Message, OutboundPhase};
use strata_store::{Log, LogConfig, NewRecord, ReadLimits, Record, SimStorage};

use super::replay::{compact_at, replay_in_chunks};
use super::*;
use QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};

/// The wall clock of the tests, in ms since the Unix epoch.
const T0: i64 = 1_700_000_000_000;

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

fn delivered(client: &str, id: u64) -> Entry {
    Entry::Delivered {
        client: s(client),
        ids: vec![id],
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

fn clients(r: &Recovered) -> Vec<&str> {
    r.sessions.iter().map(|s| s.client_id.as_str()).collect()
}

/// One of each entry, with the awkward values: every property kind, user
/// properties out of order and repeated, unicode, empty payload, extreme
/// numbers.
fn samples(now: Instant) -> Vec<Entry> {
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(u32::MAX),
        content_type: Some(s("application/json; charset=utf-8")),
        response_topic: Some(s("réponse/ü")),
        correlation_data: Some(Bytes::from_static(&[0, 1, 2, 255])),
        user_properties: vec![
            (s("z"), s("1")),
            (s("a"), s("2")),
            (s("z"), s("3")),
            (s(""), s("")),
        ],
        ..PublishProperties::default()
    };
    let rich = Message {
        topic: s("läuft/温度/🚀"),
        payload: Bytes::from_static(b"\0\xff bytes"),
        qos: Q2,
        retain: true,
        properties: props.into(),
        received: now,
        id: u64::MAX,
    };
    let bare = Message {
        received: now,
        ..message(1, "a", "", Q0, false)
    };
    let client = s("客户端-1");
    vec![
        Entry::Published {
            message: rich.clone(),
            client: client.clone(),
            packet_id: u16::MAX,
        },
        Entry::Published {
            message: bare.clone(),
            client: s(""),
            packet_id: 0,
        },
        Entry::Message(rich),
        Entry::Message(bare),
        Entry::Up {
            client: client.clone(),
            expiry: u32::MAX,
        },
        Entry::Up {
            client: s(""),
            expiry: 0,
        },
        Entry::Resume {
            client: client.clone(),
            expiry: 7,
        },
        Entry::Down {
            client: client.clone(),
            expiry: u32::MAX,
            at_ms: i64::MIN,
        },
        Entry::Down {
            client: client.clone(),
            expiry: 1,
            at_ms: T0,
        },
        Entry::End {
            client: client.clone(),
        },
        Entry::Subscribe {
            client: client.clone(),
            filter: s("$share/grp/a/+/#"),
            options: SubOptions {
                qos: Q2,
                no_local: false,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
                subscription_id: Some(268_435_455),
            },
        },
        Entry::Subscribe {
            client: client.clone(),
            filter: s("ü/#"),
            options: SubOptions {
                qos: Q1,
                no_local: true,
                retain_as_published: false,
                retain_handling: RetainHandling::SendIfNew,
                subscription_id: None,
            },
        },
        Entry::Unsubscribe {
            client: client.clone(),
            filter: s("+"),
        },
        Entry::Delivered {
            client: client.clone(),
            ids: vec![u64::MAX, 0, 7],
        },
        Entry::Delivered {
            client: client.clone(),
            ids: Vec::new(),
        },
        Entry::Pending {
            client: client.clone(),
            id: 9,
            qos: Q1,
            retain: true,
            subscription_ids: vec![1, 7, u32::MAX],
        },
        Entry::Pending {
            client: client.clone(),
            id: 1,
            qos: Q0,
            retain: false,
            subscription_ids: vec![],
        },
        Entry::Sent {
            client: client.clone(),
            sends: vec![
                Sent {
                    id: u64::MAX,
                    packet_id: u16::MAX,
                    qos: Q2,
                    retain: true,
                    subscription_ids: vec![3, u32::MAX],
                },
                Sent {
                    id: 0,
                    packet_id: 1,
                    qos: Q1,
                    retain: false,
                    subscription_ids: vec![],
                },
            ],
        },
        Entry::Sent {
            client: client.clone(),
            sends: vec![],
        },
        Entry::Released {
            client: client.clone(),
            ids: vec![u64::MAX, 1],
        },
        Entry::Inbound {
            client: client.clone(),
            packet_ids: vec![1, u16::MAX],
        },
        Entry::InboundDone {
            client: client.clone(),
            packet_ids: vec![],
        },
        Entry::Will {
            client: client.clone(),
            due_ms: i64::MIN,
            message: Message {
                id: 0,
                ..samples_will(now)
            },
        },
        Entry::WillGone { client },
    ]
}

fn samples_will(now: Instant) -> Message {
    let mut m = message(0, "wills/客户端", "bye", Q1, true);
    m.received = now;
    m.properties.content_type = Some(s("text/plain"));
    m
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
            })
            .collect(),
    }
}

fn released(client: &str, ids: &[u64]) -> Entry {
    Entry::Released {
        client: s(client),
        ids: ids.to_vec(),
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

#[test]
fn encode_then_decode_is_the_identity() {
    let now = Instant::now();
    for (i, e) in samples(now).iter().enumerate() {
        let rec = as_record(encode(e, T0), i as u64);
        assert_eq!(decode(&rec, now, T0).unwrap(), *e, "entry {i}");
    }
    // And through a real log: what is read back decodes the same.
    let log = new_log();
    write(
        &log,
        &samples(now)
            .into_iter()
            .map(|e| (T0, e))
            .collect::<Vec<_>>(),
    );
    let read = log.read(0, ReadLimits::records(100)).unwrap();
    let back: Vec<Entry> = read.iter().map(|r| decode(r, now, T0).unwrap()).collect();
    assert_eq!(back, samples(now));
}

#[test]
fn a_round_encodes_as_its_entries() {
    // encode_round (the connection's path, from borrowed parts) writes the
    // bytes of the entries it stands for, in their order, and nothing for
    // empty parts.
    let now = Instant::now();
    let client = s("round");
    let Entry::Sent { sends, .. } = sent("round", &[(7, 3, Q2), (8, 4, Q1)]) else {
        unreachable!()
    };
    let mut out = Vec::new();
    encode_round(&client, &sends, &[], &[5, 6], &[9], T0, &mut out);
    let got: Vec<Entry> = out
        .iter()
        .enumerate()
        .map(|(i, r)| decode(&as_record(r.clone(), i as u64), now, T0).unwrap())
        .collect();
    let expected = vec![
        Entry::Sent {
            client: client.clone(),
            sends,
        },
        Entry::Delivered {
            client: client.clone(),
            ids: vec![5, 6],
        },
        Entry::InboundDone {
            client: client.clone(),
            packet_ids: vec![9],
        },
    ];
    assert_eq!(got, expected);
    for (r, e) in out.iter().zip(&expected) {
        let direct = encode(e, T0);
        assert_eq!(
            (&r.properties, &r.payload),
            (&direct.properties, &direct.payload)
        );
    }
    out.clear();
    encode_round(&client, &[], &[], &[], &[], T0, &mut out);
    assert!(out.is_empty());
}

#[test]
fn every_strict_prefix_is_refused() {
    let now = Instant::now();
    for (i, e) in samples(now).iter().enumerate() {
        let full = as_record(encode(e, T0), 0);
        for n in 0..full.properties.len() {
            let mut r = full.clone();
            r.properties = full.properties.slice(..n);
            assert!(
                decode(&r, now, T0).is_err(),
                "entry {i}, properties cut to {n}"
            );
        }
        // A message payload is opaque; every other payload is fields.
        if !matches!(
            e,
            Entry::Message(_) | Entry::Published { .. } | Entry::Will { .. }
        ) {
            for n in 0..full.payload.len() {
                let mut r = full.clone();
                r.payload = full.payload.slice(..n);
                assert!(
                    decode(&r, now, T0).is_err(),
                    "entry {i}, payload cut to {n}"
                );
            }
            let mut r = full.clone();
            r.payload = [&full.payload[..], &[0]].concat().into();
            assert!(decode(&r, now, T0).is_err(), "entry {i} with a byte more");
        }
        let mut r = full.clone();
        r.properties = [&full.properties[..], &[0]].concat().into();
        assert!(decode(&r, now, T0).is_err(), "entry {i}, properties + 1");
    }
}

#[test]
fn damaged_bytes_never_panic() {
    // xorshift64: deterministic, so a failure replays.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let now = Instant::now();
    let mut refused = 0;
    for e in samples(now) {
        let full = as_record(encode(&e, T0), 0);
        for _ in 0..2000 {
            let mut r = full.clone();
            let mut parts = [r.topic.to_vec(), r.properties.to_vec(), r.payload.to_vec()];
            for _ in 0..1 + next() % 3 {
                let part = &mut parts[(next() % 3) as usize];
                match next() % 4 {
                    0 if !part.is_empty() => {
                        let i = (next() % part.len() as u64) as usize;
                        part[i] ^= 1 << (next() % 8);
                    }
                    1 if !part.is_empty() => {
                        let i = (next() % part.len() as u64) as usize;
                        part[i] = next() as u8;
                    }
                    2 => part.truncate((next() % (part.len() as u64 + 1)) as usize),
                    _ => part.push(next() as u8),
                }
            }
            let [topic, properties, payload] = parts;
            (r.topic, r.properties, r.payload) = (topic.into(), properties.into(), payload.into());
            r.timestamp = next() as i64;
            refused += usize::from(decode(&r, now, T0).is_err());
        }
    }
    assert!(refused > 0);
}

#[test]
fn a_malformed_record_names_its_offset() {
    let log = new_log();
    write(&log, &at(vec![up("a", 60), msg(1, "t", Q1)]));
    log.append(vec![NewRecord {
        timestamp: T0,
        properties: Bytes::from_static(b"Q"),
        ..NewRecord::default()
    }])
    .unwrap();
    let e = replay(&log, ShareStrategy::RoundRobin, Instant::now(), T0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "journal record at offset 2 is malformed: unknown entry kind 0x51; it was written by \
         another Strata version or is damaged: start the matching version, or move the data \
         directory aside to start without the stored sessions and retained messages"
    );
    let mut bad = as_record(encode(&sub("a", "t", opts(Q1)), T0), 7);
    bad.payload = [&bad.payload[..bad.payload.len() - 1], &[0b11]]
        .concat()
        .into();
    let e = decode(&bad, Instant::now(), T0).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("journal record at offset 7 is malformed: subscription QoS 3;"),
        "{e}"
    );
    let mut bad = as_record(encode(&sub("a", "t", opts(Q1)), T0), 8);
    bad.payload = encode(&sub("a", "a/#/b", opts(Q1)), T0).payload;
    let e = decode(&bad, Instant::now(), T0).unwrap_err();
    assert!(e.to_string().contains("offset 8"), "{e}");
    assert!(e.to_string().contains("topic filter \"a/#/b\""), "{e}");
}

#[test]
fn a_pending_entry_applies_only_to_its_message() {
    let log = new_log();
    let pending = Entry::Pending {
        client: s("a"),
        id: 1,
        qos: Q1,
        retain: false,
        subscription_ids: vec![],
    };
    // Not after message 1: it waits for a message 1 to come, which never
    // does (a share group's pick is written before its message, and a torn
    // append may have lost the message).
    write(
        &log,
        &at(vec![up("a", 60), msg(1, "t", Q1), msg(2, "t", Q1), pending]),
    );
    let r = replay(&log, ShareStrategy::RoundRobin, Instant::now(), T0).unwrap();
    assert!(session(&r, "a").pending.is_empty());
}

#[test]
fn pending_follows_subscriptions() {
    let log = new_log();
    let sid5 = SubOptions {
        qos: Q1,
        retain_as_published: true,
        subscription_id: Some(5),
        ..SubOptions::default()
    };
    write(
        &log,
        &at(vec![
            up("a", 100),
            up("b", 100),
            sub("a", "t/+", sid5),
            sub("a", "x", opts(Q2)),
            sub("b", "x", opts(Q0)),
            retained(1, "t/1", "r", Q2),
            msg(2, "x", Q1),
            msg(3, "t/2", Q0),
            msg(4, "other", Q2),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(r.records, 9);
    let a = session(&r, "a");
    assert_eq!(ids(a), [1, 2]);
    let d = &a.pending[0];
    assert_eq!((d.qos, d.effective_qos(), d.retain), (Q1, Q1, true));
    assert_eq!(d.subscription_ids, [5]);
    let d = &a.pending[1];
    assert_eq!((d.qos, d.effective_qos(), d.retain), (Q2, Q1, false));
    assert!(d.subscription_ids.is_empty());
    assert_eq!(&*d.message.payload, b"payload 2");
    // QoS 0 to b: an offline mailbox would not keep it.
    assert!(session(&r, "b").pending.is_empty());
    assert_eq!(r.next_id, 5);
}

#[test]
fn overlapping_subscriptions_give_one_delivery_at_the_highest_qos() {
    let log = new_log();
    let with_id = |qos, id| SubOptions {
        qos,
        subscription_id: Some(id),
        ..SubOptions::default()
    };
    write(
        &log,
        &at(vec![
            up("a", 100),
            sub("a", "a/#", with_id(Q1, 1)),
            sub("a", "a/b", with_id(Q2, 2)),
            sub("a", "+/b", opts(Q0)),
            msg(1, "a/b", Q2),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    let a = session(&r, "a");
    assert_eq!(a.pending.len(), 1);
    assert_eq!(a.pending[0].qos, Q2);
    assert_eq!(a.pending[0].subscription_ids, [1, 2]);
}

#[test]
fn unsubscribe_stops_later_messages_and_keeps_earlier_ones() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("a", 100),
            sub("a", "t", opts(Q1)),
            sub("a", "u", opts(Q1)),
            msg(1, "t", Q1),
            unsub("a", "t"),
            msg(2, "t", Q1),
            // The same filter again replaces, keeping its place.
            sub("a", "v", opts(Q1)),
            sub("a", "u", opts(Q2)),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    let a = session(&r, "a");
    assert_eq!(ids(a), [1]);
    assert_eq!(a.subscriptions, [(s("u"), opts(Q2)), (s("v"), opts(Q1))]);
}

#[test]
fn delivered_removes_from_that_client_only() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("a", 100),
            up("b", 100),
            sub("a", "t", opts(Q1)),
            sub("b", "t", opts(Q1)),
            msg(1, "t", Q1),
            msg(2, "t", Q1),
            msg(3, "t", Q1),
            delivered("a", 2),
            delivered("b", 1),
            delivered("a", 99),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(ids(session(&r, "a")), [1, 3]);
    assert_eq!(ids(session(&r, "b")), [2, 3]);
    // A Delivered id counts: no id is handed out twice.
    assert_eq!(r.next_id, 100);
}

#[test]
fn up_resets_a_client_and_end_removes_it() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("a", 100),
            up("b", 100),
            up("c", 100),
            sub("a", "t", opts(Q1)),
            sub("b", "t", opts(Q1)),
            msg(1, "t", Q1),
            up("a", 50),
            msg(2, "t", Q1),
            Entry::End { client: s("b") },
            // An ended session is not brought back by later entries.
            sub("b", "t", opts(Q1)),
            down("b", 100, T0),
            msg(3, "t", Q1),
            up("c", 0),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(clients(&r), ["a"]);
    let a = session(&r, "a");
    assert_eq!(
        (a.expiry, a.subscriptions.len(), a.pending.len()),
        (50, 0, 0)
    );
}

#[test]
fn retained_messages_are_set_replaced_and_cleared() {
    let log = new_log();
    let mut old = message(6, "d", "expired", Q1, true);
    old.properties.message_expiry_interval = Some(1);
    write(
        &log,
        &[
            (T0, up("a", 100)),
            (T0, sub("a", "#", opts(Q1))),
            (T0, retained(1, "a", "x", Q1)),
            (T0, retained(2, "b", "y", Q1)),
            (T0, retained(3, "a", "z", Q0)),
            (T0, retained(4, "b", "", Q1)),
            (T0, retained(5, "c", "w", Q0)),
            (T0, msg(7, "c", Q1)),
            (T0 - 2000, Entry::Message(old)),
        ],
    );
    let r = replay_at(&log, Instant::now(), T0);
    let got: Vec<(u64, &str, &[u8])> = r
        .retained
        .iter()
        .map(|m| (m.id, m.topic.as_str(), &m.payload[..]))
        .collect();
    assert_eq!(got, [(3, "a", &b"z"[..]), (5, "c", b"w")]);
    // Retained QoS 0 is not pending; the expired one is dropped.
    assert_eq!(ids(session(&r, "a")), [1, 2, 4, 7]);
}

#[test]
fn sessions_expire_by_the_wall_clock() {
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("gone", 10),
            down("gone", 10, T0),
            up("left", 60),
            down("left", 60, T0),
            up("connected", 30),
            up("never", u32::MAX),
            down("never", u32::MAX, T0 - 1_000_000_000_000),
            up("future", 5),
            down("future", 5, T0 + 1_000_000),
            up("shortened", 1000),
            down("shortened", 3, T0),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0 + 10_000);
    assert_eq!(clients(&r), ["connected", "future", "left", "never"]);
    let left = |c| session(&r, c).expires_in;
    assert_eq!(left("left"), Some(Duration::from_secs(50)));
    assert_eq!(left("connected"), Some(Duration::from_secs(30)));
    assert_eq!(left("never"), None);
    // A down time after now (the clock stepped back) counts as now.
    assert_eq!(left("future"), Some(Duration::from_secs(5)));
    // Expiry is due exactly at at_ms + expiry: gone at T0 + 10 s.
    let r = replay_at(&log, Instant::now(), T0 + 9_999);
    assert_eq!(
        session(&r, "gone").expires_in,
        Some(Duration::from_millis(1))
    );
}

#[test]
fn resume_counts_as_connected() {
    let log = new_log();
    write(
        &log,
        &[
            (T0, up("a", 60)),
            (T0, up("b", 60)),
            (T0, up("c", 60)),
            (T0, down("a", 60, T0)),
            (T0, down("b", 60, T0)),
            (T0, down("c", 60, T0)),
            (
                T0 + 30_000,
                Entry::Resume {
                    client: s("a"),
                    expiry: 90,
                },
            ),
            (
                T0 + 30_000,
                Entry::Resume {
                    client: s("c"),
                    expiry: 0,
                },
            ),
            (
                T0 + 30_000,
                Entry::Resume {
                    client: s("nobody"),
                    expiry: 9,
                },
            ),
        ],
    );
    let r = replay_at(&log, Instant::now(), T0 + 100_000);
    assert_eq!(clients(&r), ["a"]);
    assert_eq!(session(&r, "a").expiry, 90);
    assert_eq!(session(&r, "a").expires_in, Some(Duration::from_secs(90)));
}

fn pending(client: &str, id: u64) -> Entry {
    Entry::Pending {
        client: s(client),
        id,
        qos: Q1,
        retain: false,
        subscription_ids: vec![],
    }
}

#[test]
fn a_share_group_member_is_the_one_the_live_broker_picked() {
    // Replay does not pick again (its router would choose differently, and
    // one member would get a message another already had): the pick
    // follows each message as a Pending entry: the chosen member completes
    // the delivery [MQTT-4.8.2-4], no other member gets it [MQTT-4.8.2-5].
    let log = new_log();
    let mut entries = vec![
        up("a", 100),
        up("b", 100),
        up("c", 100),
        sub("a", "$share/g/s/#", opts(Q1)),
        sub("b", "$share/g/s/#", opts(Q1)),
        sub("c", "s/#", opts(Q1)),
    ];
    for i in 1..=6 {
        let pick = pending(if i == 2 { "a" } else { "b" }, i);
        if i % 2 == 0 {
            // As the live broker writes it: before the message, in its
            // append, so that no torn append keeps the message alone.
            entries.push(pick);
            entries.push(msg(i, &format!("s/{i}"), Q1));
        } else {
            // As compaction writes it.
            entries.push(msg(i, &format!("s/{i}"), Q1));
            entries.push(pick);
        }
    }
    // A pick whose message a torn append lost: nothing.
    entries.push(pending("a", 7));
    write(&log, &at(entries));
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(ids(session(&r, "a")), [2]);
    assert_eq!(ids(session(&r, "b")), [1, 3, 4, 5, 6]);
    assert_eq!(ids(session(&r, "c")), [1, 2, 3, 4, 5, 6], "not shared");
}

#[test]
fn message_expiry_keeps_counting_across_a_restart() {
    let log = new_log();
    write(
        &log,
        &[
            (T0, up("a", 1000)),
            (T0, sub("a", "#", opts(Q1))),
            (T0, expiring(1, "t", 100)),
            (T0, expiring(2, "t", 20)),
            (T0 + 25_000, msg(3, "t", Q1)),
        ],
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0 + 30_000);
    let a = session(&r, "a");
    assert_eq!(ids(a), [1, 3]);
    assert_eq!(a.pending[0].message.received, now - Duration::from_secs(30));
    assert_eq!(a.pending[0].message.remaining_expiry(now), Some(70));
    let later = now + Duration::from_secs(69);
    assert_eq!(a.pending[0].message.remaining_expiry(later), Some(1));
    assert!(
        a.pending[0]
            .message
            .is_expired(now + Duration::from_secs(70))
    );
    assert_eq!(a.pending[1].message.remaining_expiry(now), None);
    assert_eq!(a.pending[1].message.received, now - Duration::from_secs(5));
}

#[test]
fn an_unreachable_receive_time_shortens_the_expiry_instead() {
    let mut p = PublishProps::new();
    p.message_expiry_interval = Some(100);
    rebase_expiry(30_500, &mut p);
    assert_eq!(p.message_expiry_interval, Some(70));
    rebase_expiry(70_000, &mut p);
    assert_eq!(p.message_expiry_interval, Some(0));
    let mut none = PublishProps::new();
    rebase_expiry(5_000, &mut none);
    assert!(none.is_empty());
}

/// Everything at once: overlapping and shared subscriptions, options
/// changed and filters dropped after messages were queued, retained
/// messages queued then replaced or cleared, acknowledgements, ended and
/// expired sessions, expiring messages, the highest id acknowledged.
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
            t(4000, delivered("a", 2)),
            t(4000, msg(9, "s/4", Q2)),
            t(4000, pending("c", 9)),
            // a sent 1 and got PUBREC; b got retained 3 on subscribing
            // and has an inbound QoS 2 id.
            t(4100, sent("a", &[(1, 3, Q2)])),
            t(4100, released("a", &[1])),
            t(4100, sent("b", &[(3, 9, Q1)])),
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
            t(6000, delivered("b", 11)),
            t(6000, delivered("c", 11)),
        ],
    );
    log
}

#[test]
fn in_flight_flows_and_inbound_ids_are_replayed() {
    // What a restart resends: PUBLISH under its packet id until PUBREC,
    // then PUBREL until PUBCOMP [MQTT-4.4.0-1]; inbound QoS 2 ids stay
    // duplicates until their PUBREL [MQTT-4.3.3-10].
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("x", 600),
            sub("x", "t/#", opts(Q2)),
            retained(1, "r", "kept", Q1),
            msg(2, "t/a", Q2),
            msg(3, "t/b", Q1),
            msg(4, "t/c", Q2),
            msg(5, "t/d", Q2),
            // 1 is retained, sent to a new subscription: never pending.
            // 9 is unknown: ignored.
            sent("x", &[(2, 10, Q2), (3, 11, Q1), (4, 12, Q2), (1, 13, Q1)]),
            sent("x", &[(9, 14, Q1)]),
            released("x", &[2, 3]),
            delivered("x", 3),
            inbound("x", &[5, 6, 7]),
            Entry::InboundDone {
                client: s("x"),
                packet_ids: vec![6],
            },
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    let x = session(&r, "x");
    // 3 is QoS 1: Released does not apply to it, and it is done.
    assert_eq!(
        flows(x),
        [(10, 2, true), (12, 4, false), (13, 1, false)],
        "{x:#?}"
    );
    assert_eq!(ids(x), [5], "the unsent message is still pending");
    assert_eq!(x.inbound, [5, 7]);
    assert_eq!(x.inflight[1].qos, Q2);

    // Done with 2 (PUBCOMP); the client reused packet id 12 for new flows
    // after 4's completed; a new session forgets everything.
    write(
        &log,
        &at(vec![
            delivered("x", 2),
            delivered("x", 4),
            sent("x", &[(5, 12, Q2)]),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(flows(session(&r, "x")), [(13, 1, false), (12, 5, false)]);
    // A retained message sent to a new subscription, replaced before the
    // round's Sent entry was appended: still found.
    write(
        &log,
        &at(vec![
            retained(20, "r", "v1", Q2),
            retained(21, "r", "v2", Q2),
            sent("x", &[(20, 30, Q2)]),
        ]),
    );
    let r = replay_at(&log, Instant::now(), T0);
    assert_eq!(
        flows(session(&r, "x")),
        [(13, 1, false), (12, 5, false), (30, 20, false)]
    );
    write(&log, &at(vec![up("x", 600)]));
    let r = replay_at(&log, Instant::now(), T0);
    let x = session(&r, "x");
    assert!(x.inflight.is_empty() && x.inbound.is_empty() && x.pending.is_empty());
}

#[test]
fn replay_applies_no_local_and_keeps_the_inbound_id_of_a_stored_message() {
    // [MQTT-3.8.3-3]: a No Local subscription does not get its own
    // session's messages, after a restart as live. The QoS 2 id of the
    // PUBLISH that brought a stored message is held until InboundDone
    // [MQTT-4.3.3-10].
    let log = new_log();
    let no_local = SubOptions {
        no_local: true,
        ..opts(Q1)
    };
    let published = |id: u64, client: &str, packet_id: u16| Entry::Published {
        message: message(id, "chat/room", "hi", Q2, false),
        client: s(client),
        packet_id,
    };
    write(
        &log,
        &at(vec![
            up("me", 600),
            up("you", 600),
            sub("me", "chat/#", no_local),
            sub("you", "chat/#", opts(Q1)),
            published(1, "me", 5),
            published(2, "you", 0),
            // From a session that is not persistent: no session to hold
            // an id, and No Local has nobody to spare.
            published(3, "passer-by", 9),
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0);
    assert_eq!(ids(session(&r, "me")), [2, 3], "not its own message");
    assert_eq!(ids(session(&r, "you")), [1, 2, 3], "no No Local there");
    assert_eq!(session(&r, "me").inbound, [5]);
    assert!(session(&r, "you").inbound.is_empty());
    let compacted = new_log();
    compact_at(&r, &compacted, now, T0).unwrap();
    assert_eq!(replay_at(&compacted, now, T0).sessions, r.sessions);
}

#[test]
fn a_delayed_will_waits_across_a_restart_until_resumed_or_published() {
    // [MQTT-3.1.3-9]: due at its time unless the session resumes first.
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("late", 600),
            down("late", 600, T0),
            will("late", T0 + 5_000),
            up("past", 600),
            down("past", 600, T0),
            will("past", T0 - 1),
            up("back", 600),
            down("back", 600, T0),
            will("back", T0 + 5_000),
            Entry::Resume {
                client: s("back"),
                expiry: 600,
            },
            up("sent", 600),
            down("sent", 600, T0),
            will("sent", T0 + 5_000),
            Entry::WillGone { client: s("sent") },
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0 + 2_000);
    let due = |c: &str| {
        session(&r, c)
            .will
            .as_ref()
            .map(|(d, m)| (*d, m.topic.to_string()))
    };
    assert_eq!(
        due("late"),
        Some((Duration::from_secs(3), "wills/late".to_string()))
    );
    assert_eq!(
        due("past"),
        Some((Duration::ZERO, "wills/past".to_string()))
    );
    assert_eq!(due("back"), None, "resumed");
    assert_eq!(due("sent"), None, "published");
    let compacted = new_log();
    compact_at(&r, &compacted, now, T0 + 2_000).unwrap();
    assert_eq!(replay_at(&compacted, now, T0 + 2_000).sessions, r.sessions);
}

#[test]
fn a_session_that_expired_while_the_broker_was_down_still_has_its_will() {
    // [MQTT-3.1.2-8]: the will goes out when the session ends. The broker
    // was down for an hour; the session (expiry 60 s) comes back expired,
    // with its will due, and the sweeper ends it and publishes the will.
    let log = new_log();
    write(
        &log,
        &at(vec![
            up("gone", 60),
            down("gone", 60, T0),
            will("gone", T0 + 30_000),
            up("plain", 60),
            down("plain", 60, T0),
        ]),
    );
    let now = Instant::now();
    let r = replay_at(&log, now, T0 + 3_600_000);
    assert_eq!(clients(&r), ["gone"], "the one without a will is gone");
    let gone = session(&r, "gone");
    assert_eq!(gone.expires_in, Some(Duration::ZERO));
    assert_eq!(gone.will.as_ref().map(|(d, _)| *d), Some(Duration::ZERO));
    let compacted = new_log();
    compact_at(&r, &compacted, now, T0 + 3_600_000).unwrap();
    assert_eq!(
        replay_at(&compacted, now, T0 + 3_600_000).sessions,
        r.sessions
    );
}

#[test]
fn compaction_replays_to_the_same_state() {
    let log = busy_log();
    let (now, now_ms) = (Instant::now(), T0 + 30_000);
    let before = replay_at(&log, now, now_ms);
    // The log is what it should be before comparing compactions of it.
    assert_eq!(clients(&before), ["a", "b", "c"]);
    assert_eq!(ids(session(&before, "a")), Vec::<u64>::new());
    assert_eq!(flows(session(&before, "a")), [(3, 1, true)]);
    assert_eq!(flows(session(&before, "b")), [(9, 3, false)]);
    assert_eq!(session(&before, "b").inbound, [4]);
    // The share group's messages went to b or c, once each (11 was
    // acknowledged, 10 expired); c also has its r/# messages.
    let mut shared = [ids(session(&before, "b")), ids(session(&before, "c"))].concat();
    shared.sort_unstable();
    assert_eq!(shared, [1, 2, 3, 4, 5, 8, 9]);
    let topics: Vec<&str> = before.retained.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["r/keep", "r/new", "s/1/x"]);
    assert_eq!(before.next_id, 12);

    let compacted = new_log();
    compact_at(&before, &compacted, now, now_ms).unwrap();
    let after = replay_at(&compacted, now, now_ms);
    assert_eq!(after.sessions, before.sessions);
    assert_eq!(after.retained, before.retained);
    assert!(after.next_id >= before.next_id);
    assert!(after.records < before.records, "{} records", after.records);

    // Compacting the compacted log changes nothing.
    let again = new_log();
    compact_at(&after, &again, now, now_ms).unwrap();
    let third = replay_at(&again, now, now_ms);
    assert_eq!(
        (third.sessions, third.retained),
        (after.sessions, after.retained)
    );
    assert!(third.next_id >= after.next_id);
}

#[test]
fn a_compacted_prefix_and_the_records_after_it_replay_to_the_same_state() {
    // Runtime compaction: the records before a cut are compacted, the rest
    // are copied after them. For every cut point the result replays to
    // what the whole log does. The records after the busy log's refer to
    // state from before: sessions resumed and gone down, messages sent and
    // acknowledged, inbound ids released, a session still connected.
    let log = busy_log();
    let t = |dt: i64, e: Entry| (T0 + dt, e);
    write(
        &log,
        &[
            t(
                7000,
                Entry::Resume {
                    client: s("a"),
                    expiry: 900,
                },
            ),
            t(7000, sent("a", &[(3, 4, Q1)])),
            t(7000, delivered("a", 1)),
            t(
                7100,
                Entry::Resume {
                    client: s("b"),
                    expiry: u32::MAX,
                },
            ),
            t(
                7100,
                Entry::InboundDone {
                    client: s("b"),
                    packet_ids: vec![4],
                },
            ),
            t(7100, delivered("b", 3)),
            t(7200, pending("b", 12)),
            t(7200, msg(12, "s/7", Q2)),
            t(7300, down("a", 900, T0 + 7300)),
            t(7300, will("a", T0 + 60_000)),
            t(7400, unsub("c", "r/#")),
            t(7400, retained(13, "r/keep", "", Q0)),
        ],
    );
    let (now, now_ms) = (Instant::now(), T0 + 30_000);
    let whole = replay_at(&log, now, now_ms);
    let all = log.read(0, ReadLimits::records(100_000)).unwrap();
    let mut cuts = 0;
    for cut in 0..=all.len() {
        // The live broker cuts between appends: a share group's pick is in
        // its message's append (before it; compaction writes it after).
        let pick = |i: usize| all.get(i).is_some_and(|r| r.properties[0] == b'P');
        if pick(cut) || (cut > 0 && pick(cut - 1)) {
            continue;
        }
        let mut prefix =
            replay_prefix(&log, ShareStrategy::RoundRobin, cut as u64, now, now_ms).unwrap();
        // Ids for the compaction's own records, past any the log uses.
        prefix.next_id = 1_000;
        let next = new_log();
        compact_at(&prefix, &next, now, now_ms).unwrap();
        let tail: Vec<NewRecord> = all[cut..]
            .iter()
            .map(|r| NewRecord {
                timestamp: r.timestamp,
                topic: r.topic.clone(),
                properties: r.properties.clone(),
                payload: r.payload.clone(),
            })
            .collect();
        if !tail.is_empty() {
            next.append(tail).unwrap();
        }
        let again = replay_at(&next, now, now_ms);
        assert_eq!(again.sessions, whole.sessions, "cut at {cut}");
        assert_eq!(again.retained, whole.retained, "cut at {cut}");
        cuts += 1;
    }
    assert!(cuts > 40, "{cuts} cuts");
    // The state the last record leaves is what the test meant to build.
    assert_eq!(flows(session(&whole, "a")), [(4, 3, false)]);
    assert!(session(&whole, "a").will.is_some());
    assert!(session(&whole, "b").inbound.is_empty());
}

#[test]
fn compact_into_reads_the_clock_itself() {
    let log = busy_log();
    let now_ms = T0 + 30_000;
    let before = replay_at(&log, Instant::now(), now_ms);
    let compacted = new_log();
    compact_into(&before, &compacted, now_ms).unwrap();
    let after = replay_at(&compacted, Instant::now(), now_ms);
    assert_eq!(clients(&after), clients(&before));
    assert!(after.next_id >= before.next_id);
    let now = Instant::now();
    for (x, y) in after.sessions.iter().zip(&before.sessions) {
        assert_eq!((&x.client_id, x.expiry), (&y.client_id, y.expiry));
        assert_eq!(x.subscriptions, y.subscriptions);
        let secs = |s: &RecoveredSession| s.expires_in.map(|d| d.as_secs_f64());
        if let (Some(p), Some(q)) = (secs(x), secs(y)) {
            assert!((p - q).abs() < 1.0, "{p} vs {q}");
        } else {
            assert_eq!(x.expires_in, y.expires_in);
        }
        let key = |s: &RecoveredSession| -> Vec<(u64, MqttStr, Bytes, QoS, bool, Vec<u32>)> {
            s.pending
                .iter()
                .map(|d| {
                    let m = &d.message;
                    (
                        m.id,
                        m.topic.clone(),
                        m.payload.clone(),
                        d.qos,
                        d.retain,
                        d.subscription_ids.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(key(x), key(y));
        for (d, e) in x.pending.iter().zip(&y.pending) {
            let (p, q) = (
                d.message.remaining_expiry(now),
                e.message.remaining_expiry(now),
            );
            assert!(
                p.zip(q).is_none_or(|(p, q)| p.abs_diff(q) <= 1),
                "{p:?} vs {q:?}"
            );
        }
    }
    let strip = |r: &Recovered| -> Vec<(u64, MqttStr, Bytes)> {
        r.retained
            .iter()
            .map(|m| (m.id, m.topic.clone(), m.payload.clone()))
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
}

#[test]
fn replay_reads_the_log_in_chunks() {
    let log = busy_log();
    let now = Instant::now();
    let whole = replay_at(&log, now, T0 + 30_000);
    for limits in [
        ReadLimits::records(1),
        ReadLimits {
            max_records: 3,
            max_bytes: 10,
        },
    ] {
        let r =
            replay_in_chunks(&log, ShareStrategy::RoundRobin, now, T0 + 30_000, limits).unwrap();
        assert_eq!(r, whole);
    }
    let empty = replay_at(&new_log(), now, T0);
    assert_eq!(
        (empty.sessions.len(), empty.next_id, empty.records),
        (0, 1, 0)
    );
}
