//! Compaction at start-up and of a prefix while the broker runs.

use super::*;

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
    // dropped, 10 expired); c also has its r/# messages.
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
            // a gets retained 3 on subscribing, and sends it.
            t(7000, on_subscribe_copy(3, Q1).pending(&s("a"))),
            t(7000, sub("a", "r/keep", opts(Q1))),
            t(7000, retained_send("a", 3, 4, &[], true)),
            t(7000, completed("a", &[(1, 3)])),
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
            t(7100, completed("b", &[(3, 9)])),
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
