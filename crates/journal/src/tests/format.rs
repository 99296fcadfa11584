//! The bytes of every entry: round trips, truncation, damage.

use super::*;

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
        Entry::IdMark {
            ids: vec![u64::MAX, 0, 7],
        },
        Entry::IdMark { ids: Vec::new() },
        Entry::Pending {
            client: client.clone(),
            id: 9,
            qos: Q1,
            retain: true,
            subscription_ids: vec![1, 7, u32::MAX],
            on_subscribe: true,
        },
        Entry::Pending {
            client: client.clone(),
            id: 1,
            qos: Q0,
            retain: false,
            subscription_ids: vec![],
            on_subscribe: false,
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
                    on_subscribe: true,
                },
                Sent {
                    id: 0,
                    packet_id: 1,
                    qos: Q1,
                    retain: false,
                    subscription_ids: vec![],
                    on_subscribe: false,
                },
            ],
        },
        Entry::Sent {
            client: client.clone(),
            sends: vec![],
        },
        Entry::Released {
            client: client.clone(),
            flows: vec![
                Flow {
                    id: u64::MAX,
                    packet_id: u16::MAX,
                },
                Flow {
                    id: 1,
                    packet_id: 1,
                },
            ],
        },
        Entry::Completed {
            client: client.clone(),
            flows: vec![Flow {
                id: 0,
                packet_id: 7,
            }],
        },
        Entry::Completed {
            client: client.clone(),
            flows: vec![],
        },
        Entry::Dropped {
            client: client.clone(),
            copies: vec![
                Unsent {
                    id: u64::MAX,
                    qos: Q2,
                    retain: true,
                    subscription_ids: vec![1, u32::MAX],
                    on_subscribe: true,
                },
                Unsent {
                    id: 0,
                    qos: Q0,
                    retain: false,
                    subscription_ids: vec![],
                    on_subscribe: false,
                },
            ],
        },
        Entry::Dropped {
            client: client.clone(),
            copies: vec![],
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
    let released = [Flow {
        id: 7,
        packet_id: 3,
    }];
    let completed = [Flow {
        id: 8,
        packet_id: 4,
    }];
    let dropped = [
        Unsent {
            id: 5,
            qos: Q1,
            retain: true,
            subscription_ids: vec![2],
            on_subscribe: false,
        },
        Unsent {
            id: 6,
            qos: Q2,
            retain: false,
            subscription_ids: vec![],
            on_subscribe: true,
        },
    ];
    let mut out = Vec::new();
    let round = Round {
        sent: &sends,
        released: &released,
        completed: &completed,
        dropped: &dropped,
        inbound_done: &[9],
    };
    encode_round(&client, round, T0, &mut out);
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
        Entry::Released {
            client: client.clone(),
            flows: released.to_vec(),
        },
        Entry::Completed {
            client: client.clone(),
            flows: completed.to_vec(),
        },
        Entry::Dropped {
            client: client.clone(),
            copies: dropped.to_vec(),
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
    let empty = Round {
        sent: &[],
        released: &[],
        completed: &[],
        dropped: &[],
        inbound_done: &[],
    };
    encode_round(&client, empty, T0, &mut out);
    assert!(out.is_empty());
}

#[test]
fn flows_without_packet_ids_and_id_marks_naming_a_client_are_refused() {
    // Released by message id alone ('L') is no kind; a flow needs a real
    // packet id [MQTT-2.2.1-3]; an id mark ('A') is under the empty
    // client id only.
    let record = |kind: &'static [u8], payload: bytes::BytesMut, offset| {
        let r = NewRecord {
            timestamp: T0,
            properties: Bytes::from_static(kind),
            payload: payload.freeze(),
            ..NewRecord::default()
        };
        decode(&as_record(r, offset), Instant::now(), T0)
    };
    let mut b = bytes::BytesMut::new();
    super::super::put_ids(&mut b, &s("old"), &[4, 9]);
    let e = record(b"L", b, 3).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("journal record at offset 3 is malformed: unknown entry kind 0x4c;"),
        "{e}"
    );
    for kind in [b"K", b"C"] {
        let mut b = bytes::BytesMut::new();
        let flows = [Flow {
            id: 4,
            packet_id: 0,
        }];
        super::super::put_flows(&mut b, &s("new"), &flows);
        let e = record(kind, b, 5).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "journal record at offset 5 is malformed: a flow of message 4 has packet id 0;"
            ),
            "{e}"
        );
    }
    let mut b = bytes::BytesMut::new();
    super::super::put_ids(&mut b, &s("a"), &[4]);
    let e = record(b"A", b, 6).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "journal record at offset 6 is malformed: an IdMark entry names client \"a\" \
             (an id mark's client id is empty);"
        ),
        "{e}"
    );
    let mut b = bytes::BytesMut::new();
    super::super::put_ids(&mut b, &s(""), &[4]);
    assert_eq!(record(b"A", b, 7).unwrap(), Entry::IdMark { ids: vec![4] });
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
fn the_format_file_names_the_version_and_other_versions_are_refused() {
    assert_eq!(format_file(), b"strata-journal 1\n");
    assert_eq!(check_format(Some(&format_file())).ok(), Some(1));
    let e = check_format(Some(b"strata-journal 2\n")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the journal is format version 2, and this build reads journal format version 1: start \
         the Strata version that wrote it, or move the data directory aside to start without \
         the stored sessions and retained messages"
    );
    let e = check_format(None).unwrap_err();
    assert!(
        e.to_string().starts_with("the journal is without a FORMAT file (so of no known format), and this build reads journal format version 1"),
        "{e}"
    );
    let e = check_format(Some(b"hello")).unwrap_err();
    assert!(e.to_string().contains("FORMAT says \"hello\""), "{e}");
}
